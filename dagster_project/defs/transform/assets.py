"""dbt models (staging -> intermediate -> marts) as Dagster assets; dbt tests as asset checks."""


import os

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from dagster_project.lib import warehouse
from dagster_project.lib.dbt_project import Translator, ensure_manifest, keep_partial_parse
from dagster_project.lib.resources import PipelineConfig


@dbt_assets(manifest=ensure_manifest(), dagster_dbt_translator=Translator(), name="dbt_models")
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, pipeline: PipelineConfig):
    """`dbt build` of the selected models, with the run's as-of date; a failing test fails the step.

    dbt unit tests check SQL logic on fixed fixtures, not the data, so they run in the test suite
    (tests/test_end_to_end.py builds with them) rather than in every production run.
    """
    os.environ["PIPELINE_WAREHOUSE_PATH"] = str(pipeline.paths.warehouse)
    # The as-of date goes in as data (raw.run_context, read by the as_of_date macro), not --vars,
    # so dbt can partially parse instead of re-parsing the whole project every day.
    con = pipeline.connect()
    try:
        warehouse.write_run_context(con, pipeline.as_of_date, context.run_id)
    finally:
        con.close()
    invocation = dbt.cli(["build", "--exclude-resource-type", "unit_test"], context=context)
    yield from invocation.stream()
    keep_partial_parse(invocation.target_path)
