{{ config(
    materialized=incremental_if_supported(),
    unique_key=['source', 'source_order_id'],
    incremental_strategy='delete+insert',
) }}
{%- set margin_rates = tojson(var('default_gross_margin_rate'), sort_keys=True) | replace("'", "''") %}
-- One row per order (source, source_order_id): the cost of the goods on its lines, in the order's
-- own currency.  Each line takes its SKU's unit cost on the order date (the cost period holding
-- that date; the SKU's first cost also before it); a cost in another currency is converted through
-- the exchange rates of that date, and is unknown when a rate is missing.  A line without a known
-- cost is costed at the default margin rate (var default_gross_margin_rate): its value times
-- (1 - rate).  Returned lines (negative quantity or value) give their cost back.
-- Incremental (on DuckDB): a run re-costs the orders in export files loaded since the last build,
-- found as the rolled-up order models find them, and every order when a cost export or a rates file
-- was loaded since, or the default margin rates changed (margin_rates): a new cost can re-price
-- old orders (a SKU's first cost covers them).  built_at marks the build that costed each order, so
-- fct_orders takes the re-costed orders again.
-- Line value is what the order's revenue is made of: Shopify quantity × price (before order
-- discounts), Square Gross Sales of a payment line and Net Sales of a refund line, a mapped
-- export's line amount.

{%- set recost_all %}
    (
        {{ newest_cost_file_id() }} > {{ max_built('costs_file_id') }}
        or (select coalesce(max(_file_id), 0) from {{ source('fx', 'exchange_rates') }})
        > {{ max_built('rates_file_id') }}
        or exists (select 1 from {{ this }} where margin_rates <> '{{ margin_rates }}')
    )
{%- endset %}

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
        created_at as line_at,
        file_id
    from {{ ref('stg_shopify__order_lines') }}
    {%- if is_incremental() %}
    -- staging keeps each order's rows from the newest file containing it
    where file_id > {{ max_built('newest_file_id') }} or {{ recost_all }}
    {%- endif %}

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
        sold_at as line_at,
        file_id
    from {{ ref('stg_square__item_lines') }}
    {%- if is_incremental() %}
    -- every line of the transactions with a line in a newer file (a refund re-costs its sale)
    where transaction_id in (
            select transaction_id from {{ source('square', 'square_item_lines') }}
            where _file_id > {{ max_built('newest_file_id') }}
        )
        or {{ recost_all }}
    {%- endif %}

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
        ordered_at as line_at,
        file_id
    from (select *, line_amount as line_value from {{ ref('stg_generic__order_lines') }}) as generic_lines
    {%- if is_incremental() %}
    where file_id > {{ max_built('newest_file_id') }} or {{ recost_all }}
    {%- endif %}

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
        ) as estimated_product_cost,
        max(file_id) as newest_file_id,
        {{ newest_cost_file_id() }} as costs_file_id,
        (select coalesce(max(_file_id), 0) from {{ source('fx', 'exchange_rates') }}) as rates_file_id,
        '{{ margin_rates }}' as margin_rates,
        {{ build_started_at() }} as built_at
    from converted
    group by source, source_order_id

)

select * from final
