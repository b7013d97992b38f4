"""The whole inbox: which files a run loads and in what order, which files no run loads (misplaced),
and the run's summary."""

from __future__ import annotations

from pathlib import Path

import duckdb

from dagster_project.lib.ingest import formats
from dagster_project.lib.ingest.ledger import FileResult
from dagster_project.lib.ingest.load import create_raw_tables, load_file


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
    return [
        load_file(con, path, folder, run_id, display_root=inbox, data_root=inbox.parent)
        for folder, path in discover(inbox)
    ]


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
