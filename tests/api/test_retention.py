"""RET-1: appraisal records are kept; nothing is purged or redacted. The ledger enforces it by
offering no way to: no route deletes or replaces, and every attempt is refused with nothing
changed."""

from __future__ import annotations

import re

from tests.api.story import Api


def _paths(api: Api) -> dict[str, dict[str, object]]:
    """The API's routes as its OpenAPI document publishes them."""
    paths: dict[str, dict[str, object]] = api.client.get("/openapi.json").json()["paths"]
    assert len(paths) > 20
    return paths


def test_ret_1_no_route_deletes_replaces_or_edits(api: Api) -> None:
    methods = {method.upper() for operations in _paths(api).values() for method in operations}
    assert methods == {"GET", "POST"}, methods


def test_ret_1_every_attempt_to_delete_or_replace_is_refused_and_changes_nothing(
    api: Api,
) -> None:
    executive_id = api.new_executive()
    board_id = api.new_board()
    appraisal_id = api.appraisal("final", executive_id=executive_id, board_id=board_id).appraisal_id
    ids = {
        "executive_id": executive_id,
        "appraisal_id": appraisal_id,
        "position": "1",
    }
    admin = api.as_("admin", agency="*")
    before = api.get("/v1/ledger/events", limit=1000).json()
    paths = sorted(
        {re.sub(r"\{(\w+)\}", lambda m: ids.get(m.group(1), "x"), path) for path in _paths(api)}
    )
    for path in paths:
        for method in ("DELETE", "PUT", "PATCH"):
            r = api.client.request(method, path, headers=admin, json={})
            assert r.status_code == 405, (method, path, r.status_code)
            assert r.headers["content-type"] == "application/problem+json"
    assert api.get("/v1/ledger/events", limit=1000).json() == before
    assert api.get(f"/v1/executives/{executive_id}").status_code == 200
