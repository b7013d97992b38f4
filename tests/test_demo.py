"""Tests of the demo generator (dagster_project/lib/demo/generator.py).

Everything is measured from the generated files, with a small identity resolution (union-find
over normalised e-mails, E.164 phones, Square customer ids and member ids) written here, so the
planted behaviour is checked independently of the pipeline.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pandas as pd
import phonenumbers
import pytest

from dagster_project.lib.demo import generator
from dagster_project.lib.demo.generator import SHOPIFY_LINE_FIELDS, SHOPIFY_ORDER_FIELDS
from dagster_project.lib.ingest.formats import (
    MEMBERS_COLUMNS,
    SHOPIFY_ORDER_COLUMNS,
    SHOPIFY_PRODUCTS_COLUMNS,
    SPEND_COLUMNS,
    SQUARE_CUSTOMERS_COLUMNS,
    SQUARE_ITEMS_COLUMNS_V1,
    SQUARE_ITEMS_COLUMNS_V2,
    SQUARE_TIME_ZONES,
    TRAFFIC_COLUMNS,
)

END = date(2026, 1, 31)
SHOPIFY_TS = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} [+-]\d{4}$")
SQUARE_MONEY = re.compile(r"^-?\$\d{1,3}(,\d{3})*\.\d{2}$")
PHONE_COLUMNS = ["Phone", "Billing Phone", "Shipping Phone"]


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _cat(paths: list[Path]) -> pd.DataFrame:
    return pd.concat([_read(p).assign(_file=p.name) for p in paths], ignore_index=True)


def _cents(text: str) -> int:
    """'12.50', '$1,234.50', '-$12.00' -> cents."""
    return int(Decimal(text.replace("$", "").replace(",", "")) * 100)


def _e164(text: str) -> str:
    number = phonenumbers.parse(text, "US")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _square_files(root: Path) -> list[Path]:
    return sorted((root / "inbox/square").glob("items-*.csv"), key=lambda p: int(p.stem.split("-")[1]))


def _load(root: Path) -> dict[str, pd.DataFrame]:
    inbox = root / "inbox"
    return {
        "shopify": _cat(sorted((inbox / "shopify").glob("orders_export_*.csv"))),
        "square": _cat(_square_files(root)),
        "customers": _read(inbox / "square/customers.csv"),
        "members": _read(inbox / "members/members.csv"),
        "spend": _read(inbox / "spend/marketing_spend.csv"),
        "traffic": _read(inbox / "traffic/store_traffic.csv"),
    }


class _UnionFind:
    def __init__(self):
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, tokens: list[str]) -> None:
        roots = [self.find(t) for t in tokens]
        for r in roots[1:]:
            self.parent[r] = roots[0]


def _shopify_orders(shopify: pd.DataFrame) -> pd.DataFrame:
    """One row per order: first-row fields, item value, net revenue and identity tokens."""
    lines = shopify.assign(value=shopify["Lineitem quantity"].astype(int) * shopify["Lineitem price"].map(_cents))
    items = lines.groupby("Name", sort=False)["value"].sum()
    orders = lines.drop_duplicates("Name").set_index("Name")
    orders = orders[orders["Created at"] != "not a date"].copy()
    orders["items"] = items
    orders["net"] = orders["items"] - orders["Discount Amount"].map(_cents) - orders["Refunded Amount"].map(_cents)
    orders["day"] = orders["Created at"].str[:10]
    orders["tokens"] = [
        ([f"e:{e.strip().lower()}"] if e.strip() else []) + sorted({f"p:{_e164(p)}" for p in phones if p})
        for e, *phones in orders[["Email", *PHONE_COLUMNS]].itertuples(index=False)
    ]
    return orders


def _square_sales(square: pd.DataFrame) -> pd.DataFrame:
    """One row per known-customer transaction: net revenue (payments + refunds), tokens."""
    known = square[square["Customer ID"] != ""].copy()
    known["net"] = known["Net Sales"].map(_cents)
    net = known.groupby("Transaction ID", sort=False)["net"].sum()
    pay = known[known["Event Type"] == "Payment"].drop_duplicates("Transaction ID")
    sales = pay.set_index("Transaction ID")
    sales["net"] = net
    sales["day"] = sales["Date"]
    sales["tokens"] = [
        [f"s:{c}"] + ([f"m:{r}"] if r else [])
        for c, r in sales[["Customer ID", "Customer Reference ID"]].itertuples(index=False)
    ]
    return sales


def _resolve(data: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, _UnionFind]:
    """All identified purchases (non-voided orders and store sales) with a resolved customer."""
    uf = _UnionFind()
    orders = _shopify_orders(data["shopify"])
    orders = orders[orders["tokens"].map(bool)]
    sales = _square_sales(data["square"])
    for tokens in list(orders["tokens"]) + list(sales["tokens"]):
        uf.union(tokens)
    for row in data["customers"].itertuples(index=False):
        tokens = [f"s:{row[5]}"]  # Square Customer ID
        tokens += [f"e:{row[3].strip().lower()}"] if row[3].strip() else []
        tokens += [f"p:{_e164(row[4])}"] if row[4] else []
        tokens += [f"m:{row[0]}"] if row[0] else []
        uf.union(tokens)
    for row in data["members"].itertuples(index=False):
        tokens = [f"m:{row[0]}"]
        tokens += [f"e:{row[1].strip().lower()}"] if row[1].strip() else []
        tokens += [f"p:{_e164(row[2])}"] if row[2] else []
        uf.union(tokens)
    valid = orders[orders["Financial Status"] != "voided"]
    purchases = pd.concat(
        [
            pd.DataFrame(
                {"token": valid["tokens"].str[0], "channel": "online", "day": valid["day"], "net": valid["net"]}
            ),
            pd.DataFrame(
                {"token": sales["tokens"].str[0], "channel": "store", "day": sales["day"], "net": sales["net"]}
            ),
        ],
        ignore_index=True,
    )
    purchases["customer"] = purchases["token"].map(uf.find)
    return purchases, uf


# --------------------------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("default")
    summary = generator.generate_demo(root, end_date=END)
    return root, summary, _load(root)


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("big")
    summary = generator.generate_demo(root, customers=20_000, seed=11, end_date=END)
    data = _load(root)
    purchases, uf = _resolve(data)
    return root, summary, data, purchases, uf


# --------------------------------------------------------------------------------------------
# determinism, files and layouts
# --------------------------------------------------------------------------------------------


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    sa = generator.generate_demo(a, customers=400, seed=3, end_date=END)
    sb = generator.generate_demo(b, customers=400, seed=3, end_date=END)
    generator.generate_demo(c, customers=400, seed=4, end_date=END)
    assert _digest(a) == _digest(b)
    assert sa["files"] == sb["files"]
    da, dc = _digest(a), _digest(c)
    assert da.keys() == dc.keys()
    assert da["inbox/shopify/orders_export_1.csv"] != dc["inbox/shopify/orders_export_1.csv"]
    assert da["inbox/square/items-1.csv"] != dc["inbox/square/items-1.csv"]


def test_rerun_in_place_removes_stale_parts(tmp_path):
    generator.generate_demo(tmp_path, customers=300, end_date=END, max_lines_per_file=200)
    summary = generator.generate_demo(tmp_path, customers=300, end_date=END)
    on_disk = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()}
    assert on_disk == set(summary["files"])


def test_summary_matches_files(default_run):
    root, summary, data = default_run
    for rel, rows in summary["files"].items():
        assert len(_read(root / rel)) == rows, rel
    assert summary["customers"] == 3000
    assert summary["lines"]["shopify"] == len(data["shopify"])
    assert summary["lines"]["square"] == len(data["square"])
    assert summary["orders"]["shopify"] == data["shopify"]["Name"].nunique()
    assert summary["orders"]["square"] == data["square"]["Transaction ID"].nunique()
    assert summary["members"] == len(data["members"])


def test_headers_follow_formats(default_run):
    root, summary, _ = default_run
    for path in (root / "inbox/shopify").glob("orders_export_*.csv"):
        assert next(csv.reader(path.open(newline=""))) == SHOPIFY_ORDER_COLUMNS
    headers = [next(csv.reader(p.open(newline=""))) for p in _square_files(root)]
    assert len(headers) >= 2
    assert headers[0] == SQUARE_ITEMS_COLUMNS_V1 and headers[-1] == SQUARE_ITEMS_COLUMNS_V2
    v2_from = headers.index(SQUARE_ITEMS_COLUMNS_V2)
    assert all(h == SQUARE_ITEMS_COLUMNS_V1 for h in headers[:v2_from])
    assert all(h == SQUARE_ITEMS_COLUMNS_V2 for h in headers[v2_from:])
    for rel, columns in (
        ("square/customers.csv", SQUARE_CUSTOMERS_COLUMNS),
        ("members/members.csv", MEMBERS_COLUMNS),
        ("spend/marketing_spend.csv", SPEND_COLUMNS),
        ("traffic/store_traffic.csv", TRAFFIC_COLUMNS),
        ("shopify/products_export_1.csv", SHOPIFY_PRODUCTS_COLUMNS),
        ("shopify/products_export_2.csv", SHOPIFY_PRODUCTS_COLUMNS),
    ):
        assert next(csv.reader((root / "inbox" / rel).open(newline=""))) == columns


def test_files_are_exactly_what_csv_writer_produces(default_run):
    """Quoting is QUOTE_MINIMAL with \\n endings, and every row has the header's width."""
    root, _, _ = default_run
    for path in sorted(root.rglob("*.csv")):
        text = path.read_text(encoding="utf-8")
        rows = list(csv.reader(io.StringIO(text, newline="")))
        assert {len(r) for r in rows} == {len(rows[0])}, path.name
        out = io.StringIO(newline="")
        csv.writer(out, lineterminator="\n").writerows(rows)
        assert out.getvalue() == text, path.name


