"""HEAD wherever GET is (RFC 9110 9.3.2): same status and header fields, no content.

The routes are enumerated from the app, so a GET route added later is covered (its path
parameters must be named in `PATH_VALUES`, its required query in `QUERIES`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts

from tests.api.story import Api

#: Headers that may differ between two answers to the same request.
VOLATILE = {"server-timing", "date"}

QUERIES: dict[str, dict[str, Any]] = {
    "/v1/reports/rating-distribution": {"agency": "DOE", "cycle": "FY2024"},
    "/v1/ledger/proofs/inclusion": {"position": 1},
    "/v1/ledger/proofs/consistency": {"first": 1},
    "/v1/reports/audit-trail": {"actor": "hr-app-1"},
}


def _get_routes(api: Api) -> list[str]:
    """Every path the app answers GET on (its own routes and FastAPI's documentation)."""
    app: Any = api.client.app  # type: ignore[attr-defined]
    paths = [r.path for r in iter_route_contexts(app.routes) if "GET" in (r.methods or ())]
    assert "/healthz" in paths and "/v1/ledger/events" in paths
    return sorted(paths)


def _same_but_empty(get: Any, head: Any, where: str) -> None:
    assert head.status_code == get.status_code, (where, get.status_code, head.status_code)
    assert head.content == b"", where
    assert {k: v for k, v in head.headers.items() if k not in VOLATILE} == {
        k: v for k, v in get.headers.items() if k not in VOLATILE
    }, where
    assert int(head.headers["content-length"]) == len(get.content), where


@pytest.mark.parametrize("token", [True, False], ids=["auditor", "no-token"])
def test_every_get_route_answers_head_as_its_get_without_the_body(api: Api, token: bool) -> None:
    a = api.appraisal("final")
    path_values = {
        "executive_id": a.executive_id,
        "appraisal_id": a.appraisal_id,
        "position": "1",
    }
    headers = api.auditor if token else {}
    statuses = set()
    for template in _get_routes(api):
        path = template.format(**path_values)
        query = QUERIES.get(template, {})
        get = api.client.get(path, params=query, headers=headers)
        head = api.client.head(path, params=query, headers=headers)
        _same_but_empty(get, head, path)
        if token:
            assert get.status_code == 200, (path, get.text)
        statuses.add(get.status_code)
    assert statuses == ({200} if token else {200, 401})


def test_head_on_a_path_without_get_is_405_and_allow_names_head_beside_get(api: Api) -> None:
    r = api.client.head("/v1/executives", headers=api.hr)
    assert r.status_code == 405 and r.content == b"" and r.headers["allow"] == "POST"
    r = api.client.post("/healthz")
    assert r.status_code == 405 and r.headers["allow"] == "GET, HEAD"
    assert r.headers["content-type"] == "application/problem+json"


DOCUMENTATION_PATHS = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")


def test_openapi_lists_get_only_and_says_head_is_answered_too(api: Api) -> None:
    """docs/api.md, Reads: HEAD is answered on every GET path of `/openapi.json` and on the
    documentation's own paths, and `/openapi.json` lists the GET operations only (it said
    nothing of HEAD, so a client reading it could not know HEAD was served)."""
    spec = api.client.get("/openapi.json").json()
    assert [p for p, ops in spec["paths"].items() if "head" in ops] == []
    assert "`HEAD` is answered wherever `GET` is" in spec["info"]["description"]
    get_paths = {p for p, ops in spec["paths"].items() if "get" in ops}
    assert get_paths | set(DOCUMENTATION_PATHS) == set(_get_routes(api))
    docs = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    for path in DOCUMENTATION_PATHS:
        assert f"`{path}`" in docs, path
        r = api.client.head(path)
        assert r.status_code == 200 and r.content == b"", path
