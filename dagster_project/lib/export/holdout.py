"""Holdout groups of the tier lists and the history of published tier memberships.

Per tier, a share of the eligible customers is held out of every activation file so the programme run
on the tier can be measured against them (marts.tier_lift).  The draw is a hash of customer key, tier
and a salt kept in the working warehouse (`activation.holdout_salt`), so a customer's group never
changes while the tier's share stays the same, and raising the share only moves treated customers into
the holdout (the hash is compared with a threshold).  The salt is made once, on the first run that
loaded files, from the SHA-256 of those files (raw.load_ledger), and kept from then on: as hard to
guess as the exports themselves, yet two data directories fed the same exports draw the same groups
(RELIABILITY.md, re-run determinism).

The history (`activation.tier_membership`: one row per published as-of date, tier and member) is read
back from the published export folders themselves, so it holds only what was published: a run that
failed left no folder, a re-run of a date replaces that date's rows, a backfill adds its date between
the others, and the rows stay when old export folders are pruned.  `record_published` runs right after
a publish; `reconcile` (before every dbt build) records any published folder a crash kept from being
recorded.  dbt turns the history into marts.tier_memberships and marts.tier_lift.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import duckdb

SCHEMA = "activation"
SALT_TABLE = f"{SCHEMA}.holdout_salt"
MEMBERSHIP_TABLE = f"{SCHEMA}.tier_membership"
RUNS_TABLE = f"{SCHEMA}.tier_membership_runs"
DEFAULT_SHARE = 0.10
TREATED, HELD_OUT = "treated", "holdout"
# The draw: the first 13 hex digits of sha256(customer_key|tier|salt) as a number in [0, 16**13) (52 bits,
# exact in a double and a BIGINT), held out below share * 16**13.  SHA-256 rather than an engine's hash():
# the same on every engine and version, and reproducible by anyone with the salt (draw() below).
HASH_DIGITS = 13
HASH_RANGE = 16**HASH_DIGITS
AS_OF_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_SALT = re.compile(r"^[0-9a-f]{32}$")
NO_DATA_SALT = "0" * 32  # before any file was loaded there is no customer to draw


def _loaded_file_hashes(con: duckdb.DuckDBPyConnection) -> list[str]:
    try:
        rows = con.execute(
            "select distinct sha256 from raw.load_ledger where status = 'loaded' and sha256 is not null order by 1"
        ).fetchall()
    except duckdb.CatalogException:
        return []
    return [r[0] for r in rows]


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    """The activation schema's tables, and the salt (made once, when the warehouse first has loaded files)."""
    con.execute(f"create schema if not exists {SCHEMA}")
    con.execute(f"create table if not exists {SALT_TABLE} (salt varchar not null, created_at timestamp not null)")
    con.execute(
        f"create table if not exists {MEMBERSHIP_TABLE} (as_of_date date not null, tier varchar not null, "
        "customer_key varchar not null, holdout_group varchar not null, run_id varchar not null)"
    )
    con.execute(
        f"create table if not exists {RUNS_TABLE} (as_of_date date not null, run_id varchar not null, "
        "recorded_at timestamp not null, tiers varchar not null)"
    )
    if not con.execute(f"select count(*) from {SALT_TABLE}").fetchone()[0]:
        files = _loaded_file_hashes(con)
        if files:
            salt = hashlib.sha256(("holdout-salt\n" + "\n".join(files)).encode()).hexdigest()[:32]
            con.execute(f"insert into {SALT_TABLE} values (?, current_timestamp)", [salt])


def read_salt(con: duckdb.DuckDBPyConnection) -> str:
    try:
        row = con.execute(f"select min(salt) from {SALT_TABLE}").fetchone()
    except duckdb.CatalogException:
        row = None
    if (not row or row[0] is None) and not _loaded_file_hashes(con):
        return NO_DATA_SALT
    if not row or row[0] is None:
        raise ValueError(
            f"the working warehouse has no holdout salt ({SALT_TABLE}); it is created before the dbt build of "
            "every run, so run the pipeline (not the export step alone) once"
        )
    if not _SALT.match(row[0]):
        raise ValueError(f"{SALT_TABLE} holds a salt that is not 32 hex digits")
    return row[0]


def threshold(share: float) -> int:
    return int(round(share * HASH_RANGE))


