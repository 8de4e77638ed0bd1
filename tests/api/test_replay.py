"""Replays of the reports: the ledger as it stood at a position is the ledger as it stood at
that position's recorded_at (api-contract.md "Reads": `as_of_position=N` or `known_at`)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

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


@dataclass(frozen=True)
class Rated:
    executive_id: str
    appraisal_id: str
    level: int
    rated_on: date


AS_OF = ["2024-11-24", "2024-11-25", "2026-11-25", "2026-11-26"]


class History:
    """A random history through the API: two executives, FY2021-FY2025 appraisals in a
    shuffled order (earlier years backfilled), random levels, some periods extended into
    the next fiscal year, a reassignment after some Level 1 ratings. Every `every`-th write
    keeps what every read model answered right after it (`seen`: position, recorded_at,
    answers)."""

    def __init__(self, api: Api, rnd: random.Random, every: int) -> None:
        self.api, self.rnd, self.every = api, rnd, every
        self.writes = 0
        self.rated: list[Rated] = []
        self.appraisals: list[str] = []
        self.seen: list[tuple[int, str, list[str], dict[str, Any]]] = []
        self.executives = [api.new_executive() for _ in range(2)]

    def ok(self, path: str, body: dict[str, Any]) -> None:
        event = self.api.ok(path, body)["event"]
        self.writes += 1
        if self.writes % self.every == 0:
            known = list(self.appraisals)
            self.seen.append((event["position"], event["recorded_at"], known, self.reads(known)))

    def build(self) -> None:
        board_id = self.api.new_board()
        years = [(fy, e) for fy in range(2021, 2026) for e in self.executives]
        years = [y for y in years if self.rnd.random() < 0.8]
        self.rnd.shuffle(years)
        for fy, executive_id in years:
            self.appraisal(fy, executive_id, board_id)
        self.seen.append((0, "", self.appraisals, self.reads(self.appraisals)))

    def appraisal(self, fy: int, executive_id: str, board_id: str) -> None:
        appraisal_id = s.unique("A-")
        self.appraisals.append(appraisal_id)
        path = f"/v1/appraisals/{appraisal_id}"
        level = self.rnd.choice([1, 2, 2, 3, 4, 5])
        rated = fy
        plan = s.plan(appraisal_id, executive_id, fy)
        if self.rnd.random() < 0.3:  # Dec-Jun, extended to Nov: rated in the FY after `fy`
            start = s.d(fy - 1, 12, 1)
            plan |= {"period_start": start, "communicated_on": start, "period_end": s.d(fy, 6, 30)}
            self.ok("/v1/appraisals", plan)
            self.ok(f"{path}/progress-reviews", s.review(fy))
            extension = s.extension(fy) | {"new_period_end": s.d(fy, 11, 30)}
            self.ok(f"{path}/period-extension", extension)
            rated = fy + 1
        else:
            self.ok("/v1/appraisals", plan)
            self.ok(f"{path}/progress-reviews", s.review(fy))
        self.ok(f"{path}/initial-rating", s.initial(rated, level))
        self.ok(f"{path}/response-waiver", s.response_waiver(rated))
        self.ok(f"{path}/prb-recommendation", s.prb(rated, board_id, ["initial_rating"], level))
        self.ok(f"{path}/final-rating", s.final(rated, level))
        self.rated.append(Rated(executive_id, appraisal_id, level, date(rated, 11, 25)))
        if level == 1 and self.rnd.random() < 0.5:
            notice, effective = s.d(rated, 12, 1), s.d(rated + 1, 1, 6)
            action = s.personnel_action("reassignment", [appraisal_id], notice, effective)
            self.ok(f"/v1/executives/{executive_id}/personnel-actions", action)

    def reads(self, appraisals: list[str], **point: Any) -> dict[str, Any]:
        """Every read model's answer at a replay point (none: live)."""
        api, out = self.api, {}
        for e in self.executives:
            out[e] = api.get(f"/v1/executives/{e}", **point).json()
            out[f"{e}/ratings"] = api.get(f"/v1/executives/{e}/ratings", **point).json()
            for day in AS_OF:
                for measure in ("rating-date", "appraisal-cycle"):
                    query = {"as_of": day, "window_measure": measure, **point}
                    path = f"/v1/executives/{e}/removal-history"
                    out[f"{e}/{day}/{measure}"] = api.get(path, **query).json()
        for a in appraisals:
            out[a] = api.get(f"/v1/appraisals/{a}", **point).json()
        for day in AS_OF:
            query = {"as_of": day, **point}
            out[day] = api.get("/v1/reports/below-fully-successful", **query).json()
        for fy in range(2021, 2028):
            query = {"agency": "DOE", "cycle": f"FY{fy}", **point}
            out[f"FY{fy}"] = api.get("/v1/reports/rating-distribution", **query).json()
        return out


