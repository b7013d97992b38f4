"""Blocking data checks: Great Expectations suites on raw sources and marts, reconciliation to raw rows."""


import hashlib
import json

import dagster as dg

from dagster_project.lib import gx_suites, gx_validation, ingest, warehouse
from dagster_project.lib.resources import PipelineConfig


def _describe_failures(failures: list[dict]) -> str:
    return "; ".join(
        f"{f['expectation']}({f.get('column') or ''}): "
        + (f"could not be evaluated: {f['error']}" if f.get("error")
           else f"{f['unexpected_count']} rows, e.g. {f.get('sample', [])}")
        for f in failures
    )


def _gx_check(schema: str, table: str):
    """A blocking asset check running the GX suite of one table (raw: only rows not validated before)."""

    @dg.asset_check(
        asset=dg.AssetKey([schema, table]), name=f"gx_{table}", blocking=True,
        description=f"Great Expectations suite for {schema}.{table}"
                    + (" (rows of files not validated before: this run's, or a killed run's; a file that fails is "
                       "unloaded and loaded again by the next run)" if schema == "raw" else "")
                    + (f" (rows of builds not validated before, by their {BUILD_MARKER}: an incremental build's new "
                       "and changed rows; every row after a full refresh or a change of the suite; uniqueness across "
                       "the whole table is dbt's unique test)" if table in BUILD_MARKED_MARTS else "")
                    + ", validated through a pandas batch.",
    )
    def _check(context: dg.AssetCheckExecutionContext, pipeline: PipelineConfig) -> dg.AssetCheckResult:
        run_id = context.run.run_id
        df = None  # stays None when a raw table has no rows to validate
        files: list[int] = []
        builds: "list | None" = None  # a mart with a build marker: the builds whose rows are validated
        con = pipeline.connect(read_only=True)
        try:
            if schema == "raw":
                files = [r[0] for r in con.execute(
                    f"select distinct _file_id from raw.{table} where _file_id in ({ingest.UNVALIDATED_FILES}) "
                    "order by 1").fetchall()]
            suite = None
            if schema != "raw":
                suite = gx_suites.mart_suites()[table]
                if warehouse.column_exists(con, schema, table, BUILD_MARKER):
                    fingerprint = suite_fingerprint(suite)
                    builds = pending_builds(con, schema, table, fingerprint)
            # a raw table with no new rows needs no suite (nor the GX import, ~5 s, which then finishes in the
            # background while dbt builds); nor does a mart whose builds were all validated
            if files or (schema != "raw" and builds != []):
                suite = suite or gx_suites.raw_suites()[table]
                # only the columns the suite looks at leave DuckDB (a wide table at 10M rows is gigabytes in pandas)
                columns = ", ".join(f'"{c}"' for c in gx_suites.columns_of(suite))
                if schema == "raw":
                    df = con.execute(f"select {columns} from raw.{table} "
                                     f"where _file_id in ({', '.join(map(str, files))})").df()
                elif builds:
                    df = con.execute(f"select {columns} from {schema}.{table} where {BUILT} in "
                                     f"({', '.join('?' for _ in builds)})", builds).df()
                else:
                    df = con.execute(f"select {columns} from {schema}.{table}").df()
        finally:
            con.close()
        no_rows = df is None or df.empty
        if no_rows:
            outcome = gx_validation.Outcome(suite=f"{schema}.{table}", success=True, rows=0, results=[])
        else:
            outcome = gx_validation.validate(f"{schema}.{table}", df, suite)
        gx_validation.save(outcome, pipeline.paths.staging / run_id / "validations")
        failures = outcome.failures
        if failures:
            description = _describe_failures(failures)
        elif builds is not None:
            description = (f"all expectations met by the {outcome.rows} rows built since the last validation"
                           if builds else "no rows built since the last validation")
        else:
            description = "no new rows this run" if no_rows else "all expectations met"
        if builds and not failures:
            _record_validated_builds(pipeline, schema, table, builds, fingerprint, run_id)
        if files:
            names = _record_raw_outcome(pipeline, table, files, failures, description)
            if failures:
                description += (f". Not kept: {', '.join(names)} (unloaded; fix the export and the next run loads "
                                "it again)")
        return dg.AssetCheckResult(
            passed=not failures,
            description=description,
            metadata={"rows": outcome.rows, "expectations": len(outcome.results),
                      "results": dg.MetadataValue.json(outcome.results)},
        )

    return _check


# An incremental mart's build marker (fct_orders.built_at: when the dbt build that wrote the row started).
# Its suite validates the rows of builds not validated before with the same suite; a row is only rewritten
# by a later build, which gives it a new marker. NULL (rows written before the column existed) is a build too.
BUILD_MARKER = warehouse.BUILD_MARKER
BUILD_MARKED_MARTS = ("fct_orders",)  # the marts with that column (the check looks for the column itself)
BUILT = f"coalesce({BUILD_MARKER}, timestamp '1970-01-01')"
VALIDATED_BUILDS = "raw.validated_builds"


