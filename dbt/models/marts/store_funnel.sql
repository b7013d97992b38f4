-- The revenue formula per store and day, where footfall is counted (inbox/traffic/):
--   revenue = visitors × entry rate × conversion rate × average transaction value
-- entry rate = entries ÷ visitors (1 when the counter gives no entries), conversion =
-- transactions ÷ entries, ATV = net revenue ÷ transactions.  Days are the store's local days.
-- Days with sales but no count (or a count but no sales) are kept with the rates left empty.

with sale_days as (

    -- one row per sale, rolled up from its payment lines (not the 10M deduplicated raw lines again)
    select source_order_id as transaction_id, sale_store_location as store_location, sale_local_date as local_date
    from {{ ref('int_square__sales_rolled_up') }}
    where sale_local_date is not null

),

store_orders as (

    select source_order_id as transaction_id, net_revenue
    from {{ ref('fct_orders') }}
    where source = 'square' and is_valid

),

daily_sales as (

    select
        sale_days.store_location,
        sale_days.local_date,
        count(*) as transactions,
        sum(store_orders.net_revenue) as net_revenue
    from sale_days
    inner join store_orders on store_orders.transaction_id = sale_days.transaction_id
    where sale_days.local_date <= {{ as_of_date() }}
    group by sale_days.store_location, sale_days.local_date

),

traffic as (

    select * from {{ ref('stg_traffic__store_traffic') }}
    where traffic_date <= {{ as_of_date() }}

),

joined as (

    select
        coalesce(traffic.store_location, daily_sales.store_location) as store_location,
        coalesce(traffic.traffic_date, daily_sales.local_date) as local_date,
        traffic.visitors,
        coalesce(traffic.entries, traffic.visitors) as entries,
        coalesce(daily_sales.transactions, 0) as transactions,
        coalesce(daily_sales.net_revenue, 0) as net_revenue
    from traffic
    full outer join daily_sales
        on daily_sales.store_location = traffic.store_location and daily_sales.local_date = traffic.traffic_date

),

final as (

    select
        store_location,
        local_date,
        cast(visitors as bigint) as visitors,
        cast(entries as bigint) as entries,
        transactions,
        cast(net_revenue as decimal(18, 2)) as net_revenue,
        cast(entries as double) / nullif(visitors, 0) as entry_rate,
        cast(transactions as double) / nullif(entries, 0) as conversion_rate,
        cast(net_revenue as double) / nullif(transactions, 0) as average_transaction_value,
        visitors * (cast(entries as double) / nullif(visitors, 0))
        * (cast(transactions as double) / nullif(entries, 0))
        * (cast(net_revenue as double) / nullif(transactions, 0)) as revenue_from_formula,
        {{ is_partial_period('local_date', 'local_date') }} as is_partial_period
    from joined

)

select * from final
