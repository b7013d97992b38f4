{{ config(store_failures=(target.type == 'duckdb'), store_failures_as='view') }}
-- The share of a cohort active in a month lies within 0..1.
select 'share_retained' as col, share_retained as value from {{ ref('cohort_retention') }}
where share_retained not between 0 and 1
