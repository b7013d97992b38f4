"""Incremental dbt builds give the same marts as a full refresh, including a late refund.

Two warehouses see the same files: one builds the base exports, then the next export on top of
them (the order roll-ups are incremental on DuckDB); the other builds everything at once.  The
next export holds new orders and sales a week later, an old Shopify order re-exported with a
refund (newest export wins per order), a Square export holding only a refund line of an older
sale (newest export wins per payment or refund event, so the sale keeps its payment lines), and a
new order that joins two people (identity merges them, so the incremental orders model must re-key
the older orders of one of them).  The two must give identical marts.
"""

import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import duckdb
import pytest

from dagster_project.defs.models.assets import ensure_output_tables
from dagster_project.lib import ingest, warehouse
from dagster_project.lib.demo.generator import generate_demo
from dagster_project.lib.export import holdout
from dagster_project.lib.identity import resolution
from dagster_project.lib.paths import DBT_PROJECT_DIR, DataPaths

pytestmark = pytest.mark.slow

BASE_END = date(2026, 10, 24)
BASE_AS_OF = date(2026, 10, 25)
NEXT_AS_OF = date(2026, 11, 1)
INCREMENTAL_MODELS = (
    "int_shopify__orders_rolled_up",
    "int_square__sales_rolled_up",
    "int_generic__orders_rolled_up",
    "int_orders_identified",
    "int_customer_contacts",
    "int_shopify__order_profiles",
    "int_customer_profiles",
)
WATERMARKS = (
    "newest_file_id",
    "identity_change_seq",
    "rates_file_id",
    "built_at",  # record builds: differ by design
    "first_seen_at",
    "last_seen_change_seq",
)  # identity_blocked_identifiers: when a resolution saw it
# the history of identity resolutions: a daily run records the merges it made, a run from scratch has none
HISTORY_MARTS = ("identity_key_history",)


def _csv(con, path: Path) -> str:
    return f"read_csv('{path.as_posix()}', header = true, all_varchar = true, delim = ',', quote = '\"', escape = '\"')"


