-- Every share and rate of the value marts lies within 0..1.
select 'repeat_purchase_ladder.repeat_rate' as col, repeat_rate as value from {{ ref('repeat_purchase_ladder') }} where repeat_rate not between 0 and 1
union all
-- a return within the window is also a return by the as-of date
select 'repeat_purchase_ladder.repeat_rate_by_as_of', repeat_rate_by_as_of from {{ ref('repeat_purchase_ladder') }} where repeat_rate_by_as_of not between repeat_rate and 1
union all
select 'cohort_retention.share_retained', share_retained from {{ ref('cohort_retention') }} where share_retained not between 0 and 1
union all
select 'pareto_curve.cumulative_revenue_share', cumulative_revenue_share from {{ ref('pareto_curve') }} where cumulative_revenue_share not between 0 and 1.000000001
union all
select 'membership_value.penetration', penetration from {{ ref('membership_value') }} where penetration not between 0 and 1
union all
select 'membership_value.renewal_rate', renewal_rate from {{ ref('membership_value') }} where renewal_rate not between 0 and 1
union all
select 'revenue_identification.anonymous_order_share', anonymous_order_share from {{ ref('revenue_identification') }} where anonymous_order_share not between 0 and 1
union all
select 'store_funnel.conversion_rate', conversion_rate from {{ ref('store_funnel') }} where conversion_rate > 1 and entries >= transactions
