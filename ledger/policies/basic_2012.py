"""`ses-basic-2012`: the model SES performance management system (seed 003).

Weights: Results Driven at least 20 (WT-2), every other element at least 5 (WT-3), none
heavier than Results Driven (WT-4). One progress review per period (MON-1). Results Driven
requirements state measures, targets and timelines (PLAN-2, a flag). No forced distribution.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ledger.errors import RuleViolation
from ledger.policies.common import Policy, check_minimum_weight

NAME = "ses-basic-2012"
RESULTS_DRIVEN = "results_driven"
ELEMENT_CODES = (
    "leading_change",
    "leading_people",
    "business_acumen",
    "building_coalitions",
    RESULTS_DRIVEN,
)
WT_2_RESULTS_DRIVEN_MINIMUM = 20
WT_3_OTHER_MINIMUM = 5

# PLAN-2 reads free text, so it is a heuristic: a requirement states a target when it holds a
# number, and a timeline when it names a year, fiscal year, quarter, month, a span of days,
# weeks or months, or a cadence. The number is the measure's target; that is how "measures"
# are recognised. ("May" alone is ambiguous in English; "May 2026" matches by its year.)
# The digits of a date (a year, FY2024, Q3, Q3FY25, 1Q2025, CY2026, H1 2025, 2024-09-30,
# 9/30/2024, 20240930, September 30, 30 September) are the timeline's, not a target:
# "Improve morale by 2025" states a timeline and no target.
_MONTHS = (
    "jan january feb february mar march apr april may jun june jul july aug august sep sept "
    "september oct october nov november dec december"
).split()


def _by_length(words: list[str], after: str) -> list[str]:
    """Month names followed by `after` then a digit, as look-behinds of one width each (a
    look-behind must have a fixed width; fewer of them is faster)."""
    widths: dict[int, list[str]] = {}
    for word in words:
        widths.setdefault(len(word), []).append(word)
    return [rf"\b(?:{'|'.join(group)}){after}\d" for _width, group in sorted(widths.items())]


# A run of digits that is not a date's. Written as one expression (lookarounds after its first
# digit, so the engine only stops at digits), because a projection rebuild runs it for every
# requirement in the log: about 1.3 us against 6-7 us for the same test in Python. Ranges
# and ratios (10-15%, 4/5, 24/7) are targets; only the parts of a date are not.
_TARGET = re.compile(
    r"\d"
    + "".join(
        f"(?<!{before})"
        for before in (
            r"\d\d",  # not the run's first digit
            r"\d\d\d\d-\d",  # 2024-09-30: the month
            r"\d\d\d\d-\d-\d",  # 2024-9-30: the day
            r"\d\d\d\d-\d\d-\d",  # 2024-09-30: the day
            r"\d/\d/\d",  # 9/3/25: the year
            r"\d/\d\d/\d",  # 9/30/25: the year
            r"fy\d",  # FY2024, Q3FY25
            r"fy \d",
            r"cy\d",
            r"cy \d",
            r"q\d",  # Q3, 1Q2025
            r"\bh\d",  # H1 2025
            *_by_length(_MONTHS, " "),  # September 30
            *_by_length([m for m in _MONTHS if len(m) <= 4], r"\. "),  # Sept. 30
        )
    )
    + r"(?!(?<=\d/\d)\d*+/\d)"  # 9/30/2025: the day (a ratio, 9/10, has one slash)
    + r"(?!(?<=(?<![a-z0-9])1)9\d\d(?!\d))(?!(?<=(?<![a-z0-9])2)0\d\d(?!\d))"  # a year
    + r"(?!(?<=(?<![a-z0-9])1)9\d{6}(?!\d))(?!(?<=(?<![a-z0-9])2)0\d{6}(?!\d))"  # 20250930
    + r"\d*+"  # the rest of the run (possessive: no shorter run of the same digits)
    + r"(?!/\d\d?/\d)"  # 9/30/2025: the month
    + rf"(?!(?:st|nd|rd|th)?[ -](?:{'|'.join(m for m in _MONTHS if len(m) == 3)}))"  # 30 Sep
    + r"(?!q[1-4])"  # 1Q2025
)
# Matched against the lower-cased text: case-insensitive matching of this alternation costs
# about three times as much, and a projection rebuild runs it for every plan in the log.
_TIMELINE = re.compile(
    r"\b(?:(?:19|20)\d{2}|fy\s?\d{2,4}|cy\s?\d{2,4}|q[1-4]|[1-4]q|h[12]|quarters?|quarterly|"
    r"days?|weeks?|weekly|months?|monthly|years?|annual(?:ly)?|year-end|"
    r"\d{1,2}/\d{1,2}(?:/\d{2,4})?|(?:19|20)\d{6}|"
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|"
    r"apr(?:il)?|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|"
    r"dec(?:ember)?)(?:\b|(?=fy|q[1-4]|\d))"  # also run together: Q3FY25, FY2026Q2, 1Q2025
)


def wt_4_check_results_driven_heaviest(weights: Mapping[str, int]) -> None:
    """WT-4: no element weighs more than Results Driven."""
    limit = weights[RESULTS_DRIVEN]
    for code, weight in weights.items():
        if weight > limit:
            raise RuleViolation(
                "WT-4", f"{code} weighs {weight}, more than Results Driven ({limit})."
            )


def plan_2_gaps(elements: Sequence[Mapping[str, Any]]) -> list[str]:
    """PLAN-2: why the Results Driven requirements lack measures, targets or timelines."""
    requirements: list[str] = next(
        (list(e.get("requirements") or []) for e in elements if e.get("code") == RESULTS_DRIVEN),
        [],
    )
    if not requirements:
        return ["Results Driven has no performance requirements"]
    gaps = []
    for number, text in enumerate(requirements, start=1):
        lowered = text.lower()
        lacks = []
        if not _TARGET.search(lowered):
            lacks.append("measurable target")
        if not _TIMELINE.search(lowered):
            lacks.append("timeline")
        if lacks:
            gaps.append(f"Results Driven requirement {number} states no {' or '.join(lacks)}")
    return gaps


class BasicPolicy2012(Policy):
    """The five Executive Core Qualification elements with seed 003's weight rules."""

    name = NAME
    element_codes = ELEMENT_CODES
    flags = frozenset({"PLAN-1", "PLAN-2", "PER-5", "MON-1", "RAT-10"})

    def check_weights(self, weights: Mapping[str, int]) -> None:
        check_minimum_weight(
            "WT-2", weights, {RESULTS_DRIVEN}, WT_2_RESULTS_DRIVEN_MINIMUM, "the basic policy"
        )
        others = set(ELEMENT_CODES) - {RESULTS_DRIVEN}
        check_minimum_weight("WT-3", weights, others, WT_3_OTHER_MINIMUM, "the basic policy")
        wt_4_check_results_driven_heaviest(weights)

    def plan_gaps(self, elements: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
        return [("PLAN-2", gap) for gap in plan_2_gaps(elements)]


BASIC_2012 = BasicPolicy2012()
