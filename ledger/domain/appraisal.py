"""One executive's appraisal for one period: plan to final rating, judged by its plan's policy.

Order (SEQ-1): plan; progress reviews, detail appraisals and period extensions; one initial
rating; response or waiver and higher-level review, in any order; one PRB recommendation;
one final rating; then nothing (complaints live on the `Executive`). Every command runs its
guards first and records one event only when all pass.

Dates must follow the steps they answer (a response cannot predate the rating it answers);
such an ordering error is SEQ-1 as well.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Self

from ledger.domain.base import LedgerAggregate, LedgerEvent, Submission
from ledger.domain.executive import ExecutiveFacts
from ledger.domain.review_board import BoardFacts
from ledger.errors import RuleViolation
from ledger.policies import Policy, get_policy, pol_1_check_policy
from ledger.policies.common import (
    per_2_check_minimum_period,
    per_3_check_transition,
    per_4_check_extension,
    per_4_check_ratable,
    prb_1_check_present,
    prb_2_check_career_majority,
    prb_3_check_not_own,
    prb_4_check_published,
    prb_5_check_considered,
    rat_1_check_level,
    rat_4_check_in_writing,
    rat_5_check_in_writing,
    rat_6_check_reviewer,
    rat_7_check_opportunity,
    rat_8_check_after_prb,
)

PLANNED = "planned"
MONITORING = "monitoring"
INITIALLY_RATED = "initially_rated"
RESPONSE_CLOSED = "response_closed"
HIGHER_LEVEL_REVIEW = "higher_level_review"
PRB_RECOMMENDED = "prb_recommended"
FINAL = "final"
STAGES = (
    PLANNED,
    MONITORING,
    INITIALLY_RATED,
    RESPONSE_CLOSED,
    HIGHER_LEVEL_REVIEW,
    PRB_RECOMMENDED,
    FINAL,
)


def _record(event: LedgerEvent) -> dict[str, Any]:
    """The event's own fields as Python values, copied so state never shares the event's lists."""
    return {name: _copy(getattr(event, name)) for name in event.data_fields()}


def _copy(value: Any) -> Any:
    """A deep copy of JSON-like values (lists and dicts), far cheaper than `copy.deepcopy`."""
    if type(value) is list:
        return [_copy(v) for v in value]
    if type(value) is dict:
        return {k: _copy(v) for k, v in value.items()}
    return value


# --- Events ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanSet(LedgerEvent):
    """The plan was set and communicated; `policy` (the entry's own field) names the rules."""

    creates = True

    appraisal_id: str
    executive_id: str
    period_start: date
    period_end: date
    rating_official_id: str
    communicated_on: date
    #: Each: code, weight, requirements (list of str).
    elements: list[dict[str, Any]]

    def new_aggregate(self) -> Appraisal:
        return Appraisal(self.originator_id)

    def apply(self, aggregate: Appraisal) -> None:
        aggregate.executive_id = self.executive_id
        aggregate.policy = self.policy or ""
        aggregate.period_start = self.period_start
        aggregate.period_end = self.period_end
        aggregate.rating_official_id = self.rating_official_id
        aggregate.communicated_on = self.communicated_on
        aggregate.elements = _copy(self.elements)


@dataclass(frozen=True)
class ProgressReviewed(LedgerEvent):
    reviewed_on: date
    reviewer_id: str
    notes: str

    def apply(self, aggregate: Appraisal) -> None:
        aggregate.progress_reviews.append(_record(self))


@dataclass(frozen=True)
class DetailAppraised(LedgerEvent):
    organization: str
    started_on: date
    ended_on: date
    appraised_on: date
    level: int
    summary: str

    def apply(self, aggregate: Appraisal) -> None:
        aggregate.detail_appraisals.append(_record(self))


@dataclass(frozen=True)
class PeriodExtended(LedgerEvent):
    extended_on: date
    new_period_end: date
    reason: str

    def apply(self, aggregate: Appraisal) -> None:
        aggregate.extensions.append(_record(self))
        aggregate.period_end = self.new_period_end


@dataclass(frozen=True)
class InitialRatingIssued(LedgerEvent):
    """`score` and `summary_level` are derived from `element_levels` (RAT-1..RAT-3)."""

    rated_on: date
    rating_official_id: str
    element_levels: dict[str, int]
    narrative: str
    shared_on: date
    score: int
    summary_level: int

    def apply(self, aggregate: Appraisal) -> None:
        aggregate.initial_rating = _record(self)


@dataclass(frozen=True)
class ExecutiveResponded(LedgerEvent):
    submitted_on: date
    text: str

    def apply(self, aggregate: Appraisal) -> None:
        aggregate.response = _record(self)


@dataclass(frozen=True)
class ResponseWaived(LedgerEvent):
    waived_on: date

    def apply(self, aggregate: Appraisal) -> None:
        aggregate.waiver = _record(self)


@dataclass(frozen=True)
class HigherLevelReviewRequested(LedgerEvent):
    requested_on: date

    def apply(self, aggregate: Appraisal) -> None:
        aggregate.hlr_request = _record(self)


@dataclass(frozen=True)
class HigherLevelReviewRecommended(LedgerEvent):
    reviewer_id: str
    reviewed_on: date
    recommended_level: int
    rationale: str

    def apply(self, aggregate: Appraisal) -> None:
        aggregate.hlr_recommendation = _record(self)


@dataclass(frozen=True)
class PRBRecommended(LedgerEvent):
    board_id: str
    members_present: list[str]
    recommended_on: date
    recommended_level: int
    rationale: str
    considered: list[str]

    def apply(self, aggregate: Appraisal) -> None:
        aggregate.prb_recommendation = _record(self)


@dataclass(frozen=True)
class FinalRatingAssigned(LedgerEvent):
    """`score` repeats the initial rating's score, for readers of this entry alone."""

    appointing_authority_id: str
    rated_on: date
    level: int
    score: int
    executive_id: str

    def apply(self, aggregate: Appraisal) -> None:
        aggregate.final_rating = _record(self)


# --- Aggregate -------------------------------------------------------------------------------


class Appraisal(LedgerAggregate):
    """An appraisal stream. State is plain attributes; records are dicts of the event data."""

    kind = "appraisal"

    def __init__(self, appraisal_id: str) -> None:
        super().__init__(appraisal_id)
        # Set by PlanSet, which always starts the stream.
        self.executive_id = ""
        self.policy = ""
        self.period_start = date.min
        self.period_end = date.min
        self.rating_official_id = ""
        self.communicated_on = date.min
        self.elements: list[dict[str, Any]] = []
        self.progress_reviews: list[dict[str, Any]] = []
        self.detail_appraisals: list[dict[str, Any]] = []
        self.extensions: list[dict[str, Any]] = []
        self.initial_rating: dict[str, Any] | None = None
        self.response: dict[str, Any] | None = None
        self.waiver: dict[str, Any] | None = None
        self.hlr_request: dict[str, Any] | None = None
        self.hlr_recommendation: dict[str, Any] | None = None
        self.prb_recommendation: dict[str, Any] | None = None
        self.final_rating: dict[str, Any] | None = None

    # --- Reads -------------------------------------------------------------------------------

    @property
    def appraisal_id(self) -> str:
        return self.id

    def policy_name(self) -> str | None:
        return self.policy or None

    def executive_of(self) -> str | None:
        return self.executive_id

    @property
    def rules(self) -> Policy:
        """The policy named in the plan: the only rules this appraisal is judged by."""
        return get_policy(self.policy)

    @property
    def weights(self) -> dict[str, int]:
        return {e["code"]: e["weight"] for e in self.elements}

    @property
    def score(self) -> int | None:
        """The initial rating's score (the final rating keeps it), or None before it."""
        return None if self.initial_rating is None else int(self.initial_rating["score"])

    @property
    def response_closed(self) -> bool:
        """The executive responded or waived (RAT-5)."""
        return self.response is not None or self.waiver is not None

    @property
    def stage(self) -> str:
        """The contract's stage: the furthest step reached."""
        if self.final_rating is not None:
            return FINAL
        if self.prb_recommendation is not None:
            return PRB_RECOMMENDED
        if self.hlr_request is not None:
            return HIGHER_LEVEL_REVIEW
        if self.response_closed:
            return RESPONSE_CLOSED
        if self.initial_rating is not None:
            return INITIALLY_RATED
        if self.progress_reviews:
            return MONITORING
        return PLANNED

    # --- Guards ------------------------------------------------------------------------------

    def _check_open(self, action: str) -> None:
        """SEQ-1: nothing follows the final rating."""
        if self.final_rating is not None:
            raise RuleViolation(
                "SEQ-1",
                f"{self.id} received its final rating on {self.final_rating['rated_on']}; "
                f"no {action} may follow.",
            )

    def _check_not_rated(self, action: str) -> None:
        """SEQ-1: the step belongs before the initial rating."""
        if self.initial_rating is not None:
            raise RuleViolation(
                "SEQ-1",
                f"{self.id} was initially rated on {self.initial_rating['rated_on']}; "
                f"a {action} comes before the initial rating.",
            )

    def _rated(self, action: str) -> dict[str, Any]:
        """SEQ-1: the step needs the initial rating; returns it."""
        if self.initial_rating is None:
            raise RuleViolation(
                "SEQ-1", f"{self.id} has no initial rating yet; a {action} comes after it."
            )
        return self.initial_rating

    def _check_before_prb(self, rule: str, action: str) -> None:
        if self.prb_recommendation is not None:
            raise RuleViolation(
                rule,
                f"the PRB recommended on {self.prb_recommendation['recommended_on']}; "
                f"a {action} must come before the PRB considers the rating.",
            )

    @staticmethod
    def _check_not_before(day: date, earliest: date, action: str, step: str) -> None:
        """SEQ-1: an action is not dated before the step it follows."""
        if day < earliest:
            raise RuleViolation(
                "SEQ-1", f"the {action} is dated {day}, before {step} on {earliest}."
            )

    def _check_executive(self, executive: ExecutiveFacts) -> None:
        """Programming guard: the application passed facts of another executive."""
        if executive.executive_id != self.executive_id:
            raise ValueError(f"{self.id} rates {self.executive_id}, not {executive.executive_id}")

    # --- Commands ----------------------------------------------------------------------------

    @classmethod
    def set_plan(
        cls,
        appraisal_id: str,
        *,
        executive: ExecutiveFacts,
        policy: str,
        period_start: date,
        period_end: date,
        rating_official_id: str,
        communicated_on: date,
        elements: Sequence[Mapping[str, Any]],
        actor: str,
        submission: Submission,
    ) -> Self:
        """POL-1, PER-1, WT-1..WT-6. A late plan (PLAN-1) is recorded and flagged."""
        rules = pol_1_check_policy(policy, period_start)
        rules.check_plan(period_start=period_start, period_end=period_end, elements=elements)
        return cls._start(
            PlanSet,
            appraisal_id,
            occurred_on=communicated_on,
            actor=actor,
            submission=submission,
            policy=rules.name,
            appraisal_id=appraisal_id,
            executive_id=executive.executive_id,
            period_start=period_start,
            period_end=period_end,
            rating_official_id=rating_official_id,
            communicated_on=communicated_on,
            elements=[
                {
                    "code": e["code"],
                    "weight": e["weight"],
                    "requirements": list(e.get("requirements") or []),
                }
                for e in elements
            ],
        )

    def review_progress(
        self,
        *,
        reviewed_on: date,
        reviewer_id: str,
        notes: str,
        actor: str,
        submission: Submission,
    ) -> None:
        """SEQ-1: progress reviews follow the plan and precede the initial rating."""
        self._check_open("progress review")
        self._check_not_rated("progress review")
        self._check_not_before(
            reviewed_on, self.communicated_on, "progress review", "the plan was communicated"
        )
        self._trigger(
            ProgressReviewed,
            occurred_on=reviewed_on,
            actor=actor,
            submission=submission,
            reviewed_on=reviewed_on,
            reviewer_id=reviewer_id,
            notes=notes,
        )

    def appraise_detail(
        self,
        *,
        organization: str,
        started_on: date,
        ended_on: date,
        appraised_on: date,
        level: int,
        summary: str,
        actor: str,
        submission: Submission,
    ) -> None:
        """The gaining organization's written appraisal of a detail (PER-5).

        Accepted until the final rating; one made after the initial rating is flagged (PER-5).
        Dates out of order are SEQ-1: PER-5 is a flag rule, so it never refuses a write.
        """
        self._check_open("detail appraisal")
        self._check_not_before(ended_on, started_on, "detail's end", "its start")
        self._check_not_before(appraised_on, started_on, "detail appraisal", "the detail began")
        rat_1_check_level(level, "the detail appraisal's level")
        self._trigger(
            DetailAppraised,
            occurred_on=appraised_on,
            actor=actor,
            submission=submission,
            organization=organization,
            started_on=started_on,
            ended_on=ended_on,
            appraised_on=appraised_on,
            level=level,
            summary=summary,
        )

    def extend_period(
        self,
        *,
        extended_on: date,
        new_period_end: date,
        reason: str,
        actor: str,
        submission: Submission,
    ) -> None:
        """PER-4: the extension lengthens the period and says why; PER-1 holds for the new end."""
        self._check_open("period extension")
        self._check_not_rated("period extension")
        self._check_not_before(
            extended_on, self.communicated_on, "extension", "the plan was communicated"
        )
        per_4_check_extension(
            period_end=self.period_end, new_period_end=new_period_end, reason=reason
        )
        self.rules.check_period(self.period_start, new_period_end)
        self._trigger(
            PeriodExtended,
            occurred_on=extended_on,
            actor=actor,
            submission=submission,
            extended_on=extended_on,
            new_period_end=new_period_end,
            reason=reason,
        )

    def issue_initial_rating(
        self,
        *,
        rated_on: date,
        rating_official_id: str,
        element_levels: Mapping[str, int],
        narrative: str,
        shared_on: date | None,
        executive: ExecutiveFacts,
        actor: str,
        submission: Submission,
    ) -> None:
        """SEQ-1, PER-2, PER-4, PER-3, RAT-1..RAT-3 (derives score and level), RAT-4.

        `shared_on` defaults to `rated_on`.
        """
        self._check_executive(executive)
        self._check_open("initial rating")
        if self.initial_rating is not None:
            raise RuleViolation(
                "SEQ-1",
                f"{self.id} already has its initial rating of "
                f"{self.initial_rating['rated_on']}; there is one initial rating.",
            )
        self._check_not_before(
            rated_on, self.communicated_on, "initial rating", "the plan was communicated"
        )
        for day, step in self._steps_before_rating():
            self._check_not_before(rated_on, day, "initial rating", step)
        per_2_check_minimum_period(
            period_start=self.period_start, communicated_on=self.communicated_on, rated_on=rated_on
        )
        per_4_check_ratable(
            period_start=self.period_start,
            period_end=self.period_end,
            communicated_on=self.communicated_on,
            rated_on=rated_on,
        )
        per_3_check_transition(rated_on, is_career=executive.is_career, what="initial rating")
        derived = self.rules.derive(element_levels, self.weights)
        shared = rated_on if shared_on is None else shared_on
        rat_4_check_in_writing(narrative=narrative, rated_on=rated_on, shared_on=shared)
        self._trigger(
            InitialRatingIssued,
            occurred_on=rated_on,
            actor=actor,
            submission=submission,
            rated_on=rated_on,
            rating_official_id=rating_official_id,
            element_levels={code: element_levels[code] for code in self.weights},
            narrative=narrative,
            shared_on=shared,
            score=derived.score,
            summary_level=derived.summary_level,
        )

    def _check_response_open(self, action: str) -> dict[str, Any]:
        """RAT-5: one response or one waiver, after the rating is shared, before the PRB."""
        self._check_open(action)
        rating = self._rated(action)
        self._check_before_prb("RAT-5", action)
        if self.response is not None:
            raise RuleViolation(
                "RAT-5", f"the executive already responded on {self.response['submitted_on']}."
            )
        if self.waiver is not None:
            raise RuleViolation(
                "RAT-5", f"the executive already waived a response on {self.waiver['waived_on']}."
            )
        return rating

    def respond(self, *, submitted_on: date, text: str, actor: str, submission: Submission) -> None:
        """RAT-5: the executive's written response to the initial rating."""
        rating = self._check_response_open("response")
        self._check_not_before(
            submitted_on, rating["shared_on"], "response", "the rating was shared"
        )
        rat_5_check_in_writing(text)
        self._trigger(
            ExecutiveResponded,
            occurred_on=submitted_on,
            actor=actor,
            submission=submission,
            submitted_on=submitted_on,
            text=text,
        )

    def waive_response(self, *, waived_on: date, actor: str, submission: Submission) -> None:
        """RAT-5: the executive gives up the chance to respond, so the PRB need not wait."""
        rating = self._check_response_open("response waiver")
        self._check_not_before(waived_on, rating["shared_on"], "waiver", "the rating was shared")
        self._trigger(
            ResponseWaived,
            occurred_on=waived_on,
            actor=actor,
            submission=submission,
            waived_on=waived_on,
        )

    def request_higher_level_review(
        self, *, requested_on: date, actor: str, submission: Submission
    ) -> None:
        """RAT-6: one request, after the rating is shared and before the PRB."""
        self._check_open("higher-level review request")
        rating = self._rated("higher-level review request")
        self._check_before_prb("RAT-6", "higher-level review request")
        if self.hlr_request is not None:
            raise RuleViolation(
                "RAT-6",
                f"a higher-level review was already requested on "
                f"{self.hlr_request['requested_on']}.",
            )
        self._check_not_before(
            requested_on,
            rating["shared_on"],
            "higher-level review request",
            "the rating was shared",
        )
        self._trigger(
            HigherLevelReviewRequested,
            occurred_on=requested_on,
            actor=actor,
            submission=submission,
            requested_on=requested_on,
        )

    def recommend_higher_level_review(
        self,
        *,
        reviewer_id: str,
        reviewed_on: date,
        recommended_level: int,
        rationale: str,
        actor: str,
        submission: Submission,
    ) -> None:
        """RAT-6: the reviewer recommends a level; the initial rating itself never changes."""
        self._check_open("higher-level review")
        self._rated("higher-level review")
        self._check_before_prb("RAT-6", "higher-level review")
        request = self.hlr_request
        if request is None:
            raise RuleViolation(
                "RAT-6", "a higher-level review answers the executive's request; none was made."
            )
        if self.hlr_recommendation is not None:
            raise RuleViolation(
                "RAT-6",
                f"the higher-level review was already made on "
                f"{self.hlr_recommendation['reviewed_on']}.",
            )
        rat_6_check_reviewer(
            reviewer_id,
            rating_official_id=self.rating_official_id,
            initial_rater=self._initial_rater(),
        )
        rat_1_check_level(recommended_level, "the recommended level")
        self._check_not_before(
            reviewed_on, request["requested_on"], "higher-level review", "its request"
        )
        self._trigger(
            HigherLevelReviewRecommended,
            occurred_on=reviewed_on,
            actor=actor,
            submission=submission,
            reviewer_id=reviewer_id,
            reviewed_on=reviewed_on,
            recommended_level=recommended_level,
            rationale=rationale,
        )

    def _initial_rater(self) -> str | None:
        return (
            None if self.initial_rating is None else str(self.initial_rating["rating_official_id"])
        )

    def _steps_before_rating(self) -> list[tuple[date, str]]:
        """The latest progress review and period extension: the initial rating follows both
        (SEQ-1). Detail appraisals are left out: one may follow the rating (PER-5 flags it)."""
        steps: list[tuple[date, str]] = []
        if self.progress_reviews:
            latest = max(r["reviewed_on"] for r in self.progress_reviews)
            steps.append((latest, "the latest progress review"))
        if self.extensions:
            latest = max(x["extended_on"] for x in self.extensions)
            steps.append((latest, "the period extension"))
        return steps

    def _latest_step(self) -> tuple[date, str]:
        """The latest dated step the PRB recommendation must follow (SEQ-1)."""
        rating = self._rated("PRB recommendation")
        steps = [(rating["shared_on"], "the rating was shared")]
        if self.response is not None:
            steps.append((self.response["submitted_on"], "the response"))
        if self.waiver is not None:
            steps.append((self.waiver["waived_on"], "the waiver"))
        if self.hlr_recommendation is not None:
            steps.append((self.hlr_recommendation["reviewed_on"], "the higher-level review"))
        return max(steps, key=lambda step: step[0])

    def recommend_by_prb(
        self,
        *,
        board: BoardFacts,
        members_present: Sequence[str],
        recommended_on: date,
        recommended_level: int,
        rationale: str,
        considered: Sequence[str],
        executive: ExecutiveFacts,
        actor: str,
        submission: Submission,
    ) -> None:
        """SEQ-1, PRB-1..PRB-5, RAT-7.

        The board must belong to the executive's agency: refused as PRB-1, whose subject is
        which board may act (its members and quorum); rules.md has no separate ID for it.
        """
        self._check_executive(executive)
        self._check_open("PRB recommendation")
        rating = self._rated("PRB recommendation")
        if self.prb_recommendation is not None:
            raise RuleViolation(
                "SEQ-1",
                f"the PRB already recommended on {self.prb_recommendation['recommended_on']}; "
                "there is one recommendation.",
            )
        if self.hlr_request is not None and self.hlr_recommendation is None:
            raise RuleViolation(
                "SEQ-1",
                f"a higher-level review requested on {self.hlr_request['requested_on']} is "
                "still pending; the PRB considers it first.",
            )
        if board.agency != executive.agency:
            raise RuleViolation(
                "PRB-1",
                f"{board.board_id} serves {board.agency}; the executive belongs to "
                f"{executive.agency}.",
            )
        prb_1_check_present(members_present, board.members, board.board_id)
        prb_2_check_career_majority(
            members_present, board.members, executive_is_career=executive.is_career
        )
        prb_3_check_not_own(members_present, executive.executive_id)
        prb_4_check_published(recommended_on, board.federal_register_published_on)
        prb_5_check_considered(
            considered,
            has_response=self.response is not None,
            has_hlr_recommendation=self.hlr_recommendation is not None,
        )
        rat_7_check_opportunity(
            recommended_on=recommended_on,
            shared_on=rating["shared_on"],
            response_closed=self.response_closed,
            window_days=self.rules.response_window_days,
        )
        rat_1_check_level(recommended_level, "the recommended level")
        latest, step = self._latest_step()
        self._check_not_before(recommended_on, latest, "PRB recommendation", step)
        self._trigger(
            PRBRecommended,
            occurred_on=recommended_on,
            actor=actor,
            submission=submission,
            board_id=board.board_id,
            members_present=list(members_present),
            recommended_on=recommended_on,
            recommended_level=recommended_level,
            rationale=rationale,
            considered=list(considered),
        )

    def assign_final_rating(
        self,
        *,
        appointing_authority_id: str,
        rated_on: date,
        level: int,
        executive: ExecutiveFacts,
        actor: str,
        submission: Submission,
    ) -> None:
        """SEQ-1 (exactly one), RAT-8 (after the PRB), PER-3; the level is the authority's call."""
        self._check_executive(executive)
        self._check_open("second final rating")
        prb = self.prb_recommendation
        rat_8_check_after_prb(
            prb_recommended_on=None if prb is None else prb["recommended_on"], rated_on=rated_on
        )
        per_3_check_transition(rated_on, is_career=executive.is_career, what="final rating")
        rat_1_check_level(level, "the final rating's level")
        self._trigger(
            FinalRatingAssigned,
            occurred_on=rated_on,
            actor=actor,
            submission=submission,
            appointing_authority_id=appointing_authority_id,
            rated_on=rated_on,
            level=level,
            score=self.score,
            executive_id=self.executive_id,
        )
