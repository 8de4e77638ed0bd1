"""Differential test: the read models against a small oracle written from rules.md and docs.

The oracle below reads only `../shared/rules.md` (REM-1..REM-3, RAT-9, the measure note),
api-contract.md "Reads" and docs/api.md ("Removal history and the below-Fully-Successful
report", the notes on scope), never `ledger.policies` or `projections`. Hypothesis records
random valid histories through `LedgerApp` (career and noncareer executives of two agencies;
periods under `ses-basic-2012` and `ses-2025`, including `ses-2025` taken up early for a
period before Oct 1 2025 (POL-1 allows it); extended and early-ended periods; two periods of
one cycle; final levels that differ from the initial summary; appraisals left unfinished;
ratings clustered on exact 3- and 5-year anniversaries and Feb 29; personnel actions on the
rating day and a day either side; rating-cap waivers) and compares, for dates on and around
every boundary:

- live models (caught up at random points while the history is written),
- a fresh full rebuild (same digest, same answers), and the compliance report under
  `appraisal-cycle` (`SES_LEDGER_WINDOW_MEASURE`),
- replays `as_of(position=...)` / `as_of(known_at=...)` / one executive's replay, against
  the oracle of the ledger's prefix,
- the API's oversight endpoints (removal history, below-Fully-Successful, rating
  distribution, compliance, the executive's `current_rating`): live, and at positions and
  `known_at` moments without `as_of`, whose day D is the token's (`*`, one agency, an
  executive's own record; docs/api.md),
- the removal history `bundle verify` prints (`ledger.offline_verify`, its own code) for
  the API's evidence bundles.

Small by default so it stays in the suite; `SES_ORACLE_DIFF_EXAMPLES=200` for a long run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, timezone
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
from ledger.offline_verify import history_lines
from projections.queries import ReadModels
from tests.conftest import PG_URL, pg_schema_name, require_postgres
from tests.integration.test_read_model_oracle import BASIC
from tests.ledger_helpers import fresh_app

EXAMPLES = int(os.environ.get("SES_ORACLE_DIFF_EXAMPLES", "3"))

# --- the oracle: rules.md, api-contract.md "Reads", docs/api.md --------------------------

#: RAT-1: points per element level.
POINTS = {5: 5, 4: 4, 3: 3, 2: 2, 1: 0}
#: REM-1: the actions that answer a Level 1 final rating (api-contract.md).
ANSWERS = ("reassignment", "transfer", "demotion", "removal")


def leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def years_after(day: date, n: int) -> date:
    """docs/api.md: "Feb 29 plus N years is Feb 28"."""
    if (day.month, day.day) == (2, 29) and not leap(day.year + n):
        return date(day.year + n, 2, 28)
    return day.replace(year=day.year + n)


def years_before(day: date, n: int) -> date:
    """docs/api.md: "D - N years" is the same day, "except that Feb 29 minus N years is
    Mar 1"."""
    if (day.month, day.day) == (2, 29) and not leap(day.year - n):
        return date(day.year - n, 3, 1)
    return day.replace(year=day.year - n)


def fiscal_year(day: date) -> int:
    """api-contract.md: FYnnnn runs Oct 1 nnnn-1 to Sep 30 nnnn."""
    return day.year + (1 if day.month >= 10 else 0)


def last_completed_cycle(day: date) -> int:
    """The newest fiscal year whose last day (Sep 30) is on or before `day`."""
    return day.year if (day.month, day.day) >= (9, 30) else day.year - 1


@dataclass(frozen=True)
class Exec:
    executive_id: str
    agency: str
    career: bool


@dataclass(frozen=True)
class Final:
    appraisal_id: str
    executive_id: str
    policy: str
    period_start: date
    period_end: date  # after any extension
    level: int
    score: int
    rated_on: date
    position: int
    recorded_on: date  # the day the final rating was recorded (`recorded_at`)


@dataclass(frozen=True)
class Act:
    executive_id: str
    action: str
    notice_on: date
    position: int


@dataclass(frozen=True)
class Waiver:
    agency: str
    cycle: int
    granted_on: date
    position: int


