"""Everything a request needs, built once per process and shared by all requests."""

from __future__ import annotations

import contextlib
import threading
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from api.auth import TokenVerifier, load_or_create_token_key
from api.checkpoints import Checkpointer
from api.directory import Directory
from api.projector import Projector
from api.settings import ApiSettings
from ledger.application import LedgerApp


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
        #: Reads that cannot wait run on the event loop (`api.deps.Reader.run`): SQLite only.
        self.inline_reads = not ledger.config.is_postgres
        self.checkpointer = Checkpointer(ledger, self.write_gate)
        self.token_key = load_or_create_token_key(ledger.config.home)
        self.verify_token = TokenVerifier(self.token_key, settings.token_leeway_seconds)
        self._read_models = read_models
        self._read_lock = threading.Lock()
        self.projector = Projector(
            lambda: self.read_models,
            self.write_gate,
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

                    self._read_models = ReadModels(self.ledger)
        return self._read_models


def projector_lock(ledger: LedgerApp) -> Path | None:
    """The file whose lock picks the one server process that projects (SQLite only:
    PostgreSQL's row locks wait without polling, so there every process projects)."""
    if ledger.config.is_postgres:
        return None
    return Path(ledger.config.db_url[len("sqlite:///") :] + ".projector.lock")


def write_gate(ledger: LedgerApp) -> AbstractContextManager[object]:
    """One writer at a time inside this process, on SQLite only.

    SQLite has one writer; eventsourcing's SQLite pool hands its writer connection out under
    a fairness semaphore, so a thread that waits there for the writer also holds up every
    reader, and a writer that opens a second connection mid-transaction can stall until the
    pool's timeout. Queuing writers on a plain lock first keeps that wait out of the pool.
    PostgreSQL writes concurrently and needs no gate.
    """
    if ledger.config.is_postgres:
        return contextlib.nullcontext()
    return threading.Lock()
