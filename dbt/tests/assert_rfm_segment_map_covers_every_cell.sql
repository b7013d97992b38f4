-- Every (R, FM) score pair 1..5 × 1..5 must map to a segment.
with scores as (
    select 1 as s union all select 2 union all select 3 union all select 4 union all select 5
),
cells as (
    select r.s as r_score, fm.s as fm_score from scores as r cross join scores as fm
)
select cells.*
from cells
left join {{ ref('rfm_segments') }} as seg
    on cells.r_score between seg.r_min and seg.r_max
    and cells.fm_score between seg.fm_min and seg.fm_max
where seg.segment is null
