"""Partial periods and left-censored customers on UCI Online Retail (as of 2011-12-10), recomputed
independently with pandas from the export: which customers are left-censored, which months are
partial, and the new-customer counts, cohorts, CAC inputs and ladder's first step that leave them out."""

from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml

from dagster_project.lib.export import charts
from tests import uci as uci_export

pytestmark = [pytest.mark.shared_data, pytest.mark.slow]

WARM_UP_DAYS = yaml.safe_load((Path(__file__).parents[1] / "dbt" / "dbt_project.yml").read_text())["vars"][
    "new_customer_warm_up_days"
]


def _serving(run):
    return duckdb.connect(str(run["data_dir"] / "serving" / "warehouse.duckdb"), read_only=True)


@pytest.fixture(scope="module")
def uci(online_retail_run):
    """Invoices of the export (UTC dates, as the marts), each customer's first purchase and whether it
    falls in the warm-up after the export's first invoice (any invoice: anonymous and cancelled too)."""
    assert online_retail_run["exit_code"] == 0
    inv = uci_export.invoices(online_retail_run["parquet"])
    data_start = inv.attrs["data_start"]
    buys = inv[inv["net"] > 0].copy()
    first = buys.groupby("customer")["day"].min()
    censored = first < data_start + pd.Timedelta(days=WARM_UP_DAYS)
    keys = _customer_keys(online_retail_run["data_dir"])
    return {
        "invoices": inv,
        "buys": buys,
        "first": first,
        "censored": censored,
        "data_start": data_start,
        "keys": keys,
        "as_of": pd.Timestamp(online_retail_run["as_of"]),
    }


def _customer_keys(data_dir) -> dict:
    with duckdb.connect(str(data_dir / "warehouse" / "pipeline.duckdb"), read_only=True) as con:
        pairs = con.execute(
            "select distinct raw_value, customer_key from identity.identifiers "
            "where id_type = 'source_customer_id' and source = 'generic'"
        ).fetchall()
    return {float(raw.rsplit(":", 1)[-1]): key for raw, key in pairs}  # online_retail:12347.0


def _partial_months(uci, months) -> set:
    """Months (first days) the data does not wholly cover: begun before the first invoice or ending after
    the as-of date (the as-of day itself is complete: the run is made long after it)."""
    out = set()
    for m in months:
        start = pd.Timestamp(m)
        end = start + pd.offsets.MonthEnd(0)
        if start < uci["data_start"] or end > uci["as_of"]:
            out.add(start.date())
    return out


def test_left_censored_customers_are_those_first_seen_in_the_warm_up(online_retail_run, uci):
    with _serving(online_retail_run) as con:
        dim = con.execute("select customer_key, is_left_censored, purchase_count from marts.dim_customers").df()
    want = {uci["keys"][c] for c in uci["censored"][uci["censored"]].index}
    got = set(dim.loc[dim["is_left_censored"], "customer_key"])
    assert got == want
    # the rule bites where it should: every customer first seen in December 2010 is censored, none after the warm-up
    assert len(want) == int(uci["censored"].sum()) > 1000
    assert uci["censored"][uci["first"] < pd.Timestamp("2011-01-01")].all()
    assert not dim.loc[dim["purchase_count"] == 0, "is_left_censored"].any()


def test_december_2011_is_the_one_partial_month(online_retail_run, uci):
    months = pd.period_range(uci["data_start"], uci["as_of"], freq="M").to_timestamp()
    want = _partial_months(uci, months)
    assert want == {date(2011, 12, 1)}
    with _serving(online_retail_run) as con:
        lifecycle = con.execute(
            "select month, bool_and(is_partial_period), bool_or(is_partial_period) "
            "from marts.lifecycle_transitions group by 1"
        ).fetchall()
        cohorts = con.execute(
            "select cohort_month, months_since_first_purchase as m, is_partial_period from marts.cohort_retention"
        ).df()
        economics = con.execute("select acquisition_month, is_partial_period from marts.channel_economics").df()
        daily = con.execute(
            "select count(*), count(case when is_partial_period then 1 end) from marts.daily_kpis"
        ).fetchone()
        yearly = con.execute("select bool_or(is_partial_period) from marts.membership_value").fetchone()[0]
    assert all(every == some for _, every, some in lifecycle)  # one value per month
    assert {m for m, partial, _ in lifecycle if partial} == want and len(lifecycle) == 13
    calendar = [
        (pd.Timestamp(c) + pd.DateOffset(months=int(m))).date()
        for c, m in zip(cohorts["cohort_month"], cohorts["m"], strict=False)
    ]
    assert {month for month, partial in zip(calendar, cohorts["is_partial_period"], strict=False) if partial} == want
    assert not cohorts.loc[~cohorts["is_partial_period"]].empty
    assert {pd.Timestamp(m).date() for m in economics.loc[economics["is_partial_period"], "acquisition_month"]} == want
    # every day up to the as-of date is complete, and the 12 months before it lie inside the data
    assert daily[0] > 300 and daily[1] == 0
    assert uci["as_of"] - pd.Timedelta(days=364) >= uci["data_start"] and yearly is False


