"""Adapter (CPython, private): leave the command line without the interpreter's teardown.

After a run has printed its summary, freeing Dagster's, dbt's and Great Expectations' module state
is a noticeable share of a demo run's wall time (BENCHMARKS.md, run E) and does nothing for the
user. `exit_now` flushes the standard streams, runs the atexit handlers (logging's flush, DuckDB's
and multiprocessing's clean-up) through CPython's `atexit._run_exitfuncs`, the function the
interpreter's own shutdown calls, and ends the process with `os._exit`.

The member used is in `RELIES_ON`, checked by tests/test_adapters.py (with a run of a handler).
"""

from __future__ import annotations

import atexit
import os
import sys

RELIES_ON = {
    "atexit._run_exitfuncs": "type:builtin_function_or_method",
}


def exit_now(code: int) -> None:
    """Exit with `code` after the atexit handlers, skipping the rest of the interpreter's shutdown."""
    sys.stdout.flush()
    sys.stderr.flush()
    atexit._run_exitfuncs()
    os._exit(code)
