"""raw.run_context says whether the as-of day is over (macro as_of_day_is_complete reads it)."""

from datetime import timedelta

import duckdb

from dagster_project.lib import warehouse
from dagster_project.lib.config import Settings
from dagster_project.lib.orchestration import business_today


def test_a_run_as_of_today_has_an_unfinished_as_of_day(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_TIMEZONE", "Pacific/Kiritimati")  # UTC+14: "today" is not UTC's today
    timezone = Settings.from_env().timezone  # the run's settings, read when it starts
    today = business_today(timezone)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        got = {}
        for as_of in (today - timedelta(days=1), today, today + timedelta(days=1)):
            warehouse.write_run_context(con, as_of, "r", timezone)
            got[as_of] = con.execute("select as_of_day_complete from raw.run_context").fetchone()[0]
    assert got == {today - timedelta(days=1): True, today: False, today + timedelta(days=1): False}
