"""Load inbox exports into the working warehouse's `raw` schema.

Every file is recorded once in `raw.load_ledger` (by content hash, so the same file dropped twice,
renamed or not, is loaded once).  Parsing runs inside DuckDB (read_csv with every column as text,
then typed with try_* expressions), never in pandas row loops.  Each data row either lands in its
raw table, with its lineage (`_file_id`, `_line_number`), or in `raw.quarantine` with the reason;
rows read = rows loaded + rows quarantined, per file.  A file is loaded in one transaction, so a
crash leaves either all of it or none of it.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from dagster_project.lib import formats, warehouse
from dagster_project.lib.files import sha256_of
from dagster_project.lib.formats import Field, Layout

# ----------------------------------------------------------------------------------------------
# Field specs: how each raw column is typed (the built-in layouts' column maps, `formats.LAYOUTS`).
# `kind` picks the parse expression; a value that is present but does not parse, or a required value
# that is missing, sends the row to quarantine.

SQL_TYPES = {**formats.TYPES, "map_ts": "TIMESTAMP", "price": "DECIMAL(18,4)", "amount4": "DECIMAL(18,4)"}

FIELDS: dict[str, list[Field]] = {lay.name: list(lay.fields) for lay in formats.LAYOUTS}

LINEAGE_COLUMNS = "_file_id BIGINT, _line_number BIGINT, _run_id VARCHAR"

# Generic mapped exports land in one table; the map decides which source column feeds which field.
GENERIC_TABLE = "generic_order_lines"
GENERIC_COLUMNS: list[tuple[str, str, bool]] = [
    # (raw column, kind, required)
    ("order_id", "text", True), ("ordered_at", "map_ts", True), ("quantity", "decimal", True),
    ("unit_price", "price", False), ("line_amount", "amount4", False), ("customer_id", "text", False),
    ("email", "text", False), ("phone", "text", False), ("currency", "upper", False),
    ("channel", "lower", False), ("store", "text", False), ("sku", "text", False),
    ("description", "text", False), ("country", "text", False), ("status", "lower", False),
]


def generic_fields(cmap) -> list[Field]:
    """Field specs for one column map (missing optional columns are NULL)."""
    out = []
    for name, kind, required in GENERIC_COLUMNS:
        src = cmap.columns.get(name)
        if src is None:
            continue
        out.append(Field(name, src, kind, required=required, formats=cmap.ts_formats, zone=cmap.timezone))
    return out

TS_FORMATS = "['%Y-%m-%d %H:%M:%S %z', '%Y-%m-%dT%H:%M:%S%z', '%Y-%m-%d %H:%M:%S%z']"
DATE_FORMATS = {"date": "['%Y-%m-%d', '%m/%d/%Y']", "month": "['%Y-%m', '%Y-%m-%d']"}


class IngestError(Exception):
    """A problem with one file, named in the message."""


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


# ----------------------------------------------------------------------------------------------
# SQL building blocks


def q(name: str) -> str:
    """Quote an identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _blank_to_null(col: str) -> str:
    return f"nullif(trim({q(col)}), '')"


def _money_number(src: str, sql_type: str = "DECIMAL(18,2)") -> str:
    cleaned = src
    for ch in ("$", "£", "€", ",", " ", "(", ")"):
        cleaned = f"replace({cleaned}, '{ch}', '')"
    return f"try_cast({cleaned} as {sql_type})"


def typed_expr(f: Field) -> str:
    """The typed value; NULL when missing or unparseable."""
    if f.kind == "local_ts":
        d, t, z = f.source
        zone = "case " + " ".join(f"when trim({q(z)}) = {lit(k)} then {lit(v)}" for k, v in f.zones) + " end"
        fmts = "[" + ", ".join(lit(x) for x in f.formats) + "]"
        local = f"try_strptime(trim({q(d)}) || ' ' || trim({q(t)}), {fmts})"
        return f"(timezone({zone}, {local}))::TIMESTAMP"
    src = _blank_to_null(f.source)  # type: ignore[arg-type]
    if f.kind == "text":
        return src
    if f.kind in ("lower", "enum"):
        return f"lower({src})"
    if f.kind == "upper":
        return f"upper({src})"
    if f.kind == "money":
        # $1,234.50  -$12.00  (12.00)  £9  12.50  -> decimal; currency symbols and separators removed
        return f"(case when starts_with({src}, '(') then -{_money_number(src)} else {_money_number(src)} end)"
    if f.kind == "rate":
        return f"try_cast({src} as DECIMAL(18,8))"
    if f.kind in ("price", "amount4"):
        return _money_number(src, "DECIMAL(18,4)")
    if f.kind == "map_ts":
        fmts = "[" + ", ".join(lit(x) for x in f.formats) + "]"
        local = f"try_strptime({src}, {fmts})"
        if f.zone == "UTC":
            return f"({local})::TIMESTAMP"
        return f"(timezone({lit(f.zone)}, {local}))::TIMESTAMP"
    if f.kind == "int":
        return f"try_cast(try_cast({src} as DECIMAL(18,3)) as BIGINT)"
    if f.kind == "decimal":
        return f"try_cast({src} as DECIMAL(18,3))"
    if f.kind == "ts_offset":
        return f"(try_strptime({src}, {TS_FORMATS}))::TIMESTAMP"
    if f.kind in ("date", "month"):
        return f"(try_strptime({src}, {DATE_FORMATS[f.kind]}))::DATE"
    if f.kind == "bool":
        return (
            f"case when lower({src}) in ('yes','true','1','y','subscribed') then true "
            f"when lower({src}) in ('no','false','0','n','unsubscribed') then false end"
        )
    raise ValueError(f"unknown field kind {f.kind}")


