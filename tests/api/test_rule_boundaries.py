"""Every enforced rule of rules.md at its boundary, through the HTTP API: the last value
accepted (201) and the first refused (422 `rule-violation` with the rule's ID and a sentence
naming the values, nothing appended); and flag rules at theirs, in the compliance report.

The unit tests hold the same boundaries on the policy functions; these hold the whole path
(body parsing, dates, the facts the ledger looks up, the problem document).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from ledger.policies.ses_2025 import ELEMENT_CODES as SES_2025_CODES
from tests.api import story as s
from tests.api.story import Api

BASIC_CODES = [str(e["code"]) for e in s.BASIC_ELEMENTS]
CODES_2025 = list(SES_2025_CODES)
GOALS = ["Strategic Goal 1: a", "Strategic Goal 2: b", "Strategic Goal 3: c"]


def _elements(codes: list[str], weights: tuple[int, ...]) -> list[dict[str, Any]]:
    return [
        {"code": code, "weight": weight, "requirements": GOALS}
        for code, weight in zip(codes, weights, strict=True)
    ]


def _refused(api: Api, path: str, body: dict[str, Any], rule: str, *words: str) -> str:
    """POST refused with `rule`; nothing appended; returns the problem's detail."""
    size = api.ledger_size()
    r = api.post(path, body)
    assert r.status_code == 422, r.text
    problem: dict[str, Any] = r.json()
    assert problem["type"] == "urn:ses-ledger:problem:rule-violation"
    assert problem["rule"] == rule, problem
    detail: str = problem["detail"]
    for word in words:
        assert word in detail, (word, detail)
    assert api.ledger_size() == size
    return detail


def _plan(api: Api, **overrides: Any) -> dict[str, Any]:
    return s.plan(s.unique("A-"), api.new_executive(), 2024) | overrides


def _boundary(
    api: Api, path: str, ok: dict[str, Any], bad: dict[str, Any], rule: str, *words: str
) -> None:
    """`bad` is refused with `rule` (first, so that it cannot be a duplicate of `ok`)."""
    _refused(api, path, bad, rule, *words)
    api.ok(path, ok)


# --- WT-1 .. WT-6 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "ok", "bad", "rule", "words"),
    [
        # basic: leading_change, leading_people, business_acumen, building_coalitions, RD
        ("ses-basic-2012", (15, 15, 15, 15, 40), (15, 15, 15, 16, 40), "WT-1", ["sum to 101"]),
        ("ses-basic-2012", (20, 20, 20, 20, 20), (20, 20, 20, 21, 19), "WT-2", ["weighs 19"]),
        ("ses-basic-2012", (5, 20, 20, 20, 35), (4, 20, 20, 20, 36), "WT-3", ["weighs 4"]),
        ("ses-basic-2012", (21, 20, 20, 18, 21), (22, 20, 20, 17, 21), "WT-4", ["22", "(21)"]),
        # 2025: faithful administration, efficiency, merit, accountability, goals
        ("ses-2025", (25, 15, 15, 15, 30), (24, 15, 15, 15, 31), "WT-5", ["weighs 24"]),
        ("ses-2025", (40, 15, 15, 15, 15), (41, 14, 15, 15, 15), "WT-6", ["weighs 14"]),
    ],
)
def test_weights_at_their_limits(
    shared_api: Api,
    policy: str,
    ok: tuple[int, ...],
    bad: tuple[int, ...],
    rule: str,
    words: list[str],
) -> None:
    codes = BASIC_CODES if policy == "ses-basic-2012" else CODES_2025
    fy = 2024 if policy == "ses-basic-2012" else 2026
    executive_id = shared_api.new_executive()

    def body(weights: tuple[int, ...]) -> dict[str, Any]:
        plan = s.plan(s.unique("A-"), executive_id, fy, policy=policy)
        return plan | {"elements": _elements(codes, weights)}

    _boundary(shared_api, "/v1/appraisals", body(ok), body(bad), rule, *words)


