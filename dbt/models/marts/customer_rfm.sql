-- RFM as of the run's as-of date, for customers with at least one purchase.
--   recency_days: days from the last purchase to the as-of date
--   frequency:    number of distinct days with a purchase (two orders on one day count once)
--   monetary:     net revenue (after discounts and refunds) of valid orders
-- Scores 1-5 by quintile of percent_rank: equal values always get equal scores (tie-safe), so a
-- heavily tied value (most customers buy once) shares one score.  Recency: more recent = higher.
-- Built from the per-customer summary (int_customer_order_summary); percent ranks come from value
-- counts (macro value_percent_rank), which equals percent_rank() without sorting every customer.
-- Custom cut points per dimension can replace quintiles (var rfm_cut_points, see dbt_project.yml).

with summary as (

    select * from {{ ref('int_customer_order_summary') }}
    where purchases > 0

),

segments as (

    select * from {{ ref('rfm_segments') }}

),

with_recency as (

    select
        customer_key,
        last_purchase_date,
        purchase_days as frequency,
        net_revenue as monetary,
        {{ dbt.datediff('last_purchase_date', as_of_date(), 'day') }} as recency_days
    from summary

),

recency_pct as (

    {{ value_percent_rank('with_recency', 'recency_days', descending=true) }}

),

frequency_pct as (

    {{ value_percent_rank('with_recency', 'frequency') }}

),

monetary_pct as (

    {{ value_percent_rank('with_recency', 'monetary') }}

),

ranked as (

    select
        with_recency.*,
        recency_pct.pct as r_pct,
        frequency_pct.pct as f_pct,
        monetary_pct.pct as m_pct
    from with_recency
    inner join recency_pct on recency_pct.recency_days is not distinct from with_recency.recency_days
    inner join frequency_pct on frequency_pct.frequency is not distinct from with_recency.frequency
    inner join monetary_pct on monetary_pct.monetary is not distinct from with_recency.monetary

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

    -- buyers: one-time (a single purchase day, frequency 1) or repeat.  Segment rules are written for
    -- one or the other, so a one-time buyer never gets a name meaning repeat behaviour however high
    -- their M lifts the (F + M) average.
    select
        scored.*,
        cast(floor((f_score + m_score + 1) / 2) as integer) as fm_score,
        case when frequency = 1 then 'one-time' else 'repeat' end as buyers
    from scored

),

cells as (

    -- the (buyers, r_score, fm_score) cells present: at most 50, so the segment rules are matched per
    -- cell, not per customer
    select distinct buyers, r_score, fm_score from with_fm

),

cell_segments as (

    select
        cells.buyers,
        cells.r_score,
        cells.fm_score,
        segments.segment,
        row_number() over (
            partition by cells.buyers, cells.r_score, cells.fm_score order by segments.priority
        ) as rule_rank
    from cells
    left join segments
        on segments.buyers = cells.buyers
        and cells.r_score between segments.r_min and segments.r_max
        and cells.fm_score between segments.fm_min and segments.fm_max

),

segmented as (

    select
        with_fm.*,
        cell_segments.segment
    from with_fm
    inner join cell_segments
        on cell_segments.buyers = with_fm.buyers
        and cell_segments.r_score = with_fm.r_score
        and cell_segments.fm_score = with_fm.fm_score
        and cell_segments.rule_rank = 1

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
        {{ dbt.concat([
            "cast(r_score as " ~ dbt.type_string() ~ ")",
            "cast(f_score as " ~ dbt.type_string() ~ ")",
            "cast(m_score as " ~ dbt.type_string() ~ ")"
        ]) }} as rfm_cell,
        segment
    from segmented

)

select * from final
