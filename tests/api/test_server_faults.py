"""Faults on the server's side: a store that is busy or gone answers 503 with Retry-After
(nothing recorded, and the retry is safe); anything unforeseen answers a bare 500 problem
that tells the client nothing of the server's insides."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import anyio.to_thread
import pytest
from eventsourcing.persistence import InterfaceError, InternalError, OperationalError

from api.errors import SHORT_OF_RESOURCES_WRITE, SIGNING_KEY_UNAVAILABLE, WRITE_OUTCOME_UNKNOWN
from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from tests.api import story as s
from tests.api.conftest import make_api
from tests.api.story import Api
from tests.ledger_helpers import events_table, raw

PROBLEM = "application/problem+json"


@pytest.fixture
def served(sqlite_config: LedgerConfig) -> Iterator[tuple[Api, LedgerApp]]:
    """The API answering server errors instead of raising them into the test, and its
    ledger."""
    for api in make_api(sqlite_config, raise_server_exceptions=False):
        yield api, api.client.app.state.services.ledger  # type: ignore[attr-defined]


def _fail_once(monkeypatch: pytest.MonkeyPatch, target: Any, name: str, exc: Exception) -> None:
    real = getattr(target, name)
    calls = {"n": 0}

    def failing(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise exc
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, failing)


def test_a_busy_store_is_503_with_retry_after_and_the_retry_records_once(
    served: tuple[Api, LedgerApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, ledger = served
    head = ledger.recorder.max_notification_id() or 0
    _fail_once(
        monkeypatch, ledger.recorder, "insert_events", OperationalError("database is locked")
    )
    headers = {**api.hr, "Idempotency-Key": "retry-me"}
    body = s.executive("E-BUSY")
    r = api.post("/v1/executives", body, headers)
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == PROBLEM and r.headers["retry-after"] == "1"
    problem = r.json()
    assert problem["type"] == "urn:ses-ledger:problem:unavailable"
    assert "nothing was recorded" in problem["detail"]
    assert (ledger.recorder.max_notification_id() or 0) == head
    again = api.post("/v1/executives", body, headers)
    assert again.status_code == 201, again.text
    assert (ledger.recorder.max_notification_id() or 0) == head + 1
    replayed = api.post("/v1/executives", body, headers)
    assert replayed.status_code == 201 and replayed.json() == again.json()
    assert (ledger.recorder.max_notification_id() or 0) == head + 1


def test_an_unforeseen_error_is_a_bare_500_problem(
    served: tuple[Api, LedgerApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, ledger = served
    secret = "connection string postgresql://svc:hunter2@db"
    _fail_once(monkeypatch, ledger, "register_executive", RuntimeError(secret))
    r = api.post("/v1/executives", s.executive("E-BOOM"))
    assert r.status_code == 500
    assert r.headers["content-type"] == PROBLEM
    problem = r.json()
    assert problem["type"] == "urn:ses-ledger:problem:internal-error"
    assert problem["status"] == 500 and "hunter2" not in r.text
    assert api.post("/v1/executives", s.executive("E-BOOM")).status_code == 201


def test_a_record_whose_stored_events_do_not_verify_is_a_500_ledger_integrity_problem(
    served: tuple[Api, LedgerApp],
) -> None:
    """Someone with database access relabels the plan's row as another event type: the next
    write to that appraisal loads it, refuses it, and appends nothing."""
    api, ledger = served
    appraisal = api.appraisal("planned")
    head = ledger.recorder.max_notification_id() or 0
    config = ledger.config
    raw(
        config,
        f"UPDATE {events_table(config)} SET topic = ? "
        "WHERE originator_id = ? AND originator_version = 1",
        ("ProgressReviewed", appraisal.appraisal_id),
    )
    r = api.post(f"/v1/appraisals/{appraisal.appraisal_id}/progress-reviews", s.review(2024))
    assert r.status_code == 500, r.text
    assert r.headers["content-type"] == PROBLEM
    problem = r.json()
    assert problem["type"] == "urn:ses-ledger:problem:ledger-integrity"
    assert problem["detail"] == (
        f"{appraisal.appraisal_id} version 1 is stored as 'ProgressReviewed', but its sealed "
        "entry is 'PlanSet'"
    )
    assert (ledger.recorder.max_notification_id() or 0) == head


def test_a_stored_event_that_cannot_be_read_is_a_500_ledger_integrity_problem(
    served: tuple[Api, LedgerApp],
) -> None:
    """Someone with database access cuts an appraisal's stored plan short (or writes
    anything else that is not a stored entry): every read that needs it answered a bare
    500 "the server failed unexpectedly" (a ValueError from parsing the state); it is
    stored data that cannot be read, the documented `ledger-integrity` problem (docs/api.md,
    Errors), as `ses-ledger verify` names it, and nothing is appended."""
    api, ledger = served
    appraisal = api.appraisal("planned")
    config = ledger.config
    events = api.get(f"/v1/appraisals/{appraisal.appraisal_id}/events", api.hr).json()
    position = events["events"][0]["position"]
    raw(
        config,
        f"UPDATE {events_table(config)} SET state = substr(state, 1, 40) "
        "WHERE originator_id = ? AND originator_version = 1",
        (appraisal.appraisal_id,),
    )
    head = ledger.recorder.max_notification_id() or 0
    for path, headers in (
        (f"/v1/appraisals/{appraisal.appraisal_id}/events", api.hr),
        (f"/v1/ledger/events?after={position - 1}", api.auditor),
        (f"/v1/ledger/receipts/{position}", api.auditor),
        (f"/v1/reports/audit-trail?appraisal_id={appraisal.appraisal_id}", api.auditor),
        (f"/v1/reports/compliance?as_of_position={position}", api.auditor),
    ):
        r = api.client.get(path, headers=headers)
        assert r.status_code == 500 and r.headers["content-type"] == PROBLEM, (path, r.text)
        assert r.json()["type"] == "urn:ses-ledger:problem:ledger-integrity", (path, r.text)
    r = api.post(f"/v1/appraisals/{appraisal.appraisal_id}/progress-reviews", s.review(2024))
    assert r.status_code == 500 and r.json()["type"].endswith(":ledger-integrity"), r.text
    assert (ledger.recorder.max_notification_id() or 0) == head


def test_an_unloadable_signing_key_is_503_and_nothing_is_recorded(
    served: tuple[Api, LedgerApp],
) -> None:
    api, ledger = served
    for pem in (ledger.config.home / "keys").glob("*.pem"):
        pem.unlink()  # before the first write loads it
    r = api.post("/v1/executives", s.executive("E-NO-KEY"))
    assert r.status_code == 503, r.text
    problem = r.json()
    assert problem["type"] == "urn:ses-ledger:problem:unavailable"
    assert problem["detail"] == SIGNING_KEY_UNAVAILABLE
    assert (ledger.recorder.max_notification_id() or 0) == 0


@pytest.mark.parametrize("damage", ["missing", "garbled"])
def test_a_key_ring_that_cannot_be_read_tells_anyone_nothing_of_the_servers_files(
    served: tuple[Api, LedgerApp], caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    """`GET /v1/ledger/keys` needs no token: its 503 answered the key ring's absolute path and
    how to restore it ("no key ring at /srv/.../keys/keyring.json: ... restored from its
    backup") to whoever asked. The reason is now in the server's log only."""
    api, ledger = served
    ring = ledger.config.home / "keys" / "keyring.json"
    if damage == "missing":
        ring.unlink()
    else:
        ring.write_text("[")
    for r in (api.client.get("/v1/ledger/keys"), api.post("/v1/executives", s.executive("E-K"))):
        assert r.status_code == 503, r.text
        problem = r.json()
        assert problem["type"] == "urn:ses-ledger:problem:unavailable"
        assert problem["detail"] == SIGNING_KEY_UNAVAILABLE
        assert str(ledger.config.home) not in r.text and "keyring.json" not in r.text
    assert str(ring) in caplog.text  # the operator still learns which file


def test_a_busy_store_at_the_checkpoint_after_a_commit_still_answers_201_once(
    sqlite_config: LedgerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Contract, Writes and Errors: an error answer means nothing was recorded. The every-N
    checkpoint runs after the events are committed; a busy store there answered 503 "nothing
    was recorded" for a stored event, and a client retrying without a key appended it twice."""
    config = dataclasses.replace(sqlite_config, checkpoint_every=1)
    for api in make_api(config, raise_server_exceptions=False):
        ledger: LedgerApp = api.client.app.state.services.ledger  # type: ignore[attr-defined]
        _fail_once(
            monkeypatch,
            ledger.merkle_log,
            "issue_checkpoint",
            OperationalError("database is locked"),
        )
        r = api.post("/v1/executives", s.executive("E-LATE-CP"))
        assert r.status_code == 201, r.text
        assert ledger.recorder.max_notification_id() == 1
        assert ledger.merkle_log.latest_checkpoint() is None
        api.ok("/v1/executives", s.executive("E-NEXT"))  # the next write issues it
        latest = ledger.merkle_log.latest_checkpoint()
        assert latest is not None and latest.tree_size == 2


def test_a_full_disk_is_503_that_says_so_and_the_retry_records_once(
    served: tuple[Api, LedgerApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's SQLITE_FULL (a full disk) was answered as a store 'busy or unreachable':
    the client and the operator reading it were told to wait, not that room is needed."""
    api, ledger = served
    head = ledger.recorder.max_notification_id() or 0
    full = OperationalError("database or disk is full")
    _fail_once(monkeypatch, ledger.recorder, "insert_events", full)
    headers = {**api.hr, "Idempotency-Key": "when-there-is-room"}
    body = s.executive("E-FULL")
    r = api.post("/v1/executives", body, headers)
    assert r.status_code == 503 and r.headers["content-type"] == PROBLEM, r.text
    problem = r.json()
    assert problem["type"] == "urn:ses-ledger:problem:unavailable"
    assert problem["detail"].startswith("the ledger's storage is full: nothing was recorded")
    assert "busy" not in problem["detail"]
    assert (ledger.recorder.max_notification_id() or 0) == head
    again = api.post("/v1/executives", body, headers)
    assert again.status_code == 201, again.text
    assert (ledger.recorder.max_notification_id() or 0) == head + 1


def test_a_read_only_postgresql_is_503_not_a_bare_500(
    served: tuple[Api, LedgerApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PostgreSQL standby (the ledger's address moved to it in a failover) refuses every
    INSERT with an internal error, as the recorder raises it (seen with a role whose
    default_transaction_read_only is on): that was a bare 500 'the server failed
    unexpectedly' for every write; it is a 503 saying the storage is read-only, as for a
    read-only SQLite file. Other internal errors stay 500."""
    api, ledger = served
    head = ledger.recorder.max_notification_id() or 0
    standby = InternalError("cannot execute INSERT in a read-only transaction")
    _fail_once(monkeypatch, ledger.recorder, "insert_events", standby)
    headers = {**api.hr, "Idempotency-Key": "after-failover"}
    body = s.executive("E-STANDBY")
    r = api.post("/v1/executives", body, headers)
    assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
    assert r.json()["type"] == "urn:ses-ledger:problem:unavailable"
    assert r.json()["detail"].startswith("the ledger's storage is read-only: nothing was recorded")
    assert (ledger.recorder.max_notification_id() or 0) == head
    assert api.post("/v1/executives", body, headers).status_code == 201

    other = InternalError("current transaction is aborted")
    _fail_once(monkeypatch, ledger, "register_executive", other)
    r = api.post("/v1/executives", s.executive("E-OTHER"))
    assert r.status_code == 500 and r.json()["type"] == "urn:ses-ledger:problem:internal-error"


def test_a_damaged_store_file_is_a_500_ledger_integrity_problem(
    sqlite_config: LedgerConfig,
) -> None:
    """The page holding an appraisal's plan overwritten on the disk (a failing drive): the
    next write to it was a bare 500 'the server failed unexpectedly'; it is the documented
    `ledger-integrity` problem, which says to run `ses-ledger verify`, and appends nothing."""
    for api in make_api(sqlite_config):
        appraisal = api.appraisal("planned")
        plan = api.get(f"/v1/appraisals/{appraisal.appraisal_id}/events", api.hr)
        signature = plan.json()["events"][0]["signature"].encode()
        for _ in range(40):  # later events: the plan's page is not the log's last one
            api.new_executive()
    database = sqlite_config.sqlite_path()  # closed: the write-ahead log is folded in
    with sqlite3.connect(database) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
    content = database.read_bytes()
    assert content.count(signature) == 1
    with database.open("r+b") as fh:
        fh.seek(content.index(signature) // page_size * page_size)
        fh.write(b"\xa5" * page_size)

    for api in make_api(sqlite_config, raise_server_exceptions=False):
        ledger = api.client.app.state.services.ledger  # type: ignore[attr-defined]
        head = ledger.recorder.max_notification_id()
        path = f"/v1/appraisals/{appraisal.appraisal_id}/progress-reviews"
        r = api.post(path, s.review(2024))
        assert r.status_code == 500 and r.headers["content-type"] == PROBLEM, r.text
        problem = r.json()
        assert problem["type"] == "urn:ses-ledger:problem:ledger-integrity"
        assert "database disk image is malformed" in problem["detail"]
        assert "ses-ledger verify" in problem["detail"]
        assert ledger.recorder.max_notification_id() == head


class _CommitFault:
    """The next append's COMMIT on SQLite reports a disk I/O error: after it committed
    (`landed`) or, rolled back, without committing (what SQLite does on an I/O error at
    COMMIT). Other commits (the read models') are left alone."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, ledger: LedgerApp, landed: bool) -> None:
        from eventsourcing.sqlite import SQLiteConnection

        self.fired = False
        appending: set[int] = set()
        real_commit = SQLiteConnection.commit
        recorder: Any = ledger.recorder
        real_store = recorder._store_batch

        def store_batch(batch: Any) -> None:
            appending.add(threading.get_ident())
            try:
                real_store(batch)
            finally:
                appending.discard(threading.get_ident())

        monkeypatch.setattr(recorder, "_store_batch", store_batch)

        def commit(conn: SQLiteConnection) -> None:
            if self.fired or threading.get_ident() not in appending:
                return real_commit(conn)
            self.fired = True
            if landed:
                real_commit(conn)
            else:
                conn.rollback()
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(SQLiteConnection, "commit", commit)


def test_a_write_whose_commit_reported_an_io_error_after_committing_is_201_once(
    served: tuple[Api, LedgerApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Contract, Writes: a 2xx when it was recorded. Before: 503 'nothing was recorded' for
    an event the ledger held, which a retry without a key would have appended again."""
    api, ledger = served
    head = ledger.recorder.max_notification_id() or 0
    fault = _CommitFault(monkeypatch, ledger, landed=True)
    r = api.post("/v1/executives", s.executive("E-IO-LATE"))
    assert fault.fired
    assert r.status_code == 201, r.text
    assert (ledger.recorder.max_notification_id() or 0) == head + 1
    assert r.json()["event"]["position"] == head + 1


def test_a_commit_that_failed_with_an_io_error_still_says_nothing_was_recorded(
    served: tuple[Api, LedgerApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, ledger = served
    head = ledger.recorder.max_notification_id() or 0
    fault = _CommitFault(monkeypatch, ledger, landed=False)
    r = api.post("/v1/executives", s.executive("E-IO-EARLY"))
    assert fault.fired
    assert r.status_code == 503, r.text
    assert r.json()["type"] == "urn:ses-ledger:problem:unavailable"
    assert "nothing was recorded" in r.json()["detail"]
    assert (ledger.recorder.max_notification_id() or 0) == head
    assert api.post("/v1/executives", s.executive("E-IO-EARLY")).status_code == 201


def test_a_commit_error_whose_outcome_cannot_be_read_is_503_write_outcome_unknown(
    served: tuple[Api, LedgerApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store cannot be read after COMMIT reported an error: the answer says the write
    may or may not have been recorded, and how to find out (not 'nothing was recorded')."""
    api, ledger = served
    fault = _CommitFault(monkeypatch, ledger, landed=True)
    datastore = ledger.recorder.datastore  # type: ignore[attr-defined]
    real_transaction = datastore.transaction

    def transaction(*, commit: bool) -> Any:
        if fault.fired and not commit:
            raise OperationalError("disk I/O error")
        return real_transaction(commit=commit)

    monkeypatch.setattr(datastore, "transaction", transaction)
    r = api.post("/v1/executives", s.executive("E-IO-UNKNOWN"))
    monkeypatch.setattr(datastore, "transaction", real_transaction)
    assert fault.fired
    assert r.status_code == 503, r.text
    assert r.headers["retry-after"] == "1"
    problem = r.json()
    assert problem["type"] == "urn:ses-ledger:problem:write-outcome-unknown"
    assert problem["detail"] == WRITE_OUTCOME_UNKNOWN
    assert "nothing was recorded" not in problem["detail"]


def test_an_evidence_bundle_whose_stored_entries_do_not_verify_is_a_500_naming_them(
    served: tuple[Api, LedgerApp],
) -> None:
    """Someone with database access changes a byte of a stored plan (an SQL UPDATE of its
    state): the evidence bundle was answered 200 with the entry as stored, a bundle that
    fails in the reader's hands. It is checked before it is answered (as `ses-ledger bundle
    export` checks it) and is the documented `ledger-integrity` problem (docs/api.md, Errors)
    naming the position, in `detail` and `positions`; nothing is appended."""
    api, ledger = served
    appraisal = api.appraisal("planned")
    path = f"/v1/executives/{appraisal.executive_id}/evidence-bundle"
    assert api.get(path, api.auditor).status_code == 200
    events = api.get(f"/v1/appraisals/{appraisal.appraisal_id}/events", api.hr).json()
    position = events["events"][0]["position"]
    config = ledger.config
    (state,) = raw(
        config, f"SELECT state FROM {events_table(config)} WHERE rowid = ?", (position,)
    )[0]
    changed = bytes(state).replace(b'"weight":40', b'"weight":45', 1)
    assert changed != bytes(state)
    raw(config, f"UPDATE {events_table(config)} SET state = ? WHERE rowid = ?", (changed, position))
    head = ledger.recorder.max_notification_id() or 0

    r = api.client.get(path, headers=api.auditor)
    assert r.status_code == 500 and r.headers["content-type"] == PROBLEM, r.text
    problem = r.json()
    assert problem["type"] == "urn:ses-ledger:problem:ledger-integrity"
    assert problem["positions"] == [position]
    assert f"the stored entry at position {position} does not verify" in problem["detail"]
    assert "hash does not recompute" in problem["detail"]
    assert "ses-ledger verify" in problem["detail"]
    assert (ledger.recorder.max_notification_id() or 0) == head


def test_a_connection_that_cannot_be_opened_is_503_and_the_retry_records_once(
    served: tuple[Api, LedgerApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Out of file descriptors (`prlimit --nofile=22` on a server under 8 writers), SQLite
    cannot open a connection; eventsourcing raises it as an InterfaceError, which was
    answered as a bare 500 with a traceback in the log, where a busy store is a 503."""
    api, ledger = served
    head = ledger.recorder.max_notification_id() or 0
    cannot_open = InterfaceError("unable to open database file")
    cannot_open.__cause__ = sqlite3.OperationalError("unable to open database file")
    _fail_once(monkeypatch, ledger, "idempotent_positions", cannot_open)
    headers = {**api.hr, "Idempotency-Key": "when-a-descriptor-is-free"}
    body = s.executive("E-NOFILE")
    r = api.post("/v1/executives", body, headers)
    assert r.status_code == 503 and r.headers["content-type"] == PROBLEM, r.text
    assert r.headers["retry-after"] == "1"
    assert r.json()["type"] == "urn:ses-ledger:problem:unavailable"
    assert "nothing was recorded" in r.json()["detail"]
    assert (ledger.recorder.max_notification_id() or 0) == head
    again = api.post("/v1/executives", body, headers)
    assert again.status_code == 201, again.text
    assert (ledger.recorder.max_notification_id() or 0) == head + 1


def test_a_misused_interface_is_still_a_bare_500(
    served: tuple[Api, LedgerApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, ledger = served
    misuse = InterfaceError("Error binding parameter 1")
    misuse.__cause__ = sqlite3.InterfaceError("Error binding parameter 1")
    _fail_once(monkeypatch, ledger, "register_executive", misuse)
    r = api.post("/v1/executives", s.executive("E-MISUSE"))
    assert r.status_code == 500 and r.json()["type"] == "urn:ses-ledger:problem:internal-error"


def test_a_write_that_ran_out_of_memory_is_503_with_its_outcome_unknown(
    served: tuple[Api, LedgerApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A MemoryError was a bare 500 'the server failed unexpectedly'. It may strike after
    the commit, so the client is not told that nothing was recorded: it retries with its
    key, which answers once."""
    api, ledger = served
    head = ledger.recorder.max_notification_id() or 0
    real = ledger.register_executive

    def commit_then_run_out(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)
        raise MemoryError

    monkeypatch.setattr(ledger, "register_executive", commit_then_run_out)
    headers = {**api.hr, "Idempotency-Key": "short-of-memory"}
    body = s.executive("E-OOM")
    r = api.post("/v1/executives", body, headers)
    assert r.status_code == 503 and r.headers["content-type"] == PROBLEM, r.text
    assert r.headers["retry-after"] == "1"
    assert r.json()["detail"] == SHORT_OF_RESOURCES_WRITE
    assert "nothing was recorded" not in r.json()["detail"]
    monkeypatch.setattr(ledger, "register_executive", real)
    again = api.post("/v1/executives", body, headers)
    assert again.status_code == 201, again.text
    assert (ledger.recorder.max_notification_id() or 0) == head + 1  # recorded once


def test_a_server_that_cannot_start_a_thread_answers_a_problem_not_bare_text(
    served: tuple[Api, LedgerApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a memory limit (`prlimit --as` a little above the server's size) no worker
    thread can be started: the request failed, and so did its error handler, which
    Starlette runs on a worker thread too: the client got a text/plain 'Internal Server
    Error' 500. Once threads can be started again, the server writes as before."""
    api, ledger = served
    head = ledger.recorder.max_notification_id() or 0

    async def no_thread(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("can't start new thread")

    real = anyio.to_thread.run_sync
    monkeypatch.setattr(anyio.to_thread, "run_sync", no_thread)
    r = api.post("/v1/executives", s.executive("E-NOTHREAD"))
    assert r.status_code == 503 and r.headers["content-type"] == PROBLEM, r.text
    assert r.json()["detail"] == SHORT_OF_RESOURCES_WRITE
    assert r.headers["retry-after"] == "1"
    monkeypatch.setattr(anyio.to_thread, "run_sync", real)
    assert api.post("/v1/executives", s.executive("E-NOTHREAD")).status_code == 201
    assert (ledger.recorder.max_notification_id() or 0) == head + 1


def test_a_checkpoint_that_cannot_be_stored_serves_the_newest_stored_one(
    served: tuple[Api, LedgerApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a full disk (`prlimit --fsize` on the server) `GET /v1/ledger/checkpoint`
    was 503 for as long as the disk stayed full once the tree had grown past the newest
    checkpoint: witnesses were answered nothing. The newest stored checkpoint is still a
    true, signed statement of the tree it covers (a checkpoint may trail the newest
    entries); once there is room a new one covers them."""
    api, ledger = served
    services = api.client.app.state.services  # type: ignore[attr-defined]
    monkeypatch.setattr(services.checkpointer, "max_age", 0.0)  # a grown tree: a new one
    api.ok("/v1/executives", s.executive("E-CP-1"))
    first = api.client.get("/v1/ledger/checkpoint")
    assert first.status_code == 200
    api.ok("/v1/executives", s.executive("E-CP-2"))
    full = OperationalError("database or disk is full")
    _fail_once(monkeypatch, ledger.merkle_log, "issue_checkpoint", full)
    trailing = api.client.get("/v1/ledger/checkpoint")
    assert trailing.status_code == 200, trailing.text
    assert trailing.text == first.text  # tree size 1, signed before
    latest = ledger.merkle_log.latest_checkpoint()
    assert latest is not None and latest.tree_size == 1
    fresh = api.client.get("/v1/ledger/checkpoint")  # room again: issued now
    assert fresh.status_code == 200 and fresh.text != first.text
    latest = ledger.merkle_log.latest_checkpoint()
    assert latest is not None and latest.tree_size == 2


def test_no_stored_checkpoint_and_no_room_is_still_503(
    served: tuple[Api, LedgerApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, ledger = served
    services = api.client.app.state.services  # type: ignore[attr-defined]
    monkeypatch.setattr(services.checkpointer, "max_age", 0.0)
    api.ok("/v1/executives", s.executive("E-CP-0"))
    full = OperationalError("database or disk is full")
    _fail_once(monkeypatch, ledger.merkle_log, "issue_checkpoint", full)
    r = api.client.get("/v1/ledger/checkpoint")
    assert r.status_code == 503 and r.headers["content-type"] == PROBLEM, r.text
    assert "is full" in r.json()["detail"]


def test_a_timed_checkpoint_the_store_cannot_take_logs_one_line(
    served: tuple[Api, LedgerApp],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The timer's checkpoint on a full disk logged a whole traceback every tick (every 60 s
    under docker-compose) for as long as the disk stayed full (noticed by the qa-exhaust
    pass): a store that cannot take it now is one warning line; anything else keeps its
    traceback."""
    api, ledger = served
    checkpointer = api.client.app.state.services.checkpointer  # type: ignore[attr-defined]
    monkeypatch.setattr(checkpointer, "max_age", 0.0)
    api.ok("/v1/executives", s.executive("E-TICK-1"))
    _fail_once(
        monkeypatch,
        ledger.merkle_log,
        "issue_checkpoint",
        OperationalError("database or disk is full"),
    )
    with caplog.at_level("WARNING", logger="ses_ledger.api"):
        checkpointer.tick()
    [record] = [r for r in caplog.records if "timed checkpoint" in r.getMessage()]
    assert record.exc_info is None and record.levelname == "WARNING"
    assert "database or disk is full" in record.getMessage()
    caplog.clear()
    _fail_once(monkeypatch, ledger.merkle_log, "issue_checkpoint", ValueError("a bug"))
    with caplog.at_level("WARNING", logger="ses_ledger.api"):
        checkpointer.tick()
    [record] = [r for r in caplog.records if "timed checkpoint" in r.getMessage()]
    assert record.exc_info is not None and record.levelname == "ERROR"
