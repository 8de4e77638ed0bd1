"""Builders of domain histories for tests: each step of an appraisal with sensible defaults.

The defaults tell one story: career executive E1 at DOE, appraisal A-2024-E1 under
ses-basic-2012 for FY2024 (Oct 1 2023 - Sep 30 2024), plan communicated Sep 25 2023,
rated Oct 15 2024, before the PRB `PRB-DOE` (published Jul 3 2023). Each step builder takes
the appraisal, applies one command and returns the appraisal, so a test reads as a story:

    appraisal = finalized(prb_recommended(waived(rated(reviewed(planned())))))

Dates default relative to the appraisal's state, so any step can be overridden alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ledger.domain import (
    Appraisal,
    BoardFacts,
    Executive,
    ExecutiveFacts,
    LedgerAggregate,
    LedgerEvent,
    ReviewBoard,
    Submission,
)

BASIC = "ses-basic-2012"
SES_2025 = "ses-2025"
SUBMISSION = Submission(submitted_by="hr-app-1", recorded_at=datetime(2024, 1, 2, 12, tzinfo=UTC))
ACTOR = "hr-1"

#: The seed 003 worked example's weights (Results Driven is the 40).
BASIC_WEIGHTS: dict[str, int] = {
    "leading_change": 15,
    "leading_people": 15,
    "business_acumen": 15,
    "building_coalitions": 15,
    "results_driven": 40,
}
SES_2025_WEIGHTS: dict[str, int] = {
    "faithful_administration": 30,
    "government_efficiency": 15,
    "merit_and_competence": 15,
    "accountability_and_fairness": 15,
    "organizational_goals": 25,
}
DEFAULT_WEIGHTS = {BASIC: BASIC_WEIGHTS, SES_2025: SES_2025_WEIGHTS}
#: Requirements that satisfy PLAN-2 and PLAN-3.
DEFAULT_REQUIREMENTS: dict[str, list[str]] = {
    "results_driven": ["Cut the claims backlog by 20% by September 2024"],
    "organizational_goals": [
        "Strategic Goal 1: close 95% of audits within 60 days",
        "Strategic Goal 2: reduce unit cost 5% by Q3",
        "Strategic Goal 3: publish the FY2026 data plan",
    ],
}
BOARD_MEMBERS: dict[str, bool] = {"M1": True, "M2": True, "M3": True, "M4": False}


def elements(
    weights: Mapping[str, int], requirements: Mapping[str, list[str]] | None = None
) -> list[dict[str, Any]]:
    """Plan elements from weights; requirements default to ones that raise no flag."""
    texts = DEFAULT_REQUIREMENTS if requirements is None else requirements
    return [
        {"code": code, "weight": weight, "requirements": list(texts.get(code, ["As written."]))}
        for code, weight in weights.items()
    ]


def executive_facts(
    executive_id: str = "E1",
    *,
    agency: str = "DOE",
    appointment_type: str = "career",
    probationary: bool = False,
) -> ExecutiveFacts:
    return ExecutiveFacts(
        executive_id=executive_id,
        agency=agency,
        appointment_type=appointment_type,
        probationary=probationary,
    )


def board_facts(
    board_id: str = "PRB-DOE",
    *,
    agency: str = "DOE",
    published_on: date = date(2023, 7, 3),
    members: Mapping[str, bool] | None = None,
) -> BoardFacts:
    return BoardFacts(
        board_id=board_id,
        agency=agency,
        federal_register_published_on=published_on,
        members=dict(BOARD_MEMBERS if members is None else members),
    )


def register_executive(
    executive_id: str = "E1",
    *,
    appointment_type: str = "career",
    probationary: bool = False,
    agency: str = "DOE",
    appointed_on: date = date(2020, 1, 6),
) -> Executive:
    return Executive.register(
        executive_id,
        name="Pat Doe",
        title="Deputy Assistant Secretary",
        pay_plan="ES",
        agency=agency,
        duty_station="Washington, DC",
        appointment_type=appointment_type,
        probationary=probationary,
        appointed_on=appointed_on,
        actor=ACTOR,
        submission=SUBMISSION,
    )


def register_board(
    board_id: str = "PRB-DOE",
    *,
    agency: str = "DOE",
    published_on: date = date(2023, 7, 3),
    members: Mapping[str, bool] | None = None,
) -> ReviewBoard:
    roster = BOARD_MEMBERS if members is None else members
    return ReviewBoard.register(
        board_id,
        agency=agency,
        federal_register_published_on=published_on,
        members=[{"member_id": m, "name": f"Member {m}", "career": c} for m, c in roster.items()],
        actor=ACTOR,
        submission=SUBMISSION,
    )


def planned(
    appraisal_id: str = "A-2024-E1",
    *,
    executive: ExecutiveFacts | None = None,
    policy: str = BASIC,
    period_start: date | None = None,
    period_end: date | None = None,
    communicated_on: date | None = None,
    weights: Mapping[str, int] | None = None,
    requirements: Mapping[str, list[str]] | None = None,
) -> Appraisal:
    """A plan: FY2024 under the basic policy, FY2026 under ses-2025, unless told otherwise."""
    start = period_start or (date(2023, 10, 1) if policy == BASIC else date(2025, 10, 1))
    end = period_end or date(start.year + 1, start.month, start.day) - timedelta(days=1)
    return Appraisal.set_plan(
        appraisal_id,
        executive=executive or executive_facts(),
        policy=policy,
        period_start=start,
        period_end=end,
        rating_official_id="R1",
        communicated_on=communicated_on or start - timedelta(days=6),
        elements=elements(weights or DEFAULT_WEIGHTS[policy], requirements),
        actor="R1",
        submission=SUBMISSION,
    )


def reviewed(appraisal: Appraisal, *, on: date | None = None) -> Appraisal:
    """One progress review, by default halfway through the period."""
    midpoint = appraisal.period_start + (appraisal.period_end - appraisal.period_start) / 2
    appraisal.review_progress(
        reviewed_on=on or midpoint,
        reviewer_id="R1",
        notes="On track.",
        actor="R1",
        submission=SUBMISSION,
    )
    return appraisal


def facts_for(appraisal: Appraisal, **overrides: Any) -> ExecutiveFacts:
    """Facts of the appraisal's executive (career at DOE unless overridden)."""
    return executive_facts(appraisal.executive_id, **overrides)


