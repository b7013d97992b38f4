"""dbt models (staging -> intermediate -> marts) as Dagster assets; dbt tests as asset checks."""


import os
import shutil

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from dagster_project.lib import warehouse
from dagster_project.lib.dbt_project import Translator, ensure_manifest, keep_partial_parse
from dagster_project.lib.orchestration import AS_OF_PARTITIONS, ONE_RUN_PER_DATE, retry_transient
from dagster_project.lib.resources import PipelineConfig


def docs_enabled() -> bool:
    return os.environ.get("PIPELINE_DBT_DOCS", "1").lower() not in ("0", "false", "no")


@dbt_assets(manifest=ensure_manifest(), dagster_dbt_translator=Translator(), name="dbt_models",
            partitions_def=AS_OF_PARTITIONS, backfill_policy=ONE_RUN_PER_DATE)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, pipeline: PipelineConfig):
    """`dbt build` of the selected models, with the run's as-of date; a failing test fails the step.

    dbt unit tests check SQL logic on fixed fixtures, not the data, so they run in the test suite
    (tests/test_end_to_end.py builds with them) rather than in every production run. After the build,
    `dbt docs generate --static` (same target folder: no re-parse) leaves the docs site for publishing.
    """
    os.environ["PIPELINE_WAREHOUSE_PATH"] = str(pipeline.paths.warehouse)
    with retry_transient(context):
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
    if docs_enabled():
        target = invocation.target_path
        dbt.cli(["docs", "generate", "--static", "--no-compile"], target_path=target, raise_on_error=True).wait()
        out = pipeline.paths.staging / context.run_id / "dbt_docs"
        out.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(target / "static_index.html", out / "index.html")
        for name in ("manifest.json", "catalog.json"):
            shutil.copyfile(target / name, out / name)
