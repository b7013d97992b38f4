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
-- every order up to the as-of date.  Orders int_order_costs re-costed since (a new cost export can
-- re-price every order) are taken again too.  built_at marks the build that wrote each row (the GX check
-- validates the rows of builds it has not validated yet).

with order_costs as (

    select * from {{ ref('int_order_costs') }}

),

orders as (

    select * from {{ ref('int_orders_identified') }}
    {%- if is_incremental() %}
    where identity_change_seq > {{ max_built('identity_change_seq') }}
        or {{ to_date('ordered_at') }} > (
            select coalesce(max(order_date), cast('1900-01-01' as date)) from {{ this }}
        )
        or order_key in (
            select {{ dbt.concat(["source", "':'", "source_order_id"]) }} from order_costs
            where built_at > (select max(built_at) from {{ this }})
        )
    {%- endif %}

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
        -- cast again: Spark widens the difference of two DECIMAL(18,2) to DECIMAL(19,2)
        cast(
            cast(net_revenue_original * fx_rate as decimal(18, 2))
            - cast(product_cost_original * fx_rate as decimal(18, 2))
            as decimal(18, 2)
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
        {{ build_started_at() }} as built_at
    from with_costs
    {%- if not is_incremental() %}
    where {{ to_date('ordered_at') }} <= {{ as_of_date() }}
    {%- endif %}

)

select * from final
