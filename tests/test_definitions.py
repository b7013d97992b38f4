"""The Dagster definitions load, and the asset graph is the one docs/architecture.md describes."""

import dagster as dg

from dagster_project.definitions import defs


def test_definitions_load_with_full_graph():
    repo = defs.get_repository_def()
    keys = {k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()}
    for expected in (
        "raw/shopify_order_lines",
        "raw/square_item_lines",
        "raw/load_ledger",
        "identity/identifiers",
        "staging/stg_shopify__order_lines",
        "marts/fct_orders",
        "marts/dim_customers",
        "marts/customer_rfm",
        "marts/customer_lifecycle",
        "marts/customer_identity_map",
        "exports/published_run",
    ):
        assert expected in keys, expected
    job = defs.resolve_job_def("refresh_customer_value")
    assert job.executor_def.name == "in_process"


def test_publish_is_downstream_of_every_mart_and_blocking_checks_exist():
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    upstream = graph.get(dg.AssetKey(["exports", "published_run"])).parent_keys
    assert dg.AssetKey(["marts", "customer_rfm"]) in upstream
    assert dg.AssetKey(["raw", "load_ledger"]) in upstream
    check_names = {k.name for k in graph.asset_check_keys}
    # dbt tests surfaced as checks (the rules on marts), raw GX suites, reconciliation, ingestion checks
    assert {
        "gx_shopify_order_lines",
        "net_revenue_reconciles_to_raw",
        "no_rejected_files",
        "rows_read_equal_loaded_plus_quarantined",
        "unique_dim_customers_customer_key",
        "accepted_range_fct_orders_refunds__0",
        "assert_dim_customers_negative_net_revenue_has_refunds",
    } <= check_names
    # Great Expectations validates raw rows only; models and marts are dbt's
    assert {k.asset_key.path[0] for k in graph.asset_check_keys if k.name.startswith("gx_")} == {"raw"}


def test_clv_marts_are_dbt_models_built_on_the_clv_models_raw_outputs():
    """dbt builds the summary, the Python CLV model writes its raw outputs, a second dbt build publishes them."""
    graph = defs.get_repository_def().asset_graph
    key = dg.AssetKey.from_user_string
    assert key("intermediate/int_customer_btyd_summary") in graph.get(key("clv/customer_scores")).parent_keys
    assert graph.get(key("marts/customer_clv")).parent_keys == {
        key("staging/stg_clv__customer_scores"),
        key("staging/stg_clv__model_fits"),
    }
    assert key("clv/model_fits") in graph.get(key("staging/stg_clv__model_fits")).parent_keys
    assert {key("marts/customer_clv"), key("marts/clv_model_fits"), key("marts/channel_economics_summary")} <= (
        graph.get(key("exports/published_run")).parent_keys
    )
    from dagster_project.defs.transform.assets import dbt_clv_marts, dbt_models

    assert {key("marts/customer_clv"), key("marts/clv_model_fits")} <= set(dbt_clv_marts.keys)
    assert not {k for k in dbt_models.keys if k.path[-1] in ("customer_clv", "clv_model_fits")}
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert {
        ("clv/model_fits", "clv_holdout_error"),
        ("clv/model_fits", "clv_fit_reliable"),
        ("marts/customer_clv", "unique_customer_clv_customer_key"),
        ("marts/dim_customers", "assert_dim_customers_negative_net_revenue_has_refunds"),
    } <= checks


def test_workspace_yaml_points_at_definitions():
    import yaml

    from dagster_project.lib.paths import REPO_ROOT

    ws = yaml.safe_load((REPO_ROOT / "workspace.yaml").read_text())
    assert ws["load_from"][0]["python_module"]["module_name"] == "dagster_project.definitions"