def error_expr(f: Field, typed: str | None = None) -> str:
    """A reason string when this field makes the row invalid, else NULL.

    `typed` names an already computed typed value (so parsing is not done twice)."""
    label = "+".join(f.source) if isinstance(f.source, tuple) else f.source
    typed = typed or typed_expr(f)
    if isinstance(f.source, tuple):
        present = " and ".join(f"{_blank_to_null(s)} is not null" for s in f.source)
        raw_shown = " || ' ' || ".join(f"coalesce({q(s)}, '')" for s in f.source)
    else:
        present = f"{_blank_to_null(f.source)} is not null"
        raw_shown = f"{q(f.source)}"
    checks = []
    if f.required and not f.order_level:  # an order-level one: _complete_shopify_orders
        checks.append(f"when not ({present}) then {lit(f'missing {label}')}")
    if f.kind == "enum":
        allowed = ", ".join(lit(v) for v in f.values)
        checks.append(
            f"when {present} and {typed} not in ({allowed}) then "
            f"{lit(f'unknown {label} ')} || {lit(chr(39))} || left({raw_shown}, 40) || {lit(chr(39))}"
        )
    elif f.kind not in ("text", "lower", "upper", "bool"):
        what = {"money": "an amount", "int": "a whole number", "decimal": "a number",
                "ts_offset": "a timestamp with UTC offset", "local_ts": "a local date and time with a known Time Zone",
                "date": "a date", "month": "a date", "price": "an amount", "amount4": "an amount", "rate": "a number",
                "map_ts": "a timestamp like " + " or ".join(f.formats)}[f.kind]
        checks.append(
            f"when {present} and {typed} is null then "
            f"{lit(f'bad {label}: expected {what}, got ')} || {lit(chr(39))} || left({raw_shown}, 40) || {lit(chr(39))}"
        )
    if not checks:
        return "NULL"
    return "case " + " ".join(checks) + " end"


def create_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema if not exists raw")
    con.execute(
        """
        create table if not exists raw.load_ledger (
            file_id BIGINT primary key, run_id VARCHAR, path VARCHAR, file_name VARCHAR, folder VARCHAR,
            layout VARCHAR, sha256 VARCHAR, size_bytes BIGINT, encoding VARCHAR, status VARCHAR,
            rows_read BIGINT, rows_loaded BIGINT, rows_quarantined BIGINT, message VARCHAR,
            loaded_at TIMESTAMP, gx_validated BOOLEAN, file_stat VARCHAR
        )"""
    )
    _add_gx_validated(con)
    con.execute("alter table raw.load_ledger add column if not exists file_stat VARCHAR")
    con.execute(
        """
        create table if not exists raw.quarantine (
            file_id BIGINT, layout VARCHAR, file_name VARCHAR, line_number BIGINT, reason VARCHAR,
            raw_record VARCHAR, run_id VARCHAR
        )"""
    )
    for layout, fields in FIELDS.items():
        cols = ", ".join(f"{f.name} {SQL_TYPES[f.kind]}" for f in fields)
        con.execute(f"create table if not exists raw.{layout} ({cols}, {LINEAGE_COLUMNS})")
    cols = ", ".join(f"{n} {SQL_TYPES[k]}" for n, k, _ in GENERIC_COLUMNS)
    con.execute(
        f"create table if not exists raw.{GENERIC_TABLE} (map_name VARCHAR, {cols}, is_cancellation BOOLEAN, "
        f"{LINEAGE_COLUMNS})"
    )


# ----------------------------------------------------------------------------------------------
# File inspection