def test_cohorts_and_new_customers_leave_out_left_censored_customers(online_retail_run, uci):
    first, censored, buys = uci["first"], uci["censored"], uci["buys"]
    new = first[~censored]
    want_sizes = new.dt.to_period("M").dt.to_timestamp().value_counts()
    want_sizes.index = [d.date() for d in want_sizes.index]
    # activity: months with a purchase of each non-censored customer, by cohort and months since
    b = buys[buys["customer"].isin(new.index)].copy()
    b["cohort"] = b["customer"].map(new).dt.to_period("M")
    b["m"] = (b["day"].dt.to_period("M") - b["cohort"]).apply(lambda x: x.n)
    want_active = b.groupby([b["cohort"].dt.to_timestamp().dt.date, "m"])["customer"].nunique()
    # net revenue: every invoice of those customers (credit notes negative) in the month of its own date,
    # one dated before the first purchase in month 0
    docs = uci["invoices"][uci["invoices"]["customer"].isin(new.index)].copy()
    docs["cohort"] = docs["customer"].map(new).dt.to_period("M")
    docs["m"] = (docs["day"].dt.to_period("M") - docs["cohort"]).apply(lambda x: x.n).clip(lower=0)
    want_net = docs.groupby([docs["cohort"].dt.to_timestamp().dt.date, "m"])["net"].sum().round(2)
    # new customers per day: first purchases of non-censored customers; censored ones counted apart
    want_new_days = new.value_counts()
    want_censored_days = first[censored].value_counts()
    with _serving(online_retail_run) as con:
        sizes = dict(
            con.execute("select cohort_month, max(cohort_customers) from marts.cohort_retention group by 1").fetchall()
        )
        cells = con.execute(
            "select cohort_month, months_since_first_purchase as m, active_customers, net_revenue "
            "from marts.cohort_retention"
        ).fetchall()
        kpis = con.execute(
            "select order_date, new_customers, left_censored_customers from marts.daily_kpis where channel = 'all'"
        ).df()
        acquired = con.execute("select sum(new_customers) from marts.channel_economics").fetchone()[0]
    assert sizes == want_sizes.to_dict()
    assert min(sizes) >= date(2011, 3, 1)  # the 90-day warm-up covers December 2010 to February 2011
    active = {(c, m): a for c, m, a, _ in cells if a > 0}
    assert active == {k: int(v) for k, v in want_active.items()}
    assert {(c, m): round(float(net), 2) for c, m, _, net in cells} == want_net.to_dict()
    kpis["order_date"] = pd.to_datetime(kpis["order_date"])
    got_new = kpis.set_index("order_date")["new_customers"]
    got_censored = kpis.set_index("order_date")["left_censored_customers"]
    assert got_new[got_new > 0].sort_index().to_dict() == want_new_days.sort_index().to_dict()
    assert got_censored[got_censored > 0].sort_index().to_dict() == want_censored_days.sort_index().to_dict()
    assert acquired == len(new)


def test_ladder_first_step_counts_only_customers_really_new(online_retail_run, uci):
    """Step 1 of the ladder: non-censored customers whose first purchase is at least the ladder's window W
    before the as-of date (W read from the mart, as the ladder's own definition); of those, the ones with a
    second purchase day within W days of the first."""
    with _serving(online_retail_run) as con:
        got, got_next, window = con.execute(
            "select customers_reached_n, customers_reached_next, window_days from marts.repeat_purchase_ladder "
            "where dimension = 'overall' and n = 1"
        ).fetchone()
    first = uci["first"][~uci["censored"]]
    observed = first[first <= uci["as_of"] - pd.Timedelta(days=int(window))]
    assert got == len(observed) > 0
    buys = uci["buys"]
    later = buys[buys["customer"].isin(observed.index) & (buys["day"] > buys["customer"].map(observed))]
    second = later.groupby("customer")["day"].min()
    assert got_next == int(((second - observed.reindex(second.index)).dt.days <= int(window)).sum())


def test_cohort_chart_hatches_december_2011(online_retail_run):
    with _serving(online_retail_run) as con:
        chart = charts.cohort_retention_chart(con)
    partial = {(d["cohort_month"], d["months_since_first_purchase"]) for d in chart.data if d["is_partial_period"]}
    want = {
        (d["cohort_month"], d["months_since_first_purchase"])
        for d in chart.data
        if (pd.Timestamp(d["cohort_month"]) + pd.DateOffset(months=d["months_since_first_purchase"])).date()
        == date(2011, 12, 1)
    }
    assert partial == want and want
    assert "Hatched" in chart.caption
