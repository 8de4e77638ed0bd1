"""Runs projections over the event log: catch up, rebuild, follow, status, digest.

Exactly-once, crash-safe and concurrent-safe by construction:

- Each projection has a row in `proj_tracking(name, position, version)`. A batch's rows and
  the new position are written in ONE transaction: after a crash either both are stored or
  neither, so a restart resumes at the stored position and never applies an event twice or
  skips one.
- A batch is read from the log first (outside any lock), then the transaction takes the
  tracking rows' lock (PostgreSQL `SELECT ... FOR UPDATE`; SQLite: an `UPDATE` as the first
  statement takes the database's single writer lock, i.e. `BEGIN IMMEDIATE` semantics) and
  re-reads the positions. Events at or below the re-read position are skipped; a projection
  whose position fell below the batch start (another process reset it) waits for the next
  batch. Two processes catching up at once (the API before a read, `ses-ledger project
  --follow`) therefore serialise per batch and each event is applied once.
- Rows are cached in memory between batches only while the stored position is the one this
  process wrote last; otherwise (someone else advanced it) the cache is dropped.
- On SQLite, while every stored position is the one this process wrote last, a batch is
  applied with no write lock held (rows not cached are read in a read transaction) and
  written in one short transaction that first checks under the lock that the positions
  have not moved (`_apply_then_write`); if they have, the batch is dropped and redone the
  careful way.
- When a projection's cache holds every row (after a reset in this process: a rebuild, or a
  first run from 0), many pages are applied in memory with no transaction open and written
  every `FLUSH_EVERY` events in one short transaction, which first checks under the lock that
  the positions are still the ones the work started from (`_step_ahead`).
"""

from __future__ import annotations

import gc
import hashlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

from eventsourcing.persistence import PersistenceError

from ledger.recorders import created_names, retry_while_locked, sqlite_names
from projections.base import Projection
from projections.events import EventSource, Page
from projections.store import INT, TEXT, Store, Table, table_digest_lines

log = logging.getLogger("ses_ledger.projections")

TRACKING = Table("proj_tracking", (("name", TEXT), ("position", INT), ("version", INT)), ("name",))

#: Notifications per transaction when catching up, and during a rebuild.
CATCH_UP_BATCH = 2000
REBUILD_BATCH = 10000
#: Events applied in memory between writes when the caches are complete (rebuilds). Rows
#: are cached whatever this is; writing them less often writes each row fewer times (an
#: executive's rows change in every cycle), at the price of redoing more after a crash. A
#: window a little past a log's size leaves a short last window, applied and written after
#: the big one (about 0.7 s at a million events): 2,000,000 writes a ledger of up to two
#: million events once.
FLUSH_EVERY = 2_000_000
#: Events covered by one write from which it is a bulk write (`LedgerStore.transaction`):
#: freed pages not zeroed, the write-ahead log folded in after the write gate is released.
BULK_FROM = 100_000
#: New objects alive after a catch-up from which they are frozen (see `_no_cyclic_gc`).
FREEZE_FROM = 500_000
#: Cached rows per projection above which the cache is dropped after a batch.
MAX_CACHED_ROWS = 3_000_000

#: Seconds an SQLite schema set-up waits for another process's write to end.
SETUP_TIMEOUT = 30.0

#: Errors a long-lived worker survives (lost connection, lock timeout): it retries.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (PersistenceError, sqlite3.Error, OSError)


class StopFlag(Protocol):
    """What a long run polls to stop early (threading.Event, multiprocessing.Event)."""

    def is_set(self) -> bool: ...


class _Moved(Exception):
    """Another process moved a projection's position while this one worked ahead."""


