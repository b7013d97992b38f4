"""dbt models (staging -> intermediate -> marts) as Dagster assets; dbt tests as asset checks."""

import json
import shutil

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from dagster_project.defs.models.assets import ensure_output_tables
from dagster_project.lib import warehouse
from dagster_project.lib.dbt_runner import spark_interop
from dagster_project.lib.dbt_runner.project import (
    Translator,
    dbt_environment,
    docs_cache_key,
    generate_docs,
    invocation_target,
    keep_partial_parse,
    manifest_for_definitions,
    remember_docs,
    reuse_docs,
)
from dagster_project.lib.export import holdout
from dagster_project.lib.orchestration import AS_OF_PARTITIONS, ONE_RUN_PER_DATE, business_today, retry_transient
from dagster_project.lib.resources import PipelineConfig


def publish_docs(context, pipeline: PipelineConfig, target: str, path) -> None:
    """The dbt docs site for this run's exports: reused when nothing it shows changed (same dbt project
    files, dbt version and warehouse columns), else `dbt docs generate --static` (in-process) and cached."""
    out = pipeline.paths.staging / context.run_id / "dbt_docs"
    cache = pipeline.paths.warehouse.parent / "dbt_docs"
    with retry_transient(context, pipeline.settings):
        con = pipeline.connect(read_only=True)
        try:
            key = docs_cache_key(con)
        finally:
            con.close()
    if reuse_docs(cache, key, out):
        context.log.info("dbt docs unchanged since the last run (same project files and columns): reused")
        return
    index = generate_docs(path, target)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(index, out / "index.html")
    for name in ("manifest.json", "catalog.json"):
        shutil.copyfile(path / name, out / name)
    remember_docs(out, cache, key)


# The marts built from the CLV model's raw outputs: dbt builds everything else first (the model is fitted
# on int_customer_btyd_summary), the Python asset clv_model writes the clv schema, then these.
CLV_MARTS_SELECT = "source:clv+"
CUSTOMER_CLV_KEY = dg.AssetKey(["marts", "customer_clv"])


@dbt_assets(
    manifest=manifest_for_definitions(),
    dagster_dbt_translator=Translator(),
    name="dbt_models",
    exclude=CLV_MARTS_SELECT,
    partitions_def=AS_OF_PARTITIONS,
    backfill_policy=ONE_RUN_PER_DATE,
)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, pipeline: PipelineConfig):
    """`dbt build` of the selected models, with the run's as-of date; a failing test fails the step.

    dbt unit tests check SQL logic on fixed fixtures, not the data, so they run in the test suite
    (tests/test_end_to_end.py builds with them) rather than in every production run. After the build,
    `dbt docs generate --static` (in-process, same target folder) leaves the docs site for publishing.

    With the dbt target `spark` (pipeline config `dbt_target` or `DBT_TARGET`), the raw and identity
    tables are first written as Parquet for Spark to read, and the tables Spark built are read back
    into the DuckDB warehouse afterwards, so checks, the CLV model and publishing run unchanged.

    dbt runs with the environment `dbt_environment` sets from the run's settings, and only while it runs.
    """
    # the docs site is generated after the last dbt build of the run, so its catalog has every mart
    yield from _dbt_build(
        context, dbt, pipeline, docs=pipeline.settings.dbt_docs and not _builds_clv_marts_later(context)
    )


def _builds_clv_marts_later(context: dg.AssetExecutionContext) -> bool:
    """Whether this run also builds the CLV marts (dbt_clv_marts, after the CLV model)."""
    selection = context.run.asset_selection  # None: the whole job, which has them
    return selection is None or CUSTOMER_CLV_KEY in selection


@dbt_assets(
    manifest=manifest_for_definitions(),
    dagster_dbt_translator=Translator(),
    name="dbt_clv_marts",
    select=CLV_MARTS_SELECT,
    partitions_def=AS_OF_PARTITIONS,
    backfill_policy=ONE_RUN_PER_DATE,
)
def dbt_clv_marts(context: dg.AssetExecutionContext, dbt: DbtCliResource, pipeline: PipelineConfig):
    """`dbt build` of the models on the CLV model's raw outputs (customer_clv, clv_model_fits), as
    dbt_models does, then the run's docs site."""
    yield from _dbt_build(context, dbt, pipeline, docs=pipeline.settings.dbt_docs)


def _dbt_build(context: dg.AssetExecutionContext, dbt: DbtCliResource, pipeline: PipelineConfig, docs: bool):
    settings = pipeline.settings
    target = settings.dbt_target
    args = ["build", "--exclude-resource-type", "unit_test", "--target", target]
    with retry_transient(context, settings):
        # The as-of date goes in as data (raw.run_context, read by the as_of_date macro), not --vars,
        # so dbt can partially parse instead of re-parsing the whole project every day.
        con = pipeline.connect()
        try:
            warehouse.write_run_context(con, pipeline.as_of_date, context.run_id, settings.timezone)
            ensure_output_tables(con)  # the CLV model's outputs, read as dbt sources, exist before its first fit
            # the holdout salt, and every published tier membership in the history the lift marts read
            recorded = holdout.reconcile(con, pipeline.paths.exports)
            if recorded:
                context.log.info(f"tier memberships of published exports recorded: {', '.join(recorded)}")
            if target == "spark":
                exported = spark_interop.export_raw_parquet(con, pipeline.paths.root)
        finally:
            con.close()
    if target == "spark":
        # Spark reads the dbt sources only; it gets the as-of date as a var
        args += [
            "--vars",
            json.dumps(
                {
                    "as_of": pipeline.as_of_date.isoformat(),
                    "as_of_day_complete": business_today(settings.timezone) > pipeline.as_of_date,
                }
            ),
        ]
        context.log.info(
            f"raw layer written as Parquet for Spark: {sum(exported.values())} rows in {len(exported)} tables"
        )
    warehouse.release_freed_memory()  # the dbt process's DuckDB needs its memory limit beside this process
    with retry_transient(context, settings):
        with dbt_environment(settings, pipeline.paths):  # dagster-dbt copies the environment when dbt starts
            invocation = dbt.cli(
                args, context=context, target_path=invocation_target(context.run_id, pipeline.paths.dbt_state)
            )
        yield from invocation.stream()
    if target == "spark":
        with pipeline.connect() as con:
            imported = spark_interop.import_spark_tables(con, pipeline.paths.root)
        context.log.info(f"tables built by Spark read back into DuckDB: {', '.join(sorted(imported))}")
    else:
        keep_partial_parse(invocation.target_path, pipeline.paths.dbt_state)
        if docs:
            with dbt_environment(settings, pipeline.paths):
                publish_docs(context, pipeline, target, invocation.target_path)
    # dagster-dbt gives every invocation its own target folder (~5 MB with the docs); a daily run would
    # pile them up, so a successful build removes its own (a failed one keeps it for debugging)
    shutil.rmtree(invocation.target_path, ignore_errors=True)
