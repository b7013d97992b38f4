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
    from dagster_project.cli import run_pipeline
    from dagster_project.lib.demo import generate_demo
    from datetime import date

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
