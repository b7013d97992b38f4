{#- The activity state of a customer who has bought, from day counts measured at some date.
    One definition shared by customer_lifecycle (at the as-of date) and lifecycle_transitions
    (at each month end).  Windows are the dbt vars lifecycle_*_days. -#}
{% macro activity_state(days_since_first, days_since_last, days_since_previous) -%}
    case
        when {{ days_since_first }} <= {{ var('lifecycle_new_days') }} then 'new'
        when {{ days_since_last }} <= {{ var('lifecycle_active_days') }}
             and {{ days_since_previous }} > {{ var('lifecycle_at_risk_days') }} then 'reactivated'
        when {{ days_since_last }} <= {{ var('lifecycle_active_days') }} then 'active'
        when {{ days_since_last }} <= {{ var('lifecycle_at_risk_days') }} then 'at_risk'
        when {{ days_since_last }} <= {{ var('lifecycle_lapsed_days') }} then 'lapsed'
        else 'churned'
    end
{%- endmacro %}

{#- Integers 0..999 without engine-specific generators (for month spines). -#}
{% macro numbers_0_999() -%}
    select d1.n + 10 * d2.n + 100 * d3.n as n
    from (select 0 as n union all select 1 union all select 2 union all select 3 union all select 4
          union all select 5 union all select 6 union all select 7 union all select 8 union all select 9) as d1
    cross join (select 0 as n union all select 1 union all select 2 union all select 3 union all select 4
          union all select 5 union all select 6 union all select 7 union all select 8 union all select 9) as d2
    cross join (select 0 as n union all select 1 union all select 2 union all select 3 union all select 4
          union all select 5 union all select 6 union all select 7 union all select 8 union all select 9) as d3
{%- endmacro %}
