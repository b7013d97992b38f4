with source as (

    select * from {{ source('clv', 'customer_scores') }}

),

final as (

    select
        customer_key,
        run_id,
        p_alive,
        expected_purchases_90d,
        expected_purchases_365d,
        expected_spend_per_purchase,
        predicted_clv_12m,
        days_to_next_purchase_p25,
        days_to_next_purchase_p50,
        days_to_next_purchase_p75,
        cal_days_to_next_purchase_p25,
        cal_days_to_next_purchase_p75
    from source

)

select * from final
