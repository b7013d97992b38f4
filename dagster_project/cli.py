"""Command line for people and schedulers that do not open the UI.

python -m dagster_project run      [--data-dir DIR] [--as-of YYYY-MM-DD] [--allow-rejected-files] [--dbt-target duckdb|spark] [--full-refresh]
python -m dagster_project backfill --from YYYY-MM-DD --to YYYY-MM-DD [--data-dir DIR] [--full-refresh]
python -m dagster_project status   [--data-dir DIR] [--runs N]
python -m dagster_project demo     [--data-dir DIR] [--customers N] [--seed S] [--end-date D] [--if-empty]
python -m dagster_project prepare  [--data-dir DIR] [--if-changed]
"""  # noqa: E501 (SQL or printed text)

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from dagster_project.lib.paths import DataPaths, parse_as_of

INSTANCE_YAML = """\
# Written by `python -m dagster_project` (edit freely; delete this file to get the default back).
telemetry:
  enabled: false
concurrency:
  runs:
    # every pipeline run writes the one DuckDB warehouse: queue runs (backfills too) one at a time
    tag_concurrency_limits:
      - key: pipeline/writer
        limit: 1
"""


def _instance(paths: DataPaths):
    """The persistent Dagster instance under <data dir>/dagster_home (or $DAGSTER_HOME when set), with
    the event log's connections kept open (dagster_project/lib/adapters/dagster_sqlite.py)."""
    from dagster import DagsterInstance

    from dagster_project.lib.adapters.dagster_sqlite import instance_ref

    if os.environ.get("DAGSTER_HOME"):
        return DagsterInstance.from_ref(instance_ref(Path(os.environ["DAGSTER_HOME"])))
    home = paths.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    yaml_path = home / "dagster.yaml"
    if not yaml_path.exists():
        yaml_path.write_text(INSTANCE_YAML, encoding="utf-8")
    return DagsterInstance.from_ref(instance_ref(home))


def run_pipeline(
    data_dir: str | Path | None = None,
    as_of: str | None = None,
    allow_rejected_files: bool = False,
    quiet: bool = False,
    dbt_target: str = "",
    keep_exports: int | None = None,
):
    """Materialise every asset in-process; returns the Dagster result.

    The options given here override the environment's settings (lib/config.py) for this run; the
    run itself reads the rest once when it starts."""
    from dagster_project.lib.config import Settings
    from dagster_project.lib.dbt_runner.project import ensure_manifest
    from dagster_project.lib.orchestration import check_as_of_in_range

    paths = DataPaths.of(data_dir)
    as_of_date = parse_as_of(as_of)
    check_as_of_in_range(as_of_date)
    settings = Settings.from_env().with_overrides(data_dir=paths.root, dbt_target=dbt_target)
    if ensure_manifest(paths, settings):
        print("==> the dbt project changed since it was last parsed: parsed it again", flush=True)
    from dagster_project.definitions import defs

    job = defs.resolve_job_def("refresh_customer_value")
    run_config = {
        "resources": {
            "pipeline": {
                "config": {
                    "data_dir": str(paths.root),
                    "as_of": "",  # the partition key carries the as-of date
                    **({"allow_rejected_files": True} if allow_rejected_files else {}),
                    **({"dbt_target": dbt_target} if dbt_target else {}),
                    **({"keep_exports": keep_exports} if keep_exports is not None else {}),
                }
            }
        },
        "loggers": {"console": {"config": {"log_level": "WARNING" if quiet else "INFO"}}},
    }
    return job.execute_in_process(
        run_config=run_config,
        instance=_instance(paths),
        raise_on_error=False,
        partition_key=as_of_date.isoformat(),
        tags={"trigger": "cli"},
    )


def _failure_messages(result, paths: DataPaths | None = None) -> list[str]:
    from dagster_project.lib.status import failure_reason

    msgs = []
    for ev in result.all_events:
        if ev.event_type_value == "STEP_FAILURE":
            msgs.append(f"step {ev.step_key} failed: {failure_reason(ev.step_failure_data.error)}")
        elif ev.event_type_value == "ASSET_CHECK_EVALUATION":
            data = ev.event_specific_data
            if not data.passed:
                sev = data.severity.value
                desc = data.description or ""
                failed_rows = data.metadata.get("dagster_dbt/failed_row_count")
                if failed_rows is not None and not desc:  # a dbt test: dagster-dbt gives a count only
                    desc = f"{failed_rows.value} rows" + _dbt_failure_sample(paths, data.check_name)
                msgs.append(f"check {data.asset_key.to_user_string()}:{data.check_name} failed ({sev}): {desc}")
    return msgs


