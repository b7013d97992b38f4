"""Platform audience files (docs/audiences.md) checked against each platform's published rules.

The rules are restated here from the platforms' pages, not from lib/export/platforms.py:
- Google Ads Customer Match: https://support.google.com/google-ads/answer/7659867 (headers, CSV in ASCII
  or UTF-8), https://support.google.com/google-ads/answer/7476159 (SHA256), and the Data Manager API's
  https://developers.google.com/data-manager/api/devguides/concepts/formatting (lower case, whitespace
  removed, Gmail dots and "+suffix" removed, E.164 phone with "+", Country and Zip not hashed, US zip
  5 digits or 5+4).
- Meta: https://www.facebook.com/business/help/2082575038703844 (column headers) and
  https://developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences (normalising
  and SHA-256 hashing per key).
- Klaviyo: https://help.klaviyo.com/hc/en-us/articles/115005078967 (first column "Email Address" or
  "Phone Number", 50 MB a file) and https://help.klaviyo.com/hc/en-us/articles/360046055671 (E.164).
- Mailchimp: https://mailchimp.com/help/format-guidelines-for-your-import-file/ ("Email Address", one
  address, no spaces, international characters only after the @, text up to 255 bytes) and
  http://kb.mailchimp.com/lists/growth/format-list-fields (UTF-8).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from dagster_project.lib.export import platforms, tiers

HEX64 = re.compile(r"^[0-9a-f]{64}$")
E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
GOOGLE_HEADERS = {"Email", "Phone", "First Name", "Last Name", "Country", "Zip"}
META_HEADERS = {"email", "phone", "fn", "ln", "zip", "ct", "st", "country", "dob", "doby", "gen", "age", "madid"}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read(path: Path) -> tuple[list[str], list[dict]]:
    raw = path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf"), f"{path}: a byte-order mark"
    text = raw.decode("utf-8")  # every platform reads UTF-8 (Google: ASCII or UTF-8, never UTF-16)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return list(reader.fieldnames or []), list(reader)


# ------------------------------------------------------------------------------------------------
# hand-checked rows: one tier, every platform

PEOPLE = [
    # customer_key, consent, email, phone, first, last, city, region, postal, country
    (
        "k1",
        True,
        "john.doe+promo@gmail.com",
        "+14155550100",
        " Mary-Jane ",
        "O'Neil",
        "San Francisco",
        "CA",
        "94107-1234",
        "US",
    ),
    ("k2", False, "nope@example.com", "+14155550101", "Ann", "Lee", "Austin", "TX", "73301", "US"),
    ("k3", True, None, "+447700900123", "Zoë", "Pérez", "London", "London", "SW1A 1AA", "GB"),
    ("k4", True, "ñame@example.com", None, "Ñico", "Ruiz", "Madrid", "MD", "28001", "ES"),
    ("k5", True, "user.name+NYC@example.com", None, None, None, None, None, None, None),
    ("k6", True, None, None, "Only", "Names", "Paris", "IDF", "75001", "FR"),
]


def _tier_rows(con, people, held_out=()):
    con.execute(
        "create or replace temp table src (customer_key varchar, accepts_marketing boolean, email varchar, "
        "phone varchar, first_name varchar, last_name varchar, city varchar, region varchar, "
        "postal_code varchar, country_code varchar)"
    )
    con.executemany("insert into src values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", people)
    # as tiers.materialise leaves them: contact points only where consented
    con.execute(
        f"create or replace temp table {tiers.TIER_ROWS} as select customer_key, accepts_marketing, "
        "case when accepts_marketing then email end as email, case when accepts_marketing then phone end as phone, "
        "case when list_contains(?, customer_key) then 'holdout' else 'treated' end as holdout_group from src",
        [list(held_out)],
    )
    con.execute("create schema if not exists intermediate")
    con.execute(
        "create or replace table intermediate.int_customer_profiles as select customer_key, first_name, last_name, "
        "city, region, postal_code, country_code from src"
    )


TIER = tiers.Tier(name="t", description="", where="true", reason="'x'", platforms=tuple(platforms.PLATFORMS))


@pytest.fixture()
def written(tmp_path):
    con = duckdb.connect()
    _tier_rows(con, PEOPLE)
    stats = platforms.write_platform_files(con, TIER, tmp_path, None)
    return {"dir": tmp_path / "audiences", "stats": stats, "con": con, "out": tmp_path}


def _rows(written, platform, name="t.csv"):
    return read(written["dir"] / platform / name)


def test_google_headers_are_the_english_names_google_lists(written):
    header, _ = _rows(written, "google_ads")
    assert header == ["Email", "Phone", "First Name", "Last Name", "Country", "Zip"]


def test_google_email_lower_case_no_whitespace_gmail_dots_and_plus_removed_then_sha256(written):
    _, rows = _rows(written, "google_ads")
    emails = {r["Email"] for r in rows}
    assert sha("johndoe@gmail.com") in emails  # gmail.com: dots and "+promo" removed before the @
    assert sha("user.name+nyc@example.com") in emails  # other domains keep dots and plus (Google's example)


def test_google_phone_is_e164_with_plus_then_sha256(written):
    _, rows = _rows(written, "google_ads")
    phones = {r["Phone"] for r in rows}
    assert {sha("+14155550100"), sha("+447700900123")} <= phones


def test_google_names_lower_case_trimmed_then_sha256(written):
    _, rows = _rows(written, "google_ads")
    k1 = next(r for r in rows if r["Phone"] == sha("+14155550100"))
    assert (k1["First Name"], k1["Last Name"]) == (sha("mary-jane"), sha("o'neil"))


def test_google_country_and_zip_are_not_hashed(written):
    _, rows = _rows(written, "google_ads")
    for r in rows:
        assert r["Country"] == "" or re.fullmatch("[A-Z]{2}", r["Country"]), r
        assert not HEX64.match(r["Zip"]), r
    k1 = next(r for r in rows if r["Phone"] == sha("+14155550100"))
    assert (k1["Country"], k1["Zip"]) == ("US", "94107-1234")  # US: 5 digits or 5+4


def test_google_hashed_columns_are_sha256_hex(written):
    _, rows = _rows(written, "google_ads")
    for r in rows:
        for col in ("Email", "Phone", "First Name", "Last Name"):
            assert r[col] == "" or HEX64.match(r[col]), (col, r[col])


def test_google_every_row_has_email_phone_or_full_mailing_address(written):
    _, rows = _rows(written, "google_ads")
    for r in rows:
        assert r["Email"] or r["Phone"] or all(r[c] for c in ("First Name", "Last Name", "Country", "Zip")), r
    # k6 has no e-mail or phone but a full address: listed for mailing-address matching
    assert any(r["First Name"] == sha("only") and not r["Email"] and not r["Phone"] for r in rows)


def test_meta_headers_are_meta_identifier_keys(written):
    header, _ = _rows(written, "meta")
    assert set(header) <= META_HEADERS and len(header) == len(set(header))


def test_meta_email_trimmed_lower_case_sha256_without_gmail_rules(written):
    _, rows = _rows(written, "meta")
    emails = {r["email"] for r in rows}
    assert sha("john.doe+promo@gmail.com") in emails  # Meta states no Gmail rule: the address as given


def test_meta_phone_digits_with_country_code_no_plus_then_sha256(written):
    _, rows = _rows(written, "meta")
    phones = {r["phone"] for r in rows}
    assert {sha("14155550100"), sha("447700900123")} <= phones
    assert sha("+14155550100") not in phones


def test_meta_names_city_state_zip_country_normalised_then_sha256(written):
    _, rows = _rows(written, "meta")
    k1 = next(r for r in rows if r["phone"] == sha("14155550100"))
    assert k1["fn"] == sha("maryjane") and k1["ln"] == sha("oneil")  # lower case, no punctuation
    assert k1["ct"] == sha("sanfrancisco")  # a-z only, no whitespace
    assert k1["st"] == sha("ca") and k1["country"] == sha("us")
    assert k1["zip"] == sha("94107")  # US: the first 5 digits
    k3 = next(r for r in rows if r["phone"] == sha("447700900123"))
    assert k3["zip"] == sha("sw1a1")  # UK: area, district, sector
    assert k3["fn"] == sha("zoë")  # UTF-8 letters kept in names


def test_meta_every_value_is_sha256_hex(written):
    _, rows = _rows(written, "meta")
    for r in rows:
        assert all(v == "" or HEX64.match(v) for v in r.values()), r


def test_meta_rows_have_email_or_phone(written):
    _, rows = _rows(written, "meta")
    assert rows and all(r["email"] or r["phone"] for r in rows)


def test_klaviyo_first_column_is_email_address(written):
    header, _ = _rows(written, "klaviyo")
    assert header[0] in ("Email Address", "Phone Number")


def test_klaviyo_phone_is_e164_and_rows_have_an_email(written):
    _, rows = _rows(written, "klaviyo")
    for r in rows:
        assert r["Email Address"], r
        assert r["Phone Number"] == "" or E164.match(r["Phone Number"]), r


def test_klaviyo_files_split_at_50_mb_with_the_header_in_each(tmp_path):
    path = tmp_path / "t.csv"
    lines = [f"person{i}@example.com,+1415555{i:04d}\n" for i in range(1000)]
    path.write_text("Email Address,Phone Number\n" + "".join(lines), encoding="utf-8")
    parts = platforms.split_by_bytes(path, 2_000)
    assert len(parts) > 1 and not path.exists()
    body = []
    for p in parts:
        assert p.stat().st_size <= 2_000
        text = p.read_text(encoding="utf-8").splitlines(keepends=True)
        assert text[0] == "Email Address,Phone Number\n"
        body += text[1:]
    assert body == lines
    assert platforms.KLAVIYO.max_file_bytes <= 50_000_000  # "The maximum allowed file size is 50 MB"


def test_mailchimp_email_address_column_one_address_no_spaces_ascii_before_at(written):
    header, rows = _rows(written, "mailchimp")
    assert "Email Address" in header
    for r in rows:
        email = r["Email Address"]
        assert email and email == email.strip() and " " not in email and email.count("@") == 1
        assert email.split("@")[0].isascii(), email
    assert written["stats"]["mailchimp"]["left_out"]["email_not_accepted"] == 1  # ñame@example.com


def test_mailchimp_text_fields_at_most_255_bytes(tmp_path):
    con = duckdb.connect()
    long_name = "é" * 200  # 400 bytes in UTF-8
    _tier_rows(con, [("k1", True, "a@example.com", None, long_name, "x", None, None, None, None)])
    platforms.write_platform_files(con, TIER, tmp_path, None)
    _, rows = read(tmp_path / "audiences" / "mailchimp" / "t.csv")
    assert all(len(v.encode("utf-8")) <= 255 for r in rows for v in r.values())


def test_plain_files_are_one_line_per_row(tmp_path):
    con = duckdb.connect()
    _tier_rows(con, [("k1", True, "a@example.com", None, "Ann\nMarie", "Lee\t", None, None, None, None)])
    platforms.write_platform_files(con, TIER, tmp_path, None)
    for name in ("klaviyo", "mailchimp"):
        lines = (tmp_path / "audiences" / name / "t.csv").read_text(encoding="utf-8").splitlines()
        assert len(lines) == 2 and "Ann Marie" in lines[1], lines


def test_only_consenting_customers_are_in_any_platform_file(written):
    for name, s in written["stats"].items():
        assert s["left_out"]["no_marketing_consent"] == 1, name  # k2
        text = (written["dir"] / name / "t.csv").read_text(encoding="utf-8")
        assert "nope@example.com" not in text and sha("nope@example.com") not in text
        assert sha("+14155550101") not in text and sha("14155550101") not in text


def test_left_out_counts_add_up_to_the_tier(written):
    for name, s in written["stats"].items():
        assert s["rows"] + sum(s["left_out"].values()) == len(PEOPLE), name
    assert written["stats"]["klaviyo"]["left_out"] == {"no_marketing_consent": 1, "no_email": 2}
    assert written["stats"]["meta"]["left_out"] == {"no_marketing_consent": 1, "no_email_or_phone": 1}
    assert written["stats"]["google_ads"]["left_out"] == {"no_marketing_consent": 1}


def test_held_out_customers_are_in_no_platform_file(tmp_path):
    con = duckdb.connect()
    _tier_rows(con, PEOPLE, held_out=["k1"])
    stats = platforms.write_platform_files(con, TIER, tmp_path, None)
    for name, s in stats.items():
        assert s["left_out"]["holdout"] == 1, name
        text = (tmp_path / "audiences" / name / "t.csv").read_text(encoding="utf-8")
        assert "john.doe" not in text and sha("+14155550100") not in text and sha("14155550100") not in text


def test_add_and_remove_files_against_the_previous_upload(written, tmp_path):
    before = written["out"]
    con = duckdb.connect()
    changed = [p for p in PEOPLE if p[0] != "k1"]  # k1 leaves
    changed = [(*p[:3], "+447700900999", *p[4:]) if p[0] == "k3" else p for p in changed]  # k3's phone changes
    changed.append(("k7", True, "new@example.com", None, None, None, None, None, None, None))  # k7 enters
    _tier_rows(con, changed)
    out = tmp_path / "second"
    stats = platforms.write_platform_files(con, TIER, out, before)
    for name in platforms.PLATFORMS:
        _, old = read(before / "audiences" / name / "t.csv")
        _, new = read(out / "audiences" / name / "t.csv")
        _, added = read(out / "audiences" / name / "t.add.csv")
        _, removed = read(out / "audiences" / name / "t.remove.csv")
        as_set = lambda rows: {tuple(r.values()) for r in rows}  # noqa: E731
        assert as_set(added) == as_set(new) - as_set(old), name
        assert as_set(removed) == as_set(old) - as_set(new), name  # the values uploaded last time
        assert stats[name]["added"] == len(added) and stats[name]["removed"] == len(removed)
    _, removed = read(out / "audiences" / "google_ads" / "t.remove.csv")
    assert {r["Phone"] for r in removed} == {sha("+14155550100"), sha("+447700900123")}  # k1, k3's old phone
    _, added = read(out / "audiences" / "google_ads" / "t.add.csv")
    assert {r["Email"] for r in added if r["Email"]} == {sha("new@example.com")}


def test_platforms_in_tiers_yml_are_validated(tmp_path):
    base = "tiers:\n  - name: a\n    where: 'true'\n    reason: \"'x'\"\n"
    path = tmp_path / "tiers.yml"
    path.write_text(base + "    platforms: [google_ads, tiktok]\n")
    with pytest.raises(ValueError, match=r"tier 'a' lists unknown platforms \['tiktok'\]; choose from"):
        tiers.load_tiers(path)
    path.write_text(base + "    platforms: google_ads\n")
    with pytest.raises(ValueError, match="platforms must be a list"):
        tiers.load_tiers(path)
    path.write_text(base + "    platforms: [meta, meta]\n")
    with pytest.raises(ValueError, match="twice"):
        tiers.load_tiers(path)
    path.write_text(base + "    platforms: [klaviyo]\n")
    assert tiers.load_tiers(path)[0].platforms == ("klaviyo",)
    assert {p for t in tiers.load_tiers() for p in t.platforms} == set(platforms.PLATFORMS)


# ------------------------------------------------------------------------------------------------
# the demo run: every platform file of every tier against the rules, the manifest's counts


def _platform_files(exports: Path):
    for path in sorted((exports / "audiences").glob("*/*.csv")):
        yield path.parent.name, path


@pytest.mark.slow
def test_demo_run_writes_files_for_all_four_platforms(demo_run):
    exports = demo_run["data_dir"] / "exports" / "latest"
    manifest = json.loads((exports / "manifest.json").read_text())
    seen = {name for name, _ in _platform_files(exports)}
    assert seen == {"google_ads", "meta", "klaviyo", "mailchimp"}
    for tier, s in manifest["tiers"].items():
        for name, p in s["platforms"].items():
            assert p["rows"] > 0, (tier, name)
            listed = {f["path"] for f in manifest["files"]}
            assert all(f"audiences/{name}/{f}" in listed for f in p["files"]), (tier, name)


@pytest.mark.slow
def test_demo_run_every_platform_file_follows_its_platform_rules(demo_run):
    exports = demo_run["data_dir"] / "exports" / "latest"
    checked = with_address = with_names = 0
    for name, path in _platform_files(exports):
        header, rows = read(path)
        if name == "google_ads":
            assert set(header) <= GOOGLE_HEADERS and "Email" in header and "Phone" in header, path
            for r in rows:
                assert all(r[c] == "" or HEX64.match(r[c]) for c in ("Email", "Phone", "First Name", "Last Name"))
                assert r["Email"] or r["Phone"] or all(r[c] for c in ("First Name", "Last Name", "Country", "Zip"))
                assert r["Country"] == "" or re.fullmatch("[A-Z]{2}", r["Country"])  # ISO alpha-2, not hashed
                assert not HEX64.match(r["Zip"])
                if r["Country"] == "US" and r["Zip"]:
                    assert re.fullmatch(r"[0-9]{5}(-[0-9]{4})?", r["Zip"]), r["Zip"]
                with_address += all(r[c] for c in ("First Name", "Last Name", "Country", "Zip"))
        elif name == "meta":
            assert set(header) <= META_HEADERS, path
            for r in rows:
                assert all(v == "" or HEX64.match(v) for v in r.values()) and (r["email"] or r["phone"])
                with_names += bool(r["fn"] and r["ln"] and r["country"])
        elif name == "klaviyo":
            assert header[0] == "Email Address", path
            assert path.stat().st_size <= 50_000_000
            for r in rows:
                assert r["Email Address"] and (r["Phone Number"] == "" or E164.match(r["Phone Number"]))
        else:
            assert "Email Address" in header, path
            for r in rows:
                email = r["Email Address"]
                assert " " not in email and email.split("@")[0].isascii() and email.count("@") == 1
                assert all(len(v.encode("utf-8")) <= 255 for v in r.values())
        checked += len(rows)
    assert checked > 0
    # the demo's names and addresses (int_customer_profiles) reach the ad platforms' files
    assert with_address > 0 and with_names > 0


@pytest.mark.slow
def test_demo_run_plain_contacts_match_the_consented_tier_rows(demo_run):
    """Klaviyo and Mailchimp list exactly the tier's consenting customers with an e-mail, and Google's
    hashes are those of the same people's normalised e-mails (recomputed here in Python)."""
    exports = demo_run["data_dir"] / "exports" / "latest"
    manifest = json.loads((exports / "manifest.json").read_text())
    for tier, s in manifest["tiers"].items():
        t = pd.read_parquet(exports / "tiers" / f"{tier}.parquet")
        if "email" not in t.columns:
            continue
        held_out = t["holdout_group"] == "holdout"  # never in a platform file (docs/holdout.md)
        t = t[~held_out]
        consented = t[t["accepts_marketing"].fillna(False).astype(bool)]
        emails = set(consented["email"].dropna())
        if "klaviyo" in s["platforms"]:
            _, rows = read(exports / "audiences" / "klaviyo" / f"{tier}.csv")
            assert {r["Email Address"] for r in rows} == emails, tier
            left = s["platforms"]["klaviyo"]["left_out"]
            assert left.get("holdout", 0) == int(held_out.sum()), tier
            assert left.get("no_marketing_consent", 0) == len(t) - len(consented), tier
            assert left.get("no_email", 0) == int(consented["email"].isna().sum()), tier
        if "google_ads" in s["platforms"]:

            def google(e: str) -> str:
                local, domain = "".join(e.lower().split()).split("@")
                if domain in ("gmail.com", "googlemail.com"):
                    local = local.split("+")[0].replace(".", "")
                return sha(f"{local}@{domain}")

            _, rows = read(exports / "audiences" / "google_ads" / f"{tier}.csv")
            assert {r["Email"] for r in rows if r["Email"]} == {google(e) for e in emails}, tier


