"""The pipeline's settings (dagster_project/lib/config.py): one typed object, read from the environment
in one place, documented in one README table, and nothing read or parsed when the definitions load."""

import ast
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from dagster_project.lib import config
from dagster_project.lib.config import SETTINGS, Settings
from dagster_project.lib.paths import DataPaths

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "dagster_project"


def test_every_setting_is_one_field_and_unset_means_the_default(tmp_path, monkeypatch):
    assert sorted(s.field for s in SETTINGS) == sorted(f.name for f in dataclasses.fields(Settings))
    assert len({s.env for s in SETTINGS}) == len(SETTINGS)
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env({}) == Settings()  # the table's defaults are the dataclass's
    assert Settings.from_env({s.env: "" for s in SETTINGS}) == Settings()
    assert Settings().data_dir == tmp_path / "data"


def test_values_are_typed_and_a_bad_one_names_its_variable():
    s = Settings.from_env(
        {
            "PIPELINE_RETRY_MAX": "0",
            "PIPELINE_RETRY_DELAY_SECONDS": "1.5",
            "PIPELINE_SCHEDULE_ENABLED": "yes",
            "PIPELINE_DBT_DOCS": "0",
            "DBT_TARGET": "Spark",
            "PIPELINE_PARTITION_START": "2020-02-01",
            "PIPELINE_CLV_MAX_REVENUE_RATIO": "1.5",
        }
    )
    assert (s.retry_max, s.retry_delay_seconds, s.schedule_enabled, s.dbt_docs, s.dbt_target) == (
        0,
        1.5,
        True,
        False,
        "spark",
    )
    assert s.partition_start.isoformat() == "2020-02-01" and s.clv_max_revenue_ratio == 1.5
    for env, bad in (
        ("PIPELINE_RETRY_MAX", "three"),
        ("PIPELINE_FRESHNESS_DAYS", "-1"),
        ("PIPELINE_RETRY_DELAY_SECONDS", "soon"),
        ("PIPELINE_SCHEDULE_ENABLED", "maybe"),
        ("PIPELINE_TIMEZONE", "Mars/Olympus"),
        ("PIPELINE_PARTITION_START", "01/02/2020"),
        ("PIPELINE_CLV_MIN_REPEAT_CUSTOMERS", "0"),
        ("PIPELINE_CLV_ANNUAL_DISCOUNT_RATE", "nan"),
        ("DBT_TARGET", "postgres"),
    ):
        with pytest.raises(ValueError, match=env):
            Settings.from_env({env: bad})
    with pytest.raises(ValueError, match="PIPELINE_KEEP_EXPORTS or --keep-exports"):
        Settings.from_env({"PIPELINE_KEEP_EXPORTS": "ten"})
    with pytest.raises(ValueError, match="PIPELINE_IDENTITY_MAX_SHARED"):
        Settings.from_env({"PIPELINE_IDENTITY_MAX_SHARED": "0"})


def test_overrides_win_and_empty_ones_keep_the_environment():
    base = Settings.from_env({"PIPELINE_KEEP_EXPORTS": "7", "PIPELINE_PHONE_REGION": "GB"})
    s = base.with_overrides(keep_exports=None, phone_region="", allow_rejected_files=True, dbt_target="spark")
    assert (s.keep_exports, s.phone_region, s.allow_rejected_files, s.dbt_target) == (7, "GB", True, "spark")
    with pytest.raises(ValueError, match="dbt target 'hive'"):
        base.with_overrides(dbt_target="hive")


def test_identity_default_is_the_one_in_the_table():
    from dagster_project.lib.identity import resolution

    assert config.DEFAULT_MAX_SHARED == resolution.DEFAULT_MAX_SHARED


def test_the_readme_table_is_generated_from_the_settings():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert config.readme_table() in readme, (
        "README's configuration table differs from lib/config.py: paste `python -m dagster_project.lib.config`"
    )
    # and it is the only place that gives a setting's default
    for s in SETTINGS:
        assert readme.count(f"| `{s.env}`") == 1, s.env


