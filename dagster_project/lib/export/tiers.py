"""Tier lists for CRM, messaging and ad tools, evaluated from the marts in DuckDB."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import yaml

from dagster_project.lib.export import holdout

DEFAULT_TIERS_FILE = Path(__file__).resolve().parents[2] / "defs" / "export" / "tiers.yml"
NAME_RE = re.compile(r"^[a-z0-9_]+$")

# One row per customer: the columns tier rules may use, plus contact points (intermediate schema).
CUSTOMER_BASE_SQL = """
    select
        d.customer_key, d.purchase_count, d.net_revenue, d.first_purchase_date, d.last_purchase_date,
        d.channels_used, d.acquisition_channel, d.is_member, d.member_expires_on, d.accepts_marketing, d.is_super_user,
        r.r_score, r.f_score, r.m_score, r.rfm_cell, r.segment, r.recency_days, r.frequency, r.monetary,
        l.value_stage, l.activity_state, l.days_since_last_purchase, l.as_of_date,
        c.email, c.phone, c.email_sha256, c.phone_sha256,
        p.predicted_orders_90d, p.predicted_orders_365d, p.predicted_clv_12m, p.predicted_clv_margin_12m,
        p.predicted_value_tier, p.p_alive,
        p.churn_risk, p.churn_risk_band, p.avg_days_between_orders, p.expected_next_order_date,
        p.next_order_window_start, p.next_order_window_end, p.expected_next_order_source,
        v.gross_margin, v.gross_margin_rate, v.margin_cost_coverage
    from marts.dim_customers d
    join marts.customer_lifecycle l using (customer_key)
    left join marts.customer_rfm r using (customer_key)
    left join intermediate.int_customer_contacts c using (customer_key)
    left join marts.customer_predictions p using (customer_key)
    left join marts.customer_ltv v using (customer_key)
"""

# Columns a tier file may list (everything in the customer base except raw contact and hashes,
# which only appear through consent: email/phone in the list file, hashes in the hashed file).
SELECTABLE_COLUMNS = [
    "segment",
    "r_score",
    "f_score",
    "m_score",
    "rfm_cell",
    "recency_days",
    "frequency",
    "monetary",
    "value_stage",
    "activity_state",
    "days_since_last_purchase",
    "predicted_orders_90d",
    "predicted_orders_365d",
    "predicted_clv_12m",
    "predicted_clv_margin_12m",
    "predicted_value_tier",
    "p_alive",
    "churn_risk",
    "churn_risk_band",
    "avg_days_between_orders",
    "expected_next_order_date",
    "next_order_window_start",
    "next_order_window_end",
    "expected_next_order_source",
    "purchase_count",
    "net_revenue",
    "gross_margin",
    "gross_margin_rate",
    "margin_cost_coverage",
    "first_purchase_date",
    "last_purchase_date",
    "channels_used",
    "acquisition_channel",
    "is_member",
    "member_expires_on",
    "is_super_user",
    "accepts_marketing",
    "email",
    "phone",
]
OUTPUT_COLUMNS = [
    "customer_key",
    "tier",
    "reason",
    "segment",
    "r_score",
    "f_score",
    "m_score",
    "value_stage",
    "activity_state",
    "purchase_count",
    "net_revenue",
    "last_purchase_date",
    "is_member",
    "accepts_marketing",
    "email",
    "phone",
]
HASHED_COLUMNS = ["customer_key", "tier", "email_sha256", "phone_sha256"]


@dataclass(frozen=True)
class Tier:
    name: str
    description: str
    where: str
    reason: str
    requires_consent: bool = False
    max_rows_per_file: int = 0
    columns: tuple[str, ...] = ()  # empty: OUTPUT_COLUMNS
    platforms: tuple[str, ...] = ()  # audience files for these platforms (lib/export/platforms.py)
    holdout_share: float = holdout.DEFAULT_SHARE  # of the eligible customers, held out of every activation file

    @property
    def output_columns(self) -> list[str]:
        """customer_key, tier and reason always lead; then the tier's chosen columns."""
        chosen = list(self.columns) or OUTPUT_COLUMNS[3:]
        return ["customer_key", "tier", "reason"] + [c for c in chosen if c not in ("customer_key", "tier", "reason")]


