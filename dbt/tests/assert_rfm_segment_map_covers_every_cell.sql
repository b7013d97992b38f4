-- Every cell a customer can fall in maps to a segment: one-time and repeat buyers, each with every
-- (R, FM) score pair 1..5 x 1..5 (50 cells).  A cell without a rule would leave its customers'
-- segment NULL.
with scores as (
    select 1 as s
    union all
    select 2
    union all
    select 3
    union all
    select 4
    union all
    select 5
),

buyers as (
    select 'one-time' as buyers
    union all
    select 'repeat'
),

cells as (
    select buyers.buyers, r.s as r_score, fm.s as fm_score
    from buyers cross join scores as r cross join scores as fm
)

select cells.*
from cells
left join {{ ref('rfm_segments') }} as seg
    on seg.buyers = cells.buyers
    and cells.r_score between seg.r_min and seg.r_max
    and cells.fm_score between seg.fm_min and seg.fm_max
where seg.segment is null