# Spreadsheet programs save "Unicode text" as UTF-16 (Excel: little-endian with a BOM); UTF-32 is rare
# but has BOMs of its own. The BOMs of UTF-32 are checked first: UTF-32-LE's starts like UTF-16-LE's.
_WIDE_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
              (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def _wide_encoding(head: bytes) -> str | None:
    """UTF-16/32 from a BOM, or from the NUL bytes of mostly-ASCII text without one (a CSV's header is
    ASCII: in UTF-16-LE every odd byte is NUL, in UTF-16-BE every even one)."""
    for bom, name in _WIDE_BOMS:
        if head.startswith(bom):
            return name
    sample = head[:4096 - 4096 % 4]
    if len(sample) < 4 or b"\x00" not in sample:
        return None
    quads = [sample[i:i + 4] for i in range(0, len(sample), 4)]
    if all(q[1:] == b"\x00\x00\x00" for q in quads[:8]):
        return "utf-32-le"
    if all(q[:3] == b"\x00\x00\x00" for q in quads[:8]):
        return "utf-32-be"
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


def detect_encoding(path: Path) -> str:
    """utf-16 / utf-32 (by BOM, or by the NUL bytes of ASCII text), else utf-8 (with or without BOM)
    when the whole file decodes as UTF-8, else windows-1252."""
    with path.open("rb") as fh:
        wide = _wide_encoding(fh.read(4096))
    if wide:
        return wide
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as fh:
        try:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "windows-1252"
    return "utf-8"


def _latin1_fallback(err: UnicodeDecodeError) -> tuple[str, int]:
    """For the five bytes cp1252 leaves undefined, keep the Latin-1 character."""
    return err.object[err.start:err.end].decode("latin-1"), err.end


codecs.register_error("cp1252_latin1", _latin1_fallback)


def to_utf8_copy(path: Path, encoding: str, tmpdir: Path) -> Path:
    """Transcode a legacy single-byte or a UTF-16/32 file to UTF-8 for DuckDB's reader.  A UTF-16/32
    file that does not decode is rejected with what to do (an incremental decoder: a character may
    straddle two chunks)."""
    out = tmpdir / (path.name + ".utf8.csv")
    wide = encoding.startswith("utf-")
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict" if wide else "cp1252_latin1")
    try:
        with path.open("rb") as src, out.open("w", encoding="utf-8", newline="") as dst:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                dst.write(decoder.decode(chunk))
            dst.write(decoder.decode(b"", final=True))
    except UnicodeDecodeError as exc:
        raise IngestError(f"{path.name}: looks like {encoding.upper()} but byte {exc.start} of a chunk does not "
                          f"decode ({exc.reason}); save it as UTF-8 CSV and drop it in again") from exc
    return out


def pick_layout(folder: str, header: list[str]) -> Layout | None:
    candidates = [lay for lay in formats.LAYOUTS if lay.folder == folder]
    for lay in candidates:
        if lay.signature in header:
            return lay
    return candidates[0] if len(candidates) == 1 else None


def duplicated_columns(header: list[str]) -> list[str]:
    return sorted({h for h in header if h and header.count(h) > 1})


def header_problem(path: Path, layout: Layout | None, folder: str, header: list[str]) -> str | None:
    if not header or header == [""]:
        return None  # empty file; handled as empty
    if len(header) == 1 and any(d in header[0] for d in (";", "\t", "|")):
        delim = next(d for d in (";", "\t", "|") if d in header[0])
        return f"{path.name}: expected comma-separated columns, the header looks {delim!r}-separated"
    dupes = duplicated_columns(header)
    if dupes:
        return f"{path.name}: duplicated header columns {dupes}"
    if layout is None:
        known = [f"{lay.name} (has {lay.signature!r})" for lay in formats.LAYOUTS if lay.folder == folder]
        return f"{path.name}: header matches no known {folder} export layout; expected one of {known}"
    missing = [c for c in layout.required if c not in header]
    if missing:
        return f"{path.name}: missing required columns {missing} for {layout.name}"
    return None


# ----------------------------------------------------------------------------------------------
# Loading one file


def _next_file_id(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("select coalesce(max(file_id), 0) + 1 from raw.load_ledger").fetchone()[0])


def _add_gx_validated(con: duckdb.DuckDBPyConnection) -> None:
    """A ledger from before `gx_validated` gets the column; its loaded files passed their raw checks in
    the run that loaded them (as those checks were then), so they count as validated."""
    if not warehouse.column_exists(con, "raw", "load_ledger", "gx_validated"):
        con.execute("alter table raw.load_ledger add column gx_validated BOOLEAN")
        con.execute("update raw.load_ledger set gx_validated = true where status in ('loaded', 'empty')")


# The rows of a raw table its Great Expectations suite has not passed yet: rows of loaded files not marked
# validated (this run's files, and files a killed run loaded before its checks ran).
UNVALIDATED_FILES = ("select file_id from raw.load_ledger where status = 'loaded' and not coalesce(gx_validated, false)")


def mark_validated(con: duckdb.DuckDBPyConnection, file_ids: list[int]) -> None:
    """The raw suite passed on these files' rows: later runs do not validate them again."""
    if file_ids:
        con.execute(f"update raw.load_ledger set gx_validated = true where file_id in ({', '.join(map(str, file_ids))})")


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
        con.execute(f"update raw.load_ledger set status = 'failed_check', message = ? where file_id in ({ids})",
                    [reason[:2000]])
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise


def _record_ledger(con, res: FileResult, folder: str, run_id: str) -> None:
    res.file_id = res.file_id or _next_file_id(con)
    con.execute(
        "insert into raw.load_ledger (file_id, run_id, path, file_name, folder, layout, sha256, size_bytes, encoding, "
        "status, rows_read, rows_loaded, rows_quarantined, message, loaded_at, file_stat) "
        "values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [res.file_id, run_id, res.path, Path(res.path).name, folder, res.layout, res.sha256, res.size_bytes,
         res.encoding, res.status, res.rows_read, res.rows_loaded, res.rows_quarantined, res.message,
         datetime.now(timezone.utc).replace(tzinfo=None), res.file_stat],
    )


def file_stat(st: os.stat_result) -> str:
    """What changes whenever a file's bytes may have: size, modification and status-change times (ns; the
    status-change time cannot be set back by tools that keep modification times), device and inode."""
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_dev}:{st.st_ino}"


def _known_file(con, display_path: str, stat: str) -> tuple[str, str] | tuple[None, None]:
    """(sha256, status) an earlier run recorded for this inbox file, when it has not been touched since
    (same path and file_stat): a daily run does not read every export it has already seen again."""
    row = con.execute(
        "select sha256, status from raw.load_ledger where path = ? and file_stat = ? and sha256 is not null "
        "order by file_id desc limit 1", [display_path, stat]).fetchone()
    return (row[0], row[1]) if row else (None, None)


# A file an earlier run loaded, found empty or found to repeat another one, seen again untouched, is not
# an event: it gets no new ledger row (its first one accounts for it). A rejected file, or one whose rows
# failed their raw suite, is looked at again by every run until it is replaced, so each run says so.
SETTLED = ("loaded", "empty", "duplicate")


