"""Ingestion throughput on generated Shopify + Square exports (a benchmark, not a test).

    .venv/bin/python bench/ingest_bench.py --lines 1000000 [--work DIR] [--keep]

Generates demo exports of about --lines order lines (reused when already there), loads them into a
fresh warehouse with the pipeline's ingestion, and prints seconds, rows per second and peak memory.
"""

import argparse
import json
import resource
import shutil
import tempfile
import time
from datetime import date
from pathlib import Path

from dagster_project.lib import ingest, warehouse
from dagster_project.lib.demo.generator import generate_demo


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--work", type=Path, default=None, help="folder for the generated data (reused)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.gettempdir()) / f"ingest_bench_{args.lines}"
    marker = work / "generated.json"
    if not marker.exists():
        t0 = time.perf_counter()
        summary = generate_demo(work, target_lines=args.lines, seed=1, end_date=date(2026, 10, 31))
        summary["generate_seconds"] = round(time.perf_counter() - t0, 1)
        marker.write_text(json.dumps(summary, default=str))
    summary = json.loads(marker.read_text())
    wh = work / "warehouse" / "bench.duckdb"
    shutil.rmtree(wh.parent, ignore_errors=True)
    con = warehouse.connect(wh, temp_dir=wh.parent / "tmp")
    t0 = time.perf_counter()
    results = ingest.ingest_inbox(con, work / "inbox", "bench")
    seconds = time.perf_counter() - t0
    con.close()
    s = ingest.summarise(results)
    line_rows = sum(r.rows_read for r in results if r.layout in ("shopify_order_lines", "square_item_lines"))
    size_mb = sum(r.size_bytes for r in results) / 1e6
    out = {
        "lines_target": args.lines,
        "order_line_rows_read": line_rows,
        "all_rows_read": s["rows_read"],
        "rows_quarantined": s["rows_quarantined"],
        "input_mb": round(size_mb, 1),
        "ingest_seconds": round(seconds, 2),
        "rows_per_second": int(s["rows_read"] / seconds),
        "mb_per_second": round(size_mb / seconds, 1),
        "peak_rss_mb": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "generate_seconds": summary.get("generate_seconds"),
    }
    for k, v in out.items():
        print(f"{k:22s} {v}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