@dataclass
class Oracle:
    execs: dict[str, Exec] = field(default_factory=dict)
    finals: list[Final] = field(default_factory=list)
    acts: list[Act] = field(default_factory=list)
    waivers: list[Waiver] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)  # executive registrations
    #: every event: (position, recorded_at, agency whose records hold it, executive whose
    #: record holds it or None)
    events: list[tuple[int, datetime, str, str | None]] = field(default_factory=list)

    def noted(self, result: Any, agency: str, executive: str | None = None) -> Any:
        position, at = int(result.event["position"]), str(result.event["recorded_at"])
        moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
        self.events.append((position, moment, agency, executive))
        return result

    def day_at(
        self, position: int, agency: str | None = None, executive: str | None = None
    ) -> date:
        """docs/api.md: a replay's D is the day (UTC) its last event up to the position that
        the token may read (its agency's; an executive's own record's) was recorded; today
        when there is none."""
        days = [
            at.date()
            for p, at, a, e in self.events
            if p <= position and agency in (None, a) and executive in (None, e)
        ]
        return max(days, default=TODAY)

    def known_by(self, moment: datetime) -> int:
        """The position the ledger stood at by `moment` (events recorded at or before it)."""
        return max((p for p, at, _, _ in self.events if at <= moment), default=0)

    def prefix(self, position: int) -> Oracle:
        """The ledger as it stood at `position`."""
        return Oracle(
            {e: x for e, x in self.execs.items() if self.positions[e] <= position},
            [f for f in self.finals if f.position <= position],
            [a for a in self.acts if a.position <= position],
            [w for w in self.waivers if w.position <= position],
            {e: p for e, p in self.positions.items() if p <= position},
            [x for x in self.events if x[0] <= position],
        )

    def of(self, e: str) -> list[Final]:
        return sorted(
            (f for f in self.finals if f.executive_id == e), key=lambda f: (f.rated_on, f.position)
        )

    # -- executive ---------------------------------------------------------------------

    def current(self, e: str) -> dict[str, Any] | None:
        """docs/api.md: the final rating of the latest period (by period end), whatever
        order the periods were recorded in; ties by rating date, then log order."""
        mine = self.of(e)
        if not mine:
            return None
        f = max(mine, key=lambda f: (f.period_end, f.rated_on, f.position))
        return {
            "appraisal_id": f.appraisal_id,
            "level": f.level,
            "score": f.score,
            "rated_on": f.rated_on.isoformat(),
            "policy": f.policy,
        }

    # -- removal history -----------------------------------------------------------------

    def _window(self, rs: list[Final], d: date, n: int, rule: str, measure: str) -> dict[str, Any]:
        if measure == "rating-date":
            inside = [r for r in rs if years_before(d, n) <= r.rated_on <= d]

            def pair(a: Final, b: Final) -> bool:
                return b.rated_on <= years_after(a.rated_on, n)
        else:
            top = max([last_completed_cycle(d), *(fiscal_year(r.period_end) for r in rs)])
            inside = [r for r in rs if top - n < fiscal_year(r.period_end) <= top]

            def pair(a: Final, b: Final) -> bool:
                return abs(fiscal_year(a.period_end) - fiscal_year(b.period_end)) <= n - 1

        later = [b.rated_on for j, b in enumerate(rs) for a in rs[:j] if pair(a, b)]
        return {
            "ratings": [(r.appraisal_id, r.level, r.rated_on.isoformat()) for r in inside],
            "removal_required": bool(later),
            "triggered_on": max(later).isoformat() if later else None,
            "rule": rule,
        }

    def removal(self, e: str, d: date, measure: str = "rating-date") -> dict[str, Any]:
        rs = [f for f in self.of(e) if f.rated_on <= d]
        low = [r for r in rs if r.level < 3]
        ones = [r for r in rs if r.level == 1]
        acts = sorted(
            (a for a in self.acts if a.executive_id == e and a.notice_on <= d),
            key=lambda a: (a.notice_on, a.position),
        )
        due = bool(ones) and not any(
            a.action in ANSWERS and ones[-1].rated_on <= a.notice_on for a in acts
        )
        return {
            "window_measure": measure,
            "three_year": self._window(low, d, 3, "REM-2", measure),
            "five_year": self._window(ones, d, 5, "REM-3", measure),
            "level1_action_due": due,
            "actions": [(a.action, a.notice_on.isoformat()) for a in acts],
        }

    # -- reports -------------------------------------------------------------------------

    def below(self, d: date, agency: str | None = None) -> dict[str, list[tuple[str, int, str]]]:
        """api-contract.md: final ratings below Level 3 rated in (D - 3 years, D]."""
        out = {}
        for e in sorted(self.execs, key=str.encode):
            if agency is not None and self.execs[e].agency != agency:
                continue
            rows = [
                (f.appraisal_id, f.level, f.rated_on.isoformat())
                for f in self.of(e)
                if f.level < 3 and years_before(d, 3) < f.rated_on <= d
            ]
            if rows:
                out[e] = rows
        return out

    def _cycle(self, agency: str, cycle: int, d: date) -> list[Final]:
        return [
            f
            for f in self.finals
            if f.executive_id in self.execs
            and self.execs[f.executive_id].agency == agency
            and fiscal_year(f.period_end) == cycle
            and f.rated_on <= d
        ]

    def _by_latest_period(self, rs: list[Final]) -> list[Final]:
        """One rating per executive: their latest period's (docs/api.md notes on scope)."""
        last: dict[str, Final] = {}
        for f in sorted(rs, key=lambda f: (f.period_end, f.rated_on, f.position)):
            last[f.executive_id] = f
        return list(last.values())

    def rat_9(self, agency: str, cycle: int, d: date) -> bool:
        """RAT-9: ses-2025 career appointees only, an agency with 5 or more rated in the
        cycle, more than 30% at Levels 4-5, no presidential waiver granted by D. An executive
        counts once, by their last `ses-2025` rating of the cycle (ledger/policies docstring:
        a basic period later in the cycle does not hide a capped one; reported)."""
        capped = self._by_latest_period(
            [
                f
                for f in self._cycle(agency, cycle, d)
                if self.execs[f.executive_id].career and f.policy == "ses-2025"
            ]
        )
        waived = any(
            w.agency == agency and w.cycle == cycle and w.granted_on <= d for w in self.waivers
        )
        high = sum(1 for f in capped if f.level >= 4)
        return len(capped) >= 5 and 10 * high > 3 * len(capped) and not waived

    def distribution(self, agency: str, cycle: int, d: date) -> dict[str, Any]:
        rs = self._cycle(agency, cycle, d)
        career = self._by_latest_period([f for f in rs if self.execs[f.executive_id].career])
        return {
            "counts": {str(i): sum(1 for f in rs if f.level == i) for i in range(1, 6)},
            "share": (sum(1 for f in career if f.level >= 4) / len(career) if career else None),
            "rat9": self.rat_9(agency, cycle, d),
        }

    def compliance(
        self, d: date, agency: str | None = None, measure: str = "rating-date"
    ) -> list[tuple[str, str]]:
        """The REM-1..REM-3 and RAT-9 findings as of D. REM-2/REM-3 stay due until a removal
        is noticed on or after the rating that made it due (the ledger records, it does not
        hide: ledger/policies/compliance.py's reading, which rules.md leaves open)."""
        out = []
        for e, x in self.execs.items():
            if agency is not None and x.agency != agency:
                continue
            h = self.removal(e, d, measure)
            if h["level1_action_due"]:
                out.append(("REM-1", e))
            for key in ("three_year", "five_year"):
                w = h[key]
                if w["removal_required"] and not any(
                    a == "removal" and notice >= w["triggered_on"] for a, notice in h["actions"]
                ):
                    out.append((w["rule"], e))
        for ag in sorted({x.agency for x in self.execs.values()}):
            if agency is not None and ag != agency:
                continue
            for cycle in sorted({fiscal_year(f.period_end) for f in self.finals}):
                if self.rat_9(ag, cycle, d):
                    out.append(("RAT-9", f"{ag}/FY{cycle}"))
        return sorted(out)