@pytest.mark.slow
def test_demo_run_left_out_rows_are_counted_in_the_manifest(demo_run):
    manifest = json.loads((demo_run["data_dir"] / "exports" / "latest" / "manifest.json").read_text())
    reasons = set()
    for tier, s in manifest["tiers"].items():
        for name, p in s["platforms"].items():
            # every customer in the tier (treated and held out) is uploaded or left out with a reason
            assert p["rows"] + sum(p["left_out"].values()) == s["eligible_rows"], (tier, name)
            assert p["left_out"].get("holdout", 0) == s["holdout_rows"], (tier, name)
            reasons |= set(p["left_out"])
    assert {"no_marketing_consent", "holdout"} <= reasons  # the demo has both


@pytest.mark.slow
def test_demo_add_and_remove_files_across_two_runs(demo_run, tmp_path):
    from dagster_project.cli import main

    data_dir = tmp_path / "d"
    shutil.copytree(demo_run["data_dir"], data_dir, symlinks=True)
    first = data_dir / "exports" / "2026-11-01"
    assert main(["run", "--data-dir", str(data_dir), "--as-of", "2026-11-21", "--quiet"]) == 0
    second = data_dir / "exports" / "2026-11-21"
    manifest = json.loads((second / "manifest.json").read_text())
    moved = 0
    for tier, s in manifest["tiers"].items():
        for name, p in s["platforms"].items():
            assert not p["first_run"]
            key = lambda f: {tuple(r.values()) for r in read(f)[1]}  # noqa: E731
            before, after = (
                key(first / "audiences" / name / f"{tier}.csv"),
                key(second / "audiences" / name / f"{tier}.csv"),
            )
            assert key(second / "audiences" / name / f"{tier}.add.csv") == after - before, (tier, name)
            assert key(second / "audiences" / name / f"{tier}.remove.csv") == before - after, (tier, name)
            moved += p["added"] + p["removed"]
    assert moved > 0  # three weeks move customers between tiers


