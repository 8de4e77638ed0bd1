"""The read models against an independent, deliberately naive model of the contract.

The model below is written from api-contract.md ("Reads": removal history as of D, the
reports) and rules.md (REM-1..REM-3, RAT-9), docs/api.md's notes on `current_rating` and
the distribution, without calling `ledger.policies` or `projections`. Hypothesis generates
valid histories (career and noncareer executives, several cycles, final ratings clustered
around exact 3- and 5-year boundaries and Feb 29, extended periods, personnel actions on
boundary days, periods recorded out of order) through the domain commands, and for several
dates D compares `ReadModels` with the model; and the incrementally caught-up digest with a
full rebuild's.

Runs in the normal suite with few examples; for a long run:
    SES_ORACLE_EXAMPLES=500 pytest tests/integration/test_read_model_oracle.py
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from api.auth import issue_token
from api.main import create_app
from api.settings import ApiSettings
from ledger.application import LedgerApp
from projections.queries import ReadModels
from tests.conftest import PG_URL, SCHEMA_PREFIX, require_postgres
from tests.ledger_helpers import fresh_app

EXAMPLES = int(os.environ.get("SES_ORACLE_EXAMPLES", "30"))
PG_EXAMPLES = max(2, EXAMPLES // 4)

BASIC = [
    {"code": "leading_change", "weight": 15, "requirements": ["Lead change."]},
    {"code": "leading_people", "weight": 15, "requirements": ["Lead people."]},
    {"code": "business_acumen", "weight": 15, "requirements": ["Budget."]},
    {"code": "building_coalitions", "weight": 15, "requirements": ["Partner."]},
    {"code": "results_driven", "weight": 40, "requirements": ["Cut time 20% by Sep 30."]},
]
SES_2025 = [
    {"code": "faithful_administration", "weight": 30, "requirements": ["Apply the law."]},
    {"code": "government_efficiency", "weight": 15, "requirements": ["Cut cost 5% by Q3."]},
    {"code": "merit_and_competence", "weight": 15, "requirements": ["Hire on merit."]},
    {"code": "accountability_and_fairness", "weight": 15, "requirements": ["Be fair."]},
    {
        "code": "organizational_goals",
        "weight": 25,
        "requirements": [
            "Strategic Goal 1: close audits",
            "Strategic Goal 2: reduce cost",
            "Strategic Goal 3: publish plan",
        ],
    },
]
INAUGURATIONS = [date(y, 1, 20) for y in (2017, 2021, 2025, 2029)]
AGENCIES = ["DOE", "DOT"]
MEASURES = ("rating-date", "appraisal-cycle")
NONCAREER = ("noncareer", "limited_term", "limited_emergency")


# --- the naive model ----------------------------------------------------------------------


def plus_years(d: date, n: int) -> date:
    """Calendar years; Feb 29 becomes Feb 28 in a common year (rules.md default measure)."""
    if d.month == 2 and d.day == 29 and not _leap(d.year + n):
        return date(d.year + n, 2, 28)
    return date(d.year + n, d.month, d.day)


def _leap(y: int) -> bool:
    return y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)


def window_start(d: date, n: int) -> date:
    """ "D - n years" as the window's first day.

    Contract question (reported): for D = Feb 29 the literal "D - 3 years" is Feb 28; the
    code starts the window a day later (Mar 1), the first day that is "at most n years" from
    D under the pair measure. The two readings differ only when D is Feb 29; the model takes
    the code's documented reading (ledger/policies/removal.py) so the rest can be compared.
    """
    start = plus_years(d, -n)
    return start if plus_years(start, n) >= d else start + timedelta(days=1)


def fy(d: date) -> int:
    return d.year + 1 if d.month >= 10 else d.year


@dataclass
class Rating:
    appraisal_id: str
    executive_id: str
    level: int
    rated_on: date
    period_end: date
    policy: str
    seq: int  # recording order
    position: int = 0  # the final rating's ledger position
    recorded_at: str = ""


@dataclass
class Action:
    action: str
    notice_on: date
    position: int = 0


@dataclass
class World:
    career: dict[str, bool] = field(default_factory=dict)
    agency: dict[str, str] = field(default_factory=dict)
    ratings: list[Rating] = field(default_factory=list)
    actions: dict[str, list[Action]] = field(default_factory=dict)
    waivers: dict[tuple[str, str], date] = field(default_factory=dict)


def model_current(w: World, e: str) -> dict[str, Any] | None:
    mine = [r for r in w.ratings if r.executive_id == e]
    if not mine:
        return None
    r = max(mine, key=lambda r: (r.period_end, r.rated_on, r.seq))
    return {"appraisal_id": r.appraisal_id, "level": r.level, "rated_on": r.rated_on.isoformat()}


def _window(ratings: list[Rating], d: date, n: int, rule: str, measure: str) -> dict[str, Any]:
    if measure == "rating-date":
        start = window_start(d, n)
        in_window = [r for r in ratings if start <= r.rated_on <= d]
    else:
        # appraisal-cycle (ledger/policies/removal.py's docstring; the contract names the
        # measure only): the n latest cycles completed by D, or ending with a later cycle
        # already rated by D
        newest = max([fy(d + timedelta(days=1)) - 1, *(fy(r.period_end) for r in ratings)])
        in_window = [r for r in ratings if fy(r.period_end) > newest - n]
    in_window.sort(key=lambda r: (r.rated_on, r.seq))
    triggered = None
    for a in ratings:
        for b in ratings:
            if a is b or a.rated_on > b.rated_on or (a.rated_on == b.rated_on and a.seq > b.seq):
                continue
            if measure == "rating-date":
                paired = b.rated_on <= plus_years(a.rated_on, n)
            else:  # n consecutive cycles: at most n - 1 apart
                paired = abs(fy(a.period_end) - fy(b.period_end)) < n
            if paired:
                triggered = b.rated_on if triggered is None else max(triggered, b.rated_on)
    return {
        "ratings": [(r.appraisal_id, r.level, r.rated_on.isoformat()) for r in in_window],
        "removal_required": triggered is not None,
        "triggered_on": None if triggered is None else triggered.isoformat(),
        "rule": rule,
    }


def model_removal(w: World, e: str, d: date, measure: str = "rating-date") -> dict[str, Any]:
    counted = [r for r in w.ratings if r.executive_id == e and r.rated_on <= d]
    level1 = [r for r in counted if r.level == 1]
    due = False
    if level1:
        latest = max(r.rated_on for r in level1)
        due = not any(
            a.action in ("reassignment", "transfer", "demotion", "removal")
            and latest <= a.notice_on <= d
            for a in w.actions.get(e, [])
        )
    return {
        "window_measure": measure,
        "three_year": _window([r for r in counted if r.level < 3], d, 3, "REM-2", measure),
        "five_year": _window(level1, d, 5, "REM-3", measure),
        "level1_action_due": due,
    }


def model_below_fs(w: World, d: date) -> dict[str, list[tuple[str, int, str]]]:
    out: dict[str, list[tuple[str, int, str]]] = {}
    since = window_start(d, 3)
    for r in sorted(w.ratings, key=lambda r: (r.rated_on, r.seq)):
        if r.level < 3 and since < r.rated_on <= d:
            out.setdefault(r.executive_id, []).append(
                (r.appraisal_id, r.level, r.rated_on.isoformat())
            )
    return out


def model_distribution(w: World, agency: str, cycle: int, today: date) -> dict[str, Any]:
    rs = [
        r
        for r in w.ratings
        if w.agency[r.executive_id] == agency and fy(r.period_end) == cycle and r.rated_on <= today
    ]
    counts = {str(i): sum(1 for r in rs if r.level == i) for i in range(1, 6)}

    def last_by_executive(rows: list[Rating]) -> dict[str, Rating]:
        by: dict[str, Rating] = {}
        for r in sorted(rows, key=lambda r: (r.period_end, r.rated_on, r.seq)):
            by[r.executive_id] = r
        return by

    career = last_by_executive([r for r in rs if w.career[r.executive_id]])
    share = sum(1 for r in career.values() if r.level >= 4) / len(career) if career else None
    capped = last_by_executive(
        [r for r in rs if w.career[r.executive_id] and r.policy == "ses-2025"]
    )
    high = sum(1 for r in capped.values() if r.level >= 4)
    waiver = w.waivers.get((agency, f"FY{cycle}"))
    waived = waiver is not None and waiver <= today
    rat9 = len(capped) >= 5 and high * 10 > 3 * len(capped) and not waived
    return {"counts": counts, "share": share, "rat9": rat9}


# --- histories ------------------------------------------------------------------------------


def blackout(d: date) -> bool:
    """PER-3: a career executive's rating less than 120 days after an Inauguration Day."""
    return any(i < d < i + timedelta(days=120) for i in INAUGURATIONS)


