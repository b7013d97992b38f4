"""dbt models (staging -> intermediate -> marts) as Dagster assets; dbt tests as asset checks."""


import json
import os

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from dagster_project.lib import spark_interop
from dagster_project.lib.dbt_project import Translator, ensure_manifest
from dagster_project.lib.resources import PipelineConfig


@dbt_assets(manifest=ensure_manifest(), dagster_dbt_translator=Translator(), name="dbt_models")
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, pipeline: PipelineConfig):
    """`dbt build` of the selected models, with the run's as-of date; a failing test fails the step.

    dbt unit tests check SQL logic on fixed fixtures, not the data, so they run in the test suite
    (tests/test_end_to_end.py builds with them) rather than in every production run.

    With the dbt target `spark` (pipeline config `dbt_target` or `DBT_TARGET`), the raw and identity
    tables are first written as Parquet for Spark to read, and the tables Spark built are read back
    into the DuckDB warehouse afterwards, so checks, the CLV model and publishing run unchanged.
    """
    os.environ["PIPELINE_WAREHOUSE_PATH"] = str(pipeline.paths.warehouse)
    dbt_vars = {"as_of": pipeline.as_of_date.isoformat()}
    args = ["build", "--vars", json.dumps(dbt_vars), "--exclude-resource-type", "unit_test"]
    target = pipeline.resolved_dbt_target
    args += ["--target", target]
    if target == "spark":
        root = pipeline.paths.root
        with pipeline.connect() as con:
            exported = spark_interop.export_raw_parquet(con, root)
        context.log.info(f"raw layer written as Parquet for Spark: {sum(exported.values())} rows in {len(exported)} tables")
        os.environ.update(spark_interop.spark_env(root))
    yield from dbt.cli(args, context=context).stream()
    if target == "spark":
        with pipeline.connect() as con:
            imported = spark_interop.import_spark_tables(con, root)
        context.log.info(f"tables built by Spark read back into DuckDB: {', '.join(sorted(imported))}")