def _already_loaded(con, sha: str) -> str | None:
    row = con.execute(
        "select file_name from raw.load_ledger where sha256 = ? and status in ('loaded', 'empty') limit 1", [sha]
    ).fetchone()
    return row[0] if row else None


def load_file(con: duckdb.DuckDBPyConnection, path: Path, folder: str, run_id: str,
              display_root: Path | None = None, data_root: Path | None = None) -> FileResult:
    """Load one export file into its raw table (or reject / skip it), recording it in the ledger.

    `folder` is the inbox sub-folder (`shopify`, …) or `generic/<map name>`.
    """
    display = str(path.relative_to(display_root)) if display_root else str(path)
    st = path.stat()
    stat = file_stat(st)
    sha, status = _known_file(con, display, stat)
    if status in SETTLED:
        return FileResult(path=display, layout=None, sha256=sha, size_bytes=st.st_size, status="unchanged",
                          file_stat=stat, message=f"unchanged since an earlier run recorded it as {status}")
    sha = sha or sha256_of(path)
    res = FileResult(path=display, layout=None, sha256=sha, size_bytes=st.st_size, status="loaded", file_stat=stat)

    def finish(status: str, message: str) -> FileResult:
        res.status, res.message = status, message
        _record_ledger(con, res, folder, run_id)
        return res

    prior = _already_loaded(con, sha)
    if prior is not None:
        return finish("duplicate", f"same content as already-loaded {prior}; not loaded again")
    if st.st_size == 0:
        return finish("empty", "empty file")

    cmap = None
    if folder.startswith("generic/"):
        from dagster_project.lib import maps

        try:
            cmap = maps.load_map(folder.split("/", 1)[1], data_root)
        except maps.MapError as exc:
            return finish("rejected", f"{path.name}: {exc}")
        fmt = maps.FORMATS.get(path.suffix.lower())
        if fmt is None:
            return finish("rejected", f"{path.name}: unsupported file type {path.suffix!r} in inbox/{folder} "
                                      f"(expected one of {sorted(maps.FORMATS)})")
        res.layout = GENERIC_TABLE
    else:
        fmt = "csv"
        if path.suffix.lower() not in (".csv", ".txt"):
            return finish("rejected", f"{path.name}: unsupported file type {path.suffix!r} in inbox/{folder} (expected .csv)")

    with tempfile.TemporaryDirectory(prefix="ingest_") as tmp:
        source = path
        if fmt == "csv":
            res.encoding = detect_encoding(path)
            if res.encoding != "utf-8":
                try:
                    source = to_utf8_copy(path, res.encoding, Path(tmp))
                except IngestError as exc:
                    return finish("rejected", str(exc))
        try:
            header = read_source_header(source, fmt, cmap.csv_delimiter if cmap else ",")
        except Exception as exc:  # unreadable container (bad Parquet / XLSX)
            return finish("rejected", f"{path.name}: cannot be read as {fmt}: {str(exc).splitlines()[0][:200]}")
        if cmap is not None:
            problem = generic_header_problem(path, cmap, header)
            fields = generic_fields(cmap)
            table = GENERIC_TABLE
        else:
            layout = pick_layout(folder, header)
            res.layout = layout.name if layout else None
            problem = header_problem(path, layout, folder, header)
            fields = FIELDS[layout.name] if layout else []
            table = layout.name if layout else ""
        if not header or header == [""]:
            return finish("empty", "no header")
        if problem:
            return finish("rejected", problem)

        # Parse and type outside the transaction: a failed read aborts DuckDB's transaction.
        delimiter = cmap.csv_delimiter if cmap else ","
        try:
            if fmt == "csv":
                rejects = _stage_typed_csv(con, source, header, delimiter, fields, cmap)
            else:
                rejects = _stage(con, source, fmt, header)
                _type_staged(con, fields, header, cmap)
        except (IngestError, duckdb.Error) as exc:
            _drop_temp_tables(con)
            msg = str(exc) if isinstance(exc, IngestError) else \
                f"{path.name}: cannot be read as {fmt}: {str(exc).splitlines()[0][:200]}"
            return finish("rejected", msg)
        con.execute("begin transaction")
        try:
            res.file_id = _next_file_id(con)
            _insert_typed(con, table, fields, header, rejects, res, run_id, cmap, raw_from_staged=fmt != "csv")
            if fmt == "csv" and res.rows_quarantined > len(rejects):
                _attach_raw_text(con, source, res.file_id)
            res.status = "loaded" if res.rows_read else "empty"
            if not res.rows_read:
                res.message = "header only, no rows"
            _record_ledger(con, res, folder, run_id)
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
        finally:
            _drop_temp_tables(con)
    return res


def _attach_raw_text(con, source: Path, file_id: int) -> None:
    """Quarantined CSV rows keep the file's own text (all fields, as written)."""
    starts = [int(r[0]) for r in con.execute("select _line from _typed where _reason is not null").fetchall()]
    texts = raw_csv_records(source, starts)
    if not texts:
        return
    # one update joined to the texts (an update per row scanned the quarantine table once per row: 0.2-0.5 s
    # for a daily Shopify file with a thousand quarantined rows)
    con.execute("create or replace temp table _texts as "
                "select unnest(?::BIGINT[]) as line_number, unnest(?::VARCHAR[]) as raw_record",
                [list(texts), list(texts.values())])
    con.execute(
        "update raw.quarantine set raw_record = _texts.raw_record from _texts "
        "where raw.quarantine.file_id = ? and raw.quarantine.line_number = _texts.line_number",
        [file_id],
    )


