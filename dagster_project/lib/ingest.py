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
import hashlib
import io
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from dagster_project.lib import formats
from dagster_project.lib.formats import Layout

# ----------------------------------------------------------------------------------------------
# Field specs: how each raw column is typed.  `kind` picks the parse expression; a value that is
# present but does not parse, or a required value that is missing, sends the row to quarantine.


@dataclass(frozen=True)
class Field:
    name: str  # column in the raw table
    source: str | tuple[str, ...]  # header column(s) in the export
    kind: str = "text"  # text | lower | upper | money | int | decimal | ts_offset | date | bool | enum | local_ts
    required: bool = False
    values: tuple[str, ...] = ()  # for enum


SQL_TYPES = {
    "text": "VARCHAR", "lower": "VARCHAR", "upper": "VARCHAR", "enum": "VARCHAR",
    "money": "DECIMAL(18,2)", "int": "BIGINT", "decimal": "DECIMAL(18,3)",
    "ts_offset": "TIMESTAMP", "local_ts": "TIMESTAMP", "date": "DATE", "bool": "BOOLEAN",
}

FIELDS: dict[str, list[Field]] = {
    "shopify_order_lines": [
        Field("order_name", "Name", required=True),
        Field("email", "Email"),
        Field("financial_status", "Financial Status", "enum", values=tuple(formats.SHOPIFY_FINANCIAL_STATUSES)),
        Field("paid_at", "Paid at", "ts_offset"),
        Field("fulfillment_status", "Fulfillment Status", "lower"),
        Field("accepts_marketing", "Accepts Marketing", "bool"),
        Field("currency", "Currency", "upper", required=True),
        Field("subtotal", "Subtotal", "money"),
        Field("shipping", "Shipping", "money"),
        Field("taxes", "Taxes", "money"),
        Field("total", "Total", "money"),
        Field("discount_code", "Discount Code"),
        Field("discount_amount", "Discount Amount", "money"),
        Field("created_at", "Created at", "ts_offset", required=True),
        Field("lineitem_quantity", "Lineitem quantity", "int", required=True),
        Field("lineitem_name", "Lineitem name"),
        Field("lineitem_price", "Lineitem price", "money", required=True),
        Field("lineitem_sku", "Lineitem sku"),
        Field("lineitem_discount", "Lineitem discount", "money"),
        Field("billing_phone", "Billing Phone"),
        Field("shipping_phone", "Shipping Phone"),
        Field("billing_country", "Billing Country", "upper"),
        Field("note_attributes", "Note Attributes"),
        Field("cancelled_at", "Cancelled at", "ts_offset"),
        Field("payment_method", "Payment Method"),
        Field("refunded_amount", "Refunded Amount", "money"),
        Field("shopify_order_id", "Id"),
        Field("tags", "Tags"),
        Field("source_name", "Source"),
        Field("phone", "Phone"),
    ],
    "square_item_lines": [
        Field("sold_at", ("Date", "Time", "Time Zone"), "local_ts", required=True),
        Field("local_date", "Date"),
        Field("time_zone", "Time Zone"),
        Field("category", "Category"),
        Field("item", "Item"),
        Field("qty", "Qty", "decimal", required=True),
        Field("sku", "SKU"),
        Field("gross_sales", "Gross Sales", "money", required=True),
        Field("discounts", "Discounts", "money", required=True),
        Field("net_sales", "Net Sales", "money", required=True),
        Field("tax", "Tax", "money"),
        Field("transaction_id", "Transaction ID", required=True),
        Field("payment_id", "Payment ID"),
        Field("event_type", "Event Type", "enum", required=True, values=("payment", "refund")),
        Field("location", "Location", required=True),
        Field("customer_id", "Customer ID"),
        Field("customer_reference_id", "Customer Reference ID"),
        Field("channel", "Channel"),
    ],
    "square_customers": [
        Field("square_customer_id", "Square Customer ID", required=True),
        Field("reference_id", "Reference ID"),
        Field("email", "Email Address"),
        Field("phone", "Phone Number"),
        Field("first_visit", "First Visit", "date"),
        Field("email_subscription_status", "Email Subscription Status", "lower"),
    ],
    "members": [
        Field("member_id", "member_id", required=True),
        Field("email", "email"),
        Field("phone", "phone"),
        Field("joined_on", "joined_on", "date", required=True),
        Field("plan", "plan", required=True),
        Field("annual_fee", "annual_fee", "money", required=True),
        Field("currency", "currency", "upper", required=True),
        Field("expires_on", "expires_on", "date", required=True),
        Field("renewal_count", "renewal_count", "int"),
        Field("accepts_marketing", "accepts_marketing", "bool"),
    ],
    "marketing_spend": [
        Field("month", "month", "date", required=True),
        Field("channel", "channel", "lower", required=True),
        Field("spend", "spend", "money", required=True),
        Field("currency", "currency", "upper", required=True),
    ],
    "store_traffic": [
        Field("date", "date", "date", required=True),
        Field("store", "store", required=True),
        Field("visitors", "visitors", "int", required=True),
        Field("entries", "entries", "int"),
    ],
}

