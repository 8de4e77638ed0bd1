"""The appraisal aggregate: its story from plan to final rating, and every guard on the way."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest

from ledger.domain import (
    EVENT_TYPES,
    Appraisal,
    ExecutiveFacts,
    FinalRatingAssigned,
    InitialRatingIssued,
    LedgerEvent,
    PlanSet,
)
from ledger.domain.base import BASE_FIELDS
from ledger.errors import RuleViolation
from ledger.policies.common import (
    per_3_check_transition,
    per_4_check_extension,
    rat_5_check_in_writing,
    rat_6_check_reviewer,
)
from tests.unit.domain_builders import (
    BASIC,
    SES_2025,
    SUBMISSION,
    executive_facts,
    facts_for,
    finalized,
    hlr_recommended,
    hlr_requested,
    planned,
    prb_recommended,
    rated,
    replay,
    responded,
    reviewed,
    state_of,
    waived,
)

WORKED_EXAMPLE = (4, 5, 3, 4, 4)  # seed 003, with weights 15,15,15,15,40


def refused(appraisal: Appraisal, rule: str, command: Callable[[], object]) -> RuleViolation:
    """Run `command`, expect `rule`, and check nothing was recorded."""
    version, pending = appraisal.version, len(appraisal.pending_events)
    before = state_of(appraisal)
    with pytest.raises(RuleViolation, match=f"^{rule}: ") as caught:
        command()
    assert (appraisal.version, len(appraisal.pending_events)) == (version, pending)
    assert state_of(appraisal) == before
    return caught.value


# --- The whole story ----


def test_story_plan_to_final_rating_with_stages_and_replay() -> None:
    """SEQ-1 in order: each step moves the stage; replaying the events rebuilds the state."""
    appraisal = planned()
    assert (appraisal.stage, appraisal.policy, appraisal.executive_id) == ("planned", BASIC, "E1")

    reviewed(appraisal, on=date(2024, 1, 15))
    reviewed(appraisal, on=date(2024, 6, 15))
    assert appraisal.stage == "monitoring"

    rated(appraisal, levels=WORKED_EXAMPLE, rated_on=date(2024, 10, 15))
    assert appraisal.stage == "initially_rated"
    assert appraisal.initial_rating is not None
    assert (appraisal.score, appraisal.initial_rating["summary_level"]) == (400, 4)
    assert appraisal.initial_rating["shared_on"] == date(2024, 10, 15)

    responded(appraisal)
    assert appraisal.stage == "response_closed"
    hlr_requested(appraisal)
    assert appraisal.stage == "higher_level_review"
    hlr_recommended(appraisal, level=5)
    assert appraisal.initial_rating["summary_level"] == 4  # RAT-6: only a recommendation

    prb_recommended(appraisal, level=4)
    assert appraisal.stage == "prb_recommended"
    finalized(appraisal, level=4)
    assert appraisal.stage == "final"
    assert appraisal.final_rating is not None
    assert appraisal.final_rating["level"] == 4 and appraisal.final_rating["score"] == 400

    events = appraisal.collect_events()
    assert [e.type for e in events] == [
        "PlanSet",
        "ProgressReviewed",
        "ProgressReviewed",
        "InitialRatingIssued",
        "ExecutiveResponded",
        "HigherLevelReviewRequested",
        "HigherLevelReviewRecommended",
        "PRBRecommended",
        "FinalRatingAssigned",
    ]
    assert [e.originator_version for e in events] == list(range(1, 10))
    assert {e.policy for e in events} == {BASIC}
    rebuilt = replay(events)
    assert isinstance(rebuilt, Appraisal)
    assert state_of(rebuilt) == state_of(appraisal)
    assert rebuilt.stage == "final"


def test_story_under_ses_2025_with_a_waiver() -> None:
    appraisal = planned(policy=SES_2025)
    for month in (11, 2, 5, 8):
        reviewed(appraisal, on=date(2025 if month == 11 else 2026, month, 10))
    finalized(prb_recommended(waived(rated(appraisal))))
    assert appraisal.stage == "final"
    assert {e.policy for e in appraisal.pending_events} == {SES_2025}
    assert state_of(replay(appraisal.collect_events())) == state_of(appraisal)


# --- Events carry exactly the contract's bodies ----

CONTRACT_DATA = {
    "PlanSet": {
        "appraisal_id",
        "executive_id",
        "period_start",
        "period_end",
        "rating_official_id",
        "communicated_on",
        "elements",
    },
    "ProgressReviewed": {"reviewed_on", "reviewer_id", "notes"},
    "DetailAppraised": {
        "organization",
        "started_on",
        "ended_on",
        "appraised_on",
        "level",
        "summary",
    },
    "PeriodExtended": {"extended_on", "new_period_end", "reason"},
    "InitialRatingIssued": {
        "rated_on",
        "rating_official_id",
        "element_levels",
        "narrative",
        "shared_on",
        "score",
        "summary_level",
    },
    "ExecutiveResponded": {"submitted_on", "text"},
    "ResponseWaived": {"waived_on"},
    "HigherLevelReviewRequested": {"requested_on"},
    "HigherLevelReviewRecommended": {
        "reviewer_id",
        "reviewed_on",
        "recommended_level",
        "rationale",
    },
    "PRBRecommended": {
        "board_id",
        "members_present",
        "recommended_on",
        "recommended_level",
        "rationale",
        "considered",
    },
    "FinalRatingAssigned": {
        "appointing_authority_id",
        "rated_on",
        "level",
        "score",
        "executive_id",
    },
}


@pytest.mark.parametrize(("type_name", "fields"), sorted(CONTRACT_DATA.items()))
def test_event_data_fields_match_the_contract(type_name: str, fields: set[str]) -> None:
    event_class = EVENT_TYPES[type_name]
    own = {f.name for f in dataclasses.fields(event_class) if f.name not in BASE_FIELDS}
    assert own == fields


def test_plan_set_data_is_json_and_policy_is_the_entry_field() -> None:
    event = planned().pending_events[0]
    assert isinstance(event, PlanSet)
    assert event.policy == BASIC
    assert event.occurred_on == date(2023, 9, 25)  # communicated_on
    data = event.data()
    assert data["period_start"] == "2023-10-01"
    assert data["elements"][4] == {
        "code": "results_driven",
        "weight": 40,
        "requirements": ["Cut the claims backlog by 20% by September 2024"],
    }
    assert "policy" not in data


def test_initial_rating_records_derived_score_and_level() -> None:
    appraisal = rated(planned(), levels=WORKED_EXAMPLE)
    event = appraisal.pending_events[-1]
    assert isinstance(event, InitialRatingIssued)
    assert (event.score, event.summary_level, event.shared_on) == (400, 4, event.rated_on)


def test_final_rating_records_executive_and_initial_score() -> None:
    appraisal = finalized(prb_recommended(waived(rated(planned(), levels=WORKED_EXAMPLE))))
    event = appraisal.pending_events[-1]
    assert isinstance(event, FinalRatingAssigned)
    assert (event.executive_id, event.score, event.level) == ("E1", 400, 4)


def test_state_does_not_share_lists_with_events() -> None:
    appraisal = planned()
    event = appraisal.pending_events[0]
    assert isinstance(event, PlanSet)
    appraisal.elements[0]["weight"] = 99
    assert event.elements[0]["weight"] == 15


# --- Plan: POL-1, PER-1, WT rules at the command ----


def test_set_plan_enforces_policy_rules() -> None:
    with pytest.raises(RuleViolation, match="POL-1"):
        planned(period_start=date(2025, 10, 1), period_end=date(2026, 9, 30))
    with pytest.raises(RuleViolation, match="PER-1"):
        planned(policy=SES_2025, period_start=date(2025, 1, 1), period_end=date(2025, 10, 31))
    with pytest.raises(RuleViolation, match="WT-2"):
        planned(
            weights={
                "leading_change": 20,
                "leading_people": 20,
                "business_acumen": 20,
                "building_coalitions": 21,
                "results_driven": 19,
            }
        )


def test_plan_1_late_plan_is_recorded_not_refused() -> None:
    """PLAN-1 is a flag: the late communication is kept as it happened."""
    appraisal = planned(communicated_on=date(2023, 11, 1))
    assert appraisal.communicated_on == date(2023, 11, 1)


# --- PER-2: 90 days of performance under the plan ----


@pytest.mark.parametrize(
    ("communicated_on", "days", "accepted"),
    [
        (date(2023, 9, 25), 89, False),  # counted from period_start 2023-10-01
        (date(2023, 9, 25), 90, True),
        (date(2023, 11, 1), 89, False),  # counted from the later communicated_on
        (date(2023, 11, 1), 90, True),
    ],
)
def test_per_2_ninety_days_from_the_later_of_start_and_communication(
    communicated_on: date, days: int, accepted: bool
) -> None:
    appraisal = planned(communicated_on=communicated_on)
    start = max(date(2023, 10, 1), communicated_on)
    rated_on = start + timedelta(days=days)
    if accepted:
        rated(appraisal, rated_on=rated_on)
        assert appraisal.stage == "initially_rated"
    else:
        error = refused(appraisal, "PER-2", lambda: rated(appraisal, rated_on=rated_on))
        assert f"89 days after performance under the plan began on {start}" in str(error)


def test_per_2_ninety_days_from_start_is_not_enough_after_a_late_plan() -> None:
    appraisal = planned(communicated_on=date(2023, 11, 1))
    refused(appraisal, "PER-2", lambda: rated(appraisal, rated_on=date(2023, 12, 30)))


def test_seq_1_initial_rating_dated_before_the_plan_was_communicated() -> None:
    """SEQ-1: the rating follows the plan it rates, as a progress review or an extension must;
    it is not a PER-2 shortfall of "-17 days after" performance began."""
    appraisal = planned(communicated_on=date(2023, 11, 1))
    error = refused(appraisal, "SEQ-1", lambda: rated(appraisal, rated_on=date(2023, 10, 15)))
    assert "before the plan was communicated on 2023-11-01" in str(error)


def test_per_2_rating_before_the_period_starts_says_so() -> None:
    """PER-2: a rating dated before performance began is refused with a true sentence (no
    negative day count)."""
    appraisal = planned(communicated_on=date(2023, 9, 1))
    error = refused(appraisal, "PER-2", lambda: rated(appraisal, rated_on=date(2023, 9, 15)))
    assert "-16 days" not in str(error)
    assert "before performance under the plan began on 2023-10-01" in str(error)


# --- PER-3: 120 days after Inauguration Day, career executives only ----


def _fy2025_plan(executive: ExecutiveFacts) -> Appraisal:
    return planned(
        "A-2025-E1",
        executive=executive,
        period_start=date(2024, 10, 1),
        period_end=date(2025, 9, 30),
        communicated_on=date(2024, 9, 25),
    )


@pytest.mark.parametrize(
    ("appointment_type", "rated_on", "accepted"),
    [
        ("career", date(2025, 5, 19), False),  # day 119 after Jan 20 2025
        ("career", date(2025, 5, 20), True),  # day 120
        ("noncareer", date(2025, 5, 19), True),
        ("limited_term", date(2025, 5, 19), True),
    ],
)
def test_per_3_initial_rating_transition_period(
    appointment_type: str, rated_on: date, accepted: bool
) -> None:
    facts = executive_facts(appointment_type=appointment_type)
    appraisal = _fy2025_plan(facts)
    if accepted:
        rated(appraisal, rated_on=rated_on, executive=facts)
    else:
        error = refused(
            appraisal, "PER-3", lambda: rated(appraisal, rated_on=rated_on, executive=facts)
        )
        assert "earliest allowed date is 2025-05-20" in str(error)


@pytest.mark.parametrize(
    ("appointment_type", "final_on", "accepted"),
    [
        ("career", date(2025, 5, 19), False),
        ("career", date(2025, 5, 20), True),
        ("noncareer", date(2025, 5, 19), True),
    ],
)
def test_per_3_final_rating_transition_period(
    appointment_type: str, final_on: date, accepted: bool
) -> None:
    """A FY2024 rating whose final rating falls in the 2025 transition period."""
    facts = executive_facts(appointment_type=appointment_type)
    appraisal = prb_recommended(
        waived(rated(planned(executive=facts), executive=facts)),
        on=date(2025, 1, 10),
        executive=facts,
    )
    if accepted:
        finalized(appraisal, on=final_on, executive=facts)
    else:
        refused(appraisal, "PER-3", lambda: finalized(appraisal, on=final_on, executive=facts))


def test_per_3_earlier_inauguration_days() -> None:
    """Jan 20 2021 is the Inauguration Day before 2025: day 119 refused for a career rating."""
    appraisal = planned(period_start=date(2020, 10, 1), period_end=date(2021, 5, 31))
    refused(appraisal, "PER-3", lambda: rated(appraisal, rated_on=date(2021, 5, 19)))
    rated(appraisal, rated_on=date(2021, 5, 20))


@pytest.mark.parametrize("year", [2017, 2021, 2025, 2029])
def test_per_3_day_119_and_120_after_every_listed_inauguration(year: int) -> None:
    """Each Inauguration Day of rules.md: day 119 refused, day 120 (May 20) allowed, for
    initial and final ratings alike; the day before Inauguration Day is not covered."""
    inauguration = date(year, 1, 20)
    for what in ("initial rating", "final rating"):
        with pytest.raises(RuleViolation, match=f"^PER-3: the {what} .* 119 days after"):
            per_3_check_transition(inauguration + timedelta(119), is_career=True, what=what)
        with pytest.raises(RuleViolation, match="^PER-3: .* 0 days after"):
            per_3_check_transition(inauguration, is_career=True, what=what)
        per_3_check_transition(date(year, 5, 20), is_career=True, what=what)
        per_3_check_transition(date(year, 1, 19), is_career=True, what=what)


# --- PER-4: extensions ----


def _extend(appraisal: Appraisal, new_end: date, reason: str = "Under 90 days") -> None:
    appraisal.extend_period(
        extended_on=appraisal.communicated_on + timedelta(days=30),
        new_period_end=new_end,
        reason=reason,
        actor="R1",
        submission=SUBMISSION,
    )


def test_per_4_short_period_must_be_extended_before_rating() -> None:
    """78 days of performance by the period end: the rating waits for an extension."""
    appraisal = planned(
        period_start=date(2024, 7, 1),
        period_end=date(2024, 9, 30),
        communicated_on=date(2024, 7, 15),
    )
    error = refused(appraisal, "PER-4", lambda: rated(appraisal, rated_on=date(2024, 10, 20)))
    assert "holds 78 days" in str(error)
    _extend(appraisal, date(2024, 10, 31))
    assert appraisal.period_end == date(2024, 10, 31)
    assert appraisal.extensions[0]["reason"] == "Under 90 days"
    rated(appraisal, rated_on=date(2024, 10, 20))


@pytest.mark.parametrize(
    ("end", "accepted"), [(date(2024, 10, 12), True), (date(2024, 10, 11), False)]
)
def test_per_4_ninety_days_performed_by_period_end(end: date, accepted: bool) -> None:
    """Jul 15 .. Oct 12 holds 90 days (both ends counted); Oct 11 holds 89."""
    appraisal = planned(
        period_start=date(2024, 7, 1), period_end=end, communicated_on=date(2024, 7, 15)
    )
    if accepted:
        rated(appraisal, rated_on=date(2024, 11, 1))
    else:
        refused(appraisal, "PER-4", lambda: rated(appraisal, rated_on=date(2024, 11, 1)))


def test_per_4_extension_moves_the_end_later_and_says_why() -> None:
    appraisal = planned()
    refused(appraisal, "PER-4", lambda: _extend(appraisal, date(2024, 9, 30)))
    refused(appraisal, "PER-4", lambda: _extend(appraisal, date(2024, 9, 30) + timedelta(1), " "))


def test_per_1_applies_to_the_extended_end() -> None:
    basic = planned()
    refused(basic, "PER-1", lambda: _extend(basic, date(2024, 10, 1)))
    late_start = planned(period_start=date(2024, 1, 1), period_end=date(2024, 9, 30))
    _extend(late_start, date(2024, 12, 31))  # basic periods may cross fiscal years
    fy = planned(
        policy=SES_2025,
        period_start=date(2025, 1, 1),
        period_end=date(2025, 9, 30),
        communicated_on=date(2024, 12, 15),
    )
    refused(fy, "PER-1", lambda: _extend(fy, date(2025, 10, 31)))


# --- RAT-1, RAT-4 at the initial rating ----


def test_rat_1_element_levels_must_match_the_plan() -> None:
    appraisal = planned()
    refused(
        appraisal,
        "RAT-1",
        lambda: rated(appraisal, levels={"leading_change": 3, "results_driven": 3}),
    )
    refused(appraisal, "RAT-1", lambda: rated(appraisal, levels=(3, 3, 3, 3, 6)))


def test_rat_4_rating_in_writing_and_shared_after_it_is_written() -> None:
    appraisal = planned()
    refused(appraisal, "RAT-4", lambda: rated(appraisal, narrative="  "))
    refused(
        appraisal,
        "RAT-4",
        lambda: rated(appraisal, rated_on=date(2024, 10, 15), shared_on=date(2024, 10, 14)),
    )
    rated(appraisal, rated_on=date(2024, 10, 15), shared_on=date(2024, 10, 18))
    assert appraisal.initial_rating is not None
    assert appraisal.initial_rating["shared_on"] == date(2024, 10, 18)


# --- RAT-5, RAT-6: response, waiver, higher-level review ----


def test_rat_5_one_response_or_one_waiver() -> None:
    appraisal = responded(rated(planned()))
    refused(appraisal, "RAT-5", lambda: responded(appraisal))
    refused(appraisal, "RAT-5", lambda: waived(appraisal))
    other = waived(rated(planned()))
    refused(other, "RAT-5", lambda: responded(other))


def test_rat_5_response_in_writing_and_before_the_prb() -> None:
    appraisal = rated(planned())
    refused(
        appraisal,
        "RAT-5",
        lambda: appraisal.respond(
            submitted_on=date(2024, 10, 20), text="", actor="E1", submission=SUBMISSION
        ),
    )
    prb_recommended(appraisal)
    refused(appraisal, "RAT-5", lambda: responded(appraisal))
    refused(appraisal, "RAT-5", lambda: waived(appraisal))


def test_rat_6_review_needs_a_request_and_never_changes_the_rating() -> None:
    appraisal = rated(planned())
    refused(appraisal, "RAT-6", lambda: hlr_recommended(appraisal))
    hlr_requested(appraisal)
    refused(appraisal, "RAT-6", lambda: hlr_requested(appraisal))
    refused(appraisal, "RAT-6", lambda: hlr_recommended(appraisal, reviewer_id="R1"))
    refused(appraisal, "RAT-1", lambda: hlr_recommended(appraisal, level=0))
    hlr_recommended(appraisal, level=5)
    refused(appraisal, "RAT-6", lambda: hlr_recommended(appraisal))
    assert appraisal.initial_rating is not None
    assert appraisal.initial_rating["summary_level"] == 3


def test_rat_6_refusal_names_the_officials_true_part() -> None:
    """RAT-6: when R2 rated and the plan's official R1 is named as reviewer, the refusal does
    not claim that R1 prepared the rating (a true sentence); the one who did is told so."""
    appraisal = planned()
    appraisal.issue_initial_rating(
        rated_on=date(2024, 10, 15),
        rating_official_id="R2",
        element_levels=dict.fromkeys(appraisal.weights, 3),
        narrative="Met every target.",
        shared_on=None,
        executive=facts_for(appraisal),
        actor="R2",
        submission=SUBMISSION,
    )
    hlr_requested(appraisal)
    error = refused(appraisal, "RAT-6", lambda: hlr_recommended(appraisal, reviewer_id="R1"))
    assert "R1 prepared" not in str(error)
    assert "R1 is the plan's rating official" in str(error)
    error = refused(appraisal, "RAT-6", lambda: hlr_recommended(appraisal, reviewer_id="R2"))
    assert "R2 prepared the initial rating" in str(error)


def test_rat_6_request_after_the_prb_is_refused() -> None:
    appraisal = prb_recommended(waived(rated(planned())))
    refused(appraisal, "RAT-6", lambda: hlr_requested(appraisal))


# --- RAT-8 and the final rating ----


def test_rat_8_final_rating_only_after_a_prb_recommendation() -> None:
    appraisal = waived(rated(planned()))
    refused(
        appraisal,
        "RAT-8",
        lambda: appraisal.assign_final_rating(
            appointing_authority_id="AA1",
            rated_on=date(2024, 12, 1),
            level=3,
            executive=facts_for(appraisal),
            actor="AA1",
            submission=SUBMISSION,
        ),
    )
    prb_recommended(appraisal, on=date(2024, 11, 20))
    refused(appraisal, "RAT-8", lambda: finalized(appraisal, on=date(2024, 11, 19)))
    finalized(appraisal, on=date(2024, 11, 20), level=2)  # the authority may differ from the PRB
    assert appraisal.final_rating is not None and appraisal.final_rating["level"] == 2


# --- SEQ-1: the appraisal's order ----


def test_seq_1_steps_before_their_time() -> None:
    appraisal = planned()
    refused(appraisal, "SEQ-1", lambda: responded(appraisal))
    refused(appraisal, "SEQ-1", lambda: waived(appraisal))
    refused(appraisal, "SEQ-1", lambda: hlr_requested(appraisal))
    refused(appraisal, "SEQ-1", lambda: prb_recommended(appraisal))
    refused(appraisal, "SEQ-1", lambda: reviewed(appraisal, on=date(2023, 9, 24)))


def test_seq_1_steps_after_the_initial_rating() -> None:
    appraisal = rated(planned())
    refused(appraisal, "SEQ-1", lambda: rated(appraisal))
    refused(appraisal, "SEQ-1", lambda: reviewed(appraisal))
    refused(appraisal, "SEQ-1", lambda: _extend(appraisal, date(2024, 10, 31)))
    refused(appraisal, "SEQ-1", lambda: responded(appraisal, on=date(2024, 10, 14)))
    refused(appraisal, "SEQ-1", lambda: hlr_requested(appraisal, on=date(2024, 10, 14)))


def test_seq_1_initial_rating_not_dated_before_a_review_or_an_extension() -> None:
    """The rating follows the latest progress review and extension: the same day is allowed,
    the day before is not. A detail appraisal may come later (PER-5 flags it instead)."""
    review_day = date(2024, 10, 20)
    appraisal = reviewed(planned(), on=date(2024, 3, 1))
    reviewed(appraisal, on=review_day)
    error = refused(
        appraisal, "SEQ-1", lambda: rated(appraisal, rated_on=review_day - timedelta(1))
    )
    assert f"before the latest progress review on {review_day}" in str(error)
    rated(appraisal, rated_on=review_day)

    extended = planned(period_start=date(2024, 1, 1), period_end=date(2024, 9, 30))
    extended.extend_period(
        extended_on=date(2024, 12, 20),
        new_period_end=date(2024, 12, 31),
        reason="A detail",
        actor="R1",
        submission=SUBMISSION,
    )
    error = refused(extended, "SEQ-1", lambda: rated(extended, rated_on=date(2024, 12, 19)))
    assert "before the period extension on 2024-12-20" in str(error)
    rated(extended, rated_on=date(2024, 12, 20))


def test_seq_1_prb_waits_for_a_pending_higher_level_review() -> None:
    appraisal = hlr_requested(waived(rated(planned())))
    refused(appraisal, "SEQ-1", lambda: prb_recommended(appraisal))
    hlr_recommended(appraisal)
    prb_recommended(appraisal)


def test_seq_1_prb_not_dated_before_the_response() -> None:
    appraisal = responded(rated(planned()), on=date(2024, 11, 20))
    refused(appraisal, "SEQ-1", lambda: prb_recommended(appraisal, on=date(2024, 11, 19)))
    refused(appraisal, "SEQ-1", lambda: prb_recommended(prb_recommended(appraisal)))


_AFTER_FINAL: dict[str, Callable[[Appraisal], object]] = {
    "review": reviewed,
    "initial rating": rated,
    "response": responded,
    "waiver": waived,
    "HLR request": hlr_requested,
    "PRB": prb_recommended,
    "final": finalized,
    "extension": lambda a: _extend(a, date(2025, 3, 1)),
    "detail": lambda a: a.appraise_detail(
        organization="OMB",
        started_on=date(2024, 1, 1),
        ended_on=date(2024, 6, 1),
        appraised_on=date(2024, 6, 1),
        level=4,
        summary="Led the review.",
        actor="hr-1",
        submission=SUBMISSION,
    ),
}


@pytest.mark.parametrize("step", sorted(_AFTER_FINAL))
def test_seq_1_nothing_after_the_final_rating(step: str) -> None:
    """Only complaints may follow, and those live on the Executive (APP-1)."""
    appraisal = finalized(prb_recommended(waived(rated(planned()))))
    error = refused(appraisal, "SEQ-1", lambda: _AFTER_FINAL[step](appraisal))
    assert "final rating on 2024-11-28" in str(error)


def test_hlr_recommendation_after_final_is_refused() -> None:
    appraisal = finalized(prb_recommended(hlr_recommended(hlr_requested(waived(rated(planned()))))))
    refused(appraisal, "SEQ-1", lambda: hlr_recommended(appraisal))


# --- Detail appraisals ----


def _detail(appraisal: Appraisal, **overrides: Any) -> None:
    body: dict[str, Any] = {
        "organization": "OMB",
        "started_on": date(2024, 1, 2),
        "ended_on": date(2024, 5, 31),
        "appraised_on": date(2024, 6, 3),
        "level": 4,
        "summary": "Led the budget review.",
    } | overrides
    appraisal.appraise_detail(**body, actor="hr-1", submission=SUBMISSION)


def test_detail_appraisal_is_recorded() -> None:
    appraisal = planned()
    _detail(appraisal)
    assert appraisal.detail_appraisals[0]["organization"] == "OMB"
    event: LedgerEvent = appraisal.pending_events[-1]
    assert event.occurred_on == date(2024, 6, 3)


def test_detail_appraisal_checks_dates_and_level() -> None:
    """Dates out of order are SEQ-1, not PER-5: PER-5 is a flag (rules.md), never a refusal."""
    appraisal = planned()
    error = refused(appraisal, "SEQ-1", lambda: _detail(appraisal, ended_on=date(2024, 1, 1)))
    assert "the detail's end is dated 2024-01-01, before its start" in str(error)
    error = refused(appraisal, "SEQ-1", lambda: _detail(appraisal, appraised_on=date(2024, 1, 1)))
    assert "dated 2024-01-01, before the detail began" in str(error)
    refused(appraisal, "RAT-1", lambda: _detail(appraisal, level=6))


def test_facts_of_another_executive_are_a_programming_error() -> None:
    appraisal = planned()
    with pytest.raises(ValueError, match="rates E1, not E2"):
        rated(appraisal, executive=executive_facts("E2"))


# --- PER-4, RAT-5, RAT-6 policy functions at their boundaries ----


def test_per_4_extension_moves_the_end_at_least_a_day_and_says_why() -> None:
    end = date(2024, 9, 30)
    per_4_check_extension(period_end=end, new_period_end=end + timedelta(1), reason="detail")
    with pytest.raises(RuleViolation, match="PER-4: an extension moves the period end later"):
        per_4_check_extension(period_end=end, new_period_end=end, reason="detail")
    with pytest.raises(RuleViolation, match="PER-4: an extension records its reason"):
        per_4_check_extension(period_end=end, new_period_end=end + timedelta(1), reason="\u200b ")


@pytest.mark.parametrize(("text", "accepted"), [("x", True), (" \u2060\n", False)])
def test_rat_5_a_response_is_written(text: str, accepted: bool) -> None:
    if accepted:
        rat_5_check_in_writing(text)
    else:
        with pytest.raises(RuleViolation, match="RAT-5: a response is in writing"):
            rat_5_check_in_writing(text)


@pytest.mark.parametrize(
    ("reviewer", "initial_rater", "refusal"),
    [
        ("R3", "R2", None),
        ("R3", None, None),
        ("R1", "R2", "R1 is the plan's rating official"),
        ("R2", "R2", "R2 prepared the initial rating"),
        ("R1", "R1", "R1 prepared the initial rating"),
    ],
)
def test_rat_6_reviewer_is_neither_rating_official(
    reviewer: str, initial_rater: str | None, refusal: str | None
) -> None:
    def check() -> None:
        rat_6_check_reviewer(reviewer, rating_official_id="R1", initial_rater=initial_rater)

    if refusal is None:
        check()
    else:
        with pytest.raises(RuleViolation, match=f"RAT-6: {refusal}; a higher-level official"):
            check()
