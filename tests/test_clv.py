"""BG/NBD + Gamma-Gamma CLV models (dagster_project.lib.clv).

The shared-data test reproduces the published CDNOW maximum-likelihood fits (Fader, Hardie & Lee
2005; Fader & Hardie 2013); the rest are fast unit tests on formulas, guards and simulated data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dagster_project.lib import clv

PUBLISHED_BGNBD = {"r": 0.2426, "alpha": 4.4136, "a": 0.7929, "b": 2.4259}
PUBLISHED_BGNBD_LL = -9582.43
PUBLISHED_GG = {"p": 6.2488, "q": 3.7446, "gamma": 15.4477}
# Parameters as printed in the BG/NBD paper (rounded), used by Hardie's Excel sheet.
PAPER_ROUNDED = clv.BgNbdParams(r=0.243, alpha=4.414, a=0.793, b=2.426)


def _load_cdnow(shared_data) -> pd.DataFrame:
    path = shared_data / "cdnow" / "CDNOW_sample.txt"
    if not path.is_file():
        pytest.fail(f"{path} is missing from the shared reference data")
    df = pd.read_csv(path, sep=r"\s+", header=None, names=["master_id", "customer_id", "date", "cds", "value"],
                     dtype={"date": str})
    df["date"] = pd.to_datetime(df["date"], format="%Y%m%d")
    return df


@pytest.mark.shared_data
def test_cdnow_reproduces_published_fits(shared_data):
    df = _load_cdnow(shared_data)
    summary = clv.rfm_summary_from_transactions(df, "customer_id", "date", "value", "1997-09-30", time_unit="W")
    assert len(summary) == 2357
    # First customer of the paper's Excel sheet: x = 2, t_x = 30.43, T = 38.86.
    first = summary.loc[1]
    assert (first["frequency"], round(first["recency"], 2), round(first["T"], 2)) == (2, 30.43, 38.86)

    bg = clv.fit_bgnbd(summary["frequency"], summary["recency"], summary["T"])
    assert bg.converged, bg.message
    assert bg.n_customers == 2357
    for name, published in PUBLISHED_BGNBD.items():
        got = getattr(bg.params, name)
        assert got == pytest.approx(published, rel=0.01), f"BG/NBD {name}: {got} vs published {published}"
    assert bg.log_likelihood == pytest.approx(PUBLISHED_BGNBD_LL, abs=0.1)

    gg = clv.fit_gamma_gamma(summary["frequency"], summary["monetary_value"])
    assert gg.converged, gg.message
    assert gg.n_customers == 946
    assert gg.n_excluded == 0
    for name, published in PUBLISHED_GG.items():
        got = getattr(gg.params, name)
        assert got == pytest.approx(published, rel=0.01), f"Gamma-Gamma {name}: {got} vs published {published}"

    # Scoring the whole base works and is sane.
    x, t_x, T, m = (summary[c].to_numpy() for c in ("frequency", "recency", "T", "monetary_value"))
    alive = clv.p_alive(bg, x, t_x, T)
    assert ((alive > 0) & (alive <= 1)).all()
    value = clv.predicted_clv(bg, gg, x, t_x, T, m, horizon_periods=12, discount_rate_per_period=0.01,
                              period_length=365.25 / 12 / 7)
    assert np.isfinite(value).all() and (value >= 0).all()


# ---------------------------------------------------------------------------------------------- fast


def test_p_alive_is_one_without_repeat_purchases():
    alive = clv.p_alive(PAPER_ROUNDED, [0, 0, 0], [0, 0, 0], [1.0, 20.0, 70.0])
    np.testing.assert_array_equal(alive, 1.0)
    # ... and below 1 for a repeat buyer who has been quiet for a while, falling with the silence.
    quiet = clv.p_alive(PAPER_ROUNDED, [3, 3], [10.0, 10.0], [20.0, 60.0])
    assert 0 < quiet[1] < quiet[0] < 1


def test_expected_purchases_increase_with_t():
    t = np.array([0.0, 1.0, 4.0, 13.0, 39.0, 52.0, 104.0, 520.0])
    for x, t_x, T in [(0, 0.0, 38.86), (2, 30.43, 38.86), (26, 30.86, 31.0), (5, 2.0, 40.0)]:
        e = clv.expected_purchases(PAPER_ROUNDED, t, x, t_x, T)
        assert e[0] == pytest.approx(0.0, abs=1e-12)
        assert (np.diff(e) > 0).all(), (x, t_x, T, e)
    new = clv.expected_purchases_new_customer(PAPER_ROUNDED, t)
    assert (np.diff(new) > 0).all()


def test_conditional_expectation_matches_hardie_excel_sheet():
    # FHL 2005 / Hardie's Excel sheet: customer 1 of CDNOW, next 39 weeks -> 1.226.
    assert clv.expected_purchases(PAPER_ROUNDED, 39, 2, 30.43, 38.86) == pytest.approx(1.226, abs=1e-3)


def test_grouped_scoring_matches_per_customer_scoring():
    # Large day-grained inputs are scored once per distinct (x, T); results must be identical.
    rng = np.random.default_rng(3)
    T = rng.integers(0, 400, 30_000) / 7.0
    x, t_x = clv.simulate_bgnbd_summary(PAPER_ROUNDED, T, rng)
    t_x = np.round(t_x * 7.0) / 7.0
    grouped = clv.expected_purchases(PAPER_ROUNDED, 13.0, x, t_x, T)  # scalar t: grouped path
    direct = clv.expected_purchases(PAPER_ROUNDED, np.full_like(T, 13.0), x, t_x, T)  # array t: per customer
    np.testing.assert_allclose(grouped, direct, rtol=1e-12)


def test_new_customer_expectation_matches_simulation_and_conditional_at_zero():
    rng = np.random.default_rng(7)
    n = 200_000
    for t in (10.0, 39.0, 78.0):
        x, _ = clv.simulate_bgnbd_summary(PAPER_ROUNDED, np.full(n, t), rng)
        expected = float(clv.expected_purchases_new_customer(PAPER_ROUNDED, t))
        assert x.mean() == pytest.approx(expected, abs=4 * x.std() / np.sqrt(n))
        # a customer with no history (x = t_x = T = 0) is a new customer
        assert float(clv.expected_purchases(PAPER_ROUNDED, t, 0, 0.0, 0.0)) == pytest.approx(expected, rel=1e-10)


def test_guard_raises_readable_message():
    with pytest.raises(clv.ClvDataError) as err:
        clv.check_enough_data(12, 52, min_repeat_customers=100, min_history_periods=13)
    assert str(err.value) == "only 12 customers bought more than once; at least 100 are needed to fit a purchase model"
    with pytest.raises(clv.ClvDataError, match="covers only 4 weeks; at least 13 weeks"):
        clv.check_enough_data(500, 4, min_repeat_customers=100, min_history_periods=13)
    clv.check_enough_data(100, 13, min_repeat_customers=100, min_history_periods=13)  # enough: no error
    with pytest.raises(clv.ClvDataError, match="no customer bought more than once"):
        clv.fit_bgnbd([0, 0, 0], [0, 0, 0], [5.0, 6.0, 7.0])
    with pytest.raises(clv.ClvDataError):
        clv.fit_gamma_gamma([0, 2], [0.0, -5.0])


def test_bgnbd_fit_recovers_simulated_parameters():
    true = clv.BgNbdParams(r=1.0, alpha=8.0, a=1.5, b=6.0)
    rng = np.random.default_rng(2024)
    T = rng.uniform(26, 104, 10_000)
    x, t_x = clv.simulate_bgnbd_summary(true, T, rng)
    fit = clv.fit_bgnbd(x, t_x, T)
    assert fit.converged, fit.message
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fit.params, name) == pytest.approx(getattr(true, name), rel=0.15), name
    # the maximum really is a maximum: it beats the true parameters and nearby points
    best = fit.log_likelihood
    assert best >= clv.bgnbd_log_likelihood(true, x, t_x, T).sum()
    for k in range(4):
        for step in (0.9, 1.1):
            vals = list(fit.params.as_dict().values())
            vals[k] *= step
            assert clv.bgnbd_log_likelihood(clv.BgNbdParams(*vals), x, t_x, T).sum() < best


def test_compressed_and_weighted_fits_match_plain_fits():
    rng = np.random.default_rng(11)
    T = rng.integers(0, 200, 8000) / 7.0  # day grid: many identical (x, t_x, T) rows
    x, t_x = clv.simulate_bgnbd_summary(PAPER_ROUNDED, T, rng)
    t_x = np.round(t_x * 7.0) / 7.0
    plain = clv.fit_bgnbd(x, t_x, T, compress=False)
    packed = clv.fit_bgnbd(x, t_x, T)
    for name in ("r", "alpha", "a", "b"):
        assert getattr(packed.params, name) == pytest.approx(getattr(plain.params, name), rel=1e-5)
    assert packed.log_likelihood == pytest.approx(plain.log_likelihood, abs=1e-4)
    assert packed.n_customers == plain.n_customers == 8000
    half = clv.fit_bgnbd(x[:4000], t_x[:4000], T[:4000], weights=np.full(4000, 2.0))
    doubled = clv.fit_bgnbd(np.tile(x[:4000], 2), np.tile(t_x[:4000], 2), np.tile(T[:4000], 2), compress=False)
    assert half.n_customers == 8000
    assert half.params.r == pytest.approx(doubled.params.r, rel=1e-5)
    assert half.log_likelihood == pytest.approx(doubled.log_likelihood, abs=1e-4)


def test_gamma_gamma_fit_recovers_simulated_parameters():
    true = clv.GammaGammaParams(p=6.0, q=4.0, gamma=15.0)
    rng = np.random.default_rng(99)
    T = rng.uniform(26, 104, 10_000)
    x, _ = clv.simulate_bgnbd_summary(clv.BgNbdParams(1.0, 8.0, 1.5, 6.0), T, rng)
    m = clv.simulate_gamma_gamma_spend(true, x, rng)
    fit = clv.fit_gamma_gamma(x, m)
    assert fit.converged, fit.message
    assert fit.n_customers == int((x > 0).sum())
    for name in ("p", "q", "gamma"):  # p and gamma trade off against each other, hence 20%
        assert getattr(fit.params, name) == pytest.approx(getattr(true, name), rel=0.20), name
    assert clv.population_mean_spend(fit) == pytest.approx(clv.population_mean_spend(true), rel=0.05)


def test_analytic_gradients_match_finite_differences():
    rng = np.random.default_rng(5)
    T = rng.uniform(10, 60, 3000)
    x, t_x = clv.simulate_bgnbd_summary(clv.BgNbdParams(0.5, 5.0, 0.9, 3.0), T, rng)
    m = clv.simulate_gamma_gamma_spend(clv.GammaGammaParams(5.0, 3.0, 20.0), x, rng)
    w = np.ones_like(x)
    xu, xi = np.unique(x, return_inverse=True)
    args = (x, t_x, T, w, w.sum(), xu, xi)
    u = np.log([0.4, 6.0, 1.1, 2.5])
    _, grad = clv._bgnbd_objective(u, *args)
    eps = 1e-6
    num = [(clv._bgnbd_objective(u + e, *args)[0] - clv._bgnbd_objective(u - e, *args)[0]) / (2 * eps)
           for e in np.eye(4) * eps]
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-8)

    k = x > 0
    xu, xi = np.unique(x[k], return_inverse=True)
    args = (x[k], m[k], w[k], k.sum(), np.log(x[k]), np.log(m[k]), xu, xi)
    u = np.log([4.0, 2.5, 25.0])
    _, grad = clv._gg_objective(u, *args)
    num = [(clv._gg_objective(u + e, *args)[0] - clv._gg_objective(u - e, *args)[0]) / (2 * eps)
           for e in np.eye(3) * eps]
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-8)


def test_rfm_summary_conventions():
    tx = pd.DataFrame({
        "cust": ["a", "a", "a", "a", "a", "b", "c", "c"],
        "ts": ["2024-01-01 09:00", "2024-01-01 18:00", "2024-01-08", "2024-01-15 10:00", "2024-01-15 11:00",
               "2024-01-10", "2024-01-20", "2024-03-01"],
        "value": [10.0, 5.0, 20.0, 7.0, 3.0, 50.0, 8.0, 99.0],
    })
    s = clv.rfm_summary_from_transactions(tx, "cust", "ts", "value", "2024-01-29", time_unit="W")
    assert list(s.index) == ["a", "b", "c"]
    a = s.loc["a"]
    # three purchase days -> two repeats; repeat day totals 20 and 10 -> m_x 15; first day (15) excluded
    assert (a["frequency"], a["recency"], a["T"], a["monetary_value"]) == (2, 2.0, 4.0, 15.0)
    assert tuple(s.loc["b"]) == (0, 0.0, 19 / 7, 0.0)
    assert tuple(s.loc["c"]) == (0, 0.0, 9 / 7, 0.0)  # the March purchase is after calibration_end
    d = clv.rfm_summary_from_transactions(tx, "cust", "ts", None, "2024-01-29", time_unit="D")
    assert list(d.columns) == ["frequency", "recency", "T"]
    assert tuple(d.loc["a"]) == (2, 14.0, 28.0)


def test_predicted_clv():
    bg, gg = PAPER_ROUNDED, clv.GammaGammaParams(6.25, 3.74, 15.44)
    x = np.array([0.0, 2.0, 2.0, 10.0])
    t_x = np.array([0.0, 30.43, 5.0, 38.0])
    T = np.array([38.86, 38.86, 38.86, 38.86])
    m = np.array([0.0, 22.35, 22.35, 40.0])
    month = 365.25 / 12 / 7
    one = clv.predicted_clv(bg, gg, x, t_x, T, m, horizon_periods=1, discount_rate_per_period=0.0, period_length=month)
    spend = clv.expected_average_spend(gg, x, m)
    np.testing.assert_allclose(one, clv.expected_purchases(bg, month, x, t_x, T) * spend)
    assert spend[0] == pytest.approx(clv.population_mean_spend(gg))  # no repeat spend -> population mean
    year = clv.predicted_clv(bg, gg, x, t_x, T, m, 12, 0.0, period_length=month)
    np.testing.assert_allclose(year, clv.expected_purchases(bg, 12 * month, x, t_x, T) * spend)
    discounted = clv.predicted_clv(bg, gg, x, t_x, T, m, 12, 0.01, period_length=month)
    assert ((discounted < year) & (discounted > one)).all()
    assert discounted[1] > discounted[2]  # same history, but the recent buyer is worth more
    assert discounted[3] > discounted[1]


def test_pipeline_publishes_no_predictions_when_scores_are_not_finite(monkeypatch):
    """The CLV asset turns non-finite model output into a clear 'no predictions' reason."""
    import pandas as pd

    from dagster_project.defs.models import assets as clv_assets

    rng = np.random.default_rng(3)
    n = 2_000
    T = rng.uniform(30, 100, n)
    x, t_x = clv.simulate_bgnbd_summary(clv.BgNbdParams(1.0, 8.0, 1.5, 6.0), T, rng)
    m = clv.simulate_gamma_gamma_spend(clv.GammaGammaParams(6.0, 4.0, 15.0), x, rng)
    summary = pd.DataFrame({"customer_key": [f"c{i}" for i in range(n)], "repeat_purchase_days": x,
                            "btyd_recency_weeks": t_x, "btyd_age_weeks": T,
                            "repeat_mean_purchase_value": np.where(x > 0, m, np.nan)})
    scores, _ = clv_assets.fit_and_score(summary)
    assert np.isfinite(scores.drop(columns=["customer_key"]).to_numpy(float)).all()
    monkeypatch.setattr(clv_assets.clv, "expected_purchases", lambda *a, **k: np.full(n, np.nan))
    with pytest.raises(clv_assets.clv.ClvDataError, match="non-finite predictions for 2000 customers"):
        clv_assets.fit_and_score(summary)