def load_tiers(path: Path | None = None) -> list[Tier]:
    path = path or DEFAULT_TIERS_FILE
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from exc
    tiers = []
    default_share = _share(doc.get("holdout_share", holdout.DEFAULT_SHARE), path, "holdout_share")
    for i, raw in enumerate(doc.get("tiers") or []):
        missing = [k for k in ("name", "where", "reason") if not raw.get(k)]
        if missing:
            raise ValueError(f"{path}: tier #{i + 1} is missing {missing}")
        if not NAME_RE.match(raw["name"]):
            raise ValueError(f"{path}: tier name {raw['name']!r} must be lower-case letters, digits, underscores")
        columns = tuple(raw.get("columns") or ())
        unknown = [c for c in columns if c not in SELECTABLE_COLUMNS + ["customer_key", "tier", "reason"]]
        if unknown:
            raise ValueError(
                f"{path}: tier {raw['name']!r} lists unknown columns {unknown}; choose from {SELECTABLE_COLUMNS}"
            )
        tiers.append(
            Tier(
                name=raw["name"],
                description=raw.get("description", ""),
                where=raw["where"],
                reason=raw["reason"],
                requires_consent=bool(raw.get("requires_consent", False)),
                max_rows_per_file=int(raw.get("max_rows_per_file") or 0),
                columns=columns,
                platforms=_platforms(raw["name"], raw.get("platforms"), path),
                holdout_share=_share(
                    raw.get("holdout_share", default_share), path, f"tier {raw['name']!r}: holdout_share"
                ),
            )
        )
    names = [t.name for t in tiers]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: duplicated tier names")
    return tiers


def _platforms(name: str, value, path: Path) -> tuple[str, ...]:
    from dagster_project.lib.export import platforms  # platforms builds on this module

    return platforms.validate(name, value, path)


def _share(value: object, path: Path, what: str) -> float:
    # at most a half: a holdout larger than the treated group measures the control, not the programme
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 0.5:
        raise ValueError(f"{path}: {what} must be a number from 0 (no holdout) to 0.5, not {value!r}")
    return float(value)


TIER_ROWS = "tier_rows"  # temp table holding the tier being written (one tier at a time per connection)
# Activation files carry the treated customers only; the tier Parquet keeps everyone with holdout_group.
TREATED_ONLY = f"holdout_group = '{holdout.TREATED}'"
CUSTOMER_BASE = "customer_base"  # temp table: CUSTOMER_BASE_SQL, joined once for all tiers of a run
ROW_NUMBER = "tier_row_number"  # 1.. over the treated rows in customer_key order: cuts the capped files
CONTACT_COLUMNS = ("email", "phone", "email_sha256", "phone_sha256")


def ensure_customer_base(con: duckdb.DuckDBPyConnection) -> None:
    """Join the customer base once per connection (a 4-way join of every customer; tiers filter it)."""
    con.execute(f"create temp table if not exists {CUSTOMER_BASE} as {CUSTOMER_BASE_SQL}")


def materialise(con: duckdb.DuckDBPyConnection, tier: Tier, salt: str | None = None) -> None:
    """The rows of one tier as temp table `tier_rows`, contact fields blank unless consented, each with its
    holdout_group (lib/export/holdout.py; `salt` defaults to the warehouse's).

    The reason is computed before the masking, so a reason may mention the contact columns."""
    ensure_customer_base(con)
    group = holdout.group_sql("customer_key", tier.name, tier.holdout_share, salt or holdout.read_salt(con))
    consent = " and accepts_marketing" if tier.requires_consent else ""
    masked = ", ".join(f"case when coalesce(accepts_marketing, false) then {c} end as {c}" for c in CONTACT_COLUMNS)
    try:
        con.execute(
            f"""
            create or replace temp table {TIER_ROWS} as
            select *, case when {TREATED_ONLY} then row_number() over (
                partition by {TREATED_ONLY} order by customer_key) end as {ROW_NUMBER}
            from (
                select * replace ({masked}), {group} as holdout_group
                from (
                    select *, '{tier.name}' as tier, ({tier.reason}) as reason
                    from {CUSTOMER_BASE} base
                    where ({tier.where}){consent}
                ) evaluated
            ) grouped
            order by customer_key
            """
        )
    except duckdb.Error as exc:
        raise ValueError(f"tier {tier.name!r}: its where/reason SQL does not run: {exc}") from exc


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Values a spreadsheet cannot run as a formula although they may start with "+" or "-": a phone in
# E.164 (ITU-T E.164: "+", country code, at most 15 digits) and a plain e-mail address (letters, digits
# and . _ % + - only, so no parentheses, quotes or pipes for a formula or a DDE call). Ad platforms and
# CRMs want phones exactly in this form, so they are written as they are; any other text starting with
# a formula character is prefixed (OWASP "CSV Injection").
E164_RE = r"^\+[1-9][0-9]{6,14}$"
PLAIN_EMAIL_RE = r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$"
_SAFE = re.compile(f"(?:{E164_RE})|(?:{PLAIN_EMAIL_RE})")


