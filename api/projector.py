"""Keeps the read models current from a background thread, so reads never do projection work.

A read must see every write this process has acknowledged before it began (read-your-
writes). It waits, on a condition variable, until the projections have passed the last
position this process wrote *to the records it reads*: a read of one executive's records
(registration, appraisals, ratings, removal history) waits for the writes to that
executive's streams; a report waits for every write. A read of an executive never shows
another executive's streams, so it loses nothing by not waiting for their writes, and under
a steady stream of writes to other records it is no longer held up by them. The thread
catches up in batches, so a burst of writes costs one projection transaction, not one per
read. Writes by other processes are picked up within `interval` seconds. Without the
thread (lifespan not run), reads catch up inline.

With several server processes on one store (`serve --workers N`), only one of them
projects: the one holding the leadership lock (`Leadership`: an exclusive lock on
`<ledger.db>.projector.lock` on SQLite, a session advisory lock on PostgreSQL; taken once,
kept for life, released if the process dies; another then takes it). The projecting
process checks every `interval` seconds that it still holds the lock: PostgreSQL's goes
with its connection, so a cut connection hands it to whoever takes it first. When every
process projected, each took the tracking rows' lock (on SQLite the single writer) in turn
for its catch-up and found the rows moved by the others, so it dropped its cached rows and
read them back inside the write transaction. The others now only read the stored
positions, every `poll` seconds while a read waits, and the projecting process looks for
their new events as often.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

from ledger.errors import StoreUnreachable
from ledger.files import open_lock_file
from projections.runner import TRANSIENT_ERRORS

log = logging.getLogger("ses_ledger.api")

#: Executives remembered before those whose writes are all projected are forgotten.
PRUNE_FROM = 1000


class Leadership(Protocol):
    """Who projects among the server's processes: whoever holds the lock."""

    def try_acquire(self) -> bool: ...

    def held(self) -> bool:
        """Whether the lock taken is still this process's (False: it was lost)."""
        ...

    def release(self) -> None: ...


