"""Staging: one export file read into the temporary table `_typed`, every column typed
(`typing_sql`), each row with `_record` (its 1-based record number) and `_line` (the physical line, or
JSON line, spreadsheet row or Parquet row, where it starts) and `_reason` (NULL, or why it is
quarantined).  CSV goes through DuckDB's strict reader, whose rejected rows come back with their lines;
Parquet, XLSX and JSON lines are staged as text first.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import duckdb

from dagster_project.lib.ingest.encoding import normalise_line_endings, record_line_offsets
from dagster_project.lib.ingest.errors import IngestError
from dagster_project.lib.ingest.formats import Field
from dagster_project.lib.ingest.typing_sql import lit, q, source_columns, typed_sql, with_missing_columns


def csv_reader_sql(source: Path, header: list[str], delimiter: str) -> str:
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


def stage_csv(con, source: Path, header: list[str], delimiter: str, fields: list[Field], cmap) -> list[tuple]:
    """Parse and type a CSV into `_typed` (with `_record` and `_line`).

    Only the columns the pipeline keeps are materialised.  Returns the rows the reader rejected
    as (physical line, raw text, reason).
    """

    kept = ", ".join(q(c) for c in sorted(source_columns(fields) & set(header)))

    def create(src: Path) -> None:
        # The (serial) reader only parses; typing runs afterwards on all cores.  It starts from no
        # rejects (a failed first read, retried below, leaves its own).
        for t in ("_rec", "_rejects", "_rejects_scan"):
            con.execute(f"drop table if exists {t}")
        con.execute(
            f"create temp table _rec as select {kept}, row_number() over () as _record "
            f"from {csv_reader_sql(src, header, delimiter)}"
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
                raise IngestError(
                    f"{source.name}: cannot be parsed as CSV: {str(exc2).splitlines()[0][:200]}"
                ) from exc2
    con.execute(
        "create temp table _typed as "
        + typed_sql(
            fields, cmap, with_missing_columns("_rec", header, fields), extra_inner=", _record", extra_outer=", _record"
        )
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


def stage_file(con, source: Path, fmt: str, header: list[str]) -> list[tuple]:
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
                for h, v in zip(header, list(row) + [None] * (len(header) - len(row)), strict=False):
                    data[h].append(None if v is None else (v.isoformat(sep=" ") if hasattr(v, "isoformat") else str(v)))
                lines.append(i)
        finally:
            wb.close()
        tbl = pa.table(
            {
                **{h: pa.array(data[h], pa.string()) for h in header},
                "_record": pa.array(range(1, len(lines) + 1), pa.int64()),
                "_line": pa.array(lines, pa.int64()),
            }
        )
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


def type_staged(con, fields: list[Field], header: list[str], cmap) -> None:
    """Type the staged `_rec` of a non-CSV file into `_typed`."""
    con.execute(
        "create temp table _typed as "
        + typed_sql(
            fields,
            cmap,
            with_missing_columns("_rec", header, fields),
            extra_inner=", _record, _line",
            extra_outer=", _record, _line",
        )
    )


def drop_temp_tables(con) -> None:
    # _rejects/_rejects_scan too: DuckDB keeps a reader's rejects when the file is given up after its
    # read, and the next file's read appended to them, so one bad file made every later one look
    # miscounted and be rejected
    for t in ("_src", "_rec", "_typed", "_gap", "_lines", "_nl", "_texts", "_rejects", "_rejects_scan"):
        con.execute(f"drop table if exists {t}")
