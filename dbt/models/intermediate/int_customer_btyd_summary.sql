-- The per-customer summary the BG/NBD and Gamma-Gamma models are fitted on ("buy till you die"),
-- in weeks, with the conventions of Fader, Hardie & Lee (2005): purchases on one day count as one
-- purchase worth the day's total.
--   repeat_purchase_days  x: purchase days after the first
--   btyd_recency_weeks    t_x: weeks from the first to the last purchase (NOT RFM recency, which
--                         counts days from the last purchase to the as-of date)
--   btyd_age_weeks        T: weeks from the first purchase to the as-of date
--   repeat_mean_purchase_value  m_x: mean purchase value of the repeat purchase days (the first is
--                         left out).  Purchases only, before later cancellations and returns: the
--                         Gamma-Gamma model is a model of spend per transaction, which must be
--                         positive; it is not net revenue (see dim_customers.net_revenue for that).
-- The cal_* columns are the same summary at calibration end (as-of minus clv_holdout_days), and
-- holdout_purchase_days counts the purchase days after it, for the calibration/holdout check
-- (first_holdout_purchase_date: the first of them, for the next-order-date check, next_order_holdout).

with purchase_days as (

    select customer_key, order_date, sum(net_revenue) as day_value
    from {{ ref('int_customer_purchases') }}
    group by customer_key, order_date

),

calibration_end as (

    select {{ dbt.dateadd('day', -1 * var('clv_holdout_days'), as_of_date()) }} as cal_end

),

final as (

    select
        purchase_days.customer_key,
        count(*) - 1 as repeat_purchase_days,
        {{ dbt.datediff('min(order_date)', 'max(order_date)', 'day') }} / cast(7 as double) as btyd_recency_weeks,
        {{ dbt.datediff('min(order_date)', as_of_date(), 'day') }} / cast(7 as double) as btyd_age_weeks,
        -- the days after the first: every day's value but the first day's (an aggregate, no numbering sort)
        cast(
            sum(purchase_days.day_value)
            - {{ value_at_min('day_value', 'order_date') }} as double
        ) / nullif(count(*) - 1, 0) as repeat_mean_purchase_value,
        -- calibration cut
        count(case when purchase_days.order_date <= calibration_end.cal_end then 1 end) - 1 as cal_repeat_purchase_days,
        {{ dbt.datediff(
            'min(order_date)',
            'max(case when order_date <= calibration_end.cal_end then order_date end)',
            'day'
        ) }} / cast(7 as double) as cal_btyd_recency_weeks,
        {{ dbt.datediff('min(order_date)', 'calibration_end.cal_end', 'day') }} / cast(7 as double)
            as cal_btyd_age_weeks,
        count(case when purchase_days.order_date > calibration_end.cal_end then 1 end) as holdout_purchase_days,
        min(purchase_days.order_date) as first_purchase_date,
        max(purchase_days.order_date) as last_purchase_date,
        max(case when purchase_days.order_date <= calibration_end.cal_end then purchase_days.order_date end)
            as cal_last_purchase_date,
        min(case when purchase_days.order_date > calibration_end.cal_end then purchase_days.order_date end)
            as first_holdout_purchase_date
    from purchase_days
    cross join calibration_end
    group by purchase_days.customer_key, calibration_end.cal_end

)

select * from final
