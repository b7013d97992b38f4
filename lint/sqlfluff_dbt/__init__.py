"""What sqlfluff's jinja templater lacks to render the dbt models as DuckDB SQL (dbt/.sqlfluff).

sqlfluff's dbt templater would compile through dbt itself, but it pins an older sqlfluff whose click
bound conflicts with the pinned dbt/Dagster stack, and compiling needs a warehouse; so the models are
rendered by plain jinja with the project's own macros (dbt/macros) and these stand-ins for dbt's
context. Every name below becomes a jinja global. The SQL they render only has to parse like what
dbt-duckdb compiles: sqlfluff never fixes templated text, only the literal SQL around it.
"""

from datetime import datetime
from pathlib import Path

import yaml
from jinja2 import pass_context

_PROJECT = yaml.safe_load((Path(__file__).resolve().parents[2] / "dbt" / "dbt_project.yml").read_text())


def var(name, default=None):
    """The project's default (dbt_project.yml vars), as an unset `--vars` leaves it."""
    return _PROJECT["vars"].get(name, default)


class _Target:
    name = type = "duckdb"
    schema = "main"


class _Adapter:
    @pass_context
    def dispatch(self, context, macro_name, macro_namespace=None):
        """The project's duckdb__ implementation, else its default__ one, as dbt resolves on DuckDB."""
        for prefix in ("duckdb__", "default__"):
            macro = context.get(prefix + macro_name)
            if macro is not None:
                return macro
        raise NameError(f"lint/sqlfluff_dbt: no duckdb__ or default__ {macro_name} macro to dispatch to")

    def get_columns_in_relation(self, relation):
        return []


class _DbtNamespace:
    """dbt's cross-database macros (`dbt.datediff`, ...) the models use, rendered as on DuckDB."""

    @staticmethod
    def datediff(first_date, second_date, datepart):
        return f"date_diff('{datepart}', {first_date}, {second_date})"

    @staticmethod
    def dateadd(datepart, interval, from_date_or_timestamp):
        return f"date_add({from_date_or_timestamp}, interval ({interval}) {datepart})"

    @staticmethod
    def date_trunc(datepart, date):
        return f"date_trunc('{datepart}', {date})"

    @staticmethod
    def concat(fields):
        return " || ".join(fields)

    @staticmethod
    def length(expression):
        return f"length({expression})"

    @staticmethod
    def split_part(string_text, delimiter_text, part_number):
        return f"split_part({string_text}, {delimiter_text}, {part_number})"

    @staticmethod
    def position(substring_text, string_text):
        return f"position({substring_text} in {string_text})"

    @staticmethod
    def type_string():
        return "varchar"

    @staticmethod
    def type_bigint():
        return "bigint"

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise NameError(f"lint/sqlfluff_dbt: dbt.{name} has no stand-in; add one beside dbt.datediff")


class _Exceptions:
    @staticmethod
    def raise_compiler_error(message):
        raise RuntimeError(message)


dbt = _DbtNamespace()
adapter = _Adapter()
target = _Target()
exceptions = _Exceptions()
# parse time, as in `dbt parse`: macros that would query the warehouse (run_query) take their
# `if not execute` branch
execute = False
run_started_at = datetime(2026, 1, 1)
