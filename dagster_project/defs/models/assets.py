"""Predicted customer lifetime value: BG/NBD + Gamma-Gamma fitted on the dbt BTYD summary.

Writes two marts straight into the warehouse's `marts` schema (published with the others):
`marts.customer_clv` (per customer P(alive), expected purchases in 90 and 365 days, expected
spend per purchase, predicted 12-month CLV, predicted-value tier) and `marts.clv_model_fits`
(parameters, log-likelihood, fit time, status per run).  Too little data gives a clear message
and no predictions rather than garbage.
"""

import os
import time

import dagster as dg
import numpy as np
import pandas as pd

from dagster_project.lib import clv
from dagster_project.lib.orchestration import AS_OF_PARTITIONS, ONE_RUN_PER_DATE, retry_transient
from dagster_project.lib.resources import PipelineConfig

CLV_KEY = dg.AssetKey(["marts", "customer_clv"])
FITS_KEY = dg.AssetKey(["marts", "clv_model_fits"])
SUMMARY_KEY = dg.AssetKey(["intermediate", "int_customer_btyd_summary"])

MIN_REPEAT_CUSTOMERS = int(os.environ.get("PIPELINE_CLV_MIN_REPEAT_CUSTOMERS", "100"))
MIN_HISTORY_WEEKS = float(os.environ.get("PIPELINE_CLV_MIN_HISTORY_WEEKS", "26"))
ANNUAL_DISCOUNT_RATE = float(os.environ.get("PIPELINE_CLV_ANNUAL_DISCOUNT_RATE", "0.10"))
WEEKS_PER_MONTH = 365.25 / 12 / 7

CLV_COLUMNS = {
    "customer_key": "VARCHAR", "as_of_date": "DATE", "p_alive": "DOUBLE",
    "expected_purchases_90d": "DOUBLE", "expected_purchases_365d": "DOUBLE",
    "expected_spend_per_purchase": "DOUBLE", "predicted_clv_12m": "DECIMAL(18,2)", "predicted_value_tier": "VARCHAR",
}


def fit_and_score(summary: pd.DataFrame, key: str = "customer_key") -> tuple[pd.DataFrame, dict]:
    """Fit both models on the summary and score every customer (scores keep the summary's `key` column).

    Raises ClvDataError (a readable reason, no predictions) on too little data, a fit that did not
    converge, or predictions that are not finite numbers.
    """
    x = summary["repeat_purchase_days"].to_numpy(float)
    t_x = summary["btyd_recency_weeks"].to_numpy(float)
    T = summary["btyd_age_weeks"].to_numpy(float)
    m = summary["repeat_mean_purchase_value"].fillna(0).to_numpy(float)
    clv.check_enough_data(int((x > 0).sum()), float(T.max()) if len(T) else 0.0,
                          MIN_REPEAT_CUSTOMERS, MIN_HISTORY_WEEKS)
    bg = clv.fit_bgnbd(x, t_x, T)
    gg = clv.fit_gamma_gamma(x, m)
    if not (bg.converged and gg.converged):
        raise clv.ClvDataError(f"the models did not converge (BG/NBD: {bg.message}; Gamma-Gamma: {gg.message})")
    monthly_rate = (1 + ANNUAL_DISCOUNT_RATE) ** (1 / 12) - 1
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite results are caught below
        scores = pd.DataFrame({
            key: summary[key],
            "p_alive": clv.p_alive(bg, x, t_x, T),
            "expected_purchases_90d": clv.expected_purchases(bg, 90 / 7, x, t_x, T),
            "expected_purchases_365d": clv.expected_purchases(bg, 365 / 7, x, t_x, T),
            "expected_spend_per_purchase": clv.expected_average_spend(gg, x, np.where(m > 0, m, 0)),
            "predicted_clv_12m": np.round(clv.predicted_clv(bg, gg, x, t_x, T, m, 12, monthly_rate,
                                                            period_length=WEEKS_PER_MONTH), 2),
        })
    numeric = scores.drop(columns=[key]).to_numpy(float)
    bad = int((~np.isfinite(numeric)).any(axis=1).sum())
    if bad:
        raise clv.ClvDataError(f"the fitted models give non-finite predictions for {bad} customers; "
                               "no predictions are published")
    fit = {"bgnbd": bg.as_dict(), "gamma_gamma": gg.as_dict(), "annual_discount_rate": ANNUAL_DISCOUNT_RATE}
    return scores, fit


