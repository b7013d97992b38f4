-- Monthly acquisition cohorts (month of the first purchase) × months since the first purchase:
-- customers active (with a purchase) that month, the share of the cohort that is, the cohort's
-- net revenue that month and its cumulative net revenue per cohort customer.
-- Net revenue is that of every valid order of the cohort's customers (purchases, and cancellation,
-- refund and return documents with their negative amounts), each in the month of its own date, as
-- the books show it.  A document dated before the customer's first purchase (a credit note for a
-- sale before the data begins) lands in month 0, so a cohort's revenue is its customers' whole net.
-- Left-censored customers (first purchase in their source's warm-up, so maybe not new) belong to
-- no cohort.

with purchases as (

    select * from {{ ref('int_customer_purchases') }}
    where not is_left_censored

),

valid_orders as (

    select customer_key, order_date, net_revenue
    from {{ ref('fct_orders') }}
    where customer_key is not null and is_valid

),

customer_cohorts as (

    select customer_key, cohort_month from purchases
    where purchase_number = 1

),

cohort_sizes as (

    select cohort_month, count(distinct customer_key) as cohort_customers
    from purchases
    group by cohort_month

),

active as (

    select
        cohort_month,
        {{ dbt.datediff('cohort_month', 'order_month', 'month') }} as months_since_first_purchase,
        count(distinct customer_key) as active_customers
    from purchases
    group by cohort_month, {{ dbt.datediff('cohort_month', 'order_month', 'month') }}

),

revenue_rows as (

    select
        customer_cohorts.cohort_month,
        {{ dbt.datediff('customer_cohorts.cohort_month', 'valid_orders.order_date', 'month') }} as months_since,
        valid_orders.net_revenue
    from valid_orders
    inner join customer_cohorts on customer_cohorts.customer_key = valid_orders.customer_key

),

revenue as (

    select
        cohort_month,
        case when months_since < 0 then 0 else months_since end as months_since_first_purchase,
        sum(net_revenue) as net_revenue
    from revenue_rows
    group by cohort_month, case when months_since < 0 then 0 else months_since end

),

activity as (

    -- a month with a cancellation and no purchase still carries its (negative) revenue
    select
        coalesce(active.cohort_month, revenue.cohort_month) as cohort_month,
        coalesce(active.months_since_first_purchase, revenue.months_since_first_purchase)
            as months_since_first_purchase,
        coalesce(active.active_customers, 0) as active_customers,
        coalesce(revenue.net_revenue, 0) as net_revenue
    from active
    full outer join revenue
        on revenue.cohort_month = active.cohort_month
        and revenue.months_since_first_purchase = active.months_since_first_purchase

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