def test_split_files_never_split_an_order(tmp_path):
    summary = generator.generate_demo(tmp_path, customers=1500, end_date=END, max_lines_per_file=1500)
    shop = sorted((tmp_path / "inbox/shopify").glob("orders_export_*.csv"))
    square = _square_files(tmp_path)
    assert len(shop) >= 2 and len(square) >= 4
    for path in shop + square:
        assert 0 < len(_read(path)) <= 1500
    names = _cat(shop)
    assert (names.groupby("Name")["_file"].nunique() == 1).all()
    txns = _cat(square)
    assert (txns.groupby("Transaction ID")["_file"].nunique() == 1).all()
    numbers = names["Name"].drop_duplicates().str[1:].astype(int)
    assert numbers.is_monotonic_increasing and numbers.iloc[0] == 1001
    assert summary["lines"]["total"] == len(names) + len(txns)


def test_target_lines(tmp_path):
    summary = generator.generate_demo(tmp_path, target_lines=40_000, end_date=END)
    assert abs(summary["lines"]["total"] - 40_000) / 40_000 < 0.10
    assert summary["customers"] > 5000


# --------------------------------------------------------------------------------------------
# Shopify
# --------------------------------------------------------------------------------------------


def test_shopify_rows(default_run):
    _, _, data = default_run
    shop = data["shopify"]
    first = ~shop["Name"].duplicated()
    assert (shop.loc[~first, SHOPIFY_ORDER_FIELDS] == "").all().all()
    for column in SHOPIFY_LINE_FIELDS:
        if column != "Email":
            assert (shop[column] != "").all(), column
    assert (shop.groupby("Name")["Email"].nunique() == 1).all()
    numbers = shop.loc[first, "Name"].str[1:].astype(int)
    assert numbers.is_unique and numbers.is_monotonic_increasing
    heads = shop[first]
    assert set(heads["Currency"]) == {"USD"} and set(heads["Source"]) == {"web"}
    assert set(heads["Accepts Marketing"]) == {"yes", "no"}
    good = heads[heads["Created at"] != "not a date"]
    assert 1 <= len(heads) - len(good) <= 15
    for column in ("Created at", "Paid at", "Fulfilled at", "Cancelled at"):
        values = good[column][good[column] != ""]
        assert values.str.match(SHOPIFY_TS).all(), column
        assert (values.str[:10] <= END.isoformat()).all(), column
    offsets = set(good["Created at"].str[-5:])
    assert {"-0500", "-0400", "-0800", "-0700", "+0000", "+0530"} <= offsets


