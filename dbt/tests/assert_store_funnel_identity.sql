-- The revenue formula holds: visitors × entry rate × conversion × ATV = net revenue.
select *
from {{ ref('store_funnel') }}
where visitors > 0 and transactions > 0
    and abs(revenue_from_formula - cast(net_revenue as double)) > 0.01
