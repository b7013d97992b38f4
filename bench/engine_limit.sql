-- The engine limit: one hand-written DuckDB script that reads the same export files as the
-- pipeline and builds the same core results (net orders per customer, RFM scores, the repeat
-- ladder, cohort retention).  bench/pipeline_bench.py times it as the floor the pipeline is
-- measured against; it is not part of the product.
--
-- What it leaves out, on purpose (the pipeline does these, the floor does not): quarantine
-- bookkeeping and lineage, the load ledger, identity resolution across e-mail / phone / Square id /
-- member id (here a customer is the lower-cased e-mail, else the Square directory's e-mail of the
-- Square customer, else the Square customer id), currency checks, tests, checks and publishing.
-- Unparseable values are simply dropped.  It does keep the newest-export-wins rule per order
-- (per payment or refund event for Square).
--
-- Placeholders filled by the benchmark: {shopify_files}, {square_item_files},
-- {square_customer_files} (DuckDB list literals) and {as_of} (YYYY-MM-DD).

create or replace table shopify_lines as
select
    "Name" as order_name,
    filename,
    lower(trim("Email")) as email,
    "Financial Status" as financial_status,
    try_strptime("Created at", '%Y-%m-%d %H:%M:%S %z') as created_at,
    "Cancelled at" as cancelled_at,
    try_cast("Lineitem quantity" as integer) * try_cast("Lineitem price" as decimal(18, 2)) as line_amount,
    try_cast("Discount Amount" as decimal(18, 2)) as discount_amount,
    try_cast("Refunded Amount" as decimal(18, 2)) as refunded_amount
from read_csv({shopify_files}, header = true, all_varchar = true, delim = ',', quote = '"', escape = '"', filename = true, union_by_name = true);

create or replace table square_lines as
select
    "Transaction ID" as transaction_id,
    filename,
    timezone(
        case "Time Zone"
            when 'Eastern Time (US & Canada)' then 'America/New_York'
            when 'Central Time (US & Canada)' then 'America/Chicago'
            when 'Mountain Time (US & Canada)' then 'America/Denver'
            when 'Pacific Time (US & Canada)' then 'America/Los_Angeles'
            when 'Arizona' then 'America/Phoenix'
            else 'UTC'
        end,
        try_cast("Date" || ' ' || "Time" as timestamp)
    ) as sold_at,
    lower("Event Type") as event_type,
    try_cast(replace(replace("Gross Sales", '$', ''), ',', '') as decimal(18, 2)) as gross_sales,
    try_cast(replace(replace("Discounts", '$', ''), ',', '') as decimal(18, 2)) as discounts,
    try_cast(replace(replace("Net Sales", '$', ''), ',', '') as decimal(18, 2)) as net_sales,
    nullif("Customer ID", '') as square_customer_id
from read_csv({square_item_files}, header = true, all_varchar = true, delim = ',', quote = '"', escape = '"', filename = true, union_by_name = true);

create or replace table square_directory as
select "Square Customer ID" as square_customer_id, min(lower(trim("Email Address"))) as email
from read_csv({square_customer_files}, header = true, all_varchar = true, delim = ',', quote = '"', escape = '"')
group by 1;

