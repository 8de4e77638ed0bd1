"""Rules every policy shares, each function or constant named after its rules.md ID.

Pure functions of plain values: no I/O, no clock. A `check_*`-style function returns None or
raises `RuleViolation(rule_id, sentence)`; the sentence names the values involved, so a person
reading the error knows what to fix. `Policy` is the base of the versioned rule sets
(`basic_2012.py`, `ses_2025.py`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from ledger.errors import RuleViolation

# --- Calendar helpers ------------------------------------------------------------------------


def add_years(day: date, years: int) -> date:
    """`day` moved by whole years; Feb 29 lands on Feb 28 in a common year."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def fiscal_year(day: date) -> int:
    """The federal fiscal year holding `day` (FY2026 = Oct 1 2025 - Sep 30 2026)."""
    return day.year + 1 if day.month >= 10 else day.year


def fiscal_year_bounds(fy: int) -> tuple[date, date]:
    """The first and last day of fiscal year `fy` (FY2026: Oct 1 2025 - Sep 30 2026), the
    inverse of `fiscal_year`: PER-1's and MON-1's fiscal year, a RAT-9 cycle."""
    return date(fy - 1, 10, 1), date(fy, 9, 30)


def cycle_of(day: date) -> str:
    """The reporting cycle name (`FY2026`) of an appraisal whose period ends on `day`."""
    return f"FY{fiscal_year(day)}"


def days_phrase(n: int) -> str:
    """`1 day`, `29 days`: for error sentences."""
    return f"{n} day" if n == 1 else f"{n} days"


# --- Rating derivation (RAT-1 .. RAT-3) ------------------------------------------------------

LEVELS = range(1, 6)
#: RAT-1: points per element level (Level 1 earns nothing).
RAT_1_POINTS: Mapping[int, int] = {5: 5, 4: 4, 3: 3, 2: 2, 1: 0}
#: RAT-3: lowest score of each summary level, highest level first. rules.md is silent below
#: 200; the model system (seed 003) has no range there either and maps it to Level 1. With
#: weights summing to 100 and no element at Level 1 the score cannot fall below 200 anyway.
RAT_3_FLOORS: Sequence[tuple[int, int]] = ((475, 5), (400, 4), (300, 3), (200, 2))


@dataclass(frozen=True)
class Derivation:
    """The initial summary rating derived from element levels (RAT-1..RAT-3)."""

    score: int
    summary_level: int


def rat_1_check_level(level: object, what: str) -> None:
    """RAT-1: every level, of an element or a summary, is an integer from 1 to 5."""
    if isinstance(level, bool) or not isinstance(level, int) or level not in LEVELS:
        raise RuleViolation("RAT-1", f"{what} is {level!r}; levels run from 1 to 5.")


def rat_1_check_element_levels(element_levels: Mapping[str, object], codes: Sequence[str]) -> None:
    """RAT-1: each of the plan's elements, and nothing else, is rated Level 1-5."""
    missing = [code for code in codes if code not in element_levels]
    unknown = sorted(code for code in element_levels if code not in codes)
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if unknown:
            parts.append(f"not in the plan: {', '.join(unknown)}")
        raise RuleViolation(
            "RAT-1", f"the rating must rate exactly the plan's elements ({'; '.join(parts)})."
        )
    for code in codes:
        rat_1_check_level(element_levels[code], f"the level of {code}")


def rat_3_score(element_levels: Mapping[str, int], weights: Mapping[str, int]) -> int:
    """RAT-3: sum of points x weight over the plan's elements."""
    return sum(RAT_1_POINTS[element_levels[code]] * weight for code, weight in weights.items())


def rat_3_level_for_score(score: int) -> int:
    """RAT-3: the summary level of a score with no element at Level 1."""
    for floor, level in RAT_3_FLOORS:
        if score >= floor:
            return level
    return 1


def derive_summary(element_levels: Mapping[str, int], weights: Mapping[str, int]) -> Derivation:
    """RAT-1..RAT-3: score and summary level; any element at Level 1 gives Level 1 (RAT-2)."""
    rat_1_check_element_levels(element_levels, list(weights))
    score = rat_3_score(element_levels, weights)
    if any(element_levels[code] == 1 for code in weights):  # RAT-2
        return Derivation(score=score, summary_level=1)
    return Derivation(score=score, summary_level=rat_3_level_for_score(score))


