-- Which identifiers formed each customer_key, and from which source.  Contact identifiers are
-- shown masked with their SHA-256; ids (Square customer, member) as they are.

with identifiers as (

    select * from {{ ref('stg_identity__identifiers') }}
    where customer_key is not null

),

grouped as (

    select
        customer_key,
        id_type,
        normalised_value,
        identifier_source,
        count(*) as raw_forms
    from identifiers
    group by customer_key, id_type, normalised_value, identifier_source

),

final as (

    select
        customer_key,
        id_type,
        case id_type
            when 'email' then {{ mask_email('normalised_value') }}
            when 'phone' then {{ mask_phone('normalised_value') }}
            else normalised_value
        end as identifier_display,
        {{ sha256_hex('normalised_value') }} as identifier_sha256,
        identifier_source,
        raw_forms
    from grouped

)

select * from final
