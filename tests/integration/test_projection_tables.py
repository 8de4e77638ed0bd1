"""The read models' tables as stored: made again when the code's differ, and read well.

A projection whose stored version differs from the code's, or (PostgreSQL) whose tables were
made before text columns were byte-ordered, is dropped and rebuilt from position 0 when a
process sets the read models up; the others keep their rows and positions.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import pytest

from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from projections.current_ratings import EXECUTIVES as CR_EXECUTIVES
from projections.events import EventLog
from projections.queries import ReadModels
from tests.integration.test_projections import Clock, Story
from tests.ledger_helpers import raw


@pytest.fixture
def app(ledger_config: LedgerConfig) -> LedgerApp:
    app = LedgerApp(ledger_config, clock=Clock())
    story = Story(app)
    story.executive("E1")
    story.executive("E2")
    story.appraisal("E1", date(2031, 11, 15), 2)
    return app


def _table(config: LedgerConfig, name: str) -> str:
    if config.is_postgres:
        return f'"{config.db_url.split("schema=")[1]}".{name}'
    return name


def _stale_row(config: LedgerConfig) -> None:
    """A row no event made: it survives unless the table is made again or emptied."""
    raw(
        config,
        f"INSERT INTO {_table(config, CR_EXECUTIVES.name)} (executive_id, doc) VALUES (?, ?)",
        ("E-STALE", "{}"),
    )


def _executives(config: LedgerConfig) -> list[str]:
    rows = raw(config, f"SELECT executive_id FROM {_table(config, CR_EXECUTIVES.name)}")
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
        f"UPDATE {_table(ledger_config, 'proj_tracking')} SET version = 0 WHERE name = ?",
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
    again.catch_up()
    assert again.digest() == digest
    assert _executives(ledger_config) == ["E1", "E2"]


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
def test_postgres_read_model_text_is_byte_ordered_and_older_tables_are_made_again(
    app: LedgerApp, ledger_config: LedgerConfig, caplog: pytest.LogCaptureFixture
) -> None:
    models = ReadModels(app)
    models.catch_up()
    digest = models.digest()
    head = app.recorder.max_notification_id()
    schema = ledger_config.db_url.split("schema=")[1]
    collations = (
        "SELECT table_name, column_name, collation_name FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name LIKE 'proj%%' AND data_type = 'text'"
    )
    found = raw(ledger_config, collations, (schema,))
    assert len(found) > 10 and {r[2] for r in found} == {"C"}
    # A table as made before: the database's default collation.
    raw(
        ledger_config,
        f"ALTER TABLE {_table(ledger_config, CR_EXECUTIVES.name)} "
        'ALTER COLUMN doc TYPE text COLLATE "default"',
    )
    _stale_row(ledger_config)
    with caplog.at_level(logging.WARNING, logger="ses_ledger.projections"):
        again = ReadModels(LedgerApp(ledger_config))
    assert (
        "projection current_ratings has tables made before text columns were byte-ordered"
        in caplog.text
    )
    assert "removal_history" not in caplog.text and "compliance" not in caplog.text
    assert again.runner.positions()["current_ratings"] == 0
    assert again.runner.positions()["audit"] == head
    assert {r[2] for r in raw(ledger_config, collations, (schema,))} == {"C"}
    assert _executives(ledger_config) == []
    again.catch_up()
    assert again.digest() == digest
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="ses_ledger.projections"):
        ReadModels(LedgerApp(ledger_config))
    assert "rebuilding" not in caplog.text  # made once, not on every start


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
def test_postgres_reads_a_page_without_parallel_workers(
    app: LedgerApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even where the planner would start workers for a page (here: made free), it does
    not: a page is one short index range in position order."""
    datastore = app.recorder.datastore
    plans: list[str] = []
    plain = datastore.transaction

    class Explaining:
        def __init__(self, cursor: Any) -> None:
            self.cursor = cursor

        def __getattr__(self, name: str) -> Any:
            return getattr(self.cursor, name)

        def __setattr__(self, name: str, value: Any) -> None:
            if name == "cursor":
                object.__setattr__(self, name, value)
            else:
                setattr(self.cursor, name, value)

        def execute(self, sql: str, params: Any = None, **kwargs: Any) -> Any:
            if sql.startswith("SELECT") and "LIMIT" in sql:
                for setting in (
                    "parallel_setup_cost",
                    "parallel_tuple_cost",
                    "min_parallel_index_scan_size",
                    "min_parallel_table_scan_size",
                ):
                    self.cursor.execute(f"SET LOCAL {setting} = 0")
                self.cursor.execute("EXPLAIN " + sql, params)
                plans.append("\n".join(str(r[0]) for r in self.cursor.fetchall()))
            return self.cursor.execute(sql, params, **kwargs)

    @contextmanager
    def explaining(*, commit: bool = False) -> Iterator[Any]:
        with plain(commit=commit) as cursor:
            yield Explaining(cursor)

    monkeypatch.setattr(datastore, "transaction", explaining)
    log = EventLog(app.recorder)
    head = app.recorder.max_notification_id()
    everything = log.page(0, 1000)
    plans_found = log.page(0, 1000, types=frozenset({"PlanSet"}))
    assert [e.position for e in everything] == list(range(1, head + 1))
    assert [e.type for e in plans_found] == ["PlanSet"]
    assert len(plans) == 2
    assert not [plan for plan in plans if "Gather" in plan], plans
