"""Performance Review Boards: registration (PRB-1) and recommendations (PRB-1..PRB-5, RAT-7)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta

import pytest

from ledger.domain import Appraisal, ReviewBoard, ReviewBoardRegistered
from ledger.errors import RuleViolation
from tests.unit.domain_builders import (
    ACTOR,
    SUBMISSION,
    board_facts,
    executive_facts,
    hlr_recommended,
    hlr_requested,
    planned,
    prb_recommended,
    rated,
    register_board,
    replay,
    responded,
    state_of,
    waived,
)

SHARED_ON = date(2024, 10, 15)  # the default initial rating's day


def refused(appraisal: Appraisal, rule: str, command: Callable[[], object]) -> None:
    before = (appraisal.version, state_of(appraisal))
    with pytest.raises(RuleViolation, match=f"^{rule}: "):
        command()
    assert (appraisal.version, state_of(appraisal)) == before


# --- Registration ----


def test_board_registration_records_members_and_facts() -> None:
    board = register_board()
    event = board.pending_events[0]
    assert isinstance(event, ReviewBoardRegistered)
    assert event.occurred_on == date(2023, 7, 3)
    assert event.data()["members"][0] == {"member_id": "M1", "name": "Member M1", "career": True}
    facts = board.facts()
    assert facts.members == {"M1": True, "M2": True, "M3": True, "M4": False}
    assert (facts.board_id, facts.agency) == ("PRB-DOE", "DOE")
    assert state_of(replay(board.collect_events())) == state_of(board)


@pytest.mark.parametrize(
    ("members", "accepted"),
    [({"M1": True, "M2": True}, False), ({"M1": True, "M2": True, "M3": False}, True)],
)
def test_prb_1_board_has_at_least_three_members(members: dict[str, bool], accepted: bool) -> None:
    if accepted:
        register_board(members=members)
    else:
        with pytest.raises(RuleViolation, match="PRB-1: the board has 2 members"):
            register_board(members=members)


def test_prb_1_member_ids_unique() -> None:
    with pytest.raises(RuleViolation, match="PRB-1: member M1 is listed more than once"):
        ReviewBoard.register(
            "PRB-X",
            agency="DOE",
            federal_register_published_on=date(2023, 7, 3),
            members=[
                {"member_id": "M1", "name": "A", "career": True},
                {"member_id": "M1", "name": "B", "career": True},
                {"member_id": "M2", "name": "C", "career": True},
            ],
            actor=ACTOR,
            submission=SUBMISSION,
        )


# --- Recommendations ----


def _ready(**kwargs: object) -> Appraisal:
    """A rated appraisal whose executive waived a response: ready for the PRB."""
    return waived(rated(planned(**kwargs)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("present", "accepted"),
    [(("M1", "M2"), False), (("M1", "M2", "M3"), True)],
)
def test_prb_1_at_least_three_present(present: tuple[str, ...], accepted: bool) -> None:
    appraisal = _ready()
    if accepted:
        prb_recommended(appraisal, members_present=present)
    else:
        refused(appraisal, "PRB-1", lambda: prb_recommended(appraisal, members_present=present))


def test_prb_1_those_present_are_members_listed_once() -> None:
    appraisal = _ready()
    refused(
        appraisal, "PRB-1", lambda: prb_recommended(appraisal, members_present=("M1", "M2", "X9"))
    )
    refused(
        appraisal, "PRB-1", lambda: prb_recommended(appraisal, members_present=("M1", "M1", "M2"))
    )


def test_prb_1_board_of_another_agency_is_refused() -> None:
    """Our documented choice: a board serves its own agency, refused under PRB-1."""
    appraisal = _ready()
    error_board = board_facts("PRB-DOT", agency="DOT")
    refused(appraisal, "PRB-1", lambda: prb_recommended(appraisal, board=error_board))


MIXED = {"C1": True, "C2": True, "C3": True, "N1": False, "N2": False}


@pytest.mark.parametrize(
    ("present", "appointment_type", "accepted"),
    [
        (("C1", "C2", "N1", "N2"), "career", False),  # half career
        (("C1", "C2", "C3", "N1"), "career", True),  # more than half
        (("C1", "C2", "N1"), "career", True),
        (("C1", "N1", "N2"), "noncareer", True),  # PRB-2 covers career appointees only
    ],
)
def test_prb_2_career_majority_for_a_career_executive(
    present: tuple[str, ...], appointment_type: str, accepted: bool
) -> None:
    facts = executive_facts(appointment_type=appointment_type)
    appraisal = waived(rated(planned(executive=facts), executive=facts))

    def recommend() -> Appraisal:
        return prb_recommended(
            appraisal, board=board_facts(members=MIXED), members_present=present, executive=facts
        )

    if accepted:
        recommend()
    else:
        refused(appraisal, "PRB-2", recommend)


def test_prb_3_no_member_deliberates_on_their_own_appraisal() -> None:
    appraisal = _ready()
    board = board_facts(members={"E1": True, "M1": True, "M2": True, "M3": True})
    refused(
        appraisal,
        "PRB-3",
        lambda: prb_recommended(appraisal, board=board, members_present=("E1", "M1", "M2", "M3")),
    )
    prb_recommended(appraisal, board=board, members_present=("M1", "M2", "M3"))


@pytest.mark.parametrize(
    ("published_on", "accepted"), [(date(2024, 11, 14), True), (date(2024, 11, 15), False)]
)
def test_prb_4_board_published_in_the_federal_register_first(
    published_on: date, accepted: bool
) -> None:
    """PRB-4: the same day as publication is allowed, the day before is not."""
    appraisal = _ready()
    board = board_facts(published_on=published_on)
    if accepted:
        prb_recommended(appraisal, board=board, on=date(2024, 11, 14))
    else:
        refused(
            appraisal,
            "PRB-4",
            lambda: prb_recommended(appraisal, board=board, on=date(2024, 11, 14)),
        )


@pytest.mark.parametrize(
    ("considered", "message"),
    [
        ((), "must state that it considered initial_rating"),
        (("initial_rating",), "must state that it considered executive_response"),
        (("initial_rating", "executive_response"), "must state that it considered higher_level"),
        (("initial_rating", "executive_response", "higher_level_review", "gossip"), "'gossip'"),
    ],
)
def test_prb_5_considered_names_what_exists(considered: tuple[str, ...], message: str) -> None:
    appraisal = hlr_recommended(hlr_requested(responded(rated(planned()))))
    with pytest.raises(RuleViolation, match=f"PRB-5: .*{message}"):
        prb_recommended(appraisal, considered=considered)
    prb_recommended(
        appraisal, considered=("initial_rating", "executive_response", "higher_level_review")
    )


def test_prb_5_considered_names_nothing_that_does_not_exist() -> None:
    appraisal = _ready()
    refused(
        appraisal,
        "PRB-5",
        lambda: prb_recommended(appraisal, considered=("initial_rating", "executive_response")),
    )
    prb_recommended(appraisal, considered=("initial_rating",))


@pytest.mark.parametrize(("day", "accepted"), [(9, False), (10, True)])
def test_rat_7_prb_waits_for_the_response_window(day: int, accepted: bool) -> None:
    """RAT-7: with no response or waiver, day 10 after shared_on is the first allowed day."""
    appraisal = rated(planned())
    on = SHARED_ON + timedelta(days=day)
    if accepted:
        prb_recommended(appraisal, on=on)
    else:
        refused(appraisal, "RAT-7", lambda: prb_recommended(appraisal, on=on))


@pytest.mark.parametrize("answer", [responded, waived])
def test_rat_7_a_response_or_waiver_opens_the_prb_at_once(answer: Callable[..., Appraisal]) -> None:
    appraisal = answer(rated(planned()), on=SHARED_ON + timedelta(days=1))
    prb_recommended(appraisal, on=SHARED_ON + timedelta(days=2))
    assert appraisal.stage == "prb_recommended"
