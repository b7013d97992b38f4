-- One row per Square item line (payments and refunds).  Overlapping exports: a transaction's
-- lines come from the newest file containing that transaction.

with source as (

    select * from {{ source('square', 'square_item_lines') }}

),

newest_file_per_transaction as (

    select transaction_id, max(_file_id) as newest_file_id
    from source
    group by transaction_id

),

deduplicated as (

    select source.*
    from source
    inner join newest_file_per_transaction
        on source.transaction_id = newest_file_per_transaction.transaction_id
        and source._file_id = newest_file_per_transaction.newest_file_id

),

final as (

    select
        transaction_id,
        payment_id,
        _file_id as file_id,
        _line_number as line_number,
        sold_at,
        location as store_location,
        event_type,
        item,
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
