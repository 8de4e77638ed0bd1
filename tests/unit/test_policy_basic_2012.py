"""ses-basic-2012: WT-1..WT-4, PER-1, POL-1, PLAN-2 and MON-1 windows."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from ledger.errors import RuleViolation
from ledger.policies import BASIC_2012, SES_2025, get_policy, pol_1_check_policy
from ledger.policies.basic_2012 import plan_2_gaps
from tests.unit.domain_builders import BASIC_WEIGHTS, elements

FY2024 = (date(2023, 10, 1), date(2024, 9, 30))


def _check(weights: dict[str, int], period: tuple[date, date] = FY2024) -> dict[str, int]:
    return BASIC_2012.check_plan(
        period_start=period[0], period_end=period[1], elements=elements(weights)
    )


def _weights(lc: int, lp: int, ba: int, bc: int, rd: int) -> dict[str, int]:
    return dict(zip(BASIC_WEIGHTS, (lc, lp, ba, bc, rd), strict=True))


def test_the_seed_plan_passes_and_returns_its_weights() -> None:
    assert _check(BASIC_WEIGHTS) == BASIC_WEIGHTS


@pytest.mark.parametrize(
    ("weights", "accepted"),
    [
        (_weights(15, 15, 15, 14, 40), False),  # 99
        (_weights(15, 15, 15, 15, 40), True),  # 100
        (_weights(15, 15, 15, 16, 40), False),  # 101
    ],
)
def test_wt_1_weights_sum_to_100(weights: dict[str, int], accepted: bool) -> None:
    if accepted:
        _check(weights)
    else:
        with pytest.raises(RuleViolation, match=r"WT-1: the weights sum to (99|101)"):
            _check(weights)


@pytest.mark.parametrize(
    ("plan", "message"),
    [
        (elements(BASIC_WEIGHTS)[:4], "lacks results_driven"),
        ([*elements(BASIC_WEIGHTS), {"code": "results_driven", "weight": 0}], "appears twice"),
        (
            [*elements(BASIC_WEIGHTS)[:4], {"code": "government_efficiency", "weight": 40}],
            "'government_efficiency' is not an element of ses-basic-2012",
        ),
        ([*elements(BASIC_WEIGHTS)[:4], {"code": "results_driven", "weight": 40.0}], "whole"),
        ([*elements(BASIC_WEIGHTS)[:4], {"code": "results_driven", "weight": "40"}], "whole"),
        # WT-1 at its edge: a boolean or a negative weight is no whole-number weight, even
        # when the weights sum to 100 (not WT-3, which would name the minimum instead)
        (
            elements(_weights(True, 15, 15, 29, 40)),
            "leading_change weighs True; a weight is a whole",
        ),
        (elements(_weights(-5, 15, 15, 15, 60)), "leading_change weighs -5; a weight is a whole"),
    ],
)
def test_wt_1_exactly_the_policy_elements_with_integer_weights(
    plan: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(RuleViolation, match=f"WT-1: .*{message}"):
        BASIC_2012.check_plan(period_start=FY2024[0], period_end=FY2024[1], elements=plan)


def test_wt_2_results_driven_at_least_20() -> None:
    """WT-2: 20 passes; 19 is refused (and WT-2 is reported before WT-4)."""
    _check(_weights(20, 20, 20, 20, 20))
    with pytest.raises(RuleViolation, match="WT-2: results_driven weighs 19; .* at least 20"):
        _check(_weights(20, 20, 20, 21, 19))


@pytest.mark.parametrize("code", list(BASIC_WEIGHTS)[:4])
def test_wt_3_other_elements_at_least_5(code: str) -> None:
    """WT-3: 5 passes, 4 is refused, for each non-Results-Driven element."""
    at_five = _weights(20, 20, 20, 20, 20) | {code: 5, "results_driven": 35}
    _check(at_five)
    at_four = at_five | {code: 4, "results_driven": 36}
    with pytest.raises(RuleViolation, match=f"WT-3: {code} weighs 4"):
        _check(at_four)


def test_wt_4_no_element_heavier_than_results_driven() -> None:
    """WT-4: equal to Results Driven passes; one point more is refused."""
    _check(_weights(20, 20, 20, 20, 20))
    with pytest.raises(RuleViolation, match=r"WT-4: leading_change weighs 24, more than .*\(21\)"):
        _check(_weights(24, 20, 20, 15, 21))


@pytest.mark.parametrize(
    ("start", "end", "accepted"),
    [
        (date(2023, 10, 1), date(2024, 9, 30), True),  # one year, leap year inside
        (date(2023, 10, 1), date(2024, 10, 1), False),  # a year and a day
        (date(2025, 1, 1), date(2025, 10, 15), True),  # basic periods may cross fiscal years
        (date(2024, 3, 1), date(2024, 3, 1), False),  # ends on its start day
        (date(2024, 3, 1), date(2024, 2, 1), False),  # ends before it starts
        (date(2024, 2, 29), date(2025, 2, 27), True),
        (date(2024, 2, 29), date(2025, 2, 28), False),  # Feb 29 + 1 year = Feb 28
    ],
)
def test_per_1_period_ends_after_start_within_one_year(
    start: date, end: date, accepted: bool
) -> None:
    if accepted:
        BASIC_2012.check_period(start, end)
    else:
        with pytest.raises(RuleViolation, match="PER-1"):
            BASIC_2012.check_period(start, end)


@pytest.mark.parametrize(
    ("policy", "start", "accepted"),
    [
        ("ses-basic-2012", date(2025, 9, 30), True),
        ("ses-basic-2012", date(2025, 10, 1), False),
        ("ses-2025", date(2025, 9, 30), True),
        ("ses-2025", date(2025, 10, 1), True),
    ],
)
def test_pol_1_ses_2025_mandatory_from_october_2025(
    policy: str, start: date, accepted: bool
) -> None:
    if accepted:
        assert pol_1_check_policy(policy, start).name == policy
    else:
        with pytest.raises(RuleViolation, match="POL-1: a period starting 2025-10-01 .* ses-2025"):
            pol_1_check_policy(policy, start)


def test_pol_1_unknown_policy_name() -> None:
    with pytest.raises(RuleViolation, match="POL-1: 'ses-1979' is not a policy"):
        get_policy("ses-1979")


def test_registry_returns_each_policy_by_name() -> None:
    assert get_policy("ses-basic-2012") is BASIC_2012
    assert get_policy("ses-2025") is SES_2025
    assert BASIC_2012.response_window_days == 10
    assert BASIC_2012.rating_cap_percent is None  # RAT-9: forced distribution prohibited


@pytest.mark.parametrize(
    ("requirements", "gaps"),
    [
        (["Cut backlog 20% by September 2024"], []),
        (["Close 95% of audits within 60 days"], []),
        (["Improve morale"], ["requirement 1 states no measurable target or timeline"]),
        (["Reduce errors by 10%"], ["requirement 1 states no timeline"]),
        (["Deliver the portal in FY2024"], ["requirement 1 states no measurable target"]),
        (["Deliver 3 portals in FY2024"], []),
        (["Improve morale by 2025"], ["requirement 1 states no measurable target"]),
        (["Be a better leader in Q3 FY25"], ["requirement 1 states no measurable target"]),
        (["Improve morale by 2025-09-30"], ["requirement 1 states no measurable target"]),
        (["Improve morale by 9/30/2025"], ["requirement 1 states no measurable target"]),
        (["Improve morale by 12/31/2025"], ["requirement 1 states no measurable target"]),
        (["Improve morale by 2025-12-31"], ["requirement 1 states no measurable target"]),
        (["Improve morale by Sept. 30"], ["requirement 1 states no measurable target"]),
        # a heuristic: a number that reads as a year is taken for one
        (["Process 2000 claims by Q3"], ["requirement 1 states no measurable target"]),
        (["Hire 12 staff in FY 2024"], []),
        (["Improve morale by September 30, 2025"], ["requirement 1 states no measurable target"]),
        (["Raise the score to 4.5 by September 30, 2025"], []),
        (["Measurable target 1 by 2024-09-30"], []),
        ([], ["Results Driven has no performance requirements"]),
    ],
)
def test_plan_2_results_driven_measures_targets_timelines(
    requirements: list[str], gaps: list[str]
) -> None:
    """PLAN-2 (flag): Results Driven requirements state measures, targets and timelines."""
    found = plan_2_gaps(elements(BASIC_WEIGHTS, {"results_driven": requirements}))
    assert len(found) == len(gaps)
    for text, expected in zip(found, gaps, strict=True):
        assert expected in text


TARGET = "states no measurable target"
TIMELINE = "states no timeline"


@pytest.mark.parametrize(
    ("text", "gap"),
    [
        # ranges and ratios are targets; only a date's parts are not
        ("Reduce the backlog by 10-15% by September 30, 2025", None),
        ("Reduce the backlog 10-20% in FY2026", None),
        ("Cut 3-5 days from hiring by FY2026", None),
        ("Achieve a 4/5 rating by FY2026", None),
        ("Fill 9/10 vacancies by FY2026", None),
        ("Serve 24/7 coverage by FY2026", None),
        ("Complete 4 of 5 milestones by 9/30/2025", None),
        ("Save $2M by FY2026", None),
        ("Reduce cost per case 12% by 1 Oct 2025", None),
        # timelines written run together, with two-digit years, or as one number
        ("Reduce backlog 50% by Q3FY25", None),
        ("Reduce backlog 50% by 1Q2025", None),
        ("Reduce backlog 50% by FY2026Q2", None),
        ("Reduce backlog 50% by 2026Q2", None),
        ("Reduce backlog 50% by 9/30/25", None),
        ("Reduce backlog 50% by 12/31", None),
        ("Reduce backlog 50% in CY2026", None),
        ("Reduce backlog 50% by 20260930", None),
        # PLAN-2: a cadence is a timeline
        ("Reduce backlog 50% each quarter", None),
        ("Close 95% of cases quarterly", None),
        # and none of those dates is a target
        ("Improve morale by 30 September 2025", TARGET),
        ("Improve morale by 30-Sep-2025", TARGET),
        ("Improve morale by Q3FY25", TARGET),
        ("Improve morale by 1Q2025", TARGET),
        ("Improve morale in CY2026", TARGET),
        ("Improve morale in H1 2025", TARGET),
        ("Improve morale by 20260930", TARGET),
        ("Improve morale by 9/30/25", TARGET),
        ("Improve morale by 2024-9-30", TARGET),
        ("Reduce errors by 10-15%", TIMELINE),
    ],
)
def test_plan_2_tells_a_dates_digits_from_a_target(text: str, gap: str | None) -> None:
    found = plan_2_gaps(elements(BASIC_WEIGHTS, {"results_driven": [text]}))
    assert found == ([] if gap is None else [f"Results Driven requirement 1 {gap}"])


def test_mon_1_basic_needs_one_review_in_the_whole_period() -> None:
    assert BASIC_2012.review_windows(*FY2024) == [FY2024]
    assert "MON-1" in BASIC_2012.flags and "PLAN-2" in BASIC_2012.flags
