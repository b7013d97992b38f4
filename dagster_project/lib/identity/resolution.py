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


def _without_trunk_prefix(num: phonenumbers.PhoneNumber) -> phonenumbers.PhoneNumber | None:
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
                bare = phonenumbers.parse(f"+{num.country_code}{national[len(prefix) :]}", None)
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

    def sql(self, file_ids: tuple[int, int] | None = None) -> str:
        """Distinct identifier combinations of the table's rows; with file_ids (after, upto) only the rows
        loaded from files after `after` up to `upto` (an incremental resolution)."""
        conds = [self.where] if self.where else []
        if file_ids is not None:
            conds.append(f"_file_id > {int(file_ids[0])} and _file_id <= {int(file_ids[1])}")
        where = " where " + " and ".join(f"({c})" for c in conds) if conds else ""
        return f"select distinct {self.select} from raw.{self.table}{where}"


def identifier_registry() -> dict:
    """The identifier registry: the kinds of identifier and which ones each source record carries (var
    `identifier_registry` in dbt/dbt_project.yml, the one declaration the dbt models read too)."""
    global _REGISTRY
    if _REGISTRY is None:
        import yaml

        from dagster_project.lib.paths import DBT_PROJECT_DIR

        project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text(encoding="utf-8"))
        registry = project["vars"]["identifier_registry"]
        for entry in registry["sources"]:
            unknown = {i["id_type"] for i in entry["identifiers"]} - set(registry["kinds"])
            if unknown:
                raise ValueError(
                    f"identifier_registry in dbt_project.yml: source {entry['source']} carries "
                    f"{sorted(unknown)}, not among the kinds {sorted(registry['kinds'])}"
                )
        unknown = set(registry["kinds"].values()) - set(_NORMALISERS)
        if unknown:
            raise ValueError(
                f"identifier_registry in dbt_project.yml: no normaliser {sorted(unknown)} "
                f"(known: {sorted(_NORMALISERS)})"
            )
        _REGISTRY = registry
    return _REGISTRY


_REGISTRY: dict | None = None


def source_queries(con: duckdb.DuckDBPyConnection) -> list[SourceQuery]:
    """Distinct identifier combinations per source record, from the raw tables present."""
    queries = [
        SourceQuery(
            entry["source"],
            entry["raw_table"],
            ", ".join(i["raw"] for i in entry["identifiers"]),
            tuple((i["id_type"], i["column"]) for i in entry["identifiers"]),
            where=entry.get("raw_where") or "",
        )
        for entry in identifier_registry()["sources"]
    ]
    return [sq for sq in queries if table_exists(con, "raw", sq.table)]


def _numeric_id(value: str) -> str:
    # ids exported through a float column ("17850.0") are the same id as "17850" (after a map's "name:")
    return re.sub(r"^(.*:)?(\d+)\.0+$", r"\1\2", value)


# How the values of each kind of identifier are normalised (the registry's `kinds`); None = not an identifier.
_NORMALISERS = {
    "email": lambda raw, region: normalise_email(raw),
    "phone": normalise_phone,
    "id": lambda raw, region: raw.strip() or None,
    "numeric_id": lambda raw, region: _numeric_id(raw.strip()) or None,
}


def normalise(id_type: str, raw: str | None, default_region: str) -> str | None:
    if raw is None:
        return None
    return _NORMALISERS[identifier_registry()["kinds"][id_type]](raw, default_region)


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
    parts = [signatures[i : i + chunk] for i in range(0, len(signatures), chunk)]
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
        "select count(*), count(*) filter (where id_type = 'phone') from _identity_new"
    ).fetchone()
    with _phone_pool(phones) as pool:
        for start in range(1, total + 1, _BATCH):
            new = con.execute(
                "select id_type, raw_value from _identity_new where n between ? and ?", [start, start + _BATCH - 1]
            ).fetchall()
            signature_of = {raw: phone_signature(raw) for id_type, raw in new if id_type == "phone"}
            signatures = sorted(set(signature_of.values()))
            by_signature = dict(zip(signatures, _normalise_phones(signatures, default_region, pool), strict=False))
            values = [
                by_signature[signature_of[raw]] if id_type == "phone" else normalise(id_type, raw, default_region)
                for id_type, raw in new
            ]
            tbl = pa.table(
                {
                    "id_type": [t for t, _ in new],
                    "raw_value": [r for _, r in new],
                    "normalised_value": pa.array(values, type=pa.string()),
                }
            )
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


