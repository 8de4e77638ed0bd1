"""Request bodies of the write endpoints: exactly the contract's fields, strictly typed.

Rules that are the domain's to judge (weights, element codes, board sizes, dates in order)
are left to it, so that a refusal carries its rules.md ID; only shapes are checked here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StrictBool, StrictInt, field_validator

from api.schemas.common import (
    MAX_DAY,
    MIN_DAY,
    Agency,
    Body,
    Code,
    Day,
    Id,
    Level,
    Name,
    NewId,
    RuleText,
    Text,
)
from ledger.policies.common import fiscal_year

AppointmentType = Literal["career", "noncareer", "limited_term", "limited_emergency"]
Policy = Literal["ses-basic-2012", "ses-2025"]
Considered = Literal["initial_rating", "executive_response", "higher_level_review"]
PersonnelActionKind = Literal["reassignment", "transfer", "demotion", "removal"]
Forum = Literal["EEOC", "OSC"]
#: The cycles a period can end in: dates lie in 1900-2199, so FY1900 (Jan 1 1900) to FY2200
#: (Oct 1 - Dec 31 2199). Another (`FY0000`: no calendar date lies in it) names nothing.
FIRST_CYCLE, LAST_CYCLE = fiscal_year(MIN_DAY), fiscal_year(MAX_DAY)


def _cycle_in_range(value: str) -> str:
    if not FIRST_CYCLE <= int(value[2:]) <= LAST_CYCLE:
        raise ValueError(
            f"must be a fiscal year from FY{FIRST_CYCLE} to FY{LAST_CYCLE}: the cycles in which "
            f"a period of dates between {MIN_DAY} and {MAX_DAY} can end"
        )
    return value


Cycle = Annotated[
    str,
    Field(
        pattern=r"^FY[0-9]{4}$",
        examples=["FY2026"],
        description=f"A fiscal year, FY{FIRST_CYCLE} to FY{LAST_CYCLE} (Oct 1 - Sep 30).",
    ),
    AfterValidator(_cycle_in_range),
]
PayPlan = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9 \-]{0,15}$")]


def _unique(values: list[Any]) -> list[Any]:
    if len(set(values)) != len(values):
        raise ValueError("must not repeat an entry")
    return values


class ExecutiveIn(Body):
    executive_id: NewId
    name: Name
    title: Name
    pay_plan: PayPlan
    agency: Agency
    duty_station: Name
    appointment_type: AppointmentType
    probationary: StrictBool
    appointed_on: Day


class BoardMember(Body):
    member_id: Id
    name: Name
    career: StrictBool


class ReviewBoardIn(Body):
    """A member listed twice is PRB-1's to refuse (it counts members), with the rule's ID."""

    board_id: NewId
    agency: Agency
    federal_register_published_on: Day
    members: list[BoardMember] = Field(max_length=100)


class RatingCapWaiverIn(Body):
    agency: Agency
    cycle: Cycle
    granted_on: Day
    reference: Name


class Element(Body):
    code: Code
    weight: Annotated[StrictInt, Field(ge=0, le=100)]
    requirements: list[Text] = Field(max_length=50)


class PlanIn(Body):
    appraisal_id: NewId
    executive_id: Id
    policy: Policy
    period_start: Day
    period_end: Day
    rating_official_id: Id
    communicated_on: Day
    elements: list[Element] = Field(max_length=20)


class ProgressReviewIn(Body):
    reviewed_on: Day
    reviewer_id: Id
    notes: Text


class DetailAppraisalIn(Body):
    organization: Name
    started_on: Day
    ended_on: Day
    appraised_on: Day
    level: Level
    summary: Text


class PeriodExtensionIn(Body):
    extended_on: Day
    new_period_end: Day
    reason: RuleText


class InitialRatingIn(Body):
    rated_on: Day
    rating_official_id: Id
    element_levels: dict[Code, Level] = Field(max_length=20)
    narrative: RuleText
    #: The date the executive received the rating; defaults to `rated_on`.
    shared_on: Day | None = None


class ExecutiveResponseIn(Body):
    submitted_on: Day
    text: RuleText


class ResponseWaiverIn(Body):
    waived_on: Day


class HigherLevelReviewRequestIn(Body):
    requested_on: Day


class HigherLevelReviewIn(Body):
    reviewer_id: Id
    reviewed_on: Day
    recommended_level: Level
    rationale: Text


class PRBRecommendationIn(Body):
    """A member present listed twice is PRB-1's to refuse (it counts those present)."""

    board_id: Id
    members_present: list[Id] = Field(max_length=100)
    recommended_on: Day
    recommended_level: Level
    rationale: Text
    considered: list[Considered] = Field(max_length=3)

    _distinct = field_validator("considered")(_unique)


class FinalRatingIn(Body):
    appointing_authority_id: Id
    rated_on: Day
    level: Level


class PersonnelActionIn(Body):
    action: PersonnelActionKind
    basis_appraisal_ids: list[Id] = Field(default_factory=list, max_length=50)
    notice_on: Day
    effective_on: Day
    authority: Name
    hearing_requested_on: Day | None = None

    _distinct = field_validator("basis_appraisal_ids")(_unique)


class ComplaintIn(Body):
    forum: Forum
    filed_on: Day
    summary: Text
