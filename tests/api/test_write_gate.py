"""`api.services.WriteGate`: one SQLite writer at a time across threads and server processes,
held only while a write stores (`LedgerApp.record_gate`). Two gates on one file stand for two
processes: `flock` locks belong to open files, so they exclude each other just the same."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import pytest

from api.services import WriteGate
from ledger.application import LedgerApp
from ledger.config import LedgerConfig
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
    with caplog.at_level(logging.WARNING, logger="ses_ledger.api"):
        with gate:
            assert gate._lock.locked()
        with gate:
            pass
    assert [r.getMessage() for r in caplog.records if "no write lock file" in r.getMessage()]
    assert len(caplog.records) == 1
    assert not gate._lock.locked()
