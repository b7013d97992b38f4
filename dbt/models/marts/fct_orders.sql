-- One row per order or sale across channels, as of the run's as-of date.

with orders as (

    select * from {{ ref('int_orders_identified') }}

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
        utm_source,
        line_count,
        cast(units as decimal(18, 3)) as units
    from orders
    where {{ to_date('ordered_at') }} <= {{ as_of_date() }}

)

select * from final
