"""Product costs and gross margin (issue 30, points 1 and 2).

- Bad cost rows (missing SKU, negative or non-numeric cost, one SKU with two costs on one date) are
  quarantined with the file, line and column, from each of the three cost layouts.
- Snapshot exports (Shopify products, Square item library) hold from the file's modification date.
- On real data, UCI Online Retail as of 2011-12-10 with a cost map the test writes (real orders,
  stated synthetic costs: a cost change on a date, a first cost later than the SKU's first orders, a
  cost in a currency without rates, SKUs without cost): every order's product cost, margin and cost
  coverage, each customer's margin LTV and coverage, and the channel economics' margin LTV are
  recomputed from the raw invoice lines in plain pandas.
- On the demo run: each Shopify order's product cost recomputed from the orders export and the
  generator's stated costs (the Coffee price rise applies from the second products export's date).
"""

from __future__ import annotations

import csv
import io
import os
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml

from dagster_project.lib import ingest
from dagster_project.lib.ingest import formats

_VARS = yaml.safe_load((Path(__file__).parents[1] / "dbt" / "dbt_project.yml").read_text())["vars"]
DEFAULT_RATE = _VARS["default_gross_margin_rate"]["default"]


def _write(path: Path, header: list[str], rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, header, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c, "") for c in header})
    path.write_text(buf.getvalue(), encoding="utf-8")
    return path


def _load(tmp_path: Path, folder: str, path: Path):
    con = duckdb.connect()
    ingest.create_raw_tables(con)
    res = ingest.load_file(con, path, folder, "run-1", display_root=tmp_path / "inbox")
    quarantine = con.execute(
        "select file_name, line_number, reason from raw.quarantine order by line_number"
    ).fetchall()
    return con, res, quarantine


# ------------------------------------------------------------------------------------------------
# Ingestion: bad cost rows and snapshot dates
# ------------------------------------------------------------------------------------------------


def test_bad_cost_map_rows_are_quarantined_with_file_line_and_column(tmp_path):
    path = _write(
        tmp_path / "inbox" / "costs" / "supplier_prices.csv",
        formats.PRODUCT_COSTS_COLUMNS,
        [
            {"sku": "A1", "unit_cost": "2.50", "currency": "USD", "valid_from": "2026-01-01"},  # line 2: fine
            {"sku": "", "unit_cost": "1.00", "currency": "USD", "valid_from": "2026-01-01"},  # 3: no SKU
            {"sku": "B1", "unit_cost": "-0.40", "currency": "USD", "valid_from": "2026-01-01"},  # 4: negative
            {"sku": "C1", "unit_cost": "n/a", "currency": "USD", "valid_from": "2026-01-01"},  # 5: not a number
            {"sku": "D1", "unit_cost": "3.00", "currency": "USD", "valid_from": "2026-02-01"},  # 6: two costs
            {"sku": "D1", "unit_cost": "3.10", "currency": "USD", "valid_from": "2026-02-01"},  # 7: on one date
            {"sku": "D1", "unit_cost": "3.20", "currency": "USD", "valid_from": "2026-03-01"},  # 8: a later date
            {"sku": "E1", "unit_cost": "4.00", "currency": "USD", "valid_from": "2026-01-01"},  # 9: same cost
            {"sku": "E1", "unit_cost": "4.00", "currency": "USD", "valid_from": "2026-01-01"},  # 10: twice is fine
            {"sku": "F1", "unit_cost": "", "currency": "USD", "valid_from": "2026-01-01"},  # 11: no cost
        ],
    )
    con, res, quarantine = _load(tmp_path, "costs", path)
    assert res.status == "loaded" and res.layout == "product_costs"
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (10, 4, 6)
    assert quarantine == [
        ("supplier_prices.csv", 3, "missing sku"),
        ("supplier_prices.csv", 4, "negative unit_cost: '-0.40'"),
        ("supplier_prices.csv", 5, "bad unit_cost: expected an amount, got 'n/a'"),
        ("supplier_prices.csv", 6, "sku D1 has two different unit_cost values on 2026-02-01 (lines 6, 7)"),
        ("supplier_prices.csv", 7, "sku D1 has two different unit_cost values on 2026-02-01 (lines 6, 7)"),
        ("supplier_prices.csv", 11, "missing unit_cost"),
    ]
    loaded = con.execute("select sku, unit_cost, valid_from from raw.product_costs order by _line_number").fetchall()
    assert [(s, float(c), d.isoformat()) for s, c, d in loaded] == [
        ("A1", 2.5, "2026-01-01"),
        ("D1", 3.2, "2026-03-01"),
        ("E1", 4.0, "2026-01-01"),
        ("E1", 4.0, "2026-01-01"),
    ]


