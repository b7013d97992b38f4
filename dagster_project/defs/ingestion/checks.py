"""Blocking checks on what ingestion did in this run."""

import dagster as dg

from dagster_project.defs.ingestion.assets import LEDGER_KEY, RAW_TABLES
from dagster_project.lib import ingest
from dagster_project.lib.quality import raw_validation
from dagster_project.lib.resources import PipelineConfig

# What a new user is told when a data directory has never had anything to load.
HOW_TO_START = (
    "put exports in its folders (shopify/: Shopify 'Export orders' CSVs; square/: Square 'Item "
    "Detail' and customer exports; members/: membership rosters; spend/: marketing spend; traffic/: "
    "store footfall; rates/: exchange rates; generic/<map name>/: other exports through a column "
    "map), or write demo exports with `python -m dagster_project demo --data-dir {root}`"
)


@dg.asset_check(
    asset=LEDGER_KEY, blocking=True, description="No inbox file was rejected (missing columns, wrong format)."
)
def no_rejected_files(context: dg.AssetCheckExecutionContext, pipeline: PipelineConfig) -> dg.AssetCheckResult:
    con = pipeline.connect(read_only=True)
    try:
        rows = con.execute(
            "select file_name, message from raw.load_ledger where run_id = ? and status = 'rejected' order by file_id",
            [context.run.run_id],
        ).fetchall()
    finally:
        con.close()
    passed = not rows or pipeline.settings.allow_rejected_files
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN if pipeline.settings.allow_rejected_files else dg.AssetCheckSeverity.ERROR,
        description=("; ".join(m for _, m in rows)) or "no file rejected",
        metadata={"rejected_files": dg.MetadataValue.json([f for f, _ in rows])},
    )


@dg.asset_check(
    asset=LEDGER_KEY,
    blocking=True,
    description="For every file loaded this run: rows read = rows in its raw table + rows quarantined.",
)
def rows_read_equal_loaded_plus_quarantined(
    context: dg.AssetCheckExecutionContext, pipeline: PipelineConfig
) -> dg.AssetCheckResult:
    union = " union all ".join(f"select _file_id as file_id from raw.{t}" for t in RAW_TABLES)
    con = pipeline.connect(read_only=True)
    try:
        bad = con.execute(
            f"""
            with landed as (select file_id, count(*) as n from ({union}) group by file_id),
                 quarantined as (select file_id, count(*) as n from raw.quarantine group by file_id)
            select l.file_name, l.rows_read, coalesce(landed.n, 0), coalesce(quarantined.n, 0)
            from raw.load_ledger l
            left join landed on landed.file_id = l.file_id
            left join quarantined on quarantined.file_id = l.file_id
            where l.status = 'loaded'
              and (l.rows_read != coalesce(landed.n, 0) + coalesce(quarantined.n, 0)
                   or l.rows_loaded != coalesce(landed.n, 0))
            """
        ).fetchall()
        totals = con.execute(
            "select coalesce(sum(rows_read),0), coalesce(sum(rows_loaded),0), coalesce(sum(rows_quarantined),0) "
            "from raw.load_ledger where status = 'loaded'"
        ).fetchone()
    finally:
        con.close()
    return dg.AssetCheckResult(
        passed=not bad,
        description="rows reconcile for every loaded file" if not bad else f"rows lost or duplicated in {bad[:5]}",
        metadata={"rows_read": int(totals[0]), "rows_loaded": int(totals[1]), "rows_quarantined": int(totals[2])},
    )


@dg.asset_check(
    asset=LEDGER_KEY,
    blocking=False,
    description="Warns when a source that has sent exports before has sent no new file for more than "
    "PIPELINE_FRESHNESS_DAYS days (default 2).",
)
def exports_are_fresh(pipeline: PipelineConfig) -> dg.AssetCheckResult:
    limit = pipeline.settings.freshness_days
    con = pipeline.connect(read_only=True)
    try:
        rows = con.execute(
            """
            select folder, max(loaded_at) as newest_arrival,
                   date_diff('hour', max(loaded_at), cast(now() as timestamp)) / 24.0 as days_since
            from raw.load_ledger
            where status = 'loaded'
            group by folder
            order by folder
            """
        ).fetchall()
    finally:
        con.close()
    stale = [(folder, days) for folder, _, days in rows if days > limit]
    return dg.AssetCheckResult(
        passed=not stale,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "no new export for more than "
            + str(limit)
            + " days from: "
            + ", ".join(f"{folder} ({days:.1f} days)" for folder, days in stale)
        )
        if stale
        else f"every source sent a new export within {limit} days",
        metadata={
            "freshness_days": limit,
            "sources": dg.MetadataValue.md(
                "| source folder | newest new file | days since |\n|---|---|---|\n"
                + "\n".join(f"| {f} | {t:%Y-%m-%d %H:%M} UTC | {d:.1f} |" for f, t, d in rows)
            ),
        },
    )


