"""Moving data between the DuckDB working warehouse and a Spark target (dbt target `spark`).

On the Spark target, dbt reads the raw layer as Parquet files and writes its tables as Parquet
under the Spark warehouse folder:

    <data>/warehouse/raw_parquet/<schema>/<table>/data.parquet   raw.*, identity.*, clv.*, activation.* (written here)
    <data>/warehouse/spark/<schema>.db/<table>/*.parquet          dbt models built by Spark

`export_raw_parquet` writes the first (what ingestion, identity and the CLV model wrote into DuckDB);
`import_spark_tables` reads the second back into DuckDB, so checks, the CLV model and publishing
work unchanged whichever engine transformed.  DuckDB reads every file Spark writes, and Spark
every file DuckDB writes: timestamps are written as UTC instants (Parquet `isAdjustedToUTC`),
which Spark reads as its TIMESTAMP type with the session time zone UTC.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb

# The schemas dbt reads as sources (dbt/models/staging/*/_*__sources.yml).
RAW_SCHEMAS = ("raw", "identity", "clv", "activation")
# working tables that are no dbt source: not written for Spark (the normalisation cache and the identifier
# roots are millions of rows)
NOT_SOURCES = {
    ("identity", "normalised_values"),
    ("identity", "node_roots"),
    ("identity", "resolution_state"),
    ("identity", "record_hashes"),
    ("identity", "node_records"),
    ("identity", "blocked_record_nodes"),
    ("activation", "holdout_salt"),
}
# The schemas dbt writes tables to (views are not materialised in files and are skipped).
MODEL_SCHEMAS = ("intermediate", "marts")


def raw_parquet_dir(data_root: Path) -> Path:
    return data_root / "warehouse" / "raw_parquet"


def spark_warehouse_dir(data_root: Path) -> Path:
    return data_root / "warehouse" / "spark"


def spark_env(data_root: Path) -> dict[str, str]:
    """Environment the `spark` profile in dbt/profiles.yml reads (absolute paths)."""
    return {
        "PIPELINE_RAW_PARQUET_DIR": str(raw_parquet_dir(data_root).resolve()),
        "PIPELINE_SPARK_WAREHOUSE": str(spark_warehouse_dir(data_root).resolve()),
    }


def _tables(con: duckdb.DuckDBPyConnection, schemas: tuple[str, ...]) -> list[tuple[str, str]]:
    marks = ", ".join("?" for _ in schemas)
    return [
        (s, t)
        for s, t in con.execute(
            f"select schema_name, table_name from duckdb_tables() where schema_name in ({marks}) order by 1, 2",
            list(schemas),
        ).fetchall()
    ]


def _timestamps_as_utc(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> str:
    """Select list writing naive (UTC) timestamps as UTC instants, so Spark reads TIMESTAMP, not TIMESTAMP_NTZ."""
    cols = con.execute(
        "select column_name, data_type from information_schema.columns"
        " where table_schema = ? and table_name = ? order by ordinal_position",
        [schema, table],
    ).fetchall()
    out = []
    for name, dtype in cols:
        q = '"' + name.replace('"', '""') + '"'
        out.append(f"timezone('UTC', {q}) as {q}" if dtype == "TIMESTAMP" else q)
    return ", ".join(out)


def export_raw_parquet(con: duckdb.DuckDBPyConnection, data_root: Path) -> dict[str, int]:
    """Write every raw, identity and clv table (dbt sources) as `<raw_parquet>/<schema>/<table>/data.parquet`;
    returns rows per table.

    The folder is rebuilt beside the old one and swapped in, so a reader never sees half of it.
    """
    dest = raw_parquet_dir(data_root)
    tmp = dest.with_name(dest.name + ".new")
    shutil.rmtree(tmp, ignore_errors=True)
    rows: dict[str, int] = {}
    for schema, table in _tables(con, RAW_SCHEMAS):
        if (schema, table) in NOT_SOURCES:
            continue
        folder = tmp / schema / table
        folder.mkdir(parents=True)
        path = (folder / "data.parquet").as_posix().replace("'", "''")
        con.execute(
            f'copy (select {_timestamps_as_utc(con, schema, table)} from "{schema}"."{table}") '
            f"to '{path}' (format parquet)"
        )
        rows[f"{schema}.{table}"] = con.execute(f'select count(*) from "{schema}"."{table}"').fetchone()[0]
    old = dest.with_name(dest.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
    return rows


def import_spark_tables(con: duckdb.DuckDBPyConnection, data_root: Path) -> dict[str, int]:
    """Replace DuckDB's intermediate/marts tables with the Parquet tables Spark built; returns rows per table."""
    base = spark_warehouse_dir(data_root)
    rows: dict[str, int] = {}
    for schema in MODEL_SCHEMAS:
        folder = base / f"{schema}.db"
        if not folder.is_dir():
            continue
        con.execute(f'create schema if not exists "{schema}"')
        for table_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            files = sorted(table_dir.glob("*.parquet"))
            if not files:
                continue
            pattern = (table_dir / "*.parquet").as_posix().replace("'", "''")
            name = table_dir.name
            scan = f"read_parquet('{pattern}')"
            # Spark writes TIMESTAMP as a UTC instant; the DuckDB models keep naive UTC timestamps.
            cols = [
                ('"' + c.replace('"', '""') + '"', t)
                for c, t in con.execute(
                    f"select column_name, column_type from (describe select * from {scan})"
                ).fetchall()
            ]
            select = ", ".join(
                f"timezone('UTC', {c}) as {c}" if t == "TIMESTAMP WITH TIME ZONE" else c for c, t in cols
            )
            is_view = con.execute(
                "select count(*) from duckdb_views() where schema_name = ? and view_name = ?", [schema, name]
            ).fetchone()[0]
            if is_view:
                con.execute(f'drop view "{schema}"."{name}"')
            con.execute(f'create or replace table "{schema}"."{name}" as select {select} from {scan}')
            rows[f"{schema}.{name}"] = con.execute(f'select count(*) from "{schema}"."{name}"').fetchone()[0]
    return rows