def _years_back(day: date, years: int) -> date:
    """D - years, as the contract's windows read it (Feb 29 has no earlier Feb 29: Mar 1)."""
    if (day.month, day.day) == (2, 29):
        return date(day.year - years, 3, 1)
    return day.replace(year=day.year - years)


def test_replays_equal_the_ledger_as_it_stood_for_random_histories(any_api: Api) -> None:
    """api-contract.md "Reads": at `as_of_position=N` and at `known_at` = N's recorded_at,
    every read model answers as the live one did right after the write at N (projected
    event by event); and the removal windows (REM-2, REM-3) and the below-Fully-Successful
    report hold what the contract's definitions give for the ratings recorded."""
    history = History(any_api, random.Random(20251), every=15)
    history.build()
    *past, (_, _, _, now) = history.seen
    for position, recorded_at, known, then in past:
        assert history.reads(known, as_of_position=position) == then, position
        assert history.reads(known, known_at=recorded_at) == then, recorded_at
    for executive_id in history.executives:
        mine = sorted(
            (r for r in history.rated if r.executive_id == executive_id), key=lambda r: r.rated_on
        )
        for day in AS_OF:
            d = date.fromisoformat(day)
            body = now[f"{executive_id}/{day}/rating-date"]
            for window, low, years in (("three_year", 3, 3), ("five_year", 2, 5)):
                counted = [r for r in mine if r.level < low and r.rated_on <= d]
                expected = [r.appraisal_id for r in counted if _years_back(d, years) <= r.rated_on]
                assert [r["appraisal_id"] for r in body[window]["ratings"]] == expected
                pairs = [
                    b.rated_on
                    for i, a in enumerate(counted)
                    for b in counted[i + 1 :]
                    if b.rated_on <= a.rated_on.replace(year=a.rated_on.year + years)
                ]
                assert body[window]["removal_required"] == bool(pairs)
                assert body[window]["triggered_on"] == (max(pairs).isoformat() if pairs else None)
            listed = {e["executive_id"]: e for e in now[day]["executives"]}
            below = [
                r.appraisal_id for r in mine if r.level < 3 and _years_back(d, 3) < r.rated_on <= d
            ]
            assert [
                r["appraisal_id"] for r in listed.get(executive_id, {}).get("ratings", [])
            ] == below


def test_an_evidence_bundle_as_the_ledger_stood_then(api_in_2024: Api) -> None:
    """api-contract.md "Reads": reads of executives accept `as_of_position` or `known_at`.
    The evidence bundle ignored both and served today's record, so a hearing asking for the
    record as it stood at N got entries the ledger did not yet hold. Now it holds only the
    entries up to N (or recorded by `known_at`), still verifying offline; before the
    executive's registration there is no record (404). (This ledger's clock stands still:
    every entry is recorded at `RECORDED`.)"""
    from ledger.offline_verify import verify_bundle

    api = api_in_2024
    appraisal = api.appraisal("final", fy=2024, level=2)
    path = f"/v1/executives/{appraisal.executive_id}/evidence-bundle"
    events = api.get(f"/v1/appraisals/{appraisal.appraisal_id}/events").json()["events"]
    cut = events[2]["position"]  # the plan and two steps after it
    whole = api.get(path).json()
    assert max(e["position"] for e in whole["entries"]) == events[-1]["position"]
    then = api.get(path, as_of_position=cut).json()
    positions = [e["position"] for e in then["entries"]]
    assert positions == [e["position"] for e in whole["entries"] if e["position"] <= cut]
    assert verify_bundle(then).ok and not verify_bundle(whole).problems
    assert api.get(path, known_at="2024-12-02T12:00:00Z").json()["entries"] == whole["entries"]
    registered = whole["entries"][0]
    assert registered["type"] == "ExecutiveRegistered"
    for point in (
        {"as_of_position": registered["position"] - 1},
        {"known_at": "2024-12-02T11:59:59.999999Z"},
    ):
        before = api.get(path, **point)
        assert before.status_code == 404, before.text
    both = api.get(path, as_of_position=1, known_at="2024-12-02T12:00:00Z")
    assert both.status_code == 422
    # Each parameter is named where it stands: the error named known_at alone.
    assert [e["loc"] for e in both.json()["errors"]] == [
        ["query", "as_of_position"],
        ["query", "known_at"],
    ]


