{#- Incremental order roll-ups (int_*__orders_rolled_up, int_square__sales_rolled_up). -#}

{#- Incremental where the adapter can delete+insert (DuckDB); a plain table elsewhere (e.g. Spark's
    default file formats have no delete/merge), so the same models build on both. -#}
{% macro incremental_if_supported() -%}
    {{- 'incremental' if target.type in ('duckdb', 'postgres') else 'table' -}}
{%- endmacro %}

{#- The newest export file already rolled up into this incremental model: rows from files with a
    higher id are new (or a newer version of an order). -#}
{% macro newest_file_id_built() -%}
    {{- max_built('newest_file_id') -}}
{%- endmacro %}

{#- The highest value of a watermark column in this incremental model's existing table (SQL; 0 when it
    is empty).  The table always has the column: a warehouse of another layout is rebuilt, never
    upgraded (SCHEMA_VERSION in dagster_project/lib/warehouse.py). -#}
{% macro max_built(column) -%}
    (select coalesce(max({{ column }}), 0) from {{ this }})
{%- endmacro %}

{#- When the dbt invocation that writes a row started (UTC), as a timestamp literal: a build marker.
    fct_orders stores it per row (built_at), so a check can validate only the rows written since the
    builds it has already validated; rows a later build rewrites carry that build's time. -#}
{% macro build_started_at() -%}
    cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S.%f") }}' as timestamp)
{%- endmacro %}

{#- fct_orders' post-hook: orders dated after the as-of date leave the incremental table (an earlier
    as-of date in a backfill, or an order re-exported with a later date).  Nothing to do for a full
    build (it reads orders up to the as-of date only) or where the model is a plain table. -#}
{% macro delete_orders_after_as_of() -%}
    {%- if incremental_if_supported() == 'incremental' -%}
        delete from {{ this }} where order_date > {{ as_of_date() }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- A model kept up to date from the identity change log (customer_identity_map, int_customer_contacts;
    watermark column identity_change_seq) rebuilds every row, rather than the rows of changed
    identifiers, when it is not incremental here (first build, --full-refresh, Spark) or when an
    identity resolution since its last build was full: a full resolution may change normalised
    values, which the change log (by raw value and customer_key) does not list. -#}
{% macro identity_consumer_rebuilds() -%}
    {%- if not is_incremental() -%}
        {{- return(true) -}}
    {%- endif -%}
    {%- if not execute -%}
        {{- return(false) -}}
    {%- endif -%}
    {%- set full = run_query(
        "select count(*) from " ~ source('identity', 'resolution_runs') ~
        " where change_seq > (select coalesce(max(identity_change_seq), 0) from " ~ this ~ ")" ~
        " and (full_change or full_resolution)") -%}
    {{- return(full.columns[0].values()[0] > 0) -}}
{%- endmacro %}

{#- Pre-hook of those models: empty the table before an incremental build that rebuilds every row
    after a full identity resolution (rows of identifiers whose normalised value changed would
    otherwise stay). -#}
{% macro delete_all_when_identity_consumer_rebuilds() -%}
    {%- if is_incremental() and identity_consumer_rebuilds() -%}
        delete from {{ this }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}

{#- int_customer_contacts' and int_customer_profiles' post-hook: rows of customer_keys no identifier
    carries any more (a merge moved their identifiers to another key) leave the table. -#}
{% macro delete_contacts_of_gone_customers() -%}
    {%- if incremental_if_supported() == 'incremental' -%}
        delete from {{ this }}
        where customer_key not in (
            select customer_key from {{ source('identity', 'identifiers') }} where customer_key is not null
        )
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}
