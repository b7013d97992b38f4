"""Fault and abuse suite: crashes, re-runs, hostile files, concurrent readers, privacy.

    .venv/bin/python -m tests.soak [--crash-rounds N] [--hostile-examples N] [--hostile-runs N]
                                   [--readers N] [--reader-runs N] [--customers N] [--seed S] [--write-reliability]

`make soak` runs it with more rounds (SOAK_* environment variables set the defaults, see `Config`);
the pytest suite (tests/test_faults.py) calls the same functions with small round counts.  It prints
a table: faults injected, runs survived, bad inputs tried, rows lost, reader errors, leaked
identifiers.  Every phase counts its violations into the same `Tally`; the last three columns must
be 0, and so must `violations` (a published state that changed under a kill, a stale lock, ...).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
AS_OF = "2026-11-01"
DEMO_END = date(2026, 10, 31)


@dataclass
class Tally:
    faults_injected: int = 0
    runs_survived: int = 0  # runs that completed and published correctly after a fault
    runs_failed: int = 0  # runs that should have completed and did not
    bad_inputs_tried: int = 0
    rows_lost: int = 0  # rows missing or duplicated against the expected count / reference marts
    reader_errors: int = 0
    reader_queries: int = 0
    leaked_identifiers: int = 0
    violations: list[str] = field(default_factory=list)  # any other broken promise, described
    kills_by_stage: Counter = field(default_factory=Counter)
    outcomes: Counter = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    landings: list[tuple[str, str]] = field(default_factory=list)  # (aimed stage, stage the kill landed in)

    def violate(self, msg: str) -> None:
        self.violations.append(msg)

    def ok(self) -> bool:
        return not (
            self.rows_lost or self.reader_errors or self.leaked_identifiers or self.violations or self.runs_failed
        )

    def table(self) -> str:
        rows = [
            (
                "faults injected (SIGKILL)",
                self.faults_injected,
                ", ".join(f"{k} {v}" for k, v in sorted(self.kills_by_stage.items())),
            ),
            ("runs survived", self.runs_survived, f"{self.runs_failed} failed"),
            ("bad inputs tried", self.bad_inputs_tried, ""),
            ("rows lost (must be 0)", self.rows_lost, ""),
            ("reader errors (must be 0)", self.reader_errors, f"{self.reader_queries} reader queries"),
            ("leaked identifiers (must be 0)", self.leaked_identifiers, ""),
            ("other violations (must be 0)", len(self.violations), "; ".join(self.violations)[:300]),
        ]
        w = max(len(r[0]) for r in rows)
        out = [f"| {'what'.ljust(w)} | {'count':>7} | detail", f"|{'-' * (w + 2)}|{'-' * 9}|-------"]
        out += [f"| {a.ljust(w)} | {b:>7} | {c}" for a, b, c in rows]
        return "\n".join(out)


# ----------------------------------------------------------------------------------------------
# Published state: snapshots and consistency


def published_snapshot(data_dir: Path) -> dict[str, str]:
    """sha256 of every published file (serving file, Parquet marts, exports) and the `latest` target."""
    snap: dict[str, str] = {}
    for base in (data_dir / "serving", data_dir / "exports"):
        if not base.exists():
            continue
        for p in sorted(base.rglob("*")):
            rel = p.relative_to(data_dir).as_posix()
            if p.is_symlink():
                snap[rel] = "-> " + os.readlink(p)
            elif p.is_file():
                snap[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return snap


def published_problems(data_dir: Path) -> list[str]:
    """Why the published outputs are not one complete, consistent run (empty when they are)."""
    serving = data_dir / "serving" / "warehouse.duckdb"
    latest = data_dir / "exports" / "latest"
    if not serving.exists() and not latest.exists():
        return []  # nothing published yet: consistent
    problems = []
    if not serving.exists() or not (latest / "manifest.json").exists():
        return [
            f"serving file present: {serving.exists()}, latest manifest present: {(latest / 'manifest.json').exists()}"
        ]
    manifest = json.loads((latest / "manifest.json").read_text())
    con = duckdb.connect(str(serving), read_only=True)
    try:
        meta = dict(con.execute("select key, value from meta.published_run").fetchall())
        tables = {
            r[0] for r in con.execute("select table_name from duckdb_tables() where schema_name = 'marts'").fetchall()
        }
        counts = {t: con.execute(f"select count(*) from marts.{t}").fetchone()[0] for t in tables}
    finally:
        con.close()
    if meta.get("run_id") != manifest["run_id"]:
        problems.append(f"serving file is run {meta.get('run_id')}, exports/latest is run {manifest['run_id']}")
    if counts != manifest["mart_rows"]:
        problems.append("serving mart row counts differ from the manifest")
    parquet = {p.stem for p in (data_dir / "serving" / "marts").glob("*.parquet")}
    if parquet != tables:
        problems.append(f"Parquet marts {sorted(parquet ^ tables)} do not match the serving tables")
    for f in manifest["files"]:
        p = latest / f["path"]
        if not p.exists() or hashlib.sha256(p.read_bytes()).hexdigest() != f["sha256"]:
            problems.append(f"exports/latest/{f['path']} does not match the manifest")
    return problems


def published_run_id(data_dir: Path) -> str | None:
    m = data_dir / "exports" / "latest" / "manifest.json"
    return json.loads(m.read_text())["run_id"] if m.exists() else None


def lock_is_free(warehouse: Path, wait: float = 20.0) -> float | None:
    """Seconds until the working warehouse can be opened for writing (None: still locked)."""
    if not warehouse.exists():
        return 0.0
    t0 = time.monotonic()
    while True:
        try:
            duckdb.connect(str(warehouse)).close()
            return time.monotonic() - t0
        except duckdb.Error as exc:
            if "lock" not in str(exc).lower() or time.monotonic() - t0 > wait:
                return None
            time.sleep(0.2)


# ----------------------------------------------------------------------------------------------
# Comparing two published runs (determinism and recovery)

# Columns that record the run history rather than the inputs: the fit's run id and duration, and the
# build watermarks of fct_orders and customer_identity_map (the identity resolution each row was last
# rebuilt under; a data dir with more runs behind it, killed ones included, has a higher number), and
# the build marker of both (when the build that wrote the row started).
RUN_SPECIFIC = {
    "clv_model_fits": ["run_id", "fit_seconds"],
    "fct_orders": ["identity_change_seq", "built_at"],
    "customer_identity_map": ["identity_change_seq", "built_at"],
}


def compare_marts(a: Path, b: Path) -> dict[str, int]:
    """Rows in one serving file's marts and not in the other's (multiset difference, both ways)."""
    con = duckdb.connect()
    try:
        con.execute(f"attach '{a.as_posix()}' as a (read_only)")
        con.execute(f"attach '{b.as_posix()}' as b (read_only)")
        ta = {
            r[0]
            for r in con.execute(
                "select table_name from duckdb_tables() where database_name='a' and schema_name='marts'"
            ).fetchall()
        }
        tb = {
            r[0]
            for r in con.execute(
                "select table_name from duckdb_tables() where database_name='b' and schema_name='marts'"
            ).fetchall()
        }
        diff = {f"missing table {t}": 1 for t in ta ^ tb}
        for t in sorted(ta & tb):
            excl = RUN_SPECIFIC.get(t)
            # clv_model_fits keeps one row per fit; a history of runs may repeat one
            distinct = "distinct " if t == "clv_model_fits" else ""
            sel = f"select {distinct}* exclude ({', '.join(excl)})" if excl else "select *"
            n = con.execute(
                f"select (select count(*) from ({sel} from a.marts.{t} except all {sel} from b.marts.{t})) + "
                f"(select count(*) from ({sel} from b.marts.{t} except all {sel} from a.marts.{t}))"
            ).fetchone()[0]
            if n:
                diff[t] = int(n)
        return diff
    finally:
        con.close()


def compare_tier_files(a: Path, b: Path) -> list[str]:
    """Tier list and platform audience files (CSV and Parquet, not the entered/left and add/remove change
    lists) that differ in bytes."""

    def files(d: Path) -> dict[str, bytes]:
        return {
            p.relative_to(d).as_posix(): p.read_bytes()
            for p in sorted([*(d / "tiers").glob("*"), *(d / "audiences").glob("*/*")])
            if not p.name.endswith((".entered.csv", ".left.csv", ".add.csv", ".remove.csv"))
        }

    fa, fb = files(a), files(b)
    return sorted(n for n in set(fa) | set(fb) if fa.get(n) != fb.get(n))


# ----------------------------------------------------------------------------------------------
# Runs as subprocesses, watched through the Dagster event log

STAGE_OF_STEP = [
    (re.compile(r"^raw_exports$"), "ingestion"),
    (re.compile(r"^raw__"), "checks"),
    (re.compile(r"^identity__"), "identity"),
    (re.compile(r"^dbt_models$"), "dbt"),
    (re.compile(r"^clv_model$"), "models"),
    (re.compile(r"^marts__"), "mart checks"),
    (re.compile(r"^exports__"), "publish"),  # the staged outputs, then the commit and swap
]
STAGE_ORDER = ["startup", "ingestion", "checks", "identity", "dbt", "models", "mart checks", "publish", "finished"]
# Upper bound of the random delay after a stage's first step starts (seconds): below the stage's
# usual length on the demo data, so most kills land in the stage aimed at.
STAGE_DELAY = {
    "ingestion": 1.0,
    "checks": 1.0,
    "identity": 1.0,
    "dbt": 10.0,
    "models": 2.0,
    "mart checks": 2.0,
    "publish": 6.0,
}
PUBLISH_FAULT_POINTS = [
    "publish:staged",
    "publish:committed",
    "publish:serving_replaced",
    "publish:marts_replaced",
    "publish:exports_replaced",
]


def stage_of(step_key: str | None) -> str:
    if step_key is None:
        return "startup"
    for rx, stage in STAGE_OF_STEP:
        if rx.search(step_key):
            return stage
    return "other"


def _cmdline(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return None


def children_of(pid: int) -> dict[int, str]:
    """{pid: command line} of a process's children (Linux /proc; empty elsewhere)."""
    out = {}
    for children in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            pids = [int(p) for p in children.read_text().split()]
        except OSError:
            continue
        for child in pids:
            cmd = _cmdline(child)
            if cmd:
                out[child] = cmd
    return out