# dbt tests configured with store_failures (the range, pattern and share tests on marts) leave their
# failing rows as a view of this name in the working warehouse (DuckDB target).
DBT_FAILURES_SCHEMA = "dbt_test__audit"


def _dbt_failure_sample(paths: DataPaths | None, test_name: str) -> str:
    """', e.g. [...]': a few of a failed dbt test's rows, when the test kept them (else '')."""
    import duckdb

    from dagster_project.lib import warehouse

    if paths is None or not paths.warehouse.exists():
        return ""
    try:
        con = duckdb.connect(str(paths.warehouse), read_only=True)
    except duckdb.Error:
        return ""  # held by another process
    try:
        if not warehouse.table_exists(con, DBT_FAILURES_SCHEMA, test_name):
            return ""
        rows = con.execute(f'select * from {DBT_FAILURES_SCHEMA}."{test_name}" limit 5').fetchall()
    except duckdb.Error:
        return ""
    finally:
        con.close()
    # these tests select the values they judge (a range, a share, a masked contact), never a raw contact
    shown = [", ".join(str(v) for v in row) for row in rows]
    return f", e.g. {shown}" if shown else ""


def _print_quarantined(paths: DataPaths, run_id: str | None) -> None:
    """Per file, the rows this run set aside, and how to list them (the ledger is in the working
    warehouse, free once the run has finished)."""
    import duckdb

    try:
        con = duckdb.connect(str(paths.warehouse), read_only=True)
    except duckdb.Error:
        return  # held by another process: the run's log above has the counts
    try:
        rows = con.execute(
            "select path, rows_quarantined from raw.load_ledger where run_id = ? and "
            "rows_quarantined > 0 order by path",
            [run_id],
        ).fetchall()
    finally:
        con.close()
    if not rows:
        return
    print(
        "  rows set aside this run (loaded without them, each with its line and reason in raw.quarantine): "
        + ", ".join(f"{path} {n}" for path, n in rows)
    )
    query = "select file_name, line_number, reason, raw_record from raw.quarantine order by file_name, line_number"
    print(
        f"    list them: {sys.executable} -c \"import duckdb; print(duckdb.connect('{paths.warehouse}', "
        f"read_only=True).sql('{query}'))\""
    )


def _run_one(
    paths: DataPaths,
    as_of: str | None,
    allow_rejected_files: bool,
    quiet: bool,
    dbt_target: str = "",
    keep_exports: int | None = None,
):
    """Run once; print failures. Returns (exit code, elapsed seconds, warnings)."""
    t0 = time.perf_counter()
    result = run_pipeline(
        paths.root, as_of, allow_rejected_files, quiet=quiet, dbt_target=dbt_target, keep_exports=keep_exports
    )
    elapsed = time.perf_counter() - t0
    failures = _failure_messages(result, paths)
    if not result.success:
        print(
            f"\nFAILED after {elapsed:.1f}s; nothing was published (the previous serving warehouse "
            f"and exports are untouched).",
            file=sys.stderr,
        )
        for m in failures or ["see the log above"]:
            print(f"  - {m}", file=sys.stderr)
        return 1, elapsed, []
    return 0, elapsed, [m for m in failures if "(WARN)" in m]


def _full_refresh(paths: DataPaths) -> None:
    """Set the working warehouse aside so the run builds a new one from every file in the inbox (the way
    to move to a release with another warehouse schema version, README "Upgrading between versions")."""
    from dagster_project.lib import warehouse
    from dagster_project.lib.export import holdout

    aside = warehouse.set_aside(paths.warehouse)
    if aside is None:
        print(f"==> full refresh: no working warehouse at {paths.warehouse} yet; the run builds it", flush=True)
        return
    print(
        f"==> full refresh: the working warehouse is set aside as {aside} (delete it once the new one is "
        f"as you want it); rebuilding {paths.warehouse} from the exports in {paths.inbox}",
        flush=True,
    )
    # the holdout salt and the published tier-membership history are records, not rebuilt from the inbox:
    # carried into the new warehouse, so no holdout group is drawn again and the lift keeps its history
    con = warehouse.connect(paths.warehouse)
    try:
        warehouse.check_schema_version(con, paths.warehouse, paths.root)
        kept = holdout.carry_over(aside, con)
    finally:
        con.close()
    print(f"==> full refresh: holdout salt and {kept} published tier memberships carried over", flush=True)
    gone = warehouse.files_gone_from_inbox(aside, paths.inbox)
    if gone:
        shown = ", ".join(gone[:10]) + (f" and {len(gone) - 10} more" if len(gone) > 10 else "")
        print(
            f"  warning: {len(gone)} file(s) the old warehouse had loaded are no longer in the inbox, so the new "
            f"one does not have their rows: {shown} (put them back in {paths.inbox} and run again to load "
            f"them)",
            flush=True,
        )


