-- How customer keys changed across identity resolutions: merges, splits, re-keys and dissolved keys,
-- with the previous keys and the identifier that caused the change (its SHA-256 only).

with key_events as (

    select * from {{ source('identity', 'key_events') }}

),

final as (

    select
        change_seq,
        resolved_at,
        event,
        customer_key,
        previous_keys,
        cause_id_type,
        case when cause_value is not null then {{ sha256_hex('cause_value') }} end as cause_identifier_sha256,
        cause
    from key_events

)

select * from final