def _resolved_state(
    con: duckdb.DuckDBPyConnection, default_region: str, rules: str
) -> dict[str, tuple[int, int]] | None:
    """Per raw table, (newest file id, rows) the last resolution read, when it can be continued: its
    state tables exist and it used this phone region, normaliser version and blocking rules (the
    blocklist and the shared-identifier limit); else None."""
    if not all(table_exists(con, "identity", t) for t in (STATE_TABLE, "node_roots", "identifiers", *GUARD_TABLES)):
        return None
    rows = con.execute(
        f"select raw_table, file_id, row_count, phone_region, normaliser_version, rules from identity.{STATE_TABLE}"
    ).fetchall()
    if any(region != default_region or version != NORMALISER_VERSION or r != rules for *_, region, version, r in rows):
        return None
    return {t: (int(f), int(r)) for t, f, r, *_ in rows}


def _raw_snapshot(
    con: duckdb.DuckDBPyConnection, queries: list[SourceQuery], state: dict[str, tuple[int, int]] | None
) -> dict[str, tuple[int, int, int, int]]:
    """Per raw table, in one pass: (newest file id, rows, rows without a file id, rows from files up to
    the one the last resolution read)."""
    out = {}
    for sq in queries:
        resolved_upto = (state or {}).get(sq.table, (0, 0))[0]
        newest, rows, no_file, upto = con.execute(
            f"select coalesce(max(_file_id), 0), count(*), count(*) - count(_file_id), "
            f"count(*) filter (where _file_id <= ?) from raw.{sq.table}",
            [resolved_upto],
        ).fetchone()
        out[sq.table] = (int(newest), int(rows), int(no_file), int(upto))
    return out


def _incremental_from(state: dict[str, tuple[int, int]] | None, snapshot: dict) -> dict[str, int] | None:
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


def _save_state(con: duckdb.DuckDBPyConnection, snapshot: dict, default_region: str, rules: str) -> None:
    con.execute(
        f"create or replace table identity.{STATE_TABLE} (raw_table VARCHAR, file_id BIGINT, "
        f"row_count BIGINT, phone_region VARCHAR, normaliser_version INTEGER, rules VARCHAR)"
    )
    con.executemany(
        f"insert into identity.{STATE_TABLE} values (?, ?, ?, ?, ?, ?)",
        [[t, f, r, default_region, NORMALISER_VERSION, rules] for t, (f, r, *_) in snapshot.items()],
    )


# Identifiers that never link (identity.blocked_identifiers): the listed ones (lib/identity/blocklist.yml
# and the data directory's own list) and the shared ones, which would join more than `max_shared`
# otherwise separate customers (the components of the graph without them).  A record's other
# identifiers still link it; a blocked value keeps its normalised form but no customer_key.
DEFAULT_MAX_SHARED = 5
# identity.record_hashes: every distinct record (set of nodes) resolved; identity.node_records: per node,
# how many distinct records carry it; identity.blocked_record_nodes: the nodes of the records that
# carry a blocked node.  They let a daily run tell when a node may have become shared (more records
# than max_shared: a full resolution decides) and count the customers a blocked node touches.
GUARD_TABLES = ("blocked_identifiers", "record_hashes", "node_records", "blocked_record_nodes", "key_events")


def _create_guard_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "create table if not exists identity.blocked_identifiers (node VARCHAR, id_type VARCHAR, "
        "normalised_value VARCHAR, reason VARCHAR, customers_touched BIGINT, records BIGINT, sources VARCHAR, "
        "first_seen_seq BIGINT, first_seen_at TIMESTAMP, last_seen_seq BIGINT)"
    )
    con.execute(
        "create table if not exists identity.key_events (change_seq BIGINT, resolved_at TIMESTAMP, "
        "event VARCHAR, customer_key VARCHAR, previous_keys VARCHAR, cause_id_type VARCHAR, "
        "cause_value VARCHAR, cause VARCHAR)"
    )


def _rules(blocklist, max_shared: int) -> str:
    return f"{blocklist.fingerprint()}/{int(max_shared)}"


