"""A real projector process killed mid-rebuild (SIGKILL) resumes to the same state.

The history comes from the demo generator (the real commands); the expected digest is
computed from a private in-memory replay, never from the tables under test.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest

from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from projections.queries import ReadModels
from ses_ledger.demo import SimulatedClock, run_demo
from tests.ledger_helpers import raw, table

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def cli(config: LedgerConfig, *args: str, app_name: str = "") -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "SES_LEDGER_HOME": str(config.home),
        "SES_LEDGER_DB": config.db_url,
        "PYTHONPATH": str(ROOT),
        "PGAPPNAME": app_name or "ses-ledger-projections-test",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "ses_ledger.cli", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def tracked(config: LedgerConfig) -> dict[str, int]:
    try:
        rows = raw(config, f"SELECT name, position FROM {table(config, 'proj_tracking')}")
        return {str(n): int(p) for n, p in rows}
    except Exception:  # noqa: BLE001 - the table does not exist yet
        return {}


@pytest.fixture
def demo_app(ledger_config: LedgerConfig) -> LedgerApp:
    clock = SimulatedClock()
    app = LedgerApp(ledger_config, clock=clock)
    run_demo(app, clock, executives=40, years=3, seed=7, batch_per_appraisal=True)
    return app


def test_killed_rebuild_resumes_to_the_same_digest(
    demo_app: LedgerApp, ledger_config: LedgerConfig
) -> None:
    head = demo_app.recorder.max_notification_id()
    expected = ReadModels(demo_app).as_of(position=head).digest()

    worker = cli(ledger_config, "projections", "rebuild", "--quiet", "--batch-size", "4")
    deadline = time.monotonic() + 60
    positions: dict[str, int] = {}
    while time.monotonic() < deadline and worker.poll() is None:
        positions = tracked(ledger_config)
        if positions and 0 < min(positions.values()) < head:
            break
        time.sleep(0.002)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=30)
    assert worker.returncode == -signal.SIGKILL, "killed before it could finish"
    stopped_at = tracked(ledger_config)
    assert 0 < min(stopped_at.values()) < head, stopped_at

    resumed = cli(ledger_config, "project", "--batch-size", "50", "--digest")
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    printed = dict(
        fields
        for fields in map(str.split, out.splitlines())
        if len(fields) == 2 and len(fields[1]) == 64  # "name  <sha-256 hex>"
    )
    assert printed == expected
    assert ReadModels(demo_app).digest() == expected


def test_follow_worker_stops_cleanly_on_sigterm(
    demo_app: LedgerApp, ledger_config: LedgerConfig
) -> None:
    head = demo_app.recorder.max_notification_id()
    worker = cli(ledger_config, "project", "--follow", "--interval", "0.05")
    wait_for(ledger_config, head)
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert f"current_ratings {head}" in out


def test_follow_worker_survives_lost_connections(
    demo_app: LedgerApp, ledger_config: LedgerConfig
) -> None:
    if not ledger_config.is_postgres:
        pytest.skip("connections are only lost on PostgreSQL")
    name = f"ses-follow-{uuid.uuid4().hex[:8]}"
    head = demo_app.recorder.max_notification_id()
    worker = cli(ledger_config, "project", "--follow", "--interval", "0.05", app_name=name)
    try:
        wait_for(ledger_config, head)
        killed = raw(
            ledger_config,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = ?",
            [name],
        )
        assert killed, "the worker holds connections"
        demo_app.register_executive(
            "LATE-1",
            name="Late Arrival",
            title="Director",
            pay_plan="ES",
            agency="DOE",
            duty_station="Denver, CO",
            appointment_type="career",
            probationary=False,
            appointed_on=date(2026, 1, 5),
            actor="hr-1",
            submitted_by="hr-app-1",
        )
        wait_for(ledger_config, head + 1)
        assert ReadModels(demo_app).executive("LATE-1") is not None
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err


def wait_for(config: LedgerConfig, position: int, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        positions = tracked(config)
        if positions and min(positions.values()) >= position:
            return
        time.sleep(0.05)
    raise AssertionError(f"projections did not reach {position}: {tracked(config)}")


class _OneRound(threading.Event):
    """A stop flag set at `follow`'s first idle wait: one catch-up, then the worker stops."""

    def wait(self, timeout: float | None = None) -> bool:
        self.set()
        return True


def test_follow_worker_logs_its_progress_on_a_long_catch_up(
    demo_app: LedgerApp,
    ledger_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An operator watching `project --follow` (docker compose logs projector) after a
    version change, a restore or a long outage sees how far the catch-up has got, not
    only "following the ledger" for as long as it reads the whole log."""
    from ses_ledger import cli, cli_projections

    head = int(demo_app.recorder.max_notification_id() or 0)
    monkeypatch.setenv("SES_LEDGER_HOME", str(ledger_config.home))
    monkeypatch.setenv("SES_LEDGER_DB", ledger_config.db_url)
    monkeypatch.setattr(cli_projections, "PROGRESS_EVERY", 0.0)  # a line after every batch

    @contextmanager
    def one_round() -> Iterator[threading.Event]:
        yield _OneRound()

    monkeypatch.setattr(cli_projections, "_stop_on_signals", one_round)
    with caplog.at_level(logging.INFO, logger="ses_ledger.projector"):
        assert cli.main(["project", "--follow", "--batch-size", "100"]) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "ses_ledger.projector"]
    behind = [line for line in lines if line.startswith("catching up: position ")]
    assert len(behind) >= head // 100 - 1, lines
    assert f"of {head} (" in behind[0], behind[0]
    assert lines[-1] == f"caught up: position {head}", lines


def test_an_interrupted_one_shot_catch_up_exits_130_not_0(
    demo_app: LedgerApp,
    ledger_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`ses-ledger project` (no --follow) stopped by SIGTERM or Ctrl-C before it caught up
    exited 0 after printing the positions it had reached, so a script or cron job took the
    read models for current (found: SIGTERM 0.9 s into a 122,037-event catch-up, exit 0 at
    position 66,000); `--help` documents 130 for an interrupted command, as
    `projections rebuild` exits."""
    from ses_ledger import cli, cli_projections

    head = int(demo_app.recorder.max_notification_id() or 0)
    monkeypatch.setenv("SES_LEDGER_HOME", str(ledger_config.home))
    monkeypatch.setenv("SES_LEDGER_DB", ledger_config.db_url)

    @contextmanager
    def signalled() -> Iterator[threading.Event]:
        stop = threading.Event()
        stop.set()  # the signal arrived before the first batch
        yield stop

    monkeypatch.setattr(cli_projections, "_stop_on_signals", signalled)
    assert cli.main(["project"]) == 130
    out = capsys.readouterr().out
    assert f"interrupted: the read models stand at position 0 of {head}" in out, out
