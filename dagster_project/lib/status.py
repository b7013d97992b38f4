"""`python -m dagster_project status`: the last runs, what is published, and what failed.

Reads the Dagster instance under <data dir>/dagster_home (the one the CLI, the schedule and `make dev`
share) and the published manifest; never opens the working warehouse, so it works during a run.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from dagster_project.lib.paths import DataPaths

JOB_NAME = "refresh_customer_value"


def _ts(value: float | None) -> str:
    if not value:
        return "-"
    return datetime.fromtimestamp(value, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def failure_reason(err) -> str:
    """The reason a step failed, in one line and whole: the innermost cause of Dagster's error chain
    (Dagster wraps the user's exception in "Error occurred while executing op ..."), its lines joined."""
    if err is None:
        return "unknown error"
    while getattr(err, "cause", None) is not None:
        err = err.cause
    text = " ".join(line.strip() for line in (err.message or "").strip().splitlines() if line.strip())
    return text or (err.cls_name or "unknown error")


def _problems_of_run(instance, run_id: str) -> list[str]:
    import dagster as dg

    out = []
    for rec in instance.get_records_for_run(
        run_id=run_id, of_type=dg.DagsterEventType.STEP_FAILURE, limit=1000
    ).records:
        ev = rec.event_log_entry.dagster_event
        out.append(f"step {ev.step_key} failed: {failure_reason(ev.step_failure_data.error)}")
    for rec in instance.get_records_for_run(
        run_id=run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, limit=10_000
    ).records:
        data = rec.event_log_entry.dagster_event.event_specific_data
        if not data.passed:
            out.append(
                f"check {data.asset_key.to_user_string()}:{data.check_name} failed "
                f"({data.severity.value}): {data.description or ''}"
            )
    return out


def report(paths: DataPaths, instance, runs: int = 5) -> tuple[str, int]:
    """(text, exit code): 0 when the newest run succeeded (or none ran yet), 1 when it failed."""
    lines = [f"Data directory: {paths.root}", ""]
    code = 0
    records = []
    if instance is not None:
        import dagster as dg

        records = instance.get_run_records(filters=dg.RunsFilter(job_name=JOB_NAME), limit=runs)
    if not records:
        lines.append("Runs: none yet (run `python -m dagster_project run`).")
    else:
        lines.append(f"Last {len(records)} run(s), newest first:")
        lines.append(f"  {'run id':10s} {'status':9s} {'as of':10s} {'started (UTC)':19s} {'seconds':>8s}  trigger")
        for rec in records:
            run = rec.dagster_run
            secs = f"{rec.end_time - rec.start_time:8.1f}" if rec.start_time and rec.end_time else f"{'-':>8s}"
            lines.append(
                f"  {run.run_id[:8]:10s} {run.status.value:9s} {run.tags.get('dagster/partition', '-'):10s} "
                f"{_ts(rec.start_time):19s} {secs}  {run.tags.get('trigger', run.tags.get('dagster/schedule_name', '-'))}"  # noqa: E501 (SQL or printed text)
            )
        newest = records[0].dagster_run
        problems = _problems_of_run(instance, newest.run_id)
        if newest.status.value == "FAILURE":
            code = 1
        lines.append("")
        if problems:
            lines.append(f"Failed steps and checks in the newest run ({newest.run_id[:8]}, {newest.status.value}):")
            lines.extend(f"  - {p}" for p in problems)
        else:
            lines.append(f"Newest run ({newest.run_id[:8]}, {newest.status.value}): no failed step or check.")
    lines.append("")
    manifest_path = paths.exports / "latest" / "manifest.json"
    if manifest_path.exists():
        m = json.loads(manifest_path.read_text(encoding="utf-8"))
        lines.append(
            f"Published: run {m['run_id'][:8]} as of {m['as_of']}, at {m['published_at']} "
            f"(code {m.get('code_version', '?')})"
        )
        lines.append(f"  serving warehouse: {paths.serving_warehouse}")
        lines.append(f"  exports:           {paths.exports / m['as_of']}")
        lines.append("  tiers: " + ", ".join(f"{k} {v['rows']}" for k, v in m.get("tiers", {}).items()))
        warned = [c for c in m.get("checks", []) if not c["passed"]]
        if warned:
            lines.append("  published with warnings: " + ", ".join(f"{c['asset']}:{c['check']}" for c in warned))
        dates = sorted(
            p.name
            for p in paths.exports.iterdir()
            if p.is_dir() and not p.is_symlink() and (p / "manifest.json").exists()
        )
        lines.append(f"  as-of dates with exports: {len(dates)}" + (f" ({dates[0]} .. {dates[-1]})" if dates else ""))
    else:
        lines.append("Published: nothing yet.")
    return "\n".join(lines), code