def resolve(
    con: duckdb.DuckDBPyConnection,
    default_region: str = "US",
    full: bool = False,
    blocklist=None,
    max_shared: int = DEFAULT_MAX_SHARED,
) -> dict[str, int]:
    """Build `identity.identifiers`: every raw identifier value with its normalised form and key.

    Set-based in DuckDB: the identifiers of each distinct source record (one row per record and
    identifier), normalised through the `identity.normalised_values` cache, linked record by record
    into a graph whose connected components are people; blocked identifiers (the `blocklist`, default
    the shipped one, and any shared by more than `max_shared` otherwise separate customers) do not
    link.  Incremental when it can be (see above): only the records of newly loaded files are read and
    only the people they touch are re-keyed; `full=True` resolves everything."""
    from dagster_project.lib.identity import blocklist as identity_blocklist

    if max_shared < 1:
        raise ValueError(f"the shared-identifier limit must be 1 or more, got {max_shared}")
    blocklist = blocklist if blocklist is not None else identity_blocklist.load(default_region)
    rules = _rules(blocklist, max_shared)
    queries = source_queries(con)
    con.execute("create schema if not exists identity")
    con.execute(
        "create table if not exists identity.normalised_values (id_type VARCHAR, raw_value VARCHAR, "
        "phone_region VARCHAR, version INTEGER, normalised_value VARCHAR)"
    )
    con.execute("delete from identity.normalised_values where version != ?", [NORMALISER_VERSION])
    state = None if full else _resolved_state(con, default_region, rules)
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
    _record_nodes(con, blocklist)
    con.execute("begin transaction")
    try:
        _create_change_tables(con)
        _create_guard_tables(con)
        if after is None:
            changed = _resolve_all(con, max_shared)
        else:
            changed = _resolve_new(con, max_shared)
        if changed is not None:
            _save_state(con, snapshot, default_region, rules)
            con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    if changed is None:
        # a node may have become shared: only a full resolution can split what it joined
        con.execute("rollback")
        _drop_temp(con)
        stats = resolve(con, default_region, full=True, blocklist=blocklist, max_shared=max_shared)
        return {
            **stats,
            "newly_normalised_values": stats["newly_normalised_values"] + new_values,
            "guard_forced_full": 1,
        }
    stats = con.execute(
        """
        select
            (select count(*) from (select distinct q, rec from _identity_linked where node is not null)),
            (select count(*) from identity.node_roots),
            (select count(distinct root) from identity.node_roots),
            (select count(*) from identity.identifiers where normalised_value is null),
            (select count(*) filter (where reason = 'listed') from identity.blocked_identifiers),
            (select count(*) filter (where reason = 'shared') from identity.blocked_identifiers)
        """
    ).fetchone()
    _drop_temp(con)
    return {
        "records_linked": stats[0],
        "identifiers": stats[1],
        "people": stats[2],
        "invalid_values": stats[3],
        "blocked_listed": stats[4],
        "blocked_shared": stats[5],
        "newly_normalised_values": new_values,
        "identifiers_changed": changed,
        "incremental": int(after is not None),
        "guard_forced_full": 0,
    }


def _drop_temp(con: duckdb.DuckDBPyConnection) -> None:
    for table in (
        "_identity_raw",
        "_identity_linked",
        "_identity_nodes",
        "_identity_edges",
        "_identity_roots",
        "_identity_result",
        "_inc_nodes",
        "_inc_roots",
        "_inc_remap",
        "_inc_rekeyed",
        "_inc_new_ids",
        "_identity_rec_nodes",
        "_removed_sources",
        "_identity_node_values",
        "_identity_listed",
        "_identity_removed",
        "_guard_roots",
        "_identity_blocked",
        "_new_roots",
        "_kv",
        "_new_rec_nodes",
        "_identity_new_recs",
        "_inc_node_records",
        "_prev_blocked",
    ):
        con.execute(f"drop table if exists {table}")


def _record_nodes(con: duckdb.DuckDBPyConnection, blocklist) -> None:
    """The records' node sets (`_identity_rec_nodes(q, rec, node, h)`, h = a hash of the record's
    sorted nodes, so the same person typing the same details twice is one record) and the nodes the
    list blocks (`_identity_listed`)."""
    # an order-independent hash of the record's distinct nodes (XOR of 64-bit hashes): no list is built
    con.execute(
        """
        create or replace temp table _identity_rec_nodes as
        select q, rec, node, bit_xor(hash(node)) over (partition by q, rec) as h
        from (select distinct q, rec, node from _identity_linked where node is not null)
        """
    )
    con.execute(
        "create or replace temp table _identity_node_values as "
        "select node, split_part(node, ':', 1) as id_type, "
        "substr(node, length(split_part(node, ':', 1)) + 2) as normalised_value "
        "from (select distinct node from _identity_rec_nodes)"
    )
    blocklist.listed(con, "_identity_node_values", "_identity_listed")


