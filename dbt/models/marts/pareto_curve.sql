-- Customers ranked by net revenue with the cumulative share of customers and of revenue.
-- Super users are the smallest set giving pareto_revenue_share (default 80%) of revenue,
-- tie-safe: the revenue of the customer where the cumulative share first reaches the line is
-- the threshold, and every customer at or above it is a super user (equal revenue, equal
-- treatment).  Only customers with positive net revenue are ranked.  Net revenue per customer comes
-- from the per-customer aggregate (valid orders of known customers), not from every order again.

with customer_revenue as (

    select customer_key, net_revenue
    from {{ ref('int_customer_order_summary') }}

),

ranked as (

    select
        customer_key,
        net_revenue,
        cast(row_number() over (order by net_revenue desc, customer_key asc) as bigint) as revenue_rank,
        count(*) over () as customers,
        sum(net_revenue) over () as total_revenue,
        sum(net_revenue) over (
            order by net_revenue desc, customer_key asc
            rows between unbounded preceding and current row
        ) as cumulative_revenue
    from customer_revenue
    where net_revenue > 0

),

shares as (

    select
        ranked.*,
        cast(revenue_rank as double) / customers as cumulative_customer_share,
        cast(cumulative_revenue as double) / cast(total_revenue as double) as cumulative_revenue_share
    from ranked

),

threshold as (

    select min(net_revenue) as threshold_revenue
    from shares
    -- customers needed to reach the line: the share before them is still below it
    where cast(cumulative_revenue - net_revenue as double) / cast(total_revenue as double)
        < {{ var('pareto_revenue_share') }}

),

final as (

    select
        shares.customer_key,
        shares.revenue_rank,
        cast(shares.net_revenue as decimal(18, 2)) as net_revenue,
        shares.cumulative_customer_share,
        shares.cumulative_revenue_share,
        shares.net_revenue >= threshold.threshold_revenue as is_super_user
    from shares
    cross join threshold

)

select * from final
