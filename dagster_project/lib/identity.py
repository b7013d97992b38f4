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
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import phonenumbers

from dagster_project.lib.warehouse import table_exists

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


# Bump when a normaliser changes: cached normalisations of an older version are recomputed.
NORMALISER_VERSION = 1
# Plain phone spellings (digits, spaces, brackets, dots, dashes, slashes, one leading plus) normalise
# like their digits alone, so "(415) 263-0134" and "415.263.0134" share one phonenumbers call.
_PLAIN_PHONE = re.compile(r"^\+?[\d\s().\-/]*$")
_PARALLEL_FROM = 20_000  # new phone spellings; below this a process pool costs more than it saves


def phone_signature(raw: str) -> str:
    """What a phone spelling normalises like: its digits (with a leading plus) when it is written
    plainly, else the spelling itself.  `normalise_phone(raw) == normalise_phone(phone_signature(raw))`."""
    text = raw.strip()
    if _PLAIN_PHONE.match(text):
        return ("+" if text.startswith("+") else "") + re.sub(r"\D", "", text)
    return raw


_BATCH = 250_000  # new values normalised per batch (bounds the Python memory at ten million lines)


@contextmanager
def _phone_pool(phones: int):
    """A process pool for normalising `phones` new phone spellings, or None when serial is cheaper."""
    workers = min(os.cpu_count() or 1, 8)
    if phones < _PARALLEL_FROM or workers < 2 or not _can_spawn():
        yield None
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: the run process has DuckDB and Dagster threads
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield pool


