"""The load ledger (`raw.load_ledger`): one row per file a run looked at, with its content hash, so the
same export dropped twice, renamed or not, is loaded once, and an export untouched since a run
recorded it is not read again.  Files whose raw checks failed are taken out again here
(`unload_files`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb


@dataclass
class FileResult:
    path: str
    layout: str | None
    sha256: str
    size_bytes: int
    status: str  # loaded | empty | duplicate | rejected (later failed_check: unloaded by a failed raw suite)
    #              | unchanged (seen before, untouched: not recorded again)
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    message: str = ""
    encoding: str = "utf-8"
    file_id: int | None = None
    file_stat: str | None = None


def create_ledger(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """
        create table if not exists raw.load_ledger (
            file_id BIGINT primary key, run_id VARCHAR, path VARCHAR, file_name VARCHAR, folder VARCHAR,
            layout VARCHAR, sha256 VARCHAR, size_bytes BIGINT, encoding VARCHAR, status VARCHAR,
            rows_read BIGINT, rows_loaded BIGINT, rows_quarantined BIGINT, message VARCHAR,
            loaded_at TIMESTAMP, gx_validated BOOLEAN, file_stat VARCHAR
        )"""
    )


def next_file_id(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("select coalesce(max(file_id), 0) + 1 from raw.load_ledger").fetchone()[0])


# The rows of a raw table its Great Expectations suite has not passed yet: rows of loaded files not marked
# validated (this run's files, and files a killed run loaded before its checks ran).
UNVALIDATED_FILES = "select file_id from raw.load_ledger where status = 'loaded' and not coalesce(gx_validated, false)"


def mark_validated(con: duckdb.DuckDBPyConnection, file_ids: list[int]) -> None:
    """The raw suite passed on these files' rows: later runs do not validate them again."""
    if file_ids:
        con.execute(
            f"update raw.load_ledger set gx_validated = true where file_id in ({', '.join(map(str, file_ids))})"
        )


def unload_files(con: duckdb.DuckDBPyConnection, table: str, file_ids: list[int], reason: str) -> None:
    """Take the rows of files whose raw suite failed out of the warehouse (raw table and quarantine), and
    mark them `failed_check` in the ledger with the reason: nothing downstream was built from them (identity
    and dbt wait for every raw check), the file stays in the inbox, and the next run loads it again (and
    fails the same way) until it is replaced by a corrected export."""
    if not file_ids:
        return
    ids = ", ".join(map(str, file_ids))
    con.execute("begin transaction")
    try:
        con.execute(f"delete from raw.{table} where _file_id in ({ids})")
        con.execute(f"delete from raw.quarantine where file_id in ({ids})")
        con.execute(
            f"update raw.load_ledger set status = 'failed_check', message = ? where file_id in ({ids})", [reason[:2000]]
        )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def record_ledger(con, res: FileResult, folder: str, run_id: str) -> None:
    res.file_id = res.file_id or next_file_id(con)
    con.execute(
        "insert into raw.load_ledger (file_id, run_id, path, file_name, folder, layout, sha256, size_bytes, encoding, "
        "status, rows_read, rows_loaded, rows_quarantined, message, loaded_at, file_stat) "
        "values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [
            res.file_id,
            run_id,
            res.path,
            Path(res.path).name,
            folder,
            res.layout,
            res.sha256,
            res.size_bytes,
            res.encoding,
            res.status,
            res.rows_read,
            res.rows_loaded,
            res.rows_quarantined,
            res.message,
            datetime.now(UTC).replace(tzinfo=None),
            res.file_stat,
        ],
    )


def file_stat(st: os.stat_result) -> str:
    """What changes whenever a file's bytes may have: size, modification and status-change times (ns; the
    status-change time cannot be set back by tools that keep modification times), device and inode."""
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_dev}:{st.st_ino}"


def known_file(con, display_path: str, stat: str) -> tuple[str, str] | tuple[None, None]:
    """(sha256, status) an earlier run recorded for this inbox file, when it has not been touched since
    (same path and file_stat): a daily run does not read every export it has already seen again."""
    row = con.execute(
        "select sha256, status from raw.load_ledger where path = ? and file_stat = ? and sha256 is not null "
        "order by file_id desc limit 1",
        [display_path, stat],
    ).fetchone()
    return (row[0], row[1]) if row else (None, None)


# A file an earlier run loaded, found empty or found to repeat another one, seen again untouched, is not
# an event: it gets no new ledger row (its first one accounts for it). A rejected file, or one whose rows
# failed their raw suite, is looked at again by every run until it is replaced, so each run says so.
SETTLED = ("loaded", "empty", "duplicate")


def already_loaded(con, sha: str) -> str | None:
    row = con.execute(
        "select file_name from raw.load_ledger where sha256 = ? and status in ('loaded', 'empty') limit 1", [sha]
    ).fetchone()
    return row[0] if row else None