# --- POL-1, PER-1 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "start", "end", "rule"),
    [
        # POL-1: ses-2025 from periods starting Oct 1 2025; earlier, either policy
        ("ses-basic-2012", date(2025, 9, 30), date(2026, 9, 29), None),
        ("ses-basic-2012", date(2025, 10, 1), date(2026, 9, 30), "POL-1"),
        ("ses-2025", date(2024, 10, 1), date(2025, 9, 30), None),
        ("ses-2025", date(2025, 9, 30), date(2025, 9, 30), "PER-1"),  # ends on its start
        ("ses-2025", date(2025, 9, 1), date(2025, 9, 30), None),  # FY2025, the old cycle
        ("ses-2025", date(2025, 9, 1), date(2025, 10, 1), "PER-1"),  # crosses into FY2026
        # PER-1: at most one year (both ends counted)
        ("ses-basic-2012", date(2024, 3, 1), date(2025, 2, 28), None),
        ("ses-basic-2012", date(2024, 3, 1), date(2025, 3, 1), "PER-1"),
        ("ses-basic-2012", date(2023, 10, 1), date(2024, 9, 30), None),  # a leap year inside
        ("ses-basic-2012", date(2023, 10, 1), date(2024, 10, 1), "PER-1"),
        ("ses-2025", date(2025, 10, 1), date(2026, 9, 30), None),
        ("ses-2025", date(2026, 1, 1), date(2026, 10, 1), "PER-1"),
        ("ses-2025", date(2027, 10, 1), date(2028, 9, 30), None),  # FY2028 holds Feb 29
        ("ses-2025", date(2028, 2, 29), date(2028, 9, 30), None),
        ("ses-2025", date(2028, 2, 29), date(2028, 10, 1), "PER-1"),
        # PER-1 with a Feb 29 start: Feb 29 + 1 year is Feb 28 (docs/api.md), so a year
        # from Feb 29 2024 ends on Feb 27 2025
        ("ses-basic-2012", date(2024, 2, 29), date(2025, 2, 27), None),
        ("ses-basic-2012", date(2024, 2, 29), date(2025, 2, 28), "PER-1"),
        ("ses-basic-2012", date(2024, 2, 28), date(2025, 2, 27), None),
        ("ses-basic-2012", date(2024, 2, 28), date(2025, 2, 28), "PER-1"),
    ],
)
def test_policy_and_period_at_their_limits(
    shared_api: Api, policy: str, start: date, end: date, rule: str | None
) -> None:
    elements = s.BASIC_ELEMENTS
    if policy == "ses-2025":
        elements = _elements(CODES_2025, (30, 15, 15, 15, 25))
    body = _plan(
        shared_api,
        policy=policy,
        period_start=start.isoformat(),
        period_end=end.isoformat(),
        communicated_on=start.isoformat(),
        elements=elements,
    )
    if rule is None:
        created = shared_api.ok("/v1/appraisals", body)
        assert created["event"]["policy"] == policy
    else:
        _refused(shared_api, "/v1/appraisals", body, rule, start.isoformat())


def test_an_appraisal_keeps_the_policy_of_its_plan(shared_api: Api) -> None:
    """A basic period started Sep 30 2025 (POL-1 allows it) is rated in Oct 2026 under the
    basic policy and its five elements, though ses-2025 is then mandatory for new periods."""
    body = _plan(
        shared_api,
        period_start="2025-09-30",
        period_end="2026-09-29",
        communicated_on="2025-09-30",
    )
    shared_api.ok("/v1/appraisals", body)
    path = f"/v1/appraisals/{body['appraisal_id']}"
    shared_api.ok(f"{path}/progress-reviews", s.review(2026))
    rating = s.initial(2026) | {"rated_on": "2026-10-15"}
    created = shared_api.ok(f"{path}/initial-rating", rating)
    assert created["event"]["policy"] == "ses-basic-2012"
    assert created["score"] == 400
    read = shared_api.get(path).json()
    assert read["policy"] == "ses-basic-2012"
    assert [e["code"] for e in read["elements"]] == BASIC_CODES


# --- PER-2, PER-3, PER-4 ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("communicated_on", "start"),
    [
        ("2023-10-01", date(2023, 10, 1)),
        ("2023-11-01", date(2023, 11, 1)),
        ("2023-09-15", date(2023, 10, 1)),  # communicated early: counted from the start
    ],
)
def test_per_2_day_89_and_day_90(shared_api: Api, communicated_on: str, start: date) -> None:
    """Counted from the later of the period start and the plan's communication."""
    body = _plan(shared_api, communicated_on=communicated_on)
    shared_api.ok("/v1/appraisals", body)
    path = f"/v1/appraisals/{body['appraisal_id']}/initial-rating"
    day_89 = s.initial(2024) | {"rated_on": (start + timedelta(days=89)).isoformat()}
    day_90 = s.initial(2024) | {"rated_on": (start + timedelta(days=90)).isoformat()}
    _boundary(shared_api, path, day_90, day_89, "PER-2", "89 days after", start.isoformat())


@pytest.mark.parametrize(
    ("appointment_type", "day_119_refused"), [("career", True), ("noncareer", False)]
)
def test_per_3_day_119_and_day_120_after_inauguration(
    shared_api: Api, appointment_type: str, day_119_refused: bool
) -> None:
    """Initial and final ratings of a career executive, after Jan 20 2025."""
    executive_id = shared_api.new_executive(appointment_type=appointment_type)
    day_119, day_120 = "2025-05-19", "2025-05-20"
    body = s.plan(s.unique("A-"), executive_id, 2025)
    shared_api.ok("/v1/appraisals", body)
    path = f"/v1/appraisals/{body['appraisal_id']}"
    early = s.initial(2025) | {"rated_on": day_119}
    if day_119_refused:
        _boundary(
            shared_api,
            f"{path}/initial-rating",
            s.initial(2025) | {"rated_on": day_120},
            early,
            "PER-3",
            "earliest allowed date is 2025-05-20",
        )
    else:
        shared_api.ok(f"{path}/initial-rating", early)
    # a FY2024 final rating falling in the same transition period
    a = shared_api.appraisal("prb_recommended", executive_id=executive_id, fy=2024)
    final = f"/v1/appraisals/{a.appraisal_id}/final-rating"
    if day_119_refused:
        bad = s.final(2024) | {"rated_on": day_119}
        _boundary(shared_api, final, s.final(2024) | {"rated_on": day_120}, bad, "PER-3")
    else:
        shared_api.ok(final, s.final(2024) | {"rated_on": day_119})


