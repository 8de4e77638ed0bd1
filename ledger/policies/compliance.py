"""Findings for the rules marked *flag* in rules.md.

A flagged action is recorded as it happened; these pure functions, given plain values read
from the ledger, say what was irregular. Each rule's function is named after it and returns
a list of findings `{"rule", "subject_id", "detail"}` (empty when all is well); the helpers
beside them (`career_executives`, `rating_distribution`, `cites`,
`rat_10_former_appraisals`) pick the facts a rule counts. RET-1 is enforced by the store
(nothing is ever deleted), so it has no finding here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, TypedDict

from ledger.policies import get_policy
from ledger.policies.common import cited_subparts, days_phrase
from ledger.policies.removal import RemovalHistory, RemovalWindow

#: PER-5: details this long (days, both ends counted) need a written appraisal.
PER_5_DETAIL_DAYS = 120
#: RAT-9: the cap applies only where at least this many career executives were rated.
RAT_9_MINIMUM_CAREER_RATED = 5


class Finding(TypedDict):
    rule: str
    subject_id: str
    detail: str


def _finding(rule: str, subject_id: str, detail: str) -> Finding:
    return {"rule": rule, "subject_id": subject_id, "detail": detail}


# --- Plans -----------------------------------------------------------------------------------


def plan_1(appraisal_id: str, *, period_start: date, communicated_on: date) -> list[Finding]:
    """PLAN-1: the plan is communicated on or before the period start."""
    if communicated_on <= period_start:
        return []
    late = days_phrase((communicated_on - period_start).days)
    return [
        _finding(
            "PLAN-1",
            appraisal_id,
            f"the plan was communicated on {communicated_on}, {late} after the period "
            f"began on {period_start}",
        )
    ]


def _plan_content(
    rule: str, appraisal_id: str, policy: str, elements: Sequence[Mapping[str, Any]]
) -> list[Finding]:
    rules = get_policy(policy)
    if rule not in rules.flags:
        return []
    return [
        _finding(rule, appraisal_id, detail)
        for found, detail in rules.plan_gaps(elements)
        if found == rule
    ]


def plan_2(
    appraisal_id: str, *, policy: str, elements: Sequence[Mapping[str, Any]]
) -> list[Finding]:
    """PLAN-2 (ses-basic-2012): Results Driven requirements state measures, targets, timelines."""
    return _plan_content("PLAN-2", appraisal_id, policy, elements)


def plan_3(
    appraisal_id: str, *, policy: str, elements: Sequence[Mapping[str, Any]]
) -> list[Finding]:
    """PLAN-3 (ses-2025): Organizational Goals has >= 3 requirements tied to strategic goals."""
    return _plan_content("PLAN-3", appraisal_id, policy, elements)


# --- Period and monitoring -------------------------------------------------------------------


def per_5(
    appraisal_id: str,
    *,
    detail_appraisals: Iterable[Mapping[str, Any]],
    initial_rated_on: date | None,
) -> list[Finding]:
    """PER-5: a detail of 120+ days has a written appraisal considered in the initial rating.

    Details are known to the ledger through their `DetailAppraised` records; a finding is a
    long detail whose appraisal has no written summary or was made after the initial rating
    (so the rating could not consider it). Length counts both the first and last day.
    """
    findings = []
    for detail in detail_appraisals:
        length = (detail["ended_on"] - detail["started_on"]).days + 1
        if length < PER_5_DETAIL_DAYS:
            continue
        where = f"the {length}-day detail at {detail['organization']}"
        if not str(detail.get("summary") or "").strip():
            findings.append(_finding("PER-5", appraisal_id, f"{where} has no written appraisal"))
        if initial_rated_on is not None and detail["appraised_on"] > initial_rated_on:
            findings.append(
                _finding(
                    "PER-5",
                    appraisal_id,
                    f"{where} was appraised on {detail['appraised_on']}, after the initial "
                    f"rating of {initial_rated_on}, which could not consider it",
                )
            )
    return findings


def mon_1(
    appraisal_id: str,
    *,
    policy: str,
    period_start: date,
    period_end: date,
    review_dates: Iterable[date],
    as_of: date,
) -> list[Finding]:
    """MON-1: a progress review in the period (basic) or in each fiscal quarter (ses-2025).

    Only spans that ended before `as_of` are judged (a span still running can get its review);
    a review counts for the span its date falls in. Under ses-2025 a period that starts or
    ends mid-quarter has a partial first or last span, which needs its review too.
    """
    dates = list(review_dates)
    findings = []
    for start, end in get_policy(policy).review_windows(period_start, period_end):
        if end >= as_of or any(start <= day <= end for day in dates):
            continue
        findings.append(
            _finding("MON-1", appraisal_id, f"no progress review between {start} and {end}")
        )
    return findings


def appraisal_findings(
    appraisal_id: str,
    *,
    policy: str,
    period_start: date,
    period_end: date,
    communicated_on: date,
    elements: Sequence[Mapping[str, Any]],
    review_dates: Iterable[date],
    detail_appraisals: Iterable[Mapping[str, Any]],
    initial_rated_on: date | None,
    as_of: date,
) -> list[Finding]:
    """Every flag rule that one appraisal's own records can show (PLAN-1..3, MON-1, PER-5)."""
    return [
        *plan_1(appraisal_id, period_start=period_start, communicated_on=communicated_on),
        *plan_2(appraisal_id, policy=policy, elements=elements),
        *plan_3(appraisal_id, policy=policy, elements=elements),
        *mon_1(
            appraisal_id,
            policy=policy,
            period_start=period_start,
            period_end=period_end,
            review_dates=review_dates,
            as_of=as_of,
        ),
        *per_5(
            appraisal_id, detail_appraisals=detail_appraisals, initial_rated_on=initial_rated_on
        ),
    ]


