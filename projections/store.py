"""Where read models keep their rows: the ledger's own store, or a throw-away in-memory copy.

`LedgerStore` writes into the same database as the events (SQLite file or PostgreSQL, in the
ledger's schema, qualified as `ledger/recorders.py` does), so a projection's rows and its
tracking position commit in one transaction. `MemoryStore` is an in-memory SQLite database
for replays (`ReadModels.as_of`): same tables, same SQL, nothing shared with the live store.

Tables are declared with `Table`; rows are cached in memory by `Rows` while a batch (or a
whole rebuild) is processed and written back with `executemany` upserts. JSON columns hold
JSON text with sorted keys (`dumps`), so equal state gives equal bytes on every backend,
and `table_digest_lines` gives the canonical dump a digest is taken over.
"""

from __future__ import annotations

import json
import logging
import operator
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from eventsourcing.persistence import PersistenceError

TEXT = "text"
INT = "int"
JSON = "json"

_json_dumps = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, check_circular=False
).encode
_SORTED = orjson.OPT_SORT_KEYS

log = logging.getLogger("ses_ledger.projections")


def dumps(value: Any) -> str:
    """Sorted-key JSON text for a JSON column.

    orjson rather than the standard library: a rebuild writes hundreds of thousands of
    documents and orjson encodes them several times faster. What it refuses (integers
    beyond 64 bits) falls back to `json`, which writes integers the same way.
    """
    try:
        return orjson.dumps(value, option=_SORTED).decode()
    except TypeError:
        return _json_dumps(value)


def loads(text: str | bytes) -> Any:
    """Parse a JSON column or a stored entry (orjson; `json` for what orjson refuses)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


@dataclass(frozen=True)
class Table:
    """A read-model table: columns as (name, kind), the primary key and extra indexes."""

    name: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _kind in self.columns)

    @property
    def json_columns(self) -> frozenset[str]:
        return frozenset(name for name, kind in self.columns if kind == JSON)


class Store:
    """SQL dialect, table naming and transactions of one database."""

    dialect: str = "sqlite"
    p: str = "?"
    schema: str = ""

    def name(self, table: str) -> str:
        return f'"{self.schema}".{table}' if self.schema else table

    @contextmanager
    def transaction(
        self, commit: bool, *, bulk: bool = False
    ) -> Iterator[Any]:  # pragma: no cover - abstract
        raise NotImplementedError
        yield

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database (SQLite; see `LedgerStore`)."""

    # -- DDL -------------------------------------------------------------------------------

    def create_statements(self, table: Table) -> list[str]:
        big = "BIGINT" if self.dialect == "postgres" else "INTEGER"
        kinds = {TEXT: "TEXT", INT: big, JSON: "TEXT"}
        cols = ", ".join(f"{name} {kinds[kind]}" for name, kind in table.columns)
        statements = [
            f"CREATE TABLE IF NOT EXISTS {self.name(table.name)} "
            f"({cols}, PRIMARY KEY ({', '.join(table.key)}))"
        ]
        for index in table.indexes:
            index_name = f"{table.name}_{'_'.join(index)}_idx"
            statements.append(
                f"CREATE INDEX IF NOT EXISTS {index_name} "
                f"ON {self.name(table.name)} ({', '.join(index)})"
            )
        return statements

    def drop_statement(self, table: Table) -> str:
        return f"DROP TABLE IF EXISTS {self.name(table.name)}"

    def lock_ddl(self, cursor: Any) -> None:
        """Serialise schema changes between processes (PostgreSQL; SQLite's writer lock)."""

    def snapshot(self, cursor: Any) -> None:
        """Make the rest of a read transaction see one snapshot (SQLite always does)."""

    # -- rows ------------------------------------------------------------------------------

    def upsert_sql(self, table: Table) -> str:
        cols = table.column_names
        marks = ", ".join([self.p] * len(cols))
        updates = ", ".join(f"{c} = excluded.{c}" for c in cols if c not in table.key)
        conflict = f"DO UPDATE SET {updates}" if updates else "DO NOTHING"
        return (
            f"INSERT INTO {self.name(table.name)} ({', '.join(cols)}) VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(table.key)}) {conflict}"
        )

    def copy_sql(self, table: Table) -> str | None:
        """PostgreSQL's bulk load of rows into a table (None: this store has none)."""
        if self.dialect != "postgres":
            return None
        return f"COPY {self.name(table.name)} ({', '.join(table.column_names)}) FROM STDIN"

    def select_by_key_sql(self, table: Table) -> str:
        where = " AND ".join(f"{k} = {self.p}" for k in table.key)
        return f"SELECT {', '.join(table.column_names)} FROM {self.name(table.name)} WHERE {where}"

    def order_by(self, columns: Sequence[str], table: Table) -> str:
        """ORDER BY in byte order on both backends (PostgreSQL's collation may differ)."""
        kinds = dict(table.columns)
        collate = ' COLLATE "C"' if self.dialect == "postgres" else ""
        return ", ".join(f"{c}{collate}" if kinds.get(c, TEXT) != INT else c for c in columns)


