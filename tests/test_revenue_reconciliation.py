"""The blocking checks that every mart's revenue equals fct_orders' net revenue (issue 26, one net revenue):
they pass on a real run, and each one fails when a cancellation is missing from its mart."""

import json
import os
import shutil
import subprocess
from datetime import date
from pathlib import Path

import duckdb
import pytest

from dagster_project.defs.quality import checks
from tests.conftest import DEMO_AS_OF

AS_OF = date.fromisoformat(DEMO_AS_OF)


def test_every_revenue_check_ran_and_passed(demo_run):
    manifest = json.loads((demo_run["data_dir"] / "exports" / DEMO_AS_OF / "manifest.json").read_text())
    ran = {c["check"]: (c["passed"], c["severity"]) for c in manifest["checks"]}
    assert set(checks.REVENUE_RECONCILIATIONS) >= {
        "dim_customers",
        "customer_rfm",
        "customer_ltv",
        "cohort_retention",
        "channel_economics",
        "omnichannel_value",
        "customer_value_summary",
    }
    for table in checks.REVENUE_RECONCILIATIONS:
        assert ran[f"{table}_revenue_reconciles_to_fct_orders"] == (True, "ERROR"), table


@pytest.fixture
def warehouse_copy(demo_run, tmp_path):
    path = tmp_path / "pipeline.duckdb"
    shutil.copyfile(demo_run["data_dir"] / "warehouse" / "pipeline.duckdb", path)
    con = duckdb.connect(str(path))
    yield con
    con.close()


def test_reconciliations_agree_on_the_run_and_compare_real_rows(warehouse_copy):
    # ltv_12m is rounded to cents per customer: its total (ltv_12m × new_customers) is exact to half a cent each
    customers = warehouse_copy.execute("select sum(new_customers) from marts.channel_economics").fetchone()[0]
    for table in checks.REVENUE_RECONCILIATIONS:
        units, differing, mart_total, fct_total = checks.revenue_reconciliation(warehouse_copy, table, AS_OF)
        assert units > 0 and differing == 0, table
        tolerance = 0.005 * customers if table == "channel_economics" else 0.005
        assert mart_total == pytest.approx(fct_total, abs=tolerance), table
        assert fct_total > 0, table


def test_a_cancellation_the_marts_do_not_carry_fails_every_check(warehouse_copy):
    """A credit note of 7.00 dated on a (not left-censored) repeat customer's first purchase day (inside every
    window: the cohort's month 0, the first 365 days) that no mart was rebuilt to include: each check sees it."""
    before = {t: checks.revenue_reconciliation(warehouse_copy, t, AS_OF) for t in checks.REVENUE_RECONCILIATIONS}
    customer, day = warehouse_copy.execute(
        "select customer_key, first_purchase_date from marts.dim_customers where purchase_count > 1 "
        "and net_revenue > 100 and not is_left_censored order by customer_key limit 1"
    ).fetchone()
    _add_credit_note(warehouse_copy, customer, day)
    for table in checks.REVENUE_RECONCILIATIONS:
        units, differing, mart_total, fct_total = checks.revenue_reconciliation(warehouse_copy, table, AS_OF)
        assert differing >= 1, table
        assert fct_total == pytest.approx(before[table][3] - 7.00, abs=0.005), table
        assert mart_total == before[table][2], table


def _add_credit_note(con, customer: str, day) -> None:
    con.execute(
        "insert into marts.fct_orders by name select * replace ('credit-note-test' as order_key, "
        "-7.00 as net_revenue, false as is_purchase) from marts.fct_orders "
        "where customer_key = ? and order_date = ? and is_valid limit 1",
        [customer, day],
    )