def test_workspace_loads_like_dagster_dev(tmp_path):
    """`dagster dev` loads the code location through workspace.yaml; validate exactly that."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from dagster_project.lib.paths import REPO_ROOT

    dagster = str(Path(sys.executable).parent / "dagster")
    env = dict(os.environ, DAGSTER_HOME=str(tmp_path))
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    proc = subprocess.run(
        [dagster, "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_dbt_resource_skips_dagster_dbt_start_up_costs(monkeypatch):
    """PipelineDbtCli overrides two private dagster-dbt members (see its docstring); if an upgrade renames
    them the overrides would silently stop working, so check they still exist and what they return."""
    import subprocess
    from importlib.metadata import version

    from dagster_dbt import DbtCliResource
    from packaging.version import parse

    from dagster_project.lib.adapters.dagster_dbt import PipelineDbtCli

    assert hasattr(DbtCliResource, "_cli_version") and hasattr(DbtCliResource, "_initialize_dbt_core_adapter")
    resource = defs.resources["dbt"]
    assert isinstance(resource, PipelineDbtCli)

    def no_subprocess(*args, **kwargs):
        raise AssertionError(f"dbt started a subprocess: {args}")

    monkeypatch.setattr(subprocess, "check_output", no_subprocess)
    assert resource._cli_version == parse(version("dbt-core"))
    assert resource._initialize_dbt_core_adapter(["build"]) is None


def test_failed_dbt_target_folders_do_not_pile_up(tmp_path):
    """A failed build keeps its dbt target folder; the newest few stay, older ones go after a day."""
    import os
    import time

    from dagster_project.lib.dbt_runner.project import prune_failed_targets

    now = time.time()
    ages_h = {"dbt_models-a": 1, "dbt_models-b": 30, "dbt_models-c": 40, "dbt_models-d": 50, "dbt_models-e": 2}
    for name, hours in ages_h.items():
        (tmp_path / name).mkdir()
        os.utime(tmp_path / name, (now - hours * 3600, now - hours * 3600))
    (tmp_path / "partial_parse.msgpack").write_text("x")
    removed = prune_failed_targets(tmp_path, keep=2, min_age_s=24 * 3600)
    # a and e are the newest two; b, c, d are older than a day
    assert sorted(removed) == ["dbt_models-b", "dbt_models-c", "dbt_models-d"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dbt_models-a", "dbt_models-e", "partial_parse.msgpack"]
    # beyond the newest but younger than a day (a build running beside this one): kept
    assert prune_failed_targets(tmp_path, keep=1, min_age_s=24 * 3600) == []


def test_dbt_runs_through_the_guard_and_dies_with_its_parent(tmp_path):
    """The pipeline's dbt child must not outlive a killed run (it would keep writing to the warehouse
    and hold its lock while the next run starts): `owned-audience-dbt` has the kernel kill it with its
    parent. The crash suite (test_faults) checks the same on real runs killed in dbt."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    import pytest

    from dagster_project.lib.dbt_runner.project import GUARDED_DBT

    resource = defs.resources["dbt"]
    assert Path(resource.dbt_executable) == Path(sys.executable).parent / GUARDED_DBT, "run `make install`"
    if not sys.platform.startswith("linux"):
        pytest.skip("PR_SET_PDEATHSIG is Linux-only")
    # parent -> child that called die_with_parent() and then sleeps; SIGKILL the parent.
    child_code = (
        "from dagster_project.lib.dbt_runner.guard import die_with_parent; import time; "
        "assert die_with_parent(); time.sleep(120)"
    )
    parent_code = (
        f"import subprocess, sys, time; p = subprocess.Popen([sys.executable, '-c', {child_code!r}]); "
        "print(p.pid, flush=True); time.sleep(120)"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1]
    )
    child = int(parent.stdout.readline())
    time.sleep(1.5)  # the child's import and prctl
    assert Path(f"/proc/{child}").exists()
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()

    def alive(pid: int) -> bool:  # a zombie (state Z) has exited
        try:
            return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
        except OSError:
            return False

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and alive(child):
        time.sleep(0.1)
    survived = alive(child)
    if survived:
        os.kill(child, signal.SIGKILL)
    assert not survived, "the guarded child outlived its killed parent"
    # and it is dbt: the entry point runs dbt's own command line
    out = subprocess.run([resource.dbt_executable, "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "Usage: dbt [OPTIONS]" in out.stdout, out
