"""Per-customer predictions (marts.customer_predictions) and the check of the expected next order date
(marts.next_order_holdout): the model's raw outputs against `lifetimes` on CDNOW, the mart's derived fields
recomputed in plain pandas on the demo run (model dates) and on UCI Online Retail (own-history dates, the fit
being unreliable there), and the holdout share recomputed from the raw invoices."""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml

from dagster_project.defs.models import assets as clv_assets
from dagster_project.lib.clv import btyd
from tests import uci
from tests.test_clv import _load_cdnow

_VARS = yaml.safe_load((Path(__file__).parents[1] / "dbt" / "dbt_project.yml").read_text())["vars"]
HOLDOUT_DAYS = _VARS["clv_holdout_days"]


def _days(x) -> pd.Series:
    """Whole days, rounded half away from zero (SQL round), of non-negative day counts."""
    return np.floor(pd.Series(x, dtype="float64") + 0.5)


def _own_window(last: pd.Series, avg: pd.Series) -> pd.DataFrame:
    """The own-history rule, as docs/clv.md states it: the last purchase day plus the average interval
    (expected date), plus half and one and a half of it (the window)."""
    return pd.DataFrame(
        {
            "expected": last + pd.to_timedelta(_days(avg).to_numpy(), unit="D"),
            "start": last + pd.to_timedelta(_days(avg * 0.5).to_numpy(), unit="D"),
            "end": last + pd.to_timedelta(_days(avg * 1.5).to_numpy(), unit="D"),
        },
        index=last.index,
    )


def test_time_to_next_purchase_matches_simulated_waits():
    """The quantiles of the wait from the last purchase: a gamma-distributed rate, an exponential wait."""
    rng = np.random.default_rng(3)
    params = btyd.BgNbdParams(r=0.24, alpha=4.4, a=0.79, b=2.4)
    for x, t_x in ((1, 10.0), (6, 30.0)):
        rate = rng.gamma(params.r + x, 1 / (params.alpha + t_x), 400_000)
        wait = rng.exponential(1 / rate)
        for q in (0.25, 0.5, 0.75):
            assert btyd.time_to_next_purchase(params, q, x, t_x) == pytest.approx(np.quantile(wait, q), rel=0.02)
    # more purchases in the same time: a shorter wait; the quantiles are ordered
    quartiles = [btyd.time_to_next_purchase(params, q, np.array([2.0, 8.0]), 20.0) for q in (0.25, 0.5, 0.75)]
    assert (quartiles[0] < quartiles[1]).all() and (quartiles[1] < quartiles[2]).all()
    assert quartiles[1][1] < quartiles[1][0]


