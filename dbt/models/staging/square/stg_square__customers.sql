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
        email_subscription_status,
        case email_subscription_status
            when 'subscribed' then true
            when 'unsubscribed' then false
        end as accepts_marketing,
        _file_id as file_id
    from source

)

select * from final
