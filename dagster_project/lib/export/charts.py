"""Marketing charts of a run, rendered from the marts to PNG.

Every chart function takes an open (read-only) DuckDB connection to a warehouse with the ``marts``
schema (the working warehouse or the serving copy) and returns a :class:`Chart`: the PNG and
``data``, exactly the numbers plotted (so they can be compared to the marts).  A missing or empty
mart gives a "no data yet" picture with ``data == []``; charts never raise on an empty warehouse.

The numbers come from the marts (business logic stays in dbt); the only sums done here are the
per-channel totals of ``channel_economics`` for the LTV:CAC chart (summed over the acquisition
months whose 12-month LTV is complete) and the sampling of the Pareto curve at each percent of
customers.
"""

import base64
import io
import json
import math
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator, PercentFormatter  # noqa: E402

BLUE = "#4c72b0"
ORANGE = "#dd8452"
GREEN = "#55a868"
RED = "#c44e52"
GREY = "#8c8c8c"
LIGHT_BLUE = "#a6bddb"
SMALL_SAMPLE = 30
DPI = 110

ACTIVITY_STATES = ["new", "active", "reactivated", "at_risk", "lapsed", "churned", "prospect"]
VALUE_STAGES = ["prospect", "first_time", "repeat", "loyal", "member"]
STATE_LABELS = {
    "none": "(first purchase)",
    "new": "new",
    "active": "active",
    "reactivated": "reactivated",
    "at_risk": "at risk",
    "lapsed": "lapsed",
    "churned": "churned",
    "prospect": "prospect (never bought)",
    "first_time": "first-time buyer",
    "repeat": "repeat (2 purchases)",
    "loyal": "loyal (3+)",
    "member": "member",
}
LTV_CAC_TARGET = 3.0


# the asset each chart is drawn from (the chart is attached to that asset's metadata in Dagster)
CHART_ASSETS = {
    "pareto": ["marts", "pareto_curve"],
    "rf_heatmap": ["marts", "customer_rfm"],
    "cohort_retention": ["marts", "cohort_retention"],
    "repeat_ladder": ["marts", "repeat_purchase_ladder"],
    "lifecycle": ["marts", "lifecycle_transitions"],
    "tier_sizes": ["exports", "published_run"],
    "membership_value": ["marts", "membership_value"],
    "ltv_cac": ["marts", "channel_economics"],
    "tier_lift": ["marts", "tier_lift"],
}


@dataclass(frozen=True)
class Chart:
    """One rendered chart.  ``data``: the numbers plotted; ``table``: the rows for a short preview
    (``markdown_image``), when they differ from ``data`` (e.g. the Pareto curve's 100 points)."""

    name: str
    title: str
    caption: str
    png: bytes
    data: list[dict]
    table: list[dict] | None = field(default=None, repr=False)

    @property
    def rows(self) -> list[dict]:
        """The rows to show beside the chart: ``table`` when given, else ``data``."""
        return self.table if self.table is not None else self.data


# ------------------------------------------------------------------------------------------------
# helpers


def _rows(con, sql: str, params: list | None = None) -> list[dict]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=False)) for r in cur.fetchall()]


def _has_table(con, name: str) -> bool:
    return bool(
        con.execute(
            "select count(*) from duckdb_tables() where schema_name = 'marts' and table_name = ?", [name]
        ).fetchone()[0]
    )


def _has_rows(con, name: str) -> bool:
    return _has_table(con, name) and con.execute(f"select count(*) from marts.{name}").fetchone()[0] > 0


def _num(v):
    """DuckDB decimals → float; ints and None unchanged."""
    if v is None or isinstance(v, (int, bool)):
        return v
    return float(v)


def reporting_currency(con) -> str:
    """The currency the marts' amounts are in (fct_orders.currency of valid orders), '' if unknown."""
    if not _has_rows(con, "fct_orders"):
        return ""
    row = con.execute(
        "select currency from marts.fct_orders where is_valid and currency is not null "
        "group by currency order by count(*) desc, currency limit 1"
    ).fetchone()
    return row[0] if row else ""


def _money(v: float, currency: str, decimals: int = 0) -> str:
    s = f"{v:,.{decimals}f}"
    return f"{s} {currency}".strip()


def _pct(v: float, decimals: int = 0) -> str:
    return f"{100 * v:.{decimals}f}%"


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.15)
    plt.close(fig)
    return buf.getvalue()


def _no_data(name: str, title: str, why: str = "no data yet") -> Chart:
    fig, ax = plt.subplots(figsize=(7, 2.2))
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, why, ha="center", va="center", fontsize=14, color=GREY, transform=ax.transAxes)
    return Chart(name, title, why, _png(fig), [])


def _iso(v) -> str:
    return v.isoformat() if isinstance(v, (date, datetime)) else str(v)


def _month_label(v) -> str:
    return v.strftime("%Y-%m") if isinstance(v, (date, datetime)) else str(v)[:7]


# ------------------------------------------------------------------------------------------------
# 1. Pareto curve