# --- Plan and weights (WT-1) -----------------------------------------------------------------

WT_1_TOTAL = 100


def wt_1_check_elements(
    elements: Sequence[Mapping[str, Any]], codes: Sequence[str], policy: str
) -> dict[str, int]:
    """WT-1: exactly the policy's elements, integer weights summing to 100; returns the weights."""
    weights: dict[str, int] = {}
    for element in elements:
        code, weight = element.get("code"), element.get("weight")
        if not isinstance(code, str) or code not in codes:
            raise RuleViolation(
                "WT-1", f"{code!r} is not an element of {policy} ({', '.join(codes)})."
            )
        if code in weights:
            raise RuleViolation("WT-1", f"{code} appears twice in the plan.")
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise RuleViolation("WT-1", f"{code} weighs {weight!r}; a weight is a whole number.")
        weights[code] = weight
    missing = [code for code in codes if code not in weights]
    if missing:
        raise RuleViolation("WT-1", f"the plan lacks {', '.join(missing)}, required by {policy}.")
    total = sum(weights.values())
    if total != WT_1_TOTAL:
        raise RuleViolation("WT-1", f"the weights sum to {total}; they must sum to {WT_1_TOTAL}.")
    return weights


def check_minimum_weight(
    rule: str, weights: Mapping[str, int], codes: Collection[str], minimum: int, policy: str
) -> None:
    """Shared shape of WT-2/3/5/6: each of `codes` weighs at least `minimum`."""
    for code, weight in weights.items():
        if code in codes and weight < minimum:
            raise RuleViolation(
                rule, f"{code} weighs {weight}; {policy} requires at least {minimum}."
            )


# --- Appraisal period (PER-1 .. PER-4) -------------------------------------------------------


def per_1_check_period(period_start: date, period_end: date) -> None:
    """PER-1 (all policies): the period ends after it starts and lasts at most one year.

    "One year" counts both ends: Oct 1 2024 - Sep 30 2025 is one year; ending Oct 1 2025 is
    a year and a day.
    """
    if period_end <= period_start:
        raise RuleViolation(
            "PER-1", f"the period ends on {period_end}, not after its start on {period_start}."
        )
    latest_end = add_years(period_start, 1) - timedelta(days=1)
    if period_end > latest_end:
        raise RuleViolation(
            "PER-1",
            f"a period starting {period_start} may end on {latest_end} at the latest "
            f"(one year); {period_end} is later.",
        )


PER_2_MINIMUM_DAYS = 90


def per_2_performance_start(period_start: date, communicated_on: date) -> date:
    """PER-2: performance under the plan starts when both the period and the plan have."""
    return max(period_start, communicated_on)


def per_2_check_minimum_period(
    *, period_start: date, communicated_on: date, rated_on: date
) -> None:
    """PER-2: rated_on - max(period_start, communicated_on) >= 90 days (day 90 allowed)."""
    start = per_2_performance_start(period_start, communicated_on)
    elapsed = (rated_on - start).days
    if elapsed < PER_2_MINIMUM_DAYS:
        # a rating dated before the period starts has no days after it to count
        when = f"{days_phrase(elapsed)} after" if elapsed >= 0 else "before"
        raise RuleViolation(
            "PER-2",
            f"rated on {rated_on}, {when} performance under the plan began on {start}; "
            f"a rating needs at least {PER_2_MINIMUM_DAYS} days.",
        )


def per_4_check_ratable(
    *, period_start: date, period_end: date, communicated_on: date, rated_on: date
) -> None:
    """PER-4: a period holding under 90 days of performance must be extended before rating.

    PER-2 measures up to `rated_on`; when the rating comes after the period has ended, only
    the days up to `period_end` (inclusive) were performed under the plan.
    """
    if rated_on <= period_end:
        return
    start = per_2_performance_start(period_start, communicated_on)
    performed = (period_end - start).days + 1
    if performed < PER_2_MINIMUM_DAYS:
        raise RuleViolation(
            "PER-4",
            f"the period ending {period_end} holds {days_phrase(max(performed, 0))} of performance "
            f"under the plan (from {start}); extend it before rating.",
        )


