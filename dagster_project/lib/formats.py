"""The export layouts the pipeline reads: the contract between retailers' files, the demo
generator and ingestion.

Each layout lists its columns in file order.  ``required`` columns must be present in a
file's header or the whole file is rejected (named, with the missing columns); other
columns are optional and read when present.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# --- Shopify "Export orders" CSV (Admin > Orders > Export).  One row per line item; the
# order-level fields (every column but Name and the Lineitem ones) are filled on the first row of
# each order, and a later row may leave any of them blank: ingestion takes a required one (Currency,
# Created at) from the order (ingest._complete_shopify_orders).
SHOPIFY_ORDER_COLUMNS: list[str] = [
    "Name", "Email", "Financial Status", "Paid at", "Fulfillment Status", "Fulfilled at",
    "Accepts Marketing", "Currency", "Subtotal", "Shipping", "Taxes", "Total", "Discount Code",
    "Discount Amount", "Shipping Method", "Created at", "Lineitem quantity", "Lineitem name",
    "Lineitem price", "Lineitem compare at price", "Lineitem sku", "Lineitem requires shipping",
    "Lineitem taxable", "Lineitem fulfillment status", "Billing Name", "Billing Street",
    "Billing Address1", "Billing Address2", "Billing Company", "Billing City", "Billing Zip",
    "Billing Province", "Billing Country", "Billing Phone", "Shipping Name", "Shipping Street",
    "Shipping Address1", "Shipping Address2", "Shipping Company", "Shipping City", "Shipping Zip",
    "Shipping Province", "Shipping Country", "Shipping Phone", "Notes", "Note Attributes",
    "Cancelled at", "Payment Method", "Payment Reference", "Refunded Amount", "Vendor", "Id",
    "Tags", "Risk Level", "Source", "Lineitem discount", "Tax 1 Name", "Tax 1 Value",
    "Tax 2 Name", "Tax 2 Value", "Phone", "Receipt Number", "Duties", "Billing Province Name",
    "Shipping Province Name", "Payment ID", "Payment Terms Name", "Next Payment Due At",
    "Payment References",
]
# What the demo generator repeats on every line-item row (many shops' exports do; some leave Email,
# Created at and Currency blank after the first row, which ingestion accepts too).
SHOPIFY_LINE_FIELDS = [
    "Name", "Email", "Created at", "Currency", "Lineitem quantity", "Lineitem name",
    "Lineitem price", "Lineitem sku", "Lineitem discount",
]
# Filled only on the first row of an order (blank on its other rows).
SHOPIFY_ORDER_FIELDS = [
    c for c in SHOPIFY_ORDER_COLUMNS if c not in SHOPIFY_LINE_FIELDS
]
SHOPIFY_REQUIRED = [
    "Name", "Email", "Financial Status", "Created at", "Currency", "Lineitem quantity",
    "Lineitem price", "Discount Amount", "Refunded Amount", "Cancelled at", "Total",
]
SHOPIFY_FINANCIAL_STATUSES = [
    "paid", "pending", "authorized", "partially_paid", "refunded", "partially_refunded", "voided",
]

# --- Square "Items" detail CSV (Dashboard > Reports > Items > Export, "Item Detail").
# Two header versions are in the wild: 33 columns, and 35 with "GTIN" and "Vendor Name".
SQUARE_ITEMS_COLUMNS_V1: list[str] = [
    "Date", "Time", "Time Zone", "Category", "Item", "Qty", "Price Point Name", "SKU",
    "Modifiers Applied", "Gross Sales", "Discounts", "Net Sales", "Tax", "Transaction ID",
    "Payment ID", "Device Name", "Notes", "Details", "Event Type", "Location", "Dining Option",
    "Customer ID", "Customer Name", "Customer Reference ID", "Unit", "Count", "Itemization Type",
    "Fulfillment Note", "Channel", "Token", "Card Brand", "PAN Suffix", "Employee",
]
SQUARE_ITEMS_COLUMNS_V2: list[str] = SQUARE_ITEMS_COLUMNS_V1 + ["GTIN", "Vendor Name"]
SQUARE_ITEMS_REQUIRED = [
    "Date", "Time", "Time Zone", "Qty", "Gross Sales", "Discounts", "Net Sales",
    "Transaction ID", "Event Type", "Location",
]
SQUARE_EVENT_TYPES = ["Payment", "Refund"]

# --- Square customer directory export (Customers > Export).  Optional; links a Square
# Customer ID to the e-mail and phone the customer gave at the till.
SQUARE_CUSTOMERS_COLUMNS: list[str] = [
    "Reference ID", "First Name", "Last Name", "Email Address", "Phone Number",
    "Square Customer ID", "Creation Source", "First Visit", "Last Visit",
    "Email Subscription Status",
]
SQUARE_CUSTOMERS_REQUIRED = ["Square Customer ID", "Email Address", "Phone Number"]

# --- Membership roster (our documented layout; one row per member).
MEMBERS_COLUMNS: list[str] = [
    "member_id", "email", "phone", "joined_on", "plan", "annual_fee", "currency",
    "expires_on", "renewal_count", "accepts_marketing",
]
MEMBERS_REQUIRED = ["member_id", "joined_on", "plan", "annual_fee", "currency", "expires_on"]

# --- Marketing spend by channel and month.
SPEND_COLUMNS: list[str] = ["month", "channel", "spend", "currency"]
SPEND_REQUIRED = SPEND_COLUMNS

# --- Store traffic (footfall counters), by store and day.
TRAFFIC_COLUMNS: list[str] = ["date", "store", "visitors", "entries"]
TRAFFIC_REQUIRED = ["date", "store", "visitors"]

# --- Exchange rates (optional): how many units of the reporting currency one unit of `currency`
# buys, from `date` until the next rate of that currency.
RATES_COLUMNS: list[str] = ["date", "currency", "rate"]
RATES_REQUIRED = RATES_COLUMNS

# Square's time-zone display names (Rails / ActiveSupport names) -> IANA zones.
SQUARE_TIME_ZONES: dict[str, str] = {
    "Eastern Time (US & Canada)": "America/New_York",
    "Central Time (US & Canada)": "America/Chicago",
    "Mountain Time (US & Canada)": "America/Denver",
    "Arizona": "America/Phoenix",
    "Pacific Time (US & Canada)": "America/Los_Angeles",
    "Alaska": "America/Juneau",
    "Hawaii": "Pacific/Honolulu",
    "London": "Europe/London",
    "Edinburgh": "Europe/London",
    "Dublin": "Europe/Dublin",
    "Paris": "Europe/Paris",
    "Berlin": "Europe/Berlin",
    "Madrid": "Europe/Madrid",
    "Amsterdam": "Europe/Amsterdam",
    "Tokyo": "Asia/Tokyo",
    "Sydney": "Australia/Sydney",
    "Melbourne": "Australia/Melbourne",
    "Auckland": "Pacific/Auckland",
    "UTC": "UTC",
}


@dataclass(frozen=True)
class Layout:
    """One recognised export layout."""

    name: str  # raw table name, e.g. "shopify_order_lines"
    folder: str  # inbox sub-folder
    columns: list[str]
    required: list[str]
    # a column whose presence in the header identifies this layout inside its folder
    signature: str
    aliases: dict[str, str] = field(default_factory=dict)


LAYOUTS: list[Layout] = [
    Layout("shopify_order_lines", "shopify", SHOPIFY_ORDER_COLUMNS, SHOPIFY_REQUIRED, "Financial Status"),
    Layout("square_item_lines", "square", SQUARE_ITEMS_COLUMNS_V2, SQUARE_ITEMS_REQUIRED, "Transaction ID"),
    Layout("square_customers", "square", SQUARE_CUSTOMERS_COLUMNS, SQUARE_CUSTOMERS_REQUIRED, "Square Customer ID"),
    Layout("members", "members", MEMBERS_COLUMNS, MEMBERS_REQUIRED, "member_id"),
    Layout("marketing_spend", "spend", SPEND_COLUMNS, SPEND_REQUIRED, "spend"),
    Layout("store_traffic", "traffic", TRAFFIC_COLUMNS, TRAFFIC_REQUIRED, "visitors"),
    Layout("exchange_rates", "rates", RATES_COLUMNS, RATES_REQUIRED, "rate"),
]
