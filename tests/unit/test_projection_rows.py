"""The read models' row cache writes what changed, in primary-key order.

Key order matters for speed, not meaning: clients choose their own ids, so a rebuild meets
keys in random order, and inserting them so into SQLite's key indexes cost about twice the
CPU of inserting them sorted (bench/README.md, projections).
"""

from __future__ import annotations

import random
from typing import Any

from projections.store import INT, JSON, TEXT, MemoryStore, Rows, Table

SINGLE = Table("t_single", (("id", TEXT), ("doc", JSON)), ("id",))
PAIR = Table("t_pair", (("actor", TEXT), ("bucket", INT), ("n", INT)), ("actor", "bucket"))


class Recording:
    """A cursor that keeps what `executemany` was given and passes it on."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        self.written: list[list[Any]] = []

    def executemany(self, sql: str, rows: list[list[Any]]) -> None:
        self.written.extend(rows)
        self.cursor.executemany(sql, rows)


def _empty(table: Table) -> tuple[MemoryStore, Rows]:
    """A new store holding `table`, empty, and its row cache, complete as in a rebuild."""
    store = MemoryStore()
    with store.transaction(commit=True) as cursor:
        for statement in store.create_statements(table):
            cursor.execute(statement)
    rows = Rows(store, table)
    rows.complete = True
    return store, rows


def _written(table: Table, keys: list[Any], row: Any) -> tuple[list[list[Any]], list[Any]]:
    store, rows = _empty(table)
    for key in keys:
        rows.put(key, row(key))
    with store.transaction(commit=True) as cursor:
        recording = Recording(cursor)
        rows.flush(recording)
    with store.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT * FROM {table.name}")
        stored = [list(r) for r in cursor.fetchall()]
    store.close()
    return recording.written, stored


def test_a_rebuild_writes_its_rows_in_key_order_whatever_order_they_came_in() -> None:
    keys = [f"A-{n:05d}" for n in range(500)]
    shuffled = random.Random(7).sample(keys, len(keys))
    written, stored = _written(SINGLE, shuffled, lambda k: {"id": k, "doc": {"k": k}})
    assert [w[0] for w in written] == keys
    assert sorted(s[0] for s in stored) == keys
    assert all(s[1] == f'{{"k":"{s[0]}"}}' for s in stored)


def test_composite_keys_are_written_in_key_order_too() -> None:
    keys = [(actor, bucket) for actor in ("b", "a", "c") for bucket in (2, 0, 1)]
    written, _stored = _written(PAIR, keys, lambda k: {"actor": k[0], "bucket": k[1], "n": 1})
    assert [(w[0], w[1]) for w in written] == sorted(keys)


def test_only_changed_rows_are_written_again() -> None:
    store, rows = _empty(SINGLE)
    for key in ("c", "a", "b"):
        rows.put(key, {"id": key, "doc": []})
    with store.transaction(commit=True) as cursor:
        rows.flush(cursor)
    row = rows.get("b")
    assert row is not None
    row["doc"].append(1)
    rows.touch("b")
    with store.transaction(commit=True) as cursor:
        recording = Recording(cursor)
        rows.flush(recording)
    assert recording.written == [["b", "[1]"]]
    store.close()
