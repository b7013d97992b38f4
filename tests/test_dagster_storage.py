"""The pooled Dagster event log (dagster_project/lib/adapters/dagster_sqlite.py) writes what Dagster's own storage
reads, and the CLI's instance uses it without leaking DAGSTER_HOME."""

import dagster as dg
from dagster import DagsterInstance
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from dagster_project import cli
from dagster_project.lib.adapters.dagster_sqlite import PooledSqliteEventLogStorage
from dagster_project.lib.paths import DataPaths


@dg.asset
def numbers():
    return [1, 2, 3]


@dg.asset_check(asset=numbers)
def numbers_not_empty(numbers):
    return dg.AssetCheckResult(passed=bool(numbers))


JOB = dg.Definitions(assets=[numbers], asset_checks=[numbers_not_empty]).resolve_implicit_global_asset_job_def()


def test_private_members_it_overrides_still_exist():
    """The class replaces `_connect` and `has_table` of the pinned dagster; an upgrade that renames them
    would silently bypass the pool."""
    for name in ("_connect", "has_table", "_initdb", "conn_string_for_shard", "path_for_shard"):
        assert hasattr(SqliteEventLogStorage, name), name
    assert PooledSqliteEventLogStorage._connect is not SqliteEventLogStorage._connect
    assert PooledSqliteEventLogStorage.has_table is not SqliteEventLogStorage.has_table


def test_cli_instance_uses_pooled_storage_and_dagster_reads_it(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    paths = DataPaths.of(tmp_path)
    instance = cli._instance(paths)
    assert isinstance(instance.event_log_storage, PooledSqliteEventLogStorage)
    first = JOB.execute_in_process(instance=instance)
    second = JOB.execute_in_process(instance=instance)
    assert first.success and second.success
    assert (paths.dagster_home / "history" / "runs" / f"{first.run_id}.db").exists()
    instance.dispose()

    # Dagster's own storage on the same folder, as `dagster dev` or any script opens it (no DAGSTER_HOME)
    default = DagsterInstance.from_config(str(paths.dagster_home))
    assert type(default.event_log_storage) is SqliteEventLogStorage
    for run in (first, second):
        kinds = [e.dagster_event.event_type_value for e in default.all_logs(run.run_id) if e.dagster_event]
        assert "ASSET_MATERIALIZATION" in kinds and "ASSET_CHECK_EVALUATION" in kinds and "PIPELINE_SUCCESS" in kinds
    latest = default.get_latest_materialization_event(dg.AssetKey("numbers"))
    assert latest is not None and latest.run_id == second.run_id
    check = default.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("numbers"), "numbers_not_empty")]
    )
    assert next(iter(check.values())).run_id == second.run_id
    assert {r.run_id for r in default.get_runs()} == {first.run_id, second.run_id}

    # and the other way round: a run stored by Dagster's storage is read by the pooled one
    third = JOB.execute_in_process(instance=default)
    pooled = cli._instance(paths)
    assert pooled.get_latest_materialization_event(dg.AssetKey("numbers")).run_id == third.run_id


def test_dagster_home_and_a_storage_of_the_users_own_are_respected(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    assert isinstance(cli._instance(DataPaths.of(tmp_path / "data")).event_log_storage, PooledSqliteEventLogStorage)
    assert (home / "history" / "runs" / "index.db").exists()
    assert not (tmp_path / "data" / "dagster_home").exists()
    # a dagster.yaml that names its own storage keeps it
    (home / "dagster.yaml").write_text(f"storage:\n  sqlite:\n    base_dir: {home / 'elsewhere'}\n")
    instance = cli._instance(DataPaths.of(tmp_path / "data"))
    assert type(instance.event_log_storage) is SqliteEventLogStorage
    assert (home / "elsewhere" / "history" / "runs" / "index.db").exists()