def holdout_comparison(summary: pd.DataFrame, holdout_weeks: float) -> pd.DataFrame:
    # the holdout window is the dbt var clv_holdout_days (default 90), the same as the 90 days here
    """Fit on the calibration cut, predict holdout purchases, compare by calibration frequency group."""
    cal = summary[summary["cal_btyd_age_weeks"] >= 0].copy()
    x = cal["cal_repeat_purchase_days"].to_numpy(float)
    t_x = cal["cal_btyd_recency_weeks"].fillna(0).to_numpy(float)
    T = cal["cal_btyd_age_weeks"].to_numpy(float)
    clv.check_enough_data(int((x > 0).sum()), float(T.max()) if len(T) else 0.0, MIN_REPEAT_CUSTOMERS, 0)
    bg = clv.fit_bgnbd(x, t_x, T)
    if not bg.converged:
        raise clv.ClvDataError(f"the calibration fit did not converge ({bg.message})")
    with np.errstate(invalid="ignore", over="ignore"):
        cal["predicted"] = clv.expected_purchases(bg, holdout_weeks, x, t_x, T)
    finite = np.isfinite(cal["predicted"].to_numpy(float))
    if not finite.all():
        raise clv.ClvDataError(f"the calibration fit gives non-finite predictions for {int((~finite).sum())} customers")
    cal["group"] = np.minimum(x, 5).astype(int).astype(str)
    cal.loc[cal["group"] == "5", "group"] = "5+"
    out = cal.groupby("group").agg(customers=("cal_btyd_age_weeks", "size"), predicted=("predicted", "sum"),
                                   actual=("holdout_purchase_days", "sum")).reset_index()
    out["relative_error"] = (out["predicted"] - out["actual"]) / out["actual"].where(out["actual"] > 0)
    return out


