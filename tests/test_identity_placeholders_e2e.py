"""The issue's shop through the whole pipeline: 25 customers typed none@none.com (each with their own
phone), 40 gave the store's phone (each with their own e-mail), one order carries both.  They stay 65
customers plus one anonymous order; none@none.com is nobody's contact; the shared store phone raises a
warning that the run summary and `status` show."""

import csv
import hashlib
from datetime import date

import duckdb
import pytest

from dagster_project.lib import formats

STORE_PHONE = "+1 415 555 0100"


def _write_shop(path, as_of: date) -> None:
    rows = [("none@none.com", f"(212) 555-{1000 + i:04d}") for i in range(25)]
    rows += [(f"shopper{i}@mail.com", STORE_PHONE) for i in range(40)]
    rows += [("none@none.com", STORE_PHONE)]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, formats.SHOPIFY_ORDER_COLUMNS, lineterminator="\n")
        w.writeheader()
        for i, (email, phone) in enumerate(rows):
            day = date.fromordinal(as_of.toordinal() - 20 - i % 15)
            row = {c: "" for c in formats.SHOPIFY_ORDER_COLUMNS}
            row.update({"Name": f"#P{i:04d}", "Email": email, "Phone": phone, "Financial Status": "paid",
                        "Accepts Marketing": "yes", "Created at": f"{day.isoformat()} 10:00:00 +0000",
                        "Currency": "USD", "Lineitem quantity": "1", "Lineitem price": "50.00",
                        "Discount Amount": "0.00", "Refunded Amount": "0.00", "Subtotal": "50.00", "Total": "50.00",
                        "Lineitem name": "Mug"})
            w.writerow(row)


@pytest.fixture(scope="module")
def placeholder_run(tmp_path_factory):
    from dagster_project.cli import main
    from dagster_project.lib.demo import generate_demo

    data_dir = tmp_path_factory.mktemp("placeholders")
    generate_demo(data_dir, customers=200, seed=5, end_date=date(2026, 10, 31))
    _write_shop(data_dir / "inbox" / "shopify" / "placeholder_shop.csv", date(2026, 11, 1))
    code = main(["run", "--data-dir", str(data_dir), "--as-of", "2026-11-01", "--quiet"])
    return {"data_dir": data_dir, "code": code}


def _orders_of(con, names):
    return con.execute(
        "select customer_key, count(*) from marts.fct_orders where source = 'shopify' and source_order_id in "
        f"({', '.join('?' for _ in names)}) group by customer_key", names).fetchall()


def test_the_shop_stays_65_customers_and_one_anonymous_order(placeholder_run, capsys):
    assert placeholder_run["code"] == 0
    d = placeholder_run["data_dir"]
    with duckdb.connect(str(d / "serving" / "warehouse.duckdb"), read_only=True) as con:
        per_key = _orders_of(con, [f"#P{i:04d}" for i in range(66)])
        assert sorted(n for _, n in per_key) == [1] * 66  # 65 customers with one order each, one anonymous
        assert sum(1 for k, _ in per_key if k is None) == 1
        blocked = dict(con.execute("select identifier_sha256, block_reason from marts.identity_blocked_identifiers"
                                   ).fetchall())
        assert blocked[hashlib.sha256(b"none@none.com").hexdigest()] == "listed"
        assert blocked[hashlib.sha256(b"+14155550100").hexdigest()] == "shared"
        touched = con.execute("select customers_touched, sources from marts.identity_blocked_identifiers "
                              "where identifier_sha256 = ?", [hashlib.sha256(b"+14155550100").hexdigest()]).fetchone()
        assert touched == (40, "shopify")
        # the audit: the store phone is on 41 orders and linked none of them
        assert con.execute("select count(*), count(*) filter (where links) from marts.customer_identity_links "
                           "where identifier_sha256 = ?", [hashlib.sha256(b"+14155550100").hexdigest()]
                           ).fetchone() == (41, 0)
        # every order's customer is the customer of an identifier that links it
        assert con.execute(
            "select count(*) from marts.customer_identity_links l where l.links and l.customer_key is null").fetchone()[0] == 0


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
        assert con.execute("select count(*) from intermediate.int_customer_contacts "
                           "where email = 'none@none.com' or phone = '+14155550100'").fetchone()[0] == 0


def test_the_shared_store_phone_warns_in_status(placeholder_run):
    from dagster_project.cli import _instance
    from dagster_project.lib import status
    from dagster_project.lib.paths import DataPaths

    paths = DataPaths.of(placeholder_run["data_dir"])
    text, code = status.report(paths, _instance(paths))
    assert code == 0
    assert "no_shared_identifiers failed (WARN)" in text and "1 identifier(s) shared by more than 5" in text
    assert "published with warnings" in text and "no_shared_identifiers" in text
