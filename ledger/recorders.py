"""eventsourcing application recorders that also keep the ledger's own tables.

Idempotency records are written in the *same transaction* as the events they answer for, so a
retried request can never append twice, even across a crash. The Merkle log is kept in the
same store but integrated after commit, in batches, by `ledger.log.MerkleLog.integrate` (as a
Certificate Transparency log sequences entries before it integrates them): the append path
pays only for sealing, and leaves still follow the global order exactly.

Tables (prefix `ledger_`):
- `merkle_state(id=1, tree_size, last_position)`: how far integration has got; its row lock
  serialises integrators across processes.
- `merkle_leaves(leaf_index, position, leaf_hash)`: leaf n is the n-th event in global order
  (RFC 9162 leaf hash of its 32-byte event hash); gaps in positions are not leaves.
- `merkle_nodes(level, idx, hash)`: every completed perfect subtree, level >= 1, covering
  leaves [idx * 2**level, (idx + 1) * 2**level): O(log n) worst case per leaf, one on average.
- `idempotency(scope, key, request_hash, positions, created_at)`.
- `checkpoints(tree_size, root, note, issued_at)`: every signed checkpoint issued.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, TypeVar

from eventsourcing import persistence
from eventsourcing.persistence import OperationalError, StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder

from ledger.entry import format_timestamp
from ledger.errors import WriteOutcomeUnknown
from ledger.group_commit import GroupCommit, Write


class LedgerTables:
    """Names and SQL of the ledger's own tables for one dialect (`?` or `%s` placeholders)."""

    def __init__(self, dialect: str, schema: str = "", events_table: str = "") -> None:
        self.dialect = dialect
        self.p = p = "?" if dialect == "sqlite" else "%s"
        q = f'"{schema}".' if schema else ""
        self.events = events_table
        self.state = f"{q}ledger_merkle_state"
        self.leaves = f"{q}ledger_merkle_leaves"
        self.nodes = f"{q}ledger_merkle_nodes"
        self.idempotency = f"{q}ledger_idempotency"
        self.checkpoints = f"{q}ledger_checkpoints"
        blob = "BLOB" if dialect == "sqlite" else "BYTEA"
        big = "INTEGER" if dialect == "sqlite" else "BIGINT"
        self.create = [
            f"CREATE TABLE IF NOT EXISTS {self.state} (id INTEGER PRIMARY KEY, "
            f"tree_size {big} NOT NULL, last_position {big} NOT NULL)",
            f"INSERT INTO {self.state} (id, tree_size, last_position) VALUES (1, 0, 0) "
            "ON CONFLICT (id) DO NOTHING",
            f"CREATE TABLE IF NOT EXISTS {self.leaves} (leaf_index {big} PRIMARY KEY, "
            f"position {big} NOT NULL UNIQUE, leaf_hash {blob} NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {self.nodes} (level INTEGER NOT NULL, "
            f"idx {big} NOT NULL, hash {blob} NOT NULL, PRIMARY KEY (level, idx))",
            f"CREATE TABLE IF NOT EXISTS {self.idempotency} (scope TEXT NOT NULL, "
            "key TEXT NOT NULL, request_hash TEXT NOT NULL, positions TEXT NOT NULL, "
            "created_at TEXT NOT NULL, PRIMARY KEY (scope, key))",
            f"CREATE TABLE IF NOT EXISTS {self.checkpoints} (tree_size {big} PRIMARY KEY, "
            f"root {blob} NOT NULL, note TEXT NOT NULL, issued_at TEXT NOT NULL)",
        ]
        self.get_leaf = f"SELECT leaf_hash AS h FROM {self.leaves} WHERE leaf_index={p}"
        self.get_node = f"SELECT hash AS h FROM {self.nodes} WHERE level={p} AND idx={p}"
        self.put_leaf = (
            f"INSERT INTO {self.leaves} (leaf_index, position, leaf_hash) VALUES ({p},{p},{p})"
        )
        self.put_node = f"INSERT INTO {self.nodes} (level, idx, hash) VALUES ({p},{p},{p})"
        #: The global position column of the events table (SQLite rowid, PostgreSQL serial).
        position = "rowid" if dialect == "sqlite" else "notification_id"
        self.select_after = (
            f"SELECT {position} AS id, state AS s FROM {events_table} "
            f"WHERE {position} > {p} ORDER BY {position} LIMIT {p}"
        )
        self.put_idempotency = (
            f"INSERT INTO {self.idempotency} (scope, key, request_hash, positions, created_at) "
            f"VALUES ({p},{p},{p},{p},{p})"
        )


