"""dbt models (staging -> intermediate -> marts) as Dagster assets; dbt tests as asset checks."""


import json
import os

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from dagster_project.lib.dbt_project import Translator, ensure_manifest
from dagster_project.lib.orchestration import AS_OF_PARTITIONS, ONE_RUN_PER_DATE, retry_transient
from dagster_project.lib.resources import PipelineConfig


@dbt_assets(manifest=ensure_manifest(), dagster_dbt_translator=Translator(), name="dbt_models",
            partitions_def=AS_OF_PARTITIONS, backfill_policy=ONE_RUN_PER_DATE)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, pipeline: PipelineConfig):
    """`dbt build` of the selected models, with the run's as-of date; a failing test fails the step.

    dbt unit tests check SQL logic on fixed fixtures, not the data, so they run in the test suite
    (tests/test_end_to_end.py builds with them) rather than in every production run.
    """
    os.environ["PIPELINE_WAREHOUSE_PATH"] = str(pipeline.paths.warehouse)
    dbt_vars = {"as_of": pipeline.as_of_date.isoformat()}
    args = ["build", "--vars", json.dumps(dbt_vars), "--exclude-resource-type", "unit_test"]
    with retry_transient(context):
        yield from dbt.cli(args, context=context).stream()
