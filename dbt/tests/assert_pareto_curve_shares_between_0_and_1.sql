-- The cumulative revenue share lies within 0..1 (its running sum may overshoot 1 by rounding).
select 'cumulative_revenue_share' as col, cumulative_revenue_share as value from {{ ref('pareto_curve') }}
where cumulative_revenue_share not between 0 and 1.000000001