def cmd_run(args: argparse.Namespace) -> int:
    paths = DataPaths.of(args.data_dir)
    if args.full_refresh:
        _full_refresh(paths)
    if paths.inbox_is_empty():
        print(
            f"note: the inbox {paths.inbox} is empty; drop exports there or run "
            f"`python -m dagster_project demo --data-dir {paths.root}`",
            file=sys.stderr,
        )
    as_of = parse_as_of(args.as_of).isoformat()
    print(f"==> running the pipeline on {paths.root} (as of {as_of})", flush=True)
    code, elapsed, warnings = _run_one(
        paths, as_of, args.allow_rejected_files, args.quiet, args.dbt_target or "", keep_exports=args.keep_exports
    )
    if code:
        return code
    manifest = json.loads((paths.exports / as_of / "manifest.json").read_text(encoding="utf-8"))
    print(f"\nDone in {elapsed:.1f}s. Published run {manifest['run_id']} as of {manifest['as_of']}.")
    if not manifest.get("serving_updated", True):
        print(
            f"  note: this is a backfill: exports/{as_of} holds its results; the serving warehouse and "
            f"exports/latest stay at the newer as-of date {manifest.get('serving_as_of')}."
        )
    for m in warnings:
        print(f"  warning: {m}")
    _print_quarantined(paths, manifest["run_id"])
    print(f"""
  Serving warehouse : {paths.serving_warehouse}   ({len(manifest["mart_rows"])} marts in schema `marts`; open this one, read-only)
  Parquet marts     : {paths.serving_marts_dir}/
  Tier lists        : {paths.exports / manifest["as_of"]}/tiers/   (exports/latest points here)
  Audience files    : {paths.exports / manifest["as_of"]}/audiences/<platform>/   (Google Ads, Meta, Klaviyo, Mailchimp: docs/audiences.md)
  Manifest          : {paths.exports / manifest["as_of"] / "manifest.json"}
  Run report        : {paths.exports / manifest["as_of"] / "report.html"}   (charts)
  Validation report : {paths.exports / manifest["as_of"] / "validation_report.html"}
  dbt docs          : {paths.exports / manifest["as_of"] / "dbt_docs" / "index.html"}
  Working warehouse : {paths.warehouse}   (pipeline only: a connection held on it blocks the next run)

  Tier sizes (held out of the files): {", ".join(f"{k} {v['rows']} (+{v.get('holdout_rows', 0)})" for k, v in manifest["tiers"].items())}

  Open the marts:
    {sys.executable} -c "import duckdb; print(duckdb.connect('{paths.serving_warehouse}', read_only=True).sql('from marts.pareto_summary'))"
  Or point DBeaver / Metabase / Superset (DuckDB driver, read-only) at the serving file.""")  # noqa: E501 (SQL or printed text)
    return 0


