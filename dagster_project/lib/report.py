"""The run report: charts rendered to PNG and gathered in one self-contained HTML page.

The marketing charts come from lib/charts.py (Pareto, R×F, cohorts, ladder, lifecycle, tier sizes,
membership, LTV:CAC); the CLV calibration/holdout chart is drawn here.
"""

import base64
import html
import io

import matplotlib

matplotlib.use("Agg")  # files only, no screen
import matplotlib.pyplot as plt  # noqa: E402


def holdout_chart(groups: list[dict], title: str) -> bytes:
    """Predicted vs actual holdout purchases by calibration frequency group, as PNG bytes."""
    labels = [g["group"] for g in groups]
    predicted = [float(g["predicted"]) for g in groups]
    actual = [float(g["actual"]) for g in groups]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], actual, width=0.4, label="actual", color="#4c72b0")
    ax.bar([x + 0.2 for x in xs], predicted, width=0.4, label="predicted (BG/NBD)", color="#dd8452")
    for x, a, p in zip(xs, actual, predicted):
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


# What an unreliable CLV fit means, for the people reading the report (the reasons follow it).
UNRELIABLE_CLV = (
    "Unreliable: do not act on this run's predicted lifetime values. The models ran, but checks of the fit show "
    "that the purchase history does not pin them down, so P(alive), expected purchases and predicted CLV can be "
    "far off for any customer. They stay in customer_clv marked model_status = 'unreliable', the predicted-value "
    "tier is left empty and no tier list uses them; the historical marts (RFM, lifecycle, LTV) are unaffected."
)


def render(title: str, sections: list[dict]) -> str:
    """sections: {"heading", "text", "png" (bytes, optional), "table" (list of dicts, optional), "note"}."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        parts.append(f"<h2>{html.escape(s['heading'])}</h2><p>{html.escape(s.get('text', ''))}</p>")
        if s.get("png"):
            data = base64.b64encode(s["png"]).decode("ascii")
            parts.append(f"<img alt=\"{html.escape(s['heading'])}\" src=\"data:image/png;base64,{data}\">")
        rows = s.get("table") or []
        if rows:
            cols = list(rows[0])
            parts.append("<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>")
            for r in rows:
                parts.append("<tr>" + "".join(f"<td>{html.escape(_fmt(r[c]))}</td>" for c in cols) + "</tr>")
            parts.append("</table>")
        if s.get("note"):
            parts.append(f"<p><small>{html.escape(s['note'])}</small></p>")
    return ("<!doctype html><html><head><meta charset=\"utf-8\"><title>" + html.escape(title) + "</title><style>"
            "body{font-family:sans-serif;margin:2em;max-width:60em} table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right} img{max-width:100%}</style></head><body>"
            + "".join(parts) + "</body></html>\n")


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return "" if v is None else str(v)
