"""Audience files each ad or messaging platform imports as it is: Google Ads Customer Match, Meta custom
audiences, Klaviyo list import and Mailchimp audience import (docs/audiences.md).

For every tier and every platform the tier names in tiers.yml (`platforms:`), written by DuckDB from the
tier's rows (`tiers.TIER_ROWS`), in `<out>/audiences/<platform>/`:

- `<tier>.csv`: the whole list in the platform's own headers, column order and value format;
- `<tier>.add.csv` / `<tier>.remove.csv`: the rows uploaded now and not last time, and the rows uploaded
  last time and not now (a customer whose identifiers changed is in both: the old values to remove,
  the new ones to add), both in the same format;
- `<tier>.parquet`: customer_key beside exactly the values uploaded, which the next run's remove file
  is taken from (a remove file must carry the identifiers that were uploaded, not today's).

A file over the platform's size cap is written as `<name>.part-001.csv`, ... each with the header.
Rows a platform cannot use are left out and counted per reason in the tier's stats (manifest.json).
Every rule below cites the platform's page it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from dagster_project.lib.export import tiers

# Names and address, joined by customer_key from `intermediate.int_customer_profiles` (a warehouse built
# before that model has none: the columns stay empty and matching runs on e-mail and phone).
PROFILE_TABLE = ("intermediate", "int_customer_profiles")
PROFILE_COLUMNS = ("first_name", "last_name", "city", "region", "postal_code", "country_code")
AUDIENCE_ROWS = "audience_rows"  # temp table: one tier's rows with contact and profile columns
PLATFORM_ROWS = "platform_rows"  # temp table: one platform's normalised columns and why a row is left out
LEFT_OUT = "left_out_reason"


def activated_rows_condition() -> str:
    """SQL condition over the tier rows (alias `t`): who may be written to any platform file.  Held-out
    customers (docs/holdout.md) never are; they are counted as left out (`holdout`)."""
    return f"t.{tiers.TREATED_ONLY}"


@dataclass(frozen=True)
class Platform:
    name: str
    title: str
    columns: tuple[tuple[str, str], ...]  # (header, SQL over AUDIENCE_ROWS), in the platform's order
    usable: tuple[tuple[str, str], ...]  # (reason when false, SQL condition), checked in order after consent
    hashed: bool
    max_file_bytes: int = 0  # 0: no cap the platform documents


# --- value normalisation, shared SQL ------------------------------------------------------------------

_TRIMMED_EMAIL = "regexp_replace(lower(email), '\\s', '', 'g')"
E164 = f"case when regexp_full_match(phone, '{tiers.E164_RE}') then phone end"


def _sha256(expr: str) -> str:
    """SHA-256 of a normalised value as 64 lower-case hex digits; NULL stays NULL (an empty cell)."""
    return f"case when ({expr}) is not null and ({expr}) <> '' then sha256({expr}) end"


def _at_most_bytes(expr: str, limit: int) -> str:
    """The longest prefix of a text that is at most `limit` bytes in UTF-8 (a character is never cut)."""
    return (
        f"case when strlen({expr}) <= {limit} then {expr} else left({expr}, "
        f"list_max(list_filter(range(0, {limit + 1}), lambda k: strlen(left({expr}, k)) <= {limit}))) end"
    )


def _clean_text(column: str) -> str:
    """A plain-text value on one line: control characters (line breaks, tabs) as spaces, trimmed."""
    return f"nullif(trim(regexp_replace({column}, '[\\x00-\\x1f\\x7f]+', ' ', 'g')), '')"


# Google: https://developers.google.com/data-manager/api/devguides/concepts/formatting (Data Manager API,
# "Format user data", the rules Customer Match applies): e-mail lower case, leading, trailing and
# intermediate whitespace removed, and for gmail.com / googlemail.com addresses every "." before the "@"
# removed and a "+" with everything after it in the local part removed; other domains keep dots and plus.
_GMAIL_DOMAIN = f"split_part({_TRIMMED_EMAIL}, '@', 2)"
GOOGLE_EMAIL = (
    f"case when {_GMAIL_DOMAIN} in ('gmail.com', 'googlemail.com') then "
    f"replace(split_part(split_part({_TRIMMED_EMAIL}, '@', 1), '+', 1), '.', '') || '@' || {_GMAIL_DOMAIN} "
    f"else {_TRIMMED_EMAIL} end"
)
# US postal code: 5 digits, or 5 digits followed by the 4-digit extension; other countries: the code as
# given, trimmed (extended codes are not used outside the US) -- the same page, `postal_code`.
GOOGLE_ZIP = (
    "case when upper(trim(country_code)) = 'US' then "
    "nullif(regexp_extract(trim(postal_code), '^([0-9]{5}(-[0-9]{4})?)', 1), '') "
    "else nullif(trim(postal_code), '') end"
)

GOOGLE_ADS = Platform(
    name="google_ads",
    title="Google Ads Customer Match",
    # Headers and their order: https://support.google.com/google-ads/answer/7659867 ("Format your customer
    # data file": English headers Email, Phone, First Name, Last Name, Country, Zip; CSV in ASCII or UTF-8).
    # Hashed values: https://support.google.com/google-ads/answer/7476159 (SHA256; Google Ads hashes plain
    # values itself, so hashing here only keeps plain contacts off the file).  Names are lower-cased and
    # trimmed before hashing, the phone is E.164 with "+" and country code, Country (ISO 3166-1 alpha-2)
    # and Zip are not hashed (Data Manager "Format user data": region_code, postal_code "Don't hash").
    columns=(
        ("Email", _sha256(GOOGLE_EMAIL)),
        ("Phone", _sha256(E164)),
        ("First Name", _sha256("lower(trim(first_name))")),
        ("Last Name", _sha256("lower(trim(last_name))")),
        (
            "Country",
            "case when regexp_full_match(upper(trim(country_code)), '[A-Z]{2}') then upper(trim(country_code)) end",
        ),
        ("Zip", GOOGLE_ZIP),
    ),
    # Matching needs an e-mail, a phone, or the mailing address: First Name, Last Name, Country and Zip
    # together (support.google.com/google-ads/answer/7659867, "Mailing address matching").
    usable=(
        (
            "no_email_phone_or_address",
            "email is not null or phone is not null or (first_name is not null and last_name is not null "
            "and country_code is not null and postal_code is not null)",
        ),
    ),
    hashed=True,
)

# Meta: https://developers.facebook.com/docs/marketing-api/audiences/guides/custom-audiences ("Hashing and
# Normalizing Data"): EMAIL trimmed and lower-cased; PHONE digits only (symbols, letters and leading zeros
# removed) with the country code; FN/LN lower case without punctuation (UTF-8 letters kept); CT a-z only,
# no whitespace; ST lower case without punctuation or whitespace (the 2-letter code for US states);
# ZIP lower case without whitespace, the first 5 digits in the US, area/district/sector in the UK;
# COUNTRY the ISO 3166-1 alpha-2 code in lower case; every value SHA-256 hashed.
# Column headers of a customer-list file: https://www.facebook.com/business/help/2082575038703844
# (email, phone, fn, ln, zip, ct, st, country; Ads Manager hashes plain values, and takes hashed ones).
META_ZIP = (
    "case when lower(trim(country_code)) = 'us' then regexp_extract(postal_code, '^\\s*([0-9]{5})', 1) "
    "when lower(trim(country_code)) = 'gb' then "
    "left(regexp_replace(lower(postal_code), '\\s', '', 'g'), -2) "
    "else regexp_replace(lower(postal_code), '\\s', '', 'g') end"
)
# US states and DC by name, for Meta's 2-letter state code (ANSI / USPS abbreviations)
US_STATES = dict(
    alabama="al",
    alaska="ak",
    arizona="az",
    arkansas="ar",
    california="ca",
    colorado="co",
    connecticut="ct",
    delaware="de",
    districtofcolumbia="dc",
    florida="fl",
    georgia="ga",
    hawaii="hi",
    idaho="id",
    illinois="il",
    indiana="in",
    iowa="ia",
    kansas="ks",
    kentucky="ky",
    louisiana="la",
    maine="me",
    maryland="md",
    massachusetts="ma",
    michigan="mi",
    minnesota="mn",
    mississippi="ms",
    missouri="mo",
    montana="mt",
    nebraska="ne",
    nevada="nv",
    newhampshire="nh",
    newjersey="nj",
    newmexico="nm",
    newyork="ny",
    northcarolina="nc",
    northdakota="nd",
    ohio="oh",
    oklahoma="ok",
    oregon="or",
    pennsylvania="pa",
    rhodeisland="ri",
    southcarolina="sc",
    southdakota="sd",
    tennessee="tn",
    texas="tx",
    utah="ut",
    vermont="vt",
    virginia="va",
    washington="wa",
    westvirginia="wv",
    wisconsin="wi",
    wyoming="wy",
)
_REGION = "regexp_replace(lower(strip_accents(region)), '[^a-z0-9]', '', 'g')"
META_STATE = (
    f"case when lower(trim(country_code)) = 'us' then case {_REGION} "
    + " ".join(f"when '{name}' then '{code}'" for name, code in US_STATES.items())
    + f" else {_REGION} end else {_REGION} end"
)
META = Platform(
    name="meta",
    title="Meta custom audience (customer list)",
    columns=(
        ("email", _sha256("lower(trim(email))")),
        ("phone", _sha256(f"ltrim(regexp_replace({E164}, '[^0-9]', '', 'g'), '0')")),
        ("fn", _sha256("regexp_replace(lower(trim(first_name)), '[[:punct:][:space:]]', '', 'g')")),
        ("ln", _sha256("regexp_replace(lower(trim(last_name)), '[[:punct:][:space:]]', '', 'g')")),
        ("zip", _sha256(META_ZIP)),
        ("ct", _sha256("regexp_replace(lower(strip_accents(city)), '[^a-z]', '', 'g')")),
        ("st", _sha256(META_STATE)),
        (
            "country",
            _sha256(
                "case when regexp_full_match(lower(trim(country_code)), '[a-z]{2}') then lower(trim(country_code)) end"
            ),
        ),
    ),
    # email and phone are the main identifiers (facebook.com/business/help/2082575038703844); names and
    # address only add to a match on them
    usable=(("no_email_or_phone", "email is not null or phone is not null"),),
    hashed=True,
)

# Klaviyo: https://help.klaviyo.com/hc/en-us/articles/115005078967 ("Requirements for formatting CSVs"):
# CSV; the first column's header "Email Address" (or "Phone Number"); other columns in any order, named
# as the Klaviyo property they fill; at most 50 MB a file, larger uploads split into several CSV files.
# Phone: https://help.klaviyo.com/hc/en-us/articles/360046055671 (E.164 accepted by the import and the
# only form the API takes; the country must be known: a Country column or the country code in front).
# The list is e-mail marketing: the consent the pipeline holds is consent to marketing by e-mail, and SMS
# consent is separate (help.klaviyo.com/hc/en-us/articles/360035428731), so a row needs an e-mail.
# An address a spreadsheet would run as a formula (tiers.neutralised_sql) cannot be written as it is, and
# written with the guarding quote it is no longer the customer's address: left out of the messaging files.
SENDABLE_EMAIL = f"{tiers.neutralised_sql('email')} = email"
KLAVIYO = Platform(
    name="klaviyo",
    title="Klaviyo list import",
    columns=(
        ("Email Address", "email"),
        ("Phone Number", E164),
        ("First Name", _clean_text("first_name")),
        ("Last Name", _clean_text("last_name")),
        (
            "Country",
            "case when regexp_full_match(upper(trim(country_code)), '[A-Z]{2}') then upper(trim(country_code)) end",
        ),
    ),
    usable=(("no_email", "email is not null"), ("email_not_accepted", SENDABLE_EMAIL)),
    hashed=False,
    max_file_bytes=50_000_000,
)

# Mailchimp: https://mailchimp.com/help/format-guidelines-for-your-import-file/ (an "Email Address"
# column, one address per contact, no spaces before or after, international characters only after the
# "@"; columns in any order; text fields such as first and last name up to 255 bytes) and
# http://kb.mailchimp.com/lists/growth/format-list-fields (import files encoded in UTF-8).
MAILCHIMP_EMAIL_OK = "regexp_full_match(email, '[!-?A-~]+@[^@\\s]+')"  # printable ASCII before the @
MAILCHIMP = Platform(
    name="mailchimp",
    title="Mailchimp audience import",
    columns=(
        ("Email Address", "trim(email)"),
        ("First Name", _at_most_bytes(_clean_text("first_name"), 255)),
        ("Last Name", _at_most_bytes(_clean_text("last_name"), 255)),
    ),
    usable=(
        ("no_email", "email is not null"),
        ("email_not_accepted", f"{MAILCHIMP_EMAIL_OK} and {SENDABLE_EMAIL}"),
    ),
    hashed=False,
)

PLATFORMS = {p.name: p for p in (GOOGLE_ADS, META, KLAVIYO, MAILCHIMP)}
# Ad platforms and messaging platforms alike get only customers who accepted marketing: the tier rows
# carry contact points only for them (tiers.materialise), as the consented hashed file always did.
CONSENT = "coalesce(accepts_marketing, false)"


def validate(tier_name: str, value, source: Path) -> tuple[str, ...]:
    """The `platforms:` of a tier in tiers.yml: a list of known platform names."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(
            f"{source}: tier {tier_name!r}: platforms must be a list of names, e.g. [google_ads, meta]; got {value!r}"
        )
    unknown = [v for v in value if v not in PLATFORMS]
    if unknown:
        raise ValueError(
            f"{source}: tier {tier_name!r} lists unknown platforms {unknown}; choose from {sorted(PLATFORMS)}"
        )
    if len(set(value)) != len(value):
        raise ValueError(f"{source}: tier {tier_name!r} lists a platform twice: {value}")
    return tuple(value)


