"""`ses-2025`: the OPM SES performance appraisal system of Feb 25 2025 (seed 000).

Mandatory for periods starting on or after Oct 1 2025 (POL-1). Weights: Faithful
Administration at least 25 (WT-5), every other element at least 15 (WT-6). The period lies
within one fiscal year (PER-1). One progress review per quarter (MON-1). At most 30% of an
agency's career executives at Levels 4-5 unless the President waives it (RAT-9); pay
increases above 5% only for Levels 4-5 (RAT-11). Achieving Organizational Goals carries at
least 3 requirements tied to strategic goals (PLAN-3).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from ledger.errors import RuleViolation
from ledger.policies.common import Policy, check_minimum_weight, fiscal_year, fiscal_year_bounds

NAME = "ses-2025"
FAITHFUL_ADMINISTRATION = "faithful_administration"
ORGANIZATIONAL_GOALS = "organizational_goals"
ELEMENT_CODES = (
    FAITHFUL_ADMINISTRATION,
    "government_efficiency",
    "merit_and_competence",
    "accountability_and_fairness",
    ORGANIZATIONAL_GOALS,
)
WT_5_FAITHFUL_ADMINISTRATION_MINIMUM = 25
WT_6_OTHER_MINIMUM = 15
RAT_9_CAP_PERCENT = 30
RAT_11_PAY_INCREASE_CAP_PERCENT = 5
PLAN_3_MINIMUM_REQUIREMENTS = 3
#: PLAN-3 heuristic: a requirement is tied to a strategic goal when it names one
#: ("Strategic Goal 2", "strategic objective 1.3", "SG 4", "Goal 3.1").
#: Matched against the lower-cased text (cheaper than case-insensitive matching).
_STRATEGIC_GOAL = re.compile(
    r"\b(?:strategic\s+(?:goal|objective)|goal\s*\d|sg\s*\d|objective\s*\d)"
)

_QUARTER_STARTS = (1, 4, 7, 10)


def per_1_check_fiscal_year(period_start: date, period_end: date) -> None:
    """PER-1 (ses-2025): the period lies within one fiscal year (Oct 1 - Sep 30)."""
    fy = fiscal_year(period_start)
    if fiscal_year(period_end) != fy:
        raise RuleViolation(
            "PER-1",
            f"a ses-2025 period lies within one fiscal year; {period_start} is in FY{fy} "
            f"(ending {fiscal_year_bounds(fy)[1]}) but the period ends on {period_end}.",
        )


def mon_1_quarters(period_start: date, period_end: date) -> list[tuple[date, date]]:
    """MON-1 (ses-2025): the period cut at fiscal-quarter boundaries (Oct, Jan, Apr, Jul)."""
    return list(_quarters(period_start, period_end))


@functools.lru_cache(maxsize=1024)
def _quarters(period_start: date, period_end: date) -> tuple[tuple[date, date], ...]:
    """Cached: most appraisals of an agency's cycle share one period, and a projection
    rebuild cuts every appraisal's period (a sixth of its settling of MON-1 and PER-5
    findings, before the cache)."""
    windows = []
    start = period_start
    while start <= period_end:
        month = max(m for m in _QUARTER_STARTS if m <= start.month)
        next_start = date(start.year + 1, 1, 1) if month == 10 else date(start.year, month + 3, 1)
        end = min(period_end, date.fromordinal(next_start.toordinal() - 1))
        windows.append((start, end))
        start = next_start
    return tuple(windows)


def plan_3_gaps(elements: Sequence[Mapping[str, Any]]) -> list[str]:
    """PLAN-3: why Achieving Organizational Goals falls short (count, or untied requirements)."""
    requirements: list[str] = next(
        (
            list(e.get("requirements") or [])
            for e in elements
            if e.get("code") == ORGANIZATIONAL_GOALS
        ),
        [],
    )
    gaps = []
    if len(requirements) < PLAN_3_MINIMUM_REQUIREMENTS:
        gaps.append(
            f"Achieving Organizational Goals has {len(requirements)} performance requirements; "
            f"at least {PLAN_3_MINIMUM_REQUIREMENTS} are expected"
        )
    gaps.extend(
        f"Achieving Organizational Goals requirement {number} names no strategic goal"
        for number, text in enumerate(requirements, start=1)
        if not _STRATEGIC_GOAL.search(text.lower())
    )
    return gaps


class Ses2025Policy(Policy):
    """The five 2025 elements, fiscal-year periods, quarterly reviews and the 30% cap."""

    name = NAME
    element_codes = ELEMENT_CODES
    flags = frozenset({"PLAN-1", "PLAN-3", "PER-5", "MON-1", "RAT-9", "RAT-10", "RAT-11"})
    rating_cap_percent = RAT_9_CAP_PERCENT
    pay_increase_cap_percent = RAT_11_PAY_INCREASE_CAP_PERCENT

    def check_period(self, period_start: date, period_end: date) -> None:
        super().check_period(period_start, period_end)
        per_1_check_fiscal_year(period_start, period_end)

    def check_weights(self, weights: Mapping[str, int]) -> None:
        check_minimum_weight(
            "WT-5",
            weights,
            {FAITHFUL_ADMINISTRATION},
            WT_5_FAITHFUL_ADMINISTRATION_MINIMUM,
            "ses-2025",
        )
        others = set(ELEMENT_CODES) - {FAITHFUL_ADMINISTRATION}
        check_minimum_weight("WT-6", weights, others, WT_6_OTHER_MINIMUM, "ses-2025")

    def review_windows(self, period_start: date, period_end: date) -> list[tuple[date, date]]:
        return mon_1_quarters(period_start, period_end)

    def plan_gaps(self, elements: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
        return [("PLAN-3", gap) for gap in plan_3_gaps(elements)]


SES_2025 = Ses2025Policy()
