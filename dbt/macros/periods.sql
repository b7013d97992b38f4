{#- Whether the as-of date is a complete day.  The pipeline records it in raw.run_context: a run made
    on its own as-of date (a run "as of today") sees only part of that day.  With `--vars
    '{as_of: ...}'` (dbt unit tests, ad-hoc and Spark runs) var `as_of_day_complete` says it
    (default true). -#}
{% macro as_of_day_is_complete() -%}
    {%- set v = var('as_of', none) -%}
    {%- if v is none or v == '' -%}
        (select max(case when as_of_day_complete then 1 else 0 end) = 1 from {{ var('run_context_relation') }})
    {%- else -%}
        {%- set complete = var('as_of_day_complete', true) -%}
        {{ 'false' if complete in [false, 'false', 'False', 0] else 'true' }}
    {%- endif -%}
{%- endmacro %}

{#- True when the period from `period_start` to `period_end` (dates, both inclusive) is not wholly
    covered by the data: it begins before the first order date of the earliest source, it ends after
    the as-of date, or it ends on an as-of date that is not a complete day yet. -#}
{% macro is_partial_period(period_start, period_end) -%}
    ({{ period_start }} < (select min(first_order_date) from {{ ref('int_source_coverage') }})
        or {{ period_end }} > {{ as_of_date() }}
        or ({{ period_end }} = {{ as_of_date() }} and not {{ as_of_day_is_complete() }}))
{%- endmacro %}

{#- The same for the calendar month starting on `month_start`. -#}
{% macro is_partial_month(month_start) -%}
    {{ is_partial_period(month_start, 'cast(' ~ dbt.dateadd('day', -1, dbt.dateadd('month', 1, month_start)) ~ ' as date)') }}
{%- endmacro %}
