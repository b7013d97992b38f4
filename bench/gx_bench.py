"""Cost of the Great Expectations mart suites at one million customers (a benchmark, not a test).

    .venv/bin/python bench/gx_bench.py [--customers 1000000]

Builds mart-shaped frames of the given size (dim_customers, customer_rfm, fct_orders at 2 orders
per customer) in DuckDB, reads them as pandas the way the checks do, validates them with the
pipeline's suites and prints seconds per suite and per million rows.
"""

import argparse
import json
import time

import duckdb

from dagster_project.lib import gx_suites, gx_validation


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    n = ap.parse_args().customers
    con = duckdb.connect()
    con.execute(f"""
        create table dim_customers as select 'c_' || lpad(i::varchar, 16, '0') as customer_key,
            (i % 7) as purchase_count, 'j***@example.com' as email_masked, '+14****34' as phone_masked,
            (i % 97) * 1.5 as net_revenue
        from range({n}) t(i)""")
    con.execute(f"""
        create table customer_rfm as select 'c_' || lpad(i::varchar, 16, '0') as customer_key,
            1 + i % 5 as r_score, 1 + (i // 5) % 5 as f_score, 1 + (i // 25) % 5 as m_score,
            i % 400 as recency_days, 1 + i % 9 as frequency, 'Loyal' as segment
        from range({n}) t(i)""")
    con.execute(f"""
        create table fct_orders as select 'shopify:#' || i::varchar as order_key,
            case when i % 2 = 0 then 'online' else 'store' end as channel,
            (i % 300) * 1.0 as gross_revenue, (i % 3) * 1.0 as refunds
        from range({2 * n}) t(i)""")
    t0 = time.perf_counter()
    gx_validation.validate("warmup", con.execute("select * from customer_rfm limit 10").df(),
                           gx_suites.mart_suites()["customer_rfm"])
    setup = time.perf_counter() - t0
    results = {"customers": n, "gx_import_and_context_seconds": round(setup, 2)}
    for table in ("dim_customers", "customer_rfm", "fct_orders"):
        t0 = time.perf_counter()
        df = con.execute(f"select * from {table}").df()
        read = time.perf_counter() - t0
        t0 = time.perf_counter()
        outcome = gx_validation.validate(table, df, gx_suites.mart_suites()[table])
        secs = time.perf_counter() - t0
        results[table] = {"rows": len(df), "read_seconds": round(read, 2), "validate_seconds": round(secs, 2),
                          "expectations": len(outcome.results), "success": outcome.success,
                          "seconds_per_million_rows": round((read + secs) / len(df) * 1e6, 2)}
        print(f"{table:15s} rows {len(df):>9,}  read {read:5.2f}s  validate {secs:5.2f}s  "
              f"({len(outcome.results)} expectations, success={outcome.success})")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
