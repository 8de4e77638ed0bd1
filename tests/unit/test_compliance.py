"""Findings for the *flag* rules: recorded actions that a compliance report must show."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from ledger.policies.compliance import (
    CycleRating,
    appraisal_findings,
    mon_1,
    per_5,
    plan_1,
    plan_2,
    plan_3,
    rat_9,
    rat_10,
    rat_10_former_appraisals,
    rat_11,
    rating_distribution,
    rem_6,
    removal_findings,
)
from ledger.policies.removal import APPRAISAL_CYCLE, FinalRating, PersonnelAction, removal_history
from tests.unit.domain_builders import (
    BASIC,
    BASIC_WEIGHTS,
    SES_2025,
    SES_2025_WEIGHTS,
    elements,
    planned,
    rated,
    reviewed,
)


def _rules(findings: list[Any]) -> list[str]:
    return [f["rule"] for f in findings]


# --- PLAN-1..3 ----


@pytest.mark.parametrize(
    ("communicated_on", "count"), [(date(2023, 10, 1), 0), (date(2023, 10, 2), 1)]
)
def test_plan_1_plan_communicated_by_the_period_start(communicated_on: date, count: int) -> None:
    findings = plan_1("A1", period_start=date(2023, 10, 1), communicated_on=communicated_on)
    assert len(findings) == count
    if count:
        assert findings[0] == {
            "rule": "PLAN-1",
            "subject_id": "A1",
            "detail": "the plan was communicated on 2023-10-02, 1 day after the period began "
            "on 2023-10-01",
        }


def test_plan_2_results_driven_requirements_basic_only() -> None:
    vague = elements(BASIC_WEIGHTS, {"results_driven": ["Be results driven"]})
    assert _rules(plan_2("A1", policy=BASIC, elements=vague)) == ["PLAN-2"]
    assert plan_2("A1", policy=BASIC, elements=elements(BASIC_WEIGHTS)) == []
    assert plan_2("A1", policy=SES_2025, elements=elements(SES_2025_WEIGHTS, {})) == []


def test_plan_3_organizational_goals_2025_only() -> None:
    thin = elements(SES_2025_WEIGHTS, {"organizational_goals": ["Strategic Goal 1: x"]})
    findings = plan_3("A1", policy=SES_2025, elements=thin)
    assert _rules(findings) == ["PLAN-3"]
    assert "has 1 performance requirements" in findings[0]["detail"]
    assert plan_3("A1", policy=SES_2025, elements=elements(SES_2025_WEIGHTS)) == []
    assert plan_3("A1", policy=BASIC, elements=elements(BASIC_WEIGHTS, {})) == []


# --- PER-5 ----


def _detail(
    days: int, *, summary: str = "Led the review.", appraised_on: date | None = None
) -> dict[str, Any]:
    start = date(2024, 1, 1)
    end = start + timedelta(days=days - 1)
    return {
        "organization": "OMB",
        "started_on": start,
        "ended_on": end,
        "appraised_on": appraised_on or end,
        "level": 4,
        "summary": summary,
    }


@pytest.mark.parametrize(
    ("detail", "initial_rated_on", "count"),
    [
        (_detail(120), date(2024, 10, 15), 0),
        (_detail(119, summary=""), date(2024, 10, 15), 0),  # under 120 days: no duty
        (_detail(120, summary=" "), date(2024, 10, 15), 1),  # no written appraisal
        (_detail(120, appraised_on=date(2024, 10, 16)), date(2024, 10, 15), 1),  # too late
        (_detail(120, appraised_on=date(2024, 10, 16)), None, 0),  # not yet rated
    ],
)
def test_per_5_long_details_appraised_in_writing_before_the_rating(
    detail: dict[str, Any], initial_rated_on: date | None, count: int
) -> None:
    findings = per_5("A1", detail_appraisals=[detail], initial_rated_on=initial_rated_on)
    assert _rules(findings) == ["PER-5"] * count


# --- MON-1 ----

FY2024 = {"period_start": date(2023, 10, 1), "period_end": date(2024, 9, 30)}
FY2026 = {"period_start": date(2025, 10, 1), "period_end": date(2026, 9, 30)}


@pytest.mark.parametrize(
    ("reviews", "as_of", "count"),
    [
        ([], date(2024, 10, 1), 1),
        ([], date(2024, 9, 30), 0),  # the period has not ended yet
        ([date(2024, 3, 1)], date(2024, 10, 1), 0),
        ([date(2023, 9, 30)], date(2024, 10, 1), 1),  # before the period: does not count
    ],
)
def test_mon_1_basic_one_review_per_period(reviews: list[date], as_of: date, count: int) -> None:
    findings = mon_1("A1", policy=BASIC, review_dates=reviews, as_of=as_of, **FY2024)
    assert _rules(findings) == ["MON-1"] * count


def test_mon_1_2025_one_review_per_quarter() -> None:
    reviews = [date(2025, 11, 1), date(2026, 2, 1), date(2026, 8, 1)]
    findings = mon_1("A1", policy=SES_2025, review_dates=reviews, as_of=date(2026, 10, 1), **FY2026)
    assert [f["detail"] for f in findings] == [
        "no progress review between 2026-04-01 and 2026-06-30"
    ]


@pytest.mark.parametrize(
    ("reviews", "missing"),
    [
        ([date(2025, 12, 31), date(2026, 3, 31), date(2026, 6, 30), date(2026, 9, 30)], []),
        ([date(2025, 10, 1), date(2026, 1, 1), date(2026, 4, 1), date(2026, 7, 1)], []),
        # the last day of a quarter counts for it, not for the next
        ([date(2025, 12, 31), date(2026, 4, 1), date(2026, 6, 30), date(2026, 9, 30)], ["01-01"]),
        # a review after the period's last day counts for no quarter of it
        ([date(2025, 12, 31), date(2026, 3, 31), date(2026, 6, 30), date(2026, 10, 1)], ["07-01"]),
    ],
)
def test_mon_1_2025_quarter_edges(reviews: list[date], missing: list[str]) -> None:
    findings = mon_1("A1", policy=SES_2025, review_dates=reviews, as_of=date(2026, 10, 2), **FY2026)
    assert [f["detail"].split()[4] for f in findings] == [f"2026-{m}" for m in missing]


def test_mon_1_2025_judges_only_quarters_ended_by_as_of() -> None:
    findings = mon_1("A1", policy=SES_2025, review_dates=[], as_of=date(2026, 3, 31), **FY2026)
    assert [f["detail"] for f in findings] == [
        "no progress review between 2025-10-01 and 2025-12-31"
    ]


def test_appraisal_findings_from_an_appraisal_aggregate() -> None:
    """What a projection does with one appraisal's records (plain values only)."""
    appraisal = rated(reviewed(planned(communicated_on=date(2023, 10, 5))))
    assert appraisal.initial_rating is not None
    findings = appraisal_findings(
        appraisal.id,
        policy=appraisal.policy,
        period_start=appraisal.period_start,
        period_end=appraisal.period_end,
        communicated_on=appraisal.communicated_on,
        elements=appraisal.elements,
        review_dates=[r["reviewed_on"] for r in appraisal.progress_reviews],
        detail_appraisals=appraisal.detail_appraisals,
        initial_rated_on=appraisal.initial_rating["rated_on"],
        as_of=date(2025, 1, 1),
    )
    assert _rules(findings) == ["PLAN-1"]


