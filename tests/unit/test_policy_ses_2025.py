"""ses-2025: WT-1, WT-5, WT-6, PER-1 within one fiscal year, MON-1 quarters, PLAN-3."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from ledger.errors import RuleViolation
from ledger.policies import SES_2025
from ledger.policies.common import fiscal_year, fiscal_year_bounds
from ledger.policies.ses_2025 import mon_1_quarters, plan_3_gaps
from tests.unit.domain_builders import BASIC_WEIGHTS, SES_2025_WEIGHTS, elements

FY2026 = (date(2025, 10, 1), date(2026, 9, 30))


def _check(weights: dict[str, int]) -> dict[str, int]:
    return SES_2025.check_plan(
        period_start=FY2026[0], period_end=FY2026[1], elements=elements(weights)
    )


def _weights(fa: int, ge: int, mc: int, af: int, og: int) -> dict[str, int]:
    return dict(zip(SES_2025_WEIGHTS, (fa, ge, mc, af, og), strict=True))


def test_wt_1_requires_the_2025_elements() -> None:
    _check(SES_2025_WEIGHTS)
    with pytest.raises(RuleViolation, match="WT-1: 'leading_change' is not an element of ses-2025"):
        _check(BASIC_WEIGHTS)


@pytest.mark.parametrize(("total", "og"), [(99, 24), (100, 25), (101, 26)])
def test_wt_1_weights_sum_to_100(total: int, og: int) -> None:
    weights = _weights(30, 15, 15, 15, og)
    if total == 100:
        _check(weights)
    else:
        with pytest.raises(RuleViolation, match=f"WT-1: the weights sum to {total}"):
            _check(weights)


def test_wt_5_faithful_administration_at_least_25() -> None:
    _check(_weights(25, 15, 15, 15, 30))
    with pytest.raises(RuleViolation, match="WT-5: faithful_administration weighs 24"):
        _check(_weights(24, 15, 15, 15, 31))


@pytest.mark.parametrize("code", list(SES_2025_WEIGHTS)[1:])
def test_wt_6_other_elements_at_least_15(code: str) -> None:
    at_fifteen = dict.fromkeys(SES_2025_WEIGHTS, 15) | {"faithful_administration": 40}
    _check(at_fifteen)
    with pytest.raises(RuleViolation, match=f"WT-6: {code} weighs 14; ses-2025 requires"):
        _check(at_fifteen | {code: 14, "faithful_administration": 41})


def test_no_basic_rule_applies_under_2025() -> None:
    """Organizational goals may outweigh faithful administration (WT-4 is basic only)."""
    _check(_weights(25, 15, 15, 15, 30))


@pytest.mark.parametrize(
    ("start", "end", "accepted"),
    [
        (date(2025, 10, 1), date(2026, 9, 30), True),
        (date(2024, 10, 1), date(2025, 9, 30), True),  # before Oct 2025 either policy (POL-1)
        (date(2025, 1, 1), date(2025, 9, 30), True),
        (date(2025, 1, 1), date(2025, 10, 1), False),  # crosses into FY2026
        (date(2025, 10, 1), date(2026, 10, 1), False),
    ],
)
def test_per_1_period_within_one_fiscal_year(start: date, end: date, accepted: bool) -> None:
    if accepted:
        SES_2025.check_period(start, end)
    else:
        with pytest.raises(RuleViolation, match="PER-1: a (ses-2025 )?period"):
            SES_2025.check_period(start, end)


@pytest.mark.parametrize("fy", [1900, 2025, 2026, 2200])
def test_fiscal_year_bounds_are_the_first_and_last_day_of_the_fiscal_year(fy: int) -> None:
    """PER-1's fiscal year (Oct 1 - Sep 30): the day before the first and the day after the
    last fall in the neighbouring fiscal years."""
    first, last = fiscal_year_bounds(fy)
    assert (first, last) == (date(fy - 1, 10, 1), date(fy, 9, 30))
    assert fiscal_year(first) == fiscal_year(last) == fy
    assert fiscal_year(first - timedelta(days=1)) == fy - 1
    assert fiscal_year(last + timedelta(days=1)) == fy + 1


def test_per_1_common_part_still_applies() -> None:
    with pytest.raises(RuleViolation, match="PER-1: the period ends on 2025-10-01, not after"):
        SES_2025.check_period(date(2025, 10, 1), date(2025, 10, 1))


def test_mon_1_quarters_of_a_full_fiscal_year() -> None:
    assert mon_1_quarters(*FY2026) == [
        (date(2025, 10, 1), date(2025, 12, 31)),
        (date(2026, 1, 1), date(2026, 3, 31)),
        (date(2026, 4, 1), date(2026, 6, 30)),
        (date(2026, 7, 1), date(2026, 9, 30)),
    ]


def test_mon_1_partial_quarters_at_both_ends() -> None:
    assert SES_2025.review_windows(date(2025, 11, 15), date(2026, 2, 10)) == [
        (date(2025, 11, 15), date(2025, 12, 31)),
        (date(2026, 1, 1), date(2026, 2, 10)),
    ]


def test_mon_1_a_period_ending_on_a_quarter_s_first_day_has_a_one_day_last_quarter() -> None:
    """MON-1 (ses-2025): the period's last day opens a quarter, so it is a span of its own."""
    assert SES_2025.review_windows(date(2025, 10, 1), date(2026, 1, 1)) == [
        (date(2025, 10, 1), date(2025, 12, 31)),
        (date(2026, 1, 1), date(2026, 1, 1)),
    ]


@pytest.mark.parametrize(
    ("requirements", "count"),
    [
        (["Strategic Goal 1: a", "Strategic Goal 2: b", "strategic objective 3.1: c"], 0),
        (["Strategic Goal 1: a", "Goal 2.1 b"], 1),  # only two
        (["Strategic Goal 1: a", "Be excellent", "SG 3: c"], 1),  # one untied
        ([], 1),
    ],
)
def test_plan_3_organizational_goals_three_requirements_tied_to_goals(
    requirements: list[str], count: int
) -> None:
    """PLAN-3 (flag): at least 3 requirements, each naming a strategic goal."""
    gaps = plan_3_gaps(elements(SES_2025_WEIGHTS, {"organizational_goals": requirements}))
    assert len(gaps) == count


def test_rating_cap_and_response_window_settings() -> None:
    """RAT-9 cap 30%, RAT-11 5% pay increase, RAT-7 window 10 days."""
    assert SES_2025.rating_cap_percent == 30
    assert SES_2025.pay_increase_cap_percent == 5
    assert SES_2025.response_window_days == 10
    assert {"RAT-9", "RAT-11", "PLAN-3", "MON-1"} <= SES_2025.flags
