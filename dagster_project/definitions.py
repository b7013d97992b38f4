"""Dagster entry point: merges the per-domain definitions and binds shared resources."""

import dagster as dg
from dagster_dbt import DbtCliResource

from dagster_project.defs.export.definitions import defs as export_defs
from dagster_project.defs.identity.definitions import defs as identity_defs
from dagster_project.defs.ingestion.definitions import defs as ingestion_defs
from dagster_project.defs.jobs import refresh_customer_value
from dagster_project.defs.quality.definitions import defs as quality_defs
from dagster_project.defs.transform.definitions import defs as transform_defs
from dagster_project.lib.dbt_project import dbt_executable
from dagster_project.lib.paths import DBT_PROJECT_DIR
from dagster_project.lib.resources import default_pipeline_config

defs = dg.Definitions.merge(
    ingestion_defs,
    identity_defs,
    transform_defs,
    quality_defs,
    export_defs,
    dg.Definitions(
        jobs=[refresh_customer_value],
        resources={
            "pipeline": default_pipeline_config(),
            "dbt": DbtCliResource(
                project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=dbt_executable()
            ),
        },
        # DuckDB has one writer: run steps one after another in the launching process.
        executor=dg.in_process_executor,
    ),
)
