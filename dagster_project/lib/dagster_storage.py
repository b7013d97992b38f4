"""Dagster's SQLite run history with its event log connections kept open (same files, same schema).

Dagster's `SqliteEventLogStorage` opens a new SQLAlchemy engine and SQLite connection for every event it
stores (often two or three: the run's shard, the cross-run index, the asset-check tables), and closing
the last connection to a WAL database checkpoints it and deletes the WAL file, with fsyncs each time.
A demo run stores ~530 events: ~10 s of a ~45 s run went to that (measured with a timer around
`store_event`); with one engine per shard kept open and `synchronous=NORMAL` (SQLite's recommended
setting for WAL: no fsync per commit, never corrupts, may lose the last commits on power loss) the
same run spends ~2.8 s storing events.

The files are the ones Dagster's default storage writes (`<dagster home>/history/runs/<run id>.db` and
`index.db`), so `dagster dev`, its daemon and any other Dagster process read (and write) them with
Dagster's own storage, as configured by dagster.yaml; the command line (`python -m dagster_project`)
builds its instance with `instance_ref`, which puts this storage in (through `InstanceRef.from_dir`'s
`overrides`, as Dagster's own temporary instances do). It overrides `_connect` and `has_table`,
private members of the pinned dagster 1.13; tests/test_dagster_storage.py checks they still exist,
and that each storage reads what the other wrote.
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
                poolclass=QueuePool, pool_size=1, max_overflow=4,
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
    storage = {"custom": {"module": __name__, "class": PipelineSqliteStorage.__name__,
                          "config": {"base_dir": str(Path(home).resolve())}}}
    return InstanceRef.from_dir(str(home), overrides={"storage": storage})
