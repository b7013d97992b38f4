-- Membership per customer (a person can hold more than one member id; the latest expiry counts).

with members as (

    select * from {{ ref('stg_members__members') }}

),

identifiers as (

    select * from {{ ref('stg_identity__identifiers') }}
    where customer_key is not null and id_type = 'member_id' and identifier_source = 'members'

),

final as (

    select
        identifiers.customer_key,
        min(members.member_id) as member_id,
        min(members.joined_on) as member_since,
        max(members.expires_on) as member_expires_on,
        max(members.renewal_count) as member_renewals,
        max(members.plan) as member_plan
    from members
    inner join identifiers on identifiers.raw_value = members.member_id
    group by identifiers.customer_key

)

select * from final
