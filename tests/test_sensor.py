"""The inbox sensor, evaluated with Dagster's test utilities."""

import dagster as dg

from dagster_project.defs.ingestion.sensors import inbox_sensor


def _evaluate(cursor=None):
    ctx = dg.build_sensor_context(cursor=cursor)
    return inbox_sensor(ctx), ctx.cursor


def test_sensor_requests_a_run_for_new_files_once(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_DATA_DIR", str(tmp_path))
    (tmp_path / "inbox" / "shopify").mkdir(parents=True)
    result, cursor = _evaluate()
    assert isinstance(result, dg.SkipReason)

    (tmp_path / "inbox" / "shopify" / "orders_export_1.csv").write_text("Name\n#1\n")
    result, cursor = _evaluate(cursor)
    assert isinstance(result, dg.RunRequest) and result.run_key.startswith("inbox-")
    assert result.tags["new_files"] == "1"

    result, cursor = _evaluate(cursor)  # nothing new since
    assert isinstance(result, dg.SkipReason)

    (tmp_path / "inbox" / "generic" / "online_retail").mkdir(parents=True)
    (tmp_path / "inbox" / "generic" / "online_retail" / "more.csv").write_text("InvoiceNo\n1\n")
    result, _ = _evaluate(cursor)
    assert isinstance(result, dg.RunRequest) and result.tags["new_files"] == "1"
