"""A short form of `make soak` in the regular suite: one hostile end-to-end run (hostile files, a
formula-injection customer, identifiers a masked display could give away) and the soak's privacy scan
of everything it wrote.  `make soak` runs the same functions with more rounds (tests/soak.py)."""

import hashlib
import random

import duckdb
import pytest

from tests import soak

pytestmark = pytest.mark.slow


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    from dagster_project.lib.demo.generator import generate_demo

    work = tmp_path_factory.mktemp("short_soak")
    generate_demo(work / "reference", customers=120, seed=5, end_date=soak.DEMO_END)
    tally = soak.Tally()
    d = soak.hostile_run(work / "reference", work, random.Random(0), files=3, tally=tally)
    return {"dir": d, "tally": tally, "log": (work / f"{d.name}.log").read_text(errors="replace")}


def test_hostile_run_survives_and_publishes(hostile):
    t = hostile["tally"]
    assert t.violations == [] and t.rows_lost == 0, (t.violations, t.notes)
    assert t.runs_survived == 1, t.notes  # published, so the scan below reads real outputs


def test_no_identifier_leaks_from_a_hostile_run(hostile):
    t = soak.Tally()
    result = soak.privacy_scan(hostile["dir"], t, {"hostile run log": hostile["log"]})
    assert result["leaks"] == [], result["leaks"][:10]
    assert result["scanned"]["serving tables"] > 10 and result["scanned"]["export files"] > 10
    assert t.leaked_identifiers == 0


def test_short_identifiers_are_masked_so_that_none_is_given_away(hostile):
    """The planted identifiers reached the identity map (so the scan above had them to find), and their
    displays follow the masking rule (docs/identity.md, "Privacy: how identifiers are shown")."""
    serving = hostile["dir"] / "serving" / "warehouse.duckdb"
    with duckdb.connect(str(serving), read_only=True) as con:
        shown = dict(
            con.execute(
                "select id_type || ' ' || identifier_sha256, identifier_display from marts.customer_identity_map "
                "where identifier_sha256 in (?, ?, ?)",
                [_sha(soak.SHORT_EMAIL), _sha(soak.EMAIL_AS_MEMBER_ID), _sha(soak.PHONE_AS_REFERENCE_ID)],
            ).fetchall()
        )
        masked = con.execute(
            "select email_masked from marts.dim_customers where email_masked like '%@ex.com' "
            "and email_masked not like '%=%'"
        ).fetchall()
    assert shown == {
        f"email {_sha(soak.SHORT_EMAIL)}": "***@ex.com",  # one-letter mailbox: nothing before @ shown
        f"email {_sha(soak.EMAIL_AS_MEMBER_ID)}": "***@ex.com",
        f"member_id {_sha(soak.EMAIL_AS_MEMBER_ID)}": "***@ex.com",  # an e-mail in an id column
        f"member_id {_sha(soak.PHONE_AS_REFERENCE_ID)}": "****99",  # a phone in an id column
    }
    assert ("***@ex.com",) in masked
