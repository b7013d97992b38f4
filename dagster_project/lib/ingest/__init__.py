"""Load inbox exports into the working warehouse's `raw` schema.

Every file is recorded once in `raw.load_ledger` (by content hash, so the same file dropped twice,
renamed or not, is loaded once).  Parsing runs inside DuckDB (read_csv with every column as text,
then typed with try_* expressions), never in pandas row loops.  Each data row either lands in its
raw table, with its lineage (`_file_id`, `_line_number`), or in `raw.quarantine` with the reason;
rows read = rows loaded + rows quarantined, per file.  A file is loaded in one transaction, so a
crash leaves either all of it or none of it.

The modules, in the order a file goes through them:

- `inbox`: which files a run loads, in what order, and which it cannot place;
- `ledger`: the load ledger (seen before? same content as a loaded file?) and unloading;
- `encoding`: the file's encoding and dialect, header, and physical line of each CSV record;
- `stage`: the file read into a temporary table, every column typed;
- `typing_sql`: the SQL that types each column and names a row's problems;
- `load`: the header checks, and the rows into their raw table or the quarantine in one transaction.
"""

from dagster_project.lib.ingest.encoding import (
    detect_encoding,
    normalise_line_endings,
    raw_csv_records,
    read_source_header,
    record_line_offsets,
    to_utf8_copy,
)
from dagster_project.lib.ingest.errors import IngestError
from dagster_project.lib.ingest.formats import Field, Layout
from dagster_project.lib.ingest.inbox import KNOWN_FOLDERS_TEXT, discover, ingest_inbox, summarise, unplaced_files
from dagster_project.lib.ingest.ledger import (
    SETTLED,
    UNVALIDATED_FILES,
    FileResult,
    file_stat,
    mark_validated,
    unload_files,
)
from dagster_project.lib.ingest.load import (
    create_raw_tables,
    duplicated_columns,
    generic_header_problem,
    header_problem,
    load_file,
    pick_layout,
)
from dagster_project.lib.ingest.typing_sql import (
    FIELDS,
    GENERIC_COLUMNS,
    GENERIC_TABLE,
    LINEAGE_COLUMNS,
    SQL_TYPES,
    error_expr,
    generic_fields,
    lit,
    q,
    typed_expr,
)

__all__ = [
    "FIELDS",
    "GENERIC_COLUMNS",
    "GENERIC_TABLE",
    "KNOWN_FOLDERS_TEXT",
    "LINEAGE_COLUMNS",
    "SETTLED",
    "SQL_TYPES",
    "UNVALIDATED_FILES",
    "Field",
    "FileResult",
    "IngestError",
    "Layout",
    "create_raw_tables",
    "detect_encoding",
    "discover",
    "duplicated_columns",
    "error_expr",
    "file_stat",
    "generic_fields",
    "generic_header_problem",
    "header_problem",
    "ingest_inbox",
    "lit",
    "load_file",
    "mark_validated",
    "normalise_line_endings",
    "pick_layout",
    "q",
    "raw_csv_records",
    "read_source_header",
    "record_line_offsets",
    "summarise",
    "to_utf8_copy",
    "typed_expr",
    "unload_files",
    "unplaced_files",
]