def _environment_reads(path: Path) -> set[str]:
    """Names of the variables a module reads as os.environ[...] / os.environ.get(...) / os.getenv(...)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        key = None
        if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            key = node.slice
        elif isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.environ.get", "os.getenv") and node.args:
            key = node.args[0]
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            names.add(key.value)
    return names


def test_only_the_config_module_reads_the_settings_from_the_environment():
    settings = {s.env for s in SETTINGS}
    readers = {}
    for path in PACKAGE.rglob("*.py"):
        read = _environment_reads(path) & settings
        if read:
            readers[path.relative_to(REPO).as_posix()] = sorted(read)
    assert readers == {}, f"settings read outside lib/config.py (use Settings): {readers}"
    # the whole environment is only copied into dbt's (lib/dbt_runner/project.py) and read by Settings.from_env
    src = (PACKAGE / "lib" / "config.py").read_text(encoding="utf-8")
    assert "os.environ if environ is None else environ" in src


def test_dbt_environment_is_built_in_one_place_and_restored(tmp_path):
    from dagster_project.lib.dbt_runner.project import dbt_env, dbt_environment

    paths = DataPaths(tmp_path)
    env = dbt_env(Settings(), paths, {"DBT_LOG_LEVEL_FILE": "debug", "HOME": "/h"})
    assert env["PIPELINE_WAREHOUSE_PATH"] == str(paths.warehouse) and env["HOME"] == "/h"
    assert env["DBT_LOG_LEVEL_FILE"] == "debug"  # dbt's own variables pass through
    # defaults stay unset: the partial-parse state of an ad-hoc dbt command stays valid
    assert "PIPELINE_DUCKDB_MEMORY_LIMIT" not in env and "PIPELINE_SPARK_WAREHOUSE" not in env
    spark = dbt_env(Settings(dbt_target="spark", duckdb_memory_limit="1GB"), paths, {})
    assert spark["PIPELINE_SPARK_WAREHOUSE"] == str(tmp_path / "warehouse" / "spark")
    assert spark["PIPELINE_DUCKDB_MEMORY_LIMIT"] == "1GB"

    before = dict(os.environ)
    with dbt_environment(Settings(), paths):
        assert os.environ["PIPELINE_WAREHOUSE_PATH"] == str(paths.warehouse)
    assert dict(os.environ) == before


def test_a_run_reads_its_settings_once_when_it_starts(tmp_path, monkeypatch):
    from dagster_project.lib.resources import PipelineConfig

    seen = []

    @dg.asset
    def probe(pipeline: PipelineConfig):
        seen.append(pipeline.settings)
        os.environ["PIPELINE_FRESHNESS_DAYS"] = "9"  # a change during the run is not seen by it
        seen.append(pipeline.settings)

    monkeypatch.setenv("PIPELINE_FRESHNESS_DAYS", "4")
    monkeypatch.setenv("PIPELINE_KEEP_EXPORTS", "3")
    result = dg.materialize([probe], resources={"pipeline": PipelineConfig(data_dir=str(tmp_path), keep_exports=5)})
    assert result.success
    assert seen[0] is seen[1] and seen[0].freshness_days == 4
    assert seen[0].keep_exports == 5 and seen[0].data_dir == tmp_path  # the resource's fields win
    assert PipelineConfig().settings.freshness_days == 9  # the next run sees the change


def test_importing_the_definitions_reads_no_data_directory_and_starts_nothing(tmp_path):
    """The code location loads from the manifest alone: no file of the data directory is opened and no
    dbt is started, whatever PIPELINE_DATA_DIR says (a library may still ask `file` about Python)."""
    data = tmp_path / "data"
    (data / "inbox" / "shopify").mkdir(parents=True)
    (data / "inbox" / "shopify" / "orders.csv").write_text("Name\n#1\n")
    code = (
        "import sys\n"
        "opened, started = [], []\n"
        "def hook(event, args):\n"
        "    if event == 'open' and isinstance(args[0], str) and args[0].startswith(sys.argv[1]):\n"
        "        opened.append(args[0])\n"
        "    elif event in ('subprocess.Popen', 'os.posix_spawn', 'os.exec', 'os.system'):\n"
        "        started.append(repr(args[:2])[:300])\n"
        "sys.addaudithook(hook)\n"
        "import dagster_project.definitions\n"
        "print(opened, started)\n"
    )
    env = dict(os.environ, PIPELINE_DATA_DIR=str(data))
    out = subprocess.run(
        [sys.executable, "-c", code, str(data)], env=env, capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    opened, started = out.stdout.strip().splitlines()[-1].split("] [")
    assert opened == "[", opened
    assert "dbt" not in started, started
    assert not data.joinpath("warehouse").exists()


def test_an_outdated_manifest_is_a_clear_error_not_a_parse(tmp_path, monkeypatch):
    from dagster_project.lib.dbt_runner import project

    monkeypatch.setattr(project, "MANIFEST_PATH", tmp_path / "manifest.json")
    with pytest.raises(RuntimeError, match=r"is missing: run `python -m dagster_project prepare"):
        project.manifest_for_definitions()
    (tmp_path / "manifest.json").write_text("{}")
    os.utime(tmp_path / "manifest.json", (1, 1))
    with pytest.raises(RuntimeError, match="older than the dbt project's files"):
        project.manifest_for_definitions()
