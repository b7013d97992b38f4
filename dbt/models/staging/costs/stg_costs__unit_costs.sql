-- One row per SKU and cost period: the unit cost of a SKU from valid_from until valid_to (the next
-- cost of that SKU), from the Shopify products export, the Square item library and the pipeline's
-- own cost map.  Snapshot exports (Shopify, Square) carry no currency (dbt var
-- product_cost_currency) and no date: their rows hold from the file's modification date.  A blank
-- cost is no cost (the SKU is left out).  Two costs of one SKU on one date from different files:
-- the newest file wins (a re-export corrects the earlier one); within one file such rows never get
-- here (ingestion quarantines them).  The earliest cost of a SKU also covers its orders before that
-- date (is_first_cost): a shop's first cost export is its best knowledge of what it paid before.

with costs as (

    select
        sku,
        unit_cost,
        '{{ var("product_cost_currency") }}' as currency,
        valid_from,
        'shopify_products' as cost_source,
        _file_id as file_id,
        _line_number as line_number
    from {{ source('costs', 'shopify_products') }}
    where unit_cost is not null and sku is not null

    union all

    select
        sku,
        unit_cost,
        '{{ var("product_cost_currency") }}' as currency,
        valid_from,
        'square_item_library' as cost_source,
        _file_id as file_id,
        _line_number as line_number
    from {{ source('costs', 'square_item_library') }}
    where unit_cost is not null and sku is not null

    union all

    select
        sku,
        unit_cost,
        currency,
        valid_from,
        'product_costs' as cost_source,
        _file_id as file_id,
        _line_number as line_number
    from {{ source('costs', 'product_costs') }}
    where unit_cost is not null and sku is not null

),

newest as (

    select
        costs.*,
        row_number() over (partition by sku, valid_from order by file_id desc, line_number desc) as version_rank
    from costs

),

final as (

    select
        sku,
        valid_from,
        lead(valid_from) over (partition by sku order by valid_from) as valid_to,
        row_number() over (partition by sku order by valid_from) = 1 as is_first_cost,
        cast(unit_cost as decimal(18, 4)) as unit_cost,
        currency,
        cost_source,
        file_id,
        line_number
    from newest
    where version_rank = 1

)

select * from final