def _source_columns(fields: list[Field]) -> set[str]:
    return {s for f in fields for s in (f.source if isinstance(f.source, tuple) else (f.source,))}


def raw_csv_records(path: Path, starts: list[int]) -> dict[int, str]:
    """The raw text of the records starting on the given physical lines (whole quoted fields)."""
    wanted = set(starts)
    out: dict[int, str] = {}
    last = max(wanted) if wanted else 0
    with path.open("rb") as fh:
        current: list[bytes] | None = None
        first = 0
        in_quote = False
        for ln, raw in enumerate(fh, start=1):
            if current is None and ln in wanted:
                current, first, in_quote = [], ln, False
            if current is not None:
                current.append(raw)
                if raw.count(b'"') % 2:
                    in_quote = not in_quote
                if not in_quote:
                    out[first] = b"".join(current).decode("utf-8", errors="replace").rstrip("\r\n")
                    current = None
                    if ln >= last:
                        break
    return out


def _drop_temp_tables(con) -> None:
    # _rejects/_rejects_scan too: DuckDB keeps a reader's rejects when the file is given up after its
    # read, and the next file's read appended to them, so one bad file made every later one look
    # miscounted and be rejected
    for t in ("_src", "_rec", "_typed", "_gap", "_lines", "_nl", "_texts", "_rejects", "_rejects_scan"):
        con.execute(f"drop table if exists {t}")


def read_source_header(source: Path, fmt: str, delimiter: str = ",") -> list[str]:
    if fmt == "csv":
        with source.open("rb") as fh:
            head = fh.read(256 * 1024)
        rows = csv.reader(io.StringIO(head.decode("utf-8-sig", errors="replace")), delimiter=delimiter)
        try:
            return [h.strip() for h in next(rows)]
        except StopIteration:
            return []
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(source).names)
    if fmt == "xlsx":
        import openpyxl

        wb = openpyxl.load_workbook(source, read_only=True)
        try:
            first = next(wb.worksheets[0].iter_rows(max_row=1, values_only=True), ())
        finally:
            wb.close()
        return [str(v).strip() if v is not None else "" for v in first]
    if fmt == "jsonl":
        keys: list[str] = []
        with source.open("r", encoding="utf-8-sig", errors="replace") as fh:
            for i, line in enumerate(fh):
                if i >= 1000:
                    break
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    keys += [k for k in obj if k not in keys]
        return keys
    raise ValueError(fmt)


def generic_header_problem(path: Path, cmap, header: list[str]) -> str | None:
    if not header:
        return None
    dupes = duplicated_columns(header)
    if dupes:
        return f"{path.name}: duplicated header columns {dupes}"
    mapped = set(cmap.columns.values())
    missing = [c for c in cmap.required_source_columns if c not in header]
    if missing:
        return f"{path.name}: missing required columns {missing} named by map {cmap.name} ({cmap.path.name})"
    absent_optional = sorted(c for c in mapped if c not in header and c not in missing)
    if absent_optional:
        return f"{path.name}: columns {absent_optional} named by map {cmap.name} are not in the file"
    return None


def _stage(con, source: Path, fmt: str, header: list[str]) -> list[tuple]:
    """Stage a Parquet, XLSX or JSON-lines file as `_rec`: every column as VARCHAR, plus `_record`
    (1-based) and `_line`.  Returns undecodable JSON lines as (line, raw text, reason) tuples.
    """
    if fmt == "parquet":
        cols = ", ".join(f"cast({q(h)} as VARCHAR) as {q(h)}" for h in header)
        con.execute(
            f"create temp table _rec as select {cols}, file_row_number + 1 as _record, file_row_number + 1 as _line "
            f"from read_parquet({lit(source.as_posix())}, file_row_number = true)"
        )
        return []
    if fmt == "xlsx":
        import openpyxl
        import pyarrow as pa

        wb = openpyxl.load_workbook(source, read_only=True, data_only=True)
        try:
            rows = wb.worksheets[0].iter_rows(min_row=2, values_only=True)
            data: dict[str, list] = {h: [] for h in header}
            lines: list[int] = []
            for i, row in enumerate(rows, start=2):
                if row is None or all(v is None for v in row):
                    continue
                for h, v in zip(header, list(row) + [None] * (len(header) - len(row))):
                    data[h].append(None if v is None else (v.isoformat(sep=" ") if hasattr(v, "isoformat") else str(v)))
                lines.append(i)
        finally:
            wb.close()
        tbl = pa.table({**{h: pa.array(data[h], pa.string()) for h in header},
                        "_record": pa.array(range(1, len(lines) + 1), pa.int64()), "_line": pa.array(lines, pa.int64())})
        con.register("_xlsx", tbl)
        con.execute("create temp table _rec as select * from _xlsx")
        con.unregister("_xlsx")
        return []
    if fmt == "jsonl":
        con.execute(
            f"""
            create temp table _lines as
            select row_number() over () as _line, line
            from read_csv({lit(source.as_posix())}, header = false, auto_detect = false,
                          columns = {{'line': 'VARCHAR'}}, delim = '\\x1f', quote = '', escape = '',
                          parallel = false, max_line_size = 10000000)
            """
        )
        broken = con.execute(
            "select _line, line, 'not a JSON object' from _lines where line is not null and trim(line) != '' "
            "and (not json_valid(line) or json_type(line::JSON) != 'OBJECT') order by _line"
        ).fetchall()
        cols = ", ".join(f"json_extract_string(line, {lit('$.' + json.dumps(h))}) as {q(h)}" for h in header)
        con.execute(
            f"""
            create temp table _rec as
            select {cols}, row_number() over (order by _line) as _record, _line
            from _lines
            where line is not null and trim(line) != '' and json_valid(line) and json_type(line::JSON) = 'OBJECT'
            """
        )
        con.execute("drop table _lines")
        return broken
    raise ValueError(fmt)


