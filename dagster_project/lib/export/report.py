"""The run report: one self-contained HTML page a marketer reads top to bottom.

First the headline (customer_value_summary and pareto_summary, with the change since the previous
published run, read from that run's manifest), then the marketing charts of lib/export/charts.py (Pareto,
R×F, cohorts, ladder, lifecycle, tier sizes, membership, LTV:CAC), then the CLV calibration/holdout
chart drawn here.  Every number comes from a mart; this module only formats them.  Tables are shown
whole: where a chart's table is longer than ``MAX_TABLE_ROWS`` the page says how many rows are left
out and which mart holds them.
"""

import base64
import html
import io
import json
import re
from datetime import date
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from dagster_project.lib.export import charts  # noqa: E402

MAX_TABLE_ROWS = 40

# (key in headline(), label, kind, what it is): the order of the headline cards
HEADLINE = [
    (
        "net_revenue",
        "Net revenue",
        "money",
        "valid orders up to the as-of date, after cancellations, refunds and returns",
    ),
    (
        "gross_margin",
        "Gross margin",
        "money",
        "net revenue − product cost; known cost on {coverage} of line value, the rest at the default margin rate",
    ),
    ("customers", "Customers", "count", "people with at least one purchase"),
    ("orders", "Orders", "count", "their purchases"),
    ("average_order_value", "Average order value", "money2", "net revenue ÷ orders"),
    ("value_per_customer", "Value per customer", "money2", "net revenue ÷ customers"),
    ("repeat_customer_rate", "Repeat customers", "share", "bought on two or more days"),
    ("super_user_share", "Super users", "share", "the fewest customers giving {target} of net revenue"),
]


def headline(con) -> dict:
    """The headline figures of the warehouse behind ``con`` (marts.customer_value_summary and
    marts.pareto_summary): {key: number or None}, plus ``currency`` and ``super_user_revenue_share``.
    Missing or empty marts give None values (a run with no purchases yet)."""
    out = {key: None for key, *_ in HEADLINE}
    out.update(
        currency=charts.reporting_currency(con),
        super_user_revenue_share=None,
        target_revenue_share=None,
        margin_cost_coverage=None,
    )
    row = _one_row(con, "customer_value_summary")
    if row:
        for key in (
            "net_revenue",
            "customers",
            "orders",
            "average_order_value",
            "value_per_customer",
            "repeat_customer_rate",
            "gross_margin",
            "margin_cost_coverage",
        ):
            out[key] = charts._num(row.get(key))
    row = _one_row(con, "pareto_summary")
    if row:
        out["super_user_share"] = charts._num(row["super_user_customer_share"])
        out["super_user_revenue_share"] = charts._num(row["super_user_revenue_share"])
        out["target_revenue_share"] = charts._num(row["target_revenue_share"])
    return out


def _one_row(con, mart: str) -> "dict | None":
    """The single row of a one-row mart, None when the mart is missing or empty (no purchases yet)."""
    return charts._rows(con, f"select * from marts.{mart} limit 1")[0] if charts._has_rows(con, mart) else None


def holdout_chart(groups: list[dict], title: str) -> bytes:
    """Predicted vs actual holdout purchases by calibration frequency group, as PNG bytes."""
    labels = [g["group"] for g in groups]
    predicted = [float(g["predicted"]) for g in groups]
    actual = [float(g["actual"]) for g in groups]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], actual, width=0.4, label="actual", color="#4c72b0")
    ax.bar([x + 0.2 for x in xs], predicted, width=0.4, label="predicted (BG/NBD)", color="#dd8452")
    for x, a, p in zip(xs, actual, predicted, strict=False):
        ax.annotate(f"{a:.0f}", (x - 0.2, a), ha="center", va="bottom", fontsize=8)
        ax.annotate(f"{p:.1f}", (x + 0.2, p), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(xs), labels)
    ax.set_xlabel("repeat purchases in the calibration period")
    ax.set_ylabel("purchases in the holdout period")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def holdout_table(groups: list[dict]) -> list[dict]:
    """The holdout comparison per group, with each group's own error (the total can hide a large one)."""
    rows = []
    for g in groups:
        predicted, actual = float(g["predicted"]), int(g["actual"])
        rows.append(
            {
                "repeat purchases before": g["group"],
                "customers": f"{int(g['customers']):,}",
                "predicted purchases": f"{predicted:,.1f}",
                "actual purchases": f"{actual:,}",
                "error": _relative(predicted, actual),
            }
        )
    return rows


