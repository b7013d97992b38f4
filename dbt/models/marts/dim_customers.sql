-- One row per customer_key: purchases, channels, membership, consent, masked contact fields.
-- Purchases come from the per-customer aggregate (int_customer_order_summary) and the first
-- purchase from int_customer_purchases, not from every order again.

with contacts as (

    select * from {{ ref('int_customer_contacts') }}

),

memberships as (

    select * from {{ ref('int_customer_memberships') }}

),

pareto as (

    select customer_key, is_super_user from {{ ref('pareto_curve') }}

),

order_summary as (

    select * from {{ ref('int_customer_order_summary') }}

),

first_purchases as (

    -- purchase_number 1: the first purchase by time (then order key)
    select
        customer_key,
        channel as first_channel,
        case when channel = 'store' then 'store' else coalesce(utm_source, 'unattributed') end
            as acquisition_channel,
        is_left_censored
    from {{ ref('int_customer_purchases') }}
    where purchase_number = 1

),

final as (

    select
        contacts.customer_key,
        order_summary.first_purchase_date,
        order_summary.last_purchase_date,
        coalesce(order_summary.purchases, 0) as purchase_count,
        cast(coalesce(order_summary.net_revenue, 0) as decimal(18, 2)) as net_revenue,
        case
            when order_summary.online_purchases > 0 and order_summary.store_purchases > 0 then 'online+store'
            when order_summary.online_purchases > 0 then 'online'
            when order_summary.store_purchases > 0 then 'store'
            else 'none'
        end as channels_used,
        first_purchases.first_channel,
        first_purchases.acquisition_channel,
        coalesce(first_purchases.is_left_censored, false) as is_left_censored,
        memberships.member_id is not null as has_membership,
        coalesce(
            memberships.member_expires_on >= {{ as_of_date() }}
            and memberships.member_since <= {{ as_of_date() }},
            false
        ) as is_member,
        memberships.member_since,
        memberships.member_expires_on,
        coalesce(pareto.is_super_user, false) as is_super_user,
        contacts.accepts_marketing,
        {{ mask_email('contacts.email') }} as email_masked,
        {{ mask_phone('contacts.phone') }} as phone_masked
    from contacts
    left join order_summary on order_summary.customer_key = contacts.customer_key
    left join first_purchases on first_purchases.customer_key = contacts.customer_key
    left join memberships on memberships.customer_key = contacts.customer_key
    left join pareto on pareto.customer_key = contacts.customer_key

)

select * from final