def normalise_line_endings(path: Path, tmpdir: Path) -> Path:
    """A copy with CRLF turned into LF (files mixing both defeat the strict CSV reader)."""
    out = tmpdir / (path.name + ".lf.csv")
    carry = b""
    with path.open("rb") as src, out.open("wb") as dst:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            chunk = carry + chunk
            carry = b"\r" if chunk.endswith(b"\r") else b""
            if carry:
                chunk = chunk[:-1]
            dst.write(chunk.replace(b"\r\n", b"\n"))
        dst.write(carry)
    return out


def _csv_reader_sql(source: Path, header: list[str], delimiter: str) -> str:
    # Unnamed columns (a trailing delimiter in the header) are read under a placeholder name, never kept.
    names = [h or f"__unnamed_{i}" for i, h in enumerate(header, start=1)]
    columns_sql = "{" + ", ".join(f"{lit(h)}: 'VARCHAR'" for h in names) + "}"
    # Strict mode rejects rows with too few or too many fields (never silently truncates them).
    return (
        f"read_csv({lit(source.as_posix())}, header = true, auto_detect = false, columns = {columns_sql}, "
        f"delim = {lit(delimiter)}, quote = '\"', escape = '\"', strict_mode = true, null_padding = false, "
        f"store_rejects = true, rejects_table = '_rejects', rejects_scan = '_rejects_scan', "
        f"max_line_size = 10000000, parallel = false)"
    )


def _typed_sql(fields: list[Field], cmap, from_sql: str, extra_inner: str = "", extra_outer: str = "") -> str:
    """A select typing the export's text columns once (inner), then naming each row's problems
    from the typed values (outer): `<fields>, _reason` plus the extras."""
    sources = sorted(_source_columns(fields))
    inner = ", ".join([f"{typed_expr(f)} as {q('__t_' + f.name)}" for f in fields] + [q(c) for c in sources])
    errors = [error_expr(f, q("__t_" + f.name)) for f in fields]
    if cmap is not None:
        amount = cmap.columns["line_amount" if "line_amount" in cmap.columns else "unit_price"]
        errors.append(f"case when {q(amount)} is null or trim({q(amount)}) = '' then {lit('missing ' + amount)} end")
    outer = ", ".join(f"{q('__t_' + f.name)} as {f.name}" for f in fields)
    return (
        f"select {outer}, nullif(concat_ws('; ', {', '.join(errors)}), '') as _reason{extra_outer} "
        f"from (select {inner}{extra_inner} from {from_sql})"
    )


def _with_missing_columns(from_sql: str, header: list[str], fields: list[Field]) -> str:
    """Optional columns absent from the file are read as NULL."""
    missing = sorted(_source_columns(fields) - set(header))
    if not missing:
        return from_sql
    extra = ", ".join(f"NULL::VARCHAR as {q(n)}" for n in missing)
    return f"(select *, {extra} from {from_sql})"


def record_line_offsets(path: Path) -> tuple[int, list[tuple[int, int]]]:
    """Find where each CSV record starts, by quote parity over the raw lines (no field parsing).

    Returns (number of data records, [(record, offset)]): record k (1-based; the header is record
    0) starts on physical line 1 + k + the offset of the last entry at or before k.  Offsets
    change after records with newlines inside quoted fields and after blank lines, which the
    reader skips.
    """
    records, line_no, offset, in_quote = -1, 0, 0, False
    offsets: list[tuple[int, int]] = []
    with path.open("rb") as fh:
        for raw in fh:
            line_no += 1
            if not in_quote:
                if raw.strip(b"\r\n") == b"":
                    continue
                records += 1
                if line_no - 1 - records != offset:
                    offset = line_no - 1 - records
                    offsets.append((records, offset))
            if raw.count(b'"') % 2:
                in_quote = not in_quote
    return max(records, 0), offsets


