-- Normalised contact points per customer, their hashes, and marketing consent.
-- Stays in the working warehouse (intermediate schema): the serving warehouse gets masked
-- values only.  Consent: the most recent Shopify order's "Accepts Marketing" when the customer
-- has ordered online; otherwise the membership roster; otherwise Square's e-mail subscription.

with identifiers as (

    select * from {{ ref('stg_identity__identifiers') }}
    where customer_key is not null

),

orders as (

    select * from {{ ref('int_orders_identified') }}

),

members as (

    select * from {{ ref('stg_members__members') }}

),

square_customers as (

    select * from {{ ref('stg_square__customers') }}

),

emails as (

    select customer_key, min(normalised_value) as email
    from identifiers where id_type = 'email'
    group by customer_key

),

phones as (

    select customer_key, min(normalised_value) as phone
    from identifiers where id_type = 'phone'
    group by customer_key

),

online_consent_ranked as (

    select
        customer_key,
        accepts_marketing,
        row_number() over (partition by customer_key order by ordered_at desc, order_key desc) as recency_rank
    from orders
    where customer_key is not null and source = 'shopify' and accepts_marketing is not null

),

member_consent as (

    select identifiers.customer_key, {{ any_true('members.accepts_marketing') }} as accepts_marketing
    from members
    inner join identifiers
        on identifiers.id_type = 'member_id' and identifiers.identifier_source = 'members'
        and identifiers.raw_value = members.member_id
    where members.accepts_marketing is not null
    group by identifiers.customer_key

),

square_consent as (

    select identifiers.customer_key, {{ any_true('square_customers.accepts_marketing') }} as accepts_marketing
    from square_customers
    inner join identifiers
        on identifiers.id_type = 'square_customer_id' and identifiers.identifier_source = 'square_customers'
        and identifiers.raw_value = square_customers.square_customer_id
    where square_customers.accepts_marketing is not null
    group by identifiers.customer_key

),

customers as (

    select distinct customer_key from identifiers

),

final as (

    select
        customers.customer_key,
        emails.email,
        phones.phone,
        {{ sha256_hex('emails.email') }} as email_sha256,
        {{ sha256_hex('phones.phone') }} as phone_sha256,
        coalesce(online.accepts_marketing, member_consent.accepts_marketing, square_consent.accepts_marketing, false)
            as accepts_marketing
    from customers
    left join emails on emails.customer_key = customers.customer_key
    left join phones on phones.customer_key = customers.customer_key
    left join online_consent_ranked as online
        on online.customer_key = customers.customer_key and online.recency_rank = 1
    left join member_consent on member_consent.customer_key = customers.customer_key
    left join square_consent on square_consent.customer_key = customers.customer_key

)

select * from final