# --- histories -----------------------------------------------------------------------------

# The ses-basic-2012 plan is the read-model oracle's (BASIC, imported above); this ses-2025
# plan weighs its elements otherwise than that oracle's.
SES_2025 = [
    {"code": "faithful_administration", "weight": 25, "requirements": ["Apply the law."]},
    {"code": "government_efficiency", "weight": 15, "requirements": ["Cut cost 5% by Q3."]},
    {"code": "merit_and_competence", "weight": 15, "requirements": ["Hire on merit."]},
    {"code": "accountability_and_fairness", "weight": 15, "requirements": ["Be fair."]},
    {
        "code": "organizational_goals",
        "weight": 30,
        "requirements": ["Strategic Goal 1: a", "Strategic Goal 2: b", "Strategic Goal 3: c"],
    },
]
AGENCIES = ("DOE", "DOT")
NONCAREER = ("noncareer", "limited_term", "limited_emergency")
INAUGURATIONS = [date(y, 1, 20) for y in (2017, 2021, 2025, 2029)]
#: First ratings on leap days, their neighbours, fiscal-year edges.
ANCHORS = [
    date(2018, 3, 1),
    date(2019, 2, 28),
    date(2019, 9, 30),
    date(2019, 10, 1),
    date(2020, 2, 29),
    date(2020, 3, 1),
    date(2021, 2, 28),
    date(2022, 11, 30),
    date(2024, 2, 29),
]
TODAY = datetime.now(UTC).date()


def blackout(day: date) -> bool:
    """PER-3: day 1..119 after an Inauguration Day (day 120 is allowed)."""
    return any(i < day < i + timedelta(days=120) for i in INAUGURATIONS)


@dataclass(frozen=True)
class Plan:
    appraisal_id: str
    executive_id: str
    rated_on: date
    initial_level: int
    final_level: int
    shape: str  # "year", "extended", "early" (ends before the rating's fiscal year ends),
    # "cross" (extended twice, into the next cycle), "straddle" (Apr 1 - Mar 31)
    early_2025: bool  # ses-2025 for a period starting before Oct 1 2025 (POL-1 allows it)
    finished: bool


def period_of(p: Plan) -> tuple[date, date, date | None, str]:
    """(start, planned end, extended end or None, policy) of a plan rated on `rated_on`."""
    r = p.rated_on
    if p.shape == "cross" and r.year - 1 <= 2025:
        # Jan 1 - Mar 31, extended to Jun 30 and then to Dec 31: the next fiscal year's
        # cycle (basic only, PER-1); `_appraisal` records the Jun 30 step first
        start = date(r.year - 1, 1, 1)
        return start, date(r.year - 1, 3, 31), date(r.year - 1, 12, 31), "ses-basic-2012"
    if p.shape == "straddle":
        # Apr 1 - Mar 31 (basic only: PER-1 keeps a ses-2025 period in one fiscal year)
        start, end = date(fiscal_year(r) - 1, 4, 1), date(fiscal_year(r), 3, 31)
        return start, end, None, "ses-basic-2012"
    if p.shape == "early":
        # the rating's own fiscal year, ended a few days before the rating
        start, end = date(fiscal_year(r) - 1, 10, 1), r - timedelta(days=3)
        extended = None
    else:
        start, end = date(fiscal_year(r) - 2, 10, 1), date(fiscal_year(r) - 1, 9, 30)
        extended = None
        if p.shape == "extended":
            end, extended = date(fiscal_year(r) - 1, 6, 30), end
    new = start >= date(2025, 10, 1) or p.early_2025
    return start, end, extended, "ses-2025" if new else "ses-basic-2012"