@dg.multi_asset(
    specs=[
        dg.AssetSpec(CLV_KEY, deps=[SUMMARY_KEY], group_name="marts", kinds={"python", "duckdb"},
                     description="Predicted CLV per customer: P(alive), expected purchases (90/365 days), "
                                 "expected spend per purchase, predicted 12-month CLV, predicted-value tier."),
        dg.AssetSpec(FITS_KEY, deps=[SUMMARY_KEY], group_name="marts", kinds={"python", "duckdb"},
                     description="BG/NBD and Gamma-Gamma fits per run: parameters, log-likelihood, fit time, "
                                 "holdout error, status."),
    ],
    check_specs=[dg.AssetCheckSpec("clv_holdout_error", asset=FITS_KEY,
                                   description="Warns when predicted holdout purchases miss actual ones by more "
                                               "than 25%, or the miss grew by half since the previous run.")],
    name="clv_model",
    partitions_def=AS_OF_PARTITIONS,
    backfill_policy=ONE_RUN_PER_DATE,
)
def clv_model(context: dg.AssetExecutionContext, pipeline: PipelineConfig):
    as_of = pipeline.as_of_date
    with retry_transient(context):
        con = pipeline.connect()
    try:
        # the numbers only: customer keys stay in DuckDB (2M text keys took ~1 s each way through
        # pandas at 10M lines); the scores are joined back to them by the summary's row id. In customer
        # order, so the same data gives the same sums, fits and predictions to the last bit, run after run
        # (the table's row order may differ between two builds of the same data).
        summary = con.execute("select rowid as summary_row, * exclude (customer_key) "
                              "from intermediate.int_customer_btyd_summary order by customer_key").df()
        status, message, fit, scores = "fitted", "", {}, None
        t0 = time.perf_counter()
        try:
            scores, fit = fit_and_score(summary, key="summary_row")
        except clv.ClvDataError as exc:
            status, message = "insufficient_data", str(exc)
            context.log.warning(f"predicted CLV: no predictions this run: {message}")
        holdout, holdout_error = None, None
        if scores is not None:
            try:
                holdout = holdout_comparison(summary, 90 / 7)
                total_actual = holdout["actual"].sum()
                holdout_error = float(abs(holdout["predicted"].sum() - total_actual) / total_actual) if total_actual else None
            except clv.ClvDataError as exc:
                context.log.warning(f"predicted CLV: no holdout check: {exc}")
        con.execute("create schema if not exists marts")
        cols = ", ".join(f"{c} {t}" for c, t in CLV_COLUMNS.items())
        con.execute(f"create or replace table marts.customer_clv ({cols})")
        if scores is not None:
            con.register("_scores", scores)
            # the predicted-value tier: top 20% of predicted CLV high, next 30% mid, the rest low
            con.execute(
                """
                insert into marts.customer_clv
                select summary.customer_key, ?::DATE, p_alive, expected_purchases_90d, expected_purchases_365d,
                       expected_spend_per_purchase, predicted_clv_12m,
                       case when percent_rank() over (order by predicted_clv_12m desc) < 0.2 then 'high'
                            when percent_rank() over (order by predicted_clv_12m desc) < 0.5 then 'mid'
                            else 'low' end
                from _scores join intermediate.int_customer_btyd_summary as summary
                    on summary.rowid = _scores.summary_row
                order by summary.customer_key
                """, [as_of])
            con.unregister("_scores")
        con.execute(
            "create table if not exists marts.clv_model_fits (run_id VARCHAR, as_of_date DATE, status VARCHAR, "
            "message VARCHAR, customers BIGINT, repeat_customers BIGINT, bgnbd_r DOUBLE, bgnbd_alpha DOUBLE, "
            "bgnbd_a DOUBLE, bgnbd_b DOUBLE, bgnbd_log_likelihood DOUBLE, gg_p DOUBLE, gg_q DOUBLE, gg_gamma DOUBLE, "
            "gg_log_likelihood DOUBLE, fit_seconds DOUBLE, holdout_relative_error DOUBLE, holdout_by_group VARCHAR)"
        )
        bgp = fit.get("bgnbd", {}).get("params", {})
        ggp = fit.get("gamma_gamma", {}).get("params", {})
        previous_error = con.execute(
            "select holdout_relative_error from marts.clv_model_fits where status = 'fitted' "
            "and holdout_relative_error is not null order by as_of_date desc, run_id desc limit 1").fetchone()
        previous_error = previous_error[0] if previous_error else None
        con.execute(
            "insert into marts.clv_model_fits values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [context.run.run_id, as_of, status, message, len(summary), int((summary["repeat_purchase_days"] > 0).sum()),
             bgp.get("r"), bgp.get("alpha"), bgp.get("a"), bgp.get("b"), fit.get("bgnbd", {}).get("log_likelihood"),
             ggp.get("p"), ggp.get("q"), ggp.get("gamma"), fit.get("gamma_gamma", {}).get("log_likelihood"),
             round(time.perf_counter() - t0, 3), holdout_error,
             holdout.to_json(orient="records") if holdout is not None else None],
        )
    finally:
        con.close()
    yield dg.MaterializeResult(asset_key=CLV_KEY, metadata={
        "status": status, "customers_scored": 0 if scores is None else len(scores), "message": message})
    yield dg.MaterializeResult(asset_key=FITS_KEY, metadata={
        "status": status, "bgnbd": dg.MetadataValue.json(bgp), "gamma_gamma": dg.MetadataValue.json(ggp),
        "holdout_relative_error": holdout_error if holdout_error is not None else -1.0,
        "holdout_by_group": dg.MetadataValue.json([] if holdout is None else holdout.to_dict("records")),
    })
    # warn when the error is large, or has grown by half since the previous fitted run
    grew = (holdout_error is not None and previous_error is not None and holdout_error > 0.10
            and holdout_error > 1.5 * previous_error)
    yield dg.AssetCheckResult(
        check_name="clv_holdout_error", asset_key=FITS_KEY,
        passed=holdout_error is None or (holdout_error <= 0.25 and not grew),
        severity=dg.AssetCheckSeverity.WARN,
        description=("no holdout comparison (too little data)" if holdout_error is None
                     else f"predicted vs actual holdout purchases differ by {holdout_error:.1%}"
                     + (f" (previous run {previous_error:.1%})" if previous_error is not None else "")),
        metadata={"holdout_relative_error": holdout_error if holdout_error is not None else -1.0,
                  "previous_relative_error": previous_error if previous_error is not None else -1.0},
    )
