with source as (

    select * from {{ source('identity', 'identifiers') }}

),

final as (

    select
        source as identifier_source,
        id_type,
        raw_value,
        normalised_value,
        customer_key
    from source

)

select * from final