# --- RAT-9 and the distribution ----


def _ratings(
    high: int, total: int, *, career: bool = True, policy: str = SES_2025, prefix: str = "C"
) -> list[CycleRating]:
    return [
        CycleRating(f"A-{prefix}{i}", f"{prefix}{i}", policy, 4 if i < high else 3, career)
        for i in range(total)
    ]


@pytest.mark.parametrize(
    ("ratings", "waiver", "count"),
    [
        (_ratings(3, 10), False, 0),  # exactly 30%
        (_ratings(2, 5), False, 1),  # 40% of 5
        (_ratings(4, 4), False, 0),  # fewer than 5 career executives
        (_ratings(1, 5) + _ratings(3, 3, career=False, prefix="N"), False, 0),  # noncareer out
        (_ratings(2, 5), True, 0),  # presidential waiver
        (_ratings(5, 5, policy=BASIC), False, 0),  # basic: forced distribution prohibited
    ],
)
def test_rat_9_thirty_percent_cap(ratings: list[CycleRating], waiver: bool, count: int) -> None:
    findings = rat_9("DOE", "FY2026", ratings=ratings, waiver_granted=waiver)
    assert _rules(findings) == ["RAT-9"] * count
    if count:
        assert findings[0]["subject_id"] == "DOE/FY2026"
        assert findings[0]["detail"].startswith(
            "2 of 5 career executives (40%) rated under ses-2025 are at Levels 4-5 in FY2026"
        )


