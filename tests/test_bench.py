"""The benchmark's engine-limit script runs on demo exports (it is SQL in bench/, not part of the product)."""

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb

from dagster_project.lib.demo import generate_demo

REPO = Path(__file__).resolve().parents[1]
END = date(2026, 10, 31)


def test_engine_limit_script_builds_the_core_results(tmp_path):
    generate_demo(tmp_path / "data", customers=300, seed=5, end_date=END)
    db = tmp_path / "engine.duckdb"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "pipeline_bench.py"), "_engine",
                           str(tmp_path / "data" / "inbox"), "2026-11-01", str(db)],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["rfm_customers"] > 100
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
        assert {"orders", "customer_rfm"} <= tables
        # scores are 1-5 and every purchasing customer has one
        lo, hi = con.execute("select min(least(r_score, f_score, m_score)), "
                             "max(greatest(r_score, f_score, m_score)) from customer_rfm").fetchone()
        assert (lo, hi) == (1, 5)
    finally:
        con.close()


def test_rfm_step_alone_rebuilds_the_same_rows(demo_run, tmp_path):
    """The benchmark's standalone RFM-step timing rebuilds int_customer_order_summary and customer_rfm on
    a finished run's warehouse: node times for both, and the same rows as the run built."""
    import importlib.util
    import shutil

    import duckdb

    spec = importlib.util.spec_from_file_location("pipeline_bench", REPO / "bench" / "pipeline_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    wh = tmp_path / "warehouse" / "pipeline.duckdb"
    wh.parent.mkdir()
    shutil.copyfile(demo_run["data_dir"] / "warehouse" / "pipeline.duckdb", wh)

    def rows():
        with duckdb.connect(str(wh), read_only=True) as con:
            return con.execute("select * from marts.customer_rfm order by customer_key").fetchall()

    before = rows()
    out = bench.rfm_step_alone(tmp_path, repeats=1)
    assert len(out["runs"]) == 1 and out["seconds"] > 0
    assert rows() == before and len(before) > 100