def test_shopify_products_export_costs_hold_from_the_file_date(tmp_path):
    """The export's real header; a variant without SKU and a negative cost are quarantined, a blank
    cost is loaded as no cost, the same SKU twice with two costs in one file is ambiguous."""
    path = _write(
        tmp_path / "inbox" / "shopify" / "products_export_1.csv",
        formats.SHOPIFY_PRODUCTS_COLUMNS,
        [
            {"Handle": "mug", "Title": "Mug", "Variant SKU": "MUG-1", "Cost per item": "4.10"},  # 2
            {"Handle": "mug", "Variant SKU": "MUG-2", "Cost per item": ""},  # 3: no cost entered
            {"Handle": "mug", "Image Src": "https://cdn.example.com/mug-2.jpg"},  # 4: an image row
            {"Handle": "tee", "Title": "Tee", "Variant SKU": "TEE-1", "Cost per item": "-1.00"},  # 5
            {"Handle": "cap", "Title": "Cap", "Variant SKU": "CAP-1", "Cost per item": "5.00"},  # 6
            {"Handle": "cap-2", "Title": "Cap", "Variant SKU": "CAP-1", "Cost per item": "5.50"},  # 7
        ],
    )
    day = datetime(2026, 3, 14, 9, tzinfo=UTC).timestamp()
    os.utime(path, (day, day))
    con, res, quarantine = _load(tmp_path, "shopify", path)
    assert res.layout == "shopify_products"
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (6, 2, 4)
    assert [(line, why) for _, line, why in quarantine] == [
        (4, "missing Variant SKU"),
        (5, "negative Cost per item: '-1.00'"),
        (6, "Variant SKU CAP-1 has two different Cost per item values in this file (lines 6, 7)"),
        (7, "Variant SKU CAP-1 has two different Cost per item values in this file (lines 6, 7)"),
    ]
    rows = con.execute("select sku, unit_cost, valid_from from raw.shopify_products order by sku").fetchall()
    assert [(s, None if c is None else float(c), d) for s, c, d in rows] == [
        ("MUG-1", 4.1, date(2026, 3, 14)),
        ("MUG-2", None, date(2026, 3, 14)),
    ]


def test_square_item_library_with_location_columns(tmp_path):
    """Square's library export adds per-location columns after Default Vendor Code: read as extra."""
    header = formats.SQUARE_ITEM_LIBRARY_COLUMNS + ["Current Quantity Main St", "New Quantity Main St"]
    path = _write(
        tmp_path / "inbox" / "square" / "library.csv",
        header,
        [
            {
                "Token": "T1",
                "Item Name": "Beans",
                "SKU": "BEAN-1",
                "Default Unit Cost": "$6.25",
                "Current Quantity Main St": "4",
            },
            {"Token": "T2", "Item Name": "Cup", "SKU": "", "Default Unit Cost": "1.00"},
            {"Token": "T3", "Item Name": "Bag", "SKU": "BAG-1", "Default Unit Cost": "twelve"},
        ],
    )
    con, res, quarantine = _load(tmp_path, "square", path)
    assert res.layout == "square_item_library"
    assert [(line, why) for _, line, why in quarantine] == [
        (3, "missing SKU"),
        (4, "bad Default Unit Cost: expected an amount, got 'twelve'"),
    ]
    assert con.execute("select sku, unit_cost from raw.square_item_library").fetchall()[0][0] == "BEAN-1"
    assert float(con.execute("select unit_cost from raw.square_item_library").fetchone()[0]) == 6.25


# ------------------------------------------------------------------------------------------------
# UCI Online Retail with a stated cost map
# ------------------------------------------------------------------------------------------------

