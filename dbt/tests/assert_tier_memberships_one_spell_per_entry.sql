-- A customer enters a tier at most once per published date (one spell per tier, customer and entry date).
select tier, customer_key, entered_on
from {{ ref('tier_memberships') }}
group by tier, customer_key, entered_on
having count(*) > 1