def pareto_chart(con) -> Chart:
    """Cumulative share of revenue against the share of customers (sampled at every percent of
    customers, all customers when fewer than 100), the target line (pareto_summary
    target_revenue_share, 80% by default) and the super-user point where it is crossed."""
    name, title = "pareto", "Revenue concentration (Pareto curve)"
    if not (_has_rows(con, "pareto_curve") and _has_rows(con, "pareto_summary")):
        return _no_data(name, title)
    summary = _rows(con, "select * from marts.pareto_summary")[0]
    customers = int(summary["customers"])
    ranks = sorted({max(1, math.ceil(p * customers / 100)) for p in range(1, 101)})
    curve = _rows(
        con,
        (
            "select revenue_rank, cumulative_customer_share, cumulative_revenue_share "
            "from marts.pareto_curve where revenue_rank in (select unnest(?)) order by revenue_rank"
        ),
        [ranks],
    )
    target = float(summary["target_revenue_share"])
    cross_x, cross_y = float(summary["super_user_customer_share"]), float(summary["super_user_revenue_share"])
    data = [
        {
            "point": "line crossed",
            "customers": int(summary["super_users"]),
            "customer_share": cross_x,
            "revenue_share": cross_y,
            "target_revenue_share": target,
        }
    ]
    data += [
        {
            "point": "curve",
            "customers": int(r["revenue_rank"]),
            "customer_share": float(r["cumulative_customer_share"]),
            "revenue_share": float(r["cumulative_revenue_share"]),
            "target_revenue_share": target,
        }
        for r in curve
    ]

    xs = [0.0] + [d["customer_share"] for d in data[1:]]
    ys = [0.0] + [d["revenue_share"] for d in data[1:]]
    fig, ax = plt.subplots(figsize=(7.5, 5))
    ax.plot(xs, ys, color=BLUE, lw=2.2, label="cumulative share of revenue")
    ax.plot([0, 1], [0, 1], color=GREY, lw=1, ls=":", label="if every customer spent the same")
    ax.axhline(target, color=RED, lw=1.2, ls="--", label=f"{_pct(target)} of revenue")
    ax.plot([cross_x, cross_x], [0, cross_y], color=RED, lw=1, ls="--")
    ax.scatter([cross_x], [cross_y], color=RED, zorder=5, s=40)
    ax.annotate(
        f"{_pct(cross_x, 1)} of customers ({data[0]['customers']:,})\ngive {_pct(cross_y, 1)} of revenue",
        (cross_x, cross_y),
        textcoords="data",
        # below right of a steep curve; top left (empty there) when the curve is nearly flat
        xytext=(max(cross_x + 0.08, 0.3), target - 0.25) if cross_x <= 0.55 else (0.04, min(target + 0.08, 0.9)),
        fontsize=10,
        arrowprops={"arrowstyle": "->", "color": RED},
        color="black",
        bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": RED},
    )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlabel(f"share of customers, highest spenders first ({customers:,} customers with revenue)")
    ax.set_ylabel("cumulative share of net revenue")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    caption = (
        f"{summary['headline']}; the top 20% of customers give "
        f"{_pct(float(summary['top_20pct_revenue_share']), 1)} of revenue."
    )
    decile_ranks = {max(1, math.ceil(p * customers / 100)) for p in range(10, 101, 10)}
    deciles = [d for d in data[1:] if d["customers"] in decile_ranks]
    table = [
        {
            "highest spenders": f"top {_pct(d['customer_share'], 1).replace('.0%', '%')}"
            + (" (super users)" if i == 0 else ""),
            "customers": f"{d['customers']:,}",
            "their share of net revenue": _pct(d["revenue_share"], 1),
        }
        for i, d in enumerate([data[0]] + deciles)
    ]
    return Chart(name, title, caption, _png(fig), data, table)


# ------------------------------------------------------------------------------------------------
# 2. R×F heatmap


def rf_heatmap_chart(con) -> Chart:
    """Customers per recency score × frequency score (customer_rfm).  ``data`` has all 25 cells (0
    included); the picture and the table show the scores that have customers, each labelled with the
    days since the last purchase or the purchase days it stands for, and the caption names the empty
    ones (tied values share a score, so with many one-day buyers some scores stay empty)."""
    name, title = "rf_heatmap", "Customers by recency and frequency score"
    if not _has_rows(con, "customer_rfm"):
        return _no_data(name, title)
    counts = {
        (r["r_score"], r["f_score"]): int(r["customers"])
        for r in _rows(con, "select r_score, f_score, count(*) as customers from marts.customer_rfm group by 1, 2")
    }
    data = [
        {"r_score": r, "f_score": f, "customers": counts.get((r, f), 0)} for r in range(5, 0, -1) for f in range(1, 6)
    ]
    r_range = {
        r["s"]: (r["lo"], r["hi"])
        for r in _rows(
            con,
            "select r_score as s, min(recency_days) as lo, max(recency_days) as hi from marts.customer_rfm group by 1",
        )
    }
    f_range = {
        r["s"]: (r["lo"], r["hi"])
        for r in _rows(
            con, "select f_score as s, min(frequency) as lo, max(frequency) as hi from marts.customer_rfm group by 1"
        )
    }
    rs = [r for r in range(5, 0, -1) if r in r_range]
    fs = [f for f in range(1, 6) if f in f_range]
    grid = [[counts.get((r, f), 0) for f in fs] for r in rs]
    total = sum(d["customers"] for d in data)
    vmax = max(max(row) for row in grid) or 1

    def span(lo, hi, unit):
        return f"{lo:,} {unit}" if lo == hi else f"{lo:,}–{hi:,} {unit}"

    r_labels = {r: f"R{r} · {span(*r_range[r], 'days ago')}" for r in rs}
    f_labels = {f: f"F{f} · {span(*f_range[f], 'day' if f_range[f] == (1, 1) else 'days')}" for f in fs}
    fig, ax = plt.subplots(figsize=(max(6.0, 1.5 * len(fs) + 3), 1.0 * len(rs) + 1.6))
    im = ax.imshow(grid, cmap="Blues", vmin=0, vmax=vmax, aspect="auto")
    for i, row in enumerate(grid):
        for j, v in enumerate(row):
            ax.text(
                j,
                i,
                f"{v:,}\n{_pct(v / total, 1)}" if v else "0",
                ha="center",
                va="center",
                fontsize=9,
                color="white" if v > 0.55 * vmax else "black",
            )
    ax.set_xticks(range(len(fs)), [f_labels[f].replace(" · ", "\n") for f in fs], fontsize=9)
    ax.set_yticks(range(len(rs)), [r_labels[r].replace(" · ", "\n") for r in rs], fontsize=9)
    ax.set_xlabel("frequency score: distinct purchase days (higher = more)")
    ax.set_ylabel("recency score: days since the last purchase (higher = more recent)")
    ax.set_title(title)
    cb = fig.colorbar(im, ax=ax, shrink=0.85)
    cb.set_label("customers")
    empty = [f"F{f}" for f in range(1, 6) if f not in f_range] + [f"R{r}" for r in range(5, 0, -1) if r not in r_range]
    one_day = sum(n for (_, f), n in counts.items() if f_range.get(f) == (1, 1))
    caption = (
        f"{total:,} customers with a purchase; cells show customers and their share. Recent frequent buyers "
        "sit top right, frequent buyers who stopped bottom right."
    )
    if empty:
        caption += (
            f" {' and '.join([', '.join(empty[:-1]), empty[-1]] if len(empty) > 1 else empty)} "
            f"{'have' if len(empty) > 1 else 'has'} no customers and {'are' if len(empty) > 1 else 'is'} "
            "not drawn: customers with equal values share one score"
            + (f", and {_pct(one_day / total, 1)} of customers bought on one day only." if one_day else ".")
        )
    table = [
        {"recency score ↓ · frequency score →": r_labels[r], **{f_labels[f]: f"{counts.get((r, f), 0):,}" for f in fs}}
        for r in rs
    ]
    return Chart(name, title, caption, _png(fig), data, table)


