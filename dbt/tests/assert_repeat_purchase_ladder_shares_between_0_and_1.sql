{{ config(store_failures=(target.type == 'duckdb'), store_failures_as='view') }}
-- The ladder's repeat rates are shares: within 0..1, and a return within the window is also a return
-- by the as-of date.  (One singular test per mart, so each is an asset check of that mart: a test
-- that reads several marts belongs to none of them.)
select 'repeat_rate' as col, repeat_rate as value from {{ ref('repeat_purchase_ladder') }}
where repeat_rate not between 0 and 1
union all
select 'repeat_rate_by_as_of' as col, repeat_rate_by_as_of as value from {{ ref('repeat_purchase_ladder') }}
where repeat_rate_by_as_of not between repeat_rate and 1
