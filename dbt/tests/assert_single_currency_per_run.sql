-- Mixed currencies are never summed silently: without a rates file all valid orders must share
-- one currency; with one, every valid order must have a rate for its date.  Fails (error) listing
-- the currencies (and the orders without a rate).
with valid_orders as (
    select * from {{ ref('fct_orders') }}
    where is_valid
)

select
    currency, original_currency, count(*) as orders,
    'no exchange rate for these orders' as problem
from valid_orders
where fx_rate is null
group by currency, original_currency
union all
select
    currency, cast(null as {{ dbt.type_string() }}) as original_currency, count(*) as orders,
    'several currencies and no rates file (inbox/rates/)' as problem
-- the scalar subquery below reads valid_orders as its own relation, not a second alias of this one
from valid_orders  -- noqa: AL04
where (select count(distinct currency) from valid_orders) > 1
group by currency
