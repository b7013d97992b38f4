"""Write-audit-publish: checks gate publishing; readers, consent, hashes and tier changes."""

import csv
import hashlib
import json
import os
import re
from datetime import date

import duckdb
import pandas as pd
import pytest

from dagster_project.cli import main
from dagster_project.lib.demo.generator import generate_demo
from dagster_project.lib.export import publish
from dagster_project.lib.ingest import formats
from tests.soak import Tally, neutralised, plant_formula_customer, readers_suite
from tests.test_ingest import square_row, write_csv

pytestmark = pytest.mark.slow


def _snapshot(data_dir):
    files = {p.relative_to(data_dir): p.read_bytes() for p in (data_dir / "exports").rglob("*") if p.is_file()}
    files["serving"] = (data_dir / "serving" / "warehouse.duckdb").read_bytes()
    for p in (data_dir / "serving" / "marts").glob("*.parquet"):
        files[p.relative_to(data_dir)] = p.read_bytes()
    return files


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("publish")
    generate_demo(data_dir, customers=400, seed=3, end_date=date(2026, 10, 31))
    plant_formula_customer(data_dir / "inbox")  # a consenting one-time buyer whose e-mail is a formula
    assert main(["run", "--data-dir", str(data_dir), "--as-of", "2026-11-01", "--quiet"]) == 0
    return data_dir


def test_planted_bad_mart_value_blocks_publishing(published, tmp_path, capsys):
    import shutil

    data_dir = tmp_path / "d"
    shutil.copytree(published, data_dir, symlinks=True)
    before = _snapshot(data_dir)
    # a Square refund row with a positive amount makes fct_orders.refunds negative: a bad mart value
    write_csv(
        data_dir / "inbox" / "square" / "bad_refund.csv",
        formats.SQUARE_ITEMS_COLUMNS_V2,
        [
            square_row(**{"Transaction ID": "BAD1", "Date": "2026-10-20"}),
            square_row(
                **{
                    "Transaction ID": "BAD1",
                    "Event Type": "Refund",
                    "Date": "2026-10-21",
                    "Gross Sales": "$50.00",
                    "Net Sales": "$50.00",
                }
            ),
        ],
    )
    assert main(["run", "--data-dir", str(data_dir), "--as-of", "2026-11-02", "--quiet"]) == 1
    err = capsys.readouterr().err
    # names the check (the dbt test on fct_orders.refunds) and shows the failing value
    assert "marts/fct_orders:accepted_range_fct_orders_refunds" in err and "-50" in err, err[-2000:]
    assert _snapshot(data_dir) == before  # previous serving file and exports byte-identical
    assert not (data_dir / "exports" / "2026-11-02").exists()


def test_readers_keep_reading_during_runs_and_see_new_data_after_reopening(published, tmp_path):
    """Several processes hold the serving file open read-only and query in a loop while two runs
    publish: no reader error, a held connection keeps its snapshot, a reopened one sees the new run."""
    import shutil

    data_dir = tmp_path / "d"
    shutil.copytree(published, data_dir, symlinks=True)
    t = Tally()
    stats = readers_suite(data_dir, 3, ["2026-11-15", "2026-11-16"], t)
    assert t.violations == [] and t.runs_failed == 0, t.violations
    assert t.reader_errors == 0, t.notes
    assert t.reader_queries > 30
    assert stats["runs_seen_by_readers"] == 2  # readers that reopened saw both published runs
    assert max(stats["run_seconds"]) < 900  # the runs were not blocked by the readers' open files


def test_consent_and_hashes(published):
    wh = duckdb.connect(str(published / "warehouse" / "pipeline.duckdb"), read_only=True)
    contacts = wh.execute(
        "select customer_key, email, phone, accepts_marketing from intermediate.int_customer_contacts"
    ).df()
    wh.close()
    contacts = contacts.set_index("customer_key")
    tiers_dir = published / "exports" / "latest" / "tiers"
    checked = 0
    for p in tiers_dir.glob("*.hashed.csv"):
        for row in csv.DictReader(p.open()):
            c = contacts.loc[row["customer_key"]]
            assert bool(c["accepts_marketing"])  # hashed exports only for consenting customers
            if row["email_sha256"]:
                assert row["email_sha256"] == hashlib.sha256(c["email"].encode()).hexdigest()
                assert c["email"] == c["email"].strip().lower()  # hashed value is the normalised e-mail
                checked += 1
            if row["phone_sha256"]:
                assert row["phone_sha256"] == hashlib.sha256(c["phone"].encode()).hexdigest()
                assert c["phone"].startswith("+")  # E.164
            assert set(row) == {"customer_key", "tier", "email_sha256", "phone_sha256"}  # only hashes
    assert checked > 0
    for p in tiers_dir.glob("*.parquet"):
        df = pd.read_parquet(p)
        no_consent = df[~df["accepts_marketing"].astype(bool)]
        assert no_consent["email"].isna().all() and no_consent["phone"].isna().all()
    consent_tier = pd.read_parquet(tiers_dir / "one_time_buyers.parquet")
    assert consent_tier["accepts_marketing"].all()  # a tier that requires consent lists only consenting customers


def test_entered_and_left_lists_across_two_runs(published, tmp_path):
    import shutil

    data_dir = tmp_path / "d"
    shutil.copytree(published, data_dir, symlinks=True)

    def treated(p):  # entered/left compare the customers in the activation files (docs/holdout.md)
        df = pd.read_parquet(p)
        return set(df.loc[df["holdout_group"] == "treated", "customer_key"])

    first = {p.stem: treated(p) for p in (data_dir / "exports" / "2026-11-01" / "tiers").glob("*.parquet")}
    assert main(["run", "--data-dir", str(data_dir), "--as-of", "2026-11-21", "--quiet"]) == 0
    folder = data_dir / "exports" / "2026-11-21" / "tiers"
    changed = 0
    for tier, before in first.items():
        after = treated(folder / f"{tier}.parquet")
        entered = set(pd.read_csv(folder / f"{tier}.entered.csv")["customer_key"])
        left = set(pd.read_csv(folder / f"{tier}.left.csv")["customer_key"])
        assert entered == after - before, tier
        assert left == before - after, tier
        changed += len(entered) + len(left)
    assert changed > 0  # three more weeks move customers between tiers
    # both published dates are in the membership history; the second run's dbt build saw the first's
    with duckdb.connect(str(data_dir / "warehouse" / "pipeline.duckdb"), read_only=True) as con:
        dates = con.execute("select distinct cast(as_of_date as varchar) from activation.tier_membership order by 1")
        assert [r[0] for r in dates.fetchall()] == ["2026-11-01", "2026-11-21"]
        entered = con.execute("select distinct cast(entered_on as varchar) from marts.tier_memberships").fetchall()
        assert entered == [("2026-11-01",)]
        assert con.execute("select count(*) from marts.tier_lift").fetchone()[0] == 0  # no 30-day window yet
    manifest = json.loads((data_dir / "exports" / "latest" / "manifest.json").read_text())
    assert manifest["as_of"] == "2026-11-21"
    assert (data_dir / "exports" / "2026-11-01" / "manifest.json").exists()  # the earlier run stays
    # the run report's headline compares with the run the entered/left lists compare with
    before = json.loads((data_dir / "exports" / "2026-11-01" / "manifest.json").read_text())["headline"]
    page = (data_dir / "exports" / "2026-11-21" / "report.html").read_text(encoding="utf-8")
    assert "Changes are since the previous run as of 1 November 2026" in page
    for key in ("customers", "orders"):
        diff = manifest["headline"][key] - before[key]
        change = re.search(rf'data-metric="{key}">.*?<div class="change [a-z]+">([^<]*)</div>', page).group(1)
        assert change == (
            "no change" if diff == 0 else f"{diff:+,}".replace("-", "−") + f" ({diff / before[key]:+.1%})"
        )


def test_tier_columns_are_chosen_in_yaml_and_validated(published, tmp_path):
    from dagster_project.lib.export import tiers

    one_time = pd.read_parquet(published / "exports" / "latest" / "tiers" / "one_time_buyers.parquet")
    assert list(one_time.columns) == [
        "customer_key",
        "tier",
        "reason",
        "days_since_last_purchase",
        "net_revenue",
        "acquisition_channel",
        "accepts_marketing",
        "email",
        "phone",
        "holdout_group",  # the Parquet file keeps held-out customers too (docs/holdout.md)
    ]
    bad = tmp_path / "tiers.yml"
    bad.write_text("tiers:\n  - {name: x, where: 'true', reason: \"'r'\", columns: [email_sha256]}\n")
    with pytest.raises(ValueError, match="unknown columns"):
        tiers.load_tiers(bad)


