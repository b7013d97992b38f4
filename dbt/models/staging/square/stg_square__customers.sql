{%- set square_country = "'" ~ var('square_country') ~ "'" if var('square_country', none) else 'null' %}

with source as (

    select * from {{ source('square', 'square_customers') }}

),

final as (

    select
        square_customer_id,
        reference_id,
        email as email_raw,
        phone as phone_raw,
        first_visit,
        last_visit,
        email_subscription_status,
        case email_subscription_status
            when 'subscribed' then true
            when 'unsubscribed' then false
        end as accepts_marketing,
        -- name and address as on the profile (int_customer_profiles resolves them per customer); the
        -- export has no country column: the directory's country is var square_country.  Dated by
        -- the last visit (the newest date Square saw the profile), else the first.
        {{ squish('first_name') }} as first_name,
        {{ squish('last_name') }} as last_name,
        {{ squish('city') }} as city,
        {{ squish('region') }} as region,
        upper({{ squish('postal_code') }}) as postal_code,
        case
            when {{ squish('city') }} is not null or {{ squish('region') }} is not null
                or {{ squish('postal_code') }} is not null
                then cast({{ square_country }} as {{ dbt.type_string() }})
        end as country_raw,
        coalesce(last_visit, first_visit) as observed_on,
        _file_id as file_id
    from source

)

select * from final
