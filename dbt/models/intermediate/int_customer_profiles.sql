{{ config(
    materialized=incremental_if_supported(),
    unique_key='customer_key',
    incremental_strategy='delete+insert',
    pre_hook="{{ delete_all_when_identity_consumer_rebuilds() }}",
    post_hook="{{ delete_contacts_of_gone_customers() }}",
) }}
-- One name and one postal address per customer, resolved from every record that gives one: Shopify
-- orders (int_shopify__order_profiles), the membership roster and the Square customer directory.
-- Personal data: stays in the working warehouse (intermediate schema), like int_customer_contacts;
-- whoever exposes it applies int_customer_contacts.accepts_marketing.
--
-- Resolution rule, per field group (the name: first_name, last_name; the address: city, region,
-- postal_code, country_code): the group is taken whole from one record, the most recent one that
-- fills any field of the group (a city never pairs with another record's postal code).  A record's
-- date: the order's time (Shopify), the last visit, else the first (Square directory), joined_on
-- (roster, which has no date of its own).  Ties: roster, then Square directory, then Shopify
-- (source_priority), then the highest record id.
-- Country: ISO 3166-1 alpha-2 from a code or an English name (seed iso3166_countries); a country
-- the seed does not know becomes NULL, its text kept in country_unrecognised (counted by a warning test).
--
-- Incremental (on DuckDB) as int_customer_contacts: a run rebuilds (by customer_key) only the
-- customers something changed for since the last build: identifiers new or re-keyed
-- (identity.identifier_changes), Shopify orders rebuilt under a newer resolution or from files loaded
-- since, roster or Square customer rows from files loaded since.  The post-hook removes keys no
-- identifier carries any more; everything is rebuilt after a full identity resolution.

{%- set rebuild_all = identity_consumer_rebuilds() %}
{%- set profile_sources = identifier_sources('profiles') %}
{#- ties between records of the same date: the roster (the member's own form) first -#}
{%- set source_priority = {'members': 1, 'square_customers': 2, 'shopify': 3} %}

with all_identifiers as (

    select * from {{ ref('stg_identity__identifiers') }}
    where customer_key is not null

),

resolutions as (

    select * from {{ source('identity', 'resolution_runs') }}

),

ledger as (

    select * from {{ source('pipeline', 'load_ledger') }}

),

shopify_orders as (

    select
        identified.customer_key,
        identified.identity_change_seq,
        order_profiles.*
    from {{ ref('int_shopify__order_profiles') }} as order_profiles
    inner join {{ ref('int_orders_identified') }} as identified
        on identified.source = 'shopify' and identified.source_order_id = order_profiles.order_name
    where identified.customer_key is not null

),

records as (

    select
        customer_key,
        'shopify' as source,
        {{ source_priority['shopify'] }} as source_priority,
        order_name as record_id,
        ordered_at as observed_at,
        first_name, last_name, city, region, postal_code, country_raw,
        newest_file_id as file_id
    from shopify_orders
    {%- for entry in profile_sources %}

    union all

    select
        all_identifiers.customer_key,
        '{{ entry['source'] }}' as source,
        {{ source_priority[entry['source']] }} as source_priority,
        profile_rows.{{ entry['record_id'] }} as record_id,
        cast(profile_rows.observed_on as timestamp) as observed_at,
        profile_rows.first_name, profile_rows.last_name, profile_rows.city, profile_rows.region,
        profile_rows.postal_code, profile_rows.country_raw,
        profile_rows.file_id
    from {{ ref(entry['model']) }} as profile_rows
    inner join all_identifiers
        on all_identifiers.identifier_source = '{{ entry['source'] }}'
        and all_identifiers.id_type = '{{ record_id_type(entry) }}'
        and all_identifiers.raw_value = profile_rows.{{ entry['record_id'] }}
    {%- endfor %}

),
{%- if not rebuild_all %}
{%- set seq_built = max_built('identity_change_seq') %}
{%- set file_built = max_built('newest_file_id') %}

changed_customers as (

    -- identifiers new or re-keyed since the last build, under their current key
    select all_identifiers.customer_key
    from {{ source('identity', 'identifier_changes') }} as changes
    inner join all_identifiers
        on all_identifiers.identifier_source = changes.source and all_identifiers.id_type = changes.id_type
        and all_identifiers.raw_value = changes.raw_value
    where changes.change_seq > {{ seq_built }}

    union

    -- Shopify orders re-keyed by a newer resolution
    select customer_key
    from shopify_orders
    where identity_change_seq > {{ seq_built }}

    union

    -- records of every source from files loaded since
    select customer_key
    from records
    where file_id > {{ file_built }}

),
{%- endif %}

candidate_records as (

    select * from records
    {%- if not rebuild_all %}
    where customer_key in (select customer_key from changed_customers)
    {%- endif %}

),

countries as (

    select * from {{ ref('iso3166_countries') }}

),

ranked as (

    select
        candidate_records.*,
        countries.country_code,
        (candidate_records.first_name is not null or candidate_records.last_name is not null) as has_name,
        (
            candidate_records.city is not null or candidate_records.region is not null
            or candidate_records.postal_code is not null or candidate_records.country_raw is not null
        ) as has_address
    from candidate_records
    left join countries on countries.spelling = upper(candidate_records.country_raw)

),

names as (

    select
        customer_key, first_name, last_name, source as name_source, observed_at as name_observed_at,
        row_number() over (
            partition by customer_key order by observed_at desc, source_priority asc, record_id desc
        ) as recency_rank
    from ranked
    where has_name

),

addresses as (

    select
        customer_key, city, region, postal_code, country_code,
        case when country_code is null then country_raw end as country_unrecognised,
        source as address_source, observed_at as address_observed_at,
        row_number() over (
            partition by customer_key order by observed_at desc, source_priority asc, record_id desc
        ) as recency_rank
    from ranked
    where has_address

),

customers as (

    select distinct customer_key
    from ranked
    where has_name or has_address

),

final as (

    select
        customers.customer_key,
        names.first_name,
        names.last_name,
        addresses.city,
        addresses.region,
        addresses.postal_code,
        addresses.country_code,
        addresses.country_unrecognised,
        names.name_source,
        addresses.address_source,
        names.name_observed_at,
        addresses.address_observed_at,
        greatest(names.name_observed_at, addresses.address_observed_at) as profile_observed_at,
        (select coalesce(max(change_seq), 0) from resolutions) as identity_change_seq,
        (select coalesce(max(file_id), 0) from ledger) as newest_file_id
    from customers
    left join names on names.customer_key = customers.customer_key and names.recency_rank = 1
    left join addresses on addresses.customer_key = customers.customer_key and addresses.recency_rank = 1

)

select * from final
