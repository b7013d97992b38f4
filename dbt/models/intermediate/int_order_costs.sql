{{ config(materialized='table') }}
-- One row per order (source, source_order_id): the cost of the goods on its lines, in the order's
-- own currency.  Each line takes its SKU's unit cost on the order date (the cost period holding
-- that date; the SKU's first cost also before it); a cost in another currency is converted through
-- the exchange rates of that date, and is unknown when a rate is missing.  A line without a known
-- cost is costed at the default margin rate (var default_gross_margin_rate): its value times
-- (1 - rate).  Returned lines (negative quantity or value) give their cost back.
-- Rebuilt whole each run: a new cost export can re-price old orders (a SKU's first cost covers
-- them), so an incremental build would have to re-read every line then anyway.
-- Line value is what the order's revenue is made of: Shopify quantity × price (before order
-- discounts), Square Gross Sales of a payment line and Net Sales of a refund line, a mapped
-- export's line amount.

with costs as (

    select * from {{ ref('stg_costs__unit_costs') }}

),

rates as (

    select * from {{ ref('stg_fx__rates') }}

),

lines as (

    select
        'shopify' as source,
        order_name as source_order_id,
        'online' as channel,
        cast(null as {{ dbt.type_string() }}) as category,
        lineitem_sku as sku,
        quantity,
        cast(line_amount as decimal(18, 4)) as line_value,
        currency,
        created_at as line_at
    from {{ ref('stg_shopify__order_lines') }}

    union all

    select
        'square' as source,
        transaction_id as source_order_id,
        'store' as channel,
        category,
        sku,
        quantity,
        cast(case when event_type = 'payment' then gross_sales else net_sales end as decimal(18, 4)) as line_value,
        currency,
        sold_at as line_at
    from {{ ref('stg_square__item_lines') }}

    union all

    select
        map_name as source,
        order_id as source_order_id,
        channel,
        cast(null as {{ dbt.type_string() }}) as category,
        sku,
        quantity,
        line_value,
        currency,
        ordered_at as line_at
    from (select *, line_amount as line_value from {{ ref('stg_generic__order_lines') }}) as generic_lines

),

dated as (

    -- the order's date (its earliest line, as the order rows take it), which the cost is looked up on
    select
        lines.*,
        {{ to_date('min(line_at) over (partition by source, source_order_id)') }} as order_date,
        max(currency) over (partition by source, source_order_id) as order_currency
    from lines

),

costed as (

    select
        dated.*,
        costs.unit_cost,
        costs.currency as cost_currency
    from dated
    left join costs
        on costs.sku = dated.sku
        and (costs.is_first_cost or costs.valid_from <= dated.order_date)
        and (costs.valid_to is null or costs.valid_to > dated.order_date)

),

converted as (

    select
        costed.*,
        case
            when costed.unit_cost is null then null
            when costed.cost_currency = costed.order_currency then costed.unit_cost
            else costed.unit_cost
                * (case when costed.cost_currency = '{{ var("reporting_currency") }}' then 1 else cost_rate.rate end)
                / (case when costed.order_currency = '{{ var("reporting_currency") }}' then 1 else order_rate.rate end)
        end as unit_cost_in_order_currency
    from costed
    left join rates as cost_rate
        on costed.cost_currency <> costed.order_currency
        and cost_rate.currency = costed.cost_currency
        and cost_rate.valid_from <= costed.order_date
        and (cost_rate.valid_to is null or cost_rate.valid_to > costed.order_date)
    left join rates as order_rate
        on costed.cost_currency <> costed.order_currency
        and order_rate.currency = costed.order_currency
        and order_rate.valid_from <= costed.order_date
        and (order_rate.valid_to is null or order_rate.valid_to > costed.order_date)

),

final as (

    select
        source,
        source_order_id,
        cast(count(*) as {{ dbt.type_bigint() }}) as line_count,
        cast(count(unit_cost_in_order_currency) as {{ dbt.type_bigint() }}) as costed_line_count,
        cast(sum(abs(line_value)) as decimal(18, 4)) as goods_value,
        cast(
            sum(case when unit_cost_in_order_currency is not null then abs(line_value) else 0 end)
            as decimal(18, 4)
        ) as costed_goods_value,
        -- a returned line (negative quantity or value) gives its cost back
        cast(
            sum(
                case
                    when unit_cost_in_order_currency is not null
                        then (case when line_value < 0 then -abs(quantity) else abs(quantity) end)
                            * unit_cost_in_order_currency
                    else 0
                end
            ) as decimal(18, 4)
        ) as known_product_cost,
        cast(
            sum(
                case
                    when unit_cost_in_order_currency is null
                        then line_value * (1 - {{ default_margin_rate('channel', 'category') }})
                    else 0
                end
            ) as decimal(18, 4)
        ) as estimated_product_cost
    from converted
    group by source, source_order_id

)

select * from final
