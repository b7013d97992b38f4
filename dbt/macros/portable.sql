{#- Engine-specific SQL lives here, behind adapter.dispatch, so models stay portable
    (DuckDB by default; a Spark implementation sits beside each). -#}

{#- The run's as-of date.  The pipeline passes it as data, not as a dbt var: before each build it
    writes the one-row table raw.run_context (as_of_date), so the project parses the same every day
    and dbt's partial parsing stays valid.  `--vars '{as_of: YYYY-MM-DD}'` still overrides it (dbt
    unit tests and ad-hoc runs). -#}
{% macro as_of_date() -%}
    {%- set v = var('as_of', none) -%}
    {%- if v is none or v == '' -%}(select max(as_of_date) from {{ var('run_context_relation') }}){%- else -%}cast('{{ v }}' as date){%- endif -%}
{%- endmacro %}

{#- First capture group of a regular expression (no backslashes in patterns: Spark and DuckDB
    escape string literals differently). -#}
{% macro regex_extract(expr, pattern) -%}
    {{ return(adapter.dispatch('regex_extract', 'owned_audience')(expr, pattern)) }}
{%- endmacro %}
{% macro default__regex_extract(expr, pattern) -%}
    nullif(regexp_extract({{ expr }}, '{{ pattern }}', 1), '')
{%- endmacro %}

{#- Hex SHA-256 of a string (ad-platform customer match wants SHA-256, not md5). -#}
{% macro sha256_hex(expr) -%}
    {{ return(adapter.dispatch('sha256_hex', 'owned_audience')(expr)) }}
{%- endmacro %}
{% macro default__sha256_hex(expr) -%}sha2({{ expr }}, 256){%- endmacro %}
{% macro duckdb__sha256_hex(expr) -%}sha256({{ expr }}){%- endmacro %}

{#- Calendar date of a timestamp. -#}
{% macro to_date(expr) -%}cast({{ expr }} as date){%- endmacro %}

{#- Boolean aggregate "any true", portable (no bool_or on every engine). -#}
{% macro any_true(expr) -%}
    (max(case when {{ expr }} then 1 else 0 end) = 1)
{%- endmacro %}

{#- Median of an expression within a group (exact). -#}
{% macro median(expr) -%}
    {{ return(adapter.dispatch('median', 'owned_audience')(expr)) }}
{%- endmacro %}
{% macro default__median(expr) -%}percentile_cont(0.5) within group (order by {{ expr }}){%- endmacro %}
{% macro spark__median(expr) -%}percentile({{ expr }}, 0.5){%- endmacro %}

{#- The value of `expr` on the row where `order_by` is highest, within a group (an aggregate: no sort
    of the rows, unlike row_number() = 1).  DuckDB and Spark 3+ both call it max_by; BigQuery would
    need array_agg(... order by ... limit 1)[offset(0)]. -#}
{% macro value_at_max(expr, order_by) -%}
    {{ return(adapter.dispatch('value_at_max', 'owned_audience')(expr, order_by)) }}
{%- endmacro %}
{% macro default__value_at_max(expr, order_by) -%}max_by({{ expr }}, {{ order_by }}){%- endmacro %}

{#- The value of `expr` on the row where `order_by` is lowest, within a group (min_by on DuckDB and Spark 3+). -#}
{% macro value_at_min(expr, order_by) -%}
    {{ return(adapter.dispatch('value_at_min', 'owned_audience')(expr, order_by)) }}
{%- endmacro %}
{% macro default__value_at_min(expr, order_by) -%}min_by({{ expr }}, {{ order_by }}){%- endmacro %}

{#- dbt.datediff on Spark: DuckDB's semantics (calendar boundaries crossed) and its BIGINT type, so
    contracts and results are the same on both engines.  dbt-spark's own version returns INT and
    computes months with months_between.  Found before dbt-spark's through `dispatch` in
    dbt_project.yml; only the dateparts the models use. -#}
{% macro spark__datediff(first_date, second_date, datepart) -%}
    {%- if datepart == 'day' -%}
        cast(datediff(to_date({{ second_date }}), to_date({{ first_date }})) as bigint)
    {%- elif datepart == 'month' -%}
        cast((year({{ second_date }}) * 12 + month({{ second_date }})) - (year({{ first_date }}) * 12 + month({{ first_date }})) as bigint)
    {%- else -%}
        {{ exceptions.raise_compiler_error("spark__datediff: datepart '" ~ datepart ~ "' is not implemented (day, month)") }}
    {%- endif -%}
{%- endmacro %}

{#- Trimmed, with each run of whitespace inside collapsed to one space; NULL when nothing is left
    (names, cities and postal codes as people typed them). -#}
{% macro squish(expr) -%}
    {{ return(adapter.dispatch('squish', 'owned_audience')(expr)) }}
{%- endmacro %}
{% macro default__squish(expr) -%}nullif(trim(regexp_replace({{ expr }}, '\s+', ' ', 'g')), ''){%- endmacro %}
{% macro spark__squish(expr) -%}nullif(trim(regexp_replace({{ expr }}, '\\s+', ' ')), ''){%- endmacro %}
