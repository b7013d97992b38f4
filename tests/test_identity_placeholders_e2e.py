"""The issue's shop through the whole pipeline: 25 customers typed none@none.com (each with their own
phone), 40 gave the store's phone (each with their own e-mail), one order carries both.  They stay 65
customers plus one anonymous order; none@none.com is nobody's contact; the shared store phone raises a
warning that the run summary and `status` show."""

import contextlib
import csv
import hashlib
import io
from datetime import date

import duckdb
import pytest

from dagster_project.lib.ingest import formats

STORE_PHONE = "+1 415 555 0100"


def _issue_rows():
    rows = [("none@none.com", f"(212) 555-{1000 + i:04d}") for i in range(25)]
    rows += [(f"shopper{i}@mail.com", STORE_PHONE) for i in range(40)]
    return rows + [("none@none.com", STORE_PHONE)]


def _write_shop(path, as_of: date, rows=None, first: int = 0) -> None:
    rows = _issue_rows() if rows is None else rows
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, formats.SHOPIFY_ORDER_COLUMNS, lineterminator="\n")
        w.writeheader()
        for i, (email, phone) in enumerate(rows, start=first):
            day = date.fromordinal(as_of.toordinal() - 20 - i % 15)
            row = {c: "" for c in formats.SHOPIFY_ORDER_COLUMNS}
            row.update(
                {
                    "Name": f"#P{i:04d}",
                    "Email": email,
                    "Phone": phone,
                    "Financial Status": "paid",
                    "Accepts Marketing": "yes",
                    "Created at": f"{day.isoformat()} 10:00:00 +0000",
                    "Currency": "USD",
                    "Lineitem quantity": "1",
                    "Lineitem price": "50.00",
                    "Discount Amount": "0.00",
                    "Refunded Amount": "0.00",
                    "Subtotal": "50.00",
                    "Total": "50.00",
                    "Lineitem name": "Mug",
                }
            )
            w.writerow(row)


@pytest.fixture(scope="module")
def placeholder_run(tmp_path_factory):
    from dagster_project.cli import main
    from dagster_project.lib.demo.generator import generate_demo

    data_dir = tmp_path_factory.mktemp("placeholders")
    generate_demo(data_dir, customers=200, seed=5, end_date=date(2026, 10, 31))
    _write_shop(data_dir / "inbox" / "shopify" / "placeholder_shop.csv", date(2026, 11, 1))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["run", "--data-dir", str(data_dir), "--as-of", "2026-11-01", "--quiet"])
    return {"data_dir": data_dir, "code": code, "stdout": out.getvalue()}


def _orders_of(con, names):
    return con.execute(
        "select customer_key, count(*) from marts.fct_orders where source = 'shopify' and source_order_id in "
        f"({', '.join('?' for _ in names)}) group by customer_key",
        names,
    ).fetchall()


def test_the_shop_stays_65_customers_and_one_anonymous_order(placeholder_run, capsys):
    assert placeholder_run["code"] == 0
    d = placeholder_run["data_dir"]
    with duckdb.connect(str(d / "serving" / "warehouse.duckdb"), read_only=True) as con:
        per_key = _orders_of(con, [f"#P{i:04d}" for i in range(66)])
        assert sorted(n for _, n in per_key) == [1] * 66  # 65 customers with one order each, one anonymous
        assert sum(1 for k, _ in per_key if k is None) == 1
        blocked = dict(
            con.execute("select identifier_sha256, block_reason from marts.identity_blocked_identifiers").fetchall()
        )
        assert blocked[hashlib.sha256(b"none@none.com").hexdigest()] == "listed"
        assert blocked[hashlib.sha256(b"+14155550100").hexdigest()] == "shared"
        touched = con.execute(
            "select customers_touched, sources from marts.identity_blocked_identifiers where identifier_sha256 = ?",
            [hashlib.sha256(b"+14155550100").hexdigest()],
        ).fetchone()
        assert touched == (40, "shopify")
        # the audit: the store phone is on 41 orders and linked none of them
        assert con.execute(
            "select count(*), count(*) filter (where links) from marts.customer_identity_links "
            "where identifier_sha256 = ?",
            [hashlib.sha256(b"+14155550100").hexdigest()],
        ).fetchone() == (41, 0)
        # every order's customer is the customer of an identifier that links it
        assert (
            con.execute(
                "select count(*) from marts.customer_identity_links l where l.links and l.customer_key is null"
            ).fetchone()[0]
            == 0
        )