#: Valid RFC 3339 timestamps whose moment in UTC lies outside years 1-9999.
BEYOND_UTC = ["9999-12-31T23:59:59-01:00", "0001-01-01T00:30:00+01:00"]


@pytest.mark.parametrize("known_at", BEYOND_UTC)
def test_a_known_at_beyond_the_calendar_in_utc_is_a_422_naming_it(api: Api, known_at: str) -> None:
    """api-contract.md "Reads" / "Errors": an invalid `known_at` is a 4xx problem naming the
    parameter. 9999-12-31T23:59:59-01:00 is RFC 3339, but in UTC it is year 10000, which
    Python's datetime cannot hold: converting it raised OverflowError, not ValueError, and
    the read was a 500 internal-error."""
    appraisal = api.appraisal("final", fy=2024, level=2)
    executive = f"/v1/executives/{appraisal.executive_id}"
    for path in (
        executive,
        f"{executive}/ratings",
        f"{executive}/removal-history",
        f"{executive}/evidence-bundle",
        f"/v1/appraisals/{appraisal.appraisal_id}",
        f"/v1/appraisals/{appraisal.appraisal_id}/events",
        "/v1/reports/below-fully-successful",
        "/v1/reports/compliance",
    ):
        r = api.get(path, known_at=known_at)
        assert r.status_code == 422, (path, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert [e["loc"] for e in r.json()["errors"]] == [["query", "known_at"]], r.text


@pytest.mark.parametrize("known_at", BEYOND_UTC)
def test_the_command_line_refuses_a_known_at_beyond_the_calendar_in_one_line(
    sqlite_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    known_at: str,
) -> None:
    """`ses-ledger replay --known-at` (and `audit`): bad input is exit status 2 with one
    line naming the option (`ses-ledger --help`), not a traceback (OverflowError, exit 1)."""
    from ses_ledger import cli
    from tests.ledger_helpers import point_cli_at

    point_cli_at(monkeypatch, sqlite_config)
    for argv in (
        ["replay", "--executive", "E1", "--known-at", known_at],
        ["audit", "--executive", "E1", "--known-at", known_at],
    ):
        with pytest.raises(SystemExit) as exited:
            cli.main(argv)
        assert exited.value.code == 2, argv
        err = capsys.readouterr().err
        assert "--known-at" in err and "Traceback" not in err, err


def test_a_known_at_in_the_future_is_judged_as_of_today(api: Api) -> None:
    """docs/api.md "Removal history and the below-Fully-Successful report": in a `known_at`
    read D defaults to the day the ledger stood at. A `known_at` in the future is the ledger
    as it stands now (`ses-ledger replay` says so), but D was the future day: the same
    events, asked at known_at=2031-01-01, gave a removal history whose three-year window
    (REM-2) was empty and a below-Fully-Successful report without the executive, both
    judged as of 2031-01-01, a day no one had reached. Now D is today, as in a live read."""
    executive_id = api.new_executive()
    for fy in (2024, 2025):
        api.appraisal("final", executive_id=executive_id, fy=fy, level=2)
    today = datetime.now(UTC).date().isoformat()
    history = f"/v1/executives/{executive_id}/removal-history"
    for path in (history, "/v1/reports/below-fully-successful", "/v1/reports/compliance"):
        live = api.get(path).json()
        future = api.get(path, known_at="2031-01-01T00:00:00Z").json()
        assert future["as_of"] == live["as_of"] == today, path
        assert future == live, path
    listed = api.get("/v1/reports/below-fully-successful", known_at="2031-01-01T00:00:00Z")
    assert [e["executive_id"] for e in listed.json()["executives"]] == [executive_id]
    assert api.get(history, known_at="2031-01-01T00:00:00Z").json()["three_year"]["ratings"]


@pytest.mark.parametrize("value", ["1_0", "+1", " 1", "1 ", "\u0663", "9" * 5000])
def test_an_as_of_position_not_written_in_digits_is_a_422_naming_it(api: Api, value: str) -> None:
    """api-contract.md "Reads": `as_of_position=N`, a position. Lax integer parsing read
    `1_0` as position 10 and `+1` or ` 1` as position 1, so a mistyped position silently
    answered the ledger as it stood somewhere else; now it is refused, as `ses-ledger replay
    --as-of-position` refuses it."""
    appraisal = api.appraisal("final", fy=2024, level=2)
    for path in (
        f"/v1/executives/{appraisal.executive_id}",
        f"/v1/appraisals/{appraisal.appraisal_id}",
        "/v1/reports/compliance",
    ):
        r = api.get(path, as_of_position=value)
        assert r.status_code == 422, (path, r.status_code, r.text)
        assert [e["loc"] for e in r.json()["errors"]] == [["query", "as_of_position"]], r.text
    assert api.get("/v1/reports/compliance", as_of_position="00").status_code == 200


def test_a_replay_at_another_agencys_position_does_not_reveal_its_day(
    ledger_config: LedgerConfig,
) -> None:
    """docs/api.md "Removal history ...": in an `as_of_position` read D defaults to the day
    the ledger stood at, the day the last event up to N was recorded. That event may be
    another agency's (or another executive's): a DOE auditor, hr_app or executive replaying
    at N was told the day DOT recorded its event at N (`as_of` of compliance, the
    below-Fully-Successful report and a removal history), and the rating distribution
    counted DOE's own final rating only if DOT's day came after its `rated_on`; position by
    position, the day of every other agency's entry, which `/v1/ledger/events` hides. D is
    now the day of the last event up to N that the token may read."""
    clock = [datetime(2024, 11, 20, 12, tzinfo=UTC)]
    ledger = LedgerApp(ledger_config, clock=lambda: clock[0])
    settings = ApiSettings(home=ledger_config.home, checkpoint_interval_seconds=0)
    app = create_app(ledger, settings=settings)
    try:
        with TestClient(app) as client:
            api = Api(client, app.state.services.token_key)
            # DOE's final Level 2 (rated Nov 25 2024) recorded ahead of its date, on Nov 20
            appraisal = api.appraisal("final", fy=2024, level=2)
            own_day = "2024-11-20"
            clock[0] = datetime(2024, 12, 10, 12, tzinfo=UTC)
            Api(client, api.key, agency="DOT").new_executive()  # position N, DOT's
            n = api.get("/v1/ledger/events", api.auditor, limit=1000).json()["events"][-1]
            assert n["data"]["agency"] == "DOT" and n["recorded_at"].startswith("2024-12-10")
            at_n = {"as_of_position": n["position"]}
            history = f"/v1/executives/{appraisal.executive_id}/removal-history"
            distribution = "/v1/reports/rating-distribution"
            doe = {
                "auditor": api.as_("auditor", subject="aud-doe"),
                "hr_app": api.hr,
                "executive": api.as_("executive", subject=appraisal.executive_id),
            }
            for role, headers in doe.items():
                paths = [history]
                if role != "executive":
                    paths += ["/v1/reports/compliance", "/v1/reports/below-fully-successful"]
                for path in paths:
                    r = api.get(path, headers, **at_n)
                    assert r.status_code == 200, r.text
                    assert r.json()["as_of"] == own_day, (role, path, r.json()["as_of"])
                counts = api.get(distribution, headers, cycle="FY2024", **at_n)
                if role != "executive":
                    assert counts.json()["counts"]["2"] == 0, (role, counts.text)
            # a `*` token reads every agency's events: the day of N, as before
            everyone = api.get("/v1/reports/compliance", api.auditor, **at_n).json()
            assert everyone["as_of"] == "2024-12-10"
            rated = api.get(distribution, api.auditor, cycle="FY2024", agency="DOE", **at_n)
            assert rated.json()["counts"]["2"] == 1, rated.text
            assert api.get(history, api.auditor, **at_n).json()["as_of"] == "2024-12-10"
    finally:
        ledger.close()