@pytest.mark.parametrize(
    ("policy", "start", "end", "last", "first_refused"),
    [
        # at most one year, both ends counted
        ("ses-basic-2012", "2023-10-01", "2024-06-30", "2024-09-30", "2024-10-01"),
        # ses-2025: within the fiscal year, though under a year
        ("ses-2025", "2026-01-01", "2026-06-30", "2026-09-30", "2026-10-01"),
    ],
)
def test_per_1_holds_for_an_extended_period_end(
    shared_api: Api, policy: str, start: str, end: str, last: str, first_refused: str
) -> None:
    """PER-4 extends the period; PER-1 then holds for the new end (the last day accepted,
    the next refused, nothing appended)."""
    elements = s.BASIC_ELEMENTS
    if policy == "ses-2025":
        elements = _elements(CODES_2025, (30, 15, 15, 15, 25))
    body = _plan(
        shared_api,
        policy=policy,
        period_start=start,
        period_end=end,
        communicated_on=start,
        elements=elements,
    )
    shared_api.ok("/v1/appraisals", body)
    path = f"/v1/appraisals/{body['appraisal_id']}/period-extension"

    def extension(new_end: str) -> dict[str, Any]:
        return {"extended_on": end, "new_period_end": new_end, "reason": "a long detail"}

    _boundary(shared_api, path, extension(last), extension(first_refused), "PER-1", start)


@pytest.mark.parametrize("year", [2017, 2029])
def test_per_3_day_119_and_day_120_after_the_first_and_last_listed_inauguration(
    shared_api: Api, year: int
) -> None:
    """rules.md lists Jan 20 2017, 2021, 2025 and 2029: day 120 is May 20 in each."""
    policy = "ses-basic-2012" if year < 2025 else "ses-2025"
    executive_id = shared_api.new_executive()
    body = s.plan(s.unique("A-"), executive_id, year, policy=policy)
    codes = BASIC_CODES
    if policy == "ses-2025":
        body["elements"] = _elements(CODES_2025, (30, 15, 15, 15, 25))
        codes = CODES_2025
    shared_api.ok("/v1/appraisals", body)
    path = f"/v1/appraisals/{body['appraisal_id']}/initial-rating"

    def rating(day: str) -> dict[str, Any]:
        return s.initial(year) | {"rated_on": day, "element_levels": dict.fromkeys(codes, 4)}

    day_119, day_120 = f"{year}-05-19", f"{year}-05-20"
    _boundary(shared_api, path, rating(day_120), rating(day_119), "PER-3", day_120)


@pytest.mark.parametrize(("end", "performed"), [("2024-10-11", 89), ("2024-10-12", 90)])
def test_per_4_ninety_days_performed_by_the_period_end(
    shared_api: Api, end: str, performed: int
) -> None:
    """Plan communicated Jul 15: Jul 15 .. Oct 12 holds 90 days (both ends), Oct 11 89;
    rated after the end, the shorter period is refused until it is extended."""
    body = _plan(
        shared_api, period_start="2024-07-01", period_end=end, communicated_on="2024-07-15"
    )
    shared_api.ok("/v1/appraisals", body)
    path = f"/v1/appraisals/{body['appraisal_id']}"
    rating = s.initial(2024) | {"rated_on": "2024-11-01"}
    if performed == 90:
        shared_api.ok(f"{path}/initial-rating", rating)
        return
    _refused(shared_api, f"{path}/initial-rating", rating, "PER-4", "holds 89 days", "extend")
    extension = {"extended_on": "2024-10-20", "new_period_end": "2024-10-31", "reason": "PER-4"}
    shared_api.ok(f"{path}/period-extension", extension)
    shared_api.ok(f"{path}/initial-rating", rating)


# --- RAT-4, RAT-7, RAT-8 ----------------------------------------------------------------


def test_rat_4_shared_on_the_day_it_is_written_not_before(shared_api: Api) -> None:
    a = shared_api.appraisal("planned")
    path = f"/v1/appraisals/{a.appraisal_id}/initial-rating"
    before = s.initial(2024) | {"shared_on": "2024-10-14"}
    same_day = s.initial(2024) | {"shared_on": "2024-10-15"}
    _boundary(shared_api, path, same_day, before, "RAT-4", "2024-10-14", "2024-10-15")


