"""Adapter (dagster-dbt, private): dagster-dbt's dbt resource without two start-up costs this project
does not need on every dbt command (BENCHMARKS.md, run D).

- `_cli_version`: dagster-dbt runs `dbt --version` (a whole dbt start) to tell dbt Core from dbt
  Fusion. The executable here is the dbt-core installed beside this Python, so its version is read
  from the package metadata instead (any other executable is still asked).
- `_initialize_dbt_core_adapter`: dagster-dbt loads the dbt project and adapter in-process only to
  serve `fetch_column_metadata()` / `fetch_row_counts()`, which no asset here calls (row counts are
  attached at publish time). `DbtCliResource.cli` treats a missing adapter as supported: it is what
  it falls back to when creating one fails.

Both overridden members, and `cli` that calls them, are in `RELIES_ON`, checked by tests/test_adapters.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from importlib.metadata import version as installed_version
from pathlib import Path

from dagster_dbt import DbtCliResource
from packaging import version

from dagster_project.lib.dbt_runner.project import dbt_beside_python

_RESOURCE = "dagster_dbt.core.resource.DbtCliResource"
RELIES_ON = {
    f"{_RESOURCE}._cli_version": "b06b86a642ba8bcd",
    f"{_RESOURCE}._initialize_dbt_core_adapter": "f033303d9d777bff",
    f"{_RESOURCE}.cli": "a9ca99daf92597e3",  # calls both, and carries on without an adapter
}


class PipelineDbtCli(DbtCliResource):
    """`DbtCliResource` that reads dbt's version from the installed package and loads no adapter in-process."""

    @cached_property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable) in dbt_beside_python():
            return version.parse(installed_version("dbt-core"))
        return super()._cli_version

    def _initialize_dbt_core_adapter(self, args: Sequence[str]):  # noqa: ARG002 - see the module docstring
        return None