def test_no_placeholder_is_anyones_contact(placeholder_run):
    d = placeholder_run["data_dir"]
    hashes = {hashlib.sha256(v.encode()).hexdigest() for v in ("none@none.com", "+14155550100")}
    files = list((d / "exports" / "latest" / "tiers").rglob("*.csv"))
    assert files
    for p in files:
        text = p.read_text(encoding="utf-8")
        assert "none@none.com" not in text and "+14155550100" not in text, p.name
        assert not any(h in text for h in hashes), p.name
    with duckdb.connect(str(d / "warehouse" / "pipeline.duckdb"), read_only=True) as con:
        assert (
            con.execute(
                "select count(*) from intermediate.int_customer_contacts "
                "where email = 'none@none.com' or phone = '+14155550100'"
            ).fetchone()[0]
            == 0
        )


def test_the_shared_store_phone_warns_in_the_run_summary(placeholder_run):
    assert (
        "warning: check identity/blocked_identifiers:no_shared_identifiers failed (WARN): 1 identifier(s) "
        "shared by more than 5" in placeholder_run["stdout"]
    )


def test_the_shared_store_phone_warns_in_status(placeholder_run):
    from dagster_project.cli import _instance
    from dagster_project.lib import status
    from dagster_project.lib.paths import DataPaths

    paths = DataPaths.of(placeholder_run["data_dir"])
    text, code = status.report(paths, _instance(paths))
    assert code == 0
    assert "no_shared_identifiers failed (WARN)" in text and "1 identifier(s) shared by more than 5" in text
    assert "published with warnings" in text and "no_shared_identifiers" in text


def _order_keys(data_dir) -> dict:
    with duckdb.connect(str(data_dir / "serving" / "warehouse.duckdb"), read_only=True) as con:
        return dict(con.execute("select source_order_id, customer_key from marts.fct_orders").fetchall())


def test_a_phone_that_becomes_shared_splits_its_customer_on_the_next_daily_run(tmp_path):
    """Day 1: three people gave the store phone (under the limit: one customer).  Day 2: four more do.
    The daily run splits them, the incremental marts end up as a run from scratch over both days, the
    history says why, and customers the phone never touched keep their keys."""
    from dagster_project.cli import main
    from dagster_project.lib.demo.generator import generate_demo

    day1 = [(f"p{i}@mail.com", STORE_PHONE) for i in range(3)]
    day2 = [(f"q{i}@mail.com", STORE_PHONE) for i in range(4)]
    daily, scratch = tmp_path / "daily", tmp_path / "scratch"
    for d in (daily, scratch):
        generate_demo(d, customers=150, seed=3, end_date=date(2026, 10, 31))
    _write_shop(daily / "inbox" / "shopify" / "day1.csv", date(2026, 11, 1), day1)
    assert main(["run", "--data-dir", str(daily), "--as-of", "2026-11-01", "--quiet"]) == 0
    before = _order_keys(daily)
    assert len({before[f"#P{i:04d}"] for i in range(3)}) == 1
    _write_shop(daily / "inbox" / "shopify" / "day2.csv", date(2026, 11, 2), day2, first=3)
    assert main(["run", "--data-dir", str(daily), "--as-of", "2026-11-02", "--quiet"]) == 0
    _write_shop(scratch / "inbox" / "shopify" / "day1.csv", date(2026, 11, 1), day1)
    _write_shop(scratch / "inbox" / "shopify" / "day2.csv", date(2026, 11, 2), day2, first=3)
    assert main(["run", "--data-dir", str(scratch), "--as-of", "2026-11-02", "--quiet"]) == 0
    after = _order_keys(daily)
    assert after == _order_keys(scratch)
    assert len({after[f"#P{i:04d}"] for i in range(7)}) == 7
    assert {k: v for k, v in after.items() if not k.startswith("#P")} == {
        k: v for k, v in before.items() if not k.startswith("#P")
    }  # untouched customers keep their keys
    with duckdb.connect(str(daily / "serving" / "warehouse.duckdb"), read_only=True) as con:
        events = con.execute(
            "select event, previous_keys, cause_id_type, cause_identifier_sha256, cause "
            "from marts.identity_key_history where change_seq = 2"
        ).fetchall()
        assert sorted(e for e, *_ in events) == ["split"] * 3
        assert {(p, t, h, c) for _, p, t, h, c in events} == {
            (before["#P0000"], "phone", hashlib.sha256(b"+14155550100").hexdigest(), "identifier blocked")
        }
    with duckdb.connect(str(daily / "warehouse" / "pipeline.duckdb"), read_only=True) as con:
        assert (
            con.execute(
                "select count(*) from intermediate.int_customer_contacts where phone = '+14155550100'"
            ).fetchone()[0]
            == 0
        )
    for p in (daily / "exports" / "latest" / "tiers").rglob("*.csv"):
        text = p.read_text(encoding="utf-8")
        assert "+14155550100" not in text and hashlib.sha256(b"+14155550100").hexdigest() not in text, p.name
