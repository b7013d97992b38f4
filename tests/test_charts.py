"""Charts of the run: valid PNGs whose plotted numbers equal the marts (demo run's serving
warehouse), tier history from manifests, and "no data yet" charts on an empty warehouse."""

import base64
import io
import json
import math
import os
from datetime import date

import duckdb
import pytest
from PIL import Image

from dagster_project.lib.export import charts

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def assert_png(png: bytes, min_bytes: int = 5000):
    assert png[:8] == PNG_MAGIC
    assert len(png) > min_bytes
    img = Image.open(io.BytesIO(png))
    img.verify()
    assert img.size[0] >= 400 and img.size[1] >= 150


def rows(con, sql, params=None):
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=False)) for r in cur.fetchall()]


@pytest.fixture(scope="module")
def serving(demo_run):
    con = duckdb.connect(str(demo_run["data_dir"] / "serving" / "warehouse.duckdb"), read_only=True)
    yield con
    con.close()


def test_pareto_chart_plots_the_curve_and_the_line_crossing(serving):
    chart = charts.pareto_chart(serving)
    assert_png(chart.png)
    summary = rows(serving, "select * from marts.pareto_summary")[0]
    cross, curve = chart.data[0], chart.data[1:]
    assert cross["point"] == "line crossed"
    assert cross["customers"] == summary["super_users"]
    assert cross["customer_share"] == pytest.approx(summary["super_user_customer_share"])
    assert cross["revenue_share"] == pytest.approx(summary["super_user_revenue_share"])
    assert cross["target_revenue_share"] == pytest.approx(0.8) == summary["target_revenue_share"]
    assert cross["revenue_share"] >= 0.8
    # the curve: one point per percent of customers, each equal to the mart's row at that rank
    assert len(curve) == min(100, summary["customers"])
    mart = {r["revenue_rank"]: r for r in rows(serving, "select * from marts.pareto_curve")}
    for p in curve:
        r = mart[p["customers"]]
        assert p["customer_share"] == pytest.approx(r["cumulative_customer_share"])
        assert p["revenue_share"] == pytest.approx(r["cumulative_revenue_share"])
    assert curve[-1]["customers"] == summary["customers"] and curve[-1]["revenue_share"] == pytest.approx(1.0)
    assert summary["headline"] in chart.caption


def test_rf_heatmap_counts_equal_the_rfm_mart(serving):
    chart = charts.rf_heatmap_chart(serving)
    assert_png(chart.png)
    assert len(chart.data) == 25
    assert {(d["r_score"], d["f_score"]) for d in chart.data} == {(r, f) for r in range(1, 6) for f in range(1, 6)}
    total = serving.execute("select count(*) from marts.customer_rfm").fetchone()[0]
    assert total > 1000
    assert sum(d["customers"] for d in chart.data) == total
    grouped = {
        (r, f): n
        for r, f, n in serving.execute(
            "select r_score, f_score, count(*) from marts.customer_rfm group by 1, 2"
        ).fetchall()
    }
    for d in chart.data:
        assert d["customers"] == grouped.get((d["r_score"], d["f_score"]), 0)


