"""Ingestion of each export format, with small fixture files written by the tests."""

import csv
import io
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from dagster_project.lib import ingest, warehouse
from dagster_project.lib.ingest import formats


def write_csv(path: Path, columns: list[str], rows: list[dict], encoding="utf-8", bom=False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.DictWriter(buf, columns, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: r.get(c, "") for c in columns})
    data = buf.getvalue().encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def shopify_rows():
    """Three orders: #1001 two lines (order fields on the first only, a note with a newline),
    #1002 partially refunded, #1003 voided."""
    return [
        {
            "Name": "#1001",
            "Email": "a@ex.com",
            "Financial Status": "paid",
            "Created at": "2026-01-24 17:34:28 +0500",
            "Currency": "USD",
            "Subtotal": "30.00",
            "Total": "33.00",
            "Discount Amount": "0.00",
            "Refunded Amount": "0.00",
            "Lineitem quantity": "1",
            "Lineitem price": "10.00",
            "Notes": "leave at door,\nring twice",
            "Accepts Marketing": "yes",
        },
        {
            "Name": "#1001",
            "Email": "a@ex.com",
            "Created at": "2026-01-24 17:34:28 +0500",
            "Currency": "USD",
            "Lineitem quantity": "2",
            "Lineitem price": "10.00",
        },
        {
            "Name": "#1002",
            "Email": "",
            "Phone": "+1 415-263-0134",
            "Financial Status": "partially_refunded",
            "Created at": "2026-02-01 09:00:00 -0800",
            "Currency": "USD",
            "Subtotal": "100.00",
            "Total": "100.00",
            "Discount Amount": "0.00",
            "Refunded Amount": "30.00",
            "Lineitem quantity": "1",
            "Lineitem price": "100.00",
        },
        {
            "Name": "#1003",
            "Email": "c@ex.com",
            "Financial Status": "voided",
            "Cancelled at": "2026-02-03 10:00:00 +0000",
            "Created at": "2026-02-02 10:00:00 +0000",
            "Currency": "USD",
            "Subtotal": "50.00",
            "Total": "50.00",
            "Discount Amount": "0.00",
            "Refunded Amount": "0.00",
            "Lineitem quantity": "1",
            "Lineitem price": "50.00",
        },
    ]


def square_row(**kw):
    base = {
        "Date": "2025-06-01",
        "Time": "12:00:00",
        "Time Zone": "Eastern Time (US & Canada)",
        "Qty": "1.0",
        "Gross Sales": "$9.00",
        "Discounts": "$0.00",
        "Net Sales": "$9.00",
        "Tax": "$0.72",
        "Transaction ID": "T1",
        "Payment ID": "P1",
        "Event Type": "Payment",
        "Location": "Brooklyn",
    }
    base.update(kw)
    return base


@pytest.fixture
def con(tmp_path):
    c = warehouse.connect(tmp_path / "w.duckdb")
    yield c
    c.close()


def ingest_dir(con, inbox, run="r1"):
    return {r.path: r for r in ingest.ingest_inbox(con, inbox, run)}


def test_shopify_order_fields_offsets_statuses_and_multiline_notes(con, tmp_path):
    inbox = tmp_path / "inbox"
    write_csv(inbox / "shopify" / "orders_export_1.csv", formats.SHOPIFY_ORDER_COLUMNS, shopify_rows())
    res = ingest_dir(con, inbox)["shopify/orders_export_1.csv"]
    assert (res.status, res.rows_read, res.rows_loaded, res.rows_quarantined) == ("loaded", 4, 4, 0)
    rows = con.execute(
        "select order_name, created_at, financial_status, refunded_amount, _line_number "
        "from raw.shopify_order_lines order by _line_number"
    ).fetchall()
    # +0500 -> UTC; the second line of #1001 starts on physical line 4 (the note spans lines 2-3)
    assert rows[0][1] == datetime(2026, 1, 24, 12, 34, 28)
    assert [r[4] for r in rows] == [2, 4, 5, 6]
    assert rows[1][2] is None  # order fields only on the first row
    assert rows[2][1] == datetime(2026, 2, 1, 17, 0, 0) and float(rows[2][3]) == 30.0
    assert rows[3][2] == "voided"


