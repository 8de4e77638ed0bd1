"""`/v1/rating-cap-waivers`: a presidential waiver of the ses-2025 rating cap (RAT-9)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api import access
from api.auth import Role
from api.commands import execute
from api.deps import ServicesDep, WriteDep
from api.errors import BODY_STATUSES, problem_responses
from api.schemas.responses import WriteResult
from api.schemas.writes import RatingCapWaiverIn
from api.strict_json import UniqueNamesRoute

router = APIRouter(
    prefix="/v1/rating-cap-waivers", tags=["rating cap waivers"], route_class=UniqueNamesRoute
)


@router.post(
    "",
    status_code=201,
    response_model=WriteResult,
    responses=problem_responses(*BODY_STATUSES, 401, 403, 409, 422),
)
def grant_rating_cap_waiver(ctx: WriteDep, services: ServicesDep, body: RatingCapWaiverIn) -> Any:
    """Record the waiver for one agency and cycle (`admin`); actor: the token subject."""
    access.require_write(ctx.principal, body.agency, roles={Role.ADMIN})
    who = ctx.principal.subject
    return execute(
        services,
        ctx,
        body,
        lambda idem: services.ledger.grant_rating_cap_waiver(
            **body.model_dump(), actor=who, submitted_by=who, idempotency=idem
        ),
    )
