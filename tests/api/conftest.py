"""Fixtures: the API over a fresh ledger (SQLite temp file, or PostgreSQL in its own schema)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings
from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from ledger.keys import KeyRing
from tests.api.story import Api


def make_api(config: LedgerConfig, raise_server_exceptions: bool = True) -> Iterator[Api]:
    """`raise_server_exceptions=False`: server errors are answered, as a real server does,
    instead of raised into the test."""
    ledger = LedgerApp(config)
    settings = ApiSettings(home=config.home, checkpoint_interval_seconds=0)
    app = create_app(ledger, settings=settings)
    with TestClient(app, raise_server_exceptions=raise_server_exceptions) as client:
        yield Api(client, app.state.services.token_key)
    ledger.close()


@pytest.fixture
def api(sqlite_config: LedgerConfig) -> Iterator[Api]:
    """A fresh ledger on SQLite."""
    yield from make_api(sqlite_config)


@pytest.fixture
def any_api(ledger_config: LedgerConfig) -> Iterator[Api]:
    """A fresh ledger on each backend (SQLite, PostgreSQL)."""
    yield from make_api(ledger_config)


@pytest.fixture(scope="module")
def shared_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One SQLite ledger for a whole module (tests use unique ids)."""
    tmp: Path = tmp_path_factory.mktemp("api")
    home = tmp / "home"
    KeyRing(home).init()
    yield from make_api(LedgerConfig(home=home, db_url=f"sqlite:///{tmp / 'ledger.db'}"))
