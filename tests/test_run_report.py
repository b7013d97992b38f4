"""The run's report, charts and asset metadata reflect the published marts."""

import base64
import json
import re

import dagster as dg
import duckdb
import pytest

from dagster_project.lib.export import charts

CHART_NAMES = [
    "pareto",
    "rf_heatmap",
    "cohort_retention",
    "repeat_ladder",
    "lifecycle",
    "tier_sizes",
    "membership_value",
    "ltv_cac",
    "tier_lift",
]


@pytest.fixture(scope="module")
def published(demo_run):
    assert demo_run["result"].success
    d = demo_run["data_dir"]
    return {"data_dir": d, "exports": d / "exports" / "latest", "serving": d / "serving" / "warehouse.duckdb"}


def test_report_contains_every_chart_and_the_clv_holdout(published):
    html = (published["exports"] / "report.html").read_text(encoding="utf-8")
    embedded = [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', html)]
    assert len(embedded) == len(CHART_NAMES) + 1  # + the CLV calibration/holdout chart
    for name in CHART_NAMES:
        png = (published["exports"] / "charts" / f"{name}.png").read_bytes()
        assert png in embedded, f"{name}.png is not the chart embedded in report.html"
    for heading in (
        "Revenue concentration (Pareto curve)",
        "Repeat-purchase ladder",
        "LTV:CAC by acquisition channel",
        "Predicted CLV: calibration vs holdout",
        "Expected next order date: holdout check",
    ):
        assert heading in html


def test_published_charts_are_drawn_from_the_published_marts(published):
    """Re-drawing each chart from the serving warehouse gives the published PNG byte for byte, and the
    chart's numbers are the mart's (tests/test_charts.py checks each chart's data against its mart)."""
    con = duckdb.connect(str(published["serving"]), read_only=True)
    try:
        ladder = charts.repeat_ladder_chart(con)
        assert ladder.png == (published["exports"] / "charts" / "repeat_ladder.png").read_bytes()
        mart = con.execute(
            "select n, repeat_rate from marts.repeat_purchase_ladder where dimension = 'overall' "
            "and customers_reached_n > 0 order by n"
        ).fetchall()
        assert [(d["n"], round(d["repeat_rate"], 12)) for d in ladder.data] == [(n, round(r, 12)) for n, r in mart]
        for fn, name in [
            (charts.pareto_chart, "pareto"),
            (charts.rf_heatmap_chart, "rf_heatmap"),
            (charts.ltv_cac_chart, "ltv_cac"),
            (charts.membership_value_chart, "membership_value"),
        ]:
            assert fn(con).png == (published["exports"] / "charts" / f"{name}.png").read_bytes(), name
    finally:
        con.close()


def test_marts_carry_row_counts_previews_and_charts_in_dagster(published):
    instance = dg.DagsterInstance.from_config(str(published["data_dir"] / "dagster_home"))
    con = duckdb.connect(str(published["serving"]), read_only=True)
    try:
        for name, has_chart in [("repeat_purchase_ladder", True), ("customer_rfm", True), ("fct_orders", False)]:
            records = instance.fetch_observations(dg.AssetKey(["marts", name]), limit=1).records
            assert records, f"no observation for marts/{name}"
            meta = records[0].asset_observation.metadata
            assert meta["dagster/row_count"].value == con.execute(f"select count(*) from marts.{name}").fetchone()[0]
            preview = meta["preview"].value
            assert preview.startswith("| ") and preview.count("\n") == 2 + min(5, meta["dagster/row_count"].value)
            assert ("chart" in meta) == has_chart
            if has_chart:
                assert meta["chart"].value.startswith("![")
            assert records[0].partition_key == published["exports"].resolve().name
    finally:
        con.close()


def _cards(page: str) -> dict:
    """{metric: (value, change)} of the report's headline cards."""
    return {
        m: (v, c)
        for m, v, c in re.findall(
            r'data-metric="([a-z_]+)"><div class="label">[^<]*</div><div class="value">([^<]*)</div>'
            r'<div class="change [a-z]+">([^<]*)</div>',
            page,
        )
    }


def _tables(page: str) -> list[list[list[str]]]:
    """Every table of the page as rows of cells (header row first)."""
    import html as html_lib

    out = []
    for t in re.findall(r"<table>(.*?)</table>", page, flags=re.S):
        rows = re.findall(r"<tr>(.*?)</tr>", t, flags=re.S)
        out.append([[html_lib.unescape(c) for c in re.findall(r"<t[dh]>(.*?)</t[dh]>", r)] for r in rows])
    return out


def _section(page: str, heading: str) -> str:
    start = page.index(f"<h2>{heading}</h2>")
    return page[start : page.index("</section>", start)]


def test_the_report_opens_with_the_headline_from_the_marts(published):
    page = (published["exports"] / "report.html").read_text(encoding="utf-8")
    assert "<title>Customer value report, as of 1 November 2026</title>" in page
    assert page.index('class="cards"') < page.index("<h2>")  # the headline comes first
    cards = _cards(page)
    assert list(cards) == [
        "net_revenue",
        "gross_margin",
        "customers",
        "orders",
        "average_order_value",
        "value_per_customer",
        "repeat_customer_rate",
        "super_user_share",
    ]
    con = duckdb.connect(str(published["serving"]), read_only=True)
    try:
        s = con.execute("select * from marts.customer_value_summary").df().iloc[0]
        p = con.execute("select * from marts.pareto_summary").df().iloc[0]
        currency = charts.reporting_currency(con)
    finally:
        con.close()
    assert cards["net_revenue"][0] == f"{float(s['net_revenue']):,.0f} {currency}"
    assert cards["gross_margin"][0] == f"{float(s['gross_margin']):,.0f} {currency}"
    # margin says how much of it rests on real costs (the demo's exports leave some SKUs without one)
    assert 0 < s["margin_cost_coverage"] < 1
    assert f"known cost on {100 * s['margin_cost_coverage']:.1f}% of line value" in page
    assert cards["customers"][0] == f"{int(s['customers']):,}"
    assert cards["orders"][0] == f"{int(s['orders']):,}"
    assert cards["average_order_value"][0] == f"{float(s['average_order_value']):,.2f} {currency}"
    assert cards["value_per_customer"][0] == f"{float(s['value_per_customer']):,.2f} {currency}"
    assert cards["repeat_customer_rate"][0] == f"{100 * s['repeat_customer_rate']:.1f}%"
    assert cards["super_user_share"][0] == f"{100 * p['super_user_customer_share']:.1f}%"
    # the first run of a data directory has nothing to compare with, and says so
    assert "No earlier run to compare with" in page
    assert {c for _, c in cards.values()} == {""}
    # the manifest keeps the figures the next run compares with
    manifest = json.loads((published["exports"] / "manifest.json").read_text())
    assert manifest["headline"]["customers"] == int(s["customers"])
    assert manifest["headline"]["net_revenue"] == pytest.approx(float(s["net_revenue"]))


def test_the_lift_section_says_plainly_that_no_window_is_complete_yet(published):
    """A single run has published no earlier tier lists, so no 30-day window after an entry is complete:
    the section says so in words, and its chart carries no numbers."""
    page = (published["exports"] / "report.html").read_text(encoding="utf-8")
    section = _section(page, "Lift of the tier programmes: treated vs held-out customers")
    assert "Nothing to measure yet" in section and "30 days after the first published tier lists" in section
    assert not _tables(section)
    con = duckdb.connect(str(published["serving"]), read_only=True)
    try:
        assert con.execute("select count(*) from marts.tier_lift").fetchone()[0] == 0
        assert charts.tier_lift_chart(con).data == []
    finally:
        con.close()


def test_the_report_cuts_nothing_silently_and_labels_for_people(published):
    page = (published["exports"] / "report.html").read_text(encoding="utf-8")
    con = duckdb.connect(str(published["serving"]), read_only=True)
    try:
        rfm = con.execute("select r_score, f_score, count(*) from marts.customer_rfm group by 1, 2").fetchall()
        cohorts = con.execute("select count(distinct cohort_month) from marts.cohort_retention").fetchone()[0]
    finally:
        con.close()
    # R x F: one row per recency score customers have, every customer in a cell (no row dropped)
    (rf,) = _tables(_section(page, "Customers by recency and frequency score"))
    assert len(rf) - 1 == len({r for r, _, _ in rfm})
    assert sum(int(c.replace(",", "")) for row in rf[1:] for c in row[1:]) == sum(n for *_, n in rfm)
    assert [row[0].split(" · ")[0] for row in rf[1:]] == [f"R{r}" for r in sorted({r for r, _, _ in rfm}, reverse=True)]
    # frequency scores nobody has are named in the caption, not drawn as empty columns
    empty = sorted({1, 2, 3, 4, 5} - {f for _, f, _ in rfm})
    assert len(rf[0]) - 1 == 5 - len(empty)
    for f in empty:
        assert f"F{f}" in _section(page, "Customers by recency and frequency score").split("<img")[0]
    # cohorts: the caption's count is the table's
    section = _section(page, "Cohort retention: share of each month&#x27;s new customers buying again")
    shown = int(re.search(r"(?:All|The last) (\d+)", section).group(1))
    (table,) = _tables(section)
    assert len(table) - 1 == shown and shown <= cohorts
    # no raw column names or raw decimals in any table (percentages, amounts and counts as people write them)
    for t in _tables(page):
        assert not any("_" in h for h in t[0]), t[0]
        for row in t[1:]:
            for cell in row:
                assert not re.fullmatch(r"-?\d+\.\d{3,}", cell), cell
                assert cell not in ("True", "False", "None", "nan"), cell


def test_the_report_reads_cleanly_in_a_real_browser(published, tmp_path):
    """Debian's chromium, headless: no console error, no failed load, every chart image decodes."""
    from tests.browser import open_page

    got = open_page(published["exports"] / "report.html")
    assert got.problems == []
    assert got.images == len(CHART_NAMES) + 1
    assert got.title == "Customer value report, as of 1 November 2026"
    assert got.screenshot[:8] == b"\x89PNG\r\n\x1a\n" and len(got.screenshot) > 50_000
    (tmp_path / "report.png").write_bytes(got.screenshot)


def test_the_browser_check_sees_a_broken_image_and_a_console_error(tmp_path):
    """The check above can fail: a page with a corrupt embedded PNG, a console error and an exception."""
    from tests.browser import open_page

    bad = base64.b64encode(b"\x89PNG\r\n\x1a\n not really a png").decode()
    page = tmp_path / "bad.html"
    page.write_text(
        f'<!doctype html><html><head><title>t</title></head><body><img alt="chart" '
        f'src="data:image/png;base64,{bad}"><script>console.error("boom");'
        'throw new Error("kaput")</script></body></html>',
        encoding="utf-8",
    )
    got = open_page(page)
    assert got.broken_images and "chart" in got.broken_images[0]
    assert any("boom" in m for m in got.console_errors)
    assert any("kaput" in m for m in got.exceptions)


def test_headline_changes_are_against_the_previous_run():
    from dagster_project.lib.export import report

    now = {
        "net_revenue": 1100.0,
        "customers": 110,
        "orders": 200,
        "average_order_value": 5.5,
        "value_per_customer": 10.0,
        "repeat_customer_rate": 0.25,
        "super_user_share": 0.3,
        "super_user_revenue_share": 0.81,
        "target_revenue_share": 0.8,
        "currency": "GBP",
    }
    before = {
        **now,
        "net_revenue": 1000.0,
        "customers": 100,
        "orders": 200,
        "average_order_value": 5.75,
        "repeat_customer_rate": 0.2,
    }
    page = report.render(
        as_of="2026-11-21",
        run_id="r",
        published_at="t",
        code_version="c",
        figures=now,
        previous={"as_of": "2026-11-01", "figures": before},
        sections=[],
    )
    cards = _cards(page)
    assert cards["net_revenue"] == ("1,100 GBP", "+100 GBP (+10.0%)")
    assert cards["customers"] == ("110", "+10 (+10.0%)")
    assert cards["orders"] == ("200", "no change")
    assert cards["average_order_value"] == ("5.50 GBP", "−0.25 GBP (−4.3%)".replace("−4.3%", "-4.3%"))
    assert cards["repeat_customer_rate"] == ("25.0%", "+5.0 points")
    assert "Changes are since the previous run as of 1 November 2026" in page
    assert 'class="change up">+100 GBP' in page and 'class="change down">−0.25 GBP' in page
