-- Exchange-rate periods: each rate holds from its date until the next rate of that currency.

with source as (

    select * from {{ source('fx', 'exchange_rates') }}

),

deduplicated as (

    select currency, date as valid_from, max(rate) as rate
    from source
    group by currency, date

),

final as (

    select
        currency,
        valid_from,
        lead(valid_from) over (partition by currency order by valid_from) as valid_to,
        rate
    from deduplicated

)

select * from final
