"""The dbt project as Dagster sees it: its manifest, kept fresh, and asset keys by schema."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings

from dagster_project.lib.paths import DBT_PROJECT_DIR

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
    env.setdefault("PIPELINE_WAREHOUSE_PATH", str(Path(tempfile.gettempdir()) / "dbt_parse_only.duckdb"))
    proc = subprocess.run(
        [dbt_executable(), "parse", "--quiet", "--project-dir", str(DBT_PROJECT_DIR),
         "--profiles-dir", str(DBT_PROJECT_DIR)],
        cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True,
    )
    if proc.returncode != 0 or not MANIFEST_PATH.exists():
        raise RuntimeError(f"`dbt parse` failed in {DBT_PROJECT_DIR}:\n{proc.stdout}\n{proc.stderr}")
    return MANIFEST_PATH


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


def generate_docs(warehouse: Path, as_of: str, out_dir: Path) -> Path:
    """`dbt docs generate --static` against the working warehouse; copies the single-file site to out_dir.

    Returns out_dir/index.html (the static page embeds manifest and catalog: it opens from disk, no
    server needed); manifest.json and catalog.json are copied beside it for tools that read them.
    """
    import json
    import shutil

    env = dict(os.environ, PIPELINE_WAREHOUSE_PATH=str(warehouse))
    proc = subprocess.run(
        [dbt_executable(), "docs", "generate", "--static", "--no-compile", "--quiet",
         "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
         "--vars", json.dumps({"as_of": as_of})],
        cwd=DBT_PROJECT_DIR, env=env, capture_output=True, text=True,
    )
    target = DBT_PROJECT_DIR / "target"
    if proc.returncode != 0 or not (target / "static_index.html").exists():
        raise RuntimeError(f"`dbt docs generate` failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(target / "static_index.html", out_dir / "index.html")
    for name in ("manifest.json", "catalog.json"):
        shutil.copyfile(target / name, out_dir / name)
    return out_dir / "index.html"
