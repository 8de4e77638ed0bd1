"""`api.projector.Projector`: with several server processes on one SQLite file, one projects
and the others wait for it; if it stops, another takes over. Two projectors in one process
stand for two processes here: `flock` locks belong to open files, so they exclude each
other just the same."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from api.projector import FileLeadership, PostgresLeadership, Projector
from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from ledger.errors import StoreUnreachable
from projections.queries import ReadModels
from tests.ledger_helpers import plan, register, review


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

    def while_following() -> None:
        assert second_models.runner.positions() == first_models.runner.positions()
        assert follower_catch_ups == []  # it only read the positions the other wrote

    _hand_over(
        Projector(lambda: first_models, 0.2, leader_lock=FileLeadership(lock)),
        Projector(lambda: second_models, 0.2, leader_lock=FileLeadership(lock)),
        second_app,
        while_following,
    )
    assert follower_catch_ups  # it projected once it led


def _hand_over(
    first: Projector,
    second: Projector,
    second_app: LedgerApp,
    while_following: Callable[[], None] = lambda: None,
) -> None:
    """`first` leads; `second`, which does not project, reads its own writes from what
    `first` projected; once `first` stops, `second` leads and projects them itself."""
    first.start()
    assert _until(lambda: first.leading)
    second.start()
    try:
        register(second_app, "E1")  # written by the process that does not project
        second.written(int(second_app.recorder.max_notification_id() or 0))
        assert second.ready(timeout=5).executive("E1") is not None  # read-your-writes
        assert first.leading and not second.leading
        while_following()
        first.stop()  # the projecting process (and its lock) goes: the other takes over
        register(second_app, "E2")
        second.written(int(second_app.recorder.max_notification_id() or 0))
        assert second.ready(timeout=5).executive("E2") is not None
        assert second.leading
    finally:
        first.stop()
        second.stop()


@pytest.mark.postgres
def test_on_postgresql_one_process_projects_too(pg_schema_url: str, tmp_path: Path) -> None:
    """The leadership lock is an advisory lock there (`api.services.projector_lock`): one
    server process projects, the others read its positions; if it stops, another leads."""
    from api.services import projector_lock
    from ledger.keys import KeyRing

    home = tmp_path / "home"
    KeyRing(home).init()
    config = LedgerConfig(home=home, db_url=pg_schema_url)
    first_app, second_app = LedgerApp(config), LedgerApp(config)
    first_models, second_models = ReadModels(first_app), ReadModels(second_app)
    _hand_over(
        Projector(lambda: first_models, 0.2, leader_lock=projector_lock(first_app)),
        Projector(lambda: second_models, 0.2, leader_lock=projector_lock(second_app)),
        second_app,
    )


def _two_processes_on_postgresql(
    pg_schema_url: str, tmp_path: Path
) -> tuple[tuple[LedgerApp, LedgerApp], list[Any], Projector, Projector]:
    """Two processes' apps on one PostgreSQL schema, each with its projector (not started)
    and the advisory lock that decides which of them projects."""
    from api.projector import PostgresLeadership
    from api.services import projector_lock
    from ledger.keys import KeyRing

    home = tmp_path / "home"
    KeyRing(home).init()
    config = LedgerConfig(home=home, db_url=pg_schema_url)
    apps = LedgerApp(config), LedgerApp(config)
    models = [ReadModels(app) for app in apps]
    locks = [projector_lock(app) for app in apps]
    assert all(isinstance(lock, PostgresLeadership) for lock in locks)
    first, second = (
        Projector(lambda m=m: m, 0.2, leader_lock=lock)  # type: ignore[misc]
        for m, lock in zip(models, locks, strict=True)
    )
    return apps, locks, first, second


@pytest.mark.postgres
def test_on_postgresql_a_lost_lock_connection_leaves_one_process_projecting(
    pg_schema_url: str, tmp_path: Path
) -> None:
    """The advisory lock goes with its session: when the leader's lock connection is cut,
    the lock is free for the other process, and the leader notices within `interval`, so
    exactly one of them projects afterwards (before, both did)."""
    import psycopg

    apps, locks, first, second = _two_processes_on_postgresql(pg_schema_url, tmp_path)
    first.start()
    assert _until(lambda: first.leading)
    second.start()
    try:
        time.sleep(0.3)
        assert first.leading and not second.leading
        pid = locks[0]._conn.info.backend_pid
        dsn = pg_schema_url.split("?")[0]
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))

        def moved_on() -> bool:  # the other took the lock, or the first took it anew
            conn = locks[0]._conn
            return second.leading or conn is None or conn.info.backend_pid != pid

        assert _until(moved_on)
        time.sleep(1.0)  # several intervals: whoever leads now keeps leading alone
        assert first.leading != second.leading
        register(apps[1], "E1")
        second.written(int(apps[1].recorder.max_notification_id() or 0))
        assert second.ready(timeout=5).executive("E1") is not None
    finally:
        first.stop()
        second.stop()


@pytest.mark.postgres
def test_on_postgresql_a_follower_whose_lock_connection_was_cut_follows_again(
    pg_schema_url: str, tmp_path: Path
) -> None:
    """A waiting process whose advisory-lock connection ended (a PostgreSQL restart cuts
    every one) opens a new one: it kept calling `pg_try_advisory_lock` on the dead
    connection, so it never saw the leader's progress again (every read after its own
    write waited out its 10 s timeout, a traceback was logged twice a second, and it could
    never take over the projecting)."""
    import psycopg

    apps, locks, first, second = _two_processes_on_postgresql(pg_schema_url, tmp_path)
    first.start()
    assert _until(lambda: first.leading)
    second.start()
    try:
        assert _until(lambda: locks[1]._conn is not None)
        assert not second.leading
        pid = locks[1]._conn.info.backend_pid
        with psycopg.connect(pg_schema_url.split("?")[0], autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        time.sleep(0.5)  # a few rounds on the cut connection
        register(apps[1], "E1")
        second.written(int(apps[1].recorder.max_notification_id() or 0), "E1")
        started = time.monotonic()
        assert second.ready(timeout=5, executive_id="E1").executive("E1") is not None
        assert time.monotonic() - started < 4
        first.stop()  # the leader goes: the follower takes over
        assert _until(lambda: second.leading)
    finally:
        first.stop()
        second.stop()


def test_without_a_lock_file_every_projector_projects(sqlite_config: LedgerConfig) -> None:
    """One process, or PostgreSQL: no lock file, the projector always catches up itself."""
    app = LedgerApp(sqlite_config)
    models = ReadModels(app)
    projector = Projector(lambda: models, 0.2)
    projector.start()
    try:
        assert projector.leading
        register(app, "E1")
        projector.written(int(app.recorder.max_notification_id() or 0))
        assert projector.ready(timeout=5).executive("E1") is not None
    finally:
        projector.stop()


class _HeldModels:
    """Read models whose catch-up reaches `position` only once `release` is set."""

    def __init__(self) -> None:
        self.position = 0
        self.release = threading.Event()

    def catch_up(self) -> int:
        self.release.wait(5)
        return self.position


def test_a_read_waits_for_the_writes_to_the_record_it_reads_not_for_others() -> None:
    """Read-your-writes per executive (`api.projector`): a write to E1's record holds up
    reads of E1 and reports until it is projected, not reads of E2."""
    models = _HeldModels()
    projector = Projector(lambda: models, 0.05)
    projector.start()
    try:
        projector.written(5, "E1")
        assert projector.ready_nowait("E1") is None
        assert projector.ready_nowait() is None  # a report: every write
        assert projector.ready_nowait("E2") is models
        assert projector.ready(timeout=5, executive_id="E2") is models
        models.position = 5
        models.release.set()
        assert projector.ready(timeout=5, executive_id="E1") is models
        assert projector.ready_nowait("E1") is models and projector.ready_nowait() is models
    finally:
        models.release.set()
        projector.stop()


def test_a_write_outside_any_executive_record_holds_up_reports_only() -> None:
    """A review board or waiver write (no executive): reports wait for it, records do not."""
    models = _HeldModels()
    projector = Projector(lambda: models, 0.05)
    projector.start()
    try:
        projector.written(3)
        assert projector.ready_nowait() is None
        assert projector.ready_nowait("E1") is models
    finally:
        models.release.set()
        projector.stop()


def test_a_command_names_the_executive_whose_record_it_wrote(sqlite_config: LedgerConfig) -> None:
    """What the API passes to `Projector.written`: the appraisal's executive, or the
    executive itself."""
    app = LedgerApp(sqlite_config)
    register(app, "E1")
    plan(app, "A-2024-E1", "E1")
    assert review(app, "A-2024-E1").executive_id == "E1"
    complaint = app.record_complaint(
        "E1", forum="EEOC", filed_on=date(2024, 5, 1), summary="s", actor="E1", submitted_by="E1"
    )
    assert complaint.executive_id == "E1"


class _Source:
    def __init__(self) -> None:
        self.position = 0

    def head(self) -> int:
        return self.position


class _LogModels:
    """Read models over a log whose head is `source.position`; catch-up reaches it."""

    def __init__(self) -> None:
        self.source = _Source()
        self.runner = self  # `read_models.runner.source`, as `ReadModels` has
        self.catch_ups = 0

    def catch_up(self) -> int:
        self.catch_ups += 1
        return self.source.position


def test_the_projecting_process_catches_up_only_for_new_events(tmp_path: Path) -> None:
    """It looks for other workers' events every `poll` seconds by the log's head, and
    catches up (whose writes take the gate their appends wait for) only when there is
    something."""
    models = _LogModels()
    lock = FileLeadership(tmp_path / "ledger.db.projector.lock")
    projector = Projector(lambda: models, 5.0, leader_lock=lock)
    projector.start()
    try:
        assert _until(lambda: models.catch_ups == 1)
        time.sleep(0.2)  # about 60 polls
        assert models.catch_ups == 1
        models.source.position = 7  # another worker wrote
        assert _until(lambda: models.catch_ups == 2)
        projector.written(9)  # this process wrote
        models.source.position = 9
        assert projector.ready(timeout=5) is models and models.catch_ups == 3
    finally:
        projector.stop()


class _FailingModels:
    """Read models whose catch-up fails `failures` times (a store hiccup), then works."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or RuntimeError("store hiccup")
        self.calls = 0

    def catch_up(self) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return 7


