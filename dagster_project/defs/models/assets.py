"""Predicted customer lifetime value: BG/NBD + Gamma-Gamma fitted on the dbt BTYD summary.

Writes the models' raw outputs only, into the warehouse's `clv` schema: `clv.customer_scores` (per
customer P(alive), expected purchases in 90 and 365 days, expected spend per purchase, predicted 12-month
CLV, the quartiles of the wait from the last purchase to the next; replaced every run) and
`clv.model_fits` (per run: status, parameters, log-likelihoods, fit time, holdout comparison, the reasons
a fit is unreliable; appended).  The dbt models `marts.customer_clv`, `marts.customer_predictions` and
`marts.clv_model_fits` derive the published marts from them (the predicted-value tier among others).
Too little data gives a clear message and no predictions rather than garbage; a fit the diagnostics
reject is recorded as `unreliable` with its reasons, so its predictions are flagged and ranked into no tier.
"""

import json
import time

import dagster as dg
import numpy as np
import pandas as pd

from dagster_project.lib.clv import btyd
from dagster_project.lib.config import Settings
from dagster_project.lib.orchestration import AS_OF_PARTITIONS, ONE_RUN_PER_DATE, retry_transient
from dagster_project.lib.resources import PipelineConfig

SCORES_KEY = dg.AssetKey(["clv", "customer_scores"])
FITS_KEY = dg.AssetKey(["clv", "model_fits"])
SUMMARY_KEY = dg.AssetKey(["intermediate", "int_customer_btyd_summary"])

# The CLV limits (PIPELINE_CLV_*: least data to fit on, discount rate, holdout error, the revenue sanity
# bound) come from the run's settings (lib/config.py); these are their defaults.
DEFAULT_LIMITS = Settings()
WEEKS_PER_MONTH = 365.25 / 12 / 7

# The horizons of the expected-purchase outputs, named in their columns (not the holdout window, which is
# dbt's var clv_holdout_days, read back from the summary: see holdout_days).
PURCHASE_HORIZON_DAYS = {"expected_purchases_90d": 90, "expected_purchases_365d": 365}
# The quantiles of the wait from a customer's last purchase to the next (if still active) the model publishes:
# the median dates the expected next order, the quartiles bound its window (marts.customer_predictions).
NEXT_PURCHASE_QUANTILES = {
    "days_to_next_purchase_p25": 0.25,
    "days_to_next_purchase_p50": 0.5,
    "days_to_next_purchase_p75": 0.75,
}
# The same quartiles from the holdout check's fit (all but the last clv_holdout_days), from each customer's last
# purchase before the cut: they test the expected next order window against the held-out days
# (marts.next_order_holdout). NULL for a customer with fewer than 2 purchase days by the cut, or without that fit.
CALIBRATION_QUANTILES = {"cal_days_to_next_purchase_p25": 0.25, "cal_days_to_next_purchase_p75": 0.75}

SCORES_COLUMNS = {
    "customer_key": "VARCHAR",
    "run_id": "VARCHAR",
    "p_alive": "DOUBLE",
    "expected_purchases_90d": "DOUBLE",
    "expected_purchases_365d": "DOUBLE",
    "expected_spend_per_purchase": "DOUBLE",
    "predicted_clv_12m": "DOUBLE",
    **dict.fromkeys(NEXT_PURCHASE_QUANTILES, "DOUBLE"),
    **dict.fromkeys(CALIBRATION_QUANTILES, "DOUBLE"),
}
FITS_COLUMNS = {
    "run_id": "VARCHAR",
    "as_of_date": "DATE",
    "status": "VARCHAR",
    "message": "VARCHAR",
    "customers": "BIGINT",
    "repeat_customers": "BIGINT",
    "bgnbd_r": "DOUBLE",
    "bgnbd_alpha": "DOUBLE",
    "bgnbd_a": "DOUBLE",
    "bgnbd_b": "DOUBLE",
    "bgnbd_log_likelihood": "DOUBLE",
    "gg_p": "DOUBLE",
    "gg_q": "DOUBLE",
    "gg_gamma": "DOUBLE",
    "gg_log_likelihood": "DOUBLE",
    "fit_seconds": "DOUBLE",
    "holdout_relative_error": "DOUBLE",
    "holdout_by_group": "VARCHAR",
    "unreliable_reasons": "VARCHAR",
    "diagnostics": "VARCHAR",
}


