"""Ingestion promises that need the marts: overlapping exports, mixed currencies, UCI Online Retail."""

import os
import time

import duckdb
import pytest

from dagster_project.cli import main
from dagster_project.lib.ingest import formats
from tests.test_ingest import shopify_rows, square_row, write_csv

pytestmark = pytest.mark.slow


def _serving(data_dir):
    return duckdb.connect(str(data_dir / "serving" / "warehouse.duckdb"), read_only=True)


def _write_overlapping_inbox(inbox):
    old = shopify_rows()
    new = [dict(r) for r in old[2:3]]  # #1002 again, now fully refunded in the newer export
    new[0].update({"Financial Status": "refunded", "Refunded Amount": "100.00"})
    write_csv(inbox / "shopify" / "orders_export_jan.csv", formats.SHOPIFY_ORDER_COLUMNS, old)
    later = time.time() + 5
    p = write_csv(inbox / "shopify" / "orders_export_feb.csv", formats.SHOPIFY_ORDER_COLUMNS, new)
    os.utime(p, (later, later))
    write_csv(
        inbox / "square" / "items-a.csv",
        formats.SQUARE_ITEMS_COLUMNS_V1,
        [square_row(**{"Transaction ID": "T1", "Gross Sales": "$20.00", "Net Sales": "$20.00"})],
    )
    p = write_csv(
        inbox / "square" / "items-b.csv",
        formats.SQUARE_ITEMS_COLUMNS_V2,
        [
            square_row(**{"Transaction ID": "T1", "Gross Sales": "$20.00", "Net Sales": "$20.00"}),
            square_row(
                **{
                    "Transaction ID": "T1",
                    "Event Type": "Refund",
                    "Qty": "-1.0",
                    "Gross Sales": "-$5.00",
                    "Net Sales": "-$5.00",
                    "Date": "2025-06-03",
                }
            ),
        ],
    )
    os.utime(p, (later, later))


def test_overlapping_exports_count_once_newest_version_wins(tmp_path):
    _write_overlapping_inbox(tmp_path / "inbox")
    assert main(["run", "--data-dir", str(tmp_path), "--as-of", "2026-03-01", "--quiet"]) == 0
    with _serving(tmp_path) as con:
        orders = {
            r[0]: r[1:]
            for r in con.execute(
                "select order_key, financial_status, net_revenue, is_valid from marts.fct_orders"
            ).fetchall()
        }
    assert set(orders) == {"shopify:#1001", "shopify:#1002", "shopify:#1003", "square:T1"}
    assert orders["shopify:#1002"][0] == "refunded" and float(orders["shopify:#1002"][1]) == 0.0
    assert float(orders["shopify:#1001"][1]) == 30.0
    assert orders["shopify:#1003"][2] is False and float(orders["shopify:#1003"][1]) == 0.0  # voided
    assert orders["square:T1"][0] == "partially_refunded" and float(orders["square:T1"][1]) == 15.0


def test_mixed_currencies_fail_the_run_clearly(tmp_path, capsys):
    _write_overlapping_inbox(tmp_path / "inbox")
    eur = [dict(r, Name="#9001", Currency="EUR") for r in shopify_rows()[:2]]
    write_csv(tmp_path / "inbox" / "shopify" / "eu_store.csv", formats.SHOPIFY_ORDER_COLUMNS, eur)
    assert main(["run", "--data-dir", str(tmp_path), "--as-of", "2026-03-01", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "assert_single_currency_per_run" in err
    assert not (tmp_path / "serving" / "warehouse.duckdb").exists()


@pytest.mark.shared_data
def test_online_retail_through_the_shipped_map(online_retail_run):
    data_dir, parquet = online_retail_run["data_dir"], online_retail_run["parquet"]
    assert online_retail_run["exit_code"] == 0
    wh = duckdb.connect(str(data_dir / "warehouse" / "pipeline.duckdb"), read_only=True)
    read, loaded, quarantined = wh.execute(
        "select rows_read, rows_loaded, rows_quarantined from raw.load_ledger where status = 'loaded'"
    ).fetchone()
    assert read == 541_909 and read == loaded + quarantined
    assert wh.execute("select count(*) from raw.generic_order_lines where is_cancellation").fetchone()[0] == 9_288
    assert wh.execute("select count(*) from raw.generic_order_lines where customer_id is null").fetchone()[0] == 135_080
    # independent sum of all line amounts = net revenue of fct_orders (nothing dropped, nothing doubled)
    raw_total = wh.execute(
        "select round(sum(round(s, 2)), 2) from (select sum(quantity * unit_price) s "
        "from raw.generic_order_lines group by order_id)"
    ).fetchone()[0]
    with _serving(data_dir) as con:
        total, anon = con.execute(
            "select sum(net_revenue), sum(net_revenue) filter (where is_anonymous) from marts.fct_orders"
        ).fetchone()
        customers = con.execute("select count(*) from marts.dim_customers where purchase_count > 0").fetchone()[0]
        cancel_docs = con.execute(
            "select count(*) from marts.fct_orders where financial_status = 'cancellation'"
        ).fetchone()[0]
        share = con.execute(
            "select anonymous_revenue_share from marts.revenue_identification where channel = 'all'"
        ).fetchone()[0]
    assert float(total) == pytest.approx(float(raw_total), abs=0.005)
    assert float(anon) > 1_000_000  # anonymous revenue is kept, not dropped
    assert share == pytest.approx(float(anon) / float(total))
    independent = duckdb.execute(
        "select count(distinct CustomerID) from (select InvoiceNo, any_value(CustomerID) CustomerID, "
        "sum(Quantity * UnitPrice) net from read_parquet(?) where CustomerID is not null group by InvoiceNo) "
        "where net > 0",
        [str(parquet)],
    ).fetchone()[0]
    assert customers == independent == 4_338  # customers with at least one positive-net invoice
    assert cancel_docs == 3_836


def test_rates_file_converts_mixed_currencies(tmp_path):
    _write_overlapping_inbox(tmp_path / "inbox")
    eur = [dict(r, Name="#9001", Currency="EUR") for r in shopify_rows()[:2]]  # 30.00 EUR on 2026-01-24
    write_csv(tmp_path / "inbox" / "shopify" / "eu_store.csv", formats.SHOPIFY_ORDER_COLUMNS, eur)
    write_csv(
        tmp_path / "inbox" / "rates" / "rates.csv",
        formats.RATES_COLUMNS,
        [
            {"date": "2025-01-01", "currency": "EUR", "rate": "1.05"},
            {"date": "2026-01-01", "currency": "EUR", "rate": "1.10"},
        ],
    )
    assert main(["run", "--data-dir", str(tmp_path), "--as-of", "2026-03-01", "--quiet"]) == 0
    with _serving(tmp_path) as con:
        row = con.execute(
            "select currency, original_currency, fx_rate, net_revenue, net_revenue_original "
            "from marts.fct_orders where order_key = 'shopify:#9001'"
        ).fetchone()
        assert row[:2] == ("USD", "EUR") and float(row[2]) == 1.10
        assert float(row[3]) == 33.0 and float(row[4]) == 30.0
        assert con.execute("select count(distinct currency) from marts.fct_orders").fetchone()[0] == 1
