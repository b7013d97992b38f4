"""Identifier normalisation and transitive merging."""

import os
import random

import duckdb
import pytest
from hypothesis import given, settings, strategies as st

from dagster_project.lib import ingest
from dagster_project.lib.identity import resolution


@pytest.mark.parametrize(
    "raw,region,expected",
    [
        ("+8801795326165", "BD", "+8801795326165"),
        ("+88001795326165", "BD", "+8801795326165"),  # trunk 0 written after the country code
        ("01795326165", "BD", "+8801795326165"),  # national form
        ("+1 (415) 263-0134", "US", "+14152630134"),
        ("415.263.0134", "US", "+14152630134"),
        ("1 415 263 0134", "US", "+14152630134"),
        ("0014152630134", "US", "+14152630134"),  # 00 international prefix
        # the national trunk prefix kept after the country code, in the shapes real exports carry
        ("+880 01795-326165", "US", "+8801795326165"),
        ("+880 (0)1795 326165", "US", "+8801795326165"),
        ("+44 (0)7911 123456", "US", "+447911123456"),
        ("+44 (0) 20 7946 0958", "US", "+442079460958"),
        ("+4407911123456", "US", "+447911123456"),
        ("+57 03211234567", "US", "+573211234567"),  # phonenumbers alone does not strip this one
        ("+39 06 1234 5678", "US", "+390612345678"),  # Italy keeps its 0: no trunk prefix to drop
        ("+880 0", "US", None),
        ("123", "US", None),
        ("", "US", None),
        ("n/a", "US", None),
    ],
)
def test_normalise_phone(raw, region, expected):
    assert resolution.normalise_phone(raw, region) == expected


def test_trunk_prefix_spellings_of_one_phone_are_one_customer():
    """A cash-on-delivery shop's orders carry phones only, written with and without the trunk prefix
    after the country code: one person, one customer."""
    con = duckdb.connect()
    ingest.create_raw_tables(con)
    con.executemany(
        "insert into raw.shopify_order_lines (order_name, billing_phone) values (?, ?)",
        [
            ["#1", "+880 01712-345678"],
            ["#2", "+8801712345678"],
            ["#3", "+880 (0)1712 345678"],
            ["#4", "+880 01812-345678"],
        ],
    )
    resolution.resolve(con, "US")
    keys = dict(con.execute("select raw_value, customer_key from identity.identifiers").fetchall())
    assert keys["+880 01712-345678"] == keys["+8801712345678"] == keys["+880 (0)1712 345678"] is not None
    assert keys["+880 01812-345678"] not in (None, keys["+8801712345678"])


def test_different_numbers_do_not_match():
    assert resolution.normalise_phone("415-263-0134", "US") != resolution.normalise_phone("415-263-0135", "US")


@pytest.mark.parametrize(
    "raw,expected",
    [
        (" Jane.Doe@Example.COM ", "jane.doe@example.com"),
        ("not-an-email", None),
        ("a@b", None),
    ],
)
def test_normalise_email(raw, expected):
    assert resolution.normalise_email(raw) == expected


def test_transitive_merge_and_stable_keys():
    con = duckdb.connect()
    ingest.create_raw_tables(con)
    # A: e-mail x + phone p; B: phone p (other form) + e-mail y; Square customer: e-mail y + id S1;
    # store sales carry S1 only.  All one person.  D is someone else.
    con.execute(
        "insert into raw.shopify_order_lines (order_name, email, phone) values "
        "('#1', 'x@ex.com', '(415) 263-0134'), ('#2', 'Y@ex.com', '+1 415 263 0134'), "
        "('#3', 'd@ex.com', NULL)"
    )
    con.execute("insert into raw.square_customers (square_customer_id, email) values ('S1', ' y@ex.com ')")
    con.execute("insert into raw.square_item_lines (transaction_id, customer_id) values ('T1', 'S1')")
    stats = resolution.resolve(con, "US")
    keys = dict(con.execute("select raw_value, customer_key from identity.identifiers").fetchall())
    assert keys["x@ex.com"] == keys["Y@ex.com"] == keys["S1"] == keys["(415) 263-0134"]
    assert keys["d@ex.com"] != keys["x@ex.com"]
    assert stats["people"] == 2
    first = keys["x@ex.com"]
    resolution.resolve(con, "US")  # re-run: same key
    assert (
        con.execute("select customer_key from identity.identifiers where raw_value = 'x@ex.com'").fetchone()[0] == first
    )


# --------------------------------------------------------------------------------------------
# set-based resolution: equal to a plain union-find, cached normalisation, parallel phones
# --------------------------------------------------------------------------------------------

