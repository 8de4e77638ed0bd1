"""`/v1/review-boards`: Performance Review Boards, registered by `admin`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api import access
from api.auth import Role
from api.commands import execute
from api.deps import ServicesDep, WriteDep
from api.errors import BODY_STATUSES, problem_responses
from api.schemas.responses import WriteResult
from api.schemas.writes import ReviewBoardIn
from api.strict_json import UniqueNamesRoute

router = APIRouter(prefix="/v1/review-boards", tags=["review boards"], route_class=UniqueNamesRoute)


@router.post(
    "",
    status_code=201,
    response_model=WriteResult,
    responses=problem_responses(*BODY_STATUSES, 401, 403, 409, 422),
)
def register_review_board(ctx: WriteDep, services: ServicesDep, body: ReviewBoardIn) -> Any:
    """Register a PRB and its members (PRB-1); actor: the token subject."""
    access.require_write(ctx.principal, body.agency, roles={Role.ADMIN})
    who = ctx.principal.subject
    fields = body.model_dump(exclude={"board_id"})
    return execute(
        services,
        ctx,
        body,
        lambda idem: services.ledger.register_review_board(
            body.board_id, **fields, actor=who, submitted_by=who, idempotency=idem
        ),
    )