ANCHORS = [
    date(2019, 2, 28),
    date(2020, 2, 29),
    date(2020, 3, 1),
    date(2021, 3, 1),
    date(2022, 11, 15),
    date(2023, 2, 28),
    date(2023, 3, 1),
    date(2024, 2, 29),
    date(2024, 2, 28),
]


@st.composite
def histories(draw: st.DrawFn) -> dict[str, Any]:
    n_exec = draw(st.integers(2, 8))
    executives = []
    appraisals = []
    # RAT-9 needs 5 or more career executives rated under ses-2025 in one agency and cycle
    # by today (2026-12-01 on the test clock's day): a cluster of FY2026 ratings in Nov 2026
    cluster = draw(st.booleans())
    for i in range(n_exec):
        career = (cluster and i < 5) or draw(st.booleans()) or draw(st.booleans())
        agency = "DOE" if cluster and i < 6 else draw(st.sampled_from(AGENCIES))
        kind = "career" if career else draw(st.sampled_from(NONCAREER))
        executives.append((f"E{i}", agency, kind))
        anchor = draw(st.sampled_from(ANCHORS))
        used: set[date] = set()
        for j in range(draw(st.integers(0, 4))):
            rated = plus_years(anchor, draw(st.integers(0, 6))) + timedelta(
                days=draw(st.sampled_from([-1, 0, 0, 1]))
            )
            if career and (blackout(rated) or blackout(rated - timedelta(days=2))):
                continue
            if rated in used and draw(st.booleans()):
                continue  # sometimes two final ratings on one day (ties: log order)
            used.add(rated)
            level = draw(st.sampled_from([1, 1, 2, 2, 3, 4, 5]))
            shape = draw(st.sampled_from(["full", "extended", "cross-cycle", "oct-1"]))
            appraisals.append((f"A-E{i}-{j}", f"E{i}", rated, level, shape))
        if cluster and (i < 5 or draw(st.booleans())):
            rated = date(2026, 11, draw(st.integers(1, 30)))
            level = draw(st.sampled_from([3, 4, 4, 5]))
            appraisals.append((f"A-E{i}-c", f"E{i}", rated, level, "full"))
    order = draw(st.permutations(range(len(appraisals))))
    actions = []
    finals = list(appraisals)
    for _k in range(draw(st.integers(0, 4))):
        if not finals:
            break
        target = draw(st.sampled_from(finals))
        notice = target[2] + timedelta(days=draw(st.sampled_from([-1, 0, 1, 40])))
        kind = draw(st.sampled_from(["reassignment", "transfer", "demotion", "removal"]))
        actions.append((target[1], kind, notice, draw(st.integers(0, len(appraisals)))))
    waivers = draw(
        st.lists(
            st.tuples(
                st.sampled_from(AGENCIES),
                st.sampled_from([2025, 2026]),
                st.sampled_from([date(2025, 12, 1), date(2026, 11, 30), date(2027, 1, 1)]),
            ),
            max_size=2,
            unique_by=lambda t: (t[0], t[1]),
        )
    )
    extra = draw(st.lists(st.dates(date(2019, 1, 1), date(2032, 12, 31)), max_size=3))
    return {
        "executives": executives,
        "appraisals": [appraisals[i] for i in order],
        "actions": actions,
        "waivers": waivers,
        "extra_dates": extra,
        "catch_up_every": draw(st.integers(1, 4)),
    }


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=1)
        return self.now


