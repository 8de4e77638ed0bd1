"""Builds the application from settings (cosmicpython's bootstrap): one place for the wiring."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from ledger.log import MerkleLog


def build_app(
    config: LedgerConfig | None = None, clock: Callable[[], datetime] | None = None
) -> LedgerApp:
    return LedgerApp(config or LedgerConfig.from_env(), clock=clock)


def merkle_log(app: LedgerApp) -> MerkleLog:
    return app.merkle_log
