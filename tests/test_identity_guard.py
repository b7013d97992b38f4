"""Identity never merges people through a placeholder: the blocklist, the shared-identifier guard, the
key history, and full and incremental resolutions agreeing on adversarial records from every source."""

import random
from collections import defaultdict

import duckdb
import pytest

from dagster_project.lib import ingest
from dagster_project.lib.identity import blocklist as identity_blocklist, resolution

STORE_PHONE = "+1 415 555 0100"


def _con():
    con = duckdb.connect()
    ingest.create_raw_tables(con)
    return con


def _shopify(con, rows, file_id=1):
    """rows: (email, phone, billing_phone) per order."""
    start = con.execute("select count(*) from raw.shopify_order_lines").fetchone()[0]
    con.executemany(
        "insert into raw.shopify_order_lines (order_name, email, phone, billing_phone, _file_id, _line_number) "
        "values (?, ?, ?, ?, ?, ?)",
        [[f"#{start + i}", e, p, b, file_id, i + 2] for i, (e, p, b) in enumerate(rows)],
    )


def _keys(con) -> dict:
    return {
        (s, t, r): k
        for s, t, r, k in con.execute(
            "select source, id_type, raw_value, customer_key from identity.identifiers"
        ).fetchall()
    }


def _issue_rows():
    """The shop of the issue: 25 customers typed none@none.com (each with their own phone), 40 gave the
    store's phone (each with their own e-mail), and one order carries both."""
    rows = [("none@none.com", f"(212) 555-{1000 + i:04d}", None) for i in range(25)]
    rows += [(f"shopper{i}@mail.com", STORE_PHONE, None) for i in range(40)]
    rows += [("NONE@none.com ", STORE_PHONE, None)]
    return rows


def test_the_issues_shop_does_not_become_one_customer():
    con = _con()
    _shopify(con, _issue_rows())
    stats = resolution.resolve(con, "US")
    keys = _keys(con)
    assert keys[("shopify", "email", "none@none.com")] is None  # listed: it belongs to nobody
    assert keys[("shopify", "phone", STORE_PHONE)] is None  # shared by 40 people: blocked by the guard
    assert stats["people"] == 65  # 25 phones + 40 e-mails, each their own person
    assert len({k for k in keys.values() if k}) == 65
    blocked = dict(con.execute("select normalised_value, reason from identity.blocked_identifiers").fetchall())
    assert blocked == {"none@none.com": "listed", "+14155550100": "shared"}
    touched = dict(
        con.execute("select normalised_value, customers_touched from identity.blocked_identifiers").fetchall()
    )
    assert touched == {"none@none.com": 25, "+14155550100": 40}
    assert (stats["blocked_listed"], stats["blocked_shared"]) == (1, 1)


def test_a_store_phone_on_the_users_list_is_blocked_below_the_limit(tmp_path):
    (tmp_path / "identity").mkdir()
    (tmp_path / "identity" / "blocklist.yml").write_text(
        f"phone:\n  exact: ['{STORE_PHONE}']\nemail:\n  exact: [' Orders@MyShop.com ']\n"
    )
    blocklist = identity_blocklist.load("US", tmp_path)
    con = _con()
    # three people gave the store phone and the shop's own e-mail: under the limit, but listed
    _shopify(
        con,
        [(f"p{i}@mail.com", "415.555.0100", None) for i in range(3)]
        + [("orders@myshop.com", f"212-555-{2000 + i}", None) for i in range(3)],
    )
    stats = resolution.resolve(con, "US", blocklist=blocklist)
    assert stats["people"] == 6 and stats["blocked_listed"] == 2
    # without the user's list, the same records are two customers of three (under the limit of 5)
    assert resolution.resolve(con, "US", full=True)["people"] == 2


@pytest.mark.parametrize(
    "value,id_type,blocked",
    [
        ("none@none.com", "email", True),
        ("noemail@gmail.com", "email", True),
        ("No-Email@shop.co.uk", "email", True),
        ("test@test.com", "email", True),
        ("no@email.com", "email", True),
        ("na@na.com", "email", True),
        ("jane@example.com", "email", False),
        ("jane@shop.test", "email", True),
        ("x@mail.invalid", "email", True),
        ("null@yahoo.com", "email", True),
        ("nonesuch@gmail.com", "email", False),
        ("anna@na.org", "email", False),
        ("testa@gmail.com", "email", False),
        ("+1 212 555 1111", "phone", False),
        ("+44 7777 777777", "phone", True),  # one repeated digit
        ("+33 6 66 66 66 66", "phone", True),
        ("+91 98765 43210", "phone", True),  # a run of 9876543210
        ("+44 1234 567890", "phone", True),
        ("+44 20 7946 0958", "phone", False),  # a run of 1234567890
        ("+1 212 456 7890", "phone", False),
        ("+49 30 1234567", "phone", False),
    ],
)
def test_the_shipped_list(value, id_type, blocked):
    con = _con()
    if id_type == "email":
        _shopify(con, [(value, None, None), (value, "(212) 555-0199", None), (value, "(212) 555-0198", None)])
    else:
        _shopify(con, [(None, value, None), ("a1@mail.com", value, None), ("a2@mail.com", value, None)])
    resolution.resolve(con, "US")
    assert con.execute("select count(*) from identity.blocked_identifiers").fetchone()[0] == int(blocked)
    assert (len({k for k in _keys(con).values() if k}) == 2) == blocked  # blocked: the two others stay apart