@pytest.mark.shared_data
def test_cdnow_predictions_equal_lifetimes_conditional_expectations(shared_data):
    """The raw outputs the mart publishes (expected purchases 90/365 days, P(alive), expected spend) are
    `lifetimes`' conditional expectations: with the same parameters to 1e-9, with lifetimes' own fit to 1%."""
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    s = btyd.rfm_summary_from_transactions(
        _load_cdnow(shared_data), "customer_id", "date", "value", "1998-06-30", time_unit="W"
    )
    summary = pd.DataFrame(
        {
            "customer_key": s.index.astype(str),
            "repeat_purchase_days": s["frequency"].to_numpy(),
            "btyd_recency_weeks": s["recency"].to_numpy(),
            "btyd_age_weeks": s["T"].to_numpy(),
            "repeat_mean_purchase_value": s["monetary_value"].to_numpy(),
        }
    )
    scores, fit = clv_assets.fit_and_score(summary)
    assert fit["reasons"] == []  # CDNOW: a reliable fit
    x, t_x, T, m = (s[c] for c in ("frequency", "recency", "T", "monetary_value"))
    bg = fit["bgnbd"]["params"]
    gg = fit["gamma_gamma"]["params"]
    same = BetaGeoFitter()
    same.params_ = pd.Series({k: bg[k] for k in ("r", "alpha", "a", "b")})
    fitted = BetaGeoFitter().fit(x, t_x, T)
    spend = GammaGammaFitter()
    spend.params_ = pd.Series({"p": gg["p"], "q": gg["q"], "v": gg["gamma"]})
    for model, rel in ((same, 1e-9), (fitted, 1e-2)):
        for column, days in clv_assets.PURCHASE_HORIZON_DAYS.items():
            theirs = model.conditional_expected_number_of_purchases_up_to_time(days / 7, x, t_x, T)
            np.testing.assert_allclose(scores[column], np.asarray(theirs), rtol=rel, err_msg=column)
        np.testing.assert_allclose(
            scores["p_alive"], np.asarray(model.conditional_probability_alive(x, t_x, T)), rtol=rel
        )
    # the wait for the next purchase: repeat buyers only (the marts date no next order for one-time buyers)
    repeat = (x > 0).to_numpy()
    for column, q in clv_assets.NEXT_PURCHASE_QUANTILES.items():
        assert scores.loc[~repeat, column].isna().all()
        want = 7 * btyd.time_to_next_purchase(fit["bgnbd"]["params"], q, x[repeat], t_x[repeat])
        np.testing.assert_allclose(scores.loc[repeat, column], want, rtol=1e-12)
    theirs = spend.conditional_expected_average_profit(x, m.where(x > 0, 0))
    np.testing.assert_allclose(scores["expected_spend_per_purchase"], np.asarray(theirs), rtol=1e-9)


@pytest.mark.slow
def test_demo_predictions_recomputed_in_pandas(demo_run):
    """On the demo run (a reliable fit): the published fields are the fit's raw outputs, churn risk and its
    band follow P(alive), and the next order date is the last purchase day plus the model's median wait
    (recomputed from the fit's parameters), its window the quartiles."""
    assert demo_run["result"].success
    data_dir = demo_run["data_dir"]
    with duckdb.connect(str(data_dir / "warehouse" / "pipeline.duckdb"), read_only=True) as con:
        summary = con.execute(
            "select customer_key, repeat_purchase_days, btyd_recency_weeks from intermediate.int_customer_btyd_summary"
        ).df()
        scores = con.execute("select * from clv.customer_scores").df().add_prefix("raw_")
        fit = con.execute(
            "select status, bgnbd_r, bgnbd_alpha from marts.clv_model_fits where run_id = (select max(run_id) "
            "from clv.customer_scores)"
        ).df()
        mart = con.execute("select * from marts.customer_predictions").df()
        ltv = con.execute("select customer_key, historical_ltv, gross_margin from marts.customer_ltv").df()
    assert fit["status"].tolist() == ["fitted"]
    r, alpha = float(fit["bgnbd_r"].iloc[0]), float(fit["bgnbd_alpha"].iloc[0])
    df = mart.merge(summary, on="customer_key", validate="1:1").merge(
        scores, left_on="customer_key", right_on="raw_customer_key", validate="1:1"
    )
    assert len(df) == len(summary) == len(mart)
    assert (df["purchase_days"] == df["repeat_purchase_days"] + 1).all()
    assert df["predictions_empty_reason"].isna().all() and (df["model_status"] == "fitted").all()
    for ours, raw in (
        ("predicted_orders_90d", "raw_expected_purchases_90d"),
        ("predicted_orders_365d", "raw_expected_purchases_365d"),
        ("p_alive", "raw_p_alive"),
    ):
        np.testing.assert_allclose(df[ours], df[raw], rtol=1e-12, err_msg=ours)
    np.testing.assert_allclose(df["predicted_clv_12m"].astype(float), df["raw_predicted_clv_12m"], atol=0.005)
    # in margin: the predicted revenue at the customer's historical margin share (gross margin ÷ net revenue)
    m = df.merge(ltv, on="customer_key", how="left", validate="1:1")
    positive = m["historical_ltv"].astype(float) > 0
    share = m["gross_margin"].astype(float) / m["historical_ltv"].astype(float)
    want = (m["predicted_clv_12m"].astype(float) * share)[positive]
    np.testing.assert_allclose(m.loc[positive, "predicted_clv_margin_12m"].astype(float), want, atol=0.01)
    assert m.loc[~positive, "predicted_clv_margin_12m"].isna().all()
    assert positive.sum() > 0.9 * len(m)
    repeat = df["purchase_days"] >= 2
    np.testing.assert_allclose(df.loc[repeat, "churn_risk"], 1 - df.loc[repeat, "p_alive"], rtol=1e-12)
    assert df.loc[~repeat, ["churn_risk", "churn_risk_band"]].isna().all().all()
    assert df.loc[~repeat, "churn_risk_empty_reason"].str.startswith("one purchase day").all()
    risk = df.loc[repeat, "churn_risk"]
    band = np.where(risk < 1 / 3, "low", np.where(risk < 2 / 3, "medium", "high"))
    assert (df.loc[repeat, "churn_risk_band"] == band).all()
    # the dates: the median (and quartile) wait of a gamma-mixed exponential, from the last purchase
    rep = df[repeat]
    assert (rep["expected_next_order_source"] == "model").all() and df.loc[
        ~repeat, "expected_next_order_date"
    ].isna().all()
    last = pd.to_datetime(rep["last_purchase_date"])
    for column, q in (
        ("next_order_window_start", 0.25),
        ("expected_next_order_date", 0.5),
        ("next_order_window_end", 0.75),
    ):
        wait_days = 7 * (alpha + rep["btyd_recency_weeks"]) * ((1 - q) ** (-1 / (r + rep["repeat_purchase_days"])) - 1)
        expected = last + pd.to_timedelta(_days(wait_days).to_numpy(), unit="D")
        assert (pd.to_datetime(rep[column]) == expected).all(), column
    avg = (last - pd.to_datetime(rep["first_purchase_date"])).dt.days / (rep["purchase_days"] - 1)
    np.testing.assert_allclose(rep["avg_days_between_orders"], avg, rtol=1e-12)


