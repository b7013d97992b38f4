-- Who was in which tier, in which holdout group, from when to when: one row per spell, i.e. an unbroken
-- run of published as-of dates on which the customer was listed in the tier in the same group. Built from
-- the published history (source activation.tier_membership, recorded after each publish), so a backfilled
-- date between two others splits or joins spells as if the dates had been published in order. Only dates
-- before the as-of date count: a backfill sees the history as it stood then, and a re-run of a date builds
-- the same mart as its first run (the date's own publication, recorded after the first, is left out).

with runs as (

    select
        as_of_date,
        row_number() over (order by as_of_date) as run_seq
    from {{ ref('stg_activation__tier_membership_runs') }}
    where as_of_date < {{ as_of_date() }}

),

listed as (

    select
        membership.tier,
        membership.customer_key,
        membership.holdout_group,
        membership.as_of_date,
        runs.run_seq
    from {{ ref('stg_activation__tier_membership') }} as membership
    inner join runs on runs.as_of_date = membership.as_of_date

),

-- consecutive published runs share one island number (gaps-and-islands)
islands as (

    select
        *,
        run_seq - row_number() over (
            partition by tier, customer_key, holdout_group order by run_seq
        ) as island
    from listed

),

spells as (

    select
        tier,
        customer_key,
        holdout_group,
        min(as_of_date) as entered_on,
        max(as_of_date) as last_listed_on,
        max(run_seq) as last_run_seq,
        count(*) as published_runs
    from islands
    group by tier, customer_key, holdout_group, island

),

final as (

    select
        spells.tier,
        spells.customer_key,
        spells.entered_on,
        spells.holdout_group,
        next_run.as_of_date as left_on,
        spells.last_listed_on,
        cast(spells.published_runs as bigint) as published_runs,
        {{ as_of_date() }} as as_of_date
    from spells
    left join runs as next_run on spells.last_run_seq + 1 = next_run.run_seq

)

select * from final