# --- Rating distribution and pay -------------------------------------------------------------


@dataclass(frozen=True)
class CycleRating:
    """One final rating of an agency's cycle, as RAT-9 and the distribution report need it."""

    appraisal_id: str
    executive_id: str
    policy: str
    level: int
    career: bool


def _high(rating: CycleRating) -> bool:
    return rating.level >= 4


def career_executives(ratings: Sequence[CycleRating]) -> list[CycleRating]:
    """One rating per career executive: the last in `ratings` (given oldest period first,
    then by rating date and log order, so the latest period's), so that an executive with
    two periods in one cycle counts once in the share and in RAT-9, which count
    appointees, not ratings."""
    return list({r.executive_id: r for r in ratings if r.career}.values())


def rating_distribution(ratings: Sequence[CycleRating]) -> dict[str, Any]:
    """`counts` of every final rating by level ("1".."5") and `share_levels_4_5` of career
    appointees, each by their last rating in the cycle (a fraction 0..1, None when no career
    executive was rated)."""
    counts = {str(level): 0 for level in range(1, 6)}
    for rating in ratings:
        counts[str(rating.level)] += 1
    career = career_executives(ratings)
    share = sum(map(_high, career)) / len(career) if career else None
    return {"counts": counts, "share_levels_4_5": share}


def rat_9(
    agency: str, cycle: str, *, ratings: Sequence[CycleRating], waiver_granted: bool
) -> list[Finding]:
    """RAT-9: under ses-2025, at most 30% of >= 5 rated career executives at Levels 4-5.

    Counts executives rated under a capped policy, each by their last such rating in the
    cycle (`career_executives`; filtered first, so that a basic rating later in the cycle does
    not hide a capped one): a cycle may still hold ses-basic-2012 periods (POL-1), whose
    rules prohibit forced distribution, so the sentence names the policy (the
    distribution's share covers every career executive).
    Noncareer executives are out of count and denominator; ses-basic-2012 ratings are never
    counted (forced distribution is prohibited there, so no cap applies). A presidential
    waiver for the agency and cycle suppresses the finding.
    """
    caps = {r.appraisal_id: get_policy(r.policy).rating_cap_percent for r in ratings}
    capped = career_executives([r for r in ratings if caps[r.appraisal_id] is not None])
    if waiver_granted or len(capped) < RAT_9_MINIMUM_CAREER_RATED:
        return []
    cap = min(c for c in (caps[r.appraisal_id] for r in capped) if c is not None)
    high = sum(map(_high, capped))
    if high * 100 <= cap * len(capped):
        return []
    return [
        _finding(
            "RAT-9",
            f"{agency}/{cycle}",
            f"{high} of {len(capped)} career executives ({_over(high, len(capped), cap)}%) "
            f"rated under {', '.join(sorted({r.policy for r in capped}))} are at Levels 4-5 "
            f"in {cycle}; the cap is {cap}% and no presidential waiver is recorded",
        )
    ]


def _over(high: int, total: int, cap: int) -> str:
    """RAT-9: the share in percent, with as many decimals as it takes to show it above the cap
    (7 of 23 is 30.4%, not "30%" beside a 30% cap)."""
    share = 100 * high / total
    for decimals in range(6):
        text = f"{share:.{decimals}f}"
        if float(text) > cap:
            return text
    return text


#: Characters that continue an id (api-contract.md ids: letters, digits, `._:@+-`); `.` and
#: `:` only when an id character follows, so that "cites A-1." ends the sentence, not the id.
_ID_GOES_ON = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@+-")


def cites(narrative: str, appraisal_id: str) -> bool:
    """RAT-10's evidence: whether `narrative` names `appraisal_id` as a whole id, not as
    part of a longer one ("A-1" is not cited by "A-10", nor by "XA-1")."""
    if not appraisal_id:
        return False
    start = narrative.find(appraisal_id)
    while start >= 0:
        end = start + len(appraisal_id)
        if not _continues(narrative, start - 1, -1) and not _continues(narrative, end, 1):
            return True
        start = narrative.find(appraisal_id, start + 1)
    return False


