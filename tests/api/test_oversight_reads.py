"""Reads as oversight staff publish them (api-contract.md "Reads"), on histories built
through the API."""

from __future__ import annotations

from tests.api.story import (
    CODES,
    Api,
    final,
    initial,
    plan,
    prb,
    response_waiver,
    review,
    unique,
    waiver,
)
from tests.integration.test_projections import ELEMENTS_2025


def late_final(api: Api, appraisal_id: str, executive_id: str, fy: int, level: int) -> None:
    """A FY`fy` appraisal whose ratings are made in June 2025, after a later period's."""
    path = f"/v1/appraisals/{appraisal_id}"
    api.ok("/v1/appraisals", plan(appraisal_id, executive_id, fy))
    api.ok(f"{path}/progress-reviews", review(fy))
    initial = {
        "rated_on": "2025-06-01",
        "rating_official_id": "R1",
        "element_levels": dict.fromkeys(CODES, level),
        "narrative": "Rated late.",
    }
    api.ok(f"{path}/initial-rating", initial)
    api.ok(f"{path}/response-waiver", {"waived_on": "2025-06-02"})
    prb = {
        "board_id": api.new_board(),
        "members_present": ["M1", "M2", "M3"],
        "recommended_on": "2025-06-10",
        "recommended_level": level,
        "rationale": "The board concurs.",
        "considered": ["initial_rating"],
    }
    api.ok(f"{path}/prb-recommendation", prb)
    final = {"appointing_authority_id": "AA1", "rated_on": "2025-06-20", "level": level}
    api.ok(f"{path}/final-rating", final)


def test_current_rating_is_the_latest_period_not_the_latest_rating_date(api: Api) -> None:
    """Contract "Reads", GET /v1/executives/{id}: `current_rating` is the rating of the
    latest period; a backfilled earlier period, rated after it, does not replace it."""
    executive_id = api.new_executive()
    fy2024 = api.appraisal("final", executive_id=executive_id, fy=2024, level=4)
    late_final(api, "A-FY2023-late", executive_id, 2023, 2)

    current = api.get(f"/v1/executives/{executive_id}").json()["current_rating"]
    assert current["appraisal_id"] == fy2024.appraisal_id
    assert (current["level"], current["rated_on"]) == (4, "2024-11-25")


def test_ratings_are_listed_oldest_period_first(api: Api) -> None:
    """Contract "Reads", GET /v1/executives/{id}/ratings: oldest first, by the period rated,
    so that the last one listed is `current_rating`, whatever order the ratings came in."""
    executive_id = api.new_executive()
    fy2024 = api.appraisal("final", executive_id=executive_id, fy=2024, level=4)
    late_final(api, "A-FY2023-late", executive_id, 2023, 2)

    ratings = api.get(f"/v1/executives/{executive_id}/ratings").json()["ratings"]
    assert [r["appraisal_id"] for r in ratings] == ["A-FY2023-late", fy2024.appraisal_id]
    current = api.get(f"/v1/executives/{executive_id}").json()["current_rating"]
    assert current["appraisal_id"] == ratings[-1]["appraisal_id"]


def _fy2026_final(
    api: Api, hr: dict[str, str], executive_id: str, board_id: str, level: int, **final_day: str
) -> None:
    """A ses-2025 FY2026 appraisal through to its final rating at `level`, on the story's
    days (`final_day`: the final rating's `rated_on`, when given)."""
    appraisal_id = unique("A-")
    path = f"/v1/appraisals/{appraisal_id}"
    body = plan(appraisal_id, executive_id, 2026, policy="ses-2025", elements=ELEMENTS_2025)
    api.ok("/v1/appraisals", body, hr)
    api.ok(f"{path}/progress-reviews", review(2026), hr)
    rating = initial(2026, level)
    rating["element_levels"] = {e["code"]: level for e in ELEMENTS_2025}
    api.ok(f"{path}/initial-rating", rating, hr)
    api.ok(f"{path}/response-waiver", response_waiver(2026), hr)
    api.ok(f"{path}/prb-recommendation", prb(2026, board_id, ["initial_rating"], level), hr)
    api.ok(f"{path}/final-rating", final(2026, level) | final_day, hr)


def test_rat_9_distribution_and_compliance_agree_on_a_waiver_not_yet_granted(api: Api) -> None:
    """RAT-9 (contract "Reads": rating-distribution and compliance findings): a waiver
    recorded with a `granted_on` still to come suppresses the finding in neither report
    until that day; before, the distribution hid a finding the compliance report showed."""
    hr = api.as_("hr_app", subject="hr-app-1", agency="AG5")
    for level in (4, 4, 4, 4, 3):
        executive_id = api.new_executive(agency="AG5")
        _fy2026_final(api, hr, executive_id, api.new_board(agency="AG5"), level)
    later = waiver("AG5", "FY2026") | {"granted_on": "2199-03-01"}
    api.ok("/v1/rating-cap-waivers", later, api.as_("admin", agency="AG5"))

    distribution = api.get("/v1/reports/rating-distribution", agency="AG5", cycle="FY2026")
    compliance = api.get("/v1/reports/compliance", agency="AG5")
    rat_9 = [f for f in compliance.json()["findings"] if f["rule"] == "RAT-9"]
    assert len(rat_9) == 1
    assert distribution.json()["findings"] == rat_9


