-- The repeat-purchase ladder with one observation window W (var ladder_window_days): P(n+1 | n) is
-- the share of customers whose (n+1)-th purchase came within W days of their n-th, among the
-- customers observed for at least W days after their n-th purchase (n-th purchase at least W days
-- before the as-of date).  Every customer at a step has the same W days to come back, so early,
-- heavy buyers are not favoured by longer windows.  Beside it, the share who came back at any time
-- up to the as-of date (same customers), and the median days between the two purchases.  Overall,
-- by first channel and by acquisition cohort.
-- Purchases are counted as in RFM frequency: purchase days (two orders on one day are one purchase).
-- Left-censored customers (first purchase in their source's warm-up) are left out: their purchases
-- before the data begins are unknown, so their n-th purchase in the data need not be their n-th.

with purchases as (

    select * from {{ ref('int_customer_purchases') }}
    where not is_left_censored

),

purchase_days as (

    -- one row per customer and day with a purchase, numbered; the next purchase day from the same window
    select
        customer_key,
        order_date,
        first_channel,
        cohort_month,
        cast(row_number() over customer_days as bigint) as purchase_number,
        lead(order_date) over customer_days as next_order_date
    from (
        select customer_key, order_date, first_channel, cohort_month
        from purchases
        group by customer_key, order_date, first_channel, cohort_month
    ) as days
    window customer_days as (partition by customer_key order by order_date)

),

steps as (

    select
        customer_key,
        purchase_number as n,
        first_channel,
        cohort_month,
        next_order_date is not null as reached_next_by_as_of,
        (
            next_order_date is not null
            and {{ dbt.datediff('order_date', 'next_order_date', 'day') }} <= {{ var('ladder_window_days') }}
        ) as reached_next,
        {{ dbt.datediff('order_date', 'next_order_date', 'day') }} as days_to_next
    from purchase_days
    where purchase_number <= {{ var('ladder_max_n') }}
        -- observed for the whole window: the n-th purchase is at least W days before the as-of date
        and order_date <= {{ dbt.dateadd('day', -1 * var('ladder_window_days'), as_of_date()) }}

),

by_dimension as (

    select 'overall' as dimension, 'all' as dimension_value, n, reached_next, reached_next_by_as_of, days_to_next
    from steps
    union all
    select
        'first_channel' as dimension, first_channel as dimension_value,
        n, reached_next, reached_next_by_as_of, days_to_next
    from steps
    union all
    select
        'acquisition_cohort' as dimension, cast(cohort_month as {{ dbt.type_string() }}) as dimension_value,
        n, reached_next, reached_next_by_as_of, days_to_next
    from steps

),

final as (

    select
        dimension,
        dimension_value,
        n,
        count(*) as customers_reached_n,
        count(case when reached_next then 1 end) as customers_reached_next,
        cast(count(case when reached_next then 1 end) as double) / count(*) as repeat_rate,
        {{ median('case when reached_next then days_to_next end') }} as median_days_to_next,
        count(case when reached_next_by_as_of then 1 end) as customers_reached_next_by_as_of,
        cast(count(case when reached_next_by_as_of then 1 end) as double) / count(*) as repeat_rate_by_as_of,
        cast({{ var('ladder_window_days') }} as bigint) as window_days,
        {{ as_of_date() }} as as_of_date
    from by_dimension
    group by dimension, dimension_value, n

)

select * from final