@dg.asset_check(
    asset=LEDGER_KEY,
    blocking=True,
    description="Something has been loaded into this data directory, in this run or an earlier one: "
    "a run over a mistyped or new empty data directory fails instead of publishing empty lists.",
)
def exports_have_been_loaded(pipeline: PipelineConfig) -> dg.AssetCheckResult:
    con = pipeline.connect(read_only=True)
    try:
        loaded = con.execute("select count(*) from raw.load_ledger where status = 'loaded'").fetchone()[0]
    finally:
        con.close()
    paths = pipeline.paths
    return dg.AssetCheckResult(
        passed=loaded > 0,
        description=(
            f"{loaded} export file(s) loaded into {paths.root}"
            if loaded
            else f"nothing has ever been loaded in the data directory {paths.root}: its inbox {paths.inbox} "
            f"has no export in a source folder. Check the data directory (--data-dir or "
            f"PIPELINE_DATA_DIR), then " + HOW_TO_START.format(root=paths.root)
        ),
        metadata={"files_loaded_ever": int(loaded)},
    )


@dg.asset_check(
    asset=LEDGER_KEY,
    blocking=False,
    description="Warns about files under the inbox that no run loads (outside the source folders).",
)
def no_files_outside_source_folders(pipeline: PipelineConfig) -> dg.AssetCheckResult:
    inbox = pipeline.paths.inbox
    stray = [p.relative_to(inbox).as_posix() for p in ingest.unplaced_files(inbox)]
    shown = ", ".join(stray[:20]) + (f" and {len(stray) - 20} more" if len(stray) > 20 else "")
    return dg.AssetCheckResult(
        passed=not stray,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"not loaded: {len(stray)} file(s) in no source folder of {inbox}: {shown} "
            f"(known folders: {ingest.KNOWN_FOLDERS_TEXT}; move each file into the folder for its kind)"
        )
        if stray
        else "every inbox file is in a source folder",
        metadata={"files_not_loaded": dg.MetadataValue.json(stray)},
    )


def _gx_check(table: str):
    """A blocking check reporting the raw table's Great Expectations validation, which ingestion ran (and
    acted on: a failing file is unloaded) before this check; the check itself only reads the outcome."""

    @dg.asset_check(
        asset=dg.AssetKey(["raw", table]),
        name=f"gx_{table}",
        blocking=True,
        description=f"Great Expectations suite for raw.{table}, run by ingestion over the rows of files not "
        "validated before (this run's, or a killed run's), through a pandas batch; a file that fails "
        "is unloaded and loaded again by the next run (--allow-rejected-files: a warning).",
    )
    def _check(context: dg.AssetCheckExecutionContext, pipeline: PipelineConfig) -> dg.AssetCheckResult:
        result = raw_validation.load_result(pipeline.paths.staging / context.run.run_id / "validations", table)
        if result is None:
            return dg.AssetCheckResult(
                passed=False, description=f"raw.{table} was not validated in this run (its ingestion did not finish)"
            )
        # a failing file is unloaded, as a rejected file is not loaded: --allow-rejected-files publishes
        # the other files in both cases, and the check then passes as a warning (as no_rejected_files does)
        allowed = pipeline.settings.allow_rejected_files
        return dg.AssetCheckResult(
            passed=result["success"] or allowed,
            severity=dg.AssetCheckSeverity.WARN if allowed else dg.AssetCheckSeverity.ERROR,
            description=result["description"],
            metadata={
                "rows": result["rows"],
                "expectations": result["expectations"],
                "results": dg.MetadataValue.json(result["results"]),
            },
        )

    return _check


GX_CHECKS = [_gx_check(t) for t in raw_validation.RAW_GX_TABLES]
