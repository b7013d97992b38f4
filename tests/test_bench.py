"""The benchmark's engine-limit script runs on demo exports (it is SQL in bench/, not part of the product)."""

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb

from dagster_project.lib.demo.generator import generate_demo

REPO = Path(__file__).resolve().parents[1]
END = date(2026, 10, 31)


def _bench_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("pipeline_bench", REPO / "bench" / "pipeline_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_engine_limit_script_builds_the_core_results(tmp_path):
    generate_demo(tmp_path / "data", customers=300, seed=5, end_date=END)
    db = tmp_path / "engine.duckdb"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "pipeline_bench.py"),
            "_engine",
            str(tmp_path / "data" / "inbox"),
            "2026-11-01",
            str(db),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1])["rfm_customers"] > 100
    con = duckdb.connect(str(db), read_only=True)
    try:
        tables = {r[0] for r in con.execute("select table_name from duckdb_tables()").fetchall()}
        assert {"orders", "customer_rfm"} <= tables
        # scores are 1-5 and every purchasing customer has one
        lo, hi = con.execute(
            "select min(least(r_score, f_score, m_score)), max(greatest(r_score, f_score, m_score)) from customer_rfm"
        ).fetchone()
        assert (lo, hi) == (1, 5)
    finally:
        con.close()


def test_rfm_step_alone_rebuilds_the_same_rows(demo_run, tmp_path):
    """The benchmark's standalone RFM-step timing rebuilds int_customer_order_summary and customer_rfm on
    a finished run's warehouse: node times for both, and the same rows as the run built."""
    import shutil

    bench = _bench_module()
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


def test_incremental_target_is_judged_on_the_whole_run_with_the_new_data_share_beside_it():
    """The daily-run target is judged on the whole run's wall; the ingest-identity-dbt share is shown
    beside it and cannot turn a miss into a pass."""
    bench = _bench_module()
    full = {
        "wall_seconds": 300.0,
        "peak_rss_gb": 5.0,
        "dbt_models": {},
        "stages": {"ingest": 100.0, "identity": 80.0, "dbt": 70.0, "checks": 20.0, "publish": 30.0},
    }
    daily = {
        "wall_seconds": 90.0,
        "stages": {"ingest": 5.0, "identity": 4.0, "dbt": 31.0, "checks": 10.0, "publish": 40.0},
    }
    assert bench.new_data_share(daily, full) == 40.0 / 250.0
    results = {
        "sizes": [
            {
                "lines": 10_000_000,
                "pipeline_full": full,
                "engine_limit": {"seconds": 50.0},
                "peers": None,
                "pipeline_incremental": daily,
            }
        ]
    }
    ok, text = bench.evaluate(results)["incremental"]
    assert ok is False
    assert text.startswith("30.0% of the full run") and "ingest, identity and dbt 16.0%" in text
    daily_fast = {**daily, "wall_seconds": 57.0}
    assert bench.evaluate({"sizes": [{**results["sizes"][0], "pipeline_incremental": daily_fast}]})["incremental"][0]
