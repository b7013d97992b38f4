{#- A 1-5 RFM score.  Default: the tie-safe quintile of percent_rank (`pct_column`), so equal
    values get equal scores.  With custom cut points (four ascending thresholds, from the var
    rfm_cut_points) the value is placed against them instead: for frequency and monetary a value
    <= cuts[0] scores 1 ... above cuts[3] scores 5; for recency (lower is better) a value
    <= cuts[0] scores 5 ... above cuts[3] scores 1. -#}
{% macro rfm_score(value_column, pct_column, dimension, lower_is_better=false) -%}
    {%- set cuts = (var('rfm_cut_points', {}) or {}).get(dimension) -%}
    {%- if cuts -%}
        {%- if cuts | length != 4 -%}
            {{ exceptions.raise_compiler_error("rfm_cut_points." ~ dimension ~ " needs exactly four ascending thresholds, got " ~ cuts) }}
        {%- endif -%}
        case
            {%- for c in cuts %}
            when {{ value_column }} <= {{ c }} then {{ (5 - loop.index0) if lower_is_better else (loop.index) }}
            {%- endfor %}
            else {{ 1 if lower_is_better else 5 }}
        end
    {%- else -%}
        cast(least(5, 1 + floor({{ pct_column }} * 5)) as integer)
    {%- endif -%}
{%- endmacro %}

{#- percent_rank() of `column` over all rows of `relation`, computed from value counts: one row per
    distinct value with its `pct` = (rows ranked before it) / (rows - 1), 0 for a single row.
    Equal to `percent_rank() over (order by column)` (ties share the lowest rank), but needs a
    group-by and a sort of the distinct values instead of a sort of every row.  Join back on the
    value with `is not distinct from`. -#}
{% macro value_percent_rank(relation, column, descending=false) -%}
    select
        {{ column }},
        coalesce(
            cast(sum(count(*)) over (
                order by {{ column }}{{ ' desc' if descending }}
                rows between unbounded preceding and 1 preceding
            ) as double) / nullif((select count(*) from {{ relation }}) - 1, 0),
            0
        ) as pct
    from {{ relation }}
    group by {{ column }}
{%- endmacro %}
