-- One row per purchase of a known customer, numbered in order, with the customer's first
-- purchase, first channel and acquisition cohort (month of the first purchase).  The base of
-- the ladder, cohort and value marts.  is_left_censored: the first purchase falls in the warm-up of
-- its source (int_source_coverage), so the customer may have bought before the data begins.

with orders as (

    select * from {{ ref('fct_orders') }}
    where customer_key is not null and is_purchase

),

numbered as (

    -- the first purchase's date and channel from the same window as the numbering (one sort, no join back)
    select
        customer_key,
        order_key,
        order_date,
        channel,
        utm_source,
        net_revenue,
        cast(row_number() over customer_purchases as bigint) as purchase_number,
        first_value(order_date) over customer_purchases as first_purchase_date,
        first_value(channel) over customer_purchases as first_channel,
        first_value(source) over customer_purchases as first_source
    from orders
    -- (the default frame ends at the current row and always holds the first one; ranking functions on
    -- Spark accept no other frame)
    window customer_purchases as (partition by customer_key order by ordered_at, order_key)

),

final as (

    select
        numbered.customer_key,
        numbered.order_key,
        numbered.purchase_number,
        numbered.order_date,
        numbered.channel,
        numbered.utm_source,
        numbered.net_revenue,
        numbered.first_purchase_date,
        numbered.first_channel,
        cast({{ dbt.date_trunc('month', 'numbered.first_purchase_date') }} as date) as cohort_month,
        cast({{ dbt.date_trunc('month', 'numbered.order_date') }} as date) as order_month,
        numbered.first_purchase_date < coverage.warm_up_ends_on as is_left_censored
    from numbered
    inner join {{ ref('int_source_coverage') }} as coverage on coverage.source = numbered.first_source

)

select * from final