# ------------------------------------------------------------------------------------------------
# 3. Cohort retention


def _add_months(d: date, n: int) -> date:
    m = d.month - 1 + n
    return date(d.year + m // 12, m % 12 + 1, 1)


def cohort_retention_chart(con, max_cohorts: int = 24) -> Chart:
    """Share of each monthly cohort (the last ``max_cohorts``) buying again 1, 2, … months after
    its first month; cells reached with no purchase are 0%, cells not reached yet are blank.
    Month 0 (always 100%) is left out; the cohort size is in the row label.  Cells of a calendar
    month the data does not wholly cover (the mart's is_partial_period) are hatched."""
    name, title = "cohort_retention", "Cohort retention: share of each month's new customers buying again"
    if not _has_rows(con, "cohort_retention"):
        return _no_data(name, title)
    last_month = con.execute(
        "select max(cohort_month + to_months(cast(months_since_first_purchase as integer))) from marts.cohort_retention"
    ).fetchone()[0]
    last_month = last_month.date() if isinstance(last_month, datetime) else last_month
    # the last cohorts that have reached at least one month after their first
    cohorts = [
        r["cohort_month"]
        for r in _rows(
            con,
            "select distinct cohort_month from marts.cohort_retention where cohort_month < ? order by 1 desc limit ?",
            [date(last_month.year, last_month.month, 1), max_cohorts],
        )
    ]
    cohorts.sort()
    if not cohorts:
        return _no_data(name, title, "no cohort has a month after its first one yet")
    rows = _rows(
        con,
        (
            "select cohort_month, months_since_first_purchase as months, cohort_customers, active_customers, "
            "share_retained, is_partial_period from marts.cohort_retention where cohort_month in (select unnest(?)) "
            "order by cohort_month, months"
        ),
        [cohorts],
    )
    # calendar months the mart marks partial (a cell with no purchase that month has no row of its own)
    partial_months = {_add_months(r["cohort_month"], int(r["months"])) for r in rows if r["is_partial_period"]}
    sizes = {r["cohort_month"]: int(r["cohort_customers"]) for r in rows}
    cells = {(r["cohort_month"], int(r["months"])): r for r in rows}
    max_m = max(_months_between(c, last_month) for c in cohorts)
    data = []
    grid = []
    for c in cohorts:
        reach = _months_between(c, last_month)
        line = []
        for m in range(1, max_m + 1):
            if m > reach:
                line.append(float("nan"))
                continue
            r = cells.get((c, m))
            share = float(r["share_retained"]) if r else 0.0
            active = int(r["active_customers"]) if r else 0
            data.append(
                {
                    "cohort_month": _iso(c),
                    "months_since_first_purchase": m,
                    "cohort_customers": sizes[c],
                    "active_customers": active,
                    "share_retained": share,
                    "is_partial_period": _add_months(c, m) in partial_months,
                }
            )
            line.append(share)
        grid.append(line)

    finite = [v for line in grid for v in line if not math.isnan(v)]
    vmax = max(finite) if finite and max(finite) > 0 else 1.0
    n_rows, n_cols = len(cohorts), max_m
    fig, ax = plt.subplots(figsize=(max(7.0, 1.5 + 0.48 * n_cols), max(3.5, 1.2 + 0.34 * n_rows)))
    cmap = matplotlib.colormaps["YlGnBu"].copy()
    cmap.set_bad("white")
    im = ax.imshow(grid, cmap=cmap, vmin=0, vmax=vmax, aspect="auto")
    if n_cols <= 36 and n_rows <= 36:
        fs = 7 if n_cols > 14 else 8
        for i, line in enumerate(grid):
            for j, v in enumerate(line):
                if not math.isnan(v) and v > 0:
                    ax.text(
                        j,
                        i,
                        f"{100 * v:.0f}",
                        ha="center",
                        va="center",
                        fontsize=fs,
                        color="white" if v > 0.6 * vmax else "black",
                    )
    for d in data:
        if d["is_partial_period"]:
            i, j = cohorts.index(date.fromisoformat(d["cohort_month"])), d["months_since_first_purchase"] - 1
            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor=GREY, lw=0))
    if any(d["is_partial_period"] for d in data):
        ax.legend(
            handles=[Patch(facecolor="white", edgecolor=GREY, hatch="///", label="partial month: not comparable")],
            loc="lower right",
            fontsize=8,
            framealpha=0.9,
        )  # the not-yet-reached corner
    ax.set_xticks(range(n_cols), [str(m) for m in range(1, n_cols + 1)], fontsize=8)
    ax.set_yticks(range(n_rows), [f"{_month_label(c)} ({sizes[c]:,})" for c in cohorts], fontsize=8)
    ax.set_xlabel("months since the first purchase")
    ax.set_ylabel("cohort: month of first purchase (customers)")
    ax.set_title(title)
    cb = fig.colorbar(im, ax=ax, shrink=0.8, format=PercentFormatter(1.0, decimals=0))
    cb.set_label("share of the cohort buying that month")
    all_cohorts = con.execute(
        "select count(distinct cohort_month) from marts.cohort_retention where cohort_month < ?",
        [date(last_month.year, last_month.month, 1)],
    ).fetchone()[0]
    shown = (
        f"All {n_rows} monthly cohorts"
        if n_rows == all_cohorts
        else f"The last {n_rows} of {all_cohorts} monthly cohorts (all are in the mart)"
    )
    caption = (
        f"{shown} that have a month after their first; cell numbers are percentages of the cohort that bought in that "
        "month (unlabelled pale cells: 0%; white: not reached yet). Hatched: a month the data does not "
        "wholly cover (it runs past the as-of date, or began before the data), so its share is not "
        "comparable with complete months. "
        f"{_left_censored_customers(con):,} customers first seen in their source's warm-up "
        "(left-censored: they may have bought before the data begins) are in no cohort."
    )
    return Chart(name, title, caption, _png(fig), data, _cohort_table(data))


