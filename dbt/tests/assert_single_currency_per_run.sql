-- Mixed currencies are never summed silently: until a rates file is supplied, all valid orders
-- must share one currency.  Fails (error) listing the currencies found.
select currency, count(*) as orders
from {{ ref('fct_orders') }}
where is_valid
group by currency
having (select count(distinct currency) from {{ ref('fct_orders') }} where is_valid) > 1
