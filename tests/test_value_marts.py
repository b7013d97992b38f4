"""Value marts: the behaviour planted in the demo data is found, and UCI Online Retail is recomputed independently."""

from datetime import date

import duckdb
import numpy as np
import pandas as pd
import pytest

from tests import uci
from tests.conftest import DEMO_AS_OF

pytestmark = pytest.mark.slow

VALUE_MARTS = [
    "repeat_purchase_ladder",
    "cohort_retention",
    "customer_ltv",
    "customer_value_summary",
    "pareto_curve",
    "pareto_summary",
    "membership_value",
    "channel_economics",
    "channel_economics_summary",
    "omnichannel_value",
    "daily_kpis",
    "store_funnel",
]


def _serving(data_dir):
    return duckdb.connect(str(data_dir / "serving" / "warehouse.duckdb"), read_only=True)


def test_demo_planted_behaviour_is_found(demo_run):
    with _serving(demo_run["data_dir"]) as con:
        tables = {
            r[0] for r in con.execute("select table_name from duckdb_tables() where schema_name = 'marts'").fetchall()
        }
        assert set(VALUE_MARTS) <= tables
        ladder = dict(
            con.execute(
                "select n, repeat_rate from marts.repeat_purchase_ladder where dimension = 'overall' and n <= 3"
            ).fetchall()
        )
        # planted 27% / 45% / 54%; a 1,500-customer sample, so a sampling tolerance
        assert ladder[1] == pytest.approx(0.27, abs=0.05)
        assert ladder[2] == pytest.approx(0.45, abs=0.10)
        assert ladder[3] == pytest.approx(0.54, abs=0.15)
        assert ladder[1] < ladder[2] < ladder[3]  # every step up the ladder makes the next more likely
        multiple = con.execute(
            "select member_spend_multiple from marts.membership_value where channel = 'all'"
        ).fetchone()[0]
        assert multiple > 2.0  # planted: members spend several times what non-members do
        omni = dict(
            con.execute("select customer_group, multiple_vs_single_channel from marts.omnichannel_value").fetchall()
        )
        assert omni["omnichannel"] > 1.2
        top20, su_share, su_rev = con.execute(
            "select top_20pct_revenue_share, super_user_customer_share, super_user_revenue_share from marts.pareto_summary"  # noqa: E501 (SQL or printed text)
        ).fetchone()
        assert 0.5 <= top20 <= 0.8  # planted: the top fifth give most of the revenue (~63%)
        assert su_rev >= 0.8 and 0 < su_share < 0.6
        # the headline agrees with dim_customers' flag and an independent ranking
        rev = con.execute("select net_revenue, is_super_user from marts.dim_customers where net_revenue > 0").df()
        flagged = int(rev["is_super_user"].sum())
        assert flagged == con.execute("select super_users from marts.pareto_summary").fetchone()[0]
        values = np.sort(rev["net_revenue"].astype(float).to_numpy())[::-1]
        top = values[: int(len(values) * 0.2)].sum() / values.sum()
        assert top == pytest.approx(top20, abs=0.01)
        # CAC is reported for paid channels, and channels without spend are kept
        channels = {
            r[0]: r[1]
            for r in con.execute(
                "select channel, sum(marketing_spend) from marts.channel_economics group by 1"
            ).fetchall()
        }
        assert {"google", "meta", "organic", "store"} <= set(channels) and float(channels["organic"]) == 0
        # the funnel identity holds wherever footfall and sales meet
        bad = con.execute(
            "select count(*) from marts.store_funnel where visitors > 0 and transactions > 0 "
            "and abs(revenue_from_formula - net_revenue) > 0.01"
        ).fetchone()[0]
        assert (
            bad == 0 and con.execute("select count(*) from marts.store_funnel where transactions > 0").fetchone()[0] > 0
        )


@pytest.mark.shared_data
def test_online_retail_pareto_share_matches_independent_recomputation(online_retail_run):
    inv = uci.invoices(online_retail_run["parquet"])
    per_customer = inv.groupby("customer")["net"].sum().round(2)
    values = np.sort(per_customer[per_customer > 0].to_numpy())[::-1]
    cumulative = np.cumsum(values) / values.sum()
    before = (np.cumsum(values) - values) / values.sum()
    threshold = values[before < 0.8].min()
    super_users = int((values >= threshold).sum())
    top20 = values[: int(len(values) * 0.2)].sum() / values.sum()
    with _serving(online_retail_run["data_dir"]) as con:
        customers, got_super, got_top20, rev_share = con.execute(
            "select customers, super_users, top_20pct_revenue_share, super_user_revenue_share from marts.pareto_summary"
        ).fetchone()
    assert customers == len(values)
    assert got_super == super_users
    assert got_top20 == pytest.approx(top20, abs=1e-9)
    assert rev_share == pytest.approx(values[values >= threshold].sum() / values.sum(), abs=1e-9)
    assert cumulative[-1] == pytest.approx(1.0)


