"""The OpenAPI document names the statuses the API gives, per route class, so that a client
generated from it knows them (each error as RFC 9457 problem+json, docs/api.md "Errors"):

- a route that takes a body: 400 (not UTF-8 text) and 413 (over the size limit), after the
  token check; a route without one never gives them (it ignores a body);
- every route: 503 (the store unavailable: busy, unreachable, full, read-only) and 500
  (stored data that does not verify, or anything unforeseen).

Each status is produced here for every operation in the document, and must be documented.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from eventsourcing.persistence import OperationalError
from eventsourcing.sqlite import SQLiteDatastore

from api.errors import PROBLEM_JSON, PROBLEM_SCHEMA
from ledger.config import LedgerConfig
from ledger.errors import SigningKeyError
from tests.api import story as s
from tests.api.conftest import make_api
from tests.api.story import Api

#: A schema-valid body for each write (the store fails before any id is looked up).
BODIES: dict[str, Callable[[], dict[str, Any]]] = {
    "/v1/executives": lambda: s.executive("E-OAS"),
    "/v1/review-boards": lambda: s.board("PRB-OAS"),
    "/v1/rating-cap-waivers": lambda: s.waiver("DOE", "FY2026"),
    "/v1/appraisals": lambda: s.plan("A-OAS", "E-OAS", 2024),
    "/progress-reviews": lambda: s.review(2024),
    "/detail-appraisals": lambda: s.detail(2024),
    "/period-extension": lambda: s.extension(2024),
    "/initial-rating": lambda: s.initial(2024),
    "/executive-response": lambda: s.response(2024),
    "/response-waiver": lambda: s.response_waiver(2024),
    "/higher-level-review-request": lambda: s.hlr_request(2024),
    "/higher-level-review": lambda: s.hlr(2024),
    "/prb-recommendation": lambda: s.prb(2024, "PRB-OAS", ["initial_rating"]),
    "/final-rating": lambda: s.final(2024),
    "/personnel-actions": lambda: s.personnel_action("reassignment", basis=["A-OAS"]),
    "/complaints": s.complaint,
}
QUERIES: dict[str, dict[str, Any]] = {
    "/v1/reports/rating-distribution": {"agency": "DOE", "cycle": "FY2024"},
    "/v1/reports/audit-trail": {"actor": "hr-app-1"},
    "/v1/ledger/proofs/inclusion": {"position": 1},
    "/v1/ledger/proofs/consistency": {"first": 1},
}
IDS = {"executive_id": "E-OAS", "appraisal_id": "A-OAS", "position": "1"}


@pytest.fixture
def served(sqlite_config: LedgerConfig) -> Iterator[Api]:
    """Server errors answered, as a real server does, not raised into the test."""
    yield from make_api(sqlite_config, raise_server_exceptions=False)


def _operations(api: Api) -> list[tuple[str, str, dict[str, Any]]]:
    spec = api.client.get("/openapi.json").json()
    found = [
        (method.upper(), path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]
    assert len(found) >= 30
    return found


def _documented(operation: dict[str, Any]) -> set[int]:
    return {int(code) for code in operation["responses"]}


def _body(path: str) -> dict[str, Any]:
    return next(make() for end, make in BODIES.items() if path.endswith(end))


def _call(api: Api, method: str, template: str, content: bytes | None = None) -> Any:
    path = template.format(**IDS)
    if method == "GET":
        return api.client.get(
            path, params=QUERIES.get(template, {}), headers=api.as_("admin", agency="*")
        )
    headers = api.as_("hr_app", "admin", subject="hr-app-1", agency="*")
    if content is None:
        return api.client.post(path, json=_body(template), headers=headers)
    headers["Content-Type"] = "application/json"
    return api.client.post(path, content=content, headers=headers)


def test_every_documented_error_is_a_problem(api: Api) -> None:
    for method, path, operation in _operations(api):
        for code, response in operation["responses"].items():
            if int(code) >= 400:
                schema = response["content"][PROBLEM_JSON]["schema"]
                assert schema == PROBLEM_SCHEMA, (method, path, code)


def test_routes_with_a_body_give_and_document_400_and_413_and_others_neither(api: Api) -> None:
    too_large = b'{"name": "' + b"x" * 2_000_000 + b'"}'
    for method, path, operation in _operations(api):
        documented = _documented(operation)
        if "requestBody" not in operation:
            assert not documented & {400, 413}, (method, path, documented)
            continue
        for content, status in ((b'{"name": "\xff"}', 400), (too_large, 413)):
            r = _call(api, method, path, content)
            assert r.status_code == status, (method, path, r.text)
            assert status in documented, (method, path, documented)


@pytest.mark.parametrize(
    ("fault", "status"),
    [(OperationalError("database is locked"), 503), (RuntimeError("unforeseen"), 500)],
    ids=["store-unavailable", "unforeseen"],
)
def test_every_route_gives_and_documents_503_and_500_when_the_store_fails(
    served: Api, monkeypatch: pytest.MonkeyPatch, fault: Exception, status: int
) -> None:
    """The store fails on every query (the keys route reads the key ring instead: a key
    that cannot be loaded is its 503)."""
    operations = _operations(served)
    served.appraisal("final")  # a history, so that nothing is answered for an empty one
    assert served.get("/v1/reports/compliance").status_code == 200  # projected: no waits

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise fault

    def no_key(*args: Any, **kwargs: Any) -> Any:
        raise SigningKeyError("the signing key cannot be read") if status == 503 else fault

    keyring = served.client.app.state.services.ledger.keyring  # type: ignore[attr-defined]
    answered: dict[int, list[str]] = {}
    with monkeypatch.context() as m:
        m.setattr(SQLiteDatastore, "transaction", failing)
        m.setattr(keyring, "public_keys", no_key)
        for method, path, operation in operations:
            r = _call(served, method, path)
            assert r.status_code in _documented(operation), (method, path, r.status_code, r.text)
            assert r.headers["content-type"] == PROBLEM_JSON, (method, path)
            answered.setdefault(r.status_code, []).append(f"{method} {path}")
    assert set(answered) == {status}, answered
