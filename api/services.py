"""Everything a request needs, built once per process and shared by all requests."""

from __future__ import annotations

import threading
from typing import Any

from api.auth import load_or_create_token_key
from api.checkpoints import Checkpointer
from api.directory import Directory
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
        self.checkpointer = Checkpointer(ledger)
        self.token_key = load_or_create_token_key(ledger.config.home)
        self._read_models = read_models
        self._read_lock = threading.Lock()

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
