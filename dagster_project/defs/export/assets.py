"""Publishing: tier lists, the serving warehouse and Parquet marts, swapped in atomically.

This asset runs only when every blocking check upstream passed (Dagster skips it otherwise), so a
failed run publishes nothing and leaves the previous serving file and exports untouched.
"""


import json
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd

from dagster_project.defs.ingestion.assets import LEDGER_KEY
from dagster_project.lib import charts, gx_validation, publish, report, tiers, warehouse
from dagster_project.lib.dbt_project import ensure_manifest
from dagster_project.lib.orchestration import AS_OF_PARTITIONS, ONE_RUN_PER_DATE, retry_transient
from dagster_project.lib.paths import REPO_ROOT
from dagster_project.lib.resources import PipelineConfig

def _mart_keys() -> list[dg.AssetKey]:
    """Every dbt model in the marts schema: publishing waits for all of them and their checks."""
    manifest = json.loads(ensure_manifest().read_text())
    names = sorted(n["name"] for n in manifest["nodes"].values()
                   if n["resource_type"] == "model" and n["config"].get("schema") == "marts")
    return [dg.AssetKey(["marts", name]) for name in names]


MART_KEYS = _mart_keys()
PUBLISHED_KEY = dg.AssetKey(["exports", "published_run"])


def code_version() -> str:
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=5)
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
        out.append({"asset": ev.asset_key.to_user_string(), "check": ev.check_name, "passed": ev.passed,
                    "severity": ev.severity.value})
    return sorted(out, key=lambda r: (r["asset"], r["check"]))


def _charts_and_previews(serving_db: Path, exports: Path, as_of: str, tier_stats: dict,
                         mart_names) -> "tuple[list[charts.Chart], dict[str, str]]":
    con = duckdb.connect(str(serving_db), read_only=True)
    try:
        chart_list = charts.all_charts(con, charts.tier_history(exports, (as_of, tier_stats)))
        previews = {name: markdown_preview(con.execute(f"select * from marts.{name} limit 5").df())
                    for name in mart_names}
    finally:
        con.close()
    return chart_list, previews


def published_as_of(latest: Path) -> "str | None":
    """The as-of date currently published (exports/latest), if any."""
    manifest = latest / "manifest.json"
    if not manifest.exists():
        return None
    return json.loads(manifest.read_text(encoding="utf-8")).get("as_of")


def previous_exports(exports: Path, as_of: str) -> "Path | None":
    """The published exports entered/left compare with: the newest as-of date not after this one
    (the same date when re-run, the day before in a daily run, the right neighbour in a backfill)."""
    dates = [p.name for p in exports.iterdir()
             if p.is_dir() and not p.is_symlink() and p.name <= as_of and (p / "manifest.json").exists()] \
        if exports.exists() else []
    return exports / max(dates) if dates else None


def write_tier_files(con, tier: tiers.Tier, out: Path, previous: "Path | None") -> dict:
    """One tier's files, written by DuckDB from a temp table (no row passes through pandas)."""
    tiers.materialise(con, tier)
    rows = tiers.TIER_ROWS
    d = out / "tiers"
    d.mkdir(parents=True, exist_ok=True)
    listed = tiers.csv_select(con, rows, tier.output_columns)
    n = tiers.copy_to(con, f"select {', '.join(map(tiers.quoted, tier.output_columns))} from {rows} "
                           f"order by customer_key", d / f"{tier.name}.parquet", fmt="parquet")
    if tier.max_rows_per_file and n > tier.max_rows_per_file:
        tiers.copy_in_parts(con, listed, d, tier.name, n, tier.max_rows_per_file)
    else:
        tiers.copy_to(con, f"select {listed} from {rows} order by customer_key", d / f"{tier.name}.csv")
    hashed = tiers.copy_to(con, f"select {tiers.csv_select(con, rows, tiers.HASHED_COLUMNS)} from {rows} "
                                f"where coalesce(accepts_marketing, false) order by customer_key",
                           d / f"{tier.name}.hashed.csv")
    before_path = previous / "tiers" / f"{tier.name}.parquet" if previous is not None else None
    first_run = before_path is None or not before_path.exists()
    before = "(select cast(null as varchar) as customer_key where false)" if first_run else \
        f"read_parquet('{str(before_path).replace(chr(39), chr(39) * 2)}')"
    entered_sql = (f"select {tiers.csv_select(con, rows, ['customer_key', 'tier', 'reason'])} from {rows} "
                   f"where customer_key not in (select customer_key from {before}) order by customer_key")
    left_sql = (f"select {tiers.neutralised_sql('customer_key')} as customer_key, '{tier.name}' as tier "
                f"from (select distinct customer_key from {before}) "
                f"where customer_key not in (select customer_key from {rows}) order by 1")
    entered = tiers.copy_to(con, entered_sql, d / f"{tier.name}.entered.csv")
    left = tiers.copy_to(con, left_sql, d / f"{tier.name}.left.csv")
    con.execute(f"drop table {rows}")
    return {"rows": n, "consented_rows": hashed, "entered": entered, "left": left, "first_run": first_run}


