"""Where everything lives under a data directory (the contract in the README)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = REPO_ROOT / "dbt"

INBOX_FOLDERS = ("shopify", "square", "members", "spend", "traffic", "rates", "generic")


def default_data_dir() -> Path:
    """`PIPELINE_DATA_DIR`, else `./data` (relative to the current directory)."""
    from dagster_project.lib.config import Settings

    return Settings.from_env().data_dir


def parse_as_of(value: str | date | None) -> date:
    """The run's as-of date: an ISO date, or today's date (in PIPELINE_TIMEZONE, default UTC) when empty."""
    if isinstance(value, date):
        return value
    if not value:
        from dagster_project.lib.orchestration import business_today

        return business_today()
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"as-of date {value!r} is not a date in YYYY-MM-DD form") from exc


@dataclass(frozen=True)
class DataPaths:
    root: Path

    @classmethod
    def of(cls, data_dir: str | Path | None = None) -> DataPaths:
        return cls(Path(data_dir).resolve() if data_dir else default_data_dir())

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse" / "pipeline.duckdb"

    @property
    def duckdb_temp(self) -> Path:
        return self.root / "warehouse" / "tmp"

    @property
    def serving_dir(self) -> Path:
        return self.root / "serving"

    @property
    def serving_warehouse(self) -> Path:
        return self.serving_dir / "warehouse.duckdb"

    @property
    def serving_marts_dir(self) -> Path:
        return self.serving_dir / "marts"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    @property
    def staging(self) -> Path:
        """Scratch space for write-audit-publish (same filesystem as the published files)."""
        return self.root / ".staging"

    @property
    def dbt_state(self) -> Path:
        """dbt's partial-parse state for this data directory (its profile names this warehouse)."""
        return self.root / "warehouse" / "dbt_state"

    @property
    def dagster_home(self) -> Path:
        return self.root / "dagster_home"

    def ensure(self) -> None:
        for sub in INBOX_FOLDERS:
            (self.inbox / sub).mkdir(parents=True, exist_ok=True)
        for d in (self.warehouse.parent, self.serving_dir, self.exports, self.staging):
            d.mkdir(parents=True, exist_ok=True)

    def inbox_is_empty(self) -> bool:
        if not self.inbox.exists():
            return True
        return not any(p.is_file() and not p.name.startswith(".") for p in self.inbox.rglob("*"))
