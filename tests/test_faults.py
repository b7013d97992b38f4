"""Fault and abuse suite, small rounds (the same code as `make soak`, see tests/soak.py).

Round counts: FAULTS_CRASH_STAGES (comma list of stages to kill runs in, default "ingestion,dbt"),
FAULTS_HOSTILE_EXAMPLES (Hypothesis examples through the ingestion layer, default 60).
"""

import os
import random

import duckdb
import pytest

from tests import soak

pytestmark = pytest.mark.slow

CRASH_STAGES = [s for s in os.environ.get("FAULTS_CRASH_STAGES", "ingestion,dbt").split(",") if s]
HOSTILE_EXAMPLES = int(os.environ.get("FAULTS_HOSTILE_EXAMPLES", 60))


@pytest.fixture(scope="module")
def reference(demo_run):
    """The session's clean run on demo data (tests/conftest.py), as of soak.AS_OF."""
    assert demo_run["result"].success
    return demo_run["data_dir"]


@pytest.fixture(scope="module")
def crashed(reference, tmp_path_factory):
    """Runs killed (SIGKILL) in each of CRASH_STAGES, then a run to completion, on the reference inputs."""
    tally = soak.Tally()
    work = tmp_path_factory.mktemp("crash")
    d = soak.crash_suite(
        reference,
        work,
        len(CRASH_STAGES),
        random.Random(7),
        tally,
        stages=CRASH_STAGES,
        complete_every=len(CRASH_STAGES) + 1,
    )
    return {"dir": d, "tally": tally, "work": work}


def test_killed_runs_leave_published_outputs_untouched_and_the_next_run_recovers(crashed):
    t = crashed["tally"]
    assert t.violations == [], t.violations
    assert t.faults_injected == len(CRASH_STAGES), dict(t.outcomes)
    # each kill landed in its stage, or (the random delay) in the stage right after it; a violation
    # above if a child of a killed run (dbt) outlived it
    order = soak.STAGE_ORDER
    for aimed, landed in t.landings:
        assert order.index(aimed) <= order.index(landed) <= order.index(aimed) + 1, t.landings
    assert t.outcomes["published outputs byte-identical"] == len(CRASH_STAGES)
    assert t.runs_survived == 1 and t.rows_lost == 0  # marts equal the clean run's: no duplicate or lost rows


def test_publish_swap_killed_at_every_step_is_untouched_or_rolled_forward(reference, tmp_path):
    t = soak.Tally()
    soak.publish_window_suite(reference, tmp_path, t)
    assert t.violations == [], t.violations
    assert t.faults_injected == len(soak.PUBLISH_FAULT_POINTS)
    assert t.outcomes == {
        "published outputs byte-identical": 1,
        "killed after the commit point, rolled forward": len(soak.PUBLISH_FAULT_POINTS) - 1,
    }


