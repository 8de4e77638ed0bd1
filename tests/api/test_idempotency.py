"""`Idempotency-Key`: a retry returns the first response and appends nothing; the key is
scoped to the token subject; reusing it for another request is 422; a 4xx is not remembered.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import api.idempotency
from api.errors import InvalidRequest
from api.idempotency import check_key
from tests.api import story as s
from tests.api.story import Api


def _with_key(api: Api, key: str, **kw: str) -> dict[str, str]:
    return api.as_("hr_app", subject=kw.get("subject", "hr-app-1"), **{"Idempotency-Key": key})


def test_a_retry_returns_the_first_response_and_appends_nothing(any_api: Api) -> None:
    api = any_api
    headers = _with_key(api, "register-E1-attempt")
    first = api.post("/v1/executives", s.executive("E1"), headers)
    assert first.status_code == 201
    size = api.ledger_size()
    again = api.post("/v1/executives", s.executive("E1"), headers)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert api.ledger_size() == size


def test_a_rating_replay_keeps_score_and_level(api: Api) -> None:
    a = api.appraisal("planned")
    headers = _with_key(api, "rate-once")
    path = f"/v1/appraisals/{a.appraisal_id}/initial-rating"
    first = api.post(path, s.initial(2024, level=3), headers).json()
    api.ok(f"/v1/appraisals/{a.appraisal_id}/response-waiver", s.response_waiver(2024))
    replay = api.post(path, s.initial(2024, level=3), headers)
    assert replay.status_code == 201
    assert replay.json() == first
    assert (first["score"], first["summary_level"]) == (300, 3)


def test_the_same_key_for_another_request_is_422(api: Api) -> None:
    headers = _with_key(api, "k1")
    api.ok("/v1/executives", s.executive("E1"), headers)
    size = api.ledger_size()
    r = api.post("/v1/executives", s.executive("E2"), headers)
    assert r.status_code == 422
    assert r.json()["type"] == "urn:ses-ledger:problem:idempotency-key-reused"
    other_path = api.post(
        "/v1/review-boards",
        s.board("PRB-1"),
        {**api.as_("admin", subject="hr-app-1"), "Idempotency-Key": "k1"},
    )
    assert other_path.status_code == 422
    assert api.ledger_size() == size


def test_keys_are_scoped_to_the_token_subject(api: Api) -> None:
    api.ok("/v1/executives", s.executive("E1"), _with_key(api, "shared-key"))
    other = _with_key(api, "shared-key", subject="hr-app-2")
    assert api.post("/v1/executives", s.executive("E2"), other).status_code == 201


def test_a_refused_request_is_not_remembered(api: Api) -> None:
    a = api.appraisal("planned")
    path = f"/v1/appraisals/{a.appraisal_id}/initial-rating"
    headers = _with_key(api, "rate")
    too_early = s.initial(2024) | {"rated_on": "2023-11-01"}  # PER-2: under 90 days
    refused = api.post(path, too_early, headers)
    assert refused.status_code == 422 and refused.json()["rule"] == "PER-2"
    assert api.post(path, s.initial(2024), headers).status_code == 201


def test_concurrent_identical_requests_append_once(any_api: Api) -> None:
    api = any_api
    a = api.appraisal("planned")
    path = f"/v1/appraisals/{a.appraisal_id}/progress-reviews"
    headers = _with_key(api, "review-once")
    size = api.ledger_size()
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: api.post(path, s.review(2024), headers), range(8)))
    assert {r.status_code for r in responses} == {201}, [r.text for r in responses]
    assert len({r.text for r in responses}) == 1
    assert api.ledger_size() == size + 1


def test_concurrent_identical_creates_append_once(api: Api) -> None:
    headers = _with_key(api, "create-once")
    with ThreadPoolExecutor(8) as pool:
        responses = list(
            pool.map(lambda _: api.post("/v1/executives", s.executive("E9"), headers), range(8))
        )
    assert {r.status_code for r in responses} == {201}, [r.text for r in responses]
    assert api.ledger_size() == 1


def _miss_the_first_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    """The retry looks for its key just before an identical request in flight commits: its
    first lookup finds nothing, and its command then runs on the state that request left."""
    real = api.idempotency.earlier_entries
    calls: list[int] = []

    def lookup(ledger: Any, request: Any) -> Any:
        calls.append(1)
        return None if len(calls) == 1 else real(ledger, request)

    monkeypatch.setattr("api.commands.earlier_entries", lookup)


@pytest.mark.parametrize(
    ("path", "body"),
    [("initial-rating", s.initial(2024)), ("response-waiver", s.response_waiver(2024))],
)
def test_a_retry_that_loses_the_race_to_its_own_first_attempt_gets_the_first_answer(
    any_api: Api, monkeypatch: pytest.MonkeyPatch, path: str, body: dict[str, object]
) -> None:
    """A retry sent while the first attempt is still running (a client timeout, a proxy's
    retry): once the first commits, the command itself is refused (SEQ-1: the rating is
    already issued). That refusal is the first attempt's doing, so the retry answers the
    first response (api-contract.md, Writes: "a replay of a 2xx returns the first response
    and appends nothing"). Before, it was 422 SEQ-1, and as "a 4xx is not remembered" an HR
    application took the write for refused. Seen live: 8 concurrent identical initial
    ratings on `serve --workers 2`, 41 of 200 answers were 422 SEQ-1."""
    a = any_api.appraisal("initially_rated" if path == "response-waiver" else "planned")
    if path == "initial-rating":
        any_api.ok(f"/v1/appraisals/{a.appraisal_id}/progress-reviews", s.review(2024))
    headers = _with_key(any_api, f"once-{path}")
    url = f"/v1/appraisals/{a.appraisal_id}/{path}"
    first = any_api.post(url, body, headers)
    assert first.status_code == 201, first.text
    size = any_api.ledger_size()
    _miss_the_first_lookup(monkeypatch)
    retry = any_api.post(url, body, headers)
    assert retry.status_code == 201, retry.text
    assert retry.content == first.content
    assert any_api.ledger_size() == size


def test_a_retry_with_if_match_that_loses_to_its_own_first_attempt_gets_the_first_answer(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same race with `If-Match: 1`: the first attempt moved the stream to 2, so the retry's
    version is stale; it is the first attempt's answer (201), not 412 stale-version."""
    a = api.appraisal("planned")
    headers = _with_key(api, "pinned") | {"If-Match": "1"}
    url = f"/v1/appraisals/{a.appraisal_id}/progress-reviews"
    first = api.post(url, s.review(2024), headers)
    assert first.status_code == 201, first.text
    _miss_the_first_lookup(monkeypatch)
    retry = api.post(url, s.review(2024), headers)
    assert retry.status_code == 201, retry.text
    assert retry.content == first.content


def test_a_refusal_not_caused_by_an_earlier_attempt_stays_a_refusal(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second lookup answers only for this key: a rule violation with a fresh key is
    still 422 with its rule, and nothing is remembered."""
    a = api.appraisal("initially_rated")
    _miss_the_first_lookup(monkeypatch)
    url = f"/v1/appraisals/{a.appraisal_id}/initial-rating"
    r = api.post(url, s.initial(2024), _with_key(api, "fresh"))
    assert r.status_code == 422 and r.json()["rule"] == "SEQ-1", r.text


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "caf\u00e9"])
def test_malformed_keys_are_422(api: Api, key: str) -> None:
    headers = [(k.encode(), v.encode()) for k, v in api.hr.items()]
    headers.append((b"Idempotency-Key", key.encode()))
    r = api.client.post("/v1/executives", json=s.executive("E1"), headers=headers)
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    assert api.ledger_size() == 0


def test_two_idempotency_key_lines_are_422_and_append_nothing(api: Api) -> None:
    """RFC 9110 5.3: two `Idempotency-Key` lines are one field `k-a, k-b`, which is not a key
    (docs/api.md: 1-255 visible ASCII characters). Before, the first line was used and the
    second ignored: the request was stored under `k-a`, and a retry that sent `k-b` alone
    was a new request and appended the review again."""
    a = api.appraisal("planned")
    headers = [(k.encode(), v.encode()) for k, v in api.hr.items()]
    headers += [(b"Idempotency-Key", b"k-a"), (b"Idempotency-Key", b"k-b")]
    size = api.ledger_size()
    url = f"/v1/appraisals/{a.appraisal_id}/progress-reviews"
    r = api.client.post(url, json=s.review(2024), headers=headers)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    assert api.ledger_size() == size


def test_a_key_with_a_final_line_feed_is_no_key() -> None:
    """`$` let a final line feed through, so `abc\\n` was a key of its own beside `abc`
    (unreachable over HTTP, whose header values hold no line feed; held as the docstring
    says for any other caller)."""
    assert check_key("abc") == "abc"
    with pytest.raises(InvalidRequest):
        check_key("abc\n")
