"""Great Expectations validation through pandas batches: datetime ranges validated as numbers."""

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from dagster_project.lib.quality import gx_suites, gx_validation

FROM, UNTIL = datetime(2000, 1, 1), datetime(2030, 1, 1)


def _between():
    import great_expectations as gx

    return gx.expectations.ExpectColumnValuesToBeBetween(column="at", min_value=FROM, max_value=UNTIL)


@pytest.mark.parametrize("tz", [None, "UTC", "America/New_York"])
def test_datetime_range_verdicts_and_samples(tz):
    values = [
        FROM,
        UNTIL,
        FROM - timedelta(microseconds=1),
        UNTIL + timedelta(microseconds=1),
        None,
        datetime(2026, 5, 17, 12, 30),
    ]
    at = pd.Series(pd.to_datetime(values)).astype("datetime64[us]")
    if tz:  # the same instants, held as time-zone-aware values
        at = at.dt.tz_localize("UTC").dt.tz_convert(tz)
    out = gx_validation.validate("t", pd.DataFrame({"at": at}), [_between()])
    (result,) = out.results
    assert not result["success"] and result["unexpected_count"] == 2  # the null is not judged
    assert sorted(result["sample"]) == ["1999-12-31 23:59:59.999999", "2030-01-01 00:00:00.000001"]
    ok = gx_validation.validate("t", pd.DataFrame({"at": at[[0, 1, 4, 5]]}), [_between()])
    assert ok.success


def test_aware_bounds_compare_as_instants():
    import great_expectations as gx

    bound = datetime(2026, 1, 1, tzinfo=timezone(timedelta(hours=-5)))  # 05:00 UTC
    exp = gx.expectations.ExpectColumnValuesToBeBetween(column="at", max_value=bound)
    df = pd.DataFrame({"at": pd.to_datetime(["2026-01-01 04:59:59", "2026-01-01 05:00:01"]).astype("datetime64[us]")})
    (result,) = gx_validation.validate("t", df, [exp]).results
    assert result["unexpected_count"] == 1 and result["sample"] == ["2026-01-01 05:00:01"]


def test_suites_name_the_columns_they_read():
    suite = gx_suites.raw_suites()["members"]
    assert gx_suites.columns_of(suite) == [
        "member_id",
        "annual_fee",
        "joined_on",
        "expires_on",
        "_file_id",
        "_line_number",
    ]


def test_batches_are_not_fingerprinted(monkeypatch):
    """GX would md5 every cell of each batch (a label we never read); gx_validation turns that off."""
    import great_expectations.expectations as E
    from great_expectations.execution_engine import pandas_execution_engine

    assert hasattr(pandas_execution_engine, "HASH_THRESHOLD")  # the switch gx_validation sets

    def no_hashing(df):
        raise AssertionError("GX fingerprinted the batch")

    monkeypatch.setattr(pandas_execution_engine, "hash_pandas_dataframe", no_hashing)
    df = pd.DataFrame({"n": [1, 2, 3]})
    out = gx_validation.validate("fingerprint", df, [E.ExpectColumnValuesToBeBetween(column="n", min_value=2)])
    assert not out.success and out.failures[0]["unexpected_count"] == 1


def test_the_raw_checks_cover_every_raw_suite():
    from dagster_project.lib.quality import raw_validation

    assert raw_validation.RAW_GX_TABLES == list(gx_suites.raw_suites())