def _write_next_export(inbox: Path, out: Path) -> dict:
    """A week-later export: two new Shopify orders (their customers' consent flipped) and one Square sale
    copied from existing ones (new ids and dates), the base's newest paid Shopify order again, now with
    half its total refunded (the refund arrives in an export a week later), an order merging two people,
    and the roster and Square customers again with consent changed."""
    shop = sorted((inbox / "shopify").glob("*.csv"))[0]
    items = sorted((inbox / "square").glob("items*.csv"))[0]
    con = duckdb.connect()
    cols = [r[0] for r in con.sql(f"describe select * from {_csv(con, shop)}").fetchall()]
    paid = con.sql(f"""select "Name" from {_csv(con, shop)}
                       where "Financial Status" = 'paid' and "Cancelled at" is null and "Email" is not null
                       order by "Created at" desc, "Name" limit 3""").fetchall()
    assert len(paid) == 3
    refunded, copied = paid[0][0], [p[0] for p in paid[1:]]

    def expr(c: str) -> str:
        if c == "Name":
            return f"""case when "Name" = '{refunded}' then "Name" else "Name" || '-N' end as "Name\""""
        if c == "Created at":
            return f"""case when "Name" = '{refunded}' then "Created at"
                            else '2026-10-29 10:00:00 -0400' end as "Created at\""""
        if c == "Financial Status":
            return f"""case when "Name" = '{refunded}' and "Financial Status" is not null then 'partially_refunded'
                            else "Financial Status" end as "Financial Status\""""
        if c == "Accepts Marketing":  # the new orders flip their customer's consent (the newest order decides)
            return f"""case when "Name" = '{refunded}' or "Accepts Marketing" is null then "Accepts Marketing"
                            when lower("Accepts Marketing") = 'yes' then 'no' else 'yes' end as "Accepts Marketing\""""
        if c == "Refunded Amount":
            return f"""case when "Name" = '{refunded}' and "Financial Status" is not null
                            then cast(round(cast("Total" as decimal(18, 2)) / 2, 2) as varchar)
                            else "Refunded Amount" end as "Refunded Amount\""""
        return f'"{c}"'

    (out / "shopify").mkdir(parents=True)
    names = ", ".join(f"'{n}'" for n in [refunded, *copied])
    con.execute(f"""copy (select {", ".join(expr(c) for c in cols)} from {_csv(con, shop)} where "Name" in ({names}))
                    to '{(out / "shopify" / "orders_export_zz_next.csv").as_posix()}' (header)""")
    refund = con.sql(f"""select cast("Refunded Amount" as decimal(18, 2))
                         from {_csv(con, out / "shopify" / "orders_export_zz_next.csv")}
                         where "Name" = '{refunded}' and "Financial Status" is not null""").fetchone()[0]
    assert refund > 0
    (out / "square").mkdir(parents=True)
    sq_cols = [r[0] for r in con.sql(f"describe select * from {_csv(con, items)}").fetchall()]
    txn = con.sql(f"""select "Transaction ID" from {_csv(con, items)} where "Event Type" = 'Payment'
                      and "Customer ID" is not null order by "Transaction ID" limit 1""").fetchone()[0]
    sel = ", ".join(
        """"Transaction ID" || 'N' as "Transaction ID\""""
        if c == "Transaction ID"
        else """'2026-10-30' as "Date\""""
        if c == "Date"
        else f'"{c}"'
        for c in sq_cols
    )
    con.execute(f"""copy (select {sel} from {_csv(con, items)} where "Transaction ID" = '{txn}')
                    to '{(out / "square" / "items-zz-next.csv").as_posix()}' (header)""")
    # a later Square export with only a refund line of an older sale (an export covers a date range,
    # so the refund arrives without the payment it refunds)
    late = con.sql(f"""select "Transaction ID", "Gross Sales" from {_csv(con, items)}
                       where "Event Type" = 'Payment' and "Customer ID" is not null and "Transaction ID" != '{txn}'
                         and "Transaction ID" not in (select "Transaction ID" from {_csv(con, items)}
                                                      where "Event Type" = 'Refund')
                       order by "Transaction ID" limit 1""").fetchone()

    def refund_col(c: str) -> str:
        if c == "Date":
            return "'2026-10-30' as \"Date\""
        if c == "Event Type":
            return "'Refund' as \"Event Type\""
        if c in ("Gross Sales", "Net Sales", "Tax", "Qty"):
            return f'\'-\' || "{c}" as "{c}"'
        return f'"{c}"'

    refund_sel = ", ".join(refund_col(c) for c in sq_cols)
    con.execute(f"""copy (select {refund_sel} from {_csv(con, items)}
                          where "Transaction ID" = '{late[0]}' and "Event Type" = 'Payment'
                          order by "Item" limit 1)
                    to '{(out / "square" / "items-zz-refund.csv").as_posix()}' (header)""")
    sale = con.sql(f"""select sum(cast(replace("Gross Sales", '$', '') as decimal(18, 2)))
                       from {_csv(con, items)} where "Transaction ID" = '{late[0]}' and "Event Type" = 'Payment'
                    """).fetchone()[0]
    refunded_line = con.sql(f"""select cast(replace("Net Sales", '$', '') as decimal(18, 2)) from {_csv(con, items)}
                                where "Transaction ID" = '{late[0]}' and "Event Type" = 'Payment'
                                order by "Item" limit 1""").fetchone()[0]
    # a new order joining two people: the items of customer B's order (B's phone) bought with customer A's
    # e-mail. Identity merges A and B, so B's old orders must be re-keyed in the incremental build too.
    a_email, b_order = con.sql(f"""
        with orders as (
            select "Name" as name, max("Email") as email, max(coalesce("Phone", "Billing Phone")) as phone
            from {_csv(con, shop)} group by 1
        )
        select a.email, b.name from orders a join orders b
          on a.email is not null and b.phone is not null and b.email is not null and a.email != b.email
         and a.phone is null
        order by a.name, b.name limit 1""").fetchone()
    replaced = {"Email": f"'{a_email}'", "Name": "\"Name\" || '-M'", "Created at": "'2026-10-29 11:00:00 -0400'"}
    merge_sel = ", ".join(f'{replaced[c]} as "{c}"' if c in replaced else f'"{c}"' for c in cols)
    con.execute(f"""copy (select {merge_sel} from {_csv(con, shop)} where "Name" = '{b_order}')
                    to '{(out / "shopify" / "orders_export_zz_merge.csv").as_posix()}' (header)""")
    # consent changing with no new order or identifier: the roster again with every member's consent
    # flipped, and the Square customers who are not members again, all subscribed (int_customer_contacts picks
    # these up by file)
    roster = sorted((inbox / "members").glob("*.csv"))[0]
    m_cols = [r[0] for r in con.sql(f"describe select * from {_csv(con, roster)}").fetchall()]
    flip = "case when lower(trim(accepts_marketing)) in ('yes', 'true', 'y', '1') then 'no' else 'yes' end"
    # and every member with an address has moved (int_customer_profiles picks the newer roster up by file)
    moved = {"accepts_marketing": flip, "city": "city || ' Heights'"}
    m_sel = ", ".join(f'{moved[c]} as "{c}"' if c in moved else f'"{c}"' for c in m_cols)
    (out / "members").mkdir(parents=True)
    con.execute(f"""copy (select {m_sel} from {_csv(con, roster)})
                    to '{(out / "members" / "members-zz-next.csv").as_posix()}' (header)""")
    sq_customers = inbox / "square" / "customers.csv"
    c_cols = [r[0] for r in con.sql(f"describe select * from {_csv(con, sq_customers)}").fetchall()]
    c_sel = ", ".join(f"'subscribed' as \"{c}\"" if c == "Email Subscription Status" else f'"{c}"' for c in c_cols)
    con.execute(f"""copy (select {c_sel} from {_csv(con, sq_customers)} where "Reference ID" is null)
                    to '{(out / "square" / "customers-zz-next.csv").as_posix()}' (header)""")
    con.close()
    return {
        "merged_email": a_email,
        "merged_b_order": b_order,
        "refunded_order": refunded,
        "refund": refund,
        "new_orders": [c + "-N" for c in copied],
        "new_sale": txn + "N",
        "late_refund_sale": late[0],
        "sale_gross": sale,
        "sale_refund": refunded_line,
    }


