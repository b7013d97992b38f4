{{ config(meta={'dagster': {'ref': {'name': 'dim_customers'}}}, store_failures=(target.type == 'duckdb'),
          store_failures_as='view') }}
-- A customer's net revenue is negative only when refunds explain it: one of the customer's orders in
-- fct_orders carries a refund.  (It reads fct_orders too; meta.dagster.ref makes it a check of
-- dim_customers, the mart whose number it holds.)
with refunded_customers as (
    select distinct customer_key from {{ ref('fct_orders') }}
    where refunds > 0
)

select dim_customers.customer_key, dim_customers.net_revenue
from {{ ref('dim_customers') }} as dim_customers
left join refunded_customers on refunded_customers.customer_key = dim_customers.customer_key
where dim_customers.net_revenue < 0 and refunded_customers.customer_key is null
