"""Historical reads of one record are rationed like historical reports (docs/api.md,
`SES_LEDGER_RECORD_REPLAY_BUILDS`): an executive's or an appraisal's endpoints and the audit
trail, as of a point, are built at most that many at once per worker; one that finds every
slot taken for `SES_LEDGER_REPLAY_WAIT_SECONDS` is a 503 `unavailable` with Retry-After.

Their cost grows with the record (an executive's complaints have no limit, APP-1): 32 audit
trails at once of a 20,000-complaint executive were all built at once, bounded by nothing."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from projections import audit
from tests.api.story import Api, complaint, record_slots_taken


def _record(api: Api) -> tuple[str, str, int]:
    a = api.appraisal("final", fy=2024, level=2)
    for _ in range(3):
        api.ok(f"/v1/executives/{a.executive_id}/complaints", complaint())
    return a.executive_id, a.appraisal_id, api.ledger_size()


def _historical_reads(
    executive_id: str, appraisal_id: str, head: int
) -> list[tuple[str, dict[str, Any]]]:
    point = {"as_of_position": head - 1}
    return [
        (f"/v1/executives/{executive_id}", point),
        (f"/v1/executives/{executive_id}/ratings", point),
        (f"/v1/appraisals/{appraisal_id}", point),
        (f"/v1/appraisals/{appraisal_id}/events", point),
        ("/v1/reports/audit-trail", {"executive_id": executive_id, **point}),
        ("/v1/reports/audit-trail", {"appraisal_id": appraisal_id, **point}),
    ]


def test_record_replays_beyond_the_limit_are_503_with_retry_after(any_api: Api) -> None:
    api = any_api
    executive_id, appraisal_id, head = _record(api)
    reads = _historical_reads(executive_id, appraisal_id, head)
    for path, params in reads:
        assert api.get(path, **params).status_code == 200, path
    with record_slots_taken(api):  # builds in progress elsewhere
        for path, params in reads:
            busy = api.get(path, **params)
            assert busy.status_code == 503, (path, busy.text)
            assert busy.headers["Retry-After"] == "1"
            assert busy.headers["content-type"].startswith("application/problem+json")
            assert busy.json()["type"] == "urn:ses-ledger:problem:unavailable"
            assert "as_of_position" in busy.json()["detail"]
        # live reads, and whole-ledger reports (slots of their own), are still served
        assert api.get(f"/v1/executives/{executive_id}").status_code == 200
        assert api.get("/v1/reports/audit-trail", executive_id=executive_id).status_code == 200
        report = api.get("/v1/reports/compliance", as_of_position=head - 1)
        assert report.status_code == 200
    for path, params in reads:
        assert api.get(path, **params).status_code == 200, path


@pytest.mark.parametrize("read", ["executive", "audit-trail"])
def test_no_more_record_replays_are_built_at_once_than_the_setting(
    any_api: Api, monkeypatch: pytest.MonkeyPatch, read: str
) -> None:
    """8 requests at once (the server's 8 request threads): at most 2 builds at a time, and
    every request served (each build takes 50 ms, well within the 1 s wait)."""
    api = any_api
    executive_id, appraisal_id, head = _record(api)
    path, params = {
        "executive": (f"/v1/executives/{executive_id}", {"as_of_position": head}),
        "audit-trail": (
            "/v1/reports/audit-trail",
            {"executive_id": executive_id, "as_of_position": head},
        ),
    }[read]
    lock = threading.Lock()
    running = [0]
    most = [0]

    def counted(build: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            with lock:
                running[0] += 1
                most[0] = max(most[0], running[0])
            try:
                time.sleep(0.05)
                return build(*args, **kwargs)
            finally:
                with lock:
                    running[0] -= 1

        return run

    if read == "audit-trail":
        monkeypatch.setattr(audit, "trail_page", counted(audit.trail_page))
    else:
        monkeypatch.setattr(audit, "executive_streams", counted(audit.executive_streams))
    statuses: list[int] = []

    def get() -> None:
        statuses.append(api.get(path, **params).status_code)

    threads = [threading.Thread(target=get) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 8
    assert most[0] == 2