class WatchedRun:
    """`python -m dagster_project run` in a subprocess; its current step read from the Dagster event log."""

    def __init__(
        self,
        data_dir: Path,
        as_of: str = AS_OF,
        env: dict | None = None,
        log: Path | None = None,
        extra_args: tuple[str, ...] = (),
    ):
        self.data_dir = data_dir
        home = data_dir / "dagster_home"
        home.mkdir(parents=True, exist_ok=True)
        if not (home / "dagster.yaml").exists():
            (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
        from dagster import DagsterInstance

        self.instance = DagsterInstance.from_config(str(home))
        self.known = {r.run_id for r in self.instance.get_runs()}
        self.log = log or data_dir.parent / f"{data_dir.name}.run.log"
        self.run_id: str | None = None
        full_env = {**os.environ, **(env or {})}
        full_env.pop("DAGSTER_HOME", None)
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen(
                [PY, "-m", "dagster_project", "run", "--data-dir", str(data_dir), "--as-of", as_of, *extra_args],
                cwd=REPO,
                env=full_env,
                stdout=fh,
                stderr=subprocess.STDOUT,
            )

    def _find_run(self) -> str | None:
        if self.run_id is None:
            new = [r.run_id for r in self.instance.get_runs(limit=5) if r.run_id not in self.known]
            self.run_id = new[0] if new else None
        return self.run_id

    def started_steps(self) -> list[str]:
        from dagster import DagsterEventType

        if self._find_run() is None:
            return []
        recs = self.instance.get_records_for_run(self.run_id, of_type=DagsterEventType.STEP_START, limit=10_000).records
        return [r.event_log_entry.step_key for r in recs]

    def current_stage(self) -> str:
        if self.proc.poll() is not None:
            return "finished"
        steps = self.started_steps()
        return stage_of(steps[-1] if steps else None)

    def wait_for_stage(self, stage: str, timeout: float = 900) -> str:
        """Poll until the run reaches `stage` (or a later one, or ends); returns the stage seen."""
        deadline = time.monotonic() + timeout
        target = STAGE_ORDER.index(stage)
        while time.monotonic() < deadline:
            now = self.current_stage()
            if now == "finished" or (now in STAGE_ORDER and STAGE_ORDER.index(now) >= target):
                return now
            time.sleep(0.1)
        return self.current_stage()

    def kill(self) -> str:
        """SIGKILL the run's process (not its children: they must die with it, see `orphans`)."""
        self.children = children_of(self.proc.pid)
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        steps = self.started_steps()
        return stage_of(steps[-1] if steps else None)

    def orphans(self, grace: float = 5.0) -> list[str]:
        """Command lines of the killed run's child processes (dbt, identity workers) still alive
        `grace` seconds after the kill: an orphaned `dbt build` keeps writing to the warehouse and
        holds its lock while the next run starts."""
        deadline = time.monotonic() + grace
        while True:
            alive = [cmd for pid, cmd in self.children.items() if _cmdline(pid) == cmd]
            if not alive or time.monotonic() > deadline:
                return alive
            time.sleep(0.2)

    def wait(self, timeout: float = 1800) -> int:
        return self.proc.wait(timeout=timeout)


# ----------------------------------------------------------------------------------------------
# 1. Crash mid-run


def prepare_crash_dir(reference: Path, work: Path) -> Path:
    """A data directory holding the reference run's published outputs and inbox, with an empty working
    warehouse: the next run loads everything again (real ingestion work to interrupt)."""
    d = work / "crash"
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    shutil.copytree(reference / "inbox", d / "inbox")
    for sub in ("serving", "exports"):
        if (reference / sub).exists():
            shutil.copytree(reference / sub, d / sub, symlinks=True)
    return d


def kill_once(data_dir: Path, rng: random.Random, tally: Tally, stage: str) -> None:
    """Start a run, SIGKILL it in `stage` (or at a publish fault point), check the published state."""
    from dagster_project.lib.export import publish

    before = published_snapshot(data_dir)
    before_run = published_run_id(data_dir)
    env = {}
    if stage.startswith("publish:"):
        env["PIPELINE_FAULT_POINT"] = stage
    run = WatchedRun(data_dir, env=env)
    if stage.startswith("publish:"):
        code = run.wait()
        run.started_steps()  # resolves the run id of the (self-killed) run
        landed = stage if code == -signal.SIGKILL else "finished"
    else:
        seen = run.wait_for_stage(stage)
        if seen != "finished":
            time.sleep(rng.uniform(0, STAGE_DELAY.get(seen, 2.0)))
        landed = run.kill() if run.proc.poll() is None else "finished"
    tally.landings.append((stage, landed))
    if landed != "finished" and not stage.startswith("publish:"):
        for cmd in run.orphans():
            tally.violate(f"a child of the run killed in {landed} outlived it by 5 s: {cmd[:160]}")
    if landed == "finished":
        tally.outcomes["run ended before the kill"] += 1
    else:
        tally.faults_injected += 1
        tally.kills_by_stage[landed if not landed.startswith("publish:") else "publish (fault point)"] += 1
    free = lock_is_free(data_dir / "warehouse" / "pipeline.duckdb")
    if free is None:
        tally.violate(f"warehouse still locked 20 s after a kill in {landed}")
    committed = (data_dir / ".staging" / publish.JOURNAL_NAME).exists()
    after = published_snapshot(data_dir)
    if committed:
        # Killed after the commit point: the next run rolls the publish forward first.
        publish.finish_publish(data_dir / ".staging")
        problems = published_problems(data_dir)
        if problems or published_run_id(data_dir) != run.run_id:
            tally.violate(f"roll-forward after a kill in {landed} left {problems or 'another run published'}")
        tally.outcomes["killed after the commit point, rolled forward"] += 1
    elif after == before:
        tally.outcomes["published outputs byte-identical"] += 1
    else:
        problems = published_problems(data_dir)
        new_run = published_run_id(data_dir)
        if not problems and new_run == run.run_id and new_run != before_run:
            tally.outcomes["killed after publishing completed"] += 1
        else:
            changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
            tally.violate(f"kill in {landed} changed the published outputs: {changed[:4]} {problems[:2]}")


def complete_run(data_dir: Path, reference: Path, tally: Tally, log: Path | None = None) -> bool:
    """A run after the faults must complete and publish what a clean run publishes."""
    run = WatchedRun(data_dir, log=log)
    code = run.wait()
    if code != 0:
        tally.runs_failed += 1
        tally.violate(f"run after faults exited {code} (log {run.log})")
        return False
    problems = published_problems(data_dir)
    if problems:
        tally.violate(f"run after faults published an inconsistent state: {problems[:3]}")
    diff = compare_marts(reference / "serving" / "warehouse.duckdb", data_dir / "serving" / "warehouse.duckdb")
    if diff:
        tally.rows_lost += sum(diff.values())
        tally.violate(f"marts after faults differ from a clean run: {diff}")
    files = compare_tier_files(reference / "exports" / AS_OF, data_dir / "exports" / AS_OF)
    if files:
        tally.violate(f"tier files after faults differ from a clean run: {files[:5]}")
    stale = [p.name for p in (data_dir / ".staging").iterdir()] if (data_dir / ".staging").exists() else []
    if stale:
        tally.violate(f"staging leftovers after a completed run: {stale}")
    if (data_dir / "warehouse" / "tmp").exists() and any((data_dir / "warehouse" / "tmp").iterdir()):
        tally.violate("DuckDB spill files left in warehouse/tmp")
    tally.runs_survived += 1
    return True


def crash_suite(
    reference: Path,
    work: Path,
    rounds: int,
    rng: random.Random,
    tally: Tally,
    stages: list[str] | None = None,
    complete_every: int = 4,
) -> Path:
    """`rounds` kills (stages given, or drawn at random), a completing run after every
    `complete_every` kills and at the end; each compared with the reference run."""
    d = prepare_crash_dir(reference, work)
    all_stages = ["ingestion", "checks", "dbt", "models", "mart checks", "publish", *PUBLISH_FAULT_POINTS]
    plan = stages or [rng.choice(all_stages) for _ in range(rounds)]
    for i, stage in enumerate(plan, start=1):
        kill_once(d, rng, tally, stage)
        if i % complete_every == 0 and i != len(plan):
            complete_run(d, reference, tally)
    complete_run(d, reference, tally)
    return d


def publish_window_suite(reference: Path, work: Path, tally: Tally) -> None:
    """SIGKILL at every step of the publish swap (no pipeline run: a staged copy of the reference
    outputs under a new run id), then check: untouched before the commit point, rolled forward after."""
    for point in PUBLISH_FAULT_POINTS:
        d = work / f"window_{point.split(':')[1]}"
        if d.exists():
            shutil.rmtree(d)
        for sub in ("serving", "exports"):
            shutil.copytree(reference / sub, d / sub, symlinks=True)
        staging = d / ".staging"
        stage = staging / "run-new"
        (stage / "exports").mkdir(parents=True)
        new_id = "run-new"
        shutil.copy(reference / "serving" / "warehouse.duckdb", stage / "warehouse.duckdb")
        con = duckdb.connect(str(stage / "warehouse.duckdb"))
        con.execute("update meta.published_run set value = ? where key = 'run_id'", [new_id])
        con.close()
        shutil.copytree(reference / "serving" / "marts", stage / "marts")
        shutil.copytree(reference / "exports" / AS_OF, stage / "exports" / AS_OF)
        m = stage / "exports" / AS_OF / "manifest.json"
        m.write_text(json.dumps({**json.loads(m.read_text()), "run_id": new_id}))
        before = published_snapshot(d)
        code = subprocess.run(
            [
                PY,
                "-c",
                textwrap.dedent(f"""
            from pathlib import Path
            from dagster_project.lib.export import publish
            d = Path({str(d)!r})
            publish.commit_and_swap(d / '.staging', d / '.staging' / 'run-new', {AS_OF!r},
                                    d / 'serving' / 'warehouse.duckdb', d / 'serving' / 'marts', d / 'exports')
        """),
            ],
            cwd=REPO,
            env={**os.environ, "PIPELINE_FAULT_POINT": point},
        ).returncode
        if code != -signal.SIGKILL:
            tally.violate(f"fault point {point} was not reached (exit {code})")
            continue
        tally.faults_injected += 1
        tally.kills_by_stage["publish swap (fault point)"] += 1
        from dagster_project.lib.export import publish

        if point == "publish:staged":
            if published_snapshot(d) != before:
                tally.violate(f"a kill at {point} (before the commit point) changed the published outputs")
            if publish.finish_publish(staging):
                tally.violate(f"a kill at {point} left a journal")
            tally.outcomes["published outputs byte-identical"] += 1
        else:
            publish.finish_publish(staging)
            problems = published_problems(d)
            if problems or published_run_id(d) != new_id or (staging / "run-new").exists():
                tally.violate(f"roll-forward after a kill at {point}: {problems[:3]}")
            tally.outcomes["killed after the commit point, rolled forward"] += 1


# ----------------------------------------------------------------------------------------------
# 2. Re-run determinism


def determinism_check(reference: Path, other: Path, tally: Tally) -> dict:
    """Two runs on the same inputs: identical marts and tier files."""
    diff = compare_marts(reference / "serving" / "warehouse.duckdb", other / "serving" / "warehouse.duckdb")
    files = compare_tier_files(reference / "exports" / AS_OF, other / "exports" / AS_OF)
    if diff:
        tally.violate(f"re-run on the same inputs gave different marts: {diff}")
    if files:
        tally.violate(f"re-run on the same inputs gave different tier files: {files[:5]}")
    return {"mart_differences": diff, "tier_file_differences": files}


# ----------------------------------------------------------------------------------------------
# 3. Hostile files

FORMULAS = [
    "=cmd|' /C calc'!A0",
    '=HYPERLINK("http://evil.example","x")',
    "+1+1",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1",
]
HOSTILE_VALUES = [
    "",
    " ",
    "NaN",
    "1e309",
    "-0",
    "-12.50",
    "($5.00)",
    "abc",
    "12,5",
    "$1,234.5x",
    "99999999999999999999999",
    "9999-12-31",
    "0001-01-01",
    "2026-02-30",
    "1850-01-01 00:00:00 +0000",
    "2999-01-01 00:00:00 +0000",
    "Zoë 東京 🙂",
    '"quoted, with comma"',
    "line\nbreak",
    "tab\there",
    "\x00\x01\x02",
    "'",
    "\ufeff",
    *FORMULAS,
]
GOOD = {
    "money": ["12.50", "$1,234.50", "-$3.00", "0.00"],
    "int": ["1", "2"],
    "decimal": ["1.0", "-1.0"],
    "ts_offset": ["2026-01-24 17:34:28 -0500", "2025-06-01 09:00:00 +0000"],
    "date": ["2025-06-01", "06/01/2025"],
    "bool": ["yes", "no"],
    "rate": ["1.1"],
    "unit_cost": ["4.10", "$6.25", "0.00"],
    # the phone is one no dbt unit-test fixture uses: the fixtures are in the published dbt docs' manifest,
    # where the privacy scan would take a fixture's phone for a leaked customer's
    "text": ["abc", "#1001", "a@ex.com", "+1 415-263-0177"],
    "lower": ["paid", "online"],
    "upper": ["USD"],
}
COLUMN_GOOD = {
    "Time": ["12:00:00"],
    "Time Zone": ["Eastern Time (US & Canada)"],
    "Email": ["a@ex.com"],
    "Event Type": ["Payment", "Refund"],
    "Financial Status": ["paid", "refunded"],
    "month": ["2026-01"],
}


def _column_kinds() -> dict[str, dict[str, str]]:
    from dagster_project.lib import ingest
    from dagster_project.lib.ingest import formats

    out = {}
    for lay in formats.LAYOUTS:
        kinds = {}
        for f in ingest.FIELDS[lay.name]:
            for s in f.source if isinstance(f.source, tuple) else (f.source,):
                kinds.setdefault(s, "date" if s == "Date" else f.kind if f.kind != "local_ts" else "text")
        out[lay.name] = {c: kinds.get(c, "text") for c in lay.columns}
    return out


def make_hostile_file(rng: random.Random) -> dict:
    """One hostile export: a layout's rows with bad values, a mangled header, an odd delimiter or
    encoding, and maybe truncated or mixed with binary junk.  `expected_rows` is the number of
    records when the file's structure is intact (None when it was mangled at the byte level)."""
    from dagster_project.lib.ingest import formats

    kinds = _column_kinds()
    lay = rng.choice(formats.LAYOUTS)
    cols = list(lay.columns)
    header_change = rng.choice(["none"] * 4 + ["drop", "drop_required", "extra", "duplicate", "shuffle"])
    if header_change == "drop":
        for c in rng.sample(cols, k=min(len(cols) - 1, rng.randint(1, 3))):
            if c not in lay.required:
                cols.remove(c)
    elif header_change == "drop_required":
        cols.remove(rng.choice(lay.required))
    elif header_change == "extra":
        cols.insert(rng.randint(0, len(cols)), rng.choice(["Extra", "=cmd|x", "", "notes 2", "Ünïcode"]))
    elif header_change == "duplicate":
        c = rng.choice(cols)
        cols.insert(rng.randint(0, len(cols)), c)
    elif header_change == "shuffle":
        rng.shuffle(cols)
    rows = []
    hostility = rng.choice([0.0, 0.05, 0.3, 1.0])
    for _ in range(rng.randint(0, 30)):
        row = []
        for c in cols:
            if rng.random() < hostility:
                v = rng.choice(HOSTILE_VALUES)
                if rng.random() < 0.03:
                    v = rng.choice('x,"\n') * rng.randint(1000, 300_000)  # huge field
            else:
                kind = kinds[lay.name].get(c, "text")
                v = rng.choice(COLUMN_GOOD.get(c) or GOOD.get(kind, GOOD["text"]))
            row.append(v)
        rows.append(row)
    delimiter = rng.choice([","] * 5 + [";", "\t", "|"])
    buf = io.StringIO()
    w = csv.writer(
        buf,
        delimiter=delimiter,
        lineterminator=rng.choice(["\n", "\r\n"]),
        quoting=rng.choice([csv.QUOTE_MINIMAL, csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    )
    w.writerow(cols)
    w.writerows(rows)
    text = buf.getvalue()
    # csv.writer leaves a lone CR unquoted when the line terminator is "\n": a reader may see a line break.
    stray_cr = any("\r" in v for row in rows for v in row) and "\r\n" not in text and '"\r' not in text
    encoding = rng.choice(["utf-8"] * 3 + ["utf-8-sig", "cp1252", "latin-1", "utf-16"])
    data = text.encode(encoding, errors="replace")
    mangled = None
    if rng.random() < 0.3:
        mangled = rng.choice(["truncate", "junk_inside", "junk_end", "junk_only", "nul_bytes"])
        if mangled == "truncate" and data:
            data = data[: rng.randint(0, len(data))]
        elif mangled == "junk_inside" and data:
            i = rng.randint(0, len(data))
            data = data[:i] + rng.randbytes(rng.randint(1, 64)) + data[i:]
        elif mangled == "junk_end":
            data += rng.randbytes(rng.randint(1, 256))
        elif mangled == "junk_only":
            data = rng.randbytes(rng.randint(1, 2048))
        elif mangled == "nul_bytes":
            data = data.replace(b",", b"\x00", rng.randint(1, 5))
    # Records are countable when the structure is intact: a comma file in an 8-bit encoding,
    # nothing mangled, and no value carrying characters the encoding replaced with '?'.
    intact = (
        mangled is None and delimiter == "," and encoding != "utf-16" and header_change != "duplicate" and not stray_cr
    )
    name = rng.choice(["export.csv", "=cmd.csv", "weird name ü.csv", "x.txt", "data.CSV"])
    return {
        "folder": lay.folder,
        "layout": lay.name,
        "name": name,
        "data": data,
        "expected_rows": len(rows) if intact else None,
        "well_formed": intact and header_change != "drop_required",
        "desc": f"{lay.name} header:{header_change} delim:{delimiter!r} enc:{encoding} mangled:{mangled} "
        f"rows:{len(rows)} hostility:{hostility}",
    }


def check_hostile_file(f: dict, tmp: Path, tally: Tally) -> None:
    """Load one hostile file with the ingestion layer; check the invariants; count violations."""
    from dagster_project.lib import ingest

    tally.bad_inputs_tried += 1
    inbox = tmp / "inbox"
    if inbox.exists():
        shutil.rmtree(inbox)
    path = inbox / f["folder"] / f["name"]
    path.parent.mkdir(parents=True)
    path.write_bytes(f["data"])
    con = duckdb.connect()
    try:
        ingest.create_raw_tables(con)
        try:
            res = ingest.load_file(con, path, f["folder"], "run-h", display_root=inbox, data_root=tmp)
        except Exception as exc:  # the promise: never an unhandled error
            tally.violate(f"unhandled {type(exc).__name__} on {f['desc']}: {str(exc)[:200]}")
            return
        ledger = con.execute(
            "select status, rows_read, rows_loaded, rows_quarantined, message from raw.load_ledger"
        ).fetchall()
        if len(ledger) != 1:
            tally.violate(f"{len(ledger)} ledger rows for one file ({f['desc']})")
            return
        status, read, loaded, quarantined, message = ledger[0]
        if status == "rejected":
            if not message or path.name not in message:
                tally.violate(f"rejected without naming the file and reason: {message!r} ({f['desc']})")
            if f.get("well_formed"):
                tally.violate(f"a well-formed file was rejected: {message[:200]} ({f['desc']})")
            return
        table = res.layout
        landed = con.execute(f"select count(*) from raw.{table}").fetchone()[0] if table else 0
        quarantine = con.execute("select count(*) from raw.quarantine").fetchone()[0]
        bad_q = con.execute(
            "select count(*) from raw.quarantine where reason is null or line_number is null"
        ).fetchone()[0]
        lost = abs(read - (landed + quarantine)) + abs(loaded - landed) + abs(quarantined - quarantine)
        if f["expected_rows"] is not None and status in ("loaded", "empty"):
            lost += abs(f["expected_rows"] - read)
        if lost:
            tally.rows_lost += lost
            tally.violate(
                f"rows: expected {f['expected_rows']}, read {read}, landed {landed}, "
                f"quarantined {quarantine} ({f['desc']})"
            )
        if bad_q:
            tally.violate(f"{bad_q} quarantined rows without reason or line ({f['desc']})")
    finally:
        con.close()


def hostile_suite(examples: int, tally: Tally, seed: int | None = None) -> None:
    """Property-based: Hypothesis drives the generator's random choices (and shrinks a failure)."""
    from hypothesis import HealthCheck, given, settings, strategies as st

    tmp = Path(tempfile.mkdtemp(prefix="hostile_"))
    failures_before = len(tally.violations)

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=seed is not None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(st.randoms(use_true_random=False))
    def prop(rng):
        n = len(tally.violations)
        check_hostile_file(make_hostile_file(rng), tmp, tally)
        assert len(tally.violations) == n, tally.violations[-1]

    try:
        prop()
    except AssertionError as exc:
        tally.notes.append(f"Hypothesis minimal failing example: {str(exc)[:300]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    del failures_before


def neutralised(text: str) -> list[str]:
    """Cells of a CSV text that a spreadsheet would run as a formula."""
    from dagster_project.lib.export.tiers import is_formula

    return [cell for row in csv.reader(io.StringIO(text)) for cell in row if is_formula(cell)]


def plant_formula_customer(inbox: Path, as_of: str = AS_OF) -> str:
    """A consenting one-time buyer whose e-mail and acquisition channel are spreadsheet formulas."""
    from dagster_project.lib.ingest import formats

    email = '=hyperlink("http://evil.example")@evil.example'
    row = {c: "" for c in formats.SHOPIFY_ORDER_COLUMNS}
    created = date.fromisoformat(as_of).toordinal() - 30
    row.update(
        {
            "Name": "#F9001",
            "Email": email,
            "Financial Status": "paid",
            "Accepts Marketing": "yes",
            "Created at": f"{date.fromordinal(created).isoformat()} 10:00:00 +0000",
            "Currency": "USD",
            "Lineitem quantity": "1",
            "Lineitem price": "20.00",
            "Discount Amount": "0.00",
            "Refunded Amount": "0.00",
            "Subtotal": "20.00",
            "Total": "20.00",
            "Lineitem name": "=cmd|' /C calc'!A0",
            "Billing Name": "@SUM(1+1)",
            "Note Attributes": "utm_source: -cmd",
        }
    )
    p = inbox / "shopify" / "formula_customer.csv"
    with p.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, formats.SHOPIFY_ORDER_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerow(row)
    return email


SHORT_EMAIL = "q@ex.com"  # a one-letter mailbox: `q***@ex.com` would give it away whole
EMAIL_AS_MEMBER_ID = "bo@ex.com"  # loyalty schemes that use the e-mail as the member number
PHONE_AS_REFERENCE_ID = "+1 415-263-0199"  # a cashier typing the phone into Square's Reference ID


def plant_short_identifiers(inbox: Path, as_of: str = AS_OF) -> None:
    """Identifiers a masked display could give away: a one-letter e-mail on a Shopify order, an
    e-mail used as a member id, a phone typed into a Square customer's Reference ID."""
    from dagster_project.lib.ingest import formats

    day = date.fromordinal(date.fromisoformat(as_of).toordinal() - 40).isoformat()
    files = {
        ("shopify", "short_ids_orders.csv"): (
            formats.SHOPIFY_ORDER_COLUMNS,
            {
                "Name": "#S9001",
                "Email": SHORT_EMAIL,
                "Financial Status": "paid",
                "Accepts Marketing": "no",
                "Created at": f"{day} 10:00:00 +0000",
                "Currency": "USD",
                "Lineitem quantity": "1",
                "Lineitem price": "15.00",
                "Discount Amount": "0.00",
                "Refunded Amount": "0.00",
                "Subtotal": "15.00",
                "Total": "15.00",
                "Lineitem name": "Mug",
            },
        ),
        ("members", "short_ids_members.csv"): (
            formats.MEMBERS_COLUMNS,
            {
                "member_id": EMAIL_AS_MEMBER_ID,
                "email": EMAIL_AS_MEMBER_ID,
                "joined_on": day,
                "plan": "annual",
                "annual_fee": "30.00",
                "currency": "USD",
                "expires_on": f"{int(day[:4]) + 1}{day[4:]}",
                "renewal_count": "0",
                "accepts_marketing": "no",
            },
        ),
        ("square", "short_ids_customers.csv"): (
            formats.SQUARE_CUSTOMERS_COLUMNS,
            {
                "Square Customer ID": "SQSHORTIDS01",
                "Reference ID": PHONE_AS_REFERENCE_ID,
                "Phone Number": PHONE_AS_REFERENCE_ID,
                "Email Address": "",
                "First Visit": day,
                "Email Subscription Status": "unsubscribed",
            },
        ),
    }
    for (folder, name), (columns, values) in files.items():
        (inbox / folder).mkdir(parents=True, exist_ok=True)
        with (inbox / folder / name).open("w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, columns, lineterminator="\n")
            w.writeheader()
            w.writerow({c: values.get(c, "") for c in columns})


def hostile_run(reference: Path, work: Path, rng: random.Random, files: int, tally: Tally) -> Path:
    """End to end: the reference inbox plus hostile files, a formula-injection customer and
    identifiers a masked display could give away."""
    d = work / f"hostile_run_{rng.randint(0, 10**6)}"
    shutil.copytree(reference / "inbox", d / "inbox")
    email = plant_formula_customer(d / "inbox")
    plant_short_identifiers(d / "inbox")
    written = 0
    for i in range(files):
        f = make_hostile_file(rng)
        p = d / "inbox" / f["folder"] / f"hostile_{i}_{f['name']}"
        p.parent.mkdir(parents=True, exist_ok=True)  # a source folder the reference inbox has no file in
        p.write_bytes(f["data"])
        written += 1
    tally.bad_inputs_tried += written
    run = WatchedRun(d, extra_args=("--allow-rejected-files",), log=work / f"{d.name}.log")
    code = run.wait()
    log = run.log.read_text(errors="replace")
    if code not in (0, 1) or "Traceback" in log:
        tally.violate(f"hostile run crashed (exit {code}), see {run.log}")
    if code == 1 and "FAILED after" not in log:
        tally.violate(f"hostile run failed without naming why, see {run.log}")
    con = duckdb.connect(str(d / "warehouse" / "pipeline.duckdb"), read_only=True)
    try:
        rejected = con.execute("select file_name, message from raw.load_ledger where status = 'rejected'").fetchall()
        unnamed = [m for fname, m in rejected if fname not in (m or "")]
        if unnamed:
            tally.violate(f"rejected files without their name in the reason: {unnamed[:3]}")
        from dagster_project.defs.ingestion.assets import RAW_TABLES

        union = " union all ".join(f"select _file_id as f from raw.{t}" for t in RAW_TABLES)
        lost = con.execute(f"""
            select coalesce(sum(abs(l.rows_read - coalesce(x.n, 0) - coalesce(q.n, 0))), 0)
            from raw.load_ledger l
            left join (select f, count(*) n from ({union}) group by f) x on x.f = l.file_id
            left join (select file_id, count(*) n from raw.quarantine group by file_id) q on q.file_id = l.file_id
            where l.status = 'loaded'""").fetchone()[0]
        tally.rows_lost += int(lost)
    finally:
        con.close()
    if code == 0:
        tally.runs_survived += 1
        formula_cells = []
        found_planted = False
        for p in (d / "exports" / "latest").rglob("*.csv"):
            text = p.read_text(encoding="utf-8")
            formula_cells += neutralised(text)
            found_planted |= ("'" + email.lower()) in text
        if formula_cells:
            tally.violate(f"exported CSVs carry formula cells: {formula_cells[:3]}")
        if not found_planted:
            tally.notes.append("the planted formula e-mail did not reach a tier file in this hostile run")
    else:
        tally.notes.append(
            f"hostile run exited {code} (a blocking check failed; nothing published): "
            + " | ".join(line.strip() for line in log.splitlines() if line.strip().startswith("- "))[:300]
        )
    return d


# ----------------------------------------------------------------------------------------------
# 4. Concurrent readers

READER = """
import duckdb, json, sys, time, pathlib
serving, out_path, stop = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
out = open(out_path, "w")
con = duckdb.connect(serving, read_only=True)
deadline = time.time() + 1800
n = 0
held = None  # the run this connection saw first: its snapshot must not change under it
while time.time() < deadline and not stop.exists():
    try:
        run = con.execute("select value from meta.published_run where key = 'run_id'").fetchone()[0]
        rows = con.execute("select count(*), sum(net_revenue) from marts.dim_customers").fetchone()
        if held is not None and run != held:
            raise RuntimeError(f"snapshot changed under an open connection: {held} -> {run}")
        held = run
        out.write(json.dumps({"run": run, "rows": rows[0]}) + "\\n")
    except Exception as exc:
        out.write(json.dumps({"error": repr(exc)}) + "\\n")
    out.flush()
    n += 1
    if n % 10 == 0:  # reopen now and then: a new connection must see a complete published run
        con.close()
        con = duckdb.connect(serving, read_only=True)
        held = None
    time.sleep(0.05)
"""


def readers_suite(data_dir: Path, n_readers: int, runs: list[str], tally: Tally) -> dict:
    """`n_readers` processes hold the serving file open read-only and query in a loop while runs publish."""
    serving = data_dir / "serving" / "warehouse.duckdb"
    stop = data_dir.parent / f"{data_dir.name}.stop"
    stop.unlink(missing_ok=True)
    logs = [data_dir.parent / f"{data_dir.name}.reader{i}.jsonl" for i in range(n_readers)]
    procs = [subprocess.Popen([PY, "-c", READER, str(serving), str(log), str(stop)]) for log in logs]
    durations = []
    published = set()
    try:
        time.sleep(1)
        for as_of in runs:
            t0 = time.monotonic()
            run = WatchedRun(data_dir, as_of=as_of)
            code = run.wait()
            durations.append(time.monotonic() - t0)
            if code != 0:
                tally.runs_failed += 1
                tally.violate(f"a run with readers attached exited {code} (log {run.log})")
            published.add(published_run_id(data_dir))
            time.sleep(1.5)  # let every reader reopen once more
    finally:
        stop.write_text("")
        for p in procs:
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
    seen_runs = set()
    for log in logs:
        for line in log.read_text().splitlines():
            rec = json.loads(line)
            tally.reader_queries += 1
            if "error" in rec:
                tally.reader_errors += 1
                tally.notes.append(f"reader error: {rec['error'][:200]}")
            else:
                seen_runs.add(rec["run"])
    return {"run_seconds": durations, "runs_seen_by_readers": len(seen_runs & published), "published": len(published)}


# ----------------------------------------------------------------------------------------------
# 5. Privacy

EMAIL_TOKEN = re.compile(r"[^\s@,;:\"'<>()\[\]{}|=\\/]+@[^\s@,;:\"'<>()\[\]{}|\\/]+\.[A-Za-z]{2,}")
PHONE_TOKEN = re.compile(r"\+?\d[\d\s().-]{5,}\d")


def input_identifiers(inbox: Path) -> tuple[set[str], set[str]]:
    """Every e-mail (lower case) and phone (digits of E.164, and of the national number) in the inbox."""
    from dagster_project.lib.identity.resolution import normalise_email, normalise_phone

    emails, phones = set(), set()
    for p in inbox.rglob("*.csv"):
        data = p.read_bytes().decode("utf-8", errors="replace")
        for m in EMAIL_TOKEN.finditer(data):
            e = normalise_email(m.group(0))
            if e:
                emails.add(e)
        try:
            for row in csv.DictReader(io.StringIO(data, newline="")):
                for k, v in row.items():
                    if isinstance(k, str) and isinstance(v, str) and v and "phone" in k.lower():
                        e164 = normalise_phone(v)
                        if e164:
                            phones.add(e164.lstrip("+"))
                            phones.add(e164[-10:])
        except csv.Error:
            pass  # a hostile file: its phones (if any) are not inputs the pipeline could have read
    return emails, phones


# A masked e-mail: what is shown of the part before @, stars, the domain (`j***@example.com`).
MASKED_EMAIL = re.compile(r"([^\s@*,;:\"'<>()\[\]{}|=\\/]*)\*+@([^\s@,;:\"'<>()\[\]{}|\\/]+\.[A-Za-z]{2,})")


def leaks_in_text(text: str, emails: set[str], phones: set[str]) -> list[str]:
    found = [m.group(0) for m in EMAIL_TOKEN.finditer(text) if m.group(0).lower().strip() in emails]
    # a mask that shows every character of a short address gives it away (`a***@ex.com` of a@ex.com)
    found += [
        m.group(0) for m in MASKED_EMAIL.finditer(text) if m.group(1) and f"{m.group(1)}@{m.group(2)}".lower() in emails
    ]
    for m in PHONE_TOKEN.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if len(digits) >= 10 and (digits in phones or digits[-10:] in phones and len(digits) <= 11):
            found.append(m.group(0))
    return found


def leaks_in_table(con, table: str, emails: set[str], phones: set[str]) -> list[str]:
    cols = [
        r[0]
        for r in con.execute(f"select column_name, column_type from (describe {table})").fetchall()
        if r[1] == "VARCHAR"
    ]
    found = []
    for c in cols:
        for (v,) in con.execute(f"select distinct {c} from {table} where {c} is not null").fetchall():
            if leaks_in_text(v, emails, phones):
                found.append(f"{table}.{c}={v[:3]}***")
    return found


def privacy_scan(data_dir: Path, tally: Tally, extra_texts: dict[str, str] | None = None) -> dict:
    """Raw e-mails and phones of the inputs must not appear in logs, Dagster event metadata, failure
    messages, the serving file or exports, except consented contact fields in the tier contact files."""
    from dagster import DagsterInstance

    emails, phones = input_identifiers(data_dir / "inbox")
    leaks: list[str] = []
    scanned = Counter()
    # Consented contact fields are allowed in the tier list files (not hashed/entered/left), and only there.
    wh = duckdb.connect(str(data_dir / "warehouse" / "pipeline.duckdb"), read_only=True)
    try:
        consent = dict(
            wh.execute(
                "select customer_key, coalesce(accepts_marketing, false) from intermediate.int_customer_contacts"
            ).fetchall()
        )
        # the contact points of consenting customers, which the plain audience files (Klaviyo, Mailchimp) carry
        consented_contacts = {
            v
            for row in wh.execute(
                "select email, phone from intermediate.int_customer_contacts where accepts_marketing"
            ).fetchall()
            for v in row
            if v
        }
    except duckdb.Error:  # a run that failed before dbt built the contacts
        consent, consented_contacts = {}, set()
    wh.close()
    exports = sorted((data_dir / "exports").iterdir()) if (data_dir / "exports").exists() else []
    for folder in exports:
        if folder.is_symlink() or not folder.is_dir():
            continue
        for p in sorted(folder.rglob("*")):
            if not p.is_file():
                continue
            scanned["export files"] += 1
            name = p.name
            is_contact_list = (
                "/tiers/" in p.as_posix()
                and not name.endswith((".hashed.csv", ".entered.csv", ".left.csv"))
                and name.endswith((".csv", ".parquet"))
            )
            # Klaviyo and Mailchimp files: plain e-mail and phone, of consenting customers only (docs/audiences.md)
            is_plain_audience = "/audiences/" in p.as_posix() and p.parent.name in ("klaviyo", "mailchimp")
            if name.endswith(".parquet"):
                con = duckdb.connect()
                df_rows = con.execute(f"select * from read_parquet('{p.as_posix()}')").df()
                con.close()
                rows = df_rows.astype(object).where(df_rows.notna(), None).to_dict("records")
            elif name.endswith(".csv"):
                rows = list(csv.DictReader(io.StringIO(p.read_text(encoding="utf-8"))))
            else:
                leaks += [
                    f"{p.relative_to(data_dir)}: {x}"
                    for x in leaks_in_text(p.read_text(encoding="utf-8", errors="replace"), emails, phones)
                ]
                continue
            for row in rows:
                for k, v in row.items():
                    if not isinstance(v, str) or not v:
                        continue
                    hit = leaks_in_text(v.lstrip("'"), emails, phones)
                    if not hit:
                        continue
                    allowed = (
                        is_contact_list and k in ("email", "phone") and consent.get(row.get("customer_key"))
                    ) or (
                        is_plain_audience
                        and k in ("Email Address", "Phone Number")
                        and v.lstrip("'") in consented_contacts
                    )
                    scanned["consented contact cells (allowed)"] += bool(allowed)
                    if not allowed:
                        leaks.append(f"{p.relative_to(data_dir)}:{k}")
            if name.endswith(".hashed.csv"):
                for row in rows:
                    if set(row) != {"customer_key", "tier", "email_sha256", "phone_sha256"} or any(
                        row[h] and not re.fullmatch(r"[0-9a-f]{64}", row[h]) for h in ("email_sha256", "phone_sha256")
                    ):
                        leaks.append(f"{p.relative_to(data_dir)}: a hashed file carries more than hashes")
                        break
                    if not consent.get(row["customer_key"]):
                        leaks.append(f"{p.relative_to(data_dir)}: hashes of a customer who did not consent")
    # Serving warehouse and Parquet marts: no raw contact at all.
    if (data_dir / "serving" / "warehouse.duckdb").exists():
        con = duckdb.connect(str(data_dir / "serving" / "warehouse.duckdb"), read_only=True)
        try:
            for (t,) in con.execute("select table_name from duckdb_tables() where schema_name = 'marts'").fetchall():
                scanned["serving tables"] += 1
                leaks += leaks_in_table(con, f"marts.{t}", emails, phones)
        finally:
            con.close()
    # Logs: the run logs passed in, Dagster's captured compute logs, and dbt's logs of these runs.
    home = data_dir / "dagster_home"
    texts = dict(extra_texts or {})
    for p in home.rglob("compute_logs/*"):
        if p.suffix in (".out", ".err"):
            texts[str(p.relative_to(data_dir))] = p.read_text(errors="replace")
    instance = DagsterInstance.from_config(str(home))
    run_ids = [r.run_id for r in instance.get_runs()]
    for rid in run_ids:
        for d in (REPO / "dbt" / "target").glob(f"dbt_models-{rid[:7]}*"):
            for name in ("dbt.log", "run_results.json"):
                if (d / name).exists():
                    texts[f"dbt/target/{d.name}/{name}"] = (d / name).read_text(errors="replace")
    # Dagster event log, read through the instance: messages, metadata, failure messages.
    for rid in run_ids:
        for entry in instance.all_logs(rid):
            parts = [entry.user_message or ""]
            ev = entry.dagster_event
            if ev is not None:
                data = ev.event_specific_data
                for attr in ("metadata", "description"):
                    v = getattr(data, attr, None)
                    if v:
                        parts.append(
                            json.dumps({k: str(getattr(m, "value", m)) for k, m in v.items()})
                            if isinstance(v, dict)
                            else str(v)
                        )
                mat = getattr(data, "materialization", None)
                if mat is not None:
                    parts.append(json.dumps({k: str(getattr(m, "value", m)) for k, m in mat.metadata.items()}))
                err = getattr(data, "error", None)
                if err is not None:
                    parts.append(str(err.to_string() if hasattr(err, "to_string") else err))
            texts[f"event log {rid[:8]}"] = texts.get(f"event log {rid[:8]}", "") + "\n".join(parts) + "\n"
            scanned["dagster events"] += 1
    for where, text in texts.items():
        scanned["log texts"] += 1
        leaks += [f"{where}: {x[:3]}***" for x in leaks_in_text(text, emails, phones)]
    tally.leaked_identifiers += len(leaks)
    if leaks:
        tally.notes.append(f"leaks: {leaks[:10]}")
    return {"identifiers": {"emails": len(emails), "phones": len(phones)}, "scanned": dict(scanned), "leaks": leaks}


# ----------------------------------------------------------------------------------------------
# The soak


@dataclass
class Config:
    crash_rounds: int = int(os.environ.get("SOAK_CRASH_ROUNDS", 10))
    hostile_examples: int = int(os.environ.get("SOAK_HOSTILE_EXAMPLES", 400))
    hostile_runs: int = int(os.environ.get("SOAK_HOSTILE_RUNS", 2))
    readers: int = int(os.environ.get("SOAK_READERS", 4))
    reader_runs: int = int(os.environ.get("SOAK_READER_RUNS", 3))
    customers: int = int(os.environ.get("SOAK_CUSTOMERS", 600))
    seed: int = int(os.environ.get("SOAK_SEED", 0)) or random.SystemRandom().randint(1, 10**6)


def reference_run(work: Path, customers: int, seed: int = 3, name: str = "reference") -> Path:
    from dagster_project.lib.demo.generator import generate_demo

    d = work / name
    generate_demo(d, customers=customers, seed=seed, end_date=DEMO_END)
    run = WatchedRun(d, log=work / f"{name}.log")
    if run.wait() != 0:
        raise RuntimeError(f"the reference run failed: see {run.log}")
    return d


def soak(cfg: Config, work: Path) -> Tally:
    tally = Tally()
    rng = random.Random(cfg.seed)
    t0 = time.monotonic()
    print(f"soak: seed {cfg.seed}, work dir {work}", flush=True)
    ref = reference_run(work, cfg.customers)
    print(f"  reference run done ({time.monotonic() - t0:.0f}s)", flush=True)
    # 2. a second clean run on the same inputs in another directory
    other = reference_run(work, cfg.customers, name="rerun")
    determinism_check(ref, other, tally)
    print(f"  determinism checked ({time.monotonic() - t0:.0f}s)", flush=True)
    # 3. hostile files through the ingestion layer, then a few full runs
    hostile_suite(cfg.hostile_examples, tally)
    print(f"  {cfg.hostile_examples} hostile files ({time.monotonic() - t0:.0f}s)", flush=True)
    for _ in range(cfg.hostile_runs):
        hd = hostile_run(ref, work, rng, files=6, tally=tally)
        privacy_scan(hd, tally, {"hostile run log": (work / f"{hd.name}.log").read_text(errors="replace")})
    print(f"  {cfg.hostile_runs} hostile runs ({time.monotonic() - t0:.0f}s)", flush=True)
    # 1. crashes (publish swap window, then whole runs killed at random stages)
    publish_window_suite(ref, work, tally)
    crash_dir = crash_suite(ref, work, cfg.crash_rounds, rng, tally)
    print(f"  {cfg.crash_rounds} crash rounds ({time.monotonic() - t0:.0f}s)", flush=True)
    # 5. privacy, on the crash directory (many runs, killed ones included) and the reference
    for d in (ref, crash_dir):
        privacy_scan(
            d,
            tally,
            {f"{d.name} run logs": "\n".join(p.read_text(errors="replace") for p in work.glob(f"{d.name}*.log"))},
        )
    # 4. concurrent readers while runs publish
    as_ofs = [
        date.fromordinal(date.fromisoformat(AS_OF).toordinal() + i + 1).isoformat() for i in range(cfg.reader_runs)
    ]
    readers_suite(other, cfg.readers, as_ofs, tally)
    print(f"  readers done ({time.monotonic() - t0:.0f}s)", flush=True)
    tally.notes.append(f"took {time.monotonic() - t0:.0f}s")
    return tally


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.system()} {platform.release()}, {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}"
    )


def main(argv: list[str] | None = None) -> int:
    cfg = Config()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in ("crash_rounds", "hostile_examples", "hostile_runs", "readers", "reader_runs", "customers", "seed"):
        ap.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(cfg, name))
    ap.add_argument("--work-dir", default=None, help="keep the data directories here (default: a temporary one)")
    ap.add_argument(
        "--write-reliability",
        action="store_true",
        help="write the figures to docs/soak-latest.md (RELIABILITY.md links it)",
    )
    args = ap.parse_args(argv)
    cfg = Config(
        **{
            k: getattr(args, k)
            for k in ("crash_rounds", "hostile_examples", "hostile_runs", "readers", "reader_runs", "customers", "seed")
        }
    )
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="soak_"))
    work.mkdir(parents=True, exist_ok=True)
    tally = soak(cfg, work)
    table = tally.table()
    print("\n" + table)
    for k, v in sorted(tally.outcomes.items()):
        print(f"  after a kill: {k}: {v}")
    for n in tally.notes:
        print(f"  note: {n}")
    if args.write_reliability:
        write_reliability(cfg, tally, table)
    if not args.work_dir and tally.ok():
        shutil.rmtree(work, ignore_errors=True)
    print("\nSOAK " + ("PASSED" if tally.ok() else "FAILED"))
    return 0 if tally.ok() else 1