def test_malformed_rows_quarantined_with_line_and_reason_whole_order(con, tmp_path):
    inbox = tmp_path / "inbox"
    rows = shopify_rows()
    rows[0]["Created at"] = "not a date"  # first row of #1001 bad -> both lines of #1001 quarantined
    rows[2]["Refunded Amount"] = "thirty"
    write_csv(inbox / "shopify" / "x.csv", formats.SHOPIFY_ORDER_COLUMNS, rows)
    res = ingest_dir(con, inbox)["shopify/x.csv"]
    assert res.rows_read == res.rows_loaded + res.rows_quarantined == 4
    assert res.rows_loaded == 1  # only #1003
    q = con.execute("select line_number, reason, raw_record from raw.quarantine order by line_number").fetchall()
    assert [r[0] for r in q] == [2, 4, 5]
    assert "bad Created at" in q[0][1] and "not a date" in q[0][1]
    assert "order #1001 has a quarantined row (line 2)" in q[1][1]
    assert "bad Refunded Amount" in q[2][1]
    assert q[2][2].startswith("#1002,,") and ",thirty," in q[2][2]  # the row as written in the file
    assert q[0][2].count("\n") == 1  # the multi-line first row of #1001 is kept whole


def _later_line(name: str, qty: str, price: str, **kw) -> dict:
    """A later row of a multi-line order as some shops' exports write it: the order's Name and the line
    item only, every order-level field blank (Email, Currency and Created at included)."""
    return {"Name": name, "Lineitem quantity": qty, "Lineitem price": price, "Lineitem name": "item", **kw}


def _first_line(name: str, **kw) -> dict:
    row = {
        "Name": name,
        "Email": f"{name[1:]}@ex.com",
        "Financial Status": "paid",
        "Currency": "BDT",
        "Created at": "2026-03-02 14:00:00 +0600",
        "Subtotal": "0.00",
        "Total": "0.00",
        "Discount Amount": "0.00",
        "Refunded Amount": "0.00",
        "Lineitem quantity": "1",
        "Lineitem price": "100.00",
        "Lineitem name": "item",
        "Billing Phone": "+880 01712-345678",
        "Payment Method": "Cash on Delivery (COD)",
    }
    row.update(kw)
    return row


def test_later_rows_take_blank_order_level_fields_from_their_order(con, tmp_path):
    inbox = tmp_path / "inbox"
    rows = [
        _first_line("#2001"),
        _later_line("#2001", "2", "50.00"),
        _later_line("#2001", "1", "25.00"),
        # the order's Currency on a later row only: still the order's
        _first_line("#2002", Currency=""),
        _later_line("#2002", "3", "10.00", Currency="bdt"),
        _first_line("#2003"),
    ]
    write_csv(inbox / "shopify" / "orders_export_cod.csv", formats.SHOPIFY_ORDER_COLUMNS, rows)
    res = ingest_dir(con, inbox)["shopify/orders_export_cod.csv"]
    assert (res.status, res.rows_read, res.rows_loaded, res.rows_quarantined) == ("loaded", 6, 6, 0)
    got = con.execute(
        "select order_name, currency, created_at, email, financial_status, lineitem_quantity "
        "from raw.shopify_order_lines order by _line_number"
    ).fetchall()
    assert [(r[0], r[1], r[2]) for r in got] == [
        (f"#200{n}", "BDT", datetime(2026, 3, 2, 8, 0)) for n in (1, 1, 1, 2, 2, 3)
    ]
    # optional order-level fields stay as written (the models read them per order)
    assert [r[3] for r in got[:3]] == ["2001@ex.com", None, None] and [r[4] for r in got[:3]] == ["paid", None, None]
    assert con.execute("select count(*) from raw.quarantine").fetchone()[0] == 0


