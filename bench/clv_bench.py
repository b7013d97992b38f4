"""Cost of the BG/NBD + Gamma-Gamma CLV models at one million customers (a benchmark, not a test).

    .venv/bin/python bench/clv_bench.py [--customers 1000000] [--seed 1] [--continuous]

Simulates per-customer summaries (x, t_x, T, m_x) from the published CDNOW parameters (BG/NBD
r=0.2426, alpha=4.4136, a=0.7929, b=2.4259 per week; Gamma-Gamma p=6.2488, q=3.7446, gamma=15.4477)
for customers acquired uniformly over the last two years.  By default t_x and T sit on a day grid
(whole days / 7), as the pipeline's SQL summary produces them; --continuous keeps them continuous,
which defeats the duplicate-row compression of the fits (the worst case).  Times the BG/NBD fit,
the Gamma-Gamma fit and scoring every customer (P(alive), expected purchases in the next 90 and 365
days, 12-month CLV in monthly steps at 1% a month) and prints seconds per stage plus a JSON line.
"""

import argparse
import json
import time

import numpy as np

from dagster_project.lib.clv import btyd

TRUE_BG = btyd.BgNbdParams(r=0.2426, alpha=4.4136, a=0.7929, b=2.4259)
TRUE_GG = btyd.GammaGammaParams(p=6.2488, q=3.7446, gamma=15.4477)
MONTH_WEEKS = 365.25 / 12 / 7


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--continuous", action="store_true", help="do not round t_x and T to whole days")
    args = ap.parse_args()
    n = args.customers
    stages: dict[str, float] = {}

    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    T = rng.integers(0, 2 * 365, n) / 7.0  # first purchase 0..729 days before the end of calibration
    x, t_x = btyd.simulate_bgnbd_summary(TRUE_BG, T, rng)
    if not args.continuous:
        t_x = np.round(t_x * 7.0) / 7.0  # purchase days on the same grid as T
    m = np.round(btyd.simulate_gamma_gamma_spend(TRUE_GG, x, rng), 2)
    m = np.where((x > 0) & (m <= 0), 0.01, m)
    stages["simulate"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    bg = btyd.fit_bgnbd(x, t_x, T)
    stages["fit_bgnbd"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    gg = btyd.fit_gamma_gamma(x, m)
    stages["fit_gamma_gamma"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    diagnoses = btyd.diagnose_bgnbd(bg, x, t_x, T), btyd.diagnose_gamma_gamma(gg, x, m)
    stages["diagnose_fits"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    alive = btyd.p_alive(bg, x, t_x, T)
    stages["p_alive"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    e90 = btyd.expected_purchases(bg, 90 / 7, x, t_x, T)
    e365 = btyd.expected_purchases(bg, 365 / 7, x, t_x, T)
    stages["expected_purchases_90d_365d"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    value = btyd.predicted_clv(
        bg, gg, x, t_x, T, m, horizon_periods=12, discount_rate_per_period=0.01, period_length=MONTH_WEEKS
    )
    stages["predicted_clv_12m"] = time.perf_counter() - t0

    scoring = stages["p_alive"] + stages["expected_purchases_90d_365d"] + stages["predicted_clv_12m"]
    for name, secs in stages.items():
        print(f"{name:30s} {secs:8.3f} s")
    print(f"{'scoring total':30s} {scoring:8.3f} s")
    print(
        f"BG/NBD  fitted {bg.params.as_dict()} vs true {TRUE_BG.as_dict()}; "
        f"converged={bg.converged}, iterations={bg.iterations}"
    )
    print(
        f"GammaGamma fitted {gg.params.as_dict()} vs true {TRUE_GG.as_dict()} on {gg.n_customers:,} customers; "
        f"converged={gg.converged}, iterations={gg.iterations}"
    )
    print(
        json.dumps(
            {
                "benchmark": "clv",
                "customers": n,
                "grid": "continuous" if args.continuous else "day",
                "repeat_customers": int((x > 0).sum()),
                "seconds": {k: round(v, 3) for k, v in stages.items()} | {"scoring_total": round(scoring, 3)},
                "bgnbd": bg.params.as_dict() | {"log_likelihood": bg.log_likelihood, "converged": bg.converged},
                "gamma_gamma": gg.params.as_dict() | {"converged": gg.converged},
                "unreliable_reasons": [r for d in diagnoses for r in d.reasons],
                "checks": {
                    "mean_p_alive": float(alive.mean()),
                    "sum_e90": float(e90.sum()),
                    "sum_e365": float(e365.sum()),
                    "mean_clv_12m": float(value.mean()),
                    "all_finite": bool(np.isfinite(value).all() and np.isfinite(e365).all()),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
