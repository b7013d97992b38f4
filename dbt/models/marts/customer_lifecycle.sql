-- Value stage and activity state per customer as of the run's as-of date.
--   value_stage:    prospect (known, never bought) → first_time (1) → repeat (2) → loyal (3+) → member
--   activity_state: new (first purchase within lifecycle_new_days), reactivated (bought within
--                   lifecycle_active_days after a gap longer than lifecycle_at_risk_days), active,
--                   at_risk, lapsed, churned (by days since the last purchase); prospect when none.

with customers as (

    select * from {{ ref('dim_customers') }}

),

purchase_days as (

    select distinct customer_key, order_date
    from {{ ref('fct_orders') }}
    where customer_key is not null and is_purchase

),

gaps as (

    select
        customer_key,
        order_date,
        lag(order_date) over (partition by customer_key order by order_date) as previous_purchase_date,
        row_number() over (partition by customer_key order by order_date desc) as recency_rank
    from purchase_days

),

last_gap as (

    select
        customer_key,
        previous_purchase_date,
        {{ dbt.datediff('previous_purchase_date', 'order_date', 'day') }} as days_since_previous_purchase
    from gaps
    where recency_rank = 1

),

measured as (

    select
        customers.customer_key,
        customers.purchase_count,
        customers.is_member,
        customers.first_purchase_date,
        customers.last_purchase_date,
        last_gap.previous_purchase_date,
        last_gap.days_since_previous_purchase,
        {{ dbt.datediff('customers.first_purchase_date', as_of_date(), 'day') }} as days_since_first_purchase,
        {{ dbt.datediff('customers.last_purchase_date', as_of_date(), 'day') }} as days_since_last_purchase
    from customers
    left join last_gap on last_gap.customer_key = customers.customer_key

),

final as (

    select
        customer_key,
        {{ as_of_date() }} as as_of_date,
        case
            when is_member then 'member'
            when purchase_count = 0 then 'prospect'
            when purchase_count = 1 then 'first_time'
            when purchase_count = 2 then 'repeat'
            else 'loyal'
        end as value_stage,
        case
            when purchase_count = 0 then 'prospect'
            else {{ activity_state('days_since_first_purchase', 'days_since_last_purchase', 'days_since_previous_purchase') }}
        end as activity_state,
        purchase_count,
        first_purchase_date,
        last_purchase_date,
        days_since_last_purchase,
        days_since_previous_purchase
    from measured

)

select * from final
