"""The run's outputs, each its own asset, and the step that publishes them.

Each output asset writes into the run's staging folder (``<data dir>/staging/<run id>/``, the
``exports/<as-of>/`` layout inside it): the tier lists, the serving copy of the warehouse, the
Parquet marts, the run report and the manifest.  ``published_run`` only commits the staged run
and swaps it into place (lib/export/publish.py: a journal makes the swap complete or undone after a
crash), then prunes old export folders and records per-mart observations.

Every one of them is downstream of all marts, so none runs when a blocking check upstream failed
(Dagster skips them), and only ``published_run`` touches what readers see: a failed run publishes
nothing and leaves the previous serving file and exports untouched.
"""

import json
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb

from dagster_project.defs.ingestion.assets import LEDGER_KEY
from dagster_project.lib import warehouse
from dagster_project.lib.dbt_runner.project import manifest_for_definitions
from dagster_project.lib.export import charts, holdout, publish, report, tiers
from dagster_project.lib.orchestration import AS_OF_PARTITIONS, ONE_RUN_PER_DATE, retry_transient
from dagster_project.lib.paths import REPO_ROOT
from dagster_project.lib.quality import gx_validation
from dagster_project.lib.resources import PipelineConfig


def _mart_keys() -> list[dg.AssetKey]:
    """Every dbt model in the marts schema: publishing waits for all of them and their checks."""
    manifest = json.loads(manifest_for_definitions().read_text())
    names = sorted(
        n["name"]
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model" and n["config"].get("schema") == "marts"
    )
    return [dg.AssetKey(["marts", name]) for name in names]


MART_KEYS = _mart_keys()
PUBLISHED_KEY = dg.AssetKey(["exports", "published_run"])


def code_version() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=5
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import version

    return version("owned-audience-pipeline")


def check_results_of_run(context: dg.AssetExecutionContext) -> list[dict]:
    records = context.instance.get_records_for_run(
        run_id=context.run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=10_000
    ).records
    out = []
    for rec in records:
        ev = rec.event_log_entry.dagster_event.event_specific_data
        out.append(
            {
                "asset": ev.asset_key.to_user_string(),
                "check": ev.check_name,
                "passed": ev.passed,
                "severity": ev.severity.value,
            }
        )
    return sorted(out, key=lambda r: (r["asset"], r["check"]))


def published_as_of(latest: Path) -> "str | None":
    """The as-of date currently published (exports/latest), if any."""
    manifest = latest / "manifest.json"
    if not manifest.exists():
        return None
    return json.loads(manifest.read_text(encoding="utf-8")).get("as_of")


@dataclass(frozen=True)
class RunStage:
    """Where this run's outputs are staged: ``folder`` (staging/<run id>) holds the serving copy,
    the Parquet marts and small JSON hand-overs between the assets; ``exports`` (folder/exports/<as-of>)
    becomes exports/<as-of>/ when the run publishes."""

    folder: Path
    exports: Path
    as_of: str
    run_id: str

    def write_json(self, name: str, value) -> None:
        (self.folder / f"{name}.json").write_text(json.dumps(value, indent=1, default=str), encoding="utf-8")

    def read_json(self, name: str):
        return json.loads((self.folder / f"{name}.json").read_text(encoding="utf-8"))

    def fresh_dir(self, path: Path) -> Path:
        """An empty folder (a retried step starts again from nothing)."""
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path


def run_stage(context: dg.AssetExecutionContext, pipeline: PipelineConfig) -> RunStage:
    paths = pipeline.paths
    paths.ensure()
    # a publish interrupted after its commit point is completed before anything reads the exports
    if publish.finish_publish(paths.staging):
        context.log.warning("completed the publish of an earlier run that was interrupted after its commit point")
    as_of, run_id = pipeline.as_of_date.isoformat(), context.run.run_id
    folder = paths.staging / run_id  # also holds the run's raw validation results (written by ingestion)
    exports = folder / "exports" / as_of
    exports.mkdir(parents=True, exist_ok=True)
    return RunStage(folder, exports, as_of, run_id)


STAGED = dict(group_name="export", partitions_def=AS_OF_PARTITIONS, backfill_policy=ONE_RUN_PER_DATE)
TIER_LISTS_KEY = dg.AssetKey(["exports", "tier_lists"])
SERVING_COPY_KEY = dg.AssetKey(["exports", "serving_copy"])
PARQUET_MARTS_KEY = dg.AssetKey(["exports", "parquet_marts"])
RUN_REPORT_KEY = dg.AssetKey(["exports", "run_report"])
MANIFEST_KEY = dg.AssetKey(["exports", "manifest"])


