"""Write-audit-publish: build the outputs beside the published ones, then swap them in by rename.

- serving/warehouse.duckdb is built as a new file and renamed over the old one: a reader holding
  the old file open keeps its snapshot; the next open sees the new run, never half of one.
- serving/marts/*.parquet and exports/<as-of>/ are written to a temporary folder and renamed.
- exports/latest is a symlink replaced atomically, last.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import duckdb

from dagster_project.lib.files import sha256_of

PUBLISHED_SCHEMAS = ("marts",)


def build_serving_copy(working: Path, target: Path, run_info: dict) -> list[str]:
    """A new DuckDB file with the published schemas of the working warehouse (no raw inbox data)."""
    if target.exists():
        target.unlink()
    con = duckdb.connect(str(target))
    tables: list[str] = []
    try:
        con.execute(f"attach '{working.as_posix()}' as src (read_only)")
        for schema in PUBLISHED_SCHEMAS:
            con.execute(f"create schema {schema}")
            for (name,) in con.execute(
                "select table_name from duckdb_tables() where database_name = 'src' and schema_name = ? order by 1",
                [schema],
            ).fetchall():
                con.execute(f"create table {schema}.{name} as select * from src.{schema}.{name}")
                tables.append(f"{schema}.{name}")
        con.execute("create schema meta")
        con.execute("create table meta.published_run (key varchar, value varchar)")
        con.executemany("insert into meta.published_run values (?, ?)", [[k, str(v)] for k, v in run_info.items()])
        con.execute("detach src")
        con.execute("checkpoint")
    finally:
        con.close()
    return tables


def write_parquet_marts(serving_db: Path, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(serving_db), read_only=True)
    files = []
    try:
        for (schema, name) in con.execute(
            "select schema_name, table_name from duckdb_tables() where schema_name in ('marts') order by 2"
        ).fetchall():
            path = out_dir / f"{name}.parquet"
            con.execute(f"copy {schema}.{name} to '{path.as_posix()}' (format parquet)")
            files.append(path)
    finally:
        con.close()
    return files


def copy_parquet_marts(src_dir: Path, out_dir: Path, exclude: tuple[str, ...] = ()) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for p in sorted(src_dir.glob("*.parquet")):
        if p.stem not in exclude:
            shutil.copyfile(p, out_dir / p.name)
            files.append(out_dir / p.name)
    return files


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.replace(src, dst)
    fsync_dir(dst.parent)


def replace_dir(src: Path, dst: Path, trash: Path) -> None:
    """Swap a fully written directory into place (old one moved aside, then removed)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if dst.exists():
        old = trash / f"{dst.name}.old"
        if old.exists():
            shutil.rmtree(old)
        os.replace(dst, old)
    os.replace(src, dst)
    fsync_dir(dst.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def point_symlink(link: Path, target_name: str) -> None:
    tmp = link.parent / f".{link.name}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target_name, tmp)
    os.replace(tmp, link)
    fsync_dir(link.parent)


def write_manifest(folder: Path, info: dict) -> Path:
    files = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and p.name != "manifest.json":
            files.append({"path": p.relative_to(folder).as_posix(), "bytes": p.stat().st_size, "sha256": sha256_of(p)})
    manifest = {**info, "files": files}
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
    return path
