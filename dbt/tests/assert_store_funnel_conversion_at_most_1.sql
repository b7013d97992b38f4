-- Conversion (transactions ÷ entries) is a share wherever the counter's entries cover the day's
-- transactions; a day with more sales than counted entries (a counter that missed people) may show
-- more than 1 and is not a failure.
select 'conversion_rate' as col, conversion_rate as value from {{ ref('store_funnel') }}
where conversion_rate > 1 and entries >= transactions