LINEAGE_COLUMNS = "_file_id BIGINT, _line_number BIGINT, _run_id VARCHAR"

TS_FORMATS = "['%Y-%m-%d %H:%M:%S %z', '%Y-%m-%dT%H:%M:%S%z', '%Y-%m-%d %H:%M:%S%z']"
LOCAL_TS_FORMATS = "['%Y-%m-%d %H:%M:%S', '%m/%d/%Y %H:%M:%S', '%m/%d/%y %H:%M:%S', '%Y-%m-%d %H:%M', '%m/%d/%Y %H:%M']"
DATE_FORMATS = {"default": "['%Y-%m-%d', '%m/%d/%Y']", "month": "['%Y-%m', '%Y-%m-%d']"}


class IngestError(Exception):
    """A problem with one file, named in the message."""


@dataclass
class FileResult:
    path: str
    layout: str | None
    sha256: str
    size_bytes: int
    status: str  # loaded | empty | duplicate | rejected
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    message: str = ""
    encoding: str = "utf-8"
    file_id: int | None = None
    reasons: dict[str, int] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# SQL building blocks


def q(name: str) -> str:
    """Quote an identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _blank_to_null(col: str) -> str:
    return f"nullif(trim({q(col)}), '')"


def typed_expr(f: Field) -> str:
    """The typed value; NULL when missing or unparseable."""
    if f.kind == "local_ts":
        d, t, z = f.source
        zone = "case " + " ".join(
            f"when trim({q(z)}) = {lit(k)} then {lit(v)}" for k, v in formats.SQUARE_TIME_ZONES.items()
        ) + " end"
        local = f"try_strptime(trim({q(d)}) || ' ' || trim({q(t)}), {LOCAL_TS_FORMATS})"
        return f"(timezone({zone}, {local}))::TIMESTAMP"
    src = _blank_to_null(f.source)  # type: ignore[arg-type]
    if f.kind == "text":
        return src
    if f.kind in ("lower", "enum"):
        return f"lower({src})"
    if f.kind == "upper":
        return f"upper({src})"
    if f.kind == "money":
        # $1,234.50  -$12.00  (12.00)  12.50  -> decimal; currency symbols and separators removed
        cleaned = f"regexp_replace({src}, '[$£€\\s,]', '', 'g')"
        neg = f"regexp_matches({src}, '^\\(.*\\)$')"
        num = f"try_cast(replace(replace({cleaned}, '(', ''), ')', '') as DECIMAL(18,2))"
        return f"(case when {neg} then -{num} else {num} end)"
    if f.kind == "int":
        return f"try_cast(try_cast({src} as DECIMAL(18,3)) as BIGINT)"
    if f.kind == "decimal":
        return f"try_cast({src} as DECIMAL(18,3))"
    if f.kind == "ts_offset":
        return f"(try_strptime({src}, {TS_FORMATS}))::TIMESTAMP"
    if f.kind == "date":
        fmts = DATE_FORMATS["month"] if f.name == "month" else DATE_FORMATS["default"]
        return f"(try_strptime({src}, {fmts}))::DATE"
    if f.kind == "bool":
        return (
            f"case when lower({src}) in ('yes','true','1','y','subscribed') then true "
            f"when lower({src}) in ('no','false','0','n','unsubscribed') then false end"
        )
    raise ValueError(f"unknown field kind {f.kind}")


def error_expr(f: Field) -> str:
    """A reason string when this field makes the row invalid, else NULL."""
    label = "+".join(f.source) if isinstance(f.source, tuple) else f.source
    typed = typed_expr(f)
    if isinstance(f.source, tuple):
        present = " and ".join(f"{_blank_to_null(s)} is not null" for s in f.source)
        raw_shown = " || ' ' || ".join(f"coalesce({q(s)}, '')" for s in f.source)
    else:
        present = f"{_blank_to_null(f.source)} is not null"
        raw_shown = f"{q(f.source)}"
    checks = []
    if f.required:
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
                "date": "a date"}[f.kind]
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
            loaded_at TIMESTAMP
        )"""
    )
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