class FileLeadership:
    """SQLite: an exclusive `flock` on a file beside the database, kept for life."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def try_acquire(self) -> bool:
        if self._file is None:
            self._file = open_lock_file(self.path)  # held for life
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def held(self) -> bool:
        return self._file is not None  # an flock lasts as long as its open file

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # releases the lock: another process may project
            self._file = None


class PostgresLeadership:
    """PostgreSQL: a session advisory lock for the ledger's schema, on a connection of its
    own kept for life (PostgreSQL releases it if the process or the connection goes)."""

    #: First half of the advisory lock key; the second is a hash of the schema's name.
    KEY = 746183692

    def __init__(
        self,
        connect: Callable[[], Any],
        schema: str,
        lost: tuple[type[BaseException], ...] = (),
    ) -> None:
        self._connect = connect
        self.schema = schema
        #: The driver's errors of a connection that cannot be made or was cut (psycopg's
        #: OperationalError): told as `StoreUnreachable`, which the projecting thread logs
        #: in one line and retries, as for the pool's connections. They were a traceback
        #: twice a second for as long as PostgreSQL was down.
        self.lost = lost
        self._conn: Any = None

    def try_acquire(self) -> bool:
        try:
            if self._conn is None:
                self._conn = self._connect()
            row = self._conn.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(%s)) AS held", (self.KEY, self.schema)
            ).fetchone()
        except Exception as exc:
            # The session is gone (a server restart cuts every one): the next attempt opens
            # a new connection rather than failing on this one for good.
            self.release()
            if isinstance(exc, self.lost):
                reason = " ".join(str(exc).split())
                raise StoreUnreachable(f"the projector lock's connection failed: {reason}") from exc
            raise
        return bool(row["held"] if isinstance(row, dict) else row[0])

    def held(self) -> bool:
        """The lock lasts as long as its session: a connection that still answers holds it.
        One that does not (the server restarted, the connection was cut) is closed, so the
        next `try_acquire` opens a new one and competes for the lock again."""
        if self._conn is None:
            return False
        try:
            self._conn.execute("SELECT 1").fetchone()
        except Exception as exc:  # noqa: BLE001 - any failure: the session is gone
            log.warning("the projector lock's connection ended (%s)", exc)
            self.release()
            return False
        return True

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - a broken connection may fail to close
                log.debug("closing the projector lock's connection failed", exc_info=True)
            self._conn = None


class Projector:
    def __init__(
        self,
        read_models: Callable[[], Any],
        interval: float = 0.5,
        leader_lock: Leadership | None = None,
        poll: float = 0.003,
    ) -> None:
        self._read_models = read_models
        self.interval = interval
        self.poll = poll
        #: None: this process always projects (one process).
        self._leadership = leader_lock
        self._leading = leader_lock is None
        self._cond = threading.Condition()
        self._wanted = 0
        #: The last position written to each executive's record (pruned once projected).
        self._wanted_by: dict[str, int] = {}
        self._reached = 0
        #: Rounds that failed because the store could not be reached, and the last error:
        #: a read waiting for a round is answered at once when one fails so (`ready`).
        self._unreachable_rounds = 0
        self._unreachable: StoreUnreachable | None = None
        self._caught_up_at = float("-inf")
        self._held_checked_at = float("-inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="projector", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._leadership is not None:
            self._leadership.release()  # another process may project
            self._leading = False

    @property
    def leading(self) -> bool:
        """Whether this process projects (see the module docstring)."""
        return self._leading

    def _lead(self) -> bool:
        """Whether this process projects now: it holds the leadership lock, checked again
        every `interval` seconds (a PostgreSQL session lock goes with its connection, and
        another process may then have taken it), or has just taken it."""
        leadership = self._leadership
        if leadership is None:  # always, without a leadership lock
            return True
        if self._leading:
            now = time.monotonic()
            if now - self._held_checked_at < self.interval:
                return True
            self._held_checked_at = now
            if leadership.held():
                return True
            self._leading = False
            log.warning("this process lost the projector lock; trying to take it again")
        if not leadership.try_acquire():
            return False
        self._leading = True
        self._held_checked_at = time.monotonic()
        log.info("this process projects the read models")
        return True

    def _idle(self, read_models: Any, target: int) -> bool:
        """Whether a catch-up would find nothing: no event past the position reached (one
        cheap read of the log's head). Looking for new events every `poll` seconds used to
        take the write gate each time, which other workers' writes then waited for. A full
        catch-up still runs every `interval` seconds, to notice a reset of the positions."""
        if target > self._reached or time.monotonic() - self._caught_up_at > self.interval:
            return False
        return int(read_models.runner.source.head()) <= self._reached

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def written(self, position: int, executive_id: str | None = None) -> None:
        """This process stored an event at `position` (in `executive_id`'s record, if it is
        one): wake the thread to project it."""
        with self._cond:
            if executive_id is not None and position > self._wanted_by.get(executive_id, 0):
                self._wanted_by[executive_id] = position
            if position > self._wanted:
                self._wanted = position
                self._cond.notify_all()

    def _target(self, executive_id: str | None) -> int:
        """The position a read must wait for: this process's last write to `executive_id`'s
        record (None: its last write of all)."""
        if executive_id is None:
            return self._wanted
        return self._wanted_by.get(executive_id, 0)

    def ready(
        self, timeout: float = 10.0, executive_id: str | None = None, at_least: int = 0
    ) -> Any:
        """The read models, once they include this process's writes to `executive_id`'s
        record (None: every write of this process), and every event up to position
        `at_least` whichever process wrote it (a read that found nothing for an id the
        ledger holds: `api.deps.Reader.run`)."""
        read_models = self._read_models()
        if not self.running:
            read_models.catch_up()  # its writes take the gate (`Runner.gate`)
            return read_models
        with self._cond:
            # The writes acknowledged before this read began, not those that arrive while it
            # waits: under a steady stream of writes the moving target is never reached.
            target = max(self._target(executive_id), at_least)
            if target > self._wanted:  # wake the thread: project it, or watch who does
                self._wanted = target
                self._cond.notify_all()
            # A round that fails for want of the store ends the wait: the read is answered
            # 503 now, not after `timeout` and its own wait for the store (a report took
            # 12 s to say the database was down). Only rounds that fail after the read
            # began count, so a read that arrives once the store is back is served.
            failed = self._unreachable_rounds
            if not self._cond.wait_for(
                lambda: self._reached >= target or self._unreachable_rounds > failed, timeout
            ):
                log.warning("read models are %s events behind", target - self._reached)
            elif self._reached < target and self._unreachable is not None:
                raise StoreUnreachable(str(self._unreachable))
        return read_models

    def ready_nowait(self, executive_id: str | None = None) -> Any | None:
        """The read models if they already include this process's acknowledged writes to
        `executive_id`'s record (None: all; no waiting, so the caller may be the event
        loop), else None."""
        if not self.running:
            return None
        with self._cond:
            if self._reached < self._target(executive_id):
                return None
        return self._read_models()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                target = self._wanted
            try:
                leading = self._lead()
                read_models = self._read_models()
                if leading and self._idle(read_models, target):
                    reached = self._reached  # nothing new: no write gate, no catch-up
                elif leading:
                    # Only its write transactions take the gate (`Runner.gate`): reading the
                    # log and applying it leave the appends free to commit meanwhile.
                    reached = max(int(read_models.catch_up()), target)
                    self._caught_up_at = time.monotonic()
                else:  # another process projects: see how far it has got
                    reached = min(read_models.runner.positions().values())
            except TRANSIENT_ERRORS as exc:  # a cut connection, a lock timeout: one line,
                # as `project --follow` says it (a PostgreSQL restart is not a bug report)
                if isinstance(exc, StoreUnreachable):
                    with self._cond:
                        self._unreachable_rounds += 1
                        self._unreachable = exc
                        self._cond.notify_all()
                log.error(
                    "projection catch-up failed: %s; retrying in %ss",
                    " ".join(str(exc).split()),
                    self.interval,
                )
                self._stop.wait(self.interval)
                continue
            except Exception:  # keep serving stale reads rather than none; retried next round
                log.exception("projection catch-up failed")
                self._stop.wait(self.interval)
                continue
            with self._cond:
                self._reached = max(reached, self._reached)
                self._cond.notify_all()
                if len(self._wanted_by) > PRUNE_FROM:
                    self._wanted_by = {
                        s: p for s, p in self._wanted_by.items() if p > self._reached
                    }
                if self._wanted > self._reached:
                    if not leading:  # a read waits for the other process: look again soon
                        self._cond.wait(self.poll)
                elif leading and self._leadership is not None:
                    self._cond.wait(self.poll)  # other processes write too: look soon
                else:
                    self._cond.wait(self.interval)