SOAK_LATEST = REPO / "docs" / "soak-latest.md"


def write_reliability(cfg: Config, tally: Tally, table: str, path: Path = SOAK_LATEST) -> None:
    """Replace `path` (docs/soak-latest.md) with this soak's figures.  The whole file is generated, so
    RELIABILITY.md (the guarantees, written by hand) only links it and never holds a stale figure."""
    outcomes = "\n".join(f"- {k}: {v}" for k, v in sorted(tally.outcomes.items())) or "- no kills"
    notes = "\n".join(f"- {n}" for n in tally.notes) or "- none"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Latest `make soak` figures\n\n"
        "Generated by `make soak` (`python -m tests.soak --write-reliability`); the next soak replaces this "
        "file. What each figure checks: [RELIABILITY.md](../RELIABILITY.md).\n\n"
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, seed {cfg.seed}; {machine()}; "
        f"{cfg.crash_rounds} crash rounds, {cfg.hostile_examples} hostile files, {cfg.hostile_runs} hostile "
        f"runs, {cfg.readers} readers over {cfg.reader_runs} runs, {cfg.customers} demo customers. "
        f"Result: {'PASSED' if tally.ok() else 'FAILED'}.\n\n"
        f"{table}\n\nAfter each kill:\n\n{outcomes}\n\nNotes from the run:\n\n{notes}\n"
    )


if __name__ == "__main__":
    sys.exit(main())
