"""Column maps for generic transaction exports (`inbox/generic/<map name>/`).

A map is a small YAML file naming which column holds what.  Maps ship in `dagster_project/maps/`;
a map of the same name in `<data dir>/maps/` takes precedence.  See the README for the fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

SHIPPED_MAPS_DIR = Path(__file__).resolve().parents[2] / "maps"

TARGETS = {
    # target column: (required, meaning)
    "order_id": (True, "order / invoice / transaction id (groups lines)"),
    "ordered_at": (True, "order time"),
    "quantity": (True, "quantity (negative = return)"),
    "unit_price": (False, "unit price (or give line_amount)"),
    "line_amount": (False, "line amount (or give unit_price)"),
    "customer_id": (False, "the shop's / till's customer or loyalty id"),
    "email": (False, "customer e-mail"),
    "phone": (False, "customer phone"),
    "currency": (False, "ISO currency (or defaults.currency)"),
    "channel": (False, "online or store (or defaults.channel)"),
    "store": (False, "store / location name"),
    "sku": (False, "product code"),
    "description": (False, "product name"),
    "country": (False, "country"),
    "status": (False, "order status (see cancellations.status_values)"),
}
FORMATS = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".xlsx": "xlsx",
}


class MapError(ValueError):
    pass


@dataclass(frozen=True)
class ColumnMap:
    name: str
    path: Path
    columns: dict[str, str]
    ts_formats: tuple[str, ...]
    timezone: str
    defaults: dict[str, str] = field(default_factory=dict)
    cancel_prefix: str | None = None
    cancel_status_values: tuple[str, ...] = ()
    negative_quantity_is_return: bool = True
    csv_delimiter: str = ","

    @property
    def required_source_columns(self) -> list[str]:
        return [self.columns[t] for t, (req, _) in TARGETS.items() if req and t in self.columns]


def find_map(name: str, data_root: Path | None) -> Path | None:
    for folder in ([data_root / "maps"] if data_root else []) + [SHIPPED_MAPS_DIR]:
        for ext in (".yml", ".yaml"):
            p = folder / f"{name}{ext}"
            if p.exists():
                return p
    return None


def read_map_document(path: Path) -> dict:
    """A map file's YAML document (a MapError naming the file when it is not a YAML mapping)."""
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise MapError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise MapError(f"{path}: expected a YAML mapping (keys such as columns:, timestamp:)")
    return doc


def load_map(name: str, data_root: Path | None = None) -> ColumnMap:
    path = find_map(name, data_root)
    if path is None:
        where = f"{data_root / 'maps'} or {SHIPPED_MAPS_DIR}" if data_root else str(SHIPPED_MAPS_DIR)
        raise MapError(f"no column map named {name!r} for inbox/generic/{name}/ (looked for {name}.yml in {where})")
    doc = read_map_document(path)
    cols = doc.get("columns") or {}
    unknown = sorted(set(cols) - set(TARGETS))
    if unknown:
        raise MapError(f"{path}: unknown keys under columns: {unknown}; known: {sorted(TARGETS)}")
    missing = [t for t, (req, _) in TARGETS.items() if req and not cols.get(t)]
    if missing:
        raise MapError(f"{path}: columns must name {missing}")
    if not cols.get("unit_price") and not cols.get("line_amount"):
        raise MapError(f"{path}: columns must name unit_price or line_amount")
    ts = doc.get("timestamp") or {}
    formats = ts.get("formats") or ([ts["format"]] if ts.get("format") else [])
    if not formats:
        raise MapError(f"{path}: timestamp.formats must list at least one strptime format")
    zone = ts.get("timezone") or "UTC"
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise MapError(f"{path}: timestamp.timezone {zone!r} is not an IANA time zone") from exc
    defaults = {k: str(v) for k, v in (doc.get("defaults") or {}).items()}
    if not cols.get("currency") and not defaults.get("currency"):
        raise MapError(f"{path}: give columns.currency or defaults.currency")
    cancels = doc.get("cancellations") or {}
    returns = doc.get("returns") or {}
    return ColumnMap(
        name=name,
        path=path,
        columns={k: str(v) for k, v in cols.items() if v},
        ts_formats=tuple(formats),
        timezone=zone,
        defaults=defaults,
        cancel_prefix=cancels.get("order_id_prefix"),
        cancel_status_values=tuple(str(v).lower() for v in cancels.get("status_values") or ()),
        negative_quantity_is_return=bool(returns.get("negative_quantity", True)),
        csv_delimiter=str((doc.get("csv") or {}).get("delimiter", ",")),
    )
