"""`/v1/reports`: oversight reports, scoped to the token's agency (any agency for `*`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query

from api import access
from api.deps import PrincipalDep, ReaderDep
from api.errors import InvalidRequest, problem_responses
from api.responses import Json, json_schema
from api.schemas.common import Agency, Day
from api.schemas.writes import Cycle

router = APIRouter(prefix="/v1/reports", tags=["reports"])

ERRORS = problem_responses(401, 403, 422)
AgencyQuery = Annotated[
    Agency | None, Query(description="Default: the token's agency (every agency for `*`).")
]


@router.get(
    "/below-fully-successful",
    response_class=Json,
    responses={
        200: json_schema("executives with final ratings below Level 3 in (D - 3 years, D]"),
        **ERRORS,
    },
)
def below_fully_successful(
    principal: PrincipalDep,
    reader: ReaderDep,
    as_of: Annotated[Day | None, Query(description="The date D (default: today, UTC).")] = None,
    agency: AgencyQuery = None,
) -> Json:
    scope = access.report_agency(principal, agency)
    day = as_of or datetime.now(UTC).date()
    return Json(reader.view().below_fully_successful(day, agency=scope))


@router.get(
    "/rating-distribution",
    response_class=Json,
    responses={200: json_schema("counts per level, share at Levels 4-5, RAT-9 findings"), **ERRORS},
)
def rating_distribution(
    principal: PrincipalDep,
    reader: ReaderDep,
    cycle: Annotated[Cycle, Query(description="The fiscal year, e.g. FY2026.")],
    agency: AgencyQuery = None,
) -> Json:
    scope = access.report_agency(principal, agency)
    if scope is None:
        raise InvalidRequest(
            "name the agency: this token covers every agency",
            [{"loc": ["query", "agency"], "msg": "required for a token whose agency is *"}],
        )
    return Json(reader.view().rating_distribution(scope, cycle))


@router.get(
    "/compliance",
    response_class=Json,
    responses={200: json_schema("findings of flagged rules"), **ERRORS},
)
def compliance(
    principal: PrincipalDep,
    reader: ReaderDep,
    agency: AgencyQuery = None,
) -> Json:
    scope = access.report_agency(principal, agency)
    return Json(reader.view().compliance(agency=scope))