def test_an_order_lacking_a_required_order_level_value_on_every_row_is_quarantined_whole(con, tmp_path):
    inbox = tmp_path / "inbox"
    rows = [
        _first_line("#3001", Currency=""),
        _later_line("#3001", "2", "50.00"),
        _first_line("#3002", **{"Created at": ""}),
        _later_line("#3002", "1", "5.00"),
        _first_line("#3003", Currency="BDT"),
        _later_line("#3003", "1", "5.00", Currency="USD"),
        _first_line("#3004"),
        _later_line("#3004", "1", "5.00"),
    ]
    write_csv(inbox / "shopify" / "x.csv", formats.SHOPIFY_ORDER_COLUMNS, rows)
    res = ingest_dir(con, inbox)["shopify/x.csv"]
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (8, 2, 6)
    assert {r[0] for r in con.execute("select order_name from raw.shopify_order_lines").fetchall()} == {"#3004"}
    q = con.execute("select line_number, reason from raw.quarantine order by line_number").fetchall()
    assert q == [
        (2, "order #3001 has no Currency on any row"),
        (3, "order #3001 has no Currency on any row"),
        (4, "order #3002 has no Created at on any row"),
        (5, "order #3002 has no Created at on any row"),
        (6, "order #3003 has two Currency values: BDT, USD"),
        (7, "order #3003 has two Currency values: BDT, USD"),
    ]


def test_a_file_given_up_after_its_read_does_not_reject_the_files_after_it(con, tmp_path):
    """A file whose reader rejected rows and which was then rejected as a whole (a bare CR outside
    quotes miscounts its records) left DuckDB's reject tables behind: every later file in the run
    looked miscounted too and was rejected (found by `make soak`)."""
    inbox = tmp_path / "inbox"
    header = ",".join(formats.MEMBERS_COLUMNS)
    good = "M1,a@ex.com,,2025-01-01,annual,30.00,USD,2026-01-01,0,yes"
    (inbox / "members").mkdir(parents=True)
    (inbox / "members" / "a_broken.csv").write_bytes(
        (
            header
            + "\n"
            + good
            + "\n"
            + good
            + ",extra,fields\n"
            + "M2,\r=1,,2025-01-01,annual,30.00,USD,2026-01-01,0,no\n"
            + good.replace("M1", "M3")
            + ",x\n"
        ).encode()
    )
    write_csv(inbox / "shopify" / "orders_export_1.csv", formats.SHOPIFY_ORDER_COLUMNS, shopify_rows())
    res = ingest_dir(con, inbox)
    assert res["members/a_broken.csv"].status == "rejected", res["members/a_broken.csv"]
    shop = res["shopify/orders_export_1.csv"]
    assert (shop.status, shop.rows_read, shop.rows_loaded) == ("loaded", 4, 4), shop.message


def test_square_both_header_versions_money_text_and_dst(con, tmp_path):
    inbox = tmp_path / "inbox"
    write_csv(
        inbox / "square" / "items-old.csv",
        formats.SQUARE_ITEMS_COLUMNS_V1,
        [
            square_row(
                **{"Transaction ID": "T1", "Gross Sales": "$1,234.50", "Discounts": "-$1.00", "Net Sales": "$1,233.50"}
            ),
            # spring forward: 02:30 does not exist in New York on 2025-03-09; 03:30 EDT = 07:30 UTC
            square_row(**{"Transaction ID": "T2", "Date": "2025-03-09", "Time": "03:30:00"}),
        ],
    )
    write_csv(
        inbox / "square" / "items-new.csv",
        formats.SQUARE_ITEMS_COLUMNS_V2,
        [
            square_row(
                **{
                    "Transaction ID": "T3",
                    "Date": "2025-11-03",
                    "Time": "09:00:00",
                    "Time Zone": "Pacific Time (US & Canada)",
                    "GTIN": "0001",
                }
            ),
            square_row(
                **{
                    "Transaction ID": "T1",
                    "Event Type": "Refund",
                    "Qty": "-1.0",
                    "Gross Sales": "-$12.00",
                    "Net Sales": "-$12.00",
                    "Date": "2025-06-05",
                }
            ),
        ],
    )
    res = ingest_dir(con, inbox)
    assert all(r.status == "loaded" and r.rows_quarantined == 0 for r in res.values())
    got = dict(con.execute("select transaction_id || event_type, sold_at from raw.square_item_lines").fetchall())
    assert got["T2payment"] == datetime(2025, 3, 9, 7, 30)
    assert got["T3payment"] == datetime(2025, 11, 3, 17, 0)  # PST after the change: UTC-8
    assert got["T1payment"] == datetime(2025, 6, 1, 16, 0)  # EDT: UTC-4
    money = con.execute(
        "select gross_sales, discounts, net_sales, qty from raw.square_item_lines "
        "where transaction_id = 'T1' order by event_type"
    ).fetchall()
    assert [float(x) for x in money[0][:3]] == [1234.5, -1.0, 1233.5]
    assert [float(x) for x in money[1][:3]] == [-12.0, 0.0, -12.0] and float(money[1][3]) == -1.0


