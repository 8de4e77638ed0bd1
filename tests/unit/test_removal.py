"""Removal history (REM-1..REM-3) exactly as api-contract.md defines it, and the BFS report."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from ledger.policies.common import add_years
from ledger.policies.removal import (
    APPRAISAL_CYCLE,
    RATING_DATE,
    FinalRating,
    PersonnelAction,
    below_fully_successful,
    removal_history,
)

FIRST = date(2021, 12, 1)
D = date(2030, 1, 1)


def _rating(rated_on: date, level: int = 2, appraisal_id: str | None = None) -> FinalRating:
    return FinalRating(appraisal_id or f"A-{rated_on.isoformat()}", level, rated_on)


@pytest.mark.parametrize(
    ("second", "required"),
    [
        (date(2024, 11, 30), True),  # 3 years - 1 day
        (date(2024, 12, 1), True),  # exactly 3 years: counts (inclusive)
        (date(2024, 12, 2), False),  # 3 years + 1 day
    ],
)
def test_rem_2_second_rating_below_level_3_within_three_years(second: date, required: bool) -> None:
    history = removal_history([_rating(FIRST), _rating(second, 1)], [], as_of=D)
    assert history.three_year.removal_required is required
    assert history.three_year.triggered_on == (second if required else None)
    assert history.three_year.rule == "REM-2"


@pytest.mark.parametrize(
    ("second", "required"), [(date(2027, 2, 28), True), (date(2027, 3, 1), False)]
)
def test_rem_2_feb_29_plus_three_years_is_feb_28(second: date, required: bool) -> None:
    history = removal_history([_rating(date(2024, 2, 29)), _rating(second)], [], as_of=D)
    assert history.three_year.removal_required is required


@pytest.mark.parametrize(("years", "level"), [(3, 2), (5, 1)])
@pytest.mark.parametrize(
    ("first", "in_window"), [(date(2017, 2, 28), False), (date(2017, 3, 1), True)]
)
def test_window_and_pairs_agree_when_d_is_feb_29(
    years: int, level: int, first: date, in_window: bool
) -> None:
    """REM-2/REM-3 as of D = Feb 29 2020, with the second rating on D: a first rating is in
    the window exactly when the pair counts (Feb 28 + 3 years is Feb 28, a day before D)."""
    d = date(2020, 2, 29)
    first = first.replace(year=2020 - years)
    history = removal_history([_rating(first, level), _rating(d, level)], [], as_of=d)
    window = history.three_year if years == 3 else history.five_year
    assert (first in {r.rated_on for r in window.ratings}) is in_window
    assert window.removal_required is in_window
    assert window.triggered_on == (d if in_window else None)


@pytest.mark.parametrize(
    ("second", "required"),
    [
        (add_years(FIRST, 5) - timedelta(days=1), True),  # 4 years 364 days
        (add_years(FIRST, 5), True),  # exactly 5 years
        (add_years(FIRST, 5) + timedelta(days=1), False),  # 5 years + 1 day
    ],
)
def test_rem_3_two_level_1_ratings_within_five_years(second: date, required: bool) -> None:
    history = removal_history([_rating(FIRST, 1), _rating(second, 1)], [], as_of=D)
    assert history.five_year.removal_required is required
    assert history.five_year.triggered_on == (second if required else None)
    assert history.five_year.rule == "REM-3"
    assert history.three_year.removal_required is False  # both below Level 3, but 5 years apart


def test_level_3_and_above_never_count() -> None:
    history = removal_history(
        [_rating(FIRST, 3), _rating(FIRST + timedelta(days=300), 2)], [], as_of=D
    )
    assert not history.three_year.removal_required
    assert [r.level for r in history.three_year.ratings] == []  # D is years later


def test_as_of_before_the_second_rating() -> None:
    """Only final ratings rated on or before D count."""
    ratings = [_rating(date(2022, 12, 1)), _rating(date(2024, 12, 1))]
    before = removal_history(ratings, [], as_of=date(2024, 11, 30))
    assert not before.three_year.removal_required
    assert [r.rated_on for r in before.three_year.ratings] == [date(2022, 12, 1)]
    on_the_day = removal_history(ratings, [], as_of=date(2024, 12, 1))
    assert on_the_day.three_year.triggered_on == date(2024, 12, 1)


def test_three_year_window_is_inclusive_of_d_minus_three_years() -> None:
    as_of = date(2025, 6, 1)
    ratings = [
        _rating(date(2022, 5, 31)),  # D - 3 years - 1 day: outside
        _rating(date(2022, 6, 1)),  # D - 3 years: inside
        _rating(date(2025, 6, 1)),  # D: inside
    ]
    history = removal_history(list(reversed(ratings)), [], as_of=as_of)
    assert [r.rated_on for r in history.three_year.ratings] == [date(2022, 6, 1), date(2025, 6, 1)]


def test_triggered_on_is_the_later_rating_of_the_latest_pair() -> None:
    ratings = [_rating(date(2015, 12, 1)), _rating(date(2016, 12, 1)), _rating(date(2021, 12, 1))]
    history = removal_history(ratings, [], as_of=D)
    assert history.three_year.removal_required
    assert history.three_year.triggered_on == date(2016, 12, 1)  # 2021 has no partner
    later = removal_history([*ratings, _rating(date(2023, 1, 15))], [], as_of=D)
    assert later.three_year.triggered_on == date(2023, 1, 15)


# --- REM-1: Level 1 action due ----

LEVEL_1 = _rating(date(2024, 12, 1), 1, "A-2024-E1")


@pytest.mark.parametrize(
    ("actions", "as_of", "due"),
    [
        ([], date(2025, 2, 1), True),
        ([PersonnelAction("reassignment", date(2025, 1, 15))], date(2025, 2, 1), False),
        ([PersonnelAction("demotion", date(2024, 12, 1))], date(2025, 2, 1), False),  # same day
        ([PersonnelAction("reassignment", date(2025, 1, 15))], date(2025, 1, 10), True),  # later
        ([PersonnelAction("removal", date(2024, 11, 30))], date(2025, 2, 1), True),  # before it
    ],
)
def test_rem_1_level_1_action_due(actions: list[PersonnelAction], as_of: date, due: bool) -> None:
    history = removal_history([LEVEL_1], actions, as_of=as_of)
    assert history.level1_action_due is due


def test_rem_1_only_the_latest_level_1_counts() -> None:
    ratings = [_rating(date(2022, 12, 1), 1), LEVEL_1]
    answered_first = [PersonnelAction("reassignment", date(2023, 1, 5))]
    assert removal_history(ratings, answered_first, as_of=date(2025, 1, 1)).level1_action_due


def test_no_level_1_rating_means_no_action_due() -> None:
    assert not removal_history([_rating(FIRST, 2)], [], as_of=D).level1_action_due


def test_actions_listed_as_of_d() -> None:
    actions = [
        PersonnelAction("removal", date(2025, 3, 1), date(2025, 4, 1), ("A-2024-E1",), "x"),
        PersonnelAction("reassignment", date(2025, 1, 15)),
    ]
    history = removal_history([LEVEL_1], actions, as_of=date(2025, 2, 1))
    assert [a.action for a in history.actions] == ["reassignment"]


# --- Window measures ----


def _cycle_rating(period_end: date, rated_on: date, level: int = 2) -> FinalRating:
    return FinalRating(f"A-{period_end.year}", level, rated_on, period_end)


@pytest.mark.parametrize(
    ("second_period_end", "second_rated_on", "by_date", "by_cycle"),
    [
        (date(2024, 9, 30), date(2025, 1, 20), True, True),  # FY2022 and FY2024: 2 apart
        (date(2025, 9, 30), date(2025, 10, 20), True, False),  # FY2025: 3 apart
    ],
)
def test_rem_2_appraisal_cycle_measure(
    second_period_end: date, second_rated_on: date, by_date: bool, by_cycle: bool
) -> None:
    ratings = [
        _cycle_rating(date(2022, 9, 30), date(2022, 12, 15)),
        _cycle_rating(second_period_end, second_rated_on),
    ]
    as_of = date(2026, 1, 1)
    dated = removal_history(ratings, [], as_of=as_of)
    cycled = removal_history(ratings, [], as_of=as_of, window_measure=APPRAISAL_CYCLE)
    assert (dated.window_measure, cycled.window_measure) == (RATING_DATE, APPRAISAL_CYCLE)
    assert dated.three_year.removal_required is by_date
    assert cycled.three_year.removal_required is by_cycle


def test_rem_3_appraisal_cycle_measure_four_cycles_apart() -> None:
    ratings = [
        _cycle_rating(date(2020, 9, 30), date(2020, 11, 1), 1),
        _cycle_rating(date(2024, 9, 30), date(2025, 1, 10), 1),
    ]
    history = removal_history(ratings, [], as_of=date(2025, 6, 1), window_measure=APPRAISAL_CYCLE)
    assert history.five_year.removal_required
    # As of Jun 1 2025 the latest completed cycle is FY2024: windows FY2020-24 and FY2022-24.
    assert [r.appraisal_id for r in history.five_year.ratings] == ["A-2020", "A-2024"]
    assert [r.appraisal_id for r in history.three_year.ratings] == ["A-2024"]


@pytest.mark.parametrize(
    ("as_of", "in_window"),
    [(date(2025, 9, 29), ["A-2022", "A-2023"]), (date(2025, 9, 30), ["A-2023"])],
)
def test_appraisal_cycle_window_moves_when_a_fiscal_year_completes(
    as_of: date, in_window: list[str]
) -> None:
    ratings = [
        _cycle_rating(date(2022, 9, 30), date(2022, 11, 1)),
        _cycle_rating(date(2023, 9, 30), date(2023, 11, 1)),
    ]
    history = removal_history(ratings, [], as_of=as_of, window_measure=APPRAISAL_CYCLE)
    assert [r.appraisal_id for r in history.three_year.ratings] == in_window


def test_appraisal_cycle_window_ends_with_a_cycle_rated_early() -> None:
    """FY2023 and FY2026 (its period ended early, rated by D = Dec 1 2025) are 3 cycles apart:
    no pair, and the three-cycle window is FY2024-FY2026, not FY2023-FY2026 as it was."""
    ratings = [
        _cycle_rating(date(2023, 9, 30), date(2023, 11, 15)),
        FinalRating("A-2026", 2, date(2025, 11, 30), date(2025, 11, 15)),
    ]
    history = removal_history(ratings, [], as_of=date(2025, 12, 1), window_measure=APPRAISAL_CYCLE)
    assert history.three_year.removal_required is False
    assert [r.appraisal_id for r in history.three_year.ratings] == ["A-2026"]


def test_window_measure_validation() -> None:
    with pytest.raises(ValueError, match="window_measure"):
        removal_history([], [], as_of=D, window_measure="calendar")
    with pytest.raises(ValueError, match="needs period_end"):
        removal_history([_rating(FIRST)], [], as_of=D, window_measure=APPRAISAL_CYCLE)


def test_as_dict_has_the_contract_shape() -> None:
    history = removal_history(
        [_rating(date(2023, 12, 1), 1, "A-2023-E1"), _rating(date(2024, 12, 1), 2, "A-2024-E1")],
        [PersonnelAction("reassignment", date(2024, 12, 20), date(2025, 1, 20), ("A-2023-E1",))],
        as_of=date(2025, 1, 1),
    )
    assert history.as_dict() == {
        "as_of": "2025-01-01",
        "window_measure": "rating-date",
        "three_year": {
            "ratings": [
                {"appraisal_id": "A-2023-E1", "level": 1, "rated_on": "2023-12-01"},
                {"appraisal_id": "A-2024-E1", "level": 2, "rated_on": "2024-12-01"},
            ],
            "removal_required": True,
            "triggered_on": "2024-12-01",
            "rule": "REM-2",
        },
        "five_year": {
            "ratings": [{"appraisal_id": "A-2023-E1", "level": 1, "rated_on": "2023-12-01"}],
            "removal_required": False,
            "triggered_on": None,
            "rule": "REM-3",
        },
        "level1_action_due": False,
        "actions": [
            {
                "action": "reassignment",
                "basis_appraisal_ids": ["A-2023-E1"],
                "notice_on": "2024-12-20",
                "effective_on": "2025-01-20",
                "authority": "",
                "hearing_requested_on": None,
            }
        ],
    }


def test_personnel_action_from_an_executive_record() -> None:
    record = {
        "action": "removal",
        "basis_appraisal_ids": ["A1"],
        "notice_on": date(2025, 1, 2),
        "effective_on": date(2025, 2, 3),
        "authority": "5 CFR 359 subpart E",
        "hearing_requested_on": None,
    }
    action = PersonnelAction.from_mapping(record)
    assert (action.action, action.basis_appraisal_ids, action.notice_on) == (
        "removal",
        ("A1",),
        date(2025, 1, 2),
    )


# --- The below-Fully-Successful report ----


def test_below_fully_successful_window_excludes_d_minus_three_years() -> None:
    """(D - 3 years, D]: unlike three_year.ratings, the left end is open."""
    as_of = date(2025, 6, 1)
    ratings = [
        _rating(date(2022, 6, 1), 2),  # exactly D - 3 years: out
        _rating(date(2022, 6, 2), 1),
        _rating(date(2023, 6, 2), 3),  # Fully Successful: out
        _rating(date(2025, 6, 1), 2),
        _rating(date(2025, 6, 2), 2),  # after D: out
    ]
    assert [r.rated_on for r in below_fully_successful(ratings, as_of)] == [
        date(2022, 6, 2),
        date(2025, 6, 1),
    ]


def test_below_fully_successful_leaves_out_d_minus_three_years_when_d_is_feb_29() -> None:
    """(D - 3 years, D] with D = Feb 29 2024: D - 3 years is Mar 1 2021, the first day of the
    three-year window (REM-2, `three_year.ratings`), so the report leaves it out as it
    leaves out D - 3 years on every other day. It listed Mar 1 2021 (reading D - 3 years
    as Feb 28 2021 here only), so on Feb 29 the report and the window held the same
    ratings, though the report's left end is open."""
    d = date(2024, 2, 29)
    ratings = [_rating(date(2021, 2, 28)), _rating(date(2021, 3, 1)), _rating(date(2021, 3, 2))]
    window = removal_history(ratings, [], as_of=d).three_year.ratings
    assert [r.rated_on for r in window] == [date(2021, 3, 1), date(2021, 3, 2)]
    assert [r.rated_on for r in below_fully_successful(ratings, d)] == [date(2021, 3, 2)]
    # the day after a Feb 29 rating, three years on, still lists it (Feb 28 2027 - 3 years
    # is Feb 28 2024)
    leap = [_rating(date(2024, 2, 29))]
    assert below_fully_successful(leap, date(2027, 2, 28)) == leap
    assert below_fully_successful(leap, date(2027, 3, 1)) == []