CHANGE_DAY = date(2011, 7, 1)
LATE_FIRST_DAY = date(2011, 3, 1)


def _uci_cost_map(parquet: Path) -> pd.DataFrame:
    """Stated synthetic costs for the real StockCodes, by their position in sorted order:
    position % 4 == 3: no cost; % 5 == 0: 60% of the median price, 75% from CHANGE_DAY; % 7 == 1:
    a first cost only from LATE_FIRST_DAY (it also covers the SKU's earlier orders); % 11 == 2: a
    cost in EUR, a currency without rates (unknown); otherwise 55% of the median price from the
    first day of the data."""
    df = pd.read_parquet(parquet, columns=["StockCode", "UnitPrice"])
    df["StockCode"] = df["StockCode"].str.strip()
    median = df[df["UnitPrice"] > 0].groupby("StockCode")["UnitPrice"].median().sort_index()
    rows = []
    for i, (sku, price) in enumerate(median.items()):
        if i % 4 == 3:
            continue
        cost = round(float(price) * 0.55, 2)
        if i % 5 == 0:
            rows.append((sku, round(float(price) * 0.60, 2), "GBP", date(2010, 12, 1)))
            rows.append((sku, round(float(price) * 0.75, 2), "GBP", CHANGE_DAY))
        elif i % 7 == 1:
            rows.append((sku, cost, "GBP", LATE_FIRST_DAY))
        elif i % 11 == 2:
            rows.append((sku, cost, "EUR", date(2010, 12, 1)))
        else:
            rows.append((sku, cost, "GBP", date(2010, 12, 1)))
    return pd.DataFrame(rows, columns=["sku", "unit_cost", "currency", "valid_from"])


@pytest.fixture(scope="module")
def uci_costs_run(shared_data, tmp_path_factory):
    from dagster_project.cli import main

    data_dir = tmp_path_factory.mktemp("online_retail_costs")
    inbox = data_dir / "inbox"
    (inbox / "generic" / "online_retail").mkdir(parents=True)
    parquet = shared_data / "online_retail" / "online_retail.parquet"
    (inbox / "generic" / "online_retail" / "online_retail.parquet").symlink_to(parquet)
    costs = _uci_cost_map(parquet)
    bad = [  # appended after the good rows: lines n+2 .. n+4
        {"sku": "", "unit_cost": "1.00", "currency": "GBP", "valid_from": "2011-01-01"},
        {"sku": "85123A", "unit_cost": "-1", "currency": "GBP", "valid_from": "2011-01-01"},
        {"sku": "85123A", "unit_cost": "1,5x", "currency": "GBP", "valid_from": "2011-01-01"},
    ]
    good = [
        {"sku": s, "unit_cost": f"{c:.2f}", "currency": cur, "valid_from": d.isoformat()}
        for s, c, cur, d in costs.itertuples(index=False)
    ]
    _write(inbox / "costs" / "uci_costs.csv", formats.PRODUCT_COSTS_COLUMNS, good + bad)
    code = main(["run", "--data-dir", str(data_dir), "--as-of", "2011-12-10", "--quiet"])
    return {"data_dir": data_dir, "exit_code": code, "parquet": parquet, "costs": costs, "good_rows": len(good)}


def _serving(run) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(run["data_dir"] / "serving" / "warehouse.duckdb"), read_only=True)