@pytest.mark.parametrize("shared_on", ["2024-10-15", "2024-10-18"])
def test_rat_7_day_9_and_day_10_of_the_response_window(shared_api: Api, shared_on: str) -> None:
    """No response and no waiver: the PRB may act from `shared_on` + 10 days."""
    a = shared_api.appraisal("planned")
    path = f"/v1/appraisals/{a.appraisal_id}"
    shared_api.ok(f"{path}/progress-reviews", s.review(2024))
    shared_api.ok(f"{path}/initial-rating", s.initial(2024) | {"shared_on": shared_on})
    shared = date.fromisoformat(shared_on)
    board_id = shared_api.new_board()

    def prb(day: int) -> dict[str, Any]:
        on = (shared + timedelta(days=day)).isoformat()
        return s.prb(2024, board_id, ["initial_rating"]) | {"recommended_on": on}

    opens = (shared + timedelta(days=10)).isoformat()
    _boundary(shared_api, f"{path}/prb-recommendation", prb(10), prb(9), "RAT-7", opens)


def test_rat_8_final_rating_on_the_day_of_the_prb_not_before(shared_api: Api) -> None:
    a = shared_api.appraisal("prb_recommended")  # the PRB recommended on 2024-11-15
    path = f"/v1/appraisals/{a.appraisal_id}/final-rating"
    before = s.final(2024) | {"rated_on": "2024-11-14"}
    same_day = s.final(2024) | {"rated_on": "2024-11-15"}
    _boundary(shared_api, path, same_day, before, "RAT-8", "2024-11-14", "2024-11-15")


# --- PRB-1, PRB-2, PRB-4 ----------------------------------------------------------------


def _board(api: Api, published_on: str, members: dict[str, bool]) -> str:
    board_id = s.unique("PRB-")
    body = s.board(board_id) | {
        "federal_register_published_on": published_on,
        "members": [{"member_id": m, "name": m, "career": c} for m, c in members.items()],
    }
    api.ok("/v1/review-boards", body, api.as_("admin"))
    return board_id


def _prb_path(api: Api) -> str:
    a = api.appraisal("response_closed")
    return f"/v1/appraisals/{a.appraisal_id}/prb-recommendation"


def test_prb_1_two_present_and_three_present(shared_api: Api) -> None:
    board_id = shared_api.new_board()
    body = s.prb(2024, board_id, ["initial_rating"])
    two, three = (
        body | {"members_present": ["M1", "M2"]},
        body | {"members_present": ["M1", "M2", "M3"]},
    )
    _boundary(shared_api, _prb_path(shared_api), three, two, "PRB-1", "2 members were present")


def test_prb_1_a_board_of_two_is_refused_and_three_accepted(shared_api: Api) -> None:
    admin = shared_api.as_("admin")
    two = s.board(s.unique("PRB-")) | {"members": s.board("x")["members"][:2]}
    size = shared_api.ledger_size()
    r = shared_api.post("/v1/review-boards", two, admin)
    assert (r.status_code, r.json()["rule"]) == (422, "PRB-1"), r.text
    assert "2 members" in r.json()["detail"] and shared_api.ledger_size() == size
    three = two | {"members": s.board("x")["members"][:3]}
    shared_api.ok("/v1/review-boards", three, admin)


def test_prb_1_a_member_listed_twice_is_refused_with_its_rule(shared_api: Api) -> None:
    """PRB-1 counts distinct members: M1, M1, M2 is two members, not three. The refusal is
    the rule's (422 `rule-violation`, `rule` PRB-1, naming the member), not a body error
    without the rule: it was answered `invalid-request` "must not repeat an entry"."""
    admin = shared_api.as_("admin")
    members = s.board("x")["members"]
    twice = s.board(s.unique("PRB-")) | {"members": [members[0], members[0], members[1]]}
    _refused_as(shared_api, "/v1/review-boards", twice, admin, "PRB-1", "M1")
    board_id = shared_api.new_board()
    body = s.prb(2024, board_id, ["initial_rating"]) | {"members_present": ["M1", "M1", "M2"]}
    _refused_as(shared_api, _prb_path(shared_api), body, shared_api.hr, "PRB-1", "M1")


def _refused_as(
    api: Api, path: str, body: dict[str, Any], headers: dict[str, str], rule: str, word: str
) -> None:
    size = api.ledger_size()
    r = api.post(path, body, headers)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert (problem["type"], problem.get("rule")) == (
        "urn:ses-ledger:problem:rule-violation",
        rule,
    ), problem
    assert word in problem["detail"] and "more than once" in problem["detail"], problem
    assert api.ledger_size() == size


@pytest.mark.parametrize(
    ("career", "present", "refused"),
    [
        ("career", ["C1", "C2", "N1", "N2"], True),  # exactly half career: not more than half
        ("career", ["C1", "C2", "N1"], False),
        ("noncareer", ["C1", "N1", "N2"], False),  # PRB-2 covers career appointees only
    ],
)
def test_prb_2_exactly_half_career_is_not_more_than_half(
    shared_api: Api, career: str, present: list[str], refused: bool
) -> None:
    members = {"C1": True, "C2": True, "C3": True, "N1": False, "N2": False}
    board_id = _board(shared_api, "2020-06-01", members)
    a = shared_api.appraisal(
        "response_closed", executive_id=shared_api.new_executive(appointment_type=career)
    )
    path = f"/v1/appraisals/{a.appraisal_id}/prb-recommendation"
    body = s.prb(2024, board_id, ["initial_rating"]) | {"members_present": present}
    if refused:
        _refused(shared_api, path, body, "PRB-2", "2 of the 4 members present")
    else:
        shared_api.ok(path, body)


def test_prb_4_published_the_day_before_the_same_day_and_the_day_after(shared_api: Api) -> None:
    """The PRB recommends on 2024-11-15: a board published that day may serve (rules.md:
    the same day is allowed); one published the day after may not."""
    members = {"M1": True, "M2": True, "M3": True}
    later = _board(shared_api, "2024-11-16", members)
    body = s.prb(2024, later, ["initial_rating"])
    path = _prb_path(shared_api)
    _refused(shared_api, path, body, "PRB-4", "2024-11-15", "2024-11-16")
    for published in ("2024-11-15", "2024-11-14"):
        same = _board(shared_api, published, members)
        shared_api.ok(_prb_path(shared_api), s.prb(2024, same, ["initial_rating"]))


# --- REM-4, REM-5, REM-7 ----------------------------------------------------------------


def _action_path(api: Api, **executive: Any) -> str:
    return f"/v1/executives/{api.new_executive(**executive)}/personnel-actions"


@pytest.mark.parametrize(("days", "accepted"), [(29, False), (30, True)])
def test_rem_5_removal_notice_29_and_30_days(shared_api: Api, days: int, accepted: bool) -> None:
    effective = (date(2025, 3, 3) + timedelta(days=days)).isoformat()
    body = s.personnel_action("removal", notice="2025-03-03", effective=effective)
    path = _action_path(shared_api)
    if accepted:
        shared_api.ok(path, body)
    else:
        _refused(shared_api, path, body, "REM-5", "29 days", "at least 30")


@pytest.mark.parametrize(("lead", "accepted"), [(14, False), (15, True)])
def test_rem_7_hearing_request_14_and_15_days_before(
    shared_api: Api, lead: int, accepted: bool
) -> None:
    requested = (date(2025, 4, 10) - timedelta(days=lead)).isoformat()
    body = s.personnel_action("removal", notice="2025-03-03", effective="2025-04-10")
    body["hearing_requested_on"] = requested
    path = _action_path(shared_api)
    if accepted:
        shared_api.ok(path, body)
    else:
        _refused(shared_api, path, body, "REM-7", "14 days", "at least 15")


@pytest.mark.parametrize(
    ("probationary", "authority", "accepted"),
    [
        (False, "5 CFR 359.502", True),
        (False, "5 CFR 359.402", False),
        (True, "5 CFR 359.402", True),
        (True, "5 U.S.C. 3592(a)(1)", True),
        (True, "5 U.S.C. 3592(a)(2)", False),
    ],
)
def test_rem_4_removal_authority_by_section_and_statute(
    shared_api: Api, probationary: bool, authority: str, accepted: bool
) -> None:
    body = s.personnel_action(
        "removal", notice="2025-03-03", effective="2025-04-10", authority=authority
    )
    path = _action_path(shared_api, probationary=probationary)
    if accepted:
        shared_api.ok(path, body)
    else:
        _refused(shared_api, path, body, "REM-4", authority)


# --- flag rules at their boundaries, in the compliance report ---------------------------


def _findings(api: Api, agency: str, subject: str) -> list[str]:
    report = api.get("/v1/reports/compliance", agency=agency).json()
    return sorted(f["rule"] for f in report["findings"] if f["subject_id"] == subject)


