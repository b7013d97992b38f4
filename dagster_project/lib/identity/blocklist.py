"""Identifiers that never link records: the shipped list of placeholders plus the data directory's own.

`blocklist.yml` beside this module is the shipped list; `<data dir>/identity/blocklist.yml`
extends it (the shop's own e-mails and store phones).  Rules are evaluated set-based in DuckDB over
normalised identifiers (`id_type`, `normalised_value`); see the YAML file for the format.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import yaml

SHIPPED = Path(__file__).with_name("blocklist.yml")
ID_TYPES = ("email", "phone", "square_customer_id", "member_id", "source_customer_id")
_KEYS = {
    "email": {"exact", "local_parts", "domains", "patterns"},
    "phone": {"exact", "patterns", "min_national_digits", "repeated_digit", "sequences"},
}


def user_blocklist_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / "identity" / "blocklist.yml"


@dataclass(frozen=True)
class Blocklist:
    exact: tuple[tuple[str, str], ...] = ()  # (id_type, normalised value)
    local_parts: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    patterns: tuple[tuple[str, str], ...] = ()  # (id_type, RE2 pattern over the whole normalised value)
    min_national_digits: int = 0
    repeated_digit: bool = False
    sequences: bool = False
    files: tuple[str, ...] = field(default=(), compare=False)

    def fingerprint(self) -> str:
        """Changes whenever the rules do (a changed list makes the next resolution a full one)."""
        body = json.dumps(
            [
                sorted(self.exact),
                sorted(self.local_parts),
                sorted(self.domains),
                sorted(self.patterns),
                self.min_national_digits,
                self.repeated_digit,
                self.sequences,
            ]
        )
        return hashlib.sha256(body.encode("utf-8")).hexdigest()[:16]

    def listed(self, con: duckdb.DuckDBPyConnection, nodes: str, into: str) -> None:
        """`into(node, id_type, normalised_value)`: the rows of table `nodes(node, id_type, normalised_value)`
        the list blocks, as a temp table."""
        import pyarrow as pa

        con.register(
            "_bl_exact",
            pa.table(
                {
                    "id_type": [t for t, _ in self.exact] or pa.array([], pa.string()),
                    "value": [v for _, v in self.exact] or pa.array([], pa.string()),
                }
            ),
        )
        con.register("_bl_local", pa.table({"value": pa.array(list(self.local_parts), pa.string())}))
        con.register("_bl_domain", pa.table({"value": pa.array(list(self.domains), pa.string())}))
        con.register("_bl_cc", pa.table({"cc": pa.array(_country_codes(), pa.string())}))
        # one constant regular expression per type (a pattern read from a column is compiled per row)
        by_type: dict[str, list[str]] = {}
        for id_type, pattern in self.patterns:
            by_type.setdefault(id_type, []).append(f"(?:{pattern})")
        patterns = (
            " or ".join(
                f"(id_type = '{t}' and regexp_full_match(v, {_sql_text('|'.join(ps))}))"
                for t, ps in sorted(by_type.items())
            )
            or "false"
        )
        digit_rules = [f"length(nat) < {int(self.min_national_digits)}"]
        if self.repeated_digit:
            digit_rules.append("replace(nat, left(nat, 1), '') = ''")
        if self.sequences:
            digit_rules.append(
                "(length(nat) >= 6 and (contains('01234567890123456789', nat) "
                "or contains('98765432109876543210', nat)))"
            )
        try:
            con.execute(
                f"""
                create or replace temp table {into} as
                with n as (select node, id_type, normalised_value as v from {nodes}),
                emails as (select node, v from n where id_type = 'email'),
                phone_nodes as (select node, v from n where id_type = 'phone'),
                phones as (
                    -- the national number: the digits after the country code (1-3 digits, prefix-free)
                    select p.node, substr(p.v, 2 + length(c.cc)) as nat
                    from phone_nodes p join _bl_cc c on c.cc = substr(p.v, 2, 1)
                    union all
                    select p.node, substr(p.v, 2 + length(c.cc)) from phone_nodes p join _bl_cc c on c.cc = substr(p.v, 2, 2)
                    union all
                    select p.node, substr(p.v, 2 + length(c.cc)) from phone_nodes p join _bl_cc c on c.cc = substr(p.v, 2, 3)
                ),
                hit as (
                    select n.node from n join _bl_exact e on e.id_type = n.id_type and e.value = n.v
                    union
                    select e.node from emails e join _bl_local l on l.value = split_part(e.v, '@', 1)
                    union
                    select e.node from emails e join _bl_domain d on d.value = split_part(e.v, '@', 2)
                    union
                    select node from n where {patterns}
                    union
                    select node from phones where {" or ".join(digit_rules)}
                )
                select n.node, n.id_type, n.normalised_value from {nodes} n where n.node in (select node from hit)
                """  # noqa: E501 (SQL or printed text)
            )
        finally:
            for name in ("_bl_exact", "_bl_local", "_bl_domain", "_bl_cc"):
                con.unregister(name)


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _country_codes() -> list[str]:
    import phonenumbers

    return sorted(str(cc) for cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


def load(default_region: str, data_dir: str | Path | None = None) -> Blocklist:
    """The shipped list, extended by `<data dir>/identity/blocklist.yml` when there is one.  Listed phones
    are read in `default_region`, like the records' phones.  A malformed file raises ValueError naming the
    file and the entry."""
    files = [SHIPPED]
    if data_dir is not None and user_blocklist_path(data_dir).exists():
        files.append(user_blocklist_path(data_dir))
    exact, local, domains, patterns = set(), set(), set(), set()
    min_digits, repeated, sequences = 0, False, False
    check = duckdb.connect()
    for path in files:
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ValueError(f"{path}: not valid YAML: {exc}") from exc
        if not isinstance(doc, dict):
            raise ValueError(f"{path}: expected a mapping of identifier types ({', '.join(ID_TYPES)})")
        for id_type, rules in doc.items():
            if id_type not in ID_TYPES:
                raise ValueError(f"{path}: unknown identifier type {id_type!r} (expected one of {', '.join(ID_TYPES)})")
            rules = rules or {}
            allowed = _KEYS.get(id_type, {"exact", "patterns"})
            if not isinstance(rules, dict) or set(rules) - allowed:
                raise ValueError(
                    f"{path}: {id_type}: expected the keys {', '.join(sorted(allowed))}, "
                    f"got {rules if not isinstance(rules, dict) else ', '.join(sorted(set(rules) - allowed))}"
                )
            for i, raw in enumerate(_strings(path, id_type, "exact", rules)):
                value = _normalised(id_type, raw, default_region)
                if value is None:
                    raise ValueError(
                        f"{path}: {id_type}.exact[{i}] {raw!r} is not a valid {id_type} "
                        f"(phones are read in region {default_region})"
                    )
                exact.add((id_type, value))
            for i, pattern in enumerate(_strings(path, id_type, "patterns", rules)):
                try:
                    check.execute("select regexp_full_match('', ?)", [pattern])
                except duckdb.Error as exc:
                    raise ValueError(
                        f"{path}: {id_type}.patterns[{i}] {pattern!r} is not a valid RE2 regular expression: {exc}"
                    ) from exc
                patterns.add((id_type, pattern))
            local |= {v.strip().lower() for v in _strings(path, id_type, "local_parts", rules)}
            domains |= {v.strip().lower() for v in _strings(path, id_type, "domains", rules)}
            if "min_national_digits" in rules:
                value = rules["min_national_digits"]
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise ValueError(f"{path}: phone.min_national_digits {value!r}: expected a whole number")
                min_digits = value
            for key in ("repeated_digit", "sequences"):
                if key in rules and not isinstance(rules[key], bool):
                    raise ValueError(f"{path}: phone.{key} {rules[key]!r}: expected true or false")
            repeated = rules.get("repeated_digit", repeated) if id_type == "phone" else repeated
            sequences = rules.get("sequences", sequences) if id_type == "phone" else sequences
    check.close()
    return Blocklist(
        tuple(sorted(exact)),
        tuple(sorted(local)),
        tuple(sorted(domains)),
        tuple(sorted(patterns)),
        min_digits,
        repeated,
        sequences,
        tuple(str(p) for p in files),
    )


def _strings(path: Path, id_type: str, key: str, rules: dict) -> list[str]:
    values = rules.get(key) or []
    if not isinstance(values, list):
        raise ValueError(f"{path}: {id_type}.{key}: expected a list of values")
    for i, v in enumerate(values):
        if not isinstance(v, (str, int)) or isinstance(v, bool):
            raise ValueError(
                f"{path}: {id_type}.{key}[{i}] {v!r}: expected text (quote values YAML reads as "
                f"something else, such as 'null', 'no' or 'yes')"
            )
    return [str(v) for v in values]


def _normalised(id_type: str, raw: str, default_region: str) -> str | None:
    from dagster_project.lib.identity import resolution

    return resolution.normalise(id_type, raw, default_region)
