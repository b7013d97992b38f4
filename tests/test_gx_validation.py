"""Great Expectations validation through pandas batches: datetime ranges validated as numbers."""

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from dagster_project.lib import gx_suites, gx_validation

FROM, UNTIL = datetime(2000, 1, 1), datetime(2030, 1, 1)


def _between():
    import great_expectations as gx

    return gx.expectations.ExpectColumnValuesToBeBetween(column="at", min_value=FROM, max_value=UNTIL)


@pytest.mark.parametrize("tz", [None, "UTC", "America/New_York"])
def test_datetime_range_verdicts_and_samples(tz):
    values = [FROM, UNTIL, FROM - timedelta(microseconds=1), UNTIL + timedelta(microseconds=1), None,
              datetime(2026, 5, 17, 12, 30)]
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
    assert gx_suites.columns_of(suite) == ["member_id", "annual_fee", "joined_on", "expires_on", "_file_id",
                                           "_line_number"]


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


def test_customer_keys_are_checked_by_dbt_not_read_into_pandas():
    """The customer marts' suites look at values; their keys' uniqueness and presence are dbt tests on the
    same marts (blocking in the same run), so 2M text keys need not enter pandas."""
    import yaml

    from dagster_project.lib.paths import DBT_PROJECT_DIR

    tests = {}
    for f in (DBT_PROJECT_DIR / "models" / "marts").glob("_*models.yml"):
        for model in yaml.safe_load(f.read_text())["models"]:
            for col in model.get("columns", []):
                names = {t if isinstance(t, str) else next(iter(t)) for t in col.get("data_tests", [])}
                tests[(model["name"], col["name"])] = names
    for mart in ("customer_rfm", "dim_customers", "pareto_curve"):
        assert "customer_key" not in gx_suites.columns_of(gx_suites.mart_suites()[mart])
        assert {"unique", "not_null"} <= tests[(mart, "customer_key")], mart


def test_a_mart_suite_fails_on_out_of_range_scores():
    suite = gx_suites.mart_suites()["customer_rfm"]
    good = pd.DataFrame({"r_score": [1, 5], "f_score": [2, 3], "m_score": [4, 4], "recency_days": [0, 30],
                         "frequency": [1, 2], "segment": ["champions", "hibernating"]})
    assert gx_validation.validate("marts.customer_rfm", good, suite).success
    bad = good.assign(r_score=[0, 6], segment=["champions", None])
    failed = {r["column"]: r["unexpected_count"] for r in gx_validation.validate("marts.customer_rfm", bad, suite).failures}
    assert failed == {"r_score": 2, "segment": 1}
