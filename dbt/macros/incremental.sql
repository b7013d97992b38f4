{#- Incremental order roll-ups (int_*__orders_rolled_up, int_square__sales_rolled_up). -#}

{#- Incremental where the adapter can delete+insert (DuckDB); a plain table elsewhere (e.g. Spark's
    default file formats have no delete/merge), so the same models build on both. -#}
{% macro incremental_if_supported() -%}
    {{- 'incremental' if target.type in ('duckdb', 'postgres') else 'table' -}}
{%- endmacro %}

{#- The newest export file already rolled up into this incremental model: rows from files with a
    higher id are new (or a newer version of an order).  0 when the existing table predates the
    newest_file_id column, so the first incremental run after an upgrade re-rolls everything. -#}
{% macro newest_file_id_built() -%}
    {{- max_built('newest_file_id') -}}
{%- endmacro %}

{#- The highest value of a watermark column in this incremental model's existing table (SQL), or 0
    when the table predates the column (the first incremental run after an upgrade then treats
    every row as changed). -#}
{% macro max_built(column) -%}
    {%- set cols = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list -%}
    {%- if column | lower in cols -%}
        (select coalesce(max({{ column }}), 0) from {{ this }})
    {%- else -%}
        0
    {%- endif -%}
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