@dg.asset(
    key=TIER_LISTS_KEY,
    deps=[
        *MART_KEYS,
        dg.AssetKey(["intermediate", "int_customer_contacts"]),
        dg.AssetKey(["intermediate", "int_customer_profiles"]),
        LEDGER_KEY,
    ],
    kinds={"csv", "parquet"},
    description="Each tier of tiers.yml as CSV and Parquet, its consented hashed "
    "file, its holdout file and who entered and left since the previous published run, staged for publishing.",
    **STAGED,
)
def tier_lists(context: dg.AssetExecutionContext, pipeline: PipelineConfig) -> dg.MaterializeResult:
    stage = run_stage(context, pipeline)
    paths = pipeline.paths
    stage.fresh_dir(stage.exports / "tiers")
    tier_defs = tiers.load_tiers(paths.root / "tiers.yml" if (paths.root / "tiers.yml").exists() else None)
    with retry_transient(context, pipeline.settings):
        con = pipeline.connect(read_only=True)
    try:
        compare_with = tiers.previous_exports(paths.exports, stage.as_of)
        salt = holdout.read_salt(con)
        stats = {t.name: tiers.write_tier_files(con, t, stage.exports, compare_with, salt) for t in tier_defs}
    finally:
        con.close()
    stage.write_json("tier_stats", stats)
    return dg.MaterializeResult(
        metadata={
            "tier_rows": dg.MetadataValue.json({k: v["rows"] for k, v in stats.items()}),
            "compared_with": str(compare_with.name) if compare_with else "nothing (first run)",
        }
    )