#: Page cache of a bulk write, in KiB (SQLite's default is 2,000).
BULK_CACHE_KIB = 65536
#: SQLite settings of a bulk write (`LedgerStore.transaction`): no zeroing of freed pages,
#: no automatic checkpoint at commit, a larger page cache.
_BULK = (
    ("secure_delete", "OFF"),
    ("wal_autocheckpoint", "0"),
    ("cache_size", str(-BULK_CACHE_KIB)),
)


class LedgerStore(Store):
    """The ledger's own database, through the eventsourcing recorder's datastore."""

    def __init__(self, recorder: Any):
        self.recorder = recorder
        self.datastore = recorder.datastore
        self.dialect = recorder.tables.dialect
        self.p = recorder.tables.p
        self.schema = str(getattr(self.datastore, "schema", "") or "")

    @contextmanager
    def transaction(self, commit: bool, *, bulk: bool = False) -> Iterator[Any]:
        """A transaction on the ledger's store; a writing one commits without waiting for the
        disk (SQLite `synchronous=NORMAL`, PostgreSQL `synchronous_commit=off`).

        Read models are derived data: a power cut can lose their last commits, never tear
        one (rows and tracking position commit together), and the projector then redoes
        those events from the stored position. The ledger's own appends keep full
        durability: on SQLite the setting is restored before the connection goes back to
        the pool, on PostgreSQL it lasts only for the transaction (`SET LOCAL`). Waiting for
        the disk cost 0.2-0.4 s at the end of a million-event rebuild, and a flush per
        batch while holding the write lock that appends wait for.

        `bulk=True` (SQLite; a rebuild's write): the transaction also turns `secure_delete`
        off (Debian's SQLite, the one here, builds it on), or replacing the tables would
        overwrite every freed page with zeros through the write-ahead log (2.25 s of a
        million-event rebuild's `DELETE`s against 0.05 s, bench/README.md); read-model rows
        are copies of what the ledger file keeps anyway, so zeroing them hides nothing.
        And its commit does not fold the write-ahead log into the database, as it otherwise
        does once the log is long: the caller calls `checkpoint` after releasing the write
        gate. A rebuild's commit leaves ~160 MB there, and copying it took 0.5-0.6 s during
        which the other rebuild process (and the server's appends) waited for the gate,
        though a checkpoint needs no write lock. And it gets a 64 MB page cache: the
        rows go in by primary key, but the secondary indexes (by executive, by date) are
        filled out of order, and with SQLite's 2 MB cache their pages were written out and
        read back again and again (a rebuild's current-ratings and audit rows, random ids:
        3.4-3.5 s against 2.8-3.1 s, bench/README.md). Other writes (the projector's
        batches) change none of these settings, so they run no more statements than they
        need.
        """
        if not commit:
            with self.datastore.transaction(commit=False) as cursor:
                yield cursor
        elif self.dialect == "postgres":
            with self.datastore.transaction(commit=True) as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
                yield cursor
        else:
            with self.datastore.get_connection(commit=True) as connection:
                setting = connection.cursor()
                restore = []
                for name, value in (("synchronous", "NORMAL"),) + (_BULK if bulk else ()):
                    setting.execute(f"PRAGMA {name}")
                    restore.append(f"PRAGMA {name}={int(setting.fetchone()[0])}")
                    setting.execute(f"PRAGMA {name}={value}")
                try:
                    with connection.transaction(commit=True) as cursor:
                        yield cursor
                finally:
                    for statement in restore:
                        setting.execute(statement)

    def checkpoint(self) -> None:
        """SQLite: copy what the write-ahead log holds into the database, beside any writer
        (PASSIVE: it waits for nobody, and nobody waits for it)."""
        if self.dialect != "sqlite":
            return
        try:
            with self.datastore.get_connection(commit=False) as connection:
                cursor = connection.cursor()
                cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
                cursor.fetchall()
        except (sqlite3.Error, PersistenceError) as exc:
            # The rows are committed; SQLite folds the log in at a later commit anyway.
            log.warning("could not checkpoint the write-ahead log (%s): later commits will", exc)

    def lock_ddl(self, cursor: Any) -> None:
        if self.dialect == "postgres":
            cursor.execute("SELECT pg_advisory_xact_lock(7461836925)")

    def snapshot(self, cursor: Any) -> None:
        if self.dialect == "postgres":
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")