@pytest.mark.parametrize(
    ("high", "total", "shown"), [(7, 23, "30.4%"), (61, 203, "30.05%"), (4, 13, "31%")]
)
def test_rat_9_share_is_never_shown_at_the_cap(high: int, total: int, shown: str) -> None:
    """RAT-9: a share just above 30% is not rounded to "30%" beside "the cap is 30%" (a
    finding's sentence must be true)."""
    findings = rat_9("DOE", "FY2026", ratings=_ratings(high, total), waiver_granted=False)
    assert findings[0]["detail"].startswith(f"{high} of {total} career executives ({shown})")


def test_rat_9_counts_executives_not_ratings() -> None:
    """Four executives, one rated twice in the cycle (two ses-2025 periods): below the five
    executives RAT-9 needs, though five ratings; the counts still show every rating, the
    share each executive's last rating."""
    ratings = _ratings(0, 4)
    twice = [
        CycleRating("A-C0-first", "C0", SES_2025, 4, True),
        CycleRating("A-C0-second", "C0", SES_2025, 4, True),
    ]
    assert rat_9("DOE", "FY2026", ratings=twice + ratings[1:], waiver_granted=False) == []
    assert rating_distribution(twice + ratings[1:]) == {
        "counts": {"1": 0, "2": 0, "3": 3, "4": 2, "5": 0},
        "share_levels_4_5": 0.25,
    }
    # with a fifth executive the cap applies: 2 of 5 at Levels 4-5 by their last rating
    fifth = CycleRating("A-C9", "C9", SES_2025, 4, True)
    findings = rat_9("DOE", "FY2026", ratings=[*twice, *ratings[1:], fifth], waiver_granted=False)
    assert findings[0]["detail"].startswith("2 of 5 career executives (40%)")
    # the last rating of the cycle is the one counted
    later = CycleRating("A-C0-third", "C0", SES_2025, 3, True)
    assert (
        rat_9("DOE", "FY2026", ratings=[*twice, *ratings[1:], fifth, later], waiver_granted=False)
        == []
    )


def test_rat_9_a_basic_rating_logged_later_does_not_hide_a_capped_one() -> None:
    """E9 rated at Level 5 under ses-2025, then under ses-basic-2012 (logged later) in the
    same cycle: still 2 of 5 capped executives at Levels 4-5, whatever the log order."""
    others = [CycleRating("A-E0", "E0", SES_2025, 5, True)] + [
        CycleRating(f"A-E{i}", f"E{i}", SES_2025, 3, True) for i in range(1, 4)
    ]
    capped = CycleRating("A-E9-2025", "E9", SES_2025, 5, True)
    basic = CycleRating("A-E9-basic", "E9", BASIC, 3, True)
    for order in ([capped, basic], [basic, capped]):
        findings = rat_9("DOE", "FY2026", ratings=[*others, *order], waiver_granted=False)
        assert findings[0]["detail"].startswith("2 of 5 career executives (40%)"), order


