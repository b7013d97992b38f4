-- A segment name belongs to one-time buyers or to repeat buyers, never to both: a name says which
-- (a one-time buyer is never called Loyal or Champions, a repeat buyer never New).
select segment
from {{ ref('rfm_segments') }}
group by segment
having count(distinct buyers) > 1
