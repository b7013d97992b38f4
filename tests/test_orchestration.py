"""Operating it daily: partitions, the schedule, the sensor, retries, freshness, backfills and `status`."""

import json
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest

from dagster_project.cli import main
from dagster_project.defs.ingestion import assets as ingestion_assets, checks as ingestion_checks
from dagster_project.defs.ingestion.sensors import inbox_sensor
from dagster_project.defs.schedules import daily_refresh
from dagster_project.lib.demo.generator import generate_demo
from dagster_project.lib.orchestration import AS_OF_PARTITIONS, business_today, is_transient
from dagster_project.lib.resources import PipelineConfig

REPO = Path(__file__).resolve().parents[1]


def test_the_job_is_partitioned_by_as_of_date_and_today_is_a_partition():
    from dagster_project.definitions import defs

    job = defs.resolve_job_def("refresh_customer_value")
    assert job.partitions_def == AS_OF_PARTITIONS
    keys = AS_OF_PARTITIONS.get_partition_keys()
    assert keys[0] == "2000-01-01"
    assert keys[-1] == business_today().isoformat()
    assert job.tags.get("pipeline/writer") == "warehouse"


def test_schedule_runs_daily_as_of_the_previous_day():
    assert daily_refresh.cron_schedule == "0 6 * * *"
    assert daily_refresh.execution_timezone == "UTC"
    assert daily_refresh.default_status == dg.DefaultScheduleStatus.STOPPED
    from dagster_project.definitions import defs

    ctx = dg.build_schedule_context(
        scheduled_execution_time=datetime(2026, 11, 22, 6, 0, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    )
    request = daily_refresh.evaluate_tick(ctx).run_requests[0]
    assert request.partition_key == "2026-11-21"
    assert request.run_key == "daily-2026-11-21"
    assert AS_OF_PARTITIONS.timezone == "UTC"


def test_schedule_time_and_timezone_are_configurable():
    code = (
        "import dagster as dg\n"
        "from datetime import datetime, timezone\n"
        "from dagster_project.defs.schedules import daily_refresh as s\n"
        "from dagster_project.definitions import defs\n"
        "ctx = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 22, 3, 30, tzinfo=timezone.utc),\n"
        "                                repository_def=defs.get_repository_def())\n"
        "r = s.evaluate_tick(ctx).run_requests[0]\n"
        "print(s.cron_schedule, s.execution_timezone, s.default_status.value, r.partition_key, sep='|')\n"
    )
    env = dict(
        os.environ,
        PIPELINE_SCHEDULE_CRON="30 22 * * *",
        PIPELINE_TIMEZONE="America/New_York",
        PIPELINE_SCHEDULE_ENABLED="1",
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    # 03:30 UTC on the 22nd is 22:30 on the 21st in New York: the run is as of the 20th
    assert out.stdout.strip().split("|") == ["30 22 * * *", "America/New_York", "RUNNING", "2026-11-20"]


def test_bad_timezone_setting_is_named():
    env = dict(os.environ, PIPELINE_TIMEZONE="Mars/Olympus")
    out = subprocess.run(
        [sys.executable, "-c", "import dagster_project.definitions"], env=env, capture_output=True, text=True, cwd=REPO
    )
    assert out.returncode != 0 and "PIPELINE_TIMEZONE='Mars/Olympus'" in out.stderr


def test_sensor_runs_are_partitioned_as_of_today(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_DATA_DIR", str(tmp_path))
    (tmp_path / "inbox" / "square").mkdir(parents=True)
    (tmp_path / "inbox" / "square" / "items.csv").write_text("Date\n")
    result = inbox_sensor(dg.build_sensor_context())
    assert isinstance(result, dg.RunRequest)
    assert result.partition_key == business_today().isoformat()


def test_transient_errors_are_recognised_through_causes():
    try:
        try:
            raise duckdb.IOException('IO Error: Could not set lock on file "x.duckdb": Conflicting lock is held')
        except duckdb.IOException as inner:
            raise RuntimeError("step failed") from inner
    except RuntimeError as exc:
        assert is_transient(exc)
    assert not is_transient(ValueError("shopify/orders.csv line 3: column 'Total' expected a number"))


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("orchestration")
    generate_demo(data_dir, customers=300, seed=5, end_date=date(2026, 10, 31))
    return data_dir


def test_locked_warehouse_is_retried_with_backoff_then_succeeds(small_demo, tmp_path, monkeypatch):
    """Another process holds the warehouse for writing: ingestion retries (1 s, 2 s, ...) and then loads."""
    data_dir = tmp_path / "data"
    (data_dir / "inbox").mkdir(parents=True)
    for p in (small_demo / "inbox").rglob("*"):
        if p.is_file():
            dst = data_dir / "inbox" / p.relative_to(small_demo / "inbox")
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(p.read_bytes())
    warehouse = data_dir / "warehouse" / "pipeline.duckdb"
    warehouse.parent.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(2.5)",
            str(warehouse),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    monkeypatch.setenv("PIPELINE_RETRY_DELAY_SECONDS", "1")
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [ingestion_assets.raw_exports],
        partition_key="2026-11-01",
        instance=instance,
        resources={"pipeline": PipelineConfig(data_dir=str(data_dir))},
        raise_on_error=False,
    )
    holder.wait(timeout=30)
    assert result.success
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retries, "the first attempt should have met the lock and been retried"
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        files = con.execute("select count(*) from raw.load_ledger where status = 'loaded'").fetchone()[0]
    finally:
        con.close()
    assert files >= 5

    # freshness: nothing new for 5 days warns (non-blocking), naming the stale sources
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("update raw.load_ledger set loaded_at = loaded_at - interval 5 day where folder = 'shopify'")
    finally:
        con.close()
    check = ingestion_checks.exports_are_fresh(pipeline=PipelineConfig(data_dir=str(data_dir)))
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "shopify (5.0 days)" in check.description and "square" not in check.description
    monkeypatch.setenv("PIPELINE_FRESHNESS_DAYS", "7")
    assert ingestion_checks.exports_are_fresh(pipeline=PipelineConfig(data_dir=str(data_dir))).passed


def test_only_transient_errors_become_retries_with_growing_waits(monkeypatch):
    from types import SimpleNamespace

    from dagster_project.lib.config import Settings
    from dagster_project.lib.orchestration import retry_transient

    monkeypatch.setenv("PIPELINE_RETRY_DELAY_SECONDS", "2")
    monkeypatch.setenv("PIPELINE_RETRY_MAX", "3")
    settings = Settings.from_env()  # as a run reads them when it starts
    log = SimpleNamespace(warning=lambda msg: None)
    lock = duckdb.IOException('IO Error: Could not set lock on file "w.duckdb": Conflicting lock is held')
    waits = []
    for attempt in range(3):
        with pytest.raises(dg.RetryRequested) as raised:
            with retry_transient(SimpleNamespace(retry_number=attempt, log=log), settings):
                raise lock
        assert raised.value.max_retries == 3
        waits.append(raised.value.seconds_to_wait)
    assert waits == [2, 4, 8]
    with pytest.raises(duckdb.IOException):  # retries used up: the real error surfaces
        with retry_transient(SimpleNamespace(retry_number=3, log=log), settings):
            raise lock
    data_error = ValueError("inbox/shopify/orders.csv: missing column 'Total'")
    with pytest.raises(ValueError):  # a data error fails at once: the same input fails the same way
        with retry_transient(SimpleNamespace(retry_number=0, log=log), settings):
            raise data_error


def test_two_day_backfill_publishes_each_as_of_date_and_status_reports_it(small_demo, capsys):
    data_dir = small_demo
    assert main(["backfill", "--data-dir", str(data_dir), "--from", "2026-10-30", "--to", "2026-10-31"]) == 0
    exports = data_dir / "exports"
    m30 = json.loads((exports / "2026-10-30" / "manifest.json").read_text())
    m31 = json.loads((exports / "2026-10-31" / "manifest.json").read_text())
    assert m30["as_of"] == "2026-10-30" and m31["as_of"] == "2026-10-31" and m30["run_id"] != m31["run_id"]
    assert os.readlink(exports / "latest") == "2026-10-31"

    # the first date loaded the exports and validated them; the second had no new rows to validate
    from dagster_project.cli import _instance
    from dagster_project.lib.paths import DataPaths

    instance = _instance(DataPaths.of(data_dir))
    raw_check = {}
    for day, m in (("2026-10-30", m30), ("2026-10-31", m31)):
        raw_check[day] = next(
            e.dagster_event.event_specific_data
            for e in instance.all_logs(m["run_id"])
            if e.dagster_event
            and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
            and e.dagster_event.event_specific_data.check_name == "gx_shopify_order_lines"
        )
    assert raw_check["2026-10-30"].passed and raw_check["2026-10-30"].metadata["rows"].value > 100
    assert raw_check["2026-10-30"].metadata["expectations"].value > 3
    assert raw_check["2026-10-31"].passed and raw_check["2026-10-31"].metadata["rows"].value == 0
    assert raw_check["2026-10-31"].description == "no new rows this run"

    # each date's marts are as of that date
    for day in ("2026-10-30", "2026-10-31"):
        rfm = pd.read_parquet(exports / day / "marts" / "customer_rfm.parquet")
        assert set(rfm["as_of_date"].astype(str)) == {day}
        kpis = pd.read_parquet(exports / day / "marts" / "daily_kpis.parquet")
        assert str(pd.to_datetime(kpis.iloc[:, 0]).max().date()) <= day
    ladder30 = pd.read_parquet(exports / "2026-10-30" / "marts" / "repeat_purchase_ladder.parquet")
    assert set(ladder30["as_of_date"].astype(str)) == {"2026-10-30"}
    recency30 = pd.read_parquet(exports / "2026-10-30" / "marts" / "customer_rfm.parquet").set_index("customer_key")
    recency31 = pd.read_parquet(exports / "2026-10-31" / "marts" / "customer_rfm.parquet").set_index("customer_key")
    both = recency30.index.intersection(recency31.index)
    assert len(both) > 100
    # a customer who did not buy on the 31st is one day further from their last purchase
    same_last = both[
        (recency30.loc[both, "last_purchase_date"] == recency31.loc[both, "last_purchase_date"]).to_numpy()
    ]
    assert ((recency31.loc[same_last, "recency_days"] - recency30.loc[same_last, "recency_days"]) == 1).all()

    # a later backfill of an older date does not move serving or `latest` back
    serving = data_dir / "serving" / "warehouse.duckdb"
    before = serving.read_bytes()
    capsys.readouterr()
    assert main(["run", "--data-dir", str(data_dir), "--as-of", "2026-10-29", "--quiet"]) == 0
    assert "this is a backfill" in capsys.readouterr().out
    m29 = json.loads((exports / "2026-10-29" / "manifest.json").read_text())
    assert m29["serving_updated"] is False and m29["serving_as_of"] == "2026-10-31"
    assert serving.read_bytes() == before and os.readlink(exports / "latest") == "2026-10-31"

    capsys.readouterr()
    assert main(["status", "--data-dir", str(data_dir), "--runs", "5"]) == 0
    out = capsys.readouterr().out
    assert "Last 3 run(s)" in out
    for day in ("2026-10-29", "2026-10-30", "2026-10-31"):
        assert day in out
    assert "Published: run" in out and "as of 2026-10-31" in out
    assert "as-of dates with exports: 3 (2026-10-29 .. 2026-10-31)" in out

    # retention: the next day's run keeps the two newest dated folders and removes the rest, whole
    assert main(["run", "--data-dir", str(data_dir), "--as-of", "2026-11-01", "--quiet", "--keep-exports", "2"]) == 0
    assert sorted(p.name for p in exports.iterdir()) == ["2026-10-31", "2026-11-01", "latest"]
    assert os.readlink(exports / "latest") == "2026-11-01"
    assert not [p for p in (data_dir / ".staging").iterdir() if p.name.startswith("pruned-")]


def test_status_reports_a_failed_run_and_exits_1(tmp_path, capsys):
    generate_demo(tmp_path, customers=60, seed=3, end_date=date(2026, 10, 31))
    (tmp_path / "inbox" / "shopify" / "broken.csv").write_text("Name,Email\n#9,a@b.c\n", encoding="utf-8")
    assert main(["run", "--data-dir", str(tmp_path), "--as-of", "2026-11-01", "--quiet"]) == 1
    capsys.readouterr()
    assert main(["status", "--data-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAILURE" in out and "no_rejected_files failed (ERROR)" in out and "broken.csv" in out
    assert "Published: nothing yet." in out


def test_as_of_outside_the_partitions_is_a_clear_error(tmp_path, capsys):
    assert main(["run", "--data-dir", str(tmp_path), "--as-of", "1999-12-31"]) == 2
    assert "before the first partition 2000-01-01" in capsys.readouterr().err
    future = (business_today() + timedelta(days=3)).isoformat()
    assert main(["run", "--data-dir", str(tmp_path), "--as-of", future]) == 2
    assert "is in the future" in capsys.readouterr().err