def ensure_output_tables(con) -> None:
    """The model's output tables, empty until the first fit: dbt reads them as sources (staging/clv), so
    they exist before any dbt build, including one run by hand on a warehouse the model never ran on."""
    con.execute("create schema if not exists clv")
    for table, columns in (("customer_scores", SCORES_COLUMNS), ("model_fits", FITS_COLUMNS)):
        con.execute(f"create table if not exists clv.{table} ({', '.join(f'{c} {t}' for c, t in columns.items())})")


def fit_and_score(
    summary: pd.DataFrame, key: str = "customer_key", limits: Settings = DEFAULT_LIMITS
) -> tuple[pd.DataFrame, dict]:
    """Fit both models on the summary and score every customer (scores keep the summary's `key` column).

    Raises ClvDataError (a readable reason, no predictions) on too little data or predictions that are
    not finite numbers.  A fit that converged to a poor solution, or did not converge, is still scored;
    ``fit["reasons"]`` says why it is unreliable (empty when nothing was found), ``fit["diagnostics"]``
    gives the figures.
    """
    x = summary["repeat_purchase_days"].to_numpy(float)
    t_x = summary["btyd_recency_weeks"].to_numpy(float)
    T = summary["btyd_age_weeks"].to_numpy(float)
    m = summary["repeat_mean_purchase_value"].fillna(0).to_numpy(float)
    btyd.check_enough_data(
        int((x > 0).sum()),
        float(T.max()) if len(T) else 0.0,
        limits.clv_min_repeat_customers,
        limits.clv_min_history_weeks,
    )
    bg = btyd.fit_bgnbd(x, t_x, T)
    gg = btyd.fit_gamma_gamma(x, m)
    bg_diagnosis = btyd.diagnose_bgnbd(bg, x, t_x, T)
    gg_diagnosis = btyd.diagnose_gamma_gamma(gg, x, m)
    monthly_rate = (1 + limits.clv_annual_discount_rate) ** (1 / 12) - 1
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite results are caught below
        scores = pd.DataFrame(
            {
                key: summary[key],
                "p_alive": btyd.p_alive(bg, x, t_x, T),
                **{
                    column: btyd.expected_purchases(bg, days / 7, x, t_x, T)
                    for column, days in PURCHASE_HORIZON_DAYS.items()
                },
                "expected_spend_per_purchase": btyd.expected_average_spend(gg, x, np.where(m > 0, m, 0)),
                # in cents, as published (the revenue sanity check sums these)
                "predicted_clv_12m": np.round(
                    btyd.predicted_clv(bg, gg, x, t_x, T, m, 12, monthly_rate, period_length=WEEKS_PER_MONTH), 2
                ),
            }
        )
    numeric = scores.drop(columns=[key]).to_numpy(float)
    bad = int((~np.isfinite(numeric)).any(axis=1).sum())
    if bad:
        raise btyd.ClvDataError(
            f"the fitted models give non-finite predictions for {bad} customers; no predictions are published"
        )
    # repeat buyers only (NULL for one-time buyers, whom the marts date no next order for): with x >= 1 the
    # exponent 1 / (r + x) is below 1, so the wait is finite, where a small r could overflow it at x = 0
    repeat = x > 0
    with np.errstate(invalid="ignore", over="ignore"):
        for column, q in NEXT_PURCHASE_QUANTILES.items():
            scores[column] = np.where(repeat, 7 * btyd.time_to_next_purchase(bg, q, x, t_x), np.nan)
    fit = {
        "bgnbd": bg.as_dict(),
        "gamma_gamma": gg.as_dict(),
        "annual_discount_rate": limits.clv_annual_discount_rate,
        "reasons": [*bg_diagnosis.reasons, *gg_diagnosis.reasons],
        "diagnostics": {"bgnbd": bg_diagnosis.details, "gamma_gamma": gg_diagnosis.details},
    }
    return scores, fit


def holdout_days(summary: pd.DataFrame) -> int:
    """The holdout window dbt cut the summary with (var clv_holdout_days): T minus the calibration T, the same
    for every customer whose first purchase came before the cut."""
    cut = summary.loc[summary["cal_btyd_age_weeks"] >= 0, ["btyd_age_weeks", "cal_btyd_age_weeks"]]
    if cut.empty:
        raise btyd.ClvDataError("no customer bought before the holdout period; there is nothing to calibrate on")
    return int(round(float((cut["btyd_age_weeks"] - cut["cal_btyd_age_weeks"]).iloc[0]) * 7))


