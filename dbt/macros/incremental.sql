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
    {%- set cols = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list -%}
    {%- if 'newest_file_id' in cols -%}
        (select coalesce(max(newest_file_id), 0) from {{ this }})
    {%- else -%}
        0
    {%- endif -%}
{%- endmacro %}