def test_meta_us_state_written_as_its_two_letter_code(tmp_path):
    con = duckdb.connect()
    person = ("k1", True, "a@example.com", None, "A", "B", "Albany", " New York ", "12207", "US")
    _tier_rows(con, [person, ("k2", True, "b@example.com", None, "C", "D", "Lyon", "Rhône", "69001", "FR")])
    platforms.write_platform_files(con, TIER, tmp_path, None)
    _, rows = read(tmp_path / "audiences" / "meta" / "t.csv")
    states = {r["email"]: r["st"] for r in rows}
    assert states[sha("a@example.com")] == sha("ny")  # US: the 2-letter code
    assert states[sha("b@example.com")] == sha("rhone")  # elsewhere: lower case, no special characters


def test_messaging_files_leave_out_an_address_a_spreadsheet_would_run(tmp_path):
    """A guarding quote would make it another address, so Klaviyo and Mailchimp do not get it at all."""
    con = duckdb.connect()
    bad = '=hyperlink("http://evil.example")@evil.example'
    _tier_rows(con, [("k1", True, bad, None, None, None, None, None, None, None)])
    stats = platforms.write_platform_files(con, TIER, tmp_path, None)
    for name in ("klaviyo", "mailchimp"):
        assert stats[name]["rows"] == 0 and stats[name]["left_out"] == {"email_not_accepted": 1}, name
    assert stats["google_ads"]["rows"] == 1  # a hash carries no formula