@st.composite
def histories(draw: st.DrawFn) -> dict[str, Any]:
    execs: list[Exec] = []
    plans: list[Plan] = []
    levels = st.sampled_from([1, 2, 1, 2, 3, 4, 5])
    for i in range(draw(st.integers(2, 5))):
        career = draw(st.sampled_from([True, True, False]))
        x = Exec(f"E{i}", draw(st.sampled_from(AGENCIES)), career)
        execs.append(x)
        # a chain of ratings, each 3 or 5 years (or 0-4) after the one before, a day either
        # side: the anniversaries REM-2 and REM-3 turn on
        r = draw(st.sampled_from(ANCHORS))
        for j in range(draw(st.integers(1, 4))):
            if j:
                r = years_after(r, draw(st.sampled_from([3, 5, 0, 1, 2, 4])))
                r += timedelta(days=draw(st.sampled_from([0, -1, 1])))
            if career and any(blackout(r - timedelta(days=k)) for k in range(3)):
                continue
            shape = draw(st.sampled_from(["year", "year", "extended", "early", "cross"]))
            if shape == "early" and (r - date(fiscal_year(r) - 1, 10, 1)).days < 100:
                shape = "year"
            level = draw(levels)
            final = level if draw(st.booleans()) else draw(levels)
            plans.append(
                Plan(
                    f"A-{x.executive_id}-{j}",
                    x.executive_id,
                    r,
                    level,
                    final,
                    shape,
                    draw(st.booleans()),
                    draw(st.sampled_from([True, True, True, False])),
                )
            )
    # RAT-9: 5 or more career executives of one agency rated under ses-2025 in one cycle
    cluster = draw(st.sampled_from([None, 2025, 2026]))
    if cluster is not None:
        agency = draw(st.sampled_from(AGENCIES))
        for i in range(draw(st.integers(4, 10))):
            career = i < 4 or draw(st.sampled_from([True, True, False]))
            x = Exec(f"C{i}", agency, career)
            execs.append(x)
            r = date(cluster, 11, draw(st.integers(1, 30)))
            if r >= TODAY:
                r = TODAY - timedelta(days=1)
            level = draw(st.sampled_from([3, 4, 4, 5, 2]))
            early_2025 = draw(st.sampled_from([True, True, False]))
            plans.append(
                Plan(
                    f"A-{x.executive_id}", x.executive_id, r, level, level, "year", early_2025, True
                )
            )
            if draw(st.booleans()):
                # a second, earlier-ending period of the same cycle, basic or ses-2025
                second = draw(st.sampled_from([3, 4, 5, 1]))
                plans.append(
                    Plan(
                        f"A-{x.executive_id}-b",
                        x.executive_id,
                        date(cluster, 6, 15),
                        second,
                        second,
                        draw(st.sampled_from(["early", "straddle"])),
                        draw(st.booleans()),
                        True,
                    )
                )
    order = draw(st.permutations(range(len(plans))))
    plans = [plans[k] for k in order]
    acts = []
    for _ in range(draw(st.integers(0, 4))):
        if not plans:
            break
        target = draw(st.sampled_from(plans))
        notice = target.rated_on + timedelta(days=draw(st.sampled_from([-1, 0, 1, 200])))
        kind = draw(st.sampled_from(ANSWERS))
        acts.append((target.executive_id, kind, notice, draw(st.integers(0, len(plans)))))
    waivers = draw(
        st.lists(
            st.tuples(
                st.sampled_from(AGENCIES),
                st.sampled_from([2025, 2026]),
                st.sampled_from([date(2025, 11, 10), date(2026, 11, 10), date(2027, 3, 1)]),
            ),
            max_size=2,
            unique_by=lambda w: (w[0], w[1]),
        )
    )
    return {
        "execs": execs,
        "plans": plans,
        "acts": sorted(acts, key=lambda a: a[3]),
        "waivers": waivers,
        "catch_up_every": draw(st.integers(1, 5)),
    }


class Clock:
    """Recording starts three days ago and takes ten minutes an event (a history ends
    before now): a replay's day (the default D of an `as_of_position` read) is the day its
    last event was recorded, which differs between positions, while a live read's is today."""

    def __init__(self) -> None:
        self.now = datetime.combine(TODAY - timedelta(days=3), datetime.min.time(), UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=10)
        return self.now


def record(app: LedgerApp, h: dict[str, Any], models: ReadModels) -> Oracle:
    o = Oracle()
    for x in h["execs"]:
        result = o.noted(
            app.register_executive(
                x.executive_id,
                name=f"Name {x.executive_id}",
                title="Director",
                pay_plan="ES",
                agency=x.agency,
                duty_station="Denver, CO",
                # api-contract.md: RAT-9 and the share count career appointees only
                appointment_type="career"
                if x.career
                else NONCAREER[int(x.executive_id[1:]) % len(NONCAREER)],
                probationary=False,
                appointed_on=date(2014, 6, 1),
                actor="hr-1",
                submitted_by="hr-app-1",
            ),
            x.agency,
            x.executive_id,
        )
        o.execs[x.executive_id] = x
        o.positions[x.executive_id] = int(result.event["position"])
    for agency in AGENCIES:
        o.noted(
            app.register_review_board(
                f"PRB-{agency}",
                agency=agency,
                federal_register_published_on=date(2014, 1, 2),
                members=[
                    {"member_id": f"M{i}", "name": f"M {i}", "career": True} for i in (1, 2, 3)
                ],
                actor="admin-1",
                submitted_by="hr-app-1",
            ),
            agency,
        )
    acts = list(h["acts"])
    for index, p in enumerate(h["plans"]):
        if index % h["catch_up_every"] == 0:
            models.catch_up()
        while acts and acts[0][3] <= index:
            _act(app, o, *acts.pop(0)[:3])
        _appraisal(app, o, p)
    for a in acts:
        _act(app, o, *a[:3])
    for agency, cycle, granted in h["waivers"]:
        result = o.noted(
            app.grant_rating_cap_waiver(
                agency=agency,
                cycle=f"FY{cycle}",
                granted_on=granted,
                reference="Presidential memorandum",
                actor="admin-1",
                submitted_by="hr-app-1",
            ),
            agency,
        )
        o.waivers.append(Waiver(agency, cycle, granted, int(result.event["position"])))
    return o


