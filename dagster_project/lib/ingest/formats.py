"""The export layouts the pipeline reads: the contract between retailers' files, the demo
generator and ingestion.

Each built-in layout (Shopify orders and products, Square items, item library and customers,
members, marketing spend, store traffic, exchange rates, product costs) is one column map in
`dagster_project/maps/builtin/`, in the format of the maps users write for generic exports, with
the few keys a fixed layout needs more (its raw table, inbox folder, full header in file order, and
how each column is typed; see the README).  This
module reads them once; ingestion, the header checks and the demo generator all take their
columns from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dagster_project.lib.ingest.maps import SHIPPED_MAPS_DIR, MapError, read_map_document

BUILTIN_MAPS_DIR = SHIPPED_MAPS_DIR / "builtin"

# Value types of a built-in layout's columns (`type:`): how the text is parsed, and the raw column's
# SQL type.  A present value that does not parse sends its row to the quarantine.
TYPES = {
    "text": "VARCHAR",  # as written, trimmed; blank = NULL
    "lower": "VARCHAR",  # lower-cased text
    "upper": "VARCHAR",  # upper-cased text (currency codes, countries)
    "enum": "VARCHAR",  # lower-cased, one of `values`
    "bool": "BOOLEAN",  # yes/no, true/false, 1/0, y/n, subscribed/unsubscribed
    "int": "BIGINT",  # a whole number
    "decimal": "DECIMAL(18,3)",  # a number
    "money": "DECIMAL(18,2)",  # $1,234.50  -$12.00  (12.00)  £9
    "rate": "DECIMAL(18,8)",  # an exchange rate
    "unit_cost": "DECIMAL(18,4)",  # a product's unit cost: an amount, not negative
    "date": "DATE",  # 2026-01-31 or 01/31/2026
    "month": "DATE",  # 2026-01 (or a date): the month's first day
    "ts_offset": "TIMESTAMP",  # 2026-01-24 17:34:28 -0500, converted to UTC
    "local_ts": "TIMESTAMP",  # [date, time, zone name] columns: timestamp.formats and timestamp.timezones
}
COLUMN_KEYS = {"from", "type", "required", "values", "order_level"}
LAYOUT_KEYS = {
    "description",
    "table",
    "folder",
    "signature",
    "header",
    "header_versions",
    "columns",
    "timestamp",
    "file_date",
    "one_value_per",
}


@dataclass(frozen=True)
class Field:
    """How one raw column is read from an export."""

    name: str  # column in the raw table
    source: str | tuple[str, ...]  # header column(s) in the export
    kind: str = "text"  # a key of TYPES (generic maps add map_ts, price and amount4)
    required: bool = False
    values: tuple[str, ...] = ()  # for enum
    formats: tuple[str, ...] = ()  # for map_ts and local_ts: strptime formats tried in order
    zone: str = "UTC"  # for map_ts: IANA zone the local times are in
    zones: tuple[tuple[str, str], ...] = ()  # for local_ts: (zone name as written, IANA zone)
    # An order-level field of a line-item export (Shopify): the rows after an order's first may leave it
    # blank, and a blank means "the order's value".  A required one is checked per order, not per row.
    order_level: bool = False


@dataclass(frozen=True)
class Layout:
    """One recognised export layout."""

    name: str  # raw table name, e.g. "shopify_order_lines"
    folder: str  # inbox sub-folder
    columns: list[str]  # the export's header, in file order (newest version)
    required: list[str]  # header columns a file must have, in file order
    # a column whose presence in the header identifies this layout inside its folder
    signature: str
    fields: tuple[Field, ...]
    description: str = ""
    path: Path | None = None
    # older headers of the same export: {version: columns in file order}
    versions: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # raw column (DATE) that holds the file's modification date, for exports without a date of their own
    file_date: str | None = None
    # (key, value, date): rows of one file with the same key and date but different values are
    # quarantined (a product with two costs on one day); date None = the file's date (one per file)
    one_value_per: tuple[str, str, str | None] | None = None

    def header(self, version: str | None = None) -> list[str]:
        """The header of one version (the newest when None)."""
        return list(dict(self.versions)[version]) if version else list(self.columns)


def _field(path: Path, name: str, spec, header: list[str], timestamp: dict) -> tuple[Field, str | bool]:
    """One entry under `columns:`: `raw_column: Header Column` (text, optional), or a mapping with
    `from`, `type`, `required` (true, false or header), `values` and `order_level`."""
    if isinstance(spec, str):
        spec = {"from": spec}
    if not isinstance(spec, dict) or "from" not in spec:
        raise MapError(f"{path}: columns.{name} must name a header column, or be a mapping with `from`")
    unknown = sorted(set(spec) - COLUMN_KEYS)
    if unknown:
        raise MapError(f"{path}: unknown keys {unknown} under columns.{name}; known: {sorted(COLUMN_KEYS)}")
    source = spec["from"]
    sources = [str(s) for s in source] if isinstance(source, list) else [str(source)]
    absent = [s for s in sources if s not in header]
    if absent:
        raise MapError(f"{path}: columns.{name} reads {absent}, which are not in the header")
    kind = str(spec.get("type", "text"))
    if kind not in TYPES:
        raise MapError(f"{path}: columns.{name} has unknown type {kind!r}; known: {sorted(TYPES)}")
    required = spec.get("required", False)
    if required not in (True, False, "header"):
        raise MapError(f"{path}: columns.{name}.required must be true, false or header")
    values = tuple(str(v).lower() for v in spec.get("values") or ())
    if (kind == "enum") != bool(values):
        raise MapError(f"{path}: columns.{name}: `values` goes with type enum, and enum needs values")
    formats: tuple[str, ...] = ()
    zones: tuple[tuple[str, str], ...] = ()
    if kind == "local_ts":
        if len(sources) != 3:
            raise MapError(f"{path}: columns.{name} of type local_ts reads [date, time, time zone] columns")
        formats = tuple(timestamp.get("formats") or ())
        zones = tuple((str(k), str(v)) for k, v in (timestamp.get("timezones") or {}).items())
        if not formats or not zones:
            raise MapError(f"{path}: type local_ts needs timestamp.formats and timestamp.timezones")
        for _, zone in zones:
            try:
                ZoneInfo(zone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise MapError(f"{path}: timestamp.timezones: {zone!r} is not an IANA time zone") from exc
    elif len(sources) != 1:
        raise MapError(f"{path}: columns.{name} reads several columns; only type local_ts does")
    field = Field(
        name,
        tuple(sources) if len(sources) > 1 else sources[0],
        kind,
        required=required is True,
        values=values,
        formats=formats,
        zones=zones,
        order_level=bool(spec.get("order_level")),
    )
    return field, required


def load_layout(path: Path) -> Layout:
    """A built-in layout from its column map (a clear MapError naming the file when it is malformed)."""
    doc = read_map_document(path)
    unknown = sorted(set(doc) - LAYOUT_KEYS)
    if unknown:
        raise MapError(f"{path}: unknown keys {unknown}; known: {sorted(LAYOUT_KEYS)}")
    header = [str(c) for c in doc.get("header") or []]
    if not header or len(set(header)) != len(header):
        raise MapError(f"{path}: header must list the export's columns once each, in file order")
    for key in ("table", "folder", "signature"):
        if not doc.get(key):
            raise MapError(f"{path}: {key} is required")
    if doc["signature"] not in header:
        raise MapError(f"{path}: signature {doc['signature']!r} is not in the header")
    fields, required_sources = [], set()
    for name, spec in (doc.get("columns") or {}).items():
        field, required = _field(path, str(name), spec, header, doc.get("timestamp") or {})
        fields.append(field)
        if required:
            required_sources.update(field.source if isinstance(field.source, tuple) else (field.source,))
    if not fields:
        raise MapError(f"{path}: columns must name at least one column")
    versions = []
    for version, spec in (doc.get("header_versions") or {}).items():
        without = [str(c) for c in (spec or {}).get("without") or []]
        dropped = [c for c in without if c not in header]
        if not without or dropped or required_sources & set(without):
            raise MapError(f"{path}: header_versions.{version}.without must list optional header columns")
        versions.append((str(version), tuple(c for c in header if c not in without)))
    names = {f.name for f in fields}
    file_date = doc.get("file_date")
    if file_date is not None and (not isinstance(file_date, str) or file_date in names):
        raise MapError(f"{path}: file_date must name a raw column that is not under columns:")
    one = doc.get("one_value_per")
    if one is not None:
        if not isinstance(one, dict) or not {"key", "value"} <= set(one) or set(one) - {"key", "value", "date"}:
            raise MapError(f"{path}: one_value_per is a mapping with key, value and optionally date")
        unknown_cols = sorted({str(v) for v in one.values()} - names)
        if unknown_cols:
            raise MapError(f"{path}: one_value_per names {unknown_cols}, which are not under columns:")
        one = (str(one["key"]), str(one["value"]), str(one["date"]) if one.get("date") else None)
    return Layout(
        name=str(doc["table"]),
        folder=str(doc["folder"]),
        columns=header,
        required=[c for c in header if c in required_sources],
        signature=str(doc["signature"]),
        fields=tuple(fields),
        description=str(doc.get("description") or ""),
        path=path,
        versions=tuple(versions),
        file_date=file_date,
        one_value_per=one,
    )


# Load order: header checks name a folder's layouts in this order.
BUILTIN = (
    "shopify_order_lines",
    "square_item_lines",
    "square_customers",
    "members",
    "marketing_spend",
    "store_traffic",
    "exchange_rates",
    "shopify_products",
    "square_item_library",
    "product_costs",
)
LAYOUTS: list[Layout] = [load_layout(BUILTIN_MAPS_DIR / f"{name}.yml") for name in BUILTIN]
_BY_NAME = {lay.name: lay for lay in LAYOUTS}


def layout(name: str) -> Layout:
    return _BY_NAME[name]


# The headers, for the demo generator and tests that write exports.
SHOPIFY_ORDER_COLUMNS: list[str] = layout("shopify_order_lines").header()
SQUARE_ITEMS_COLUMNS_V1: list[str] = layout("square_item_lines").header("v1")
SQUARE_ITEMS_COLUMNS_V2: list[str] = layout("square_item_lines").header()
SQUARE_CUSTOMERS_COLUMNS: list[str] = layout("square_customers").header()
MEMBERS_COLUMNS: list[str] = layout("members").header()
SPEND_COLUMNS: list[str] = layout("marketing_spend").header()
TRAFFIC_COLUMNS: list[str] = layout("store_traffic").header()
RATES_COLUMNS: list[str] = layout("exchange_rates").header()
SHOPIFY_PRODUCTS_COLUMNS: list[str] = layout("shopify_products").header()
SQUARE_ITEM_LIBRARY_COLUMNS: list[str] = layout("square_item_library").header()
PRODUCT_COSTS_COLUMNS: list[str] = layout("product_costs").header()
# Square's time-zone display names (Rails / ActiveSupport names) -> IANA zones.
SQUARE_TIME_ZONES: dict[str, str] = dict(
    next(f.zones for f in layout("square_item_lines").fields if f.kind == "local_ts")
)