class MemoryStore(Store):
    """A private in-memory SQLite database (replays and disputes); thread-safe, one writer."""

    def __init__(self) -> None:
        self.connection = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        self.connection.row_factory = sqlite3.Row
        self._lock = threading.RLock()

    @contextmanager
    def transaction(self, commit: bool, *, bulk: bool = False) -> Iterator[Any]:
        with self._lock:
            cursor = self.connection.cursor()
            cursor.execute("BEGIN")
            try:
                yield cursor
            except BaseException:
                self.connection.rollback()
                raise
            if commit:
                self.connection.commit()
            else:
                self.connection.rollback()
            cursor.close()

    def close(self) -> None:
        self.connection.close()


class Rows:
    """A write-back cache of one table's rows, keyed by the primary key.

    `complete` means the cache holds every row of the table (it was emptied in this process
    and nobody else wrote since): a miss then needs no query. Rows are plain dicts; the
    projection mutates them and calls `put` (or `touch`) to have them written on `flush`.
    """

    def __init__(self, store: Store, table: Table):
        self.store = store
        self.table = table
        self.cache: dict[Any, dict[str, Any] | None] = {}
        self.dirty: set[Any] = set()
        #: Encoded rows waiting for `flush` (see `prepare`).
        self._prepared: list[list[Any]] = []
        self.complete = False
        self.cursor: Any = None
        self._single = len(table.key) == 1
        self._json = table.json_columns
        self._select = store.select_by_key_sql(table)
        self._upsert = store.upsert_sql(table)
        self._copy = store.copy_sql(table)
        names = table.column_names
        self._getter = operator.itemgetter(*names) if len(names) > 1 else _one(names[0])
        self._json_at = tuple(i for i, name in enumerate(names) if name in self._json)

    def get(self, key: Any) -> dict[str, Any] | None:
        try:
            return self.cache[key]
        except KeyError:
            pass
        if self.complete:
            return None
        params = (key,) if self._single else tuple(key)
        self.cursor.execute(self._select, params)
        found = self.cursor.fetchone()
        row = None if found is None else self._decode(found)
        self.cache[key] = row
        return row

    def put(self, key: Any, row: dict[str, Any]) -> None:
        self.cache[key] = row
        self.dirty.add(key)

    def touch(self, key: Any) -> None:
        self.dirty.add(key)

    def _decode(self, found: Any) -> dict[str, Any]:
        row = {name: found[name] for name in self.table.column_names}
        for name in self._json:
            if row[name] is not None:
                row[name] = loads(row[name])
        return row

    def prepare(self) -> None:
        """Encode the dirty rows for writing (no database work: done before the write
        transaction, so the database's write lock is held only for the inserts)."""
        if not self.dirty:
            return
        cache, dirty = self.cache, self.dirty
        # By primary key: SQLite then appends to each table's key index instead of inserting
        # at random pages when the ids (chosen by clients) come in random order; that
        # halved the CPU of writing a rebuild's 162,707 current-ratings appraisal rows
        # (bench/README.md, projections). Keys of one table are all scalars or all tuples,
        # so they compare as they are.
        keys = sorted(dirty)
        get = self._getter
        json_at = self._json_at
        values = []
        for key in keys:
            row = cache[key]
            if row is None:  # pragma: no cover - rows are never deleted
                continue
            value = list(get(row))
            for i in json_at:
                if value[i] is not None:
                    value[i] = dumps(value[i])
            values.append(value)
        self._prepared.extend(values)
        dirty.clear()

    def flush(self, cursor: Any, fresh: bool = False) -> None:
        """Write the changed rows. `fresh`: the table was emptied in this transaction (a
        rebuild replacing it), so the rows go in as they are: on PostgreSQL with COPY, not
        an upsert per row, which cost 3.1-3.7 s of a million-event rebuild group's CPU
        (bench/README.md, projections)."""
        self.prepare()
        if not self._prepared:
            return
        if fresh and self._copy is not None:
            with cursor.copy(self._copy) as copy:
                for row in self._prepared:
                    copy.write_row(row)
        else:
            cursor.executemany(self._upsert, self._prepared)
        self._prepared = []

    def forget(self) -> None:
        """Drop cached rows (after a rollback, or when another process may have written)."""
        self.cache.clear()
        self.dirty.clear()
        self._prepared = []
        self.complete = False


def _one(name: str) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    return lambda row: (row[name],)


def table_digest_lines(store: Store, cursor: Any, table: Table) -> Iterator[bytes]:
    """The canonical dump of one table: one JSON array per row, in primary-key byte order."""
    cols = table.column_names
    cursor.execute(
        f"SELECT {', '.join(cols)} FROM {store.name(table.name)} "
        f"ORDER BY {store.order_by(table.key, table)}"
    )
    for row in cursor.fetchall():
        yield dumps([row[c] for c in cols]).encode() + b"\n"