# which mart each chart is drawn from (the chart is attached to that asset's metadata)
CHART_ASSETS = {
    "pareto": ["marts", "pareto_curve"],
    "rf_heatmap": ["marts", "customer_rfm"],
    "cohort_retention": ["marts", "cohort_retention"],
    "repeat_ladder": ["marts", "repeat_purchase_ladder"],
    "lifecycle": ["marts", "lifecycle_transitions"],
    "tier_sizes": ["exports", "published_run"],
    "membership_value": ["marts", "membership_value"],
    "ltv_cac": ["marts", "channel_economics"],
}
REPORT_TABLE_ROWS = 25


def markdown_preview(df: pd.DataFrame, max_chars: int = 40) -> str:
    """A small Markdown table of a mart's first rows (the serving copy: contact columns are masked)."""
    def cell(v, _column) -> str:
        text = "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)
        return text if len(text) <= max_chars else text[: max_chars - 1] + "…"

    return charts.markdown_table(list(df.columns), df.itertuples(index=False), cell)


def run_report(run_id: str, as_of: str, clv_fit, chart_list: "list[charts.Chart]") -> str:
    """report.html of the run (self-contained: charts embedded as PNG)."""
    sections = []
    for c in chart_list:
        rows = c.rows
        sections.append({"heading": c.title, "text": c.caption, "png": c.png, "table": rows[:REPORT_TABLE_ROWS],
                         "note": f"{len(rows) - REPORT_TABLE_ROWS} more rows in the mart"
                                 if len(rows) > REPORT_TABLE_ROWS else ""})
    if clv_fit is None or clv_fit[0] not in ("fitted", "unreliable"):
        sections.append({"heading": "Predicted CLV: calibration vs holdout",
                         "text": "No predictions this run: " + (clv_fit[1] if clv_fit else "the model did not run")})
    else:
        status, _, groups_json, error, reasons, diagnostics = clv_fit
        groups = json.loads(groups_json) if groups_json else []
        days = (json.loads(diagnostics) if diagnostics else {}).get("holdout_days") or 90
        text = (f"The purchase model is fitted on all but the last {days} days; bars compare its predicted "
                "purchases in those days with the actual ones, by how often customers bought before."
                + (f" Total error {error:.1%}." if error is not None else ""))
        if status == "unreliable":
            text = (report.UNRELIABLE_CLV + " Why: " + reasons + ". " + text)
        sections.append({
            "heading": "Predicted CLV: calibration vs holdout", "text": text,
            "png": report.holdout_chart(groups, f"Holdout purchases, as of {as_of}") if groups else None,
            "table": [{"repeat purchases": g["group"], "customers": g["customers"], "predicted": g["predicted"],
                       "actual": g["actual"]} for g in groups],
        })
    return report.render(f"Run report, as of {as_of} (run {run_id})", sections)


