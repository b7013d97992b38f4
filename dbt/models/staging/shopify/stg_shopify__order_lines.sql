-- One row per Shopify line item.  Overlapping exports: an order's lines come from the newest
-- file that contains the order (the natural key wins, the newest export's version is kept).

with deduplicated as (

    {{ rows_of_newest_file(source('shopify', 'shopify_order_lines'), ['order_name']) }}

),

final as (

    select
        order_name,
        _file_id as file_id,
        _line_number as line_number,
        created_at,
        email as email_raw,
        phone as phone_raw,
        billing_phone as billing_phone_raw,
        shipping_phone as shipping_phone_raw,
        -- order-level fields (first row of the order only; NULL on its other rows)
        financial_status,
        paid_at,
        cancelled_at,
        accepts_marketing,
        discount_amount,
        refunded_amount,
        subtotal,
        shipping,
        taxes,
        total,
        note_attributes,
        source_name,
        billing_name,
        billing_city,
        billing_zip,
        billing_province,
        billing_country,
        shipping_name,
        shipping_city,
        shipping_zip,
        shipping_province,
        shipping_country,
        currency,
        -- line-level fields
        lineitem_name,
        lineitem_sku,
        lineitem_quantity as quantity,
        lineitem_price as unit_price,
        cast(lineitem_quantity * lineitem_price as decimal(18, 2)) as line_amount
    from deduplicated

)

select * from final
