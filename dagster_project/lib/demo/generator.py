"""Seeded, deterministic demo generator of retailer exports, in their real formats.

``generate_demo(data_dir)`` writes, under ``data_dir/inbox``, what a retailer that sells online
(Shopify) and in three stores (Square POS) would export, plus a membership roster, marketing spend
and store traffic counts.  Column layouts come from :mod:`dagster_project.lib.ingest.formats`.

The data carries planted behaviour that the marts are expected to find again:

* repeat-purchase ladder P(2nd|1st)=0.27, P(3rd|2nd)=0.45, P(4th|3rd)=0.54, then 0.60 (cap 30);
  first purchase uniform over the history, gaps of 7 days + exponential(mean 30 days), at most
  150 days; purchases after ``end_date`` are dropped (censoring: measure P(n+1|n) on customers
  whose n-th purchase is at least 150-180 days before ``end_date``);
* heavy-tailed value: a lognormal (sigma 1) basket multiplier per customer, so that the top 20% of
  customers bring most of the revenue;
* paid members (~30% of customers who reach a 3rd purchase join a few days after it) buy 1.5x
  larger baskets afterwards and spend several times what non-members do;
* identity: 60% online-only, 30% store-only, 10% omnichannel customers, the latter linked by
  exactly one of phone, e-mail or membership id; e-mails and phones written in varied forms;
* a few scripted customers (:data:`PLANTED`) whose exact outcome :func:`planted_expectations`
  states.

Determinism and scale: customers are generated in fixed chunks of ``CHUNK_CUSTOMERS``, each with
its own ``random.Random`` seeded from ``(seed, chunk number)`` (no wall clock except the default
``end_date``, no hash- or set-order dependence), so the same arguments give byte-identical
files; chunks are independent, so they could be generated in parallel, with Shopify order
numbers assigned at write time.  Memory stays bounded: one chunk is held at a time, plus per
store-day transaction counts and per channel-month acquisition counts.  Rows appear in customer
order, not in time order.

What ingestion sees (quirks planted on purpose):

* Shopify: order-level fields only on an order's first row; ``Created at`` etc. carry the
  order's UTC offset (-0500/-0400/-0800/-0700/+0000/+0530); voided orders are duplicates of a
  real order a few minutes later (``Cancelled at`` set); ~2% guest orders without e-mail/phone;
  a few guest orders with ``Created at`` = ``not a date`` (on all their rows); quoted ``Notes``
  with commas, doubled quotes and newlines; e-mails in varied case, some space-padded.
* Square: money as ``$1,234.50`` / ``-$12.00``; Refund rows follow their sale's Payment rows in
  the same file (same Transaction ID and Payment ID), dated 1-14 days later, with negative Qty,
  Gross/Net Sales and Tax and the line's discount given back (``Discounts`` >= 0); the sale
  date decides the header version; a few anonymous sales with ``Gross Sales`` like ``$7.0x`` (on
  one row) or ``Date`` like ``2025-02-30`` (on all rows), never with refunds; sales at 01:xx on
  November DST change days (ambiguous local time).  ``Customer Reference ID`` (= member id) is on
  every sale of a member's Square profile (store-only members and membership-linked omnichannel
  members), also sales before joining: it is the profile's current value.
* Omnichannel customers buy alternately online and in store, so with the ladder only those who
  buy twice show both channels (~10% of repeat buyers, ~3% of all customers).
"""

from __future__ import annotations

import bisect
import csv
import math
import os
import random
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from operator import itemgetter
from pathlib import Path
from typing import NamedTuple
from zoneinfo import ZoneInfo

from dagster_project.lib.ingest.formats import (
    MEMBERS_COLUMNS,
    SHOPIFY_ORDER_COLUMNS,
    SHOPIFY_PRODUCTS_COLUMNS,
    SPEND_COLUMNS,
    SQUARE_CUSTOMERS_COLUMNS,
    SQUARE_ITEM_LIBRARY_COLUMNS,
    SQUARE_ITEMS_COLUMNS_V1,
    SQUARE_ITEMS_COLUMNS_V2,
    SQUARE_TIME_ZONES,
    TRAFFIC_COLUMNS,
)

__all__ = [
    "CATALOGUE",
    "PLANTED",
    "PlantedLine",
    "PlantedOrder",
    "PlantedPerson",
    "PlantedSale",
    "generate_demo",
    "planted_expectations",
]

# --------------------------------------------------------------------------------------------
# Planted behaviour (the knobs)
# --------------------------------------------------------------------------------------------
LADDER = (0.27, 0.45, 0.54)  # P(2nd|1st), P(3rd|2nd), P(4th|3rd)
LADDER_TAIL = 0.60  # P(n+1|n) for n >= 4
MAX_PURCHASES = 30
GAP_MIN_DAYS, GAP_MEAN_DAYS, GAP_MAX_DAYS = 7, 30, 150
VALUE_SIGMA = 1.0  # lognormal sigma of the per-customer basket multiplier (mean 1)
ONLINE_BASKET_CENTS, STORE_BASKET_CENTS = 6000, 4500
MEMBER_RATE = 0.30  # share of customers reaching a 3rd purchase who join
MEMBER_BASKET_LIFT = 1.5
MEMBER_RENEWAL_RATE = 0.65
MEMBER_FEE = "49.00"
MEMBER_ID_BASE = 1000  # random members are M{base + customer index}; planted ones are below
KIND_WEIGHTS = (("online", 0.60), ("store", 0.30), ("both", 0.10))
COD_RATE = 0.05  # online customers who give a phone and no e-mail
ORDER_PHONE_RATE = 0.37  # phone on an order of a customer who also gives an e-mail (~40% overall)
GUEST_ORDER_RATE = 0.02  # anonymous Shopify orders, as a share of all orders
ANON_SALES_PER_KNOWN = 1.38  # anonymous walk-ins per known-customer store sale (~58% of sales)
SQUARE_REFUND_RATE = 0.03
NOTE_RATE, MULTILINE_NOTE_RATE = 0.015, 0.0025
MALFORMED_ORDER_RATE, MALFORMED_SALE_RATE = 0.0015, 0.0025
# Financial statuses of real orders.  Voided orders are extra (a duplicate the customer placed by
# mistake), so voiding never changes the purchase ladder.
ORDER_STATUSES = (
    ("paid", 0.895),
    ("refunded", 0.03),
    ("partially_refunded", 0.04),
    ("pending", 0.01),
    ("authorized", 0.005),
    ("partially_paid", 0.005),
)
VOIDED_RATE = 0.015
ACQUISITION_CHANNELS = (("google", 0.30), ("meta", 0.25), ("tiktok", 0.10), ("email", 0.10), ("organic", 0.25))
CAC_DOLLARS = {"google": 62.0, "meta": 45.0, "tiktok": 28.0, "email": 21.0}  # organic: no spend
CHUNK_CUSTOMERS = 10_000
PILOT_CUSTOMERS = 5_000  # sample used to turn target_lines into a number of customers


class _Store(NamedTuple):
    name: str
    time_zone: str  # Square display name
    tax_rate: int  # in 1/100000
    weight: float


STORES = (
    _Store("Brooklyn Flagship", "Eastern Time (US & Canada)", 8875, 0.45),
    _Store("SF Mission", "Pacific Time (US & Canada)", 8625, 0.30),
    _Store("Chicago Loop", "Central Time (US & Canada)", 10250, 0.25),
)
assert all(store.time_zone in SQUARE_TIME_ZONES for store in STORES)
STORE_OPEN_S, STORE_CLOSE_S = 8 * 3600, 21 * 3600
ONLINE_ZONES = (("America/New_York", 0.45), ("America/Los_Angeles", 0.35), ("UTC", 0.12), ("Asia/Kolkata", 0.08))
_US_ZONES = (True, True, False, False)  # which ONLINE_ZONES observe US DST
SHOPIFY_TAX_RATE = 8000  # in 1/100000
FREE_SHIPPING_FROM_CENTS, SHIPPING_CENTS = 7500, 695
ORDER_NUMBER_START, ORDER_ID_BASE = 1001, 5_100_000_000_000