def _period(rated: date, shape: str) -> tuple[date, date, date | None, str]:
    """(start, planned end, extended end or None, policy) of a period rated on `rated`."""
    pfy = fy(rated) - 1
    start = date(pfy - 1, 10, 1)
    if shape == "cross-cycle" and date(pfy, 1, 1) < date(2025, 10, 1):
        # basic policy: Jan-Jun, extended to Dec 31, whose fiscal year is the next one
        start = date(pfy, 1, 1)
        return start, date(pfy, 6, 30), date(pfy, 12, 31), "ses-basic-2012"
    policy = "ses-2025" if start >= date(2025, 10, 1) else "ses-basic-2012"
    if shape == "oct-1" and policy == "ses-basic-2012":
        # a basic period ending Oct 1: the first day of the next cycle
        return date(pfy - 1, 10, 2), date(pfy, 10, 1), None, policy
    if shape == "extended":
        return start, date(pfy, 6, 30), date(pfy, 9, 30), policy
    return start, date(pfy, 9, 30), None, policy


def record(app: LedgerApp, h: dict[str, Any], models: ReadModels) -> World:
    w = World()
    for e, agency, kind in h["executives"]:
        app.register_executive(
            e,
            name=f"Name {e}",
            title="Deputy",
            pay_plan="ES",
            agency=agency,
            duty_station="Washington, DC",
            appointment_type=kind,
            probationary=False,
            appointed_on=date(2015, 1, 5),
            actor="hr-1",
            submitted_by="hr-app-1",
        )
        # RAT-9 and the share count career appointees only (rules.md, api-contract.md)
        w.career[e], w.agency[e] = kind == "career", agency
        w.actions[e] = []
    for agency in AGENCIES:
        app.register_review_board(
            f"PRB-{agency}",
            agency=agency,
            federal_register_published_on=date(2015, 1, 2),
            members=[{"member_id": f"M{i}", "name": f"M {i}", "career": True} for i in (1, 2, 3)],
            actor="admin-1",
            submitted_by="hr-app-1",
        )
    pending = sorted(h["actions"], key=lambda a: a[3])
    seq = 0
    for index, (aid, e, rated, level, shape) in enumerate(h["appraisals"]):
        if index % h["catch_up_every"] == 0:
            models.catch_up()  # incremental: later events meet cached and stored rows
        while pending and pending[0][3] <= index:
            _action(app, w, *pending.pop(0)[:3])
        start, end, extended, policy = _period(rated, shape)
        app.set_plan(
            aid,
            executive_id=e,
            policy=policy,
            period_start=start,
            period_end=end,
            rating_official_id="R1",
            communicated_on=start,
            elements=SES_2025 if policy == "ses-2025" else BASIC,
            submitted_by="hr-app-1",
        )

        def step(command: str, actor: str = "R1", aid: str = aid, **fields: Any) -> None:
            app.appraisal_command(aid, command, submitted_by="hr-app-1", actor=actor, **fields)

        if extended is not None:
            step("extend_period", extended_on=end, new_period_end=extended, reason="Detail.")
        step("review_progress", reviewed_on=start + timedelta(days=30), reviewer_id="R1", notes="x")
        codes = [x["code"] for x in (SES_2025 if policy == "ses-2025" else BASIC)]
        initial_on = rated - timedelta(days=2)
        step(
            "issue_initial_rating",
            rated_on=initial_on,
            rating_official_id="R1",
            element_levels=dict.fromkeys(codes, level if level > 1 else 1),
            narrative="As documented.",
            shared_on=initial_on,
        )
        step("waive_response", actor=e, waived_on=initial_on)
        board = f"PRB-{w.agency[e]}"
        step(
            "recommend_by_prb",
            actor=board,
            board_id=board,
            members_present=["M1", "M2", "M3"],
            recommended_on=rated - timedelta(days=1),
            recommended_level=level,
            rationale="Considered.",
            considered=["initial_rating"],
        )
        final = app.appraisal_command(
            aid,
            "assign_final_rating",
            submitted_by="hr-app-1",
            actor="AA1",
            appointing_authority_id="AA1",
            rated_on=rated,
            level=level,
        )
        seq += 1
        position = int(final.event["position"])
        recorded_at = str(final.event["recorded_at"])
        w.ratings.append(
            Rating(aid, e, level, rated, extended or end, policy, seq, position, recorded_at)
        )
    for a in pending:
        _action(app, w, *a[:3])
    for agency, cycle, granted in h["waivers"]:
        app.grant_rating_cap_waiver(
            agency=agency,
            cycle=f"FY{cycle}",
            granted_on=granted,
            reference="Presidential memorandum",
            actor="admin-1",
            submitted_by="hr-app-1",
        )
        w.waivers[(agency, f"FY{cycle}")] = granted
    return w


