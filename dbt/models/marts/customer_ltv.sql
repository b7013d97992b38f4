-- Historical lifetime value per customer: what they have been worth so far, how often they buy,
-- the value of an average order (AOV) and the value per year of tenure; and the same lifetime in
-- gross margin (net revenue less product cost), with the share of it resting on known costs.

with customers as (

    select * from {{ ref('dim_customers') }}
    where purchase_count > 0

),

margins as (

    select customer_key, gross_margin, goods_value, costed_goods_value
    from {{ ref('int_customer_order_summary') }}

),

final as (

    select
        customers.customer_key,
        customers.first_purchase_date,
        customers.last_purchase_date,
        customers.purchase_count as order_count,
        customers.net_revenue as historical_ltv,
        cast(customers.net_revenue / customers.purchase_count as decimal(18, 2)) as average_order_value,
        {{ dbt.datediff('customers.first_purchase_date', as_of_date(), 'day') }} as tenure_days,
        -- tenure floored at 30 days so a brand-new customer's yearly value is not blown up
        cast(
            customers.net_revenue * 365.25
            / (
                case
                    when {{ dbt.datediff('customers.first_purchase_date', as_of_date(), 'day') }} < 30 then 30
                    else {{ dbt.datediff('customers.first_purchase_date', as_of_date(), 'day') }}
                end
            )
            as decimal(18, 2)
        ) as value_per_year,
        cast(coalesce(margins.gross_margin, 0) as decimal(18, 2)) as gross_margin,
        case when customers.net_revenue <> 0
                then cast(coalesce(margins.gross_margin, 0) as double) / cast(customers.net_revenue as double)
        end as gross_margin_rate,
        case when margins.goods_value > 0
                then cast(margins.costed_goods_value as double) / cast(margins.goods_value as double)
        end as margin_cost_coverage,
        {{ as_of_date() }} as as_of_date
    from customers
    left join margins on margins.customer_key = customers.customer_key

)

select * from final
