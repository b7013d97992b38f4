{{ config(
    materialized=incremental_if_supported(),
    unique_key=['source', 'source_order_id'],
    incremental_strategy='delete+insert',
) }}
-- Incremental (on DuckDB): a run re-rolls only the orders that appear in export files loaded since
-- the last build (new ones, and old ones again in a newer export, e.g. with a late refund) and
-- replaces them by natural key; newest export wins, as in a full build.

-- One row per order of a mapped export.  Positive lines are gross revenue; negative lines
-- (returns, and the lines of cancellation documents such as UCI's "C" invoices) are refunds,
-- so a cancellation document is an order row with net revenue below zero.

with order_lines as (

    select * from {{ ref('stg_generic__order_lines') }}
    {%- if is_incremental() %}
    -- staging keeps each order's rows from the newest file containing it, so the orders in files
    -- loaded since the last build are exactly those with a newer file id
    where file_id > {{ newest_file_id_built() }}
    {%- endif %}

),

rolled_up as (

    select
        map_name,
        order_id,
        min(ordered_at) as ordered_at,
        max(currency) as currency,
        max(channel) as channel,
        max(store_location) as store_location,
        -- sums back to 18 digits (see int_shopify__orders_rolled_up)
        cast(sum(case when line_amount > 0 then line_amount else 0 end) as decimal(18, 4)) as gross_revenue,
        cast(-sum(case when line_amount < 0 then line_amount else 0 end) as decimal(18, 4)) as refunds,
        {{ any_true('is_cancellation') }} as is_cancellation_document,
        max(customer_id_raw) as customer_id_raw,
        max(email_raw) as email_raw,
        max(phone_raw) as phone_raw,
        count(*) as line_count,
        cast(sum(case when quantity > 0 then quantity else 0 end) as decimal(18, 3)) as units,
        max(file_id) as newest_file_id
    from order_lines
    group by map_name, order_id

),

final as (

    select
        map_name as source,
        order_id as source_order_id,
        channel,
        store_location,
        ordered_at,
        case
            when is_cancellation_document then 'cancellation'
            when refunds > 0 and gross_revenue > 0 then 'partially_refunded'
            when refunds > 0 then 'refunded'
            else 'paid'
        end as financial_status,
        false as is_cancelled,
        currency,
        gross_revenue,
        cast(0 as decimal(18, 4)) as discounts,
        refunds,
        email_raw,
        phone_raw,
        cast(null as {{ dbt.type_string() }}) as billing_phone_raw,
        cast(null as {{ dbt.type_string() }}) as shipping_phone_raw,
        cast(null as {{ dbt.type_string() }}) as square_customer_id,
        cast(null as {{ dbt.type_string() }}) as member_id,
        cast(null as boolean) as accepts_marketing,
        cast(null as {{ dbt.type_string() }}) as utm_source,
        line_count,
        units,
        case when customer_id_raw is not null then {{ dbt.concat(["map_name", "':'", "customer_id_raw"]) }} end
            as source_customer_ref,
        newest_file_id
    from rolled_up

)

select * from final
