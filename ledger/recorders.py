"""eventsourcing application recorders that also keep the ledger's own tables.

The Merkle log and the idempotency records are written in the *same transaction* as the
events, after the library's insert (which holds the write lock: SQLite's single writer,
PostgreSQL's `LOCK TABLE ... IN EXCLUSIVE MODE`), so leaves are appended in commit order and
a retried request can never append twice, even across a crash.

Tables (prefix `ledger_`):
- `merkle_leaves(leaf_index, position, leaf_hash)`: leaf n is the n-th event in global order
  (RFC 9162 leaf hash of its 32-byte event hash); gaps in positions are not leaves.
- `merkle_nodes(level, idx, hash)`: every completed perfect subtree, level >= 1, covering
  leaves [idx * 2**level, (idx + 1) * 2**level). Appending leaf n writes one node per
  trailing 1-bit of n: O(log n) worst case, one on average.
- `idempotency(scope, key, request_hash, positions, created_at)`.
- `checkpoints(tree_size, root, note, issued_at)`: every signed checkpoint issued.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

from ledger.entry import format_timestamp
from ledger.merkle import leaf_hash, node_hash

_HASH_MARK = b',"hash":"'


def event_hash_bytes(state: bytes) -> bytes:
    """The 32 raw bytes of the entry hash inside a stored state."""
    cut = state.rfind(_HASH_MARK) + len(_HASH_MARK)
    return bytes.fromhex(state[cut : cut + 64].decode())


class LedgerTables:
    """SQL for the ledger's own tables, for one dialect (`?` or `%s` placeholders)."""

    def __init__(self, dialect: str, schema: str = "") -> None:
        self.dialect = dialect
        self.p = p = "?" if dialect == "sqlite" else "%s"
        q = f'"{schema}".' if schema else ""
        self.leaves = f"{q}ledger_merkle_leaves"
        self.nodes = f"{q}ledger_merkle_nodes"
        self.idempotency = f"{q}ledger_idempotency"
        self.checkpoints = f"{q}ledger_checkpoints"
        blob = "BLOB" if dialect == "sqlite" else "BYTEA"
        big = "INTEGER" if dialect == "sqlite" else "BIGINT"
        self.create = [
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
        self.max_leaf = f"SELECT MAX(leaf_index) AS n FROM {self.leaves}"
        self.get_leaf = f"SELECT leaf_hash AS h FROM {self.leaves} WHERE leaf_index={p}"
        self.get_node = f"SELECT hash AS h FROM {self.nodes} WHERE level={p} AND idx={p}"
        self.put_leaf = (
            f"INSERT INTO {self.leaves} (leaf_index, position, leaf_hash) "
            f"VALUES ({p},{p},{p})"
        )
        self.put_node = f"INSERT INTO {self.nodes} (level, idx, hash) VALUES ({p},{p},{p})"
        self.put_idempotency = (
            f"INSERT INTO {self.idempotency} (scope, key, request_hash, positions, created_at) "
            f"VALUES ({p},{p},{p},{p},{p})"
        )


class MerkleAppender:
    """Appends leaves inside the insert transaction, caching the frontier between commits.

    The cache is only trusted when the stored tree size matches it (another process may have
    appended meanwhile); otherwise the left siblings are read from the tables.
    """

    def __init__(self, tables: LedgerTables) -> None:
        self.tables = tables
        self._lock = threading.Lock()
        self._size = -1
        self._cache: dict[tuple[int, int], bytes] = {}

    def _lookup(self, cursor: Any, level: int, idx: int) -> bytes:
        cached = self._cache.get((level, idx))
        if cached is not None:
            return cached
        if level == 0:
            cursor.execute(self.tables.get_leaf, (idx,))
        else:
            cursor.execute(self.tables.get_node, (level, idx))
        row = cursor.fetchone()
        if row is None:
            raise RuntimeError(f"Merkle node ({level}, {idx}) is missing from the store")
        return bytes(row["h"])

    def append(self, cursor: Any, positions: Sequence[int], states: Sequence[bytes]) -> None:
        with self._lock:
            cursor.execute(self.tables.max_leaf)
            row = cursor.fetchone()
            size = 0 if row is None or row["n"] is None else int(row["n"]) + 1
            if size != self._size:
                self._cache.clear()
            leaves: list[tuple[int, int, bytes]] = []
            nodes: list[tuple[int, int, bytes]] = []
            written: dict[tuple[int, int], bytes] = {}
            for position, state in zip(positions, states, strict=True):
                index = size
                current = leaf_hash(event_hash_bytes(state))
                leaves.append((index, position, current))
                written[(0, index)] = current
                level, idx = 0, index
                while idx & 1:
                    left = written.get((level, idx - 1)) or self._lookup(cursor, level, idx - 1)
                    current = node_hash(left, current)
                    level, idx = level + 1, idx >> 1
                    nodes.append((level, idx, current))
                    written[(level, idx)] = current
                size += 1
            cursor.executemany(self.tables.put_leaf, leaves)
            if nodes:
                cursor.executemany(self.tables.put_node, nodes)
            # Keep only the frontier of the new size: the left siblings of future appends.
            merged = {**self._cache, **written}
            self._cache = {
                (k, (size >> k) - 1): merged[(k, (size >> k) - 1)]
                for k in range(size.bit_length())
                if (size >> k) & 1 and (k, (size >> k) - 1) in merged
            }
            self._size = size

    def rollback(self) -> None:
        """Forget the cache after a failed transaction."""
        with self._lock:
            self._size = -1
            self._cache.clear()


def _after_insert(
    tables: LedgerTables,
    appender: MerkleAppender,
    cursor: Any,
    stored_events: Sequence[StoredEvent],
    ids: Sequence[int],
    kwargs: dict[str, Any],
) -> None:
    appender.append(cursor, ids, [s.state for s in stored_events])
    idempotency = kwargs.get("idempotency")
    if idempotency is not None:
        scope, key, request_hash = idempotency
        cursor.execute(
            tables.put_idempotency,
            (scope, key, request_hash, json.dumps(list(ids)), format_timestamp(datetime.now(UTC))),
        )


class LedgerSQLiteRecorder(SQLiteApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.tables = LedgerTables("sqlite")
        super().__init__(*args, **kwargs)
        self.merkle = MerkleAppender(self.tables)

    def construct_create_table_statements(self) -> list[str]:
        return [*super().construct_create_table_statements(), *self.tables.create]

    def _insert_events(
        self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._insert_events(c, stored_events, **kwargs)
        assert ids is not None
        try:
            _after_insert(self.tables, self.merkle, c, stored_events, ids, kwargs)
        except Exception:
            self.merkle.rollback()
            raise
        return ids

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        try:
            return super().insert_events(stored_events, **kwargs)
        except Exception:
            self.merkle.rollback()
            raise


class LedgerPostgresRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tables = LedgerTables("postgres", self.datastore.schema)
        self.merkle = MerkleAppender(self.tables)
        from psycopg.sql import SQL

        self.sql_create_statements.extend(SQL(s) for s in self.tables.create)  # type: ignore[arg-type]

    def _fetch_ids_after_insert_events(
        self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        assert ids is not None
        _after_insert(self.tables, self.merkle, curs, stored_events, ids, kwargs)
        return ids

    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Any:
        try:
            return super().insert_events(stored_events, **kwargs)
        except Exception:
            self.merkle.rollback()
            raise