def _left_censored_customers(con) -> int:
    if not _has_table(con, "dim_customers"):
        return 0
    return con.execute("select count(*) from marts.dim_customers where is_left_censored").fetchone()[0]


def _months_between(a: date, b: date) -> int:
    return (b.year - a.year) * 12 + b.month - a.month


def _cohort_table(data: list[dict]) -> list[dict]:
    """Every cohort of the chart: its size and the share buying again 1, 3, 6 and 12 months later."""
    by = {}
    for d in data:
        by.setdefault(d["cohort_month"], {"cohort": d["cohort_month"][:7], "customers": f"{d['cohort_customers']:,}"})
        if d["months_since_first_purchase"] in (1, 3, 6, 12):
            by[d["cohort_month"]][f"month {d['months_since_first_purchase']}"] = _pct(d["share_retained"], 1) + (
                " (partial)" if d["is_partial_period"] else ""
            )
    cols = {
        "cohort": "first purchase in",
        "customers": "new customers",
        "month 1": "buying in month 1",
        "month 3": "in month 3",
        "month 6": "in month 6",
        "month 12": "in month 12",
    }
    return [{label: r.get(c, "not yet") for c, label in cols.items()} for r in by.values()]


# ------------------------------------------------------------------------------------------------
# 4. Repeat-purchase ladder


def repeat_ladder_chart(con) -> Chart:
    """P(n+1 | n) for n = 1..N (repeat_purchase_ladder, dimension 'overall')."""
    name, title = "repeat_ladder", "Repeat-purchase ladder: chance of buying once more"
    rows = (
        _rows(
            con,
            (
                "select n, customers_reached_n, customers_reached_next, repeat_rate, median_days_to_next, "
                "repeat_rate_by_as_of, window_days from marts.repeat_purchase_ladder where dimension = 'overall' order by n"  # noqa: E501 (SQL or printed text)
            ),
        )
        if _has_table(con, "repeat_purchase_ladder")
        else []
    )
    if not rows:
        return _no_data(name, title)
    data = [
        {
            "n": int(r["n"]),
            "customers_reached_n": int(r["customers_reached_n"]),
            "customers_reached_next": int(r["customers_reached_next"]),
            "repeat_rate": float(r["repeat_rate"]),
            "median_days_to_next": _num(r["median_days_to_next"]),
            "repeat_rate_by_as_of": float(r["repeat_rate_by_as_of"]),
        }
        for r in rows
    ]
    window = rows[0]["window_days"]

    fig, ax = plt.subplots(figsize=(max(7.0, 1.2 * len(data) + 2), 4.8))
    xs = list(range(len(data)))
    rates = [d["repeat_rate"] for d in data]
    small = [d["customers_reached_n"] < SMALL_SAMPLE for d in data]
    ax.bar(xs, rates, color=[LIGHT_BLUE if s else BLUE for s in small], width=0.65)
    top = max(rates + [0.01])
    for x, d in zip(xs, data, strict=False):
        label = f"{_pct(d['repeat_rate'], 1)}\n{d['customers_reached_next']:,} of {d['customers_reached_n']:,}"
        ax.annotate(
            label,
            (x, d["repeat_rate"]),
            xytext=(0, 3),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8.5,
        )
    ax.set_xticks(xs, [f"{d['n']} → {d['n'] + 1}" for d in data])
    pad = 0.6 + max(0, 3 - len(data)) / 2  # a lone bar keeps a bar's width
    ax.set_xlim(-pad, len(data) - 1 + pad)
    ax.set_ylim(0, min(1.0, top * 1.3) if top < 0.75 else 1.1)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_xlabel("purchase days → next purchase day")
    ax.set_ylabel(f"customers who bought again within {window} days")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    if any(small):
        ax.legend(
            [plt.Rectangle((0, 0), 1, 1, color=BLUE), plt.Rectangle((0, 0), 1, 1, color=LIGHT_BLUE)],
            ["rate", f"fewer than {SMALL_SAMPLE} customers: read with care"],
            loc="upper left",
            fontsize=8.5,
        )
    caption = (
        f"Of customers who made n purchases, the share who made another within {window} days. A customer "
        f"counts for step n once their n-th purchase is at least {window} days old, so everyone has had the "
        f"same {window} days to come back. Purchases on one day count as one, as in RFM frequency."
    )
    table = [
        {
            "purchase days so far": f"{d['n']:,}",
            "customers": f"{d['customers_reached_n']:,}",
            f"bought again within {window} days": f"{d['customers_reached_next']:,}",
            "repeat rate": _pct(d["repeat_rate"], 1),
            "median days to the next purchase": (
                f"{d['median_days_to_next']:,.0f}" if d["median_days_to_next"] is not None else "none came back"
            ),
            "bought again by the as-of date": _pct(d["repeat_rate_by_as_of"], 1),
        }
        for d in data
    ]
    return Chart(name, title, caption, _png(fig), data, table)


# ------------------------------------------------------------------------------------------------
# 5. Lifecycle states and transitions