def holdout_comparison(
    summary: pd.DataFrame, limits: Settings = DEFAULT_LIMITS
) -> tuple[pd.DataFrame, btyd.FitDiagnosis, int]:
    """Fit on the calibration cut, predict holdout purchases, compare by calibration frequency group.

    Returns the comparison, the diagnosis of the calibration fit (see clv.diagnose_bgnbd) and the holdout
    length in days."""
    days = holdout_days(summary)
    cal = summary[summary["cal_btyd_age_weeks"] >= 0].copy()
    x = cal["cal_repeat_purchase_days"].to_numpy(float)
    t_x = cal["cal_btyd_recency_weeks"].fillna(0).to_numpy(float)
    T = cal["cal_btyd_age_weeks"].to_numpy(float)
    btyd.check_enough_data(int((x > 0).sum()), float(T.max()) if len(T) else 0.0, limits.clv_min_repeat_customers, 0)
    bg = btyd.fit_bgnbd(x, t_x, T)
    diagnosis = btyd.diagnose_bgnbd(bg, x, t_x, T, label=f"holdout check: the fit on all but the last {days} days")
    with np.errstate(invalid="ignore", over="ignore"):
        cal["predicted"] = btyd.expected_purchases(bg, days / 7, x, t_x, T)
    finite = np.isfinite(cal["predicted"].to_numpy(float))
    if not finite.all():
        raise btyd.ClvDataError(
            f"the calibration fit gives non-finite predictions for {int((~finite).sum())} customers"
        )
    cal["group"] = np.minimum(x, 5).astype(int).astype(str)
    cal.loc[cal["group"] == "5", "group"] = "5+"
    out = (
        cal.groupby("group")
        .agg(
            customers=("cal_btyd_age_weeks", "size"),
            predicted=("predicted", "sum"),
            actual=("holdout_purchase_days", "sum"),
        )
        .reset_index()
    )
    out["relative_error"] = (out["predicted"] - out["actual"]) / out["actual"].where(out["actual"] > 0)
    diagnosis.details["params"] = bg.params.as_dict()
    return out, diagnosis, days


def calibration_quantiles(summary: pd.DataFrame, calibration: "btyd.FitDiagnosis | None") -> dict[str, np.ndarray]:
    """CALIBRATION_QUANTILES per summary row: the holdout fit's wait from the last purchase before the cut;
    NaN (NULL in the table) where the customer had fewer than 2 purchase days by the cut or there is no
    holdout fit."""
    if calibration is None:
        return {column: np.full(len(summary), np.nan) for column in CALIBRATION_QUANTILES}
    # customers with 2 or more purchase days by the cut (as in NEXT_PURCHASE_QUANTILES: the wait is finite)
    in_cal = (summary["cal_repeat_purchase_days"] > 0).to_numpy()
    x = np.where(in_cal, summary["cal_repeat_purchase_days"].to_numpy(float), 1.0)
    t_x = np.where(in_cal, summary["cal_btyd_recency_weeks"].fillna(0).to_numpy(float), 0.0)
    params = calibration.details["params"]
    return {
        column: np.where(in_cal, 7 * btyd.time_to_next_purchase(params, q, x, t_x), np.nan)
        for column, q in CALIBRATION_QUANTILES.items()
    }


def trailing_revenue(con, as_of) -> tuple[float | None, int]:
    """Known customers' net revenue (every valid order, refunds included) in the 365 days up to the as-of
    date, and the days of order history up to it (the sanity bound needs a full trailing year)."""
    revenue, history = con.execute(
        "select sum(case when order_date > ?::DATE - interval 365 day then net_revenue end), "
        "date_diff('day', min(order_date), ?::DATE) from marts.fct_orders "
        "where customer_key is not null and is_valid and order_date <= ?::DATE",
        [as_of, as_of, as_of],
    ).fetchone()
    return (float(revenue) if revenue is not None else None), int(history or 0)


