"""Builds the application from settings (cosmicpython's bootstrap): one place for the wiring."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from ledger.log import MerkleLog
from ledger.store_probe import probe_store


def build_app(
    config: LedgerConfig | None = None,
    clock: Callable[[], datetime] | None = None,
    *,
    existing: bool = False,
) -> LedgerApp:
    """The application on the configured store, which is probed first: a store that cannot
    be used fails at once, with the reason (`ledger/store_probe.py`). `existing`: for
    commands that read or check a ledger, which must not create an empty one."""
    config = config or LedgerConfig.from_env()
    config = probe_store(config, existing=existing)
    return LedgerApp(config, clock=clock)


def merkle_log(app: LedgerApp) -> MerkleLog:
    return app.merkle_log
