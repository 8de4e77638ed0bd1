"""`api.projector.Projector`: with several server processes on one SQLite file, one projects
and the others wait for it; if it stops, another takes over. Two projectors in one process
stand for two processes here: `flock` locks belong to open files, so they exclude each
other just the same."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from api.projector import Projector
from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from projections.queries import ReadModels
from tests.ledger_helpers import register


def _until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_one_process_projects_and_the_others_wait_for_it(
    sqlite_config: LedgerConfig, tmp_path: Path
) -> None:
    lock = tmp_path / "ledger.db.projector.lock"
    first_app, second_app = LedgerApp(sqlite_config), LedgerApp(sqlite_config)
    first_models, second_models = ReadModels(first_app), ReadModels(second_app)
    follower_catch_ups: list[int] = []
    catch_up = second_models.catch_up

    def counted() -> int:
        follower_catch_ups.append(1)
        return catch_up()

    second_models.catch_up = counted  # type: ignore[method-assign]
    first = Projector(lambda: first_models, threading.Lock(), 0.2, leader_lock=lock)
    second = Projector(lambda: second_models, threading.Lock(), 0.2, leader_lock=lock)
    first.start()
    assert _until(lambda: first.leading)
    second.start()
    try:
        register(second_app, "E1")  # written by the process that does not project
        second.written(int(second_app.recorder.max_notification_id() or 0))
        assert second.ready(timeout=5).executive("E1") is not None  # read-your-writes
        assert first.leading and not second.leading
        assert second_models.runner.positions() == first_models.runner.positions()
        assert follower_catch_ups == []  # it only read the positions the other wrote

        first.stop()  # the projecting process goes: the other takes over
        register(second_app, "E2")
        second.written(int(second_app.recorder.max_notification_id() or 0))
        assert second.ready(timeout=5).executive("E2") is not None
        assert second.leading and follower_catch_ups
    finally:
        first.stop()
        second.stop()


def test_without_a_lock_file_every_projector_projects(sqlite_config: LedgerConfig) -> None:
    """One process, or PostgreSQL: no lock file, the projector always catches up itself."""
    app = LedgerApp(sqlite_config)
    models = ReadModels(app)
    projector = Projector(lambda: models, threading.Lock(), 0.2)
    projector.start()
    try:
        assert projector.leading
        register(app, "E1")
        projector.written(int(app.recorder.max_notification_id() or 0))
        assert projector.ready(timeout=5).executive("E1") is not None
    finally:
        projector.stop()