# --------------------------------------------------------------------------------------------
# Reference lists
# --------------------------------------------------------------------------------------------
AREA_CODES = {  # area code -> (city, province code, province name, zip prefix)
    "212": ("New York", "NY", "New York", "100"),
    "718": ("Brooklyn", "NY", "New York", "112"),
    "310": ("Los Angeles", "CA", "California", "900"),
    "415": ("San Francisco", "CA", "California", "941"),
    "617": ("Boston", "MA", "Massachusetts", "021"),
    "773": ("Chicago", "IL", "Illinois", "606"),
    "312": ("Chicago", "IL", "Illinois", "606"),
    "206": ("Seattle", "WA", "Washington", "981"),
    "503": ("Portland", "OR", "Oregon", "972"),
    "512": ("Austin", "TX", "Texas", "787"),
}
_AREAS = tuple(AREA_CODES)
_PROVINCE_NAMES = {code: name for _, code, name, _ in AREA_CODES.values()}
_EXCHANGES = tuple(e for e in range(200, 1000) if e % 100 != 11 and e != 555)
_PHONE_SPACE = len(_AREAS) * len(_EXCHANGES) * 10_000
_PHONE_MULT = 48271  # coprime with _PHONE_SPACE: customer index -> number is a bijection
PHONE_FORMATS = ("+1{a}{e}{l}", "({a}) {e}-{l}", "{a}-{e}-{l}", "{a}.{e}.{l}", "1 {a} {e} {l}", "+1 {a}-{e}-{l}")
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example.com")
FIRST_NAMES = (
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Carlos",
    "Karen",
    "Daniel",
    "Lisa",
    "Matthew",
    "Nancy",
    "Anthony",
    "Sofia",
    "Wei",
    "Priya",
    "Kevin",
    "Aisha",
    "Jason",
    "Emily",
    "Luis",
    "Grace",
    "Omar",
    "Chloe",
    "Ryan",
    "Mei",
    "Diego",
    "Hannah",
)
LAST_NAMES = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Sanchez",
    "Clark",
    "Ramirez",
    "Lewis",
    "Robinson",
    "Walker",
    "Young",
    "Allen",
    "King",
    "Wright",
    "Scott",
    "Nguyen",
    "Chen",
    "Patel",
    "Kim",
)
STREETS = (
    "Main St",
    "Oak Ave",
    "Maple St",
    "Cedar Rd",
    "Pine St",
    "Elm St",
    "Washington Ave",
    "Lake St",
    "Hill Rd",
    "Park Ave",
    "2nd St",
    "Sunset Blvd",
)
EMPLOYEES = ("Alex R.", "Jordan P.", "Sam K.", "Taylor M.", "Casey L.", "Riley D.")
SIMPLE_NOTES = (
    "Gift wrap please",
    "Leave with doorman",
    "Please ring the bell",
    "Birthday present - no invoice in the box",
)
MULTILINE_NOTES = (  # quoted in the CSV: commas, embedded newlines, doubled quotes
    "Please leave at the side door, not the front.\nBuzzer is broken, call on arrival, thanks!",
    'Gift for my mom, please include a card saying "Happy birthday, love you"\nNo prices, please.',
    "Deliver after 5pm, weekdays only.\nIf nobody answers, leave it with the neighbour at #4B, she knows.",
)
_CATALOGUE_NAMES = {  # cheapest first within each category
    "Coffee": (
        "Drip Sachets x5",
        "House Blend Beans 250g",
        "Espresso Roast 250g",
        "Decaf Colombia 250g",
        "Single Origin Ethiopia",
        "Cold Brew Pack",
        "Reserve Geisha 100g",
        "Coffee Sampler Box",
        "Subscription Starter Kit",
        "Barista Bundle",
    ),
    "Tea": (
        "Green Sencha Sachets",
        "Earl Grey Tin",
        "Chamomile Blend",
        "Chai Spice Mix",
        "Jasmine Pearls",
        "Oolong Reserve",
        "Matcha Ceremonial",
        "Herbal Sampler",
        "Iron Teapot",
        "Tea Gift Chest",
    ),
    "Drinkware": (
        "Paper Filters x100",
        "Enamel Mug",
        "Glass Tumbler",
        "Espresso Cups x4",
        "Travel Cup",
        "Double-Wall Glass Set",
        "Ceramic Pour-Over",
        "French Press",
        "Thermos 1L",
        "Gooseneck Kettle",
    ),
    "Home": (
        "Cork Coasters",
        "Scented Candle",
        "Linen Napkins",
        "Tea Towel Set",
        "Stoneware Bowl",
        "Serving Tray",
        "Table Runner",
        "Oak Cutting Board",
        "Burr Grinder",
        "Wool Throw",
    ),
    "Apparel": (
        "Logo Socks",
        "Canvas Tote",
        "Cap",
        "Beanie",
        "Crew T-Shirt",
        "Long-Sleeve Tee",
        "Barista Apron",
        "Hoodie",
        "Wool Sweater",
        "Rain Jacket",
    ),
}
_VENDORS = {
    "Coffee": "Northside Roasters",
    "Tea": "Leaf & Kettle",
    "Drinkware": "Kiln Works",
    "Home": "Hearth Goods",
    "Apparel": "Common Thread",
}
# byte -> character tables for random ids (a slight, harmless bias towards the first letters)
_ALNUM_TABLE = bytes(ord((string.ascii_letters + string.digits)[i % 62]) for i in range(256))
_UPPER_TABLE = bytes(ord((string.ascii_uppercase + string.digits)[i % 36]) for i in range(256))
# Placeholders for the Shopify order number and order id, filled in when an order is written.
_NUMBER_MARK, _ID_MARK = "\x00", "\x01"


class Product(NamedTuple):
    sku: str
    name: str
    category: str
    vendor: str
    gtin: str
    price_cents: int


