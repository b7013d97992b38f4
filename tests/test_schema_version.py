"""One schema version for the working warehouse: a run on a warehouse of another release (or of a release
from before versions were recorded) stops before it loads or publishes anything and says to run with
--full-refresh, which rebuilds the warehouse from the inbox."""

import os
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

from dagster_project.cli import main
from dagster_project.lib import warehouse
from dagster_project.lib.demo.generator import generate_demo
from dagster_project.lib.paths import DBT_PROJECT_DIR, DataPaths


def _version_error(con, path) -> str:
    with pytest.raises(warehouse.WarehouseVersionError) as err:
        warehouse.check_schema_version(con, path, path.parent.parent)
    return str(err.value)


def test_a_new_warehouse_records_the_version_and_another_version_is_refused(tmp_path):
    path = tmp_path / "warehouse" / "pipeline.duckdb"
    con = warehouse.connect(path)
    try:
        warehouse.check_schema_version(con, path, tmp_path)
        assert con.execute(f"select version from {warehouse.VERSION_TABLE}").fetchall() == [(warehouse.SCHEMA_VERSION,)]
        warehouse.check_schema_version(con, path, tmp_path)  # the same version: the run goes on
        con.execute("create table raw.load_ledger (file_id bigint)")
        for stored in (warehouse.SCHEMA_VERSION - 1, warehouse.SCHEMA_VERSION + 1):
            con.execute(f"update {warehouse.VERSION_TABLE} set version = ?", [stored])
            msg = _version_error(con, path)
            assert (
                f"the working warehouse {path} has schema version {stored}; this release of the pipeline "
                f"needs schema version {warehouse.SCHEMA_VERSION}"
            ) in msg
            assert f"python -m dagster_project run --full-refresh --data-dir {tmp_path}" in msg
        # made by a release from before versions were recorded: tables, no version
        con.execute(f"drop table {warehouse.VERSION_TABLE}")
        msg = _version_error(con, path)
        assert f"the working warehouse {path} has no schema version" in msg and "--full-refresh" in msg
        assert not warehouse.table_exists(con, *warehouse.VERSION_TABLE.split("."))  # not written over data
    finally:
        con.close()


def test_set_aside_moves_the_warehouse_and_refuses_while_it_is_held(tmp_path):
    path = tmp_path / "pipeline.duckdb"
    assert warehouse.set_aside(path) is None
    with duckdb.connect(str(path)) as con:
        con.execute("create table t as select 1 as x")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, time; "
            f"c = duckdb.connect({str(path)!r}, read_only=True); "
            "print('open', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(ValueError, match=f"cannot set the working warehouse .* aside: .*PID {holder.pid}"):
            warehouse.set_aside(path)
    finally:
        holder.kill()
        holder.wait()
    assert path.exists()
    (tmp_path / "pipeline.duckdb.before-full-refresh").write_text("an older one: replaced")
    aside = warehouse.set_aside(path)
    assert aside == tmp_path / "pipeline.duckdb.before-full-refresh" and not path.exists()
    with duckdb.connect(str(aside), read_only=True) as c:
        assert c.execute("select x from t").fetchall() == [(1,)]


LAYOUT_FILE = Path(__file__).with_name("warehouse_layout.txt")


def _kept_tables_layout(db: Path) -> str:
    """The columns (in order, with types) of the tables a run keeps and builds on: every raw and identity
    table, the CLV model's outputs (clv.model_fits is a kept history; both are dbt sources), and the models
    that are incremental on DuckDB (the rest are rebuilt whole by every run)."""
    incremental = sorted(
        p.stem
        for p in (DBT_PROJECT_DIR / "models").rglob("*.sql")
        if "materialized=incremental_if_supported()" in p.read_text(encoding="utf-8")
    )
    with duckdb.connect(str(db), read_only=True) as c:
        rows = c.execute(
            "select schema_name, table_name, string_agg(column_name || ' ' || data_type, ', ' order by column_index) "
            "from duckdb_columns() where schema_name in ('raw', 'identity', 'clv') or table_name in "
            f"({', '.join('?' for _ in incremental)}) group by all order by 1, 2",
            incremental,
        ).fetchall()
    return "".join(f"{s}.{t}: {cols}\n" for s, t, cols in rows)


