{{ config(store_failures=(target.type == 'duckdb'), store_failures_as='view') }}
-- The anonymous shares of orders and of revenue lie within 0..1.
select 'anonymous_order_share' as col, anonymous_order_share as value from {{ ref('revenue_identification') }}
where anonymous_order_share not between 0 and 1
union all
select 'anonymous_revenue_share' as col, anonymous_revenue_share as value from {{ ref('revenue_identification') }}
where anonymous_revenue_share not between 0 and 1