def test_shopify_money_and_statuses(default_run):
    _, _, data = default_run
    orders = _shopify_orders(data["shopify"])
    subtotal = orders["Subtotal"].map(_cents)
    assert (subtotal == orders["items"] - orders["Discount Amount"].map(_cents)).all()
    total = subtotal + orders["Shipping"].map(_cents) + orders["Taxes"].map(_cents)
    assert (orders["Total"].map(_cents) == total).all()
    refunded = orders["Refunded Amount"].map(_cents)
    status = orders["Financial Status"]
    assert (refunded[status == "refunded"] == subtotal[status == "refunded"]).all()
    partial = status == "partially_refunded"
    assert ((refunded[partial] > 0) & (refunded[partial] < subtotal[partial])).all()
    assert (refunded[~status.isin(["refunded", "partially_refunded"])] == 0).all()
    assert (orders.loc[status == "voided", "Cancelled at"] != "").all()
    assert (orders.loc[status != "voided", "Cancelled at"] == "").all()
    share = status.value_counts(normalize=True)
    assert share["paid"] > 0.8
    for name, expected in (("refunded", 0.03), ("partially_refunded", 0.04), ("voided", 0.015)):
        assert abs(share[name] - expected) < 0.015, name
    assert {"pending", "authorized", "partially_paid"} <= set(status)