def _action(app: LedgerApp, w: World, e: str, kind: str, notice: date) -> None:
    result = app.record_personnel_action(
        e,
        action=kind,
        basis_appraisal_ids=[],
        notice_on=notice,
        effective_on=notice + timedelta(days=30),
        authority="5 CFR 359 subpart E",
        hearing_requested_on=None,
        actor="hr-1",
        submitted_by="hr-app-1",
    )
    w.actions[e].append(Action(kind, notice, int(result.event["position"])))


def query_dates(w: World, h: dict[str, Any]) -> list[date]:
    days = set(h["extra_dates"]) | {date(2024, 2, 29), date(2028, 2, 29), date(2027, 2, 28)}
    for r in w.ratings:
        for n in (0, 3, 5):
            for delta in (-1, 0, 1):
                days.add(plus_years(r.rated_on, n) + timedelta(days=delta))
    for actions in w.actions.values():
        days.update(a.notice_on for a in actions)
    return sorted(days)


CURRENT_KEYS = ("appraisal_id", "level", "rated_on")


def _removal_fields(body: dict[str, Any]) -> dict[str, Any]:
    got: dict[str, Any] = {
        key: {
            "ratings": [
                (r["appraisal_id"], r["level"], r["rated_on"]) for r in body[key]["ratings"]
            ],
            **{k: body[key][k] for k in ("removal_required", "triggered_on", "rule")},
        }
        for key in ("three_year", "five_year")
    }
    got["level1_action_due"] = body["level1_action_due"]
    got["window_measure"] = body["window_measure"]
    return got