def test_plan_1_mon_1_per_5_flags_at_their_limits(shared_api: Api) -> None:
    """PLAN-1: communicated on the period start is on time, a day later is flagged.
    MON-1 (ses-2025): a review on the last day of a quarter counts for it, one on the
    first day of the next does not. PER-5: a detail of 119 days needs no written appraisal
    before the rating, one of 120 days does. Each write is accepted (flags never refuse)."""
    agency = "FLAGS"
    hr = shared_api.as_("hr_app", subject="hr-app-1", agency=agency)

    def appraisal(communicated_on: str, reviews: list[str], detail_days: int) -> str:
        executive_id = shared_api.new_executive(agency=agency)
        appraisal_id = s.unique("A-")
        body = s.plan(appraisal_id, executive_id, 2025, policy="ses-2025")
        body |= {
            "elements": _elements(CODES_2025, (30, 15, 15, 15, 25)),
            "communicated_on": communicated_on,
        }
        shared_api.ok("/v1/appraisals", body, hr)
        path = f"/v1/appraisals/{appraisal_id}"
        for day in reviews:
            shared_api.ok(f"{path}/progress-reviews", s.review(2025) | {"reviewed_on": day}, hr)
        rating = s.initial(2025) | {"element_levels": dict.fromkeys(CODES_2025, 3)}
        shared_api.ok(f"{path}/initial-rating", rating, hr)
        started = date(2024, 12, 1)
        detail = s.detail(2025) | {
            "started_on": started.isoformat(),
            "ended_on": (started + timedelta(days=detail_days - 1)).isoformat(),
            "appraised_on": "2025-10-16",  # after the initial rating of 2025-10-15
        }
        shared_api.ok(f"{path}/detail-appraisals", detail, hr)
        return appraisal_id

    quarter_ends = ["2024-12-31", "2025-03-31", "2025-06-30", "2025-09-30"]
    on_time = appraisal("2024-10-01", quarter_ends, 119)
    assert _findings(shared_api, agency, on_time) == []
    next_day = ["2024-12-31", "2025-04-01", "2025-06-30", "2025-09-30"]  # none Jan-Mar
    late = appraisal("2024-10-02", next_day, 120)
    assert _findings(shared_api, agency, late) == ["MON-1", "PER-5", "PLAN-1"]
    report = shared_api.get("/v1/reports/compliance", agency=agency).json()
    details = {f["rule"]: f["detail"] for f in report["findings"] if f["subject_id"] == late}
    assert details["MON-1"] == "no progress review between 2025-01-01 and 2025-03-31"
    assert "the 120-day detail" in details["PER-5"]
    assert "communicated on 2024-10-02, 1 day after" in details["PLAN-1"]


def _final_2025(api: Api, agency: str, level: int, appointment_type: str = "career") -> None:
    hr = api.as_("hr_app", subject="hr-app-1", agency=agency)
    executive_id = api.new_executive(agency=agency, appointment_type=appointment_type)
    appraisal_id = s.unique("A-")
    path = f"/v1/appraisals/{appraisal_id}"
    body = s.plan(appraisal_id, executive_id, 2026, policy="ses-2025")
    api.ok("/v1/appraisals", body | {"elements": _elements(CODES_2025, (30, 15, 15, 15, 25))}, hr)
    api.ok(f"{path}/progress-reviews", s.review(2026), hr)
    rating = s.initial(2026, level) | {"element_levels": dict.fromkeys(CODES_2025, level)}
    api.ok(f"{path}/initial-rating", rating, hr)
    api.ok(f"{path}/response-waiver", s.response_waiver(2026), hr)
    board_id = api.new_board(agency=agency)
    api.ok(f"{path}/prb-recommendation", s.prb(2026, board_id, ["initial_rating"], level), hr)
    api.ok(f"{path}/final-rating", s.final(2026, level), hr)


def _rat_9(api: Api, agency: str) -> list[str]:
    report = api.get("/v1/reports/rating-distribution", agency=agency, cycle="FY2026").json()
    return [f["detail"] for f in report["findings"] if f["rule"] == "RAT-9"]


def test_rat_9_four_and_five_career_executives_and_the_30_percent_cap(shared_api: Api) -> None:
    """Four career executives all at Level 4: under the five the cap needs (a noncareer
    one at Level 5 does not count). A fifth career one at Level 3 makes 4 of 5 (80%)."""
    agency = "CAP5"
    for _ in range(4):
        _final_2025(shared_api, agency, 4)
    _final_2025(shared_api, agency, 5, appointment_type="noncareer")
    assert _rat_9(shared_api, agency) == []
    _final_2025(shared_api, agency, 3)
    (finding,) = _rat_9(shared_api, agency)
    assert finding.startswith("4 of 5 career executives (80%) rated under ses-2025")


def test_rat_9_exactly_30_percent_and_just_above(shared_api: Api) -> None:
    """3 of 10 career executives at Levels 4-5 is 30%: no finding; 3 of 9 (33.3%) is one."""
    agency = "CAP30"
    for level in (4, 4, 4, 3, 3, 3, 3, 3, 3):
        _final_2025(shared_api, agency, level)
    (finding,) = _rat_9(shared_api, agency)
    assert finding.startswith("3 of 9 career executives (33%)")
    _final_2025(shared_api, agency, 3)
    assert _rat_9(shared_api, agency) == []


# --- RAT-1 .. RAT-3 through the API ---------------------------------------------------------

# Basic weights (WT-2..WT-4 hold: Results Driven 40 is the heaviest, every other >= 5) whose
# scores step by one point, so that each cut-off of RAT-3 and the score below it are reachable.
CUT_OFF_WEIGHTS = (5, 6, 20, 29, 40)


