"""The pipeline's run settings, as one Dagster resource (set from the CLI, the UI's launchpad or env)."""

from __future__ import annotations

import os
from datetime import date

import dagster as dg
import duckdb

from dagster_project.lib import warehouse
from dagster_project.lib.paths import DataPaths, parse_as_of


class PipelineConfig(dg.ConfigurableResource):
    """Where the data directory is and what date the run is as of."""

    data_dir: str = ""  # empty: $PIPELINE_DATA_DIR, else ./data
    as_of: str = ""
    phone_region: str = "US"
    allow_rejected_files: bool = False
    dbt_target: str = ""  # empty: $DBT_TARGET, else duckdb; "spark" builds the dbt models on Spark

    @property
    def resolved_dbt_target(self) -> str:
        from dagster_project.lib.spark_interop import resolve_dbt_target

        return resolve_dbt_target(self.dbt_target)

    @property
    def paths(self) -> DataPaths:
        return DataPaths.of(self.data_dir or None)

    @property
    def as_of_date(self) -> date:
        return parse_as_of(self.as_of)

    def connect(self, read_only: bool = False) -> duckdb.DuckDBPyConnection:
        p = self.paths
        return warehouse.connect(p.warehouse, read_only=read_only, temp_dir=p.duckdb_temp)


def default_pipeline_config() -> PipelineConfig:
    return PipelineConfig(
        data_dir=os.environ.get("PIPELINE_DATA_DIR", ""),
        as_of=os.environ.get("PIPELINE_AS_OF", ""),
        phone_region=os.environ.get("PIPELINE_PHONE_REGION", "US"),
        allow_rejected_files=os.environ.get("PIPELINE_ALLOW_REJECTED_FILES", "") in ("1", "true", "yes"),
        dbt_target=os.environ.get("DBT_TARGET", ""),
    )