def test_bom_and_windows_1252_files_load_without_mojibake(con, tmp_path):
    inbox = tmp_path / "inbox"
    rows = shopify_rows()[:2]
    rows[0]["Lineitem name"] = "Café crème €5"
    write_csv(inbox / "shopify" / "bom.csv", formats.SHOPIFY_ORDER_COLUMNS, rows, bom=True)
    rows2 = [dict(r, Name="#2001") for r in rows]
    write_csv(inbox / "shopify" / "legacy.csv", formats.SHOPIFY_ORDER_COLUMNS, rows2, encoding="cp1252")
    res = ingest_dir(con, inbox)
    assert res["shopify/bom.csv"].status == "loaded" and res["shopify/bom.csv"].rows_loaded == 2
    assert res["shopify/legacy.csv"].encoding == "windows-1252" and res["shopify/legacy.csv"].rows_loaded == 2
    names = {
        r[0]
        for r in con.execute(
            "select lineitem_name from raw.shopify_order_lines where lineitem_name is not null"
        ).fetchall()
    }
    assert names == {"Café crème €5"}


def test_same_file_twice_renamed_or_not_is_loaded_once(con, tmp_path):
    inbox = tmp_path / "inbox"
    p = write_csv(inbox / "shopify" / "a.csv", formats.SHOPIFY_ORDER_COLUMNS, shopify_rows())
    (inbox / "shopify" / "a copy.csv").write_bytes(p.read_bytes())
    res = ingest_dir(con, inbox)
    assert sorted(r.status for r in res.values()) == ["duplicate", "loaded"]
    again = ingest_dir(con, inbox, run="r2")
    assert all(r.status == "unchanged" for r in again.values())  # seen before, untouched: no new ledger row
    assert con.execute("select count(*) from raw.shopify_order_lines").fetchone()[0] == 4
    assert con.execute("select count(*) from raw.load_ledger").fetchone()[0] == 2


def test_a_file_seen_before_is_not_read_again_until_it_changes(con, tmp_path, monkeypatch):
    """Each run looks at every inbox file; one untouched since a run recorded its hash (same path, size,
    modification and status-change times, inode) is not read again, while one rewritten in place with
    the same size is hashed again and loaded."""
    inbox = tmp_path / "inbox"
    p = write_csv(inbox / "shopify" / "a.csv", formats.SHOPIFY_ORDER_COLUMNS, shopify_rows())
    assert ingest_dir(con, inbox)["shopify/a.csv"].status == "loaded"

    hashed = []
    real = ingest.load.sha256_of
    monkeypatch.setattr(ingest.load, "sha256_of", lambda path: hashed.append(path.name) or real(path))
    assert ingest_dir(con, inbox, run="r2")["shopify/a.csv"].status == "unchanged"
    assert hashed == []

    data = p.read_bytes()
    p.write_bytes(data.replace(b"#1001", b"#1009"))  # same size, other content
    assert p.stat().st_size == len(data)
    res = ingest_dir(con, inbox, run="r3")["shopify/a.csv"]
    assert hashed == ["a.csv"] and res.status == "loaded" and res.rows_loaded > 0
    assert (
        con.execute(
            "select count(distinct order_name) from raw.shopify_order_lines where order_name = '#1009'"
        ).fetchone()[0]
        == 1
    )
    stats = con.execute("select file_stat from raw.load_ledger order by file_id").fetchall()
    assert len(stats) == 2 and stats[0] != stats[1]  # the untouched r2 sighting left no row


