with source as (

    select * from {{ source('traffic', 'store_traffic') }}

),

final as (

    select
        date as traffic_date,
        store as store_location,
        sum(visitors) as visitors,
        sum(entries) as entries
    from source
    group by date, store

)

select * from final
