"""The dbt project as Dagster sees it: its manifest, kept fresh, and asset keys by schema."""

from __future__ import annotations

import os
import subprocess
import sys
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

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


def dbt_executable() -> str:
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


def ensure_manifest() -> Path:
    """Run `dbt parse` when the manifest is missing or older than any dbt source file."""
    if MANIFEST_PATH.exists() and MANIFEST_PATH.stat().st_mtime >= _newest_source_mtime():
        return MANIFEST_PATH
    env = dict(os.environ)
    # The same warehouse path as the runs (parsing does not open it): dbt's partial parsing is
    # invalidated when the profile changes, so a parse-only path would force a full re-parse.
    env.setdefault("PIPELINE_WAREHOUSE_PATH", str(DataPaths.of().warehouse))
    proc = subprocess.run(
        [dbt_executable(), "parse", "--quiet", "--project-dir", str(DBT_PROJECT_DIR),
         "--profiles-dir", str(DBT_PROJECT_DIR)],
        cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True,
    )
    if proc.returncode != 0 or not MANIFEST_PATH.exists():
        raise RuntimeError(f"`dbt parse` failed in {DBT_PROJECT_DIR}:\n{proc.stdout}\n{proc.stderr}")
    return MANIFEST_PATH


def keep_partial_parse(target_path: Path) -> None:
    """Keep a run's partial-parse state where the next dbt invocation looks for it.

    dagster-dbt gives each invocation its own target folder and seeds it with the project's
    target/partial_parse.msgpack; copying the newest one back means the next run on the same data
    directory (same profile) parses only what changed.
    """
    src = Path(target_path) / "partial_parse.msgpack"
    if not src.exists():
        return
    dst = MANIFEST_PATH.parent / "partial_parse.msgpack"
    tmp = dst.with_name(f".partial_parse.{os.getpid()}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


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