def test_cohort_retention_cells_equal_the_mart(serving):
    chart = charts.cohort_retention_chart(serving)
    assert_png(chart.png)
    mart = {
        (r["cohort_month"].isoformat(), r["months_since_first_purchase"]): r
        for r in rows(serving, "select * from marts.cohort_retention")
    }
    cohorts = sorted({d["cohort_month"] for d in chart.data})
    assert 1 <= len(cohorts) <= 24
    all_cohorts = sorted({k[0] for k in mart})
    # the latest cohorts that have reached a month after their first (the newest has not)
    assert cohorts == all_cohorts[-len(cohorts) - 1 : -1]
    plotted = {(d["cohort_month"], d["months_since_first_purchase"]): d for d in chart.data}
    for key, r in mart.items():
        if key[0] in cohorts and key[1] >= 1:
            assert plotted[key]["share_retained"] == pytest.approx(r["share_retained"])
            assert plotted[key]["active_customers"] == r["active_customers"]
            assert plotted[key]["cohort_customers"] == r["cohort_customers"]
            assert plotted[key]["is_partial_period"] == r["is_partial_period"]
    for key, d in plotted.items():
        if key not in mart:  # reached, nobody bought: 0%
            assert d["share_retained"] == 0 and d["active_customers"] == 0
    assert any(d["share_retained"] > 0 for d in chart.data)

    # a cell is hatched when its calendar month is one the mart marks partial, with or without a row of its own
    def month(c, m):
        return charts._add_months(date.fromisoformat(c), m)

    partial_months = {month(*key) for key, r in mart.items() if r["is_partial_period"]}
    start = serving.execute("select min(order_date) from marts.fct_orders").fetchone()[0]
    # as of 2026-11-01: November 2026, and the first month when the data begins after its first day
    assert partial_months <= {date(2026, 11, 1), start.replace(day=1) if start.day > 1 else None}
    for key, d in plotted.items():
        assert d["is_partial_period"] == (month(*key) in partial_months)


def test_repeat_ladder_rates_equal_the_ladder_mart(serving):
    chart = charts.repeat_ladder_chart(serving)
    assert_png(chart.png)
    mart = rows(
        serving,
        "select n, customers_reached_n, customers_reached_next, repeat_rate, repeat_rate_by_as_of, "
        "window_days from marts.repeat_purchase_ladder where dimension = 'overall' order by n",
    )
    assert len(mart) >= 2
    assert [d["n"] for d in chart.data] == [r["n"] for r in mart]
    assert f"within {mart[0]['window_days']} days" in chart.caption
    for d, r in zip(chart.data, mart, strict=False):
        assert d["repeat_rate"] == pytest.approx(r["repeat_rate"])
        assert d["repeat_rate_by_as_of"] == pytest.approx(r["repeat_rate_by_as_of"])
        assert (d["customers_reached_n"], d["customers_reached_next"]) == (
            r["customers_reached_n"],
            r["customers_reached_next"],
        )


def test_lifecycle_counts_and_last_complete_month_transitions(serving):
    chart = charts.lifecycle_chart(serving)
    assert_png(chart.png, min_bytes=20000)
    for view, col in [("activity state", "activity_state"), ("value stage", "value_stage")]:
        got = {d["state"]: d["customers"] for d in chart.data if d["view"] == view}
        want = dict(serving.execute(f"select {col}, count(*) from marts.customer_lifecycle group by 1").fetchall())
        assert got == want
    moves = [d for d in chart.data if d["view"] == "transition"]
    # as of 2026-11-01 the last complete month is October 2026
    assert {d["month"] for d in moves} == {"2026-10-01"}
    want = {
        (f, t): n
        for f, t, n in serving.execute(
            "select from_state, to_state, customers from marts.lifecycle_transitions where month = date '2026-10-01'"
        ).fetchall()
    }
    assert {(d["from_state"], d["state"]): d["customers"] for d in moves} == want
    assert len(want) > 3


def test_membership_value_equals_the_mart(serving):
    chart = charts.membership_value_chart(serving)
    assert_png(chart.png)
    mart = {r["channel"]: r for r in rows(serving, "select * from marts.membership_value")}
    assert {d["channel"] for d in chart.data} == set(mart) and "all" in mart
    assert chart.data[0]["channel"] == "all"
    for d in chart.data:
        r = mart[d["channel"]]
        assert d["value_per_member"] == pytest.approx(float(r["value_per_member"]))
        assert d["value_per_non_member"] == pytest.approx(float(r["value_per_non_member"]))
        assert d["member_spend_multiple"] == pytest.approx(r["member_spend_multiple"])
        assert d["penetration"] == pytest.approx(r["penetration"])
        assert (d["active_customers"], d["active_members"]) == (r["active_customers"], r["active_members"])
    assert f"{mart['all']['member_spend_multiple']:.2f}×" in chart.caption