def lifecycle_chart(con) -> Chart:
    """Customers per activity state and per value stage (customer_lifecycle), and the moves between
    activity states in the last complete month of lifecycle_transitions (the latest month when
    none is complete)."""
    name, title = "lifecycle", "Customer lifecycle: where customers are and how they moved"
    if not _has_rows(con, "customer_lifecycle"):
        return _no_data(name, title)
    states = {
        r["k"]: int(r["customers"])
        for r in _rows(
            con, "select activity_state as k, count(*) as customers from marts.customer_lifecycle group by 1"
        )
    }
    stages = {
        r["k"]: int(r["customers"])
        for r in _rows(con, "select value_stage as k, count(*) as customers from marts.customer_lifecycle group by 1")
    }
    as_of = con.execute("select max(as_of_date) from marts.customer_lifecycle").fetchone()[0]
    state_order = [s for s in ACTIVITY_STATES if s in states] + sorted(set(states) - set(ACTIVITY_STATES))
    stage_order = [s for s in VALUE_STAGES if s in stages] + sorted(set(stages) - set(VALUE_STAGES))
    data = [
        {"view": "activity state", "month": "", "from_state": "", "state": s, "customers": states[s]}
        for s in state_order
    ]
    data += [
        {"view": "value stage", "month": "", "from_state": "", "state": s, "customers": stages[s]} for s in stage_order
    ]

    month, moves = _transition_month(con)
    data += [
        {
            "view": "transition",
            "month": _iso(month),
            "from_state": r["from_state"],
            "state": r["to_state"],
            "customers": int(r["customers"]),
        }
        for r in moves
    ]

    fig = plt.figure(figsize=(14, 5.2))
    gs = fig.add_gridspec(1, 3, width_ratios=[1, 1, 1.5], wspace=0.75)
    for k, (label, order, counts, colour) in enumerate(
        [
            ("activity state (days since last purchase)", state_order, states, BLUE),
            ("value stage (purchases, membership)", stage_order, stages, GREEN),
        ]
    ):
        ax = fig.add_subplot(gs[0, k])
        ys = list(range(len(order)))[::-1]
        vals = [counts[s] for s in order]
        ax.barh(ys, vals, color=colour)
        total = sum(vals) or 1
        for y, v in zip(ys, vals, strict=False):
            ax.annotate(
                f"{v:,} ({_pct(v / total)})",
                (v, y),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=8.5,
            )
        ax.set_yticks(ys, [STATE_LABELS.get(s, s) for s in order], fontsize=9)
        ax.set_xlim(0, max(vals) * 1.7)
        ax.xaxis.set_major_locator(MaxNLocator(4, integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.set_xlabel("customers")
        ax.set_title(label, fontsize=10)

    ax = fig.add_subplot(gs[0, 2])
    if moves:
        froms = [s for s in ["none"] + ACTIVITY_STATES if any(m["from_state"] == s for m in moves)]
        tos = [s for s in ACTIVITY_STATES if any(m["to_state"] == s for m in moves)]
        cell = {(m["from_state"], m["to_state"]): int(m["customers"]) for m in moves}
        grid = [[cell.get((f, t), 0) for t in tos] for f in froms]
        vmax = max(max(r) for r in grid) or 1
        ax.imshow(grid, cmap="Purples", vmin=0, vmax=vmax, aspect="auto")
        for i, line in enumerate(grid):
            for j, v in enumerate(line):
                if v:
                    ax.text(
                        j,
                        i,
                        f"{v:,}",
                        ha="center",
                        va="center",
                        fontsize=8.5,
                        color="white" if v > 0.55 * vmax else "black",
                    )
        ax.set_xticks(range(len(tos)), [STATE_LABELS.get(s, s) for s in tos], rotation=35, ha="right", fontsize=9)
        ax.set_yticks(range(len(froms)), [STATE_LABELS.get(s, s) for s in froms], fontsize=9)
        ax.set_xlabel("state at the end of the month")
        ax.set_ylabel("state at the start of the month")
        ax.set_title(f"moves between activity states, {month:%B %Y}", fontsize=10)
    else:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "no transitions yet", ha="center", va="center", color=GREY, transform=ax.transAxes)
    fig.suptitle(title, fontsize=12)
    caption = (
        f"As of {_iso(as_of)}: customers per activity state and value stage; on the right, customers' "
        f"moves between activity states during {_month_label(month) if month else 'the last month'} "
        "(the diagonal is customers who stayed)."
    )
    totals = {"activity state": sum(states.values()) or 1, "value stage": sum(stages.values()) or 1}
    table = [
        {
            "view": d["view"],
            "state": STATE_LABELS.get(d["state"], d["state"]),
            "customers": f"{d['customers']:,}",
            "share": _pct(d["customers"] / totals[d["view"]], 1),
        }
        for d in data
        if d["view"] != "transition"
    ]
    return Chart(name, title, caption, _png(fig), data, table)


def _transition_month(con) -> tuple:
    """The last complete month of lifecycle_transitions (not is_partial_period), else its latest month."""
    if not _has_rows(con, "lifecycle_transitions"):
        return None, []
    months = _rows(
        con,
        "select month, bool_and(is_partial_period) as partial from marts.lifecycle_transitions "
        "group by month order by 1",
    )
    complete = [r["month"] for r in months if not r["partial"]]
    month = complete[-1] if complete else months[-1]["month"]
    moves = _rows(
        con,
        "select from_state, to_state, customers from marts.lifecycle_transitions where month = ? "
        "order by from_state, to_state",
        [month],
    )
    return month, moves


# ------------------------------------------------------------------------------------------------
# 6. Tier sizes over the last runs


def tier_history(exports_dir: Path, current: tuple | None = None, limit: int = 30) -> list[tuple[str, dict]]:
    """(as_of, {tier: rows}) from exports/<as-of>/manifest.json (``latest`` and unreadable ones
    skipped), plus ``current`` (replacing a manifest of the same as-of), sorted by as-of, the last
    ``limit``.  ``current``: (as_of, {tier: rows}) or (as_of, the manifest's tiers dict
    {tier: {"rows": n, ...}}) for the run being published, whose folder is not in exports yet."""
    points: dict[str, dict] = {}
    exports_dir = Path(exports_dir)
    if exports_dir.is_dir():
        for folder in exports_dir.iterdir():
            if folder.name == "latest" or folder.is_symlink() or not folder.is_dir():
                continue
            try:
                manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
                as_of = str(manifest["as_of"])
                date.fromisoformat(as_of)
                tiers = {str(k): int(v["rows"]) for k, v in manifest["tiers"].items()}
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                continue
            points[as_of] = tiers
    if current is not None:
        as_of, tiers = current
        points[_iso(as_of)] = {str(k): int(v["rows"] if isinstance(v, dict) else v) for k, v in tiers.items()}
    return sorted(points.items())[-limit:]


def tier_sizes_chart(points: list[tuple]) -> Chart:
    """One line per tier: rows of the tier list in each run (points from tier_history)."""
    name, title = "tier_sizes", "Tier list sizes over the last runs"
    points = sorted(((_iso(a), t) for a, t in points), key=lambda p: p[0])
    if not points:
        return _no_data(name, title)
    tiers = []
    for _, t in points:
        tiers += [k for k in t if k not in tiers]
    data = [{"as_of": a, "tier": k, "rows": int(t[k])} for a, t in points for k in tiers if k in t]
    dates = [a for a, _ in points]

    fig, ax = plt.subplots(figsize=(max(7.5, 0.35 * len(dates) + 4), 4.8))
    xs = list(range(len(dates)))
    cmap = matplotlib.colormaps["tab10"]
    for i, k in enumerate(tiers):
        pts = [(x, t[k]) for x, (_, t) in zip(xs, points, strict=False) if k in t]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=4, color=cmap(i % 10), label=k)
        last_x, last_y = pts[-1]
        ax.annotate(
            f"{last_y:,}",
            (last_x, last_y),
            xytext=(5, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
            color=cmap(i % 10),
        )
    step = max(1, math.ceil(len(dates) / 12))
    ax.set_xticks(xs[::step], dates[::step], rotation=30, ha="right", fontsize=8.5)
    ax.set_xlim(-0.5, len(dates) - 0.5 + 0.6)
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xlabel("run (as-of date)")
    ax.set_ylabel("customers in the tier list")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8.5, loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0, title="tier")
    caption = f"Rows in each tier list over the last {len(dates)} run(s), {dates[0]} to {dates[-1]}."
    if len(points) > 4:
        caption += " The table shows the last 4 runs."
    table = [
        {"tier list": k, **{f"as of {a}": (f"{t[k]:,}" if k in t else "not listed") for a, t in points[-4:]}}
        for k in tiers
    ]
    return Chart(name, title, caption, _png(fig), data, table)


