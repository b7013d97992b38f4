-- One row per Square item line (payments and refunds).  An export covers a date range, so a sale
-- and its refund can arrive in different files.  Overlapping exports: the lines of one payment or
-- refund event (transaction, event type, time) come from the newest file containing that event.

with deduplicated as (

    {{ rows_of_newest_file(source('square', 'square_item_lines'), ['transaction_id', 'event_type', 'sold_at']) }}

),

final as (

    select
        transaction_id,
        payment_id,
        _file_id as file_id,
        _line_number as line_number,
        sold_at,
        local_date as sold_on_local_date,
        location as store_location,
        event_type,
        item,
        category,
        sku,
        qty as quantity,
        gross_sales,
        discounts,
        net_sales,
        tax,
        customer_id as square_customer_id,
        customer_reference_id,
        '{{ var("square_currency") }}' as currency
    from deduplicated

)

select * from final
