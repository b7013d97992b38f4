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


# The layout of the tables a run keeps and builds on (raw, identity, the incremental dbt models): bump it
# whenever a change to them would leave an existing warehouse wrong for the new code (a column added,
# removed or retyped, a new meaning of a watermark).  A warehouse is never upgraded in place: a run on a
# warehouse of another version stops before it writes anything, and `--full-refresh` rebuilds it from
# the inbox.  One number instead of an upgrade path per column keeps every model's incremental logic
# about the current layout only.
SCHEMA_VERSION = 2
VERSION_TABLE = "raw.schema_version"


class WarehouseVersionError(RuntimeError):
    """The working warehouse was made by another release: rebuild it with --full-refresh."""


def check_schema_version(con: duckdb.DuckDBPyConnection, path: Path, data_dir: Path) -> None:
    """Record SCHEMA_VERSION in a new (empty) warehouse; raise WarehouseVersionError when the warehouse
    holds another version, or tables but no version (made before versions were recorded)."""
    if table_exists(con, *VERSION_TABLE.split(".")):
        stored = con.execute(f"select max(version) from {VERSION_TABLE}").fetchone()[0]
        if stored == SCHEMA_VERSION:
            return
        found = f"has schema version {stored}"
    elif con.execute("select count(*) from duckdb_tables() where database_name = current_database()").fetchone()[0]:
        found = "has no schema version (it was made by a release from before versions were recorded)"
    else:
        con.execute("begin")  # a run killed here leaves no table without its row
        con.execute("create schema if not exists raw")
        con.execute(f"create table {VERSION_TABLE} (version integer not null, written_at timestamp not null)")
        con.execute(f"insert into {VERSION_TABLE} values (?, current_timestamp)", [SCHEMA_VERSION])
        con.execute("commit")
        return
    raise WarehouseVersionError(
        f"the working warehouse {path} {found}; this release of the pipeline needs schema version "
        f"{SCHEMA_VERSION}. A warehouse is not upgraded in place: run `python -m dagster_project run "
        f"--full-refresh --data-dir {data_dir}` once, which sets this warehouse aside and rebuilds it from the "
        f'exports kept in {data_dir / "inbox"} (README: "Upgrading between versions"). Nothing was loaded '
        f"or published."
    )


def set_aside(path: Path) -> Path | None:
    """--full-refresh: move the working warehouse (and its write-ahead log) to `<name>.before-full-refresh`,
    replacing an earlier one, so the run starts a new warehouse; returns where it went, or None when there
    was none.  Opening it for writing first fails while another process holds it, before anything moves."""
    if not path.exists():
        return None
    try:
        duckdb.connect(str(path)).close()  # also folds the write-ahead log into the file
    except duckdb.Error as exc:
        raise ValueError(f"cannot set the working warehouse {path} aside: {exc}") from exc
    aside = path.with_name(path.name + ".before-full-refresh")
    for old in (aside, aside.with_name(aside.name + ".wal")):
        old.unlink(missing_ok=True)
    path.rename(aside)
    wal = path.with_name(path.name + ".wal")
    if wal.exists():
        wal.rename(aside.with_name(aside.name + ".wal"))
    return aside


def files_gone_from_inbox(old_warehouse: Path, inbox: Path) -> list[str]:
    """The files an earlier warehouse loaded (by their path in the inbox) that the inbox no longer has: a
    full refresh rebuilds from the inbox, so their rows are not in the new warehouse."""
    try:
        con = duckdb.connect(str(old_warehouse), read_only=True)
    except duckdb.Error:
        return []
    try:
        paths = [
            r[0]
            for r in con.execute(
                "select distinct path from raw.load_ledger where status = 'loaded' order by 1"
            ).fetchall()
        ]
    except duckdb.Error:
        return []  # no ledger there
    finally:
        con.close()
    return [p for p in paths if not (inbox / p).is_file()]


def connect(
    path: Path, *, read_only: bool = False, temp_dir: Path | None = None, memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> duckdb.DuckDBPyConnection:
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
    return bool(
        con.execute(
            "select count(*) from duckdb_columns() where schema_name = ? and table_name = ? and column_name = ?",
            [schema, table, column],
        ).fetchone()[0]
    )


def write_run_context(
    con: duckdb.DuckDBPyConnection, as_of: date, run_id: str = "", timezone: str | None = None
) -> None:
    """The one-row table raw.run_context the dbt models read their as-of date from (macro as_of_date).

    Passing the date as data rather than a dbt var keeps dbt's partial parsing valid from day to day.
    ``as_of_day_complete`` is false for a run made on (or before) its as-of date in the business time
    zone (`timezone`, default the one the code location loaded): that day is still going on, so the
    marts mark it as a partial period (macro is_partial_period).
    """
    from dagster_project.lib.orchestration import business_today

    con.execute("create schema if not exists raw")
    con.execute(
        "create or replace table raw.run_context (as_of_date date not null, run_id varchar, "
        "written_at timestamp, as_of_day_complete boolean not null)"
    )
    con.execute(
        "insert into raw.run_context values (?, ?, current_timestamp, ?)",
        [as_of, run_id, business_today(timezone) > as_of],
    )


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
