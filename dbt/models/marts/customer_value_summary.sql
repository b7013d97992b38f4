-- One row, the run's headline: customers, orders and net revenue up to the as-of date, AOV (value of
-- an order) next to value per customer (what a customer is worth over their purchases), and the
-- share of customers who came back.  Owned-audience work moves the second and the last; this shows
-- the gap between them.  Repeat buyers count purchase days, as RFM frequency and the repeat ladder
-- do, so two orders on one day do not make a repeat buyer.  Gross margin (net revenue less product
-- cost) stands beside net revenue, with the share of line value whose product cost is known.

with ltv as (

    select * from {{ ref('customer_ltv') }}

),

summary as (

    select * from {{ ref('int_customer_order_summary') }}

),

customers as (

    select
        ltv.order_count,
        ltv.historical_ltv,
        ltv.gross_margin,
        summary.goods_value,
        summary.costed_goods_value,
        case when summary.purchase_days >= 2 then 1 else 0 end as is_repeat_buyer
    from ltv
    inner join summary on summary.customer_key = ltv.customer_key

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
        cast(sum(is_repeat_buyer) as bigint) as repeat_customers,
        cast(sum(is_repeat_buyer) as double) / count(*) as repeat_customer_rate,
        cast(sum(gross_margin) as decimal(18, 2)) as gross_margin,
        case when sum(goods_value) > 0
                then cast(sum(costed_goods_value) as double) / cast(sum(goods_value) as double)
        end as margin_cost_coverage,
        {{ as_of_date() }} as as_of_date
    from customers

)

select * from final