def test_demo_predicted_clv(demo_run):
    with _serving(demo_run["data_dir"]) as con:
        fit = con.execute(
            "select status, repeat_customers, bgnbd_r, gg_p, holdout_relative_error, unreliable_reasons "
            "from marts.clv_model_fits"
        ).fetchone()
        assert fit[0] == "fitted" and fit[1] >= 100 and fit[2] > 0 and fit[3] > 0, fit[5]
        assert fit[5] is None
        assert con.execute("select distinct model_status, as_of_date from marts.customer_clv").fetchall() == [
            ("fitted", date.fromisoformat(DEMO_AS_OF))
        ]
        scored = con.execute("select count(*) from marts.customer_clv").fetchone()[0]
        assert scored == con.execute("select count(*) from marts.dim_customers where purchase_count > 0").fetchone()[0]
        assert (
            con.execute(
                "select count(*) from marts.customer_clv where p_alive not between 0 and 1 "
                "or expected_purchases_365d < expected_purchases_90d or predicted_clv_12m < 0"
            ).fetchone()[0]
            == 0
        )
        tiers = dict(con.execute("select predicted_value_tier, count(*) from marts.customer_clv group by 1").fetchall())
        assert set(tiers) == {"high", "mid", "low"}
        # the tier, recomputed in pandas: percent rank of the predicted CLV, highest first (ties share a rank)
        clv = con.execute("select customer_key, predicted_clv_12m, predicted_value_tier from marts.customer_clv").df()
        value = clv["predicted_clv_12m"].astype(float)
        rank = (value.rank(method="min", ascending=False) - 1) / (len(clv) - 1)
        want = np.where(rank < 0.2, "high", np.where(rank < 0.5, "mid", "low"))
        assert (clv["predicted_value_tier"].to_numpy() == want).all()
        assert tiers["high"] == pytest.approx(0.2 * len(clv), abs=len(clv) * 0.02)
        # predicted value follows history: repeat buyers are predicted to be worth more than one-time buyers
        by_group = dict(
            con.execute(
                "select d.purchase_count > 1, avg(c.predicted_clv_12m) from marts.customer_clv c "
                "join marts.dim_customers d using (customer_key) group by 1"
            ).fetchall()
        )
        assert by_group[True] > by_group[False]
    checks = {
        c["check"]: c
        for c in __import__("json").loads((demo_run["data_dir"] / "exports" / "latest" / "manifest.json").read_text())[
            "checks"
        ]
    }
    assert checks["clv_holdout_error"]["severity"] == "WARN"
    assert checks["clv_fit_reliable"]["passed"] is True and checks["clv_fit_reliable"]["severity"] == "WARN"


def test_run_report_has_the_holdout_chart_with_the_marts_numbers(demo_run):
    import base64
    import json
    import re

    page = (demo_run["data_dir"] / "exports" / "latest" / "report.html").read_text()
    page = page[page.index("<h2>Predicted CLV: calibration vs holdout</h2>") :]
    page = page[: page.index("<h2>", 4)] if "<h2>" in page[4:] else page  # this section only
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1))
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000
    with _serving(demo_run["data_dir"]) as con:
        groups = json.loads(con.execute("select holdout_by_group from marts.clv_model_fits").fetchone()[0])
    cells = re.findall(
        r"<tr><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td><td>([^<]*)</td></tr>", page
    )
    assert [c[0] for c in cells] == [g["group"] for g in groups]
    for (_group, customers, predicted, actual, error), g in zip(cells, groups, strict=False):
        assert int(customers.replace(",", "")) == g["customers"] and int(actual.replace(",", "")) == g["actual"]
        assert float(predicted.replace(",", "")) == pytest.approx(g["predicted"], abs=0.05)
        if g["actual"]:  # each group's own error, which the total can hide
            assert error == f"{(g['predicted'] - g['actual']) / g['actual']:+.0%}"
    largest = max(groups, key=lambda g: g["customers"])
    assert f"{largest['customers']:,} customers) the model predicted {largest['predicted']:,.0f} purchases" in page


def channel_summary_in_pandas(economics: pd.DataFrame) -> pd.DataFrame:
    """channel_economics summed per channel over the acquisition months whose 12-month LTV is complete (every
    month when none is), with CAC, LTV and LTV:CAC of the sums: marts.channel_economics_summary, in pandas."""
    complete = bool(economics["ltv_12m_complete"].any())
    months = economics[economics["ltv_12m_complete"]] if complete else economics
    months = months.assign(
        spend=months["marketing_spend"].astype(float),
        revenue=months["ltv_12m"].astype(float).fillna(0) * months["new_customers"],
    )
    out = months.groupby("channel").agg(
        acquisition_months=("new_customers", lambda n: int((n > 0).sum())),
        new_customers=("new_customers", "sum"),
        marketing_spend=("spend", "sum"),
        revenue_12m=("revenue", "sum"),
    )
    new = out["new_customers"].where(out["new_customers"] > 0)
    out["cac"] = (out["marketing_spend"] / new).where(out["marketing_spend"] > 0)
    out["ltv_12m"] = out["revenue_12m"] / new
    out["ltv_to_cac"] = out["ltv_12m"] / out["cac"]
    out["has_spend"] = out["marketing_spend"] > 0
    out["ltv_12m_complete"] = complete
    return out


def test_demo_channel_economics_summary_recomputed_in_pandas(demo_run):
    with _serving(demo_run["data_dir"]) as con:
        economics = con.execute("select * from marts.channel_economics").df()
        got = con.execute("select * from marts.channel_economics_summary").df().set_index("channel").sort_index()
    want = channel_summary_in_pandas(economics)
    assert economics["ltv_12m_complete"].any() and not economics["ltv_12m_complete"].all()  # the filter bites
    assert got.index.equals(want.index)
    for column in ["acquisition_months", "new_customers", "has_spend", "ltv_12m_complete"]:
        assert (got[column] == want[column]).all(), column
    for column in ["marketing_spend", "revenue_12m"]:
        assert np.allclose(got[column].astype(float), want[column], rtol=0, atol=0.005), column
    for column in ["cac", "ltv_12m", "ltv_to_cac"]:
        assert np.allclose(got[column].astype(float), want[column], rtol=1e-12, atol=0, equal_nan=True), column
    assert got["cac"].notna().sum() >= 1 and got["cac"].isna().sum() >= 1  # paid channels and channels without spend