def test_rerun_on_the_same_inputs_gives_identical_marts_and_tier_files(reference, crashed):
    # the crash directory's last run read the same inputs, after a different history (killed runs)
    t = soak.Tally()
    result = soak.determinism_check(reference, crashed["dir"], t)
    assert result == {"mart_differences": {}, "tier_file_differences": []}
    with duckdb.connect(str(crashed["dir"] / "serving" / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from marts.dim_customers").fetchone()[0] > 100  # compared something


def test_no_raw_identifier_leaks_into_logs_events_or_exports(reference, crashed):
    t = soak.Tally()
    logs = {p.name: p.read_text(errors="replace") for p in crashed["work"].glob("*.log")}
    for d in (reference, crashed["dir"]):
        result = soak.privacy_scan(d, t, logs if d == crashed["dir"] else None)
        assert result["leaks"] == [], result["leaks"][:10]
        assert result["identifiers"]["emails"] > 100 and result["identifiers"]["phones"] > 100
        assert result["scanned"]["dagster events"] > 100 and result["scanned"]["export files"] > 10
        # the scanner does find identifiers: the consented contact fields of the tier lists
        assert result["scanned"]["consented contact cells (allowed)"] > 10
    assert t.leaked_identifiers == 0


def test_hostile_files_never_crash_ingestion_and_lose_no_rows():
    t = soak.Tally()
    soak.hostile_suite(HOSTILE_EXAMPLES, t, seed=0)
    assert t.notes == [] and t.violations == [], (t.notes, t.violations[:3])
    assert t.bad_inputs_tried >= HOSTILE_EXAMPLES and t.rows_lost == 0


def test_hostile_generator_reaches_every_kind_of_damage():
    """The property test above is only as good as its generator: it must produce each kind of file."""
    seen = set()
    rng = random.Random(1)
    for _ in range(400):
        f = soak.make_hostile_file(rng)
        seen.update(part for part in f["desc"].split() if part.split(":")[0] in ("header", "delim", "enc", "mangled"))
        seen.add("intact" if f["expected_rows"] is not None else "mangled")
    for want in (
        "header:drop_required",
        "header:duplicate",
        "header:extra",
        "delim:';'",
        "enc:utf-16",
        "enc:cp1252",
        "mangled:truncate",
        "mangled:junk_only",
        "mangled:nul_bytes",
        "intact",
    ):
        assert want in seen, want


def test_header_with_unnamed_columns_loads(tmp_path):
    """Found by the hostile-file property: a trailing comma in the header rejected the whole file."""
    from dagster_project.lib import ingest

    inbox = tmp_path / "inbox"
    p = inbox / "spend" / "trailing_comma.csv"
    p.parent.mkdir(parents=True)
    p.write_text("month,channel,spend,currency,\n2026-01,google,10.00,USD,\n2026-02,,x,USD,\n")
    con = duckdb.connect()
    ingest.create_raw_tables(con)
    res = ingest.load_file(con, p, "spend", "r1", display_root=inbox, data_root=tmp_path)
    assert (res.status, res.rows_read, res.rows_loaded, res.rows_quarantined) == ("loaded", 2, 1, 1)


# Contact values that start with a formula character but are data: written as they are.
VALID_CONTACTS = [
    "+17733382504",
    "+447911123456",
    "+8801795326165",
    "-jane@example.com",
    "+tag@shop.co.uk",
    "+1 773 338 2504",
    "+1773",
    "=1+1@x.com",
    "+(773)3382504",
]


def test_valid_phones_and_emails_are_written_as_they_are():
    """A valid E.164 phone or plain e-mail can never be a formula: no quote; anything else that starts
    with a formula character (a spaced phone, too few digits, an e-mail with '=') is still prefixed."""
    import pandas as pd

    from dagster_project.lib.export.tiers import neutralise_formulas

    out = list(neutralise_formulas(pd.DataFrame({"v": pd.Series(VALID_CONTACTS, dtype=object)}))["v"])
    assert out == [
        "+17733382504",
        "+447911123456",
        "+8801795326165",
        "-jane@example.com",
        "+tag@shop.co.uk",
        "'+1 773 338 2504",
        "'+1773",
        "'=1+1@x.com",
        "'+(773)3382504",
    ]


def test_formula_cells_are_neutralised_for_any_text():
    import pandas as pd
    from hypothesis import given, settings, strategies as st

    from dagster_project.lib.export.tiers import FORMULA_START, is_formula, neutralise_formulas

    @settings(max_examples=200, deadline=None, database=None, derandomize=True)
    @given(st.lists(st.one_of(st.text(), st.sampled_from(soak.FORMULAS), st.none()), min_size=1, max_size=20))
    def prop(values):
        out = neutralise_formulas(pd.DataFrame({"name": pd.Series(values, dtype=object)}))
        for before, after in zip(values, out["name"], strict=False):
            if isinstance(before, str) and before.startswith(FORMULA_START) and is_formula(before):
                assert after == "'" + before
            else:
                assert after == before or (before is None and pd.isna(after))

    prop()


def test_sql_formula_neutraliser_agrees_with_python():
    """The tier CSVs are written by DuckDB (tiers.neutralised_sql); it must neutralise exactly what the
    Python rule does, for any text."""
    import duckdb
    import pandas as pd
    from hypothesis import given, settings, strategies as st

    from dagster_project.lib.export.tiers import neutralise_formulas, neutralised_sql

    con = duckdb.connect()

    @settings(max_examples=200, deadline=None, database=None, derandomize=True)
    @given(
        st.lists(
            st.one_of(
                st.text().filter(lambda t: "\x00" not in t),
                st.sampled_from(soak.FORMULAS),
                st.sampled_from(VALID_CONTACTS),
                st.none(),
            ),
            min_size=1,
            max_size=20,
        )
    )
    def prop(values):
        expected = list(neutralise_formulas(pd.DataFrame({"v": pd.Series(values, dtype=object)}))["v"])
        got = [
            r[0]
            for r in con.execute(
                f"select {neutralised_sql('v')} from (select unnest(?::varchar[]) as v, "
                f"generate_subscripts(?::varchar[], 1) as i) order by i",
                [values, values],
            ).fetchall()
        ]
        assert [None if pd.isna(e) else e for e in expected] == got

    prop()
