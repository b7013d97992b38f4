-- Value stage and activity state per customer as of the run's as-of date.
--   value_stage:    prospect (known, never bought) → first_time (1) → repeat (2) → loyal (3+) → member
--   activity_state: new (first purchase within lifecycle_new_days), reactivated (bought within
--                   lifecycle_active_days after a gap longer than lifecycle_at_risk_days), active,
--                   at_risk, lapsed, churned (by days since the last purchase); prospect when none.

with customers as (

    select * from {{ ref('dim_customers') }}

),

purchases as (

    select customer_key, order_date
    from {{ ref('fct_orders') }}
    where customer_key is not null and is_purchase

),

previous_purchase_days as (

    -- the purchase day before the last one: the latest purchase dated before the customer's last
    -- purchase day (an aggregate joined on the customer, not a window sorting every purchase)
    select
        purchases.customer_key,
        max(purchases.order_date) as previous_purchase_date
    from purchases
    inner join customers on customers.customer_key = purchases.customer_key
    where purchases.order_date < customers.last_purchase_date
    group by purchases.customer_key

),

measured as (

    select
        customers.customer_key,
        customers.purchase_count,
        customers.is_member,
        customers.first_purchase_date,
        customers.last_purchase_date,
        previous_purchase_days.previous_purchase_date,
        {{ dbt.datediff('previous_purchase_days.previous_purchase_date', 'customers.last_purchase_date', 'day') }}
            as days_since_previous_purchase,
        {{ dbt.datediff('customers.first_purchase_date', as_of_date(), 'day') }} as days_since_first_purchase,
        {{ dbt.datediff('customers.last_purchase_date', as_of_date(), 'day') }} as days_since_last_purchase
    from customers
    left join previous_purchase_days on previous_purchase_days.customer_key = customers.customer_key

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
            else {{ activity_state(
                'days_since_first_purchase', 'days_since_last_purchase', 'days_since_previous_purchase'
            ) }}
        end as activity_state,
        purchase_count,
        first_purchase_date,
        last_purchase_date,
        days_since_last_purchase,
        days_since_previous_purchase
    from measured

)

select * from final