def _touched_sql(removed: str, roots: str) -> str:
    """Per node of `removed`: the distinct customers (roots in `roots`, a graph without the removed
    nodes) among the nodes that share a record with it, and its records."""
    return f"""
        with c as (select q, rec, node, h from _identity_rec_nodes where node in (select node from {removed})),
        o as (select r.q, r.rec, r.node from _identity_rec_nodes r semi join c on c.q = r.q and c.rec = r.rec)
        select c.node, count(distinct r.root) as customers_touched, count(distinct c.h) as records
        from c
        left join o on o.q = c.q and o.rec = c.rec and o.node <> c.node
        left join {roots} r on r.node = o.node
        group by c.node
    """


def _link_graph(con: duckdb.DuckDBPyConnection, removed: str, create: str) -> None:
    """Connected components of the records' nodes except those in `removed` (a star per record)."""
    con.execute(
        f"create or replace temp table _identity_nodes as "
        f"select node, cast(row_number() over (order by node) - 1 as bigint) as nid "
        f"from (select distinct node from _identity_rec_nodes where node not in (select node from {removed}))"
    )
    con.execute(
        """
        create or replace temp table _identity_edges as
        with rec_nodes as (
            select l.q, l.rec, n.nid from _identity_rec_nodes l join _identity_nodes n using (node)
        )
        select distinct nid as a, min(nid) over (partition by q, rec) as b from rec_nodes
        """
    )
    _roots(con, create)


def _resolve_all(con: duckdb.DuckDBPyConnection, max_shared: int) -> int:
    """Every record's identifiers (`_identity_linked`) into identity.node_roots and identity.identifiers,
    replacing them; returns how many identifiers are new or re-keyed since the previous resolution.

    The guard: a node in more than `max_shared` distinct records (necessary to join that many separate
    customers) is a candidate; the graph without the listed and the candidate nodes gives, per
    candidate, the separate customers it touches, and those touching more than `max_shared` are
    blocked.  The people are the components of the graph without the blocked nodes."""
    seq = _next_change_seq(con)
    con.execute("create or replace temp table _prev_blocked as select node from identity.blocked_identifiers")
    if not table_exists(con, "identity", "node_roots"):
        con.execute("create table identity.node_roots (node VARCHAR, root VARCHAR)")
    con.execute(
        "create or replace table identity.node_records as "
        "select node, count(distinct h) as records from _identity_rec_nodes group by node"
    )
    con.execute(
        """
        create or replace temp table _identity_removed as
        select node from _identity_listed
        union
        select node from identity.node_records where records > ? and node not in (select node from _identity_listed)
        """,
        [max_shared],
    )
    candidates = con.execute(
        "select count(*) from _identity_removed where node not in (select node from _identity_listed)"
    ).fetchone()[0]
    if candidates:
        _link_graph(con, "_identity_removed", "create or replace temp table _guard_roots")
        con.execute(
            f"create or replace temp table _identity_blocked as {_touched_sql('_identity_removed', '_guard_roots')}"
        )
        con.execute(
            """
            create or replace temp table _identity_removed as
            select node from _identity_listed
            union
            select node from _identity_blocked where customers_touched > ?
            """,
            [max_shared],
        )
    _link_graph(con, "_identity_removed", "create or replace temp table _new_roots")
    if not candidates:
        con.execute(
            f"create or replace temp table _identity_blocked as {_touched_sql('_identity_removed', '_new_roots')}"
        )
    _removed_sources(con, "_identity_removed")
    _save_blocked(con, seq, "_identity_removed", replace=True)
    con.execute("update _identity_linked set node = null where node in (select node from _identity_removed)")
    con.execute(
        "create or replace temp table _new_rec_nodes as select distinct node from _identity_rec_nodes "
        "where h not in (select h from identity.record_hashes)"
        if table_exists(con, "identity", "record_hashes")
        else "create or replace temp table _new_rec_nodes as select distinct node from _identity_rec_nodes"
    )
    con.execute("create or replace table identity.record_hashes as select distinct h from _identity_rec_nodes")
    con.execute(
        """
        create or replace table identity.blocked_record_nodes as
        select distinct h, node from _identity_rec_nodes
        where h in (select h from _identity_rec_nodes where node in (select node from _identity_removed))
        """
    )
    con.execute(
        f"""
        create or replace temp table _identity_result as
        select distinct l.source, l.id_type, l.raw_value, l.normalised_value,
               {_customer_key_sql("k.root")} as customer_key
        from _identity_linked l left join _new_roots k on k.node = l.node
        order by l.source, l.id_type, l.raw_value
        """
    )
    # the components with a node whose root changed, before and after
    con.execute(
        """
        create or replace temp table _kv as
        with roots as (
            select coalesce(o.node, n.node) as node, o.root as old_root, n.root as new_root
            from identity.node_roots o full join _new_roots n on n.node = o.node
        ),
        changed as (select * from roots where old_root is distinct from new_root)
        select * from roots
        where old_root in (select old_root from changed) or new_root in (select new_root from changed)
        """
    )
    _key_events(con, seq)
    con.execute("create or replace table identity.node_roots as select * from _new_roots")
    changed = _log_changes(con)
    con.execute("create or replace table identity.identifiers as select * from _identity_result")
    return changed


