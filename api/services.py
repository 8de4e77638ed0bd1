"""Everything a request needs, built once per process and shared by all requests."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from api.auth import TokenVerifier, load_or_create_token_key
from api.checkpoints import Checkpointer
from api.directory import Directory
from api.projector import FileLeadership, Leadership, PostgresLeadership, Projector
from api.settings import ApiSettings
from ledger.application import LedgerApp
from ledger.config import TOKEN_KEY_FILE
from ledger.write_gate import write_gate


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
        self.verify_token = TokenVerifier(
            self.token_key,
            settings.token_leeway_seconds,
            path=ledger.config.home / TOKEN_KEY_FILE,
        )
        self._read_models = read_models
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
                    from projections.replays import Replays

                    read_models = ReadModels(
                        self.ledger, window_measure=self.settings.window_measure
                    )
                    read_models.replays = Replays(
                        entries=self.settings.replay_cache_entries,
                        max_bytes=self.settings.replay_cache_mb * 1024 * 1024,
                        builds=self.settings.replay_builds,
                        record_builds=self.settings.record_replay_builds,
                        wait_seconds=self.settings.replay_wait_seconds,
                    )
                    self._read_models = read_models
        return self._read_models


def projector_lock(ledger: LedgerApp) -> Leadership:
    """The lock that picks the one server process that projects (`api.projector`): a file
    beside an SQLite database, an advisory lock on PostgreSQL.

    On PostgreSQL every process used to project: each catch-up then waited for another's
    on the tracking rows, found them moved, dropped its cached rows and read them back,
    and reads waiting for it had a 99th percentile of 160-420 ms (bench/README.md)."""
    if ledger.config.is_postgres:
        import psycopg

        pool = ledger.recorder.datastore.pool  # type: ignore[attr-defined]

        def connect() -> Any:
            # pool.kwargs holds libpq's connect_timeout (SES_LEDGER_STORE_WAIT_SECONDS)
            return psycopg.connect(pool.conninfo, autocommit=True, **pool.kwargs)

        return PostgresLeadership(
            connect,
            str(ledger.recorder.datastore.schema),  # type: ignore[attr-defined]
            lost=(psycopg.OperationalError, psycopg.InterfaceError),
        )
    return FileLeadership(Path(ledger.config.db_url[len("sqlite:///") :] + ".projector.lock"))