# ----------------------------------------------------------------------------------------------
# File inspection


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def detect_encoding(path: Path) -> str:
    """utf-8 (with or without BOM) when the whole file decodes as UTF-8, else windows-1252."""
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
    """Transcode a legacy single-byte encoded file to UTF-8 for DuckDB's reader."""
    out = tmpdir / (path.name + ".utf8.csv")
    with path.open("rb") as src, out.open("w", encoding="utf-8", newline="") as dst:
        for chunk in iter(lambda: src.read(1 << 20), b""):
            dst.write(chunk.decode(encoding, errors="cp1252_latin1"))
    return out


def read_header(path: Path, encoding: str) -> list[str]:
    with path.open("rb") as fh:
        head = fh.read(256 * 1024)
    text = head.decode("utf-8-sig" if encoding == "utf-8" else encoding, errors="replace")
    rows = csv.reader(io.StringIO(text))
    try:
        header = next(rows)
    except StopIteration:
        return []
    return [h.strip() for h in header]


def pick_layout(folder: str, header: list[str]) -> Layout | None:
    candidates = [lay for lay in formats.LAYOUTS if lay.folder == folder]
    for lay in candidates:
        if lay.signature in header:
            return lay
    return candidates[0] if len(candidates) == 1 else None


def header_problem(path: Path, layout: Layout | None, folder: str, header: list[str]) -> str | None:
    if not header or header == [""]:
        return None  # empty file; handled as empty
    if len(header) == 1 and any(d in header[0] for d in (";", "\t", "|")):
        delim = next(d for d in (";", "\t", "|") if d in header[0])
        return f"{path.name}: expected comma-separated columns, the header looks {delim!r}-separated"
    dupes = sorted({h for h in header if header.count(h) > 1 and h})
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


def _record_ledger(con, res: FileResult, folder: str, run_id: str) -> None:
    res.file_id = res.file_id or _next_file_id(con)
    con.execute(
        "insert into raw.load_ledger values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        [res.file_id, run_id, res.path, Path(res.path).name, folder, res.layout, res.sha256, res.size_bytes,
         res.encoding, res.status, res.rows_read, res.rows_loaded, res.rows_quarantined, res.message,
         datetime.now(timezone.utc).replace(tzinfo=None)],
    )


def _already_loaded(con, sha: str) -> str | None:
    row = con.execute(
        "select file_name from raw.load_ledger where sha256 = ? and status in ('loaded', 'empty') limit 1", [sha]
    ).fetchone()
    return row[0] if row else None


