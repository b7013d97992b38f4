"""How runs are cut and retried: the as-of date as a daily partition, and retries for transient errors.

The time zone (`PIPELINE_TIMEZONE`) and the first partition (`PIPELINE_PARTITION_START`) are read
once, when the code location loads (`LOADED`): Dagster builds the partitions from them. Retries
(`PIPELINE_RETRY_MAX`, `PIPELINE_RETRY_DELAY_SECONDS`) come from the run's settings: a step that
hits a transient error (the warehouse file locked by another writer, a busy file system) is retried
up to `retry_max` times, waiting delay, 2×delay, 4×delay… between attempts. Data errors (a bad file,
a failed test) are not retried: the same input gives the same failure. See lib/config.py.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from zoneinfo import ZoneInfo

import dagster as dg

from dagster_project.lib.config import Settings

PARTITION_TAG = "dagster/partition"

# The settings as the code location loaded them: partitions, the schedule and the sensor are built from these.
LOADED = Settings.from_env()


def business_timezone() -> str:
    """The time zone of the business day (the partitions'), as the code location loaded it."""
    return LOADED.timezone


def business_today(timezone: str | None = None) -> date:
    """Today's date in `timezone`, by default the business time zone."""
    return datetime.now(ZoneInfo(timezone or business_timezone())).date()


def partition_start() -> date:
    return LOADED.partition_start


# One partition per as-of date. end_offset=1 makes today's date a partition too, so an ad-hoc run "as of
# today" and a scheduled run "as of yesterday" are both partitions of the same definition.
AS_OF_PARTITIONS = dg.DailyPartitionsDefinition(
    start_date=partition_start().isoformat(), timezone=business_timezone(), end_offset=1, fmt="%Y-%m-%d"
)


# backfill_policy is a beta parameter of @asset; we rely on its one documented behaviour (one run per partition)
warnings.filterwarnings("ignore", category=dg.BetaWarning, message=r".*`backfill_policy`.*")
# Each as-of date is its own run (marts are computed as of one date), so a backfill is one run per date.
ONE_RUN_PER_DATE = dg.BackfillPolicy.multi_run(max_partitions_per_run=1)


def check_as_of_in_range(as_of: date) -> None:
    """The as-of date is a partition: not before the first one, not after today."""
    if as_of < partition_start():
        raise ValueError(
            f"as-of date {as_of} is before the first partition {partition_start()} "
            f"(set PIPELINE_PARTITION_START to backfill further back)"
        )
    if as_of > business_today():
        raise ValueError(
            f"as-of date {as_of} is in the future (today is {business_today()} in "
            f"{business_timezone()}, PIPELINE_TIMEZONE)"
        )


# --- retries -------------------------------------------------------------------------------------------

TRANSIENT_MARKERS = (
    "Could not set lock on file",  # DuckDB: another process holds the warehouse for writing
    "Conflicting lock is held",
    "Resource temporarily unavailable",
    "database is locked",
)


def is_transient(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if any(marker in str(cur) for marker in TRANSIENT_MARKERS):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


@contextmanager
def retry_transient(context, settings: Settings) -> Iterator[None]:
    """Turn a transient error into a Dagster retry with exponential backoff (`settings.retry_max`,
    `settings.retry_delay_seconds`); anything else fails the step."""
    try:
        yield
    except (dg.RetryRequested, dg.Failure):
        raise
    except Exception as exc:
        attempt = context.retry_number  # 0 on the first try
        if is_transient(exc) and attempt < settings.retry_max:
            wait = settings.retry_delay_seconds * (2**attempt)
            context.log.warning(
                f"transient error, retry {attempt + 1} of {settings.retry_max} in {wait:.0f}s: "
                f"{str(exc).splitlines()[0][:300]}"
            )
            raise dg.RetryRequested(max_retries=settings.retry_max, seconds_to_wait=wait) from exc
        raise