def _listed(report: dict[str, Any]) -> dict[str, list[tuple[str, int, str]]]:
    return {
        x["executive_id"]: [(r["appraisal_id"], r["level"], r["rated_on"]) for r in x["ratings"]]
        for x in report["executives"]
    }


def check(app: LedgerApp, h: dict[str, Any]) -> None:
    models = ReadModels(app)
    w = record(app, h, models)
    models.catch_up()
    for e in w.career:
        current = (models.executive(e) or {}).get("current_rating")
        got = (
            None
            if current is None
            else {k: current[k] for k in ("appraisal_id", "level", "rated_on")}
        )
        assert got == model_current(w, e), e
    for d in query_dates(w, h):
        if d.month == 2 and d.day == 29:
            event("as of Feb 29")
        for e, measure in itertools.product(w.career, MEASURES):
            body = models.removal_history(e, d, measure)
            got = _removal_fields(body)
            assert got == model_removal(w, e, d, measure), (e, d.isoformat(), measure)
        listed = _listed(models.below_fully_successful(d))
        assert listed == model_below_fs(w, d), d.isoformat()
        agency = AGENCIES[d.toordinal() % 2]
        assert _listed(models.below_fully_successful(d, agency)) == {
            e: rows for e, rows in model_below_fs(w, d).items() if w.agency[e] == agency
        }, (d.isoformat(), agency)
    today = models.default_as_of()
    for agency in AGENCIES:
        for cycle in sorted({fy(r.period_end) for r in w.ratings} | {2026}):
            body = models.rating_distribution(agency, f"FY{cycle}")
            want = model_distribution(w, agency, cycle, today)
            event(f"RAT-9 finding: {want['rat9']}")
            assert body["counts"] == want["counts"], (agency, cycle)
            assert body["share_levels_4_5"] == pytest.approx(want["share"]), (agency, cycle)
            assert any(f["rule"] == "RAT-9" for f in body["findings"]) == want["rat9"], (
                agency,
                cycle,
            )
    compare_api(app, models, w, query_dates(w, h)[::8])  # wiring: a sample of days
    compare_replays(models, w, query_dates(w, h)[::3])
    event(f"level 1 ratings: {min(3, sum(r.level == 1 for r in w.ratings))}")
    incremental = models.digest()
    fresh = ReadModels(app)
    fresh.runner.rebuild()
    assert fresh.digest() == incremental


