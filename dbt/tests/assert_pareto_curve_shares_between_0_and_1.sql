{{ config(store_failures=(target.type == 'duckdb'), store_failures_as='view') }}
-- The cumulative shares of customers and revenue lie within 0..1 (the revenue share's running sum
-- may overshoot 1 by rounding).
select 'cumulative_customer_share' as col, cumulative_customer_share as value from {{ ref('pareto_curve') }}
where cumulative_customer_share not between 0 and 1
union all
select 'cumulative_revenue_share' as col, cumulative_revenue_share as value from {{ ref('pareto_curve') }}
where cumulative_revenue_share not between 0 and 1.000000001