def _stage_typed_csv(con, source: Path, header: list[str], delimiter: str, fields: list[Field], cmap) -> list[tuple]:
    """Parse and type a CSV into `_typed` (with `_record` and `_line`).

    Only the columns the pipeline keeps are materialised.  Returns the rows the reader rejected
    as (physical line, raw text, reason).
    """

    kept = ", ".join(q(c) for c in sorted(_source_columns(fields) & set(header)))

    def create(src: Path) -> None:
        # The (serial) reader only parses; typing runs afterwards on all cores.  It starts from no
        # rejects (a failed first read, retried below, leaves its own).
        for t in ("_rec", "_rejects", "_rejects_scan"):
            con.execute(f"drop table if exists {t}")
        con.execute(
            f"create temp table _rec as select {kept}, row_number() over () as _record "
            f"from {_csv_reader_sql(src, header, delimiter)}"
        )

    try:
        create(source)
    except duckdb.InvalidInputException as exc:
        if "state machine" not in str(exc):
            raise IngestError(f"{source.name}: cannot be parsed as CSV: {str(exc).splitlines()[0][:200]}") from exc
        # Files mixing CRLF and LF defeat the strict reader: read a normalised copy.
        with tempfile.TemporaryDirectory(prefix="ingest_lf_") as tmp:
            try:
                create(normalise_line_endings(source, Path(tmp)))
            except duckdb.InvalidInputException as exc2:
                raise IngestError(f"{source.name}: cannot be parsed as CSV: {str(exc2).splitlines()[0][:200]}") from exc2
    con.execute(
        "create temp table _typed as "
        + _typed_sql(fields, cmap, _with_missing_columns("_rec", header, fields),
                     extra_inner=", _record", extra_outer=", _record")
    )
    con.execute("drop table _rec")

    # DuckDB reports a reject's `line` as record number + 1 (the header is line 1).
    rejects = con.execute(
        """
        select line, min(csv_line), arg_min(error_type || ': ' || error_message, coalesce(column_idx, 0))
        from _rejects group by line order by line
        """
    ).fetchall()
    reject_records = [int(r[0]) - 1 for r in rejects]
    if reject_records:
        # Rows the reader rejected are not in _typed: shift output positions back to record numbers.
        thresholds = [r - j for j, r in enumerate(reject_records, start=1)]
        con.execute("create temp table _gap (t BIGINT)")
        con.executemany("insert into _gap values (?)", [[t] for t in thresholds])
        con.execute("update _typed set _record = _record + (select count(*) from _gap g where g.t < _typed._record)")

    # Physical lines: record number + offsets from multi-line records and blank lines.
    n_records, offsets = record_line_offsets(source)
    seen = con.execute("select count(*) from _typed").fetchone()[0] + len(reject_records)
    if n_records != seen:
        raise IngestError(
            f"{source.name}: the CSV reader found {seen} records but the file's quoting implies {n_records}; "
            "check for unbalanced quotes or line breaks (CR) outside quotes"
        )
    con.execute("create temp table _nl (_record BIGINT, cum BIGINT)")
    if offsets:
        con.executemany("insert into _nl values (?, ?)", [list(o) for o in offsets])
    con.execute("alter table _typed add column _line BIGINT")
    if offsets:
        con.execute(
            """
            update _typed set _line = 1 + _typed._record + coalesce(x.cum, 0)
            from (select r._record, n.cum from _typed r asof left join _nl n on r._record >= n._record) x
            where _typed._record = x._record
            """
        )
    else:
        con.execute("update _typed set _line = _record + 1")

    out = []
    for line, raw, why in rejects:
        record = int(line) - 1
        earlier = max((off for rec, off in offsets if rec <= record), default=0)
        out.append((1 + record + earlier, raw, why))
    return out


def _type_staged(con, fields: list[Field], header: list[str], cmap) -> None:
    """Type the staged `_rec` of a non-CSV file into `_typed`."""
    con.execute(
        "create temp table _typed as "
        + _typed_sql(fields, cmap, _with_missing_columns("_rec", header, fields),
                     extra_inner=", _record, _line", extra_outer=", _record, _line")
    )


def _insert_typed(con, table: str, fields: list[Field], header: list[str], broken: list[tuple],
                  res: FileResult, run_id: str, cmap=None, raw_from_staged: bool = False) -> None:
    """Valid rows of `_typed` into the raw table, the others (and `broken`) into the quarantine."""
    if table == "shopify_order_lines":
        _complete_shopify_orders(con, fields)

    if cmap is not None:
        names = {f.name for f in fields}

        def col(n: str, default_sql: str = "NULL") -> str:
            return n if n in names else default_sql

        cancel = "false"
        conds = []
        if cmap.cancel_prefix:
            conds.append(f"starts_with(order_id, {lit(cmap.cancel_prefix)})")
        if cmap.cancel_status_values and "status" in names:
            conds.append(f"status in ({', '.join(lit(v) for v in cmap.cancel_status_values)})")
        if conds:
            cancel = "coalesce(" + " or ".join(conds) + ", false)"
        select_cols = ", ".join([
            lit(cmap.name),
            *[
                (col(n) if n not in ("currency", "channel") else
                 f"coalesce({col(n)}, {lit(cmap.defaults[n].upper() if n == 'currency' else cmap.defaults[n].lower()) if n in cmap.defaults else 'NULL'})")
                for n, _, _ in GENERIC_COLUMNS
            ],
            cancel,
        ])
        con.execute(
            f"insert into raw.{table} select {select_cols}, ?, _line, ? from _typed where _reason is null",
            [res.file_id, run_id],
        )
    else:
        cols = ", ".join(f.name for f in fields)
        con.execute(
            f"insert into raw.{table} select {cols}, ?, _line, ? from _typed where _reason is null",
            [res.file_id, run_id],
        )
    if raw_from_staged:  # the staged record as JSON (CSV rows get the file's own text afterwards)
        raw_sql = "to_json(struct_pack(" + ", ".join(f"{q(h)} := r.{q(h)}" for h in header) + "))::VARCHAR"
        from_sql = "_typed t join _rec r on r._record = t._record"
    else:
        raw_sql, from_sql = "NULL", "_typed t"
    con.execute(
        f"""
        insert into raw.quarantine
        select ?, ?, ?, t._line, t._reason, {raw_sql}, ?
        from {from_sql}
        where t._reason is not null
        """,
        [res.file_id, table, Path(res.path).name, run_id],
    )
    if broken:
        con.executemany(
            "insert into raw.quarantine values (?, ?, ?, ?, ?, ?, ?)",
            [[res.file_id, table, Path(res.path).name, line, reason, raw, run_id] for line, raw, reason in broken],
        )
    loaded, quarantined = con.execute(
        "select count(*) filter (where _reason is null), count(*) filter (where _reason is not null) from _typed"
    ).fetchone()
    res.rows_loaded = int(loaded)
    res.rows_quarantined = int(quarantined) + len(broken)
    res.rows_read = res.rows_loaded + res.rows_quarantined


