-- Historical lifetime value per customer: what they have been worth so far, how often they buy,
-- the value of an average order (AOV) and the value per year of tenure.

with customers as (

    select * from {{ ref('dim_customers') }}
    where purchase_count > 0

),

final as (

    select
        customer_key,
        first_purchase_date,
        last_purchase_date,
        purchase_count as order_count,
        net_revenue as historical_ltv,
        cast(net_revenue / purchase_count as decimal(18, 2)) as average_order_value,
        {{ dbt.datediff('first_purchase_date', as_of_date(), 'day') }} as tenure_days,
        -- tenure floored at 30 days so a brand-new customer's yearly value is not blown up
        cast(
            net_revenue * 365.25
            / (
                case
                    when {{ dbt.datediff('first_purchase_date', as_of_date(), 'day') }} < 30 then 30
                    else {{ dbt.datediff('first_purchase_date', as_of_date(), 'day') }}
                end
            )
            as decimal(18, 2)
        ) as value_per_year,
        {{ as_of_date() }} as as_of_date
    from customers

)

select * from final
