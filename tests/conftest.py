"""Shared fixtures.  Tests that read ../shared/data carry the `shared_data` marker: in CI (CI set)
a missing folder is a failure with a clear message; elsewhere those tests skip with the reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("PIPELINE_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
DEMO_END = "2026-10-31"
DEMO_AS_OF = "2026-11-01"


def pytest_configure(config):
    """Parse the dbt project first when a dbt file changed since it was parsed: importing the Dagster
    definitions reads the manifest and never parses (lib/dbt_runner/project.py)."""
    from dagster_project.lib.config import Settings
    from dagster_project.lib.dbt_runner.project import ensure_manifest
    from dagster_project.lib.paths import DataPaths

    settings = Settings.from_env()
    ensure_manifest(DataPaths(settings.data_dir), settings)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        msg = f"reference data folder {SHARED_DATA} is missing (expected ../shared/data beside the repository)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return SHARED_DATA


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """One full pipeline run on a small generated data set, shared by the end-to-end tests."""
    from datetime import date

    from dagster_project.cli import run_pipeline
    from dagster_project.lib.demo.generator import generate_demo

    data_dir = tmp_path_factory.mktemp("demo_data")
    summary = generate_demo(data_dir, customers=1500, seed=11, end_date=date.fromisoformat(DEMO_END))
    result = run_pipeline(data_dir, DEMO_AS_OF, quiet=True)
    return {"data_dir": data_dir, "result": result, "summary": summary}


@pytest.fixture(scope="session")
def online_retail_run(shared_data, tmp_path_factory):
    """One full pipeline run over UCI Online Retail through the shipped map (as of 2011-12-10)."""
    from dagster_project.cli import main

    data_dir = tmp_path_factory.mktemp("online_retail")
    inbox = data_dir / "inbox" / "generic" / "online_retail"
    inbox.mkdir(parents=True)
    parquet = shared_data / "online_retail" / "online_retail.parquet"
    (inbox / "online_retail.parquet").symlink_to(parquet)
    code = main(["run", "--data-dir", str(data_dir), "--as-of", "2011-12-10", "--quiet"])
    return {"data_dir": data_dir, "exit_code": code, "parquet": parquet, "as_of": "2011-12-10"}


def assert_dbt_unit_tests_pass(env: dict, target_path: Path, *args: str, at_least: int) -> None:
    """Run the dbt unit tests (fixtures, not data) with `env` (the warehouse or Spark settings) and
    extra dbt arguments (a --target); at least `at_least` of them run, and each passes."""
    import json
    import subprocess

    from dagster_project.lib.dbt_runner.project import dbt_executable
    from dagster_project.lib.paths import DBT_PROJECT_DIR

    proc = subprocess.run(
        [
            dbt_executable(),
            "test",
            *args,
            "--select",
            "test_type:unit",
            "--vars",
            json.dumps({"as_of": DEMO_AS_OF}),
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(target_path),
        ],
        cwd=DBT_PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-4000:]
    results = [
        r
        for r in json.loads((target_path / "run_results.json").read_text())["results"]
        if r["unique_id"].startswith("unit_test.")
    ]
    assert len(results) >= at_least and all(r["status"] == "pass" for r in results), [
        (r["unique_id"], r["status"]) for r in results
    ]