def _removed_sources(con: duckdb.DuckDBPyConnection, removed: str) -> None:
    """The sources each node of `removed` was seen in (before `_identity_linked` drops them)."""
    con.execute(
        f"create or replace temp table _removed_sources as "
        f"select node, list(distinct source order by source) as sources from _identity_linked "
        f"where node in (select node from {removed}) group by node"
    )


def _save_blocked(con: duckdb.DuckDBPyConnection, seq: int, removed: str, replace: bool) -> None:
    """identity.blocked_identifiers from `_identity_blocked(node, customers_touched, records)` for the
    nodes in `removed`: replaced (a full resolution) or added to; first seen kept from earlier runs."""
    con.execute(
        f"""
        create or replace temp table _blocked_new as
        select b.node, v.id_type, v.normalised_value,
               case when b.node in (select node from _identity_listed) then 'listed' else 'shared' end as reason,
               b.customers_touched, b.records,
               array_to_string(list_sort(list_distinct(
                   list_concat(coalesce(string_split(o.sources, ','), []), coalesce(rs.sources, [])))), ',') as sources,
               coalesce(o.first_seen_seq, ?) as first_seen_seq, coalesce(o.first_seen_at, current_timestamp) as first_seen_at,
               ? as last_seen_seq
        from _identity_blocked b
        join _identity_node_values v on v.node = b.node
        left join _removed_sources rs on rs.node = b.node
        left join identity.blocked_identifiers o on o.node = b.node
        where b.node in (select node from {removed})
        """,  # noqa: E501 (SQL or printed text)
        [seq, seq],
    )
    if replace:
        con.execute("delete from identity.blocked_identifiers")
    else:
        con.execute("delete from identity.blocked_identifiers where node in (select node from _blocked_new)")
    con.execute("insert into identity.blocked_identifiers select * from _blocked_new")
    con.execute("drop table _blocked_new")