@dg.asset(
    key=PUBLISHED_KEY,
    deps=[*MART_KEYS, dg.AssetKey(["intermediate", "int_customer_contacts"]), LEDGER_KEY],
    group_name="export",
    partitions_def=AS_OF_PARTITIONS,
    backfill_policy=ONE_RUN_PER_DATE,
    kinds={"duckdb", "parquet", "csv"},
    description="Tier lists, manifest, serving/warehouse.duckdb and Parquet marts, published atomically "
                "after every blocking check passed.",
)
def published_run(context: dg.AssetExecutionContext, pipeline: PipelineConfig) -> dg.MaterializeResult:
    paths = pipeline.paths
    paths.ensure()
    if publish.finish_publish(paths.staging):
        context.log.warning("completed the publish of an earlier run that was interrupted after its commit point")
    as_of = pipeline.as_of_date.isoformat()
    run_id = context.run.run_id
    stage = paths.staging / run_id  # holds this run's validation results (written by the checks)
    exports_stage = stage / "exports" / as_of
    if exports_stage.exists():
        shutil.rmtree(exports_stage)
    exports_stage.mkdir(parents=True)
    latest = paths.exports / "latest"
    # A backfill of an older date publishes exports/<as-of>/ but leaves serving and `latest` on the newer date.
    current = published_as_of(latest)
    updates_serving = current is None or as_of >= current

    tier_defs = tiers.load_tiers(paths.root / "tiers.yml" if (paths.root / "tiers.yml").exists() else None)
    with retry_transient(context):
        con = pipeline.connect(read_only=True)
    try:
        compare_with = previous_exports(paths.exports, as_of)
        tier_stats = {t.name: write_tier_files(con, t, exports_stage, compare_with) for t in tier_defs}
        mart_rows = {
            name: int(con.execute(f"select count(*) from marts.{name}").fetchone()[0])
            for (name,) in con.execute(
                "select table_name from duckdb_tables() where schema_name = 'marts' order by 1").fetchall()
        }
        clv_fit = None
        if warehouse.table_exists(con, "marts", "clv_model_fits"):
            clv_fit = con.execute(
                "select status, message, holdout_by_group, holdout_relative_error, unreliable_reasons, diagnostics "
                "from marts.clv_model_fits "
                "where run_id = ?", [run_id]).fetchone()
    finally:
        con.close()

    info = {
        "run_id": run_id,
        "as_of": as_of,
        "published_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "tiers": tier_stats,
        "mart_rows": mart_rows,
        "checks": check_results_of_run(context),
        "serving_updated": updates_serving,
        "serving_as_of": as_of if updates_serving else current,
    }
    serving_tmp = stage / "warehouse.duckdb"
    # starts from the published serving file: fct_orders then takes only the orders built since
    publish.build_serving_copy(paths.warehouse, serving_tmp,
                               {"run_id": run_id, "as_of": as_of, "published_at": info["published_at"]},
                               previous=paths.serving_warehouse)
    chart_list, previews = _charts_and_previews(serving_tmp, paths.exports, as_of, tier_stats, mart_rows)
    (exports_stage / "charts").mkdir()
    for c in chart_list:
        (exports_stage / "charts" / f"{c.name}.png").write_bytes(c.png)
    marts_tmp = stage / "marts"
    publish.write_parquet_marts(serving_tmp, marts_tmp)
    # this as-of date's marts, kept with its exports (fct_orders, the order-level history, only in serving)
    publish.copy_parquet_marts(marts_tmp, exports_stage / "marts", exclude=("fct_orders",))
    if (stage / "dbt_docs" / "index.html").exists():  # written by the dbt step (PIPELINE_DBT_DOCS)
        shutil.copytree(stage / "dbt_docs", exports_stage / "dbt_docs")
    (exports_stage / "report.html").write_text(run_report(run_id, as_of, clv_fit, chart_list), encoding="utf-8")
    validations = stage / "validations"
    if validations.exists():
        (exports_stage / "validation_report.html").write_text(
            gx_validation.render_html(validations, f"Data validation, run {run_id} as of {as_of}"), encoding="utf-8")
    publish.write_manifest(exports_stage, info)

    # Publish (journalled, see lib/publish.py): serving file, Parquet marts, exports folder, `latest` last;
    # a backfill of an older as-of date swaps in its exports folder only.
    publish.commit_and_swap(paths.staging, stage, as_of, paths.serving_warehouse, paths.serving_marts_dir,
                            paths.exports, update_serving=updates_serving)
    publish.remove_stale_stages(paths.staging, keep=run_id)

    if updates_serving:
        context.log.info(f"published run {run_id} as of {as_of}: {paths.serving_warehouse} and {paths.exports / as_of}")
        # retention (a backfill of an older date leaves it to the next run that moves `latest`); the run is
        # published by now, so a folder that cannot be removed is a warning, not a failed run
        try:
            pruned = publish.prune_exports(paths.exports, paths.staging, pipeline.keep_exports)
        except OSError as exc:
            context.log.warning(f"could not remove old dated export folders from {paths.exports}: {exc}")
        else:
            if pruned:
                context.log.info(f"removed {len(pruned)} dated export folder(s) beyond the newest "
                                 f"{pipeline.keep_exports}: {', '.join(pruned)}")
    else:
        context.log.info(f"backfill as of {as_of}: published {paths.exports / as_of}; serving and exports/latest "
                         f"stay as of {current}")
    # row counts, previews and charts on the marts themselves (only for a run that published)
    by_asset = {tuple(CHART_ASSETS[c.name]): c for c in chart_list}
    for name, n in mart_rows.items():
        meta = {"dagster/row_count": dg.MetadataValue.int(n), "preview": dg.MetadataValue.md(previews[name])}
        chart = by_asset.get(("marts", name))
        if chart is not None:
            meta["chart"] = dg.MetadataValue.md(charts.markdown_image(chart))
        context.log_event(dg.AssetObservation(asset_key=dg.AssetKey(["marts", name]), partition=as_of,
                                              metadata=meta))
    tier_chart = by_asset.get(("exports", "published_run"))
    return dg.MaterializeResult(
        metadata={
            "as_of": as_of,
            "report": dg.MetadataValue.path(str(paths.exports / as_of / "report.html")),
            "tier_sizes_chart": dg.MetadataValue.md(charts.markdown_image(tier_chart)) if tier_chart else "",
            "serving_warehouse": dg.MetadataValue.path(str(paths.serving_warehouse)),
            "exports": dg.MetadataValue.path(str(paths.exports / as_of)),
            "tier_rows": dg.MetadataValue.json({k: v["rows"] for k, v in tier_stats.items()}),
            "mart_rows": dg.MetadataValue.json(mart_rows),
            "tiers": dg.MetadataValue.md(
                "| tier | rows | consented | entered | left |\n|---|---|---|---|---|\n" + "\n".join(
                    f"| {k} | {v['rows']} | {v['consented_rows']} | {v['entered']} | {v['left']} |"
                    for k, v in tier_stats.items())
            ),
            "manifest": dg.MetadataValue.json(json.loads((paths.exports / as_of / "manifest.json").read_text())["checks"]),
        }
    )
