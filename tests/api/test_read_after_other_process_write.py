"""A record written through another server process is never read as unknown (contract,
Errors: 404 is an unknown id).

A process waits before a read only for its own writes (`api.projector`); with `serve
--workers N` a record created through one worker and read at once through the other was
answered 404 while the projecting process had not reached it. Here "another process" is a
second `LedgerApp` on the same store, and the projector's thread does not look for others'
writes by itself (as if it had not looked yet), so the read models stay behind unless the
read catches them up: deterministic, where the real race (tests/e2e/test_serve_workers.py)
is a matter of milliseconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.projector import Projector
from api.settings import ApiSettings
from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from tests.api import story as s
from tests.api.story import Api


@pytest.fixture
def slow_projector(
    ledger_config: LedgerConfig, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Api, LedgerApp]]:
    """The API (its projector thread running, but blind to other processes' writes until
    a read asks for a position past what it reached) and another writer on the same store."""

    def idle(self: Projector, _read_models: object, target: int) -> bool:
        return target <= self._reached

    monkeypatch.setattr(Projector, "_idle", idle)
    ledger = LedgerApp(ledger_config)
    settings = ApiSettings(
        home=ledger_config.home, checkpoint_interval_seconds=0, projection_interval_seconds=60
    )
    app = create_app(ledger, settings=settings)
    other = LedgerApp(ledger_config)
    with TestClient(app) as client:
        api = Api(client, app.state.services.token_key)
        api.new_executive()  # the read models are built and caught up; the thread idles
        time.sleep(0.2)
        yield api, other
    other.close()
    ledger.close()


def _register(other: LedgerApp, executive_id: str) -> None:
    body = s.executive(executive_id)
    other.register_executive(
        executive_id,
        **{k: v for k, v in body.items() if k not in ("executive_id", "appointed_on")},
        appointed_on=date.fromisoformat(body["appointed_on"]),
        actor="hr-app-1",
        submitted_by="hr-app-1",
    )


def test_an_executive_registered_by_another_process_is_read_at_once(
    slow_projector: tuple[Api, LedgerApp],
) -> None:
    """Before: 404 "executive 'E-OTHER' does not exist" until the next minute's look."""
    api, other = slow_projector
    _register(other, "E-OTHER")
    r = api.get("/v1/executives/E-OTHER", api.hr)
    assert r.status_code == 200, r.text
    assert r.json()["executive_id"] == "E-OTHER" and r.json()["version"] == 1
    ratings = api.get("/v1/executives/E-OTHER/ratings", api.hr)
    assert ratings.status_code == 200 and ratings.json()["ratings"] == []


def test_an_appraisal_planned_by_another_process_is_read_at_once(
    slow_projector: tuple[Api, LedgerApp],
) -> None:
    api, other = slow_projector
    _register(other, "E-OTHER-2")
    plan = s.plan("A-OTHER", "E-OTHER-2", 2024)
    other.set_plan(
        "A-OTHER",
        executive_id="E-OTHER-2",
        policy=plan["policy"],
        period_start=date.fromisoformat(plan["period_start"]),
        period_end=date.fromisoformat(plan["period_end"]),
        rating_official_id=plan["rating_official_id"],
        communicated_on=date.fromisoformat(plan["communicated_on"]),
        elements=plan["elements"],
        submitted_by="hr-app-1",
    )
    r = api.get("/v1/appraisals/A-OTHER", api.hr)
    assert r.status_code == 200, r.text
    assert r.json()["stage"] == "planned"
    events = api.get("/v1/appraisals/A-OTHER/events", api.hr)
    assert events.status_code == 200 and [e["type"] for e in events.json()["events"]] == ["PlanSet"]


def test_an_id_the_ledger_does_not_hold_is_still_404_at_once(
    slow_projector: tuple[Api, LedgerApp],
) -> None:
    api, _ = slow_projector
    started = time.monotonic()
    for path in ("/v1/executives/E-NOBODY", "/v1/appraisals/A-NOBODY"):
        r = api.get(path, api.hr)
        assert r.status_code == 404, r.text
        assert r.json()["type"] == "urn:ses-ledger:problem:not-found"
    assert time.monotonic() - started < 5  # nothing waited for the minute's look


def test_a_replayed_write_is_read_by_the_process_that_answered_it(
    slow_projector: tuple[Api, LedgerApp],
) -> None:
    """docs/api.md: reads see every write this process acknowledged before they began. A
    retry answered with the stored 201 (`Idempotency-Key`) acknowledges the write too, and
    with `serve --workers N` the first attempt may have been stored through the other worker
    (its response lost). Before, the replay did not tell this process's projector, so a
    read right after the 201 showed the appraisal without the review (version 1)."""
    from api.idempotency import fingerprint
    from api.schemas.writes import ProgressReviewIn

    api, other = slow_projector
    a = api.appraisal("planned")
    path = f"/v1/appraisals/{a.appraisal_id}/progress-reviews"
    body = ProgressReviewIn(**s.review(2024))
    key = ("hr-app-1", "review-via-other-worker")
    other.appraisal_command(
        a.appraisal_id,
        "review_progress",
        submitted_by="hr-app-1",
        actor="R1",
        idempotency=(*key, fingerprint("POST", path, body.model_dump(mode="json"))),
        **body.model_dump(),
    )
    replay = api.post(path, s.review(2024), {**api.hr, "Idempotency-Key": key[1]})
    assert replay.status_code == 201, replay.text
    assert replay.json()["version"] == 2
    read = api.get(f"/v1/appraisals/{a.appraisal_id}", api.hr)
    assert read.status_code == 200 and read.json()["version"] == 2, read.text
