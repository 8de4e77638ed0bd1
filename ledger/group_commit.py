"""Group commit: the writes that queue up while one commits are stored in the next commit.

SQLite has one writer, and a durable commit waits for the disk (`fsync` of the write-ahead
log, about 0.7 ms on the development VM, 5-7 ms at its 99th percentile). Writers that took
turns paid that wait one after another, holding the write lock through it, so under load
the lock, not the CPU, set the pace of writes. Here the first writer to arrive leads: it
stores its own events and those of every writer queued behind it and commits once; the
others wait for the outcome (a refused write is rolled back alone: see
`LedgerSQLiteRecorder._commit_batch`). This
is the leader/follower queue of LevelDB's `DBImpl::Write` and PostgreSQL's group commit.
Hand-written: neither eventsourcing nor `sqlite3` batches independent transactions.

Nothing about a single write changes: its events and idempotency record are stored
atomically or not at all, it returns only after the commit that made them durable, and a
writer alone commits at once (a batch of one, without savepoints).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from itertools import islice
from typing import Any

from eventsourcing.persistence import OperationalError, StoredEvent

log = logging.getLogger("ses_ledger.ledger")

#: Most writes in one commit: bounds the time a batch holds the write lock.
MAX_BATCH = 64


class Write:
    """One writer's events, what the commit made of them, and the wake-up of its thread."""

    __slots__ = ("stored_events", "kwargs", "ids", "error", "done", "woken")

    def __init__(self, stored_events: Sequence[StoredEvent], kwargs: dict[str, Any]) -> None:
        self.stored_events = stored_events
        self.kwargs = kwargs
        self.ids: Sequence[int] | None = None
        self.error: BaseException | None = None
        self.done = False
        self.woken = threading.Event()

    def outcome(self) -> Sequence[int] | None:
        if self.error is not None:
            raise self.error
        return self.ids


class GroupCommit:
    """Runs `commit(batch)` for queued writes, one batch at a time, on a writer's thread.

    `commit` stores each write of the batch in one transaction, setting `ids` or `error`
    on each; if it raises, nothing was stored and every write of the batch fails with it.
    The leader takes `gate` (the write lock) *before* it takes its batch, so the writes
    that queue while it waits for another process's commit join this one.
    """

    def __init__(
        self,
        commit: Callable[[list[Write]], None],
        max_batch: int = MAX_BATCH,
        gate: AbstractContextManager[object] | None = None,
    ) -> None:
        self._commit = commit
        self.max_batch = max_batch
        self.gate: AbstractContextManager[object] = gate or contextlib.nullcontext()
        self._lock = threading.Lock()
        self._queue: deque[Write] = deque()

    def submit(self, stored_events: Sequence[StoredEvent], kwargs: dict[str, Any]) -> Any:
        write = Write(stored_events, kwargs)
        with self._lock:
            self._queue.append(write)
            leads = len(self._queue) == 1
        interrupted: BaseException | None = None
        if not leads:
            interrupted = _wait(write.woken)
            if write.done:
                if interrupted is not None:
                    raise interrupted
                return write.outcome()
        # At the head of the queue: commit it, up to `max_batch` writes.
        batch = [write]
        committed = False
        try:
            with self.gate:
                with self._lock:
                    batch = list(islice(self._queue, self.max_batch))
                self._commit(batch)
                committed = True
        except BaseException as exc:
            if not committed:
                for other in batch:
                    other.ids = None
                    other.error = exc if other is write else _for_follower(exc)
            elif isinstance(exc, Exception):
                # Leaving the gate failed (unlocking its file, say): the batch is stored
                # all the same, and its writes must not be reported as failed (a retry
                # without an idempotency key would store them twice).
                log.warning("after a group commit: %s", exc, exc_info=exc)
            elif interrupted is None:
                interrupted = exc
        finally:
            with self._lock:
                for _ in batch:
                    self._queue.popleft()
                following = self._queue[0] if self._queue else None
            for other in batch:
                other.done = True
                if other is not write:
                    other.woken.set()
            if following is not None:
                following.woken.set()  # not done: it leads the next batch
        if interrupted is not None:
            raise interrupted
        return write.outcome()


def _wait(woken: threading.Event) -> BaseException | None:
    """Wait for `woken`, even through an interruption (KeyboardInterrupt, an exception from
    a signal handler): a follower that left the queue early would strand the writers behind
    it, or be stored after its caller was told otherwise. The interruption is returned, to
    be raised once the write is settled."""
    interrupted: BaseException | None = None
    while True:
        try:
            woken.wait()
            return interrupted
        except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
            if interrupted is None:
                interrupted = exc


def _for_follower(exc: BaseException) -> BaseException:
    """The leader's error for a follower: its own instance, so that threads raising it at
    the same time do not share one traceback; an interruption of the leader's thread
    (KeyboardInterrupt, SystemExit) is the leader's, so followers get a store error."""
    if not isinstance(exc, Exception):
        error = OperationalError(f"the commit was interrupted ({type(exc).__name__})")
        error.__cause__ = exc
        return error
    try:
        other = copy.copy(exc)
    except Exception:  # noqa: BLE001 - an exception type that cannot be copied
        return exc
    other.__cause__ = exc
    return other