def load_file(con: duckdb.DuckDBPyConnection, path: Path, folder: str, run_id: str,
              display_root: Path | None = None) -> FileResult:
    """Load one export file into its raw table (or reject / skip it), recording it in the ledger."""
    display = str(path.relative_to(display_root)) if display_root else str(path)
    sha = sha256_of(path)
    size = path.stat().st_size
    res = FileResult(path=display, layout=None, sha256=sha, size_bytes=size, status="loaded")

    prior = _already_loaded(con, sha)
    if prior is not None:
        res.status, res.message = "duplicate", f"same content as already-loaded {prior}; not loaded again"
        _record_ledger(con, res, folder, run_id)
        return res

    if path.suffix.lower() not in (".csv", ".txt"):
        res.status, res.message = "rejected", f"{path.name}: unsupported file type {path.suffix!r} in inbox/{folder} (expected .csv)"
        _record_ledger(con, res, folder, run_id)
        return res

    if size == 0:
        res.status, res.message = "empty", "empty file"
        _record_ledger(con, res, folder, run_id)
        return res

    res.encoding = detect_encoding(path)
    header = read_header(path, res.encoding)
    layout = pick_layout(folder, header)
    res.layout = layout.name if layout else None
    problem = header_problem(path, layout, folder, header)
    if problem:
        res.status, res.message = "rejected", problem
        _record_ledger(con, res, folder, run_id)
        return res
    assert layout is not None

    with tempfile.TemporaryDirectory(prefix="ingest_") as tmp:
        source = path if res.encoding == "utf-8" else to_utf8_copy(path, res.encoding, Path(tmp))
        con.execute("begin transaction")
        try:
            res.file_id = _next_file_id(con)
            _load_rows(con, source, layout, header, res, run_id)
            res.status = "loaded" if res.rows_read else "empty"
            if not res.rows_read:
                res.message = "header only, no rows"
            _record_ledger(con, res, folder, run_id)
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
    return res