def test_placeholders_in_every_source_and_a_chain_through_one():
    con = _con()
    # Square customers, the roster and a generic export all carry the same junk e-mail (and the roster the
    # store phone); every record has its own id.
    con.executemany(
        "insert into raw.square_customers (square_customer_id, email, phone) values (?, ?, ?)",
        [[f"SQ{i}", "noemail@noemail.com", None] for i in range(4)] + [["SQ9", None, "0000000000"]],
    )
    con.executemany(
        "insert into raw.members (member_id, email, phone) values (?, ?, ?)",
        [[f"M{i}", " NoEmail@NoEmail.com", STORE_PHONE] for i in range(7)],
    )
    con.executemany(
        "insert into raw.generic_order_lines (map_name, order_id, customer_id, email) values (?, ?, ?, ?)",
        [["shop", f"G{i}", f"{100 + i}.0", "noemail@noemail.com"] for i in range(5)],
    )
    # the chain: six people, each linked genuinely (a Square customer with their phone, an online order
    # with that phone and their e-mail), and all six Square customers typed the same junk e-mail
    con.executemany(
        "insert into raw.square_customers (square_customer_id, email, phone) values (?, ?, ?)",
        [[f"C{i}", "none@none.com", f"(212) 555-03{i:02d}"] for i in range(6)],
    )
    _shopify(con, [(f"chain{i}@mail.com", f"212.555.03{i:02d}", None) for i in range(6)])
    stats = resolution.resolve(con, "US")
    keys = _keys(con)
    ids = [
        k
        for (s, t, r), k in keys.items()
        if t in ("square_customer_id", "member_id", "source_customer_id") and not r.startswith("C")
    ]
    assert len(ids) == 4 + 1 + 7 + 5 and len(set(ids)) == len(ids) and None not in ids  # nobody merged
    assert keys[("members", "phone", STORE_PHONE)] is None  # shared by 7 members
    assert keys[("square_customers", "phone", "0000000000")] is None  # not a phone number at all
    for i in range(6):  # each person is whole: their Square id, phone and e-mail share one key
        assert (
            keys[("square_customers", "square_customer_id", f"C{i}")]
            == keys[("shopify", "email", f"chain{i}@mail.com")]
            == keys[("shopify", "phone", f"212.555.03{i:02d}")]
        )
    assert len({keys[("square_customers", "square_customer_id", f"C{i}")] for i in range(6)}) == 6
    assert stats["blocked_shared"] == 1


def test_a_store_phone_shared_by_hundreds_and_genuine_people_sharing_a_little():
    con = _con()
    rows = [(f"guest{i}@mail.com", STORE_PHONE, None) for i in range(400)]
    # genuine sharing: one person with three e-mails and one phone; a couple sharing a landline
    rows += [(f"me{i}@mail.com", "(212) 555-0142", None) for i in range(3)]
    rows += [("her@mail.com", "(212) 555-0143", "(917) 555-0101"), ("him@mail.com", "(212) 555-0143", None)]
    _shopify(con, rows)
    stats = resolution.resolve(con, "US")
    keys = _keys(con)
    assert keys[("shopify", "phone", STORE_PHONE)] is None
    assert len({keys[("shopify", "email", f"guest{i}@mail.com")] for i in range(400)}) == 400
    assert len({keys[("shopify", "email", f"me{i}@mail.com")] for i in range(3)}) == 1
    assert keys[("shopify", "email", "her@mail.com")] == keys[("shopify", "email", "him@mail.com")]
    assert stats["people"] == 400 + 1 + 1
    assert con.execute("select customers_touched from identity.blocked_identifiers").fetchone()[0] == 400