def is_formula(value: object) -> bool:
    """Whether a spreadsheet would run this cell as a formula (and so it must be prefixed)."""
    return isinstance(value, str) and value.startswith(FORMULA_START) and not _SAFE.match(value)


def neutralise_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells a spreadsheet would run as a formula with a single quote (OWASP CSV injection)."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype).startswith("str"):
            out[col] = out[col].map(lambda v: "'" + v if is_formula(v) else v)
    return out


def neutralised_sql(column: str) -> str:
    """SQL twin of neutralise_formulas for one text column (tests/test_faults.py checks they agree)."""
    starts = ", ".join(f"chr({ord(c)})" for c in FORMULA_START)
    return (
        f"case when left({column}, 1) in ({starts}) and not regexp_full_match({column}, '{E164_RE}') "
        f"and not regexp_full_match({column}, '{PLAIN_EMAIL_RE}') then chr(39) || {column} else {column} end"
    )


def quoted(column: str) -> str:
    return '"' + column.replace('"', '""') + '"'


def csv_select(con: duckdb.DuckDBPyConnection, relation: str, columns: list[str]) -> str:
    """A select list of `columns` from `relation` for a CSV file: text columns neutralised."""
    types = dict(con.execute(f"select column_name, column_type from (describe {relation})").fetchall())
    return ", ".join(
        f"{neutralised_sql(quoted(c))} as {quoted(c)}" if types[c] == "VARCHAR" else quoted(c) for c in columns
    )


def copy_to(con: duckdb.DuckDBPyConnection, query: str, path: Path, fmt: str = "csv") -> int:
    """COPY a query to a file; returns the rows written. CSV: UTF-8, header, comma, `"` quoting where
    needed, `\\n` line ends, empty field = missing (an empty text is written as ""), booleans true/false."""
    target = str(path).replace("'", "''")
    options = "format parquet" if fmt == "parquet" else "format csv, header true, delimiter ',', quote '\"'"
    return int(con.execute(f"copy ({query}) to '{target}' ({options})").fetchone()[0])


def copy_in_parts(
    con: duckdb.DuckDBPyConnection, select_list: str, folder: Path, name: str, rows: int, size: int
) -> int:
    """The treated tier rows (`tier_rows`, `rows` of them) as CSV files of at most `size` rows in customer_key order,
    each with the header: `<name>.part-001.csv`, ... One COPY, then split by line (~0.2 s for 235 parts of
    500 rows, where a COPY per part took ~2 s; the same bytes). A value with a line break (a quoted field
    over two lines) falls back to a COPY per part. Returns the number of part files."""
    whole = folder / f".{name}.all.csv"
    copy_to(con, f"select {select_list} from {TIER_ROWS} where {TREATED_ONLY} order by customer_key", whole)
    starts = list(enumerate(range(0, rows, size), start=1))
    with whole.open("rb") as fh:  # streamed: memory stays flat for a list of any length
        lines = sum(1 for _ in fh)
        fh.seek(-1, 2)
        ends_with_newline = fh.read(1) == b"\n"
    try:
        if lines - 1 != rows or not ends_with_newline:  # a line break inside a value
            for i, start in starts:
                copy_to(
                    con,
                    f"select {select_list} from {TIER_ROWS} where {ROW_NUMBER} between {start + 1} and "
                    f"{start + size} order by customer_key",
                    folder / f"{name}.part-{i:03d}.csv",
                )
            return len(starts)
        with whole.open("rb") as fh:
            header = fh.readline()
            for i, start in starts:
                with (folder / f"{name}.part-{i:03d}.csv").open("wb") as out:
                    out.write(header)
                    out.writelines(fh.readline() for _ in range(min(size, rows - start)))
        return len(starts)
    finally:
        whole.unlink()


