-- Did the programme run on a tier work? For each tier, entry month and window of 30, 60 and 90 days after
-- entry: treated customers (in the activation files) against held-out ones (drawn at random by a hash,
-- lib/export/holdout.py), on the repeat purchase rate, net revenue per customer and orders per customer
-- in the window, with the difference and its 95% interval. Only complete windows count (entered_on +
-- window on or before the as-of date).

with entries as (

    -- a customer counts once per tier and entry month: its first entry that month
    select
        tier,
        customer_key,
        holdout_group,
        entered_on,
        entry_month
    from (
        select
            tier,
            customer_key,
            holdout_group,
            entered_on,
            {{ dbt.date_trunc('month', 'entered_on') }} as entry_month,
            row_number() over (
                partition by tier, customer_key, {{ dbt.date_trunc('month', 'entered_on') }}
                order by entered_on
            ) as nth_entry
        from {{ ref('tier_memberships') }}
    ) as ranked
    where nth_entry = 1

),

windows as (

    select 30 as window_days
    union all
    select 60 as window_days
    union all
    select 90 as window_days

),

observed as (

    select
        entries.*,
        windows.window_days,
        {{ dbt.dateadd('day', 'windows.window_days', 'entries.entered_on') }} as window_ends_on
    from entries
    cross join windows
    where {{ dbt.dateadd('day', 'windows.window_days', 'entries.entered_on') }} <= {{ as_of_date() }}

),

orders as (

    select
        customer_key,
        order_date,
        is_purchase,
        net_revenue
    from {{ ref('fct_orders') }}
    where customer_key is not null and is_valid

),

-- one row per customer and window: what they did in the days after entry (entry day excluded)
per_customer as (

    select
        observed.tier,
        observed.entry_month,
        observed.window_days,
        observed.holdout_group,
        observed.customer_key,
        count(case when orders.is_purchase then 1 end) as purchases,
        cast(coalesce(sum(orders.net_revenue), 0) as double) as net_revenue
    from observed
    left join orders
        on
        orders.customer_key = observed.customer_key
        and orders.order_date > observed.entered_on
        and orders.order_date <= observed.window_ends_on
    group by
        observed.tier, observed.entry_month, observed.window_days, observed.holdout_group, observed.customer_key

),

by_group as (

    select
        tier,
        entry_month,
        window_days,
        count(case when holdout_group = 'treated' then 1 end) as n_t,
        count(case when holdout_group = 'holdout' then 1 end) as n_h,
        avg(case when holdout_group = 'treated' then (case when purchases > 0 then 1 else 0 end) end) as rate_t,
        avg(case when holdout_group = 'holdout' then (case when purchases > 0 then 1 else 0 end) end) as rate_h,
        avg(case when holdout_group = 'treated' then net_revenue end) as revenue_t,
        avg(case when holdout_group = 'holdout' then net_revenue end) as revenue_h,
        var_samp(case when holdout_group = 'treated' then net_revenue end) as revenue_var_t,
        var_samp(case when holdout_group = 'holdout' then net_revenue end) as revenue_var_h,
        avg(case when holdout_group = 'treated' then cast(purchases as double) end) as orders_t,
        avg(case when holdout_group = 'holdout' then cast(purchases as double) end) as orders_h,
        var_samp(case when holdout_group = 'treated' then cast(purchases as double) end) as orders_var_t,
        var_samp(case when holdout_group = 'holdout' then cast(purchases as double) end) as orders_var_h
    from per_customer
    group by tier, entry_month, window_days

),

-- the standard error of the difference: two-proportion (unpooled) for the rate, Welch (unequal
-- variances) for the means; the interval is the normal approximation, difference ± 1.96 × SE
metrics as (

    select
        tier, entry_month, window_days, n_t, n_h,
        'repeat_purchase_rate' as metric,
        cast(rate_t as double) as treated_value,
        cast(rate_h as double) as holdout_value,
        sqrt(rate_t * (1 - rate_t) / n_t + rate_h * (1 - rate_h) / n_h) as standard_error
    from by_group
    union all
    select
        tier, entry_month, window_days, n_t, n_h,
        'net_revenue_per_customer' as metric,
        revenue_t as treated_value,
        revenue_h as holdout_value,
        sqrt(revenue_var_t / n_t + revenue_var_h / n_h) as standard_error
    from by_group
    union all
    select
        tier, entry_month, window_days, n_t, n_h,
        'orders_per_customer' as metric,
        orders_t as treated_value,
        orders_h as holdout_value,
        sqrt(orders_var_t / n_t + orders_var_h / n_h) as standard_error
    from by_group

),

final as (

    select
        tier,
        cast(entry_month as date) as entry_month,
        cast(window_days as {{ dbt.type_bigint() }}) as window_days,
        metric,
        cast(n_t as {{ dbt.type_bigint() }}) as treated_customers,
        cast(n_h as {{ dbt.type_bigint() }}) as holdout_customers,
        treated_value,
        holdout_value,
        case when is_measured then treated_value - holdout_value end as difference,
        case when is_measured then standard_error end as standard_error,
        case when is_measured then treated_value - holdout_value - 1.96 * standard_error end as ci_low,
        case when is_measured then treated_value - holdout_value + 1.96 * standard_error end as ci_high,
        case when is_measured then 'measured' else 'not enough customers yet' end as status,
        {{ as_of_date() }} as as_of_date
    from (
        select
            *,
            (n_t >= {{ var('lift_min_group_customers') }} and n_h >= {{ var('lift_min_group_customers') }})
                as is_measured
        from metrics
    ) as judged

)

select * from final
