{#- The expected next order date and its window (customer_predictions, next_order_holdout), from a
    customer's last purchase day: the model's quantile of the wait (`model_days`, days) where the model
    is used, else `own_factor` times the customer's average days between purchase days (own history).
    Rounded to whole days. -#}
{% macro next_order_day(source, last_purchase_date, model_days, avg_days, own_factor) -%}
    case
        when {{ source }} = 'model'
            then cast({{ dbt.dateadd('day', 'round(' ~ model_days ~ ')', last_purchase_date) }} as date)
        when {{ source }} = 'own_history'
            then cast({{ dbt.dateadd('day', 'round(' ~ avg_days ~ ' * ' ~ own_factor ~ ')', last_purchase_date) }} as date)
    end
{%- endmacro %}
