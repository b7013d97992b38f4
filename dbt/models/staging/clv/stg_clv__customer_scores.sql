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
        predicted_clv_12m
    from source

)

select * from final