-- Net orders (newest export wins per order), keyed to a customer.
create or replace table orders as
with shopify_newest as (
    select order_name, max(filename) as newest from shopify_lines group by 1
),
shopify_orders as (
    select
        l.order_name as order_key,
        min(l.created_at) as ordered_at,
        max(l.email) as customer,
        bool_or(l.cancelled_at is not null or l.financial_status = 'voided') as is_cancelled,
        sum(l.line_amount) - coalesce(max(l.discount_amount), 0) - coalesce(max(l.refunded_amount), 0) as net
    from shopify_lines l join shopify_newest n on n.order_name = l.order_name and n.newest = l.filename
    group by 1
),
square_newest as (  -- newest export wins per payment or refund event (a refund may come in a later export)
    select transaction_id, event_type, sold_at, max(filename) as newest from square_lines group by 1, 2, 3
),
square_orders as (
    select
        l.transaction_id as order_key,
        coalesce(min(case when l.event_type = 'payment' then l.sold_at end), min(l.sold_at)) as ordered_at,
        coalesce(max(d.email), max(l.square_customer_id)) as customer,
        false as is_cancelled,
        coalesce(sum(case when l.event_type = 'payment' then l.gross_sales end), 0)
            + coalesce(sum(case when l.event_type = 'payment' then l.discounts end), 0)
            + coalesce(sum(case when l.event_type = 'refund' then l.net_sales end), 0) as net
    from square_lines l
    join square_newest n on n.transaction_id = l.transaction_id and n.event_type = l.event_type
                        and n.sold_at = l.sold_at and n.newest = l.filename
    left join square_directory d on d.square_customer_id = l.square_customer_id
    group by 1
)
select *, cast(ordered_at as date) as order_date, not is_cancelled and net > 0 as is_purchase
from (select * from shopify_orders union all select * from square_orders)
where ordered_at is not null and cast(ordered_at as date) <= date '{as_of}';

-- Net orders per customer.
create or replace table customer_orders as
select customer, count(*) as orders, count(*) filter (where is_purchase) as purchases, sum(net) filter (where not is_cancelled) as net
from orders where customer is not null
group by 1;

-- RFM with tie-safe quintiles of percent_rank.
create or replace table customer_rfm as
with per_customer as (
    select
        customer,
        date '{as_of}' - max(order_date) filter (where is_purchase) as recency_days,
        count(distinct order_date) filter (where is_purchase) as frequency,
        sum(net) as monetary
    from orders
    where customer is not null and not is_cancelled
    group by 1
    having count(*) filter (where is_purchase) > 0
)
select
    *,
    cast(least(5, 1 + floor(percent_rank() over (order by recency_days desc) * 5)) as integer) as r_score,
    cast(least(5, 1 + floor(percent_rank() over (order by frequency) * 5)) as integer) as f_score,
    cast(least(5, 1 + floor(percent_rank() over (order by monetary) * 5)) as integer) as m_score
from per_customer;

create or replace table purchases as
select
    customer, order_date, net,
    row_number() over (partition by customer order by ordered_at, order_key) as n,
    min(order_date) over (partition by customer) as first_date
from orders
where customer is not null and is_purchase;

-- Repeat ladder (overall), as the mart defines it: purchase days numbered per customer; P(n+1 | n) is
-- the share whose next purchase day came within 180 days (var ladder_window_days), among the
-- customers whose n-th purchase day is at least 180 days before the as-of date.
create or replace table repeat_ladder as
with purchase_days as (
    select
        customer, order_date,
        row_number() over (partition by customer order by order_date) as n,
        lead(order_date) over (partition by customer order by order_date) as next_date
    from (select distinct customer, order_date from purchases) d
)
select
    n,
    count(*) as reached_n,
    count(*) filter (where next_date - order_date <= 180) as reached_next,
    count(*) filter (where next_date - order_date <= 180) / count(*) as repeat_rate,
    median(next_date - order_date) as median_days_to_next
from purchase_days
where n <= 10 and order_date <= date '{as_of}' - 180
group by 1;

-- Cohort retention by month of first purchase.
create or replace table cohort_retention as
with activity as (
    select
        date_trunc('month', first_date) as cohort_month,
        date_diff('month', date_trunc('month', first_date), date_trunc('month', order_date)) as months_since,
        count(distinct customer) as active_customers,
        sum(net) as net
    from purchases
    group by 1, 2
),
sizes as (
    select date_trunc('month', first_date) as cohort_month, count(distinct customer) as cohort_customers
    from purchases group by 1
)
select
    a.*, s.cohort_customers, a.active_customers / s.cohort_customers as share_retained,
    sum(a.net) over (partition by a.cohort_month order by a.months_since) / s.cohort_customers as cumulative_revenue_per_customer
from activity a join sizes s using (cohort_month);
