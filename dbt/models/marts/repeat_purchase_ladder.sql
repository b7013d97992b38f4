-- The repeat-purchase ladder: of the customers who made n purchases, how many made an (n+1)-th,
-- P(n+1 | n), and the median days between them; overall, by first channel and by acquisition
-- cohort.  Right-censored: a customer counts for step n only when their n-th purchase is at least
-- ladder_censor_days before the as-of date (so recent buyers have had time to come back).
-- Left-censored customers (first purchase in their source's warm-up) are left out: their purchases
-- before the data begins are unknown, so their n-th purchase in the data need not be their n-th.

with purchases as (

    select * from {{ ref('int_customer_purchases') }}

),

steps as (

    select
        nth.customer_key,
        nth.purchase_number as n,
        nth.first_channel,
        nth.cohort_month,
        next_purchase.order_date is not null as reached_next,
        {{ dbt.datediff('nth.order_date', 'next_purchase.order_date', 'day') }} as days_to_next
    from purchases as nth
    left join purchases as next_purchase
        on next_purchase.customer_key = nth.customer_key
        and next_purchase.purchase_number = nth.purchase_number + 1
    where nth.purchase_number <= {{ var('ladder_max_n') }}
        and nth.order_date <= {{ dbt.dateadd('day', -1 * var('ladder_censor_days'), as_of_date()) }}
        and not nth.is_left_censored

),

by_dimension as (

    select 'overall' as dimension, 'all' as dimension_value, n, reached_next, days_to_next from steps
    union all
    select 'first_channel', first_channel, n, reached_next, days_to_next from steps
    union all
    select 'acquisition_cohort', cast(cohort_month as {{ dbt.type_string() }}), n, reached_next, days_to_next from steps

),

final as (

    select
        dimension,
        dimension_value,
        n,
        count(*) as customers_reached_n,
        count(case when reached_next then 1 end) as customers_reached_next,
        cast(count(case when reached_next then 1 end) as double) / count(*) as repeat_rate,
        {{ median('days_to_next') }} as median_days_to_next,
        cast({{ var('ladder_censor_days') }} as bigint) as censor_window_days,
        {{ as_of_date() }} as as_of_date
    from by_dimension
    group by dimension, dimension_value, n

)

select * from final
