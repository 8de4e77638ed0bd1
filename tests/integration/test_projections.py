"""Read models on SQLite and PostgreSQL, from histories written through the real commands.

Each test tells a short story with `Story` (LedgerApp commands, valid under every enforced
rule), catches the projections up and reads them through `ReadModels`, as the API does.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from ledger.policies.common import add_years
from projections.events import Event
from projections.queries import ReadModels
from projections.store import BULK_CACHE_KIB
from tests.ledger_helpers import events_table, point_cli_at, raw, register, table

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
ELEMENTS_2025 = [
    {"code": "faithful_administration", "weight": 30, "requirements": ["Apply the law."]},
    {"code": "government_efficiency", "weight": 15, "requirements": ["Cut cost 5% by Q3."]},
    {"code": "merit_and_competence", "weight": 15, "requirements": ["Hire on merit."]},
    {"code": "accountability_and_fairness", "weight": 15, "requirements": ["Be fair."]},
    {
        "code": "organizational_goals",
        "weight": 25,
        "requirements": [
            "Strategic Goal 1: close 95% of audits within 60 days",
            "Strategic Goal 2: reduce unit cost 5% by Q3",
            "Strategic Goal 3: publish the FY2026 data plan",
        ],
    },
]
SES_2025_FROM = date(2025, 10, 1)


class Clock:
    """The ledger's clock: each write one second after the last, from a chosen start."""

    def __init__(self, start: datetime = datetime(2030, 1, 1, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@dataclass
class Story:
    """Appraisal histories in a few calls; every date satisfies the enforced rules."""

    app: LedgerApp
    boards: set[str] = field(default_factory=set)

    def executive(
        self, executive_id: str, agency: str = "DOE", appointment_type: str = "career"
    ) -> None:
        self.app.register_executive(
            executive_id,
            name=f"Name of {executive_id}",
            title="Deputy Assistant Secretary",
            pay_plan="ES",
            agency=agency,
            duty_station="Washington, DC",
            appointment_type=appointment_type,
            probationary=False,
            appointed_on=date(2015, 1, 5),
            actor="hr-1",
            submitted_by="hr-app-1",
        )

    def board(self, agency: str) -> str:
        board_id = f"PRB-{agency}"
        if board_id not in self.boards:
            self.app.register_review_board(
                board_id,
                agency=agency,
                federal_register_published_on=date(2015, 1, 2),
                members=[
                    {"member_id": f"M{i}", "name": f"Member {i}", "career": True}
                    for i in range(1, 4)
                ],
                actor="admin-1",
                submitted_by="hr-app-1",
            )
            self.boards.add(board_id)
        return board_id

    def plan(
        self,
        executive_id: str,
        appraisal_id: str,
        fy: int,
        communicated_late_by: int = 0,
        elements: list[dict[str, Any]] | None = None,
    ) -> None:
        """A plan for fiscal year `fy`, under the policy in force then (with its sample
        elements, unless `elements` are given)."""
        start = date(fy - 1, 10, 1)
        policy = "ses-2025" if start >= SES_2025_FROM else "ses-basic-2012"
        if elements is None:
            elements = ELEMENTS_2025 if policy == "ses-2025" else BASIC_ELEMENTS
        self.app.set_plan(
            appraisal_id,
            executive_id=executive_id,
            policy=policy,
            period_start=start,
            period_end=date(fy, 9, 30),
            rating_official_id="R1",
            communicated_on=start + timedelta(days=communicated_late_by),
            elements=elements,
            submitted_by="hr-app-1",
        )

    def step(self, appraisal_id: str, command: str, actor: str = "R1", **fields: Any) -> None:
        self.app.appraisal_command(
            appraisal_id, command, submitted_by="hr-app-1", actor=actor, **fields
        )

    def reviews(self, appraisal_id: str, fy: int) -> None:
        for month, year in ((11, fy - 1), (2, fy), (5, fy), (8, fy)):
            self.step(
                appraisal_id,
                "review_progress",
                reviewed_on=date(year, month, 15),
                reviewer_id="R1",
                notes="Quarterly review held.",
            )

    def rate(
        self,
        appraisal_id: str,
        rated_on: date,
        element_level: int = 3,
        narrative: str = "Performance as documented in the quarterly reviews.",
    ) -> None:
        codes = [e["code"] for e in self.app.appraisal(appraisal_id).elements]
        self.step(
            appraisal_id,
            "issue_initial_rating",
            rated_on=rated_on,
            rating_official_id="R1",
            element_levels=dict.fromkeys(codes, element_level),
            narrative=narrative,
            shared_on=rated_on,
        )

    def finish(self, appraisal_id: str, agency: str, final_on: date, level: int) -> None:
        rated_on = self.app.appraisal(appraisal_id).initial_rating["rated_on"]  # type: ignore[index]
        executive_id = self.app.appraisal(appraisal_id).executive_id
        self.step(appraisal_id, "waive_response", actor=executive_id, waived_on=rated_on)
        self.step(
            appraisal_id,
            "recommend_by_prb",
            actor=self.board(agency),
            board_id=self.board(agency),
            members_present=["M1", "M2", "M3"],
            recommended_on=rated_on + timedelta(days=1),
            recommended_level=level,
            rationale="Considered the record.",
            considered=["initial_rating"],
        )
        self.step(
            appraisal_id,
            "assign_final_rating",
            actor="AA1",
            appointing_authority_id="AA1",
            rated_on=final_on,
            level=level,
        )

    def appraisal(
        self,
        executive_id: str,
        final_on: date,
        level: int,
        *,
        agency: str = "DOE",
        fy: int | None = None,
        reviews: bool = True,
    ) -> str:
        """A complete appraisal of the fiscal year before `final_on`'s (or `fy`)."""
        fy = fy or (final_on.year if final_on.month < 10 else final_on.year + 1) - 1
        appraisal_id = f"A-{fy}-{executive_id}-{final_on.isoformat()}"
        self.board(agency)
        self.plan(executive_id, appraisal_id, fy)
        if reviews:
            self.reviews(appraisal_id, fy)
        self.rate(appraisal_id, final_on - timedelta(days=10), 3 if level >= 3 else 2)
        self.finish(appraisal_id, agency, final_on, level)
        return appraisal_id

    def action(self, executive_id: str, action: str, notice_on: date, basis: list[str]) -> None:
        self.app.record_personnel_action(
            executive_id,
            action=action,
            basis_appraisal_ids=basis,
            notice_on=notice_on,
            effective_on=notice_on + timedelta(days=45),
            authority="5 CFR 359 subpart E; 5 CFR 359 subpart G considered",
            hearing_requested_on=None,
            actor="AA1",
            submitted_by="hr-app-1",
        )


@pytest.fixture
def app(ledger_config: LedgerConfig) -> LedgerApp:
    return LedgerApp(ledger_config, clock=Clock())


@pytest.fixture
def story(app: LedgerApp) -> Story:
    return Story(app)


@pytest.fixture
def models(app: LedgerApp) -> ReadModels:
    return ReadModels(app)


# --- Current ratings -----------------------------------------------------------------------


def test_an_appraisal_moves_through_its_stages_and_becomes_the_current_rating(
    story: Story, models: ReadModels
) -> None:
    story.executive("E1")
    story.board("DOE")
    models.catch_up()
    assert models.executive("E1") == {
        "executive_id": "E1",
        "name": "Name of E1",
        "title": "Deputy Assistant Secretary",
        "pay_plan": "ES",
        "agency": "DOE",
        "duty_station": "Washington, DC",
        "appointment_type": "career",
        "probationary": False,
        "appointed_on": "2015-01-05",
        "current_rating": None,
        "version": 1,
    }
    assert models.executive("nobody") is None and models.appraisal("nothing") is None

    def stage() -> str:
        models.catch_up()
        found = models.appraisal("A1")
        assert found is not None
        return str(found["stage"])

    story.plan("E1", "A1", 2023)
    assert stage() == "planned"
    story.reviews("A1", 2023)
    assert stage() == "monitoring"
    story.rate("A1", date(2023, 10, 20), 4)
    assert stage() == "initially_rated"
    story.step("A1", "request_higher_level_review", actor="E1", requested_on=date(2023, 10, 21))
    assert stage() == "higher_level_review"
    story.step(
        "A1",
        "recommend_higher_level_review",
        actor="H1",
        reviewer_id="H1",
        reviewed_on=date(2023, 11, 1),
        recommended_level=4,
        rationale="Agree.",
    )
    story.step("A1", "respond", actor="E1", submitted_on=date(2023, 11, 2), text="Thanks.")
    assert stage() == "higher_level_review"
    story.step(
        "A1",
        "recommend_by_prb",
        actor="PRB-DOE",
        board_id="PRB-DOE",
        members_present=["M1", "M2", "M3"],
        recommended_on=date(2023, 11, 20),
        recommended_level=4,
        rationale="Record reviewed.",
        considered=["initial_rating", "executive_response", "higher_level_review"],
    )
    assert stage() == "prb_recommended"
    story.step(
        "A1",
        "assign_final_rating",
        actor="AA1",
        appointing_authority_id="AA1",
        rated_on=date(2023, 12, 1),
        level=4,
    )
    assert stage() == "final"

    appraisal = models.appraisal("A1")
    assert appraisal is not None
    assert appraisal["executive_id"] == "E1" and appraisal["policy"] == "ses-basic-2012"
    assert (appraisal["period_start"], appraisal["period_end"]) == ("2022-10-01", "2023-09-30")
    assert [e["code"] for e in appraisal["elements"]] == [e["code"] for e in BASIC_ELEMENTS]
    assert appraisal["initial_rating"]["summary_level"] == 4
    assert appraisal["initial_rating"]["score"] == 400
    assert appraisal["initial_rating"]["rated_on"] == "2023-10-20"
    assert appraisal["final_rating"]["level"] == 4
    assert appraisal["final_rating"]["rated_on"] == "2023-12-01"
    assert appraisal["version"] == story.app.appraisal("A1").version == 11
    executive = models.executive("E1")
    assert executive is not None
    assert executive["current_rating"] == {
        "appraisal_id": "A1",
        "level": 4,
        "score": 400,
        "rated_on": "2023-12-01",
        "policy": "ses-basic-2012",
        "period_start": "2022-10-01",
        "period_end": "2023-09-30",
    }
    assert [e["type"] for e in models.appraisal_events("A1")][:2] == ["PlanSet", "ProgressReviewed"]
    assert models.appraisal_events("A1")[-1]["stream_version"] == 11


def test_a_final_rating_recorded_late_for_an_earlier_year_does_not_become_current(
    story: Story, models: ReadModels
) -> None:
    """HR back-fills the FY2023 rating after FY2024's: the latest by rating date stays
    current, and the back-filled one still counts where its date puts it."""
    story.executive("E1")
    newer = story.appraisal("E1", date(2024, 11, 15), 4)
    models.catch_up()  # incrementally, as the server does: the newer one is current first
    older = story.appraisal("E1", date(2023, 11, 15), 2)
    models.catch_up()
    executive = models.executive("E1")
    assert executive is not None
    assert (executive["current_rating"]["appraisal_id"], executive["current_rating"]["level"]) == (
        newer,
        4,
    )
    assert [r["appraisal_id"] for r in models.ratings("E1")["ratings"]] == [older, newer]
    below = models.below_fully_successful(date(2024, 12, 1))["executives"]
    assert [(e["executive_id"], [r["level"] for r in e["ratings"]]) for e in below] == [("E1", [2])]
    rebuilt = ReadModels(story.app)
    rebuilt.runner.rebuild()
    assert rebuilt.executive("E1") == executive


def test_ratings_are_listed_oldest_first_and_the_latest_is_current(
    story: Story, models: ReadModels
) -> None:
    story.executive("E1")
    story.executive("E2", agency="DOT")
    story.appraisal("E1", date(2022, 11, 15), 3)
    later = story.appraisal("E1", date(2023, 11, 15), 5)
    story.appraisal("E2", date(2023, 11, 15), 2, agency="DOT")
    story.action("E1", "reassignment", date(2024, 1, 10), [])
    models.catch_up()
    ratings = models.ratings("E1")
    assert ratings["executive_id"] == "E1"
    assert [(r["rated_on"], r["level"]) for r in ratings["ratings"]] == [
        ("2022-11-15", 3),
        ("2023-11-15", 5),
    ]
    assert set(ratings["ratings"][0]) >= {
        "appraisal_id",
        "policy",
        "period_start",
        "period_end",
        "level",
        "score",
        "rated_on",
    }
    executive = models.executive("E1")
    assert executive is not None
    assert executive["current_rating"]["appraisal_id"] == later
    assert executive["version"] == story.app.executive("E1").version == 2
    assert models.executive_appraisal_ids("E1") == [ratings["ratings"][0]["appraisal_id"], later]
    assert models.executive_agency("E2") == "DOT" and models.executive_agency("E9") is None
    assert models.ratings("E9") == {"executive_id": "E9", "ratings": []}


# --- Removal histories ---------------------------------------------------------------------

FIRST_LOW = date(2021, 11, 15)


@pytest.mark.parametrize(
    ("second", "required"),
    [
        (add_years(FIRST_LOW, 3) - timedelta(days=1), True),
        (add_years(FIRST_LOW, 3), True),  # exactly three years apart still counts
        (add_years(FIRST_LOW, 3) + timedelta(days=1), False),
    ],
    ids=["3y-minus-1-day", "exactly-3y", "3y-plus-1-day"],
)
def test_two_ratings_below_fully_successful_within_three_years_require_removal(
    story: Story, models: ReadModels, second: date, required: bool
) -> None:
    story.executive("E1")
    story.appraisal("E1", FIRST_LOW, 2)
    story.appraisal("E1", second, 2)
    models.catch_up()
    history = models.removal_history("E1", as_of=second)
    assert history["executive_id"] == "E1" and history["as_of"] == second.isoformat()
    assert history["window_measure"] == "rating-date"
    three = history["three_year"]
    assert three["rule"] == "REM-2"
    assert three["removal_required"] is required
    assert three["triggered_on"] == (second.isoformat() if required else None)
    in_window = [r["rated_on"] for r in three["ratings"]]
    assert in_window[-1] == second.isoformat()
    assert (FIRST_LOW.isoformat() in in_window) is (second <= add_years(FIRST_LOW, 3))
    # The day before the second rating, only one low rating existed.
    before = models.removal_history("E1", as_of=second - timedelta(days=1))
    assert before["three_year"]["removal_required"] is False
    assert before["five_year"]["rule"] == "REM-3"


FIRST_L1 = date(2019, 11, 15)


@pytest.mark.parametrize(
    ("second", "required"),
    [
        (add_years(FIRST_L1, 5) - timedelta(days=1), True),  # 4 years 364 days
        (add_years(FIRST_L1, 5) + timedelta(days=1), False),  # 5 years 1 day
    ],
    ids=["4y364d", "5y1d"],
)
def test_two_level_1_ratings_within_five_years_require_removal(
    story: Story, models: ReadModels, second: date, required: bool
) -> None:
    story.executive("E1")
    first_id = story.appraisal("E1", FIRST_L1, 1)
    story.action("E1", "reassignment", FIRST_L1 + timedelta(days=5), [first_id])
    story.appraisal("E1", second, 1)
    models.catch_up()
    history = models.removal_history("E1", as_of=second + timedelta(days=1))
    assert history["five_year"]["removal_required"] is required
    assert history["five_year"]["triggered_on"] == (second.isoformat() if required else None)
    # Two Level 1 ratings are also two ratings below Level 3, but never within three years.
    assert history["three_year"]["removal_required"] is False
    assert history["level1_action_due"] is True  # the second Level 1 has no action yet
    findings = models.compliance(as_of=second + timedelta(days=1))["findings"]
    rules = {(f["rule"], f["subject_id"]) for f in findings}
    assert ("REM-1", "E1") in rules
    assert (("REM-3", "E1") in rules) is required


def test_a_level_1_rating_is_answered_by_a_recorded_reassignment(
    story: Story, models: ReadModels
) -> None:
    story.executive("E1")
    rated = date(2023, 11, 15)
    appraisal_id = story.appraisal("E1", rated, 1)
    notice = date(2024, 1, 10)
    story.action("E1", "reassignment", notice, [appraisal_id])
    models.catch_up()
    due = models.removal_history("E1", as_of=notice - timedelta(days=1))
    assert due["level1_action_due"] is True and due["actions"] == []
    answered = models.removal_history("E1", as_of=notice)
    assert answered["level1_action_due"] is False
    assert [a["action"] for a in answered["actions"]] == ["reassignment"]
    assert answered["actions"][0]["basis_appraisal_ids"] == [appraisal_id]
    assert answered["five_year"]["ratings"] == [
        {"appraisal_id": appraisal_id, "level": 1, "rated_on": "2023-11-15"}
    ]
    rem_1 = [
        f
        for f in models.compliance(as_of=notice - timedelta(days=1))["findings"]
        if f["rule"] == "REM-1"
    ]
    assert [f["subject_id"] for f in rem_1] == ["E1"]
    assert not [f for f in models.compliance(as_of=notice)["findings"] if f["rule"] == "REM-1"]
    cycle = models.removal_history("E1", as_of=notice, window_measure="appraisal-cycle")
    assert cycle["window_measure"] == "appraisal-cycle"


# --- Reports -------------------------------------------------------------------------------


def test_below_fully_successful_lists_ratings_in_the_three_years_up_to_the_date(
    story: Story, models: ReadModels
) -> None:
    as_of = date(2024, 11, 15)
    story.executive("E1")
    story.executive("E2", agency="DOT")
    story.executive("E3")
    on_edge = story.appraisal("E1", add_years(as_of, -3), 2)  # D - 3 years: excluded
    inside = story.appraisal("E1", add_years(as_of, -3) + timedelta(days=1), 1)
    story.appraisal("E2", as_of, 2, agency="DOT")  # D itself: included
    story.appraisal("E3", as_of - timedelta(days=30), 3)  # Fully Successful: not listed
    story.appraisal("E3", as_of + timedelta(days=1), 1)  # after D: not yet
    models.catch_up()
    report = models.below_fully_successful(as_of)
    assert report["as_of"] == "2024-11-15"
    assert [e["executive_id"] for e in report["executives"]] == ["E1", "E2"]
    e1 = report["executives"][0]
    assert {k: e1[k] for k in ("name", "title", "pay_plan", "agency", "duty_station")} == {
        "name": "Name of E1",
        "title": "Deputy Assistant Secretary",
        "pay_plan": "ES",
        "agency": "DOE",
        "duty_station": "Washington, DC",
    }
    assert e1["ratings"] == [{"appraisal_id": inside, "level": 1, "rated_on": "2021-11-16"}]
    assert on_edge not in str(report)
    only_dot = models.below_fully_successful(as_of, agency="DOT")
    assert [e["executive_id"] for e in only_dot["executives"]] == ["E2"]


def test_rating_distribution_counts_all_and_caps_career_executives_under_ses_2025(
    story: Story, models: ReadModels
) -> None:
    levels = [5, 4, 3, 3, 3]
    for i, level in enumerate(levels, start=1):
        story.executive(f"C{i}")
        story.appraisal(f"C{i}", date(2026, 11, 16), level, fy=2026)
    story.executive("N1", appointment_type="noncareer")
    story.appraisal("N1", date(2026, 11, 16), 5, fy=2026)
    story.executive("X1", agency="DOT")
    story.appraisal("X1", date(2026, 11, 16), 5, fy=2026, agency="DOT")
    story.executive("O1")
    story.appraisal("O1", date(2025, 11, 16), 5, fy=2025)  # FY2025: another cycle
    models.catch_up()
    report = models.rating_distribution("DOE", "FY2026")
    assert report["agency"] == "DOE" and report["cycle"] == "FY2026"
    assert report["counts"] == {"1": 0, "2": 0, "3": 3, "4": 1, "5": 2}
    assert report["share_levels_4_5"] == pytest.approx(2 / 5)  # the noncareer L5 left out
    assert [f["rule"] for f in report["findings"]] == ["RAT-9"]
    assert report["findings"][0]["subject_id"] == "DOE/FY2026"
    assert any(f["rule"] == "RAT-9" for f in models.compliance(agency="DOE")["findings"])

    story.app.grant_rating_cap_waiver(  # granted before today (a later one counts from then)
        agency="DOE",
        cycle="FY2026",
        granted_on=date(2026, 11, 20),
        reference="EO 99999",
        actor="admin-1",
        submitted_by="hr-app-1",
    )
    models.catch_up()
    assert models.rating_distribution("DOE", "FY2026")["findings"] == []
    assert models.rating_distribution("DOT", "FY2026")["counts"]["5"] == 1
    empty = models.rating_distribution("DOE", "FY2020")
    assert empty["counts"] == dict.fromkeys("12345", 0) and empty["share_levels_4_5"] is None


def test_compliance_flags_late_plans_missing_reviews_and_removals(
    story: Story, models: ReadModels
) -> None:
    story.executive("E1")
    story.executive("E2", agency="DOT")
    story.board("DOE")
    story.plan("E1", "LATE", 2023, communicated_late_by=20)  # PLAN-1
    story.appraisal("E2", date(2023, 11, 15), 3, agency="DOT", reviews=False)  # MON-1
    low = story.appraisal("E1", date(2022, 11, 15), 1)
    story.action("E1", "removal", date(2023, 1, 10), [low])  # REM-6 unless subpart G cited
    models.catch_up()
    findings = models.compliance(as_of=date(2024, 1, 1))["findings"]
    assert all(set(f) == {"rule", "subject_id", "detail"} for f in findings)
    got = {(f["rule"], f["subject_id"]) for f in findings}
    assert ("PLAN-1", "LATE") in got
    assert ("MON-1", "A-2023-E2-2023-11-15") in got
    assert not [f for f in findings if f["rule"] in ("REM-1", "REM-2", "REM-3")]
    doe = models.compliance(agency="DOE", as_of=date(2024, 1, 1))["findings"]
    assert all(f["subject_id"] != "A-2023-E2-2023-11-15" for f in doe)
    # Before the period ended, a missing review is not yet a finding.
    early = models.compliance(as_of=date(2023, 6, 1))["findings"]
    assert ("MON-1", "A-2023-E2-2023-11-15") not in {(f["rule"], f["subject_id"]) for f in early}
    # Before the plan was communicated, its lateness was not yet recorded.
    assert ("PLAN-1", "LATE") not in {
        (f["rule"], f["subject_id"]) for f in models.compliance(as_of=date(2022, 10, 5))["findings"]
    }


def test_compliance_flags_plans_whose_requirements_fall_short_under_their_policy(
    story: Story, models: ReadModels
) -> None:
    """PLAN-2 (ses-basic-2012) and PLAN-3 (ses-2025), flags each under its own policy only:
    the plan is judged by the policy in force when it was set."""
    story.executive("E1")
    vague = [dict(e) for e in BASIC_ELEMENTS]
    vague[-1] = {**vague[-1], "requirements": ["Improve customer service."]}
    two_goals = [dict(e) for e in ELEMENTS_2025]
    two_goals[-1] = {
        **two_goals[-1],
        "requirements": two_goals[-1]["requirements"][:1] + ["Be excellent."],
    }
    story.plan("E1", "BASIC-VAGUE", 2024, elements=vague)  # ses-basic-2012
    story.plan("E1", "BASIC-OK", 2024)
    story.plan("E1", "NEW-TWO", 2026, elements=two_goals)  # ses-2025
    story.plan("E1", "NEW-OK", 2026)
    models.catch_up()
    findings = models.compliance(as_of=date(2026, 11, 1))["findings"]
    plan = sorted(
        (f["rule"], f["subject_id"], f["detail"])
        for f in findings
        if f["rule"] in ("PLAN-2", "PLAN-3")
    )
    assert plan == [
        (
            "PLAN-2",
            "BASIC-VAGUE",
            "Results Driven requirement 1 states no measurable target or timeline",
        ),
        (
            "PLAN-3",
            "NEW-TWO",
            "Achieving Organizational Goals has 2 performance requirements; at least 3 are "
            "expected",
        ),
        (
            "PLAN-3",
            "NEW-TWO",
            "Achieving Organizational Goals requirement 2 names no strategic goal",
        ),
    ]


def test_compliance_flags_a_long_detail_appraised_after_the_initial_rating(
    story: Story, models: ReadModels
) -> None:
    """PER-5 (flag) through the projection: a detail of 120 days or more (both ends counted)
    appraised after the initial rating, which could not consider it; 119 days is short."""
    rated_on = date(2024, 6, 1)
    started = date(2023, 12, 1)
    cases = {
        "E1": (120, rated_on + timedelta(days=10)),  # flagged
        "E2": (119, rated_on + timedelta(days=10)),  # too short to need one
        "E3": (120, rated_on),  # appraised by the rating's day: considered
    }
    for executive_id, (days, appraised_on) in cases.items():
        story.executive(executive_id)
        story.plan(executive_id, f"A-{executive_id}", 2024)
        story.rate(f"A-{executive_id}", rated_on)
        story.step(
            f"A-{executive_id}",
            "appraise_detail",
            actor="hr-1",
            organization="OMB",
            started_on=started,
            ended_on=started + timedelta(days=days - 1),
            appraised_on=appraised_on,
            level=4,
            summary="Led the budget review.",
        )
    models.catch_up()
    findings = models.compliance(as_of=date(2024, 12, 1))["findings"]
    per_5 = {f["subject_id"]: f["detail"] for f in findings if f["rule"] == "PER-5"}
    assert per_5 == {
        "A-E1": f"the 120-day detail at OMB was appraised on {rated_on + timedelta(days=10)}, "
        f"after the initial rating of {rated_on}, which could not consider it"
    }
    # The finding exists from the day of the late appraisal, not before.
    early = models.compliance(as_of=rated_on + timedelta(days=9))["findings"]
    assert not [f for f in early if f["rule"] == "PER-5"]


def test_compliance_flags_a_transfer_whose_former_ratings_the_initial_rating_does_not_cite(
    story: Story, models: ReadModels
) -> None:
    """RAT-10 (flag): a transfer effective in the period, up to and including the initial
    rating's date, and a narrative citing none of the executive's earlier appraisals."""
    rated_on = date(2024, 9, 20)
    cases = {
        "E1": (rated_on - timedelta(days=200), "Strong year."),  # flagged
        "E2": (rated_on - timedelta(days=200), "Considered {former} from the former agency."),
        "E3": (rated_on, "Strong year."),  # effective on the rating's day: flagged
        "E4": (rated_on + timedelta(days=1), "Strong year."),  # after it: not
        # a longer id that begins with the former one cites it not (it did, by substring)
        "E5": (rated_on - timedelta(days=200), "Considered {former}0 from another agency."),
    }
    former: dict[str, str] = {}
    for executive_id, (effective_on, narrative) in cases.items():
        story.executive(executive_id)
        former[executive_id] = story.appraisal(executive_id, date(2023, 11, 15), 3)
        story.plan(executive_id, f"NEW-{executive_id}", 2024)
        # Effective 45 days after its notice (Story.action).
        story.action(executive_id, "transfer", effective_on - timedelta(days=45), [])
        story.rate(
            f"NEW-{executive_id}", rated_on, narrative=narrative.format(former=former[executive_id])
        )
    models.catch_up()

    def rat_10(as_of: date) -> dict[str, str]:
        findings = models.compliance(as_of=as_of)["findings"]
        return {f["subject_id"]: f["detail"] for f in findings if f["rule"] == "RAT-10"}

    found = rat_10(date(2024, 12, 1))
    assert sorted(found) == ["NEW-E1", "NEW-E3", "NEW-E5"]
    assert found["NEW-E1"] == (
        f"the executive transferred on {rated_on - timedelta(days=200)}; the initial rating "
        f"cites none of the former agency's appraisals ({former['E1']})"
    )
    assert f"transferred on {rated_on}" in found["NEW-E3"]
    # Before the initial rating there is nothing to judge yet.
    assert rat_10(rated_on - timedelta(days=1)) == {}
    assert sorted(rat_10(rated_on)) == ["NEW-E1", "NEW-E3", "NEW-E5"]


# --- Audit ---------------------------------------------------------------------------------


def test_audit_trails_by_executive_appraisal_and_actor_verify_each_entry(
    story: Story, models: ReadModels, ledger_config: LedgerConfig
) -> None:
    story.executive("E1")
    story.executive("E2")
    first = story.appraisal("E1", date(2022, 11, 15), 3)
    story.appraisal("E2", date(2022, 11, 15), 4)
    story.action("E1", "reassignment", date(2023, 1, 10), [])
    models.catch_up()
    trail = models.audit(executive_id="E1")
    assert trail[0]["type"] == "ExecutiveRegistered"
    assert {t["stream_id"] for t in trail} == {"E1", first}
    assert [t["position"] for t in trail] == sorted(t["position"] for t in trail)
    assert all(t["verification"]["ok"] for t in trail)
    assert set(trail[1]) >= {"position", "type", "occurred_on", "actor", "submitted_by"}
    by_appraisal = models.audit(appraisal_id=first)
    assert [t["stream_version"] for t in by_appraisal] == list(range(1, len(by_appraisal) + 1))
    assert all(t["verification"]["chain_ok"] for t in by_appraisal)
    by_actor = models.audit(actor="AA1")
    assert {t["type"] for t in by_actor} == {"FinalRatingAssigned", "PersonnelActionRecorded"}
    assert len(by_actor) == 3
    assert models.audit(executive_id="E1", actor="AA1") == [
        t for t in by_actor if t["stream_id"] in {"E1", first}
    ]
    with pytest.raises(ValueError, match="needs"):
        models.audit()

    # Someone with database access rewrites the final rating: the trail shows it.
    final = by_appraisal[-1]
    table = events_table(ledger_config)
    column = "notification_id" if ledger_config.is_postgres else "rowid"
    (state,) = raw(
        ledger_config, f"SELECT state FROM {table} WHERE {column} = ?", [final["position"]]
    )[0]
    forged = bytes(state).replace(b'"level":3', b'"level":5')
    assert forged != bytes(state)
    raw(
        ledger_config,
        f"UPDATE {table} SET state = ? WHERE {column} = ?",
        [forged, final["position"]],
    )
    tampered = models.audit(appraisal_id=first)[-1]["verification"]
    assert tampered["ok"] is False and tampered["hash_ok"] is False
    assert "hash" in tampered["problems"]

    # Chain links are checked against entries outside the trail too: the actor's trail holds
    # the final rating but not the PRB recommendation before it, whose stored hash is rewritten.
    linked = [t for t in models.audit(actor="AA1") if t["stream_id"] == first]
    assert [t["verification"]["chain_ok"] for t in linked] == [True]
    before = by_appraisal[-2]
    (state,) = raw(
        ledger_config, f"SELECT state FROM {table} WHERE {column} = ?", [before["position"]]
    )[0]
    rehashed = bytes(state).replace(before["hash"].encode(), b"0" * 64)
    assert rehashed != bytes(state)
    raw(
        ledger_config,
        f"UPDATE {table} SET state = ? WHERE {column} = ?",
        [rehashed, before["position"]],
    )
    broken = [t for t in models.audit(actor="AA1") if t["stream_id"] == first][0]["verification"]
    assert broken["chain_ok"] is False and "chain" in broken["problems"]


def test_an_audit_page_admits_only_visible_entries_and_stops_its_scan_where_told(
    app: LedgerApp, models: ReadModels
) -> None:
    """`audit_page` (the API's audit-trail pages): the entries a token may see are chosen
    before the page is cut, so `next_after` is null on the page holding the last of them;
    an actor's scan that reads `max_scan` entries without filling the page ends there, with
    a `next_after` to go on from (as `/v1/ledger/events` does past 20,000 rows)."""
    for n in range(250):
        register(app, f"E{n}", agency="DOT" if n < 249 else "DOE")
    models.catch_up()
    doe = {"E249"}
    pages: list[tuple[list[str], int | None]] = []
    after = 0
    while True:
        items, next_after = models.audit_page(
            actor="hr-1", after=after, limit=5, visible=doe.__contains__, max_scan=100
        )
        pages.append(([i["stream_id"] for i in items], next_after))
        if next_after is None:
            break
        assert next_after > after
        after = next_after
    assert [s for ids, _ in pages for s in ids] == ["E249"]
    assert pages[-1] == (["E249"], None)
    assert all(not ids for ids, _ in pages[:-1]) and len(pages) == 3  # 100 + 100 + 50 read
    everyone, next_after = models.audit_page(actor="hr-1", limit=249)
    assert len(everyone) == 249 and next_after == everyone[-1]["position"]
    rest, next_after = models.audit_page(actor="hr-1", after=everyone[-1]["position"], limit=5)
    assert [i["stream_id"] for i in rest] == ["E249"] and next_after is None


# --- Determinism, replays, concurrency -----------------------------------------------------


def history(story: Story) -> None:
    """A small mixed history: two agencies, removals, a waiver."""
    for i, agency in enumerate(["DOE", "DOE", "DOT"], start=1):
        story.executive(f"E{i}", agency=agency)
        story.appraisal(f"E{i}", date(2022, 11, 15), 1 + i, agency=agency)
        story.appraisal(f"E{i}", date(2023, 11, 15), 3 - (i % 2), agency=agency)
    story.action("E1", "reassignment", date(2024, 1, 10), [])
    story.app.grant_rating_cap_waiver(
        agency="DOT",
        cycle="FY2026",
        granted_on=date(2026, 12, 1),
        reference="EO 1",
        actor="admin-1",
        submitted_by="hr-app-1",
    )


def test_rebuild_gives_the_digest_of_incremental_processing(
    story: Story, models: ReadModels
) -> None:
    story.executive("E0")
    models.catch_up()
    story.appraisal("E0", date(2022, 11, 15), 2)
    models.catch_up()  # a new batch: rows are loaded from the tables, not a fresh cache
    history(story)
    models.runner.catch_up(batch_size=3)
    incremental = models.digest()
    assert set(incremental) == {"current_ratings", "removal_history", "compliance", "audit"}
    fresh = ReadModels(story.app)  # another process's view: empty caches
    fresh.runner.rebuild()
    assert fresh.digest() == incremental
    models.runner.rebuild(["compliance"])
    assert models.digest() == incremental
    assert [s.lag for s in models.status()] == [0, 0, 0, 0]


def test_a_rebuild_keeps_its_caches_and_goes_on_from_them(story: Story) -> None:
    """The rebuild's closing catch-up finds nothing new: its rows stay cached (dropping them
    cost about 0.6 s at a million events), and later events are applied to them in memory,
    with the same result as a rebuild."""
    history(story)
    models = ReadModels(story.app)
    models.runner.rebuild()
    assert all(p.cached_rows() > 0 for p in models.runner.projections.values())
    story.appraisal("E2", date(2024, 11, 15), 1)
    models.catch_up()
    assert all(p.cached_rows() > 0 for p in models.runner.projections.values())
    fresh = ReadModels(story.app)
    fresh.runner.rebuild()
    assert models.digest() == fresh.digest()


def test_readers_see_the_old_rows_until_a_rebuild_replaces_them(
    story: Story, models: ReadModels
) -> None:
    """A rebuild writes nothing until its first window is applied: meanwhile another
    process reads the stored rows and keeps them current, and the rebuild's rows then
    replace them, with the later events caught up on top."""
    history(story)
    models.catch_up()
    reader = ReadModels(story.app)  # another process: its own caches and transactions
    seen: list[dict[str, Any] | None] = []

    def meanwhile(position: int) -> None:
        if not seen:
            seen.append(reader.executive("E1"))
            story.executive("E9")  # a write during the rebuild, projected by the other
            reader.catch_up()
            seen.append(reader.executive("E9"))

    rebuilder = ReadModels(story.app)
    head = story.app.recorder.max_notification_id()
    reached = rebuilder.runner.rebuild(progress=meanwhile, batch_size=2)
    assert reached == story.app.recorder.max_notification_id() == head + 1  # E9 included
    assert seen[0] is not None and seen[0]["executive_id"] == "E1"
    assert seen[1] is not None and seen[1]["executive_id"] == "E9"
    fresh = ReadModels(story.app)
    fresh.runner.rebuild()
    assert rebuilder.digest() == fresh.digest()
    assert rebuilder.executive("E9") is not None


def test_as_of_replays_into_a_private_copy(story: Story, models: ReadModels) -> None:
    story.executive("E1")
    first = story.appraisal("E1", date(2022, 11, 15), 2)
    models.catch_up()
    position = story.app.recorder.max_notification_id()
    known_at = story.app.clock.now  # type: ignore[attr-defined]
    story.appraisal("E1", date(2023, 11, 15), 5)
    head = models.catch_up()
    live = models.digest()

    then = models.as_of(position=position)
    current = then.executive("E1")
    assert current is not None and current["current_rating"]["appraisal_id"] == first
    assert then.runner.positions()["current_ratings"] == position
    assert [a["stream_version"] for a in then.appraisal_events(first)][-1] == 9
    assert len(then.audit(executive_id="E1")) < len(models.audit(executive_id="E1"))
    by_time = models.as_of(known_at=known_at.isoformat())
    assert by_time.executive("E1") == current
    assert by_time.ratings("E1") == then.ratings("E1")
    assert by_time.compliance(as_of=date(2024, 1, 1)) == then.compliance(as_of=date(2024, 1, 1))
    one = models.as_of(executive_id="E1", position=position)
    assert one.removal_history("E1", date(2024, 1, 1)) == then.removal_history(
        "E1", date(2024, 1, 1)
    )
    # The live read models are untouched, and a full copy has the same state.
    assert models.digest() == live
    assert models.as_of(position=head).digest() == live


def _indexed_positions(ledger_config: LedgerConfig) -> list[int]:
    """Every position the audit index holds, sorted (each event once, if all is well)."""
    index = table(ledger_config, "proj_audit_actors")
    actors = raw(ledger_config, f"SELECT positions FROM {index}")
    return sorted(p for (text,) in actors for p in json.loads(text))


def test_two_processes_catching_up_at_once_apply_each_event_once(
    story: Story, app: LedgerApp, ledger_config: LedgerConfig
) -> None:
    history(story)
    readers = [ReadModels(LedgerApp(ledger_config)) for _ in range(3)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(readers))

    def run(r: ReadModels) -> None:
        try:
            barrier.wait()
            r.runner.catch_up(batch_size=2)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in readers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    together = readers[0].digest()
    rebuilt = ReadModels(app)
    rebuilt.runner.rebuild()
    assert rebuilt.digest() == together
    positions = _indexed_positions(ledger_config)
    head = app.recorder.max_notification_id()
    assert positions == list(range(1, head + 1))  # every event indexed exactly once


class _Gate:
    """A write gate that records when it is held, and can run something as it is entered."""

    def __init__(self) -> None:
        self.held = False
        self.entered = 0
        self.on_enter: Callable[[], None] | None = None

    def __enter__(self) -> None:
        self.entered += 1
        if self.on_enter is not None:
            action, self.on_enter = self.on_enter, None
            action()
        self.held = True

    def __exit__(self, *_exc: object) -> None:
        self.held = False


def test_events_are_applied_outside_the_write_gate_once_the_positions_are_known(
    story: Story, app: LedgerApp
) -> None:
    """`Runner.gate` (the server's write gate, which appends wait for) is held only to write:
    after the first batch, which reads rows inside its write transaction, batches are
    applied with no gate held and written with it, with the result of a rebuild. SQLite
    only: on PostgreSQL every batch is applied inside its transaction, under the tracking
    rows' lock, which the appends do not wait for."""
    story.executive("E0")
    ReadModels(app).catch_up()  # another process: the tables are not this one's to cache
    history(story)
    models = ReadModels(app)
    gate = _Gate()
    models.runner.gate = gate
    held_while_applying: list[bool] = []
    for projection in models.runner.projections.values():
        apply = projection.process_all

        def recorded(events: Any, apply: Any = apply) -> None:
            held_while_applying.append(gate.held)
            apply(events)

        projection.process_all = recorded  # type: ignore[method-assign]
    models.runner.catch_up(batch_size=5)
    per_batch = len(models.runner.projections)
    batches = len(held_while_applying) // per_batch
    assert batches >= 4
    assert held_while_applying[:per_batch] == [True] * per_batch  # the careful first batch
    if app.config.is_postgres:
        assert all(held_while_applying)
    else:
        assert not any(held_while_applying[per_batch:])
    assert gate.entered == batches and not gate.held
    rebuilt = ReadModels(app)
    rebuilt.runner.rebuild()
    assert models.digest() == rebuilt.digest()


def test_a_batch_applied_outside_the_gate_is_dropped_if_another_process_moved_on(
    story: Story, app: LedgerApp, ledger_config: LedgerConfig
) -> None:
    """Another process catches up between this one's apply and its write: the write finds
    the positions moved, drops the batch and goes on from theirs; each event once."""
    story.executive("E0")
    ReadModels(app).catch_up()  # another process: the tables are not this one's to cache
    history(story)
    models, other = ReadModels(app), ReadModels(LedgerApp(ledger_config))
    gate = _Gate()
    models.runner.gate = gate
    models.runner.catch_up(batch_size=5)  # positions known: the next batch is applied first
    entered = gate.entered
    story.executive("E7")
    story.appraisal("E7", date(2022, 11, 15), 4)
    head = app.recorder.max_notification_id()
    gate.on_enter = other.catch_up  # as this process is about to write its batch
    assert models.runner.catch_up(batch_size=1000) == head
    assert gate.entered == entered + 1  # the dropped batch's write; none after (moved on)
    assert other.runner.positions() == dict.fromkeys(models.runner.projections, head)
    assert models.executive("E7") is not None
    rebuilt = ReadModels(app)
    rebuilt.runner.rebuild()
    assert models.digest() == rebuilt.digest()
    positions = _indexed_positions(ledger_config)
    assert positions == list(range(1, head + 1))  # every event indexed exactly once


def test_a_big_write_folds_the_wal_in_after_releasing_the_gate(
    sqlite_config: LedgerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rebuild's write, or any of `BULK_FROM` events or more, commits with SQLite's
    automatic checkpoint off (the other rebuild process and the server's appends would wait
    for the gate while it copies the WAL) and checkpoints once the gate is released; a
    small catch-up keeps the automatic one. Either way the connection gets its
    auto-checkpoint setting back."""
    from projections import runner

    app = LedgerApp(sqlite_config, clock=Clock())
    history(Story(app))
    models = ReadModels(app)
    gate = _Gate()
    models.runner.gate = gate
    store = models.store
    writes: list[int] = []  # wal_autocheckpoint inside each write transaction
    checkpoints: list[bool] = []  # whether the gate was held
    transaction, checkpoint = store.transaction, store.checkpoint

    @contextmanager
    def recorded(commit: bool, *, bulk: bool = False) -> Iterator[Any]:
        with transaction(commit, bulk=bulk) as cursor:
            if commit:
                cursor.execute("PRAGMA wal_autocheckpoint")
                writes.append(int(cursor.fetchone()[0]))
            yield cursor

    def recorded_checkpoint() -> None:
        checkpoints.append(gate.held)
        checkpoint()

    monkeypatch.setattr(store, "transaction", recorded)
    monkeypatch.setattr(store, "checkpoint", recorded_checkpoint)
    models.runner.rebuild()  # far fewer events than BULK_FROM, but a rebuild
    assert writes == [0] and checkpoints == [False]
    story = Story(app)
    story.executive("E9")
    models.runner.catch_up()
    assert writes == [0, 1000] and checkpoints == [False]
    monkeypatch.setattr(runner, "BULK_FROM", 1)
    story.executive("E10")
    models.runner.catch_up()
    assert writes == [0, 1000, 0] and checkpoints == [False, False]
    for _ in range(3):  # whichever pooled connection comes next
        with app.recorder.datastore.transaction(commit=True) as cursor:
            cursor.execute("PRAGMA wal_autocheckpoint")
            assert int(cursor.fetchone()[0]) == 1000


def test_a_checkpoint_that_fails_is_logged_not_raised(
    sqlite_config: LedgerConfig, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The rows are committed before the deferred checkpoint: if it cannot run, SQLite folds
    the log in at a later commit, and the rebuild goes on."""
    import sqlite3

    store = ReadModels(LedgerApp(sqlite_config)).store

    @contextmanager
    def broken(*, commit: bool) -> Iterator[Any]:
        raise sqlite3.OperationalError("disk I/O error")
        yield

    monkeypatch.setattr(store.datastore, "get_connection", broken)
    with caplog.at_level("WARNING", logger="ses_ledger.projections"):
        store.checkpoint()
    assert "could not checkpoint the write-ahead log (disk I/O error)" in caplog.text


def test_cheap_fields_match_the_decoded_entry(story: Story, app: LedgerApp) -> None:
    story.executive("E1")
    story.app.register_executive(
        'E"2',
        name="Zoë \\ Quote",
        title="T",
        pay_plan="ES",
        agency="DOE",
        duty_station="D",
        appointment_type="career",
        probationary=False,
        appointed_on=date(2015, 1, 5),
        actor='actor "quoted"',
        submitted_by="hr\\app",
    )
    for n in app.recorder.select_notifications(start=1, limit=10):
        fast, slow = Event.from_notification(n), Event.from_notification(n)
        entry = slow.entry()
        assert (fast.actor, fast.occurred_on, fast.recorded_at, fast.submitted_by) == (
            entry["actor"],
            entry["occurred_on"],
            entry["recorded_at"],
            entry["submitted_by"],
        )


def test_cli_reports_status_and_digests(
    story: Story,
    ledger_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from ses_ledger import cli

    def main(argv: list[str]) -> int:
        monkeypatch.setattr(cli, "_EXTENSIONS", [])  # main() registers them on each call
        return cli.main(argv)

    point_cli_at(monkeypatch, ledger_config)
    story.executive("E1")
    story.appraisal("E1", date(2022, 11, 15), 3)
    head = story.app.recorder.max_notification_id()

    def status() -> dict[str, list[str]]:
        assert main(["projections", "status"]) == 0
        lines = capsys.readouterr().out.splitlines()[1:]
        return {line.split()[0]: line.split()[1:] for line in lines}

    assert status()["current_ratings"] == ["0", str(head), str(head), "behind"]
    assert main(["projections", "rebuild", "--quiet", "--digest"]) == 0
    rebuilt = capsys.readouterr().out
    assert re.search(rf"up to position {head} in \d+\.\d s\n", rebuilt)
    assert status()["audit"] == [str(head), str(head), "0", "ok"]
    assert main(["projections", "digest"]) == 0
    digests = capsys.readouterr().out
    assert digests.strip() and digests.strip() in rebuilt
    # one column of digests, whatever the names' lengths
    assert len({line.rindex(" ") for line in digests.splitlines()}) == 1
    assert main(["projections", "rebuild", "nonsense"]) == 2
    assert "unknown projection nonsense" in capsys.readouterr().err


def _durability(store: Any, cursor: Any) -> str:
    if store.dialect == "postgres":
        cursor.execute("SHOW synchronous_commit")
        return str(cursor.fetchone()["synchronous_commit"])
    cursor.execute("PRAGMA synchronous")
    return {0: "off", 1: "normal", 2: "full", 3: "extra"}[int(cursor.fetchone()[0])]


def test_projection_writes_skip_the_disk_wait_and_ledger_appends_keep_it(
    app: LedgerApp,
) -> None:
    """Read-model commits relax durability (derived data, redone after a power cut); the
    connections the ledger appends through get full durability back afterwards."""
    store = ReadModels(app).store
    durable = {"postgres": "on", "sqlite": "full"}[store.dialect]
    relaxed = {"postgres": "off", "sqlite": "normal"}[store.dialect]
    with store.transaction(commit=True) as cursor:
        assert _durability(store, cursor) == relaxed
    for _ in range(3):  # whichever pooled connection comes next
        with app.recorder.datastore.transaction(commit=True) as cursor:
            assert _durability(store, cursor) == durable
    with pytest.raises(RuntimeError):
        with store.transaction(commit=True) as cursor:
            raise RuntimeError("a failed batch")
    with app.recorder.datastore.transaction(commit=True) as cursor:
        assert _durability(store, cursor) == durable


def test_projection_writes_free_pages_without_zeroing_them(sqlite_config: LedgerConfig) -> None:
    """SQLite: a bulk read-model write (a rebuild's) turns `secure_delete` off (its DELETEs
    would zero every freed page) and has a larger page cache; other writes, and the
    ledger's connections afterwards, have the usual settings."""
    app = LedgerApp(sqlite_config)
    store = ReadModels(app).store

    def zeroing(cursor: Any) -> int:
        cursor.execute("PRAGMA secure_delete")
        return int(cursor.fetchone()[0])

    def cache(cursor: Any) -> int:
        cursor.execute("PRAGMA cache_size")
        return int(cursor.fetchone()[0])

    with app.recorder.datastore.transaction(commit=False) as cursor:
        compiled, cached = zeroing(cursor), cache(cursor)
    assert cached != -BULK_CACHE_KIB
    with store.transaction(commit=True, bulk=True) as cursor:
        assert zeroing(cursor) == 0
        assert cache(cursor) == -BULK_CACHE_KIB  # a larger page cache for the bulk write
    with pytest.raises(RuntimeError):
        with store.transaction(commit=True, bulk=True) as cursor:
            raise RuntimeError("a failed batch")
    with store.transaction(commit=True) as cursor:
        assert (zeroing(cursor), cache(cursor)) == (compiled, cached)
    for _ in range(3):  # whichever pooled connection comes next
        with app.recorder.datastore.transaction(commit=True) as cursor:
            assert (zeroing(cursor), cache(cursor)) == (compiled, cached)


def test_a_large_catch_up_freezes_its_objects_out_of_the_collector(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Objects a big catch-up leaves alive (a rebuild's cached rows) are frozen before the
    collector is switched back on, so no collection walks them; a small one freezes none."""
    import gc

    from projections import runner

    monkeypatch.setattr(runner, "FREEZE_FROM", 5_000)
    gc.collect()
    frozen = gc.get_freeze_count()
    try:
        with runner._no_cyclic_gc():
            small = [{"row": i} for i in range(100)]
        assert gc.get_freeze_count() == frozen and gc.isenabled()
        with runner._no_cyclic_gc():
            kept = [{"row": i} for i in range(10_000)]
        assert gc.get_freeze_count() >= frozen + len(kept) and gc.isenabled()
        assert small and kept
    finally:
        gc.unfreeze()


def test_a_fresh_write_stores_what_an_upsert_stores(ledger_config: LedgerConfig) -> None:
    """A rebuild's write into emptied tables (COPY on PostgreSQL) keeps every value exactly,
    escapes included, as the per-row upsert of the projector's batches does."""
    from projections.store import INT, JSON, TEXT, LedgerStore, Rows, Table

    table = Table("proj_test_fresh", (("k", TEXT), ("n", INT), ("doc", JSON)), ("k",))
    app = LedgerApp(ledger_config)  # kept: its connection pool closes with it
    store = LedgerStore(app.recorder)
    with store.transaction(commit=True) as cursor:
        for statement in store.create_statements(table):
            cursor.execute(statement)
    awkward = ["tab\there", "line\nbreak", "back\\slash", "\\N", "", "é ✓ 𝄞", 'q"uote', "\r"]
    written: dict[bool, list[tuple[Any, ...]]] = {}
    for fresh in (False, True):
        rows = Rows(store, table)
        rows.complete = True
        for i, text in enumerate(awkward):
            rows.put(text or "empty", {"k": text or "empty", "n": i - 3, "doc": {"t": text}})
        rows.put("none", {"k": "none", "n": None, "doc": None})
        with store.transaction(commit=True) as cursor:
            cursor.execute(f"DELETE FROM {store.name(table.name)}")
            rows.flush(cursor, fresh=fresh)
        with store.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT k, n, doc FROM {store.name(table.name)}")
            written[fresh] = sorted((r["k"], r["n"], r["doc"]) for r in cursor.fetchall())
    assert written[True] == written[False]
    assert ("back\\slash", -1, '{"t":"back\\\\slash"}') in written[True]
    assert ("none", None, None) in written[True] and len(written[True]) == len(awkward) + 1