def per_4_check_extension(*, period_end: date, new_period_end: date, reason: str) -> None:
    """PER-4: an extension moves the period end later and records why (not blank)."""
    if new_period_end <= period_end:
        raise RuleViolation(
            "PER-4",
            f"an extension moves the period end later; {new_period_end} is not after {period_end}.",
        )
    if is_blank(reason):
        raise RuleViolation("PER-4", "an extension records its reason.")


#: PER-3: Inauguration Days listed in rules.md.
PER_3_INAUGURATION_DAYS: Sequence[date] = tuple(date(y, 1, 20) for y in (2017, 2021, 2025, 2029))
PER_3_TRANSITION_DAYS = 120


def per_3_inauguration_day(on: date) -> date | None:
    """PER-3: the latest listed Inauguration Day on or before `on`."""
    earlier = [day for day in PER_3_INAUGURATION_DAYS if day <= on]
    return earlier[-1] if earlier else None


def per_3_check_transition(rated_on: date, *, is_career: bool, what: str) -> None:
    """PER-3: no rating of a career executive within 120 days after Inauguration Day.

    Day 120 itself is allowed. Noncareer and limited appointees are not covered.
    """
    inauguration = per_3_inauguration_day(rated_on)
    if not is_career or inauguration is None:
        return
    elapsed = (rated_on - inauguration).days
    if elapsed < PER_3_TRANSITION_DAYS:
        earliest = inauguration + timedelta(days=PER_3_TRANSITION_DAYS)
        raise RuleViolation(
            "PER-3",
            f"the {what} of a career executive is dated {rated_on}, {days_phrase(elapsed)} after "
            f"Inauguration Day {inauguration}; the earliest allowed date is {earliest}.",
        )


# --- Ratings in writing, responses, final rating (RAT-4, RAT-7, RAT-8) -----------------------


def is_blank(text: str) -> bool:
    """Nothing visible: only white space and invisible format characters (zero-width space
    U+200B, word joiner U+2060, byte order mark U+FEFF, ...), which `str.strip` keeps. A
    text that rules require in writing (RAT-4, RAT-5, PER-4) is missing when it is blank."""
    return all(c.isspace() or unicodedata.category(c) == "Cf" for c in text)


def rat_4_check_in_writing(*, narrative: str, rated_on: date, shared_on: date) -> None:
    """RAT-4: the initial rating is written and shared with the executive (not before it exists)."""
    if is_blank(narrative):
        raise RuleViolation("RAT-4", "the initial rating needs a written narrative.")
    if shared_on < rated_on:
        raise RuleViolation(
            "RAT-4", f"the rating was shared on {shared_on}, before it was written on {rated_on}."
        )


def rat_5_check_in_writing(text: str) -> None:
    """RAT-5: the executive's response is in writing (not blank)."""
    if is_blank(text):
        raise RuleViolation("RAT-5", "a response is in writing; the text is empty.")


def rat_6_check_reviewer(
    reviewer_id: str, *, rating_official_id: str, initial_rater: str | None
) -> None:
    """RAT-6: the higher-level review is made by someone other than the plan's rating official
    and the official who prepared the initial rating."""
    if reviewer_id not in (rating_official_id, initial_rater):
        return
    role = (
        "prepared the initial rating"
        if reviewer_id == initial_rater
        else "is the plan's rating official"
    )
    raise RuleViolation(
        "RAT-6", f"{reviewer_id} {role}; a higher-level official reviews the rating."
    )


RAT_7_DEFAULT_RESPONSE_WINDOW_DAYS = 10


def rat_7_check_opportunity(
    *, recommended_on: date, shared_on: date, response_closed: bool, window_days: int
) -> None:
    """RAT-7: a response, a waiver, or recommended_on >= shared_on + the response window."""
    opens_on = shared_on + timedelta(days=window_days)
    if response_closed or recommended_on >= opens_on:
        return
    raise RuleViolation(
        "RAT-7",
        f"the executive received the rating on {shared_on} and has neither responded nor "
        f"waived; the PRB may act from {opens_on} ({window_days}-day window), "
        f"not on {recommended_on}.",
    )


