-- Orders from every channel with the resolved customer_key (NULL = anonymous).
-- Every identifier of one order resolves to the same person, so the first match is enough.

with shopify_orders as (

    select * from {{ ref('int_shopify__orders_rolled_up') }}

),

square_sales as (

    select * from {{ ref('int_square__sales_rolled_up') }}

),

generic_orders as (

    select * from {{ ref('int_generic__orders_rolled_up') }}

),

rates as (

    select * from {{ ref('stg_fx__rates') }}

),

identifiers as (

    select * from {{ ref('stg_identity__identifiers') }}
    where customer_key is not null

),

unioned as (

    select source, source_order_id, channel, store_location, ordered_at, financial_status, is_cancelled, currency, gross_revenue, discounts, refunds, email_raw, phone_raw, billing_phone_raw, shipping_phone_raw, square_customer_id, member_id, accepts_marketing, utm_source, line_count, units,
           cast(null as {{ dbt.type_string() }}) as source_customer_ref
    from shopify_orders
    union all
    select source, source_order_id, channel, store_location, ordered_at, financial_status, is_cancelled, currency, gross_revenue, discounts, refunds, email_raw, phone_raw, billing_phone_raw, shipping_phone_raw, square_customer_id, member_id, accepts_marketing, utm_source, line_count, units,
           cast(null as {{ dbt.type_string() }}) as source_customer_ref
    from square_sales
    union all
    select source, source_order_id, channel, store_location, ordered_at, financial_status, is_cancelled, currency, gross_revenue, discounts, refunds, email_raw, phone_raw, billing_phone_raw, shipping_phone_raw, square_customer_id, member_id, accepts_marketing, utm_source, line_count, units,
           source_customer_ref
    from generic_orders

),

{#- (alias, identifier source, id type, order column): every identifier an order may carry -#}
{%- set lookups = [
    ['by_email', 'shopify', 'email', 'email_raw'],
    ['by_phone', 'shopify', 'phone', 'phone_raw'],
    ['by_billing_phone', 'shopify', 'phone', 'billing_phone_raw'],
    ['by_shipping_phone', 'shopify', 'phone', 'shipping_phone_raw'],
    ['by_square_id', 'square_items', 'square_customer_id', 'square_customer_id'],
    ['by_member_id', 'square_items', 'member_id', 'member_id'],
    ['by_generic_email', 'generic', 'email', 'email_raw'],
    ['by_generic_phone', 'generic', 'phone', 'phone_raw'],
    ['by_generic_id', 'generic', 'source_customer_id', 'source_customer_ref'],
] %}

keyed as (

    select
        unioned.*,
        coalesce(
            {%- for alias, _, _, _ in lookups %}
            {{ alias }}.customer_key{{ "," if not loop.last }}
            {%- endfor %}
        ) as customer_key
    from unioned
    {%- for alias, id_source, id_type, column in lookups %}
    left join identifiers as {{ alias }}
        on {{ alias }}.identifier_source = '{{ id_source }}' and {{ alias }}.id_type = '{{ id_type }}'
        and {{ alias }}.raw_value = unioned.{{ column }}
    {%- endfor %}

),

converted as (

    select
        keyed.*,
        case
            when (select count(*) from rates) = 0 then 1
            when keyed.currency = '{{ var("reporting_currency") }}' then 1
            else rates.rate
        end as fx_rate
    from keyed
    left join rates
        on rates.currency = keyed.currency
        and {{ to_date('keyed.ordered_at') }} >= rates.valid_from
        and (rates.valid_to is null or {{ to_date('keyed.ordered_at') }} < rates.valid_to)

),

final as (

    select
        {{ dbt.concat(["source", "':'", "source_order_id"]) }} as order_key,
        converted.*,
        case when (select count(*) from rates) = 0 then currency else '{{ var("reporting_currency") }}' end
            as reporting_currency,
        -- value counts unless the order was cancelled or voided
        not is_cancelled as is_valid,
        case when is_cancelled then 0 else gross_revenue - discounts - refunds end as net_revenue_original
    from converted

)

select * from final
