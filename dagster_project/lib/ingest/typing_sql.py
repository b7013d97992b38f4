"""Typing SQL: how each raw column is parsed from an export's text.

The built-in layouts' fields come from their column maps (`formats.LAYOUTS`), a generic export's
from its map.  `kind` picks the parse expression; a value that is present but does not parse, or a
required value that is missing, names the row's problem (`error_expr`), and the row goes to the
quarantine with it.  Typing is one DuckDB select over the text columns (`typed_sql`), never a Python
loop over rows.
"""

from __future__ import annotations

from dagster_project.lib.ingest import formats
from dagster_project.lib.ingest.formats import Field

SQL_TYPES = {**formats.TYPES, "map_ts": "TIMESTAMP", "price": "DECIMAL(18,4)", "amount4": "DECIMAL(18,4)"}

FIELDS: dict[str, list[Field]] = {lay.name: list(lay.fields) for lay in formats.LAYOUTS}

LINEAGE_COLUMNS = "_file_id BIGINT, _line_number BIGINT, _run_id VARCHAR"

# Generic mapped exports land in one table; the map decides which source column feeds which field.
GENERIC_TABLE = "generic_order_lines"
GENERIC_COLUMNS: list[tuple[str, str, bool]] = [
    # (raw column, kind, required)
    ("order_id", "text", True),
    ("ordered_at", "map_ts", True),
    ("quantity", "decimal", True),
    ("unit_price", "price", False),
    ("line_amount", "amount4", False),
    ("customer_id", "text", False),
    ("email", "text", False),
    ("phone", "text", False),
    ("currency", "upper", False),
    ("channel", "lower", False),
    ("store", "text", False),
    ("sku", "text", False),
    ("description", "text", False),
    ("country", "text", False),
    ("status", "lower", False),
]


def generic_fields(cmap) -> list[Field]:
    """Field specs for one column map (missing optional columns are NULL)."""
    out = []
    for name, kind, required in GENERIC_COLUMNS:
        src = cmap.columns.get(name)
        if src is None:
            continue
        out.append(Field(name, src, kind, required=required, formats=cmap.ts_formats, zone=cmap.timezone))
    return out


# strptime formats of the ts_offset, date and month types, tried in order
TS_FORMATS = "['%Y-%m-%d %H:%M:%S %z', '%Y-%m-%dT%H:%M:%S%z', '%Y-%m-%d %H:%M:%S%z']"
DATE_FORMATS = {"date": "['%Y-%m-%d', '%m/%d/%Y']", "month": "['%Y-%m', '%Y-%m-%d']"}