def _profiles_available(con: duckdb.DuckDBPyConnection) -> bool:
    schema, table = PROFILE_TABLE
    return bool(
        con.execute(
            "select count(*) from duckdb_tables() where schema_name = ? and table_name = ?", [schema, table]
        ).fetchone()[0]
        + con.execute(
            "select count(*) from duckdb_views() where schema_name = ? and view_name = ?", [schema, table]
        ).fetchone()[0]
    )


def _audience_rows(con: duckdb.DuckDBPyConnection) -> None:
    """The tier's rows with the profile columns (NULL while there is no profile model)."""
    if _profiles_available(con):
        schema, table = PROFILE_TABLE
        profile = ", ".join(f"p.{c}" for c in PROFILE_COLUMNS)
        join = f"left join {schema}.{table} p on p.customer_key = t.customer_key"
    else:
        profile = ", ".join(f"cast(null as varchar) as {c}" for c in PROFILE_COLUMNS)
        join = ""
    con.execute(
        f"""
        create or replace temp table {AUDIENCE_ROWS} as
        select t.customer_key, t.accepts_marketing, t.email, t.phone, ({activated_rows_condition()}) as activated,
            {profile}
        from {tiers.TIER_ROWS} t {join}
        """
    )


def _platform_rows(con: duckdb.DuckDBPyConnection, platform: Platform) -> None:
    reasons = " ".join(f"when not coalesce({cond}, false) then '{reason}'" for reason, cond in platform.usable)
    values = ", ".join(f"{expr} as {tiers.quoted(header)}" for header, expr in platform.columns)
    con.execute(
        f"""
        create or replace temp table {PLATFORM_ROWS} as
        select customer_key, {values},
            case when not coalesce(activated, false) then 'holdout'
                when not {CONSENT} then 'no_marketing_consent' {reasons} end as {LEFT_OUT}
        from {AUDIENCE_ROWS}
        """
    )


