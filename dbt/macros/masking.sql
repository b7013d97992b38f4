{#- Masked contact fields for dim_customers: enough to recognise, not enough to contact.
    mask_email('jane.doe@example.com') -> 'j***@example.com'
    mask_phone('+8801795326165')       -> '+88017****6165' -#}
{% macro mask_email(expr) -%}
    case when {{ expr }} is null then null
         else concat(substring({{ expr }}, 1, 1), '***@', {{ dbt.split_part(expr, "'@'", 2) }}) end
{%- endmacro %}

{% macro mask_phone(expr) -%}
    case when {{ expr }} is null then null
         else concat(substring({{ expr }}, 1, 6), '****', substring({{ expr }}, {{ dbt.length(expr) }} - 3, 4)) end
{%- endmacro %}
