"""DuckDB connections to the pipeline's working warehouse."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

# Bounded memory: DuckDB spills to temp_directory instead of failing.
DEFAULT_MEMORY_LIMIT = os.environ.get("PIPELINE_DUCKDB_MEMORY_LIMIT", "4GB")


def connect(path: Path, *, read_only: bool = False, temp_dir: Path | None = None) -> duckdb.DuckDBPyConnection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET memory_limit = '{DEFAULT_MEMORY_LIMIT}'")
    if temp_dir is not None:
        temp_dir.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory = '{temp_dir.as_posix()}'")
    return con


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )
