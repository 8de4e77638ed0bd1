"""`ledger.write_gate.WriteGate`: one SQLite writer at a time across threads and server processes,
held only while a write stores (`LedgerApp.record_gate`). Two gates on one file stand for two
processes: `flock` locks belong to open files, so they exclude each other just the same."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from ledger.write_gate import WriteGate, write_gate
from tests.ledger_helpers import register


def test_a_second_process_waits_for_the_first_to_leave(tmp_path: Path) -> None:
    first, second = WriteGate(tmp_path / "w.lock"), WriteGate(tmp_path / "w.lock")
    entered = threading.Event()

    def other() -> None:
        with second:
            entered.set()

    with first:
        thread = threading.Thread(target=other)
        thread.start()
        assert not entered.wait(0.3)  # blocked on the file lock
    assert entered.wait(5)  # woken as soon as it was released
    thread.join()


def test_threads_of_one_process_take_turns(tmp_path: Path) -> None:
    gate = WriteGate(tmp_path / "w.lock")
    inside, most = 0, 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal inside, most
        for _ in range(50):
            with gate:
                with lock:
                    inside += 1
                    most = max(most, inside)
                with lock:
                    inside -= 1

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 1


class _Gate:
    def __init__(self) -> None:
        self.entered = 0
        self.inside = False

    def __enter__(self) -> None:
        self.entered += 1
        self.inside = True

    def __exit__(self, *_exc: object) -> None:
        self.inside = False


def test_a_command_holds_the_gate_only_while_it_stores(sqlite_config: LedgerConfig) -> None:
    app = LedgerApp(sqlite_config)
    gate = _Gate()
    app.record_gate = gate
    sealed_inside: list[bool] = []
    seal = app._seal

    def watched(aggregate: Any) -> None:
        sealed_inside.append(gate.inside)
        seal(aggregate)

    app._seal = watched  # type: ignore[method-assign]
    register(app, "E1")
    assert gate.entered == 1  # the one write passed the gate
    assert sealed_inside == [False]  # sealing (and judging) happened outside it
    assert app.executive("E1").version == 1


def test_without_a_lock_file_the_gate_still_serialises_threads(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A lock file that cannot be made (here: no such directory) is reported once; the
    thread lock still holds, and workers meet in SQLite's busy handler instead."""
    gate = WriteGate(tmp_path / "missing" / "w.lock")
    with caplog.at_level(logging.WARNING, logger="ses_ledger.ledger"):
        with gate:
            assert gate._lock.locked()
        with gate:
            pass
    assert [r.getMessage() for r in caplog.records if "no write lock file" in r.getMessage()]
    assert len(caplog.records) == 1
    assert not gate._lock.locked()


def test_one_gate_per_file_in_a_process_shared_by_the_appends_and_the_read_models(
    sqlite_config: LedgerConfig,
) -> None:
    """The gate is not re-entrant: every user in a process of one SQLite file gets the same
    one (two would still exclude each other through `flock`)."""
    from projections.queries import ReadModels

    first, second = LedgerApp(sqlite_config), LedgerApp(sqlite_config)
    gate = write_gate(first)
    assert isinstance(gate, WriteGate)
    assert write_gate(second) is gate
    assert ReadModels(second).runner.gate is gate


@pytest.mark.slow
def test_ses_ledger_project_queues_its_writes_behind_the_gate(
    sqlite_config: LedgerConfig, tmp_path: Path
) -> None:
    """`ses-ledger project` (another process) writes the read models only through the write
    gate: while a server worker holds it, the projector waits, then goes on at once."""
    import subprocess
    import time

    from tests.api.server import CLI, ledger_env

    register(LedgerApp(sqlite_config), "E1")  # something to project
    env = ledger_env(sqlite_config.home, sqlite_config.db_url)
    held = WriteGate(tmp_path / "ledger.db.write.lock")  # as another process's gate
    with held:
        projector = subprocess.Popen(
            [*CLI, "project"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        time.sleep(3)
        assert projector.poll() is None  # read and applied, waiting to write
    started = time.monotonic()
    out, _ = projector.communicate(timeout=60)
    assert projector.returncode == 0, out
    assert time.monotonic() - started < 10
    assert b"positions: current_ratings 1" in out


@pytest.mark.slow
def test_ses_ledger_demo_queues_its_writes_behind_the_gate(
    sqlite_config: LedgerConfig, tmp_path: Path
) -> None:
    """`ses-ledger demo` beside a server stores through the same gate: while a worker holds
    it, the demo stores nothing, then goes on at once."""
    import subprocess
    import time

    from tests.api.server import CLI, ledger_env

    LedgerApp(sqlite_config)  # the store exists
    # a home of its own: the demo refuses a key made now (`keys init`, as the fixture's is)
    env = ledger_env(tmp_path / "demo-home", sqlite_config.db_url)
    held = WriteGate(tmp_path / "ledger.db.write.lock")  # as another process's gate
    with held:
        demo = subprocess.Popen(
            [*CLI, "demo", "--executives", "2", "--years", "1"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        time.sleep(3)
        assert demo.poll() is None  # waiting to store its first event
        assert LedgerApp(sqlite_config).recorder.max_notification_id() in (None, 0)
    started = time.monotonic()
    out, _ = demo.communicate(timeout=60)
    assert demo.returncode == 0, out
    assert time.monotonic() - started < 20
    assert (LedgerApp(sqlite_config).recorder.max_notification_id() or 0) > 2
