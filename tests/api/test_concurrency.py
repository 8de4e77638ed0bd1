"""`If-Match: <version>`: a stale version is 412, a lost race 409; without it, a lost race is
retried against the new state."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ledger.application import LedgerApp
from tests.api import story as s
from tests.api.story import Api


def _services(api: Api) -> Any:
    return api.client.app.state.services  # type: ignore[attr-defined]


def test_the_current_version_is_accepted(any_api: Api) -> None:
    a = any_api.appraisal("planned")
    headers = any_api.as_("hr_app", **{"If-Match": "1"})
    r = any_api.ok(f"/v1/appraisals/{a.appraisal_id}/progress-reviews", s.review(2024), headers)
    assert r["version"] == 2
    quoted = any_api.as_("hr_app", **{"If-Match": '"2"'})
    any_api.ok(f"/v1/appraisals/{a.appraisal_id}/detail-appraisals", s.detail(2024), quoted)


def test_a_stale_version_is_412_and_appends_nothing(any_api: Api) -> None:
    a = any_api.appraisal("initially_rated")
    size = any_api.ledger_size()
    headers = any_api.as_("hr_app", **{"If-Match": "1"})
    r = any_api.post(
        f"/v1/appraisals/{a.appraisal_id}/response-waiver", s.response_waiver(2024), headers
    )
    assert r.status_code == 412
    assert r.json()["type"] == "urn:ses-ledger:problem:stale-version"
    assert r.json()["current_version"] == 3  # plan, progress review, initial rating
    assert any_api.ledger_size() == size


@pytest.mark.parametrize("path", ["personnel-actions", "complaints"])
def test_executive_writes_honour_if_match(api: Api, path: str) -> None:
    executive_id = api.new_executive()
    body = s.personnel_action() if path == "personnel-actions" else s.complaint()
    stale = api.post(
        f"/v1/executives/{executive_id}/{path}", body, api.as_("hr_app", **{"If-Match": "7"})
    )
    assert stale.status_code == 412
    fresh = api.ok(
        f"/v1/executives/{executive_id}/{path}", body, api.as_("hr_app", **{"If-Match": "1"})
    )
    assert fresh["version"] == 2


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "9" * 40, ""])
def test_a_malformed_if_match_is_422(api: Api, value: str) -> None:
    a = api.appraisal("planned")
    r = api.post(
        f"/v1/appraisals/{a.appraisal_id}/progress-reviews",
        s.review(2024),
        api.as_("hr_app", **{"If-Match": value}),
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["header", "If-Match"]


def _race_once(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next appraisal write lose a race: another writer appends between its load
    and its store."""
    _services(api).read_models.catch_up()  # tables made: opening a store does DDL
    rival = LedgerApp(_services(api).ledger.config)
    original = LedgerApp.appraisal
    raced: list[str] = []

    def load_then_lose(self: LedgerApp, appraisal_id: str) -> Any:
        appraisal = original(self, appraisal_id)
        if not raced:
            raced.append(appraisal_id)
            rival.appraisal_command(
                appraisal_id,
                "review_progress",
                submitted_by="rival",
                actor="R1",
                reviewed_on=s.date(2024, 4, 1),
                reviewer_id="R1",
                notes="Rival review.",
            )
        return appraisal

    monkeypatch.setattr(LedgerApp, "appraisal", load_then_lose)


def test_a_lost_race_with_if_match_is_409(any_api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    _race_once(any_api, monkeypatch)  # (the rival opens the store before the writes start)
    a = any_api.appraisal("planned")
    size = any_api.ledger_size()
    r = any_api.post(
        f"/v1/appraisals/{a.appraisal_id}/progress-reviews",
        s.review(2024),
        any_api.as_("hr_app", **{"If-Match": "1"}),
    )
    assert r.status_code == 409
    assert r.json()["type"] == "urn:ses-ledger:problem:conflict"
    assert any_api.ledger_size() == size + 1  # only the rival's review


def test_a_lost_race_without_if_match_is_retried(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    _race_once(api, monkeypatch)
    a = api.appraisal("planned")
    r = api.ok(f"/v1/appraisals/{a.appraisal_id}/progress-reviews", s.review(2024))
    assert r["version"] == 3


def test_concurrent_writes_to_one_record_without_if_match_all_land(any_api: Api) -> None:
    """Twenty independent complaints about one executive at once, no `If-Match`: within a
    process they take turns (before, about half came back 409 after three tries each)."""
    api = any_api
    executive_id = api.new_executive()
    size = api.ledger_size()
    path = f"/v1/executives/{executive_id}/complaints"
    bodies = [s.complaint() | {"summary": f"Complaint {n}."} for n in range(20)]
    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(lambda body: api.post(path, body), bodies))
    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses]
    assert sorted(r.json()["version"] for r in responses) == list(range(2, 22))
    assert api.ledger_size() == size + 20


def test_two_if_match_lines_are_422_not_the_first_alone(api: Api) -> None:
    """Two `If-Match` lines combine into a list (RFC 9110 5.3, 13.1.1), which docs/api.md's
    single version is not: 422, as `If-Match: 1, 2` already was. Before, the first line was
    taken and the second ignored (412 or 201 depending on which came first)."""
    a = api.appraisal("planned")
    headers = [(k.encode(), v.encode()) for k, v in api.hr.items()]
    headers += [(b"If-Match", b"9"), (b"If-Match", b"1")]
    size = api.ledger_size()
    url = f"/v1/appraisals/{a.appraisal_id}/progress-reviews"
    r = api.client.post(url, json=s.review(2024), headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == ["header", "If-Match"]
    assert api.ledger_size() == size
