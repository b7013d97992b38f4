-- Monthly acquisition cohorts (month of the first purchase) × months since the first purchase:
-- customers active (with a purchase) that month, the share of the cohort that is, the cohort's
-- net revenue that month and its cumulative net revenue per cohort customer.  Left-censored
-- customers (first purchase in their source's warm-up, so maybe not new) belong to no cohort.

with purchases as (

    select * from {{ ref('int_customer_purchases') }}
    where not is_left_censored

),

cohort_sizes as (

    select cohort_month, count(distinct customer_key) as cohort_customers
    from purchases
    group by cohort_month

),

activity as (

    select
        cohort_month,
        {{ dbt.datediff('cohort_month', 'order_month', 'month') }} as months_since_first_purchase,
        count(distinct customer_key) as active_customers,
        sum(net_revenue) as net_revenue
    from purchases
    group by cohort_month, {{ dbt.datediff('cohort_month', 'order_month', 'month') }}

),

final as (

    select
        activity.cohort_month,
        activity.months_since_first_purchase,
        cohort_sizes.cohort_customers,
        activity.active_customers,
        cast(activity.active_customers as double) / cohort_sizes.cohort_customers as share_retained,
        cast(activity.net_revenue as decimal(18, 2)) as net_revenue,
        cast(
            sum(activity.net_revenue) over (
                partition by activity.cohort_month order by activity.months_since_first_purchase
                rows between unbounded preceding and current row
            ) / cohort_sizes.cohort_customers as decimal(18, 2)
        ) as cumulative_revenue_per_customer,
        {{ is_partial_month(dbt.dateadd('month', 'activity.months_since_first_purchase', 'activity.cohort_month')) }}
            as is_partial_period
    from activity
    inner join cohort_sizes on cohort_sizes.cohort_month = activity.cohort_month

)

select * from final
