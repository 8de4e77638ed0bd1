"""Replays of the reports: the ledger as it stood at a position is the ledger as it stood at
that position's recorded_at (api-contract.md "Reads": `as_of_position=N` or `known_at`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings
from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from tests.api import story as s
from tests.api.story import Api

#: The ledger's clock: Dec 2 2024, two months into the FY2025 appraisal period.
RECORDED = datetime(2024, 12, 2, 12, tzinfo=UTC)


@pytest.fixture
def api_in_2024(ledger_config: LedgerConfig) -> Iterator[Api]:
    """A fresh ledger on each backend whose clock stands at `RECORDED`."""
    ledger = LedgerApp(ledger_config, clock=lambda: RECORDED)
    settings = ApiSettings(home=ledger_config.home, checkpoint_interval_seconds=0)
    app = create_app(ledger, settings=settings)
    with TestClient(app) as client:
        yield Api(client, app.state.services.token_key)
    ledger.close()


def test_compliance_at_a_position_is_judged_on_the_day_the_ledger_stood_there(
    api_in_2024: Api,
) -> None:
    """MON-1 judges only periods ended by the report's day. At position N the FY2025 plan
    (no progress review yet) was two months into its period, as `known_at` of N's
    recorded_at says; judging that state as of today flagged a review the ledger of that
    day could not yet miss, so one ledger state gave two compliance reports."""
    api = api_in_2024
    appraisal = api.appraisal("planned", fy=2025)
    events = api.get(f"/v1/appraisals/{appraisal.appraisal_id}/events").json()["events"]
    position, recorded_at = events[-1]["position"], events[-1]["recorded_at"]
    by_time = api.get("/v1/reports/compliance", known_at=recorded_at).json()
    by_position = api.get("/v1/reports/compliance", as_of_position=position).json()
    assert by_time["findings"] == []
    assert by_position == by_time
    assert s.date.fromisoformat(by_position["as_of"]) == RECORDED.date()


def test_removal_windows_in_a_replay_default_to_the_day_it_stands_at(api_in_2024: Api) -> None:
    """REM-2 / the below-Fully-Successful report as of D (api-contract.md "Removal history"),
    read at `as_of_position` or `known_at` without `as_of`: D is the day the ledger stood at,
    as the compliance report and `ses-ledger replay` take it. Taken as today, the Level 2
    rated Nov 25 2022 (inside the three years back from Dec 2 2024) had left both windows."""
    api = api_in_2024
    first = api.appraisal("final", fy=2022, level=2)
    second = api.appraisal("final", executive_id=first.executive_id, fy=2024, level=2)
    events = api.get(f"/v1/appraisals/{second.appraisal_id}/events").json()["events"]
    position, recorded_at = events[-1]["position"], events[-1]["recorded_at"]
    both = [first.appraisal_id, second.appraisal_id]
    for point in ({"as_of_position": position}, {"known_at": recorded_at}):
        history = api.get(f"/v1/executives/{first.executive_id}/removal-history", **point).json()
        assert history["as_of"] == RECORDED.date().isoformat()
        assert [r["appraisal_id"] for r in history["three_year"]["ratings"]] == both
        report = api.get("/v1/reports/below-fully-successful", **point).json()
        assert report["as_of"] == RECORDED.date().isoformat()
        listed = {e["executive_id"]: e["ratings"] for e in report["executives"]}
        assert [r["appraisal_id"] for r in listed[first.executive_id]] == both
