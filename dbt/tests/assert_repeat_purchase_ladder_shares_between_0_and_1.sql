-- The ladder's repeat rates are shares: within 0..1.  (One singular test per mart, so each is an asset
-- check of that mart: a test that reads several marts belongs to none of them.)
select 'repeat_rate' as col, repeat_rate as value from {{ ref('repeat_purchase_ladder') }}
where repeat_rate not between 0 and 1
