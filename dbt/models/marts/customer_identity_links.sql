-- Which identifiers linked which source records into each customer_key: one row per source record
-- (an order, a Square customer, a roster member) and identifier it carries.  links = false marks a
-- blocked identifier (a placeholder or one shared by too many people): it is shown, but it joined
-- nobody; the record's customer_key then comes from its other identifiers (NULL: anonymous).

{#- (record source, identifier source, id type, column): the identifiers a record carries -#}
{%- set order_lookups = [
    ['shopify', 'email', 'email_raw'],
    ['shopify', 'phone', 'phone_raw'],
    ['shopify', 'phone', 'billing_phone_raw'],
    ['shopify', 'phone', 'shipping_phone_raw'],
    ['square_items', 'square_customer_id', 'square_customer_id'],
    ['square_items', 'member_id', 'member_id'],
    ['generic', 'email', 'email_raw'],
    ['generic', 'phone', 'phone_raw'],
    ['generic', 'source_customer_id', 'source_customer_ref'],
] %}
{%- set profile_lookups = [
    ['members', 'members', 'member_id', 'member_id'],
    ['members', 'members', 'email', 'email_raw'],
    ['members', 'members', 'phone', 'phone_raw'],
    ['square_customers', 'square_customers', 'square_customer_id', 'square_customer_id'],
    ['square_customers', 'square_customers', 'member_id', 'reference_id'],
    ['square_customers', 'square_customers', 'email', 'email_raw'],
    ['square_customers', 'square_customers', 'phone', 'phone_raw'],
] %}

with identifiers as (

    select * from {{ ref('stg_identity__identifiers') }}
    where normalised_value is not null

),

orders as (

    select * from {{ ref('int_orders_identified') }}

),

members as (

    select * from {{ ref('stg_members__members') }}

),

square_customers as (

    select * from {{ ref('stg_square__customers') }}

),

carried as (
{%- for id_source, id_type, column in order_lookups %}
    select customer_key, source as record_source, source_order_id as record_id,
        '{{ id_source }}' as identifier_source, '{{ id_type }}' as id_type, {{ column }} as raw_value
    from orders
    where {{ column }} is not null
        {%- if id_source == 'shopify' %} and source = 'shopify'
        {%- elif id_source == 'square_items' %} and source = 'square'
        {%- else %} and source not in ('shopify', 'square'){% endif %}
    union all
{%- endfor %}
{%- for record_source, id_source, id_type, column in profile_lookups %}
    select cast(null as {{ dbt.type_string() }}) as customer_key, '{{ record_source }}' as record_source,
        {{ 'member_id' if record_source == 'members' else 'square_customer_id' }} as record_id,
        '{{ id_source }}' as identifier_source, '{{ id_type }}' as id_type, {{ column }} as raw_value
    from {{ record_source }}
    where {{ column }} is not null
    {%- if not loop.last %}
    union all
    {%- endif %}
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
    where record_source in ('members', 'square_customers')
    group by record_source, record_id

),

final as (

    select distinct
        coalesce(resolved.order_customer_key, record_keys.customer_key) as customer_key,
        resolved.record_source,
        -- a roster member's or Square customer's id is shown as customer_identity_map shows ids: as it
        -- is, unless it is an e-mail or phone-shaped (a scheme numbering members by e-mail), then masked
        case when resolved.record_source in ('members', 'square_customers')
            then {{ mask_identifier("'member_id'", 'resolved.record_id') }}
            else resolved.record_id end as record_id,
        resolved.id_type,
        {{ sha256_hex('resolved.normalised_value') }} as identifier_sha256,
        resolved.identifier_customer_key is not null as links
    from resolved
    left join record_keys
        on record_keys.record_source = resolved.record_source and record_keys.record_id = resolved.record_id

)

select * from final