def compare_replays(models: ReadModels, w: World, days: list[date]) -> None:
    """`as_of_position=N`: the ledger as it stood, i.e. the model of the prefix."""
    cuts = sorted({r.position for r in w.ratings})
    for cut in cuts[len(cuts) // 3 :: max(1, len(cuts) // 2)]:
        prefix = World(
            career=w.career,
            agency=w.agency,
            ratings=[r for r in w.ratings if r.position <= cut],
            actions={e: [a for a in acts if a.position <= cut] for e, acts in w.actions.items()},
        )
        at = next(r.recorded_at for r in w.ratings if r.position == cut)
        # known_at=<the cut's recorded_at>: the same ledger, by time instead of position
        past = models.as_of(position=cut) if cut % 2 else models.as_of(known_at=at)
        for e in w.career:
            current = (past.executive(e) or {}).get("current_rating")
            got = None if current is None else {k: current[k] for k in CURRENT_KEYS}
            assert got == model_current(prefix, e), (cut, e)
            for d, measure in itertools.product(days, MEASURES):
                body = past.removal_history(e, d, measure)
                assert _removal_fields(body) == model_removal(prefix, e, d, measure), (
                    cut,
                    e,
                    d,
                    measure,
                )
        for d in days:
            assert _listed(past.below_fully_successful(d)) == model_below_fs(prefix, d), (cut, d)


def compare_api(app: LedgerApp, models: ReadModels, w: World, days: list[date]) -> None:
    """The API's bodies are the read models' (so the model's verdicts hold for them too)."""
    settings_ = ApiSettings(home=app.config.home, checkpoint_interval_seconds=0)
    api_app = create_app(app, settings=settings_)
    with TestClient(api_app) as client:
        token = issue_token(
            api_app.state.services.token_key,
            subject="auditor-1",
            roles=("auditor",),
            agency="*",
            ttl_seconds=600,
        )
        headers = {"Authorization": f"Bearer {token}"}

        def get(path: str, **params: Any) -> Any:
            r = client.get(path, params=params, headers=headers)
            assert r.status_code == 200, (path, params, r.text)
            return r.json()

        for e in w.career:
            body = get(f"/v1/executives/{e}")
            assert body["current_rating"] == (models.executive(e) or {})["current_rating"]
            for d in days:
                for measure in MEASURES:
                    assert get(
                        f"/v1/executives/{e}/removal-history",
                        as_of=d.isoformat(),
                        window_measure=measure,
                    ) == models.removal_history(e, d, measure), (e, d, measure)
        for d in days:
            assert get(
                "/v1/reports/below-fully-successful", as_of=d.isoformat()
            ) == models.below_fully_successful(d), d
        cut = max(1, len(w.ratings) // 2)
        # past the registrations (executives registered later are 404 then, rightly)
        position = max(
            [*sorted(r.position for r in w.ratings)[cut - 1 : cut], len(w.career) + len(AGENCIES)]
        )
        past = models.as_of(position=position)
        for e in w.career:
            for d in days[:3]:
                assert get(
                    f"/v1/executives/{e}/removal-history",
                    as_of=d.isoformat(),
                    as_of_position=position,
                ) == past.removal_history(e, d), (e, d, position)
            assert (
                get(f"/v1/executives/{e}", as_of_position=position)["current_rating"]
                == (past.executive(e) or {})["current_rating"]
            )
        for d in days[:3]:
            assert get(
                "/v1/reports/below-fully-successful", as_of=d.isoformat(), as_of_position=position
            ) == past.below_fully_successful(d), d
        for agency in AGENCIES:
            assert get(
                "/v1/reports/rating-distribution", agency=agency, cycle="FY2026"
            ) == models.rating_distribution(agency, "FY2026")


def _fresh(tmp: Path, url: str | None) -> Iterator[LedgerApp]:
    return fresh_app(tmp, url, Clock())


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(h=histories())
def test_read_models_agree_with_the_naive_model_on_sqlite(
    h: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    for app in _fresh(tmp_path_factory.mktemp("oracle"), None):
        check(app, h)


@pytest.mark.postgres
@settings(
    max_examples=PG_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(h=histories())
def test_read_models_agree_with_the_naive_model_on_postgres(
    h: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    require_postgres()
    import psycopg

    schema = f"{SCHEMA_PREFIX}oracle_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        for app in _fresh(tmp_path_factory.mktemp("oracle"), f"{PG_URL}?schema={schema}"):
            check(app, h)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
