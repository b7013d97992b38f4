-- One row per customer_key: purchases, channels, membership, consent, masked contact fields.

with contacts as (

    select * from {{ ref('int_customer_contacts') }}

),

memberships as (

    select * from {{ ref('int_customer_memberships') }}

),

pareto as (

    select customer_key, is_super_user from {{ ref('pareto_curve') }}

),

orders as (

    select * from {{ ref('fct_orders') }}
    where customer_key is not null and is_valid

),

purchase_stats as (

    select
        customer_key,
        min(case when is_purchase then ordered_at end) as first_purchase_at,
        max(case when is_purchase then ordered_at end) as last_purchase_at,
        count(case when is_purchase then 1 end) as purchase_count,
        count(case when is_purchase and channel = 'online' then 1 end) as online_purchases,
        count(case when is_purchase and channel = 'store' then 1 end) as store_purchases,
        sum(net_revenue) as net_revenue
    from orders
    group by customer_key

),

first_purchases as (

    select
        customer_key,
        channel as first_channel,
        case when channel = 'store' then 'store' else coalesce(utm_source, 'unattributed') end
            as acquisition_channel,
        row_number() over (partition by customer_key order by ordered_at, order_key) as purchase_rank
    from orders
    where is_purchase

),

final as (

    select
        contacts.customer_key,
        {{ to_date('purchase_stats.first_purchase_at') }} as first_purchase_date,
        {{ to_date('purchase_stats.last_purchase_at') }} as last_purchase_date,
        coalesce(purchase_stats.purchase_count, 0) as purchase_count,
        cast(coalesce(purchase_stats.net_revenue, 0) as decimal(18, 2)) as net_revenue,
        case
            when purchase_stats.online_purchases > 0 and purchase_stats.store_purchases > 0 then 'online+store'
            when purchase_stats.online_purchases > 0 then 'online'
            when purchase_stats.store_purchases > 0 then 'store'
            else 'none'
        end as channels_used,
        first_purchases.first_channel,
        first_purchases.acquisition_channel,
        memberships.member_id is not null as has_membership,
        coalesce(memberships.member_expires_on >= {{ as_of_date() }}
                 and memberships.member_since <= {{ as_of_date() }}, false) as is_member,
        memberships.member_since,
        memberships.member_expires_on,
        coalesce(pareto.is_super_user, false) as is_super_user,
        contacts.accepts_marketing,
        {{ mask_email('contacts.email') }} as email_masked,
        {{ mask_phone('contacts.phone') }} as phone_masked
    from contacts
    left join purchase_stats on purchase_stats.customer_key = contacts.customer_key
    left join first_purchases
        on first_purchases.customer_key = contacts.customer_key and first_purchases.purchase_rank = 1
    left join memberships on memberships.customer_key = contacts.customer_key
    left join pareto on pareto.customer_key = contacts.customer_key

)

select * from final
