-- One row per source: the first order date seen in it (any order, anonymous or cancelled included:
-- it marks where the source's history begins) and the end of its warm-up.  A customer whose first
-- purchase in the data falls before warm_up_ends_on may have bought before the history begins
-- (left-censored), so they are not counted as new; partial periods start from the earliest source.

with orders as (

    select source, order_date from {{ ref('fct_orders') }}

),

final as (

    select
        source,
        min(order_date) as first_order_date,
        cast({{ var('new_customer_warm_up_days') }} as {{ dbt.type_bigint() }}) as warm_up_days,
        cast({{ dbt.dateadd('day', var('new_customer_warm_up_days'), 'min(order_date)') }} as date) as warm_up_ends_on
    from orders
    group by source

)

select * from final