def test_rating_distribution_counts_all_and_shares_career_only() -> None:
    ratings = _ratings(1, 4) + _ratings(2, 2, career=False, prefix="N")
    assert rating_distribution(ratings) == {
        "counts": {"1": 0, "2": 0, "3": 3, "4": 3, "5": 0},
        "share_levels_4_5": 0.25,
    }
    assert rating_distribution([])["share_levels_4_5"] is None


# --- RAT-10, RAT-11 ----


@pytest.mark.parametrize(
    ("narrative", "transfers", "count"),
    [
        ("Considered A-2023-E1 from the former agency.", [date(2024, 2, 1)], 0),
        ("Strong year.", [date(2024, 2, 1)], 1),
        ("Strong year.", [date(2023, 2, 1)], 0),  # transferred before this period
        ("Strong year.", [date(2023, 9, 30)], 0),  # the day before the period starts
        ("Strong year.", [date(2023, 10, 1)], 1),  # on the period's first day
        ("Strong year.", [date(2024, 10, 15)], 1),  # on the day of the initial rating
        ("Strong year.", [date(2024, 10, 16)], 0),  # after it: the rating could not know
        ("Strong year.", [], 0),
        # the id as a whole, not inside a longer one (A-2023-E1 is not A-2023-E10)
        ("Considered A-2023-E10 and XA-2023-E1.", [date(2024, 2, 1)], 1),
        ("Considered A-2023-E1.5 only.", [date(2024, 2, 1)], 1),
        ("Considered (A-2023-E1).", [date(2024, 2, 1)], 0),
        ("Considered A-2023-E10, then A-2023-E1.", [date(2024, 2, 1)], 0),
        ("A-2023-E1", [date(2024, 2, 1)], 0),
        # RAT-10: ":" or "." between id characters continues the id (A-2023-E1:2 is another)
        ("Considered A-2023-E1:2 only.", [date(2024, 2, 1)], 1),
        ("Considered X:A-2023-E1 only.", [date(2024, 2, 1)], 1),
        ("Considered A-2023-E1: a fair rating.", [date(2024, 2, 1)], 0),
    ],
)
def test_rat_10_former_agency_ratings_considered(
    narrative: str, transfers: list[date], count: int
) -> None:
    findings = rat_10(
        "A-2024-E1",
        period_start=date(2023, 10, 1),
        initial_rated_on=date(2024, 10, 15),
        narrative=narrative,
        transfers_effective_on=transfers,
        former_appraisal_ids=["A-2023-E1"],
    )
    assert _rules(findings) == ["RAT-10"] * count


@pytest.mark.parametrize(
    ("policy", "level", "percent", "count"),
    [(SES_2025, 3, 5.0, 0), (SES_2025, 3, 5.5, 1), (SES_2025, 4, 9.0, 0), (BASIC, 3, 9.0, 0)],
)
def test_rat_11_large_pay_increases_only_for_levels_4_5(
    policy: str, level: int, percent: float, count: int
) -> None:
    findings = rat_11("A1", policy=policy, level=level, pay_increase_percent=percent)
    assert _rules(findings) == ["RAT-11"] * count


def test_rat_10_former_appraisals_began_before_this_period() -> None:
    """RAT-10: an appraisal whose period began the day before this one's is the former
    agency's; one that began the same day (or later) is not. `others` order is kept."""
    others = {
        "A-later": date(2024, 10, 1),
        "A-day-before": date(2023, 9, 30),
        "A-same-day": date(2023, 10, 1),
        "A-2022": date(2021, 10, 1),
    }
    assert rat_10_former_appraisals(date(2023, 10, 1), others) == ["A-day-before", "A-2022"]
    assert rat_10_former_appraisals(date(2023, 10, 1), {}) == []


def test_rat_10_no_finding_without_former_agency_appraisals() -> None:
    """RAT-10: a transfer with no former-agency appraisal on record has nothing to cite."""
    findings = rat_10(
        "A-2024-E1",
        period_start=date(2023, 10, 1),
        initial_rated_on=date(2024, 10, 15),
        narrative="Strong year.",
        transfers_effective_on=[date(2024, 2, 1)],
        former_appraisal_ids=[],
    )
    assert findings == []