def cmd_backfill(args: argparse.Namespace) -> int:
    """One run per as-of date, oldest first, each publishing exports/<as-of>/."""
    from datetime import timedelta

    paths = DataPaths.of(args.data_dir)
    start, end = parse_as_of(args.start), parse_as_of(args.end)
    if end < start:
        raise ValueError(f"--to {end} is before --from {start}")
    days = [(start + timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]
    if args.full_refresh:
        _full_refresh(paths)
    print(f"==> backfilling {len(days)} as-of date(s) {days[0]} .. {days[-1]} on {paths.root}", flush=True)
    outcome = []
    for day in days:
        print(f"\n--- as of {day}", flush=True)
        code, elapsed, warnings = _run_one(
            paths,
            day,
            args.allow_rejected_files,
            quiet=True,
            dbt_target=args.dbt_target or "",
            keep_exports=args.keep_exports,
        )
        outcome.append((day, code, elapsed, len(warnings)))
        if code and not args.keep_going:
            break
    print("\nas_of       result   seconds  warnings")
    for day, code, elapsed, n_warn in outcome:
        print(f"{day}  {'ok' if code == 0 else 'FAILED':7s} {elapsed:8.1f}  {n_warn:8d}")
    print(f"exports per date in {paths.exports}/<as-of>/; serving and exports/latest show the newest as-of date.")
    return 0 if all(code == 0 for _, code, _, _ in outcome) and len(outcome) == len(days) else 1


def cmd_status(args: argparse.Namespace) -> int:
    from dagster_project.lib import status

    paths = DataPaths.of(args.data_dir)
    text, code = status.report(paths, _instance(paths) if paths.dagster_home.exists() else None, args.runs)
    print(text)
    return code


def cmd_demo(args: argparse.Namespace) -> int:
    from datetime import date

    paths = DataPaths.of(args.data_dir)
    if args.if_empty and not paths.inbox_is_empty():
        print(f"==> inbox {paths.inbox} already has files; not generating demo exports")
        return 0
    from dagster_project.lib.demo.generator import generate_demo

    end = date.fromisoformat(args.end_date) if args.end_date else None
    print(f"==> writing demo exports ({args.customers} customers, seed {args.seed}) to {paths.inbox}", flush=True)
    t0 = time.perf_counter()
    summary = generate_demo(paths.root, customers=args.customers, seed=args.seed, end_date=end)
    print(
        f"    done in {time.perf_counter() - t0:.1f}s: " + json.dumps(summary.get("files", summary), default=str)[:600]
    )
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from dagster_project.lib.config import Settings
    from dagster_project.lib.dbt_runner.project import manifest_is_current, prepare

    paths = DataPaths.of(args.data_dir)
    if args.if_changed and manifest_is_current():
        return 0
    t0 = time.perf_counter()
    manifest = prepare(paths, Settings.from_env().with_overrides(data_dir=paths.root))
    print(f"==> dbt project parsed for {paths.root} in {time.perf_counter() - t0:.1f}s: {manifest}")
    return 0


def _keep_exports(value: str) -> int:
    from dagster_project.lib.config import keep_exports_setting

    try:
        return keep_exports_setting(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dagster_project", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="run the whole pipeline in-process for a data directory")
    p_run.add_argument("--data-dir", default=None, help="data directory (default $PIPELINE_DATA_DIR or ./data)")
    p_run.add_argument("--as-of", default=None, help="as-of date YYYY-MM-DD (default: today, UTC)")
    p_run.add_argument(
        "--allow-rejected-files",
        action="store_true",
        help="publish even when an inbox file was rejected (reported as a warning)",
    )
    p_run.add_argument("--quiet", action="store_true", help="only warnings and the summary")
    p_run.add_argument(
        "--dbt-target",
        choices=["duckdb", "spark"],
        default=None,
        help="engine dbt builds the models on (default $DBT_TARGET, else duckdb); see README 'Running on Spark'",
    )
    keep_help = (
        "dated folders kept in <data dir>/exports: the newest N as-of dates (default "
        "$PIPELINE_KEEP_EXPORTS, else 30; 0 keeps every one)"
    )
    p_run.add_argument("--keep-exports", type=_keep_exports, default=None, metavar="N", help=keep_help)
    refresh_help = (
        "set the working warehouse aside and rebuild it from the exports in the inbox (needed once "
        "after an upgrade that changes its schema version)"
    )
    p_run.add_argument("--full-refresh", action="store_true", help=refresh_help)
    p_run.set_defaults(func=cmd_run)
    p_back = sub.add_parser("backfill", help="run once per as-of date in a range (oldest first)")
    p_back.add_argument("--data-dir", default=None)
    p_back.add_argument("--from", dest="start", required=True, help="first as-of date YYYY-MM-DD")
    p_back.add_argument("--to", dest="end", required=True, help="last as-of date YYYY-MM-DD (inclusive)")
    p_back.add_argument("--allow-rejected-files", action="store_true")
    p_back.add_argument("--dbt-target", choices=["duckdb", "spark"], default=None)
    p_back.add_argument("--keep-going", action="store_true", help="continue with later dates after a failure")
    p_back.add_argument("--keep-exports", type=_keep_exports, default=None, metavar="N", help=keep_help)
    p_back.add_argument("--full-refresh", action="store_true", help=refresh_help + ", before the first date")
    p_back.set_defaults(func=cmd_backfill)
    p_status = sub.add_parser("status", help="last runs, what is published, failing checks")
    p_status.add_argument("--data-dir", default=None)
    p_status.add_argument("--runs", type=int, default=5, help="how many recent runs to list")
    p_status.set_defaults(func=cmd_status)
    p_demo = sub.add_parser("demo", help="write demo exports into <data dir>/inbox")
    p_demo.add_argument("--data-dir", default=None)
    p_demo.add_argument("--customers", type=int, default=3000)
    p_demo.add_argument("--seed", type=int, default=7)
    p_demo.add_argument("--end-date", default=None, help="last day of demo history (default: yesterday)")
    p_demo.add_argument("--if-empty", action="store_true", help="do nothing when the inbox already has files")
    p_demo.set_defaults(func=cmd_demo)
    p_prep = sub.add_parser("prepare", help="parse the dbt project for a data directory (make install does this)")
    p_prep.add_argument("--data-dir", default=None)
    p_prep.add_argument(
        "--if-changed", action="store_true", help="only when a dbt file is newer than the manifest (or there is none)"
    )
    p_prep.set_defaults(func=cmd_prepare)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
