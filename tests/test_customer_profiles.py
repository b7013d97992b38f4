"""int_customer_profiles recomputed in plain pandas from the demo run's export files, and kept out of
everything published.

The recomputation reads the exports themselves (not the raw tables or the dbt models): Shopify's
first row of each order, the roster and the Square customer directory; it takes each record's
customer_key from the identity step's output (identity.identifiers, int_orders_identified), which
tests/test_identity.py checks on its own.  The rule it applies is the documented one
(docs/identity.md, "Names and addresses").
"""

from __future__ import annotations

import csv

import duckdb
import pandas as pd

from dagster_project.lib.paths import DBT_PROJECT_DIR

PRIORITY = {"members": 1, "square_customers": 2, "shopify": 3}
NAME = ["first_name", "last_name"]
ADDRESS = ["city", "region", "postal_code", "country_raw"]


def _read(path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _clean(s: pd.Series) -> pd.Series:
    """Trimmed, inner whitespace collapsed, '' as missing."""
    s = s.fillna("").astype(str).str.split().str.join(" ")
    return s.where(s != "")


def _countries() -> dict[str, str]:
    with open(DBT_PROJECT_DIR / "seeds" / "iso3166_countries.csv", newline="") as f:
        return {row["spelling"]: row["country_code"] for row in csv.DictReader(f)}


def _shopify_records(inbox, orders: pd.DataFrame) -> pd.DataFrame:
    lines = pd.concat([_read(p) for p in sorted((inbox / "shopify").glob("*.csv"))], ignore_index=True)
    first = lines[lines["Financial Status"] != ""].drop_duplicates("Name", keep="last")
    b = {c: _clean(first[f"Billing {c}"]) for c in ("Name", "City", "Zip", "Province", "Country")}
    s = {c: _clean(first[f"Shipping {c}"]) for c in ("Name", "City", "Zip", "Province", "Country")}
    billing = b["City"].notna() | b["Zip"].notna() | b["Province"].notna() | b["Country"].notna()
    full = b["Name"].fillna(s["Name"])
    parts = full.str.split(" ", n=1)
    rec = pd.DataFrame(
        {
            "record_id": first["Name"],
            "first_name": parts.str[0],
            "last_name": parts.str[1],
            "city": b["City"].where(billing, s["City"]),
            "region": b["Province"].where(billing, s["Province"]),
            "postal_code": b["Zip"].where(billing, s["Zip"]).str.upper(),
            "country_raw": b["Country"].where(billing, s["Country"]).str.upper(),
            "observed_at": pd.to_datetime(
                first["Created at"], format="%Y-%m-%d %H:%M:%S %z", errors="coerce", utc=True
            ).dt.tz_localize(None),
        }
    )
    rec = rec.merge(orders, left_on="record_id", right_on="source_order_id")
    return rec.assign(source="shopify")


def _profile_records(inbox, links: pd.DataFrame) -> pd.DataFrame:
    roster = _read(inbox / "members" / "members.csv")
    members = pd.DataFrame(
        {
            "record_id": roster["member_id"],
            **{c: _clean(roster[c]) for c in ("first_name", "last_name", "city", "region")},
            "postal_code": _clean(roster["postal_code"]).str.upper(),
            "country_raw": _clean(roster["country"]),
            "observed_at": pd.to_datetime(roster["joined_on"]),
            "source": "members",
        }
    )
    directory = _read(inbox / "square" / "customers.csv")
    has_address = _clean(directory["City"]).notna() | _clean(directory["State"]).notna()
    has_address |= _clean(directory["Postal Code"]).notna()
    square = pd.DataFrame(
        {
            "record_id": directory["Square Customer ID"],
            "first_name": _clean(directory["First Name"]),
            "last_name": _clean(directory["Last Name"]),
            "city": _clean(directory["City"]),
            "region": _clean(directory["State"]),
            "postal_code": _clean(directory["Postal Code"]).str.upper(),
            "country_raw": pd.Series("US", index=directory.index).where(has_address),  # var square_country
            "observed_at": pd.to_datetime(
                directory["Last Visit"].where(directory["Last Visit"] != "", directory["First Visit"])
            ),
            "source": "square_customers",
        }
    )
    both = pd.concat([members, square], ignore_index=True)
    return both.merge(links, left_on=["source", "record_id"], right_on=["identifier_source", "raw_value"])


def _newest(records: pd.DataFrame, fields: list[str]) -> pd.DataFrame:
    has = records[fields].notna().any(axis=1)
    ordered = records[has].sort_values(
        ["customer_key", "observed_at", "priority", "record_id"], ascending=[True, False, True, False]
    )
    return ordered.drop_duplicates("customer_key").set_index("customer_key")


def test_profiles_match_a_pandas_recomputation_from_the_exports(demo_run):
    data_dir = demo_run["data_dir"]
    inbox = data_dir / "inbox"
    con = duckdb.connect(str(data_dir / "warehouse" / "pipeline.duckdb"), read_only=True)
    try:
        orders = con.sql(
            "select source_order_id, customer_key from intermediate.int_orders_identified"
            " where source = 'shopify' and customer_key is not null"
        ).df()
        links = con.sql(
            "select source as identifier_source, raw_value, customer_key from identity.identifiers"
            " where customer_key is not null and id_type in ('member_id', 'square_customer_id')"
            " and source in ('members', 'square_customers')"
        ).df()
        got = con.sql("select * from intermediate.int_customer_profiles").df().set_index("customer_key")
    finally:
        con.close()

    records = pd.concat([_shopify_records(inbox, orders), _profile_records(inbox, links)], ignore_index=True)
    records["priority"] = records["source"].map(PRIORITY)
    names, addresses = _newest(records, NAME), _newest(records, ADDRESS)
    countries = _countries()
    expected = pd.DataFrame(index=names.index.union(addresses.index))
    expected["first_name"] = names["first_name"]
    expected["last_name"] = names["last_name"]
    expected["name_source"] = names["source"]
    for c in ("city", "region", "postal_code"):
        expected[c] = addresses[c]
    expected["country_code"] = addresses["country_raw"].str.upper().map(countries)
    expected["address_source"] = addresses["source"]

    assert len(expected) > 1000 and set(got.index) == set(expected.index)
    assert expected["name_source"].nunique() == 3 and expected["address_source"].nunique() == 3
    cols = ["first_name", "last_name", "city", "region", "postal_code", "country_code", "name_source", "address_source"]
    mine = expected.loc[got.index, cols].astype(object).where(expected.loc[got.index, cols].notna(), None)
    theirs = got[cols].astype(object).where(got[cols].notna(), None)
    diff = (mine != theirs) & ~(mine.isna() & theirs.isna())
    assert not diff.any().any(), pd.concat([mine[diff.any(axis=1)], theirs[diff.any(axis=1)]], axis=1).head()
    # the roster's varied country spellings all resolved
    assert (
        got["country_unrecognised"].isna().all() and (got["address_source"].isna() == got["country_code"].isna()).all()
    )


def test_names_and_addresses_are_not_published(demo_run):
    """Personal data stays in the working warehouse: no serving table or Parquet mart has a name or
    address column."""
    data_dir = demo_run["data_dir"]
    personal = {"first_name", "last_name", "city", "region", "postal_code"}
    con = duckdb.connect(str(data_dir / "serving" / "warehouse.duckdb"), read_only=True)
    try:
        columns = con.sql("select table_name, column_name from information_schema.columns").fetchall()
    finally:
        con.close()
    assert columns and not [c for c in columns if c[1] in personal]
    marts = sorted((data_dir / "serving" / "marts").glob("*.parquet"))
    assert marts
    for path in marts:
        names = duckdb.sql(f"describe select * from read_parquet('{path}')").df()["column_name"]
        assert not personal & set(names), path.name