@pytest.mark.slow
def test_the_kept_tables_have_the_layout_recorded_for_this_schema_version(demo_run):
    """A change to a table a run keeps (a column added, removed, renamed or retyped) must come with a new
    SCHEMA_VERSION, or an existing warehouse would meet code that expects another layout. After such a
    change: raise SCHEMA_VERSION in dagster_project/lib/warehouse.py when a release has shipped with the
    recorded layout, and rewrite the file with UPDATE_WAREHOUSE_LAYOUT=1."""
    assert demo_run["result"].success
    layout = _kept_tables_layout(DataPaths.of(demo_run["data_dir"]).warehouse)
    header = f"# schema version {warehouse.SCHEMA_VERSION}: the tables a run keeps (tests/test_schema_version.py)\n"
    if os.environ.get("UPDATE_WAREHOUSE_LAYOUT"):
        LAYOUT_FILE.write_text(header + layout, encoding="utf-8")
    recorded = LAYOUT_FILE.read_text(encoding="utf-8")
    assert recorded.startswith(header), (
        f"SCHEMA_VERSION is {warehouse.SCHEMA_VERSION} but {LAYOUT_FILE.name} records the layout of another "
        "version: rewrite it with UPDATE_WAREHOUSE_LAYOUT=1"
    )
    assert recorded == header + layout, (
        f"the tables a run keeps changed, and {LAYOUT_FILE.name} records version {warehouse.SCHEMA_VERSION} "
        "with the old layout: raise SCHEMA_VERSION (dagster_project/lib/warehouse.py) when a release has shipped "
        "with it, then rewrite the file with UPDATE_WAREHOUSE_LAYOUT=1"
    )


@pytest.mark.slow
def test_a_warehouse_of_another_version_fails_the_run_and_a_full_refresh_rebuilds_it(tmp_path, capsys):
    data_dir = tmp_path / "d"
    generate_demo(data_dir, customers=150, seed=5, end_date=date(2026, 10, 31))
    paths = DataPaths.of(data_dir)
    assert main(["run", "--data-dir", str(data_dir), "--as-of", "2026-11-01", "--quiet"]) == 0
    capsys.readouterr()
    published = {p: p.read_bytes() for p in (paths.serving_warehouse, paths.exports / "latest" / "manifest.json")}
    with duckdb.connect(str(paths.warehouse), read_only=True) as c:
        ledger = c.execute("select count(*) from raw.load_ledger").fetchone()[0]
    # a file the failed runs must not load
    late = data_dir / "inbox" / "shopify" / "late.csv"
    shutil.copy(next((data_dir / "inbox" / "shopify").glob("orders_export_*.csv")), late)
    late.write_text(late.read_text(encoding="utf-8").replace("#10", "#90"), encoding="utf-8")

    def fails(stored_version) -> str:
        with duckdb.connect(str(paths.warehouse)) as c:
            if stored_version is None:
                c.execute(f"drop table if exists {warehouse.VERSION_TABLE}")
            else:
                c.execute(f"update {warehouse.VERSION_TABLE} set version = ?", [stored_version])
        assert main(["run", "--data-dir", str(data_dir), "--as-of", "2026-11-02", "--quiet"]) == 1
        err = capsys.readouterr().err
        line = next(line for line in err.splitlines() if "step raw_exports failed" in line)
        assert f"the working warehouse {paths.warehouse} has" in line
        assert f"needs schema version {warehouse.SCHEMA_VERSION}" in line
        assert f"`python -m dagster_project run --full-refresh --data-dir {paths.root}`" in line
        # nothing loaded, nothing published
        with duckdb.connect(str(paths.warehouse), read_only=True) as c:
            assert c.execute("select count(*) from raw.load_ledger").fetchone()[0] == ledger
        assert {p: p.read_bytes() for p in published} == published
        assert not (paths.exports / "2026-11-02").exists()
        return line

    assert f"has schema version {warehouse.SCHEMA_VERSION - 1}; " in fails(warehouse.SCHEMA_VERSION - 1)
    assert "has no schema version" in fails(None)  # a warehouse from before versions were recorded

    # the inbox lost a file the old warehouse had loaded: the full refresh says its rows are not rebuilt
    gone = next((data_dir / "inbox" / "traffic").glob("*.csv"))
    gone.rename(tmp_path / gone.name)
    assert main(["run", "--data-dir", str(data_dir), "--as-of", "2026-11-02", "--quiet", "--full-refresh"]) == 0
    out = capsys.readouterr().out
    aside = paths.warehouse.with_name("pipeline.duckdb.before-full-refresh")
    assert f"the working warehouse is set aside as {aside}" in out and aside.exists()
    assert re.search(
        r"warning: 1 file\(s\) the old warehouse had loaded are no longer in the inbox, .*: "
        rf"traffic/{re.escape(gone.name)} \(put them back",
        out,
    ), out
    assert (paths.exports / "2026-11-02" / "manifest.json").exists()
    with duckdb.connect(str(paths.warehouse), read_only=True) as c:
        assert c.execute(f"select version from {warehouse.VERSION_TABLE}").fetchall() == [(warehouse.SCHEMA_VERSION,)]
        loaded = {r[0] for r in c.execute("select path from raw.load_ledger where status = 'loaded'").fetchall()}
    assert "shopify/late.csv" in loaded and f"traffic/{gone.name}" not in loaded
