{{ config(
    materialized=incremental_if_supported(),
    unique_key='source_order_id',
    incremental_strategy='delete+insert',
) }}
-- Incremental (on DuckDB): a run re-rolls only the transactions that appear in export files loaded
-- since the last build (new ones, old ones again in a newer export, or a later refund) and replaces
-- them by natural key; newest export wins per payment or refund event, as in a full build.

-- One row per Square transaction: payment lines summed, refund lines netted against them.
-- Square writes discounts and refunds as negative amounts; here they become positive
-- `discounts` and `refunds` so that net = gross - discounts - refunds on every channel.

with item_lines as (

    select * from {{ ref('stg_square__item_lines') }}
    {%- if is_incremental() %}
    -- every line of the transactions that have a line from a file loaded since the last build (a
    -- refund in a later export re-rolls its sale with the payment lines from the earlier one)
    -- (found in the raw lines of those files: cheaper than the deduplicating staging view, same set)
    where transaction_id in (
            select transaction_id from {{ source('square', 'square_item_lines') }}
            where _file_id > {{ newest_file_id_built() }}
        )
    {%- endif %}

),

rolled_up as (

    select
        transaction_id,
        coalesce(
            min(case when event_type = 'payment' then sold_at end),
            min(sold_at)
        ) as ordered_at,
        max(store_location) as store_location,
        -- where and on which local day the sale was rung up (its payment lines; empty for a
        -- refund without its sale): the store funnel's day
        max(case when event_type = 'payment' then store_location end) as sale_store_location,
        min(case when event_type = 'payment' then sold_on_local_date end) as sale_local_date,
        max(currency) as currency,
        -- sums back to 18 digits (see int_shopify__orders_rolled_up)
        cast(coalesce(sum(case when event_type = 'payment' then gross_sales end), 0) as decimal(18, 2))
            as gross_revenue,
        cast(-coalesce(sum(case when event_type = 'payment' then discounts end), 0) as decimal(18, 2)) as discounts,
        cast(-coalesce(sum(case when event_type = 'refund' then net_sales end), 0) as decimal(18, 2)) as refunds,
        max(square_customer_id) as square_customer_id,
        max(customer_reference_id) as member_id,
        count(case when event_type = 'payment' then 1 end) as line_count,
        cast(coalesce(sum(case when event_type = 'payment' then quantity end), 0) as decimal(18, 3)) as units,
        max(file_id) as newest_file_id
    from item_lines
    group by transaction_id

),

final as (

    select
        'square' as source,
        transaction_id as source_order_id,
        'store' as channel,
        store_location,
        sale_store_location,
        sale_local_date,
        ordered_at,
        case
            when refunds <= 0 then 'paid'
            when refunds >= gross_revenue - discounts then 'refunded'
            else 'partially_refunded'
        end as financial_status,
        false as is_cancelled,
        currency,
        gross_revenue,
        discounts,
        refunds,
        cast(null as {{ dbt.type_string() }}) as email_raw,
        cast(null as {{ dbt.type_string() }}) as phone_raw,
        cast(null as {{ dbt.type_string() }}) as billing_phone_raw,
        cast(null as {{ dbt.type_string() }}) as shipping_phone_raw,
        square_customer_id,
        member_id,
        cast(null as boolean) as accepts_marketing,
        cast(null as {{ dbt.type_string() }}) as utm_source,
        line_count,
        units,
        newest_file_id
    from rolled_up

)

select * from final