def _normalise_phones(signatures: list[str], default_region: str, pool=None) -> list[str | None]:
    """normalise_phone over many values, split over the pool's processes when there is one."""
    if pool is None or len(signatures) < _PARALLEL_FROM:
        return _normalise_phone_chunk(signatures, default_region)
    chunk = -(-len(signatures) // (pool._max_workers * 4))
    parts = [signatures[i:i + chunk] for i in range(0, len(signatures), chunk)]
    done = pool.map(_normalise_phone_chunk, parts, [default_region] * len(parts))
    return [v for part in done for v in part]


def _can_spawn() -> bool:
    """Spawned workers re-import the main module: not possible from stdin, `-c` or a notebook."""
    import sys

    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    path = getattr(main, "__file__", None)
    return spec is not None or (path is not None and os.path.exists(path))


def _normalise_phone_chunk(values: list[str], default_region: str) -> list[str | None]:
    return [normalise_phone(v, default_region) for v in values]


def _normalise_new_values(con: duckdb.DuckDBPyConnection, default_region: str) -> int:
    """Normalise the raw values not in identity.normalised_values yet and add them (the cache makes a
    daily run normalise only the day's new spellings).  Returns how many were new."""
    import pyarrow as pa

    con.execute(
        """
        create or replace temp table _identity_new as
        select row_number() over () as n, id_type, raw_value from (
            select distinct r.id_type, r.raw_value from _identity_raw r
            anti join identity.normalised_values c
              on c.id_type = r.id_type and c.raw_value = r.raw_value
             and c.phone_region = ? and c.version = ?
        )
        """,
        [default_region, NORMALISER_VERSION],
    )
    total, phones = con.execute(
        "select count(*), count(*) filter (where id_type = 'phone') from _identity_new").fetchone()
    with _phone_pool(phones) as pool:
        for start in range(1, total + 1, _BATCH):
            new = con.execute("select id_type, raw_value from _identity_new where n between ? and ?",
                              [start, start + _BATCH - 1]).fetchall()
            signature_of = {raw: phone_signature(raw) for id_type, raw in new if id_type == "phone"}
            signatures = sorted(set(signature_of.values()))
            by_signature = dict(zip(signatures, _normalise_phones(signatures, default_region, pool)))
            values = [
                by_signature[signature_of[raw]] if id_type == "phone" else normalise(id_type, raw, default_region)
                for id_type, raw in new
            ]
            tbl = pa.table({"id_type": [t for t, _ in new], "raw_value": [r for _, r in new],
                            "normalised_value": pa.array(values, type=pa.string())})
            con.register("_new_values", tbl)
            try:
                con.execute(
                    "insert into identity.normalised_values "
                    "select id_type, raw_value, ? as phone_region, ? as version, normalised_value from _new_values",
                    [default_region, NORMALISER_VERSION],
                )
            finally:
                con.unregister("_new_values")
    con.execute("drop table _identity_new")
    return total


def _components(con: duckdb.DuckDBPyConnection) -> None:
    """Connected components of the identifier graph: `_identity_roots(nid, root)`, root = the smallest
    node (by text) of the node's component.  Node ids are ranks in text order, so the smallest id is
    the smallest node."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = con.execute("select count(*) from _identity_nodes").fetchone()[0]
    edges = con.execute("select a, b from _identity_edges").fetchnumpy()
    a, b = np.asarray(edges["a"], dtype=np.int64), np.asarray(edges["b"], dtype=np.int64)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    # smallest node id per component label
    smallest = np.full(labels.max() + 1 if n else 0, n, dtype=np.int64)
    np.minimum.at(smallest, labels, np.arange(n, dtype=np.int64))
    import pyarrow as pa

    con.register("_roots", pa.table({"nid": np.arange(n, dtype=np.int64), "root": smallest[labels]}))
    try:
        con.execute("create or replace temp table _identity_roots as select * from _roots")
    finally:
        con.unregister("_roots")


def resolve(con: duckdb.DuckDBPyConnection, default_region: str = "US") -> dict[str, int]:
    """Build `identity.identifiers`: every raw identifier value with its normalised form and key.

    Set-based in DuckDB: the identifiers of each distinct source record (one row per record and
    identifier), normalised through the `identity.normalised_values` cache, linked record by record
    into a graph whose connected components are people."""
    queries = source_queries(con)
    con.execute("create schema if not exists identity")
    con.execute(
        "create table if not exists identity.normalised_values (id_type VARCHAR, raw_value VARCHAR, "
        "phone_region VARCHAR, version INTEGER, normalised_value VARCHAR)"
    )
    con.execute("delete from identity.normalised_values where version != ?", [NORMALISER_VERSION])
    parts = []
    for i, sq in enumerate(queries):
        cols = ", ".join(f"c{j}" for j in range(len(sq.columns)))
        values = ", ".join(f"({j}, c{j})" for j in range(len(sq.columns)))
        types = "case k " + " ".join(f"when {j} then '{t}'" for j, (t, _c) in enumerate(sq.columns)) + " end"
        parts.append(
            f"select {i} as q, rec, '{sq.source}' as source, {types} as id_type, v as raw_value "
            f"from (select row_number() over () as rec, * from ({sq.sql}) as s({cols})) "
            f"cross join lateral (values {values}) as u(k, v) where v is not null"
        )
    con.execute(
        "create or replace temp table _identity_raw (q INTEGER, rec BIGINT, source VARCHAR, id_type VARCHAR, "
        "raw_value VARCHAR)"
    )
    for part in parts:
        con.execute(f"insert into _identity_raw {part}")
    new_values = _normalise_new_values(con, default_region)
    con.execute(
        """
        create or replace temp table _identity_linked as
        select r.q, r.rec, r.source, r.id_type, r.raw_value, c.normalised_value,
               case when c.normalised_value is not null then r.id_type || ':' || c.normalised_value end as node
        from _identity_raw r
        left join identity.normalised_values c
          on c.id_type = r.id_type and c.raw_value = r.raw_value and c.phone_region = ? and c.version = ?
        """,
        [default_region, NORMALISER_VERSION],
    )
    con.execute(
        "create or replace temp table _identity_nodes as "
        "select node, cast(row_number() over (order by node) - 1 as bigint) as nid "
        "from (select distinct node from _identity_linked where node is not null)"
    )
    # every record's nodes linked to the record's first node (a star per record)
    con.execute(
        """
        create or replace temp table _identity_edges as
        with rec_nodes as (
            select distinct l.q, l.rec, n.nid from _identity_linked l join _identity_nodes n using (node)
        )
        select distinct nid as a, min(nid) over (partition by q, rec) as b from rec_nodes
        """
    )
    _components(con)
    con.execute(
        """
        create or replace temp table _identity_result as
        with keys as (
            select n.node, 'c_' || left(sha256(root_node.node), 16) as customer_key
            from _identity_nodes n
            join _identity_roots r on r.nid = n.nid
            join _identity_nodes root_node on root_node.nid = r.root
        )
        select distinct l.source, l.id_type, l.raw_value, l.normalised_value, k.customer_key
        from _identity_linked l left join keys k on k.node = l.node
        order by l.source, l.id_type, l.raw_value
        """
    )
    changed = _log_changes(con)
    con.execute("create or replace table identity.identifiers as select * from _identity_result")
    stats = con.execute(
        """
        select
            (select count(*) from (select distinct q, rec from _identity_linked where node is not null)),
            (select count(*) from _identity_nodes),
            (select count(distinct root) from _identity_roots),
            (select count(*) from identity.identifiers where normalised_value is null)
        """
    ).fetchone()
    for table in ("_identity_raw", "_identity_linked", "_identity_nodes", "_identity_edges", "_identity_roots",
                  "_identity_result"):
        con.execute(f"drop table if exists {table}")
    return {"records_linked": stats[0], "identifiers": stats[1], "people": stats[2], "invalid_values": stats[3],
            "newly_normalised_values": new_values, "identifiers_changed": changed}


# The incremental orders model (dbt int_orders_identified) re-keys only the orders whose identifiers
# changed: each resolution gets the next change_seq in identity.resolution_runs, and every identifier
# that is new or whose customer_key differs from the previous resolution is logged with it in
# identity.identifier_changes. A resolution with no previous one to compare with is logged as
# full_change (every order re-keyed). Changes are kept until that model has consumed them.
CONSUMER = ("intermediate", "int_orders_identified", "identity_change_seq")


def _log_changes(con: duckdb.DuckDBPyConnection) -> int:
    con.execute("create table if not exists identity.resolution_runs (change_seq BIGINT, resolved_at TIMESTAMP, "
                "full_change BOOLEAN, identifiers_changed BIGINT)")
    con.execute("create table if not exists identity.identifier_changes (change_seq BIGINT, source VARCHAR, "
                "id_type VARCHAR, raw_value VARCHAR)")
    seq = con.execute("select coalesce(max(change_seq), 0) + 1 from identity.resolution_runs").fetchone()[0]
    had_previous = table_exists(con, "identity", "identifiers")
    changed = 0
    if had_previous:
        changed = con.execute(
            """
            insert into identity.identifier_changes
            select ?, n.source, n.id_type, n.raw_value
            from _identity_result n
            left join identity.identifiers o
              on o.source = n.source and o.id_type = n.id_type and o.raw_value = n.raw_value
            where o.raw_value is null or o.customer_key is distinct from n.customer_key
            """,
            [seq],
        ).fetchone()[0]
    con.execute("insert into identity.resolution_runs values (?, current_timestamp, ?, ?)",
                [seq, not had_previous, changed])
    schema, table, column = CONSUMER
    consumed = con.execute(
        "select count(*) from duckdb_columns() where schema_name = ? and table_name = ? and column_name = ?",
        [schema, table, column],
    ).fetchone()[0]
    if consumed:
        con.execute(f"delete from identity.identifier_changes where change_seq <= "
                    f"(select coalesce(max({column}), 0) from {schema}.{table})")
    return int(changed)
