"""Great Expectations 1.x validation of warehouse tables through pandas batches.

GX's SQL datasource fails on DuckDB (upstream bug), so each table is read from DuckDB into a
pandas DataFrame (Arrow) and validated in an ephemeral context.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd

logging.getLogger("great_expectations").setLevel(logging.ERROR)


@dataclass
class Outcome:
    suite: str
    success: bool
    rows: int
    results: list[dict[str, Any]]

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.results if not r["success"]]


_CONTEXT = None


def _context():
    global _CONTEXT
    if _CONTEXT is None:
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx = gx.get_context(mode="ephemeral")
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        _CONTEXT = ctx
    return _CONTEXT


def validate(name: str, df: pd.DataFrame, expectations: list) -> Outcome:
    import great_expectations as gx

    ctx = _context()
    source = ctx.data_sources.add_or_update_pandas(f"pipeline_{name}")
    asset = source.add_dataframe_asset(name)
    batch_def = asset.add_batch_definition_whole_dataframe("whole_table")
    suite = gx.ExpectationSuite(name=name, expectations=expectations)
    res = batch_def.get_batch(batch_parameters={"dataframe": df}).validate(suite)
    results = []
    for r in res.results:
        cfg = r.expectation_config
        results.append({
            "expectation": cfg.type,
            "column": cfg.kwargs.get("column"),
            "success": bool(r.success),
            "unexpected_count": r.result.get("unexpected_count"),
            "sample": [str(v) for v in (r.result.get("partial_unexpected_list") or [])[:5]],
        })
    return Outcome(suite=name, success=bool(res.success), rows=len(df), results=results)
