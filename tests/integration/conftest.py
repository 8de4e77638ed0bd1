"""Fixtures of the integration tests."""

from __future__ import annotations

import pytest

from ledger.config import LedgerConfig
from tests.ledger_helpers import point_cli_at


@pytest.fixture
def env(sqlite_config: LedgerConfig, monkeypatch: pytest.MonkeyPatch) -> LedgerConfig:
    """An SQLite ledger that the in-process command line (`cli.main`) works on."""
    return point_cli_at(monkeypatch, sqlite_config)