def _types(projections: Sequence[Projection]) -> frozenset[str] | None:
    """The event types a group of projections reads (None: every event).

    Reading only those lets the store skip the rest (a third to half of the log for the
    projections that keep no log-wide index).
    """
    if any(p.reads_every_event for p in projections):
        return None
    return frozenset().union(*(p.handled for p in projections))


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector while catching up.

    Rows and events form no reference cycles (reference counting frees them), but a rebuild
    keeps millions of cached objects alive, and each full collection would walk all of them:
    with the collector on, a 1M-event rebuild spends most of its time there.

    When the catch-up leaves many new objects alive (a rebuild's cached rows), they are
    frozen (`gc.freeze`: kept out of every later collection, still freed by reference
    counting) before the collector is switched back on; otherwise the first collection after
    it walks them all (1.1 s after a million-event rebuild, measured), and every full
    collection of the process's life again.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            if gc.get_count()[0] >= FREEZE_FROM:
                gc.freeze()
            gc.enable()


def _check_sizes(batch_size: int | None, flush_every: int) -> None:
    """A page or a write of no events would never move (and a negative SQL LIMIT means no
    limit at all on SQLite): refused before anything is read or written."""
    if batch_size is not None and batch_size < 1 or flush_every < 1:
        raise ValueError(
            f"batch_size and flush_every must be 1 or more, got {batch_size} and {flush_every}"
        )


@dataclass(frozen=True)
class Status:
    name: str
    position: int
    head: int
    version: int
    current_version: int

    @property
    def lag(self) -> int:
        return max(self.head - self.position, 0)

    @property
    def stale(self) -> bool:
        return self.version != self.current_version


class Runner:
    def __init__(
        self,
        store: Store,
        source: EventSource,
        projections: Sequence[Projection],
        batch_size: int = CATCH_UP_BATCH,
    ) -> None:
        self.store = store
        self.source = source
        self.projections = {p.name: p for p in projections}
        self.batch_size = batch_size
        #: The position this process last committed per projection (None: unknown).
        self._expected: dict[str, int | None] = dict.fromkeys(self.projections)
        self._mutex = threading.Lock()
        t = store.name(TRACKING.name)
        p = store.p
        self._sql_positions = (
            f"SELECT name AS name, position AS position, version AS version FROM {t}"
        )
        self._sql_set = f"UPDATE {t} SET position = {p} WHERE name = {p}"
        self._sql_reset = f"UPDATE {t} SET position = 0, version = {p} WHERE name = {p}"
        self._sql_add = f"INSERT INTO {t} (name, position, version) VALUES ({p}, 0, {p})"
        self._tracking = t
        #: Held around every write transaction (never while reading or applying): the API
        #: server's write gate, so its appends and the projector take SQLite's one writer
        #: in turn instead of meeting in its busy handler (`ledger.write_gate`).
        self.gate: AbstractContextManager[object] = nullcontext()

    def select(self, names: Sequence[str] | None) -> list[Projection]:
        """The named projections, each once (a rebuild of one named twice emptied its tables
        again for the second mention, after writing its rows); None or empty: all."""
        if not names:
            return list(self.projections.values())
        names = list(dict.fromkeys(names))
        unknown = [n for n in names if n not in self.projections]
        if unknown:
            raise KeyError(
                f"unknown projection {', '.join(unknown)}; known: {', '.join(self.projections)}"
            )
        return [self.projections[n] for n in names]

    # -- tables ----------------------------------------------------------------------------

    def setup(self) -> None:
        """Create missing tables; rebuild from 0 any projection whose version changed."""
        if self.store.dialect != "sqlite":
            self._setup()  # PostgreSQL's DDL waits for locks as it should
        elif not self._already_set_up():
            retry_while_locked(self._setup, SETUP_TIMEOUT)

    def is_set_up(self) -> bool:
        """Whether every table exists at its projection's version, so that `setup` writes
        nothing (read on SQLite; PostgreSQL: False, `setup` takes its locks and decides)."""
        return self.store.dialect == "sqlite" and self._already_set_up()

    def _already_set_up(self) -> bool:
        """Whether every table exists and every projection is at its version (on SQLite,
        opening then needs no write, so it never waits for, or fails beside, another
        writer)."""
        wanted = created_names(self.store.create_statements(TRACKING))
        for projection in self.projections.values():
            for table in projection.tables:
                wanted |= created_names(self.store.create_statements(table))
        with self.store.transaction(commit=False) as cursor:
            if not wanted <= sqlite_names(cursor):
                return False
            stored = self._positions(cursor)
        return all(stored.get(p.name, (0, -1))[1] == p.version for p in self.projections.values())

    def _setup(self) -> None:
        with self.store.transaction(commit=True) as cursor:
            self.store.lock_ddl(cursor)
            for statement in self.store.create_statements(TRACKING):
                cursor.execute(statement)
        with self.store.transaction(commit=True) as cursor:
            # SQLite: the first statement must write, or a concurrent commit makes the
            # later upgrade to a write transaction fail at once instead of waiting.
            self._lock(cursor, list(self.projections))
            self.store.lock_ddl(cursor)
            stored = self._positions(cursor)
            for projection in self.projections.values():
                row = stored.get(projection.name)
                if row is not None and row[1] != projection.version:
                    log.warning(
                        "projection %s changed (version %s -> %s): rebuilding from 0",
                        projection.name,
                        row[1],
                        projection.version,
                    )
                    for table in projection.tables:
                        cursor.execute(self.store.drop_statement(table))
                    cursor.execute(self._sql_reset, (projection.version, projection.name))
                    self._expected[projection.name] = None
                for table in projection.tables:
                    for statement in self.store.create_statements(table):
                        cursor.execute(statement)
                if row is None:
                    cursor.execute(self._sql_add, (projection.name, projection.version))

    def _lock(self, cursor: Any, names: Sequence[str]) -> None:
        """Take the tracking rows' lock for this transaction (see module docstring)."""
        marks = ", ".join([self.store.p] * len(names))
        if self.store.dialect == "postgres":
            cursor.execute(
                f"SELECT name FROM {self._tracking} WHERE name IN ({marks}) "
                "ORDER BY name FOR UPDATE",
                tuple(names),
            )
            cursor.fetchall()
        else:
            cursor.execute(
                f"UPDATE {self._tracking} SET position = position WHERE name IN ({marks})",
                tuple(names),
            )

    def _positions(self, cursor: Any) -> dict[str, tuple[int, int]]:
        cursor.execute(self._sql_positions)
        return {str(r["name"]): (int(r["position"]), int(r["version"])) for r in cursor.fetchall()}

    def positions(self) -> dict[str, int]:
        with self.store.transaction(commit=False) as cursor:
            stored = self._positions(cursor)
        return {name: stored.get(name, (0, 0))[0] for name in self.projections}

    # -- processing ------------------------------------------------------------------------

    def reset(self, names: Sequence[str] | None = None) -> None:
        """Empty the projections' tables and set their position to 0, in one transaction."""
        chosen = self.select(names)
        with self._mutex:
            with self.gate, self.store.transaction(commit=True) as cursor:
                self._lock(cursor, [p.name for p in chosen])
                for projection in chosen:
                    for table in projection.tables:
                        cursor.execute(f"DELETE FROM {self.store.name(table.name)}")
                    cursor.execute(self._sql_reset, (projection.version, projection.name))
            for projection in chosen:
                projection.mark_complete()
                self._expected[projection.name] = 0

    def catch_up(
        self,
        names: Sequence[str] | None = None,
        *,
        progress: Callable[[int], None] | None = None,
        stop: StopFlag | None = None,
        batch_size: int | None = None,
        flush_every: int = FLUSH_EVERY,
    ) -> int:
        """Process every new event; returns the lowest position of the chosen projections.

        `batch_size`: notifications read per page (and per transaction when rows must be
        read from the tables); `flush_every`: events applied in memory between writes when
        the caches are complete (see `_step_ahead`).
        """
        _check_sizes(batch_size, flush_every)
        chosen = self.select(names)
        size = batch_size or self.batch_size
        with self._mutex, _no_cyclic_gc():
            while stop is None or not stop.is_set():
                covered = self._step(chosen, size, progress, stop, flush_every)
                if covered is None:
                    break
                if progress is not None:
                    progress(covered)
            return min(self.positions()[p.name] for p in chosen)

    def rebuild(
        self,
        names: Sequence[str] | None = None,
        *,
        progress: Callable[[int], None] | None = None,
        stop: StopFlag | None = None,
        batch_size: int = REBUILD_BATCH,
        flush_every: int = FLUSH_EVERY,
    ) -> int:
        """Process the whole log again into fresh rows that replace the stored ones.

        The stored rows stay readable (and other processes keep them current) while the
        first `flush_every` events are applied in memory from nothing; then one transaction
        empties the tables, writes the new rows and sets the positions, whatever others did
        meanwhile. Readers never see the tables empty, and nobody else starts a rebuild of
        their own from position 0 (a reset at the start made every other process's
        projector do that). The rest of the log, if any, is caught up as usual.
        """
        _check_sizes(batch_size, flush_every)
        chosen = self.select(names)
        with self._mutex, _no_cyclic_gc():
            for projection in chosen:
                projection.mark_complete()  # build from nothing: the tables are not read
                self._expected[projection.name] = None
            size = min(batch_size, flush_every)
            covered = self._step_ahead(chosen, 0, size, progress, stop, flush_every, replace=True)
        if covered is None:
            if stop is None or not stop.is_set():
                self.reset(names)  # an empty log: empty tables at position 0 are its rebuild
            return min(self.positions()[p.name] for p in chosen)
        return self.catch_up(
            names, progress=progress, stop=stop, batch_size=batch_size, flush_every=flush_every
        )

    def _step(
        self,
        chosen: list[Projection],
        size: int,
        progress: Callable[[int], None] | None = None,
        stop: StopFlag | None = None,
        flush_every: int = FLUSH_EVERY,
    ) -> int | None:
        """One batch: read, lock, re-read positions, apply, write rows and positions."""
        names = [p.name for p in chosen]
        with self.store.transaction(commit=False) as cursor:
            known = self._positions(cursor)
        after = min(known.get(n, (0, 0))[0] for n in names)
        if all(p.complete and self._expected[p.name] == known[p.name][0] == after for p in chosen):
            return self._step_ahead(
                chosen, after, min(size, flush_every), progress, stop, flush_every
            )
        page = self.source.read(after, size, _types(chosen))
        if page.covered is None:
            return None
        if self.store.dialect == "sqlite" and all(
            self._expected[p.name] == known[p.name][0] == after for p in chosen
        ):
            return self._apply_then_write(chosen, page, after)
        covered = page.covered
        advanced: list[Projection] = []
        try:
            with self.gate, self.store.transaction(commit=True) as cursor:
                self._lock(cursor, names)
                now = self._positions(cursor)
                for projection in chosen:
                    position = now[projection.name][0]
                    if position < after or position >= covered:
                        continue  # reset meanwhile (wait for its batch), or already done
                    if self._expected[projection.name] != position:
                        projection.forget()
                        if position == 0:
                            projection.mark_complete()
                    projection.bind(cursor)
                    events = page.events
                    if events and events[0].position <= position:
                        events = [e for e in events if e.position > position]
                    projection.process_all(events)
                    projection.flush(cursor)
                    cursor.execute(self._sql_set, (covered, projection.name))
                    advanced.append(projection)
        except BaseException:
            self._drop(chosen)
            raise
        self._advanced(advanced, covered)
        return covered

    def _drop(self, chosen: list[Projection]) -> None:
        """After a failed or abandoned batch: the caches may have run ahead of the rows."""
        for projection in chosen:
            projection.forget()
            self._expected[projection.name] = None

    def _advanced(self, projections: list[Projection], covered: int) -> None:
        """After a committed batch: this process wrote these positions last."""
        for projection in projections:
            self._expected[projection.name] = covered
            if projection.cached_rows() > MAX_CACHED_ROWS:
                projection.forget()

    def _write_unless_moved(
        self, chosen: list[Projection], after: int, covered: int, replace: bool = False
    ) -> int:
        """Write the batches applied in memory since `after`, up to `covered`, in one short
        transaction that first checks, under the tracking lock, that nobody moved the
        positions since `after` (returns `after`, the work dropped, if somebody did). With
        `replace` the tables are emptied first instead of checked: the rows replace them."""
        try:
            for projection in chosen:  # encode before the write lock is taken
                projection.prepare()
            # A rebuild's write: see `LedgerStore.transaction`; checkpointed below.
            bulk = replace or covered - after >= BULK_FROM
            with self.gate, self.store.transaction(commit=True, bulk=bulk) as cursor:
                self._lock(cursor, [p.name for p in chosen])
                now = self._positions(cursor)
                if not replace and any(now[p.name][0] != after for p in chosen):
                    raise _Moved
                for projection in chosen:
                    if replace:
                        for table in projection.tables:
                            cursor.execute(f"DELETE FROM {self.store.name(table.name)}")
                    projection.flush(cursor, fresh=replace)
                    cursor.execute(self._sql_set, (covered, projection.name))
        except BaseException as exc:
            self._drop(chosen)
            if isinstance(exc, _Moved):
                return after
            raise
        self._advanced(chosen, covered)
        if bulk:
            self.store.checkpoint()
        return covered

    def _apply_then_write(self, chosen: list[Projection], page: Page, after: int) -> int:
        """Apply one batch with no write lock held, then write it in one short transaction.

        The caches hold rows as stored at `after` (this process wrote every position last);
        rows missing from them are read in a read transaction. The write then checks under
        the lock that nobody moved the positions since `after`: rows are only ever written
        together with their projection's position, so unchanged positions mean the rows
        read are still the stored ones. If somebody did, the work is dropped and the next
        step starts again from their position the careful way. Holding the lock (and, in
        the server, the write gate that appends wait for) only to write, not to read and
        apply, took a server's projector from a mean of 5.2 ms under the gate per catch-up
        to 2.2 ms (bench/README.md, api).

        SQLite only: there the lock is the database's one writer lock, which the appends
        wait for. PostgreSQL's tracking-row lock holds up only other projectors (say, a
        `project --follow` beside the server), which would then apply batches that only
        one of them can write: nothing to gain there, and work to lose.
        """
        assert page.covered is not None
        try:
            with self.store.transaction(commit=False) as cursor:
                for projection in chosen:
                    projection.bind(cursor)
                    projection.process_all(page.events)
        except BaseException:
            self._drop(chosen)
            raise
        return self._write_unless_moved(chosen, after, page.covered)

    def _step_ahead(
        self,
        chosen: list[Projection],
        after: int,
        size: int,
        progress: Callable[[int], None] | None,
        stop: StopFlag | None,
        flush_every: int,
        replace: bool = False,
    ) -> int | None:
        """Many batches in memory, then one short write (complete caches, e.g. a rebuild).

        The caches hold every row, so applying events needs no reads: pages are applied with
        no transaction open, and the rows and positions are written at most every
        `flush_every` events in one transaction that first checks, under the tracking lock,
        that nobody moved the positions since `after`. If somebody did, the work is dropped
        and the next step continues from their position the careful way. With `replace`
        (a rebuild's first window, from 0), the transaction instead empties the tables
        before writing: the new rows replace whatever is stored.
        """
        covered = after
        applied = 0
        types = _types(chosen)
        try:
            while applied < flush_every and (stop is None or not stop.is_set()):
                page = self.source.read(covered, size, types)
                if page.covered is None:
                    break
                for projection in chosen:
                    projection.process_all(page.events)
                applied += page.covered - covered
                covered = page.covered
                if progress is not None:
                    progress(covered)
            if covered == after:
                # Nothing applied (the log ends here): the caches still hold exactly the
                # stored rows, so they are kept (dropping a million rows costs ~0.6 s, and
                # a rebuild's closing catch-up always ends here).
                return None
            if replace and stop is not None and stop.is_set():
                # A rebuild stopped before it replaced anything: the stored rows stay as
                # they were, and so does every position; the caches ran ahead of them.
                for projection in chosen:
                    projection.forget()
                return None
        except BaseException:
            self._drop(chosen)
            raise
        return self._write_unless_moved(chosen, after, covered, replace)

    def follow(
        self,
        stop: threading.Event,
        interval: float = 1.0,
        names: Sequence[str] | None = None,
        on_batch: Callable[[int], None] | None = None,
        batch_size: int | None = None,
        flush_every: int = FLUSH_EVERY,
    ) -> None:
        """Catch up, then poll every `interval` seconds until `stop` is set.

        A lost connection or lock timeout is logged and retried with a growing pause (at most
        30 s); the next attempt resumes from the stored positions.
        """
        failures = 0
        while not stop.is_set():
            try:
                self.catch_up(
                    names,
                    stop=stop,
                    progress=on_batch,
                    batch_size=batch_size,
                    flush_every=flush_every,
                )
                failures = 0
                stop.wait(interval)
            except TRANSIENT_ERRORS as exc:
                failures += 1
                pause = min(interval * 2**failures, 30.0)
                log.warning("projection worker: %s; retrying in %.1fs", exc, pause)
                stop.wait(pause)

    # -- inspection ------------------------------------------------------------------------

    def status(self) -> list[Status]:
        head = self.source.head()
        with self.store.transaction(commit=False) as cursor:
            stored = self._positions(cursor)
        return [
            Status(
                name=p.name,
                position=stored.get(p.name, (0, 0))[0],
                head=head,
                version=stored.get(p.name, (0, 0))[1],
                current_version=p.version,
            )
            for p in self.projections.values()
        ]

    def digest(self, names: Sequence[str] | None = None) -> dict[str, str]:
        """SHA-256 (hex) of each projection's full state: its tables, canonically dumped."""
        result: dict[str, str] = {}
        with self.store.transaction(commit=False) as cursor:
            self.store.snapshot(cursor)
            for projection in self.select(names):
                h = hashlib.sha256()
                for table in sorted(projection.tables, key=lambda t: t.name):
                    h.update(f"table {table.name}\n".encode())
                    for line in table_digest_lines(self.store, cursor, table):
                        h.update(line)
                result[projection.name] = h.hexdigest()
        return result
