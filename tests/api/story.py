"""An HTTP client for tests that speaks in appraisal steps, and the bodies it sends.

Dates follow one fiscal-year cycle under `ses-basic-2012` (FY2022-FY2024), chosen to satisfy
every enforced rule: 90 days of performance (PER-2), no rating within 120 days of an
Inauguration Day (PER-3), a published board (PRB-4) with a career majority (PRB-2), the
response window before the PRB (RAT-7) and the final rating after it (RAT-8).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
from httpx import Response

from api.auth import issue_token

BASIC_ELEMENTS = [
    {"code": "leading_change", "weight": 15, "requirements": ["Lead the modernisation plan."]},
    {"code": "leading_people", "weight": 15, "requirements": ["Develop the leadership team."]},
    {"code": "business_acumen", "weight": 15, "requirements": ["Execute the budget."]},
    {"code": "building_coalitions", "weight": 15, "requirements": ["Partner with states."]},
    {
        "code": "results_driven",
        "weight": 40,
        "requirements": ["Cut processing time 20% by Sep 30 (measure: days; target: 12)."],
    },
]
CODES = [e["code"] for e in BASIC_ELEMENTS]
BOARD_MEMBERS = ["M1", "M2", "M3", "M4", "M5"]  # M4 is the one noncareer member

#: The stages a test can ask for, in order.
STAGES = [
    "planned",
    "initially_rated",
    "response_closed",
    "hlr_requested",
    "hlr_done",
    "prb_recommended",
    "final",
]

_ids = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}{next(_ids)}"


__all__ = ["date"]


def d(year: int, month: int, day: int) -> str:
    return date(year, month, day).isoformat()


def executive(executive_id: str, agency: str = "DOE", **overrides: Any) -> dict[str, Any]:
    body = {
        "executive_id": executive_id,
        "name": "Pat Example",
        "title": "Deputy Assistant Secretary",
        "pay_plan": "ES",
        "agency": agency,
        "duty_station": "Washington, DC",
        "appointment_type": "career",
        "probationary": False,
        "appointed_on": "2019-05-01",
    }
    return body | overrides


def board(board_id: str, agency: str = "DOE") -> dict[str, Any]:
    return {
        "board_id": board_id,
        "agency": agency,
        "federal_register_published_on": "2020-06-01",
        "members": [
            {"member_id": m, "name": f"Member {m}", "career": m != "M4"} for m in BOARD_MEMBERS
        ],
    }


def waiver(agency: str, cycle: str) -> dict[str, Any]:
    return {
        "agency": agency,
        "cycle": cycle,
        "granted_on": "2026-09-01",
        "reference": "Presidential memorandum",
    }


def plan(appraisal_id: str, executive_id: str, fy: int, **overrides: Any) -> dict[str, Any]:
    body = {
        "appraisal_id": appraisal_id,
        "executive_id": executive_id,
        "policy": "ses-basic-2012",
        "period_start": d(fy - 1, 10, 1),
        "period_end": d(fy, 9, 30),
        "rating_official_id": "R1",
        "communicated_on": d(fy - 1, 10, 1),
        "elements": BASIC_ELEMENTS,
    }
    return body | overrides


def review(fy: int, reviewer: str = "R1") -> dict[str, Any]:
    return {"reviewed_on": d(fy, 3, 15), "reviewer_id": reviewer, "notes": "Mid-year review."}


def detail(fy: int) -> dict[str, Any]:
    return {
        "organization": "DOT detail",
        "started_on": d(fy - 1, 12, 1),
        "ended_on": d(fy, 5, 1),
        "appraised_on": d(fy, 5, 5),
        "level": 4,
        "summary": "Written appraisal from the gaining organization.",
    }


def extension(fy: int) -> dict[str, Any]:
    return {
        "extended_on": d(fy, 6, 1),
        "new_period_end": d(fy, 9, 30),
        "reason": "Detail assignment interrupted the period.",
    }


def initial(fy: int, level: int = 4, rater: str = "R1") -> dict[str, Any]:
    return {
        "rated_on": d(fy, 10, 15),
        "rating_official_id": rater,
        "element_levels": dict.fromkeys(CODES, level),
        "narrative": "Solid year.",
    }


def response(fy: int) -> dict[str, Any]:
    return {"submitted_on": d(fy, 10, 20), "text": "I disagree with two elements."}


def response_waiver(fy: int) -> dict[str, Any]:
    return {"waived_on": d(fy, 10, 16)}


def hlr_request(fy: int) -> dict[str, Any]:
    return {"requested_on": d(fy, 10, 21)}


def hlr(fy: int, level: int = 4, reviewer: str = "H1") -> dict[str, Any]:
    return {
        "reviewer_id": reviewer,
        "reviewed_on": d(fy, 11, 1),
        "recommended_level": level,
        "rationale": "The record supports the rating.",
    }


def prb(
    fy: int, board_id: str, considered: list[str], level: int = 4, present: list[str] | None = None
) -> dict[str, Any]:
    return {
        "board_id": board_id,
        "members_present": present or ["M1", "M2", "M3"],
        "recommended_on": d(fy, 11, 15),
        "recommended_level": level,
        "rationale": "The board concurs.",
        "considered": considered,
    }


def final(fy: int, level: int = 4, authority: str = "AA1") -> dict[str, Any]:
    return {"appointing_authority_id": authority, "rated_on": d(fy, 11, 25), "level": level}


def personnel_action(
    action: str = "reassignment",
    basis: list[str] | None = None,
    notice: str = "2024-12-01",
    effective: str = "2025-01-06",
    authority: str = "5 CFR 359 subpart E",
) -> dict[str, Any]:
    return {
        "action": action,
        "basis_appraisal_ids": basis or [],
        "notice_on": notice,
        "effective_on": effective,
        "authority": authority,
        "hearing_requested_on": None,
    }


def complaint() -> dict[str, Any]:
    return {"forum": "EEOC", "filed_on": "2024-12-10", "summary": "Process complaint."}


@dataclass
class Appraisal:
    appraisal_id: str
    executive_id: str
    fy: int
    board_id: str


class Api:
    """An HTTP client (a TestClient, or httpx on a real server) with tokens:
    `api.as_("hr_app")` gives the headers of such a caller."""

    def __init__(self, client: httpx.Client, token_key: bytes, agency: str = "DOE") -> None:
        self.client = client
        self.key = token_key
        self.agency = agency

    def token(
        self, *roles: str, subject: str | None = None, agency: str | None = None, ttl: int = 600
    ) -> str:
        return issue_token(
            self.key,
            subject=subject or f"{roles[0]}-1",
            roles=roles,
            agency=agency or self.agency,
            ttl_seconds=ttl,
        )

    def as_(
        self, *roles: str, subject: str | None = None, agency: str | None = None, **headers: str
    ) -> dict[str, str]:
        token = self.token(*roles, subject=subject, agency=agency)
        return {"Authorization": f"Bearer {token}", **headers}

    @property
    def hr(self) -> dict[str, str]:
        return self.as_("hr_app", subject="hr-app-1")

    @property
    def auditor(self) -> dict[str, str]:
        return self.as_("auditor", subject="auditor-1", agency="*")

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Response:
        r: Response = self.client.post(
            path, json=body, headers=self.hr if headers is None else headers
        )
        return r

    def get(self, path: str, headers: dict[str, str] | None = None, **params: Any) -> Response:
        r: Response = self.client.get(
            path, params=params, headers=self.auditor if headers is None else headers
        )
        return r

    def ok(self, path: str, body: Any, headers: dict[str, str] | None = None) -> dict[str, Any]:
        """POST that must succeed; returns the 201 body."""
        r = self.post(path, body, headers)
        assert r.status_code == 201, (path, r.status_code, r.text)
        result: dict[str, Any] = r.json()
        return result

    # -- setting the scene -----------------------------------------------------------------

    def new_executive(self, agency: str | None = None, **overrides: Any) -> str:
        executive_id = unique("E")
        agency = agency or self.agency
        hr = self.as_("hr_app", subject="hr-app-1", agency=agency)
        self.ok("/v1/executives", executive(executive_id, agency, **overrides), hr)
        return executive_id

    def new_board(self, agency: str | None = None) -> str:
        board_id = unique("PRB-")
        self.ok(
            "/v1/review-boards",
            board(board_id, agency or self.agency),
            self.as_("admin", agency=agency or self.agency),
        )
        return board_id

    def appraisal(
        self,
        stage: str = "planned",
        *,
        executive_id: str | None = None,
        fy: int = 2024,
        level: int = 4,
        board_id: str | None = None,
        **plan_overrides: Any,
    ) -> Appraisal:
        """A new appraisal advanced through HTTP to `stage` (see STAGES)."""
        executive_id = executive_id or self.new_executive()
        appraisal = Appraisal(unique("A-"), executive_id, fy, board_id or "")
        self.ok("/v1/appraisals", plan(appraisal.appraisal_id, executive_id, fy, **plan_overrides))
        self.advance(appraisal, stage, level)
        return appraisal

    def advance(self, a: Appraisal, stage: str, level: int = 4) -> None:
        path = f"/v1/appraisals/{a.appraisal_id}"
        target = STAGES.index(stage)
        if target >= STAGES.index("initially_rated"):
            self.ok(f"{path}/progress-reviews", review(a.fy))
            self.ok(f"{path}/initial-rating", initial(a.fy, level))
        considered = ["initial_rating"]
        if target >= STAGES.index("hlr_requested"):
            self.ok(f"{path}/executive-response", response(a.fy))
            considered.append("executive_response")
            self.ok(f"{path}/higher-level-review-request", hlr_request(a.fy))
        elif target >= STAGES.index("response_closed"):
            self.ok(f"{path}/response-waiver", response_waiver(a.fy))
        if target >= STAGES.index("hlr_done"):
            self.ok(f"{path}/higher-level-review", hlr(a.fy, level))
            considered.append("higher_level_review")
        if target >= STAGES.index("prb_recommended"):
            a.board_id = a.board_id or self.new_board()
            self.ok(f"{path}/prb-recommendation", prb(a.fy, a.board_id, considered, level))
        if target >= STAGES.index("final"):
            self.ok(f"{path}/final-rating", final(a.fy, level))

    def ledger_size(self) -> int:
        """How many events the ledger holds (its Merkle tree size, integrated first).

        Integrating writes, so it passes the server's write gate like every other writer.
        """
        services = self.client.app.state.services  # type: ignore[attr-defined]
        with services.write_gate:
            size: int = services.merkle.integrate()
        return size


@contextmanager
def record_slots_taken(api: Api) -> Iterator[None]:
    """Every slot for historical reads of a record and evidence bundles taken, as by builds
    in progress elsewhere (`projections.replays.Replays.record_build`), with a short wait:
    such a request is answered 503 inside the block; the slots are given back after it."""
    replays = api.client.app.state.services.read_models.replays  # type: ignore[attr-defined]
    replays.wait_seconds = 0.05
    taken = 0
    while replays._record_slots.acquire(blocking=False):
        taken += 1
    assert taken == 2  # SES_LEDGER_RECORD_REPLAY_BUILDS' default
    try:
        yield
    finally:
        for _ in range(taken):
            replays._record_slots.release()
