"""DuckDB connections to the pipeline's working warehouse."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb

from dagster_project.lib.config import DEFAULT_MEMORY_LIMIT

# The build marker of the large incremental marts (fct_orders, customer_identity_map): when the dbt build
# that wrote the row started (macro build_started_at).  The fct_orders GX check validates per build, the
# serving copy takes the rows built since the published file.
BUILD_MARKER = "built_at"


def connect(path: Path, *, read_only: bool = False, temp_dir: Path | None = None,
            memory_limit: str = DEFAULT_MEMORY_LIMIT) -> duckdb.DuckDBPyConnection:
    """A connection with the pipeline's session settings; bounded memory (PIPELINE_DUCKDB_MEMORY_LIMIT,
    passed in by the run's settings): DuckDB spills to `temp_dir` instead of failing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    con.execute(f"SET memory_limit = '{memory_limit}'")
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


def column_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str, column: str) -> bool:
    return bool(con.execute(
        "select count(*) from duckdb_columns() where schema_name = ? and table_name = ? and column_name = ?",
        [schema, table, column]).fetchone()[0])


def write_run_context(con: duckdb.DuckDBPyConnection, as_of: date, run_id: str = "",
                      timezone: str | None = None) -> None:
    """The one-row table raw.run_context the dbt models read their as-of date from (macro as_of_date).

    Passing the date as data rather than a dbt var keeps dbt's partial parsing valid from day to day.
    ``as_of_day_complete`` is false for a run made on (or before) its as-of date in the business time
    zone (`timezone`, default the one the code location loaded): that day is still going on, so the
    marts mark it as a partial period (macro is_partial_period).
    """
    from dagster_project.lib.orchestration import business_today

    con.execute("create schema if not exists raw")
    con.execute("create or replace table raw.run_context (as_of_date date not null, run_id varchar, "
                "written_at timestamp, as_of_day_complete boolean not null)")
    con.execute("insert into raw.run_context values (?, ?, current_timestamp, ?)",
                [as_of, run_id, business_today(timezone) > as_of])


def release_freed_memory() -> None:
    """Return memory Python has freed (e.g. large pandas batches) to the operating system.

    glibc and Arrow's allocator keep freed pages, so the pipeline process would still hold them while
    the dbt process (with its own DuckDB memory limit) runs beside it; `malloc_trim` and Arrow's
    `release_unused` give them back.  A no-op where they are not available."""
    import ctypes
    import gc

    gc.collect()
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()  # pandas' Arrow-backed columns (mimalloc/jemalloc)
    except (ImportError, AttributeError):
        pass
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