# --- REM-1..3, REM-6 ----


def test_rem_1_2_3_findings_name_the_window_measure() -> None:
    ratings = [
        FinalRating("A-2023", 1, date(2023, 12, 1), date(2023, 9, 30)),
        FinalRating("A-2024", 1, date(2024, 12, 1), date(2024, 9, 30)),
    ]
    for measure in ("rating-date", APPRAISAL_CYCLE):
        history = removal_history(ratings, [], as_of=date(2025, 1, 1), window_measure=measure)
        findings = removal_findings("E1", history)
        assert _rules(findings) == ["REM-1", "REM-2", "REM-3"]
        assert all(f"(window measure: {measure})" in f["detail"] for f in findings)
        assert all(f["subject_id"] == "E1" for f in findings)


def test_rem_findings_cleared_by_the_actions_they_require() -> None:
    ratings = [
        FinalRating("A-2023", 2, date(2023, 12, 1)),
        FinalRating("A-2024", 1, date(2024, 12, 1)),
    ]
    reassigned = [PersonnelAction("reassignment", date(2024, 12, 10))]
    history = removal_history(ratings, reassigned, as_of=date(2025, 1, 1))
    assert _rules(removal_findings("E1", history)) == ["REM-2"]  # REM-1 answered, removal due
    removed = [PersonnelAction("removal", date(2024, 12, 10), date(2025, 1, 10))]
    assert removal_findings("E1", removal_history(ratings, removed, as_of=date(2025, 1, 1))) == []


def test_rem_2_removal_before_the_trigger_does_not_count() -> None:
    ratings = [
        FinalRating("A-2023", 2, date(2023, 12, 1)),
        FinalRating("A-2024", 2, date(2024, 12, 1)),
    ]
    early = [PersonnelAction("removal", date(2024, 1, 10))]
    history = removal_history(ratings, early, as_of=date(2025, 1, 1))
    assert _rules(removal_findings("E1", history)) == ["REM-2"]


@pytest.mark.parametrize(("rule", "level"), [("REM-2", 2), ("REM-3", 1)])
def test_rem_2_3_removal_noticed_on_the_trigger_day_answers_it(rule: str, level: int) -> None:
    """REM-2/REM-3: a removal noticed on the very day of the triggering final rating counts
    (the day before does not)."""
    ratings = [
        FinalRating("A-2023", level, date(2023, 12, 1)),
        FinalRating("A-2024", level, date(2024, 12, 1)),
    ]
    for notice_on, due in ((date(2024, 12, 1), False), (date(2024, 11, 30), True)):
        removed = [PersonnelAction("removal", notice_on, date(2025, 1, 10))]
        history = removal_history(ratings, removed, as_of=date(2025, 1, 1))
        assert (rule in _rules(removal_findings("E1", history))) is due


@pytest.mark.parametrize(
    ("is_career", "authority", "count"),
    [
        (True, "5 CFR 359 subpart E", 1),
        (True, "5 CFR 359 subpart E; placement under 5 CFR 359 subpart G", 0),
        (False, "5 U.S.C. 3592(b)", 0),
        (True, "5 CFR 359.502; placement under 5 CFR 359.701", 0),  # 359.7xx: subpart G
        (True, "5 CFR 359.502; 5 CFR 752.701", 1),  # not part 359's subpart G
        (True, "5 CFR 752 subpart G", 1),  # REM-6: a subpart G, but not of part 359
    ],
)
def test_rem_6_guaranteed_placement_recorded(is_career: bool, authority: str, count: int) -> None:
    actions = [
        {"action": "removal", "notice_on": date(2025, 1, 2), "authority": authority},
        {"action": "reassignment", "notice_on": date(2024, 1, 2), "authority": ""},
    ]
    assert _rules(rem_6("E1", is_career=is_career, actions=actions)) == ["REM-6"] * count