def _appraisal(app: LedgerApp, o: Oracle, p: Plan) -> None:
    start, end, extended, policy = period_of(p)
    elements = SES_2025 if policy == "ses-2025" else BASIC
    agency = o.execs[p.executive_id].agency
    o.noted(
        app.set_plan(
            p.appraisal_id,
            executive_id=p.executive_id,
            policy=policy,
            period_start=start,
            period_end=end,
            rating_official_id="R1",
            communicated_on=start,
            elements=elements,
            submitted_by="hr-app-1",
        ),
        agency,
        p.executive_id,
    )

    def step(command: str, actor: str = "R1", **fields: Any) -> Any:
        return o.noted(
            app.appraisal_command(
                p.appraisal_id, command, submitted_by="hr-app-1", actor=actor, **fields
            ),
            agency,
            p.executive_id,
        )

    if extended is not None and p.shape == "cross":
        middle = end.replace(month=6, day=30)
        step("extend_period", extended_on=end, new_period_end=middle, reason="Detail.")
        step("extend_period", extended_on=middle, new_period_end=extended, reason="Detail.")
    elif extended is not None:
        step("extend_period", extended_on=end, new_period_end=extended, reason="Detail.")
    step("review_progress", reviewed_on=start + timedelta(days=20), reviewer_id="R1", notes="ok")
    initial_on = p.rated_on - timedelta(days=2)
    step(
        "issue_initial_rating",
        rated_on=initial_on,
        rating_official_id="R1",
        element_levels={e["code"]: p.initial_level for e in elements},
        narrative="As documented.",
        shared_on=initial_on,
    )
    step("waive_response", actor=p.executive_id, waived_on=initial_on)
    board = f"PRB-{o.execs[p.executive_id].agency}"
    step(
        "recommend_by_prb",
        actor=board,
        board_id=board,
        members_present=["M1", "M2", "M3"],
        recommended_on=p.rated_on - timedelta(days=1),
        recommended_level=p.final_level,
        rationale="Considered.",
        considered=["initial_rating"],
    )
    if not p.finished:
        return
    final = step(
        "assign_final_rating",
        actor="AA1",
        appointing_authority_id="AA1",
        rated_on=p.rated_on,
        level=p.final_level,
    )
    o.finals.append(
        Final(
            p.appraisal_id,
            p.executive_id,
            policy,
            start,
            extended or end,
            p.final_level,
            # RAT-2/RAT-3: every element at the initial level; the final rating keeps the
            # initial score (the authority's level may differ, RAT-8)
            POINTS[p.initial_level] * 100,
            p.rated_on,
            int(final.event["position"]),
            date.fromisoformat(str(final.event["recorded_at"])[:10]),
        )
    )


def _act(app: LedgerApp, o: Oracle, e: str, kind: str, notice: date) -> None:
    result = o.noted(
        app.record_personnel_action(
            e,
            action=kind,
            basis_appraisal_ids=[],
            notice_on=notice,
            effective_on=notice + timedelta(days=31),
            authority="5 CFR 359 subpart E",
            hearing_requested_on=None,
            actor="hr-1",
            submitted_by="hr-app-1",
        ),
        o.execs[e].agency,
        e,
    )
    o.acts.append(Act(e, kind, notice, int(result.event["position"])))


def days_of(o: Oracle) -> list[date]:
    """Every rating's day, its 3rd and 5th anniversaries, a day either side; leap days."""
    days = {date(2024, 2, 29), date(2027, 2, 28), date(2027, 3, 1), TODAY}
    for f in o.finals:
        for n in (0, 3, 5):
            for k in (-1, 0, 1):
                days.add(years_after(f.rated_on, n) + timedelta(days=k))
    days.update(a.notice_on for a in o.acts)
    return sorted(days)


# --- comparing -------------------------------------------------------------------------------


def removal_of(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: body[k] for k in ("window_measure", "level1_action_due")}
    for key in ("three_year", "five_year"):
        w = body[key]
        out[key] = {
            "ratings": [(r["appraisal_id"], r["level"], r["rated_on"]) for r in w["ratings"]],
            **{k: w[k] for k in ("removal_required", "triggered_on", "rule")},
        }
    out["actions"] = [(a["action"], a["notice_on"]) for a in body["actions"]]
    return out


def below_of(body: dict[str, Any]) -> dict[str, list[tuple[str, int, str]]]:
    return {
        x["executive_id"]: [(r["appraisal_id"], r["level"], r["rated_on"]) for r in x["ratings"]]
        for x in body["executives"]
    }


def distribution_of(body: dict[str, Any]) -> dict[str, Any]:
    return {
        "counts": body["counts"],
        "share": body["share_levels_4_5"],
        "rat9": any(f["rule"] == "RAT-9" for f in body["findings"]),
    }


