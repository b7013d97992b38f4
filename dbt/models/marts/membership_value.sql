-- Membership value over the 12 months before the as-of date, for all channels and per channel
-- (members and non-members compared over the same period and the same channels):
--   penetration        active members ÷ active customers (active = bought in the period)
--   value per member / per non-member, and the member spend multiple
--   conversion_rate    customers who joined in the period ÷ active customers who were not members
--                      when the period began (same on every row: it is not per channel)
--   renewal_rate       members who renewed at least once ÷ members whose first year has ended
-- is_partial_period: the data does not cover the whole 12 months (it begins later, or the as-of date
-- is still going on).

with orders as (

    select * from {{ ref('fct_orders') }}
    where customer_key is not null and is_valid
        and order_date > {{ dbt.dateadd('day', -365, as_of_date()) }}
        and order_date <= {{ as_of_date() }}

),

customers as (

    select * from {{ ref('dim_customers') }}

),

memberships as (

    select * from {{ ref('int_customer_memberships') }}

),

spend_rows as (

    select customer_key, channel, net_revenue from orders
    union all
    select customer_key, 'all' as channel, net_revenue from orders

),

per_customer as (

    select
        spend_rows.channel,
        spend_rows.customer_key,
        customers.is_member,
        sum(spend_rows.net_revenue) as spend
    from spend_rows
    inner join customers on customers.customer_key = spend_rows.customer_key
    group by spend_rows.channel, spend_rows.customer_key, customers.is_member

),

per_channel as (

    select
        channel,
        count(*) as active_customers,
        count(case when is_member then 1 end) as active_members,
        sum(case when is_member then spend else 0 end) as member_spend,
        sum(case when not is_member then spend else 0 end) as non_member_spend
    from per_customer
    group by channel

),

conversion as (

    select
        cast(count(
            case
                when memberships.member_since > {{ dbt.dateadd('day', -365, as_of_date()) }}
                    and memberships.member_since <= {{ as_of_date() }} then 1
            end
        ) as double)
        / nullif(count(*), 0) as conversion_rate
    from (select distinct customer_key from orders) as active
    left join memberships on memberships.customer_key = active.customer_key
    where memberships.member_since is null
        or memberships.member_since > {{ dbt.dateadd('day', -365, as_of_date()) }}

),

renewal as (

    select
        cast(count(case when member_renewals >= 1 then 1 end) as double) / nullif(count(*), 0) as renewal_rate
    from memberships
    where {{ dbt.dateadd('day', 365, 'member_since') }} <= {{ as_of_date() }}

),

final as (

    select
        per_channel.channel,
        per_channel.active_customers,
        per_channel.active_members,
        cast(per_channel.active_members as double) / per_channel.active_customers as penetration,
        cast(per_channel.member_spend / nullif(per_channel.active_members, 0) as decimal(18, 2)) as value_per_member,
        cast(
            per_channel.non_member_spend / nullif(per_channel.active_customers - per_channel.active_members, 0)
            as decimal(18, 2)
        ) as value_per_non_member,
        (cast(per_channel.member_spend as double) / nullif(per_channel.active_members, 0))
        / nullif(
            cast(per_channel.non_member_spend as double)
            / nullif(per_channel.active_customers - per_channel.active_members, 0),
            0
        ) as member_spend_multiple,
        conversion.conversion_rate,
        renewal.renewal_rate,
        {{ as_of_date() }} as as_of_date,
        {{ is_partial_period(dbt.dateadd('day', -364, as_of_date()), as_of_date()) }} as is_partial_period
    from per_channel
    cross join conversion
    cross join renewal

)

select * from final
