"""The adapters (dagster_project/lib/adapters/) are the only code on private library internals, and each
still matches the pinned library it was written against."""

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from dagster_project.lib import adapters

REPO = Path(__file__).resolve().parents[1]
# resolving the GX members imports GX, which imports pyspark when the spark extra is installed
pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
RELIED_ON = [
    (module, dotted, recorded)
    for module, members in adapters.relied_on().items()
    for dotted, recorded in members.items()
]


@pytest.mark.parametrize("module,dotted,recorded", RELIED_ON, ids=[d for _, d, _ in RELIED_ON])
def test_the_private_members_an_adapter_relies_on_are_unchanged(module, dotted, recorded):
    try:
        current = adapters.fingerprint(dotted)
    except (ImportError, AttributeError) as exc:
        pytest.fail(
            f"{dotted} is gone ({exc!r}): dagster_project/lib/adapters/{module}.py relies on it; "
            f"the library was upgraded past the version it was written for (constraints.txt)"
        )
    assert current == recorded, (
        f"{dotted} changed (fingerprint {recorded} -> {current}): dagster_project/lib/adapters/{module}.py relies on "
        f"it. Read the new code, adapt the adapter (or remove it if upstream removed the cost), then record the "
        f"fingerprints printed by `python -m dagster_project.lib.adapters`."
    )


def test_every_adapter_is_listed_and_says_what_it_relies_on():
    on_disk = {p.stem for p in (REPO / "dagster_project" / "lib" / "adapters").glob("*.py")} - {"__init__", "__main__"}
    assert on_disk == set(adapters.ADAPTERS)
    for module, members in adapters.relied_on().items():
        assert members, module


def _private_uses(path: Path) -> list[str]:
    """Imports from a private module of another package (`dagster._core`) and private attributes of
    imported modules (`atexit._run_exitfuncs`). A private member without a leading underscore (GX's
    `HASH_THRESHOLD`) escapes this; the adapters' RELIES_ON are the complete list."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules = set()
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module != "__future__"
            and not node.module.startswith("dagster_project")
        ):
            if any(part.startswith("_") for part in node.module.split(".")):
                found.append(f"from {node.module} import ...")
        if isinstance(node, ast.Import):
            modules |= {(a.asname or a.name).split(".")[0] for a in node.names}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{node.value.id}.{node.attr}")
    return found


def test_no_private_library_internals_outside_the_adapters():
    outside = {}
    for path in (REPO / "dagster_project").rglob("*.py"):
        if "adapters" in path.parts:
            continue
        uses = _private_uses(path)
        if uses:
            outside[path.relative_to(REPO).as_posix()] = uses
    assert outside == {}, f"private library internals outside lib/adapters/: {outside}"


def test_fast_exit_runs_the_exit_handlers_and_keeps_the_exit_code(tmp_path):
    marker = tmp_path / "handler_ran"
    code = textwrap.dedent(f"""
        import atexit, sys
        from pathlib import Path
        from dagster_project.lib.adapters.fast_exit import exit_now
        atexit.register(lambda: Path({str(marker)!r}).write_text("yes"))
        print("summary", end="")  # unflushed: exit_now flushes it
        exit_now(3)
        print("not reached")
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "summary" and marker.read_text() == "yes"


def test_the_database_dbt_duckdb_keeps_open_is_released(tmp_path):
    """What the adapter is for: while dbt-duckdb holds the warehouse in this process, a read-only
    connection to it fails; after `release_process_database` it opens."""
    from dbt.adapters.duckdb import environments
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    from dbt.adapters.duckdb.credentials import DuckDBCredentials

    from dagster_project.lib.adapters.dbt_duckdb import release_process_database

    path = tmp_path / "w.duckdb"
    duckdb.connect(str(path)).close()
    env = environments.create(DuckDBCredentials(database="w", schema="main", path=str(path)))
    env.handle().close()
    assert DuckDBConnectionManager._ENV is None
    DuckDBConnectionManager._ENV = env
    try:
        with pytest.raises(duckdb.Error):
            duckdb.connect(str(path), read_only=True)
    finally:
        release_process_database()
    assert DuckDBConnectionManager._ENV is None
    duckdb.connect(str(path), read_only=True).close()
