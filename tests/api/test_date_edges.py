"""Every date of every command body at the edges of what a date is here (docs/api.md,
"Errors": `YYYY-MM-DD` between 1900 and 2199): years 0001 and 9999, the days just outside the
range, a timestamp or an offset where a date is expected, and the first and last days taken.
A date refused is a 422 `invalid-request` naming that field, and nothing is appended."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from api.schemas.common import Day
from tests.api import story as s
from tests.api.story import Api

#: (path template, a body builder, its date fields)
Body = Callable[[Api], tuple[str, dict[str, Any]]]


def _executive(api: Api) -> tuple[str, dict[str, Any]]:
    return "/v1/executives", s.executive(s.unique("E"))


def _board(api: Api) -> tuple[str, dict[str, Any]]:
    return "/v1/review-boards", s.board(s.unique("PRB-"))


def _waiver(api: Api) -> tuple[str, dict[str, Any]]:
    return "/v1/rating-cap-waivers", s.waiver(s.unique("AG"), "FY2026")


def _plan(api: Api) -> tuple[str, dict[str, Any]]:
    return "/v1/appraisals", s.plan(s.unique("A-"), api.new_executive(), 2024)


def _step(name: str, body: Callable[[], dict[str, Any]]) -> Body:
    def build(api: Api) -> tuple[str, dict[str, Any]]:
        return f"/v1/appraisals/{api.appraisal('planned').appraisal_id}/{name}", body()

    return build


def _of_executive(name: str, body: Callable[[], dict[str, Any]]) -> Body:
    def build(api: Api) -> tuple[str, dict[str, Any]]:
        return f"/v1/executives/{api.new_executive()}/{name}", body()

    return build


BODIES: list[tuple[str, Body, list[str]]] = [
    ("executive", _executive, ["appointed_on"]),
    ("board", _board, ["federal_register_published_on"]),
    ("waiver", _waiver, ["granted_on"]),
    ("plan", _plan, ["period_start", "period_end", "communicated_on"]),
    ("review", _step("progress-reviews", lambda: s.review(2024)), ["reviewed_on"]),
    (
        "detail",
        _step("detail-appraisals", lambda: s.detail(2024)),
        ["started_on", "ended_on", "appraised_on"],
    ),
    (
        "extension",
        _step("period-extension", lambda: s.extension(2024)),
        ["extended_on", "new_period_end"],
    ),
    (
        "initial",
        _step("initial-rating", lambda: s.initial(2024) | {"shared_on": "2024-10-15"}),
        ["rated_on", "shared_on"],
    ),
    ("response", _step("executive-response", lambda: s.response(2024)), ["submitted_on"]),
    ("waived", _step("response-waiver", lambda: s.response_waiver(2024)), ["waived_on"]),
    (
        "hlr-request",
        _step("higher-level-review-request", lambda: s.hlr_request(2024)),
        ["requested_on"],
    ),
    ("hlr", _step("higher-level-review", lambda: s.hlr(2024)), ["reviewed_on"]),
    (
        "prb",
        _step("prb-recommendation", lambda: s.prb(2024, "PRB-X", ["initial_rating"])),
        ["recommended_on"],
    ),
    ("final", _step("final-rating", lambda: s.final(2024)), ["rated_on"]),
    (
        "personnel-action",
        _of_executive(
            "personnel-actions",
            lambda: s.personnel_action() | {"hearing_requested_on": "2024-12-10"},
        ),
        ["notice_on", "effective_on", "hearing_requested_on"],
    ),
    ("complaint", _of_executive("complaints", s.complaint), ["filed_on"]),
]

CASES = [(name, build, field) for name, build, fields in BODIES for field in fields]
IDS = [f"{name}.{field}" for name, _, field in CASES]

#: Not a date of the ledger: outside 1900-2199, or not `YYYY-MM-DD` (a timestamp, an offset).
REFUSED = [
    "0001-01-01",
    "9999-12-31",
    "1899-12-31",
    "2200-01-01",
    "0000-01-01",
    "2024-10-15T00:00:00Z",
    "2024-10-15+05:00",
    "2024-10-15Z",
    "+2024-10-15",
    "2024-W42-2",
    "2024-289",
]


@pytest.mark.parametrize(("name", "build", "field"), CASES, ids=IDS)
def test_a_date_outside_the_ledger_or_with_a_time_or_offset_is_a_422_naming_it(
    shared_api: Api, name: str, build: Body, field: str
) -> None:
    path, body = build(shared_api)
    size = shared_api.ledger_size()
    headers = shared_api.as_("admin", agency="*") if name in ("board", "waiver") else None
    for value in REFUSED:
        r = shared_api.post(path, body | {field: value}, headers)
        assert r.status_code == 422, (value, r.text)
        problem = r.json()
        assert problem["type"] == "urn:ses-ledger:problem:invalid-request", (value, problem)
        assert [e["loc"] for e in problem["errors"]] == [["body", field]], (value, problem)
    assert shared_api.ledger_size() == size


@pytest.mark.parametrize(("name", "build", "field"), CASES, ids=IDS)
def test_the_first_and_last_days_are_dates_the_domain_then_judges(
    shared_api: Api, name: str, build: Body, field: str
) -> None:
    """1900-01-01 and 2199-12-31 pass validation in every field: whatever the answer (201, or
    a rule's 422 for dates out of order), it is never `invalid-request` and never a 5xx."""
    path, body = build(shared_api)
    headers = shared_api.as_("admin", agency="*") if name in ("board", "waiver") else None
    for value in ("1900-01-01", "2199-12-31"):
        r = shared_api.post(path, body | {field: value}, headers)
        assert r.status_code < 500, (value, r.text)
        if r.status_code == 422:
            problem = r.json()
            assert problem["type"] != "urn:ses-ledger:problem:invalid-request", (value, problem)


@pytest.mark.parametrize("value", REFUSED)
def test_a_query_date_outside_the_ledger_or_with_a_time_or_offset_is_a_422_naming_it(
    shared_api: Api, value: str
) -> None:
    """`as_of` (removal history, below-Fully-Successful report) is a date like the bodies'."""
    executive_id = shared_api.new_executive()
    for path in (
        f"/v1/executives/{executive_id}/removal-history",
        "/v1/reports/below-fully-successful",
    ):
        r = shared_api.get(path, shared_api.hr, as_of=value)
        assert r.status_code == 422, (path, value, r.text)
        problem = r.json()
        assert problem["type"] == "urn:ses-ledger:problem:invalid-request"
        assert [e["loc"] for e in problem["errors"]] == [["query", "as_of"]], problem
    for edge in ("1900-01-01", "2199-12-31"):
        r = shared_api.get(f"/v1/executives/{executive_id}/removal-history", as_of=edge)
        assert r.status_code == 200 and r.json()["as_of"] == edge, r.text


@pytest.mark.parametrize("value", ["2024-10-15\n", "٢٠٢٤-10-15", "２０２４-10-15"])
def test_a_date_with_a_line_feed_or_other_digits_is_told_its_shape(value: str) -> None:
    """A final line feed (let through by `$`) or another script's digits (`\\d`) passed the
    shape check and were refused as "not a valid calendar date" (found by the qa-review
    pass): the message now says what a date is written as."""
    with pytest.raises(ValidationError) as raised:
        TypeAdapter(Day).validate_python(value)
    assert "must be a date as YYYY-MM-DD" in str(raised.value)
