-- The headline: "x% of customers give 80% of revenue", plus the share the top 20% give.

with curve as (

    select * from {{ ref('pareto_curve') }}

),

totals as (

    select
        count(*) as customers,
        sum(net_revenue) as net_revenue,
        count(case when is_super_user then 1 end) as super_users,
        sum(case when is_super_user then net_revenue else 0 end) as super_user_revenue,
        max(case when cumulative_customer_share <= 0.2 then cumulative_revenue_share end) as top_20pct_revenue_share
    from curve

),

final as (

    select
        customers,
        super_users,
        cast(super_users as double) / customers as super_user_customer_share,
        cast(super_user_revenue as double) / cast(net_revenue as double) as super_user_revenue_share,
        coalesce(top_20pct_revenue_share, 0) as top_20pct_revenue_share,
        cast({{ var('pareto_revenue_share') }} as double) as target_revenue_share,
        concat(
            cast(round(100.0 * super_users / customers, 1) as {{ dbt.type_string() }}),
            '% of customers give ',
            cast(round(100.0 * super_user_revenue / net_revenue, 1) as {{ dbt.type_string() }}),
            '% of revenue'
        ) as headline,
        {{ as_of_date() }} as as_of_date
    from totals

)

select * from final