class _UnreachableModels:
    """Read models whose catch-up cannot reach the store while `down` is set."""

    def __init__(self) -> None:
        self.down = True

    def catch_up(self) -> int:
        if self.down:
            raise StoreUnreachable("no connection to the PostgreSQL store within 5 s")
        return 7


def test_a_read_waiting_while_the_store_cannot_be_reached_is_refused_at_once() -> None:
    """docs/api.md, "When PostgreSQL goes away": a read waiting for this process's writes
    is answered (503, `StoreUnreachable`) as soon as a round of the projecting thread fails
    to reach the store; before, it waited out its 10 s and then its own wait for the store
    (a report took 12 s to say the database was down). Once the store is back, reads are
    served again: an earlier failure does not refuse them."""
    models = _UnreachableModels()
    projector = Projector(lambda: models, 0.2)
    projector.start()
    try:
        projector.written(7, "E1")
        started = time.monotonic()
        with pytest.raises(StoreUnreachable):
            projector.ready(timeout=10, executive_id="E1")
        assert time.monotonic() - started < 2
        models.down = False
        time.sleep(0.6)  # a round or two: the store is back
        started = time.monotonic()
        assert projector.ready(timeout=10, executive_id="E1") is models
        assert time.monotonic() - started < 1
    finally:
        projector.stop()