def group_sql(key_sql: str, tier: str, share: float, salt: str) -> str:
    """SQL for the holdout group ('treated' or 'holdout') of the customer in `key_sql` in `tier`."""
    if share <= 0:
        return f"'{TREATED}'"
    digest = f"sha256({key_sql} || '|{tier}|{salt}')"
    number = f"cast('0x' || left({digest}, {HASH_DIGITS}) as bigint)"
    return f"case when {number} < {threshold(share)} then '{HELD_OUT}' else '{TREATED}' end"


def draw(customer_key: str, tier: str, salt: str, share: float) -> str:
    """Python twin of group_sql (tests, and anyone re-checking a group by hand)."""
    import hashlib

    if share <= 0:
        return TREATED
    number = int(hashlib.sha256(f"{customer_key}|{tier}|{salt}".encode()).hexdigest()[:HASH_DIGITS], 16)
    return HELD_OUT if number < threshold(share) else TREATED


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def record_published(con: duckdb.DuckDBPyConnection, folder: Path, as_of: str, run_id: str) -> int:
    """Record the tier members of one published export folder (exports/<as-of>/) as that date's rows of
    the history, replacing what was recorded for the date before (one transaction); returns the rows.
    Tiers come from the manifest; a tier file written before holdouts existed has everyone treated."""
    ensure_tables(con)
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    selects = []
    for name in sorted(manifest.get("tiers") or {}):
        path = folder / "tiers" / f"{name}.parquet"
        if not path.exists():
            continue
        cols = {r[0] for r in con.execute(f"describe select * from read_parquet('{_sql_path(path)}')").fetchall()}
        group = "holdout_group" if "holdout_group" in cols else f"'{TREATED}'"
        selects.append(
            f"select distinct customer_key, tier, {group} as holdout_group from read_parquet('{_sql_path(path)}')"
        )
    con.execute("begin")
    try:
        con.execute(f"delete from {MEMBERSHIP_TABLE} where as_of_date = ?", [as_of])
        rows = 0
        if selects:
            rows = con.execute(
                f"insert into {MEMBERSHIP_TABLE} select cast(? as date), tier, customer_key, holdout_group, ? "
                f"from ({' union all '.join(selects)}) where customer_key is not null",
                [as_of, run_id],
            ).fetchone()[0]
        con.execute(f"delete from {RUNS_TABLE} where as_of_date = ?", [as_of])
        con.execute(
            f"insert into {RUNS_TABLE} values (?, ?, current_timestamp, ?)",
            [as_of, run_id, json.dumps(sorted(manifest.get("tiers") or {}))],
        )
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return int(rows)


def reconcile(con: duckdb.DuckDBPyConnection, exports: Path) -> list[str]:
    """Record every published export folder whose run is not the one recorded for its date (a publish a
    crash kept from being recorded, or folders published before the history existed); returns the dates."""
    ensure_tables(con)
    if not exports.is_dir():
        return []
    recorded = {str(d): r for d, r in con.execute(f"select as_of_date, run_id from {RUNS_TABLE}").fetchall()}
    done = []
    for p in sorted(exports.iterdir()):
        if not AS_OF_FOLDER.match(p.name) or p.is_symlink() or not (p / "manifest.json").is_file():
            continue
        run_id = json.loads((p / "manifest.json").read_text(encoding="utf-8")).get("run_id", "")
        if recorded.get(p.name) != run_id:
            record_published(con, p, p.name, run_id)
            done.append(p.name)
    return done


def carry_over(old_warehouse: Path, con: duckdb.DuckDBPyConnection) -> int:
    """--full-refresh: copy the salt and the membership history from the warehouse set aside into the new
    one (they record what was published, which the inbox cannot rebuild, and a new salt would re-draw
    every group). Returns the history rows carried over."""
    ensure_tables(con)
    try:
        con.execute(f"attach '{_sql_path(old_warehouse)}' as before_refresh (read_only)")
    except duckdb.Error:
        return 0
    try:
        have = {
            r[0]
            for r in con.execute(
                "select table_name from duckdb_tables() where database_name = 'before_refresh' and schema_name = ?",
                [SCHEMA],
            ).fetchall()
        }
        rows = 0
        con.execute("begin")
        for table in ("holdout_salt", "tier_membership", "tier_membership_runs"):
            if table in have:
                con.execute(f"delete from {SCHEMA}.{table}")
                n = con.execute(
                    f"insert into {SCHEMA}.{table} select * from before_refresh.{SCHEMA}.{table}"
                ).fetchone()[0]
                rows += n if table == "tier_membership" else 0
        con.execute("commit")
    finally:
        con.execute("detach before_refresh")
    return int(rows)