# ------------------------------------------------------------------------------------------------
# 7. Member vs non-member value


def membership_value_chart(con) -> Chart:
    """Spend per active member vs per active non-member over the 12 months before the as-of date,
    per channel (membership_value), with the member spend multiple and penetration."""
    name, title = "membership_value", "Members vs non-members: spend per customer, last 12 months"
    if not _has_rows(con, "membership_value"):
        return _no_data(name, title)
    order = "case channel when 'all' then 0 when 'online' then 1 when 'store' then 2 else 3 end, channel"
    rows = _rows(con, f"select * from marts.membership_value order by {order}")
    cur = reporting_currency(con)
    data = [
        {
            "channel": r["channel"],
            "active_customers": int(r["active_customers"]),
            "active_members": int(r["active_members"]),
            "penetration": float(r["penetration"]),
            "value_per_member": _num(r["value_per_member"]),
            "value_per_non_member": _num(r["value_per_non_member"]),
            "member_spend_multiple": _num(r["member_spend_multiple"]),
        }
        for r in rows
    ]

    fig, ax = plt.subplots(figsize=(max(7.0, 2.4 * len(data) + 2), 5))
    xs = list(range(len(data)))
    w = 0.38
    top = max([d["value_per_member"] or 0 for d in data] + [d["value_per_non_member"] or 0 for d in data] + [1])
    for off, key, colour, label in [
        (-w / 2, "value_per_member", ORANGE, "members"),
        (w / 2, "value_per_non_member", BLUE, "non-members"),
    ]:
        for x, d in zip(xs, data, strict=False):
            v = d[key]
            if v is None:
                ax.text(x + off, top * 0.02, "none", ha="center", va="bottom", fontsize=8, color=GREY, rotation=90)
                continue
            ax.bar(
                x + off,
                v,
                width=w,
                color=colour,
                label=label if x == 0 or label not in [h.get_label() for h in ax.patches] else None,
            )
            ax.annotate(
                _money(v, ""),
                (x + off, v),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=8.5,
            )
    handles = [plt.Rectangle((0, 0), 1, 1, color=ORANGE), plt.Rectangle((0, 0), 1, 1, color=BLUE)]
    ax.legend(handles, ["members", "non-members"], loc="upper right", fontsize=9)
    labels = []
    for d in data:
        mult = d["member_spend_multiple"]
        labels.append(
            f"{d['channel']}\n{'×' + format(mult, '.2f') if mult is not None else 'no multiple'}"
            f" · {_pct(d['penetration'], 1)} members"
        )
    ax.set_xticks(xs, labels, fontsize=9)
    ax.set_ylim(0, top * 1.25)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_ylabel(f"net spend per active customer ({cur})" if cur else "net spend per active customer")
    ax.set_xlabel("channel · member spend multiple · members among active customers")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    overall = next((d for d in data if d["channel"] == "all"), data[0])
    caption = "Active = bought in the 12 months before the as-of date. " + (
        f"Members spend {overall['member_spend_multiple']:.2f}× what non-members do (all channels)."
        if overall["member_spend_multiple"] is not None
        else "No multiple: one of the groups is empty."
    )
    table = [
        {
            "channel": d["channel"],
            "active customers": f"{d['active_customers']:,}",
            "of them members": f"{d['active_members']:,} ({_pct(d['penetration'], 1)})",
            "spend per member": _money(d["value_per_member"], cur, 2) if d["value_per_member"] is not None else "none",
            "spend per non-member": (
                _money(d["value_per_non_member"], cur, 2) if d["value_per_non_member"] is not None else "none"
            ),
            "members spend": (
                f"×{d['member_spend_multiple']:.2f}" if d["member_spend_multiple"] is not None else "no multiple"
            ),
        }
        for d in data
    ]
    return Chart(name, title, caption, _png(fig), data, table)


# ------------------------------------------------------------------------------------------------
# 8. LTV:CAC by channel


