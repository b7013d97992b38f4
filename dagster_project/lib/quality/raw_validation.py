"""Ingestion's last step: the Great Expectations suite of each raw table over the rows not validated before.

The rows checked are those of loaded files not yet marked validated: this run's files, and files a
killed run loaded before it got this far.  A file whose rows fail is unloaded (ingest.unload_files:
out of its raw table and the quarantine, `failed_check` in the ledger with the failures), so nothing
downstream is built from it; the file stays in the inbox and the next run loads and checks it again
until it is replaced.  Files that pass are marked validated.  Each table's outcome is saved in the
run's staging folder, where the `gx_<table>` checks read it and the validation report shows it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb

from dagster_project.lib import ingest
from dagster_project.lib.quality import gx_suites, gx_validation

# Raw tables with a suite, in the order they are validated (and reported).
RAW_GX_TABLES = [
    "shopify_order_lines",
    "square_item_lines",
    "square_customers",
    "members",
    "marketing_spend",
    "store_traffic",
    "generic_order_lines",
    "exchange_rates",
    "shopify_products",
    "square_item_library",
    "product_costs",
]


@dataclass
class RawValidation:
    """One raw table's validation in this run: the GX outcome, the files validated and, when they failed,
    the files unloaded (by name)."""

    table: str
    outcome: gx_validation.Outcome
    files: list[int]
    unloaded: list[str]

    @property
    def description(self) -> str:
        failures = self.outcome.failures
        if failures:
            return (
                describe_failures(failures) + f". Not kept: {', '.join(self.unloaded)} (unloaded; fix the "
                "export and the next run loads it again)"
            )
        return "no new rows this run" if not self.files else "all expectations met"

    def as_dict(self) -> dict:
        return {
            "table": self.table,
            "success": self.outcome.success,
            "rows": self.outcome.rows,
            "expectations": len(self.outcome.results),
            "results": self.outcome.results,
            "files": self.files,
            "unloaded": self.unloaded,
            "description": self.description,
        }


def describe_failures(failures: list[dict]) -> str:
    return "; ".join(
        f"{f['expectation']}({f.get('column') or ''}): "
        + (
            f"could not be evaluated: {f['error']}"
            if f.get("error")
            else f"{f['unexpected_count']} rows, e.g. {f.get('sample', [])}"
        )
        for f in failures
    )


def suite_name(table: str) -> str:
    return f"raw.{table}"


def validate_new_rows(con: duckdb.DuckDBPyConnection, table: str) -> RawValidation:
    """Validate the table's rows of files not validated before; unload the files if they fail, else mark
    them validated."""
    files = [
        r[0]
        for r in con.execute(
            f"select distinct _file_id from raw.{table} where _file_id in ({ingest.UNVALIDATED_FILES}) order by 1"
        ).fetchall()
    ]
    if not files:
        # no new rows: no suite, nor the GX import (~5 s, which then finishes in the background)
        outcome = gx_validation.Outcome(suite=suite_name(table), success=True, rows=0, results=[])
        return RawValidation(table, outcome, [], [])
    suite = gx_suites.raw_suites()[table]
    # only the columns the suite looks at leave DuckDB (a wide table at 10M rows is gigabytes in pandas)
    columns = ", ".join(f'"{c}"' for c in gx_suites.columns_of(suite))
    ids = ", ".join(map(str, files))
    df = con.execute(f"select {columns} from raw.{table} where _file_id in ({ids})").df()
    outcome = gx_validation.validate(suite_name(table), df, suite)
    del df
    unloaded: list[str] = []
    if outcome.failures:
        unloaded = [
            r[0]
            for r in con.execute(
                f"select file_name from raw.load_ledger where file_id in ({ids}) order by file_id"
            ).fetchall()
        ]
        ingest.unload_files(con, table, files, f"failed gx_{table}: {describe_failures(outcome.failures)}")
    else:
        ingest.mark_validated(con, files)
    return RawValidation(table, outcome, files, unloaded)


def validate_raw_tables(con: duckdb.DuckDBPyConnection, folder: Path) -> list[RawValidation]:
    """Every raw table's new rows (see validate_new_rows), each outcome saved in `folder` for the report
    (gx_validation.save) and for the `gx_<table>` checks (result_path)."""
    done = []
    for table in RAW_GX_TABLES:
        v = validate_new_rows(con, table)
        gx_validation.save(v.outcome, folder)
        result_path(folder, table).write_text(json.dumps(v.as_dict(), default=str), encoding="utf-8")
        done.append(v)
    return done


def result_path(folder: Path, table: str) -> Path:
    """Where validate_raw_tables leaves a table's result for its check (beside the report's outcomes,
    not a *.json the report reads)."""
    return folder / f"{suite_name(table)}.check"


def load_result(folder: Path, table: str) -> dict | None:
    path = result_path(folder, table)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
