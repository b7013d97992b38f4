-- One row per known customer with a valid order: the compact per-customer aggregate that
-- customer-level marts start from (customer_rfm, pareto_curve, dim_customers) instead of
-- re-reading every order.
-- Purchases on one day count once (purchase_days); net_revenue covers every valid order,
-- refund-only ones included.  Aggregated by customer and day first: cheaper than count(distinct).

with orders as (

    select * from {{ ref('fct_orders') }}
    where customer_key is not null and is_valid

),

customer_days as (

    select
        customer_key,
        order_date,
        count(case when is_purchase then 1 end) as purchases,
        count(case when is_purchase and channel = 'online' then 1 end) as online_purchases,
        count(case when is_purchase and channel = 'store' then 1 end) as store_purchases,
        sum(net_revenue) as net_revenue,
        sum(gross_margin) as gross_margin,
        sum(goods_value) as goods_value,
        sum(costed_goods_value) as costed_goods_value
    from orders
    group by customer_key, order_date

),

final as (

    select
        customer_key,
        min(case when purchases > 0 then order_date end) as first_purchase_date,
        max(case when purchases > 0 then order_date end) as last_purchase_date,
        count(case when purchases > 0 then 1 end) as purchase_days,
        cast(sum(purchases) as {{ dbt.type_bigint() }}) as purchases,  -- DuckDB sums to HUGEINT (slow to read back)
        cast(sum(online_purchases) as {{ dbt.type_bigint() }}) as online_purchases,
        cast(sum(store_purchases) as {{ dbt.type_bigint() }}) as store_purchases,
        cast(sum(net_revenue) as decimal(18, 2)) as net_revenue,
        cast(sum(gross_margin) as decimal(18, 2)) as gross_margin,
        cast(sum(goods_value) as decimal(18, 2)) as goods_value,
        cast(sum(costed_goods_value) as decimal(18, 2)) as costed_goods_value
    from customer_days
    group by customer_key

)

select * from final
