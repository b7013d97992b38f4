"""The daily schedule: one run a day, as of the day that just ended.

Settings (environment): PIPELINE_SCHEDULE_CRON (default "0 6 * * *"), PIPELINE_TIMEZONE (default UTC,
also the business day of the as-of partitions), PIPELINE_SCHEDULE_ENABLED=1 to start it switched on
(otherwise turn it on in the UI: Automation → daily_refresh).
"""

import os
from datetime import timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from dagster_project.defs.jobs import refresh_customer_value
from dagster_project.lib.orchestration import business_timezone


def _enabled() -> bool:
    return os.environ.get("PIPELINE_SCHEDULE_ENABLED", "").lower() in ("1", "true", "yes")


@dg.schedule(
    job=refresh_customer_value,
    cron_schedule=os.environ.get("PIPELINE_SCHEDULE_CRON") or "0 6 * * *",
    execution_timezone=business_timezone(),
    default_status=dg.DefaultScheduleStatus.RUNNING if _enabled() else dg.DefaultScheduleStatus.STOPPED,
    description="Daily refresh as of the previous (complete) business day.",
)
def daily_refresh(context: dg.ScheduleEvaluationContext):
    tick = context.scheduled_execution_time.astimezone(ZoneInfo(business_timezone()))
    as_of = (tick.date() - timedelta(days=1)).isoformat()
    return dg.RunRequest(run_key=f"daily-{as_of}", partition_key=as_of, tags={"trigger": "daily_refresh"})
