-- Identifiers that never link records, so that no placeholder merges people: the listed ones (the
-- shipped blocklist and <data dir>/identity/blocklist.yml) and the ones shared by more than
-- PIPELINE_IDENTITY_MAX_SHARED otherwise separate customers.  The value itself is never published:
-- only its SHA-256.

with blocked as (

    select * from {{ source('identity', 'blocked_identifiers') }}

),

final as (

    select
        {{ sha256_hex('normalised_value') }} as identifier_sha256,
        id_type,
        reason as block_reason,
        customers_touched,
        records,
        sources,
        first_seen_at,
        last_seen_seq as last_seen_change_seq
    from blocked

)

select * from final
