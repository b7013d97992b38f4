with source as (

    select * from {{ source('activation', 'tier_membership_runs') }}

),

final as (

    select
        as_of_date,
        run_id,
        recorded_at
    from source

)

select * from final
