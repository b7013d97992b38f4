"""UCI Online Retail read the way the marts see it, for the tests that recompute marts in pandas."""

from __future__ import annotations

import pandas as pd


def invoices(parquet) -> pd.DataFrame:
    """One row per invoice of a known customer: InvoiceNo, customer (the export's CustomerID), ts (the
    first line's time in UTC: the export's times are London time, as the shipped map says), day (its
    UTC day) and net (lines' quantity × price, rounded to pence; credit notes negative).
    attrs["data_start"] is the UTC day of the export's first invoice, anonymous ones included."""
    df = pd.read_parquet(parquet)
    local = pd.to_datetime(df["InvoiceDate"]).dt.tz_localize(
        "Europe/London", ambiguous="NaT", nonexistent="shift_forward"
    )
    df["ts"] = local.dt.tz_convert("UTC").dt.tz_localize(None)
    data_start = df["ts"].min().normalize()
    df = df[df["CustomerID"].notna()].copy()
    df["amount"] = df["Quantity"] * df["UnitPrice"]
    inv = (
        df.groupby("InvoiceNo")
        .agg(customer=("CustomerID", "first"), ts=("ts", "min"), net=("amount", "sum"))
        .reset_index()
    )
    inv["day"] = inv["ts"].dt.normalize()
    inv["net"] = inv["net"].round(2)
    inv.attrs["data_start"] = data_start
    return inv