def _guard_oracle(records, region, max_shared, listed=frozenset()):
    """The guard in plain Python: (node -> customer_key, blocked node -> (customers touched, records)).  A
    node is blocked when listed or when the graph without the listed nodes and the nodes carried by more
    than max_shared distinct records shows it touching more than max_shared separate components (that
    count is the customers touched); people are the components without the blocked nodes."""
    recs = set()
    for rec in records:
        nodes = set()
        for id_type, raw in rec:
            v = resolution.normalise(id_type, raw, region)
            if v is not None:
                nodes.add(f"{id_type}:{v}")
        if nodes:
            recs.add(frozenset(nodes))
    count = defaultdict(int)
    for r in recs:
        for n in r:
            count[n] += 1
    removed = set(listed) | {n for n, c in count.items() if c > max_shared}

    def components(without):
        parent = {}

        def find(x):
            parent.setdefault(x, x)
            while parent[x] != x:
                x = parent[x]
            return x

        for r in recs:
            nodes = sorted(n for n in r if n not in without)
            for n in nodes:
                find(n)
            for n in nodes[1:]:
                a, b = find(nodes[0]), find(n)
                if a != b:
                    parent[max(a, b)] = min(a, b)
        return {n: find(n) for n in parent}

    first = components(removed)
    touched = {n: len({first[o] for r in recs if n in r for o in r if o != n and o in first}) for n in removed}
    blocked = set(listed) | {n for n in removed if touched[n] > max_shared}
    final = components(blocked)
    records = {n: count[n] for n in blocked}
    return (
        {n: resolution.customer_key_for(root) for n, root in final.items()},
        {n: (touched[n], records[n]) for n in blocked},
    )