def channel_ltv_cac(con) -> list[dict]:
    """Per acquisition channel, as marts.channel_economics_summary publishes it (dbt sums
    channel_economics over the acquisition months whose 12-month LTV is complete, all months when
    none is): new customers, spend, CAC, 12-month LTV, LTV:CAC (None without spend)."""
    if not _has_rows(con, "channel_economics_summary"):
        return []
    rows = _rows(
        con,
        """
        select channel, new_customers, marketing_spend, cac, ltv_12m, ltv_to_cac, has_spend, ltv_12m_complete
        from marts.channel_economics_summary order by channel""",
    )
    return [
        {
            "channel": r["channel"],
            "new_customers": int(r["new_customers"]),
            "marketing_spend": float(r["marketing_spend"]),
            "cac": r["cac"],
            "ltv_12m": r["ltv_12m"],
            "ltv_to_cac": r["ltv_to_cac"],
            "has_spend": bool(r["has_spend"]),
            "ltv_12m_complete": bool(r["ltv_12m_complete"]),
        }
        for r in rows
    ]


def ltv_cac_chart(con) -> Chart:
    """LTV:CAC per acquisition channel with the 3:1 rule-of-thumb line; channels without spend are
    listed as "no spend"."""
    name, title = "ltv_cac", "LTV:CAC by acquisition channel"
    data = channel_ltv_cac(con)
    if not data:
        return _no_data(name, title)
    cur = reporting_currency(con)
    data.sort(key=lambda d: (d["ltv_to_cac"] is None, -(d["ltv_to_cac"] or 0), d["channel"]))
    fig, ax = plt.subplots(figsize=(8.5, max(3.5, 0.6 * len(data) + 1.8)))
    ys = list(range(len(data)))[::-1]
    top = max([d["ltv_to_cac"] or 0 for d in data] + [LTV_CAC_TARGET])
    for y, d in zip(ys, data, strict=False):
        ltv = _money(d["ltv_12m"], cur) if d["ltv_12m"] is not None else "n/a"
        if d["ltv_to_cac"] is not None:
            colour = GREEN if d["ltv_to_cac"] >= LTV_CAC_TARGET else (ORANGE if d["ltv_to_cac"] >= 1 else RED)
            ax.barh(y, d["ltv_to_cac"], color=colour, height=0.6)
            ax.annotate(
                f"{d['ltv_to_cac']:.1f}:1  (LTV {ltv} / CAC {_money(d['cac'], cur)})",
                (d["ltv_to_cac"], y),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=8.5,
            )
        else:
            why = "no spend" if not d["has_spend"] else "no new customers"
            ax.annotate(
                f"{why}  (LTV {ltv}, {d['new_customers']:,} new customers)",
                (0, y),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=8.5,
                color=GREY,
                style="italic",
            )
    ax.axvline(LTV_CAC_TARGET, color=RED, ls="--", lw=1.2)
    ax.annotate(
        "3:1 target",
        (LTV_CAC_TARGET, 1.0),
        xycoords=("data", "axes fraction"),
        xytext=(0, 2),
        textcoords="offset points",
        color=RED,
        fontsize=9,
        ha="center",
        va="bottom",
    )
    ax.set_yticks(ys, [d["channel"] for d in data])
    ax.set_ylim(-0.6, len(data) - 0.4)
    ax.set_xlim(0, top * 1.9)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}:1"))
    ax.set_xlabel("12-month customer value ÷ cost to acquire a customer")
    ax.set_ylabel("acquisition channel")
    ax.set_title(title, pad=16)
    ax.grid(axis="x", alpha=0.3)
    which = (
        "acquisition months whose first 12 months are complete"
        if data[0]["ltv_12m_complete"]
        else "all acquisition months (12-month values still accruing)"
    )
    caption = (
        f"Over {which}; LTV = first-year net revenue (after cancellations and returns) per new customer, "
        f"CAC = marketing spend per new customer{f' ({cur})' if cur else ''}. Channels without spend have no CAC."
    )
    table = [
        {
            "acquisition channel": d["channel"],
            "new customers": f"{d['new_customers']:,}",
            "marketing spend": _money(d["marketing_spend"], cur),
            "cost per new customer (CAC)": _money(d["cac"], cur, 2) if d["cac"] is not None else "no spend",
            "12-month value (LTV)": _money(d["ltv_12m"], cur, 2) if d["ltv_12m"] is not None else "n/a",
            "LTV:CAC": f"{d['ltv_to_cac']:.1f}:1"
            if d["ltv_to_cac"] is not None
            else ("no spend" if not d["has_spend"] else "no new customers"),
        }
        for d in data
    ]
    return Chart(name, title, caption, _png(fig), data, table)


# ------------------------------------------------------------------------------------------------
# 9. Lift of the tier programmes (treated vs held out)

LIFT_METRICS = {
    "repeat_purchase_rate": "repeat purchase rate",
    "net_revenue_per_customer": "net revenue per customer",
    "orders_per_customer": "orders per customer",
}
LIFT_MAX_ROWS = 12  # tier × entry month rows drawn (the newest); the table and the mart have every one


