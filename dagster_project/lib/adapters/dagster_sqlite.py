"""Adapter (dagster, private): Dagster's SQLite run history with its event log connections kept open.

Dagster's `SqliteEventLogStorage` opens a new SQLAlchemy engine and SQLite connection for every event it
stores (often two or three: the run's shard, the cross-run index, the asset-check tables), and closing
the last connection to a WAL database checkpoints it and deletes the WAL file, with fsyncs each time.
That bookkeeping was the largest fixed cost of a demo run (BENCHMARKS.md, run E, measured with a timer
around `store_event`). With one engine per shard kept open and `synchronous=NORMAL` (SQLite's
recommended setting for WAL: no fsync per commit, never corrupts, may lose the last commits on power
loss) it is a small one.

The files are the ones Dagster's default storage writes (`<dagster home>/history/runs/<run id>.db` and
`index.db`), so `dagster dev`, its daemon and any other Dagster process read (and write) them with
Dagster's own storage, as configured by dagster.yaml; the command line (`python -m dagster_project`)
builds its instance with `instance_ref`, which puts this storage in (through `InstanceRef.from_dir`'s
`overrides`, as Dagster's own temporary instances do). It overrides `_connect` and `has_table` and uses
`_initdb`, `_db_lock` and `_initialized_dbs`: the private members in `RELIES_ON`, checked by
tests/test_adapters.py; tests/test_dagster_storage.py checks that each storage reads what the other wrote.
"""

import os
import threading
from collections import OrderedDict
from contextlib import contextmanager
from pathlib import Path

import yaml
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage
from sqlalchemy import create_engine, event
from sqlalchemy.pool import QueuePool

_EVENT_LOG = "dagster._core.storage.event_log.sqlite.sqlite_event_log.SqliteEventLogStorage"
RELIES_ON = {
    # replaced: the per-call engine and connection
    f"{_EVENT_LOG}._connect": "b8435f2665689760",
    f"{_EVENT_LOG}.has_table": "577d801c70b2a4a5",
    # used: sets _db_lock and _initialized_dbs, which _connect shares with the rest of the class
    f"{_EVENT_LOG}.__init__": "264c15baa761a7bb",
    f"{_EVENT_LOG}._initdb": "7a302d98eb61a34d",
    f"{_EVENT_LOG}.conn_string_for_shard": "896bc510d776042e",
    f"{_EVENT_LOG}.dispose": "df16dafbfa8427c1",
    f"{_EVENT_LOG}.wipe": "de02c63676e7d477",
    "dagster._core.storage.sqlite_storage.DagsterSqliteStorage.from_local": "ef1249f539d72156",
    "dagster._core.storage.sqlite_storage.DagsterSqliteStorage.event_log_storage": "4e83787dc7cc40a2",
    "dagster._core.storage.sqlite_storage.DagsterSqliteStorage.register_instance": "f7082cfb52390999",
    "dagster._core.instance.ref.InstanceRef.from_dir": "62b86881bff8b1c3",
}

SQLITE_BUSY_TIMEOUT_SECONDS = 30
MAX_OPEN_SHARDS = 8  # a UI process browsing many runs keeps at most this many run files open


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """`SqliteEventLogStorage` with one engine (one open connection) per shard instead of one per call."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict = OrderedDict()
        self._engines_lock = threading.Lock()
        self._known_tables: set[str] = set()
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, **config_value)

    def _engine(self, shard: str):
        with self._engines_lock:
            engine = self._engines.get(shard)
            if engine is not None:
                self._engines.move_to_end(shard)
                return engine
            engine = create_engine(
                self.conn_string_for_shard(shard),
                poolclass=QueuePool,
                pool_size=1,
                max_overflow=4,
                # connections are used under the storage's lock, from whichever thread holds it
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
            )
            event.listen(engine, "connect", _wal_normal_sync)
            self._engines[shard] = engine
            while len(self._engines) > MAX_OPEN_SHARDS:
                _, oldest = self._engines.popitem(last=False)
                oldest.dispose()
            return engine

    @contextmanager
    def _connect(self, shard: str):
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn:
                with conn.begin():
                    yield conn

    def has_table(self, table_name: str) -> bool:
        # asked once per asset-check event; tables are never dropped under a running instance
        if table_name in self._known_tables:
            return True
        engine = self._engine(INDEX_SHARD_NAME)
        with engine.connect() as conn:
            found = bool(engine.dialect.has_table(conn, table_name))
        if found:
            self._known_tables.add(table_name)
        return found

    def _dispose_engines(self) -> None:
        with self._engines_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def wipe(self) -> None:
        self._dispose_engines()
        super().wipe()

    def dispose(self) -> None:
        self._dispose_engines()
        super().dispose()


def _wal_normal_sync(dbapi_connection, _record) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


class PipelineSqliteStorage(DagsterSqliteStorage):
    """Dagster's SQLite storage (runs, event logs, schedules under one base dir), with the pooled event log."""

    def __init__(self, base_dir: str, inst_data=None):
        super().__init__(base_dir, inst_data=inst_data)
        self._pooled_event_log = PooledSqliteEventLogStorage(os.path.join(base_dir, "history", "runs"))

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls.from_local(inst_data=inst_data, **config_value)

    @property
    def event_log_storage(self):
        return self._pooled_event_log

    def register_instance(self, instance) -> None:
        super().register_instance(instance)
        if not self._pooled_event_log.has_instance:
            self._pooled_event_log.register_instance(instance)


STORAGE_KEYS = ("storage", "run_storage", "event_log_storage", "schedule_storage")


def instance_ref(home: Path) -> InstanceRef:
    """The Dagster instance at `home` as its dagster.yaml describes it, with `PipelineSqliteStorage` as
    its storage, unless the yaml names a storage of its own (Postgres, say), which is then used as is."""
    config_file = Path(home) / "dagster.yaml"
    config = (yaml.safe_load(config_file.read_text(encoding="utf-8")) if config_file.exists() else None) or {}
    if any(key in config for key in STORAGE_KEYS):
        return InstanceRef.from_dir(str(home))
    storage = {
        "custom": {
            "module": __name__,
            "class": PipelineSqliteStorage.__name__,
            "config": {"base_dir": str(Path(home).resolve())},
        }
    }
    return InstanceRef.from_dir(str(home), overrides={"storage": storage})