def assess(
    fit: dict,
    holdout_error: float | None,
    holdout_days_: int | None,
    calibration: "btyd.FitDiagnosis | None",
    predicted_12m: float,
    trailing: float | None,
    history_days: int,
    limits: Settings = DEFAULT_LIMITS,
) -> tuple[list[str], dict]:
    """Every reason the run's predictions should not be used, and the figures behind them."""
    reasons = list(fit["reasons"])
    details = dict(fit["diagnostics"])
    if calibration is not None:
        reasons += calibration.reasons
        details["holdout_fit"] = calibration.details
    if holdout_error is not None and holdout_error > limits.clv_max_holdout_error:
        reasons.append(
            f"holdout check: predicted purchases in the last {holdout_days_} days miss the actual ones "
            f"by {holdout_error:.1%} (limit {limits.clv_max_holdout_error:.0%})"
        )
    details["holdout_days"] = holdout_days_
    ratio = predicted_12m / trailing if trailing and trailing > 0 and history_days >= 365 else None
    details["revenue_check"] = {
        "predicted_12m": round(predicted_12m, 2),
        "trailing_12m": trailing,
        "history_days": history_days,
        "ratio": ratio,
        "max_ratio": limits.clv_max_revenue_ratio,
    }
    if ratio is not None and ratio > limits.clv_max_revenue_ratio:
        reasons.append(
            f"sanity check: the predicted revenue of the next 12 months ({predicted_12m:,.0f}) is "
            f"{ratio:.2f} times these customers' net revenue of the last 12 months ({trailing:,.0f}), "
            f"above the limit of {limits.clv_max_revenue_ratio:g}"
        )
    return reasons, details


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            SCORES_KEY,
            deps=[SUMMARY_KEY, dg.AssetKey(["marts", "fct_orders"])],
            group_name="clv",
            kinds={"python", "duckdb"},
            description="The CLV models' per-customer predictions this run: P(alive), expected purchases "
            "(90/365 days), expected spend per purchase, predicted 12-month CLV (none when "
            "the data are too few). dbt's marts/customer_clv publishes them.",
        ),
        dg.AssetSpec(
            FITS_KEY,
            deps=[SUMMARY_KEY, dg.AssetKey(["marts", "fct_orders"])],
            group_name="clv",
            kinds={"python", "duckdb"},
            description="BG/NBD and Gamma-Gamma fits, one row per run: parameters, log-likelihood, fit "
            "time, holdout error, status (fitted, unreliable with the reasons, "
            "insufficient_data). dbt's marts/clv_model_fits publishes them.",
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "clv_holdout_error",
            asset=FITS_KEY,
            description="Warns when predicted holdout purchases miss actual ones by more "
            "than 25%, or the miss grew by half since the previous run.",
        ),
        dg.AssetCheckSpec(
            "clv_fit_reliable",
            asset=FITS_KEY,
            description="Warns when the CLV fit is unreliable (its predictions are then flagged "
            "and feed no tier) and says why.",
        ),
    ],
    name="clv_model",
    partitions_def=AS_OF_PARTITIONS,
    backfill_policy=ONE_RUN_PER_DATE,
)
def clv_model(context: dg.AssetExecutionContext, pipeline: PipelineConfig):
    as_of = pipeline.as_of_date
    limits = pipeline.settings
    with retry_transient(context, pipeline.settings):
        con = pipeline.connect()
    try:
        # the numbers only: customer keys stay in DuckDB (2M text keys took ~1 s each way through
        # pandas at 10M lines); the scores are joined back to them by the summary's row id. In customer
        # order, so the same data gives the same sums, fits and predictions to the last bit, run after run
        # (the table's row order may differ between two builds of the same data).
        summary = con.execute(
            "select rowid as summary_row, * exclude (customer_key) "
            "from intermediate.int_customer_btyd_summary order by customer_key"
        ).df()
        status, message, fit, scores, reasons, details = "fitted", "", {}, None, [], {}
        t0 = time.perf_counter()
        try:
            scores, fit = fit_and_score(summary, key="summary_row", limits=limits)
        except btyd.ClvDataError as exc:
            status, message = "insufficient_data", str(exc)
            context.log.warning(f"predicted CLV: no predictions this run: {message}")
        holdout, holdout_error, calibration, days, holdout_skipped = None, None, None, None, None
        if scores is not None:
            try:
                holdout, calibration, days = holdout_comparison(summary, limits)
                total_actual = holdout["actual"].sum()
                holdout_error = (
                    float(abs(holdout["predicted"].sum() - total_actual) / total_actual) if total_actual else None
                )
            except btyd.ClvDataError as exc:
                holdout_skipped = str(exc)
                context.log.warning(f"predicted CLV: no holdout check: {exc}")
            trailing, history = trailing_revenue(con, as_of)
            reasons, details = assess(
                fit,
                holdout_error,
                days,
                calibration,
                float(scores["predicted_clv_12m"].sum()),
                trailing,
                history,
                limits,
            )
            if holdout_skipped:  # too little data before the cut: unchecked, which is not the same as wrong
                details["holdout_skipped"] = holdout_skipped
            if reasons:
                status = "unreliable"
                message = "The predictions are unreliable and feed no tier: " + "; ".join(reasons) + "."
                context.log.warning(f"predicted CLV: {message}")
        if scores is not None:
            scores = scores.assign(**calibration_quantiles(summary, calibration))
        con.execute("create schema if not exists clv")
        cols = ", ".join(f"{c} {t}" for c, t in SCORES_COLUMNS.items())
        con.execute(f"create or replace table clv.customer_scores ({cols})")
        if scores is not None:
            con.register("_scores", scores)
            # the keys join back by the summary's row id; in customer order, so a build's rows come in one order
            con.execute(
                f"""
                insert into clv.customer_scores
                select summary.customer_key, ?, {", ".join(f"_scores.{c}" for c in list(SCORES_COLUMNS)[2:])}
                from _scores join intermediate.int_customer_btyd_summary as summary
                    on summary.rowid = _scores.summary_row
                order by summary.customer_key
                """,
                [context.run.run_id],
            )
            con.unregister("_scores")
        ensure_output_tables(con)
        bgp = fit.get("bgnbd", {}).get("params", {})
        ggp = fit.get("gamma_gamma", {}).get("params", {})
        previous_error = con.execute(
            "select holdout_relative_error from clv.model_fits where status = 'fitted' "
            "and holdout_relative_error is not null order by as_of_date desc, run_id desc limit 1"
        ).fetchone()
        previous_error = previous_error[0] if previous_error else None
        row = {
            "run_id": context.run.run_id,
            "as_of_date": as_of,
            "status": status,
            "message": message,
            "customers": len(summary),
            "repeat_customers": int((summary["repeat_purchase_days"] > 0).sum()),
            "bgnbd_r": bgp.get("r"),
            "bgnbd_alpha": bgp.get("alpha"),
            "bgnbd_a": bgp.get("a"),
            "bgnbd_b": bgp.get("b"),
            "bgnbd_log_likelihood": fit.get("bgnbd", {}).get("log_likelihood"),
            "gg_p": ggp.get("p"),
            "gg_q": ggp.get("q"),
            "gg_gamma": ggp.get("gamma"),
            "gg_log_likelihood": fit.get("gamma_gamma", {}).get("log_likelihood"),
            "fit_seconds": round(time.perf_counter() - t0, 3),
            "holdout_relative_error": holdout_error,
            "holdout_by_group": holdout.to_json(orient="records") if holdout is not None else None,
            "unreliable_reasons": "; ".join(reasons) if reasons else None,
            "diagnostics": json.dumps(details, sort_keys=True) if details else None,
        }
        con.execute(
            f"insert into clv.model_fits ({', '.join(row)}) values ({', '.join('?' * len(row))})", list(row.values())
        )
    finally:
        con.close()
    yield dg.MaterializeResult(
        asset_key=SCORES_KEY,
        metadata={"status": status, "customers_scored": 0 if scores is None else len(scores), "message": message},
    )
    yield dg.MaterializeResult(
        asset_key=FITS_KEY,
        metadata={
            "status": status,
            "bgnbd": dg.MetadataValue.json(bgp),
            "gamma_gamma": dg.MetadataValue.json(ggp),
            "holdout_relative_error": holdout_error if holdout_error is not None else -1.0,
            "holdout_by_group": dg.MetadataValue.json([] if holdout is None else holdout.to_dict("records")),
            "unreliable_reasons": dg.MetadataValue.json(reasons),
        },
    )
    # warn when the error is large, or has grown by half since the previous fitted run
    grew = (
        holdout_error is not None
        and previous_error is not None
        and holdout_error > 0.10
        and holdout_error > 1.5 * previous_error
    )
    yield dg.AssetCheckResult(
        check_name="clv_holdout_error",
        asset_key=FITS_KEY,
        passed=holdout_error is None or (holdout_error <= limits.clv_max_holdout_error and not grew),
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            "no holdout comparison (too little data)"
            if holdout_error is None
            else f"predicted vs actual holdout purchases differ by {holdout_error:.1%}"
            + (f" (previous run {previous_error:.1%})" if previous_error is not None else "")
        ),
        metadata={
            "holdout_relative_error": holdout_error if holdout_error is not None else -1.0,
            "previous_relative_error": previous_error if previous_error is not None else -1.0,
        },
    )
    yield dg.AssetCheckResult(
        check_name="clv_fit_reliable",
        asset_key=FITS_KEY,
        passed=status != "unreliable",
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            message
            if status == "unreliable"
            else "no predictions this run"
            if scores is None
            else "no sign of an unreliable fit"
        ),
        metadata={"status": status, "reasons": dg.MetadataValue.json(reasons)},
    )