def test_ltv_cac_per_channel_equals_channel_economics_summary(serving):
    """The chart draws marts.channel_economics_summary as it is (tests/test_value_marts.py recomputes the mart)."""
    chart = charts.ltv_cac_chart(serving)
    assert_png(chart.png)
    got = {d["channel"]: d for d in chart.data}
    mart = {r["channel"]: r for r in rows(serving, "select * from marts.channel_economics_summary")}
    # every channel of channel_economics is shown, those without spend too
    assert (
        set(got)
        == set(mart)
        == {c for (c,) in serving.execute("select distinct channel from marts.channel_economics").fetchall()}
    )
    no_spend = 0
    for channel, d in got.items():
        r = mart[channel]
        assert d["new_customers"] == r["new_customers"] and d["marketing_spend"] == float(r["marketing_spend"])
        assert (d["cac"], d["ltv_12m"], d["ltv_to_cac"]) == (r["cac"], r["ltv_12m"], r["ltv_to_cac"])
        assert d["has_spend"] is r["has_spend"] and d["ltv_12m_complete"] is r["ltv_12m_complete"] is True
        if not d["has_spend"]:
            no_spend += 1
            assert d["cac"] is None and d["ltv_to_cac"] is None
    assert no_spend >= 1 and len(got) - no_spend >= 1  # demo: organic/store without spend, paid channels with


def write_manifest(folder, as_of, tiers):
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(
        json.dumps({"as_of": as_of, "tiers": {k: {"rows": v, "consented_rows": v} for k, v in tiers.items()}})
    )


def test_tier_history_reads_manifests_in_order(tmp_path):
    exports = tmp_path / "exports"
    write_manifest(exports / "2026-11-02", "2026-11-02", {"champions": 12, "lapsed": 5})
    write_manifest(exports / "2026-11-01", "2026-11-01", {"champions": 10, "lapsed": 7})
    os.symlink("2026-11-02", exports / "latest")
    (exports / "broken").mkdir()
    (exports / "broken" / "manifest.json").write_text("{not json")
    (exports / "no_manifest").mkdir()
    assert charts.tier_history(exports, None) == [
        ("2026-11-01", {"champions": 10, "lapsed": 7}),
        ("2026-11-02", {"champions": 12, "lapsed": 5}),
    ]
    # the run being published joins (or replaces its own as-of), and only the last `limit` are kept
    points = charts.tier_history(exports, (date(2026, 11, 3), {"champions": 13, "lapsed": 4, "new_tier": 1}))
    assert [p[0] for p in points] == ["2026-11-01", "2026-11-02", "2026-11-03"]
    assert charts.tier_history(exports, ("2026-11-02", {"champions": 99}))[-1] == ("2026-11-02", {"champions": 99})
    assert charts.tier_history(exports, ("2026-11-02", {"champions": {"rows": 98, "entered": 3}}))[-1] == (
        "2026-11-02",
        {"champions": 98},
    )
    assert [p[0] for p in charts.tier_history(exports, None, limit=1)] == ["2026-11-02"]
    assert charts.tier_history(tmp_path / "missing", None) == []

    chart = charts.tier_sizes_chart(points)
    assert_png(chart.png)
    assert chart.data == [
        {"as_of": "2026-11-01", "tier": "champions", "rows": 10},
        {"as_of": "2026-11-01", "tier": "lapsed", "rows": 7},
        {"as_of": "2026-11-02", "tier": "champions", "rows": 12},
        {"as_of": "2026-11-02", "tier": "lapsed", "rows": 5},
        {"as_of": "2026-11-03", "tier": "champions", "rows": 13},
        {"as_of": "2026-11-03", "tier": "lapsed", "rows": 4},
        {"as_of": "2026-11-03", "tier": "new_tier", "rows": 1},
    ]


