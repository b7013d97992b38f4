-- RFM as of the run's as-of date, for customers with at least one purchase.
--   recency_days: days from the last purchase to the as-of date
--   frequency:    number of distinct days with a purchase (two orders on one day count once)
--   monetary:     net revenue (after discounts and refunds) of valid orders
-- Scores 1-5 by quintile of percent_rank: equal values always get equal scores (tie-safe), so a
-- heavily tied value (most customers buy once) shares one score.  Recency: more recent = higher.
-- Custom cut points per dimension can replace quintiles (var rfm_cut_points, see dbt_project.yml).

with orders as (

    select * from {{ ref('fct_orders') }}
    where customer_key is not null and is_valid

),

segments as (

    select * from {{ ref('rfm_segments') }}

),

per_customer as (

    select
        customer_key,
        max(case when is_purchase then order_date end) as last_purchase_date,
        count(distinct case when is_purchase then order_date end) as frequency,
        cast(sum(net_revenue) as decimal(18, 2)) as monetary
    from orders
    group by customer_key
    having count(case when is_purchase then 1 end) > 0

),

with_recency as (

    select
        per_customer.*,
        {{ dbt.datediff('last_purchase_date', as_of_date(), 'day') }} as recency_days
    from per_customer

),

ranked as (

    select
        with_recency.*,
        percent_rank() over (order by recency_days desc) as r_pct,
        percent_rank() over (order by frequency) as f_pct,
        percent_rank() over (order by monetary) as m_pct
    from with_recency

),

scored as (

    select
        customer_key,
        {{ as_of_date() }} as as_of_date,
        last_purchase_date,
        recency_days,
        frequency,
        monetary,
        {{ rfm_score('recency_days', 'r_pct', 'recency_days', lower_is_better=true) }} as r_score,
        {{ rfm_score('frequency', 'f_pct', 'frequency') }} as f_score,
        {{ rfm_score('monetary', 'm_pct', 'monetary') }} as m_score
    from ranked

),

with_fm as (

    select scored.*, cast(floor((f_score + m_score + 1) / 2) as integer) as fm_score
    from scored

),

segmented as (

    select
        with_fm.*,
        segments.segment,
        row_number() over (partition by with_fm.customer_key order by segments.priority) as rule_rank
    from with_fm
    left join segments
        on with_fm.r_score between segments.r_min and segments.r_max
        and with_fm.fm_score between segments.fm_min and segments.fm_max

),

final as (

    select
        customer_key,
        as_of_date,
        last_purchase_date,
        recency_days,
        frequency,
        monetary,
        r_score,
        f_score,
        m_score,
        fm_score,
        {{ dbt.concat(["cast(r_score as " ~ dbt.type_string() ~ ")", "cast(f_score as " ~ dbt.type_string() ~ ")", "cast(m_score as " ~ dbt.type_string() ~ ")"]) }} as rfm_cell,
        segment
    from segmented
    where rule_rank = 1

)

select * from final
