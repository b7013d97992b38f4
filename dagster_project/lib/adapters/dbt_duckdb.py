"""Adapter (dbt-duckdb, private): close the DuckDB database dbt-duckdb keeps open in this process.

`dbt docs generate` runs in the pipeline's own process (lib/dbt_runner/project.py `generate_docs`), where
dagster-dbt has already imported dbt, instead of as a second dbt process (BENCHMARKS.md, run E).
After it, dbt-duckdb keeps the warehouse open in a class-level environment that is dropped only at
exit, and DuckDB refuses another connection to that file with other settings (read-only, say) while
it is open: the checks and publishing after dbt open it read-only. dbt-duckdb has no public call
that closes it (`close_all_connections` forgets the environment without closing it), so this takes
it under dbt-duckdb's own lock and closes it.

The members used are in `RELIES_ON`, checked by tests/test_adapters.py.
"""

from __future__ import annotations

_MANAGER = "dbt.adapters.duckdb.connections.DuckDBConnectionManager"
RELIES_ON = {
    f"{_MANAGER}._LOCK": "type:RLock",
    f"{_MANAGER}._ENV": "type:NoneType",
    f"{_MANAGER}.open": "e20245cb77271622",  # creates _ENV, and replaces it when the credentials change
    f"{_MANAGER}.env": "94fe7110fa5a3ed9",
    "dbt.adapters.duckdb.environments.local.LocalEnvironment.close": "529b88c59527f35b",
}


def release_process_database() -> None:
    """Close the database dbt-duckdb opened in this process, if any (the next dbt command opens it again)."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        env, DuckDBConnectionManager._ENV = DuckDBConnectionManager._ENV, None
    if env is not None:
        env.close()
