{#- The default gross margin rate of an order line without a known cost (dbt var
    default_gross_margin_rate): its category's rate, else its channel's, else the default. -#}
{% macro default_margin_rate(channel_column, category_column) -%}
    {%- set cfg = var('default_gross_margin_rate') -%}
    {%- set categories = cfg.get('categories') or {} -%}
    {%- set channels = cfg.get('channels') or {} -%}
    {%- if categories or channels -%}
    case
        {%- for category, rate in categories.items() %}
        when {{ category_column }} = '{{ category }}' then {{ rate }}
        {%- endfor %}
        {%- for channel, rate in channels.items() %}
        when {{ channel_column }} = '{{ channel }}' then {{ rate }}
        {%- endfor %}
        else {{ cfg.get('default', 0.5) }}
    end
    {%- else -%}
    {{ cfg.get('default', 0.5) }}
    {%- endif -%}
{%- endmacro %}
