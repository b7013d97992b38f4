{#- Every value of the column matches the regular expression `pattern` (anchor it with ^ and $ to
    match whole values; no backslashes: Spark and DuckDB escape string literals differently, so
    write [*] and [0-9] rather than \* and \d).  NULLs are not judged.
    Failing rows are kept as a view in schema dbt_test__audit (DuckDB target), for the command line
    to show a few of them (dagster-dbt reports a count only). -#}
{% test matches_pattern(model, column_name, pattern) %}
{{ config(store_failures=(target.type == 'duckdb'), store_failures_as='view') }}

select {{ column_name }} as value
from {{ model }}
where {{ column_name }} is not null
    and {{ regex_extract(column_name, '(' ~ pattern ~ ')') }} is null

{% endtest %}