@pytest.mark.parametrize(
    ("levels", "score", "summary_level"),
    [
        ((4, 5, 4, 5, 5), 475, 5),
        ((5, 4, 4, 5, 5), 474, 4),
        ((3, 3, 4, 3, 5), 400, 4),
        ((2, 4, 3, 5, 4), 399, 3),
        ((2, 2, 3, 2, 4), 300, 3),
        ((2, 4, 2, 5, 2), 299, 2),
        ((2, 2, 2, 2, 2), 200, 2),
        ((5, 5, 5, 5, 1), 300, 1),  # RAT-2: a Level 1 element, whatever the score (L1 = 0)
        ((1, 5, 5, 5, 5), 475, 1),
    ],
)
def test_rat_3_summary_level_at_each_score_cut_off(
    shared_api: Api, levels: tuple[int, ...], score: int, summary_level: int
) -> None:
    """rules.md RAT-1..RAT-3 (seed 003 section 9): points L5=5 .. L2=2, L1=0; 475-500 Level 5,
    400-474 Level 4, 300-399 Level 3, 200-299 Level 2; any element at Level 1 is Level 1.
    The derived score and level come back on the write and are kept on the appraisal."""
    body = _plan(shared_api, elements=_elements(BASIC_CODES, CUT_OFF_WEIGHTS))
    shared_api.ok("/v1/appraisals", body)
    path = f"/v1/appraisals/{body['appraisal_id']}"
    shared_api.ok(f"{path}/progress-reviews", s.review(2024))
    element_levels = dict(zip(BASIC_CODES, levels, strict=True))
    created = shared_api.ok(
        f"{path}/initial-rating", s.initial(2024) | {"element_levels": element_levels}
    )
    assert (created["score"], created["summary_level"]) == (score, summary_level)
    read = shared_api.get(path).json()["initial_rating"]
    assert (read["score"], read["summary_level"]) == (score, summary_level)


# --- REM-2, REM-3 with ratings on Feb 29 --------------------------------------------------


def _final_on(api: Api, executive_id: str, rated_on: date, level: int) -> str:
    """A basic appraisal of `executive_id` whose final rating (`level`) is dated `rated_on`:
    its period ends a month before, the initial rating and a waived response 10 days before."""
    appraisal_id = s.unique("A-")
    end = rated_on - timedelta(days=30)
    start = end - timedelta(days=200)
    initial_on = (rated_on - timedelta(days=10)).isoformat()
    path = f"/v1/appraisals/{appraisal_id}"
    plan = s.plan(appraisal_id, executive_id, 2024)
    plan |= {
        "period_start": start.isoformat(),
        "period_end": end.isoformat(),
        "communicated_on": start.isoformat(),
    }
    api.ok("/v1/appraisals", plan)
    review = s.review(2024) | {"reviewed_on": (start + timedelta(days=30)).isoformat()}
    api.ok(f"{path}/progress-reviews", review)
    rating = s.initial(2024, level) | {"rated_on": initial_on}
    api.ok(f"{path}/initial-rating", rating)
    api.ok(f"{path}/response-waiver", {"waived_on": initial_on})
    board_id = _board(api, "2015-01-05", {"M1": True, "M2": True, "M3": True})
    prb = s.prb(2024, board_id, ["initial_rating"], level)
    api.ok(f"{path}/prb-recommendation", prb | {"recommended_on": initial_on})
    api.ok(f"{path}/final-rating", s.final(2024, level) | {"rated_on": rated_on.isoformat()})
    return appraisal_id


@pytest.mark.parametrize(
    ("level", "first", "second", "required"),
    [
        # REM-2: Feb 29 2020 + 3 years is Feb 28 2023 (inclusive); Mar 1 2023 is a day more
        (2, date(2020, 2, 29), date(2023, 2, 28), True),
        (2, date(2020, 2, 29), date(2023, 3, 1), False),
        # REM-2: the later rating on Feb 29 2024; Feb 28 2021 + 3 years is Feb 28 2024
        (2, date(2021, 2, 28), date(2024, 2, 29), False),
        (2, date(2021, 3, 1), date(2024, 2, 29), True),
        # REM-3: two Level 1 ratings, Feb 29 2020 + 5 years is Feb 28 2025
        (1, date(2020, 2, 29), date(2025, 2, 28), True),
        (1, date(2020, 2, 29), date(2025, 3, 1), False),
    ],
)
def test_rem_2_rem_3_with_a_rating_on_feb_29(
    shared_api: Api, level: int, first: date, second: date, required: bool
) -> None:
    """rules.md REM-2/REM-3 by rating date, both ends inclusive, through the removal history:
    as of the second rating's day, the first is in the window exactly when the pair counts.
    (A noncareer executive: PER-3 would refuse a career one's rating of Feb 2025.)"""
    executive_id = shared_api.new_executive(appointment_type="noncareer")
    first_id = _final_on(shared_api, executive_id, first, level)
    second_id = _final_on(shared_api, executive_id, second, level)
    path = f"/v1/executives/{executive_id}/removal-history"
    history = shared_api.get(path, as_of=second.isoformat()).json()
    window = history["three_year" if level == 2 else "five_year"]
    assert window["rule"] == ("REM-2" if level == 2 else "REM-3")
    assert window["removal_required"] is required
    assert window["triggered_on"] == (second.isoformat() if required else None)
    listed = [r["appraisal_id"] for r in window["ratings"]]
    assert listed == ([first_id, second_id] if required else [second_id])
    # the day before the second rating, only the first counts
    before = shared_api.get(path, as_of=(second - timedelta(days=1)).isoformat()).json()
    assert before["three_year" if level == 2 else "five_year"]["removal_required"] is False