def compliance_of(body: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted(
        (f["rule"], f["subject_id"])
        for f in body["findings"]
        if f["rule"] in ("REM-1", "REM-2", "REM-3", "RAT-9")
    )


def current_of(body: dict[str, Any] | None) -> dict[str, Any] | None:
    current = (body or {}).get("current_rating")
    if current is None:
        return None
    return {k: current[k] for k in ("appraisal_id", "level", "score", "rated_on", "policy")}


def offline_removal(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """What `ses-ledger bundle verify` prints of the removal history (its own
    implementation, `ledger.offline_verify.history_lines`), parsed."""
    lines = history_lines(entries)
    start = next(i for i, line in enumerate(lines) if line.startswith("removal history as of"))
    out: dict[str, Any] = {"as_of": lines[start].split()[4], "rem_1_due": None}
    for line in lines[start + 1 :]:
        if "REM-1" in line:
            out["rem_1_due"] = line.rsplit(" ", 1)[1] == "yes"
            continue
        key = "three_year" if "REM-2" in line else "five_year"
        window, verdict = line.split("in window: ", 1)[1].split("; ")
        listed = [] if window == "none" else window.split(", ")
        trigger = verdict.split("triggered on ")[1] if "triggered on" in verdict else None
        out[key] = (sorted(listed), trigger)
    return out


def bundle_view(o: Oracle, e: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The oracle's removal history as `offline_removal` shows it, as of the bundle's latest
    `occurred_on` (the day the offline verifier judges at)."""
    d = max(date.fromisoformat(x["occurred_on"]) for x in entries if x.get("occurred_on"))
    h = o.removal(e, d)
    out: dict[str, Any] = {"as_of": d.isoformat(), "rem_1_due": None}
    if any(f.level == 1 and f.rated_on <= d for f in o.of(e)):
        out["rem_1_due"] = h["level1_action_due"]
    for key in ("three_year", "five_year"):
        w = h[key]
        listed = sorted(f"{a} L{level} {day}" for a, level, day in w["ratings"])
        out[key] = (listed, w["triggered_on"])
    return out


def cycles_of(o: Oracle) -> list[int]:
    return sorted({fiscal_year(f.period_end) for f in o.finals} | {2026})


def compare(models: ReadModels, o: Oracle, days: list[date], where: str) -> None:
    """Every read the oracle answers, for each of `days`."""
    for e in o.execs:
        assert current_of(models.executive(e)) == o.current(e), (where, e)
    # executives with no rating below Level 3 and no action have an empty history: a few
    # days are enough for them (keeps the test quick)
    quiet = {
        e
        for e in o.execs
        if all(f.level >= 3 for f in o.of(e)) and all(a.executive_id != e for a in o.acts)
    }
    for n, d in enumerate(days):
        for e in o.execs:
            if e in quiet and n % 8:
                continue
            for measure in ("rating-date", "appraisal-cycle"):
                got = removal_of(models.removal_history(e, d, measure))
                assert got == o.removal(e, d, measure), (where, e, d, measure)
        assert below_of(models.below_fully_successful(d)) == o.below(d), (where, d)
        agency = AGENCIES[d.toordinal() % 2]
        assert below_of(models.below_fully_successful(d, agency)) == o.below(d, agency), (
            where,
            d,
            agency,
        )
        assert compliance_of(models.compliance(as_of=d)) == o.compliance(d), (where, d)
        assert compliance_of(models.compliance(agency, as_of=d)) == o.compliance(d, agency)
    for d in days[:: max(1, len(days) // 4)] + [TODAY]:
        for agency in AGENCIES:
            for cycle in cycles_of(o):
                got = distribution_of(models.rating_distribution(agency, f"FY{cycle}", as_of=d))
                want = o.distribution(agency, cycle, d)
                assert got["counts"] == want["counts"], (where, agency, cycle, d)
                assert got["share"] == pytest.approx(want["share"]), (where, agency, cycle, d)
                assert got["rat9"] == want["rat9"], (where, agency, cycle, d)


def compare_api(app: LedgerApp, models: ReadModels, o: Oracle, days: list[date]) -> None:
    """The API's oversight endpoints give the oracle's answers (live and as_of_position)."""
    api_app = create_app(
        app, settings=ApiSettings(home=app.config.home, checkpoint_interval_seconds=0)
    )
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

        ordered = sorted(o.finals, key=lambda f: f.position)
        at = ordered[len(ordered) // 2] if ordered else None
        cut = None if at is None else at.position
        past = None if cut is None else o.prefix(cut)
        for e in o.execs:
            assert current_of(get(f"/v1/executives/{e}")) == o.current(e), e
            for d in days:
                body = get(f"/v1/executives/{e}/removal-history", as_of=d.isoformat())
                assert removal_of(body) == o.removal(e, d), (e, d)
            if past is not None and e in past.execs:
                assert current_of(get(f"/v1/executives/{e}", as_of_position=cut)) == past.current(
                    e
                ), (e, cut)
                for d in days[:3]:
                    body = get(
                        f"/v1/executives/{e}/removal-history",
                        as_of=d.isoformat(),
                        as_of_position=cut,
                        window_measure="appraisal-cycle",
                    )
                    assert removal_of(body) == past.removal(e, d, "appraisal-cycle"), (e, d, cut)
        for d in days:
            body = get("/v1/reports/below-fully-successful", as_of=d.isoformat())
            assert below_of(body) == o.below(d), d
        for agency in AGENCIES:
            # as of today (the API takes no as_of for these two)
            assert compliance_of(get("/v1/reports/compliance", agency=agency)) == o.compliance(
                TODAY, agency
            ), agency
            for cycle in cycles_of(o):
                got = distribution_of(
                    get("/v1/reports/rating-distribution", agency=agency, cycle=f"FY{cycle}")
                )
                want = o.distribution(agency, cycle, TODAY)
                assert got["counts"] == want["counts"], (agency, cycle)
                assert got["share"] == pytest.approx(want["share"]), (agency, cycle)
                assert got["rat9"] == want["rat9"], (agency, cycle)
        assert compliance_of(get("/v1/reports/compliance")) == o.compliance(TODAY)
        for e in sorted(o.execs, key=lambda e: -len(o.of(e)))[:2]:
            entries = get(f"/v1/executives/{e}/evidence-bundle")["entries"]
            assert offline_removal(entries) == bundle_view(o, e, entries), e
        if at is None or past is None:
            return
        # several positions, later and earlier, some not a final rating's: the server's kept
        # replays are reused, extended and rebuilt between them
        last = max(x[0] for x in o.events)
        cuts = [cut, min(last, cut + 3), cut - 1, max(1, cut // 3), last]
        for position in cuts:
            replay_reads(get, o.prefix(position), position, None)
        doe = issue_token(
            api_app.state.services.token_key,
            subject="auditor-2",
            roles=("auditor",),
            agency="DOE",
            ttl_seconds=600,
        )
        headers["Authorization"] = f"Bearer {doe}"
        assert compliance_of(get("/v1/reports/compliance")) == o.compliance(TODAY, "DOE")
        for position in cuts:
            replay_reads(get, o.prefix(position), position, "DOE")
        # an executive's own record, at positions: D is the day of its own last event
        e = ordered[0].executive_id
        own = issue_token(
            api_app.state.services.token_key,
            subject=e,
            roles=("executive",),
            agency=o.execs[e].agency,
            ttl_seconds=600,
        )
        headers["Authorization"] = f"Bearer {own}"
        for position in cuts:
            past = o.prefix(position)
            if e in past.execs:
                day = o.day_at(position, executive=e)
                body = get(f"/v1/executives/{e}/removal-history", as_of_position=position)
                assert body["as_of"] == day.isoformat(), (e, position)
                assert removal_of(body) == past.removal(e, day), (e, position)
        # known_at: the events recorded by then, judged as of its day (UTC); the same moment
        # written with another offset is the same ledger
        headers["Authorization"] = f"Bearer {token}"
        for position in cuts[:3]:
            moment = next(at for p, at, _, _ in o.events if p == position)
            moment += timedelta(minutes=5)
            past = o.prefix(o.known_by(moment))
            day = min(moment.date(), TODAY)
            for text in (
                moment.isoformat().replace("+00:00", "Z"),
                moment.astimezone(timezone(timedelta(hours=-7))).isoformat(),
            ):
                got = get("/v1/reports/compliance", known_at=text)
                assert compliance_of(got) == past.compliance(day), (position, text)
                got = get("/v1/reports/below-fully-successful", known_at=text)
                assert below_of(got) == past.below(day), (position, text)
                for x in busiest(past):
                    body = get(f"/v1/executives/{x}/removal-history", known_at=text)
                    assert body["as_of"] == day.isoformat(), (x, text)
                    assert removal_of(body) == past.removal(x, day), (x, text)
                    assert current_of(get(f"/v1/executives/{x}", known_at=text)) == (
                        past.current(x)
                    ), (x, text)


def busiest(o: Oracle, agency: str | None = None, n: int = 4) -> list[str]:
    """The `n` executives (of `agency`) with the most final ratings: the removal histories
    worth asking the API for at every point (the rest are asked live)."""
    mine = [e for e, x in o.execs.items() if agency in (None, x.agency)]
    return sorted(mine, key=lambda e: (-len(o.of(e)), e))[:n]


def replay_reads(get: Any, past: Oracle, cut: int, agency: str | None) -> None:
    """Reads at `as_of_position=cut` without `as_of`: judged as of the day the last event
    up to `cut` that the token may read was recorded (docs/api.md)."""
    day = past.day_at(cut, agency)
    assert compliance_of(get("/v1/reports/compliance", as_of_position=cut)) == (
        past.compliance(day, agency)
    ), (cut, day)
    assert below_of(get("/v1/reports/below-fully-successful", as_of_position=cut)) == (
        past.below(day, agency)
    ), (cut, day)
    for e in busiest(past, agency):
        body = get(f"/v1/executives/{e}/removal-history", as_of_position=cut)
        assert body["as_of"] == day.isoformat()
        assert removal_of(body) == past.removal(e, day), (e, cut)
    for ag in AGENCIES if agency is None else (agency,):
        for cycle in cycles_of(past):
            got = distribution_of(
                get(
                    "/v1/reports/rating-distribution",
                    agency=ag,
                    cycle=f"FY{cycle}",
                    as_of_position=cut,
                )
            )
            want = past.distribution(ag, cycle, day)
            assert got["counts"] == want["counts"], (ag, cycle, cut)
            assert got["share"] == pytest.approx(want["share"]), (ag, cycle, cut)
            assert got["rat9"] == want["rat9"], (ag, cycle, cut)


def check(app: LedgerApp, h: dict[str, Any]) -> None:
    models = ReadModels(app)
    o = record(app, h, models)
    models.catch_up()
    days = days_of(o)
    compare(models, o, days, "live")
    fresh = ReadModels(app)
    fresh.rebuild(jobs=1)
    assert fresh.digest() == models.digest()
    compare(fresh, o, days[::4], "rebuilt")
    # SES_LEDGER_WINDOW_MEASURE=appraisal-cycle: the compliance report's REM-2/REM-3
    cycles = ReadModels(app, window_measure="appraisal-cycle")
    for d in days[::3]:
        assert compliance_of(cycles.compliance(as_of=d)) == o.compliance(
            d, measure="appraisal-cycle"
        ), d
    cuts = sorted(f.position for f in o.finals)
    for k, cut in enumerate(cuts[len(cuts) // 3 :: max(1, len(cuts) // 2)]):
        past = o.prefix(cut)
        if k % 2:
            view = models.as_of(known_at=next(at for p, at, _, _ in o.events if p == cut))
        else:
            view = models.as_of(position=cut)
        compare(view, past, days[::3], f"as of {cut}")
        day = next(f.recorded_on for f in o.finals if f.position == cut)
        assert view.default_as_of() == day
        assert compliance_of(view.compliance()) == past.compliance(day), cut
        e = next(f.executive_id for f in o.finals if f.position == cut)
        one = models.as_of(position=cut, executive_id=e)
        for d in days[::2]:
            assert removal_of(one.removal_history(e, d)) == past.removal(e, d), (cut, e, d)
    compare_api(app, models, o, days[:: max(1, len(days) // 4)])
    for rule, _ in o.compliance(TODAY):
        event(f"finding today: {rule}")
    for e in o.execs:
        for d in days:
            h = o.removal(e, d)
            if h["five_year"]["removal_required"]:
                event("REM-3 pair")
            if h["three_year"]["removal_required"]:
                event("REM-2 pair")
            if any(r.level == 1 for r in o.of(e) if r.rated_on <= d) and not h["level1_action_due"]:
                event("REM-1 answered")


def _fresh(tmp: Path, url: str | None = None) -> Iterator[LedgerApp]:
    return fresh_app(tmp, url, Clock())


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(h=histories())
def test_read_models_and_api_agree_with_the_oracle(
    h: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """REM-1, REM-2, REM-3, RAT-9, the below-Fully-Successful report and `current_rating`."""
    for app in _fresh(tmp_path_factory.mktemp("oracle-diff")):
        check(app, h)


@pytest.mark.postgres
@settings(
    max_examples=max(1, EXAMPLES // 3),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(h=histories())
def test_read_models_and_api_agree_with_the_oracle_on_postgres(
    h: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The same on PostgreSQL (text dates, JSON documents and SQL filters of its own)."""
    require_postgres()
    import psycopg

    schema = pg_schema_name()
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        for app in _fresh(tmp_path_factory.mktemp("oracle-diff"), f"{PG_URL}?schema={schema}"):
            check(app, h)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def test_oracle_boundaries_follow_the_docs() -> None:
    """The oracle's own date arithmetic, on docs/api.md's worked examples."""
    assert years_before(date(2024, 2, 29), 3) == date(2021, 3, 1)
    assert years_before(date(2024, 2, 29), 5) == date(2019, 3, 1)
    assert years_after(date(2020, 2, 29), 3) == date(2023, 2, 28)
    assert last_completed_cycle(date(2025, 9, 30)) == 2025
    assert last_completed_cycle(date(2026, 9, 29)) == 2025
    o = Oracle(execs={"E": Exec("E", "DOE", True)}, positions={"E": 1})
    for n, day in enumerate((date(2020, 2, 29), date(2023, 2, 28))):
        o.finals.append(Final(f"A{n}", "E", "ses-basic-2012", day, day, 2, 200, day, n + 2, day))
    assert o.removal("E", date(2023, 2, 28))["three_year"]["triggered_on"] == "2023-02-28"
    # (D - 3 years, D] as of Feb 29 2024 begins after Mar 1 2021
    assert o.below(date(2024, 2, 29)) == {"E": [("A1", 2, "2023-02-28")]}
    assert o.below(date(2023, 3, 1)) == {"E": [("A1", 2, "2023-02-28")]}
    later = replace(o.finals[1], rated_on=date(2023, 3, 1))
    o.finals[1] = later
    assert not o.removal("E", date(2023, 3, 1))["three_year"]["removal_required"]


def test_rat_9_counts_a_capped_rating_that_a_later_basic_period_follows(
    tmp_path: Path,
) -> None:
    """RAT-9 (docs/api.md notes on scope): five career executives rated Level 4 for a
    `ses-2025` period of FY2025 (taken up early, POL-1) and Level 3 for a basic period of the
    same cycle ending later. The share counts each by their later period (Level 3: 0.0); the
    cap counts each by their `ses-2025` rating (5 of 5 at Levels 4-5), not by the basic one,
    which the rule does not cover: the reading the oracle takes."""
    execs = [Exec(f"C{i}", "DOE", True) for i in range(5)]
    plans = []
    for x in execs:
        e = x.executive_id
        plans.append(Plan(f"A-{e}-b", e, date(2025, 6, 15), 4, 4, "early", True, True))
        plans.append(Plan(f"A-{e}", e, date(2025, 11, 3), 3, 3, "year", False, True))
    h = {"execs": execs, "plans": plans, "acts": [], "waivers": [], "catch_up_every": 1}
    for app in _fresh(tmp_path):
        models = ReadModels(app)
        o = record(app, h, models)
        models.catch_up()
        body = models.rating_distribution("DOE", "FY2025", as_of=date(2025, 12, 1))
        assert body["counts"] == {"1": 0, "2": 0, "3": 5, "4": 5, "5": 0}
        assert body["share_levels_4_5"] == 0.0
        assert [f["rule"] for f in body["findings"]] == ["RAT-9"]
        assert "5 of 5 career executives" in body["findings"][0]["detail"]
        assert o.distribution("DOE", 2025, date(2025, 12, 1)) == {
            "counts": body["counts"],
            "share": 0.0,
            "rat9": True,
        }


def test_appraisal_cycle_window_moves_only_with_its_own_ratings(tmp_path: Path) -> None:
    """REM-2 under `appraisal-cycle` (docs/api.md): as of Jun 1 2026 the window holds FY2023-
    FY2025; a Level 4 of FY2026 (a period ended early, rated by then) does not move it to
    FY2024-FY2026, while a Level 2 of FY2026 does (the reading the oracle takes)."""
    x = Exec("E1", "DOE", True)
    low = Plan("A-2023", "E1", date(2023, 11, 6), 2, 2, "year", False, True)
    high = Plan("A-2026", "E1", date(2026, 5, 1), 4, 4, "early", True, True)
    h = {"execs": [x], "plans": [low, high], "acts": [], "waivers": [], "catch_up_every": 1}
    d = date(2026, 6, 1)
    for app in _fresh(tmp_path):
        models = ReadModels(app)
        o = record(app, h, models)
        models.catch_up()
        body = models.removal_history("E1", d, "appraisal-cycle")
        assert [r["appraisal_id"] for r in body["three_year"]["ratings"]] == ["A-2023"]
        assert removal_of(body) == o.removal("E1", d, "appraisal-cycle")
        low2 = replace(high, appraisal_id="A-2026-2", initial_level=2, final_level=2)
        _appraisal(app, o, low2)
        models.catch_up()
        body = models.removal_history("E1", d, "appraisal-cycle")
        assert [r["appraisal_id"] for r in body["three_year"]["ratings"]] == ["A-2026-2"]
        assert body["three_year"]["removal_required"] is False  # FY2023, FY2026: 3 apart
        assert removal_of(body) == o.removal("E1", d, "appraisal-cycle")
