"""Load and quarantine: one export file into its raw table, each row either loaded with its lineage
(`_file_id`, `_line_number`) or set aside in `raw.quarantine` with the reason, in one transaction
with the file's ledger row, so a crash leaves all of the file or none of it, and rows read = rows
loaded + rows quarantined.  A file whose header is wrong is rejected whole, with a message naming it.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb

from dagster_project.lib.files import sha256_of
from dagster_project.lib.ingest import formats, ledger
from dagster_project.lib.ingest.encoding import detect_encoding, raw_csv_records, read_source_header, to_utf8_copy
from dagster_project.lib.ingest.errors import IngestError
from dagster_project.lib.ingest.formats import Field, Layout
from dagster_project.lib.ingest.ledger import SETTLED, FileResult, already_loaded, file_stat, known_file, next_file_id
from dagster_project.lib.ingest.stage import drop_temp_tables, stage_csv, stage_file, type_staged
from dagster_project.lib.ingest.typing_sql import (
    FIELDS,
    GENERIC_COLUMNS,
    GENERIC_TABLE,
    LINEAGE_COLUMNS,
    SQL_TYPES,
    generic_fields,
    lit,
    q,
)


def create_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The `raw` schema: the load ledger, the quarantine and a table per layout (and one for generic
    exports), each raw table with the lineage columns."""
    con.execute("create schema if not exists raw")
    ledger.create_ledger(con)
    con.execute(
        """
        create table if not exists raw.quarantine (
            file_id BIGINT, layout VARCHAR, file_name VARCHAR, line_number BIGINT, reason VARCHAR,
            raw_record VARCHAR, run_id VARCHAR
        )"""
    )
    for layout, fields in FIELDS.items():
        cols = ", ".join(f"{f.name} {SQL_TYPES[f.kind]}" for f in fields)
        if formats.layout(layout).file_date:
            cols += f", {formats.layout(layout).file_date} DATE"
        con.execute(f"create table if not exists raw.{layout} ({cols}, {LINEAGE_COLUMNS})")
    cols = ", ".join(f"{n} {SQL_TYPES[k]}" for n, k, _ in GENERIC_COLUMNS)
    con.execute(
        f"create table if not exists raw.{GENERIC_TABLE} (map_name VARCHAR, {cols}, is_cancellation BOOLEAN, "
        f"{LINEAGE_COLUMNS})"
    )


def pick_layout(folder: str, header: list[str]) -> Layout | None:
    candidates = [lay for lay in formats.LAYOUTS if lay.folder == folder]
    for lay in candidates:
        if lay.signature in header:
            return lay
    if len(candidates) == 1:
        return candidates[0]
    # No signature column: the layout sharing the most columns with the file, so that an orders export
    # missing some columns is told which ones (not that it matches nothing); none when nothing is shared
    # or two layouts share as many.
    shared = sorted(((len(set(lay.columns) & set(header)), i) for i, lay in enumerate(candidates)), reverse=True)
    if shared and shared[0][0] > 0 and (len(shared) == 1 or shared[0][0] > shared[1][0]):
        return candidates[shared[0][1]]
    return None


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


def load_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    folder: str,
    run_id: str,
    display_root: Path | None = None,
    data_root: Path | None = None,
) -> FileResult:
    """Load one export file into its raw table (or reject / skip it), recording it in the ledger.

    `folder` is the inbox sub-folder (`shopify`, …) or `generic/<map name>`.
    """
    display = str(path.relative_to(display_root)) if display_root else str(path)
    st = path.stat()
    stat = file_stat(st)
    sha, status = known_file(con, display, stat)
    if status in SETTLED:
        return FileResult(
            path=display,
            layout=None,
            sha256=sha,
            size_bytes=st.st_size,
            status="unchanged",
            file_stat=stat,
            message=f"unchanged since an earlier run recorded it as {status}",
        )
    sha = sha or sha256_of(path)
    res = FileResult(path=display, layout=None, sha256=sha, size_bytes=st.st_size, status="loaded", file_stat=stat)

    def finish(status: str, message: str) -> FileResult:
        res.status, res.message = status, message
        ledger.record_ledger(con, res, folder, run_id)
        return res

    prior = already_loaded(con, sha)
    if prior is not None:
        return finish("duplicate", f"same content as already-loaded {prior}; not loaded again")
    if st.st_size == 0:
        return finish("empty", "empty file")

    cmap = None
    if folder.startswith("generic/"):
        from dagster_project.lib.ingest import maps

        try:
            cmap = maps.load_map(folder.split("/", 1)[1], data_root)
        except maps.MapError as exc:
            return finish("rejected", f"{path.name}: {exc}")
        fmt = maps.FORMATS.get(path.suffix.lower())
        if fmt is None:
            return finish(
                "rejected",
                f"{path.name}: unsupported file type {path.suffix!r} in inbox/{folder} "
                f"(expected one of {sorted(maps.FORMATS)})",
            )
        res.layout = GENERIC_TABLE
    else:
        fmt = "csv"
        if path.suffix.lower() not in (".csv", ".txt"):
            return finish(
                "rejected", f"{path.name}: unsupported file type {path.suffix!r} in inbox/{folder} (expected .csv)"
            )

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
                rejects = stage_csv(con, source, header, delimiter, fields, cmap)
            else:
                rejects = stage_file(con, source, fmt, header)
                type_staged(con, fields, header, cmap)
        except (IngestError, duckdb.Error) as exc:
            drop_temp_tables(con)
            msg = (
                str(exc)
                if isinstance(exc, IngestError)
                else f"{path.name}: cannot be read as {fmt}: {str(exc).splitlines()[0][:200]}"
            )
            return finish("rejected", msg)
        con.execute("begin transaction")
        try:
            res.file_id = next_file_id(con)
            # the file's own date (UTC), for layouts whose rows carry none (a snapshot such as a products export)
            file_date = datetime.fromtimestamp(st.st_mtime, UTC).date()
            _insert_typed(
                con,
                table,
                fields,
                header,
                rejects,
                res,
                run_id,
                cmap,
                raw_from_staged=fmt != "csv",
                file_date=file_date,
            )
            if fmt == "csv" and res.rows_quarantined > len(rejects):
                _attach_raw_text(con, source, res.file_id)
            res.status = "loaded" if res.rows_read else "empty"
            if not res.rows_read:
                res.message = "header only, no rows"
            ledger.record_ledger(con, res, folder, run_id)
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
        finally:
            drop_temp_tables(con)
    return res