def test_shopify_identity_and_notes(default_run):
    _, _, data = default_run
    shop = data["shopify"]
    heads = shop[~shop["Name"].duplicated()]
    emails = heads["Email"][heads["Email"] != ""]
    assert (emails != emails.str.strip()).any() and (emails != emails.str.lower()).any()
    has_phone = (heads[PHONE_COLUMNS] != "").any(axis=1)
    anonymous = (heads["Email"] == "") & ~has_phone
    assert 0.01 < anonymous.mean() < 0.04
    assert 0.3 < has_phone.mean() < 0.5
    assert (heads["Notes"].str.contains("\n") & heads["Notes"].str.contains(",")).sum() >= 2
    utm = heads["Note Attributes"][heads["Note Attributes"] != ""]
    channels = utm.str.removeprefix("utm_source: ")
    assert set(channels) == {"google", "meta", "tiktok", "email", "organic"}


# --------------------------------------------------------------------------------------------
# Square
# --------------------------------------------------------------------------------------------


def test_square_rows(default_run):
    _, _, data = default_run
    sq = data["square"]
    assert set(sq["Event Type"]) == {"Payment", "Refund"}
    assert set(sq["Location"]) == {s.name for s in generator.STORES}
    assert set(sq["Time Zone"]) <= set(SQUARE_TIME_ZONES)
    assert sq["Transaction ID"].str.fullmatch(r"[A-Za-z0-9]{22}").all()
    assert sq["Payment ID"].str.fullmatch(r"[A-Za-z0-9]{22}").all()
    assert (sq.groupby("Transaction ID")["Payment ID"].nunique() == 1).all()
    ids = sq["Customer ID"][sq["Customer ID"] != ""]
    assert ids.str.fullmatch(r"[A-Z0-9]{26}").all()
    money = ["Gross Sales", "Discounts", "Net Sales", "Tax"]
    bad_money = ~sq[money].apply(lambda c: c.str.match(SQUARE_MONEY)).all(axis=1)
    bad_date = pd.to_datetime(sq["Date"], format="%Y-%m-%d", errors="coerce").isna()
    assert 2 <= bad_money.sum() <= 12 and 2 <= bad_date.groupby(sq["Transaction ID"]).any().sum()
    ok = sq[~bad_money & ~bad_date]
    gross, disc, net, tax = (ok[c].map(_cents) for c in money)
    qty = ok["Qty"].map(lambda q: Decimal(q))
    assert ok["Qty"].str.fullmatch(r"-?\d+\.0").all()
    assert (net == gross + disc).all()
    pay = ok["Event Type"] == "Payment"
    assert (disc[pay] <= 0).all() and (tax[pay] > 0).all() and (gross[pay] > 0).all()
    assert (qty[~pay] < 0).all() and (net[~pay] < 0).all() and (gross[~pay] < 0).all()
    assert ok["Time"].str.fullmatch(r"\d{2}:\d{2}:\d{2}").all()
    assert (ok["Date"] <= END.isoformat()).all()