def test_missing_columns_rejects_file_by_name_others_still_load(con, tmp_path):
    inbox = tmp_path / "inbox"
    write_csv(inbox / "shopify" / "good.csv", formats.SHOPIFY_ORDER_COLUMNS, shopify_rows())
    write_csv(inbox / "shopify" / "bad.csv", ["Name", "Email", "Created at"], [{"Name": "#1"}])
    write_csv(inbox / "square" / "semicolon.csv", ["Date;Time;Qty"], [])
    res = ingest_dir(con, inbox)
    bad = res["shopify/bad.csv"]
    assert bad.status == "rejected"
    assert "bad.csv" in bad.message and "Financial Status" in bad.message and "Lineitem price" in bad.message
    assert "comma-separated" in res["square/semicolon.csv"].message
    assert res["shopify/good.csv"].rows_loaded == 4


def test_empty_and_header_only_files_are_recorded_not_errors(con, tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "members").mkdir(parents=True)
    (inbox / "members" / "empty.csv").write_bytes(b"")
    write_csv(inbox / "members" / "header_only.csv", formats.MEMBERS_COLUMNS, [])
    res = ingest_dir(con, inbox)
    assert res["members/empty.csv"].status == "empty"
    assert res["members/header_only.csv"].status == "empty" and res["members/header_only.csv"].rows_read == 0


def test_structurally_broken_csv_rows_are_quarantined_with_physical_line(con, tmp_path):
    inbox = tmp_path / "inbox"
    p = write_csv(
        inbox / "spend" / "spend.csv",
        formats.SPEND_COLUMNS,
        [
            {"month": "2026-01", "channel": "google", "spend": "100.00", "currency": "USD"},
        ],
    )
    with p.open("a") as fh:
        fh.write("2026-02,meta\n")  # too few fields (line 3)
        fh.write("2026-03,meta,$1,200.00,USD\n")  # too many fields (unquoted comma, line 4)
        fh.write("2026-04,tiktok,50,USD\n")  # fine (line 5)
    res = ingest_dir(con, inbox)["spend/spend.csv"]
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (4, 2, 2)
    lines = [r[0] for r in con.execute("select line_number from raw.quarantine order by 1").fetchall()]
    assert lines == [3, 4]
    assert con.execute("select list(_line_number order by _line_number) from raw.marketing_spend").fetchone()[0] == [
        2,
        5,
    ]


# --- generic mapped exports ----------------------------------------------------------------


def uci_frame():
    return pd.DataFrame(
        {
            "InvoiceNo": ["536365", "536365", "C536379", "536380"],
            "StockCode": ["85123A", "71053", "D", "22"],
            "Description": ["WHITE HANGING HEART", "LANTERN", "Discount", "X"],
            "Quantity": [6, 6, -1, 2],
            "InvoiceDate": ["2010-12-01 08:26:00", "2010-12-01 08:26:00", "2010-12-01 09:41:00", "2011-06-01 10:00:00"],
            "UnitPrice": [2.55, 3.39, 27.5, 1.25],
            "CustomerID": [17850.0, 17850.0, 14527.0, None],
            "Country": ["United Kingdom"] * 4,
        }
    )


@pytest.mark.parametrize("fmt", ["csv", "parquet", "xlsx", "jsonl"])
def test_generic_map_reads_every_container_format(con, tmp_path, fmt):
    inbox = tmp_path / "inbox"
    d = inbox / "generic" / "online_retail"
    d.mkdir(parents=True)
    df = uci_frame()
    path = d / f"export.{fmt}"
    if fmt == "csv":
        df.to_csv(path, index=False)
    elif fmt == "parquet":
        df.to_parquet(path, index=False)
    elif fmt == "xlsx":
        df.to_excel(path, index=False)
    else:
        df.to_json(path, orient="records", lines=True)
    res = ingest_dir(con, inbox)[f"generic/online_retail/export.{fmt}"]
    assert (res.status, res.rows_read, res.rows_loaded, res.rows_quarantined) == ("loaded", 4, 4, 0), res.message
    rows = con.execute(
        "select order_id, ordered_at, is_cancellation, customer_id, currency, channel, _line_number "
        "from raw.generic_order_lines order by _line_number"
    ).fetchall()
    assert rows[0][1] == datetime(2010, 12, 1, 8, 26)  # GMT in winter
    assert rows[3][1] == datetime(2011, 6, 1, 9, 0)  # BST in summer -> UTC-1h
    assert [r[2] for r in rows] == [False, False, True, False]  # C prefix = cancellation
    assert rows[3][3] is None and rows[0][4] == "GBP" and rows[0][5] == "online"
    first_line = {"csv": 2, "xlsx": 2, "parquet": 1, "jsonl": 1}[fmt]
    assert rows[0][6] == first_line


