{{ config(store_failures=(target.type == 'duckdb'), store_failures_as='view') }}
-- Membership penetration, conversion rate and renewal rate are shares: within 0..1.
select 'penetration' as col, penetration as value from {{ ref('membership_value') }}
where penetration not between 0 and 1
union all
select 'renewal_rate' as col, renewal_rate as value from {{ ref('membership_value') }}
where renewal_rate not between 0 and 1
union all
select 'conversion_rate' as col, conversion_rate as value from {{ ref('membership_value') }}
where conversion_rate not between 0 and 1
