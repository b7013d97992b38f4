-- The predictions a CRM team expects per customer (after Klaviyo's predictive analytics): predicted
-- orders, predicted CLV, churn risk, average days between orders, expected next order date. The
-- model's numbers are the raw outputs of the latest CLV fit (Python asset clv_model); this model
-- decides which of them are published. A field is empty, with its reason beside it, where the data
-- cannot support it: the fit is unreliable or missing, the base fails a minimum-data rule (Klaviyo's
-- requirements, https://help.klaviyo.com/hc/en-us/articles/360020919731: enough customers with an
-- order, 180 days of history, orders in the last 30 days, some customers with 3+ orders), or the
-- customer has a single purchase day. A tier rule over an empty field selects nobody, not noise.

with summary as (

    select
        customer_key,
        repeat_purchase_days + 1 as purchase_days,
        first_purchase_date,
        last_purchase_date
    from {{ ref('int_customer_btyd_summary') }}

),

scores as (

    select * from {{ ref('stg_clv__customer_scores') }}

),

value_tiers as (

    select customer_key, predicted_value_tier from {{ ref('customer_clv') }}

),

margins as (

    select customer_key, historical_ltv, gross_margin_rate, margin_cost_coverage from {{ ref('customer_ltv') }}

),

fits as (

    select run_id, as_of_date, status, message from {{ ref('stg_clv__model_fits') }}

),

-- the fit the predictions come from (the scores hold the latest fit only), or, with no predictions,
-- the as-of date's fit that found too little data
score_runs as (

    select run_id from scores
    group by run_id

),

run_fit as (

    select fits.status, fits.message
    from fits
    inner join score_runs on score_runs.run_id = fits.run_id

    union all

    select 'insufficient_data' as status, max(fits.message) as message
    from fits
    where
        fits.status = 'insufficient_data'
        and fits.as_of_date = {{ as_of_date() }}
        and (select count(*) from score_runs) = 0
    having count(*) > 0

),

population as (

    select
        count(*) as customers,
        sum(case when purchase_days >= 3 then 1 else 0 end) as customers_with_3_purchase_days,
        {{ dbt.datediff('min(first_purchase_date)', as_of_date(), 'day') }} as history_days,
        {{ dbt.datediff('max(last_purchase_date)', as_of_date(), 'day') }} as days_since_last_order
    from summary

),

-- why the model's predictions are not published this run (NULL: they are); the first rule that fails
gate as (

    select
        run_fit.status as model_status,
        case
            when run_fit.status is null then 'no CLV fit for this as-of date'
            when run_fit.status = 'insufficient_data' then 'too little data to fit the CLV model: ' || run_fit.message
            when run_fit.status = 'unreliable'
                then 'the CLV fit is unreliable (clv_model_fits.unreliable_reasons says why)'
            when population.customers < {{ var('prediction_min_customers') }}
                then 'fewer than {{ var("prediction_min_customers") }} customers with a purchase ('
                    || cast(population.customers as {{ dbt.type_string() }}) || ')'
            when population.history_days < {{ var('prediction_min_history_days') }}
                then 'less than {{ var("prediction_min_history_days") }} days of order history ('
                    || cast(population.history_days as {{ dbt.type_string() }}) || ')'
            when population.days_since_last_order > {{ var('prediction_max_days_since_last_order') }}
                then 'no order in the last {{ var("prediction_max_days_since_last_order") }} days (the last '
                    || cast(population.days_since_last_order as {{ dbt.type_string() }}) || ' days ago)'
            when
                population.customers_with_3_purchase_days
                < {{ var('prediction_min_customers_with_3_purchase_days') }}
                then 'fewer than {{ var("prediction_min_customers_with_3_purchase_days") }} customers with 3 or more '
                    || 'purchase days ('
                    || cast(population.customers_with_3_purchase_days as {{ dbt.type_string() }}) || ')'
        end as model_empty_reason
    from population
    left join run_fit on 1 = 1

),

joined as (

    select
        summary.customer_key,
        summary.purchase_days,
        summary.first_purchase_date,
        summary.last_purchase_date,
        gate.model_status,
        case
            when gate.model_empty_reason is not null then gate.model_empty_reason
            when scores.customer_key is null then 'not scored by the latest CLV fit'
        end as predictions_empty_reason,
        scores.expected_purchases_90d,
        scores.expected_purchases_365d,
        scores.p_alive,
        scores.predicted_clv_12m,
        value_tiers.predicted_value_tier,
        margins.historical_ltv,
        margins.gross_margin_rate,
        margins.margin_cost_coverage,
        scores.days_to_next_purchase_p25,
        scores.days_to_next_purchase_p50,
        scores.days_to_next_purchase_p75,
        case
            when summary.purchase_days >= 2
                then {{ dbt.datediff('summary.first_purchase_date', 'summary.last_purchase_date', 'day') }}
                    / cast(summary.purchase_days - 1 as double)
        end as avg_days_between_orders
    from summary
    cross join gate
    left join scores on scores.customer_key = summary.customer_key
    left join value_tiers on value_tiers.customer_key = summary.customer_key
    left join margins on margins.customer_key = summary.customer_key

),

-- where the expected next order date comes from: the model where its predictions are published, the
-- customer's own intervals between purchase days otherwise; nothing for a single purchase day
sourced as (

    select
        *,
        case
            when purchase_days < 2 then null
            when predictions_empty_reason is null then 'model'
            else 'own_history'
        end as expected_next_order_source
    from joined

),

final as (

    select
        customer_key,
        {{ as_of_date() }} as as_of_date,
        purchase_days,
        first_purchase_date,
        last_purchase_date,
        model_status,
        case when predictions_empty_reason is null then expected_purchases_90d end as predicted_orders_90d,
        case when predictions_empty_reason is null then expected_purchases_365d end as predicted_orders_365d,
        cast(case when predictions_empty_reason is null then predicted_clv_12m end as decimal(18, 2))
            as predicted_clv_12m,
        -- in margin: the predicted revenue at the customer's own historical margin share
        cast(
            case
                when predictions_empty_reason is null and historical_ltv > 0 then predicted_clv_12m * gross_margin_rate
            end as decimal(18, 2)
        ) as predicted_clv_margin_12m,
        margin_cost_coverage,
        case
            when predictions_empty_reason is not null then predictions_empty_reason
            when historical_ltv is null or historical_ltv <= 0
                then 'no positive historical net revenue to take a margin share from'
        end as predicted_clv_margin_empty_reason,
        case when predictions_empty_reason is null then predicted_value_tier end as predicted_value_tier,
        case when predictions_empty_reason is null then p_alive end as p_alive,
        predictions_empty_reason,
        -- BG/NBD's P(alive) is 1 for every one-time buyer: no churn risk is read from it
        case when predictions_empty_reason is null and purchase_days >= 2 then 1 - p_alive end as churn_risk,
        case
            when predictions_empty_reason is not null or purchase_days < 2 then null
            when 1 - p_alive < 1.0 / 3 then 'low'
            when 1 - p_alive < 2.0 / 3 then 'medium'
            else 'high'
        end as churn_risk_band,
        case
            when predictions_empty_reason is not null then predictions_empty_reason
            when purchase_days < 2
                then 'one purchase day: the model cannot tell whether a one-time buyer has stopped buying'
        end as churn_risk_empty_reason,
        avg_days_between_orders,
        {{ next_order_day(
            'expected_next_order_source',
            'last_purchase_date',
            'days_to_next_purchase_p50',
            'avg_days_between_orders',
            1
        ) }}
            as expected_next_order_date,
        {{ next_order_day(
            'expected_next_order_source',
            'last_purchase_date',
            'days_to_next_purchase_p25',
            'avg_days_between_orders',
            0.5
        ) }}
            as next_order_window_start,
        {{ next_order_day(
            'expected_next_order_source',
            'last_purchase_date',
            'days_to_next_purchase_p75',
            'avg_days_between_orders',
            1.5
        ) }}
            as next_order_window_end,
        expected_next_order_source,
        case
            when purchase_days < 2 then 'one purchase day: no interval between orders to time the next one from'
        end as next_order_empty_reason
    from sourced

)

select * from final
