{{ config(
    materialized=incremental_if_supported(),
    unique_key='order_key',
    incremental_strategy='delete+insert',
    post_hook=["{{ delete_orders_after_as_of() }}"],
) }}
-- One row per order or sale across channels, as of the run's as-of date.
--
-- Incremental (on DuckDB): a run replaces (by order_key) the orders int_orders_identified rebuilt
-- since this table's last build (their identity_change_seq, the identity resolution they were built
-- with, is newer than any here: every pipeline run resolves identity before dbt, and a rebuilt order
-- carries the newest resolution) and adds the orders dated after the newest order here (held back
-- before by an earlier as-of date).  The post-hook then removes orders dated after the as-of date:
-- a backfill of an earlier date, or an order re-exported with a later date.  A full build reads
-- every order up to the as-of date.  A cost export loaded since the last build (costs_file_id) rebuilds
-- every order, since a new cost can re-price old orders.  built_at marks the build that wrote each row (the GX check
-- validates the rows of builds it has not validated yet).

with cost_watermark as (

    -- the newest cost export loaded (0 without one)
    select coalesce(max(file_id), 0) as costs_file_id
    from (
        select _file_id as file_id from {{ source('costs', 'shopify_products') }}
        union all
        select _file_id as file_id from {{ source('costs', 'square_item_library') }}
        union all
        select _file_id as file_id from {{ source('costs', 'product_costs') }}
    ) as cost_files

),

orders as (

    select * from {{ ref('int_orders_identified') }}
    {%- if is_incremental() %}
    where identity_change_seq > {{ max_built('identity_change_seq') }}
        or {{ to_date('ordered_at') }} > (
            select coalesce(max(order_date), cast('1900-01-01' as date)) from {{ this }}
        )
        or (select costs_file_id from cost_watermark) > {{ max_built('costs_file_id') }}
    {%- endif %}

),

order_costs as (

    select * from {{ ref('int_order_costs') }}

),

with_costs as (

    -- cancelled and voided orders carry no value, so no cost either
    select
        orders.*,
        case when orders.is_cancelled then 0
            else coalesce(order_costs.known_product_cost, 0) + coalesce(order_costs.estimated_product_cost, 0)
        end as product_cost_original,
        case when orders.is_cancelled then 0 else coalesce(order_costs.estimated_product_cost, 0) end
            as estimated_product_cost_original,
        case when orders.is_cancelled then 0 else coalesce(order_costs.goods_value, 0) end as goods_value_original,
        case when orders.is_cancelled then 0 else coalesce(order_costs.costed_goods_value, 0) end
            as costed_goods_value_original
    from orders
    left join order_costs
        on order_costs.source = orders.source and order_costs.source_order_id = orders.source_order_id

),

final as (

    select
        order_key,
        source,
        source_order_id,
        channel,
        store_location,
        customer_key,
        customer_key is null as is_anonymous,
        ordered_at,
        {{ to_date('ordered_at') }} as order_date,
        reporting_currency as currency,
        currency as original_currency,
        fx_rate,
        financial_status,
        is_cancelled,
        is_valid,
        cast(gross_revenue * fx_rate as decimal(18, 2)) as gross_revenue,
        cast(discounts * fx_rate as decimal(18, 2)) as discounts,
        cast(refunds * fx_rate as decimal(18, 2)) as refunds,
        cast(net_revenue_original * fx_rate as decimal(18, 2)) as net_revenue,
        cast(net_revenue_original as decimal(18, 2)) as net_revenue_original,
        (is_valid and net_revenue_original > 0) as is_purchase,
        cast(product_cost_original * fx_rate as decimal(18, 2)) as product_cost,
        cast(estimated_product_cost_original * fx_rate as decimal(18, 2)) as product_cost_estimated,
        (
            cast(net_revenue_original * fx_rate as decimal(18, 2))
            - cast(product_cost_original * fx_rate as decimal(18, 2))
        ) as gross_margin,
        cast(goods_value_original * fx_rate as decimal(18, 2)) as goods_value,
        cast(costed_goods_value_original * fx_rate as decimal(18, 2)) as costed_goods_value,
        case when goods_value_original > 0
                then cast(costed_goods_value_original as double) / cast(goods_value_original as double)
        end as margin_cost_coverage,
        utm_source,
        line_count,
        cast(units as decimal(18, 3)) as units,
        identity_change_seq,
        (select costs_file_id from cost_watermark) as costs_file_id,
        {{ build_started_at() }} as built_at
    from with_costs
    {%- if not is_incremental() %}
    where {{ to_date('ordered_at') }} <= {{ as_of_date() }}
    {%- endif %}

)

select * from final
