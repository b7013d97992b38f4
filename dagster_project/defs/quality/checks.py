"""Blocking data checks: marts' revenue reconciled to the raw rows and to fct_orders.

Value rules on models and marts (keys, ranges, shares, formats) are dbt tests in the models' YAML;
raw rows are validated by ingestion (lib/quality/raw_validation.py, reported by the `gx_<table>` checks).
"""

import dagster as dg

from dagster_project.lib.resources import PipelineConfig

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


@dg.asset_check(
    asset=dg.AssetKey(["marts", "fct_orders"]),
    blocking=True,
    description="Net revenue in fct_orders (in the orders' own currencies) equals net revenue computed "
    "from the raw rows, to the cent.",
)
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
        metadata={
            "net_revenue_marts": float(mart_net),
            "net_revenue_raw": float(raw_net),
            "anonymous_share": float(anon_net) / float(mart_net) if mart_net else 0.0,
        },
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
    ), totals as (
        select (select coalesce(sum(net_revenue), 0) from marts.{table}) as mart_total,
               (select coalesce(sum(net_revenue), 0) from o where customer_key in (select customer_key from buyers))
                   as fct_total
    )
    select 1, mart_total <> fct_total, mart_total, fct_total from totals
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
"""  # noqa: E501 (SQL or printed text)

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
"""  # noqa: E501 (SQL or printed text)

REVENUE_RECONCILIATIONS = {
    # mart: (what is compared, the query)
    "dim_customers": ("customers' net_revenue", _per_customer_sql("dim_customers", "net_revenue", "true")),
    "customer_rfm": (
        "customers' monetary",
        _per_customer_sql("customer_rfm", "monetary", "count(*) filter (where is_purchase) > 0"),
    ),
    "customer_ltv": (
        "customers' historical_ltv",
        _per_customer_sql("customer_ltv", "historical_ltv", "count(*) filter (where is_purchase) > 0"),
    ),
    "pareto_curve": (
        "customers' net_revenue (customers with positive net revenue)",
        _per_customer_sql("pareto_curve", "net_revenue", "sum(net_revenue) > 0"),
    ),
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
    censored = (
        " Left-censored customers (dim_customers.is_left_censored: first purchase in their source's "
        "warm-up) are left out of the fct_orders side, as the mart leaves them out."
        if _LEFT_CENSORED in REVENUE_RECONCILIATIONS[table][1]
        else ""
    )

    @dg.asset_check(
        asset=dg.AssetKey(["marts", table]),
        name=f"{table}_revenue_reconciles_to_fct_orders",
        blocking=True,
        description=f"{table}: {what} equal the net revenue of fct_orders' valid orders (cancellations, refunds "
        "and returns included) over the same customers and window, up to the as-of date, to the cent." + censored,
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
            metadata={
                "net_revenue_mart": mart_total,
                "net_revenue_fct_orders": fct_total,
                "rows_compared": units,
                "rows_differing": mismatched,
            },
        )

    return _check


REVENUE_CHECKS = [_revenue_check(t, what) for t, (what, _) in REVENUE_RECONCILIATIONS.items()]
