-- The anonymous share of orders lies within 0..1.
select 'anonymous_order_share' as col, anonymous_order_share as value from {{ ref('revenue_identification') }}
where anonymous_order_share not between 0 and 1
