"""Identity resolution: normalise identifiers and merge people who share any of them.

Identifiers are e-mail (trimmed, lower case), phone (E.164 via `phonenumbers`, default region
configurable), Square customer id and loyalty/member id.  Every source record (an order, a Square
customer, a roster row) links the identifiers it carries; connected components of that graph are
people, so A sharing a phone with B and B an e-mail with C makes one person.

`customer_key` is derived from the smallest identifier of the component, so it stays the same
across runs as long as that person's identifiers do not change.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb
import phonenumbers

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalise_email(raw: str | None) -> str | None:
    """Trim and lower-case; None when it is not an e-mail address."""
    if raw is None:
        return None
    value = raw.strip().lower()
    return value if EMAIL_RE.match(value) else None


def normalise_phone(raw: str | None, default_region: str = "US") -> str | None:
    """E.164 (`+14152630134`), or None when it is not a valid phone number.

    Handles national forms (`(415) 263-0134`), the international `00` prefix, and a national trunk
    `0` written after the country code (`+88001795326165` -> `+8801795326165`).
    """
    if raw is None:
        return None
    text = raw.strip()
    if not text or not any(ch.isdigit() for ch in text):
        return None
    candidates = [text]
    digits = re.sub(r"[^\d+]", "", text)
    if digits.startswith("00"):
        candidates.append("+" + digits[2:])
    for cand in candidates:
        try:
            num = phonenumbers.parse(cand, default_region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(num):
            return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    return None


def customer_key_for(node: str) -> str:
    return "c_" + hashlib.sha256(node.encode("utf-8")).hexdigest()[:16]


class UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def add(self, x: str) -> None:
        self.parent.setdefault(x, x)

    def find(self, x: str) -> str:
        parent = self.parent
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # keep the smaller identifier as root: the key then needs no second pass
            if rb < ra:
                ra, rb = rb, ra
            self.parent[rb] = ra


@dataclass(frozen=True)
class SourceQuery:
    source: str
    table: str  # the raw table the query reads
    sql: str
    # (id_type, column) pairs in the query's result
    columns: tuple[tuple[str, str], ...]


def source_queries(con: duckdb.DuckDBPyConnection) -> list[SourceQuery]:
    """Distinct identifier combinations per source record, from the raw tables present."""
    from dagster_project.lib.warehouse import table_exists

    queries = [
        SourceQuery(
            "shopify",
            "shopify_order_lines",
            "select distinct email, phone, billing_phone, shipping_phone from raw.shopify_order_lines",
            (("email", "email"), ("phone", "phone"), ("phone", "billing_phone"), ("phone", "shipping_phone")),
        ),
        SourceQuery(
            "square_items",
            "square_item_lines",
            "select distinct customer_id, customer_reference_id from raw.square_item_lines "
            "where customer_id is not null or customer_reference_id is not null",
            (("square_customer_id", "customer_id"), ("member_id", "customer_reference_id")),
        ),
        SourceQuery(
            "square_customers",
            "square_customers",
            "select distinct square_customer_id, reference_id, email, phone from raw.square_customers",
            (("square_customer_id", "square_customer_id"), ("member_id", "reference_id"),
             ("email", "email"), ("phone", "phone")),
        ),
        SourceQuery(
            "generic",
            "generic_order_lines",
            # customer ids are namespaced by map (two shops' "123" are different people)
            "select distinct map_name || ':' || customer_id, email, phone from raw.generic_order_lines",
            (("source_customer_id", "customer_id"), ("email", "email"), ("phone", "phone")),
        ),
        SourceQuery(
            "members",
            "members",
            "select distinct member_id, email, phone from raw.members",
            (("member_id", "member_id"), ("email", "email"), ("phone", "phone")),
        ),
    ]
    return [sq for sq in queries if table_exists(con, "raw", sq.table)]


def normalise(id_type: str, raw: str | None, default_region: str) -> str | None:
    if raw is None:
        return None
    if id_type == "email":
        return normalise_email(raw)
    if id_type == "phone":
        return normalise_phone(raw, default_region)
    value = raw.strip()
    if id_type == "source_customer_id":
        # ids exported through a float column ("17850.0") are the same id as "17850"
        value = re.sub(r"^(.*:)?(\d+)\.0+$", r"\1\2", value)
    return value or None


def resolve(con: duckdb.DuckDBPyConnection, default_region: str = "US") -> dict[str, int]:
    """Build `identity.identifiers`: every raw identifier value with its normalised form and key."""
    uf = UnionFind()
    # (source, id_type, raw) -> normalised (None when invalid)
    seen: dict[tuple[str, str, str], str | None] = {}
    cache: dict[tuple[str, str], str | None] = {}

    def norm(id_type: str, raw: str) -> str | None:
        k = (id_type, raw)
        if k not in cache:
            cache[k] = normalise(id_type, raw, default_region)
        return cache[k]

    records = 0
    for sq in source_queries(con):
        for row in con.execute(sq.sql).fetchall():
            nodes: list[str] = []
            for (id_type, _col), raw in zip(sq.columns, row):
                if raw is None:
                    continue
                value = norm(id_type, raw)
                seen[(sq.source, id_type, raw)] = value
                if value is not None:
                    nodes.append(f"{id_type}:{value}")
            if not nodes:
                continue
            records += 1
            for n in nodes:
                uf.add(n)
            for n in nodes[1:]:
                uf.union(nodes[0], n)

    rows: Iterable[tuple] = (
        (source, id_type, raw, value, customer_key_for(uf.find(f"{id_type}:{value}")) if value else None)
        for (source, id_type, raw), value in sorted(seen.items(), key=lambda kv: kv[0])
    )
    con.execute("create schema if not exists identity")
    con.execute(
        "create or replace table identity.identifiers (source VARCHAR, id_type VARCHAR, raw_value VARCHAR, "
        "normalised_value VARCHAR, customer_key VARCHAR)"
    )
    batch = list(rows)
    if batch:
        import pyarrow as pa

        tbl = pa.table(
            {name: [r[i] for r in batch] for i, name in
             enumerate(["source", "id_type", "raw_value", "normalised_value", "customer_key"])}
        )
        con.register("_ids", tbl)
        con.execute("insert into identity.identifiers select * from _ids")
        con.unregister("_ids")
    people = len({uf.find(n) for n in uf.parent})
    invalid = sum(1 for v in seen.values() if v is None)
    return {"records_linked": records, "identifiers": len(uf.parent), "people": people,
            "invalid_values": invalid}