def test_rat_9_distribution_and_compliance_agree_on_a_final_rating_dated_ahead(
    any_api: Api,
) -> None:
    """RAT-9 (contract "Reads": rating-distribution and compliance): a final rating recorded
    with a `rated_on` still to come counts in neither report until that day, as a removal
    history or the below-Fully-Successful report count ratings rated by D. Before, the
    distribution counted it (and found RAT-9: 2 of 5 at Levels 4-5) while the compliance
    report, judging today, did not."""
    api = any_api
    hr = api.as_("hr_app", subject="hr-app-1", agency="AG6")
    board_id = api.new_board(agency="AG6")
    for level, rated_on in ((5, "2199-01-15"), (4, None), (3, None), (3, None), (3, None)):
        executive_id = api.new_executive(agency="AG6")
        dated = {"rated_on": rated_on} if rated_on else {}
        _fy2026_final(api, hr, executive_id, board_id, level, **dated)

    distribution = api.get("/v1/reports/rating-distribution", agency="AG6", cycle="FY2026")
    compliance = api.get("/v1/reports/compliance", agency="AG6").json()
    assert [f for f in compliance["findings"] if f["rule"] == "RAT-9"] == []
    assert distribution.json()["findings"] == []
    assert distribution.json()["counts"] == {"1": 0, "2": 0, "3": 3, "4": 1, "5": 0}
    assert distribution.json()["share_levels_4_5"] == 0.25


def _ses_2025_final(
    api: Api, hr: dict[str, str], board_id: str, executive_id: str, level: int, **dates: str
) -> None:
    """A ses-2025 appraisal through to its final rating; `dates` override the plan's period
    (`period_start`, `period_end`) and its days (`reviewed_on`, `rated_on`: the initial
    rating, `final_on`)."""
    appraisal_id = unique("A-")
    path = f"/v1/appraisals/{appraisal_id}"
    start = dates.get("period_start", "2025-10-01")
    body = plan(appraisal_id, executive_id, 2026, policy="ses-2025", elements=ELEMENTS_2025)
    body |= {"period_start": start, "communicated_on": start}
    body["period_end"] = dates.get("period_end", body["period_end"])
    api.ok("/v1/appraisals", body, hr)
    reviewed = review(2026) | {"reviewed_on": dates.get("reviewed_on", "2026-03-15")}
    api.ok(f"{path}/progress-reviews", reviewed, hr)
    rating = initial(2026, level) | {"rated_on": dates.get("rated_on", "2026-10-15")}
    rating["element_levels"] = {e["code"]: level for e in ELEMENTS_2025}
    api.ok(f"{path}/initial-rating", rating, hr)
    api.ok(f"{path}/response-waiver", {"waived_on": rating["rated_on"]}, hr)
    recommendation = prb(2026, board_id, ["initial_rating"], level)
    recommendation["recommended_on"] = dates.get("final_on", "2026-11-25")
    api.ok(f"{path}/prb-recommendation", recommendation, hr)
    assigned = final(2026, level) | {"rated_on": dates.get("final_on", "2026-11-25")}
    api.ok(f"{path}/final-rating", assigned, hr)


def test_rat_9_counts_an_executive_by_the_latest_period_of_the_cycle(any_api: Api) -> None:
    """RAT-9 and the distribution's share count each career executive once, by their rating
    of the cycle's latest period (as `current_rating` is the latest period's), whatever
    order the periods were recorded in. E rated Level 3 for Apr-Sep 2026, then Level 5 for
    Oct 2025-Mar 2026 backfilled after it: before, the rating logged last (Level 5) was
    counted, so the same facts gave 2 of 5 at Levels 4-5 and a RAT-9 finding, or not,
    depending on the order HR entered them."""
    api = any_api
    hr = api.as_("hr_app", subject="hr-app-1", agency="AG7")
    board_id = api.new_board(agency="AG7")
    for level in (4, 3, 3, 3):
        _ses_2025_final(api, hr, board_id, api.new_executive(agency="AG7"), level)
    split = api.new_executive(agency="AG7")
    _ses_2025_final(
        api, hr, board_id, split, 3, period_start="2026-04-01", reviewed_on="2026-06-15"
    )
    _ses_2025_final(
        api,
        hr,
        board_id,
        split,
        5,
        period_end="2026-03-31",
        rated_on="2026-07-01",
        final_on="2026-11-26",
    )

    current = api.get(f"/v1/executives/{split}").json()["current_rating"]
    assert (current["period_end"], current["level"]) == ("2026-09-30", 3)
    distribution = api.get("/v1/reports/rating-distribution", agency="AG7", cycle="FY2026")
    assert distribution.json()["counts"] == {"1": 0, "2": 0, "3": 4, "4": 1, "5": 1}
    assert distribution.json()["share_levels_4_5"] == 0.2
    assert distribution.json()["findings"] == []
    compliance = api.get("/v1/reports/compliance", agency="AG7").json()["findings"]
    assert [f for f in compliance if f["rule"] == "RAT-9"] == []
