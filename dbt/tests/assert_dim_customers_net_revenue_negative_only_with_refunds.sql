{{ config(meta={'dagster': {'ref': {'name': 'dim_customers'}}}) }}
-- A customer's net revenue may be negative only when refunds explain it: some order of theirs
-- carries refunds (a credit note, a refund or a return). Anything else is a sign the revenue
-- arithmetic went wrong, so the build stops before publishing.
select customers.customer_key, customers.net_revenue
from {{ ref('dim_customers') }} as customers
where customers.net_revenue < 0
    and not exists (
        select 1 from {{ ref('fct_orders') }} as orders
        where orders.customer_key = customers.customer_key and orders.refunds > 0
    )
