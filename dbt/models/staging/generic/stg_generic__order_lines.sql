-- Lines of mapped exports.  Overlapping exports: an order's lines come from the newest file
-- containing that order (per map).

with source as (

    select * from {{ source('generic', 'generic_order_lines') }}

),

newest_file_per_order as (

    select map_name, order_id, max(_file_id) as newest_file_id
    from source
    group by map_name, order_id

),

deduplicated as (

    select source.*
    from source
    inner join newest_file_per_order
        on source.map_name = newest_file_per_order.map_name
        and source.order_id = newest_file_per_order.order_id
        and source._file_id = newest_file_per_order.newest_file_id

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
