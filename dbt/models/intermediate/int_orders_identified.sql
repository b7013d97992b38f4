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

keyed as (

    select
        unioned.*,
        coalesce(
            by_email.customer_key,
            by_phone.customer_key,
            by_billing_phone.customer_key,
            by_shipping_phone.customer_key,
            by_square_id.customer_key,
            by_member_id.customer_key,
            by_generic_email.customer_key,
            by_generic_phone.customer_key,
            by_generic_id.customer_key
        ) as customer_key
    from unioned
    left join identifiers as by_email
        on by_email.identifier_source = 'shopify' and by_email.id_type = 'email'
        and by_email.raw_value = unioned.email_raw
    left join identifiers as by_phone
        on by_phone.identifier_source = 'shopify' and by_phone.id_type = 'phone'
        and by_phone.raw_value = unioned.phone_raw
    left join identifiers as by_billing_phone
        on by_billing_phone.identifier_source = 'shopify' and by_billing_phone.id_type = 'phone'
        and by_billing_phone.raw_value = unioned.billing_phone_raw
    left join identifiers as by_shipping_phone
        on by_shipping_phone.identifier_source = 'shopify' and by_shipping_phone.id_type = 'phone'
        and by_shipping_phone.raw_value = unioned.shipping_phone_raw
    left join identifiers as by_square_id
        on by_square_id.identifier_source = 'square_items' and by_square_id.id_type = 'square_customer_id'
        and by_square_id.raw_value = unioned.square_customer_id
    left join identifiers as by_member_id
        on by_member_id.identifier_source = 'square_items' and by_member_id.id_type = 'member_id'
        and by_member_id.raw_value = unioned.member_id
    left join identifiers as by_generic_email
        on by_generic_email.identifier_source = 'generic' and by_generic_email.id_type = 'email'
        and by_generic_email.raw_value = unioned.email_raw
    left join identifiers as by_generic_phone
        on by_generic_phone.identifier_source = 'generic' and by_generic_phone.id_type = 'phone'
        and by_generic_phone.raw_value = unioned.phone_raw
    left join identifiers as by_generic_id
        on by_generic_id.identifier_source = 'generic' and by_generic_id.id_type = 'source_customer_id'
        and by_generic_id.raw_value = unioned.source_customer_ref

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
