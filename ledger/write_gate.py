"""The write gate: one SQLite writer at a time, across threads and processes (`write_gate`)."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import weakref
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ledger.files import open_lock_file

if TYPE_CHECKING:
    from ledger.application import LedgerApp

log = logging.getLogger("ses_ledger.ledger")

_GATES: weakref.WeakValueDictionary[tuple[int, Path], WriteGate] = weakref.WeakValueDictionary()
_GATES_LOCK = threading.Lock()


def write_gate(ledger: LedgerApp) -> AbstractContextManager[object]:
    """One writer at a time on SQLite: threads queue on a lock, processes on a file lock.

    SQLite has one writer. Within a process, eventsourcing's SQLite pool hands its writer
    connection out under a fairness semaphore, so a thread that waits there for the writer
    also holds up every reader, and a writer that opens a second connection mid-transaction
    can stall until the pool's timeout. Between processes (`serve --workers N`), a writer
    that finds the database locked waits in SQLite's busy handler, which sleeps 1, 2, 5,
    10 ... ms between tries, so a write behind another worker's millisecond transaction
    could sleep for tens of milliseconds while the lock stood free. Queuing on the gate
    first keeps both waits out: a released lock wakes the next writer at once.

    A write holds the gate only while it stores (`LedgerApp.record_gate`), not while its
    command loads, judges and seals, so the workers' CPU work runs side by side; and the
    writes that queue in a worker meanwhile are stored together under one turn of the gate
    and one commit (`ledger.group_commit`). The read models' write transactions take it
    too (`projections.runner.Runner.gate`), in the server and in `ses-ledger project` /
    `projections rebuild`, so they queue with the appends. PostgreSQL writes concurrently
    and needs no gate.

    One gate per file per process, shared by everything in it that writes the file
    (appends, checkpoints, the read models): its threads queue on one thread lock and the
    lock file is opened once. The gate is kept while anything holds it (weakly cached), and
    it is not re-entrant: whoever holds it must not enter it again.
    """
    if ledger.config.is_postgres:
        return contextlib.nullcontext()
    path = Path(ledger.config.db_url[len("sqlite:///") :] + ".write.lock").resolve()
    key = (os.getpid(), path)
    with _GATES_LOCK:
        gate = _GATES.get(key)
        if gate is None:
            gate = _GATES[key] = WriteGate(path)
    return gate


class WriteGate:
    """A thread lock and, inside it, an exclusive `flock` on a file beside the database.

    Where the file cannot be opened or locked (a read-only directory, a file system without
    `flock`), it says so once in the log and goes on with the thread lock alone: workers
    then meet in SQLite's busy handler, as they did before the file lock, slower but safe.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: IO[str] | None = None
        self._file_lock = True

    def __enter__(self) -> WriteGate:
        self._lock.acquire()
        try:
            if self._file_lock:
                self._lock_file()
        except BaseException:
            self._lock.release()
            raise
        return self

    def _lock_file(self) -> None:
        try:
            if self._file is None:
                self._file = open_lock_file(self.path)  # kept open for life
            fcntl.flock(self._file, fcntl.LOCK_EX)  # blocks without the GIL
        except OSError as exc:
            self._file_lock = False
            log.warning(
                "no write lock file %s (%s): workers meet in SQLite instead", self.path, exc
            )

    def __exit__(self, *_exc: object) -> None:
        try:
            if self._file_lock and self._file is not None:
                fcntl.flock(self._file, fcntl.LOCK_UN)
        finally:
            self._lock.release()
