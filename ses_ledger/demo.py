"""A realistic, reproducible synthetic agency history, written through the domain commands.

Same seed, same history: every choice comes from one `random.Random(seed)` and the ledger's
clock is simulated from the business dates, so even `recorded_at` repeats. Each appraisal
cycle is a fiscal year (Oct 1 - Sep 30); periods starting on or after Oct 1 2025 use
`ses-2025`, earlier ones `ses-basic-2012` (POL-1).
"""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from ledger.application import LedgerApp
from ledger.domain.appraisal import Appraisal
from ledger.domain.base import LedgerAggregate, Submission
from ledger.domain.executive import Executive
from ledger.domain.review_board import ReviewBoard
from ledger.errors import RuleViolation
from ledger.policies import POL_1_SES_2025_FROM, basic_2012, ses_2025
from ledger.policies.common import fiscal_year_bounds

AGENCIES = ["DOE", "DOT", "HHS", "DOJ", "EPA", "NASA", "VA", "USDA", "DHS", "DOI"]
STATIONS = ["Washington, DC", "Denver, CO", "Atlanta, GA", "Seattle, WA", "Chicago, IL"]
TITLES = [
    "Deputy Assistant Secretary",
    "Chief Information Officer",
    "Regional Administrator",
    "Director, Office of Policy",
    "Associate Administrator",
    "Chief Financial Officer",
]
FIRST = ["Alex", "Jordan", "Maria", "Wei", "Priya", "Samuel", "Grace", "Omar", "Ruth", "Diego"]
LAST = ["Nguyen", "Okafor", "Smith", "Garcia", "Kowalski", "Haddad", "Chen", "Brooks", "Ivanova"]

BASIC_CODES = list(basic_2012.ELEMENT_CODES)
CODES_2025 = list(ses_2025.ELEMENT_CODES)
#: Weight templates that satisfy WT-1..WT-4 (basic) and WT-1, WT-5, WT-6 (2025).
BASIC_WEIGHTS = [
    [15, 15, 15, 15, 40],
    [20, 20, 20, 20, 20],
    [10, 15, 15, 20, 40],
    [5, 10, 20, 30, 35],
]
WEIGHTS_2025 = [
    [25, 15, 15, 15, 30],
    [30, 20, 15, 15, 20],
    [25, 20, 20, 15, 20],
    [40, 15, 15, 15, 15],
]
#: Summary-level mix: history shows most SES ratings at Levels 4-5 before 2025; agencies
#: planning for the 2025 cap (RAT-9) rate far fewer at the top.
LEVEL_MIX_BASIC = {5: 0.38, 4: 0.42, 3: 0.16, 2: 0.03, 1: 0.01}
LEVEL_MIX_2025 = {5: 0.09, 4: 0.19, 3: 0.62, 2: 0.08, 1: 0.02}


@dataclass
class DemoSummary:
    executives: int = 0
    boards: int = 0
    appraisals: int = 0
    events: int = 0
    final_levels: Counter[int] = field(default_factory=Counter)
    personnel_actions: Counter[str] = field(default_factory=Counter)
    responses: int = 0
    waivers: int = 0
    hlrs: int = 0
    complaints: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    #: Appraisals whose next step falls after the demo's `until` (still in progress then).
    in_progress: int = 0

    def lines(self) -> list[str]:
        levels = ", ".join(f"L{k}: {self.final_levels[k]}" for k in (5, 4, 3, 2, 1))
        actions = ", ".join(f"{k}: {v}" for k, v in sorted(self.personnel_actions.items()))
        out = [
            f"executives registered: {self.executives}; review boards: {self.boards}",
            f"appraisals: {self.appraisals}; events written: {self.events}",
            f"final ratings: {levels}",
            f"responses: {self.responses}; waivers: {self.waivers}; "
            f"higher-level reviews: {self.hlrs}; complaints: {self.complaints}",
            f"personnel actions: {actions or 'none'}",
        ]
        if self.in_progress:
            out.append(
                f"in progress: {self.in_progress} appraisals whose next step is not due yet "
                "(nothing is recorded ahead of the clock)"
            )
        if self.rejected:
            out.append(
                "commands refused by the rules (as a real agency's would be): "
                + ", ".join(f"{k} x{v}" for k, v in sorted(self.rejected.items()))
            )
        return out


