"""`/v1/reports`: oversight reports, scoped to the token's agency (any agency for `*`).

`audit-trail` goes beyond api-contract.md (which it leaves as it is): the audit projection's
trails by actor, executive and appraisal, which oversight staff otherwise had no way to ask.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import Field

from api import access
from api.auth import ALL_AGENCIES, RECORDED_ACTOR_PATTERN
from api.deps import PrincipalDep, ReaderDep, ServicesDep
from api.errors import InvalidRequest, problem_responses
from api.responses import Json, documented
from api.routes.ledger import MAX_SCAN
from api.schemas import reads as r
from api.schemas.common import MAX_ID_LENGTH, Agency, Day, Digits, Id, Position
from api.schemas.writes import FIRST_CYCLE, LAST_CYCLE, Cycle

router = APIRouter(prefix="/v1/reports", tags=["reports"])

ERRORS = problem_responses(401, 403, 422)
AgencyQuery = Annotated[
    Agency | None, Query(description="Default: the token's agency (every agency for `*`).")
]


@router.get(
    "/below-fully-successful",
    response_class=Json,
    responses={
        200: documented(
            r.BelowFullySuccessfulOut,
            "executives with final ratings below Level 3 in (D - 3 years, D]",
        ),
        **ERRORS,
    },
)
def below_fully_successful(
    principal: PrincipalDep,
    reader: ReaderDep,
    as_of: Annotated[
        Day | None,
        Query(description="The date D (default: today, UTC; in a replay, the day it stands at)."),
    ] = None,
    agency: AgencyQuery = None,
) -> Json:
    scope = access.report_agency(principal, agency)
    view = reader.view(reads=("below_fully_successful",))
    day = as_of or reader.default_as_of(view, principal)
    return Json(view.below_fully_successful(day, agency=scope))


@router.get(
    "/rating-distribution",
    response_class=Json,
    responses={
        200: documented(r.DistributionOut, "counts per level, share at Levels 4-5, RAT-9 findings"),
        **ERRORS,
    },
)
def rating_distribution(
    principal: PrincipalDep,
    reader: ReaderDep,
    cycle: Annotated[
        Cycle,
        Query(description=f"The fiscal year, FY{FIRST_CYCLE} to FY{LAST_CYCLE}, e.g. FY2026."),
    ],
    agency: AgencyQuery = None,
) -> Json:
    scope = access.report_agency(principal, agency)
    if scope is None:
        raise InvalidRequest(
            "name the agency: this token covers every agency",
            [{"loc": ["query", "agency"], "msg": "required for a token whose agency is *"}],
        )
    view = reader.view(reads=("rating_distribution",))
    day = reader.default_as_of(view, principal)
    return Json(view.rating_distribution(scope, cycle, as_of=day))


@router.get(
    "/compliance",
    response_class=Json,
    responses={200: documented(r.ComplianceOut, "findings of flagged rules"), **ERRORS},
)
def compliance(
    principal: PrincipalDep,
    reader: ReaderDep,
    agency: AgencyQuery = None,
) -> Json:
    scope = access.report_agency(principal, agency)
    view = reader.view(reads=("compliance",))
    return Json(view.compliance(agency=scope, as_of=reader.default_as_of(view, principal)))


#: The most entries an audit-trail page holds (each one's signature is checked).
AUDIT_PAGE = 1000
#: An actor as entries may record it (`RECORDED_ACTOR_PATTERN`): an id, or an id and the
#: line feed a server before 2026-12-01 took in a token subject, so that such an actor's
#: entries can still be listed.
RecordedActor = Annotated[
    str, Field(pattern=RECORDED_ACTOR_PATTERN, min_length=1, max_length=MAX_ID_LENGTH + 1)
]


@router.get(
    "/audit-trail",
    response_class=Json,
    responses={
        200: documented(r.AuditTrailOut, "entries with their verification, and next_after"),
        **problem_responses(401, 403, 404, 422),
    },
)
async def audit_trail(
    principal: PrincipalDep,
    services: ServicesDep,
    reader: ReaderDep,
    actor: Annotated[
        RecordedActor | None,
        Query(
            description="The acting official's id (an id recorded with a trailing line feed "
            "before 2026-12-01: `%0A` after it)."
        ),
    ] = None,
    executive_id: Annotated[
        Id | None, Query(description="An executive: their record and their appraisals.")
    ] = None,
    appraisal_id: Annotated[Id | None, Query(description="One appraisal.")] = None,
    after: Annotated[Position, Query(description="Entries after this position.")] = 0,
    limit: Annotated[int, Query(ge=1, le=AUDIT_PAGE), Digits] = 100,
) -> Json:
    """Who did what, when, under which policy: the ledger entries of an actor, of an
    executive's record or of an appraisal (given together, the entries matching all), in
    global order, each with its hash, signature and chain link checked now. For `auditor`
    and `admin`; a token of one agency sees its agency's entries only, so a page can hold
    fewer than `limit`: follow `next_after` until it is null."""
    access.require_role(principal, access.LEDGER_READERS)
    if actor is None and executive_id is None and appraisal_id is None:
        raise InvalidRequest(
            "name an actor, an executive_id or an appraisal_id",
            [{"loc": ["query", "actor"], "msg": "one of actor, executive_id, appraisal_id"}],
        )

    def read() -> Json:
        if executive_id is not None:
            facts = services.directory.executive(executive_id)
            access.require_read(principal, facts.agency, roles=access.LEDGER_READERS)
        if appraisal_id is not None:
            facts = services.directory.appraisal(appraisal_id)
            access.require_read(principal, facts.agency, roles=access.LEDGER_READERS)
        agency = principal.agency
        events, next_after = reader.live(executive_id).audit_page(
            executive_id=executive_id,
            appraisal_id=appraisal_id,
            actor=actor,
            after=after,
            limit=limit,
            # A token of one agency: its entries only, chosen before the page is cut, so
            # that no page is empty and the last says so (as `/v1/ledger/events` pages).
            visible=None
            if agency == ALL_AGENCIES
            else lambda stream_id: services.directory.agency_of(stream_id) == agency,
            max_scan=MAX_SCAN,
            position=reader.replay.position,
            known_at=reader.replay.known_at,
        )
        return Json({"events": events, "next_after": next_after})

    return await reader.run(read, executive_id)
