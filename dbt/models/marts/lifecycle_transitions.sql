-- Customers moving between activity states, month by month.  A customer's state is measured at
-- each month end (the as-of date for the last month) from their purchases up to then; the first
-- month a customer appears they come from 'none'.

with purchase_days as (

    select distinct customer_key, order_date
    from {{ ref('fct_orders') }}
    where customer_key is not null and is_purchase

),

purchases as (

    select
        customer_key,
        order_date,
        lag(order_date) over (partition by customer_key order by order_date) as previous_purchase_date,
        lead(order_date) over (partition by customer_key order by order_date) as next_purchase_date,
        min(order_date) over (partition by customer_key) as first_purchase_date
    from purchase_days

),

bounds as (

    select {{ dbt.date_trunc('month', 'min(order_date)') }} as first_month
    from purchase_days

),

months as (

    select
        {{ dbt.dateadd('month', 'numbers.n', 'bounds.first_month') }} as month_start
    from ({{ numbers_0_999() }}) as numbers
    cross join bounds
    where {{ dbt.dateadd('month', 'numbers.n', 'bounds.first_month') }} <= {{ as_of_date() }}

),

month_ends as (

    select
        cast(month_start as date) as month_start,
        case
            when {{ dbt.last_day('month_start', 'month') }} > {{ as_of_date() }} then {{ as_of_date() }}
            else cast({{ dbt.last_day('month_start', 'month') }} as date)
        end as measured_on
    from months

),

snapshots as (

    -- the purchase in force at each month end: the latest one on or before it
    select
        purchases.customer_key,
        month_ends.month_start,
        {{ activity_state(
            dbt.datediff('purchases.first_purchase_date', 'month_ends.measured_on', 'day'),
            dbt.datediff('purchases.order_date', 'month_ends.measured_on', 'day'),
            dbt.datediff('purchases.previous_purchase_date', 'purchases.order_date', 'day')) }} as activity_state
    from purchases
    inner join month_ends
        on month_ends.measured_on >= purchases.order_date
        and (purchases.next_purchase_date is null or month_ends.measured_on < purchases.next_purchase_date)

),

with_previous as (

    select
        customer_key,
        month_start,
        coalesce(
            lag(activity_state) over (partition by customer_key order by month_start), 'none'
        ) as from_state,
        activity_state as to_state
    from snapshots

),

final as (

    select
        month_start as month,
        from_state,
        to_state,
        count(*) as customers
    from with_previous
    group by month_start, from_state, to_state

)

select * from final