VALID_PHONES = [
    "4152630134",
    "+14152630134",
    "0014152630134",
    "+442079460958",
    "02079460958",
    "+44(0)2079460958",
    "01795326165",
    "+88001795326165",
    "+4930123456",
    "0612345678",
]


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(VALID_PHONES),
    st.lists(st.tuples(st.integers(0, 20), st.sampled_from(" ()-./")), max_size=5),
    st.sampled_from(["US", "GB", "BD", "DE", "FR"]),
)
def test_phone_signature_normalises_like_the_spelling(number, inserts, region):
    raw = list(number)
    for pos, ch in inserts:
        raw.insert(min(pos, len(raw)), ch)
    spelling = "".join(raw)
    assert resolution.normalise_phone(resolution.phone_signature(spelling), region) == resolution.normalise_phone(
        spelling, region
    )


def _oracle(records: list[list[tuple[str, str]]], region: str) -> dict[tuple[str, str], str | None]:
    """A plain union-find over the records' normalised identifiers: (id_type, raw) -> customer_key."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            x = parent[x]
        return x

    norm = {}
    for rec in records:
        nodes = []
        for id_type, raw in rec:
            value = resolution.normalise(id_type, raw, region)
            norm[(id_type, raw)] = value
            if value is not None:
                nodes.append(f"{id_type}:{value}")
        for n in nodes[1:]:
            a, b = find(nodes[0]), find(n)
            if a != b:
                parent[max(a, b)] = min(a, b)  # the smallest node is the root
        for n in nodes[:1]:
            find(n)
    return {k: (resolution.customer_key_for(find(f"{k[0]}:{v}")) if v else None) for k, v in norm.items()}


def _random_records(rng: random.Random, n: int) -> list[list[tuple[str, str]]]:
    emails = [f"p{i}@ex.com" for i in range(n // 2)] + ["not-an-email"]
    phones = [f"(415) 263-{i:04d}" for i in range(n // 3)] + ["12"]
    return [
        [
            ("email", rng.choice(emails).upper() if rng.random() < 0.2 else rng.choice(emails)),
            ("phone", rng.choice(phones)),
        ][: rng.randint(1, 2)]
        for _ in range(n)
    ]


def _load_shopify(con, records):
    con.execute("delete from raw.shopify_order_lines")
    con.executemany(
        "insert into raw.shopify_order_lines (order_name, email, phone) values (?, ?, ?)",
        [[f"#{i}", dict(r).get("email"), dict(r).get("phone")] for i, r in enumerate(records)],
    )


# Random records form a random graph in which some identifiers do join many separate people; the plain
# union-find comparisons lift the shared-identifier limit (test_identity_guard.py holds the guard).
NO_LIMIT = 10**9


@pytest.mark.parametrize("batch", [250_000, 97])  # 97: new values normalised over many batches
def test_resolution_equals_a_plain_union_find(monkeypatch, batch):
    monkeypatch.setattr(resolution, "_BATCH", batch)
    rng = random.Random(7)
    records = _random_records(rng, 3000)
    con = duckdb.connect()
    ingest.create_raw_tables(con)
    _load_shopify(con, records)
    stats = resolution.resolve(con, "US", max_shared=NO_LIMIT)
    got = {
        (t, r): k
        for t, r, k in con.execute("select id_type, raw_value, customer_key from identity.identifiers").fetchall()
    }
    want = _oracle(records, "US")
    assert got == want
    assert stats["people"] == len({k for k in want.values() if k})
    assert stats["invalid_values"] == sum(1 for k in want.values() if k is None)


def test_normalisations_are_cached_and_recomputed_when_they_may_differ(monkeypatch):
    con = duckdb.connect()
    ingest.create_raw_tables(con)
    _load_shopify(con, [[("email", "a@ex.com"), ("phone", "020 7946 0958")]])
    assert resolution.resolve(con, "GB")["newly_normalised_values"] == 2
    assert resolution.resolve(con, "GB")["newly_normalised_values"] == 0  # the next day: nothing new
    assert (
        con.execute("select normalised_value from identity.identifiers where id_type = 'phone'").fetchone()[0]
        == "+442079460958"
    )
    # another default region reads the same spelling differently: not taken from the cache
    assert resolution.resolve(con, "US")["newly_normalised_values"] == 2
    assert (
        con.execute("select normalised_value from identity.identifiers where id_type = 'phone'").fetchone()[0] is None
    )
    monkeypatch.setattr(resolution, "NORMALISER_VERSION", resolution.NORMALISER_VERSION + 1)
    assert resolution.resolve(con, "US")["newly_normalised_values"] == 2


def test_parallel_phone_normalisation_equals_serial(monkeypatch):
    spellings = [f"+1 (415) 263-{i:04d}" for i in range(300)] + ["n/a", "+44 20 7946 0958"]
    serial = [resolution.normalise_phone(s, "US") for s in spellings]
    monkeypatch.setattr(resolution, "_PARALLEL_FROM", 10)
    with resolution._phone_pool(len(spellings)) as pool:
        assert pool is not None or (os.cpu_count() or 1) < 2
        assert resolution._normalise_phones(spellings, "US", pool) == serial


def test_customer_key_in_sql_equals_python():
    con = duckdb.connect()
    ingest.create_raw_tables(con)
    _load_shopify(con, [[("email", "a@ex.com")]])
    resolution.resolve(con, "US")
    assert con.execute("select customer_key from identity.identifiers").fetchone()[0] == resolution.customer_key_for(
        "email:a@ex.com"
    )


# --------------------------------------------------------------------------------------------
# incremental resolution: only the newly loaded files' records, same result as a full one
# --------------------------------------------------------------------------------------------


def _append_file(con, records, file_id: int) -> None:
    """Shopify rows as ingestion appends them: one file id per export."""
    if not records:
        return  # an export with no rows
    con.executemany(
        "insert into raw.shopify_order_lines (order_name, email, phone, _file_id, _line_number) values (?, ?, ?, ?, ?)",
        [
            [f"#{file_id}-{i}", dict(r).get("email"), dict(r).get("phone"), file_id, i + 2]
            for i, r in enumerate(records)
        ],
    )


def _identifiers(con) -> set:
    return set(
        con.execute(
            "select source, id_type, raw_value, normalised_value, customer_key from identity.identifiers"
        ).fetchall()
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_resolution_equals_full_and_a_plain_union_find(seed):
    rng = random.Random(seed)
    batches = [_random_records(rng, n) for n in (1500, 300, 1, 0, 400)]
    con = duckdb.connect()
    ingest.create_raw_tables(con)
    seen = []
    for file_id, batch in enumerate(batches, start=1):
        _append_file(con, batch, file_id)
        seen += batch
        before = _identifiers(con) if file_id > 1 else set()
        stats = resolution.resolve(con, "US", max_shared=NO_LIMIT)
        assert stats["incremental"] == (file_id > 1)
        got = _identifiers(con)
        want = _oracle(seen, "US")
        assert {(t, r): k for _, t, r, _, k in got} == want
        assert stats["people"] == len({k for k in want.values() if k})
        if file_id == 1:
            continue  # the first resolution is logged as a full change (every order re-keyed)
        # the change log names exactly the identifiers that are new or re-keyed
        logged = set(
            con.execute(
                "select source, id_type, raw_value from identity.identifier_changes "
                "where change_seq = (select max(change_seq) from identity.resolution_runs)"
            ).fetchall()
        )
        old = {(s, t, r): k for s, t, r, _, k in before}
        assert logged == {(s, t, r) for s, t, r, _, k in got if (s, t, r) not in old or old[(s, t, r)] != k}
        assert stats["identifiers_changed"] == len(logged)
    assert any(
        s > 0
        for s in con.execute(
            "select identifiers_changed from identity.resolution_runs where not full_change"
        ).fetchall()[0]
    )
    # a full resolution of the same rows gives the same identifiers and roots
    incremental = _identifiers(con), set(con.execute("select * from identity.node_roots").fetchall())
    assert resolution.resolve(con, "US", full=True, max_shared=NO_LIMIT)["incremental"] == 0
    assert (_identifiers(con), set(con.execute("select * from identity.node_roots").fetchall())) == incremental


def test_incremental_resolution_falls_back_to_full_when_its_assumptions_break():
    con = duckdb.connect()
    ingest.create_raw_tables(con)
    _append_file(con, [[("email", "a@ex.com"), ("phone", "(415) 263-0134")]], 1)
    assert resolution.resolve(con, "US")["incremental"] == 0  # nothing resolved before
    _append_file(con, [[("email", "b@ex.com"), ("phone", "(415) 263-0134")]], 2)
    assert resolution.resolve(con, "US")["incremental"] == 1
    # rows resolved before are gone: the graph may have split, so everything is resolved again
    con.execute("delete from raw.shopify_order_lines where _file_id = 1")
    assert resolution.resolve(con, "US")["incremental"] == 0
    keys = dict(con.execute("select raw_value, customer_key from identity.identifiers").fetchall())
    assert keys["b@ex.com"] == keys["(415) 263-0134"]
    assert resolution.resolve(con, "US")["incremental"] == 1
    # another phone region reads phone numbers differently
    assert resolution.resolve(con, "GB")["incremental"] == 0
    # rows that ingestion did not load (no file id): nothing tells which are new
    con.execute("insert into raw.shopify_order_lines (order_name, email) values ('#x', 'c@ex.com')")
    assert resolution.resolve(con, "GB")["incremental"] == 0


def test_change_log_is_kept_until_every_consumer_has_seen_it():
    """identity.identifier_changes feeds three incremental dbt models (int_orders_identified,
    int_customer_contacts and customer_identity_map); a change is dropped only once all were built past
    it. Resolutions record whether they were full (the map and the contacts rebuild after one)."""
    con = duckdb.connect()
    ingest.create_raw_tables(con)
    con.execute("create schema if not exists intermediate; create schema if not exists marts")

    def logged():
        return [
            r[0]
            for r in con.execute("select distinct change_seq from identity.identifier_changes order by 1").fetchall()
        ]

    for file_id in (1, 2, 3):
        _append_file(con, [[("email", f"p{file_id}@ex.com")]], file_id)
        resolution.resolve(con, "US")
    assert logged() == [2, 3]  # no consumer built yet: nothing trimmed (seq 1 was a full change, no rows)
    assert con.execute("select change_seq, full_resolution from identity.resolution_runs order by 1").fetchall() == [
        (1, True),
        (2, False),
        (3, False),
    ]
    con.execute("create table intermediate.int_orders_identified as select 3 as identity_change_seq")
    con.execute("create table intermediate.int_customer_contacts as select 3 as identity_change_seq")
    con.execute("create table marts.customer_identity_map as select 2 as identity_change_seq")
    _append_file(con, [[("email", "p4@ex.com")]], 4)
    resolution.resolve(con, "US")
    assert logged() == [3, 4]  # the slowest consumer saw up to 2
    _append_file(con, [[("email", "p5@ex.com")]], 5)
    resolution.resolve(con, "US")
    assert logged() == [3, 4, 5]
    con.execute("update marts.customer_identity_map set identity_change_seq = 5")
    con.execute("update intermediate.int_orders_identified set identity_change_seq = 5")
    resolution.resolve(con, "US", full=True)
    assert logged() == [4, 5]  # the contacts saw up to 3; a full resolution of the same rows changes nothing
    assert con.execute("select full_resolution from identity.resolution_runs where change_seq = 6").fetchone()[0]
    con.execute("update intermediate.int_customer_contacts set identity_change_seq = 6")
    _append_file(con, [[("email", "p6@ex.com")]], 6)
    resolution.resolve(con, "US")
    assert con.execute(
        "select change_seq, full_resolution from identity.resolution_runs where change_seq >= 6 order by 1"
    ).fetchall() == [(6, True), (7, False)]
    assert logged() == [7]  # every consumer saw 5 or later


def test_identifier_registry_is_the_one_declaration(tmp_path):
    """Identity resolution reads its sources from the registry the dbt models read (var identifier_registry
    in dbt_project.yml); the models keep no list of their own."""
    from dagster_project.lib.paths import DBT_PROJECT_DIR

    registry = resolution.identifier_registry()
    con = duckdb.connect()
    con.execute("create schema raw")
    for entry in registry["sources"]:
        con.execute(f"create table raw.{entry['raw_table']} (x integer)")
    queries = resolution.source_queries(con)
    assert [(q.source, q.table) for q in queries] == [(e["source"], e["raw_table"]) for e in registry["sources"]]
    for q, entry in zip(queries, registry["sources"], strict=False):
        assert [t for t, _ in q.columns] == [i["id_type"] for i in entry["identifiers"]]
        assert q.select == ", ".join(i["raw"] for i in entry["identifiers"])
    # every kind's normaliser, as the registry names it
    assert resolution.normalise("email", " Jo@Example.COM ", "US") == "jo@example.com"
    assert resolution.normalise("phone", "(415) 263-0134", "US") == "+14152630134"
    assert resolution.normalise("member_id", " M-1 ", "US") == "M-1"
    assert resolution.normalise("source_customer_id", "retail:17850.0", "US") == "retail:17850"
    with pytest.raises(KeyError):
        resolution.normalise("loyalty_card", "x", "US")  # not a declared kind
    for model in (
        "intermediate/int_orders_identified.sql",
        "intermediate/int_customer_contacts.sql",
        "marts/customer_identity_links.sql",
    ):
        sql = (DBT_PROJECT_DIR / "models" / model).read_text()
        assert "identifier_sources(" in sql or "order_identifiers()" in sql, model
        for literal in ("'square_items'", "'members'", "'stg_members__members'", "'square_customers'", "= 'shopify'"):
            assert literal not in sql, (model, literal)
