"""Query parameters a path does not take, or given twice, are refused (422), not ignored.

An auditor asking `compliance?as_of=2024-01-01` (the parameter of another report) or
`below-fully-successful?asof=...` (a typo) got today's report with nothing to say that the
date was never read; `after=5&after=7` was read as its last value. Bad input gets a clear
4xx (RFC 9457 problem+json naming each parameter), and nothing is appended on a refused
write.
"""

from __future__ import annotations

from httpx import Response

from tests.api.story import Api, executive, unique


def _refused(r: Response, *names: str) -> None:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body = r.json()
    assert body["type"].endswith("invalid-request")
    assert [e["loc"] for e in body["errors"]] == [["query", n] for n in names]
    for name in names:
        assert name in body["detail"]


def test_a_parameter_another_path_takes_or_a_typo_is_refused(shared_api: Api) -> None:
    api = shared_api
    _refused(api.get("/v1/reports/compliance", as_of="2024-01-01"), "as_of")
    _refused(api.get("/v1/reports/below-fully-successful", asof="2024-01-01"), "asof")
    _refused(api.get("/v1/ledger/events", after=0, limt=5), "limt")
    _refused(api.get("/healthz", x=1), "x")
    # what each path does take is still read
    assert api.get("/v1/reports/below-fully-successful", as_of="2024-01-01").status_code == 200
    assert api.get("/v1/ledger/events", after=0, limit=5).status_code == 200
    assert api.get("/v1/reports/compliance", known_at="2024-01-01T00:00:00Z").status_code == 200
    detail = api.get("/v1/reports/compliance", as_of="2024-01-01").json()["detail"]
    assert "agency" in detail  # the parameters the path takes are named


def test_a_parameter_given_twice_is_refused(shared_api: Api) -> None:
    r = shared_api.client.get("/v1/ledger/events?after=5&after=7", headers=shared_api.auditor)
    _refused(r, "after")


def test_a_write_with_an_unknown_parameter_appends_nothing(shared_api: Api) -> None:
    api = shared_api
    before = api.ledger_size()
    r = api.client.post(
        "/v1/executives?dry_run=1",
        json=executive(unique("E"), api.agency),
        headers=api.hr,
    )
    _refused(r, "dry_run")
    assert api.ledger_size() == before


def test_integers_of_the_ledger_endpoints_are_written_in_digits(shared_api: Api) -> None:
    """api-contract.md's ledger endpoints (`events?after=&limit=`, `proofs/inclusion?position=
    &tree_size=`, `proofs/consistency?first=&second=`, `receipts/{position}`) and the audit
    trail's `limit`: lax integer parsing read `1_0` as 10 and `+1` or ` 1` as 1, so a mistyped
    number answered another position's receipt or proof with a 200, as `as_of_position` did
    (tests/api/test_replay.py). Now each is a 422 naming the parameter."""
    api = shared_api
    executive_id = api.new_executive()
    for bad in ("1_0", "+1", " 1", "\u0663"):
        _refused(api.get("/v1/ledger/events", after=bad), "after")
        _refused(api.get("/v1/ledger/events", limit=bad), "limit")
        _refused(api.get("/v1/ledger/proofs/inclusion", position=bad), "position")
        _refused(api.get("/v1/ledger/proofs/inclusion", position=1, tree_size=bad), "tree_size")
        _refused(api.get("/v1/ledger/proofs/consistency", first=bad), "first")
        _refused(api.get("/v1/ledger/proofs/consistency", first=1, second=bad), "second")
        _refused(api.get("/v1/reports/audit-trail", executive_id=executive_id, limit=bad), "limit")
        r = api.get(f"/v1/ledger/receipts/{bad}")
        assert r.status_code == 422, r.text
        assert [e["loc"] for e in r.json()["errors"]] == [["path", "position"]], r.text
    # digits are still read, leading zeros included
    assert api.get("/v1/ledger/events", after="00", limit="05").status_code == 200
    assert api.get("/v1/ledger/receipts/1").status_code == 200