def _half_away(units: np.ndarray, divisor: int) -> np.ndarray:
    """Integer units divided by ``divisor``, rounded half away from zero (as a decimal cast rounds)."""
    return np.sign(units) * ((np.abs(units) + divisor // 2) // divisor)


def _expected_uci_orders(run, with_change: bool = True) -> pd.DataFrame:
    """Per invoice, from the raw lines and the stated costs, in exact integer units (1/10,000 of a
    pound, the warehouse's line precision): goods value, costed value, known and estimated product
    cost, and the published (pence) net revenue, product cost and gross margin.  ``with_change``
    False prices every line at its SKU's first cost (to show that the change moves the figures)."""
    df = pd.read_parquet(run["parquet"])
    local = pd.to_datetime(df["InvoiceDate"]).dt.tz_localize(
        "Europe/London", ambiguous="NaT", nonexistent="shift_forward"
    )
    df["ts"] = local.dt.tz_convert("UTC").dt.tz_localize(None)
    df["sku"] = df["StockCode"].str.strip()
    df["value4"] = np.round(df["UnitPrice"].to_numpy() * 10_000).astype("int64") * df["Quantity"].to_numpy()
    df["order_day"] = df.groupby("InvoiceNo")["ts"].transform("min").dt.normalize().astype("datetime64[ns]")
    costs = run["costs"]
    costs = costs[costs["currency"] == "GBP"].copy()  # EUR: no rates, so no known cost
    costs["valid_from"] = pd.to_datetime(costs["valid_from"]).astype("datetime64[ns]")
    costs["cost4"] = np.round(costs["unit_cost"].to_numpy() * 10_000).astype("int64")
    first = costs.sort_values("valid_from").groupby("sku")["cost4"].first()
    if with_change:
        # the latest cost on or before the order day; before a SKU's first cost, that first cost
        df = df.sort_values("order_day")
        on_day = pd.merge_asof(
            df.reset_index(),
            costs.sort_values("valid_from")[["sku", "valid_from", "cost4"]],
            left_on="order_day",
            right_on="valid_from",
            by="sku",
        ).set_index("index")["cost4"]
        df["cost4"] = on_day.fillna(df["sku"].map(first))
    else:
        df["cost4"] = df["sku"].map(first)
    known = df["cost4"].notna().to_numpy()
    sign = np.where(df["value4"] < 0, -1, 1)
    cost4 = df["cost4"].fillna(0).astype("int64").to_numpy()
    df["known4"] = np.where(known, sign * df["Quantity"].abs().to_numpy() * cost4, 0)
    # value × (1 − rate) at five decimals (the rate has one), summed, then cast to four
    rate10 = round(DEFAULT_RATE * 10)
    df["estimated5"] = np.where(known, 0, df["value4"] * (10 - rate10))
    df["goods4"] = df["value4"].abs()
    df["costed4"] = np.where(known, df["goods4"], 0)
    out = df.groupby("InvoiceNo")[["value4", "goods4", "costed4", "known4", "estimated5"]].sum()
    out["estimated4"] = _half_away(out["estimated5"].to_numpy(), 10)
    out["net_pence"] = _half_away(out["value4"].to_numpy(), 100)
    out["cost_pence"] = _half_away((out["known4"] + out["estimated4"]).to_numpy(), 100)
    out["estimated_pence"] = _half_away(out["estimated4"].to_numpy(), 100)
    out["goods_pence"] = _half_away(out["goods4"].to_numpy(), 100)
    out["costed_pence"] = _half_away(out["costed4"].to_numpy(), 100)
    out["margin_pence"] = out["net_pence"] - out["cost_pence"]
    return out


@pytest.mark.shared_data
@pytest.mark.slow
def test_uci_bad_cost_rows_are_quarantined_and_the_rest_loaded(uci_costs_run):
    assert uci_costs_run["exit_code"] == 0
    n = uci_costs_run["good_rows"]
    con = duckdb.connect(str(uci_costs_run["data_dir"] / "warehouse" / "pipeline.duckdb"), read_only=True)
    try:
        rows = con.execute(
            "select line_number, reason from raw.quarantine where file_name = 'uci_costs.csv' order by line_number"
        ).fetchall()
        loaded = con.execute("select count(*) from raw.product_costs").fetchone()[0]
    finally:
        con.close()
    assert rows == [
        (n + 2, "missing sku"),
        (n + 3, "negative unit_cost: '-1'"),
        (n + 4, "bad unit_cost: expected an amount, got '1,5x'"),
    ]
    assert loaded == n


@pytest.mark.shared_data
@pytest.mark.slow
def test_uci_order_margins_recomputed_in_pandas(uci_costs_run):
    assert uci_costs_run["exit_code"] == 0
    expected = _expected_uci_orders(uci_costs_run)
    con = _serving(uci_costs_run)
    try:
        got = con.execute(
            "select source_order_id, net_revenue, product_cost, product_cost_estimated, gross_margin, goods_value,"
            " costed_goods_value, margin_cost_coverage from marts.fct_orders where not is_cancelled"
        ).df()
    finally:
        con.close()
    got = got.set_index("source_order_id")
    pence = {c: np.round(got[c].astype(float).to_numpy() * 100).astype("int64") for c in got.columns[:-1]}
    both = expected.loc[got.index]
    assert len(got) > 20_000  # every published invoice has its recomputation (.loc raises otherwise)
    assert (pence["net_revenue"] == both["net_pence"].to_numpy()).all()
    assert (pence["goods_value"] == both["goods_pence"].to_numpy()).all()
    assert (pence["costed_goods_value"] == both["costed_pence"].to_numpy()).all()
    assert (pence["product_cost_estimated"] == both["estimated_pence"].to_numpy()).all()
    assert (pence["product_cost"] == both["cost_pence"].to_numpy()).all()
    assert (pence["gross_margin"] == both["margin_pence"].to_numpy()).all()
    coverage = both["costed4"] / both["goods4"].where(both["goods4"] > 0)
    assert np.allclose(got["margin_cost_coverage"].fillna(-1), coverage.fillna(-1).to_numpy(), atol=1e-9)
    # the stated costs reach the figures: part of the value is costed, part falls back to the default
    share = both["costed4"].sum() / both["goods4"].sum()
    assert 0.4 < share < 0.9, share
    # the cost changes on CHANGE_DAY move the figures: priced at first costs only, many orders differ
    unchanged = _expected_uci_orders(uci_costs_run, with_change=False).loc[got.index]
    assert (unchanged["cost_pence"] != both["cost_pence"]).sum() > 1_000


@pytest.mark.shared_data
@pytest.mark.slow
def test_uci_customer_margin_ltv_and_channel_margin_recomputed_in_pandas(uci_costs_run):
    assert uci_costs_run["exit_code"] == 0
    expected = _expected_uci_orders(uci_costs_run)
    con = _serving(uci_costs_run)
    try:
        orders = con.execute(
            "select source_order_id, customer_key, order_date from marts.fct_orders"
            " where customer_key is not null and is_valid"
        ).df()
        ltv = con.execute(
            "select customer_key, historical_ltv, gross_margin, gross_margin_rate, margin_cost_coverage"
            " from marts.customer_ltv"
        ).df()
        customers = con.execute(
            "select customer_key, acquisition_channel, first_purchase_date, is_left_censored"
            " from marts.dim_customers where purchase_count > 0"
        ).df()
        economics = con.execute(
            "select channel, acquisition_month, new_customers, margin_ltv_12m, margin_cost_coverage"
            " from marts.channel_economics where new_customers > 0"
        ).df()
    finally:
        con.close()
    orders = orders.join(expected, on="source_order_id")
    orders["margin"] = orders["margin_pence"] / 100
    per_customer = orders.groupby("customer_key").agg(
        margin_pence=("margin_pence", "sum"), goods=("goods4", "sum"), costed=("costed4", "sum")
    )
    both = ltv.set_index("customer_key").join(per_customer, how="left")
    assert len(both) > 4_000 and both["margin_pence"].notna().all()
    assert (np.round(both["gross_margin"].astype(float) * 100).astype("int64") == both["margin_pence"]).all()
    revenue = both["historical_ltv"].astype(float)
    rate = (both["margin_pence"] / 100) / revenue.where(revenue != 0)
    assert np.allclose(both["gross_margin_rate"].fillna(-9), rate.fillna(-9), atol=1e-9)
    coverage = both["costed"] / both["goods"].where(both["goods"] > 0)
    assert np.allclose(both["margin_cost_coverage"].fillna(-1), coverage.fillna(-1), atol=1e-9)

    # channel economics: each acquisition month's margin LTV over its new customers' first 365 days
    new = customers[~customers["is_left_censored"]].copy()
    new["month"] = pd.to_datetime(new["first_purchase_date"]).dt.to_period("M").dt.to_timestamp()
    window = orders.merge(new, on="customer_key")
    days = (pd.to_datetime(window["order_date"]) - pd.to_datetime(window["first_purchase_date"])).dt.days
    window = window[(days >= 0) & (days < 365)]
    per_month = window.groupby(["acquisition_channel", "month"]).agg(
        margin=("margin", "sum"), goods=("goods4", "sum"), costed=("costed4", "sum")
    )
    counts = new.groupby(["acquisition_channel", "month"]).size().rename("n")
    per_month = per_month.join(counts)
    eco = economics.set_index(["channel", pd.to_datetime(economics["acquisition_month"])])
    eco.index.names = ["acquisition_channel", "month"]
    joined = eco.join(per_month, how="left")
    assert len(joined) >= 8 and (joined["new_customers"] == joined["n"]).all()
    assert np.allclose(joined["margin_ltv_12m"].astype(float), joined["margin"] / joined["n"], atol=0.0051)
    assert np.allclose(joined["margin_cost_coverage"], joined["costed"] / joined["goods"], atol=1e-6)


# ------------------------------------------------------------------------------------------------
# The demo run
# ------------------------------------------------------------------------------------------------


def _money(text: pd.Series) -> pd.Series:
    return pd.to_numeric(text.str.replace(r"[$,]", "", regex=True), errors="coerce")


@pytest.mark.slow
def test_demo_shopify_order_costs_follow_the_products_exports(demo_run):
    """The demo's two Shopify products exports (the second, half-way through the history, with the
    Coffee costs risen) and its SKUs without cost, recomputed per Shopify order from the orders
    export and the generator's stated costs."""
    from dagster_project.lib.demo import generator

    assert demo_run["result"].success
    data_dir = demo_run["data_dir"]
    inbox = data_dir / "inbox" / "shopify"
    rise_day = datetime.fromtimestamp((inbox / "products_export_2.csv").stat().st_mtime, UTC).date()
    start_day = datetime.fromtimestamp((inbox / "products_export_1.csv").stat().st_mtime, UTC).date()
    assert start_day.isoformat() == demo_run["summary"]["start_date"] and start_day < rise_day
    lines = pd.concat(
        pd.read_csv(p, dtype=str, keep_default_na=False) for p in sorted(inbox.glob("orders_export_*.csv"))
    )
    lines["qty"] = pd.to_numeric(lines["Lineitem quantity"], errors="coerce")
    lines["value"] = lines["qty"] * _money(lines["Lineitem price"])
    by_sku = {p.sku: p for p in generator.CATALOGUE}
    con = duckdb.connect(str(data_dir / "serving" / "warehouse.duckdb"), read_only=True)
    try:
        orders = con.execute(
            "select source_order_id, order_date, product_cost, goods_value, costed_goods_value from marts.fct_orders"
            " where source = 'shopify' and not is_cancelled"
        ).df()
    finally:
        con.close()
    lines = lines.merge(orders[["source_order_id", "order_date"]], left_on="Name", right_on="source_order_id")

    risen = pd.to_datetime(lines["order_date"]) >= pd.Timestamp(rise_day)

    def unit_cost(sku: str, after_rise: bool) -> float:
        product = by_sku.get(sku)
        cents = None if product is None else generator.demo_unit_cost_cents(product, after_rise)
        return np.nan if cents is None else cents / 100

    lines["unit_cost"] = [unit_cost(sku, r) for sku, r in zip(lines["Lineitem sku"], risen, strict=True)]
    known = lines["unit_cost"].notna()
    lines["cost"] = np.where(known, lines["qty"] * lines["unit_cost"], lines["value"] * (1 - DEFAULT_RATE))
    lines["costed"] = np.where(known, lines["value"].abs(), 0.0)
    want = lines.groupby("Name").agg(cost=("cost", "sum"), goods=("value", "sum"), costed=("costed", "sum"))
    got = orders.set_index("source_order_id").join(want, how="inner")
    assert len(got) == len(orders) > 500
    assert np.allclose(got["product_cost"].astype(float), got["cost"], atol=0.011)
    assert np.allclose(got["goods_value"].astype(float), got["goods"], atol=0.011)
    assert np.allclose(got["costed_goods_value"].astype(float), got["costed"], atol=0.011)
    # both sides of the price rise and some SKUs without cost are in the data
    coffee = lines["Lineitem sku"].str.startswith("COF") & known
    assert (coffee & ~risen).any() and (coffee & risen).any()
    assert 0.5 < got["costed_goods_value"].sum() / got["goods_value"].sum() < 1
