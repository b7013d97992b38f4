"""Identifier normalisation and transitive merging."""

import duckdb
import pytest

from dagster_project.lib import identity, ingest


@pytest.mark.parametrize("raw,region,expected", [
    ("+8801795326165", "BD", "+8801795326165"),
    ("+88001795326165", "BD", "+8801795326165"),  # trunk 0 written after the country code
    ("01795326165", "BD", "+8801795326165"),      # national form
    ("+1 (415) 263-0134", "US", "+14152630134"),
    ("415.263.0134", "US", "+14152630134"),
    ("1 415 263 0134", "US", "+14152630134"),
    ("0014152630134", "US", "+14152630134"),      # 00 international prefix
    ("123", "US", None),
    ("", "US", None),
    ("n/a", "US", None),
])
def test_normalise_phone(raw, region, expected):
    assert identity.normalise_phone(raw, region) == expected


def test_different_numbers_do_not_match():
    assert identity.normalise_phone("415-263-0134", "US") != identity.normalise_phone("415-263-0135", "US")


@pytest.mark.parametrize("raw,expected", [
    (" Jane.Doe@Example.COM ", "jane.doe@example.com"),
    ("not-an-email", None),
    ("a@b", None),
])
def test_normalise_email(raw, expected):
    assert identity.normalise_email(raw) == expected


def test_transitive_merge_and_stable_keys():
    con = duckdb.connect()
    ingest.create_raw_tables(con)
    # A: e-mail x + phone p; B: phone p (other form) + e-mail y; Square customer: e-mail y + id S1;
    # store sales carry S1 only.  All one person.  D is someone else.
    con.execute("insert into raw.shopify_order_lines (order_name, email, phone) values "
                "('#1', 'x@ex.com', '(415) 263-0134'), ('#2', 'Y@ex.com', '+1 415 263 0134'), "
                "('#3', 'd@ex.com', NULL)")
    con.execute("insert into raw.square_customers (square_customer_id, email) values ('S1', ' y@ex.com ')")
    con.execute("insert into raw.square_item_lines (transaction_id, customer_id) values ('T1', 'S1')")
    stats = identity.resolve(con, "US")
    keys = dict(con.execute(
        "select raw_value, customer_key from identity.identifiers").fetchall())
    assert keys["x@ex.com"] == keys["Y@ex.com"] == keys["S1"] == keys["(415) 263-0134"]
    assert keys["d@ex.com"] != keys["x@ex.com"]
    assert stats["people"] == 2
    first = keys["x@ex.com"]
    identity.resolve(con, "US")  # re-run: same key
    assert con.execute("select customer_key from identity.identifiers where raw_value = 'x@ex.com'").fetchone()[0] == first
