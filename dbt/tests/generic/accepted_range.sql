{#- Every value of the column lies within min_value..max_value (bounds included; either may be left
    out).  NULLs are not judged: a column that must be present also has not_null.
    Failing rows are kept as a view in schema dbt_test__audit (DuckDB target), for the command line
    to show a few of them (dagster-dbt reports a count only). -#}
{% test accepted_range(model, column_name, min_value=none, max_value=none) %}
{{ config(store_failures=(target.type == 'duckdb'), store_failures_as='view') }}

select {{ column_name }} as value
from {{ model }}
where
{%- if min_value is not none %} {{ column_name }} < {{ min_value }}{% endif %}
{%- if min_value is not none and max_value is not none %} or{% endif %}
{%- if max_value is not none %} {{ column_name }} > {{ max_value }}{% endif %}

{% endtest %}