def _uci_purchase_days(run) -> pd.DataFrame:
    """customer (the export's CustomerID) and day of every purchase day: a day with an invoice of positive
    value (credit notes are not purchases)."""
    inv = uci.invoices(run["parquet"])
    inv = inv[(inv["net"] > 0) & (inv["day"] <= pd.Timestamp(run["as_of"]))]
    inv["customer"] = "online_retail:" + inv["customer"].astype("int64").astype(str)
    return inv[["customer", "day"]].drop_duplicates()


def _uci_mart(run, sql: str) -> pd.DataFrame:
    data_dir = run["data_dir"]
    with duckdb.connect(str(data_dir / "warehouse" / "pipeline.duckdb"), read_only=True) as con:
        keys = con.execute(
            "select distinct raw_value, customer_key from identity.identifiers "
            "where id_type = 'source_customer_id' and source = 'generic'"
        ).df()
        mart = con.execute(sql).df()
    keys["customer"] = keys["raw_value"].str.replace(r"\.0+$", "", regex=True)
    return mart.merge(keys[["customer_key", "customer"]], on="customer_key", how="left")


@pytest.mark.shared_data
@pytest.mark.slow
def test_uci_predictions_are_empty_with_reasons_and_dates_come_from_own_history(online_retail_run):
    run = online_retail_run
    assert run["exit_code"] == 0
    days = _uci_purchase_days(run)
    per = days.groupby("customer")["day"].agg(first="min", last="max", n="nunique")
    mart = _uci_mart(run, "select * from marts.customer_predictions").set_index("customer")
    assert mart.index.notna().all() and set(mart.index) == set(per.index)
    df = mart.join(per)
    assert (df["purchase_days"] == df["n"]).all()
    # the fit is unreliable on UCI: every model figure is empty, with the reason
    assert (df["model_status"] == "unreliable").all()
    model_fields = ["predicted_orders_90d", "predicted_orders_365d", "predicted_clv_12m", "p_alive", "churn_risk"]
    assert df[model_fields + ["churn_risk_band", "predicted_value_tier"]].isna().all().all()
    assert (
        df["predictions_empty_reason"] == "the CLV fit is unreliable (clv_model_fits.unreliable_reasons says why)"
    ).all()
    assert (df["churn_risk_empty_reason"] == df["predictions_empty_reason"]).all()
    # own history: average interval between purchase days, the date and window from the last purchase day
    repeat = df["n"] >= 2
    rep = df[repeat]
    avg = (rep["last"] - rep["first"]).dt.days / (rep["n"] - 1)
    np.testing.assert_allclose(rep["avg_days_between_orders"], avg, rtol=1e-12)
    assert (rep["expected_next_order_source"] == "own_history").all()
    want = _own_window(rep["last"], avg)
    assert (pd.to_datetime(rep["expected_next_order_date"]) == want["expected"]).all()
    assert (pd.to_datetime(rep["next_order_window_start"]) == want["start"]).all()
    assert (pd.to_datetime(rep["next_order_window_end"]) == want["end"]).all()
    single = df[~repeat]
    assert (
        single[["avg_days_between_orders", "expected_next_order_date", "expected_next_order_source"]].isna().all().all()
    )
    assert single["next_order_empty_reason"].str.startswith("one purchase day").all()
    assert rep["next_order_empty_reason"].isna().all()