def test_exported_csvs_neutralise_formula_injection(published):
    """The planted customer's e-mail (`=hyperlink(...)@...`) and channel (`-cmd`) reach a tier file
    as text, never as a formula, and no CSV cell anywhere in the exports starts like a formula."""
    latest = published / "exports" / "latest"
    texts = {p.relative_to(latest): p.read_text(encoding="utf-8") for p in latest.rglob("*.csv")}
    assert not [c for t in texts.values() for c in neutralised(t)]
    cells = {
        c
        for n, t in texts.items()
        if n.name.startswith("one_time_buyers.") and not n.name.endswith((".hashed.csv", ".entered.csv", ".left.csv"))
        for row in csv.reader(t.splitlines())
        for c in row
    }
    assert '\'=hyperlink("http://evil.example")@evil.example' in cells  # the e-mail, as text
    assert "'-cmd" in cells  # the acquisition channel, as text


def test_exported_phones_are_e164_and_contacts_unaltered(published):
    """Every phone in every exported CSV is E.164 exactly as stored for the customer (no formula quote),
    and every e-mail is the customer's normalised e-mail as it is (the planted formula e-mail aside)."""
    import re

    con = duckdb.connect(str(published / "warehouse" / "pipeline.duckdb"), read_only=True)
    try:
        stored = {
            k: (e, p)
            for k, e, p in con.execute(
                "select customer_key, email, phone from intermediate.int_customer_contacts"
            ).fetchall()
        }
    finally:
        con.close()
    phones = emails = 0
    stored_emails, stored_phones = {e for e, _ in stored.values() if e}, {p for _, p in stored.values() if p}
    for path in (published / "exports" / "latest").rglob("*.csv"):
        if "audiences" in path.parts:  # no customer_key; Google and Meta hold hashes only (docs/audiences.md)
            for row in csv.DictReader(path.read_text(encoding="utf-8").splitlines()):
                if row.get("Phone Number"):
                    assert re.fullmatch(r"\+[1-9][0-9]{6,14}", row["Phone Number"]), (path, row["Phone Number"])
                    assert row["Phone Number"] in stored_phones, path
                if row.get("Email Address"):
                    assert row["Email Address"] in stored_emails, (path, row["Email Address"])
            continue
        for row in csv.DictReader(path.read_text(encoding="utf-8").splitlines()):
            if row.get("phone"):
                phones += 1
                assert re.fullmatch(r"\+[1-9][0-9]{6,14}", row["phone"]), (path.name, row["phone"])
                assert row["phone"] == stored[row["customer_key"]][1]
            if row.get("email") and not row["email"].startswith("'="):
                emails += 1
                assert row["email"] == stored[row["customer_key"]][0], (path.name, row["email"])
    assert phones > 50 and emails > 50  # the demo's consenting customers reach the tier files


