-- Lines of mapped exports.  Overlapping exports: an order's lines come from the newest file
-- containing that order (per map).

with deduplicated as (

    {{ rows_of_newest_file(source('generic', 'generic_order_lines'), ['map_name', 'order_id']) }}

),

final as (

    select
        map_name,
        order_id,
        _file_id as file_id,
        _line_number as line_number,
        ordered_at,
        customer_id as customer_id_raw,
        email as email_raw,
        phone as phone_raw,
        currency,
        coalesce(channel, 'online') as channel,
        store as store_location,
        sku,
        description,
        quantity,
        unit_price,
        cast(coalesce(line_amount, quantity * unit_price) as decimal(18, 4)) as line_amount,
        is_cancellation,
        quantity < 0 as is_return
    from deduplicated

)

select * from final
