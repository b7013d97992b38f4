-- One row per tier, entry month, window and metric; an interval always contains its difference.
select tier, entry_month, window_days, metric
from {{ ref('tier_lift') }}
group by tier, entry_month, window_days, metric
having count(*) > 1
    or max(case when difference < ci_low or difference > ci_high then 1 else 0 end) = 1
