-- The CLV fits, one row per run of the CLV model (Python asset clv_model): parameters,
-- log-likelihoods, fit time, the holdout comparison and the status with its reasons. The history
-- of fits is kept in the source (clv.model_fits, appended by every run), so this mart is rebuilt
-- whole from it.

with fits as (

    select * from {{ ref('stg_clv__model_fits') }}

),

final as (

    select
        run_id,
        as_of_date,
        status,
        message,
        customers,
        repeat_customers,
        bgnbd_r,
        bgnbd_alpha,
        bgnbd_a,
        bgnbd_b,
        bgnbd_log_likelihood,
        gg_p,
        gg_q,
        gg_gamma,
        gg_log_likelihood,
        fit_seconds,
        holdout_relative_error,
        holdout_by_group,
        unreliable_reasons,
        diagnostics
    from fits

)

select * from final
