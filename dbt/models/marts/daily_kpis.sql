-- Daily revenue, orders, AOV and customers (active, new, returning) by channel and for all
-- channels.  Anonymous orders count in revenue and orders, not in customer counts.

with orders as (

    select * from {{ ref('fct_orders') }}
    where is_valid

),

purchases as (

    select customer_key, order_date, channel, purchase_number
    from {{ ref('int_customer_purchases') }}

),

order_rows as (

    select order_date, channel, net_revenue, is_purchase from orders
    union all
    select order_date, 'all' as channel, net_revenue, is_purchase from orders

),

customer_rows as (

    select order_date, channel, customer_key, purchase_number from purchases
    union all
    select order_date, 'all' as channel, customer_key, purchase_number from purchases

),

order_kpis as (

    select
        order_date,
        channel,
        sum(net_revenue) as net_revenue,
        count(case when is_purchase then 1 end) as orders
    from order_rows
    group by order_date, channel

),

customer_kpis as (

    select
        order_date,
        channel,
        count(distinct customer_key) as active_customers,
        count(distinct case when purchase_number = 1 then customer_key end) as new_customers,
        count(distinct case when purchase_number > 1 then customer_key end) as returning_customers
    from customer_rows
    group by order_date, channel

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
        coalesce(customer_kpis.returning_customers, 0) as returning_customers
    from order_kpis
    left join customer_kpis
        on customer_kpis.order_date = order_kpis.order_date and customer_kpis.channel = order_kpis.channel

)

select * from final
