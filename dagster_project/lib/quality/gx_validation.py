"""Great Expectations 1.x validation of raw tables through pandas batches, and the validation report.

GX's SQL datasource fails on DuckDB (upstream bug), so each table is read from DuckDB into a
pandas DataFrame (Arrow) and validated in an ephemeral context.
"""

from __future__ import annotations

import html
import json
import logging
import threading
import warnings
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd

logging.getLogger("great_expectations").setLevel(logging.ERROR)
# GX imports pyspark whenever it is installed (the `spark` extra), whatever engine the run uses, and
# pyspark warns at import that it does not support pandas 3. That says nothing about the user's data
# and GX never validates through Spark here (Spark runs inside dbt's own process), so it is silenced
# for this import only.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)

# Sample values of these columns are masked before they reach a message, metadata or a report.
SENSITIVE_COLUMNS = {"email", "phone", "billing_phone", "shipping_phone"}


def _mask(value: str) -> str:
    return value[:1] + "***" if value else value


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
_CONTEXT_LOCK = threading.Lock()
_PREFETCH: threading.Thread | None = None


def _context():
    global _CONTEXT
    with _CONTEXT_LOCK:
        if _CONTEXT is None:
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            from dagster_project.lib.adapters.gx_pandas import skip_batch_fingerprint

            skip_batch_fingerprint()
            ctx = gx.get_context(mode="ephemeral")
            ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
            _CONTEXT = ctx
    return _CONTEXT


def _prefetch_quietly() -> None:
    try:
        _context()
    except Exception:  # noqa: BLE001 - the first validation builds the context again and reports
        logging.getLogger(__name__).debug("GX prefetch failed", exc_info=True)


def prefetch() -> None:
    """Import GX and build its context in a background thread (about 5 s of a run's fixed cost), so
    that it overlaps ingestion, which mostly waits on DuckDB; the first validation waits for it."""
    global _PREFETCH
    if _CONTEXT is None and _PREFETCH is None:
        _PREFETCH = threading.Thread(target=_prefetch_quietly, name="gx-prefetch", daemon=True)
        _PREFETCH.start()


def _datetimes_as_numbers(df: pd.DataFrame, expectations: list) -> tuple[pd.DataFrame, list, set[str]]:
    """Datetime columns as epoch microseconds (float, NaT -> NaN), with datetime bounds converted alike.

    GX's pandas `ExpectColumnValuesToBeBetween` compares datetimes one Python call per row (about
    7 us each: 30 s for a 4M-row export); on numbers it is vectorised.  Same verdicts: the order of
    instants is the order of their epoch microseconds."""
    columns = {c for c in df.columns if pd.api.types.is_datetime64_any_dtype(df[c])}
    if not columns:
        return df, expectations, columns
    df = df.copy(deep=False)
    for c in columns:
        values = df[c].dt.tz_convert("UTC").dt.tz_localize(None) if df[c].dt.tz is not None else df[c]
        df[c] = values.astype("datetime64[us]").astype("int64").astype("float64").where(values.notna())
    converted = []
    for e in expectations:
        bounds = {k: getattr(e, k, None) for k in ("min_value", "max_value")}
        if getattr(e, "column", None) in columns and any(isinstance(v, datetime) for v in bounds.values()):
            e = e.copy(update={k: _epoch_us(v) for k, v in bounds.items() if isinstance(v, datetime)})
        converted.append(e)
    return df, converted, columns


