with source as (

    select * from {{ source('clv', 'model_fits') }}

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
    from source

)

select * from final
