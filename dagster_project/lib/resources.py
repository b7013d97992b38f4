"""The pipeline's run settings, as one Dagster resource (set from the CLI, the UI's launchpad or env)."""

from __future__ import annotations

from datetime import date

import dagster as dg
import duckdb
from pydantic import PrivateAttr

from dagster_project.lib import warehouse
from dagster_project.lib.config import Settings, keep_exports_setting  # noqa: F401 - the CLI's and tests' name
from dagster_project.lib.orchestration import PARTITION_TAG
from dagster_project.lib.paths import DataPaths, parse_as_of


class PipelineConfig(dg.ConfigurableResource):
    """Where the data directory is, what date the run is as of, and the run's settings.

    The as-of date is the run's partition key when the run has one (a scheduled run, a backfill, a
    partition launched from the UI, the CLI); `as_of` in the config must then be empty or the same date.
    Every other setting comes from the environment (lib/config.py), read once when the run starts;
    a field set here (by the command line or the launchpad) overrides its variable.
    """

    data_dir: str = ""  # empty: $PIPELINE_DATA_DIR, else ./data
    as_of: str = ""
    phone_region: str = ""  # empty: $PIPELINE_PHONE_REGION, else US
    allow_rejected_files: bool | None = None  # None: $PIPELINE_ALLOW_REJECTED_FILES, else false
    dbt_target: str = ""  # empty: $DBT_TARGET, else duckdb; "spark" builds the dbt models on Spark
    # dated folders kept in exports/ (the newest as-of dates; exports/latest's always stays); 0 keeps every one
    keep_exports: int | None = None  # None: $PIPELINE_KEEP_EXPORTS, else 30

    _settings: Settings | None = PrivateAttr(default=None)

    @property
    def settings(self) -> Settings:
        """The run's settings: the environment, read once (at the start of the run, or on first use
        outside one), with this resource's fields over it."""
        if self._settings is None:
            self._settings = Settings.from_env().with_overrides(
                data_dir=self.data_dir,
                phone_region=self.phone_region,
                allow_rejected_files=self.allow_rejected_files,
                dbt_target=self.dbt_target,
                keep_exports=self.keep_exports,
            )
        return self._settings

    _partition_as_of: str = PrivateAttr(default="")

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        run = context.run
        key = (run.tags.get(PARTITION_TAG) if run is not None else None) or ""
        if key and self.as_of and parse_as_of(self.as_of) != parse_as_of(key):
            raise dg.Failure(
                f"the run is for partition {key} but the pipeline resource says as_of={self.as_of}; "
                f"leave as_of empty for partitioned runs",
                allow_retries=False,
            )
        self._partition_as_of = key
        self._settings = None
        _ = self.settings  # read (and validated) once, before the first step

    @property
    def paths(self) -> DataPaths:
        return DataPaths(self.settings.data_dir)

    @property
    def as_of_date(self) -> date:
        return parse_as_of(self._partition_as_of or self.as_of)

    def connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        p = self.paths
        return warehouse.connect(
            p.warehouse, read_only=read_only, temp_dir=p.duckdb_temp, memory_limit=self.settings.duckdb_memory_limit
        )