def _random_records(rng, n):
    emails = [f"p{i}@ex.com" for i in range(n // 2)] + ["none@none.com"]
    phones = [f"(415) 263-{i:04d}" for i in range(n // 3)] + [STORE_PHONE] * 30
    return [[("email", rng.choice(emails)), ("phone", rng.choice(phones))][: rng.randint(1, 2)] for _ in range(n)]


def _node_keys(con) -> dict:
    return dict(con.execute("select node, 'c_' || left(sha256(root), 16) from identity.node_roots").fetchall())


@pytest.mark.parametrize("seed", [1, 2])
def test_full_and_incremental_resolutions_equal_a_plain_guard(seed):
    rng = random.Random(seed)
    batches = [_random_records(rng, n) for n in (1200, 200, 5, 300)]
    con = _con()
    seen = []
    forced = 0
    for file_id, batch in enumerate(batches, start=1):
        _shopify(con, [(dict(r).get("email"), dict(r).get("phone"), None) for r in batch], file_id)
        seen += batch
        stats = resolution.resolve(con, "US")
        forced += stats["guard_forced_full"]
        want, blocked = _guard_oracle(seen, "US", resolution.DEFAULT_MAX_SHARED, {"email:none@none.com"})
        assert _node_keys(con) == want
        assert {r[0] for r in con.execute("select node from identity.blocked_identifiers").fetchall()} == set(blocked)
        incremental = (_keys(con), _node_keys(con))
        assert resolution.resolve(con, "US", full=True)["incremental"] == 0
        assert (_keys(con), _node_keys(con)) == incremental  # a full resolution of the same rows: the same keys
        assert {
            n: (t, r)
            for n, t, r in con.execute(
                "select node, customers_touched, records from identity.blocked_identifiers"
            ).fetchall()
        } == blocked
    assert "phone:+14155550100" in blocked


def test_an_identifier_that_becomes_shared_splits_what_it_joined_and_the_history_says_so():
    con = _con()
    # day 1: three people gave the store phone (under the limit): merged into one key; two others apart
    _shopify(
        con,
        [(f"p{i}@mail.com", STORE_PHONE, None) for i in range(3)]
        + [("other@mail.com", "(212) 555-0177", None), ("solo@mail.com", None, None)],
        1,
    )
    resolution.resolve(con, "US")
    before = _keys(con)
    assert len({before[("shopify", "email", f"p{i}@mail.com")] for i in range(3)}) == 1
    # day 2: four more people give the store phone; day 3 another order of the untouched customer
    _shopify(con, [(f"q{i}@mail.com", STORE_PHONE, None) for i in range(4)], 2)
    stats = resolution.resolve(con, "US")
    assert stats["guard_forced_full"] == 1 and stats["blocked_shared"] == 1
    after = _keys(con)
    assert after[("shopify", "phone", STORE_PHONE)] is None
    assert (
        len({after[("shopify", "email", f"{c}{i}@mail.com")] for c, n in (("p", 3), ("q", 4)) for i in range(n)}) == 7
    )
    for untouched in (
        ("shopify", "email", "other@mail.com"),
        ("shopify", "phone", "(212) 555-0177"),
        ("shopify", "email", "solo@mail.com"),
    ):
        assert after[untouched] == before[untouched]
    events = con.execute(
        "select event, customer_key, previous_keys, cause_id_type, cause_value, cause "
        "from identity.key_events where change_seq = 2"
    ).fetchall()
    old_key = before[("shopify", "email", "p0@mail.com")]
    assert events and all(prev == old_key for _, _, prev, *_ in events)
    assert {(e, t, v, c) for e, _, _, t, v, c in events} <= {
        ("split", "phone", "+14155550100", "identifier blocked"),
        ("dissolved", "phone", "+14155550100", "identifier blocked"),
    }
    # one row per key the old customer was split into (the one keeping its smallest identifier keeps its key)
    assert sorted(k for _, k, *_ in events) == sorted(after[("shopify", "email", f"p{i}@mail.com")] for i in range(3))
    assert after[("shopify", "email", "p0@mail.com")] == old_key
    # the orders to re-key: every raw value whose key changed is in the change log
    logged = set(
        con.execute(
            "select source, id_type, raw_value from identity.identifier_changes where change_seq = 2"
        ).fetchall()
    )
    assert {k for k in after if after[k] != before.get(k, "new")} <= logged


def test_a_merge_is_recorded_with_the_identifier_that_caused_it():
    con = _con()
    _shopify(con, [("a@mail.com", "(212) 555-0111", None), ("b@mail.com", "(212) 555-0122", None)], 1)
    resolution.resolve(con, "US")
    before = _keys(con)
    _shopify(con, [("b@mail.com", "(212) 555-0111", None)], 2)  # one order links them
    assert resolution.resolve(con, "US")["incremental"] == 1
    event, key, prev, cause = con.execute(
        "select event, customer_key, previous_keys, cause from identity.key_events where change_seq = 2"
    ).fetchone()
    assert event == "merge" and cause == "linked by new records"
    assert set(prev.split(",")) == {
        before[("shopify", "email", "a@mail.com")],
        before[("shopify", "email", "b@mail.com")],
    }
    assert key == _keys(con)[("shopify", "email", "a@mail.com")]


def test_a_newly_listed_identifier_forces_a_full_resolution(tmp_path):
    con = _con()
    _shopify(
        con,
        [
            ("a@mail.com", "(212) 555-0111", None),
            ("b@mail.com", "(212) 555-0111", None),
            ("c@mail.com", "(212) 555-0133", None),
        ],
        1,
    )
    resolution.resolve(con, "US", blocklist=identity_blocklist.load("US", tmp_path))
    before = _keys(con)
    (tmp_path / "identity").mkdir()
    (tmp_path / "identity" / "blocklist.yml").write_text("phone:\n  exact: ['212-555-0111']\n")
    stats = resolution.resolve(con, "US", blocklist=identity_blocklist.load("US", tmp_path))
    assert stats["incremental"] == 0 and stats["blocked_listed"] == 1
    after = _keys(con)
    assert after[("shopify", "email", "a@mail.com")] != after[("shopify", "email", "b@mail.com")]
    assert after[("shopify", "email", "c@mail.com")] == before[("shopify", "email", "c@mail.com")]
    assert (
        con.execute("select count(*) from identity.key_events where change_seq = 2 and event = 'split'").fetchone()[0]
        >= 1
    )


@pytest.mark.parametrize(
    "text,message",
    [
        ("phone:\n  patterns: ['(unclosed']\n", "phone.patterns[0]"),
        ("email:\n  exact: ['not an e-mail']\n", "email.exact[0]"),
        ("fax:\n  exact: ['1']\n", "unknown identifier type 'fax'"),
        ("email:\n  local_parts: [null]\n", "email.local_parts[0]"),
        ("phone:\n  min_national_digits: many\n", "phone.min_national_digits"),
    ],
)
def test_a_malformed_blocklist_names_the_file_and_the_entry(tmp_path, text, message):
    (tmp_path / "identity").mkdir()
    (tmp_path / "identity" / "blocklist.yml").write_text(text)
    with pytest.raises(ValueError, match=r"blocklist\.yml") as err:
        identity_blocklist.load("US", tmp_path)
    assert message in str(err.value)


def test_the_limit_setting():
    from dagster_project.lib.config import max_shared_setting

    assert max_shared_setting("") == resolution.DEFAULT_MAX_SHARED
    assert max_shared_setting("12") == 12
    with pytest.raises(ValueError, match="PIPELINE_IDENTITY_MAX_SHARED"):
        max_shared_setting("0")


def test_an_identifier_no_longer_blocked_merges_again_and_the_history_says_so():
    con = _con()
    rows = [(f"p{i}@mail.com", STORE_PHONE, None) for i in range(7)]
    _shopify(con, rows)
    assert resolution.resolve(con, "US")["people"] == 7  # 7 > 5: the store phone links nobody
    stats = resolution.resolve(con, "US", max_shared=10)  # a new limit: resolved in full
    assert stats["incremental"] == 0 and stats["people"] == 1 and stats["blocked_shared"] == 0
    events = con.execute(
        "select event, cause_value, cause, previous_keys from identity.key_events where change_seq = 2"
    ).fetchall()
    assert [(e, v, c) for e, v, c, _ in events] == [("merge", "+14155550100", "identifier no longer blocked")]
    assert len(events[0][3].split(",")) == 7
