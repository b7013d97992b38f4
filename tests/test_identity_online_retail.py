"""Identity audit marts on real data: UCI Online Retail, recomputed independently with pandas.  No
invoice carries two customer ids, so no identifier can join two customers: nothing is blocked, and
every invoice with a customer id is one linking record of that customer."""

import duckdb
import pandas as pd
import pytest

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]


def test_nothing_is_blocked_and_every_invoice_links_its_customer(online_retail_run):
    assert online_retail_run["exit_code"] == 0
    df = pd.read_parquet(online_retail_run["parquet"], columns=["InvoiceNo", "CustomerID"])
    df = df[df["CustomerID"].notna()]
    per_invoice = df.groupby("InvoiceNo")["CustomerID"].nunique()
    assert per_invoice.max() == 1  # one customer id per invoice: no identifier joins two customers
    invoices = per_invoice.index.astype(str)
    with duckdb.connect(str(online_retail_run["data_dir"] / "serving" / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from marts.identity_blocked_identifiers").fetchone()[0] == 0
        assert con.execute("select count(*) from marts.identity_key_history").fetchone()[0] == 0
        links = con.execute(
            "select record_id, customer_key, id_type, links from marts.customer_identity_links "
            "where record_source = 'online_retail'"
        ).df()
        dim = con.execute("select count(*) from marts.dim_customers").fetchone()[0]
    assert sorted(links["record_id"]) == sorted(invoices)  # one row per invoice with a customer id
    assert (links["id_type"] == "source_customer_id").all() and links["links"].all()
    assert links["customer_key"].nunique() == df["CustomerID"].nunique() == dim == 4_372
