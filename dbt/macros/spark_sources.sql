{#- On Spark the raw layer is Parquet files (written by the pipeline from the DuckDB raw tables,
    see dagster_project/lib/dbt_runner/spark_interop.py): one folder per source table,
    <var raw_parquet_dir>/<schema>/<table>/.  This on-run-start hook (re)registers every dbt source
    as an external Parquet table over its folder, so models use source() the same on both engines.
    On DuckDB the sources are the warehouse's own tables: nothing to do. -#}
{% macro register_raw_sources() -%}
    {{ return(adapter.dispatch('register_raw_sources', 'owned_audience')()) }}
{%- endmacro %}

{% macro default__register_raw_sources() -%}
    select 1
{%- endmacro %}

{% macro spark__register_raw_sources() -%}
    {%- if execute -%}
        {%- set base = env_var('PIPELINE_RAW_PARQUET_DIR', '../data/warehouse/raw_parquet') -%}
        {%- set seen = [] -%}
        {%- for src in graph.sources.values() -%}
            {%- if src.schema not in seen -%}
                {%- do run_query('create database if not exists ' ~ src.schema) -%}
                {%- do seen.append(src.schema) -%}
            {%- endif -%}
            {%- set rel = src.schema ~ '.' ~ src.identifier -%}
            {#- A source whose columns are all typed in its YAML gets them declared, so a folder not
                written yet (the CLV model's outputs before its first run) reads as an empty table
                instead of failing schema inference. -#}
            {%- set typed = [] -%}
            {%- for col in src.columns.values() -%}
                {%- if col.data_type -%}{%- do typed.append(col.name ~ ' ' ~ col.data_type) -%}{%- endif -%}
            {%- endfor -%}
            {%- set declared = ' (' ~ typed | join(', ') ~ ')' if typed and typed | length == src.columns | length else '' -%}
            {%- do run_query('drop table if exists ' ~ rel) -%}
            {%- do run_query("create table " ~ rel ~ declared ~ " using parquet location '" ~ base ~ "/" ~ src.schema ~ "/" ~ src.identifier ~ "'") -%}
        {%- endfor -%}
    {%- endif -%}
    select 1
{%- endmacro %}
