"""Dagster entry point: merges the per-domain definitions and binds shared resources.

Importing it reads no data directory and starts no dbt: the dbt assets come from the manifest
`python -m dagster_project prepare` wrote, the run's settings are read when a run starts (lib/config.py).
"""

import dagster as dg

from dagster_project.defs import jobs, schedules
from dagster_project.defs.export import definitions as export
from dagster_project.defs.identity import definitions as identity
from dagster_project.defs.ingestion import definitions as ingestion
from dagster_project.defs.models import definitions as models
from dagster_project.defs.quality import definitions as quality
from dagster_project.defs.transform import definitions as transform
from dagster_project.lib.adapters.dagster_dbt import PipelineDbtCli
from dagster_project.lib.dbt_runner.project import dbt_executable
from dagster_project.lib.paths import DBT_PROJECT_DIR
from dagster_project.lib.resources import PipelineConfig

defs = dg.Definitions.merge(
    ingestion.defs,
    identity.defs,
    transform.defs,
    models.defs,
    quality.defs,
    export.defs,
    dg.Definitions(
        jobs=[jobs.refresh_customer_value],
        schedules=[schedules.daily_refresh],
        resources={
            "pipeline": PipelineConfig(),
            "dbt": PipelineDbtCli(
                project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=dbt_executable()
            ),
        },
        # DuckDB has one writer: run steps one after another in the launching process.
        executor=dg.in_process_executor,
    ),
)
