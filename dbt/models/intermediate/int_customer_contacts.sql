{{ config(
    materialized=incremental_if_supported(),
    unique_key='customer_key',
    incremental_strategy='delete+insert',
    pre_hook="{{ delete_all_when_identity_consumer_rebuilds() }}",
    post_hook="{{ delete_contacts_of_gone_customers() }}",
) }}
-- Normalised contact points per customer, their hashes, and marketing consent.
-- Stays in the working warehouse (intermediate schema): the serving warehouse gets masked
-- values only.  Consent: the most recent Shopify order's "Accepts Marketing" when the customer
-- has ordered online; otherwise the membership roster; otherwise Square's e-mail subscription
-- (consent_priority in the identifier registry, var identifier_registry).
--
-- Incremental (on DuckDB): nothing here depends on the as-of date, so a run rebuilds (by customer_key)
-- only the customers something changed for since the last build: identifiers new or re-keyed
-- (identity.identifier_changes), Shopify orders rebuilt (int_orders_identified.identity_change_seq),
-- roster or Square customer rows from files loaded since (newest_file_id).  The post-hook removes the
-- keys no identifier carries any more (merged people).  Everything is rebuilt after a full identity
-- resolution (macro identity_consumer_rebuilds).  Watermark columns: identity_change_seq (the identity
-- resolution the row was built under) and newest_file_id (the newest export file loaded by then).

{%- set rebuild_all = identity_consumer_rebuilds() %}
{#- roster and Square customer rows, and where consent is taken from: the identifier registry
    (macros/identifiers.sql) -#}
{%- set profile_sources = identifier_sources('profiles') %}
{%- set consent_order_sources = [] %}
{%- for entry in consent_sources() if entry['records'] == 'orders' %}
{%- do consent_order_sources.append("'" ~ entry['order_source'] ~ "'") %}
{%- endfor %}

with all_identifiers as (

    select * from {{ ref('stg_identity__identifiers') }}
    where customer_key is not null

),

all_orders as (

    -- the orders consent is taken from
    select * from {{ ref('int_orders_identified') }}
    where customer_key is not null and source in ({{ consent_order_sources | join(', ') }})

),
{%- for entry in profile_sources %}

{{ entry['source'] }} as (

    select * from {{ ref(entry['model']) }}

),
{%- endfor %}

resolutions as (

    select * from {{ source('identity', 'resolution_runs') }}

),

ledger as (

    select * from {{ source('pipeline', 'load_ledger') }}

),

linked_rows as (

    -- roster and Square customer rows under the customer_key of their id: consent, and the file they came in
    select
        all_identifiers.customer_key, source_rows.identifier_source, source_rows.file_id,
        source_rows.accepts_marketing
    from (
        {%- for entry in profile_sources %}
        select
            '{{ entry['source'] }}' as identifier_source, '{{ record_id_type(entry) }}' as id_type,
            {{ entry['record_id'] }} as raw_value, file_id, accepts_marketing
        from {{ entry['source'] }}
        {%- if not loop.last %}
        union all
        {%- endif %}
        {%- endfor %}
    ) as source_rows
    inner join all_identifiers
        on all_identifiers.identifier_source = source_rows.identifier_source
        and all_identifiers.id_type = source_rows.id_type and all_identifiers.raw_value = source_rows.raw_value

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

    -- orders consent is taken from (Shopify's) new or rebuilt since: a rebuilt order carries the newest
    -- resolution
    select customer_key
    from all_orders
    where identity_change_seq > {{ seq_built }}

    union

    -- roster and Square customer rows from files loaded since
    select customer_key
    from linked_rows
    where file_id > {{ file_built }}

),
{%- endif %}

identifiers as (

    -- the identifiers of the customers this build writes (every customer in a full build)
    select * from all_identifiers
    {%- if not rebuild_all %}
    where customer_key in (select customer_key from changed_customers)
    {%- endif %}

),

orders as (

    select * from all_orders
    {%- if not rebuild_all %}
    where customer_key in (select customer_key from changed_customers)
    {%- endif %}

),

emails as (

    select customer_key, min(normalised_value) as email
    from identifiers
    where id_type = 'email'
    group by customer_key

),

phones as (

    select customer_key, min(normalised_value) as phone
    from identifiers
    where id_type = 'phone'
    group by customer_key

),

online_consent_ranked as (

    select
        customer_key,
        source,
        accepts_marketing,
        row_number() over (partition by customer_key, source order by ordered_at desc, order_key desc)
            as recency_rank
    from orders
    where accepts_marketing is not null

),

source_consent as (

    select customer_key, identifier_source, {{ any_true('accepts_marketing') }} as accepts_marketing
    from linked_rows
    where accepts_marketing is not null
        {%- if not rebuild_all %}
        and customer_key in (select customer_key from changed_customers)
        {%- endif %}
    group by customer_key, identifier_source

),

customers as (

    select distinct customer_key from identifiers

),

final as (

    select
        customers.customer_key,
        emails.email,
        phones.phone,
        {{ sha256_hex('emails.email') }} as email_sha256,
        {{ sha256_hex('phones.phone') }} as phone_sha256,
        -- the first source with a say, in the registry's consent_priority order
        coalesce(
            {%- for entry in consent_sources() %}
            consent_{{ loop.index }}.accepts_marketing,
            {%- endfor %}
            false
        ) as accepts_marketing,
        (select coalesce(max(change_seq), 0) from resolutions) as identity_change_seq,
        (select coalesce(max(file_id), 0) from ledger) as newest_file_id
    from customers
    left join emails on emails.customer_key = customers.customer_key
    left join phones on phones.customer_key = customers.customer_key
    {%- for entry in consent_sources() %}
    {%- set alias = 'consent_' ~ loop.index %}
    {%- if entry['records'] == 'orders' %}
    left join online_consent_ranked as {{ alias }}
        on {{ alias }}.customer_key = customers.customer_key and {{ alias }}.source = '{{ entry['order_source'] }}'
        and {{ alias }}.recency_rank = 1
    {%- else %}
    left join source_consent as {{ alias }}
        on {{ alias }}.customer_key = customers.customer_key and {{ alias }}.identifier_source = '{{ entry['source'] }}'
    {%- endif %}
    {%- endfor %}

)

select * from final