def rat_8_check_after_prb(*, prb_recommended_on: date | None, rated_on: date) -> None:
    """RAT-8: the final rating follows, and is dated no earlier than, a PRB recommendation."""
    if prb_recommended_on is None:
        raise RuleViolation(
            "RAT-8",
            "the appointing authority assigns the final rating only after a PRB "
            "recommendation, and none is recorded.",
        )
    if rated_on < prb_recommended_on:
        raise RuleViolation(
            "RAT-8",
            f"the final rating is dated {rated_on}, before the PRB recommendation "
            f"of {prb_recommended_on}.",
        )


# --- Performance Review Boards (PRB-1 .. PRB-5) ----------------------------------------------

PRB_1_MINIMUM_MEMBERS = 3


def prb_1_check_board(member_ids: Sequence[str]) -> None:
    """PRB-1: a board has at least 3 members, each listed once."""
    duplicates = sorted({m for m in member_ids if member_ids.count(m) > 1})
    if duplicates:
        raise RuleViolation("PRB-1", f"member {', '.join(duplicates)} is listed more than once.")
    if len(member_ids) < PRB_1_MINIMUM_MEMBERS:
        raise RuleViolation(
            "PRB-1",
            f"the board has {len(member_ids)} members; it needs at least {PRB_1_MINIMUM_MEMBERS}.",
        )


def prb_1_check_present(
    members_present: Sequence[str], board_members: Mapping[str, bool], board_id: str
) -> None:
    """PRB-1: at least 3 distinct members present, every one of them on the board."""
    duplicates = sorted({m for m in members_present if members_present.count(m) > 1})
    if duplicates:
        raise RuleViolation(
            "PRB-1", f"{', '.join(duplicates)} is listed more than once among those present."
        )
    strangers = [m for m in members_present if m not in board_members]
    if strangers:
        raise RuleViolation("PRB-1", f"{', '.join(strangers)} is not a member of {board_id}.")
    if len(members_present) < PRB_1_MINIMUM_MEMBERS:
        raise RuleViolation(
            "PRB-1",
            f"{len(members_present)} members were present; a recommendation needs at least "
            f"{PRB_1_MINIMUM_MEMBERS}.",
        )


def prb_2_check_career_majority(
    members_present: Sequence[str], board_members: Mapping[str, bool], *, executive_is_career: bool
) -> None:
    """PRB-2: more than half of those present are career appointees, for a career executive."""
    if not executive_is_career:
        return
    career = sum(1 for m in members_present if board_members.get(m, False))
    if 2 * career <= len(members_present):
        raise RuleViolation(
            "PRB-2",
            f"{career} of the {len(members_present)} members present are career appointees; "
            "a career executive's rating needs more than half.",
        )


def prb_3_check_not_own(members_present: Sequence[str], executive_id: str) -> None:
    """PRB-3: the executive takes no part in deliberations on their own appraisal."""
    if executive_id in members_present:
        raise RuleViolation(
            "PRB-3", f"{executive_id} sat on the board deliberating their own appraisal."
        )


def prb_4_check_published(recommended_on: date, published_on: date) -> None:
    """PRB-4: the board serves only from its Federal Register publication (same day allowed)."""
    if recommended_on < published_on:
        raise RuleViolation(
            "PRB-4",
            f"the recommendation is dated {recommended_on}, before the board's appointments "
            f"were published in the Federal Register on {published_on}.",
        )


PRB_5_INITIAL_RATING = "initial_rating"
PRB_5_RESPONSE = "executive_response"
PRB_5_HLR = "higher_level_review"
PRB_5_ITEMS = (PRB_5_INITIAL_RATING, PRB_5_RESPONSE, PRB_5_HLR)


def prb_5_check_considered(
    considered: Sequence[str], *, has_response: bool, has_hlr_recommendation: bool
) -> None:
    """PRB-5: `considered` names the initial rating, and the response and HLR when they exist.

    Naming something that does not exist (or an unknown item) is refused as well: the record
    would state a consideration that cannot have happened.
    """
    unknown = [item for item in considered if item not in PRB_5_ITEMS]
    if unknown:
        raise RuleViolation(
            "PRB-5",
            f"considered names {', '.join(map(repr, unknown))}; allowed: {', '.join(PRB_5_ITEMS)}.",
        )
    exists = {
        PRB_5_INITIAL_RATING: True,
        PRB_5_RESPONSE: has_response,
        PRB_5_HLR: has_hlr_recommendation,
    }
    for item, present in exists.items():
        if present and item not in considered:
            raise RuleViolation(
                "PRB-5", f"the recommendation must state that it considered {item}."
            )
        if not present and item in considered:
            raise RuleViolation("PRB-5", f"considered names {item}, but none is recorded.")