def test_generic_jsonl_bad_line_quarantined_and_custom_map(con, tmp_path):
    inbox = tmp_path / "inbox"
    (tmp_path / "maps").mkdir()
    (tmp_path / "maps" / "till.yml").write_text(
        "columns: {order_id: receipt, ordered_at: ts, quantity: qty, line_amount: amount, customer_id: card,"
        " store: shop}\n"
        "timestamp: {formats: ['%d.%m.%Y %H:%M'], timezone: Europe/Berlin}\n"
        "defaults: {currency: EUR, channel: store}\n"
    )
    d = inbox / "generic" / "till"
    d.mkdir(parents=True)
    (d / "day.jsonl").write_text(
        '{"receipt": "R1", "ts": "01.07.2025 10:00", "qty": 1, "amount": "4,50", "card": "L9", "shop": "Mitte"}\n'
        "{not json\n"
        '{"receipt": "R2", "ts": "31.02.2025 10:00", "qty": 1, "amount": "1.00", "card": null, "shop": "Mitte"}\n'
        '{"receipt": "R3", "ts": "02.07.2025 11:00", "qty": 2, "amount": "3.00", "card": null, "shop": "Mitte"}\n'
    )
    res = ingest_dir(con, inbox)["generic/till/day.jsonl"]
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (4, 2, 2)
    q = con.execute("select line_number, reason from raw.quarantine order by 1").fetchall()
    assert q[0] == (2, "not a JSON object") and q[1][0] == 3 and "bad ts" in q[1][1]
    got = con.execute("select ordered_at, channel, store, currency from raw.generic_order_lines order by 1").fetchall()
    assert got[0] == (datetime(2025, 7, 1, 8, 0), "store", "Mitte", "EUR")


def test_generic_unknown_map_and_missing_mapped_column_are_rejected(con, tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "generic" / "nomap").mkdir(parents=True)
    (inbox / "generic" / "nomap" / "x.csv").write_text("a,b\n1,2\n")
    (inbox / "generic" / "online_retail").mkdir(parents=True)
    uci_frame().drop(columns=["InvoiceDate"]).to_csv(inbox / "generic" / "online_retail" / "y.csv", index=False)
    res = ingest_dir(con, inbox)
    assert (
        res["generic/nomap/x.csv"].status == "rejected"
        and "no column map named 'nomap'" in res["generic/nomap/x.csv"].message
    )
    msg = res["generic/online_retail/y.csv"].message
    assert res["generic/online_retail/y.csv"].status == "rejected" and "InvoiceDate" in msg and "y.csv" in msg