# ------------------------------------------------------------------------------------------------
# the files of a run


def previous_exports(exports: Path, as_of: str) -> Path | None:
    """The published exports entered/left compare with: the newest as-of date not after this one
    (the same date when re-run, the day before in a daily run, the right neighbour in a backfill)."""
    dates = (
        [
            p.name
            for p in exports.iterdir()
            if p.is_dir() and not p.is_symlink() and p.name <= as_of and (p / "manifest.json").exists()
        ]
        if exports.exists()
        else []
    )
    return exports / max(dates) if dates else None


HOLDOUT_COLUMNS = ["customer_key", "tier", "reason", "holdout_group"]


def write_tier_files(con, tier: Tier, out: Path, previous: Path | None, salt: str | None = None) -> dict:
    """One tier's files, written by DuckDB from a temp table (no row passes through pandas).

    The Parquet file keeps every eligible customer with holdout_group; the CSV lists (or parts), the hashed
    file and entered/left carry the treated customers only, and `<tier>.holdout.csv` the held-out ones.
    Entered/left compare treated sets, so a holdout share changed between runs moves people in or out."""
    materialise(con, tier, salt)
    rows = TIER_ROWS
    d = out / "tiers"
    d.mkdir(parents=True, exist_ok=True)
    listed = csv_select(con, rows, tier.output_columns)
    eligible = copy_to(
        con,
        f"select {', '.join(map(quoted, [*tier.output_columns, 'holdout_group']))} from {rows} order by customer_key",
        d / f"{tier.name}.parquet",
        fmt="parquet",
    )
    treated = f"from {rows} where {TREATED_ONLY}"
    n = con.execute(f"select count(*) {treated}").fetchone()[0]
    if tier.max_rows_per_file and n > tier.max_rows_per_file:
        copy_in_parts(con, listed, d, tier.name, n, tier.max_rows_per_file)
    else:
        copy_to(con, f"select {listed} {treated} order by customer_key", d / f"{tier.name}.csv")
    hashed = copy_to(
        con,
        f"select {csv_select(con, rows, HASHED_COLUMNS)} {treated} "
        f"and coalesce(accepts_marketing, false) order by customer_key",
        d / f"{tier.name}.hashed.csv",
    )
    held_out = copy_to(
        con,
        f"select {csv_select(con, rows, HOLDOUT_COLUMNS)} from {rows} where not {TREATED_ONLY} order by customer_key",
        d / f"{tier.name}.holdout.csv",
    )
    before_path = previous / "tiers" / f"{tier.name}.parquet" if previous is not None else None
    first_run = before_path is None or not before_path.exists()
    if first_run:
        before = "(select cast(null as varchar) as customer_key where false)"
    else:
        source = f"read_parquet('{str(before_path).replace(chr(39), chr(39) * 2)}')"
        has_group = any(
            r[0] == "holdout_group" for r in con.execute(f"describe select * from {source}").fetchall()
        )  # a file from before holdouts existed lists only treated customers
        before = f"(select * from {source} where {TREATED_ONLY})" if has_group else source
    entered_sql = (
        f"select {csv_select(con, rows, ['customer_key', 'tier', 'reason'])} {treated} "
        f"and customer_key not in (select customer_key from {before}) order by customer_key"
    )
    left_sql = (
        f"select {neutralised_sql('customer_key')} as customer_key, '{tier.name}' as tier "
        f"from (select distinct customer_key from {before}) "
        f"where customer_key not in (select customer_key {treated}) order by 1"
    )
    entered = copy_to(con, entered_sql, d / f"{tier.name}.entered.csv")
    left = copy_to(con, left_sql, d / f"{tier.name}.left.csv")
    from dagster_project.lib.export import platforms  # platforms builds on this module

    audiences = platforms.write_platform_files(con, tier, out, previous)
    con.execute(f"drop table {rows}")
    return {
        "rows": int(n),
        "consented_rows": hashed,
        "entered": entered,
        "left": left,
        "first_run": first_run,
        "platforms": audiences,
        "eligible_rows": eligible,
        "holdout_rows": held_out,
        "holdout_share": tier.holdout_share,
    }
