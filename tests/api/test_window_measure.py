"""REM-2/REM-3's window measure is a named policy setting the agency chooses (rules.md):
`SES_LEDGER_WINDOW_MEASURE` sets it for the compliance report and for removal histories
asked without one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings
from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from tests.api.story import Api


def _api(config: LedgerConfig, measure: str | None) -> Iterator[Api]:
    extra = {} if measure is None else {"window_measure": measure}
    ledger = LedgerApp(config)
    settings = ApiSettings(home=config.home, checkpoint_interval_seconds=0, **extra)
    with TestClient(create_app(ledger, settings=settings)) as client:
        yield Api(client, client.app.state.services.token_key)  # type: ignore[attr-defined]
    ledger.close()


@pytest.mark.parametrize(
    ("measure", "required"),
    [(None, True), ("rating-date", True), ("appraisal-cycle", False)],
)
def test_rem_2_window_measure_setting_reaches_the_compliance_report(
    sqlite_config: LedgerConfig, measure: str | None, required: bool
) -> None:
    """Two final Level 2 ratings exactly three years apart (Nov 25 2021 and 2024): within
    three years by rating date, not by appraisal cycle (FY2021 and FY2024)."""
    for api in _api(sqlite_config, measure):
        executive_id = api.new_executive()
        for fy in (2021, 2024):
            api.appraisal("final", executive_id=executive_id, fy=fy, level=2)
        findings = api.get("/v1/reports/compliance", agency="DOE").json()["findings"]
        rem_2 = [f for f in findings if f["rule"] == "REM-2"]
        assert bool(rem_2) is required
        if rem_2:
            assert f"(window measure: {measure or 'rating-date'})" in rem_2[0]["detail"]
        history = api.get(
            f"/v1/executives/{executive_id}/removal-history", as_of="2024-12-31"
        ).json()
        assert history["window_measure"] == (measure or "rating-date")
        assert history["three_year"]["removal_required"] is required


def test_an_unknown_window_measure_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="window_measure"):
        ApiSettings(home=tmp_path, window_measure="fiscal-quarters")  # type: ignore[arg-type]