def split_by_bytes(path: Path, limit: int) -> list[Path]:
    """A CSV over `limit` bytes as `<stem>.part-001.csv`, ... each at most `limit` bytes with the header
    (rows are one line each: text values carry no line breaks).  Returns the files written."""
    if not limit or path.stat().st_size <= limit:
        return [path]
    parts: list[Path] = []
    with path.open("rb") as fh:
        header = fh.readline()
        out, size = None, 0
        for line in fh:
            if out is None or size + len(line) > limit:
                if out is not None:
                    out.close()
                parts.append(path.with_name(f"{path.stem}.part-{len(parts) + 1:03d}.csv"))
                out = parts[-1].open("wb")
                out.write(header)
                size = len(header)
            out.write(line)
            size += len(line)
        if out is not None:
            out.close()
    path.unlink()
    return parts


def _sql_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def write_platform_files(con: duckdb.DuckDBPyConnection, tier: tiers.Tier, out: Path, previous: Path | None) -> dict:
    """Every platform file of one tier (its rows in `tiers.TIER_ROWS`); returns the stats per platform."""
    if not tier.platforms:
        return {}
    _audience_rows(con)
    stats = {}
    for name in tier.platforms:
        platform = PLATFORMS[name]
        folder = out / "audiences" / name
        folder.mkdir(parents=True, exist_ok=True)
        _platform_rows(con, platform)
        headers = [h for h, _ in platform.columns]
        listed = f"(select * from {PLATFORM_ROWS} where {LEFT_OUT} is null)"
        key_and_values = "customer_key, " + ", ".join(map(tiers.quoted, headers))
        select = tiers.csv_select(con, PLATFORM_ROWS, headers)

        rows = tiers.copy_to(con, f"select {select} from {listed} order by customer_key", folder / f"{tier.name}.csv")
        before = previous / "audiences" / name / f"{tier.name}.parquet" if previous is not None else None
        first_run = before is None or not before.exists()
        if first_run:
            uploaded = f"(select {key_and_values} from {PLATFORM_ROWS} where false)"
        else:  # the previous run's values by header; a column it did not have is empty
            had = {r[0] for r in con.execute(f"describe select * from read_parquet({_sql_path(before)})").fetchall()}
            uploaded = (
                "(select customer_key, "
                + ", ".join(
                    f"cast({tiers.quoted(h) if h in had else 'null'} as varchar) as {tiers.quoted(h)}" for h in headers
                )
                + f" from read_parquet({_sql_path(before)}))"
            )
        now = f"(select {key_and_values} from {listed})"
        added = tiers.copy_to(
            con,
            f"select {select} from ({now} except {uploaded}) as {PLATFORM_ROWS} order by customer_key",
            folder / f"{tier.name}.add.csv",
        )
        removed = tiers.copy_to(
            con,
            f"select {select} from ({uploaded} except {now}) as {PLATFORM_ROWS} order by customer_key",
            folder / f"{tier.name}.remove.csv",
        )
        tiers.copy_to(
            con,
            f"select {key_and_values} from {listed} order by customer_key",
            folder / f"{tier.name}.parquet",
            fmt="parquet",
        )
        files = []
        for kind in ("", ".add", ".remove"):
            files += [p.name for p in split_by_bytes(folder / f"{tier.name}{kind}.csv", platform.max_file_bytes)]
        left_out = dict(
            con.execute(
                f"select {LEFT_OUT}, count(*) from {PLATFORM_ROWS} where {LEFT_OUT} is not null group by 1 order by 1"
            ).fetchall()
        )
        stats[name] = {
            "rows": rows,
            "added": added,
            "removed": removed,
            "first_run": first_run,
            "hashed": platform.hashed,
            "left_out": {k: int(v) for k, v in left_out.items()},
            "files": sorted(files),
        }
    con.execute(f"drop table if exists {PLATFORM_ROWS}")
    con.execute(f"drop table if exists {AUDIENCE_ROWS}")
    return stats