def test_cohort_and_channel_checks_compare_over_customers_not_left_censored(warehouse_copy):
    """cohort_retention and channel_economics leave left-censored customers out, and so do their checks: a
    credit note of such a customer changes neither side there, while every customer-level check sees it."""
    before = {t: checks.revenue_reconciliation(warehouse_copy, t, AS_OF) for t in checks.REVENUE_RECONCILIATIONS}
    censored = warehouse_copy.execute(
        "select customer_key, first_purchase_date from marts.dim_customers where net_revenue > 100 "
        "and is_left_censored order by customer_key limit 1"
    ).fetchone()
    assert censored is not None, "the demo data has customers first seen in the warm-up"
    _add_credit_note(warehouse_copy, *censored)
    for table in checks.REVENUE_RECONCILIATIONS:
        after = checks.revenue_reconciliation(warehouse_copy, table, AS_OF)
        if table in ("cohort_retention", "channel_economics"):
            assert after == before[table], table
        else:
            assert after[1] >= 1 and after[3] == pytest.approx(before[table][3] - 7.00, abs=0.005), table


@pytest.mark.parametrize(
    "table, update",
    [
        (
            "cohort_retention",
            "update marts.cohort_retention set net_revenue = net_revenue + 0.01 "
            "where months_since_first_purchase = 0 and cohort_month = (select min(cohort_month) "
            "from marts.cohort_retention)",
        ),
        # the earliest months with spend may have no new customer: left-censored customers are not new
        (
            "channel_economics",
            "update marts.channel_economics set ltv_12m = ltv_12m + 0.01 where new_customers > 0 "
            "and acquisition_month = (select min(acquisition_month) from marts.channel_economics "
            "where new_customers > 0)",
        ),
        (
            "dim_customers",
            "update marts.dim_customers set net_revenue = net_revenue + 0.01 where customer_key = "
            "(select min(customer_key) from marts.dim_customers where purchase_count > 0)",
        ),
        (
            "customer_rfm",
            "update marts.customer_rfm set monetary = monetary - 0.01 where customer_key = "
            "(select min(customer_key) from marts.customer_rfm)",
        ),
    ],
)
def test_a_mart_a_cent_off_fails_its_check(warehouse_copy, table, update):
    assert warehouse_copy.execute(update).fetchone()[0] >= 1  # rows changed
    _, differing, _, _ = checks.revenue_reconciliation(warehouse_copy, table, AS_OF)
    assert differing >= 1


def _dbt_test(warehouse: Path, target: Path, select: str) -> dict:
    """Run one dbt data test against a warehouse file; its run result."""
    from dagster_project.lib.dbt_runner.project import dbt_executable
    from dagster_project.lib.paths import DBT_PROJECT_DIR

    env = dict(os.environ, PIPELINE_WAREHOUSE_PATH=str(warehouse))
    proc = subprocess.run(
        [
            dbt_executable(),
            "test",
            "--select",
            select,
            "--target",
            "duckdb",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(target),
        ],
        cwd=DBT_PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
    )
    [result] = [
        r
        for r in json.loads((target / "run_results.json").read_text())["results"]
        if r["unique_id"].startswith("test.")
    ]
    return {"status": result["status"], "failures": result["failures"], "output": proc.stdout[-2000:]}


def test_negative_net_revenue_without_a_refund_fails_the_dbt_test(demo_run, tmp_path):
    """dim_customers' rule that a negative net revenue needs a refund behind it (a dbt test): it passes on the
    demo, and fails when a customer with no refunded order is given a negative net revenue."""
    name = "assert_dim_customers_negative_net_revenue_has_refunds"
    warehouse = tmp_path / "pipeline.duckdb"
    shutil.copyfile(demo_run["data_dir"] / "warehouse" / "pipeline.duckdb", warehouse)
    assert _dbt_test(warehouse, tmp_path / "pass", name)["status"] == "pass"
    with duckdb.connect(str(warehouse)) as con:
        changed = con.execute(
            "update marts.dim_customers set net_revenue = -5 where customer_key = (select min(customer_key) "
            "from marts.dim_customers d where purchase_count > 0 and not exists (select 1 from marts.fct_orders o "
            "where o.customer_key = d.customer_key and o.refunds > 0))"
        ).fetchone()[0]
    assert changed == 1
    result = _dbt_test(warehouse, tmp_path / "fail", name)
    assert (result["status"], result["failures"]) == ("fail", 1), result["output"]
