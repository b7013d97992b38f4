"""Ingestion: inbox files -> raw tables, with a load ledger and a quarantine; new rows validated (GX)."""

import dagster as dg

from dagster_project.lib import ingest, warehouse
from dagster_project.lib.export import publish
from dagster_project.lib.ingest import formats
from dagster_project.lib.orchestration import AS_OF_PARTITIONS, ONE_RUN_PER_DATE, retry_transient
from dagster_project.lib.quality import gx_validation, raw_validation
from dagster_project.lib.resources import PipelineConfig

RAW_TABLES = [lay.name for lay in formats.LAYOUTS] + [ingest.GENERIC_TABLE]
LEDGER_KEY = dg.AssetKey(["raw", "load_ledger"])
QUARANTINE_KEY = dg.AssetKey(["raw", "quarantine"])

RAW_SPECS = [
    dg.AssetSpec(
        ["raw", name],
        group_name="ingestion",
        kinds={"duckdb"},
        description=f"Rows of the `{name}` exports, typed, with file and line lineage.",
    )
    for name in RAW_TABLES
] + [
    dg.AssetSpec(
        LEDGER_KEY,
        group_name="ingestion",
        kinds={"duckdb"},
        description="One row per inbox file per run: sha256, size, rows read/loaded/quarantined, status.",
    ),
    dg.AssetSpec(
        QUARANTINE_KEY,
        group_name="ingestion",
        kinds={"duckdb"},
        description="Rows that could not be loaded, with file, line, raw record and reason.",
    ),
]


@dg.multi_asset(specs=RAW_SPECS, name="raw_exports", partitions_def=AS_OF_PARTITIONS, backfill_policy=ONE_RUN_PER_DATE)
def raw_exports(context: dg.AssetExecutionContext, pipeline: PipelineConfig):
    """Load every new inbox file (each file once, by content hash) into the `raw` schema, then validate the
    rows not validated before with each raw table's Great Expectations suite: a file whose rows fail is
    unloaded again (lib/quality/raw_validation.py), and the `gx_<table>` checks report the outcome."""
    paths = pipeline.paths
    paths.ensure()
    # first, before anything is loaded or published: a warehouse of another release stops the run
    with retry_transient(context, pipeline.settings):
        con = pipeline.connect()
        try:
            warehouse.check_schema_version(con, paths.warehouse, paths.root)
        finally:
            con.close()
    if publish.finish_publish(paths.staging):  # an earlier run was killed after its publish commit point
        context.log.warning("completed the publish of an earlier run that was interrupted after its commit point")
    run_id = context.run.run_id
    gx_validation.prefetch()  # GX's import overlaps loading (the validation comes next)
    with retry_transient(context, pipeline.settings):
        con = pipeline.connect()
        try:
            results = ingest.ingest_inbox(con, paths.inbox, run_id)
            validations = raw_validation.validate_raw_tables(con, paths.staging / run_id / "validations")
            per_table = dict(
                con.execute(
                    "select layout, sum(rows_loaded) from raw.load_ledger where run_id = ? group by layout", [run_id]
                ).fetchall()
            )
            totals = {name: con.execute(f"select count(*) from raw.{name}").fetchone()[0] for name in RAW_TABLES}
            quarantined_total = con.execute("select count(*) from raw.quarantine").fetchone()[0]
        finally:
            con.close()

    summary = ingest.summarise(results)
    unchanged = [r for r in results if r.status == "unchanged"]
    if unchanged:
        context.log.info(f"{len(unchanged)} file(s) unchanged since an earlier run recorded them (not read again)")
    for r in results:
        if r.status == "unchanged":
            continue
        line = f"{r.status:9s} {r.path}: read {r.rows_read}, loaded {r.rows_loaded}, quarantined {r.rows_quarantined}"
        if r.message:
            line += f" ({r.message})"
        (context.log.warning if r.status == "rejected" or r.rows_quarantined else context.log.info)(line)
    for v in validations:
        if v.outcome.failures:
            context.log.warning(f"raw.{v.table} failed its Great Expectations suite: {v.description}")
    for stray in ingest.unplaced_files(paths.inbox):
        context.log.warning(f"not loaded: {stray} is in no source folder (known: {ingest.KNOWN_FOLDERS_TEXT})")
    for name in RAW_TABLES:
        yield dg.MaterializeResult(
            asset_key=["raw", name],
            metadata={"rows_loaded_this_run": int(per_table.get(name) or 0), "rows_total": int(totals[name])},
        )
    file_table = "\n".join(
        f"| {r.path} | {r.status} | {r.rows_read} | {r.rows_loaded} | {r.rows_quarantined} | {r.message[:80]} |"
        for r in results
        if r.status != "unchanged"
    )
    yield dg.MaterializeResult(
        asset_key=LEDGER_KEY,
        metadata={
            "files_seen": summary["files_seen"],
            "files_by_status": dg.MetadataValue.json(summary["files_by_status"]),
            "rows_read": summary["rows_read"],
            "rows_loaded": summary["rows_loaded"],
            "rows_quarantined": summary["rows_quarantined"],
            "files": dg.MetadataValue.md(
                "| file | status | read | loaded | quarantined | message |\n|---|---|---|---|---|---|\n" + file_table
            ),
        },
    )
    yield dg.MaterializeResult(
        asset_key=QUARANTINE_KEY,
        metadata={"rows_quarantined_this_run": summary["rows_quarantined"], "rows_total": int(quarantined_total)},
    )