def test_tier_sizes_from_the_demo_run_manifest(demo_run, serving):
    points = charts.tier_history(demo_run["data_dir"] / "exports", None)
    manifest = json.loads((demo_run["data_dir"] / "exports" / "latest" / "manifest.json").read_text())
    assert points == [(manifest["as_of"], {k: v["rows"] for k, v in manifest["tiers"].items()})]
    got = charts.all_charts(serving, points)
    assert [c.name for c in got] == [
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
    for c in got:
        assert_png(c.png)
        assert c.data or c.name == "tier_lift", c.name  # one run: no complete window after an entry yet
        assert c.title and c.caption
    tiers = {d["tier"]: d["rows"] for d in got[5].data}
    assert tiers == {k: v["rows"] for k, v in manifest["tiers"].items()}


def test_markdown_image_embeds_the_png_and_a_short_table(serving):
    for chart in [
        charts.pareto_chart(serving),
        charts.repeat_ladder_chart(serving),
        charts.cohort_retention_chart(serving),
    ]:
        md = charts.markdown_image(chart)
        prefix = f"![{chart.title}](data:image/png;base64,"
        assert md.startswith(prefix)
        b64 = md[len(prefix) : md.index(")", len(prefix))]
        assert base64.b64decode(b64) == chart.png
        table_lines = [line for line in md.splitlines() if line.startswith("|")]
        assert 3 <= len(table_lines) <= 14  # header, separator, at most 12 rows
    ladder_md = charts.markdown_image(charts.repeat_ladder_chart(serving))
    first = rows(
        serving, "select customers_reached_n from marts.repeat_purchase_ladder where dimension = 'overall' and n = 1"
    )[0]["customers_reached_n"]
    assert f"| 1 | {first:,} |" in ladder_md


def test_every_chart_handles_an_empty_warehouse(demo_run, tmp_path):
    db = tmp_path / "empty.duckdb"
    con = duckdb.connect(str(db))
    con.execute(f"attach '{demo_run['data_dir'] / 'serving' / 'warehouse.duckdb'}' as serving (read_only)")
    con.execute("create schema marts")
    for (name,) in con.execute(
        "select table_name from duckdb_tables() where database_name = 'serving' and schema_name = 'marts'"
    ).fetchall():
        con.execute(f"create table marts.{name} as select * from serving.marts.{name} where false")
    con.execute("detach serving")
    con.close()
    con = duckdb.connect(str(db), read_only=True)
    try:
        got = charts.all_charts(con, [])
        assert len(got) == 9
        for c in got:
            assert_png(c.png, min_bytes=2000)
            # the lift's caption says why there is nothing yet (no complete window), the others "no data yet"
            assert c.data == [] and c.caption.startswith(
                "Nothing to measure yet" if c.name == "tier_lift" else "no data yet"
            ), c.name
            assert charts.markdown_image(c).startswith(f"![{c.title}](data:image/png;base64,")
        for fn in [
            charts.pareto_chart,
            charts.rf_heatmap_chart,
            charts.cohort_retention_chart,
            charts.repeat_ladder_chart,
            charts.lifecycle_chart,
            charts.membership_value_chart,
            charts.ltv_cac_chart,
            charts.tier_lift_chart,
        ]:
            assert fn(con).data == []
        assert charts.tier_sizes_chart([]).data == []
    finally:
        con.close()
    # a warehouse without the marts at all (e.g. before the first build) too
    bare = duckdb.connect(str(tmp_path / "bare.duckdb"))
    try:
        assert all(c.data == [] for c in charts.all_charts(bare, []))
    finally:
        bare.close()


def test_no_nan_in_plotted_numbers(serving):
    for c in charts.all_charts(serving, []):
        for d in c.data:
            for v in d.values():
                assert not (isinstance(v, float) and math.isnan(v)), (c.name, d)
