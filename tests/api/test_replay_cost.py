"""Historical reads through the API (api-contract.md "Reads": `as_of_position` /
`known_at`) build only the projections the endpoint reads (`projections.queries.QUERY_NEEDS`;
tests/integration/test_replay_cost.py compares every such answer with the full rebuild's)."""

from __future__ import annotations

from typing import Any

import pytest

from projections.queries import ReadModels
from projections.runner import Runner
from projections.store import MemoryStore
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


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The positions replays were built to from the log (a catch-up into an in-memory copy)."""
    seen: list[int] = []
    catch_up = Runner.catch_up

    def spy(self: Runner, *args: Any, **kwargs: Any) -> int:
        reached = catch_up(self, *args, **kwargs)
        if isinstance(self.store, MemoryStore) and self.projections:
            seen.append(reached)
        return reached

    monkeypatch.setattr(Runner, "catch_up", spy)
    return seen


def test_a_repeated_historical_report_is_not_rebuilt(api: Api, builds: list[int]) -> None:
    """The same report at the same bound, asked again (by anyone), is served from the
    replay built the first time; a report reading fewer projections reuses it too."""
    api.appraisal("final", fy=2024, level=2)
    head = api.ledger_size()
    first = api.get("/v1/reports/compliance", as_of_position=head - 2)
    assert first.status_code == 200
    assert len(builds) == 1
    for _ in range(3):
        again = api.get("/v1/reports/compliance", as_of_position=head - 2)
        assert again.json() == first.json()
    below = api.get("/v1/reports/below-fully-successful", as_of_position=head - 2)
    assert below.status_code == 200
    assert len(builds) == 1
    assert api.get("/v1/reports/compliance", as_of_position=head - 3).status_code == 200
    assert len(builds) == 2


def test_replay_builds_beyond_the_limit_are_503_with_retry_after(api: Api) -> None:
    """`SES_LEDGER_REPLAY_BUILDS` builds at once per process (docs/api.md): a historical
    report that finds every slot taken for `SES_LEDGER_REPLAY_WAIT_SECONDS` is a 503
    `unavailable` with Retry-After (docs/api.md "Errors"), never a queue of CPU-heavy
    builds; one executive's replay, and a kept one, are still served."""
    a = api.appraisal("final", fy=2024, level=2)
    head = api.ledger_size()
    kept = api.get("/v1/reports/below-fully-successful", as_of_position=head)
    assert kept.status_code == 200
    services = api.client.app.state.services  # type: ignore[attr-defined]
    replays = services.read_models.replays
    replays.wait_seconds = 0.05
    assert replays._slots.acquire(timeout=1)  # a build in progress elsewhere
    try:
        busy = api.get("/v1/reports/compliance", as_of_position=head - 1)
        assert busy.status_code == 503
        assert busy.headers["Retry-After"] == "1"
        assert busy.headers["content-type"].startswith("application/problem+json")
        assert busy.json()["type"] == "urn:ses-ledger:problem:unavailable"
        assert "as_of_position" in busy.json()["detail"]
        again = api.get("/v1/reports/below-fully-successful", as_of_position=head)
        assert again.status_code == 200 and again.json() == kept.json()
        one = api.get(f"/v1/executives/{a.executive_id}/ratings", as_of_position=head - 1)
        assert one.status_code == 200
    finally:
        replays._slots.release()
    assert api.get("/v1/reports/compliance", as_of_position=head - 1).status_code == 200