def holdout_summary(groups: list[dict], total_error: "float | None") -> str:
    """One sentence on the largest group and the group with the largest error, beside the total."""
    if not groups:
        return ""
    largest = max(groups, key=lambda g: int(g["customers"]))
    parts = [
        f"In the largest group ({largest['group']} repeat purchases before, {int(largest['customers']):,} "
        f"customers) the model predicted {float(largest['predicted']):,.0f} purchases and "
        f"{int(largest['actual']):,} happened ({_relative(float(largest['predicted']), int(largest['actual']))})."
    ]
    judged = [g for g in groups if int(g["actual"]) > 0]
    if judged:
        worst = max(judged, key=lambda g: abs(float(g["predicted"]) - int(g["actual"])) / int(g["actual"]))
        if worst is not largest:
            parts.append(
                f"The largest error is in the group with {worst['group']} repeat purchases "
                f"({_relative(float(worst['predicted']), int(worst['actual']))})."
            )
    if total_error is not None:
        parts.append(
            f"Over all groups the error is {total_error:.1%}: over- and under-predictions of "
            "different groups cancel out in that total, so read the groups."
        )
    return " ".join(parts)


def _relative(predicted: float, actual: int) -> str:
    if actual == 0:
        return "none happened" if predicted >= 0.05 else "0"
    return f"{(predicted - actual) / actual:+.0%}"


# What an unreliable CLV fit means, for the people reading the report (the reasons follow it).
UNRELIABLE_CLV = (
    "Unreliable: do not act on this run's predicted lifetime values. The models ran, but checks of the fit show "
    "that the purchase history does not pin them down, so P(alive), expected purchases and predicted CLV can be "
    "far off for any customer. They stay in customer_clv marked model_status = 'unreliable', the predicted-value "
    "tier is left empty, and customer_predictions leaves them empty with the reason, so no tier rule selects anyone "
    "by them; the historical marts (RFM, lifecycle, LTV) are unaffected."
)


def render(
    *,
    as_of: str,
    run_id: str,
    published_at: str,
    code_version: str,
    figures: dict,
    previous: "dict | None",
    sections: list[dict],
) -> str:
    """The page.  ``figures``: headline() of this run; ``previous``: {"as_of", "figures"} of the run it is
    compared with (None for the first run); sections: {"heading", "text", "png" (bytes, optional),
    "table" (list of dicts, optional), "more" (where the rows left out are, optional), "note"}."""
    day = date.fromisoformat(as_of)
    title = f"Customer value report, as of {day:%-d %B %Y}"
    cur = figures.get("currency") or ""
    if previous:
        compared = (
            f"Changes are since the previous run as of {_day(previous['as_of'])}"
            if previous["as_of"] != as_of
            else "Changes are since the earlier run of the same date"
        )
    else:
        compared = "No earlier run to compare with"
    parts = [
        f"<header><h1>{_e(title)}</h1>",
        f'<p class="sub">All purchases up to {_e(f"{day:%A %-d %B %Y}")}'
        + (f"; amounts in {_e(cur)}" if cur else "")
        + f". {_e(compared)}.</p></header>",
        _headline_html(figures, (previous or {}).get("figures"), cur),
        "<nav><strong>On this page:</strong> "
        + " · ".join(f'<a href="#{_anchor(s["heading"])}">{_e(s["heading"])}</a>' for s in sections)
        + "</nav>",
    ]
    for s in sections:
        parts.append(f'<section id="{_anchor(s["heading"])}"><h2>{_e(s["heading"])}</h2>')
        if s.get("text"):
            parts.append(f"<p>{_e(s['text'])}</p>")
        if s.get("png"):
            data = base64.b64encode(s["png"]).decode("ascii")
            parts.append(f'<img alt="{_e(s["heading"])}" src="data:image/png;base64,{data}">')
        rows = s.get("table") or []
        if rows:
            shown = rows[:MAX_TABLE_ROWS]
            cols = list(rows[0])
            parts.append("<table><thead><tr>" + "".join(f"<th>{_e(c)}</th>" for c in cols) + "</tr></thead><tbody>")
            for r in shown:
                parts.append("<tr>" + "".join(f"<td>{_e(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>")
            parts.append("</tbody></table>")
            if len(rows) > len(shown):
                parts.append(
                    f'<p class="more">The first {len(shown)} of {len(rows):,} rows; all of them are in '
                    f"{_e(s.get('more') or 'the mart')}.</p>"
                )
        if s.get("note"):
            parts.append(f"<p><small>{_e(s['note'])}</small></p>")
        parts.append("</section>")
    parts.append(
        f"<footer>Run {_e(run_id)}, published {_e(published_at)}, code {_e(code_version)}. "
        'Beside this page: <a href="manifest.json">manifest.json</a> (tier files, checks, row counts) and '
        '<a href="validation_report.html">the data validation report</a>.</footer>'
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>" + "".join(parts) + "</body></html>\n"
    )


_CSS = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em auto;max-width:64em;"
    "padding:0 1em;color:#222;line-height:1.4}"
    "h1{margin-bottom:.2em}.sub{color:#555;margin-top:0}"
    ".cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(13em,1fr));gap:.8em;margin:1.2em 0}"
    ".card{border:1px solid #ddd;border-radius:6px;padding:.7em .9em;background:#fafafa}"
    ".card .label{font-size:.85em;color:#555}.card .value{font-size:1.6em;font-weight:600;margin:.1em 0}"
    ".card .change{font-size:.85em}.card .what{font-size:.75em;color:#777}"
    ".up{color:#2a7d3b}.down{color:#b23b3b}.same{color:#777}"
    "nav{margin:1em 0 1.5em;font-size:.9em}section{margin-top:2.2em}"
    "table{border-collapse:collapse;margin:.6em 0;font-size:.92em}"
    "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f2f2f2}"
    "td:first-child,th:first-child{text-align:left}img{max-width:100%}.more{font-size:.9em;color:#555}"
    "footer{margin-top:3em;font-size:.8em;color:#666;border-top:1px solid #ddd;padding-top:.8em}"
)


