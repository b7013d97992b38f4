-- How much revenue belongs to known customers and how much is anonymous (guest checkouts,
-- walk-in sales with no identifier), per channel and in total.  Anonymous orders count in
-- fct_orders totals but not in the customer marts; this is their share.

with orders as (

    select * from {{ ref('fct_orders') }}
    where is_valid

),

by_channel as (

    select
        channel,
        count(*) as orders,
        count(case when is_anonymous then 1 end) as anonymous_orders,
        sum(net_revenue) as net_revenue,
        sum(case when is_anonymous then net_revenue else 0 end) as anonymous_net_revenue
    from orders
    group by channel

),

with_total as (

    select * from by_channel
    union all
    select
        'all' as channel,
        sum(orders) as orders,
        sum(anonymous_orders) as anonymous_orders,
        sum(net_revenue) as net_revenue,
        sum(anonymous_net_revenue) as anonymous_net_revenue
    from by_channel

),

final as (

    select
        channel,
        cast(orders as bigint) as orders,
        cast(anonymous_orders as bigint) as anonymous_orders,
        cast(net_revenue as decimal(18, 2)) as net_revenue,
        cast(anonymous_net_revenue as decimal(18, 2)) as anonymous_net_revenue,
        cast(net_revenue - anonymous_net_revenue as decimal(18, 2)) as identified_net_revenue,
        case
            when net_revenue = 0 then null
            else cast(anonymous_net_revenue as double) / cast(net_revenue as double)
        end as anonymous_revenue_share,
        case
            when orders = 0 then null
            else cast(anonymous_orders as double) / cast(orders as double)
        end as anonymous_order_share
    from with_total

)

select * from final
