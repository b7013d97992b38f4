-- One row per acquisition channel: channel_economics summed over the acquisition months whose
-- 12-month LTV is complete (over every month while none is), with the CAC, 12-month LTV and
-- LTV:CAC of those months together. This is what the LTV:CAC chart of the run report draws.
-- CAC, LTV and their ratio are left unrounded (double): they are ratios of the sums, not sums of
-- the monthly ratios, which channel_economics publishes rounded to cents.  The margin figures stand
-- beside the revenue ones, with the share of line value whose product cost is known.

with channel_months as (

    select * from {{ ref('channel_economics') }}

),

months_in_scope as (

    -- complete months as soon as there is one; a young shop sees its still-accruing months instead
    select count(case when ltv_12m_complete then 1 end) > 0 as over_complete_months
    from channel_months

),

in_scope as (

    select channel_months.*, months_in_scope.over_complete_months
    from channel_months
    cross join months_in_scope
    where channel_months.ltv_12m_complete or not months_in_scope.over_complete_months

),

by_channel as (

    select
        channel,
        over_complete_months,
        count(distinct case when new_customers > 0 then acquisition_month end) as acquisition_months,
        sum(new_customers) as new_customers,
        sum(marketing_spend) as marketing_spend,
        -- ltv_12m is per new customer of the month: times new_customers gives the month's revenue back
        sum(coalesce(ltv_12m, 0) * new_customers) as revenue_12m,
        sum(coalesce(margin_ltv_12m, 0) * new_customers) as margin_12m,
        sum(goods_value_12m) as goods_value_12m,
        sum(coalesce(margin_cost_coverage, 0) * goods_value_12m) as costed_goods_value_12m
    from in_scope
    group by channel, over_complete_months

),

with_ratios as (

    select
        by_channel.*,
        case when new_customers > 0 and marketing_spend > 0
                then cast(marketing_spend as double) / cast(new_customers as double)
        end as cac,
        case when new_customers > 0
                then cast(revenue_12m as double) / cast(new_customers as double)
        end as ltv_12m,
        case when new_customers > 0
                then cast(margin_12m as double) / cast(new_customers as double)
        end as margin_ltv_12m
    from by_channel

),

final as (

    select
        channel,
        cast(acquisition_months as bigint) as acquisition_months,
        cast(new_customers as bigint) as new_customers,
        cast(marketing_spend as decimal(18, 2)) as marketing_spend,
        cast(revenue_12m as decimal(18, 2)) as revenue_12m,
        cac,
        ltv_12m,
        case when cac > 0 then ltv_12m / cac end as ltv_to_cac,
        cast(margin_12m as decimal(18, 2)) as margin_12m,
        margin_ltv_12m,
        case when cac > 0 then margin_ltv_12m / cac end as margin_ltv_to_cac,
        case when goods_value_12m > 0
                then cast(costed_goods_value_12m as double) / cast(goods_value_12m as double)
        end as margin_cost_coverage,
        marketing_spend > 0 as has_spend,
        over_complete_months as ltv_12m_complete
    from with_ratios

)

select * from final