def _key_events(con: duckdb.DuckDBPyConnection, seq: int) -> None:
    """identity.key_events from `_kv(node, old_root, new_root)` (the nodes of every component that may
    have changed, with their root before and after): a customer key formed from two or more previous
    keys (merge), from a previous key that lost identifiers to others or to blocking (split), or
    renamed (rekey: its smallest identifier changed); a previous key whose identifiers were all
    blocked (dissolved).  The cause is a newly blocked identifier of the previous keys, else an
    identifier new to the graph (new, or blocked before: `_prev_blocked`) or carried by a record new
    in this resolution."""
    key = _customer_key_sql
    con.execute(
        f"""
        insert into identity.key_events
        with per_old as (
            select old_root, count(distinct new_root) as n_new, count(*) filter (where new_root is null) as n_lost,
                   min(node) filter (where new_root is null and node in (select node from _identity_removed))
                       as blocked_node
            from _kv where old_root is not null group by old_root
        ),
        per_new as (
            select k.new_root, list(distinct k.old_root order by k.old_root) filter (where k.old_root is not null) as prev,
                   count(distinct k.old_root) as n_prev,
                   bool_or(p.n_new > 1 or p.n_lost > 0) as split,
                   min(p.blocked_node) as blocked_node,
                   min(k.node) filter (where k.old_root is null or k.node in (select node from _new_rec_nodes)) as new_node
            from _kv k left join per_old p on p.old_root = k.old_root
            where k.new_root is not null group by k.new_root
        ),
        events as (
            select case when n_prev >= 2 and split then 'split_and_merge' when n_prev >= 2 then 'merge'
                        when split then 'split' else 'rekey' end as event,
                   new_root, prev, coalesce(blocked_node, new_node) as cause_node,
                   case when blocked_node is not null then 'identifier blocked'
                        when new_node in (select node from _prev_blocked) then 'identifier no longer blocked'
                        when new_node is not null then 'linked by new records'
                        else 'records changed' end as cause
            from per_new
            where n_prev >= 2 or split or (n_prev = 1 and prev[1] <> new_root)
            union all
            select 'dissolved', null, [old_root], blocked_node,
                   case when blocked_node is not null then 'identifier blocked' else 'records removed' end
            from per_old where n_new = 0
        )
        select ?, current_timestamp, e.event,
               case when e.new_root is not null then {key("e.new_root")} end,
               array_to_string(list_transform(e.prev, x -> {key("x")}), ','),
               split_part(e.cause_node, ':', 1), substr(e.cause_node, length(split_part(e.cause_node, ':', 1)) + 2),
               e.cause
        from events e
        """,  # noqa: E501 (SQL or printed text)
        [seq],
    )