def rated(
    appraisal: Appraisal,
    *,
    rated_on: date | None = None,
    levels: Mapping[str, int] | Sequence[int] | None = None,
    shared_on: date | None = None,
    narrative: str = "Met every target.",
    executive: ExecutiveFacts | None = None,
) -> Appraisal:
    """The initial rating, 15 days after the period ends; levels default to 3 everywhere.

    `levels` may be a sequence, matched to the plan's elements in order.
    """
    codes = list(appraisal.weights)
    if levels is None:
        element_levels = dict.fromkeys(codes, 3)
    elif isinstance(levels, Mapping):
        element_levels = dict(levels)
    else:
        element_levels = dict(zip(codes, levels, strict=True))
    appraisal.issue_initial_rating(
        rated_on=rated_on or appraisal.period_end + timedelta(days=15),
        rating_official_id="R1",
        element_levels=element_levels,
        narrative=narrative,
        shared_on=shared_on,
        executive=executive or facts_for(appraisal),
        actor="R1",
        submission=SUBMISSION,
    )
    return appraisal


def _shared_on(appraisal: Appraisal) -> date:
    """When the rating was shared; before any rating, the default rating day (so a test can
    try a step out of order and see SEQ-1)."""
    if appraisal.initial_rating is None:
        return appraisal.period_end + timedelta(days=15)
    shared: date = appraisal.initial_rating["shared_on"]
    return shared


