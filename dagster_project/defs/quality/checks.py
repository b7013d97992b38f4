"""Blocking data checks on the marts: Great Expectations suites and reconciliation to raw rows."""


import dagster as dg

from dagster_project.lib import gx_validation
from dagster_project.lib.resources import PipelineConfig


def _suites():
    import great_expectations as gx

    E = gx.expectations
    return {
        "customer_rfm": [
            E.ExpectColumnValuesToNotBeNull(column="customer_key"),
            E.ExpectColumnValuesToBeUnique(column="customer_key"),
            *[E.ExpectColumnValuesToBeBetween(column=c, min_value=1, max_value=5) for c in ("r_score", "f_score", "m_score")],
            E.ExpectColumnValuesToBeBetween(column="recency_days", min_value=0),
            E.ExpectColumnValuesToBeBetween(column="frequency", min_value=1),
            E.ExpectColumnValuesToNotBeNull(column="segment"),
        ],
        "dim_customers": [
            E.ExpectColumnValuesToNotBeNull(column="customer_key"),
            E.ExpectColumnValuesToBeUnique(column="customer_key"),
            E.ExpectColumnValuesToBeBetween(column="purchase_count", min_value=0),
            E.ExpectColumnValuesToMatchRegex(column="email_masked", regex=r"^.\*\*\*@", mostly=1.0),
            E.ExpectColumnValuesToMatchRegex(column="phone_masked", regex=r"^\+\d{5}\*\*\*\*\d{4}$", mostly=1.0),
        ],
        "fct_orders": [
            E.ExpectColumnValuesToNotBeNull(column="order_key"),
            E.ExpectColumnValuesToBeUnique(column="order_key"),
            E.ExpectColumnValuesToBeInSet(column="channel", value_set=["online", "store"]),
            E.ExpectColumnValuesToBeBetween(column="gross_revenue", min_value=0),
            E.ExpectColumnValuesToBeBetween(column="refunds", min_value=0),
        ],
    }


# A customer's net revenue may be negative only when refunds explain it.
NEGATIVE_NET_SQL = """
    select count(*) from marts.dim_customers d
    where d.net_revenue < 0 and not exists (
        select 1 from marts.fct_orders o where o.customer_key = d.customer_key and o.refunds > 0)
"""


def _gx_check(table: str):
    @dg.asset_check(
        asset=dg.AssetKey(["marts", table]), name=f"gx_{table}", blocking=True,
        description=f"Great Expectations suite for marts.{table} (validated through a pandas batch).",
    )
    def _check(pipeline: PipelineConfig) -> dg.AssetCheckResult:
        con = pipeline.connect(read_only=True)
        try:
            df = con.execute(f"select * from marts.{table}").df()
            extra_bad = con.execute(NEGATIVE_NET_SQL).fetchone()[0] if table == "dim_customers" else 0
        finally:
            con.close()
        outcome = gx_validation.validate(table, df, _suites()[table])
        failures = outcome.failures
        if extra_bad:
            failures.append({"expectation": "net_revenue_negative_only_with_refunds", "unexpected_count": int(extra_bad)})
        return dg.AssetCheckResult(
            passed=not failures,
            description="all expectations met" if not failures else
            "; ".join(f"{f['expectation']}({f.get('column') or ''}): {f['unexpected_count']} rows, e.g. {f.get('sample', [])}"
                      for f in failures),
            metadata={"rows": outcome.rows, "expectations": len(outcome.results) + (1 if table == "dim_customers" else 0),
                      "results": dg.MetadataValue.json(outcome.results)},
        )

    return _check


GX_CHECKS = [_gx_check(t) for t in ("customer_rfm", "dim_customers", "fct_orders")]


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
), sq_newest as (
    select transaction_id, max(_file_id) as f from raw.square_item_lines group by transaction_id
), sq as (
    select l.transaction_id,
           coalesce(min(l.sold_at) filter (where l.event_type = 'payment'), min(l.sold_at)) as ordered_at,
           sum(l.net_sales) as net
    from raw.square_item_lines l join sq_newest n on n.transaction_id = l.transaction_id and n.f = l._file_id
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
