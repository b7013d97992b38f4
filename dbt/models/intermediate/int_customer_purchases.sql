-- One row per purchase of a known customer, numbered in order, with the customer's first
-- purchase, first channel and acquisition cohort (month of the first purchase).  The base of
-- the ladder, cohort and value marts.

with orders as (

    select * from {{ ref('fct_orders') }}
    where customer_key is not null and is_purchase

),

numbered as (

    select
        customer_key,
        order_key,
        order_date,
        channel,
        utm_source,
        net_revenue,
        cast(row_number() over (partition by customer_key order by ordered_at, order_key) as bigint) as purchase_number
    from orders

),

firsts as (

    select customer_key, order_date as first_purchase_date, channel as first_channel
    from numbered
    where purchase_number = 1

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
        firsts.first_purchase_date,
        firsts.first_channel,
        cast({{ dbt.date_trunc('month', 'firsts.first_purchase_date') }} as date) as cohort_month,
        cast({{ dbt.date_trunc('month', 'numbered.order_date') }} as date) as order_month
    from numbered
    inner join firsts on firsts.customer_key = numbered.customer_key

)

select * from final
