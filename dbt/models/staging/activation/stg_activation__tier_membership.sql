with source as (

    select * from {{ source('activation', 'tier_membership') }}

),

final as (

    select
        as_of_date,
        tier,
        customer_key,
        holdout_group,
        run_id
    from source

)

select * from final