def _load_rows(con, source: Path, layout: Layout, header: list[str], res: FileResult, run_id: str) -> None:
    fields = FIELDS[layout.name]
    present = set(header)
    columns_sql = "{" + ", ".join(f"{lit(h)}: 'VARCHAR'" for h in header) + "}"
    con.execute("drop table if exists _src")
    con.execute(
        f"""
        create temp table _src as
        select row_number() over () as _out_idx, *
        from read_csv({lit(source.as_posix())}, header = true, auto_detect = false, columns = {columns_sql}, delim = ',',
                      quote = '"', escape = '"', strict_mode = false, null_padding = false,
                      store_rejects = true, rejects_table = '_rejects', rejects_scan = '_rejects_scan',
                      max_line_size = 10000000, parallel = false)
        """
    )
    rejects = con.execute(
        "select distinct line, csv_line, error_type, error_message from _rejects order by line"
    ).fetchall()

    # Map output order -> record number (records rejected by the CSV reader are not in _src).
    # DuckDB reports a reject's `line` as record number + 1 (the header is line 1).
    reject_records = sorted({int(r[0]) - 1 for r in rejects})
    thresholds = [r - j for j, r in enumerate(reject_records, start=1)]
    con.execute("drop table if exists _gap")
    con.execute("create temp table _gap (t BIGINT)")
    if thresholds:
        con.executemany("insert into _gap values (?)", [[t] for t in thresholds])

    newline_terms = " + ".join(
        f"coalesce(length({q(h)}) - length(replace({q(h)}, chr(10), '')), 0)" for h in header
    )
    # Missing optional columns are read as NULL.
    def src_col(name: str) -> str:
        return q(name) if name in present else f"NULL::VARCHAR as {q(name)}"

    needed = sorted({s for f in fields for s in (f.source if isinstance(f.source, tuple) else (f.source,))})
    missing_opt = [n for n in needed if n not in present]
    extra_cols = ", ".join(f"NULL::VARCHAR as {q(n)}" for n in missing_opt)
    con.execute("drop table if exists _rec")
    con.execute(
        f"""
        create temp table _rec as
        select s.*{', ' + extra_cols if extra_cols else ''},
               s._out_idx + (select count(*) from _gap g where g.t < s._out_idx) as _record,
               {newline_terms} as _nl
        from _src s
        """
    )
    con.execute("alter table _rec add column _line BIGINT")
    con.execute(
        """
        update _rec set _line = x.line from (
            select _record, 1 + _record + coalesce(sum(_nl) over (order by _record rows between unbounded preceding and 1 preceding), 0) as line
            from _rec
        ) x where _rec._record = x._record
        """
    )

    typed = ", ".join(f"{typed_expr(f)} as {f.name}" for f in fields)
    errors = ", ".join(error_expr(f) for f in fields)
    con.execute("drop table if exists _typed")
    con.execute(
        f"""
        create temp table _typed as
        select {typed}, _line, _record,
               nullif(concat_ws('; ', {errors}), '') as _reason,
               to_json(struct_pack({', '.join(f'{q(h)} := {q(h)}' for h in header)}))::VARCHAR as _raw
        from _rec
        """
    )
    if layout.name == "shopify_order_lines":
        # Order-level fields live on an order's first row: quarantine whole orders, never half of one.
        con.execute(
            """
            update _typed set _reason = 'order ' || _typed.order_name || ' has a quarantined row (line '
                                         || g.first_bad_line || ')'
            from (
                select order_name, min(_line) filter (where _reason is not null) as first_bad_line
                from _typed where order_name is not null group by order_name
                having count(_reason) > 0
            ) g
            where _typed.order_name = g.order_name and _typed._reason is null
            """
        )
        con.execute(
            """
            update _typed set _reason = 'order ' || _typed.order_name || ' has no first row with order fields (Financial Status)'
            from (
                select order_name from _typed where order_name is not null
                group by order_name having count(financial_status) = 0
            ) g
            where _typed.order_name = g.order_name and _typed._reason is null
            """
        )

    cols = ", ".join(f.name for f in fields)
    con.execute(
        f"insert into raw.{layout.name} select {cols}, ?, _line, ? from _typed where _reason is null",
        [res.file_id, run_id],
    )
    con.execute(
        "insert into raw.quarantine select ?, ?, ?, _line, _reason, _raw, ? from _typed where _reason is not null",
        [res.file_id, layout.name, Path(res.path).name, run_id],
    )
    # Structurally broken rows (wrong number of fields, unterminated quotes...) from the CSV reader.
    if rejects:
        # DuckDB numbers a reject by record (header = line 1); add newlines embedded in earlier records.
        con.execute(
            """
            insert into raw.quarantine
            select ?, ?, ?,
                   r.line + coalesce((select sum(_nl) from _rec where _rec._record < r.line - 1), 0),
                   r.reason, r.csv_line, ?
            from (
                select line, min(csv_line) as csv_line,
                       arg_min(error_type || ': ' || error_message, coalesce(column_idx, 0)) as reason
                from _rejects group by line
            ) r
            """,
            [res.file_id, layout.name, Path(res.path).name, run_id],
        )
    loaded, quarantined = con.execute(
        "select count(*) filter (where _reason is null), count(*) filter (where _reason is not null) from _typed"
    ).fetchone()
    res.rows_loaded = int(loaded)
    res.rows_quarantined = int(quarantined) + len(reject_records)
    res.rows_read = res.rows_loaded + res.rows_quarantined
    res.reasons = {
        r: int(n)
        for r, n in con.execute(
            "select split_part(split_part(reason, ';', 1), ':', 1), count(*) from raw.quarantine "
            "where file_id = ? group by 1 order by 2 desc, 1",
            [res.file_id],
        ).fetchall()
    }
    for t in ("_src", "_rec", "_typed", "_gap"):
        con.execute(f"drop table if exists {t}")


# ----------------------------------------------------------------------------------------------
# The whole inbox


def discover(inbox: Path) -> list[tuple[str, Path]]:
    """(folder, file) pairs in load order: folder, then modification time, then name."""
    found: list[tuple[str, float, str, Path]] = []
    for lay_folder in sorted({lay.folder for lay in formats.LAYOUTS}):
        d = inbox / lay_folder
        if not d.is_dir():
            continue
        for p in d.iterdir():
            if p.is_file() and not p.name.startswith("."):
                found.append((lay_folder, p.stat().st_mtime, p.name, p))
    found.sort(key=lambda t: (t[0], t[1], t[2]))
    return [(folder, p) for folder, _, _, p in found]


def ingest_inbox(con: duckdb.DuckDBPyConnection, inbox: Path, run_id: str) -> list[FileResult]:
    create_raw_tables(con)
    results = []
    for folder, path in discover(inbox):
        results.append(load_file(con, path, folder, run_id, display_root=inbox))
    return results


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

