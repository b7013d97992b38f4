"""How runs are cut and retried: the as-of date as a daily partition, and retries for transient errors.

Settings (environment, read when the code location loads):

- ``PIPELINE_TIMEZONE`` (default ``UTC``): the business day the as-of date and the partitions follow.
- ``PIPELINE_PARTITION_START`` (default ``2000-01-01``): the first as-of date a backfill can ask for.
- ``PIPELINE_RETRY_MAX`` (default 3) and ``PIPELINE_RETRY_DELAY_SECONDS`` (default 5): a step that hits a
  transient error (the warehouse file locked by another writer, a busy file system) is retried up to
  ``PIPELINE_RETRY_MAX`` times, waiting delay, 2×delay, 4×delay… between attempts. Data errors (a bad
  file, a failed test) are not retried: the same input gives the same failure.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from zoneinfo import ZoneInfo

import dagster as dg

PARTITION_TAG = "dagster/partition"


def business_timezone() -> str:
    tz = os.environ.get("PIPELINE_TIMEZONE") or "UTC"
    try:
        ZoneInfo(tz)
    except Exception as exc:  # ZoneInfoNotFoundError, ValueError
        raise ValueError(f"PIPELINE_TIMEZONE={tz!r} is not an IANA time zone name (e.g. Europe/London)") from exc
    return tz


def business_today() -> date:
    return datetime.now(ZoneInfo(business_timezone())).date()


def partition_start() -> date:
    raw = os.environ.get("PIPELINE_PARTITION_START") or "2000-01-01"
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise ValueError(f"PIPELINE_PARTITION_START={raw!r} is not a date in YYYY-MM-DD form") from exc


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
    if as_of < partition_start():
        raise ValueError(f"as-of date {as_of} is before the first partition {partition_start()} "
                         f"(set PIPELINE_PARTITION_START to backfill further back)")
    if as_of > business_today():
        raise ValueError(f"as-of date {as_of} is in the future (today is {business_today()} in "
                         f"{business_timezone()}, PIPELINE_TIMEZONE)")


# --- retries -------------------------------------------------------------------------------------------

TRANSIENT_MARKERS = (
    "Could not set lock on file",  # DuckDB: another process holds the warehouse for writing
    "Conflicting lock is held",
    "Resource temporarily unavailable",
    "database is locked",
)


def retry_max() -> int:
    return int(os.environ.get("PIPELINE_RETRY_MAX", "3"))


def retry_delay() -> float:
    return float(os.environ.get("PIPELINE_RETRY_DELAY_SECONDS", "5"))


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
def retry_transient(context) -> Iterator[None]:
    """Turn a transient error into a Dagster retry with exponential backoff; anything else fails the step."""
    try:
        yield
    except (dg.RetryRequested, dg.Failure):
        raise
    except Exception as exc:
        attempt = context.retry_number  # 0 on the first try
        if is_transient(exc) and attempt < retry_max():
            wait = retry_delay() * (2 ** attempt)
            context.log.warning(f"transient error, retry {attempt + 1} of {retry_max()} in {wait:.0f}s: "
                                f"{str(exc).splitlines()[0][:300]}")
            raise dg.RetryRequested(max_retries=retry_max(), seconds_to_wait=wait) from exc
        raise