@dg.asset(
    key=SERVING_COPY_KEY,
    deps=MART_KEYS,
    kinds={"duckdb"},
    description="The serving warehouse (marts with contacts masked, fct_orders, meta.published_run), "
    "staged for publishing.",
    **STAGED,
)
def serving_copy(context: dg.AssetExecutionContext, pipeline: PipelineConfig) -> dg.MaterializeResult:
    stage = run_stage(context, pipeline)
    paths = pipeline.paths
    with retry_transient(context, pipeline.settings):
        con = pipeline.connect(read_only=True)
    try:
        mart_rows = {
            name: int(con.execute(f"select count(*) from marts.{name}").fetchone()[0])
            for (name,) in con.execute(
                "select table_name from duckdb_tables() where schema_name = 'marts' order by 1"
            ).fetchall()
        }
    finally:
        con.close()
    run_info = {
        "run_id": stage.run_id,
        "as_of": stage.as_of,
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    # starts from the published serving file: fct_orders then takes only the orders built since
    publish.build_serving_copy(
        paths.warehouse, stage.folder / "warehouse.duckdb", run_info, previous=paths.serving_warehouse
    )
    stage.write_json("run_info", run_info)
    stage.write_json("mart_rows", mart_rows)
    return dg.MaterializeResult(metadata={"mart_rows": dg.MetadataValue.json(mart_rows)})


@dg.asset(
    key=PARQUET_MARTS_KEY,
    deps=[SERVING_COPY_KEY],
    kinds={"parquet"},
    description="Every mart of the serving copy as Parquet (serving/marts/), and this as-of date's marts "
    "kept with its exports, staged for publishing.",
    **STAGED,
)
def parquet_marts(context: dg.AssetExecutionContext, pipeline: PipelineConfig) -> dg.MaterializeResult:
    stage = run_stage(context, pipeline)
    marts = stage.folder / "marts"
    if marts.exists():
        shutil.rmtree(marts)
    written = publish.write_parquet_marts(stage.folder / "warehouse.duckdb", marts)
    kept = stage.exports / "marts"
    if kept.exists():
        shutil.rmtree(kept)
    # fct_orders, the order-level history, is kept only in serving
    publish.copy_parquet_marts(marts, kept, exclude=("fct_orders",))
    return dg.MaterializeResult(metadata={"files": len(written)})


@dg.asset(
    key=RUN_REPORT_KEY,
    deps=[SERVING_COPY_KEY, TIER_LISTS_KEY],
    kinds={"html"},
    description="report.html (headline, charts, CLV holdout), the charts as PNG and the dbt docs, "
    "staged for publishing.",
    **STAGED,
)
def run_report(context: dg.AssetExecutionContext, pipeline: PipelineConfig) -> dg.MaterializeResult:
    stage = run_stage(context, pipeline)
    paths = pipeline.paths
    tier_stats, mart_rows, run_info = (
        stage.read_json("tier_stats"),
        stage.read_json("mart_rows"),
        stage.read_json("run_info"),
    )
    clv_fit, next_order = None, None
    with retry_transient(context, pipeline.settings):
        con = pipeline.connect(read_only=True)
    try:
        if warehouse.table_exists(con, "marts", "clv_model_fits"):
            clv_fit = con.execute(
                "select status, message, holdout_by_group, holdout_relative_error, unreliable_reasons, diagnostics "
                "from marts.clv_model_fits where run_id = ?",
                [stage.run_id],
            ).fetchone()
        if warehouse.table_exists(con, "marts", "next_order_holdout"):
            cur = con.execute("select * from marts.next_order_holdout order by source")
            names = [d[0] for d in cur.description]
            next_order = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    finally:
        con.close()
    # charts, previews and the headline are drawn from the serving copy (contacts masked)
    con = duckdb.connect(str(stage.folder / "warehouse.duckdb"), read_only=True)
    try:
        chart_list = charts.all_charts(con, charts.tier_history(paths.exports, (stage.as_of, tier_stats)))
        previews = {
            name: report.markdown_preview(con.execute(f"select * from marts.{name} limit 5").df()) for name in mart_rows
        }
        figures = report.headline(con)
    finally:
        con.close()
    chart_dir = stage.fresh_dir(stage.exports / "charts")
    for c in chart_list:
        (chart_dir / f"{c.name}.png").write_bytes(c.png)
    if (stage.folder / "dbt_docs" / "index.html").exists():  # written by the dbt step (PIPELINE_DBT_DOCS)
        if (stage.exports / "dbt_docs").exists():
            shutil.rmtree(stage.exports / "dbt_docs")
        shutil.copytree(stage.folder / "dbt_docs", stage.exports / "dbt_docs")
    info = {**run_info, "code_version": code_version()}
    previous = report.previous_headline(tiers.previous_exports(paths.exports, stage.as_of))
    (stage.exports / "report.html").write_text(
        report.run_report(info, figures, previous, clv_fit, chart_list, next_order), encoding="utf-8"
    )
    stage.write_json("headline", figures)
    # what published_run records in Dagster once the run is published (nothing is recorded before)
    charts_md = {".".join(charts.CHART_ASSETS[c.name]): charts.markdown_image(c) for c in chart_list}
    stage.write_json("observations", {"previews": previews, "charts": charts_md})
    return dg.MaterializeResult(metadata={"charts": len(chart_list)})


@dg.asset(
    key=MANIFEST_KEY,
    deps=[*MART_KEYS, TIER_LISTS_KEY, SERVING_COPY_KEY, PARQUET_MARTS_KEY, RUN_REPORT_KEY],
    kinds={"json", "html"},
    description="manifest.json (run id, as-of, code version, tier and mart row counts, "
    "every check result, the headline, the sha256 of every staged export file) and validation_report.html "
    "(the raw suites' results and every check of the run).",
    **STAGED,
)
def manifest(context: dg.AssetExecutionContext, pipeline: PipelineConfig) -> dg.MaterializeResult:
    stage = run_stage(context, pipeline)
    # A backfill of an older date publishes exports/<as-of>/ but leaves serving and `latest` on the newer date.
    current = published_as_of(pipeline.paths.exports / "latest")
    updates_serving = current is None or stage.as_of >= current
    info = {
        **stage.read_json("run_info"),
        "code_version": code_version(),
        "tiers": stage.read_json("tier_stats"),
        "mart_rows": stage.read_json("mart_rows"),
        "checks": check_results_of_run(context),
        "serving_updated": updates_serving,
        "serving_as_of": stage.as_of if updates_serving else current,
        "headline": stage.read_json("headline"),  # the next run's report compares with these
    }
    validations = stage.folder / "validations"
    if validations.exists():  # the raw suites' results, then every other check of the run
        (stage.exports / "validation_report.html").write_text(
            gx_validation.render_html(
                validations, f"Data validation, run {stage.run_id} as of {stage.as_of}", info["checks"]
            ),
            encoding="utf-8",
        )
    publish.write_manifest(stage.exports, info)
    return dg.MaterializeResult(metadata={"checks": len(info["checks"]), "serving_updated": updates_serving})


@dg.asset(
    key=PUBLISHED_KEY,
    deps=[*MART_KEYS, LEDGER_KEY, MANIFEST_KEY],
    kinds={"duckdb", "parquet", "csv"},
    description="Publishes the staged run atomically (serving/warehouse.duckdb, serving/marts/, "
    "exports/<as-of>/, exports/latest) after every blocking check passed.",
    **STAGED,
)
def published_run(context: dg.AssetExecutionContext, pipeline: PipelineConfig) -> dg.MaterializeResult:
    stage = run_stage(context, pipeline)
    paths, as_of = pipeline.paths, stage.as_of
    info = json.loads((stage.exports / "manifest.json").read_text(encoding="utf-8"))
    observations = stage.read_json("observations")
    updates_serving, current = info["serving_updated"], info["serving_as_of"]

    # Publish (journalled, see lib/export/publish.py): serving file, Parquet marts, exports folder, `latest` last;
    # a backfill of an older as-of date swaps in its exports folder only.
    publish.commit_and_swap(
        paths.staging,
        stage.folder,
        as_of,
        paths.serving_warehouse,
        paths.serving_marts_dir,
        paths.exports,
        update_serving=updates_serving,
    )
    publish.remove_stale_stages(paths.staging, keep=stage.run_id)
    # the tier memberships just published join the history the lift is measured on (a failure here is
    # made good by the next run's reconcile, which reads the same published folder)
    try:
        with pipeline.connect() as con:
            recorded = holdout.record_published(con, paths.exports / as_of, as_of, stage.run_id)
        context.log.info(f"recorded {recorded} tier memberships as of {as_of} in {holdout.MEMBERSHIP_TABLE}")
    except (duckdb.Error, OSError, ValueError) as exc:
        context.log.warning(f"tier memberships as of {as_of} not recorded yet (the next run does): {exc}")

    if updates_serving:
        context.log.info(
            f"published run {stage.run_id} as of {as_of}: {paths.serving_warehouse} and {paths.exports / as_of}"
        )
        # retention (a backfill of an older date leaves it to the next run that moves `latest`); the run is
        # published by now, so a folder that cannot be removed is a warning, not a failed run
        try:
            pruned = publish.prune_exports(paths.exports, paths.staging, pipeline.settings.keep_exports)
        except OSError as exc:
            context.log.warning(f"could not remove old dated export folders from {paths.exports}: {exc}")
        else:
            if pruned:
                context.log.info(
                    f"removed {len(pruned)} dated export folder(s) beyond the newest "
                    f"{pipeline.settings.keep_exports}: {', '.join(pruned)}"
                )
    else:
        context.log.info(
            f"backfill as of {as_of}: published {paths.exports / as_of}; serving and exports/latest "
            f"stay as of {current}"
        )
    # row counts, previews and charts on the marts themselves (only for a run that published)
    for name, n in info["mart_rows"].items():
        meta = {
            "dagster/row_count": dg.MetadataValue.int(n),
            "preview": dg.MetadataValue.md(observations["previews"][name]),
        }
        chart = observations["charts"].get(f"marts.{name}")
        if chart is not None:
            meta["chart"] = dg.MetadataValue.md(chart)
        context.log_event(dg.AssetObservation(asset_key=dg.AssetKey(["marts", name]), partition=as_of, metadata=meta))
    tier_stats = info["tiers"]
    return dg.MaterializeResult(
        metadata={
            "as_of": as_of,
            "report": dg.MetadataValue.path(str(paths.exports / as_of / "report.html")),
            "tier_sizes_chart": dg.MetadataValue.md(observations["charts"].get("exports.published_run", "")),
            "serving_warehouse": dg.MetadataValue.path(str(paths.serving_warehouse)),
            "exports": dg.MetadataValue.path(str(paths.exports / as_of)),
            "tier_rows": dg.MetadataValue.json({k: v["rows"] for k, v in tier_stats.items()}),
            "mart_rows": dg.MetadataValue.json(info["mart_rows"]),
            "tiers": dg.MetadataValue.md(
                "| tier | rows | held out | consented | entered | left |\n|---|---|---|---|---|---|\n"
                + "\n".join(
                    f"| {k} | {v['rows']} | {v.get('holdout_rows', 0)} | {v['consented_rows']} | {v['entered']} "
                    f"| {v['left']} |"
                    for k, v in tier_stats.items()
                )
            ),
            "manifest": dg.MetadataValue.json(info["checks"]),
        }
    )
