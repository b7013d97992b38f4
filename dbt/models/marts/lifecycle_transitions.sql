-- Customers moving between activity states, month by month.  A customer's state is measured at
-- each month end (the as-of date for the last month) from their purchases up to then; the first
-- month a customer appears they come from 'none'.  is_partial_period marks a month the data does
-- not wholly cover (the as-of date's month, unless it is the month's last complete day).
--
-- Built from the dates where a customer's state can change, not from every customer-month: within
-- the time a purchase is the latest one, the state changes only on the purchase day and when a
-- lifecycle window runs out (new, active, at risk, lapsed).  The state at a month end is the state
-- at the last change on or before it, so each customer gets one row per month holding a change
-- (from the previous such month's state), and the months between two of them count as staying in
-- the state (summed month by month from +1/-1 steps).  Equal to measuring every customer at every
-- month end, without one row per customer and month.  Customers who bought on a single day have
-- the same timeline as everyone else who bought only on that day, so those are followed once per
-- day and counted with their number of customers.

with purchase_days as (

    -- customers numbered 1..n: the windows below partition by the number, which sorts much faster
    -- than the text customer_key (the output counts customers, it does not name them)
    select dense_rank() over (order by customer_key) as customer_number, order_date
    from (
        select distinct customer_key, order_date
        from {{ ref('fct_orders') }}
        where customer_key is not null and is_purchase
    ) as days

),

purchases as (

    select
        customer_number,
        order_date,
        lag(order_date) over (partition by customer_number order by order_date) as previous_purchase_date,
        lead(order_date) over (partition by customer_number order by order_date) as next_purchase_date,
        min(order_date) over (partition by customer_number) as first_purchase_date
    from purchase_days

),

timelines as (

    -- customers who bought on one day only (most of them) share their whole timeline with everyone
    -- who bought only on that day: one timeline per such day, weighted by its customers (numbered
    -- below zero); every other customer is a timeline of their own
    select
        customer_number as timeline,
        order_date,
        previous_purchase_date,
        next_purchase_date,
        first_purchase_date,
        1 as customers
    from purchases
    where previous_purchase_date is not null or next_purchase_date is not null
    union all
    select
        -1 - {{ dbt.datediff("cast('0001-01-01' as date)", 'order_date', 'day') }} as timeline,
        order_date,
        cast(null as date) as previous_purchase_date,
        cast(null as date) as next_purchase_date,
        order_date as first_purchase_date,
        count(*) as customers
    from purchases
    where previous_purchase_date is null and next_purchase_date is null
    group by order_date

),

bounds as (

    select
        {{ dbt.date_trunc('month', 'min(order_date)') }} as first_month,
        {{ dbt.date_trunc('month', as_of_date()) }} as last_month
    from purchase_days

),

months as (

    select
        cast({{ dbt.dateadd('month', 'numbers.n', 'bounds.first_month') }} as date) as month_start
    from ({{ numbers_0_999() }}) as numbers
    cross join bounds
    where {{ dbt.dateadd('month', 'numbers.n', 'bounds.first_month') }} <= bounds.last_month

),

change_dates as (

    -- the purchase day and the days each window runs out, while this purchase is the latest one
    {%- set offsets = [
        ('order_date', 0),
        ('order_date', var('lifecycle_active_days') + 1),
        ('order_date', var('lifecycle_at_risk_days') + 1),
        ('order_date', var('lifecycle_lapsed_days') + 1),
        ('first_purchase_date', var('lifecycle_new_days') + 1),
    ] %}
    {%- for start, days in offsets %}
    select
        timeline, customers, order_date, previous_purchase_date, next_purchase_date, first_purchase_date,
        cast({{ dbt.dateadd('day', days, start) }} as date) as changes_on
    from timelines
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}

),

changes as (

    select
        timeline,
        customers,
        changes_on,
        cast({{ dbt.date_trunc('month', 'changes_on') }} as date) as month_start,
        {{ activity_state(
            dbt.datediff('first_purchase_date', 'changes_on', 'day'),
            dbt.datediff('order_date', 'changes_on', 'day'),
            dbt.datediff('previous_purchase_date', 'order_date', 'day')) }} as activity_state
    from change_dates
    where changes_on >= order_date
        and (next_purchase_date is null or changes_on < next_purchase_date)
        and changes_on <= {{ as_of_date() }}

),

last_change_per_month as (

    -- the state measured at a month end: the one after the month's last change (a customer's change
    -- dates are distinct, or give the same state)
    select
        timeline,
        month_start,
        max(customers) as customers,  -- one value per timeline
        {{ value_at_max('activity_state', 'changes_on') }} as activity_state
    from changes
    group by timeline, month_start

),

changed_months as (

    select
        timeline,
        customers,
        month_start,
        coalesce(
            lag(activity_state) over (partition by timeline order by month_start), 'none'
        ) as from_state,
        activity_state as to_state,
        lead(month_start) over (partition by timeline order by month_start) as next_changed_month
    from last_change_per_month

),

stay_steps as (

    -- a customer stays in to_state from the month after a changed month up to the next changed one
    select
        cast({{ dbt.dateadd('month', 1, 'month_start') }} as date) as month_start,
        to_state as activity_state,
        customers as step
    from changed_months
    union all
    select next_changed_month as month_start, to_state as activity_state, -1 * customers as step
    from changed_months
    where next_changed_month is not null

),

steps_by_month as (

    select month_start, activity_state, sum(step) as step
    from stay_steps
    group by month_start, activity_state

),

states as (

    select distinct activity_state from steps_by_month

),

stays as (

    select
        months.month_start,
        states.activity_state,
        sum(coalesce(steps_by_month.step, 0)) over (
            partition by states.activity_state order by months.month_start
            rows between unbounded preceding and current row
        ) as customers
    from months
    cross join states
    left join steps_by_month
        on steps_by_month.month_start = months.month_start
        and steps_by_month.activity_state = states.activity_state

),

moves as (

    select month_start, from_state, to_state, sum(customers) as customers
    from changed_months
    group by month_start, from_state, to_state
    union all
    select month_start, activity_state as from_state, activity_state as to_state, customers
    from stays
    where customers > 0

),

final as (

    select
        month_start as month,
        from_state,
        to_state,
        cast(sum(customers) as {{ dbt.type_bigint() }}) as customers
    from moves
    group by month_start, from_state, to_state

)

select final.*, {{ is_partial_month('final.month') }} as is_partial_period
from final