def _build_catalogue() -> tuple[Product, ...]:
    """50 products priced $5-$150 on a geometric scale (cheapest first), every category
    spanning the range."""
    cats = list(_CATALOGUE_NAMES)
    products = []
    for i in range(50):
        cat = cats[i % len(cats)]
        cents = int(round(500 * 30 ** (i / 49) / 50)) * 50
        products.append(
            Product(
                f"{cat[:3].upper()}-{i + 1:03d}",
                _CATALOGUE_NAMES[cat][i // 5],
                cat,
                _VENDORS[cat],
                f"0{850000000000 + i * 7:011d}",
                cents,
            )
        )
    return tuple(products)


CATALOGUE = _build_catalogue()
_PRICES = [p.price_cents for p in CATALOGUE]
_BY_SKU = {p.sku: p for p in CATALOGUE}

# --------------------------------------------------------------------------------------------
# Formatting helpers
# --------------------------------------------------------------------------------------------


def _q(text: str) -> str:
    """Quote a CSV field exactly like ``csv.writer`` (QUOTE_MINIMAL, ``\\n`` line endings)."""
    if "," in text or '"' in text or "\n" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def _v2_extra() -> dict[str, str]:
    """The GTIN and Vendor Name columns that v2 Square rows add, per SKU."""
    return {p.sku: f",{p.gtin},{_q(p.vendor)}" for p in CATALOGUE}


def _dec(cents: int) -> str:
    """Plain 2-decimal money: ``12.50``, ``-3.00``."""
    if 0 <= cents < _DEC_TABLE_SIZE:
        return _dec_table()[cents]
    if cents < 0:
        units, rest = divmod(-cents, 100)
        return f"-{units}.{rest:02d}"
    units, rest = divmod(cents, 100)
    return f"{units}.{rest:02d}"


_DEC_TABLE_SIZE = 100_000


@cache
def _dec_table() -> tuple[str, ...]:
    """``_dec`` of 0.00 .. 999.99, precomputed (most amounts are in that range)."""
    return tuple(f"{c // 100}.{c % 100:02d}" for c in range(_DEC_TABLE_SIZE))


def _usd(cents: int) -> str:
    """Square money text: ``$9.00``, ``$1,234.50``, ``-$12.00``."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}${cents // 100:,}.{cents % 100:02d}"


def _pct(amount_cents: int, rate: int) -> int:
    """Round-half-up ``amount * rate / 100000`` for non-negative amounts."""
    return (amount_cents * rate + 50_000) // 100_000


@cache
def _hms() -> tuple[str, ...]:
    """``HH:MM:SS`` for every second of a day."""
    return tuple(f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400))


def _phone_text(digits10: str, style: int) -> str:
    return PHONE_FORMATS[style].format(a=digits10[:3], e=digits10[3:6], l=digits10[6:])


def _e164(text: str) -> str:
    """Normalise a US phone written in any of our forms to E.164."""
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return "+1" + digits


def _norm_email(text: str) -> str:
    return text.strip().lower()


def _title_email(email: str) -> str:
    local, _, domain = email.partition("@")
    return ".".join(p.capitalize() for p in local.split(".")) + "@" + domain.capitalize()


def _email_text(rng: random.Random, email: str, force_variant: bool = False) -> str:
    """One written form of an e-mail: mostly as is, sometimes re-cased and/or space-padded."""
    r = rng.random()
    if force_variant:
        r = 0.70 + 0.30 * r
    if r < 0.70:
        return email
    if r < 0.84:
        return _title_email(email)
    if r < 0.90:
        return email.upper()
    if r < 0.95:
        return " " + email + " "
    return " " + _title_email(email) + "  "


def _add_years(d: date, years: int) -> date:
    try:
        return d.replace(year=d.year + years)
    except ValueError:  # 29 February
        return d.replace(year=d.year + years, day=28)


def _us_dst_days(start: date, end: date) -> list[date]:
    """US DST change days (2nd Sunday of March, 1st Sunday of November) within [start, end]."""
    days = []
    for year in range(start.year, end.year + 1):
        march = date(year, 3, 8) + timedelta(days=(6 - date(year, 3, 8).weekday()) % 7)
        november = date(year, 11, 1) + timedelta(days=(6 - date(year, 11, 1).weekday()) % 7)
        days += [d for d in (march, november) if start <= d <= end]
    return days


def _cumulative(pairs) -> tuple[tuple, list[float]]:
    """(values, cumulative weights) for :meth:`_Generator._pick`."""
    values, cum, total = [], [], 0.0
    for value, weight in pairs:
        total += weight
        values.append(value)
        cum.append(total)
    return tuple(values), cum


_V2_EXTRA = _v2_extra()
_PAID_STATUSES = frozenset({"paid", "refunded", "partially_refunded", "partially_paid"})
_KINDS = _cumulative(KIND_WEIGHTS)
_ZONES = _cumulative((i, w) for i, (_, w) in enumerate(ONLINE_ZONES))
_STORE_PICK = _cumulative((i, s.weight) for i, s in enumerate(STORES))
_STATUSES = _cumulative(ORDER_STATUSES)
_CHANNELS = _cumulative(ACQUISITION_CHANNELS)

# --------------------------------------------------------------------------------------------
# Calendar: the history window, local wall-clock seconds, UTC offsets
# --------------------------------------------------------------------------------------------


class _Calendar:
    """The history window.  Times are local wall-clock seconds since ``start`` 00:00."""

    def __init__(self, end: date, years: float):
        self.ndays = max(1, int(round(years * 365.25)))
        self.end = end
        self.start = end - timedelta(days=self.ndays - 1)
        self.horizon = self.ndays * 86400  # every event time t satisfies 0 <= t < horizon
        self.split_day = self.ndays // 2  # Square: sales before -> v1 header, after -> v2
        self.dates = [self.start + timedelta(days=d) for d in range(self.ndays)]
        self.iso = [d.isoformat() for d in self.dates]
        self.month_of_day = [d.strftime("%Y-%m") for d in self.dates]
        self.months = sorted(set(self.month_of_day))
        self.dst_days = [(d - self.start).days for d in _us_dst_days(self.start, end)]
        self.dst_flag = bytearray(self.ndays)
        for d in self.dst_days:
            self.dst_flag[d] = 1
        self.hms = _hms()
        # per online zone: UTC offset text before / after 02:00 local, per day
        self.offsets = [self._offsets(zone) for zone, _ in ONLINE_ZONES]

    def _offsets(self, zone: str) -> tuple[list[str], list[str]]:
        tz = ZoneInfo(zone)

        def text(day: date, hour: int) -> str:
            minutes = int(datetime(day.year, day.month, day.day, hour, tzinfo=tz).utcoffset().total_seconds()) // 60
            sign = "-" if minutes < 0 else "+"
            return f"{sign}{abs(minutes) // 60:02d}{abs(minutes) % 60:02d}"

        return [text(d, 0) for d in self.dates], [text(d, 12) for d in self.dates]

    def day_of(self, days_before_end: int) -> int:
        return self.ndays - 1 - days_before_end

    def online_time(self, zone: int, t: int) -> int:
        """Move a US-zone time out of 01:00-03:00 on DST change days (no gap/ambiguous hour)."""
        s = t % 86400
        if 3600 <= s < 10800 and _US_ZONES[zone] and self.dst_flag[t // 86400]:
            return t + 7200
        return t

    def shopify_ts(self, zone: int, t: int) -> str:
        """``2026-01-24 17:34:28 -0500`` for local wall time ``t`` in an online zone."""
        d, s = divmod(self.online_time(zone, t), 86400)
        before, after = self.offsets[zone]
        return f"{self.iso[d]} {self.hms[s]} {(before if s < 7200 else after)[d]}"


@cache
def _calendar(end: date, years: float) -> _Calendar:
    return _Calendar(end, years)


# --------------------------------------------------------------------------------------------
# Row layouts
# --------------------------------------------------------------------------------------------


class _RowPattern:
    """Renders CSV rows of ``columns`` from a tuple of values.

    ``variables[i]`` (a column name, or a tuple of columns sharing one value) takes
    ``values[i]``; ``fixed`` columns get their constant; other columns stay empty.  Values must
    already be CSV-safe (see :func:`_q`).  Much cheaper than ``csv.writer`` for wide rows.
    """

    def __init__(self, columns: list[str], variables: list, fixed: dict[str, str]):
        slot_of = {}
        for i, v in enumerate(variables):
            for column in (v,) if isinstance(v, str) else v:
                slot_of[column] = i
        assert set(slot_of) | set(fixed) <= set(columns), "unknown column"
        self.size = len(variables)
        # the constant text around the variable columns, and the value for each variable column
        marked = ["\x02" if c in slot_of else _q(fixed.get(c, "")) for c in columns]
        self._texts = ",".join(marked).split("\x02")
        # (a trailing dummy index makes itemgetter return a tuple even for one column)
        self._values = itemgetter(*[slot_of[c] for c in columns if c in slot_of], 0)

    def render(self, values: tuple) -> str:
        """The row, comma-joined, without line terminator."""
        assert len(values) == self.size, "values do not match the pattern's variables"
        out = [""] * (2 * len(self._texts) - 1)
        out[::2] = self._texts
        out[1::2] = self._values(values)[:-1]
        return "".join(out)


# What the generator repeats on every Shopify line-item row (many shops' exports do; some leave Email,
# Created at and Currency blank after the first row, which ingestion accepts too).
SHOPIFY_LINE_FIELDS = [
    "Name",
    "Email",
    "Created at",
    "Currency",
    "Lineitem quantity",
    "Lineitem name",
    "Lineitem price",
    "Lineitem sku",
    "Lineitem discount",
]
# Filled only on the first row of an order (blank on its other rows).
SHOPIFY_ORDER_FIELDS = [c for c in SHOPIFY_ORDER_COLUMNS if c not in SHOPIFY_LINE_FIELDS]

# Shopify: the first row of an order carries every field; later rows only SHOPIFY_LINE_FIELDS.
_SHOP_FIRST = _RowPattern(
    SHOPIFY_ORDER_COLUMNS,
    [
        "Name",
        "Email",
        "Financial Status",
        "Paid at",
        "Fulfillment Status",
        "Fulfilled at",
        "Accepts Marketing",
        "Subtotal",
        "Shipping",
        ("Taxes", "Tax 1 Value"),
        "Total",
        "Discount Code",
        "Discount Amount",
        "Shipping Method",
        "Created at",
        "Lineitem quantity",
        "Lineitem name",
        "Lineitem price",
        "Lineitem sku",
        "Lineitem fulfillment status",
        ("Billing Name", "Shipping Name"),
        ("Billing Street", "Billing Address1", "Shipping Street", "Shipping Address1"),
        ("Billing City", "Shipping City"),
        ("Billing Zip", "Shipping Zip"),
        ("Billing Province", "Shipping Province"),
        ("Billing Province Name", "Shipping Province Name"),
        "Billing Phone",
        "Shipping Phone",
        "Phone",
        "Notes",
        "Note Attributes",
        "Cancelled at",
        "Payment Method",
        ("Payment Reference", "Payment References"),
        "Refunded Amount",
        "Vendor",
        "Id",
        "Tags",
    ],
    {
        "Currency": "USD",
        "Lineitem requires shipping": "true",
        "Lineitem taxable": "true",
        "Lineitem discount": "0.00",
        "Billing Country": "US",
        "Shipping Country": "US",
        "Risk Level": "Low",
        "Source": "web",
        "Tax 1 Name": "Sales Tax 8%",
    },
)
_SHOP_LATER_VARIABLES = [
    "Name",
    "Email",
    "Created at",
    "Lineitem quantity",
    "Lineitem name",
    "Lineitem price",
    "Lineitem sku",
]
_SHOP_LATER = _RowPattern(
    SHOPIFY_ORDER_COLUMNS, _SHOP_LATER_VARIABLES, {"Currency": "USD", "Lineitem discount": "0.00"}
)
assert set(_SHOP_LATER_VARIABLES) | {"Currency", "Lineitem discount"} == set(SHOPIFY_LINE_FIELDS)

# Square rows are assembled from three segments; check that they tile the two layouts.
_SQ_HEAD = ["Date", "Time", "Time Zone"]
_SQ_ITEM = [
    "Category",
    "Item",
    "Qty",
    "Price Point Name",
    "SKU",
    "Modifiers Applied",
    "Gross Sales",
    "Discounts",
    "Net Sales",
    "Tax",
]
_SQ_TXN = SQUARE_ITEMS_COLUMNS_V1[len(_SQ_HEAD) + len(_SQ_ITEM) :]
_SQ_TXN_SEGMENT = _RowPattern(
    _SQ_TXN,
    [
        "Transaction ID",
        "Payment ID",
        "Device Name",
        "Event Type",
        ("Location", "Channel"),
        "Customer ID",
        "Customer Name",
        "Customer Reference ID",
        "Card Brand",
        "PAN Suffix",
        "Employee",
    ],
    {"Itemization Type": "Physical Item"},
)
assert _SQ_HEAD + _SQ_ITEM == SQUARE_ITEMS_COLUMNS_V1[: len(_SQ_HEAD) + len(_SQ_ITEM)]
assert SQUARE_ITEMS_COLUMNS_V2 == SQUARE_ITEMS_COLUMNS_V1 + ["GTIN", "Vendor Name"]

# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Order:
    """One Shopify order, ready to be formatted."""

    t: int  # local wall-clock seconds since the start of history
    zone: int
    lines: list[tuple[Product, int, int]]  # product, quantity, unit price (cents)
    status: str = "paid"
    discount_code: str = ""
    discount_cents: int = 0
    refunded_cents: int = 0
    email: str = ""
    phone: str = ""
    billing_phone: str = ""
    shipping_phone: str = ""
    accepts_marketing: bool = False
    note: str = ""
    note_attributes: str = ""
    billing_name: str = ""
    address: tuple[str, str, str, str] = ("", "", "", "")  # street, city, zip, province code
    tags: str = ""
    cod: bool = False
    bad_date: bool = False


@dataclass(slots=True)
class _Sale:
    """One Square transaction: its Payment rows and, maybe, later Refund rows."""

    day: int
    sec: int
    store: int
    lines: list[tuple[Product, int, int, int]]  # product, quantity, unit price, discount (cents)
    customer_id: str = ""
    customer_name: str = ""
    reference_id: str = ""
    refund_day: int = -1
    refund_sec: int = 0
    refund_lines: tuple[int, ...] = ()
    malformed: int = 0  # 0 no, 1 money like "$12.3x", 2 impossible date like "2025-02-30"


@dataclass(slots=True)
class _Person:
    """A random identifiable customer."""

    idx: int
    kind: str  # online | store | both
    first: str
    last: str
    email: str  # canonical (lower-case); "" for phone-only online shoppers
    phone: str  # 10 digits
    zone: int
    store: int
    mult: float
    accepts_marketing: bool
    address: tuple[str, str, str, str]
    cod: bool = False
    square_id: str = ""
    member_id: str = ""
    member_from_day: int = -1
    link: str = ""  # omnichannel: phone | email | member
    directory_phone_style: int = -1

    @property
    def till_reference(self) -> str:
        """Member id shown at the till: store-only members, and omnichannel members linked by
        membership (phone/e-mail-linked omnichannel customers keep a single link)."""
        return self.member_id if self.kind == "store" or self.link == "member" else ""


@dataclass
class _Chunk:
    """Everything one generator produced, in memory, before it is written."""

    ndays: int
    shopify: list[tuple[str, int]] = field(default_factory=list)  # (order text, rows)
    square: list[tuple[bool, str, int]] = field(default_factory=list)  # (v2?, text, rows)
    square_customers: list[dict] = field(default_factory=list)
    members: list[dict] = field(default_factory=list)
    acquisitions: dict[tuple[str, str], int] = field(default_factory=dict)  # (month, channel)
    store_day_tx: list[list[int]] = field(default_factory=list)

    def __post_init__(self):
        if not self.store_day_tx:
            self.store_day_tx = [[0] * self.ndays for _ in STORES]

    @property
    def line_rows(self) -> int:
        return sum(n for _, n in self.shopify) + sum(n for _, _, n in self.square)


# --------------------------------------------------------------------------------------------
# Planted (scripted) customers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlantedLine:
    """A line item: catalogue SKU, quantity, unit price, and (Square only) discount in cents."""

    sku: str
    qty: int
    price_cents: int
    discount_cents: int = 0


@dataclass(frozen=True)
class PlantedOrder:
    """A scripted Shopify order; ``email`` / ``phone`` exactly as written in the file."""

    days_before_end: int
    time: str
    zone: str
    lines: tuple[PlantedLine, ...]
    email: str = ""
    phone: str = ""
    status: str = "paid"
    discount_cents: int = 0
    refunded_cents: int = 0
    utm_source: str = ""


@dataclass(frozen=True)
class PlantedSale:
    """A scripted Square sale, with Refund rows for ``refund_lines`` ``refund_after_days``
    later (0 = no refund)."""

    days_before_end: int
    time: str
    store: str
    lines: tuple[PlantedLine, ...]
    refund_after_days: int = 0
    refund_lines: tuple[int, ...] = ()


@dataclass(frozen=True)
class PlantedPerson:
    """One scripted person and everything the files say about them."""

    name: str
    first: str
    last: str
    orders: tuple[PlantedOrder, ...] = ()
    sales: tuple[PlantedSale, ...] = ()
    square_id: str = ""  # Square customer id on the sales; a directory row when set
    square_email: str = ""
    square_phone: str = ""
    member_id: str = ""
    member_email: str = ""
    member_phone: str = ""
    member_joined_days_before_end: int = 0
    description: str = ""


_L = PlantedLine
PLANTED: list[PlantedPerson] = [
    PlantedPerson(
        "omni_phone",
        "Olivia",
        "Phone",
        orders=(
            PlantedOrder(
                200,
                "10:15:00",
                "America/New_York",
                (_L("COF-011", 2, 1000), _L("DRI-018", 1, 1650)),
                phone="(646) 263-0134",
                utm_source="meta",
            ),
            PlantedOrder(90, "19:42:10", "America/New_York", (_L("TEA-022", 1, 2150),), phone="646.263.0134"),
        ),
        sales=(
            PlantedSale(150, "12:30:00", "Brooklyn Flagship", (_L("HOM-034", 1, 4950),)),
            PlantedSale(30, "17:05:00", "Brooklyn Flagship", (_L("APP-040", 1, 7500, 750), _L("COF-006", 1, 700))),
        ),
        square_id="PLANTEDOMNIPHONE0000000001",
        square_phone="+1 646-263-0134",
        description="phone-only online shopper; Square directory has the phone (other form), no e-mail",
    ),
    PlantedPerson(
        "omni_email",
        "Ava",
        "Email",
        orders=(
            PlantedOrder(
                160,
                "08:05:33",
                "America/Los_Angeles",
                (_L("DRI-038", 1, 6500), _L("TEA-017", 2, 1500)),
                email="ava.omni@planted.example.com",
                utm_source="google",
            ),
        ),
        sales=(
            PlantedSale(120, "11:11:11", "SF Mission", (_L("COF-016", 1, 1400),)),
            PlantedSale(45, "15:45:00", "SF Mission", (_L("HOM-009", 3, 850),)),
        ),
        square_id="PLANTEDOMNIEMAIL0000000001",
        square_email=" AVA.Omni@Planted.Example.com ",
        description="e-mail-only match: Square directory e-mail in other case, with spaces",
    ),
    PlantedPerson(
        "member_bridge",
        "Noah",
        "Member",
        orders=(
            PlantedOrder(
                320,
                "21:00:00",
                "America/New_York",
                (_L("APP-035", 1, 5300),),
                email="noah.member@planted.example.com",
                utm_source="email",
            ),
            PlantedOrder(
                20,
                "07:30:45",
                "America/New_York",
                (_L("APP-045", 1, 10600), _L("COF-021", 2, 2000)),
                email="noah.member@planted.example.com",
            ),
        ),
        sales=(
            PlantedSale(200, "13:00:00", "Chicago Loop", (_L("DRI-028", 1, 3250),)),
            PlantedSale(60, "18:20:00", "Chicago Loop", (_L("HOM-024", 2, 2450, 490),)),
        ),
        square_id="PLANTEDMEMBERBRIDGE0000001",
        square_email="noah.till@planted.example.com",
        member_id="M000001",
        member_email="Noah.Member@planted.example.com",
        member_joined_days_before_end=350,
        description="Square sales carry the member id; the roster e-mail is the Shopify e-mail; "
        "the Square directory e-mail appears nowhere else; renewal due in 15 days",
    ),
    PlantedPerson(
        "transitive",
        "Liam",
        "Transitive",
        orders=(
            PlantedOrder(
                250,
                "12:00:00",
                "America/Los_Angeles",
                (_L("TEA-027", 1, 3050),),
                email="liam.a@planted.example.com",
                phone="+16282630177",
                utm_source="tiktok",
            ),
            PlantedOrder(
                100,
                "16:40:00",
                "America/Los_Angeles",
                (_L("COF-021", 2, 2000),),
                email="liam.b@planted.example.com",
                phone="628-263-0177",
            ),
        ),
        sales=(
            PlantedSale(80, "09:30:00", "SF Mission", (_L("DRI-033", 1, 4600),)),
            PlantedSale(10, "20:15:00", "SF Mission", (_L("TEA-017", 1, 1500),)),
        ),
        square_id="PLANTEDTRANSITIVE000000001",
        square_email=" Liam.B@planted.example.com",
        description="order A (e-mail x, phone p), order B (phone p other form, e-mail y), "
        "Square directory e-mail y: one person",
    ),
    PlantedPerson(
        "refunds",
        "Emma",
        "Refunds",
        orders=(
            PlantedOrder(
                280,
                "14:00:00",
                "UTC",
                (_L("HOM-039", 1, 7000), _L("COF-021", 1, 2000)),
                email="emma.refunds@planted.example.com",
                utm_source="organic",
            ),
            PlantedOrder(
                140,
                "10:00:00",
                "UTC",
                (_L("APP-040", 1, 7500), _L("COF-001", 5, 500)),
                email="emma.refunds@planted.example.com",
                status="partially_refunded",
                refunded_cents=3000,
            ),
            PlantedOrder(
                70,
                "18:30:00",
                "UTC",
                (_L("HOM-029", 1, 3500),),
                email="emma.refunds@planted.example.com",
                status="voided",
            ),
        ),
        sales=(
            PlantedSale(
                40,
                "14:10:00",
                "SF Mission",
                (_L("COF-031", 1, 4000), _L("DRI-018", 1, 1650, 165)),
                refund_after_days=5,
                refund_lines=(1,),
            ),
        ),
        square_id="PLANTEDREFUNDS000000000001",
        square_email="EMMA.REFUNDS@PLANTED.EXAMPLE.COM",
        description="paid order (90.00), partially refunded order (Subtotal 100.00, Refunded "
        "30.00), voided order (excluded); store sale with a later refund of a line",
    ),
]
del _L


def planted_expectations() -> dict[str, dict]:
    """What the pipeline should find for each planted person, computed from the script.

    Per person: ``purchases`` (Shopify orders that are not voided + Square sales),
    ``online_orders``, ``store_sales``, ``voided_orders``, ``channels`` ({'online', 'store'}),
    ``net_revenue`` (dollars) / ``net_revenue_cents`` (Shopify: sum(qty*price) - Discount Amount -
    Refunded Amount over non-voided orders; Square: Net Sales of Payment rows + Refund rows),
    ``emails`` (lower-cased, trimmed), ``phones`` (E.164), ``square_customer_ids``,
    ``member_ids``, ``is_member``, ``first_purchase_days_before_end`` and
    ``last_purchase_days_before_end``.  Requires a history of at least a year.
    """
    result: dict[str, dict] = {}
    for p in PLANTED:
        valid = [o for o in p.orders if o.status != "voided"]
        online = sum(
            sum(ln.qty * ln.price_cents for ln in o.lines) - o.discount_cents - o.refunded_cents for o in valid
        )
        store = 0
        for s in p.sales:
            nets = [ln.qty * ln.price_cents - ln.discount_cents for ln in s.lines]
            store += sum(nets)
            if s.refund_after_days:
                store -= sum(nets[i] for i in s.refund_lines)
        emails = {o.email for o in p.orders} | {p.square_email, p.member_email}
        phones = {o.phone for o in p.orders} | {p.square_phone, p.member_phone}
        days = [o.days_before_end for o in valid] + [s.days_before_end for s in p.sales]
        result[p.name] = {
            "purchases": len(valid) + len(p.sales),
            "online_orders": len(valid),
            "store_sales": len(p.sales),
            "voided_orders": len(p.orders) - len(valid),
            "channels": ({"online"} if valid else set()) | ({"store"} if p.sales else set()),
            "net_revenue_cents": online + store,
            "net_revenue": round((online + store) / 100, 2),
            "emails": sorted({_norm_email(e) for e in emails if e}),
            "phones": sorted({_e164(x) for x in phones if x}),
            "square_customer_ids": [p.square_id] if p.square_id else [],
            "member_ids": [p.member_id] if p.member_id else [],
            "is_member": bool(p.member_id),
            "first_purchase_days_before_end": max(days),
            "last_purchase_days_before_end": min(days),
        }
    return result


# --------------------------------------------------------------------------------------------
# The generator: people -> orders and sales -> formatted rows in a _Chunk
# --------------------------------------------------------------------------------------------


class _Generator:
    """Generates rows into a :class:`_Chunk` from its own random stream."""

    def __init__(self, cal: _Calendar, seed: int, stream: str):
        self.cal = cal
        self.rng = random.Random(f"{seed}:{stream}")
        self.chunk = _Chunk(cal.ndays)
        self.phone_offset = (seed * 1_000_003) % _PHONE_SPACE
        self._item_cache: dict[tuple, str] = {}

    # -- fast random helpers (random.Random's randint/choice/choices are slow) ---------------

    def _int(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi]."""
        return lo + int(self.rng.random() * (hi - lo + 1))

    def _choice(self, seq):
        return seq[int(self.rng.random() * len(seq))]

    def _pick(self, table: tuple[tuple, list[float]]):
        """Weighted pick from a :func:`_cumulative` table."""
        values, cum = table
        return values[min(bisect.bisect_right(cum, self.rng.random() * cum[-1]), len(values) - 1)]

    def _random_id(self, table: bytes, k: int) -> str:
        """Random ``k``-character id over the alphabet of a byte translation table."""
        return self.rng.randbytes(k).translate(table).decode("ascii")

    def _multiplier(self) -> float:
        return self.rng.lognormvariate(-(VALUE_SIGMA**2) / 2, VALUE_SIGMA)

    # -- random customers ------------------------------------------------------------------

    def write_customer(self, idx: int) -> None:
        """Generate one identifiable customer and all their rows."""
        p = self._person(idx)
        times = self._schedule()
        in_store = self._channels(p.kind, len(times))
        self._maybe_join(p, times)
        if p.kind == "both":
            self._choose_link(p)
        store_days = [t // 86400 for t, s in zip(times, in_store, strict=False) if s]
        if store_days:
            self._directory_row(p, store_days)
        if p.member_id:
            self._member_row(p)
        first_online = True
        for t, store in zip(times, in_store, strict=False):
            if store:
                self._customer_sale(p, t)
            else:
                self._customer_order(p, t, first_online)
                first_online = False

    def _person(self, idx: int) -> _Person:
        n = (idx * _PHONE_MULT + self.phone_offset) % _PHONE_SPACE
        area = _AREAS[n % len(_AREAS)]
        n //= len(_AREAS)
        phone = f"{area}{_EXCHANGES[n % len(_EXCHANGES)]}{n // len(_EXCHANGES):04d}"
        first, last = self._choice(FIRST_NAMES), self._choice(LAST_NAMES)
        kind = self._pick(_KINDS)
        cod = kind != "store" and self.rng.random() < COD_RATE
        email = f"{first}.{last}{idx}@{self._choice(EMAIL_DOMAINS)}".lower()
        city, prov, _, zip3 = AREA_CODES[area]
        address = (f"{self._int(1, 9999)} {self._choice(STREETS)}", city, f"{zip3}{self._int(0, 99):02d}", prov)
        return _Person(
            idx,
            kind,
            first,
            last,
            "" if cod else email,
            phone,
            zone=self._pick(_ZONES),
            store=self._pick(_STORE_PICK),
            mult=self._multiplier(),
            accepts_marketing=self.rng.random() < 0.55,
            address=address,
            cod=cod,
        )

    def _schedule(self) -> list[int]:
        """Purchase times following the ladder; those after the end of history are dropped."""
        rnd, horizon = self.rng.random, self.cal.horizon
        t = rnd() * horizon
        times = [int(t)]
        while len(times) < MAX_PURCHASES:
            n = len(times)
            if rnd() >= (LADDER[n - 1] if n <= len(LADDER) else LADDER_TAIL):
                break
            gap = GAP_MIN_DAYS * 86400 + self.rng.expovariate(1 / (GAP_MEAN_DAYS * 86400))
            t += min(gap, GAP_MAX_DAYS * 86400)
            if t >= horizon:
                break
            times.append(int(t))
        return times

    def _channels(self, kind: str, n: int) -> list[bool]:
        """True = store purchase.  Omnichannel customers alternate, starting at random."""
        if kind != "both":
            return [kind == "store"] * n
        start = self.rng.random() < 0.5
        return [(i % 2 == 0) == start for i in range(n)]

    def _maybe_join(self, p: _Person, times: list[int]) -> None:
        """Membership: a few days after the 3rd purchase, for ~30% of those who get there."""
        if len(times) < 3 or self.rng.random() >= MEMBER_RATE:
            return
        day = times[2] // 86400 + self._int(2, 6)
        if day < self.cal.ndays:
            p.member_from_day = day
            p.member_id = f"M{MEMBER_ID_BASE + p.idx:06d}"

    def _choose_link(self, p: _Person) -> None:
        """How an omnichannel customer's store identity connects to their online one."""
        r = self.rng.random()
        if p.member_id and r < 0.5:
            p.link = "member"
        elif p.cod or r < 0.75:
            p.link = "phone"
            p.directory_phone_style = self._int(0, len(PHONE_FORMATS) - 1)
        else:
            p.link = "email"

    def _directory_row(self, p: _Person, store_days: list[int]) -> None:
        """The customer's row in the Square customer directory."""
        rng = self.rng
        p.square_id = self._random_id(_UPPER_TABLE, 26)
        email = phone = ""
        if p.kind == "store":  # e-mail only, phone only, or both
            r = rng.random()
            if r < 0.60:
                email = _email_text(rng, p.email)
            if r >= 0.35:
                phone = _phone_text(p.phone, self._int(0, len(PHONE_FORMATS) - 1))
        elif p.link == "phone":
            phone = _phone_text(p.phone, p.directory_phone_style)
        elif p.link == "email":
            email = _email_text(rng, p.email, force_variant=True)
        else:  # member: a till e-mail that appears nowhere else
            email = f"{p.first}{p.last}.{p.idx}@till.example.net".lower()
        self.chunk.square_customers.append(
            {
                "Reference ID": p.till_reference,
                "First Name": p.first,
                "Last Name": p.last,
                "Email Address": email,
                "Phone Number": phone,
                "Square Customer ID": p.square_id,
                "Creation Source": "Instant Profile" if rng.random() < 0.7 else "Directory",
                "First Visit": self.cal.iso[store_days[0]],
                "Last Visit": self.cal.iso[store_days[-1]],
                "Email Subscription Status": "subscribed" if email and p.accepts_marketing else "unsubscribed",
            }
        )

    def _member_row(self, p: _Person) -> None:
        """Roster row, with the identity the member gave online (store-only: at the till)."""
        rng, cal = self.rng, self.cal
        joined = cal.dates[p.member_from_day]
        expires, renewals = _add_years(joined, 1), 0
        while expires <= cal.end and rng.random() < MEMBER_RENEWAL_RATE:
            renewals += 1
            expires = _add_years(joined, renewals + 1)
        email = _email_text(rng, p.email) if p.email else ""
        phone = ""
        if not email or rng.random() < 0.4:
            styles = [s for s in range(len(PHONE_FORMATS)) if s != p.directory_phone_style]
            phone = _phone_text(p.phone, self._choice(styles))
        self.chunk.members.append(
            {
                "member_id": p.member_id,
                "email": email,
                "phone": phone,
                "joined_on": cal.iso[p.member_from_day],
                "plan": "annual",
                "annual_fee": MEMBER_FEE,
                "currency": "USD",
                "expires_on": expires.isoformat(),
                "renewal_count": renewals,
                "accepts_marketing": "yes" if p.accepts_marketing else "no",
            }
        )

    # -- baskets ---------------------------------------------------------------------------

    def _basket(self, target_cents: float) -> list[tuple[Product, int, int]]:
        """1-4 distinct products (product, quantity, unit price) worth about ``target_cents``."""
        rnd = self.rng.random
        n = int(rnd() * 4) + 1
        per_line = target_cents / n
        centre = bisect.bisect_left(_PRICES, per_line) - 4  # then jitter by 0..8 positions
        last = len(CATALOGUE) - 1
        lines, used = [], 0
        for _ in range(n):
            i = centre + int(rnd() * 9)
            i = 0 if i < 0 else last if i > last else i
            if used >> i & 1:
                continue
            used |= 1 << i
            product = CATALOGUE[i]
            qty = int(per_line / product.price_cents + 0.5) or 1
            lines.append((product, qty if qty <= 12 else 12, product.price_cents))
        return lines

    def _target(self, p: _Person, base: int, day: int) -> float:
        lift = MEMBER_BASKET_LIFT if p.member_id and day >= p.member_from_day else 1.0
        return base * p.mult * lift * (0.6 + 0.8 * self.rng.random())

    # -- Shopify ---------------------------------------------------------------------------

    def _customer_order(self, p: _Person, t: int, first_online: bool) -> None:
        rng, cal = self.rng, self.cal
        t = cal.online_time(p.zone, t)
        day = t // 86400
        order = _Order(
            t,
            p.zone,
            self._basket(self._target(p, ONLINE_BASKET_CENTS, day)),
            accepts_marketing=p.accepts_marketing,
            billing_name=f"{p.first} {p.last}",
            address=p.address,
            cod=p.cod,
            email=_email_text(rng, p.email) if p.email else "",
        )
        if p.cod or p.link == "phone" or rng.random() < ORDER_PHONE_RATE:
            self._set_phones(order, p)
        if first_online:
            channel = self._pick(_CHANNELS)
            order.note_attributes = f"utm_source: {channel}"
            if channel in CAC_DOLLARS:
                key = (cal.month_of_day[day], channel)
                self.chunk.acquisitions[key] = self.chunk.acquisitions.get(key, 0) + 1
            if rng.random() < 0.3:
                order.discount_code = "WELCOME10"
        elif rng.random() < 0.12:
            order.discount_code = "SAVE15"
        if p.member_id and day >= p.member_from_day:
            order.tags = "member"
        self._finish_order(order)
        if rng.random() < VOIDED_RATE / (1 - VOIDED_RATE):
            self._voided_duplicate(order)
        if rng.random() < GUEST_ORDER_RATE / (1 - GUEST_ORDER_RATE):
            self._guest_order(bad_date=False)
        if rng.random() < MALFORMED_ORDER_RATE:
            self._guest_order(bad_date=True)

    def _set_phones(self, order: _Order, p: _Person) -> None:
        """Billing phone always, order/shipping phone sometimes, each in its own written form
        (never the form used in the Square directory)."""
        rnd = self.rng.random
        styles = [s for s in range(len(PHONE_FORMATS)) if s != p.directory_phone_style]
        order.billing_phone = _phone_text(p.phone, self._choice(styles))
        if rnd() < 0.5:
            order.phone = _phone_text(p.phone, self._choice(styles))
        if rnd() < 0.5:
            order.shipping_phone = _phone_text(p.phone, self._choice(styles))

    def _finish_order(self, order: _Order) -> None:
        """Discount, status, refund and note of a real (non-voided) order; then format it."""
        rnd = self.rng.random
        items = sum(q * price for _, q, price in order.lines)
        if order.discount_code:
            rate = 10 if order.discount_code == "WELCOME10" else 15
            order.discount_cents = (items * rate + 50) // 100
        subtotal = items - order.discount_cents
        order.status = self._pick(_STATUSES)
        if order.status == "refunded":
            order.refunded_cents = subtotal
        elif order.status == "partially_refunded":
            order.refunded_cents = min(subtotal - 1, max(1, int(subtotal * (0.1 + 0.5 * rnd()))))
        r = rnd()
        if r < MULTILINE_NOTE_RATE:
            order.note = self._choice(MULTILINE_NOTES)
        elif r < MULTILINE_NOTE_RATE + NOTE_RATE:
            order.note = self._choice(SIMPLE_NOTES)
        self._format_order(order)

    def _voided_duplicate(self, order: _Order) -> None:
        """A duplicate placed by mistake minutes later and voided (never a purchase)."""
        t = order.t + self._int(120, 1800)
        if t >= self.cal.horizon:
            return
        self._format_order(
            _Order(
                t,
                order.zone,
                order.lines,
                status="voided",
                email=order.email,
                phone=order.phone,
                billing_phone=order.billing_phone,
                shipping_phone=order.shipping_phone,
                accepts_marketing=order.accepts_marketing,
                billing_name=order.billing_name,
                address=order.address,
                tags=order.tags,
                cod=order.cod,
            )
        )

    def _guest_order(self, bad_date: bool) -> None:
        """An anonymous order (no e-mail, no phone); ``bad_date``: Created at 'not a date'."""
        cal = self.cal
        zone = self._pick(_ZONES)
        t = cal.online_time(zone, int(self.rng.random() * cal.horizon))
        area = self._choice(_AREAS)
        city, prov, _, zip3 = AREA_CODES[area]
        order = _Order(
            t,
            zone,
            self._basket(ONLINE_BASKET_CENTS * self._multiplier()),
            billing_name=f"{self._choice(FIRST_NAMES)} {self._choice(LAST_NAMES)}",
            address=(f"{self._int(1, 9999)} {self._choice(STREETS)}", city, f"{zip3}{self._int(0, 99):02d}", prov),
            bad_date=bad_date,
        )
        self._finish_order(order)

    def _format_order(self, o: _Order) -> None:
        """Format one order (order-level fields on its first row only) into the chunk.  The
        order number and id are placeholders, filled in when the chunk is written."""
        cal, rnd, ts, t, zone = self.cal, self.rng.random, self.cal.shopify_ts, o.t, o.zone
        subtotal = -o.discount_cents
        for _, q, price in o.lines:
            subtotal += q * price
        shipping = 0 if subtotal >= FREE_SHIPPING_FROM_CENTS else SHIPPING_CENTS
        taxes = _pct(subtotal, SHOPIFY_TAX_RATE)
        created = "not a date" if o.bad_date else ts(zone, t)
        paid_at = fulfilled_at = cancelled_at = ""
        if o.status in _PAID_STATUSES:
            paid_at = ts(zone, min(t + int(rnd() * 91), cal.horizon - 1))
            t_ship = t + 86400 + int(rnd() * 2 * 86400)
            if t_ship < cal.horizon:
                fulfilled_at = ts(zone, t_ship)
        elif o.status == "voided":
            cancelled_at = ts(zone, min(t + 60 + int(rnd() * 3541), cal.horizon - 1))
        name, email = "#" + _NUMBER_MARK, _q(o.email)
        street, city, zip_code, prov = o.address
        product, qty, price = o.lines[0]
        rows = [
            _SHOP_FIRST.render(
                (
                    name,
                    email,
                    o.status,
                    paid_at,
                    "fulfilled" if fulfilled_at else "unfulfilled",
                    fulfilled_at,
                    "yes" if o.accepts_marketing else "no",
                    _dec(subtotal),
                    _dec(shipping),
                    _dec(taxes),
                    _dec(subtotal + shipping + taxes),
                    o.discount_code,
                    _dec(o.discount_cents),
                    "Free Shipping" if shipping == 0 else "Standard Shipping",
                    created,
                    str(qty),
                    _q(product.name),
                    _dec(price),
                    product.sku,
                    "fulfilled" if fulfilled_at else "pending",
                    o.billing_name,
                    street,
                    city,
                    zip_code,
                    prov,
                    _PROVINCE_NAMES.get(prov, ""),
                    o.billing_phone,
                    o.shipping_phone,
                    o.phone,
                    _q(o.note),
                    o.note_attributes,
                    cancelled_at,
                    "Cash on Delivery (COD)" if o.cod else "Shopify Payments",
                    f"c{_ID_MARK}.1",
                    _dec(o.refunded_cents),
                    _q(product.vendor),
                    _ID_MARK,
                    o.tags,
                )
            )
        ]
        for product, qty, price in o.lines[1:]:
            rows.append(
                _SHOP_LATER.render((name, email, created, str(qty), _q(product.name), _dec(price), product.sku))
            )
        self.chunk.shopify.append(("\n".join(rows) + "\n", len(rows)))

    # -- Square ----------------------------------------------------------------------------

    def _customer_sale(self, p: _Person, t: int) -> None:
        rnd = self.rng.random
        day = t // 86400
        store = p.store if rnd() < 0.85 else self._pick(_STORE_PICK)
        basket = self._basket(self._target(p, STORE_BASKET_CENTS, day))
        sale = _Sale(
            day,
            STORE_OPEN_S + int(rnd() * (STORE_CLOSE_S - STORE_OPEN_S)),
            store,
            self._discounted(basket),
            customer_id=p.square_id,
            customer_name=f"{p.first} {p.last}",
            reference_id=p.till_reference,
        )
        self._maybe_refund(sale)
        self._format_sale(sale)
        for _ in range(int(ANON_SALES_PER_KNOWN) + (rnd() < ANON_SALES_PER_KNOWN % 1)):
            self._walk_in()
        if rnd() < MALFORMED_SALE_RATE:
            self._walk_in(malformed=1 if rnd() < 0.5 else 2)

    def _discounted(self, basket: list[tuple[Product, int, int]]) -> list[tuple[Product, int, int, int]]:
        """Square lines (product, quantity, unit price, discount); ~10% get 10% off."""
        rnd = self.rng.random
        return [(pr, q, price, (q * price + 5) // 10 if rnd() < 0.10 else 0) for pr, q, price in basket]

    def _maybe_refund(self, sale: _Sale) -> None:
        """~3% of sales get Refund rows 1-14 days later (if still inside the history)."""
        rnd = self.rng.random
        if rnd() >= SQUARE_REFUND_RATE:
            return
        day = sale.day + self._int(1, 14)
        if day < self.cal.ndays:
            n = len(sale.lines)
            sale.refund_day, sale.refund_sec = day, STORE_OPEN_S + self._int(0, 12 * 3600 - 1)
            sale.refund_lines = tuple(range(n)) if rnd() < 0.4 else (self._int(0, n - 1),)

    def _walk_in(
        self, malformed: int = 0, day: int | None = None, sec: int | None = None, store: int | None = None
    ) -> None:
        """An anonymous store sale (no customer fields)."""
        rnd = self.rng.random
        if day is None:
            day = int(rnd() * self.cal.ndays)
        if sec is None:
            sec = STORE_OPEN_S + int(rnd() * (STORE_CLOSE_S - STORE_OPEN_S))
        if store is None:
            store = self._pick(_STORE_PICK)
        basket = self._basket(STORE_BASKET_CENTS * self._multiplier())
        sale = _Sale(day, sec, store, self._discounted(basket), malformed=malformed)
        if not malformed:
            self._maybe_refund(sale)
        self._format_sale(sale)

    def write_dst_walk_ins(self) -> None:
        """Anonymous sales in every store on every US DST change day, including late-night
        sales in the repeated hour (01:00-01:59) of the November change."""
        for day in self.cal.dst_days:
            if self.cal.dates[day].month == 11:
                times = ("00:55:00", "01:20:00", "01:45:30", "14:00:00")
            else:  # March: 02:00-02:59 does not exist
                times = ("01:50:00", "03:10:00", "14:00:00")
            for store in range(len(STORES)):
                for hms in times:
                    h, m, s = map(int, hms.split(":"))
                    self._walk_in(day=day, sec=h * 3600 + m * 60 + s, store=store)

    def _format_sale(self, s: _Sale) -> None:
        """Format a transaction (Payment rows, then any Refund rows) in the header version of
        its sale date: the older half of history in v1 (33 columns), the newer in v2 (35)."""
        rng, cal = self.rng, self.cal
        store = STORES[s.store]
        txn, payment = self._random_id(_ALNUM_TABLE, 22), self._random_id(_ALNUM_TABLE, 22)
        r = rng.random()
        brand = (
            "Visa" if r < 0.45 else "MasterCard" if r < 0.70 else "American Express" if r < 0.80 else ""
        )  # "" = cash
        pan = f"{int(rng.random() * 10000):04d}" if brand else ""
        device = "Counter 1" if r * 10 % 2 < 1 else "Counter 2"
        employee = EMPLOYEES[int(r * 1000) % len(EMPLOYEES)]
        v2 = s.day >= cal.split_day
        sale_date = cal.iso[s.day] if s.malformed != 2 else f"{cal.dates[s.day].year}-02-30"
        cache = self._item_cache
        rows = []
        for event, day, sec, sign, idxs in (
            ("Payment", s.day, s.sec, 1, range(len(s.lines))),
            ("Refund", s.refund_day, s.refund_sec, -1, s.refund_lines),
        ):
            if day < 0:
                continue
            head = f"{sale_date if sign > 0 else cal.iso[day]},{cal.hms[sec]},{store.time_zone}"
            tail = _SQ_TXN_SEGMENT.render(
                (
                    txn,
                    payment,
                    device,
                    event,
                    store.name,
                    s.customer_id,
                    _q(s.customer_name),
                    s.reference_id,
                    brand,
                    pan,
                    employee,
                )
            )
            for i in idxs:
                product, qty, price, disc = s.lines[i]
                corrupt = s.malformed == 1 and sign > 0 and i == 0  # "$12.30" -> "$12.3x"
                key = (product.sku, qty, price, disc, s.store, sign, corrupt)
                item = cache.get(key) or self._item_segment(key, product)
                rows.append(f"{head},{item},{tail}{_V2_EXTRA[product.sku] if v2 else ''}\n")
        self.chunk.square.append((v2, "".join(rows), len(rows)))
        self.chunk.store_day_tx[s.store][s.day] += 1

    def _item_segment(self, key: tuple, product: Product) -> str:
        """Category..Tax columns of a Square row (cached: there are few distinct values)."""
        _, qty, price, disc, store, sign, corrupt = key
        gross, net = qty * price, qty * price - disc
        gross_text = _usd(sign * gross)
        if corrupt:
            gross_text = gross_text[:-1] + "x"
        seg = ",".join(
            [
                _q(product.category),
                _q(product.name),
                f"{sign * qty}.0",
                "Regular",
                product.sku,
                "",
                _q(gross_text),
                _q(_usd(-sign * disc)),
                _q(_usd(sign * net)),
                _q(_usd(sign * _pct(net, STORES[store].tax_rate))),
            ]
        )
        self._item_cache[key] = seg
        return seg

    # -- planted customers -----------------------------------------------------------------

    def write_planted(self) -> None:
        """The scripted customers of :data:`PLANTED` (activity before the start of a short
        history is skipped)."""
        for p in PLANTED:
            sales = [s for s in p.sales if self.cal.day_of(s.days_before_end) >= 0]
            if p.square_id and sales:
                days = [self.cal.day_of(s.days_before_end) for s in sales]
                self.chunk.square_customers.append(
                    {
                        "Reference ID": p.member_id,
                        "First Name": p.first,
                        "Last Name": p.last,
                        "Email Address": p.square_email,
                        "Phone Number": p.square_phone,
                        "Square Customer ID": p.square_id,
                        "Creation Source": "Directory",
                        "First Visit": self.cal.iso[min(days)],
                        "Last Visit": self.cal.iso[max(days)],
                        "Email Subscription Status": "subscribed" if p.square_email else "unsubscribed",
                    }
                )
            if p.member_id:
                joined = self.cal.end - timedelta(days=p.member_joined_days_before_end)
                self.chunk.members.append(
                    {
                        "member_id": p.member_id,
                        "email": p.member_email,
                        "phone": p.member_phone,
                        "joined_on": joined.isoformat(),
                        "plan": "annual",
                        "annual_fee": MEMBER_FEE,
                        "currency": "USD",
                        "expires_on": _add_years(joined, 1).isoformat(),
                        "renewal_count": 0,
                        "accepts_marketing": "yes",
                    }
                )
            for o in p.orders:
                self._planted_order(p, o)
            for s in sales:
                self._planted_sale(p, s)

    def _planted_order(self, p: PlantedPerson, o: PlantedOrder) -> None:
        day = self.cal.day_of(o.days_before_end)
        if day < 0:
            return
        h, m, s = map(int, o.time.split(":"))
        zone = [z for z, _ in ONLINE_ZONES].index(o.zone)
        self._format_order(
            _Order(
                day * 86400 + h * 3600 + m * 60 + s,
                zone,
                [(_BY_SKU[ln.sku], ln.qty, ln.price_cents) for ln in o.lines],
                status=o.status,
                discount_cents=o.discount_cents,
                refunded_cents=o.refunded_cents,
                email=o.email,
                phone=o.phone,
                billing_phone=o.phone,
                accepts_marketing=True,
                billing_name=f"{p.first} {p.last}",
                note_attributes=f"utm_source: {o.utm_source}" if o.utm_source else "",
                address=("1 Planted Way", "New York", "10001", "NY"),
            )
        )

    def _planted_sale(self, p: PlantedPerson, sale: PlantedSale) -> None:
        day = self.cal.day_of(sale.days_before_end)
        h, m, s = map(int, sale.time.split(":"))
        self._format_sale(
            _Sale(
                day,
                h * 3600 + m * 60 + s,
                [st.name for st in STORES].index(sale.store),
                [(_BY_SKU[ln.sku], ln.qty, ln.price_cents, ln.discount_cents) for ln in sale.lines],
                customer_id=p.square_id,
                customer_name=f"{p.first} {p.last}",
                reference_id=p.member_id,
                refund_day=day + sale.refund_after_days if sale.refund_after_days else -1,
                refund_sec=15 * 3600,
                refund_lines=sale.refund_lines,
            )
        )


# --------------------------------------------------------------------------------------------
# Output files
# --------------------------------------------------------------------------------------------


class _SplitCsv:
    """A CSV written in numbered parts of at most ``max_rows`` data rows; a block (one order or
    transaction) is never split across parts."""

    def __init__(self, folder: Path, name: str, header: list[str], max_rows: int):
        self.folder, self.name, self.max_rows = folder, name, max(1, max_rows)
        self.header = ",".join(_q(c) for c in header) + "\n"
        self.parts: list[list] = []  # [path, rows]
        self._file = None

    def write(self, text: str, rows: int) -> None:
        if not self.parts or (self.parts[-1][1] and self.parts[-1][1] + rows > self.max_rows):
            self._next_part()
        self.parts[-1][1] += rows
        self._file.write(text)

    def _next_part(self) -> None:
        self.close()
        path = self.folder / self.name.format(n=len(self.parts) + 1)
        self._file = open(path, "w", encoding="utf-8", newline="", buffering=1 << 20)
        self._file.write(self.header)
        self.parts.append([path, 0])

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class _Writer:
    """Writes chunks, in order, to the inbox; numbers Shopify orders as they are written."""

    def __init__(self, root: Path, max_rows: int):
        self.root = root
        self.dirs = {k: root / "inbox" / k for k in ("shopify", "square", "members", "spend", "traffic")}
        for folder in self.dirs.values():
            folder.mkdir(parents=True, exist_ok=True)
        for folder, pattern in (
            (self.dirs["shopify"], "orders_export_*.csv"),
            (self.dirs["square"], "items-*.csv"),
            (self.dirs["square"], ".items-v*.partial"),
        ):
            for stale in sorted(folder.glob(pattern)):  # parts of an earlier, larger run
                stale.unlink()
        self.shopify = _SplitCsv(self.dirs["shopify"], "orders_export_{n}.csv", SHOPIFY_ORDER_COLUMNS, max_rows)
        # Square parts get their final numbers (v1 first) once all are written.
        self.square = {
            False: _SplitCsv(self.dirs["square"], ".items-v1-{n}.partial", SQUARE_ITEMS_COLUMNS_V1, max_rows),
            True: _SplitCsv(self.dirs["square"], ".items-v2-{n}.partial", SQUARE_ITEMS_COLUMNS_V2, max_rows),
        }
        self.tables: dict[str, int] = {}
        self._customers = self._open_table("square", "customers.csv", SQUARE_CUSTOMERS_COLUMNS)
        self._members = self._open_table("members", "members.csv", MEMBERS_COLUMNS)
        self.next_order = ORDER_NUMBER_START
        self.transactions = 0
        self.members = 0
        self.store_day_tx: list[list[int]] | None = None
        self.acquisitions: dict[tuple[str, str], int] = {}

    def _open_table(self, folder: str, name: str, header: list[str]):
        f = open(self.dirs[folder] / name, "w", encoding="utf-8", newline="", buffering=1 << 20)
        # rows are dicts by column name, written in the layout's header order (formats)
        writer = csv.DictWriter(f, header, lineterminator="\n")
        writer.writeheader()
        self.tables[f"inbox/{folder}/{name}"] = 0
        return f, writer, f"inbox/{folder}/{name}"

    def add(self, chunk: _Chunk) -> None:
        """Write one chunk and merge its aggregates."""
        for text, rows in chunk.shopify:
            number = self.next_order
            self.next_order += 1
            self.shopify.write(
                text.replace(_NUMBER_MARK, str(number)).replace(_ID_MARK, str(ORDER_ID_BASE + 37 * number)), rows
            )
        for v2, text, rows in chunk.square:
            self.square[v2].write(text, rows)
        self.transactions += len(chunk.square)
        for (_, table, rel), rows in ((self._customers, chunk.square_customers), (self._members, chunk.members)):
            table.writerows(rows)
            self.tables[rel] += len(rows)
        self.members += len(chunk.members)
        for key, n in chunk.acquisitions.items():
            self.acquisitions[key] = self.acquisitions.get(key, 0) + n
        if self.store_day_tx is None:
            self.store_day_tx = [[0] * chunk.ndays for _ in STORES]
        for totals, counts in zip(self.store_day_tx, chunk.store_day_tx, strict=False):
            for day, n in enumerate(counts):
                if n:
                    totals[day] += n

    def write_table(self, folder: str, name: str, header: list[str], rows: list[dict]) -> None:
        f, writer, rel = self._open_table(folder, name, header)
        writer.writerows(rows)
        self.tables[rel] = len(rows)
        f.close()

    def close(self) -> dict[str, int]:
        """Close all files, give the Square parts their final names; {relative path: rows}."""
        for f, _, _ in (self._customers, self._members):
            f.close()
        for part in (self.shopify, *self.square.values()):
            part.close()
        files = {f"inbox/shopify/{path.name}": rows for path, rows in self.shopify.parts}
        parts = self.square[False].parts + self.square[True].parts
        for number, (path, rows) in enumerate(parts, start=1):
            final = path.parent / f"items-{number}.csv"
            path.replace(final)
            files[f"inbox/square/{final.name}"] = rows
        return files | self.tables

    @property
    def shopify_rows(self) -> int:
        return sum(rows for _, rows in self.shopify.parts)

    @property
    def square_rows(self) -> int:
        return sum(rows for part in self.square.values() for _, rows in part.parts)


def _write_spend_and_traffic(writer: _Writer, cal: _Calendar, seed: int) -> None:
    """Spend per paid channel and month (new customers x CAC x noise, at least one customer's
    worth), and per store and local day traffic with visitors >= entries >= transactions."""
    rng = random.Random(f"{seed}:tables")
    spend = []
    for month in cal.months:
        for channel, cac in CAC_DOLLARS.items():
            n = max(1, writer.acquisitions.get((month, channel), 0))
            cents = int(round(n * cac * 100 * (0.85 + 0.3 * rng.random())))
            spend.append({"month": month, "channel": channel, "spend": _dec(cents), "currency": "USD"})
    writer.write_table("spend", "marketing_spend.csv", SPEND_COLUMNS, spend)
    traffic = []
    store_day_tx = writer.store_day_tx or [[0] * cal.ndays for _ in STORES]
    for day in range(cal.ndays):
        for store, counts in zip(STORES, store_day_tx, strict=False):
            tx = counts[day]
            entries = math.ceil(tx / (0.22 + 0.23 * rng.random())) + int(rng.random() * 4)
            visitors = entries + int(entries * (0.8 + 1.7 * rng.random())) + int(rng.random() * 21)
            traffic.append({"date": cal.iso[day], "store": store.name, "visitors": visitors, "entries": entries})
    writer.write_table("traffic", "store_traffic.csv", TRAFFIC_COLUMNS, traffic)


# Product cost as a share of the shelf price, by category (a coffee shop's typical mark-ups).
COST_SHARE = {"Coffee": 0.38, "Tea": 0.30, "Drinkware": 0.45, "Home": 0.52, "Apparel": 0.40}
# Every COST_GAP-th product has no cost in the exports (costs never entered): default margin there.
COST_GAP = 9
# The second Shopify products export, half-way through the history, has the Coffee costs up by this
# share (a roaster's price rise): orders from its date on are costed at the new price.
COFFEE_COST_RISE = 0.15


def demo_unit_cost_cents(product: Product, rise: bool) -> int | None:
    """The demo's unit cost of a product (None: no cost entered), before or after the Coffee price rise."""
    if CATALOGUE.index(product) % COST_GAP == COST_GAP - 1:
        return None
    cost = product.price_cents * COST_SHARE[product.category]
    if rise and product.category == "Coffee":
        cost *= 1 + COFFEE_COST_RISE
    return int(round(cost))


def _set_file_date(path: Path, day: date) -> None:
    """Snapshot exports carry no date of their own: the pipeline takes the file's modification date."""
    ts = datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp()
    os.utime(path, (ts, ts))


def _write_cost_exports(writer: _Writer, cal: _Calendar) -> None:
    """A Shopify products export at the start of the history and another half-way through (Coffee
    costs risen), and a Square item library at the start, in their published layouts; the products
    of every COST_GAP-th catalogue position have a blank cost in all three."""
    rise_day = cal.start + timedelta(days=cal.split_day)
    for name, day, rise in (("products_export_1.csv", cal.start, False), ("products_export_2.csv", rise_day, True)):
        rows = []
        for p in CATALOGUE:
            cost = demo_unit_cost_cents(p, rise)
            rows.append(
                {
                    "Handle": p.name.lower().replace(" ", "-").replace("&", "and"),
                    "Title": p.name,
                    "Body (HTML)": f"<p>{p.name} from {p.vendor}.</p>",
                    "Vendor": p.vendor,
                    "Type": p.category,
                    "Published": "TRUE",
                    "Option1 Name": "Title",
                    "Option1 Value": "Default Title",
                    "Variant SKU": p.sku,
                    "Variant Grams": "250",
                    "Variant Inventory Tracker": "shopify",
                    "Variant Inventory Policy": "deny",
                    "Variant Fulfillment Service": "manual",
                    "Variant Price": _dec(p.price_cents),
                    "Variant Requires Shipping": "TRUE",
                    "Variant Taxable": "TRUE",
                    "Variant Barcode": p.gtin,
                    "Gift Card": "FALSE",
                    "Variant Weight Unit": "g",
                    "Cost per item": _dec(cost) if cost is not None else "",
                    "Status": "active",
                }
            )
        writer.write_table("shopify", name, SHOPIFY_PRODUCTS_COLUMNS, rows)
        _set_file_date(writer.dirs["shopify"] / name, day)
    locations = [f"{kind} {store.name}" for store in STORES for kind in ("Current Quantity", "New Quantity")]
    rows = []
    for i, p in enumerate(CATALOGUE):
        cost = demo_unit_cost_cents(p, False)
        rows.append(
            {
                "Reference Handle": f"#{p.sku.lower()}",
                "Token": f"SQ{ORDER_ID_BASE + 7919 * i:X}"[:26],
                "Item Name": p.name,
                "Variation Name": "Regular",
                "SKU": p.sku,
                "Categories": p.category,
                "Reporting Category": p.category,
                "GTIN": p.gtin,
                "Item Type": "Physical good",
                "Price": _dec(p.price_cents),
                "Archived": "N",
                "Sellable": "Y",
                "Stockable": "Y",
                "Skip Detail Screen in POS": "N",
                "Default Unit Cost": _dec(cost) if cost is not None else "",
                "Default Vendor Name": p.vendor,
                "Default Vendor Code": f"{p.vendor[:3].upper()}-{i + 1:03d}",
                **{col: str(12 + i % 7) for col in locations if col.startswith("Current")},
            }
        )
    writer.write_table("square", "item_library.csv", SQUARE_ITEM_LIBRARY_COLUMNS + locations, rows)
    _set_file_date(writer.dirs["square"] / "item_library.csv", cal.start)


# --------------------------------------------------------------------------------------------
# Running chunks
# --------------------------------------------------------------------------------------------


def _customer_chunk(task: tuple) -> _Chunk:
    """Customers ``start``..``stop``-1, from the random stream of chunk ``k``."""
    end, years, seed, k, start, stop = task
    gen = _Generator(_calendar(end, years), seed, f"customers-{k}")
    for idx in range(start, stop):
        gen.write_customer(idx)
    return gen.chunk


def _customer_chunks(end: date, years: float, seed: int, customers: int) -> Iterator[_Chunk]:
    """The random customers, chunk by chunk, in order."""
    for k, start in enumerate(range(0, customers, CHUNK_CUSTOMERS)):
        yield _customer_chunk((end, years, seed, k, start, min(start + CHUNK_CUSTOMERS, customers)))


def _customers_for_lines(cal: _Calendar, seed: int, target_lines: int) -> int:
    """Customers needed for about ``target_lines`` Shopify + Square rows, from a pilot sample
    (planted and DST rows are counted separately)."""
    fixed = _Generator(cal, seed, "planted")
    fixed.write_planted()
    fixed.write_dst_walk_ins()
    pilot = _Generator(cal, seed, "pilot")
    for idx in range(PILOT_CUSTOMERS):
        pilot.write_customer(idx)
    per_customer = pilot.chunk.line_rows / PILOT_CUSTOMERS
    return max(0, int(round((target_lines - fixed.chunk.line_rows) / per_customer)))


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def generate_demo(
    data_dir: Path,
    customers: int = 3000,
    seed: int = 7,
    end_date: date | None = None,
    years: float = 2.0,
    target_lines: int | None = None,
    max_lines_per_file: int = 1_000_000,
) -> dict:
    """Write a deterministic demo set of retailer exports under ``data_dir/inbox``.

    ``customers`` identifiable customers (when ``target_lines`` is given, the count is derived
    instead so that Shopify + Square line rows total about ``target_lines``); a history of
    ``years`` ending on ``end_date`` (default: yesterday, UTC).  Shopify and Square item files are
    split at ``max_lines_per_file`` rows, never inside an order / transaction; stale
    ``orders_export_*.csv`` / ``items-*.csv`` in the target folders are deleted first.

    Returns ``{"files": {relative path: data rows}, "customers", "planted_customers",
    "members", "orders": {"shopify", "square"}, "lines": {"shopify", "square", "total"},
    "start_date", "end_date", "seed", "data_dir"}``.
    """
    data_dir = Path(data_dir)
    if end_date is None:
        end_date = datetime.now(UTC).date() - timedelta(days=1)
    cal = _calendar(end_date, float(years))
    if target_lines is not None:
        customers = _customers_for_lines(cal, seed, target_lines)
    writer = _Writer(data_dir, max_lines_per_file)
    fixed = _Generator(cal, seed, "planted")
    fixed.write_planted()
    fixed.write_dst_walk_ins()
    writer.add(fixed.chunk)
    for chunk in _customer_chunks(end_date, float(years), seed, customers):
        writer.add(chunk)
    _write_spend_and_traffic(writer, cal, seed)
    _write_cost_exports(writer, cal)
    shopify_rows, square_rows = writer.shopify_rows, writer.square_rows
    files = writer.close()
    return {
        "data_dir": str(data_dir),
        "seed": seed,
        "start_date": cal.start.isoformat(),
        "end_date": cal.end.isoformat(),
        "files": files,
        "customers": customers,
        "planted_customers": len(PLANTED),
        "members": writer.members,
        "orders": {"shopify": writer.next_order - ORDER_NUMBER_START, "square": writer.transactions},
        "lines": {"shopify": shopify_rows, "square": square_rows, "total": shopify_rows + square_rows},
    }