def test_square_refunds_and_walk_ins(default_run):
    _, _, data = default_run
    sq = data["square"]
    sq = sq[sq["Date"].str.match(r"^\d{4}-(?!02-30)")]
    refunds = sq[sq["Event Type"] == "Refund"].drop_duplicates("Transaction ID")
    payments = sq[sq["Event Type"] == "Payment"].drop_duplicates("Transaction ID")
    paired = refunds.merge(payments, on="Transaction ID", suffixes=("_r", "_p"))
    assert len(paired) == len(refunds)
    lag = (pd.to_datetime(paired["Date_r"]) - pd.to_datetime(paired["Date_p"])).dt.days
    assert lag.between(1, 14).all()
    assert 0.015 < len(refunds) / len(payments) < 0.05
    anonymous = (payments["Customer ID"] == "").mean()
    assert 0.52 < anonymous < 0.63
    members = payments[payments["Customer Reference ID"] != ""]
    assert members["Customer Reference ID"].str.fullmatch(r"M\d{6,}").all()


def test_square_dst_days(default_run):
    _, _, data = default_run
    sq = data["square"]
    march, november = date(2025, 3, 9), date(2025, 11, 2)
    assert (sq["Date"] == march.isoformat()).any()
    nov = sq[(sq["Date"] == november.isoformat())]
    repeated = nov[nov["Time"].str.startswith("01:")]
    assert set(repeated["Location"]) == {s.name for s in generator.STORES}
    assert set(repeated["Time Zone"]) == {s.time_zone for s in generator.STORES}


def test_square_history_split_by_header_version(default_run):
    root, summary, _ = default_run
    v1 = _cat([p for p in _square_files(root) if len(next(csv.reader(p.open(newline="")))) == 33])
    v2 = _cat([p for p in _square_files(root) if len(next(csv.reader(p.open(newline="")))) == 35])
    pay_v1 = v1.loc[(v1["Event Type"] == "Payment") & (v1["Date"].str[5:] != "02-30"), "Date"]
    pay_v2 = v2.loc[(v2["Event Type"] == "Payment") & (v2["Date"].str[5:] != "02-30"), "Date"]
    assert pay_v1.max() < pay_v2.min()
    assert pay_v1.min() >= summary["start_date"] and pay_v2.max() <= summary["end_date"]


# --------------------------------------------------------------------------------------------
# identities, roster, spend, traffic
# --------------------------------------------------------------------------------------------


def test_every_phone_is_a_valid_us_number_in_mixed_forms(default_run):
    _, _, data = default_run
    phones = pd.concat(
        [data["shopify"][c] for c in PHONE_COLUMNS] + [data["customers"]["Phone Number"], data["members"]["phone"]]
    )
    phones = phones[phones != ""]
    assert len(phones) > 500
    for text in phones.unique():
        number = phonenumbers.parse(text, "US")
        assert phonenumbers.is_valid_number_for_region(number, "US"), text
    shapes = {re.sub(r"\d", "9", p) for p in phones}  # the country code 1 becomes 9 too
    assert shapes == {
        "+99999999999",
        "(999) 999-9999",
        "999-999-9999",
        "999.999.9999",
        "9 999 999 9999",
        "+9 999-999-9999",
    }
    by_number = phones.groupby(phones.map(_e164)).nunique()
    assert (by_number > 1).mean() > 0.3  # the same number written differently


