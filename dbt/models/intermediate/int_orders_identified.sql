{{ config(
    materialized=incremental_if_supported(),
    unique_key='order_key',
    incremental_strategy='delete+insert',
) }}
-- Orders from every channel with the resolved customer_key (NULL = anonymous).
-- Every identifier of one order resolves to the same person, so the first match is enough.
--
-- Incremental (on DuckDB): a run rebuilds only the orders that changed since the last build: new or
-- re-rolled orders (newest_file_id above the last build's), orders carrying an identifier whose
-- customer_key changed (identity.identifier_changes: people merged or re-keyed), and every order when
-- new exchange rates arrived or identity had no previous resolution to compare with (full_change).
-- The watermark columns newest_file_id, identity_change_seq and rates_file_id record what a build saw.

{#- every identifier an order may carry (the identifier registry, macros/identifiers.sql), each with
    the alias of its lookup -#}
{%- set lookups = [] %}
{%- for identifier in order_identifiers() %}
{%- do lookups.append(['by_' ~ identifier['source'] ~ '_' ~ identifier['column'], identifier['source'],
    identifier['id_type'], identifier['column']]) %}
{%- endfor %}

{#- the order columns every channel's roll-up has; money is stored as DECIMAL(18, 4) (generic exports
    carry 4 decimals): a union of DECIMAL(18, 2) and (18, 4) would widen to DECIMAL(20, 4), which DuckDB
    stores as 128-bit integers that are ~10x slower to read back in fct_orders -#}
{%- set order_columns = ['source', 'source_order_id', 'channel', 'store_location', 'ordered_at', 'financial_status',
    'is_cancelled', 'currency', 'gross_revenue', 'discounts', 'refunds', 'email_raw', 'phone_raw',
    'billing_phone_raw', 'shipping_phone_raw', 'square_customer_id', 'member_id', 'accepts_marketing',
    'utm_source', 'line_count', 'units', 'newest_file_id'] %}
{%- set column_types = {'gross_revenue': 'decimal(18, 4)', 'discounts': 'decimal(18, 4)',
    'refunds': 'decimal(18, 4)', 'units': 'decimal(18, 3)'} %}

with shopify_orders as (

    select * from {{ ref('int_shopify__orders_rolled_up') }}

),

square_sales as (

    select * from {{ ref('int_square__sales_rolled_up') }}

),

generic_orders as (

    select * from {{ ref('int_generic__orders_rolled_up') }}

),

rates as (

    select * from {{ ref('stg_fx__rates') }}

),

identifiers as (

    select * from {{ ref('stg_identity__identifiers') }}
    where customer_key is not null

),

resolutions as (

    select * from {{ source('identity', 'resolution_runs') }}

),
{%- if is_incremental() %}

identifier_changes as (

    select * from {{ source('identity', 'identifier_changes') }}
    where change_seq > {{ max_built('identity_change_seq') }}

),
{%- endif %}

watermarks as (

    select
        (select coalesce(max(change_seq), 0) from resolutions) as identity_change_seq,
        (select coalesce(max(_file_id), 0) from {{ source('fx', 'exchange_rates') }}) as rates_file_id

),

unioned as (
    {% for relation in ['shopify_orders', 'square_sales', 'generic_orders'] %}
    select
        {%- for column in order_columns %}
        {% if column in column_types -%}
        cast({{ column }} as {{ column_types[column] }}) as {{ column }},
        {%- else -%}
        {{ column }},
        {%- endif %}
        {%- endfor %}
        {% if relation == 'generic_orders' -%}
        source_customer_ref
        {%- else -%}
        cast(null as {{ dbt.type_string() }}) as source_customer_ref
        {%- endif %}
    from {{ relation }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {% endfor %}
),

to_build as (

    select * from unioned
    {%- if is_incremental() %}
    where newest_file_id > {{ max_built('newest_file_id') }}
        or (select rates_file_id from watermarks) > {{ max_built('rates_file_id') }}
        or exists (
            select 1 from resolutions
            where change_seq > {{ max_built('identity_change_seq') }} and full_change
        )
    {%- for alias, id_source, id_type, column in lookups %}
    or {{ column }} in (
        select raw_value from identifier_changes
        where source = '{{ id_source }}' and id_type = '{{ id_type }}'
    )
    {%- endfor %}
    {%- endif %}

),

keyed as (

    select
        to_build.*,
        coalesce(
            {%- for alias, _, _, _ in lookups %}
            {{ alias }}.customer_key{{ "," if not loop.last }}
            {%- endfor %}
        ) as customer_key
    from to_build
    {%- for alias, id_source, id_type, column in lookups %}
left join identifiers as {{ alias }}
    on {{ alias }}.identifier_source = '{{ id_source }}' and {{ alias }}.id_type = '{{ id_type }}'
    and {{ alias }}.raw_value = to_build.{{ column }}
    {%- endfor %}

),

converted as (

    select
        keyed.*,
        case
            when (select count(*) from rates) = 0 then 1
            when keyed.currency = '{{ var("reporting_currency") }}' then 1
            else rate_on_day.rate
        end as fx_rate
    from keyed
    left join rates as rate_on_day
        on rate_on_day.currency = keyed.currency
        and {{ to_date('keyed.ordered_at') }} >= rate_on_day.valid_from
        and (rate_on_day.valid_to is null or {{ to_date('keyed.ordered_at') }} < rate_on_day.valid_to)

),

final as (

    select
        {{ dbt.concat(["source", "':'", "source_order_id"]) }} as order_key,
        converted.*,
        case
            when (select count(*) from rates) = 0 then converted.currency
            else '{{ var("reporting_currency") }}'
        end as reporting_currency,
        -- value counts unless the order was cancelled or voided
        not converted.is_cancelled as is_valid,
        cast(
            case
                when converted.is_cancelled then 0
                else converted.gross_revenue - converted.discounts - converted.refunds
            end as decimal(18, 4)
        ) as net_revenue_original,
        watermarks.identity_change_seq,
        watermarks.rates_file_id
    from converted
    cross join watermarks

)

select * from final
