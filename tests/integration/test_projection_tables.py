"""The read models' tables as stored: made again when the code's projection changed.

A projection whose stored version differs from the code's is dropped and rebuilt from
position 0 when a process sets the read models up; the others keep their rows and positions.
"""

from __future__ import annotations

import logging
from datetime import date

import pytest

from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from projections.current_ratings import EXECUTIVES as CR_EXECUTIVES
from projections.queries import ReadModels
from tests.integration.test_projections import Clock, Story
from tests.ledger_helpers import raw, table


@pytest.fixture
def app(ledger_config: LedgerConfig) -> LedgerApp:
    app = LedgerApp(ledger_config, clock=Clock())
    story = Story(app)
    story.executive("E1")
    story.executive("E2")
    story.appraisal("E1", date(2031, 11, 15), 2)
    return app


def _stale_row(config: LedgerConfig) -> None:
    """A row no event made: it survives unless the table is made again or emptied."""
    raw(
        config,
        f"INSERT INTO {table(config, CR_EXECUTIVES.name)} (executive_id, doc) VALUES (?, ?)",
        ("E-STALE", "{}"),
    )


def _executives(config: LedgerConfig) -> list[str]:
    rows = raw(config, f"SELECT executive_id FROM {table(config, CR_EXECUTIVES.name)}")
    return sorted(str(r[0]) for r in rows)


def test_a_projection_of_another_version_is_rebuilt_and_the_others_are_kept(
    app: LedgerApp, ledger_config: LedgerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    models = ReadModels(app)
    models.catch_up()
    digest = models.digest()
    head = app.recorder.max_notification_id()
    _stale_row(ledger_config)
    raw(
        ledger_config,
        f"UPDATE {table(ledger_config, 'proj_tracking')} SET version = 0 WHERE name = ?",
        ("current_ratings",),
    )
    with caplog.at_level(logging.WARNING, logger="ses_ledger.projections"):
        again = ReadModels(LedgerApp(ledger_config))
    assert "projection current_ratings changed (version 0 -> " in caplog.text
    assert again.runner.positions() == {
        "current_ratings": 0,
        "removal_history": head,
        "compliance": head,
        "audit": head,
    }
    assert _executives(ledger_config) == []  # dropped and made again, the stray row too
    others = {name: d for name, d in digest.items() if name != "current_ratings"}
    assert {name: again.runner.digest([name])[name] for name in others} == others
    again.catch_up()
    assert again.digest() == digest
    assert _executives(ledger_config) == ["E1", "E2"]