def _headline_html(figures: dict, before: "dict | None", cur: str) -> str:
    cards = []
    target = figures.get("target_revenue_share")
    for key, label, kind, what in HEADLINE:
        value = figures.get(key)
        coverage = figures.get("margin_cost_coverage")
        what = what.format(
            target=_share(target) if target is not None else "80%",
            coverage=_share(coverage) if coverage is not None else "none",
        )
        if key == "super_user_share" and value is not None and figures.get("super_user_revenue_share") is not None:
            what = f"{_share(value)} of customers give {_share(figures['super_user_revenue_share'])} of net revenue"
        change = _change(kind, value, (before or {}).get(key), cur) if before is not None else ("", "same")
        cards.append(
            f'<div class="card" data-metric="{key}"><div class="label">{_e(label)}</div>'
            f'<div class="value">{_e(_value(kind, value, cur))}</div>'
            f'<div class="change {change[1]}">{_e(change[0])}</div><div class="what">{_e(what)}</div></div>'
        )
    return '<div class="cards">' + "".join(cards) + "</div>"


def _value(kind: str, v, cur: str) -> str:
    if v is None:
        return "none yet"
    if kind == "count":
        return f"{int(v):,}"
    if kind == "share":
        return _share(v)
    return f"{v:,.{2 if kind == 'money2' else 0}f} {cur}".strip()


def _change(kind: str, now, before, cur: str) -> "tuple[str, str]":
    """('+1,234 (+1.2%)', 'up'|'down'|'same') against the previous run's figure."""
    if now is None or before is None:
        return ("no figure to compare", "same")
    diff = float(now) - float(before)
    direction = "up" if diff > 0 else "down" if diff < 0 else "same"
    if kind == "share":
        pts = 100 * diff
        return ("no change" if round(pts, 1) == 0 else f"{_signed(pts, 1)} points", direction)
    if kind == "count":
        text = "no change" if diff == 0 else _signed(diff, 0)
    else:
        text = "no change" if round(diff, 2) == 0 else f"{_signed(diff, 2 if kind == 'money2' else 0)} {cur}".strip()
    if diff and float(before):
        text += f" ({diff / abs(float(before)):+.1%})"
    return (text, direction)


def _signed(v: float, decimals: int) -> str:
    return ("+" if v > 0 else "−") + f"{abs(v):,.{decimals}f}"


def _share(v: float) -> str:
    return f"{100 * float(v):.1f}%"


def _day(iso: str) -> str:
    return f"{date.fromisoformat(iso):%-d %B %Y}"


