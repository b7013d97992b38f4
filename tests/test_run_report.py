"""The run's report, charts and asset metadata reflect the published marts."""

import base64
import re

import dagster as dg
import duckdb
import pytest

from dagster_project.lib import charts

CHART_NAMES = ["pareto", "rf_heatmap", "cohort_retention", "repeat_ladder", "lifecycle", "tier_sizes",
               "membership_value", "ltv_cac"]


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
    for heading in ("Revenue concentration (Pareto curve)", "Repeat-purchase ladder", "LTV:CAC by acquisition channel",
                    "Predicted CLV: calibration vs holdout"):
        assert heading in html


def test_published_charts_are_drawn_from_the_published_marts(published):
    """Re-drawing each chart from the serving warehouse gives the published PNG byte for byte, and the
    chart's numbers are the mart's (tests/test_charts.py checks each chart's data against its mart)."""
    con = duckdb.connect(str(published["serving"]), read_only=True)
    try:
        ladder = charts.repeat_ladder_chart(con)
        assert ladder.png == (published["exports"] / "charts" / "repeat_ladder.png").read_bytes()
        mart = con.execute("select n, repeat_rate from marts.repeat_purchase_ladder where dimension = 'overall' "
                           "and customers_reached_n > 0 order by n").fetchall()
        assert [(d["n"], round(d["repeat_rate"], 12)) for d in ladder.data] == [(n, round(r, 12)) for n, r in mart]
        for fn, name in [(charts.pareto_chart, "pareto"), (charts.rf_heatmap_chart, "rf_heatmap"),
                         (charts.ltv_cac_chart, "ltv_cac"), (charts.membership_value_chart, "membership_value")]:
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