def test_former_mart_expectations_are_dbt_tests():
    """Marts are checked by dbt tests only (GX validates raw rows); every rule the GX mart suites held is a
    dbt test on the same column with the same or a stricter bound (tests/test_end_to_end.py plants a value
    breaking each one and sees its test fail)."""
    import yaml

    from dagster_project.lib.paths import DBT_PROJECT_DIR

    assert not hasattr(gx_suites, "mart_suites")
    tests = {}
    for f in (DBT_PROJECT_DIR / "models" / "marts").glob("_*models.yml"):
        for model in yaml.safe_load(f.read_text())["models"]:
            for col in model.get("columns", []):
                for t in col.get("data_tests", []):
                    name, args = (t, {}) if isinstance(t, str) else next(iter(t.items()))
                    tests.setdefault((model["name"], col["name"]), {})[name] = (args or {}).get("arguments", {})
    assert tests[("customer_rfm", "r_score")]["accepted_values"] == {"values": [1, 2, 3, 4, 5]}
    assert tests[("customer_rfm", "recency_days")]["accepted_range"] == {"min_value": 0}
    assert tests[("customer_rfm", "frequency")]["accepted_range"] == {"min_value": 1}
    assert "not_null" in tests[("customer_rfm", "segment")]
    assert tests[("dim_customers", "purchase_count")]["accepted_range"] == {"min_value": 0}
    assert {"matches_pattern"} <= set(tests[("dim_customers", "email_masked")])
    assert {"matches_pattern"} <= set(tests[("dim_customers", "phone_masked")])
    assert {"unique", "not_null"} <= set(tests[("fct_orders", "order_key")])
    assert tests[("fct_orders", "channel")]["accepted_values"] == {"values": ["online", "store"]}
    for col in ("gross_revenue", "refunds"):
        assert tests[("fct_orders", col)]["accepted_range"] == {"min_value": 0}
    assert tests[("repeat_purchase_ladder", "n")]["accepted_range"] == {"min_value": 1}
    assert tests[("cohort_retention", "months_since_first_purchase")]["accepted_range"] == {"min_value": 0}
    singular = {p.stem: p.read_text() for p in (DBT_PROJECT_DIR / "tests").glob("assert_*.sql")}
    for mart, cols in {
        "pareto_curve": ["cumulative_customer_share", "cumulative_revenue_share"],
        "repeat_purchase_ladder": ["repeat_rate", "repeat_rate_by_as_of"],
        "cohort_retention": ["share_retained"],
        "membership_value": ["penetration", "conversion_rate", "renewal_rate"],
        "revenue_identification": ["anonymous_revenue_share", "anonymous_order_share"],
    }.items():
        sql = singular[f"assert_{mart}_shares_between_0_and_1"]
        assert all(f"{c} not between" in sql for c in cols), mart
    assert "net_revenue < 0" in singular["assert_dim_customers_negative_net_revenue_has_refunds"]


def test_a_raw_suite_fails_on_out_of_range_values():
    suite = gx_suites.raw_suites()["members"]
    day = pd.Timestamp("2026-01-01")
    good = pd.DataFrame(
        {
            "member_id": ["M1", "M2"],
            "annual_fee": [0.0, 40.0],
            "joined_on": [day, day],
            "expires_on": [day, day + pd.Timedelta(days=365)],
            "_file_id": [1, 1],
            "_line_number": [2, 3],
        }
    )
    assert gx_validation.validate("raw.members", good, suite).success
    bad = good.assign(member_id=["M1", None], annual_fee=[-1.0, 40.0], _line_number=[2, 2])
    failed = {
        (r["expectation"], r["column"]): r["unexpected_count"]
        for r in gx_validation.validate("raw.members", bad, suite).failures
    }
    assert failed == {
        ("expect_column_values_to_not_be_null", "member_id"): 1,
        ("expect_column_values_to_be_between", "annual_fee"): 1,
        ("expect_compound_columns_to_be_unique", None): 2,
    }


def test_validation_report_shows_raw_suites_and_the_other_checks(tmp_path):
    outcome = gx_validation.Outcome(
        suite="raw.members",
        success=False,
        rows=2,
        results=[
            {
                "expectation": "expect_column_values_to_not_be_null",
                "column": "member_id",
                "success": False,
                "unexpected_count": 1,
                "sample": [],
            }
        ],
    )
    gx_validation.save(outcome, tmp_path)
    checks = [
        {
            "asset": "marts/fct_orders",
            "check": "accepted_range_fct_orders_refunds__0",
            "passed": False,
            "severity": "ERROR",
        },
        {"asset": "marts/fct_orders", "check": "net_revenue_reconciles_to_raw", "passed": True, "severity": "ERROR"},
        {"asset": "raw/members", "check": "gx_members", "passed": False, "severity": "ERROR"},
    ]
    page = gx_validation.render_html(tmp_path, "Data validation", checks)
    assert "raw.members: FAILED (2 rows)" in page and "0 of 1 suites passed" in page
    # the raw suite's own check is shown once (as its suite); dbt tests and reconciliations after it
    assert "dbt tests and reconciliation checks: 1 of 2 passed" in page and "gx_members" not in page
    assert "<td>accepted_range_fct_orders_refunds__0</td><td>failed</td>" in page
