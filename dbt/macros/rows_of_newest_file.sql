{#- Rows of a raw relation that come from the newest export file containing their natural key.
    Overlapping exports (the same order in two files) then count once, in the newest version.
    rows_of_newest_file(source('shopify', 'shopify_order_lines'), ['order_name']) -#}
{% macro rows_of_newest_file(relation, key_columns) -%}
    select rows_.*
    from {{ relation }} as rows_
    inner join (
        select {{ key_columns | join(', ') }}, max(_file_id) as newest_file_id_
        from {{ relation }}
        group by {{ key_columns | join(', ') }}
    ) as newest_
        on {% for k in key_columns %}rows_.{{ k }} = newest_.{{ k }} and {% endfor %}rows_._file_id = newest_.newest_file_id_
{%- endmacro %}