def _epoch_us(value: datetime) -> float:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return float((value - datetime(1970, 1, 1)) // timedelta(microseconds=1))


def _show(value, as_datetime: bool) -> str:
    if as_datetime and isinstance(value, (int, float)) and value == value:
        return str(datetime(1970, 1, 1) + timedelta(microseconds=int(value)))
    return str(value)


def validate(name: str, df: pd.DataFrame, expectations: list) -> Outcome:
    import great_expectations as gx

    df, expectations, datetime_columns = _datetimes_as_numbers(df, expectations)
    ctx = _context()
    source = ctx.data_sources.add_or_update_pandas(f"pipeline_{name}")
    asset = source.add_dataframe_asset(name)
    batch_def = asset.add_batch_definition_whole_dataframe("whole_table")
    suite = gx.ExpectationSuite(name=name, expectations=expectations)
    res = batch_def.get_batch(batch_parameters={"dataframe": df}).validate(suite)
    results = []
    for r in res.results:
        cfg = r.expectation_config
        exc = getattr(r, "exception_info", None) or {}
        error = exc.get("exception_message") if isinstance(exc, dict) and exc.get("raised_exception") else None
        results.append(
            {
                "expectation": cfg.type,
                "error": error,
                "column": cfg.kwargs.get("column"),
                "success": bool(r.success),
                "unexpected_count": r.result.get("unexpected_count"),
                "sample": [
                    (
                        _mask(str(v))
                        if cfg.kwargs.get("column") in SENSITIVE_COLUMNS
                        else _show(v, cfg.kwargs.get("column") in datetime_columns)
                    )
                    for v in (r.result.get("partial_unexpected_list") or [])[:5]
                ],
            }
        )
    return Outcome(suite=name, success=bool(res.success), rows=len(df), results=results)


def save(outcome: Outcome, folder: Path) -> Path:
    """Keep a validation result for the run's HTML report."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{outcome.suite}.json"
    path.write_text(json.dumps(asdict(outcome), indent=1, default=str), encoding="utf-8")
    return path


def render_html(folder: Path, title: str, checks: list[dict] | None = None) -> str:
    """A self-contained HTML report of every saved validation (GX Data Docs stand-in) and, when given, the
    run's other check results (dbt tests on models and marts, reconciliations: dicts with asset, check,
    passed, severity, as in the manifest)."""
    outcomes = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]
    rows = []
    for o in outcomes:
        status = "passed" if o["success"] else "FAILED"
        rows.append(f"<h2 class='{status.lower()}'>{html.escape(o['suite'])}: {status} ({o['rows']} rows)</h2>")
        rows.append(
            "<table><tr><th>expectation</th><th>column</th><th>result</th><th>unexpected</th><th>sample</th></tr>"
        )
        for r in o["results"]:
            rows.append(
                f"<tr class='{'ok' if r['success'] else 'bad'}'><td>{html.escape(r['expectation'])}</td>"
                f"<td>{html.escape(str(r.get('column') or ''))}</td><td>{'ok' if r['success'] else 'failed'}</td>"
                f"<td>{r.get('unexpected_count') or 0}</td><td>{html.escape(', '.join(r.get('sample') or []))}</td></tr>"  # noqa: E501 (SQL or printed text)
            )
        rows.append("</table>")
    others = [c for c in checks or [] if not c["check"].startswith("gx_")]
    if others:
        failed = sum(1 for c in others if not c["passed"])
        rows.append(
            f"<h2 class='{'failed' if failed else 'passed'}'>dbt tests and reconciliation checks: "
            f"{len(others) - failed} of {len(others)} passed</h2>"
        )
        rows.append("<table><tr><th>asset</th><th>check</th><th>result</th><th>severity</th></tr>")
        for c in others:
            rows.append(
                f"<tr class='{'ok' if c['passed'] else 'bad'}'><td>{html.escape(c['asset'])}</td>"
                f"<td>{html.escape(c['check'])}</td><td>{'ok' if c['passed'] else 'failed'}</td>"
                f"<td>{html.escape(str(c.get('severity') or ''))}</td></tr>"
            )
        rows.append("</table>")
    passed = sum(1 for o in outcomes if o["success"])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;margin-bottom:1.5em}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}} .bad td{{background:#fdd}} h2.failed{{color:#b00}}</style>
</head><body><h1>{html.escape(title)}</h1><p>{passed} of {len(outcomes)} suites passed
(Great Expectations {gx_version()}, validated through pandas batches read from DuckDB).</p>
{"".join(rows)}</body></html>
"""  # noqa: E501 (SQL or printed text)


def gx_version() -> str:
    from importlib.metadata import version

    return version("great_expectations")