def _continues(text: str, at: int, step: int) -> bool:
    """Whether the character at `at` (reading in the direction `step`) extends an id."""
    if not 0 <= at < len(text):
        return False
    char = text[at]
    if char in _ID_GOES_ON:
        return True
    beyond = at + step
    return char in ".:" and 0 <= beyond < len(text) and text[beyond] in _ID_GOES_ON


def rat_10_former_appraisals(period_start: date, others: Mapping[str, date]) -> list[str]:
    """RAT-10: which of the executive's other appraisals (id: period start) are the former
    agency's for an appraisal whose period starts on `period_start`: those whose period began
    earlier (a transfer during this period came after they began). In `others` order."""
    return [appraisal_id for appraisal_id, start in others.items() if start < period_start]


def rat_10(
    appraisal_id: str,
    *,
    period_start: date,
    initial_rated_on: date,
    narrative: str,
    transfers_effective_on: Iterable[date],
    former_appraisal_ids: Iterable[str],
) -> list[Finding]:
    """RAT-10: a transferred executive's former-agency ratings are considered.

    The ledger's only evidence of consideration is the initial rating's narrative, so the
    finding is: a transfer took effect during the period (up to the initial rating) and the
    narrative cites none of the appraisals from before the transfer.
    """
    former = list(former_appraisal_ids)
    moved = [d for d in transfers_effective_on if period_start <= d <= initial_rated_on]
    if not moved or not former or any(cites(narrative, a) for a in former):
        return []
    return [
        _finding(
            "RAT-10",
            appraisal_id,
            f"the executive transferred on {max(moved)}; the initial rating cites none of the "
            f"former agency's appraisals ({', '.join(former)})",
        )
    ]


def rat_11(
    appraisal_id: str, *, policy: str, level: int, pay_increase_percent: float
) -> list[Finding]:
    """RAT-11 (ses-2025): pay increases above 5% of base pay only for Levels 4-5.

    No contract event records pay yet; this is ready for the one that will.
    """
    cap = get_policy(policy).pay_increase_cap_percent
    if cap is None or level >= 4 or pay_increase_percent <= cap:
        return []
    return [
        _finding(
            "RAT-11",
            appraisal_id,
            f"a {pay_increase_percent}% pay increase at Level {level}; above {cap}% needs "
            "Level 4 or 5",
        )
    ]


# --- Poor performance and removal ------------------------------------------------------------


def rem_1(executive_id: str, history: RemovalHistory) -> list[Finding]:
    """REM-1: a Level 1 final rating awaits reassignment, transfer or removal."""
    if not history.level1_action_due:
        return []
    return [
        _finding(
            "REM-1",
            executive_id,
            f"a Level 1 final rating has had no reassignment, transfer, demotion or removal "
            f"by {history.as_of} (window measure: {history.window_measure})",
        )
    ]


def _removal_due(
    executive_id: str, history: RemovalHistory, window: RemovalWindow
) -> list[Finding]:
    if not window.removal_required or window.triggered_on is None:
        return []
    triggered_on = window.triggered_on
    if any(a.action == "removal" and a.notice_on >= triggered_on for a in history.actions):
        return []
    return [
        _finding(
            window.rule,
            executive_id,
            f"removal from the SES is required since the final rating of {triggered_on} and "
            f"none is recorded by {history.as_of} (window measure: {history.window_measure})",
        )
    ]


def rem_2(executive_id: str, history: RemovalHistory) -> list[Finding]:
    """REM-2: two final ratings below Level 3 within three years and no removal since."""
    return _removal_due(executive_id, history, history.three_year)


def rem_3(executive_id: str, history: RemovalHistory) -> list[Finding]:
    """REM-3: two final Level 1 ratings within five years and no removal since."""
    return _removal_due(executive_id, history, history.five_year)


def removal_findings(executive_id: str, history: RemovalHistory) -> list[Finding]:
    """REM-1, REM-2 and REM-3 for one executive's removal history."""
    return [
        *rem_1(executive_id, history),
        *rem_2(executive_id, history),
        *rem_3(executive_id, history),
    ]


def rem_6(
    executive_id: str, *, is_career: bool, actions: Iterable[Mapping[str, Any]]
) -> list[Finding]:
    """REM-6: a career appointee's removal records whether 5 CFR 359 subpart G placement applies.

    The record is the action's `authority`: a removal whose authority does not cite
    subpart G (guaranteed placement) is a finding, so a person checks and records it.
    """
    if not is_career:
        return []
    return [
        _finding(
            "REM-6",
            executive_id,
            f"the removal noticed on {a['notice_on']} records no decision on guaranteed "
            "placement under 5 CFR 359 subpart G",
        )
        for a in actions
        if a["action"] == "removal" and "G" not in cited_subparts(str(a.get("authority") or ""))
    ]