def _complete_shopify_orders(con, fields: list[Field]) -> None:
    """Whole orders, never half of one.  Shopify fills an order's order-level fields on its first row;
    later rows may leave any of them blank (Currency and Created at too, in some shops' exports), and a
    blank means "the order's value".  So a required order-level value missing on a row is taken from
    the order's other rows, and an order is quarantined whole (its reason on every row) when one of its
    rows is bad, when it lacks a required order-level value on every row, when its rows carry two
    different currencies, or when no row carries its order fields (Financial Status).  Optional
    order-level fields need no filling: the models read them per order."""
    required = [f for f in fields if f.order_level and f.required]
    label = {f.name: f.source for f in required}
    aggregates = "".join(f", min({n}) as min_{n}, max({n}) as max_{n}" for n in label)
    # one aggregate over the file's orders serves every check below
    con.execute(
        f"""
        create or replace temp table _orders as
        select order_name, min(_line) filter (where _reason is not null) as first_bad_line,
               count(financial_status) as with_status{aggregates}
        from _typed where order_name is not null group by order_name
        """
    )
    if label:
        # the order's value (rows disagreeing on Created at keep their own: the models take the earliest)
        fill = ", ".join(f"{n} = coalesce(_typed.{n}, o.min_{n})" for n in label)
        blank = " or ".join(f"_typed.{n} is null" for n in label)
        con.execute(f"update _typed set {fill} from _orders o "
                    f"where o.order_name = _typed.order_name and _typed._reason is null and ({blank})")
    order = lambda text: f"{lit('order ')} || o.order_name || {lit(text)}"  # noqa: E731
    whys = [f"when o.first_bad_line is not null then {order(' has a quarantined row (line ')} "
            "|| o.first_bad_line || ')'"]
    whys += [f"when o.min_{n} is null then {order(f' has no {src} on any row')}" for n, src in label.items()]
    if "currency" in label:
        whys.append(f"when o.min_currency <> o.max_currency then {order(' has two Currency values: ')} "
                    "|| o.min_currency || ', ' || o.max_currency")
    whys.append(f"when o.with_status = 0 then {order(' has no first row with order fields (Financial Status)')}")
    why = "case " + " ".join(whys) + " end"
    con.execute(f"update _typed set _reason = {why} from _orders o "
                f"where o.order_name = _typed.order_name and _typed._reason is null and {why} is not null")
    con.execute("drop table _orders")


# ----------------------------------------------------------------------------------------------
# The whole inbox


def discover(inbox: Path) -> list[tuple[str, Path]]:
    """(folder, file) pairs in load order: folder, then modification time, then name.

    Folders are the layout folders (`shopify`, …) and `generic/<map name>`.
    """
    found: list[tuple[str, float, str, Path]] = []
    folders = sorted({lay.folder for lay in formats.LAYOUTS})
    generic = inbox / "generic"
    if generic.is_dir():
        folders += sorted(f"generic/{d.name}" for d in generic.iterdir() if d.is_dir() and not d.name.startswith("."))
    for folder in folders:
        d = inbox / folder
        if not d.is_dir():
            continue
        for p in d.iterdir():
            if p.is_file() and not p.name.startswith("."):
                found.append((folder, p.stat().st_mtime, p.name, p))
    found.sort(key=lambda t: (t[0], t[1], t[2]))
    return [(folder, p) for folder, _, _, p in found]


KNOWN_FOLDERS_TEXT = ", ".join(sorted({lay.folder for lay in formats.LAYOUTS})) + ", generic/<map name>"


def unplaced_files(inbox: Path) -> list[Path]:
    """Files under the inbox that no run loads: in the inbox itself, in a folder that is not a source
    folder (`inbox/orders/`), in a folder below a source folder (`shopify/2026/`), or in `generic/`
    itself rather than a map's folder.  Hidden files (a leading dot) are ignored everywhere."""
    placed = {inbox / folder / p.name for folder, p in discover(inbox)}
    out = []
    for p in sorted(inbox.rglob("*")):
        rel = p.relative_to(inbox)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file() or p in placed:
            continue
        out.append(p)
    return out


def ingest_inbox(con: duckdb.DuckDBPyConnection, inbox: Path, run_id: str) -> list[FileResult]:
    create_raw_tables(con)
    return [load_file(con, path, folder, run_id, display_root=inbox, data_root=inbox.parent)
            for folder, path in discover(inbox)]


def summarise(results: list[FileResult]) -> dict:
    by_status: dict[str, int] = {}
    for r in results:
        by_status[r.status] = by_status.get(r.status, 0) + 1
    return {
        "files_seen": len(results),
        "files_by_status": by_status,
        "rows_read": sum(r.rows_read for r in results),
        "rows_loaded": sum(r.rows_loaded for r in results),
        "rows_quarantined": sum(r.rows_quarantined for r in results),
        "rejected": [r.message for r in results if r.status == "rejected"],
    }
