-- New customers by acquisition channel and month, marketing spend, CAC, the 12-month LTV of those
-- customers, LTV:CAC and payback months.  Channels with customers but no spend (organic, store)
-- and spend with no new customers are both reported, never dropped.  CAC is NULL when a month
-- brought no new customers.  ltv_12m_complete says whether 12 months have passed for the cohort.
-- Revenue is net revenue: every valid order of the customer dated in the 365 days from the first
-- purchase, cancellation, refund and return documents included on their own dates.
-- Left-censored customers (first purchase in their source's warm-up, so maybe not acquired then)
-- are not new customers: they count in neither new_customers, CAC nor LTV.
-- The same figures in gross margin (fct_orders.gross_margin: net revenue less product cost) stand
-- beside the revenue ones (margin_ltv_12m, margin_ltv_to_cac, margin_payback_months), with the share
-- of the cohort's line value whose cost is known (margin_cost_coverage).

with orders as (

    select customer_key, order_date, net_revenue, gross_margin, goods_value, costed_goods_value
    from {{ ref('fct_orders') }}
    where customer_key is not null and is_valid

),

customers as (

    select
        customer_key,
        acquisition_channel,
        first_purchase_date,
        cast({{ dbt.date_trunc('month', 'first_purchase_date') }} as date) as acquisition_month
    from {{ ref('dim_customers') }}
    where purchase_count > 0 and not is_left_censored

),

spend as (

    select spend_month, channel, spend from {{ ref('stg_marketing__spend') }}

),

customer_months as (

    -- each customer's revenue by month since acquisition, first 12 months
    select
        customers.acquisition_channel as channel,
        customers.acquisition_month,
        orders.customer_key,
        {{ dbt.datediff('customers.acquisition_month', 'orders.order_date', 'month') }} as months_since,
        orders.net_revenue,
        orders.gross_margin,
        orders.goods_value,
        orders.costed_goods_value
    from orders
    inner join customers on customers.customer_key = orders.customer_key
    where orders.order_date >= customers.first_purchase_date
        and {{ dbt.datediff('customers.first_purchase_date', 'orders.order_date', 'day') }} < 365

),

acquired as (

    select
        channel,
        acquisition_month,
        count(distinct customer_key) as new_customers,
        sum(net_revenue) as revenue_12m,
        sum(gross_margin) as margin_12m,
        sum(goods_value) as goods_value_12m,
        sum(costed_goods_value) as costed_goods_value_12m
    from customer_months
    group by channel, acquisition_month

),

monthly as (

    select
        channel, acquisition_month, months_since, sum(net_revenue) as revenue, sum(gross_margin) as margin
    from customer_months
    group by channel, acquisition_month, months_since

),

cumulative as (

    select
        channel,
        acquisition_month,
        months_since,
        sum(revenue) over (
            partition by channel, acquisition_month order by months_since
            rows between unbounded preceding and current row
        ) as cumulative_revenue,
        sum(margin) over (
            partition by channel, acquisition_month order by months_since
            rows between unbounded preceding and current row
        ) as cumulative_margin
    from monthly

),

channel_months as (

    select
        coalesce(acquired.channel, spend.channel) as channel,
        coalesce(acquired.acquisition_month, spend.spend_month) as acquisition_month,
        coalesce(acquired.new_customers, 0) as new_customers,
        coalesce(acquired.revenue_12m, 0) as revenue_12m,
        coalesce(acquired.margin_12m, 0) as margin_12m,
        coalesce(acquired.goods_value_12m, 0) as goods_value_12m,
        coalesce(acquired.costed_goods_value_12m, 0) as costed_goods_value_12m,
        coalesce(spend.spend, 0) as marketing_spend,
        spend.spend is not null as has_spend
    from acquired
    full outer join spend
        on spend.channel = acquired.channel and spend.spend_month = acquired.acquisition_month

),

with_cac as (

    select
        channel_months.*,
        case when new_customers > 0 and has_spend then marketing_spend / new_customers end as cac,
        case when new_customers > 0 then revenue_12m / new_customers end as ltv_12m,
        case when new_customers > 0 then margin_12m / new_customers end as margin_ltv_12m
    from channel_months

),

payback as (

    select
        with_cac.channel,
        with_cac.acquisition_month,
        min(cumulative.months_since) as payback_months
    from with_cac
    inner join cumulative
        on cumulative.channel = with_cac.channel and cumulative.acquisition_month = with_cac.acquisition_month
    where with_cac.cac is not null
        and cumulative.cumulative_revenue / with_cac.new_customers >= with_cac.cac
    group by with_cac.channel, with_cac.acquisition_month

),

margin_payback as (

    select
        with_cac.channel,
        with_cac.acquisition_month,
        min(cumulative.months_since) as margin_payback_months
    from with_cac
    inner join cumulative
        on cumulative.channel = with_cac.channel and cumulative.acquisition_month = with_cac.acquisition_month
    where with_cac.cac is not null
        and cumulative.cumulative_margin / with_cac.new_customers >= with_cac.cac
    group by with_cac.channel, with_cac.acquisition_month

),

final as (

    select
        with_cac.channel,
        with_cac.acquisition_month,
        with_cac.new_customers,
        cast(with_cac.marketing_spend as decimal(18, 2)) as marketing_spend,
        cast(with_cac.cac as decimal(18, 2)) as cac,
        cast(with_cac.ltv_12m as decimal(18, 2)) as ltv_12m,
        cast(with_cac.ltv_12m as double) / nullif(cast(with_cac.cac as double), 0) as ltv_to_cac,
        payback.payback_months,
        cast(with_cac.margin_ltv_12m as decimal(18, 2)) as margin_ltv_12m,
        cast(with_cac.margin_ltv_12m as double) / nullif(cast(with_cac.cac as double), 0) as margin_ltv_to_cac,
        margin_payback.margin_payback_months,
        cast(with_cac.goods_value_12m as decimal(18, 2)) as goods_value_12m,
        case when with_cac.goods_value_12m > 0
                then cast(with_cac.costed_goods_value_12m as double) / cast(with_cac.goods_value_12m as double)
        end as margin_cost_coverage,
        {{ dbt.dateadd('month', 12, 'with_cac.acquisition_month') }} <= {{ as_of_date() }} as ltv_12m_complete,
        {{ is_partial_month('with_cac.acquisition_month') }} as is_partial_period
    from with_cac
    left join payback
        on payback.channel = with_cac.channel and payback.acquisition_month = with_cac.acquisition_month
    left join margin_payback
        on margin_payback.channel = with_cac.channel
        and margin_payback.acquisition_month = with_cac.acquisition_month

)

select * from final