@pytest.mark.shared_data
@pytest.mark.slow
def test_uci_next_order_holdout_share_recomputed_and_reported(online_retail_run):
    """The share of customers whose next order fell in their predicted window, recomputed from the raw
    invoices: windows from the purchase days up to the cut (as-of minus the holdout), scored where they lie
    wholly inside the held-out days."""
    run = online_retail_run
    as_of = pd.Timestamp(run["as_of"])
    cut = as_of - pd.Timedelta(days=HOLDOUT_DAYS)
    days = _uci_purchase_days(run)
    before = days[days["day"] <= cut].groupby("customer")["day"].agg(first="min", last="max", n="nunique")
    after = days[days["day"] > cut].groupby("customer")["day"].min().rename("next")
    rep = before[before["n"] >= 2].join(after)
    avg = (rep["last"] - rep["first"]).dt.days / (rep["n"] - 1)
    w = _own_window(rep["last"], avg).join(rep["next"])
    scored = w[(w["start"] > cut) & (w["end"] <= as_of)]
    hits = int(((scored["next"] >= scored["start"]) & (scored["next"] <= scored["end"])).sum())
    with duckdb.connect(str(run["data_dir"] / "serving" / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute("select * from marts.next_order_holdout").df().set_index("source")
    own = rows.loc["own_history"]
    assert bool(own["used_this_run"]) and not bool(rows.loc["model", "used_this_run"])
    assert own["repeat_customers_at_cut"] == len(rep)
    assert own["customers_evaluated"] == len(scored) > 100
    assert own["next_order_in_window"] == hits
    assert own["ordered_in_holdout"] == int(scored["next"].notna().sum())
    assert own["share_in_window"] == pytest.approx(hits / len(scored))
    # the model's row is the holdout fit's windows, for comparison (its fit is degenerate on UCI)
    assert rows.loc["model", "customers_evaluated"] > 0
    # shown in the run report
    report = (run["data_dir"] / "exports" / "latest" / "report.html").read_text(encoding="utf-8")
    assert "Expected next order date: holdout check" in report
    assert f"{hits:,} of {len(scored):,} customers ({hits / len(scored):.0%}) ordered inside their window" in report
