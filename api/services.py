"""Everything a request needs, built once per process and shared by all requests."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any

from api.auth import TokenVerifier, load_or_create_token_key
from api.checkpoints import Checkpointer
from api.directory import Directory
from api.projector import Projector
from api.settings import ApiSettings
from ledger.application import LedgerApp

log = logging.getLogger("ses_ledger.api")


class Services:
    def __init__(
        self, ledger: LedgerApp, settings: ApiSettings, read_models: Any | None = None
    ) -> None:
        self.ledger = ledger
        self.settings = settings
        self.origin = ledger.config.origin
        self.merkle = ledger.merkle_log
        self.directory = Directory(ledger)
        self.write_gate = write_gate(ledger)
        ledger.record_gate = self.write_gate  # writes take it only to store: see write_gate
        #: Reads that cannot wait run on the event loop (`api.deps.Reader.run`): SQLite only.
        self.inline_reads = not ledger.config.is_postgres
        self.checkpointer = Checkpointer(
            ledger, self.write_gate, settings.checkpoint_max_age_seconds
        )
        self.token_key = load_or_create_token_key(ledger.config.home)
        self.verify_token = TokenVerifier(self.token_key, settings.token_leeway_seconds)
        self._read_models = read_models
        if read_models is not None:
            read_models.runner.gate = self.write_gate
        self._read_lock = threading.Lock()
        self.projector = Projector(
            lambda: self.read_models,
            settings.projection_interval_seconds,
            leader_lock=projector_lock(ledger),
        )

    @property
    def read_models(self) -> Any:
        """The projections' query object (`projections.queries.ReadModels`), made on first use.

        Imported lazily: the write side and the ledger endpoints work without it.
        """
        if self._read_models is None:
            with self._read_lock:
                if self._read_models is None:
                    from projections.queries import ReadModels

                    read_models = ReadModels(self.ledger)
                    # Their write transactions queue with the appends (`write_gate`).
                    read_models.runner.gate = self.write_gate
                    self._read_models = read_models
        return self._read_models


def projector_lock(ledger: LedgerApp) -> Path | None:
    """The file whose lock picks the one server process that projects (SQLite only:
    PostgreSQL's row locks wait without polling, so there every process projects)."""
    if ledger.config.is_postgres:
        return None
    return Path(ledger.config.db_url[len("sqlite:///") :] + ".projector.lock")


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
    and one commit (`ledger.group_commit`). PostgreSQL writes concurrently and needs no gate.
    """
    if ledger.config.is_postgres:
        return contextlib.nullcontext()
    return WriteGate(Path(ledger.config.db_url[len("sqlite:///") :] + ".write.lock"))


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
                self._file = open(self.path, "a")  # noqa: SIM115 - kept open for life
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
