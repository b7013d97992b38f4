"""The dbt project as Dagster sees it: its manifest, kept fresh, and asset keys by schema."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import shutil
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource
from packaging import version

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


GUARDED_DBT = "owned-audience-dbt"  # dbt that dies with the run that started it (lib/dbt_guard.py)


def _dbt_beside_python() -> list[Path]:
    """The dbt entry points installed beside this Python, the guarded one first."""
    return [p for p in (Path(sys.executable).parent / name for name in (GUARDED_DBT, "dbt")) if p.exists()]


def dbt_executable() -> str:
    """The dbt the pipeline runs: the guarded entry point installed beside this Python (`make install`),
    else dbt beside this Python, else `dbt` on PATH."""
    installed = _dbt_beside_python()
    return str(installed[0]) if installed else "dbt"


class PipelineDbtCli(DbtCliResource):
    """dagster-dbt's dbt resource without two start-up costs this project does not use (~8 s a run).

    - `_cli_version`: dagster-dbt runs `dbt --version` (a whole dbt start, ~4 s) to tell dbt Core from
      dbt Fusion. Our executable is the dbt-core installed beside this Python, so its version is read
      from the package metadata instead (any other executable still gets asked).
    - `_initialize_dbt_core_adapter`: dagster-dbt loads the dbt project and adapter in-process (~3.5 s)
      only to serve `fetch_column_metadata()` / `fetch_row_counts()`, which no asset here calls (row
      counts are attached at publish time). dagster-dbt treats a missing adapter as supported (it is
      what it falls back to when creating one fails).
    Both are private in dagster-dbt 0.29 (pinned); tests/test_definitions.py checks that they still exist.
    """

    @cached_property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable) in _dbt_beside_python():
            return version.parse(installed_version("dbt-core"))
        return super()._cli_version

    def _initialize_dbt_core_adapter(self, args: Sequence[str]):  # noqa: ARG002 - see the class docstring
        return None


def ensure_manifest() -> Path:
    """Run `dbt parse` when the manifest is missing or older than any dbt source file."""
    if MANIFEST_PATH.exists() and MANIFEST_PATH.stat().st_mtime >= _newest_source_mtime():
        return MANIFEST_PATH
    # The same warehouse path as the runs (parsing does not open it): dbt's partial parsing is
    # invalidated when the profile changes, so a parse-only path would force a full re-parse.
    _parse(Path(os.environ.get("PIPELINE_WAREHOUSE_PATH") or DataPaths.of().warehouse))
    return MANIFEST_PATH


def prepare(paths: DataPaths) -> Path:
    """`dbt parse` for one data directory: the manifest Dagster builds its assets from, and the
    partial-parse state that data directory's first `dbt build` starts from (dagster-dbt's "prepare"
    step; `make install` runs it, so the first `make run` does not parse the whole project)."""
    _parse(paths.warehouse)
    keep_partial_parse(MANIFEST_PATH.parent, paths.dbt_state)
    return MANIFEST_PATH


def _parse(warehouse: Path) -> None:
    from dagster_project.lib.spark_interop import resolve_dbt_target

    env = {**os.environ, "PIPELINE_WAREHOUSE_PATH": str(warehouse)}
    # `--target` as the runs pass it: dbt re-parses everything when the command-line target differs
    proc = subprocess.run(
        [dbt_executable(), "parse", "--quiet", "--target", resolve_dbt_target(), "--project-dir",
         str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)],
        cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True,
    )
    if proc.returncode != 0 or not MANIFEST_PATH.exists():
        raise RuntimeError(f"`dbt parse` failed in {DBT_PROJECT_DIR}:\n{proc.stdout}\n{proc.stderr}")


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
    manifest = json.loads(ensure_manifest().read_text(encoding="utf-8"))
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


def prune_failed_targets(target_dir: Path, keep: int = KEEP_FAILED_TARGETS,
                         min_age_s: float = FAILED_TARGET_MIN_AGE_S) -> list[str]:
    """Remove `dbt_models-*` folders beyond the newest `keep` that are older than `min_age_s`."""
    folders = sorted((p for p in Path(target_dir).glob("dbt_models-*") if p.is_dir()),
                     key=lambda p: p.stat().st_mtime, reverse=True)
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

    The same command as a subprocess costs a second dbt start (~4 s of imports dagster-dbt has already
    paid here); in-process it is the catalog queries and ~1 s of partial parsing. The warehouse file
    dbt-duckdb opened is closed afterwards, so the next step opens it as usual.
    """
    from dbt.cli.main import dbtRunner

    try:
        result = dbtRunner().invoke([
            "docs", "generate", "--static", "--no-compile", "--quiet", "--target", target,
            "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
            "--target-path", str(target_path), "--log-path", str(target_path),
        ])
    finally:
        _release_dbt_duckdb()
    if not result.success:
        raise RuntimeError(f"`dbt docs generate` failed: {result.exception or 'see the dbt log in ' + str(target_path)}")
    return Path(target_path) / "static_index.html"


def _release_dbt_duckdb() -> None:
    """Close the DuckDB database dbt-duckdb keeps open for the process after a command (a class-level
    environment, dropped only at exit): DuckDB refuses a second connection to that file with other
    settings (read-only, say) while it is open. The end-to-end tests' runs generate the docs and then
    validate the marts through read-only connections."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        env, DuckDBConnectionManager._ENV = DuckDBConnectionManager._ENV, None
    if env is not None:
        env.close()


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
