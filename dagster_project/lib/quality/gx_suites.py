"""Great Expectations suites for the raw sources (the rules on models and marts are dbt tests).

Raw suites validate the rows not validated before, normally this run's (so cost follows the new data).
Timestamps must fall in a plausible window: not before 2000 and not after tomorrow (by the clock, not
the as-of date, so backfills of old dates still pass).
"""

from datetime import UTC, datetime, timedelta

PLAUSIBLE_FROM = datetime(2000, 1, 1)


def plausible_until() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None) + timedelta(days=1)


def columns_of(suite: list) -> list[str]:
    """The columns a suite's expectations read, in first-use order."""
    seen: list[str] = []
    for exp in suite:
        for key in ("column", "column_A", "column_B"):
            value = getattr(exp, key, None)
            if value and value not in seen:
                seen.append(value)
        for value in getattr(exp, "column_list", None) or []:
            if value not in seen:
                seen.append(value)
    return seen


def raw_suites() -> dict[str, list]:
    import great_expectations as gx

    E = gx.expectations
    until = plausible_until()
    lineage_unique = E.ExpectCompoundColumnsToBeUnique(column_list=["_file_id", "_line_number"])
    return {
        "shopify_order_lines": [
            E.ExpectColumnValuesToNotBeNull(column="order_name"),
            E.ExpectColumnValuesToBeInSet(
                column="financial_status",
                value_set=[
                    "paid",
                    "pending",
                    "authorized",
                    "partially_paid",
                    "refunded",
                    "partially_refunded",
                    "voided",
                ],
            ),
            E.ExpectColumnValuesToBeBetween(column="created_at", min_value=PLAUSIBLE_FROM, max_value=until),
            E.ExpectColumnValuesToBeBetween(column="lineitem_quantity", min_value=0, max_value=100_000),
            E.ExpectColumnValuesToBeBetween(column="lineitem_price", min_value=0),
            E.ExpectColumnValuesToBeBetween(column="refunded_amount", min_value=0),
            E.ExpectColumnValuesToMatchRegex(column="currency", regex=r"^[A-Z]{3}$"),
            lineage_unique,
        ],
        "square_item_lines": [
            E.ExpectColumnValuesToNotBeNull(column="transaction_id"),
            E.ExpectColumnValuesToBeInSet(column="event_type", value_set=["payment", "refund"]),
            E.ExpectColumnValuesToBeBetween(column="sold_at", min_value=PLAUSIBLE_FROM, max_value=until),
            E.ExpectColumnValuesToBeBetween(column="qty", min_value=-100_000, max_value=100_000),
            lineage_unique,
        ],
        "square_customers": [
            E.ExpectColumnValuesToNotBeNull(column="square_customer_id"),
            lineage_unique,
        ],
        "members": [
            E.ExpectColumnValuesToNotBeNull(column="member_id"),
            E.ExpectColumnValuesToBeBetween(column="annual_fee", min_value=0),
            E.ExpectColumnValuesToBeBetween(column="joined_on", min_value=PLAUSIBLE_FROM, max_value=until),
            E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="expires_on", column_B="joined_on", or_equal=True),
            lineage_unique,
        ],
        "marketing_spend": [
            E.ExpectColumnValuesToNotBeNull(column="channel"),
            E.ExpectColumnValuesToBeBetween(column="spend", min_value=0),
            E.ExpectColumnValuesToMatchRegex(column="currency", regex=r"^[A-Z]{3}$"),
            lineage_unique,
        ],
        "store_traffic": [
            E.ExpectColumnValuesToBeBetween(column="visitors", min_value=0),
            E.ExpectColumnValuesToBeBetween(column="entries", min_value=0),
            E.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="visitors", column_B="entries", or_equal=True, ignore_row_if="either_value_is_missing"
            ),
            lineage_unique,
        ],
        "generic_order_lines": [
            E.ExpectColumnValuesToNotBeNull(column="order_id"),
            E.ExpectColumnValuesToBeBetween(column="ordered_at", min_value=PLAUSIBLE_FROM, max_value=until),
            E.ExpectColumnValuesToMatchRegex(column="currency", regex=r"^[A-Z]{3}$"),
            lineage_unique,
        ],
        "exchange_rates": [
            E.ExpectColumnValuesToBeBetween(column="rate", min_value=0, strict_min=True),
            lineage_unique,
        ],
        "shopify_products": [
            E.ExpectColumnValuesToNotBeNull(column="sku"),
            E.ExpectColumnValuesToBeBetween(column="unit_cost", min_value=0),
            lineage_unique,
        ],
        "square_item_library": [
            E.ExpectColumnValuesToNotBeNull(column="sku"),
            E.ExpectColumnValuesToBeBetween(column="unit_cost", min_value=0),
            lineage_unique,
        ],
        "product_costs": [
            E.ExpectColumnValuesToNotBeNull(column="sku"),
            E.ExpectColumnValuesToBeBetween(column="unit_cost", min_value=0),
            E.ExpectColumnValuesToMatchRegex(column="currency", regex=r"^[A-Z]{3}$"),
            lineage_unique,
        ],
    }
