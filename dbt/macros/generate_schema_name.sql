{#- Models land in the schema named by their folder config (staging, intermediate, marts), not
    "<target>_<custom>", so BI tools find `marts.fct_orders` in every environment. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}{{ target.schema }}{%- else -%}{{ custom_schema_name | trim }}{%- endif -%}
{%- endmacro %}