def test_square_directory_and_roster(default_run):
    _, _, data = default_run
    customers, members = data["customers"], data["members"]
    assert customers["Square Customer ID"].is_unique
    has_email = customers["Email Address"] != ""
    has_phone = customers["Phone Number"] != ""
    assert (has_email | has_phone).all()
    assert (has_email & ~has_phone).any() and (~has_email & has_phone).any()
    assert set(customers["Email Subscription Status"]) == {"subscribed", "unsubscribed"}
    assert members["member_id"].str.fullmatch(r"M\d{6,}").all() and members["member_id"].is_unique
    assert ((members["email"] != "") | (members["phone"] != "")).all()
    assert set(members["plan"]) == {"annual"} and set(members["annual_fee"]) == {"49.00"}
    assert set(members["currency"]) == {"USD"}
    assert set(members["accepts_marketing"]) <= {"yes", "no"}
    for row in members.itertuples(index=False):
        joined = date.fromisoformat(row.joined_on)
        expires = date.fromisoformat(row.expires_on)
        years = int(row.renewal_count) + 1
        assert joined <= END
        assert expires in (joined.replace(year=joined.year + years), date(joined.year + years, 2, 28))
    expires = pd.to_datetime(members["expires_on"]).dt.date
    assert (expires < END).any()  # some lapsed
    assert (expires.between(END, END + timedelta(days=30))).any()  # some due for renewal


def test_traffic_covers_every_store_day_and_transactions(default_run):
    _, summary, data = default_run
    traffic, sq = data["traffic"], data["square"]
    start, end = (date.fromisoformat(summary[k]) for k in ("start_date", "end_date"))
    days = (end - start).days + 1
    assert len(traffic) == days * len(generator.STORES)
    visitors, entries = traffic["visitors"].astype(int), traffic["entries"].astype(int)
    assert (visitors >= entries).all()
    pay = sq[sq["Event Type"] == "Payment"].drop_duplicates("Transaction ID")
    tx = pay.groupby(["Date", "Location"]).size()
    tx.index.names = ["date", "store"]
    merged = traffic.set_index(["date", "store"]).join(tx.rename("tx"), how="left").fillna(0)
    assert (merged["entries"].astype(int) >= merged["tx"]).all()


def test_spend_gives_plausible_cac(big_run):
    _, summary, data, _, _ = big_run
    spend = data["spend"]
    months = pd.period_range(summary["start_date"], summary["end_date"], freq="M").astype(str)
    assert set(spend["channel"]) == {"google", "meta", "tiktok", "email"}
    assert len(spend) == 4 * len(months) and set(spend["month"]) == set(months)
    assert set(spend["currency"]) == {"USD"}
    shop = data["shopify"]
    heads = shop[~shop["Name"].duplicated() & (shop["Note Attributes"] != "")]
    new = heads["Note Attributes"].str.removeprefix("utm_source: ").value_counts()
    cost = spend.assign(cents=spend["spend"].map(_cents)).groupby("channel")["cents"].sum() / 100
    cac = cost / new.reindex(cost.index)
    assert cac.between(15, 85).all(), cac.to_dict()
    assert cac["google"] > cac["email"]


# --------------------------------------------------------------------------------------------
# planted behaviour, measured from the files
# --------------------------------------------------------------------------------------------


def _is_planted(token: str) -> bool:
    return bool(re.search(r"planted|^s:PLANTED|^p:\+1(646|628)", token))


def test_identity_mix_and_links(big_run):
    """60% online-only, 30% store-only, 10% omnichannel: omnichannel customers alternate
    channels, so they show both channels once they buy twice."""
    _, _, _, purchases, _ = big_run
    random_customers = purchases[~purchases["token"].map(_is_planted)]
    per_customer = random_customers.groupby("customer")["channel"].agg([frozenset, "size"])
    repeat = per_customer[per_customer["size"] >= 2]["frozenset"].value_counts(normalize=True)
    assert abs(repeat[frozenset({"online"})] - 0.60) < 0.04
    assert abs(repeat[frozenset({"store"})] - 0.30) < 0.04
    assert abs(repeat[frozenset({"online", "store"})] - 0.10) < 0.03
    # identifiable customers in the files == customers generated (nothing merged or split)
    assert len(per_customer) == 20_000