def tier_lift_chart(con) -> Chart:
    """Treated minus held-out customers per tier and entry month (tier_lift, the longest complete window
    of each), with the 95% interval, one panel per metric; says plainly when no window is complete."""
    name, title = "tier_lift", "Lift of the tier programmes: treated vs held-out customers"
    if not _has_rows(con, "tier_lift"):
        waiting = (
            con.execute(
                "select count(*), min(entered_on) from marts.tier_memberships where holdout_group = 'holdout'"
            ).fetchone()
            if _has_table(con, "tier_memberships")
            else (0, None)
        )
        why = "no complete 30-day window yet"
        chart = _no_data(name, title, why)
        since = f" The earliest recorded entry of a held-out customer is {_iso(waiting[1])}." if waiting[1] else ""
        caption = (
            "Nothing to measure yet: each tier's treated customers are compared with its held-out ones over the "
            "30, 60 and 90 days after they entered the tier, and only complete windows count, so the first "
            "numbers appear 30 days after the first published tier lists (the memberships are recorded when a "
            "run publishes; the lift is computed from the next run on)." + since
        )
        return Chart(name, title, caption, chart.png, [])
    rows = _rows(
        con,
        "select * from marts.tier_lift order by tier, entry_month, window_days, metric",
    )
    cur = reporting_currency(con)
    data = [
        {
            "tier": r["tier"],
            "entry_month": _iso(r["entry_month"]),
            "window_days": int(r["window_days"]),
            "metric": r["metric"],
            "treated_customers": int(r["treated_customers"]),
            "holdout_customers": int(r["holdout_customers"]),
            "treated_value": _num(r["treated_value"]),
            "holdout_value": _num(r["holdout_value"]),
            "difference": _num(r["difference"]),
            "ci_low": _num(r["ci_low"]),
            "ci_high": _num(r["ci_high"]),
            "status": r["status"],
        }
        for r in rows
    ]
    # the longest complete window of each tier and entry month, newest entry months first
    longest: dict[tuple, int] = {}
    for d in data:
        key = (d["tier"], d["entry_month"])
        longest[key] = max(longest.get(key, 0), d["window_days"])
    keys = sorted(longest, key=lambda k: (k[1], k[0]), reverse=True)[:LIFT_MAX_ROWS][::-1]
    measured = [d for d in data if d["status"] == "measured"]
    fig, axes = plt.subplots(1, 3, figsize=(13, max(3.0, 0.45 * len(keys) + 1.6)), sharey=True)
    for ax, (metric, label) in zip(axes, LIFT_METRICS.items(), strict=False):
        for y, (tier, month) in enumerate(keys):
            d = next(
                (
                    x
                    for x in data
                    if (x["tier"], x["entry_month"], x["metric"], x["window_days"])
                    == (tier, month, metric, longest[(tier, month)])
                ),
                None,
            )
            if d is None or d["difference"] is None:
                ax.text(0, y, "not enough customers yet", ha="center", va="center", fontsize=7.5, color=GREY)
                continue
            low, high = d["ci_low"], d["ci_high"]
            colour = GREEN if low > 0 else RED if high < 0 else BLUE
            ax.errorbar(
                d["difference"],
                y,
                xerr=[[d["difference"] - low], [high - d["difference"]]],
                fmt="o",
                color=colour,
                capsize=3,
            )
        ax.axvline(0, color=GREY, linewidth=1)
        ax.set_title(label, fontsize=10)
        ax.grid(axis="x", alpha=0.3)
        if metric == "repeat_purchase_rate":
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:+.0f} pt"))
        elif metric == "net_revenue_per_customer" and cur:
            ax.set_xlabel(cur)
    axes[0].set_yticks(
        range(len(keys)), [f"{t} · {_month_label(m)} · {longest[(t, m)]} d" for t, m in keys], fontsize=8.5
    )
    axes[0].set_ylim(-0.7, len(keys) - 0.3)
    fig.suptitle(title)
    caption = (
        "Treated minus held-out customers of each tier and entry month over the longest complete window after "
        "entry (dot), with its 95% interval (bar): green when the whole interval is above 0, red when below, "
        "blue when it includes 0 (no measurable difference). "
        f"{len(measured)} of {len(data)} figures have enough customers in both groups."
    )
    table = [
        {
            "tier": d["tier"],
            "entered in": _month_label(d["entry_month"]),
            "window": f"{d['window_days']} days",
            "metric": LIFT_METRICS[d["metric"]],
            "treated (customers)": f"{_lift_value(d['metric'], d['treated_value'], cur)} ({d['treated_customers']:,})",
            "held out (customers)": f"{_lift_value(d['metric'], d['holdout_value'], cur)} ({d['holdout_customers']:,})",
            "difference [95% interval]": (
                f"{_lift_value(d['metric'], d['difference'], cur, signed=True)} "
                f"[{_lift_value(d['metric'], d['ci_low'], cur, signed=True)}, "
                f"{_lift_value(d['metric'], d['ci_high'], cur, signed=True)}]"
                if d["difference"] is not None
                else "not enough customers yet"
            ),
        }
        for d in data
    ]
    return Chart(name, title, caption, _png(fig), data, table)


def _lift_value(metric: str, v, cur: str, signed: bool = False) -> str:
    if v is None:
        return "none"
    sign = "+" if signed else ""
    if metric == "repeat_purchase_rate":
        return f"{100 * v:{sign}.1f}" + (" pt" if signed else "%")
    if metric == "net_revenue_per_customer":
        return f"{v:{sign},.2f} {cur}".strip()
    return f"{v:{sign}.2f}"


# ------------------------------------------------------------------------------------------------
# all of them, and the Markdown for Dagster metadata


def all_charts(con, tier_points: list[tuple]) -> list[Chart]:
    """The report's charts in order: Pareto, R×F, cohorts, ladder, lifecycle, tier sizes, membership,
    LTV:CAC, tier lift."""
    return [
        pareto_chart(con),
        rf_heatmap_chart(con),
        cohort_retention_chart(con),
        repeat_ladder_chart(con),
        lifecycle_chart(con),
        tier_sizes_chart(tier_points),
        membership_value_chart(con),
        ltv_cac_chart(con),
        tier_lift_chart(con),
    ]


def markdown_table(columns: list[str], rows, cell) -> str:
    """A Markdown table: header, separator, one line per row; `cell(value, column)` renders a value
    (pipes in it are escaped, line breaks flattened)."""

    def safe(v, c) -> str:
        return cell(v, c).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(safe(v, c) for v, c in zip(row, columns, strict=False)) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def markdown_image(chart: Chart, max_rows: int = 12) -> str:
    """Markdown for Dagster metadata (MetadataValue.md): the PNG as a data URI and a short table."""
    b64 = base64.b64encode(chart.png).decode("ascii")
    alt = chart.title.replace("[", "(").replace("]", ")")
    parts = [f"![{alt}](data:image/png;base64,{b64})", "", chart.caption]
    rows = chart.rows
    if rows:
        cols = list(rows[0])
        parts += ["", markdown_table(cols, ([r.get(c) for c in cols] for r in rows[:max_rows]), _cell).rstrip("\n")]
        if len(rows) > max_rows:
            parts.append(f"\n… {len(rows) - max_rows} more rows")
    return "\n".join(parts) + "\n"


def _cell(v, column: str = "") -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float) and any(k in column for k in ("rate", "share", "penetration")):
        return _pct(v, 1)
    if isinstance(v, float):
        return f"{v:,.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v).replace("|", "\\|")