def _resolve_new(con: duckdb.DuckDBPyConnection, max_shared: int) -> int | None:
    """The new records' identifiers (`_identity_linked`) merged into identity.node_roots and
    identity.identifiers: their nodes and the roots those nodes had form a small graph; each of its
    components takes the smallest node as root, and every known node under a root that lost to a
    smaller one is moved under it.  Returns how many identifiers are new or re-keyed, or None when a
    node not blocked now has more than `max_shared` records (it may have become shared: a full
    resolution decides)."""
    seq = _next_change_seq(con)
    con.execute("create or replace temp table _prev_blocked as select node from identity.blocked_identifiers")
    # records not resolved before, and the per-node record counts they raise
    con.execute(
        "create or replace temp table _identity_new_recs as "
        "select distinct h from _identity_rec_nodes anti join identity.record_hashes using (h)"
    )
    con.execute(
        "create or replace temp table _new_rec_nodes as select distinct node from _identity_rec_nodes "
        "where h in (select h from _identity_new_recs)"
    )
    con.execute(
        """
        create or replace temp table _identity_removed as
        select node from _identity_listed union select node from identity.blocked_identifiers
        """
    )
    over = con.execute(
        """
        with added as (
            select node, count(distinct h) as n from _identity_rec_nodes
            where h in (select h from _identity_new_recs) group by node
        )
        select count(*) from added a left join identity.node_records r using (node)
        where coalesce(r.records, 0) + a.n > ? and a.node not in (select node from _identity_removed)
        """,
        [max_shared],
    ).fetchone()[0]
    if over:
        return None
    con.execute(
        "create or replace temp table _inc_node_records as "
        "select a.node, coalesce(r.records, 0) + a.n as records from ("
        "select node, count(distinct h) as n from _identity_rec_nodes "
        "where h in (select h from _identity_new_recs) group by node"
        ") a left join identity.node_records r using (node)"
    )
    con.execute("delete from identity.node_records where node in (select node from _inc_node_records)")
    con.execute("insert into identity.node_records select * from _inc_node_records")
    con.execute("insert into identity.record_hashes select h from _identity_new_recs")
    # new records that carry a blocked node: kept to count the customers it touches
    con.execute(
        """
        insert into identity.blocked_record_nodes
        select distinct h, node from _identity_rec_nodes
        where h in (select h from _identity_new_recs)
          and h in (select h from _identity_rec_nodes where node in (select node from _identity_removed))
        """
    )
    _removed_sources(con, "_identity_removed")
    con.execute("update _identity_linked set node = null where node in (select node from _identity_removed)")
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
        select nr.node, {_customer_key_sql("m.new_root")} as customer_key
        from identity.node_roots nr join _inc_remap m on m.old_root = nr.root
        """
    )
    # the merged components before and after, for the key history
    con.execute(
        """
        create or replace temp table _kv as
        select nr.node, nr.root as old_root, coalesce(m.new_root, nr.root) as new_root
        from identity.node_roots nr left join _inc_remap m on m.old_root = nr.root
        where nr.root in (select old_root from _inc_remap union select new_root from _inc_remap)
        union all
        select i.node, null, r.root from _inc_nodes i join _inc_roots r using (node)
        where i.old_root is null and r.root in (select new_root from _inc_remap)
        """
    )
    _key_events(con, seq)
    con.execute(
        "update identity.node_roots set root = m.new_root from _inc_remap m where identity.node_roots.root = m.old_root"
    )
    con.execute(
        "insert into identity.node_roots select i.node, r.root from _inc_nodes i "
        "join _inc_roots r on r.node = i.node where i.old_root is null"
    )
    # the blocked nodes of the new records: customers they touch, recounted over their kept records
    con.execute(
        """
        create or replace temp table _identity_blocked as
        select c.node, count(distinct r.root) as customers_touched, count(distinct c.h) as records
        from identity.blocked_record_nodes c
        left join identity.blocked_record_nodes o on o.h = c.h and o.node <> c.node
        left join identity.node_roots r on r.node = o.node
        where c.node in (select node from _identity_removed)
          and c.node in (select node from _identity_rec_nodes)
        group by c.node
        """
    )
    _save_blocked(con, seq, "_identity_removed", replace=False)
    # raw values not seen before in their source, keyed by their node's root
    con.execute(
        f"""
        create or replace temp table _inc_new_ids as
        select distinct l.source, l.id_type, l.raw_value, l.normalised_value,
               {_customer_key_sql("nr.root")} as customer_key
        from _identity_linked l
        left join identity.node_roots nr on nr.node = l.node
        where not exists (
            select 1 from identity.identifiers i
            where i.source = l.source and i.id_type = l.id_type and i.raw_value = l.raw_value
        )
        """
    )
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
    added = con.execute(
        "insert into identity.identifier_changes select ?, source, id_type, raw_value from _inc_new_ids", [seq]
    ).fetchone()[0]
    con.execute("insert into identity.identifiers select * from _inc_new_ids")
    return _record_resolution(con, seq, False, int(rekeyed) + int(added), full_resolution=False)


# The incremental dbt models (int_orders_identified, int_customer_contacts, int_customer_profiles,
# customer_identity_map) rebuild only the rows of identifiers that changed: each resolution gets the
# next change_seq in identity.resolution_runs, and every identifier that is new or whose customer_key differs from the
# previous resolution is logged with it in identity.identifier_changes. A resolution with no previous
# one to compare with is logged as full_change (every order re-keyed); full_resolution marks a full
# (not incremental) resolution, which may also have changed normalised values (a new phone region or
# normaliser version), so customer_identity_map and the contacts and profiles rebuild after one. Changes
# are kept until every consumer has consumed them.
CONSUMERS = (
    ("intermediate", "int_orders_identified", "identity_change_seq"),
    ("intermediate", "int_customer_contacts", "identity_change_seq"),
    ("intermediate", "int_customer_profiles", "identity_change_seq"),
    ("marts", "customer_identity_map", "identity_change_seq"),
)


def _create_change_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        "create table if not exists identity.resolution_runs (change_seq BIGINT, resolved_at TIMESTAMP, "
        "full_change BOOLEAN, identifiers_changed BIGINT, full_resolution BOOLEAN)"
    )
    con.execute(
        "create table if not exists identity.identifier_changes (change_seq BIGINT, source VARCHAR, "
        "id_type VARCHAR, raw_value VARCHAR)"
    )


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


def _record_resolution(
    con: duckdb.DuckDBPyConnection, seq: int, full_change: bool, changed: int, full_resolution: bool
) -> int:
    con.execute(
        "insert into identity.resolution_runs (change_seq, resolved_at, full_change, identifiers_changed, "
        "full_resolution) values (?, current_timestamp, ?, ?, ?)",
        [seq, full_change, changed, full_resolution],
    )
    # Trim to what the slowest consumer has seen. A consumer not built yet starts with a full build (no
    # log needed).
    seen = [
        con.execute(f"select coalesce(max({column}), 0) from {schema}.{table}").fetchone()[0]
        for schema, table, column in CONSUMERS
        if table_exists(con, schema, table)
    ]
    if seen and min(seen) > 0:
        con.execute("delete from identity.identifier_changes where change_seq <= ?", [min(seen)])
    return changed