def test_crash_mid_file_leaves_nothing_half_loaded(con, tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    write_csv(inbox / "shopify" / "a.csv", formats.SHOPIFY_ORDER_COLUMNS, shopify_rows())

    def boom(*a, **k):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(ingest.ledger, "record_ledger", boom)
    with pytest.raises(RuntimeError):
        ingest.ingest_inbox(con, inbox, "r1")
    monkeypatch.undo()
    assert con.execute("select count(*) from raw.shopify_order_lines").fetchone()[0] == 0
    assert con.execute("select count(*) from raw.quarantine").fetchone()[0] == 0
    res = ingest_dir(con, inbox, run="r2")
    assert res["shopify/a.csv"].rows_loaded == 4


def test_mixed_line_endings_load_with_right_lines(con, tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "traffic").mkdir(parents=True)
    (inbox / "traffic" / "t.csv").write_bytes(
        b"date,store,visitors,entries\r\n2026-01-01,Brooklyn,100,80\n2026-01-02,Brooklyn\r\n2026-01-03,Brooklyn,90,70\r\n"
    )
    res = ingest_dir(con, inbox)["traffic/t.csv"]
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (3, 2, 1)
    assert con.execute("select line_number from raw.quarantine").fetchone()[0] == 3
    assert con.execute("select list(_line_number order by 1) from raw.store_traffic").fetchone()[0] == [2, 4]


def test_blank_lines_and_multiline_fields_keep_physical_line_numbers(con, tmp_path):
    inbox = tmp_path / "inbox"
    (inbox / "spend").mkdir(parents=True)
    (inbox / "spend" / "s.csv").write_text(
        "month,channel,spend,currency\n"
        "2026-01,google,100,USD\n"
        "\n"  # blank line: skipped by the reader, still a line
        '2026-02,"meta\nads",oops,USD\n'  # lines 4-5: bad spend, quarantined with its whole text
        "2026-03,tiktok,50,USD\n"  # line 6
    )
    res = ingest_dir(con, inbox)["spend/s.csv"]
    assert (res.rows_read, res.rows_loaded, res.rows_quarantined) == (3, 2, 1)
    assert con.execute("select list(_line_number order by 1) from raw.marketing_spend").fetchone()[0] == [2, 6]
    line, raw = con.execute("select line_number, raw_record from raw.quarantine").fetchone()
    assert line == 4 and raw == '2026-02,"meta\nads",oops,USD'


def test_record_line_offsets_by_quote_parity(tmp_path):
    p = tmp_path / "x.csv"
    p.write_bytes(b'a,b\n1,"x\n\ny"\n\n2,"he said ""hi"""\n3,z\n')
    records, offsets = ingest.record_line_offsets(p)
    assert records == 3
    assert offsets == [(2, 3)]  # record 2 starts on line 1 + 2 + 3 = 6


def test_roster_and_square_directory_load_with_or_without_name_and_address_columns(con, tmp_path):
    """The name and address columns are optional: rosters and Square directory exports written before
    them (header version v1) still load, with those raw columns NULL."""
    inbox = tmp_path / "inbox"
    member = {
        "member_id": "M1",
        "email": "a@ex.com",
        "joined_on": "2025-01-01",
        "plan": "annual",
        "annual_fee": "30.00",
        "currency": "USD",
        "expires_on": "2026-01-01",
    }
    roster = formats.layout("members")
    write_csv(inbox / "members" / "old.csv", roster.header("v1"), [member])
    write_csv(
        inbox / "members" / "new.csv",
        roster.header(),
        [dict(member, member_id="M2", first_name=" Ann ", last_name="Lee", city="Boston", country="United States")],
    )
    directory = formats.layout("square_customers")
    write_csv(inbox / "square" / "customers_old.csv", directory.header("v1"), [{"Square Customer ID": "S1"}])
    write_csv(
        inbox / "square" / "customers_new.csv",
        directory.header(),
        [{"Square Customer ID": "S2", "First Name": "Bo", "City": "Austin", "State": "TX", "Postal Code": "78701"}],
    )
    res = ingest_dir(con, inbox)
    assert {k: (v.status, v.rows_loaded) for k, v in res.items()} == {
        "members/old.csv": ("loaded", 1),
        "members/new.csv": ("loaded", 1),
        "square/customers_old.csv": ("loaded", 1),
        "square/customers_new.csv": ("loaded", 1),
    }
    assert con.sql("select member_id, first_name, city, country from raw.members order by 1").fetchall() == [
        ("M1", None, None, None),
        ("M2", "Ann", "Boston", "United States"),  # text is trimmed on ingest
    ]
    assert con.sql(
        "select square_customer_id, first_name, city, region, postal_code from raw.square_customers order by 1"
    ).fetchall() == [("S1", None, None, None, None), ("S2", "Bo", "Austin", "TX", "78701")]
