"""Helpers for ledger tests: a small appraisal history and raw database access for tampering."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from ledger.application import CommandResult, LedgerApp
from ledger.config import LedgerConfig
from ledger.keys import KeyRing

BASIC_ELEMENTS = [
    {"code": "leading_change", "weight": 15, "requirements": ["Lead the modernisation plan."]},
    {"code": "leading_people", "weight": 15, "requirements": ["Develop the leadership team."]},
    {"code": "business_acumen", "weight": 15, "requirements": ["Execute the budget."]},
    {"code": "building_coalitions", "weight": 15, "requirements": ["Partner with states."]},
    {
        "code": "results_driven",
        "weight": 40,
        "requirements": ["Cut processing time 20% by Sep 30 (measure: days; target: 12)."],
    },
]


def fresh_app(tmp: Path, url: str | None, clock: Callable[[], datetime]) -> Iterator[LedgerApp]:
    """A new ledger under `tmp` (SQLite there unless `url`) on `clock`, closed after use: the
    oracle tests' one-example ledgers (`for app in fresh_app(...)`)."""
    home = tmp / "home"
    KeyRing(home).init()
    app = LedgerApp(LedgerConfig(home=home, db_url=url or f"sqlite:///{tmp / 'l.db'}"), clock=clock)
    try:
        yield app
    finally:
        app.close()


def point_cli_at(monkeypatch: pytest.MonkeyPatch, config: LedgerConfig) -> LedgerConfig:
    """The environment of the in-process command line: `config`'s home and store, and the
    default origin."""
    monkeypatch.setenv("SES_LEDGER_HOME", str(config.home))
    monkeypatch.setenv("SES_LEDGER_DB", config.db_url)
    monkeypatch.delenv("SES_LEDGER_ORIGIN", raising=False)
    return config


def register(
    app: LedgerApp,
    executive_id: str = "E1",
    agency: str = "DOE",
    idempotency: tuple[str, str, str] | None = None,
    actor: str = "hr-1",
    submitted_by: str = "hr-app-1",
) -> CommandResult:
    return app.register_executive(
        executive_id,
        name="Pat Example",
        title="Deputy Assistant Secretary",
        pay_plan="ES",
        agency=agency,
        duty_station="Washington, DC",
        appointment_type="career",
        probationary=False,
        appointed_on=date(2019, 5, 1),
        actor=actor,
        submitted_by=submitted_by,
        idempotency=idempotency,
    )


def plan(app: LedgerApp, appraisal_id: str = "A-2024-E1", executive_id: str = "E1") -> None:
    app.set_plan(
        appraisal_id,
        executive_id=executive_id,
        policy="ses-basic-2012",
        period_start=date(2023, 10, 1),
        period_end=date(2024, 9, 30),
        rating_official_id="R1",
        communicated_on=date(2023, 10, 1),
        elements=BASIC_ELEMENTS,
        submitted_by="hr-app-1",
    )


def review(
    app: LedgerApp,
    appraisal_id: str = "A-2024-E1",
    day: date = date(2024, 3, 15),
    expected_version: int | None = None,
) -> Any:
    return app.appraisal_command(
        appraisal_id,
        "review_progress",
        submitted_by="hr-app-1",
        actor="R1",
        expected_version=expected_version,
        reviewed_on=day,
        reviewer_id="R1",
        notes="Mid-year review held.",
    )


def table(config: LedgerConfig, name: str) -> str:
    """A table of the store by name, qualified with the PostgreSQL test schema."""
    if config.is_postgres:
        return f'"{config.db_url.split("schema=")[1]}".{name}'
    return name


def events_table(config: LedgerConfig) -> str:
    return table(config, "sesledger_events" if config.is_postgres else "stored_events")


def raw(config: LedgerConfig, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """Run SQL directly against the store, as someone with database access could."""
    if config.is_postgres:
        import psycopg

        url = config.db_url.split("?")[0]
        with psycopg.connect(url, autocommit=True) as conn:
            cur = conn.execute(sql.replace("?", "%s"), params)
            return list(cur.fetchall()) if cur.description else []
    path = config.db_url[len("sqlite:///") :]
    conn = sqlite3.connect(path)
    try:
        cur = conn.execute(sql, params)
        rows = cur.fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


def write_no_ledger(path: Path, content: str) -> None:
    """An SQLite file that holds no ledger: `empty-file`, or another program's database."""
    if content == "empty-file":
        path.write_bytes(b"")
        return
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE patients (name TEXT)")
        db.commit()
