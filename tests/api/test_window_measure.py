"""REM-2/REM-3's window measure is a named policy setting the agency chooses (rules.md):
`SES_LEDGER_WINDOW_MEASURE` sets it for the compliance report and for removal histories
asked without one."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import get_args

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import ApiSettings
from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from ledger.policies.removal import WINDOW_MEASURES
from ses_ledger import cli
from tests.api.story import Api
from tests.ledger_helpers import point_cli_at


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


def test_every_entry_point_takes_the_policy_s_window_measures(shared_api: Api) -> None:
    """The measures are named once, in `ledger.policies.removal`: the server's setting and
    the removal-history query parameter take exactly those, and so does
    `replay --window-measure` (which lists them itself: the CLI does not import the policies
    to start)."""
    assert get_args(ApiSettings.model_fields["window_measure"].annotation) == WINDOW_MEASURES
    paths = shared_api.client.app.openapi()["paths"]  # type: ignore[attr-defined]
    operation = paths["/v1/executives/{executive_id}/removal-history"]["get"]
    (param,) = [q for q in operation["parameters"] if q["name"] == "window_measure"]
    assert tuple(json.dumps(param["schema"]).count(f'"{m}"') for m in WINDOW_MEASURES) == (1, 1)
    (option,) = [a for a in _options(_full_parser()) if "--window-measure" in a.option_strings]
    assert tuple(option.choices or ()) == WINDOW_MEASURES


def _full_parser() -> argparse.ArgumentParser:
    cli._load_extensions()  # the sub-commands of other modules, `replay` among them
    return cli.build_parser()


def _options(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    """Every option of `parser` and of its subcommands, at any depth."""
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _options(sub)


def test_an_unknown_window_measure_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="window_measure"):
        ApiSettings(home=tmp_path, window_measure="fiscal-quarters")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("measure", "required"),
    [(None, True), ("rating-date", True), ("appraisal-cycle", False)],
)
def test_the_command_line_replay_judges_removal_by_the_same_setting(
    sqlite_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    measure: str | None,
    required: bool,
) -> None:
    """`ses-ledger replay` always judged REM-2/REM-3 by rating date: an agency that chose
    appraisal-cycle counting got "removal required" from the command line and not from the
    API, for the same record, the same day."""
    for api in _api(sqlite_config, measure):
        executive_id = api.new_executive()
        for fy in (2021, 2024):
            api.appraisal("final", executive_id=executive_id, fy=fy, level=2)
        served = api.get(
            f"/v1/executives/{executive_id}/removal-history", as_of="2024-12-31"
        ).json()
    point_cli_at(monkeypatch, sqlite_config)
    if measure is None:
        monkeypatch.delenv("SES_LEDGER_WINDOW_MEASURE", raising=False)
    else:
        monkeypatch.setenv("SES_LEDGER_WINDOW_MEASURE", measure)
    argv = ["replay", "--executive", executive_id, "--as-of-position", "1000000"]
    assert cli.main([*argv, "--as-of", "2024-12-31", "--json"]) == 0
    replayed = json.loads(capsys.readouterr().out)["removal_history"]
    assert replayed["window_measure"] == (measure or "rating-date")
    assert replayed["three_year"]["removal_required"] is required
    assert replayed == served


def test_an_unknown_window_measure_is_refused_by_replay_in_one_line(
    sqlite_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    point_cli_at(monkeypatch, sqlite_config)
    monkeypatch.setenv("SES_LEDGER_WINDOW_MEASURE", "fiscal-quarters")
    assert cli.main(["replay", "--executive", "E1", "--as-of-position", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SES_LEDGER_WINDOW_MEASURE" in err, err