def test_repeat_ladder(big_run):
    _, _, _, purchases, _ = big_run
    cutoff = (END - timedelta(days=180)).isoformat()
    days = purchases.sort_values("day").groupby("customer")["day"].agg(list)
    for n, expected, tolerance in ((1, 0.27, 0.02), (2, 0.45, 0.04), (3, 0.54, 0.06)):
        eligible = days[days.map(lambda d, n=n: len(d) >= n and d[n - 1] <= cutoff)]
        rate = eligible.map(lambda d, n=n: len(d) > n).mean()
        assert abs(rate - expected) < tolerance, (n, rate, len(eligible))


def test_value_concentration_and_member_multiple(big_run):
    _, _, _, purchases, uf = big_run
    value = purchases.groupby("customer")["net"].sum().sort_values(ascending=False)
    top = value.iloc[: len(value) // 5].sum() / value.sum()
    assert 0.5 < top < 0.85, top
    member_roots = {uf.find(t) for t in uf.parent if t.startswith("m:")}
    is_member = value.index.isin(member_roots)
    assert 0.02 < is_member.mean() < 0.06
    multiple = value[is_member].mean() / value[~is_member].mean()
    assert 2.5 < multiple < 8, multiple


def test_planted_expectations_match_files(big_run):
    _, _, _, purchases, uf = big_run
    expected = generator.planted_expectations()
    assert set(expected) == {"omni_phone", "omni_email", "member_bridge", "transitive", "refunds"}
    planted_tokens = {t for t in uf.parent if _is_planted(t)}
    for name, exp in expected.items():
        anchor = f"e:{exp['emails'][0]}" if exp["emails"] else f"p:{exp['phones'][0]}"
        root = uf.find(anchor)
        tokens = {t for t in uf.parent if uf.find(t) == root}
        assert tokens <= planted_tokens | {f"m:{m}" for m in exp["member_ids"]}, name
        assert {f"e:{e}" for e in exp["emails"]} <= tokens, name
        assert {f"p:{p}" for p in exp["phones"]} <= tokens, name
        assert {f"s:{s}" for s in exp["square_customer_ids"]} <= tokens, name
        mine = purchases[purchases["customer"] == root]
        assert len(mine) == exp["purchases"], name
        assert set(mine["channel"]) == exp["channels"], name
        assert mine["net"].sum() == exp["net_revenue_cents"], name
        assert round(mine["net"].sum() / 100, 2) == exp["net_revenue"], name
        last = (END - date.fromisoformat(mine["day"].max())).days
        assert last == exp["last_purchase_days_before_end"], name
    assert expected["refunds"]["net_revenue_cents"] == 20000
    assert expected["refunds"]["voided_orders"] == 1
    assert expected["transitive"]["purchases"] == 4


def test_planted_rows_are_in_the_files(default_run):
    _, _, data = default_run
    shop = data["shopify"]
    refunds = shop[shop["Email"] == "emma.refunds@planted.example.com"].drop_duplicates("Name")
    by_status = refunds.set_index("Financial Status")
    assert by_status.loc["partially_refunded", "Subtotal"] == "100.00"
    assert by_status.loc["partially_refunded", "Refunded Amount"] == "30.00"
    assert by_status.loc["voided", "Cancelled at"] != ""
    sq = data["square"]
    refund_rows = sq[(sq["Customer ID"] == "PLANTEDREFUNDS000000000001") & (sq["Event Type"] == "Refund")]
    assert list(refund_rows["Net Sales"]) == ["-$14.85"]
    member = data["members"].set_index("member_id").loc["M000001"]
    assert member["email"] == "Noah.Member@planted.example.com"
    assert (date.fromisoformat(member["expires_on"]) - END).days == 15
