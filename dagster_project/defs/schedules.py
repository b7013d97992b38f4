"""The daily schedule: one run a day, as of the day that just ended.

Its time (PIPELINE_SCHEDULE_CRON, in PIPELINE_TIMEZONE) and whether it starts switched on
(PIPELINE_SCHEDULE_ENABLED; otherwise turn it on in the UI: Automation → daily_refresh) are read when
the code location loads (lib/config.py).
"""

from datetime import timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from dagster_project.defs.jobs import refresh_customer_value
from dagster_project.lib.orchestration import LOADED, business_timezone


@dg.schedule(
    job=refresh_customer_value,
    cron_schedule=LOADED.schedule_cron,
    execution_timezone=business_timezone(),
    default_status=dg.DefaultScheduleStatus.RUNNING if LOADED.schedule_enabled else dg.DefaultScheduleStatus.STOPPED,
    description="Daily refresh as of the previous (complete) business day.",
)
def daily_refresh(context: dg.ScheduleEvaluationContext):
    tick = context.scheduled_execution_time.astimezone(ZoneInfo(business_timezone()))
    as_of = (tick.date() - timedelta(days=1)).isoformat()
    return dg.RunRequest(run_key=f"daily-{as_of}", partition_key=as_of, tags={"trigger": "daily_refresh"})
