"""The pipeline's settings: one typed, frozen object read from the environment by `Settings.from_env`.

Nothing else in the package reads these variables from `os.environ` (DAGSTER_HOME is Dagster's own,
PIPELINE_FAULT_POINT the crash tests' hook). The environment is read

- when the code location loads (`orchestration.LOADED`): the settings Dagster builds definitions
  from (time zone and partitions, schedule, sensor interval). A running `dagster dev` needs a reload
  to see a change to them;
- once at the start of every run (`PipelineConfig.settings`), and once per sensor tick: every other
  setting, so a run uses one consistent set of values from its first step to its last.

`SETTINGS` is the table of every variable (name, default, meaning); the README's "Configuration"
table is generated from it (`python -m dagster_project.lib.config` prints it; tests/test_config.py
checks the two agree). dbt's environment (the variables dbt/profiles.yml reads) is built from
these in one place, `lib/dbt_runner/project.py`'s `dbt_env`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

DEFAULT_KEEP_EXPORTS = 30
DEFAULT_MEMORY_LIMIT = "3GB"
DEFAULT_MAX_SHARED = 5  # lib/identity/resolution.py's DEFAULT_MAX_SHARED (tests/test_config.py checks they agree)
DBT_TARGETS = ("duckdb", "spark")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _text(value: str, name: str) -> str:
    return value.strip()


def _flag(value: str, name: str) -> bool:
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE or v == "":
        return False
    raise ValueError(f"{name}={value!r}: expected 1/true/yes or 0/false/no")


def _whole(minimum: int) -> Callable[[str, str], int]:
    def parse(value: str, name: str) -> int:
        try:
            n = int(value)
        except ValueError:
            n = minimum - 1
        if n < minimum:
            raise ValueError(f"{name}={value!r}: expected a whole number, {minimum} or more")
        return n

    return parse


def _number(value: str, name: str) -> float:
    try:
        x = float(value)
    except ValueError:
        x = -1.0
    if not x >= 0 or x == float("inf"):
        raise ValueError(f"{name}={value!r}: expected a number, 0 or more")
    return x


def keep_exports_setting(value: str | int | None) -> int:
    """PIPELINE_KEEP_EXPORTS / --keep-exports: a whole number of dated export folders, 0 for all."""
    if value is None or value == "":
        return DEFAULT_KEEP_EXPORTS
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = -1
    if n < 0:
        raise ValueError(
            f"keep-exports setting {value!r} (PIPELINE_KEEP_EXPORTS or --keep-exports): expected a "
            f"whole number of dated export folders to keep, 0 to keep every one"
        )
    return n


def max_shared_setting(value: str) -> int:
    """PIPELINE_IDENTITY_MAX_SHARED: the most otherwise separate customers one identifier may join
    (an identifier joining more is blocked)."""
    if value == "":
        return DEFAULT_MAX_SHARED
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"PIPELINE_IDENTITY_MAX_SHARED {value!r}: expected a whole number of customers, 1 or more")
    return n


def _timezone(value: str, name: str) -> str:
    try:
        ZoneInfo(value)
    except Exception as exc:  # ZoneInfoNotFoundError, ValueError
        raise ValueError(f"{name}={value!r} is not an IANA time zone name (e.g. Europe/London)") from exc
    return value


def _date(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"{name}={value!r} is not a date in YYYY-MM-DD form") from exc


def _dbt_target(value: str, name: str) -> str:
    target = value.strip().lower()
    if target not in DBT_TARGETS:
        raise ValueError(
            f"dbt target {target!r} is not one of {', '.join(DBT_TARGETS)} (pipeline config dbt_target / {name})"
        )
    return target


def _data_dir(value: str, name: str) -> Path:
    return Path(value).resolve()


@dataclass(frozen=True)
class Setting:
    """One environment variable: the `Settings` field it sets, its default (as written in the
    environment), how it is parsed, when it is read and what it does."""

    env: str
    field: str
    default: str
    parse: Callable[[str, str], Any]
    meaning: str
    read: str = "each run"  # or "definitions load"
    option: str = ""  # the command-line option that overrides it
    shown_default: str = ""  # the default as the README shows it, when not the raw string


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "PIPELINE_DATA_DIR",
        "data_dir",
        "data",
        _data_dir,
        "the data directory (relative to the current directory); the sensor watches its inbox",
        option="--data-dir",
        shown_default="`./data`",
    ),
    Setting(
        "PIPELINE_TIMEZONE",
        "timezone",
        "UTC",
        _timezone,
        "the business day: as-of dates, partitions and the schedule follow it",
        read="definitions load",
    ),
    Setting(
        "PIPELINE_PARTITION_START",
        "partition_start",
        "2000-01-01",
        _date,
        "the first as-of date a backfill can ask for",
        read="definitions load",
    ),
    Setting(
        "PIPELINE_SCHEDULE_CRON",
        "schedule_cron",
        "0 6 * * *",
        _text,
        "when the daily schedule runs (cron, in `PIPELINE_TIMEZONE`)",
        read="definitions load",
    ),
    Setting(
        "PIPELINE_SCHEDULE_ENABLED",
        "schedule_enabled",
        "",
        _flag,
        "`1`: the daily schedule starts switched on (otherwise switch it on in the UI)",
        read="definitions load",
        shown_default="off",
    ),
    Setting(
        "PIPELINE_INBOX_SENSOR_INTERVAL",
        "sensor_interval_seconds",
        "60",
        _whole(1),
        "seconds between two looks of `inbox_sensor` at the inbox",
        read="definitions load",
    ),
    Setting(
        "PIPELINE_RETRY_MAX",
        "retry_max",
        "3",
        _whole(0),
        "retries of a step that met a transient error "
        "(the warehouse locked, a busy file system); data errors are never retried",
    ),
    Setting(
        "PIPELINE_RETRY_DELAY_SECONDS",
        "retry_delay_seconds",
        "5",
        _number,
        "wait before the first retry; each further one waits twice as long (5, 10, 20 s)",
    ),
    Setting(
        "PIPELINE_FRESHNESS_DAYS",
        "freshness_days",
        "2",
        _whole(0),
        "warn when a source that sent exports before has sent no new file for longer",
    ),
    Setting(
        "PIPELINE_DBT_DOCS",
        "dbt_docs",
        "1",
        _flag,
        "publish the dbt docs site with each run (`0` to skip, saves a few seconds)",
        shown_default="on",
    ),
    Setting(
        "PIPELINE_PHONE_REGION", "phone_region", "US", _text, "region for phone numbers written without a country code"
    ),
    Setting(
        "PIPELINE_IDENTITY_MAX_SHARED",
        "identity_max_shared",
        str(DEFAULT_MAX_SHARED),
        lambda v, n: max_shared_setting(v),
        "the most otherwise separate customers one e-mail, phone or id may join; an identifier joining more "
        "(a store phone, a placeholder e-mail) links nobody, is listed in `identity_blocked_identifiers` and "
        'raises the warning `no_shared_identifiers` (see "Placeholders never link people")',
    ),
    Setting(
        "PIPELINE_DUCKDB_MEMORY_LIMIT",
        "duckdb_memory_limit",
        DEFAULT_MEMORY_LIMIT,
        _text,
        "DuckDB memory "
        "limit per process, the pipeline's and dbt's (it spills to `warehouse/tmp` beyond it); a run's peak "
        "is about twice this plus Python's own",
    ),
    Setting(
        "PIPELINE_KEEP_EXPORTS",
        "keep_exports",
        str(DEFAULT_KEEP_EXPORTS),
        lambda v, n: keep_exports_setting(v),
        "dated folders kept "
        "in `exports/`: after a run that moves `exports/latest`, the folders of all but the newest N as-of "
        "dates are removed (each whole: renamed away first, then deleted); `exports/latest`'s folder always "
        "stays; `0` keeps every one. At 10M order lines a dated folder is ~1.2 GB (the identity map alone "
        "430 MB), so a year of daily runs would fill a disk. A backfill of dates older than the published "
        "one removes nothing until the next run that moves `latest`",
        option="--keep-exports N",
    ),
    Setting(
        "PIPELINE_ALLOW_REJECTED_FILES",
        "allow_rejected_files",
        "",
        _flag,
        "publish even when an inbox file was rejected (reported as a warning)",
        option="--allow-rejected-files",
        shown_default="off",
    ),
    Setting(
        "DBT_TARGET",
        "dbt_target",
        "duckdb",
        _dbt_target,
        'engine the dbt models build on: `duckdb` or `spark` (see "Running on Spark")',
        option="--dbt-target",
    ),
    Setting(
        "PIPELINE_CLV_MIN_REPEAT_CUSTOMERS",
        "clv_min_repeat_customers",
        "100",
        _whole(1),
        "CLV: fewer repeat buyers than this publishes no predictions (`insufficient_data`)",
    ),
    Setting(
        "PIPELINE_CLV_MIN_HISTORY_WEEKS",
        "clv_min_history_weeks",
        "26",
        _number,
        "CLV: less order history than this publishes no predictions (`insufficient_data`)",
    ),
    Setting(
        "PIPELINE_CLV_ANNUAL_DISCOUNT_RATE",
        "clv_annual_discount_rate",
        "0.10",
        _number,
        "CLV: the annual rate the 12-month CLV is discounted at",
    ),
    Setting(
        "PIPELINE_CLV_MAX_HOLDOUT_ERROR",
        "clv_max_holdout_error",
        "0.25",
        _number,
        "CLV: a fit whose predicted holdout purchases miss the actual ones by more than this share is `unreliable`",
    ),
    Setting(
        "PIPELINE_CLV_MAX_REVENUE_RATIO",
        "clv_max_revenue_ratio",
        "1.0",
        _number,
        "CLV: a fit predicting "
        "more than this multiple of the customers' net revenue of the last 365 days is `unreliable` (the last "
        "year also holds every first purchase, which no prediction repeats; a fast-growing base may raise it)",
    ),
)

# Read by the tools themselves, listed in the same table: the pipeline passes them through.
TOOL_SETTINGS: tuple[tuple[str, str, str], ...] = (
    (
        "DAGSTER_HOME",
        "`<data dir>/dagster_home`",
        "the Dagster instance (run history) the command line, `dagster dev` and its daemon share",
    ),
    (
        "DBT_LOG_LEVEL_FILE",
        "`info`",
        "level of the `dbt.log` a failed build leaves in `dbt/target/dbt_models-*/` "
        "(a successful build removes its folder; of the failed ones the newest 5 stay, older ones are removed once "
        "a day old); `debug` logs every SQL statement (~20% slower builds on demo data)",
    ),
)


@dataclass(frozen=True)
class Settings:
    """Every setting, typed and validated (see `SETTINGS` for what each means)."""

    data_dir: Path = field(default_factory=lambda: Path("data").resolve())
    timezone: str = "UTC"
    partition_start: date = date(2000, 1, 1)
    schedule_cron: str = "0 6 * * *"
    schedule_enabled: bool = False
    sensor_interval_seconds: int = 60
    retry_max: int = 3
    retry_delay_seconds: float = 5.0
    freshness_days: int = 2
    dbt_docs: bool = True
    phone_region: str = "US"
    identity_max_shared: int = DEFAULT_MAX_SHARED
    duckdb_memory_limit: str = DEFAULT_MEMORY_LIMIT
    keep_exports: int = DEFAULT_KEEP_EXPORTS
    allow_rejected_files: bool = False
    dbt_target: str = "duckdb"
    clv_min_repeat_customers: int = 100
    clv_min_history_weeks: float = 26.0
    clv_annual_discount_rate: float = 0.10
    clv_max_holdout_error: float = 0.25
    clv_max_revenue_ratio: float = 1.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """The settings in `environ` (default: this process's environment); an unset or empty variable
        takes its default. A value that does not parse raises ValueError naming the variable."""
        env = os.environ if environ is None else environ
        return cls(**{s.field: s.parse(env.get(s.env) or s.default, s.env) for s in SETTINGS})

    def with_overrides(self, **values: Any) -> Settings:
        """These settings with the given fields replaced (a command-line option, the run's config);
        a value of None or "" keeps the setting as it is. Values are parsed like the environment's."""
        by_field = {s.field: s for s in SETTINGS}
        changes = {}
        for name, value in values.items():
            if value is None or value == "":
                continue
            spec = by_field[name]
            changes[name] = value if isinstance(value, bool) else spec.parse(str(value), spec.option or name)
        return dataclasses.replace(self, **changes)


def readme_table() -> str:
    """The README's configuration table (markdown), generated from `SETTINGS` and `TOOL_SETTINGS`."""
    lines = ["| variable | default | read | what |", "|---|---|---|---|"]
    for s in SETTINGS:
        name = f"`{s.env}`" + (f" (`{s.option}`)" if s.option else "")
        lines.append(f"| {name} | {s.shown_default or '`' + s.default + '`'} | {s.read} | {s.meaning} |")
    for env, default, meaning in TOOL_SETTINGS:
        lines.append(f"| `{env}` | {default} | by the tool | {meaning} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(readme_table(), end="")
