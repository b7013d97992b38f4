"""The only code that relies on private members of the pinned libraries (constraints.txt).

Each module here reaches into one library's internals because a measurement showed it pays for
itself on every run (BENCHMARKS.md gives the figures, runs D and E):

- `dagster_sqlite`: Dagster's SQLite event log with one connection per file kept open (dagster);
- `dagster_dbt`:    dagster-dbt's dbt resource without `dbt --version` and the in-process adapter;
- `dbt_duckdb`:     closing the database dbt-duckdb keeps open after `dbt docs generate` in-process;
- `gx_pandas`:      no md5 of every cell of each batch GX validates;
- `fast_exit`:      the command line leaving without the interpreter's teardown (CPython's atexit).

Each module's `RELIES_ON` lists the private members it uses with a fingerprint of each in the pinned
version (`fingerprint`: a hash of its source). tests/test_adapters.py recomputes them, so an upgrade
that changes one fails there by name instead of the adapter silently doing nothing, or the wrong
thing. Then read the new code, adapt the module (or delete it if upstream removed the cost), and
print the new fingerprints with `python -m dagster_project.lib.adapters`.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from functools import cached_property

ADAPTERS = ("dagster_sqlite", "dagster_dbt", "dbt_duckdb", "gx_pandas", "fast_exit")


def resolve(dotted: str):
    """The object a dotted name points to: the longest importable module prefix, then attributes
    looked up statically (a property or a cached_property itself, not its value)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = inspect.getattr_static(obj, name)
        return obj
    raise ImportError(dotted)


def fingerprint(dotted: str) -> str:
    """A short hash of the source of what `dotted` names; for an object without Python source (a
    builtin, a class attribute's value), its type instead."""
    obj = resolve(dotted)
    if isinstance(obj, (classmethod, staticmethod)):
        obj = obj.__func__
    elif isinstance(obj, cached_property):
        obj = obj.func
    elif isinstance(obj, property):
        obj = obj.fget
    try:
        source = inspect.getsource(obj)
    except (TypeError, OSError):
        return f"type:{type(obj).__name__}"
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def relied_on() -> dict[str, dict[str, str]]:
    """adapter module -> {private member: fingerprint as recorded}."""
    return {name: dict(importlib.import_module(f"{__name__}.{name}").RELIES_ON) for name in ADAPTERS}


def print_fingerprints() -> None:
    """The current fingerprints, in the form of each module's RELIES_ON (`python -m dagster_project.lib.adapters`)."""
    for module, members in relied_on().items():
        print(f"{module}:")
        for dotted in members:
            print(f'    "{dotted}": "{fingerprint(dotted)}",')