def q(name: str) -> str:
    """Quote an identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _blank_to_null(col: str) -> str:
    return f"nullif(trim({q(col)}), '')"


def _money_number(src: str, sql_type: str = "DECIMAL(18,2)") -> str:
    cleaned = src
    for ch in ("$", "£", "€", ",", " ", "(", ")"):
        cleaned = f"replace({cleaned}, '{ch}', '')"
    return f"try_cast({cleaned} as {sql_type})"


def typed_expr(f: Field) -> str:
    """The typed value; NULL when missing or unparseable."""
    if f.kind == "local_ts":
        d, t, z = f.source
        zone = "case " + " ".join(f"when trim({q(z)}) = {lit(k)} then {lit(v)}" for k, v in f.zones) + " end"
        fmts = "[" + ", ".join(lit(x) for x in f.formats) + "]"
        local = f"try_strptime(trim({q(d)}) || ' ' || trim({q(t)}), {fmts})"
        return f"(timezone({zone}, {local}))::TIMESTAMP"
    src = _blank_to_null(f.source)  # type: ignore[arg-type]
    if f.kind == "text":
        return src
    if f.kind in ("lower", "enum"):
        return f"lower({src})"
    if f.kind == "upper":
        return f"upper({src})"
    if f.kind == "money":
        # $1,234.50  -$12.00  (12.00)  £9  12.50  -> decimal; currency symbols and separators removed
        return f"(case when starts_with({src}, '(') then -{_money_number(src)} else {_money_number(src)} end)"
    if f.kind == "rate":
        return f"try_cast({src} as DECIMAL(18,8))"
    if f.kind in ("price", "amount4", "unit_cost"):
        return _money_number(src, "DECIMAL(18,4)")
    if f.kind == "map_ts":
        fmts = "[" + ", ".join(lit(x) for x in f.formats) + "]"
        local = f"try_strptime({src}, {fmts})"
        if f.zone == "UTC":
            return f"({local})::TIMESTAMP"
        return f"(timezone({lit(f.zone)}, {local}))::TIMESTAMP"
    if f.kind == "int":
        return f"try_cast(try_cast({src} as DECIMAL(18,3)) as BIGINT)"
    if f.kind == "decimal":
        return f"try_cast({src} as DECIMAL(18,3))"
    if f.kind == "ts_offset":
        return f"(try_strptime({src}, {TS_FORMATS}))::TIMESTAMP"
    if f.kind in ("date", "month"):
        return f"(try_strptime({src}, {DATE_FORMATS[f.kind]}))::DATE"
    if f.kind == "bool":
        return (
            f"case when lower({src}) in ('yes','true','1','y','subscribed') then true "
            f"when lower({src}) in ('no','false','0','n','unsubscribed') then false end"
        )
    raise ValueError(f"unknown field kind {f.kind}")


def error_expr(f: Field, typed: str | None = None) -> str:
    """A reason string when this field makes the row invalid, else NULL.

    `typed` names an already computed typed value (so parsing is not done twice)."""
    label = "+".join(f.source) if isinstance(f.source, tuple) else f.source
    typed = typed or typed_expr(f)
    if isinstance(f.source, tuple):
        present = " and ".join(f"{_blank_to_null(s)} is not null" for s in f.source)
        raw_shown = " || ' ' || ".join(f"coalesce({q(s)}, '')" for s in f.source)
    else:
        present = f"{_blank_to_null(f.source)} is not null"
        raw_shown = f"{q(f.source)}"
    checks = []
    if f.required and not f.order_level:  # an order-level one: _complete_shopify_orders
        checks.append(f"when not ({present}) then {lit(f'missing {label}')}")
    if f.kind == "enum":
        allowed = ", ".join(lit(v) for v in f.values)
        checks.append(
            f"when {present} and {typed} not in ({allowed}) then "
            f"{lit(f'unknown {label} ')} || {lit(chr(39))} || left({raw_shown}, 40) || {lit(chr(39))}"
        )
    elif f.kind not in ("text", "lower", "upper", "bool"):
        what = {
            "money": "an amount",
            "int": "a whole number",
            "decimal": "a number",
            "ts_offset": "a timestamp with UTC offset",
            "local_ts": "a local date and time with a known Time Zone",
            "date": "a date",
            "month": "a date",
            "price": "an amount",
            "amount4": "an amount",
            "rate": "a number",
            "unit_cost": "an amount",
            "map_ts": "a timestamp like " + " or ".join(f.formats),
        }[f.kind]
        checks.append(
            f"when {present} and {typed} is null then "
            f"{lit(f'bad {label}: expected {what}, got ')} || {lit(chr(39))} || left({raw_shown}, 40) || {lit(chr(39))}"
        )
    if f.kind == "unit_cost":
        checks.append(
            f"when {typed} < 0 then {lit(f'negative {label}: ')} || {lit(chr(39))} "
            f"|| left({raw_shown}, 40) || {lit(chr(39))}"
        )
    if not checks:
        return "NULL"
    return "case " + " ".join(checks) + " end"


def source_columns(fields: list[Field]) -> set[str]:
    return {s for f in fields for s in (f.source if isinstance(f.source, tuple) else (f.source,))}


def with_missing_columns(from_sql: str, header: list[str], fields: list[Field]) -> str:
    """Optional columns absent from the file are read as NULL."""
    missing = sorted(source_columns(fields) - set(header))
    if not missing:
        return from_sql
    extra = ", ".join(f"NULL::VARCHAR as {q(n)}" for n in missing)
    return f"(select *, {extra} from {from_sql})"


def typed_sql(fields: list[Field], cmap, from_sql: str, extra_inner: str = "", extra_outer: str = "") -> str:
    """A select typing the export's text columns once (inner), then naming each row's problems
    from the typed values (outer): `<fields>, _reason` plus the extras."""
    sources = sorted(source_columns(fields))
    inner = ", ".join([f"{typed_expr(f)} as {q('__t_' + f.name)}" for f in fields] + [q(c) for c in sources])
    errors = [error_expr(f, q("__t_" + f.name)) for f in fields]
    if cmap is not None:
        amount = cmap.columns["line_amount" if "line_amount" in cmap.columns else "unit_price"]
        errors.append(f"case when {q(amount)} is null or trim({q(amount)}) = '' then {lit('missing ' + amount)} end")
    outer = ", ".join(f"{q('__t_' + f.name)} as {f.name}" for f in fields)
    return (
        f"select {outer}, nullif(concat_ws('; ', {', '.join(errors)}), '') as _reason{extra_outer} "
        f"from (select {inner}{extra_inner} from {from_sql})"
    )
