"""Historical reads through the API (api-contract.md "Reads": `as_of_position` /
`known_at`) build only the projections the endpoint reads (`projections.queries.QUERY_NEEDS`;
tests/integration/test_replay_cost.py compares every such answer with the full rebuild's)."""

from __future__ import annotations

from typing import Any

import pytest

from projections.queries import ReadModels
from tests.api.story import Api


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The projections each replay the API asks for builds, in request order."""
    seen: list[list[str]] = []
    as_of = ReadModels.as_of

    def spy(self: ReadModels, *args: Any, **kwargs: Any) -> ReadModels:
        copy = as_of(self, *args, **kwargs)
        seen.append([p.name for p in copy.projections])
        return copy

    monkeypatch.setattr(ReadModels, "as_of", spy)
    return seen


def test_each_historical_endpoint_builds_only_what_it_reads(
    api: Api, built: list[list[str]]
) -> None:
    """api-contract.md "Reads": the same bodies as the live reads at the head, from replays
    that leave out the audit index (and compliance, for all but the compliance report)."""
    a = api.appraisal("final", fy=2024, level=2)
    head = api.ledger_size()
    executive = f"/v1/executives/{a.executive_id}"
    appraisal = f"/v1/appraisals/{a.appraisal_id}"
    expected = {
        executive: ["current_ratings"],
        f"{executive}/ratings": ["current_ratings"],
        f"{executive}/removal-history": ["current_ratings", "removal_history"],
        appraisal: ["current_ratings"],
        f"{appraisal}/events": [],
        "/v1/reports/below-fully-successful": ["current_ratings"],
        "/v1/reports/rating-distribution": ["current_ratings"],
        "/v1/reports/compliance": ["current_ratings", "removal_history", "compliance"],
    }
    for path, names in expected.items():
        extra = {"cycle": "FY2024", "agency": "DOE"} if "distribution" in path else {}
        live = api.get(path, **extra)
        then = api.get(path, as_of_position=head, **extra)
        assert live.status_code == then.status_code == 200, (path, then.text)
        assert then.json() == live.json(), path
        assert built[-1] == names, path
