-- Daily revenue, orders, AOV and customers (active, new, returning) by channel and for all
-- channels.  Anonymous orders count in revenue and orders, not in customer counts.
--
-- Counted without distinct aggregates: orders are summed per day and channel, then the channel
-- sums per day give `all`; customers are grouped per day, channel and customer (then per day and
-- customer for `all`), so each group is one customer.  A customer is new on the day of purchase
-- number 1 and returning on a day with a purchase numbered above 1 (both, when they bought twice
-- on their first day).  A left-censored customer (first purchase in their source's warm-up, so
-- maybe not new) counts in left_censored_customers on that day instead of in new_customers.

with orders as (

    select * from {{ ref('fct_orders') }}
    where is_valid

),

purchases as (

    select
        customer_key, order_date, channel, purchase_number,
        case when is_left_censored then 1 else 0 end as left_censored
    from {{ ref('int_customer_purchases') }}

),

channel_orders as (

    select
        order_date,
        channel,
        sum(net_revenue) as net_revenue,
        count(case when is_purchase then 1 end) as orders
    from orders
    group by order_date, channel

),

order_kpis as (

    select order_date, channel, net_revenue, orders from channel_orders
    union all
    select
        order_date,
        'all' as channel,
        sum(net_revenue) as net_revenue,
        cast(sum(orders) as {{ dbt.type_bigint() }}) as orders
    from channel_orders
    group by order_date

),

customer_channel_days as (

    -- one row per customer, day and channel
    select
        order_date,
        channel,
        customer_key,
        min(purchase_number) as first_number,
        max(purchase_number) as last_number,
        max(left_censored) as left_censored
    from purchases
    group by order_date, channel, customer_key

),

customer_days as (

    -- one row per customer and day, over channels
    select
        order_date,
        customer_key,
        min(first_number) as first_number,
        max(last_number) as last_number,
        max(left_censored) as left_censored
    from customer_channel_days
    group by order_date, customer_key

),

customer_kpis as (

    select
        order_date,
        channel,
        count(*) as active_customers,
        count(case when first_number = 1 and left_censored = 0 then 1 end) as new_customers,
        count(case when first_number = 1 and left_censored = 1 then 1 end) as left_censored_customers,
        count(case when last_number > 1 then 1 end) as returning_customers
    from customer_channel_days
    group by order_date, channel
    union all
    select
        order_date,
        'all' as channel,
        count(*) as active_customers,
        count(case when first_number = 1 and left_censored = 0 then 1 end) as new_customers,
        count(case when first_number = 1 and left_censored = 1 then 1 end) as left_censored_customers,
        count(case when last_number > 1 then 1 end) as returning_customers
    from customer_days
    group by order_date

),

final as (

    select
        order_kpis.order_date,
        order_kpis.channel,
        cast(order_kpis.net_revenue as decimal(18, 2)) as net_revenue,
        order_kpis.orders,
        cast(order_kpis.net_revenue / nullif(order_kpis.orders, 0) as decimal(18, 2)) as average_order_value,
        coalesce(customer_kpis.active_customers, 0) as active_customers,
        coalesce(customer_kpis.new_customers, 0) as new_customers,
        coalesce(customer_kpis.returning_customers, 0) as returning_customers,
        coalesce(customer_kpis.left_censored_customers, 0) as left_censored_customers,
        {{ is_partial_period('order_kpis.order_date', 'order_kpis.order_date') }} as is_partial_period
    from order_kpis
    left join customer_kpis
        on customer_kpis.order_date = order_kpis.order_date and customer_kpis.channel = order_kpis.channel

)

select * from final
