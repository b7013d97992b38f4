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

    Handles national forms (`(415) 263-0134`), the international `00` prefix, and the national trunk
    prefix kept after the country code, as people write it when they add the country code to the
    number they know (`+880 01795-326165`, `+44 (0)7911 123456`, `+88001795326165`): the same number
    as without it.
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
        num = _without_trunk_prefix(num)
        if num is not None:
            return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    return None


def _without_trunk_prefix(num: "phonenumbers.PhoneNumber") -> "phonenumbers.PhoneNumber | None":
    """An invalid number whose national part starts with its country's trunk prefix (`0` in most
    countries, `8` in some): the valid number without it, else None.  phonenumbers strips the prefix
    itself for most countries; this covers the rest (e.g. `+57 0321…`), and only ever turns an
    invalid number into a valid one, never one valid number into another."""
    national = phonenumbers.national_significant_number(num)
    for region in phonenumbers.region_codes_for_country_code(num.country_code):
        meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
        prefix = meta.national_prefix if meta is not None else None
        if prefix and national.startswith(prefix) and len(national) > len(prefix):
            try:
                bare = phonenumbers.parse(f"+{num.country_code}{national[len(prefix):]}", None)
            except phonenumbers.NumberParseException:
                continue
            if phonenumbers.is_valid_number(bare):
                return bare
    return None


def customer_key_for(node: str) -> str:
    return "c_" + hashlib.sha256(node.encode("utf-8")).hexdigest()[:16]


def _customer_key_sql(node: str) -> str:
    """customer_key_for in SQL."""
    return f"'c_' || left(sha256({node}), 16)"


@dataclass(frozen=True)
class SourceQuery:
    source: str
    table: str  # the raw table the query reads
    select: str  # the identifier expressions of one record
    # (id_type, column) pairs in the query's result
    columns: tuple[tuple[str, str], ...]
    where: str = ""

    def sql(self, file_ids: "tuple[int, int] | None" = None) -> str:
        """Distinct identifier combinations of the table's rows; with file_ids (after, upto) only the rows
        loaded from files after `after` up to `upto` (an incremental resolution)."""
        conds = [self.where] if self.where else []
        if file_ids is not None:
            conds.append(f"_file_id > {int(file_ids[0])} and _file_id <= {int(file_ids[1])}")
        where = " where " + " and ".join(f"({c})" for c in conds) if conds else ""
        return f"select distinct {self.select} from raw.{self.table}{where}"


