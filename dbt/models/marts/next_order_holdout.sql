-- How often the expected next order window (customer_predictions) holds the actual next order: every
-- customer with 2 or more purchase days by the cut (as-of date minus clv_holdout_days) gets the window
-- each rule would have given at the cut, from the purchases before it (model: the holdout check's fit,
-- clv.customer_scores.cal_days_to_next_purchase_*; own_history: the customer's own average interval).
-- Only windows that lie wholly inside the held-out days are scored, so every one of them could be seen
-- to hold the next order or not. One row per rule; used_this_run says which one customer_predictions
-- uses this run.

with summary as (

    select
        customer_key,
        cal_repeat_purchase_days + 1 as cal_purchase_days,
        first_purchase_date,
        cal_last_purchase_date,
        first_holdout_purchase_date
    from {{ ref('int_customer_btyd_summary') }}
    where cal_repeat_purchase_days >= 1

),

scores as (

    select customer_key, cal_days_to_next_purchase_p25, cal_days_to_next_purchase_p75
    from {{ ref('stg_clv__customer_scores') }}

),

cut as (

    select
        {{ as_of_date() }} as as_of_date,
        cast({{ dbt.dateadd('day', -1 * var('clv_holdout_days'), as_of_date()) }} as date) as cut_date

),

at_cut as (

    select
        summary.customer_key,
        summary.cal_last_purchase_date,
        summary.first_holdout_purchase_date,
        {{ dbt.datediff('summary.first_purchase_date', 'summary.cal_last_purchase_date', 'day') }}
        / cast(summary.cal_purchase_days - 1 as double) as avg_days_between_orders,
        scores.cal_days_to_next_purchase_p25,
        scores.cal_days_to_next_purchase_p75
    from summary
    left join scores on scores.customer_key = summary.customer_key

),

windows as (

    select
        'own_history' as source,
        first_holdout_purchase_date,
        {{ next_order_day(
            "'own_history'",
            'cal_last_purchase_date',
            'cast(null as double)',
            'avg_days_between_orders',
            0.5
        ) }}
            as window_start,
        {{ next_order_day(
            "'own_history'",
            'cal_last_purchase_date',
            'cast(null as double)',
            'avg_days_between_orders',
            1.5
        ) }}
            as window_end
    from at_cut

    union all

    select
        'model' as source,
        first_holdout_purchase_date,
        {{ next_order_day(
            "'model'",
            'cal_last_purchase_date',
            'cal_days_to_next_purchase_p25',
            'cast(null as double)',
            0
        ) }}
            as window_start,
        {{ next_order_day(
            "'model'",
            'cal_last_purchase_date',
            'cal_days_to_next_purchase_p75',
            'cast(null as double)',
            0
        ) }}
            as window_end
    from at_cut
    where cal_days_to_next_purchase_p25 is not null

),

scored as (

    select
        windows.source,
        count(*) as repeat_customers_at_cut,
        count(case when windows.window_start > cut.cut_date and windows.window_end <= cut.as_of_date then 1 end)
            as customers_evaluated,
        count(
            case
                when
                    windows.window_start > cut.cut_date and windows.window_end <= cut.as_of_date
                    and windows.first_holdout_purchase_date between windows.window_start and windows.window_end
                    then 1
            end
        ) as next_order_in_window,
        count(
            case
                when
                    windows.window_start > cut.cut_date and windows.window_end <= cut.as_of_date
                    and windows.first_holdout_purchase_date is not null
                    then 1
            end
        ) as ordered_in_holdout
    from windows
    cross join cut
    group by windows.source

),

rules as (

    select 'model' as source
    union all
    select 'own_history' as source

),

used as (

    -- the model wherever its predictions are published (a customer it did not score falls back alone)
    select
        case
            when count(case when expected_next_order_source = 'model' then 1 end) > 0 then 'model'
            when count(case when expected_next_order_source = 'own_history' then 1 end) > 0 then 'own_history'
        end as source
    from {{ ref('customer_predictions') }}

),

final as (

    select
        rules.source,
        cut.as_of_date,
        cut.cut_date,
        {{ var('clv_holdout_days') }} as holdout_days,
        coalesce(rules.source = used.source, false) as used_this_run,
        coalesce(scored.repeat_customers_at_cut, 0) as repeat_customers_at_cut,
        coalesce(scored.customers_evaluated, 0) as customers_evaluated,
        coalesce(scored.next_order_in_window, 0) as next_order_in_window,
        coalesce(scored.ordered_in_holdout, 0) as ordered_in_holdout,
        cast(scored.next_order_in_window as double) / nullif(scored.customers_evaluated, 0) as share_in_window
    from rules
    cross join cut
    left join used on 1 = 1
    left join scored on scored.source = rules.source

)

select * from final
