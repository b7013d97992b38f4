-- Online-only, store-only and omnichannel customers: how many, what they are worth, and the
-- value per customer as a multiple of single-channel customers'.

with customers as (

    select * from {{ ref('dim_customers') }}
    where purchase_count > 0

),

grouped as (

    select
        case channels_used
            when 'online+store' then 'omnichannel'
            when 'online' then 'online_only'
            else 'store_only'
        end as customer_group,
        count(*) as customers,
        sum(net_revenue) as net_revenue,
        sum(purchase_count) as purchases
    from customers
    group by 1

),

single_channel as (

    select sum(net_revenue) / sum(customers) as value_per_customer
    from grouped
    where customer_group in ('online_only', 'store_only')

),

final as (

    select
        grouped.customer_group,
        grouped.customers,
        cast(grouped.net_revenue as decimal(18, 2)) as net_revenue,
        cast(grouped.net_revenue / grouped.customers as decimal(18, 2)) as value_per_customer,
        cast(grouped.purchases as double) / grouped.customers as purchases_per_customer,
        cast(grouped.net_revenue / grouped.customers as double)
        / nullif(cast(single_channel.value_per_customer as double), 0) as multiple_vs_single_channel
    from grouped
    cross join single_channel

)

select * from final