@pytest.mark.parametrize(
    "reason", ["'bought ' || purchase_count || ' times'", "'line one' || chr(10) || 'line two, ' || purchase_count"]
)
def test_capped_tier_files_split_the_whole_list(published, tmp_path, reason):
    """A tier with max_rows_per_file is written as parts of at most that many rows, each with the header,
    together the same CSV records in the same order as the tier's one-file list; also when a value holds a
    line break (a quoted field over two lines, written a COPY per part)."""
    from dagster_project.lib.export import tiers
    from dagster_project.lib.export.tiers import write_tier_files

    con = duckdb.connect(str(published / "warehouse" / "pipeline.duckdb"), read_only=True)
    try:
        capped = tiers.Tier(name="everyone", description="", where="true", reason=reason, max_rows_per_file=7)
        whole = tiers.Tier(name="everyone", description="", where="true", reason=reason)
        stats = write_tier_files(con, capped, tmp_path / "capped", None)
        write_tier_files(con, whole, tmp_path / "whole", None)
    finally:
        con.close()
    parts = sorted((tmp_path / "capped" / "tiers").glob("everyone.part-*.csv"))
    assert stats["rows"] > 7 * 3 and len(parts) == -(-stats["rows"] // 7)
    assert [p.name for p in parts][:2] == ["everyone.part-001.csv", "everyone.part-002.csv"]
    with (tmp_path / "whole" / "tiers" / "everyone.csv").open(newline="", encoding="utf-8") as fh:
        want = list(csv.reader(fh))
    got = []
    for p in parts:
        with p.open(newline="", encoding="utf-8") as fh:
            records = list(csv.reader(fh))
        assert records[0] == want[0] and 1 <= len(records) - 1 <= 7
        got += records[1:]
    assert got == want[1:]
    assert ("\n" in want[1][2]) == ("chr(10)" in reason)


def test_serving_copy_takes_only_the_orders_built_since_the_published_file(tmp_path):
    """The serving file starts from the published one: fct_orders takes the rows built since (by built_at;
    rows without one predate the column and were not rewritten since), other tables are copied whole,
    dropped tables leave; when the delta does not add up (a row rebuilt with
    an older built_at, as after a clock set back) or most rows were rebuilt, the table is copied whole.
    Each time the new file's marts equal the working warehouse's."""
    from dagster_project.lib.export import publish

    working = tmp_path / "working.duckdb"
    con = duckdb.connect(str(working))
    con.execute("create schema marts")
    con.execute("""create table marts.fct_orders as
                   select 'o' || lpad(cast(range as varchar), 4, '0') as order_key,
                          cast(range as decimal(18, 2)) as net_revenue_original,
                          case when range < 90 then timestamp '2026-11-01 06:00:00' end as built_at
                   from range(100)""")  # o0090-o0099: rows from before the build marker existed
    con.execute("create table marts.gone as select 1 as x")
    con.execute("""create table marts.customer_identity_map as
                   select 'c' || cast(range % 7 as varchar) as customer_key, 'src' || cast(range % 2 as varchar)
                          as identifier_source, 'email' as id_type, sha256(cast(range as varchar)) as identifier_sha256,
                          1 as raw_forms, timestamp '2026-11-01 06:00:00' as built_at
                   from range(20)""")
    con.close()

    def publish_from(previous, name: str) -> dict:
        out = tmp_path / name
        written = publish.build_serving_copy(working, out, {"run_id": name}, previous=previous)
        with duckdb.connect(str(out), read_only=True) as c:
            c.execute(f"attach '{working.as_posix()}' as w (read_only)")
            for t in ("fct_orders", "customer_identity_map", "kept"):
                for a, b in (("marts", "w.marts"), ("w.marts", "marts")):
                    if t == "kept" and not written.get("marts.kept"):
                        continue
                    assert (
                        c.execute(
                            f"select count(*) from (select * from {a}.{t} except all select * from {b}.{t})"
                        ).fetchone()[0]
                        == 0
                    ), (name, t)
            tables = {
                r[0] for r in c.execute("select table_name from duckdb_tables() where schema_name = 'marts'").fetchall()
            }
            assert c.execute("select value from meta.published_run where key = 'run_id'").fetchone() == (name,)
        return {"written": written, "tables": tables}

    first = publish_from(None, "first.duckdb")
    assert first["written"] == {"marts.fct_orders": 100, "marts.gone": 1, "marts.customer_identity_map": 20}

    def change(sql: str) -> None:
        with duckdb.connect(str(working)) as c:
            c.execute(sql)

    # a daily build: two orders rebuilt with new values, one deleted, one new; a table replaced by another
    change("""update marts.fct_orders set net_revenue_original = net_revenue_original + 1000,
              built_at = timestamp '2026-11-02 06:00:00' where order_key in ('o0003', 'o0050');
              delete from marts.fct_orders where order_key = 'o0070';
              insert into marts.fct_orders values ('o0100', 7, timestamp '2026-11-02 06:00:00');
              drop table marts.gone; create table marts.kept as select 2 as y;
              update marts.customer_identity_map set customer_key = 'c9', raw_forms = 2,
                  built_at = timestamp '2026-11-02 06:00:00' where identifier_sha256 = sha256('3');
              delete from marts.customer_identity_map where identifier_sha256 = sha256('4')""")
    second = publish_from(tmp_path / "first.duckdb", "second.duckdb")
    assert second["written"] == {"marts.fct_orders": 3, "marts.kept": 1, "marts.customer_identity_map": 1}
    assert second["tables"] == {"fct_orders", "kept", "customer_identity_map"}

    # a row rebuilt with an older marker than the published build's: the sum differs, so a whole copy
    change(
        "update marts.fct_orders set net_revenue_original = 1, built_at = timestamp '2026-10-30 06:00:00' "
        "where order_key = 'o0010'"
    )
    third = publish_from(tmp_path / "second.duckdb", "third.duckdb")
    assert third["written"]["marts.fct_orders"] == 100

    # a full refresh (every row rebuilt): a whole copy
    change("update marts.fct_orders set built_at = timestamp '2026-11-03 06:00:00'")
    fourth = publish_from(tmp_path / "third.duckdb", "fourth.duckdb")
    assert fourth["written"]["marts.fct_orders"] == 100
    # the next daily build after it is a delta again
    change(
        "update marts.fct_orders set net_revenue_original = 5, built_at = timestamp '2026-11-04 06:00:00' "
        "where order_key = 'o0001'"
    )
    assert publish_from(tmp_path / "fourth.duckdb", "fifth.duckdb")["written"]["marts.fct_orders"] == 1

    # the tables copied whole replace their old copies in place: the file does not grow run after run
    change("create or replace table marts.kept as select md5(cast(range as varchar)) as y from range(300000)")
    previous, sizes = tmp_path / "fifth.duckdb", []
    for n in range(4):
        publish_from(previous, f"daily{n}.duckdb")
        previous = tmp_path / f"daily{n}.duckdb"
        sizes.append(previous.stat().st_size)
    assert sizes[-1] <= 1.2 * sizes[0], sizes


def test_prune_exports_keeps_the_newest_dates_and_latest(tmp_path):
    exports, staging = tmp_path / "exports", tmp_path / ".staging"
    staging.mkdir()
    for day in ("2026-10-28", "2026-10-29", "2026-10-30", "2026-10-31"):
        (exports / day / "tiers").mkdir(parents=True)
        (exports / day / "tiers" / "champions.csv").write_text("customer_key\n")
    (exports / "notes").mkdir()  # not an as-of folder: never touched
    os.symlink("2026-10-28", exports / "latest")  # latest on an old date (as after a manual re-point)
    assert publish.prune_exports(exports, staging, 0) == []  # 0 keeps every one
    assert publish.prune_exports(exports, staging, 2) == ["2026-10-29"]
    assert sorted(p.name for p in exports.iterdir()) == ["2026-10-28", "2026-10-30", "2026-10-31", "latest", "notes"]
    assert list(staging.iterdir()) == []
    assert publish.prune_exports(exports, staging, 2) == []  # idempotent


def test_keep_exports_setting_is_checked():
    from dagster_project.lib.resources import keep_exports_setting

    assert keep_exports_setting(None) == 30 and keep_exports_setting("0") == 0 and keep_exports_setting("7") == 7
    for bad in ("-1", "ten", "2.5"):
        with pytest.raises(ValueError, match="PIPELINE_KEEP_EXPORTS or --keep-exports"):
            keep_exports_setting(bad)
    with pytest.raises(SystemExit) as exc:
        main(["run", "--keep-exports", "ten"])
    assert exc.value.code == 2


def test_parquet_marts_written_side_by_side_equal_one_at_a_time(tmp_path):
    """Several COPYs at once write each mart whole, in the table's row order: the same bytes as one writer;
    a COPY that fails fails the call (no mart silently missing)."""
    db = tmp_path / "serving.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create schema marts")
    for i, rows in enumerate((300_000, 5, 120_000, 0, 70_000)):
        con.execute(
            f"create table marts.m{i} as select (range * 7919) % 100003 as k, 'v' || cast(range as varchar) as v "
            f"from range({rows})"
        )
    con.close()
    one = publish.write_parquet_marts(db, tmp_path / "one", writers=1)
    two = publish.write_parquet_marts(db, tmp_path / "two", writers=2)
    assert [p.name for p in one] == [p.name for p in two] == [f"m{i}.parquet" for i in range(5)]
    for a, b in zip(one, two, strict=False):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert pd.read_parquet(two[0])["k"].tolist()[:3] == [0, 7919, 15838]  # the table's order

    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "m0.parquet").mkdir()  # a folder where a file must go: that COPY fails
    with pytest.raises(duckdb.Error):
        publish.write_parquet_marts(db, blocked, writers=2)