def _anchor(heading: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")


def _e(text) -> str:
    return html.escape(str(text))


def _fmt(v) -> str:
    """Table cells are formatted by the charts; a raw value left over still reads as a person would write it."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.2f}"
    return str(v)


# ------------------------------------------------------------------------------------------------
# the page of a run


def run_report(
    info: dict,
    figures: dict,
    previous: "dict | None",
    clv_fit,
    chart_list: "list[charts.Chart]",
    next_order: "list[dict] | None" = None,
) -> str:
    """html of the run (self-contained: charts embedded as PNG).  ``figures``: the headline of this
    run (headline); ``previous``: {"as_of", "figures"} of the run it is compared with, or None;
    ``next_order``: the rows of marts.next_order_holdout (None: no section)."""
    sections = [
        {
            "heading": c.title,
            "text": c.caption,
            "png": c.png,
            "table": c.rows,
            "more": ".".join(charts.CHART_ASSETS[c.name])
            if charts.CHART_ASSETS[c.name][0] == "marts"
            else "the manifests of earlier runs",
        }
        for c in chart_list
    ]
    heading = "Predicted CLV: calibration vs holdout"
    if clv_fit is None or clv_fit[0] not in ("fitted", "unreliable"):
        sections.append(
            {
                "heading": heading,
                "text": "No predictions this run: " + (clv_fit[1] if clv_fit else "the model did not run"),
            }
        )
    else:
        status, _, groups_json, error, reasons, diagnostics = clv_fit
        groups = json.loads(groups_json) if groups_json else []
        days = (json.loads(diagnostics) if diagnostics else {}).get("holdout_days") or 90
        text = (
            f"The purchase model is fitted on all but the last {days} days; bars compare its predicted "
            "purchases in those days with the actual ones, by how often customers bought before. "
            + holdout_summary(groups, error)
        )
        if status == "unreliable":
            text = UNRELIABLE_CLV + " Why: " + reasons + ". " + text
        sections.append(
            {
                "heading": heading,
                "text": text,
                "png": holdout_chart(groups, f"Holdout purchases, as of {info['as_of']}") if groups else None,
                "table": holdout_table(groups),
            }
        )
    if next_order:
        sections.append(next_order_section(next_order))
    return render(
        as_of=info["as_of"],
        run_id=info["run_id"],
        published_at=info["published_at"],
        code_version=info["code_version"],
        figures=figures,
        previous=previous,
        sections=sections,
    )


NEXT_ORDER_RULES = {"model": "the model", "own_history": "the customer's own intervals"}


def next_order_section(rows: list[dict]) -> dict:
    """The expected next order date checked on the held-out days (marts.next_order_holdout)."""
    first = rows[0]
    used = next((r for r in rows if r["used_this_run"]), None)
    text = (
        f"Every customer with two or more purchase days by {_day(str(first['cut_date']))} was given the window "
        "their next order was expected in, from their purchases up to then; the customers whose window lay "
        f"wholly inside the last {first['holdout_days']} days are scored on whether their next order fell inside it. "
        "The window spans the middle half of the expected wait, so about half of the customers who are still "
        "buying should land in it."
    )
    if used is not None and used["share_in_window"] is not None:
        text += (
            f" This run dates next orders by {NEXT_ORDER_RULES[used['source']]}: "
            f"{used['next_order_in_window']:,} of {used['customers_evaluated']:,} customers "
            f"({used['share_in_window']:.0%}) ordered inside their window."
        )
    table = [
        {
            "rule": NEXT_ORDER_RULES[r["source"]] + (" (used this run)" if r["used_this_run"] else ""),
            "customers scored": f"{r['customers_evaluated']:,}",
            "next order in window": f"{r['next_order_in_window']:,}",
            "ordered at all": f"{r['ordered_in_holdout']:,}",
            "share in window": "–" if r["share_in_window"] is None else f"{r['share_in_window']:.0%}",
        }
        for r in rows
    ]
    return {
        "heading": "Expected next order date: holdout check",
        "text": text,
        "table": table,
        "more": "marts.next_order_holdout",
    }


def previous_headline(previous: "Path | None") -> "dict | None":
    """{"as_of", "figures"} of the published run ``previous`` (previous_exports), None when there is none
    or its manifest predates the headline."""
    if previous is None:
        return None
    try:
        manifest = json.loads((previous / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest.get("headline"), dict):
        return None
    return {"as_of": str(manifest.get("as_of")), "figures": manifest["headline"]}


def markdown_preview(df: pd.DataFrame, max_chars: int = 40) -> str:
    """A small Markdown table of a mart's first rows (the serving copy: contact columns are masked)."""

    def cell(v, _column) -> str:
        text = "" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)
        return text if len(text) <= max_chars else text[: max_chars - 1] + "…"

    return charts.markdown_table(list(df.columns), df.itertuples(index=False), cell)
