with source as (

    select * from {{ source('marketing', 'marketing_spend') }}

),

final as (

    select
        month as spend_month,
        channel,
        sum(spend) as spend,
        max(currency) as currency
    from source
    group by month, channel

)

select * from final