def test_windows_as_of_feb_29_begin_on_mar_1(shared_api: Api) -> None:
    """docs/api.md, Removal history: as of D = Feb 29 2024, D - 3 years (and - 5 years) is
    Mar 1; the REM-2 and REM-3 windows include it, [D - N years, D], and the
    below-Fully-Successful report leaves it out, (D - 3 years, D] (api-contract.md, Reads)."""
    executive_id = shared_api.new_executive(appointment_type="noncareer")
    low = {
        day: _final_on(shared_api, executive_id, day, 2)
        for day in (date(2021, 2, 28), date(2021, 3, 1), date(2021, 3, 2))
    }
    level1 = {
        day: _final_on(shared_api, executive_id, day, 1)
        for day in (date(2019, 2, 28), date(2019, 3, 1))
    }
    as_of = "2024-02-29"
    history = shared_api.get(f"/v1/executives/{executive_id}/removal-history", as_of=as_of).json()
    assert history["window_measure"] == "rating-date"
    three = [r["appraisal_id"] for r in history["three_year"]["ratings"]]
    assert three == [low[date(2021, 3, 1)], low[date(2021, 3, 2)]]
    five = [r["appraisal_id"] for r in history["five_year"]["ratings"]]
    assert five == [level1[date(2019, 3, 1)]]
    report = shared_api.get("/v1/reports/below-fully-successful", as_of=as_of).json()
    (listed,) = [e for e in report["executives"] if e["executive_id"] == executive_id]
    assert [r["appraisal_id"] for r in listed["ratings"]] == [low[date(2021, 3, 2)]]


# --- RAT-9 with six career executives -------------------------------------------------------


def test_rat_9_one_and_two_of_six_career_executives(shared_api: Api) -> None:
    """30% of 6 is 1.8: one career executive at Levels 4-5 is within the cap (16.7%), two
    are over it (33.3%). Noncareer ones at Level 5 are out of count and denominator."""
    agency = "CAP6"
    for level in (4, 3, 3, 3, 3, 3):
        _final_2025(shared_api, agency, level)
    for _ in range(2):
        _final_2025(shared_api, agency, 5, appointment_type="noncareer")
    assert _rat_9(shared_api, agency) == []
    report = shared_api.get("/v1/reports/rating-distribution", agency=agency, cycle="FY2026")
    assert report.json()["share_levels_4_5"] == pytest.approx(1 / 6)
    _final_2025(shared_api, agency, 4)  # the seventh: 2 of 7 (28.6%) is still within
    assert _rat_9(shared_api, agency) == []
    agency = "CAP6B"
    for level in (4, 4, 3, 3, 3, 3):
        _final_2025(shared_api, agency, level)
    (finding,) = _rat_9(shared_api, agency)
    assert finding.startswith("2 of 6 career executives (33%) rated under ses-2025")


@pytest.mark.parametrize(
    ("notice_on", "as_of", "due"),
    [
        ("2024-11-24", "2025-02-01", True),  # the day before the Level 1 rating
        ("2024-11-25", "2025-02-01", False),  # the rating's own day
        ("2025-01-10", "2025-01-09", True),  # a notice after D is not yet given
        ("2025-01-10", "2025-01-10", False),  # on D itself
    ],
)
def test_rem_1_an_action_from_the_rating_day_to_d_both_included(
    shared_api: Api, notice_on: str, as_of: str, due: bool
) -> None:
    """docs/api.md: `level1_action_due` holds until a reassignment, transfer, demotion or
    removal has `notice_on` between the Level 1 rating's `rated_on` (2024-11-25) and D."""
    a = shared_api.appraisal("final", level=1)
    effective = (date.fromisoformat(notice_on) + timedelta(days=30)).isoformat()
    action = s.personnel_action("reassignment", notice=notice_on, effective=effective)
    shared_api.ok(f"/v1/executives/{a.executive_id}/personnel-actions", action)
    path = f"/v1/executives/{a.executive_id}/removal-history"
    history = shared_api.get(path, as_of=as_of).json()
    assert history["five_year"]["ratings"][0]["rated_on"] == "2024-11-25"
    assert history["level1_action_due"] is due, history