def waived(appraisal: Appraisal, *, on: date | None = None) -> Appraisal:
    appraisal.waive_response(
        waived_on=on or _shared_on(appraisal) + timedelta(days=2),
        actor=appraisal.executive_id,
        submission=SUBMISSION,
    )
    return appraisal


def responded(appraisal: Appraisal, *, on: date | None = None) -> Appraisal:
    appraisal.respond(
        submitted_on=on or _shared_on(appraisal) + timedelta(days=3),
        text="I ask the board to weigh the backlog reduction.",
        actor=appraisal.executive_id,
        submission=SUBMISSION,
    )
    return appraisal


def hlr_requested(appraisal: Appraisal, *, on: date | None = None) -> Appraisal:
    appraisal.request_higher_level_review(
        requested_on=on or _shared_on(appraisal) + timedelta(days=4),
        actor=appraisal.executive_id,
        submission=SUBMISSION,
    )
    return appraisal


def hlr_recommended(
    appraisal: Appraisal, *, on: date | None = None, level: int = 4, reviewer_id: str = "H1"
) -> Appraisal:
    requested_on = (
        _shared_on(appraisal)
        if appraisal.hlr_request is None
        else appraisal.hlr_request["requested_on"]
    )
    appraisal.recommend_higher_level_review(
        reviewer_id=reviewer_id,
        reviewed_on=on or requested_on + timedelta(days=7),
        recommended_level=level,
        rationale="The backlog result merits Level 4.",
        actor=reviewer_id,
        submission=SUBMISSION,
    )
    return appraisal


def considered_for(appraisal: Appraisal) -> list[str]:
    """What a PRB-5-compliant recommendation lists for this appraisal's records."""
    items = ["initial_rating"]
    if appraisal.response is not None:
        items.append("executive_response")
    if appraisal.hlr_recommendation is not None:
        items.append("higher_level_review")
    return items


def prb_recommended(
    appraisal: Appraisal,
    *,
    on: date | None = None,
    board: BoardFacts | None = None,
    members_present: Iterable[str] = ("M1", "M2", "M3"),
    level: int | None = None,
    considered: Sequence[str] | None = None,
    executive: ExecutiveFacts | None = None,
) -> Appraisal:
    """The PRB recommendation, by default 30 days after the rating was shared."""
    appraisal.recommend_by_prb(
        board=board or board_facts(),
        members_present=list(members_present),
        recommended_on=on or _shared_on(appraisal) + timedelta(days=30),
        recommended_level=level or _summary_level(appraisal),
        rationale="Concur with the rating official.",
        considered=considered_for(appraisal) if considered is None else list(considered),
        executive=executive or facts_for(appraisal),
        actor="PRB-DOE",
        submission=SUBMISSION,
    )
    return appraisal


def _summary_level(appraisal: Appraisal) -> int:
    if appraisal.initial_rating is None:
        return 3
    level: int = appraisal.initial_rating["summary_level"]
    return level


def finalized(
    appraisal: Appraisal,
    *,
    on: date | None = None,
    level: int | None = None,
    executive: ExecutiveFacts | None = None,
) -> Appraisal:
    """The appointing authority's final rating, by default 14 days after the PRB."""
    prb = appraisal.prb_recommendation or {
        "recommended_on": _shared_on(appraisal) + timedelta(days=30),
        "recommended_level": 3,
    }
    appraisal.assign_final_rating(
        appointing_authority_id="AA1",
        rated_on=on or prb["recommended_on"] + timedelta(days=14),
        level=level or prb["recommended_level"],
        executive=executive or facts_for(appraisal),
        actor="AA1",
        submission=SUBMISSION,
    )
    return appraisal


def state_of(aggregate: LedgerAggregate) -> dict[str, Any]:
    """An aggregate's state without its not-yet-saved events, for equality checks."""
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def replay(events: Iterable[LedgerEvent]) -> Any:
    """Rebuild an aggregate the way the library's projector does: `event.mutate` in order."""
    aggregate: Any = None
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate
