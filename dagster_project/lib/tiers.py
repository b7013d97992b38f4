"""Tier lists for CRM, messaging and ad tools, evaluated from the marts in DuckDB."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import yaml

DEFAULT_TIERS_FILE = Path(__file__).resolve().parents[1] / "defs" / "export" / "tiers.yml"
NAME_RE = re.compile(r"^[a-z0-9_]+$")

# One row per customer: the columns tier rules may use, plus contact points (intermediate schema).
CUSTOMER_BASE_SQL = """
    select
        d.customer_key, d.purchase_count, d.net_revenue, d.first_purchase_date, d.last_purchase_date,
        d.channels_used, d.acquisition_channel, d.is_member, d.member_expires_on, d.accepts_marketing, d.is_super_user,
        r.r_score, r.f_score, r.m_score, r.rfm_cell, r.segment, r.recency_days, r.frequency, r.monetary,
        l.value_stage, l.activity_state, l.days_since_last_purchase, l.as_of_date,
        c.email, c.phone, c.email_sha256, c.phone_sha256
    from marts.dim_customers d
    join marts.customer_lifecycle l using (customer_key)
    left join marts.customer_rfm r using (customer_key)
    left join intermediate.int_customer_contacts c using (customer_key)
"""

# Columns a tier file may list (everything in the customer base except raw contact and hashes,
# which only appear through consent: email/phone in the list file, hashes in the hashed file).
SELECTABLE_COLUMNS = [
    "segment", "r_score", "f_score", "m_score", "rfm_cell", "recency_days", "frequency", "monetary",
    "value_stage", "activity_state", "days_since_last_purchase", "purchase_count", "net_revenue",
    "first_purchase_date", "last_purchase_date", "channels_used", "acquisition_channel", "is_member",
    "member_expires_on", "is_super_user", "accepts_marketing", "email", "phone",
]
OUTPUT_COLUMNS = [
    "customer_key", "tier", "reason", "segment", "r_score", "f_score", "m_score", "value_stage",
    "activity_state", "purchase_count", "net_revenue", "last_purchase_date", "is_member", "accepts_marketing",
    "email", "phone",
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
    for i, raw in enumerate(doc.get("tiers") or []):
        missing = [k for k in ("name", "where", "reason") if not raw.get(k)]
        if missing:
            raise ValueError(f"{path}: tier #{i + 1} is missing {missing}")
        if not NAME_RE.match(raw["name"]):
            raise ValueError(f"{path}: tier name {raw['name']!r} must be lower-case letters, digits, underscores")
        columns = tuple(raw.get("columns") or ())
        unknown = [c for c in columns if c not in SELECTABLE_COLUMNS + ["customer_key", "tier", "reason"]]
        if unknown:
            raise ValueError(f"{path}: tier {raw['name']!r} lists unknown columns {unknown}; "
                             f"choose from {SELECTABLE_COLUMNS}")
        tiers.append(Tier(name=raw["name"], description=raw.get("description", ""), where=raw["where"],
                          reason=raw["reason"], requires_consent=bool(raw.get("requires_consent", False)),
                          max_rows_per_file=int(raw.get("max_rows_per_file") or 0), columns=columns))
    names = [t.name for t in tiers]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: duplicated tier names")
    return tiers


def evaluate(con: duckdb.DuckDBPyConnection, tier: Tier) -> pd.DataFrame:
    """Rows of one tier, ordered by customer_key; contact fields blank unless consented."""
    consent = " and accepts_marketing" if tier.requires_consent else ""
    try:
        df = con.execute(
            f"""
            select *, '{tier.name}' as tier, ({tier.reason}) as reason
            from ({CUSTOMER_BASE_SQL}) base
            where ({tier.where}){consent}
            order by customer_key
            """
        ).df()
    except duckdb.Error as exc:
        raise ValueError(f"tier {tier.name!r}: its where/reason SQL does not run: {exc}") from exc
    not_consented = ~df["accepts_marketing"].fillna(False).astype(bool)
    for col in ("email", "phone", "email_sha256", "phone_sha256"):
        df[col] = df[col].astype("object")
        df.loc[not_consented, col] = None
    return df


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(df: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells a spreadsheet would run as a formula with a single quote (OWASP CSV injection)."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype).startswith("str"):
            out[col] = out[col].map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith(FORMULA_START) else v
            )
    return out
