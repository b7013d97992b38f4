-- Predicted CLV per purchasing customer: the predictions of the latest fit (Python asset clv_model,
-- raw outputs in the clv schema), the fit's as-of date and status, and the predicted-value tier.
-- An unreliable fit keeps its predictions here for inspection, flagged by model_status, but ranks
-- nobody into a tier: a ranking by noise would read as a finding (docs/DECISIONLOG.md).

with scores as (

    select * from {{ ref('stg_clv__customer_scores') }}

),

fits as (

    select run_id, as_of_date, status from {{ ref('stg_clv__model_fits') }}

),

ranked as (

    select
        scores.*,
        -- over the published (cent) values: customers equal to the cent share a rank
        percent_rank() over (order by scores.predicted_clv_12m desc) as value_rank
    from scores

),

final as (

    select
        ranked.customer_key,
        fits.as_of_date,
        ranked.p_alive,
        ranked.expected_purchases_90d,
        ranked.expected_purchases_365d,
        ranked.expected_spend_per_purchase,
        cast(ranked.predicted_clv_12m as decimal(18, 2)) as predicted_clv_12m,
        -- top 20% of predicted CLV high, the next 30% mid, the rest low
        case
            when fits.status = 'unreliable' then null
            when ranked.value_rank < 0.2 then 'high'
            when ranked.value_rank < 0.5 then 'mid'
            else 'low'
        end as predicted_value_tier,
        fits.status as model_status
    from ranked
    inner join fits on fits.run_id = ranked.run_id

)

select * from final
