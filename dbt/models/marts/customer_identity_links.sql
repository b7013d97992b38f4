-- Which identifiers linked which source records into each customer_key: one row per source record
-- (an order, a Square customer, a roster member) and identifier it carries.  links = false marks a
-- blocked identifier (a placeholder or one shared by too many people): it is shown, but it joined
-- nobody; the record's customer_key then comes from its other identifiers (NULL: anonymous).

{#- the identifiers a record carries: the identifier registry (macros/identifiers.sql) -#}
{%- set profile_sources = identifier_sources('profiles') %}
{%- set profile_source_names = [] %}
{%- for entry in profile_sources %}{% do profile_source_names.append("'" ~ entry['source'] ~ "'") %}{% endfor %}

with identifiers as (

    select * from {{ ref('stg_identity__identifiers') }}
    where normalised_value is not null

),

orders as (

    select * from {{ ref('int_orders_identified') }}

),

{%- for entry in profile_sources %}

{{ entry['source'] }} as (

    select * from {{ ref(entry['model']) }}

),
{%- endfor %}

carried as (
    {%- for identifier in order_identifiers() %}
    select
        customer_key, source as record_source, source_order_id as record_id,
        '{{ identifier['source'] }}' as identifier_source, '{{ identifier['id_type'] }}' as id_type,
        {{ identifier['column'] }} as raw_value
    from orders
    where {{ identifier['column'] }} is not null and {{ is_order_source(identifier['order_source']) }}
    union all
    {%- endfor %}
    {%- for entry in profile_sources %}
    {%- set outer_loop = loop %}
    {%- for identifier in entry['identifiers'] %}
    select
        cast(null as {{ dbt.type_string() }}) as customer_key, '{{ entry['source'] }}' as record_source,
        {{ entry['record_id'] }} as record_id,
        '{{ entry['source'] }}' as identifier_source, '{{ identifier['id_type'] }}' as id_type,
        {{ identifier['column'] }} as raw_value
    from {{ entry['source'] }}
    where {{ identifier['column'] }} is not null
    {%- if not (outer_loop.last and loop.last) %}
    union all
    {%- endif %}
    {%- endfor %}
    {%- endfor %}

),

resolved as (

    select
        carried.record_source,
        carried.record_id,
        carried.customer_key as order_customer_key,
        identifiers.id_type,
        identifiers.normalised_value,
        identifiers.customer_key as identifier_customer_key
    from carried
    inner join identifiers
        on identifiers.identifier_source = carried.identifier_source and identifiers.id_type = carried.id_type
        and identifiers.raw_value = carried.raw_value

),

record_keys as (

    -- a roster member or Square customer belongs to the key of any identifier it carries that links
    select record_source, record_id, max(identifier_customer_key) as customer_key
    from resolved
    where record_source in ({{ profile_source_names | join(', ') }})
    group by record_source, record_id

),

final as (

    select distinct
        coalesce(resolved.order_customer_key, record_keys.customer_key) as customer_key,
        resolved.record_source,
        -- a roster member's or Square customer's id is shown as customer_identity_map shows ids: as it
        -- is, unless it is an e-mail or phone-shaped (a scheme numbering members by e-mail), then masked
        case when resolved.record_source in ({{ profile_source_names | join(', ') }})
                then {{ mask_identifier("'member_id'", 'resolved.record_id') }}
            else resolved.record_id
        end as record_id,
        resolved.id_type,
        {{ sha256_hex('resolved.normalised_value') }} as identifier_sha256,
        resolved.identifier_customer_key is not null as links
    from resolved
    left join record_keys
        on record_keys.record_source = resolved.record_source and record_keys.record_id = resolved.record_id

)

select * from final