class _NotYet(Exception):
    """The story's next step falls after the demo's `until`: it stops there for this
    appraisal, as a real ledger's stops at today."""


class SimulatedClock:
    """`recorded_at` for demo events: the business date at 17:00 UTC, strictly increasing."""

    def __init__(self) -> None:
        self.now = datetime(2000, 1, 1, tzinfo=UTC)

    def at(self, day: date) -> None:
        candidate = datetime.combine(day, time(17, 0), tzinfo=UTC)
        self.now = max(candidate, self.now + timedelta(microseconds=1))

    def __call__(self) -> datetime:
        self.now += timedelta(microseconds=1)
        return self.now


@dataclass
class _Exec:
    aggregate: Executive
    agency: str
    career: bool
    talent: float
    final_levels: list[tuple[date, int]] = field(default_factory=list)
    removed: bool = False


class DemoGenerator:
    def __init__(
        self,
        app: LedgerApp,
        clock: SimulatedClock,
        *,
        seed: int = 2025,
        batch_per_appraisal: bool = False,
        progress: Callable[[int], None] | None = None,
        random_ids: bool = False,
        until: datetime | None = None,
    ) -> None:
        self.app = app
        self.clock = clock
        #: Nothing is recorded after this moment (None: the whole story, whatever its dates).
        self.until = until
        #: The appraisal being told, stored as it stands if its story stops early.
        self._open: Appraisal | None = None
        self.rng = random.Random(seed)
        #: `random_ids`: executives get random UUIDs (`E-<uuid>`, so their appraisals'
        #: ids come in random order too), as ids an HR system chose would; drawn from an
        #: RNG of their own, so the history is otherwise the same as with `E00001...`.
        self.ids = random.Random(seed) if random_ids else None
        self.batch = batch_per_appraisal
        self.progress = progress
        self.summary = DemoSummary()
        self.boards: dict[str, ReviewBoard] = {}

    # -- plumbing -------------------------------------------------------------------

    def _due(self, day: date) -> bool:
        """Whether a step on `day` would be recorded by `until` (at 17:00 UTC, as the
        simulated clock stamps it)."""
        if self.until is None:
            return True
        return datetime.combine(day, time(17, 0), tzinfo=UTC) <= self.until

    def _sub(self, day: date, who: str) -> Submission:
        if not self._due(day):
            raise _NotYet(day)
        self.clock.at(day)
        return Submission(submitted_by=who, recorded_at=self.clock())

    def _store(self, aggregate: LedgerAggregate) -> None:
        pending = len(aggregate.pending_events)
        if pending:
            self.app.store(aggregate)
            self.summary.events += pending
            if self.progress is not None:
                self.progress(pending)

    def _maybe_store(self, aggregate: LedgerAggregate) -> None:
        if not self.batch:
            self._store(aggregate)

    # -- the history ----------------------------------------------------------------

    def run(self, executives: int, years: int, last_cycle: int = 2026) -> DemoSummary:
        first_cycle = last_cycle - years + 1
        per_agency = max(1, min(len(AGENCIES), executives // 6 or 1))
        agencies = AGENCIES[:per_agency]
        start = fiscal_year_bounds(first_cycle)[0]
        for agency in agencies:
            self._register_board(agency, start - timedelta(days=60))
        people = [self._register(i, agencies, start) for i in range(executives)]
        for cycle in range(first_cycle, last_cycle + 1):
            if cycle == 2026 and agencies:
                self._maybe_waiver(agencies, cycle)
            for person in people:
                if not person.removed:
                    try:
                        self._cycle(person, cycle)
                    except _NotYet:
                        self._stop_here()
        return self.summary

    def _stop_here(self) -> None:
        """Store what the stopped story recorded so far (an appraisal part-way)."""
        if self._open is not None:
            if self._open.final_rating is None:
                self.summary.in_progress += 1
            self._store(self._open)
            self._open = None

    def _register_board(self, agency: str, published: date) -> None:
        members = [
            {
                "member_id": f"PRB-{agency}-{k}",
                "name": f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}",
                "career": k != 4,
            }
            for k in range(1, 6)
        ]
        board = ReviewBoard.register(
            f"PRB-{agency}",
            agency=agency,
            federal_register_published_on=published,
            members=members,
            actor=f"admin-{agency}",
            submission=self._sub(published, f"admin-{agency}"),
        )
        self._store(board)
        self.boards[agency] = board
        self.summary.boards += 1

    def _register(self, i: int, agencies: list[str], start: date) -> _Exec:
        rng = self.rng
        agency = agencies[i % len(agencies)]
        roll = rng.random()
        appointment = "career" if roll < 0.86 else "noncareer" if roll < 0.97 else "limited_term"
        appointed = start - timedelta(days=rng.randint(-200, 3000))
        executive = Executive.register(
            self._executive_id(i),
            name=f"{rng.choice(FIRST)} {rng.choice(LAST)}",
            title=rng.choice(TITLES),
            pay_plan="ES",
            agency=agency,
            duty_station=rng.choice(STATIONS),
            appointment_type=appointment,
            probationary=appointed > start - timedelta(days=365),
            appointed_on=appointed,
            actor=f"hr-{agency}",
            submission=self._sub(appointed, f"hr-{agency}"),
        )
        self._store(executive)
        self.summary.executives += 1
        talent = rng.random()
        if rng.random() < 0.03:
            talent = -1.0  # a persistently poor performer: removal cases
        return _Exec(executive, agency, appointment == "career", talent)

    def _executive_id(self, i: int) -> str:
        if self.ids is None:
            return f"E{i + 1:05d}"
        return f"E-{uuid.UUID(int=self.ids.getrandbits(128), version=4)}"

    def _maybe_waiver(self, agencies: list[str], cycle: int) -> None:
        """A cap waiver for the cycle, granted on the day it is recorded (the simulated
        clock's, never before the cycle starts): it was dated Sep 1 of the cycle while the
        clock stood months earlier, an event dated after the day it was recorded."""
        agency = agencies[-1]
        granted_on = max(fiscal_year_bounds(cycle)[0], self.clock.now.date())
        if not self._due(granted_on):
            return
        self.clock.at(granted_on)
        try:
            self.app.grant_rating_cap_waiver(
                agency=agency,
                cycle=f"FY{cycle}",
                granted_on=granted_on,
                reference="Presidential memorandum (synthetic demo data)",
                actor="admin",
                submitted_by="admin",
            )
            self.summary.events += 1
        except RuleViolation as exc:
            self.summary.rejected[exc.rule] += 1

    def _level(self, person: _Exec, policy: str) -> int:
        if person.talent < 0:
            return self.rng.choice([1, 2, 2])
        mix = LEVEL_MIX_2025 if policy == "ses-2025" else LEVEL_MIX_BASIC
        r = self.rng.random() * 0.7 + person.talent * 0.3
        acc = 0.0
        for level in (1, 2, 3, 4, 5):
            acc += mix[level]
            if r <= acc:
                return level
        return 5

    def _element_levels(self, codes: list[str], target: int) -> dict[str, int]:
        levels = {}
        for code in codes:
            jitter = self.rng.choice([-1, 0, 0, 0, 1])
            levels[code] = min(5, max(2, target + jitter)) if target > 1 else 3
        if target == 1:
            levels[self.rng.choice(codes)] = 1
        return levels

    def _cycle(self, person: _Exec, cycle: int) -> None:  # noqa: C901 - a story, told in order
        rng = self.rng
        ex = person.aggregate
        agency = person.agency
        hr = f"hr-{agency}"
        period_start, period_end = fiscal_year_bounds(cycle)
        policy = "ses-2025" if period_start >= POL_1_SES_2025_FROM else "ses-basic-2012"
        codes, templates = (
            (CODES_2025, WEIGHTS_2025) if policy == "ses-2025" else (BASIC_CODES, BASIC_WEIGHTS)
        )
        weights = rng.choice(templates)
        elements = [
            {
                "code": code,
                "weight": weight,
                "requirements": [
                    f"{code.replace('_', ' ').capitalize()}: measurable target {k + 1} "
                    f"by {period_end.isoformat()} (strategic goal {k + 1})"
                    for k in range(3)
                ],
            }
            for code, weight in zip(codes, weights, strict=True)
        ]
        rater = f"RO-{agency}-{rng.randint(1, 4)}"
        communicated = period_start + timedelta(days=rng.choice([0, 0, 0, 5, 20, 45]))
        appraisal_id = f"A-FY{cycle}-{ex.id}"
        appraisal = Appraisal.set_plan(
            appraisal_id,
            executive=ex.facts(),
            policy=policy,
            period_start=period_start,
            period_end=period_end,
            rating_official_id=rater,
            communicated_on=communicated,
            elements=elements,
            actor=rater,
            submission=self._sub(communicated, hr),
        )
        self._open = appraisal
        self._maybe_store(appraisal)
        self.summary.appraisals += 1
        reviews = [period_start + timedelta(days=d) for d in (80, 170, 260, 350)]
        if policy == "ses-basic-2012":
            reviews = [period_start + timedelta(days=180)]
        if rng.random() < 0.05:
            reviews = reviews[:-1]  # a missed review: MON-1 finding
        for day in reviews:
            appraisal.review_progress(
                reviewed_on=day,
                reviewer_id=rater,
                notes="Progress discussed against the plan's measures.",
                actor=rater,
                submission=self._sub(day, hr),
            )
            self._maybe_store(appraisal)
        if rng.random() < 0.03:
            started = period_start + timedelta(days=60)
            appraisal.appraise_detail(
                organization=f"{rng.choice(AGENCIES)} detail",
                started_on=started,
                ended_on=started + timedelta(days=150),
                appraised_on=started + timedelta(days=155),
                level=rng.choice([3, 4, 5]),
                summary="Written appraisal from the gaining organization.",
                actor=f"hr-{agency}",
                submission=self._sub(started + timedelta(days=155), hr),
            )
            self._maybe_store(appraisal)
        target = self._level(person, policy)
        rated_on = period_end + timedelta(days=rng.randint(7, 30))
        appraisal.issue_initial_rating(
            rated_on=rated_on,
            rating_official_id=rater,
            element_levels=self._element_levels(codes, target),
            narrative="Initial summary rating with the rating official's narrative.",
            shared_on=rated_on,
            executive=ex.facts(),
            actor=rater,
            submission=self._sub(rated_on, hr),
        )
        self._maybe_store(appraisal)
        assert appraisal.initial_rating is not None
        initial_level = int(appraisal.initial_rating["summary_level"])
        considered = ["initial_rating"]
        closed_on = rated_on
        roll = rng.random()
        if roll < 0.12 or (initial_level <= 2 and roll < 0.6):
            closed_on = rated_on + timedelta(days=rng.randint(2, 9))
            appraisal.respond(
                submitted_on=closed_on,
                text="I respectfully disagree with the rating of two elements.",
                actor=ex.id,
                submission=self._sub(closed_on, hr),
            )
            self._maybe_store(appraisal)
            considered.append("executive_response")
            self.summary.responses += 1
            if rng.random() < 0.35:
                requested = closed_on
                appraisal.request_higher_level_review(
                    requested_on=requested, actor=ex.id, submission=self._sub(requested, hr)
                )
                reviewed = requested + timedelta(days=rng.randint(5, 15))
                appraisal.recommend_higher_level_review(
                    reviewer_id=f"HLR-{agency}",
                    reviewed_on=reviewed,
                    recommended_level=min(5, initial_level + rng.choice([0, 0, 1])),
                    rationale="Reviewed the record; recommendation to the PRB.",
                    actor=f"HLR-{agency}",
                    submission=self._sub(reviewed, hr),
                )
                self._maybe_store(appraisal)
                considered.append("higher_level_review")
                self.summary.hlrs += 1
                closed_on = reviewed
        elif roll < 0.35:
            closed_on = rated_on + timedelta(days=rng.randint(1, 5))
            appraisal.waive_response(
                waived_on=closed_on, actor=ex.id, submission=self._sub(closed_on, hr)
            )
            self._maybe_store(appraisal)
            self.summary.waivers += 1
        board = self.boards[agency]
        members = sorted(board.facts().members)
        recommended_on = max(closed_on, rated_on + timedelta(days=10)) + timedelta(
            days=rng.randint(3, 20)
        )
        present = rng.sample(members, k=rng.choice([3, 4, 5]))
        appraisal.recommend_by_prb(
            board=board.facts(),
            members_present=present,
            recommended_on=recommended_on,
            recommended_level=initial_level,
            rationale="The board concurs with the rating official.",
            considered=considered,
            executive=ex.facts(),
            actor=board.id,
            submission=self._sub(recommended_on, hr),
        )
        self._maybe_store(appraisal)
        final_on = recommended_on + timedelta(days=rng.randint(3, 20))
        appraisal.assign_final_rating(
            appointing_authority_id=f"AA-{agency}",
            rated_on=final_on,
            level=initial_level,
            executive=ex.facts(),
            actor=f"AA-{agency}",
            submission=self._sub(final_on, hr),
        )
        self._store(appraisal)
        self.summary.final_levels[initial_level] += 1
        person.final_levels.append((final_on, initial_level))
        self._after_final(person, appraisal_id, final_on, initial_level)

    def _after_final(self, person: _Exec, appraisal_id: str, rated_on: date, level: int) -> None:
        """Poor-performance actions (REM-1..REM-3), and now and then a complaint (APP-1)."""
        rng = self.rng
        ex = person.aggregate
        low = [d for d, lv in person.final_levels if lv < 3 and (rated_on - d).days <= 3 * 365]
        ones = [d for d, lv in person.final_levels if lv == 1 and (rated_on - d).days <= 5 * 365]
        action: str | None = None
        if len(low) >= 2 or len(ones) >= 2:
            action = "removal" if person.career or rng.random() < 0.5 else "removal"
        elif level == 1:
            action = rng.choice(["reassignment", "reassignment", "transfer", "removal"])
        if level <= 2 and rng.random() < 0.15:
            filed = rated_on + timedelta(days=rng.randint(10, 40))
            ex.record_complaint(
                forum=rng.choice(["EEOC", "OSC"]),
                filed_on=filed,
                summary="Complaint filed after the annual summary rating.",
                actor=ex.id,
                submission=self._sub(filed, f"hr-{person.agency}"),
            )
            self._store(ex)
            self.summary.complaints += 1
        if action is None or (action == "removal" and rng.random() < 0.15):
            return  # left undone now and then: the compliance report shows REM findings
        notice = rated_on + timedelta(days=rng.randint(5, 30))
        effective = notice + timedelta(days=rng.randint(30, 60))
        facts = ex.facts()
        if action == "removal":
            authority = "5 CFR 359 subpart D" if facts.probationary else "5 CFR 359 subpart E"
        else:
            authority = "5 CFR 359 subpart G" if action == "reassignment" else "5 U.S.C. 3595"
        hearing = None
        if action == "removal" and person.career and rng.random() < 0.3:
            hearing = effective - timedelta(days=rng.randint(15, 25))
            hearing = max(hearing, notice)
            if facts.probationary:
                # REM-7: a probationer's removal (3592(a)(1)) brings no informal hearing;
                # drawn all the same, so that a seed keeps its history.
                hearing = None
        try:
            ex.record_personnel_action(
                action=action,
                basis_appraisal_ids=[appraisal_id],
                notice_on=notice,
                effective_on=effective,
                authority=authority,
                hearing_requested_on=hearing,
                actor=f"AA-{person.agency}",
                submission=self._sub(notice, f"hr-{person.agency}"),
            )
        except RuleViolation as exc:
            self.summary.rejected[exc.rule] += 1
            ex.collect_events()
            return
        self._store(ex)
        self.summary.personnel_actions[action] += 1
        if action == "removal":
            person.removed = True


def run_demo(
    app: LedgerApp,
    clock: SimulatedClock,
    *,
    executives: int,
    years: int,
    seed: int,
    batch_per_appraisal: bool = False,
    progress: Callable[[int], None] | None = None,
    random_ids: bool = False,
    until: datetime | None = None,
) -> DemoSummary:
    """Write the demo's history. `until`: record nothing after that moment (the command
    line passes now, so that no event is dated ahead of the real clock: later writes,
    key rotations and `known_at` reads then meet a history that lies in the past); None
    writes the whole story (the benchmarks', the same on any day)."""
    generator = DemoGenerator(
        app,
        clock,
        seed=seed,
        batch_per_appraisal=batch_per_appraisal,
        progress=progress,
        random_ids=random_ids,
        until=until,
    )
    return generator.run(executives, years)


def estimate_events(executives: int, years: int) -> int:
    """Rough event count for the progress bar (about 9 a year under the 2025 policy)."""
    return executives * (1 + years * 8) + 10