# --- Personnel actions (REM-4, REM-5, REM-7) -------------------------------------------------

REM_4_SUBPART_D = "5 CFR 359 subpart D"
REM_4_SUBPART_E = "5 CFR 359 subpart E"
REM_4_PERFORMANCE_STATUTE = "5 U.S.C. 3592(a)(2)"
REM_4_PROBATION_STATUTE = "5 U.S.C. 3592(a)(1)"
_PART_359 = re.compile(r"\b359\b")
_SUBPART = re.compile(r"\bsubpart\s+([a-z])\b", re.IGNORECASE)
#: A section of part 359 ("359.502"): CFR sections are numbered by subpart, so the hundreds
#: digit names it (359.4xx is subpart D, 359.5xx E, 359.7xx G).
_SECTION_359 = re.compile(r"\b359\.([1-9])\d\d\b")
_PERFORMANCE_STATUTE = re.compile(r"\b3592\s*\(a\)\s*\(2\)", re.IGNORECASE)
_PROBATION_STATUTE = re.compile(r"\b3592\s*\(a\)\s*\(1\)", re.IGNORECASE)


def cited_subparts(authority: str) -> frozenset[str]:
    """The 5 CFR 359 subparts an authority text cites ("5 CFR part 359, subpart E" -> {"E"},
    "5 CFR 359.502" -> {"E"}).

    Every "subpart X" in a text that names part 359 counts, and every section of part 359.
    """
    if not _PART_359.search(authority):
        return frozenset()
    sections = {"ABCDEFGHI"[int(m) - 1] for m in _SECTION_359.findall(authority)}
    return frozenset({m.upper() for m in _SUBPART.findall(authority)} | sections)


def rem_4_check_authority(authority: str, *, probationary: bool) -> None:
    """REM-4: a career appointee's removal cites subpart D if probationary, else subpart E.

    Subpart E implements 5 U.S.C. 3592(a)(2) and subpart D 3592(a)(1) (removal during
    probation), so citing the statute is accepted as citing its subpart; a section of the
    subpart (359.502) counts as well. Citing the other procedure as well is refused.
    """
    subparts = cited_subparts(authority)
    cites_e = "E" in subparts or bool(_PERFORMANCE_STATUTE.search(authority))
    cites_d = "D" in subparts or bool(_PROBATION_STATUTE.search(authority))
    if probationary and (not cites_d or cites_e):
        raise RuleViolation(
            "REM-4",
            f"a probationary career appointee is removed under {REM_4_SUBPART_D} "
            f"({REM_4_PROBATION_STATUTE}); the recorded authority is {authority!r}.",
        )
    if not probationary and (not cites_e or cites_d):
        raise RuleViolation(
            "REM-4",
            f"a non-probationary career appointee is removed under {REM_4_SUBPART_E} "
            f"({REM_4_PERFORMANCE_STATUTE}); the recorded authority is {authority!r}.",
        )


REM_5_NOTICE_DAYS = 30


def rem_5_check_notice(*, notice_on: date, effective_on: date, removal: bool) -> None:
    """REM-5: removal notice at least 30 calendar days ahead; no action before its notice."""
    lead = (effective_on - notice_on).days
    if lead < 0:
        raise RuleViolation(
            "REM-5", f"the action takes effect on {effective_on}, before its notice on {notice_on}."
        )
    if removal and lead < REM_5_NOTICE_DAYS:
        raise RuleViolation(
            "REM-5",
            f"the removal notice of {notice_on} precedes the effective date {effective_on} by "
            f"{days_phrase(lead)}; at least {REM_5_NOTICE_DAYS} are required.",
        )


REM_7_HEARING_LEAD_DAYS = 15