def source_queries(con: duckdb.DuckDBPyConnection) -> list[SourceQuery]:
    """Distinct identifier combinations per source record, from the raw tables present."""
    queries = [
        SourceQuery(
            "shopify", "shopify_order_lines", "email, phone, billing_phone, shipping_phone",
            (("email", "email"), ("phone", "phone"), ("phone", "billing_phone"), ("phone", "shipping_phone")),
        ),
        SourceQuery(
            "square_items", "square_item_lines", "customer_id, customer_reference_id",
            (("square_customer_id", "customer_id"), ("member_id", "customer_reference_id")),
            where="customer_id is not null or customer_reference_id is not null",
        ),
        SourceQuery(
            "square_customers", "square_customers", "square_customer_id, reference_id, email, phone",
            (("square_customer_id", "square_customer_id"), ("member_id", "reference_id"),
             ("email", "email"), ("phone", "phone")),
        ),
        SourceQuery(
            # customer ids are namespaced by map (two shops' "123" are different people)
            "generic", "generic_order_lines", "map_name || ':' || customer_id, email, phone",
            (("source_customer_id", "customer_id"), ("email", "email"), ("phone", "phone")),
        ),
        SourceQuery(
            "members", "members", "member_id, email, phone",
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
# 2: a national trunk prefix after the country code is dropped for every country (normalise_phone).
NORMALISER_VERSION = 2
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


def _components(con: duckdb.DuckDBPyConnection, n: int) -> None:
    """Connected components of the graph `_identity_edges(a, b)` over node ids 0..n-1:
    `_identity_roots(nid, root)`, root = the smallest node id of the node's component.  Node ids are
    ranks in text order, so the smallest id is the smallest node."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

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


def _roots(con: duckdb.DuckDBPyConnection, create: str) -> None:
    """The connected components of `_identity_edges` over `_identity_nodes`, as (node, root) rows: root =
    the smallest node of the node's component.  `create` names the table, e.g. `create or replace
    table identity.node_roots`."""
    _components(con, con.execute("select count(*) from _identity_nodes").fetchone()[0])
    con.execute(
        f"""
        {create} as
        select n.node, root_node.node as root
        from _identity_nodes n
        join _identity_roots r on r.nid = n.nid
        join _identity_nodes root_node on root_node.nid = r.root
        """
    )


# A daily run resolves only the records of the files loaded since the last resolution.  Raw tables
# are append-only (a file's rows are loaded once, never changed or deleted), so the identifier graph
# only grows: its components only merge, and the smallest node of a merged component is the smallest
# of the merged roots and the new nodes.  identity.node_roots keeps every node's root;
# identity.resolution_state records, per raw table, the newest file and the row count resolved, with
# the phone region and normaliser version.  Anything that breaks those assumptions (rows without a
# file id, fewer or other rows up to the recorded file, another region or normaliser, a missing state
# table) makes the resolution a full one, which rebuilds everything from all raw rows.
STATE_TABLE = "resolution_state"


def _resolved_state(con: duckdb.DuckDBPyConnection, default_region: str) -> "dict[str, tuple[int, int]] | None":
    """Per raw table, (newest file id, rows) the last resolution read, when it can be continued: its
    state tables exist and it used this phone region and normaliser version; else None."""
    if not all(table_exists(con, "identity", t) for t in (STATE_TABLE, "node_roots", "identifiers")):
        return None
    rows = con.execute(
        f"select raw_table, file_id, row_count, phone_region, normaliser_version from identity.{STATE_TABLE}"
    ).fetchall()
    if any(region != default_region or version != NORMALISER_VERSION for *_, region, version in rows):
        return None
    return {t: (int(f), int(r)) for t, f, r, _, _ in rows}


def _raw_snapshot(con: duckdb.DuckDBPyConnection, queries: list[SourceQuery],
                  state: "dict[str, tuple[int, int]] | None") -> dict[str, tuple[int, int, int, int]]:
    """Per raw table, in one pass: (newest file id, rows, rows without a file id, rows from files up to
    the one the last resolution read)."""
    out = {}
    for sq in queries:
        resolved_upto = (state or {}).get(sq.table, (0, 0))[0]
        newest, rows, no_file, upto = con.execute(
            f"select coalesce(max(_file_id), 0), count(*), count(*) - count(_file_id), "
            f"count(*) filter (where _file_id <= ?) from raw.{sq.table}", [resolved_upto]
        ).fetchone()
        out[sq.table] = (int(newest), int(rows), int(no_file), int(upto))
    return out


def _incremental_from(state: "dict[str, tuple[int, int]] | None", snapshot: dict) -> "dict[str, int] | None":
    """Per raw table, the newest file id already resolved, when an incremental resolution gives what a
    full one would; else None (resolve everything)."""
    if state is None:
        return None
    if any(t not in snapshot and rows for t, (_, rows) in state.items()):
        return None  # a resolved raw table is gone
    after = {}
    for table, (_, _, no_file, upto) in snapshot.items():
        file_id, rows = state.get(table, (0, 0))
        if no_file:
            return None  # rows without a file id: not loaded by ingestion, nothing tells what is new
        if upto != rows:
            return None  # rows resolved before were removed or added under an old file id
        after[table] = file_id
    return after


def _save_state(con: duckdb.DuckDBPyConnection, snapshot: dict, default_region: str) -> None:
    con.execute(f"create or replace table identity.{STATE_TABLE} (raw_table VARCHAR, file_id BIGINT, "
                f"row_count BIGINT, phone_region VARCHAR, normaliser_version INTEGER)")
    con.executemany(f"insert into identity.{STATE_TABLE} values (?, ?, ?, ?, ?)",
                    [[t, f, r, default_region, NORMALISER_VERSION] for t, (f, r, *_) in snapshot.items()])


def resolve(con: duckdb.DuckDBPyConnection, default_region: str = "US", full: bool = False) -> dict[str, int]:
    """Build `identity.identifiers`: every raw identifier value with its normalised form and key.

    Set-based in DuckDB: the identifiers of each distinct source record (one row per record and
    identifier), normalised through the `identity.normalised_values` cache, linked record by record
    into a graph whose connected components are people.  Incremental when it can be (see above):
    only the records of newly loaded files are read and only the people they touch are re-keyed;
    `full=True` resolves everything."""
    queries = source_queries(con)
    con.execute("create schema if not exists identity")
    con.execute(
        "create table if not exists identity.normalised_values (id_type VARCHAR, raw_value VARCHAR, "
        "phone_region VARCHAR, version INTEGER, normalised_value VARCHAR)"
    )
    con.execute("delete from identity.normalised_values where version != ?", [NORMALISER_VERSION])
    state = None if full else _resolved_state(con, default_region)
    snapshot = _raw_snapshot(con, queries, state)
    after = _incremental_from(state, snapshot)
    parts = []
    for i, sq in enumerate(queries):
        cols = ", ".join(f"c{j}" for j in range(len(sq.columns)))
        values = ", ".join(f"({j}, c{j})" for j in range(len(sq.columns)))
        types = "case k " + " ".join(f"when {j} then '{t}'" for j, (t, _c) in enumerate(sq.columns)) + " end"
        sql = sq.sql(None if after is None else (after[sq.table], snapshot[sq.table][0]))
        parts.append(
            f"select {i} as q, rec, '{sq.source}' as source, {types} as id_type, v as raw_value "
            f"from (select row_number() over () as rec, * from ({sql}) as s({cols})) "
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
    con.execute("begin transaction")
    try:
        changed = _resolve_all(con) if after is None else _resolve_new(con)
        _save_state(con, snapshot, default_region)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    stats = con.execute(
        """
        select
            (select count(*) from (select distinct q, rec from _identity_linked where node is not null)),
            (select count(*) from identity.node_roots),
            (select count(distinct root) from identity.node_roots),
            (select count(*) from identity.identifiers where normalised_value is null)
        """
    ).fetchone()
    for table in ("_identity_raw", "_identity_linked", "_identity_nodes", "_identity_edges", "_identity_roots",
                  "_identity_result", "_inc_nodes", "_inc_roots", "_inc_remap", "_inc_rekeyed", "_inc_new_ids"):
        con.execute(f"drop table if exists {table}")
    return {"records_linked": stats[0], "identifiers": stats[1], "people": stats[2], "invalid_values": stats[3],
            "newly_normalised_values": new_values, "identifiers_changed": changed,
            "incremental": int(after is not None)}


def _resolve_all(con: duckdb.DuckDBPyConnection) -> int:
    """Every record's identifiers (`_identity_linked`) into identity.node_roots and identity.identifiers,
    replacing them; returns how many identifiers are new or re-keyed since the previous resolution."""
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
    _roots(con, "create or replace table identity.node_roots")
    con.execute(
        f"""
        create or replace temp table _identity_result as
        select distinct l.source, l.id_type, l.raw_value, l.normalised_value,
               {_customer_key_sql('k.root')} as customer_key
        from _identity_linked l left join identity.node_roots k on k.node = l.node
        order by l.source, l.id_type, l.raw_value
        """
    )
    changed = _log_changes(con)
    con.execute("create or replace table identity.identifiers as select * from _identity_result")
    return changed


def _resolve_new(con: duckdb.DuckDBPyConnection) -> int:
    """The new records' identifiers (`_identity_linked`) merged into identity.node_roots and
    identity.identifiers: their nodes and the roots those nodes had form a small graph; each of its
    components takes the smallest node as root, and every known node under a root that lost to a
    smaller one is moved under it.  Returns how many identifiers are new or re-keyed."""
    con.execute(
        """
        create or replace temp table _inc_nodes as
        select d.node, nr.root as old_root
        from (select distinct node from _identity_linked where node is not null) d
        left join identity.node_roots nr on nr.node = d.node
        """
    )
    con.execute(
        """
        create or replace temp table _identity_nodes as
        select node, cast(row_number() over (order by node) - 1 as bigint) as nid from (
            select node from _inc_nodes union select old_root from _inc_nodes where old_root is not null
        )
        """
    )
    # a star per new record, and every known node linked to its root
    con.execute(
        """
        create or replace temp table _identity_edges as
        with rec_nodes as (
            select distinct l.q, l.rec, n.nid from _identity_linked l join _identity_nodes n using (node)
        )
        select distinct nid as a, min(nid) over (partition by q, rec) as b from rec_nodes
        union all
        select a.nid, b.nid
        from _inc_nodes i join _identity_nodes a on a.node = i.node join _identity_nodes b on b.node = i.old_root
        """
    )
    _roots(con, "create or replace temp table _inc_roots")
    # known roots that now sit under a smaller node, and the known nodes that move with them
    con.execute(
        """
        create or replace temp table _inc_remap as
        select distinct i.old_root, r.root as new_root
        from _inc_nodes i join _inc_roots r on r.node = i.old_root
        where r.root <> i.old_root
        """
    )
    con.execute(
        f"""
        create or replace temp table _inc_rekeyed as
        select nr.node, {_customer_key_sql('m.new_root')} as customer_key
        from identity.node_roots nr join _inc_remap m on m.old_root = nr.root
        """
    )
    con.execute("update identity.node_roots set root = m.new_root from _inc_remap m "
                "where identity.node_roots.root = m.old_root")
    con.execute("insert into identity.node_roots select i.node, r.root from _inc_nodes i "
                "join _inc_roots r on r.node = i.node where i.old_root is null")
    # raw values not seen before in their source, keyed by their node's root
    con.execute(
        f"""
        create or replace temp table _inc_new_ids as
        select distinct l.source, l.id_type, l.raw_value, l.normalised_value,
               {_customer_key_sql('nr.root')} as customer_key
        from _identity_linked l
        left join identity.node_roots nr on nr.node = l.node
        where not exists (
            select 1 from identity.identifiers i
            where i.source = l.source and i.id_type = l.id_type and i.raw_value = l.raw_value
        )
        """
    )
    seq = _next_change_seq(con)
    rekeyed = con.execute(
        """
        insert into identity.identifier_changes
        select ?, i.source, i.id_type, i.raw_value
        from identity.identifiers i join _inc_rekeyed k on k.node = i.id_type || ':' || i.normalised_value
        """,
        [seq],
    ).fetchone()[0]
    con.execute(
        """
        update identity.identifiers set customer_key = k.customer_key from _inc_rekeyed k
        where k.node = identity.identifiers.id_type || ':' || identity.identifiers.normalised_value
        """
    )
    added = con.execute("insert into identity.identifier_changes select ?, source, id_type, raw_value "
                        "from _inc_new_ids", [seq]).fetchone()[0]
    con.execute("insert into identity.identifiers select * from _inc_new_ids")
    return _record_resolution(con, seq, False, int(rekeyed) + int(added), full_resolution=False)


# The incremental dbt models (int_orders_identified, int_customer_contacts, customer_identity_map)
# rebuild only the rows of identifiers that changed: each resolution gets the next change_seq in
# identity.resolution_runs, and every identifier that is new or whose customer_key differs from the
# previous resolution is logged with it in identity.identifier_changes. A resolution with no previous
# one to compare with is logged as full_change (every order re-keyed); full_resolution marks a full
# (not incremental) resolution, which may also have changed normalised values (a new phone region or
# normaliser version), so customer_identity_map and int_customer_contacts rebuild after one. Changes
# are kept until every consumer has consumed them.
CONSUMERS = (("intermediate", "int_orders_identified", "identity_change_seq"),
             ("intermediate", "int_customer_contacts", "identity_change_seq"),
             ("marts", "customer_identity_map", "identity_change_seq"))


def _create_change_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create table if not exists identity.resolution_runs (change_seq BIGINT, resolved_at TIMESTAMP, "
                "full_change BOOLEAN, identifiers_changed BIGINT, full_resolution BOOLEAN)")
    # warehouses from before full_resolution was recorded (their rows read as NULL: unknown, so full)
    con.execute("alter table identity.resolution_runs add column if not exists full_resolution BOOLEAN")
    con.execute("create table if not exists identity.identifier_changes (change_seq BIGINT, source VARCHAR, "
                "id_type VARCHAR, raw_value VARCHAR)")


def _next_change_seq(con: duckdb.DuckDBPyConnection) -> int:
    _create_change_tables(con)
    return int(con.execute("select coalesce(max(change_seq), 0) + 1 from identity.resolution_runs").fetchone()[0])


def _log_changes(con: duckdb.DuckDBPyConnection) -> int:
    """A full resolution (`_identity_result`) compared with the previous one (identity.identifiers)."""
    seq = _next_change_seq(con)
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
    return _record_resolution(con, seq, not had_previous, int(changed), full_resolution=True)


def _record_resolution(con: duckdb.DuckDBPyConnection, seq: int, full_change: bool, changed: int,
                       full_resolution: bool) -> int:
    con.execute("insert into identity.resolution_runs (change_seq, resolved_at, full_change, identifiers_changed, "
                "full_resolution) values (?, current_timestamp, ?, ?, ?)", [seq, full_change, changed, full_resolution])
    # Trim to what the slowest consumer has seen. A consumer not built yet starts with a full build (no
    # log needed); one built before its watermark column existed keeps the whole log (its next build
    # rebuilds everything, and the log is trimmed after that).
    seen = []
    for schema, table, column in CONSUMERS:
        columns = {r[0] for r in con.execute(
            "select column_name from duckdb_columns() where schema_name = ? and table_name = ?", [schema, table]
        ).fetchall()}
        if not columns:
            continue  # not built yet
        seen.append(con.execute(f"select coalesce(max({column}), 0) from {schema}.{table}").fetchone()[0]
                    if column in columns else 0)
    if seen and min(seen) > 0:
        con.execute("delete from identity.identifier_changes where change_seq <= ?", [min(seen)])
    return changed