def _load_and_build(data_dir: Path, as_of: date, tag: str) -> dict:
    """Ingest new inbox files, resolve identity, record the run context and `dbt build` (as the pipeline does);
    returns the identity resolution's figures."""
    paths = DataPaths.of(data_dir)
    con = warehouse.connect(paths.warehouse, temp_dir=paths.duckdb_temp)
    try:
        ingest.ingest_inbox(con, paths.inbox, tag)
        resolved = resolution.resolve(con)
        warehouse.write_run_context(con, as_of, tag)
        ensure_output_tables(con)  # the CLV model's outputs, which dbt reads as sources
        holdout.ensure_tables(con)  # the published tier-membership history, also a dbt source
    finally:
        con.close()
    _dbt_build(data_dir, tag)
    return resolved


def _dbt_build(data_dir: Path, tag: str, *args: str) -> None:
    env = dict(os.environ, PIPELINE_WAREHOUSE_PATH=str(DataPaths.of(data_dir).warehouse))
    target = data_dir / f"dbt_target_{tag}"
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "build",
            "--exclude-resource-type",
            "unit_test",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(target),
            *args,
        ],
        cwd=DBT_PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]


def _tables(db: Path, schema: str) -> dict[str, list[tuple]]:
    """Each table's rows, sorted; columns in table order."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables where table_schema = ? order by 1", [schema]
            ).fetchall()
        ]
        out = {}
        for n in names:
            cols = [r[0] for r in con.execute(f'describe "{schema}"."{n}"').fetchall() if r[0] not in WATERMARKS]
            sel = ", ".join(f'"{c}"' for c in cols)
            out[n] = con.execute(f'select {sel} from "{schema}"."{n}" order by all').fetchall()
        return out
    finally:
        con.close()


def _key_of_order(db: Path, order_key: str) -> str:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("select customer_key from marts.fct_orders where order_key = ?", [order_key]).fetchone()[0]
    finally:
        con.close()


def test_incremental_equals_full_refresh_with_a_late_refund(tmp_path):
    base = tmp_path / "source"
    generate_demo(base, customers=150, seed=3, end_date=BASE_END)
    nxt = tmp_path / "next"
    planted = _write_next_export(base / "inbox", nxt)

    # incremental: the base exports first, then the next export a week later
    inc = tmp_path / "incremental"
    shutil.copytree(base / "inbox", inc / "inbox")
    _load_and_build(inc, BASE_AS_OF, "base")
    key_before = _key_of_order(DataPaths.of(inc).warehouse, "shopify:" + planted["merged_b_order"])
    for f in nxt.rglob("*.csv"):
        shutil.copy(f, inc / "inbox" / f.parent.name / f.name)
    resolved = _load_and_build(inc, NEXT_AS_OF, "next")
    # identity resolved only the next export's records, and merged people across the two exports
    assert resolved["incremental"] == 1 and 0 < resolved["records_linked"] < 100

    # full refresh: everything at once
    full = tmp_path / "full"
    shutil.copytree(inc / "inbox", full / "inbox")
    _load_and_build(full, NEXT_AS_OF, "full")

    # the second build really was incremental (delete+insert), not a rebuild
    for model in INCREMENTAL_MODELS + ("fct_orders", "customer_identity_map"):
        run_sql = next((inc / "dbt_target_next" / "run").rglob(f"{model}.sql")).read_text().lower()
        assert "delete from" in run_sql and "insert into" in run_sql, f"{model} was not built incrementally"

    wh_inc, wh_full = DataPaths.of(inc).warehouse, DataPaths.of(full).warehouse
    marts_inc, marts_full = _tables(wh_inc, "marts"), _tables(wh_full, "marts")
    assert set(marts_inc) == set(marts_full) and len(marts_inc) >= 15
    for name in set(marts_full) - set(HISTORY_MARTS):
        assert marts_inc[name] == marts_full[name], f"marts.{name} differs between incremental and full refresh"
    assert marts_full["identity_key_history"] == []
    for name in ("identifiers", "node_roots"):
        assert _tables(wh_inc, "identity")[name] == _tables(wh_full, "identity")[name], f"identity.{name} differs"
    inter_inc, inter_full = _tables(wh_inc, "intermediate"), _tables(wh_full, "intermediate")
    for name in INCREMENTAL_MODELS:
        assert inter_inc[name] == inter_full[name], f"intermediate.{name} differs"

    # and the late refund and the new orders are in
    con = duckdb.connect(str(wh_inc), read_only=True)
    try:
        # the merge re-keyed customer B's old order (not a new order: only identity changed for it)
        key_after = con.execute(
            "select customer_key from marts.fct_orders where order_key = ?", ["shopify:" + planted["merged_b_order"]]
        ).fetchone()[0]
        merged_key = con.execute(
            "select customer_key from marts.fct_orders where order_key = ?",
            ["shopify:" + planted["merged_b_order"] + "-M"],
        ).fetchone()[0]
        assert key_before is not None and key_after == merged_key
        # and the key history says so: customer B's key merged into the key they share now
        merges = con.execute(
            "select previous_keys, cause from marts.identity_key_history "
            "where event in ('merge', 'rekey') and customer_key = ?",
            [merged_key],
        ).fetchall()
        assert len(merges) == 1 and key_before in merges[0][0].split(",") and merges[0][1] == "linked by new records"
        a_keys = con.execute(
            "select distinct o.customer_key from intermediate.int_orders_identified o where o.email_raw = ?",
            [planted["merged_email"]],
        ).fetchall()
        assert a_keys == [(merged_key,)]
        changed_in_next = con.execute(
            "select identifiers_changed from identity.resolution_runs order by change_seq desc limit 1"
        ).fetchone()[0]
        assert changed_in_next > 0
        status, refunds = con.execute(
            "select financial_status, refunds from marts.fct_orders where order_key = ?",
            ["shopify:" + planted["refunded_order"]],
        ).fetchone()
        assert status == "partially_refunded" and float(refunds) == pytest.approx(float(planted["refund"]))
        keys = ["shopify:" + k for k in planted["new_orders"]] + ["square:" + planted["new_sale"]]
        assert con.execute(
            f"select count(*) from marts.fct_orders where order_key in ({', '.join('?' * len(keys))})", keys
        ).fetchone()[0] == len(keys)
        assert con.execute("select max(as_of_date) from marts.customer_rfm").fetchone()[0] == NEXT_AS_OF
        # members whose roster address is their newest show the address they moved to
        from_roster, moved = con.execute(
            "select count(*), count(*) filter (where city like '% Heights') from intermediate.int_customer_profiles"
            " where address_source = 'members'"
        ).fetchone()
        assert from_roster > 0 and moved == from_roster
        # the Square sale refunded in a later export keeps its payment lines: gross from the payment, the refund
        # netted against it
        gross, refunds, status = con.execute(
            "select gross_revenue_original, refunds_original, financial_status from ("
            "  select o.gross_revenue / o.fx_rate as gross_revenue_original, o.refunds / o.fx_rate as refunds_original,"
            "         o.financial_status from marts.fct_orders o where order_key = ?)",
            ["square:" + planted["late_refund_sale"]],
        ).fetchone()
        assert float(gross) == pytest.approx(float(planted["sale_gross"]))
        assert float(refunds) == pytest.approx(float(planted["sale_refund"]))
        assert status in ("partially_refunded", "refunded")
    finally:
        con.close()

    # a backfill of an earlier as-of date, then the latest date again: the incremental fct_orders drops
    # the orders after the earlier date and takes them back, as a full build at each date would
    early = date(2026, 10, 12)
    _load_and_build(inc, early, "backfill")
    con_full = duckdb.connect(str(wh_full), read_only=True)
    try:
        want_early = con_full.execute(
            "select order_key from marts.fct_orders where order_date <= ? order by 1", [early]
        ).fetchall()
        assert 0 < len(want_early) < con_full.execute("select count(*) from marts.fct_orders").fetchone()[0]
    finally:
        con_full.close()
    con = duckdb.connect(str(wh_inc), read_only=True)
    try:
        assert con.execute("select order_key from marts.fct_orders order by 1").fetchall() == want_early
    finally:
        con.close()
    _load_and_build(inc, NEXT_AS_OF, "forward")
    assert _tables(wh_inc, "marts")["fct_orders"] == marts_full["fct_orders"]

    # a table whose columns differ from its model (as one made by another release would) is not altered in
    # place: the build fails and says so (a warehouse of another schema version is rebuilt, see
    # test_schema_version.py)
    stale = tmp_path / "stale"
    shutil.copytree(inc, stale, ignore=shutil.ignore_patterns("dbt_target_*"))
    con = duckdb.connect(str(DataPaths.of(stale).warehouse))
    try:
        con.execute("alter table intermediate.int_square__sales_rolled_up drop column sale_local_date")
    finally:
        con.close()
    with pytest.raises(AssertionError, match="out of sync"):
        _dbt_build(stale, "stale", "-s", "int_square__sales_rolled_up")

    # two people merged with nothing else behind it in the contacts' inputs (as when a Square sale or a till
    # receipt joins them): the contacts follow the identity change log alone, and the merged-away key leaves
    con = duckdb.connect(str(wh_inc))
    try:
        before = dict(con.execute("select customer_key, email from intermediate.int_customer_contacts").fetchall())
        moved, from_key, to_key = con.execute("""
            with emails as (select customer_key, min(normalised_value) as email from identity.identifiers
                            where id_type = 'email' and customer_key is not null group by 1)
            select a.email, a.customer_key, b.customer_key from emails a join emails b on b.email > a.email
            order by a.email, b.email limit 1""").fetchone()
        seq = con.execute("select max(change_seq) + 1 from identity.resolution_runs").fetchone()[0]
        con.execute(
            "insert into identity.identifier_changes select ?, source, id_type, raw_value from "
            "identity.identifiers where customer_key = ?",
            [seq, from_key],
        )
        con.execute("update identity.identifiers set customer_key = ? where customer_key = ?", [to_key, from_key])
        con.execute(
            "insert into identity.resolution_runs (change_seq, resolved_at, full_change, identifiers_changed, "
            "full_resolution) values (?, current_timestamp, false, 1, false)",
            [seq],
        )
    finally:
        con.close()
    rebuilt = tmp_path / "rebuilt"
    shutil.copytree(inc, rebuilt, ignore=shutil.ignore_patterns("dbt_target_*"))
    _dbt_build(inc, "merged", "-s", "int_customer_contacts")
    _dbt_build(rebuilt, "rebuilt", "--full-refresh", "-s", "int_customer_contacts")
    after = _tables(wh_inc, "intermediate")["int_customer_contacts"]
    assert after == _tables(DataPaths.of(rebuilt).warehouse, "intermediate")["int_customer_contacts"]
    after_emails = {row[0]: row[1] for row in after}
    assert before[from_key] == moved and from_key not in after_emails
    assert before[to_key] != moved and after_emails[to_key] == moved
