"""An executive's story told through HTTP only: registration, two appraisals rated below
Fully Successful, the REM-2 removal it requires, a complaint, and every kind of read,
replayed as of earlier points, verified, bundled and receipted. Run on each backend."""

from __future__ import annotations

import base64

from ledger.offline_verify import verify_bundle
from tests.api.story import (
    Api,
    board,
    complaint,
    executive,
    final,
    hlr,
    hlr_request,
    initial,
    personnel_action,
    plan,
    prb,
    response,
    response_waiver,
    review,
)


def test_registration_to_removal(any_api: Api) -> None:
    api = any_api
    admin = api.as_("admin", subject="admin-1")
    rater = api.as_("rating_official", subject="R1")
    me = api.as_("executive", subject="E-7")
    reviewer = api.as_("hlr_official", subject="H1")
    member = api.as_("prb_member", subject="M2")
    authority = api.as_("appointing_authority", subject="AA1")

    api.ok("/v1/review-boards", board("PRB-DOE"), admin)
    registered = api.ok("/v1/executives", executive("E-7"), admin)
    assert registered["event"]["actor"] == "admin-1"
    assert registered["event"]["submitted_by"] == "admin-1"

    # FY2023: the rating official plans and rates; the executive responds and asks for review.
    a1 = "A-2023-E-7"
    planned = api.ok("/v1/appraisals", plan(a1, "E-7", 2023), rater)
    assert (planned["id"], planned["version"]) == (a1, 1)
    assert planned["event"]["type"] == "PlanSet"
    assert planned["event"]["policy"] == "ses-basic-2012"
    api.ok(f"/v1/appraisals/{a1}/progress-reviews", review(2023), rater)
    rated = api.ok(f"/v1/appraisals/{a1}/initial-rating", initial(2023, level=2), rater)
    assert (rated["score"], rated["summary_level"]) == (200, 2)
    assert rated["event"]["data"]["shared_on"] == "2023-10-15"  # defaults to rated_on
    responded = api.ok(f"/v1/appraisals/{a1}/executive-response", response(2023), me)
    assert responded["event"]["actor"] == "E-7"
    api.ok(f"/v1/appraisals/{a1}/higher-level-review-request", hlr_request(2023), me)
    reviewed = api.ok(f"/v1/appraisals/{a1}/higher-level-review", hlr(2023, 2), reviewer)
    assert reviewed["event"]["actor"] == "H1"
    considered = ["initial_rating", "executive_response", "higher_level_review"]
    recommended = api.ok(
        f"/v1/appraisals/{a1}/prb-recommendation",
        prb(2023, "PRB-DOE", considered, 2, present=["M1", "M2", "M3"]),
        member,
    )
    assert recommended["event"]["actor"] == "PRB-DOE"
    assert recommended["event"]["submitted_by"] == "M2"
    first_final = api.ok(f"/v1/appraisals/{a1}/final-rating", final(2023, 2), authority)
    assert (first_final["score"], first_final["summary_level"]) == (200, 2)
    assert first_final["version"] == 8
    before_second = first_final["event"]["position"]

    # FY2024, through the HR application: a waiver instead of a response, Level 2 again.
    a2 = "A-2024-E-7"
    api.ok("/v1/appraisals", plan(a2, "E-7", 2024))
    api.ok(f"/v1/appraisals/{a2}/progress-reviews", review(2024))
    api.ok(f"/v1/appraisals/{a2}/initial-rating", initial(2024, level=2))
    waived = api.ok(f"/v1/appraisals/{a2}/response-waiver", response_waiver(2024))
    assert waived["event"]["actor"] == "E-7" and waived["event"]["submitted_by"] == "hr-app-1"
    api.ok(f"/v1/appraisals/{a2}/prb-recommendation", prb(2024, "PRB-DOE", ["initial_rating"], 2))
    api.ok(f"/v1/appraisals/{a2}/final-rating", final(2024, 2))

    # Reads: the executive sees their own record; the oversight reports show REM-2.
    current = api.get("/v1/executives/E-7", me).json()
    assert current["current_rating"]["appraisal_id"] == a2
    assert current["current_rating"]["level"] == 2
    ratings = api.get("/v1/executives/E-7/ratings", me).json()["ratings"]
    assert [r["appraisal_id"] for r in ratings] == [a1, a2]
    history = api.get("/v1/executives/E-7/removal-history", me, as_of="2024-12-01").json()
    assert history["three_year"]["removal_required"] is True
    assert history["three_year"]["triggered_on"] == "2024-11-25"
    assert history["three_year"]["rule"] == "REM-2"
    assert history["window_measure"] == "rating-date"
    report = api.get("/v1/reports/below-fully-successful", as_of="2024-12-01").json()
    listed = {e["executive_id"]: e for e in report["executives"]}
    assert [r["appraisal_id"] for r in listed["E-7"]["ratings"]] == [a1, a2]
    appraisal = api.get(f"/v1/appraisals/{a2}", me).json()
    assert appraisal["stage"] == "final" and appraisal["final_rating"]["level"] == 2
    events = api.get(f"/v1/appraisals/{a1}/events", me).json()["events"]
    assert [e["stream_version"] for e in events] == list(range(1, 9))

    # Replay: as the ledger stood before the second appraisal existed.
    then = api.get("/v1/executives/E-7", me, as_of_position=before_second).json()
    assert then["current_rating"]["appraisal_id"] == a1
    assert api.get(f"/v1/appraisals/{a2}", as_of_position=before_second).status_code == 404
    assert api.get(f"/v1/appraisals/{a2}/events", as_of_position=before_second).status_code == 404
    board_only = registered["event"]["position"] - 1  # before the executive was registered
    for path in ("", "/ratings", "/removal-history"):
        assert api.get(f"/v1/executives/E-7{path}", as_of_position=board_only).status_code == 404
    old_report = api.get(
        "/v1/reports/below-fully-successful", as_of="2024-12-01", as_of_position=before_second
    ).json()
    listed = {e["executive_id"]: e for e in old_report["executives"]}
    assert [r["appraisal_id"] for r in listed["E-7"]["ratings"]] == [a1]
    known_at = first_final["event"]["recorded_at"]
    then = api.get("/v1/executives/E-7/ratings", known_at=known_at).json()
    assert [r["appraisal_id"] for r in then["ratings"]] == [a1]

    # The removal REM-2 requires, then a complaint by the executive (APP-1).
    removal = personnel_action("removal", [a1, a2], "2024-12-02", "2025-01-06")
    removed = api.ok("/v1/executives/E-7/personnel-actions", removal, authority)
    assert removed["event"]["type"] == "PersonnelActionRecorded"
    assert removed["event"]["actor"] == "AA1"
    filed = api.ok("/v1/executives/E-7/complaints", complaint(), me)
    assert filed["event"]["actor"] == "E-7" and filed["version"] == 3
    history = api.get("/v1/executives/E-7/removal-history", as_of="2025-01-10").json()
    assert [a["action"] for a in history["actions"]] == ["removal"]

    # Tamper evidence: verify, an evidence bundle that verifies offline, a receipt.
    verified = api.get("/v1/ledger/verify").json()
    assert verified["ok"] is True and verified["first_bad_position"] is None
    assert verified["checked"] == api.ledger_size() == 18
    bundle = api.get("/v1/executives/E-7/evidence-bundle", me).json()
    assert bundle["format"] == "ses-ledger-bundle/v1"
    assert verify_bundle(bundle).ok
    position = removed["receipt"]["position"]
    receipt = api.get(f"/v1/ledger/receipts/{position}", me).json()
    assert receipt["entry"] == removed["event"]
    assert receipt["inclusion_proof"]["tree_size"] >= receipt["inclusion_proof"]["leaf_index"]
    signature = base64.b64decode(removed["receipt"]["signature"])
    keys = {k["key_id"]: k for k in api.get("/v1/ledger/keys", {}).json()["keys"]}
    assert removed["receipt"]["key_id"] in keys and len(signature) == 64