def _insert_typed(
    con,
    table: str,
    fields: list[Field],
    header: list[str],
    broken: list[tuple],
    res: FileResult,
    run_id: str,
    cmap=None,
    raw_from_staged: bool = False,
    file_date: date | None = None,
) -> None:
    """Valid rows of `_typed` into the raw table, the others (and `broken`) into the quarantine."""
    if table == "shopify_order_lines":
        _complete_shopify_orders(con, fields)
    layout = formats.layout(table) if cmap is None else None
    if layout is not None and layout.one_value_per:
        _quarantine_conflicting_values(con, layout, {f.name: f for f in fields})

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
        select_cols = ", ".join(
            [
                lit(cmap.name),
                *[
                    (
                        col(n)
                        if n not in ("currency", "channel")
                        else f"coalesce({col(n)}, {lit(cmap.defaults[n].upper() if n == 'currency' else cmap.defaults[n].lower()) if n in cmap.defaults else 'NULL'})"  # noqa: E501 (SQL or printed text)
                    )
                    for n, _, _ in GENERIC_COLUMNS
                ],
                cancel,
            ]
        )
        con.execute(
            f"insert into raw.{table} select {select_cols}, ?, _line, ? from _typed where _reason is null",
            [res.file_id, run_id],
        )
    else:
        cols = ", ".join(f.name for f in fields)
        params: list = [res.file_id, run_id]
        if layout is not None and layout.file_date:
            cols += ", ?::DATE"
            params = [file_date, *params]
        con.execute(f"insert into raw.{table} select {cols}, ?, _line, ? from _typed where _reason is null", params)
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
        con.execute(
            f"update _typed set {fill} from _orders o "
            f"where o.order_name = _typed.order_name and _typed._reason is null and ({blank})"
        )
    order = lambda text: f"{lit('order ')} || o.order_name || {lit(text)}"  # noqa: E731
    whys = [
        f"when o.first_bad_line is not null then {order(' has a quarantined row (line ')} || o.first_bad_line || ')'"
    ]
    whys += [f"when o.min_{n} is null then {order(f' has no {src} on any row')}" for n, src in label.items()]
    if "currency" in label:
        whys.append(
            f"when o.min_currency <> o.max_currency then {order(' has two Currency values: ')} "
            "|| o.min_currency || ', ' || o.max_currency"
        )
    whys.append(f"when o.with_status = 0 then {order(' has no first row with order fields (Financial Status)')}")
    why = "case " + " ".join(whys) + " end"
    con.execute(
        f"update _typed set _reason = {why} from _orders o "
        f"where o.order_name = _typed.order_name and _typed._reason is null and {why} is not null"
    )
    con.execute("drop table _orders")


def _quarantine_conflicting_values(con, layout: Layout, fields: dict[str, Field]) -> None:
    """A key (a SKU) with two different values (unit costs) on one date in one file is ambiguous:
    every row of it is quarantined, naming the column and the lines that disagree.  The date is the
    layout's date column, or the file's own date (then: once per file)."""
    key, value, day = layout.one_value_per  # type: ignore[misc]
    group = f"{key}, {day}" if day else key
    label, column = fields[value].source, fields[key].source
    on_day = f"{lit(' on ')} || strftime(c.{day}, '%Y-%m-%d')" if day else lit(" in this file")
    why = (
        f"{lit(f'{column} ')} || c.{key} || {lit(f' has two different {label} values')} || {on_day} "
        f"|| {lit(' (lines ')} || c.lines || ')'"
    )
    join = " and ".join([f"c.{key} = _typed.{key}"] + ([f"c.{day} = _typed.{day}"] if day else []))
    con.execute(
        f"""
        update _typed set _reason = {why}
        from (
            select {group}, string_agg(cast(_line as varchar), ', ' order by _line) as lines
            from _typed where _reason is null and {key} is not null and {value} is not null
            group by {group} having count(distinct {value}) > 1
        ) c
        where {join} and _typed._reason is null and _typed.{value} is not null
        """
    )


def _attach_raw_text(con, source: Path, file_id: int) -> None:
    """Quarantined CSV rows keep the file's own text (all fields, as written)."""
    starts = [int(r[0]) for r in con.execute("select _line from _typed where _reason is not null").fetchall()]
    texts = raw_csv_records(source, starts)
    if not texts:
        return
    # one update joined to the texts (an update per row scanned the quarantine table once per row: 0.2-0.5 s
    # for a daily Shopify file with a thousand quarantined rows)
    con.execute(
        "create or replace temp table _texts as "
        "select unnest(?::BIGINT[]) as line_number, unnest(?::VARCHAR[]) as raw_record",
        [list(texts), list(texts.values())],
    )
    con.execute(
        "update raw.quarantine set raw_record = _texts.raw_record from _texts "
        "where raw.quarantine.file_id = ? and raw.quarantine.line_number = _texts.line_number",
        [file_id],
    )
