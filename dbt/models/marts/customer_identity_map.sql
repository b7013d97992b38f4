{{ config(
    materialized=incremental_if_supported(),
    unique_key=['identifier_source', 'id_type', 'identifier_sha256'],
    incremental_strategy='delete+insert',
    pre_hook="{{ delete_all_when_identity_consumer_rebuilds() }}",
) }}
-- Which identifiers formed each customer_key, and from which source.  Contact identifiers are
-- shown masked with their SHA-256; ids (Square customer, member) as they are, unless an id is an
-- e-mail or phone-shaped (then masked like one: macro mask_identifier).
--
-- Incremental (on DuckDB): a run rebuilds only the (source, type, identifier) rows of identifiers that
-- are new or re-keyed since the last build (identity.identifier_changes), replacing them by that key
-- (an identifier belongs to one person, so a re-keyed one replaces its old row).  Everything is rebuilt
-- after a full identity resolution (normalised values may have changed).  Watermark column:
-- identity_change_seq (the identity resolution the row was built under).

{%- set rebuild_all = identity_consumer_rebuilds() %}

with identifiers as (

    select * from {{ ref('stg_identity__identifiers') }}
    where customer_key is not null

),

resolutions as (

    select * from {{ source('identity', 'resolution_runs') }}

),
{%- if not rebuild_all %}

changed as (

    -- the identifiers (normalised) of the raw values logged since the last build, in their source
    select distinct identifiers.identifier_source, identifiers.id_type, identifiers.normalised_value
    from {{ source('identity', 'identifier_changes') }} as changes
    inner join identifiers
        on identifiers.identifier_source = changes.source and identifiers.id_type = changes.id_type
        and identifiers.raw_value = changes.raw_value
    where changes.change_seq > {{ max_built('identity_change_seq') }}

),

to_build as (

    select identifiers.*
    from identifiers
    inner join changed
        on changed.identifier_source = identifiers.identifier_source and changed.id_type = identifiers.id_type
        and changed.normalised_value = identifiers.normalised_value

),
{%- else %}

to_build as (

    select * from identifiers

),
{%- endif %}

grouped as (

    select
        customer_key,
        id_type,
        normalised_value,
        identifier_source,
        count(*) as raw_forms
    from to_build
    group by customer_key, id_type, normalised_value, identifier_source

),

final as (

    select
        customer_key,
        id_type,
        {{ mask_identifier('id_type', 'normalised_value') }} as identifier_display,
        {{ sha256_hex('normalised_value') }} as identifier_sha256,
        identifier_source,
        raw_forms,
        (select coalesce(max(change_seq), 0) from resolutions) as identity_change_seq,
        {{ build_started_at() }} as built_at
    from grouped

)

select * from final
