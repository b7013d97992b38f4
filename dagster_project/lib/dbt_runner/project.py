"""The dbt project as Dagster sees it: its manifest, dbt's environment, and asset keys by schema.

Importing the definitions reads the manifest `prepare` wrote (`python -m dagster_project prepare`,
run by `make install`); it never parses the project. The command line's `run` and `backfill`, and
the test suite, parse first when a dbt file is newer than the manifest (`ensure_manifest`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

from dagster_project.lib.config import DEFAULT_MEMORY_LIMIT, Settings
from dagster_project.lib.paths import DBT_PROJECT_DIR, DataPaths

MANIFEST_PATH = DBT_PROJECT_DIR / "target" / "manifest.json"


def _newest_source_mtime() -> float:
    newest = 0.0
    for sub in ("models", "macros", "seeds", "tests"):
        for p in (DBT_PROJECT_DIR / sub).rglob("*"):
            if p.is_file():
                newest = max(newest, p.stat().st_mtime)
    for name in ("dbt_project.yml", "profiles.yml"):
        newest = max(newest, (DBT_PROJECT_DIR / name).stat().st_mtime)
    return newest


GUARDED_DBT = "owned-audience-dbt"  # dbt that dies with the run that started it (lib/dbt_runner/guard.py)


def dbt_beside_python() -> list[Path]:
    """The dbt entry points installed beside this Python, the guarded one first."""
    return [p for p in (Path(sys.executable).parent / name for name in (GUARDED_DBT, "dbt")) if p.exists()]


def dbt_executable() -> str:
    """The dbt the pipeline runs: the guarded entry point installed beside this Python (`make install`),
    else dbt beside this Python, else `dbt` on PATH."""
    installed = dbt_beside_python()
    return str(installed[0]) if installed else "dbt"


def manifest_is_current() -> bool:
    return MANIFEST_PATH.exists() and MANIFEST_PATH.stat().st_mtime >= _newest_source_mtime()


def manifest_for_definitions() -> Path:
    """The manifest the dbt assets are built from, as `prepare` left it. Reads no data directory and
    starts no dbt: a missing or outdated manifest is an error that says how to make it."""
    if not manifest_is_current():
        state = "is missing" if not MANIFEST_PATH.exists() else "is older than the dbt project's files"
        raise RuntimeError(
            f"the dbt manifest {MANIFEST_PATH} {state}: run `python -m dagster_project prepare "
            f"[--data-dir DIR]` (`make install` does) to parse the dbt project"
        )
    return MANIFEST_PATH


def ensure_manifest(paths: DataPaths, settings: Settings) -> bool:
    """`prepare` when the manifest is missing or older than any dbt source file; True when it parsed."""
    if manifest_is_current():
        return False
    prepare(paths, settings)
    return True


def prepare(paths: DataPaths, settings: Settings) -> Path:
    """`dbt parse` for one data directory: the manifest Dagster builds its assets from, and the
    partial-parse state that data directory's first `dbt build` starts from (dagster-dbt's "prepare"
    step; `make install` runs it, so the first `make run` does not parse the whole project). Parsed
    with the runs' profile and `--target`: dbt re-parses everything when either differs."""
    proc = subprocess.run(
        [
            dbt_executable(),
            "parse",
            "--quiet",
            "--target",
            settings.dbt_target,
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
        ],
        cwd=DBT_PROJECT_DIR,
        env=dbt_env(settings, paths),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0 or not MANIFEST_PATH.exists():
        raise RuntimeError(f"`dbt parse` failed in {DBT_PROJECT_DIR}:\n{proc.stdout}\n{proc.stderr}")
    keep_partial_parse(MANIFEST_PATH.parent, paths.dbt_state)
    return MANIFEST_PATH


def dbt_env(settings: Settings, paths: DataPaths, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every dbt command the pipeline runs on one data directory: what
    dbt/profiles.yml and the Spark source macro read, over `environ` (default: this process's), so
    dbt's own DBT_* variables pass through. The target itself goes in as `--target`.

    Only what differs from the profile's defaults is set: dbt re-parses the whole project when the
    profile's variables differ from the ones its partial-parse state was saved with, and an ad-hoc
    `dbt` command given just PIPELINE_WAREHOUSE_PATH should still parse partially after a run."""
    from dagster_project.lib.dbt_runner import spark_interop

    env = {**(os.environ if environ is None else environ), "PIPELINE_WAREHOUSE_PATH": str(paths.warehouse)}
    # dbt.log (kept in dbt/target/dbt_models-* when a build fails) at info level, not debug: writing every
    # SQL statement to it is a sizeable share of a demo build. DBT_LOG_LEVEL_FILE=debug for it all.
    env.setdefault("DBT_LOG_LEVEL_FILE", "info")
    if settings.duckdb_memory_limit != DEFAULT_MEMORY_LIMIT:
        env["PIPELINE_DUCKDB_MEMORY_LIMIT"] = settings.duckdb_memory_limit
    if settings.dbt_target == "spark":
        env.update(spark_interop.spark_env(paths.root))
    return env


@contextmanager
def dbt_environment(settings: Settings, paths: DataPaths) -> Iterator[None]:
    """`dbt_env` as this process's environment while dbt runs, restored afterwards. dagster-dbt gives
    its dbt process a copy of `os.environ` (it takes no environment of its own), and dbt run in this
    process (`generate_docs`) reads `os.environ` itself."""
    before = dict(os.environ)
    os.environ.update(dbt_env(settings, paths, before))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(before)


DOCS_FILES = ("index.html", "manifest.json", "catalog.json")


def docs_cache_key(con) -> str:
    """What the dbt docs site is made of: the dbt project's files, dbt's version, and the columns of
    every relation dbt built (the catalog). The same key means `dbt docs generate` would write the
    same site (apart from its timestamps), so a run can reuse the last one instead of paying a
    second dbt start (~8 s)."""
    h = hashlib.sha256()
    h.update(f"dbt-core {installed_version('dbt-core')} dbt-duckdb {installed_version('dbt-duckdb')}\n".encode())
    files = [DBT_PROJECT_DIR / "dbt_project.yml", DBT_PROJECT_DIR / "profiles.yml"]
    for sub in ("models", "macros", "seeds", "tests", "snapshots", "analyses"):
        files += sorted(p for p in (DBT_PROJECT_DIR / sub).rglob("*") if p.is_file())
    for p in files:
        if p.exists():
            h.update(p.relative_to(DBT_PROJECT_DIR).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    relations = documented_relations()
    for row in con.execute(
        "select table_schema, table_name, column_name, data_type, ordinal_position "
        "from information_schema.columns order by 1, 2, 5"
    ).fetchall():
        if (row[0].lower(), row[1].lower()) in relations:
            h.update(repr(row).encode())
    return h.hexdigest()


def documented_relations() -> set[tuple[str, str]]:
    """(schema, table) of every model, seed, snapshot and source in the manifest: what the catalog lists."""
    manifest = json.loads(MANIFEST_PATH.read_text(encoding="utf-8"))
    out = set()
    for node in [*manifest["nodes"].values(), *manifest["sources"].values()]:
        if node["resource_type"] in ("model", "seed", "snapshot", "source"):
            name = node.get("identifier") or node.get("alias") or node["name"]
            out.add((str(node["schema"]).lower(), str(name).lower()))
    return out


def reuse_docs(cache: Path, key: str, out: Path) -> bool:
    """Copy the cached docs site to `out` when it was generated for `key`."""
    marker = cache / "key.txt"
    if not marker.exists() or marker.read_text(encoding="utf-8").strip() != key:
        return False
    if not all((cache / name).exists() for name in DOCS_FILES):
        return False
    out.mkdir(parents=True, exist_ok=True)
    for name in DOCS_FILES:
        shutil.copyfile(cache / name, out / name)
    return True


def remember_docs(site: Path, cache: Path, key: str) -> None:
    """Keep a freshly generated docs site as the cache for `key` (key written last: a torn copy never matches)."""
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "key.txt").unlink(missing_ok=True)
    for name in DOCS_FILES:
        shutil.copyfile(site / name, cache / name)
    (cache / "key.txt").write_text(key + "\n", encoding="utf-8")


PARTIAL_PARSE = "partial_parse.msgpack"


def invocation_target(run_id: str, state_dir: Path) -> Path:
    """A new target folder for one dbt invocation, seeded with this data directory's partial-parse state.

    dbt re-parses the whole project (~5 s more) when the profile differs from the one its saved state
    was parsed with, and the profile holds the warehouse path: state saved by a run on another data
    directory is useless here. Each data directory keeps its own (`<data dir>/warehouse/dbt_state/`);
    without one, dagster-dbt falls back to the project's target/partial_parse.msgpack (what
    `ensure_manifest` or the last run left).
    """
    prune_failed_targets(MANIFEST_PATH.parent)
    path = MANIFEST_PATH.parent / f"dbt_models-{run_id[:7]}-{uuid.uuid4().hex[:7]}"
    path.mkdir(parents=True)
    state = state_dir / PARTIAL_PARSE
    if state.exists():
        shutil.copyfile(state, path / PARTIAL_PARSE)
    return path


# A successful build removes its target folder; a failed one keeps it (dbt.log, run_results.json) for
# debugging. So that a job failing every day does not pile them up, the newest few are kept and older
# ones go once they are a day old (a build running beside this one is never older than that).
KEEP_FAILED_TARGETS = 5
FAILED_TARGET_MIN_AGE_S = 24 * 3600


def prune_failed_targets(
    target_dir: Path, keep: int = KEEP_FAILED_TARGETS, min_age_s: float = FAILED_TARGET_MIN_AGE_S
) -> list[str]:
    """Remove `dbt_models-*` folders beyond the newest `keep` that are older than `min_age_s`."""
    folders = sorted(
        (p for p in Path(target_dir).glob("dbt_models-*") if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True
    )
    removed = []
    for p in folders[keep:]:
        if time.time() - p.stat().st_mtime > min_age_s:
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p.name)
    return removed


def keep_partial_parse(target_path: Path, state_dir: Path) -> None:
    """Keep a run's partial-parse state for the next run on this data directory (and as the project's
    fallback in target/, for a data directory that has none yet)."""
    src = Path(target_path) / PARTIAL_PARSE
    if not src.exists():
        return
    for dst in (state_dir / PARTIAL_PARSE, MANIFEST_PATH.parent / PARTIAL_PARSE):
        if dst.exists() and dst.samefile(src):  # `prepare` parsed into the project's target/ itself
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".partial_parse.{os.getpid()}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)


def generate_docs(target_path: Path, target: str) -> Path:
    """`dbt docs generate --static --no-compile` in this process, on the manifest a build left in
    `target_path`; returns the static index.html.

    As a subprocess the same command would pay a second dbt start (the imports dagster-dbt has
    already paid here); in-process it is the catalog queries and a partial parse. Run it inside
    `dbt_environment` (dbt reads the profile's variables from this process's environment). The
    warehouse file dbt-duckdb opened is closed afterwards (lib/adapters/dbt_duckdb.py), so the next
    step opens it as usual.
    """
    from dbt.cli.main import dbtRunner

    from dagster_project.lib.adapters.dbt_duckdb import release_process_database

    try:
        result = dbtRunner().invoke(
            [
                "docs",
                "generate",
                "--static",
                "--no-compile",
                "--quiet",
                "--target",
                target,
                "--project-dir",
                str(DBT_PROJECT_DIR),
                "--profiles-dir",
                str(DBT_PROJECT_DIR),
                "--target-path",
                str(target_path),
                "--log-path",
                str(target_path),
            ]
        )
    finally:
        release_process_database()  # the checks and publishing open the warehouse read-only next
    if not result.success:
        raise RuntimeError(
            f"`dbt docs generate` failed: {result.exception or 'see the dbt log in ' + str(target_path)}"
        )
    return Path(target_path) / "static_index.html"


class Translator(DagsterDbtTranslator):
    """Models keyed `<schema>/<model>` (marts/fct_orders), grouped by layer."""

    def __init__(self) -> None:
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] in ("model", "seed", "snapshot"):
            schema = dbt_resource_props["config"].get("schema") or "main"
            return dg.AssetKey([schema, dbt_resource_props["name"]])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] in ("model", "seed", "snapshot"):
            return dbt_resource_props["config"].get("schema") or "transform"
        return super().get_group_name(dbt_resource_props)