def rem_7_check_hearing(
    hearing_requested_on: date | None,
    *,
    notice_on: date,
    effective_on: date,
    removal: bool,
    career: bool,
    probationary: bool,
) -> None:
    """REM-7: an informal MSPB hearing request, for a career appointee removed under
    5 U.S.C. 3592(a)(2) only: a probationer's removal (5 CFR 359 subpart D, REM-4) comes
    under 3592(a)(1), which gives no hearing.

    Filed no earlier than the notice and at least 15 days before the effective date.
    """
    if hearing_requested_on is None:
        return
    if not (removal and career):
        raise RuleViolation(
            "REM-7", "only a career appointee being removed may request an informal hearing."
        )
    if probationary:
        raise RuleViolation(
            "REM-7",
            "a probationary career appointee is removed under 5 U.S.C. 3592(a)(1) "
            "(5 CFR 359 subpart D), which gives no informal hearing; only a removal under "
            "3592(a)(2) does.",
        )
    if hearing_requested_on < notice_on:
        raise RuleViolation(
            "REM-7",
            f"the hearing was requested on {hearing_requested_on}, before the removal notice "
            f"of {notice_on}.",
        )
    lead = (effective_on - hearing_requested_on).days
    if lead < REM_7_HEARING_LEAD_DAYS:
        raise RuleViolation(
            "REM-7",
            f"the hearing request of {hearing_requested_on} comes {days_phrase(lead)} before the "
            f"removal on {effective_on}; it must be filed at least "
            f"{REM_7_HEARING_LEAD_DAYS} days before.",
        )


# --- Complaints (APP-1) ----------------------------------------------------------------------

#: APP-1: the forums a complaint about the rating process may go to.
APP_1_COMPLAINT_FORUMS = ("EEOC", "OSC")


def app_1_check_forum(forum: str) -> None:
    """APP-1: a rating is never appealed; a complaint goes to the EEOC or the OSC."""
    if forum not in APP_1_COMPLAINT_FORUMS:
        raise RuleViolation(
            "APP-1",
            f"ratings cannot be appealed; a complaint goes to "
            f"{' or '.join(APP_1_COMPLAINT_FORUMS)}, not {forum!r}.",
        )


# --- Policies --------------------------------------------------------------------------------


class Policy:
    """A versioned rule set; an appraisal is judged by the one named in its plan.

    Subclasses set the class attributes and override `check_weights`, and where they differ
    `check_period`, `review_windows` and `plan_gaps`.
    """

    name: str = ""
    element_codes: tuple[str, ...] = ()
    #: RAT-7: calendar days the executive has to answer before the PRB may act anyway.
    response_window_days: int = RAT_7_DEFAULT_RESPONSE_WINDOW_DAYS
    #: The *flag* rules (rules.md) that apply to this policy's appraisals.
    flags: frozenset[str] = frozenset()
    #: RAT-9: the share (percent) of career executives allowed at Levels 4-5; None = no cap.
    rating_cap_percent: int | None = None
    #: RAT-11: the largest pay increase (percent of base pay) below Level 4; None = no limit.
    pay_increase_cap_percent: int | None = None

    def check_plan(
        self, *, period_start: date, period_end: date, elements: Sequence[Mapping[str, Any]]
    ) -> dict[str, int]:
        """PER-1 and WT-1..WT-6 for a new plan; returns the weights by element code."""
        self.check_period(period_start, period_end)
        weights = wt_1_check_elements(elements, self.element_codes, self.name)
        self.check_weights(weights)
        return weights

    def check_period(self, period_start: date, period_end: date) -> None:
        """PER-1 under this policy."""
        per_1_check_period(period_start, period_end)

    def check_weights(self, weights: Mapping[str, int]) -> None:
        """The policy's own weight rules, after WT-1 has passed."""

    def derive(self, element_levels: Mapping[str, int], weights: Mapping[str, int]) -> Derivation:
        """RAT-1..RAT-3 (the same formula under both policies)."""
        return derive_summary(element_levels, weights)

    def review_windows(self, period_start: date, period_end: date) -> list[tuple[date, date]]:
        """MON-1: the spans that each need a progress review (default: the whole period)."""
        return [(period_start, period_end)]

    def plan_gaps(self, elements: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
        """Flag rules on plan content (PLAN-2, PLAN-3): (rule, detail) for each gap found."""
        return []

    def __repr__(self) -> str:
        return f"<Policy {self.name}>"
