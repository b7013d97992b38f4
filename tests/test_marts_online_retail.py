"""Core marts on real data: UCI Online Retail recomputed independently with pandas."""

import duckdb
import pandas as pd
import pytest

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]


def _customer_keys(data_dir) -> pd.DataFrame:
    with duckdb.connect(str(data_dir / "warehouse" / "pipeline.duckdb"), read_only=True) as con:
        return con.execute(
            "select distinct raw_value, customer_key from identity.identifiers "
            "where id_type = 'source_customer_id' and source = 'generic'"
        ).df()


def test_customer_rfm_matches_an_independent_pandas_recomputation(online_retail_run):
    assert online_retail_run["exit_code"] == 0
    as_of = pd.Timestamp(online_retail_run["as_of"])
    df = pd.read_parquet(online_retail_run["parquet"])
    df = df[df["CustomerID"].notna()].copy()
    df["amount"] = df["Quantity"] * df["UnitPrice"]
    # the export is UK local time; the marts work in UTC dates
    local = pd.to_datetime(df["InvoiceDate"]).dt.tz_localize(
        "Europe/London", ambiguous="NaT", nonexistent="shift_forward"
    )
    df["utc_date"] = local.dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    invoices = (
        df.groupby("InvoiceNo")
        .agg(customer=("CustomerID", "first"), day=("utc_date", "min"), net=("amount", "sum"))
        .reset_index()
    )
    invoices["net"] = invoices["net"].round(2)
    purchases = invoices[invoices["net"] > 0]
    expected = pd.DataFrame(
        {
            "frequency": purchases.groupby("customer")["day"].nunique(),
            "last_purchase": purchases.groupby("customer")["day"].max(),
            "monetary": invoices.groupby("customer")["net"].sum().round(2),
        }
    ).dropna(subset=["frequency"])
    expected["recency_days"] = (as_of - expected["last_purchase"]).dt.days
    expected.index = "online_retail:" + expected.index.astype("int64").astype(str)

    keys = _customer_keys(online_retail_run["data_dir"])
    keys["raw_value"] = keys["raw_value"].str.replace(r"\.0+$", "", regex=True)
    with duckdb.connect(str(online_retail_run["data_dir"] / "serving" / "warehouse.duckdb"), read_only=True) as con:
        rfm = con.execute("select customer_key, recency_days, frequency, monetary from marts.customer_rfm").df()
    got = rfm.merge(keys, on="customer_key").set_index("raw_value").sort_index()
    want = expected.loc[got.index.union(expected.index)].sort_index()

    assert len(got) == len(expected) == 4_338
    assert (got["frequency"].astype(int) == want["frequency"].astype(int)).all()
    assert (got["recency_days"].astype(int) == want["recency_days"].astype(int)).all()
    assert (got["monetary"].astype(float).round(2) == want["monetary"].astype(float).round(2)).all()
    # scores are tie-safe: equal values, equal scores
    with duckdb.connect(str(online_retail_run["data_dir"] / "serving" / "warehouse.duckdb"), read_only=True) as con:
        assert (
            con.execute(
                "select count(*) from (select frequency from marts.customer_rfm group by frequency "
                "having count(distinct f_score) > 1)"
            ).fetchone()[0]
            == 0
        )
        assert (
            con.execute(
                "select count(*) from (select monetary from marts.customer_rfm group by monetary "
                "having count(distinct m_score) > 1)"
            ).fetchone()[0]
            == 0
        )
