"""The pipeline's run settings, as one Dagster resource (set from the CLI, the UI's launchpad or env)."""

from __future__ import annotations

import os
from datetime import date

import dagster as dg
import duckdb
from pydantic import PrivateAttr

from dagster_project.lib import warehouse
from dagster_project.lib.orchestration import PARTITION_TAG
from dagster_project.lib.paths import DataPaths, parse_as_of


DEFAULT_KEEP_EXPORTS = 30


def keep_exports_setting(value: "str | int | None") -> int:
    """PIPELINE_KEEP_EXPORTS / --keep-exports: a whole number of dated export folders, 0 for all."""
    if value is None or value == "":
        return DEFAULT_KEEP_EXPORTS
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = -1
    if n < 0:
        raise ValueError(f"keep-exports setting {value!r} (PIPELINE_KEEP_EXPORTS or --keep-exports): expected a "
                         f"whole number of dated export folders to keep, 0 to keep every one")
    return n


class PipelineConfig(dg.ConfigurableResource):
    """Where the data directory is and what date the run is as of.

    The as-of date is the run's partition key when the run has one (a scheduled run, a backfill, a
    partition launched from the UI, the CLI); `as_of` in the config must then be empty or the same date.
    """

    data_dir: str = ""  # empty: $PIPELINE_DATA_DIR, else ./data
    as_of: str = ""
    phone_region: str = "US"
    allow_rejected_files: bool = False
    dbt_target: str = ""  # empty: $DBT_TARGET, else duckdb; "spark" builds the dbt models on Spark
    # dated folders kept in exports/ (the newest as-of dates; exports/latest's always stays); 0 keeps every one
    keep_exports: int = DEFAULT_KEEP_EXPORTS

    @property
    def resolved_dbt_target(self) -> str:
        from dagster_project.lib.spark_interop import resolve_dbt_target

        return resolve_dbt_target(self.dbt_target)

    _partition_as_of: str = PrivateAttr(default="")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        run = context.run
        key = (run.tags.get(PARTITION_TAG) if run is not None else None) or ""
        if key and self.as_of and parse_as_of(self.as_of) != parse_as_of(key):
            raise dg.Failure(f"the run is for partition {key} but the pipeline resource says as_of={self.as_of}; "
                             f"leave as_of empty for partitioned runs", allow_retries=False)
        self._partition_as_of = key

    @property
    def paths(self) -> DataPaths:
        return DataPaths.of(self.data_dir or None)

    @property
    def as_of_date(self) -> date:
        return parse_as_of(self._partition_as_of or self.as_of)

    def connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        p = self.paths
        return warehouse.connect(p.warehouse, read_only=read_only, temp_dir=p.duckdb_temp)


def default_pipeline_config() -> PipelineConfig:
    return PipelineConfig(
        data_dir=os.environ.get("PIPELINE_DATA_DIR", ""),
        phone_region=os.environ.get("PIPELINE_PHONE_REGION", "US"),
        allow_rejected_files=os.environ.get("PIPELINE_ALLOW_REJECTED_FILES", "") in ("1", "true", "yes"),
        dbt_target=os.environ.get("DBT_TARGET", ""),
        keep_exports=keep_exports_setting(os.environ.get("PIPELINE_KEEP_EXPORTS")),
    )
