"""The executive: registration (REG-1), personnel actions (REM-4, REM-5, REM-7), APP-1."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from ledger.domain import (
    ComplaintRecorded,
    Executive,
    ExecutiveRegistered,
    PersonnelActionRecorded,
    RatingCapWaiver,
)
from ledger.errors import RuleViolation
from ledger.policies.common import (
    REM_4_PERFORMANCE_STATUTE,
    REM_4_SUBPART_D,
    REM_4_SUBPART_E,
    app_1_check_forum,
)
from tests.unit.domain_builders import (
    ACTOR,
    SUBMISSION,
    finalized,
    planned,
    prb_recommended,
    rated,
    register_executive,
    replay,
    state_of,
    waived,
)

NOTICE = date(2025, 3, 3)


def _act(executive: Executive, **overrides: Any) -> None:
    body: dict[str, Any] = {
        "action": "removal",
        "basis_appraisal_ids": ["A-2023-E1", "A-2024-E1"],
        "notice_on": NOTICE,
        "effective_on": NOTICE + timedelta(days=30),
        "authority": REM_4_SUBPART_E,
        "hearing_requested_on": None,
    } | overrides
    executive.record_personnel_action(**body, actor=ACTOR, submission=SUBMISSION)


def refused(executive: Executive, rule: str, **overrides: Any) -> None:
    before = (executive.version, state_of(executive))
    with pytest.raises(RuleViolation, match=f"^{rule}: "):
        _act(executive, **overrides)
    assert (executive.version, state_of(executive)) == before


def test_registration_records_the_contract_body() -> None:
    executive = register_executive()
    event = executive.pending_events[0]
    assert isinstance(event, ExecutiveRegistered)
    assert event.occurred_on == date(2020, 1, 6) and event.policy is None
    assert set(event.data()) == {
        "executive_id",
        "name",
        "title",
        "pay_plan",
        "agency",
        "duty_station",
        "appointment_type",
        "probationary",
        "appointed_on",
    }
    assert (executive.executive_id, executive.agency, executive.is_career) == ("E1", "DOE", True)
    facts = executive.facts()
    assert (facts.executive_id, facts.agency, facts.is_career, facts.probationary) == (
        "E1",
        "DOE",
        True,
        False,
    )


def test_reg_1_appointment_type_from_the_contract_list() -> None:
    with pytest.raises(RuleViolation, match="REG-1: appointment_type 'political'"):
        register_executive(appointment_type="political")


def test_replay_rebuilds_the_executive() -> None:
    executive = register_executive()
    _act(executive, action="reassignment", authority="5 U.S.C. 3395")
    executive.record_complaint(
        forum="OSC",
        filed_on=date(2025, 4, 1),
        summary="Reprisal.",
        actor="E1",
        submission=SUBMISSION,
    )
    events = executive.collect_events()
    assert [type(e) for e in events] == [
        ExecutiveRegistered,
        PersonnelActionRecorded,
        ComplaintRecorded,
    ]
    assert state_of(replay(events)) == state_of(executive)
    assert executive.personnel_actions[0]["notice_on"] == NOTICE


# --- REM-4: the recorded basis of a career appointee's removal ----


@pytest.mark.parametrize(
    ("probationary", "authority", "accepted"),
    [
        (False, REM_4_SUBPART_E, True),
        (False, REM_4_PERFORMANCE_STATUTE, True),
        (False, "5 CFR part 359, subpart E; placement under 5 CFR 359 subpart G", True),
        (False, REM_4_SUBPART_D, False),
        (False, "5 CFR 752", False),
        (False, "5 CFR 752 subpart E", False),  # REM-4: a subpart E, but not of part 359
        (True, REM_4_SUBPART_D, True),
        (True, REM_4_SUBPART_E, False),
        (True, REM_4_PERFORMANCE_STATUTE, False),
        (True, "5 CFR 359 subpart D and subpart E", False),
        # REM-4 both ways: citing the other procedure as well is refused for a
        # non-probationary appointee too, not only for a probationer
        (False, "5 CFR 359 subpart D and subpart E", False),
    ],
)
def test_rem_4_removal_authority_matches_probation(
    probationary: bool, authority: str, accepted: bool
) -> None:
    executive = register_executive(probationary=probationary)
    if accepted:
        _act(executive, authority=authority)
        assert executive.personnel_actions[0]["authority"] == authority
    else:
        refused(executive, "REM-4", authority=authority)


@pytest.mark.parametrize(
    ("probationary", "authority", "accepted"),
    [
        # a section of 5 CFR part 359 cites its subpart (359.5xx is subpart E)
        (False, "5 CFR 359.502", True),
        (False, "5 CFR \u00a7 359.502(a)", True),
        (False, "5 CFR 359.402", False),
        (True, "5 CFR 359.402", True),
        (True, "5 CFR 359.502", False),
        # 5 U.S.C. 3592(a)(1), removal during probation, is what subpart D implements
        (True, "5 U.S.C. 3592(a)(1)", True),
        (False, "5 U.S.C. 3592(a)(1)", False),
        (True, "5 U.S.C. 3592(a)(1); 5 U.S.C. 3592(a)(2)", False),
        (False, "5 U.S.C. 3592(a)(1); 5 U.S.C. 3592(a)(2)", False),
        # another part's section is not part 359's
        (False, "5 CFR 752.502", False),
    ],
)
def test_rem_4_section_and_statute_citations(
    probationary: bool, authority: str, accepted: bool
) -> None:
    """REM-4: a citation by section ("5 CFR 359.502" is in subpart E) or by the statute each
    subpart implements (3592(a)(1) for probation, subpart D) names the procedure as well as
    "subpart E" does; both were refused."""
    executive = register_executive(probationary=probationary)
    if accepted:
        _act(executive, authority=authority)
    else:
        refused(executive, "REM-4", authority=authority)


def test_rem_4_covers_career_removals_only() -> None:
    _act(register_executive(appointment_type="noncareer"), authority="5 U.S.C. 3592(b)")
    _act(register_executive(), action="reassignment", authority="5 U.S.C. 3395")


# --- REM-5: thirty days' notice ----


@pytest.mark.parametrize(("days", "accepted"), [(29, False), (30, True), (31, True)])
def test_rem_5_removal_notice_thirty_days(days: int, accepted: bool) -> None:
    executive = register_executive()
    effective = NOTICE + timedelta(days=days)
    if accepted:
        _act(executive, effective_on=effective)
    else:
        refused(executive, "REM-5", effective_on=effective)


def test_rem_5_no_action_takes_effect_before_its_notice() -> None:
    executive = register_executive()
    refused(
        executive,
        "REM-5",
        action="reassignment",
        authority="5 U.S.C. 3395",
        effective_on=NOTICE - timedelta(days=1),
    )
    _act(executive, action="reassignment", authority="5 U.S.C. 3395", effective_on=NOTICE)


# --- REM-7: informal hearing request ----


@pytest.mark.parametrize(("lead", "accepted"), [(14, False), (15, True), (16, True)])
def test_rem_7_hearing_requested_at_least_15_days_before_removal(lead: int, accepted: bool) -> None:
    executive = register_executive()
    effective = NOTICE + timedelta(days=40)
    requested = effective - timedelta(days=lead)
    if accepted:
        _act(executive, effective_on=effective, hearing_requested_on=requested)
    else:
        refused(executive, "REM-7", effective_on=effective, hearing_requested_on=requested)


@pytest.mark.parametrize(
    ("appointment_type", "action"),
    [("noncareer", "removal"), ("career", "reassignment")],
)
def test_rem_7_hearing_only_for_a_career_appointee_being_removed(
    appointment_type: str, action: str
) -> None:
    executive = register_executive(appointment_type=appointment_type)
    refused(
        executive,
        "REM-7",
        action=action,
        authority="5 U.S.C. 3395",
        hearing_requested_on=NOTICE + timedelta(days=1),
    )


def test_rem_7_no_hearing_for_a_probationary_removal() -> None:
    """A probationer is removed under 3592(a)(1), subpart D (REM-4): no informal hearing;
    the same removal without the request is recorded."""
    executive = register_executive(probationary=True)
    refused(
        executive,
        "REM-7",
        authority=REM_4_SUBPART_D,
        hearing_requested_on=NOTICE + timedelta(days=1),
    )
    _act(executive, authority=REM_4_SUBPART_D)
    assert executive.personnel_actions[0]["hearing_requested_on"] is None


def test_rem_7_hearing_not_requested_before_the_notice() -> None:
    refused(register_executive(), "REM-7", hearing_requested_on=NOTICE - timedelta(days=1))


def test_reg_1_personnel_action_kind() -> None:
    refused(register_executive(), "REG-1", action="furlough")


# --- APP-1: complaints ----


def test_app_1_complaint_forums() -> None:
    executive = register_executive()
    with pytest.raises(RuleViolation, match="APP-1: ratings cannot be appealed.*'MSPB'"):
        executive.record_complaint(
            forum="MSPB", filed_on=date(2025, 1, 5), summary="x", actor="E1", submission=SUBMISSION
        )
    assert executive.complaints == []


@pytest.mark.parametrize(("forum", "accepted"), [("EEOC", True), ("OSC", True), ("eeoc", False)])
def test_app_1_check_forum(forum: str, accepted: bool) -> None:
    """APP-1 at its boundary: the two forums, by their exact names, and nothing else."""
    if accepted:
        app_1_check_forum(forum)
    else:
        with pytest.raises(RuleViolation, match="APP-1: ratings cannot be appealed.*'eeoc'"):
            app_1_check_forum(forum)


def test_app_1_complaint_after_the_final_rating_changes_no_rating() -> None:
    """SEQ-1 stops the appraisal after its final rating; the complaint goes on the Executive."""
    appraisal = finalized(prb_recommended(waived(rated(planned()))))
    final_before = dict(appraisal.final_rating or {})
    executive = register_executive()
    executive.record_complaint(
        forum="EEOC",
        filed_on=date(2025, 1, 5),
        summary="The rating process was discriminatory.",
        actor="E1",
        submission=SUBMISSION,
    )
    event = executive.pending_events[-1]
    assert isinstance(event, ComplaintRecorded)
    assert event.data() == {
        "executive_id": "E1",
        "forum": "EEOC",
        "filed_on": "2025-01-05",
        "summary": "The rating process was discriminatory.",
    }
    assert appraisal.final_rating == final_before


# --- Rating cap waiver ----


def test_rating_cap_waiver_grant() -> None:
    waiver = RatingCapWaiver.grant(
        "W-DOE-FY2026",
        agency="DOE",
        cycle="FY2026",
        granted_on=date(2026, 10, 20),
        reference="PM-2026-07",
        actor="admin",
        submission=SUBMISSION,
    )
    assert (waiver.agency, waiver.cycle) == ("DOE", "FY2026")
    assert waiver.pending_events[0].data() == {
        "agency": "DOE",
        "cycle": "FY2026",
        "granted_on": "2026-10-20",
        "reference": "PM-2026-07",
    }
    with pytest.raises(RuleViolation, match="REG-1: cycle '2026'"):
        RatingCapWaiver.grant(
            "W2",
            agency="DOE",
            cycle="2026",
            granted_on=date(2026, 10, 20),
            reference="x",
            actor="admin",
            submission=SUBMISSION,
        )