def suite_fingerprint(suite: list) -> str:
    """The suite's expectations (type and arguments) and the GX version: a change validates every row again."""
    spec = [e.configuration.to_json_dict() for e in suite]
    return hashlib.sha256(json.dumps([gx_validation.gx_version(), spec], sort_keys=True, default=str)
                          .encode()).hexdigest()


def pending_builds(con, schema: str, table: str, fingerprint: str) -> list:
    """The builds (marker values) in the table not yet validated with this suite, oldest first."""
    validated = ""
    if warehouse.table_exists(con, *VALIDATED_BUILDS.split(".")):
        validated = (f" except select built_at from {VALIDATED_BUILDS} "
                     f"where table_name = '{schema}.{table}' and fingerprint = '{fingerprint}'")
    return [r[0] for r in con.execute(
        f"select * from (select distinct {BUILT} as built_at from {schema}.{table}{validated}) order by 1").fetchall()]


def _record_validated_builds(pipeline: PipelineConfig, schema: str, table: str, builds: list, fingerprint: str,
                             run_id: str) -> None:
    """Remember the builds whose rows passed; forget builds no row carries any more (rewritten or deleted)."""
    con = pipeline.connect()
    try:
        con.execute(f"create table if not exists {VALIDATED_BUILDS} (table_name varchar not null, built_at "
                    "timestamp not null, fingerprint varchar not null, run_id varchar, validated_at timestamp)")
        con.execute(f"delete from {VALIDATED_BUILDS} where table_name = ? and (fingerprint <> ? or built_at not in "
                    f"(select distinct {BUILT} from {schema}.{table}))", [f"{schema}.{table}", fingerprint])
        con.executemany(f"insert into {VALIDATED_BUILDS} values (?, ?, ?, ?, current_timestamp)",
                        [[f"{schema}.{table}", b, fingerprint, run_id] for b in builds])
    finally:
        con.close()


def _record_raw_outcome(pipeline: PipelineConfig, table: str, files: list[int], failures: list, description: str
                        ) -> list[str]:
    """Raw rows that passed are marked validated; the files of rows that failed are unloaded (see
    ingest.unload_files), so the next run checks them again instead of building on them."""
    con = pipeline.connect()
    try:
        names = [r[0] for r in con.execute(
            f"select file_name from raw.load_ledger where file_id in ({', '.join(map(str, files))}) order by file_id"
        ).fetchall()]
        if failures:
            ingest.unload_files(con, table, files, f"failed gx_{table}: {description}")
        else:
            ingest.mark_validated(con, files)
    finally:
        con.close()
    return names


RAW_GX_TABLES = ["shopify_order_lines", "square_item_lines", "square_customers", "members", "marketing_spend",
                 "store_traffic", "generic_order_lines", "exchange_rates"]
MART_GX_TABLES = ["customer_rfm", "dim_customers", "fct_orders", "pareto_curve", "repeat_purchase_ladder",
                  "cohort_retention", "membership_value", "revenue_identification"]
GX_CHECKS = [_gx_check("raw", t) for t in RAW_GX_TABLES] + [_gx_check("marts", t) for t in MART_GX_TABLES]


RAW_NET_REVENUE_SQL = """
with shop_newest as (
    select order_name, max(_file_id) as f from raw.shopify_order_lines group by order_name
), shop as (
    select l.order_name,
           min(l.created_at) as ordered_at,
           sum(l.lineitem_quantity * l.lineitem_price) - coalesce(max(l.discount_amount), 0)
             - coalesce(max(l.refunded_amount), 0) as net,
           max(l.cancelled_at) is not null or max(l.financial_status) = 'voided' as cancelled
    from raw.shopify_order_lines l join shop_newest n on n.order_name = l.order_name and n.f = l._file_id
    group by l.order_name
), sq_newest as (  -- per payment or refund event: a refund may arrive in a later export than its sale
    select transaction_id, event_type, sold_at, max(_file_id) as f
    from raw.square_item_lines group by transaction_id, event_type, sold_at
), sq as (
    select l.transaction_id,
           coalesce(min(l.sold_at) filter (where l.event_type = 'payment'), min(l.sold_at)) as ordered_at,
           sum(l.net_sales) as net
    from raw.square_item_lines l
    join sq_newest n on n.transaction_id = l.transaction_id and n.event_type = l.event_type
                    and n.sold_at = l.sold_at and n.f = l._file_id
    group by l.transaction_id
), gen_newest as (
    select map_name, order_id, max(_file_id) as f from raw.generic_order_lines group by map_name, order_id
), gen as (
    select l.map_name, l.order_id, min(l.ordered_at) as ordered_at,
           round(sum(coalesce(l.line_amount, l.quantity * l.unit_price)), 2) as net
    from raw.generic_order_lines l
    join gen_newest n on n.map_name = l.map_name and n.order_id = l.order_id and n.f = l._file_id
    group by l.map_name, l.order_id
)
select
    coalesce((select sum(net) from shop where not cancelled and cast(ordered_at as date) <= ?), 0)
  + coalesce((select sum(net) from sq where cast(ordered_at as date) <= ?), 0)
  + coalesce((select sum(net) from gen where cast(ordered_at as date) <= ?), 0)
"""


@dg.asset_check(asset=dg.AssetKey(["marts", "fct_orders"]), blocking=True,
                description="Net revenue in fct_orders (in the orders' own currencies) equals net revenue computed "
                            "from the raw rows, to the cent.")
def net_revenue_reconciles_to_raw(pipeline: PipelineConfig) -> dg.AssetCheckResult:
    as_of = pipeline.as_of_date
    con = pipeline.connect(read_only=True)
    try:
        raw_net = con.execute(RAW_NET_REVENUE_SQL, [as_of, as_of, as_of]).fetchone()[0] or 0
        mart_net, anon_net = con.execute(
            "select coalesce(sum(net_revenue_original), 0), "
            "coalesce(sum(net_revenue_original) filter (where is_anonymous), 0) from marts.fct_orders"
        ).fetchone()
    finally:
        con.close()
    diff = round(float(mart_net) - float(raw_net), 2)
    return dg.AssetCheckResult(
        passed=abs(diff) < 0.005,
        description=f"fct_orders {float(mart_net):.2f} vs raw {float(raw_net):.2f} (difference {diff:.2f})",
        metadata={"net_revenue_marts": float(mart_net), "net_revenue_raw": float(raw_net),
                  "anonymous_share": float(anon_net) / float(mart_net) if mart_net else 0.0},
    )


# Every mart column that says revenue, value or LTV is net revenue: the valid orders of fct_orders (purchases
# and cancellation, refund and return documents, each on its own date) of the mart's customers and window.
# One check per mart, one query each, returning (units compared, units that differ, mart total, fct_orders total).
_FCT_NET = """
    select customer_key, order_date, net_revenue, is_purchase from marts.fct_orders
    where customer_key is not null and is_valid and order_date <= ?
"""

# Customers whose first purchase falls in their source's warm-up (maybe not new): cohort_retention and
# channel_economics leave them out, so their reconciliations compare over the same customers.
_LEFT_CENSORED = "select customer_key from marts.dim_customers where is_left_censored"


def _per_customer_sql(table: str, column: str, population: str) -> str:
    """A per-customer revenue column against each customer's net revenue in fct_orders."""
    return f"""
    with want as (
        select customer_key, sum(net_revenue) as net from ({_FCT_NET}) as o
        group by customer_key having {population}
    ), got as (
        select customer_key, {column} as net from marts.{table}
    )
    select count(*),
           count(*) filter (where got.customer_key is null or coalesce(got.net, 0) <> coalesce(want.net, 0)),
           coalesce(sum(got.net), 0), coalesce(sum(want.net), 0)
    from got full outer join want on want.customer_key = got.customer_key
    """


def _total_sql(table: str) -> str:
    """A mart's revenue total against the net revenue of every customer with a purchase."""
    return f"""
    with o as ({_FCT_NET}), buyers as (
        select customer_key from o group by customer_key having count(*) filter (where is_purchase) > 0
    )
    select 1,
           (select coalesce(sum(net_revenue), 0) from marts.{table})
             <> (select coalesce(sum(net_revenue), 0) from o where customer_key in (select customer_key from buyers)),
           (select coalesce(sum(net_revenue), 0) from marts.{table}),
           (select coalesce(sum(net_revenue), 0) from o where customer_key in (select customer_key from buyers))
    """


_COHORT_SQL = f"""
    with o as ({_FCT_NET}), cohorts as (
        select customer_key, cast(date_trunc('month', min(order_date) filter (where is_purchase)) as date) as cohort_month
        from o where customer_key not in ({_LEFT_CENSORED})
        group by customer_key having count(*) filter (where is_purchase) > 0
    ), want as (
        select cohorts.cohort_month, sum(o.net_revenue) as net
        from o join cohorts on cohorts.customer_key = o.customer_key group by cohorts.cohort_month
    ), got as (
        select cohort_month, sum(net_revenue) as net from marts.cohort_retention group by cohort_month
    )
    select count(*),
           count(*) filter (where got.cohort_month is null or want.cohort_month is null or got.net <> want.net),
           coalesce(sum(got.net), 0), coalesce(sum(want.net), 0)
    from got full outer join want on want.cohort_month = got.cohort_month
"""

# ltv_12m is published rounded to cents: a row agrees when it is within half a cent of the exact value
_CHANNEL_SQL = f"""
    with o as ({_FCT_NET}), firsts as (
        select customer_key, min(order_date) filter (where is_purchase) as first_purchase_date
        from o where customer_key not in ({_LEFT_CENSORED})
        group by customer_key having count(*) filter (where is_purchase) > 0
    ), want as (
        select d.acquisition_channel as channel, cast(date_trunc('month', f.first_purchase_date) as date) as month,
               count(distinct f.customer_key) as new_customers, sum(o.net_revenue) as net
        from firsts f
        join marts.dim_customers d on d.customer_key = f.customer_key
        join o on o.customer_key = f.customer_key
              and o.order_date >= f.first_purchase_date and o.order_date < f.first_purchase_date + 365
        group by 1, 2
    ), got as (
        select channel, acquisition_month as month, new_customers, ltv_12m
        from marts.channel_economics where new_customers > 0
    )
    select count(*),
           count(*) filter (where got.month is null or want.month is null or got.new_customers <> want.new_customers
                            or abs(cast(got.ltv_12m as double) - cast(want.net as double) / want.new_customers) > 0.005001),
           coalesce(sum(got.ltv_12m * got.new_customers), 0), coalesce(sum(want.net), 0)
    from got full outer join want on want.channel = got.channel and want.month = got.month
"""

REVENUE_RECONCILIATIONS = {
    # mart: (what is compared, the query)
    "dim_customers": ("customers' net_revenue", _per_customer_sql("dim_customers", "net_revenue", "true")),
    "customer_rfm": ("customers' monetary",
                     _per_customer_sql("customer_rfm", "monetary", "count(*) filter (where is_purchase) > 0")),
    "customer_ltv": ("customers' historical_ltv",
                     _per_customer_sql("customer_ltv", "historical_ltv", "count(*) filter (where is_purchase) > 0")),
    "pareto_curve": ("customers' net_revenue (customers with positive net revenue)",
                     _per_customer_sql("pareto_curve", "net_revenue", "sum(net_revenue) > 0")),
    "cohort_retention": ("cohorts' net_revenue over all months", _COHORT_SQL),
    "channel_economics": ("ltv_12m × new_customers per channel and acquisition month (first 365 days)", _CHANNEL_SQL),
    "omnichannel_value": ("net_revenue over the groups", _total_sql("omnichannel_value")),
    "customer_value_summary": ("net_revenue", _total_sql("customer_value_summary")),
}


def revenue_reconciliation(con, table: str, as_of) -> tuple[int, int, float, float]:
    """(rows compared, rows that differ, mart total, fct_orders total) for one mart of REVENUE_RECONCILIATIONS."""
    sql = REVENUE_RECONCILIATIONS[table][1]
    units, mismatched, mart_total, fct_total = con.execute(sql, [as_of] * sql.count("?")).fetchone()
    return int(units), int(mismatched), float(mart_total), float(fct_total)


def _revenue_check(table: str, what: str):
    """A blocking check: the mart's revenue equals fct_orders' net revenue over the same customers and window."""
    censored = (" Left-censored customers (dim_customers.is_left_censored: first purchase in their source's "
                "warm-up) are left out of the fct_orders side, as the mart leaves them out."
                if _LEFT_CENSORED in REVENUE_RECONCILIATIONS[table][1] else "")

    @dg.asset_check(
        asset=dg.AssetKey(["marts", table]), name=f"{table}_revenue_reconciles_to_fct_orders", blocking=True,
        description=f"{table}: {what} equal the net revenue of fct_orders' valid orders (cancellations, refunds "
                    "and returns included) over the same customers and window, up to the as-of date, to the cent."
                    + censored,
    )
    def _check(pipeline: PipelineConfig) -> dg.AssetCheckResult:
        con = pipeline.connect(read_only=True)
        try:
            units, mismatched, mart_total, fct_total = revenue_reconciliation(con, table, pipeline.as_of_date)
        finally:
            con.close()
        return dg.AssetCheckResult(
            passed=mismatched == 0,
            description=f"{table} {mart_total:.2f} vs fct_orders {fct_total:.2f} (difference "
                        f"{round(mart_total - fct_total, 2):.2f}); {mismatched} of {units} compared rows differ",
            metadata={"net_revenue_mart": mart_total, "net_revenue_fct_orders": fct_total,
                      "rows_compared": units, "rows_differing": mismatched},
        )

    return _check


REVENUE_CHECKS = [_revenue_check(t, what) for t, (what, _) in REVENUE_RECONCILIATIONS.items()]
