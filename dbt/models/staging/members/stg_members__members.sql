-- One row per member id; where a roster lists a member twice the newest file wins.

with source as (

    select * from {{ source('members', 'members') }}

),

ranked as (

    select
        source.*,
        row_number() over (partition by member_id order by _file_id desc, _line_number desc) as recency_rank
    from source

),

final as (

    select
        member_id,
        email as email_raw,
        phone as phone_raw,
        joined_on,
        plan,
        annual_fee,
        currency,
        expires_on,
        coalesce(renewal_count, 0) as renewal_count,
        accepts_marketing,
        -- name and address (optional roster columns; int_customer_profiles resolves them per
        -- customer), dated by joined_on: the roster carries no date of its own
        {{ squish('first_name') }} as first_name,
        {{ squish('last_name') }} as last_name,
        {{ squish('city') }} as city,
        {{ squish('region') }} as region,
        upper({{ squish('postal_code') }}) as postal_code,
        {{ squish('country') }} as country_raw,
        joined_on as observed_on,
        _file_id as file_id
    from ranked
    where recency_rank = 1

)

select * from final
