"""A write whose connection to PostgreSQL is lost at COMMIT (contract: Writes, Errors).

An error answer tells the client that nothing was recorded, and a client that believes it
sends the write again. So where the commit may have run, the ledger finds out before it
answers: the events are there (201, once), provably not there (tried again, once), or the
store cannot be asked (503 `write-outcome-unknown`, which says the write may have been
recorded and how to find out: the same Idempotency-Key, or a read).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from eventsourcing.persistence import OperationalError

from api.errors import WRITE_OUTCOME_UNKNOWN
from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from ledger.keys import KeyRing
from ledger.recorders_postgres import LedgerPostgresRecorder
from tests.api import story as s
from tests.api.conftest import make_api
from tests.api.story import Api

pytestmark = pytest.mark.postgres

PG_LOST = "server closed the connection unexpectedly"


@pytest.fixture
def served(tmp_path: Any, pg_schema_url: str) -> Iterator[tuple[Api, LedgerApp]]:
    home = tmp_path / "home"
    KeyRing(home).init()
    for api in make_api(LedgerConfig(home=home, db_url=pg_schema_url), False):
        yield api, api.client.app.state.services.ledger  # type: ignore[attr-defined]


class CutAtCommit:
    """The next write's connection is lost at COMMIT: after the server committed (`landed`)
    or, with `pg_terminate_backend` from another connection, before it could. `then_down`:
    every later connection fails too (the server is gone), until `restore`."""

    def __init__(self, ledger: LedgerApp, *, landed: bool, then_down: bool = False) -> None:
        recorder = ledger.recorder
        assert isinstance(recorder, LedgerPostgresRecorder)
        self.datastore = recorder.datastore
        self.real = self.datastore.get_connection
        self.landed, self.then_down = landed, then_down
        self.cut = False
        self.writing: psycopg.Connection[Any] | None = None
        self.real_fetch = recorder._fetch_ids_after_insert_events
        recorder._fetch_ids_after_insert_events = self._inserted  # type: ignore[method-assign]
        self.datastore.get_connection = self._get_connection  # type: ignore[method-assign]
        self.recorder = recorder

    def restore(self) -> None:
        self.datastore.get_connection = self.real  # type: ignore[method-assign]
        del self.recorder._fetch_ids_after_insert_events

    def _inserted(self, curs: Any, *args: Any, **kwargs: Any) -> Any:
        ids = self.real_fetch(curs, *args, **kwargs)
        if not self.cut:
            self.cut = True
            self.writing = curs.connection
            if not self.landed:  # a real cut: the server ends the session before COMMIT
                with psycopg.connect(self.datastore.pool.conninfo, autocommit=True) as admin:
                    pid = curs.connection.info.backend_pid
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        return ids

    @contextlib.contextmanager
    def _get_connection(self) -> Iterator[Any]:
        if self.cut and self.then_down and self.writing is None:
            raise OperationalError("connection refused: the server is gone")
        with self.real() as conn:
            yield conn
            if conn is self.writing:  # the body (insert and COMMIT) ran
                self.writing = None
                if self.landed:
                    raise psycopg.OperationalError(PG_LOST)


def _events(api: Api, stream: str) -> list[dict[str, Any]]:
    path = "appraisals" if stream.startswith("A-") else "executives"
    if path == "executives":
        entries = api.get("/v1/ledger/events", api.auditor, limit=1000).json()["events"]
        return [e for e in entries if e["stream_id"] == stream]
    events: list[dict[str, Any]] = api.get(f"/v1/appraisals/{stream}/events", api.auditor).json()[
        "events"
    ]
    return events


@pytest.mark.parametrize("key", [None, "commit-cut-1"])
def test_a_create_whose_commit_landed_before_the_connection_was_lost_is_201_once(
    served: tuple[Api, LedgerApp], key: str | None
) -> None:
    """Before: eventsourcing retried the insert, met its own events and answered 409
    already-exists (with a key, the replay hid it)."""
    api, ledger = served
    headers = api.hr if key is None else {**api.hr, "Idempotency-Key": key}
    cut = CutAtCommit(ledger, landed=True)
    r = api.post("/v1/executives", s.executive("E-CUT"), headers)
    cut.restore()
    assert cut.cut, "the commit was cut"
    assert r.status_code == 201, r.text
    stored = _events(api, "E-CUT")
    assert len(stored) == 1 and r.json()["event"]["hash"] == stored[0]["hash"]
    assert r.json()["event"]["position"] == stored[0]["position"]


def test_an_append_whose_commit_landed_is_not_appended_again(
    served: tuple[Api, LedgerApp],
) -> None:
    """Before: the retried insert lost a 'race' to its own events, and the API re-ran the
    command (no If-Match): the progress review was appended twice."""
    api, ledger = served
    appraisal = api.appraisal("planned")
    cut = CutAtCommit(ledger, landed=True)
    path = f"/v1/appraisals/{appraisal.appraisal_id}/progress-reviews"
    r = api.post(path, s.review(2024))
    cut.restore()
    assert cut.cut
    assert r.status_code == 201, r.text
    types = [e["type"] for e in _events(api, appraisal.appraisal_id)]
    assert types == ["PlanSet", "ProgressReviewed"]
    assert r.json()["version"] == 2


def test_a_commit_cut_before_it_ran_is_tried_again_and_recorded_once(
    served: tuple[Api, LedgerApp],
) -> None:
    """A real cut: the server ends the write's session (pg_terminate_backend) inside its
    transaction. Nothing was committed, so the write is tried again: 201, one event."""
    api, ledger = served
    cut = CutAtCommit(ledger, landed=False)
    r = api.post("/v1/executives", s.executive("E-CUT-EARLY"))
    cut.restore()
    assert cut.cut
    assert r.status_code == 201, r.text
    assert len(_events(api, "E-CUT-EARLY")) == 1


def test_a_lost_commit_that_cannot_be_looked_up_is_503_outcome_unknown_not_nothing_recorded(
    served: tuple[Api, LedgerApp],
) -> None:
    """The commit ran, then the server went away: the ledger cannot tell, and says so (before:
    503 'nothing was recorded', and a retry without the key appended it twice). The same
    Idempotency-Key then answers the stored result and appends nothing."""
    api, ledger = served
    headers = {**api.hr, "Idempotency-Key": "commit-cut-2"}
    body = s.executive("E-CUT-DOWN")
    cut = CutAtCommit(ledger, landed=True, then_down=True)
    r = api.post("/v1/executives", body, headers)
    cut.restore()
    assert r.status_code == 503, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["retry-after"] == "1"
    problem = r.json()
    assert problem["type"] == "urn:ses-ledger:problem:write-outcome-unknown"
    assert problem["detail"] == WRITE_OUTCOME_UNKNOWN
    assert "may or may not have been recorded" in problem["detail"]
    assert "nothing was recorded" not in problem["detail"]
    again = api.post("/v1/executives", body, headers)
    assert again.status_code == 201, again.text
    stored = _events(api, "E-CUT-DOWN")
    assert len(stored) == 1 and again.json()["event"]["hash"] == stored[0]["hash"]


def test_a_store_that_refuses_the_connection_still_says_nothing_was_recorded(
    served: tuple[Api, LedgerApp], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No transaction began (the connection could not be had): nothing was sent, so the
    503 `unavailable` 'nothing was recorded' stays true and stays."""
    api, ledger = served
    monkeypatch.setattr("ledger.recorders_postgres.RETRY_WAIT", 0.0)
    recorder = ledger.recorder
    assert isinstance(recorder, LedgerPostgresRecorder)
    head = recorder.max_notification_id() or 0

    real_get = recorder.datastore.get_connection

    @contextlib.contextmanager
    def get_connection() -> Iterator[Any]:
        raise OperationalError("connection refused")  # as the datastore raises it
        yield  # pragma: no cover

    monkeypatch.setattr(recorder.datastore, "get_connection", get_connection)
    monkeypatch.setattr(ledger, "_absent", lambda *_a: None)  # its read would fail first
    r = api.post("/v1/executives", s.executive("E-REFUSED"))
    monkeypatch.setattr(recorder.datastore, "get_connection", real_get)
    assert r.status_code == 503, r.text
    assert r.json()["type"] == "urn:ses-ledger:problem:unavailable"
    assert "nothing was recorded" in r.json()["detail"]
    assert (recorder.max_notification_id() or 0) == head
