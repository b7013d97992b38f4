-- One row: AOV (value of an order) next to value per customer (what a customer is worth over
-- their purchases).  Owned-audience work moves the second; this shows the gap between them.

with ltv as (

    select * from {{ ref('customer_ltv') }}

),

final as (

    select
        count(*) as customers,
        cast(sum(order_count) as bigint) as orders,
        cast(sum(historical_ltv) as decimal(18, 2)) as net_revenue,
        cast(sum(historical_ltv) / sum(order_count) as decimal(18, 2)) as average_order_value,
        cast(sum(historical_ltv) / count(*) as decimal(18, 2)) as value_per_customer,
        cast(sum(order_count) as double) / count(*) as orders_per_customer,
        cast(sum(historical_ltv) / count(*) as double)
            / nullif(cast(sum(historical_ltv) / sum(order_count) as double), 0) as value_per_customer_over_aov,
        {{ as_of_date() }} as as_of_date
    from ltv

)

select * from final
