{#- The identifier registry (var identifier_registry in dbt_project.yml): which identifiers each
    source record carries.  Identity resolution (dagster_project/lib/identity/resolution.py) reads the same
    declaration for the raw side, so the models and the resolution cannot disagree on it. -#}

{#- The registry's sources whose records are `records` (orders or profiles), in registry order. -#}
{% macro identifier_sources(records) -%}
    {%- set found = [] -%}
    {%- for entry in var('identifier_registry')['sources'] -%}
        {%- if entry['records'] == records -%}
            {%- do found.append(entry) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(found) }}
{%- endmacro %}

{#- Every identifier an order may carry: dicts of source (the identifier source), order_source, id_type
    and column (of int_orders_identified). -#}
{% macro order_identifiers() -%}
    {%- set found = [] -%}
    {%- for entry in identifier_sources('orders') -%}
        {%- for identifier in entry['identifiers'] -%}
            {%- do found.append({'source': entry['source'], 'order_source': entry['order_source'],
                                 'id_type': identifier['id_type'], 'column': identifier['column']}) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(found) }}
{%- endmacro %}

{#- SQL condition: the order's `column` (int_orders_identified.source) is the order source
    `order_source`; `other` is every source no registry entry names (the mapped exports). -#}
{% macro is_order_source(order_source, column='source') -%}
    {%- if order_source == 'other' -%}
        {%- set named = [] -%}
        {%- for entry in identifier_sources('orders') if entry['order_source'] != 'other' -%}
            {%- do named.append("'" ~ entry['order_source'] ~ "'") -%}
        {%- endfor -%}
        {{ column }} not in ({{ named | join(', ') }})
    {%- else -%}
        {{ column }} = '{{ order_source }}'
    {%- endif -%}
{%- endmacro %}

{#- The id type of a profile source's own record id (its `record_id` column). -#}
{% macro record_id_type(entry) -%}
    {%- for identifier in entry['identifiers'] if identifier['column'] == entry['record_id'] -%}
        {{ return(identifier['id_type']) }}
    {%- endfor -%}
    {{ exceptions.raise_compiler_error("identifier_registry: source " ~ entry['source'] ~ " lists no identifier for its record_id " ~ entry['record_id']) }}
{%- endmacro %}

{#- The sources marketing consent is taken from, first to last (consent_priority). -#}
{% macro consent_sources() -%}
    {%- set found = [] -%}
    {%- for entry in var('identifier_registry')['sources'] -%}
        {%- if entry.get('consent_priority') is not none -%}
            {%- if entry['records'] == 'orders' and entry['order_source'] == 'other' -%}
                {{ exceptions.raise_compiler_error("identifier_registry: consent comes from a named order source, not from `other`") }}
            {%- endif -%}
            {%- do found.append(entry) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(found | sort(attribute='consent_priority')) }}
{%- endmacro %}