def record_idempotency(
    tables: LedgerTables, cursor: Any, ids: Sequence[int], kwargs: dict[str, Any]
) -> None:
    idempotency = kwargs.get("idempotency")
    if idempotency is not None:
        scope, key, request_hash = idempotency
        cursor.execute(
            tables.put_idempotency,
            (scope, key, request_hash, json.dumps(list(ids)), format_timestamp(datetime.now(UTC))),
        )


T = TypeVar("T")
_CREATES = re.compile(r"CREATE (?:UNIQUE )?(?:TABLE|INDEX) IF NOT EXISTS (\S+)", re.IGNORECASE)


def created_names(statements: Sequence[str]) -> set[str]:
    """The tables and indexes that `CREATE ... IF NOT EXISTS` statements make."""
    return {m.group(1) for s in statements if (m := _CREATES.search(s))}


def sqlite_names(cursor: Any) -> set[str]:
    """Every table and index in an SQLite database."""
    cursor.execute("SELECT name FROM sqlite_master")
    return {str(row[0]) for row in cursor.fetchall()}


def retry_while_locked(action: Callable[[], T], timeout: float) -> T:
    """Run `action`, again while SQLite answers "database is locked", for up to `timeout` s.

    SQLite's busy timeout does not cover a transaction that has read and then writes (a DDL
    statement reads the schema first): while another connection writes, the upgrade fails at
    once instead of waiting (sqlite.org/lang_transaction.html, "SQLITE_BUSY"). Schema set-up
    is such a transaction, so it waits here, polling, like the busy handler would.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            return action()
        except (sqlite3.OperationalError, OperationalError) as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(0.05)


#: Errors that refuse one write's rows (its own transaction would have failed the same
#: way), as `sqlite3` raises them inside a transaction and as eventsourcing re-raises them.
_ONE_WRITE = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    sqlite3.NotSupportedError,
    persistence.IntegrityError,
    persistence.DataError,
    persistence.InterfaceError,
    persistence.ProgrammingError,
    persistence.NotSupportedError,
)


def refuses_one_write(exc: BaseException) -> bool:
    """Whether `exc` refuses one write of a batch rather than the store: a constraint or a
    value the store rejects, or an error of the write's own arguments; not I/O, locking or
    corruption (`OperationalError`, `InternalError`, `DatabaseError`)."""
    if isinstance(exc, _ONE_WRITE):
        return True
    return isinstance(exc, Exception) and not isinstance(
        exc, (sqlite3.Error, persistence.PersistenceError)
    )


def as_store_error(exc: Exception) -> Exception:
    """A `sqlite3` error as eventsourcing raises it from a transaction of its own (the
    same-named class of `eventsourcing.persistence`); anything else unchanged."""
    if isinstance(exc, sqlite3.Error):
        wrapper = getattr(persistence, type(exc).__name__, persistence.DatabaseError)
        error: Exception = wrapper(exc)
        error.__cause__ = exc
        return error
    return exc


#: eventsourcing's SQLite events table (its default name, which the ledger keeps).
SQLITE_EVENTS_TABLE = "stored_events"


class LedgerSQLiteRecorder(SQLiteApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.tables = LedgerTables("sqlite", events_table=SQLITE_EVENTS_TABLE)
        #: Concurrent writers share commits (`ledger.group_commit`), each commit under
        #: `gate` (`LedgerApp.record_gate`: the server's write gate between threads and
        #: worker processes).
        self.group = GroupCommit(self._commit_batch)
        super().__init__(*args, **kwargs)

    @property
    def gate(self) -> AbstractContextManager[object]:
        return self.group.gate

    @gate.setter
    def gate(self, gate: AbstractContextManager[object]) -> None:
        self.group.gate = gate

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        result: Sequence[int] | None = self.group.submit(stored_events, kwargs)
        return result

    def _commit_batch(self, batch: list[Write]) -> None:
        """Store a batch of writes in one transaction (`_store_batch`); if that failed at
        COMMIT, find out whether it committed before failing the batch.

        SQLite rolls a transaction back when its COMMIT fails (an I/O error: a disk that
        failed the write or the sync), so the store error, "nothing was recorded", is
        usually true; but a commit that succeeded and then reported an error would be told
        to the clients as not recorded, and retried into a second append. So once every
        write's rows were inserted (the error came from COMMIT), the first stored event is
        looked up: there, with its sealed state: the batch is stored; not there: the error
        stands; the store cannot be read: `WriteOutcomeUnknown`.
        """
        try:
            self._store_batch(batch)
        except Exception as exc:
            inserted = all(w.ids is not None or w.error is not None for w in batch)
            if refuses_one_write(exc) or not inserted or not self._committed(batch, exc):
                raise

    def _committed(self, batch: list[Write], lost: Exception) -> bool:
        stored = next((w for w in batch if w.ids is not None), None)
        if stored is None or not stored.stored_events:
            return False  # every write was refused: nothing to commit
        event = stored.stored_events[0]
        try:
            with self.datastore.transaction(commit=False) as c:
                c.execute(
                    f"SELECT state FROM {SQLITE_EVENTS_TABLE} "
                    "WHERE originator_id = ? AND originator_version = ?",
                    (str(event.originator_id), event.originator_version),
                )
                row = c.fetchone()
        except Exception as exc:
            raise WriteOutcomeUnknown(
                f"the commit failed ({lost}), and the store could not be read to see whether "
                f"it was made ({exc})"
            ) from exc
        return row is not None and bytes(row[0]) == event.state

    def _store_batch(self, batch: list[Write]) -> None:
        """Store a batch of writes in one transaction (the gate is held).

        A write that is refused (a lost race, a repeated idempotency key, a value the
        store rejects) must fail alone, as in a transaction of its own. Refusals are rare,
        so a batch is first stored without savepoints (under load each statement under the
        write lock costs a GIL hand-over); if a write is refused, that transaction is rolled
        back and the batch is stored again with a savepoint per write. A fault of the store
        itself (I/O, locking, corruption) fails the whole batch: nothing of it is stored.
        """
        if len(batch) > 1:
            try:
                with self.datastore.transaction(commit=True) as c:
                    for write in batch:
                        write.ids = self._insert_events(c, write.stored_events, **write.kwargs)
                return
            except Exception as exc:
                if not refuses_one_write(exc):
                    raise
                for write in batch:
                    write.ids = None
        with self.datastore.transaction(commit=True) as c:
            if len(batch) == 1:
                write = batch[0]
                write.ids = self._insert_events(c, write.stored_events, **write.kwargs)
                return
            for write in batch:
                c.execute("SAVEPOINT ses_ledger_write")
                try:
                    write.ids = self._insert_events(c, write.stored_events, **write.kwargs)
                except Exception as exc:
                    if not refuses_one_write(exc):
                        raise
                    c.execute("ROLLBACK TO ses_ledger_write")
                    write.error = as_store_error(exc)
                c.execute("RELEASE ses_ledger_write")

    def create_table(self) -> None:
        """Create what is missing. An existing store is only read (so opening it never waits
        for another process's write); a new one is created once the write lock is free."""
        wanted = created_names(self.create_table_statements)
        with self.datastore.transaction(commit=False) as cursor:
            if wanted <= sqlite_names(cursor):
                return  # the state row is inserted in the transaction that made its table
        timeout = float(self.datastore.pool.lock_timeout or 5)
        retry_while_locked(super().create_table, timeout)

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *self.tables.create]

    def _insert_events(
        self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        assert ids is not None
        record_idempotency(self.tables, c, ids, kwargs)
        return ids
