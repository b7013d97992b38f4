"""Encoding and dialect: which text encoding a file is in, the UTF-8 copy DuckDB's reader needs, a
file's header (CSV with the map's delimiter, Parquet, XLSX, JSON lines), and where each CSV record
starts on the physical lines (quoted line breaks and blank lines move them), so a quarantined row is
named by the line a user sees in an editor.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from pathlib import Path

from dagster_project.lib.ingest.errors import IngestError

# Spreadsheet programs save "Unicode text" as UTF-16 (Excel: little-endian with a BOM); UTF-32 is rare
# but has BOMs of its own. The BOMs of UTF-32 are checked first: UTF-32-LE's starts like UTF-16-LE's.
_WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _wide_encoding(head: bytes) -> str | None:
    """UTF-16/32 from a BOM, or from the NUL bytes of mostly-ASCII text without one (a CSV's header is
    ASCII: in UTF-16-LE every odd byte is NUL, in UTF-16-BE every even one)."""
    for bom, name in _WIDE_BOMS:
        if head.startswith(bom):
            return name
    sample = head[: 4096 - 4096 % 4]
    if len(sample) < 4 or b"\x00" not in sample:
        return None
    quads = [sample[i : i + 4] for i in range(0, len(sample), 4)]
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
    return err.object[err.start : err.end].decode("latin-1"), err.end


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
        raise IngestError(
            f"{path.name}: looks like {encoding.upper()} but byte {exc.start} of a chunk does not "
            f"decode ({exc.reason}); save it as UTF-8 CSV and drop it in again"
        ) from exc
    return out


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