class _Refused(Exception):
    """Stands for psycopg's OperationalError ("Connection refused")."""


def test_the_projector_locks_connection_refused_is_store_unreachable_not_a_traceback() -> None:
    """While PostgreSQL was down, the projecting thread's attempt to open the projector
    lock's connection failed with the driver's own error, which it logged with a traceback
    twice a second; it is `StoreUnreachable` now, a ConnectionError, logged in one line and
    retried (as for the pool's connections). Other errors stay what they are."""

    def refused() -> Any:
        raise _Refused("connection refused")

    leadership = PostgresLeadership(refused, "s", lost=(_Refused,))
    with pytest.raises(StoreUnreachable, match="connection refused") as caught:
        leadership.try_acquire()
    assert isinstance(caught.value, ConnectionError)

    def broken() -> Any:
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        PostgresLeadership(broken, "s", lost=(_Refused,)).try_acquire()


def test_a_failed_catch_up_is_logged_and_retried_and_reads_are_still_served(
    caplog: pytest.LogCaptureFixture,
) -> None:
    models = _FailingModels(failures=2)
    projector = Projector(lambda: models, 0.05)
    with caplog.at_level("ERROR", logger="ses_ledger.api"):
        projector.start()
        try:
            projector.written(7, "E1")
            assert projector.ready(timeout=5, executive_id="E1") is models
            assert models.calls >= 3 and projector.running
            assert projector.ready_nowait("E1") is models
        finally:
            projector.stop()
    assert caplog.text.count("projection catch-up failed") == 2


def test_a_lost_database_connection_is_one_log_line_not_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An operator's `pg_terminate_backend` (or a PostgreSQL restart) under a running server:
    the projecting thread retries, and says so in one line as `project --follow` does, not
    with a traceback per round that reads like a crash (found killing serve's backends)."""
    from eventsourcing.persistence import OperationalError

    lost = OperationalError(
        "consuming input failed: server closed the connection unexpectedly\n"
        "\tThis probably means the server terminated abnormally"
    )
    models = _FailingModels(failures=2, error=lost)
    projector = Projector(lambda: models, 0.05)
    with caplog.at_level("ERROR", logger="ses_ledger.api"):
        projector.start()
        try:
            projector.written(7, "E1")
            assert projector.ready(timeout=5, executive_id="E1") is models
        finally:
            projector.stop()
    failed = [r for r in caplog.records if "projection catch-up failed" in r.getMessage()]
    assert len(failed) == 2, caplog.text
    assert all(r.exc_info is None for r in failed), caplog.text
    assert failed[0].getMessage() == (
        "projection catch-up failed: consuming input failed: server closed the connection "
        "unexpectedly This probably means the server terminated abnormally; retrying in 0.05s"
    )


def test_a_read_that_waits_too_long_is_served_as_it_stands_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    models = _HeldModels()
    projector = Projector(lambda: models, 0.05)
    projector.start()
    try:
        projector.written(9, "E1")
        with caplog.at_level("WARNING", logger="ses_ledger.api"):
            started = time.monotonic()
            assert projector.ready(timeout=0.2, executive_id="E1") is models
        assert 0.2 <= time.monotonic() - started < 3
        assert "read models are 9 events behind" in caplog.text
    finally:
        models.release.set()
        projector.stop()
