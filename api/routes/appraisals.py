"""`/v1/appraisals`: the plan, each later step of an appraisal, and appraisal reads.

The ten step endpoints differ only in body, ledger command, who may submit and who the
actor is, so they are declared as one table (`STEPS`) and registered by one factory.
(No `from __future__ import annotations` here: the factory's body annotation must be a
real class at definition time for FastAPI to read it.)
"""

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Path

from api import access
from api.auth import Principal, Role
from api.commands import execute
from api.deps import PrincipalDep, Reader, ReaderDep, ServicesDep, WriteDep
from api.directory import StreamFacts
from api.errors import BODY_STATUSES, problem_responses
from api.responses import Json, documented
from api.schemas import reads as r
from api.schemas import writes as w
from api.schemas.common import MAX_ID_LENGTH, Body
from api.schemas.responses import RatingWriteResult, WriteResult
from api.services import Services
from api.strict_json import UniqueNamesRoute
from ledger.errors import NotFound, UnknownReference

router = APIRouter(prefix="/v1/appraisals", tags=["appraisals"], route_class=UniqueNamesRoute)

# No id is longer (docs/api.md): the path said "at most 256 characters" to one of 200.
AppraisalId = Annotated[str, Path(max_length=MAX_ID_LENGTH, description="The appraisal's id.")]
WRITE_ERRORS = problem_responses(*BODY_STATUSES, 401, 403, 404, 409, 412, 422)
READ_ERRORS = problem_responses(401, 403, 404, 422)


@router.post(
    "",
    status_code=201,
    response_model=WriteResult,
    responses=problem_responses(*BODY_STATUSES, 401, 403, 409, 422),
)
def set_plan(ctx: WriteDep, services: ServicesDep, body: w.PlanIn) -> Any:
    """Set and communicate the plan (`hr_app`; `rating_official` as itself).
    Actor: `rating_official_id`."""
    owner = services.directory.executive(body.executive_id, reference="executive_id")
    access.forbid_own_appraisal(body, body.executive_id)
    access.require_write(
        ctx.principal,
        owner.agency,
        roles={Role.HR_APP},
        acting={Role.RATING_OFFICIAL: body.rating_official_id},
    )
    fields = body.model_dump(exclude={"appraisal_id"})
    return execute(
        services,
        ctx,
        body,
        lambda idem: services.ledger.set_plan(
            body.appraisal_id, **fields, submitted_by=ctx.principal.subject, idempotency=idem
        ),
    )


Who = Callable[[Any, StreamFacts, Principal], Any]


@dataclass(frozen=True)
class Step:
    """One appraisal step: its path, body, ledger command and access rule."""

    path: str
    body: type[Body]
    command: str
    summary: str
    #: Roles that may always submit it (in their agency).
    roles: Collection[Role]
    #: Acting-official roles, each with the id(s) its subject must be.
    acting: Callable[[Any, StreamFacts, Services, Principal], Mapping[Role, str | Collection[str]]]
    #: The event's `actor`.
    actor: Who
    rating: bool = False


def _subject(body: Any, facts: StreamFacts, principal: Principal) -> str:
    return principal.subject


def _executive(body: Any, facts: StreamFacts, principal: Principal) -> str:
    return str(facts.executive_id)


def _field(name: str) -> Who:
    return lambda body, facts, principal: getattr(body, name)


def _own(
    body: Any, facts: StreamFacts, services: Services, principal: Principal
) -> Mapping[Role, str]:
    return {Role.EXECUTIVE: str(facts.executive_id)}


def _none(
    body: Any, facts: StreamFacts, services: Services, principal: Principal
) -> Mapping[Role, str]:
    return {}


def _present_on_board(
    body: Any, facts: StreamFacts, services: Services, principal: Principal
) -> Mapping[Role, Any]:
    """The members present who sit on the named board: a `prb_member` acts only as one of
    them. A board that does not exist is left to the command (422 unknown-reference), and
    so is a board of an agency the token does not cover (`_board_in_scope`): its members
    were read, and a member of no such board was refused 403 for its role where a board id
    naming nothing was 422, which told the token which ids were other agencies' boards."""
    present = set(body.members_present)
    board = services.directory.facts(body.board_id)
    if (
        board is not None
        and board.type == "ReviewBoardRegistered"
        and principal.covers(board.agency)
    ):
        members = services.ledger.review_board(body.board_id).members
        present &= {m["member_id"] for m in members}
    return {Role.PRB_MEMBER: present}


def _board_in_scope(board_id: str, principal: Principal, services: Services) -> None:
    """A board of an agency the token does not cover is, to that token, no board it knows:
    422 unknown-reference, as another agency's basis appraisal is. The command's PRB-1
    refusal said which agency it serves ("PRB-X serves DOI"), so any agency's `hr_app` (or
    a `prb_member` sitting on another agency's board) could map other agencies' boards."""
    board = services.directory.facts(board_id)
    if board is not None and board.type == "ReviewBoardRegistered":
        if not principal.covers(board.agency):
            raise UnknownReference("board_id", board_id)


HR = {Role.HR_APP}
STEPS = [
    Step(
        "progress-reviews",
        w.ProgressReviewIn,
        "review_progress",
        "Progress review (`hr_app`; `rating_official` as `reviewer_id`)",
        HR,
        lambda b, f, _s, _p: {Role.RATING_OFFICIAL: b.reviewer_id},
        _field("reviewer_id"),
    ),
    Step(
        "detail-appraisals",
        w.DetailAppraisalIn,
        "appraise_detail",
        "Gaining organization's appraisal of a detail (`hr_app`)",
        HR,
        _none,
        _subject,
    ),
    Step(
        "period-extension",
        w.PeriodExtensionIn,
        "extend_period",
        "Extend the appraisal period (`hr_app`; the appraisal's `rating_official`)",
        HR,
        lambda b, f, _s, _p: {Role.RATING_OFFICIAL: str(f.rating_official_id)},
        _subject,
    ),
    Step(
        "initial-rating",
        w.InitialRatingIn,
        "issue_initial_rating",
        "Initial summary rating (`hr_app`; `rating_official` as `rating_official_id`)",
        HR,
        lambda b, f, _s, _p: {Role.RATING_OFFICIAL: b.rating_official_id},
        _field("rating_official_id"),
        rating=True,
    ),
    Step(
        "executive-response",
        w.ExecutiveResponseIn,
        "respond",
        "The executive's written response (`hr_app`; the executive)",
        HR,
        _own,
        _executive,
    ),
    Step(
        "response-waiver",
        w.ResponseWaiverIn,
        "waive_response",
        "The executive waives a response (`hr_app`; the executive)",
        HR,
        _own,
        _executive,
    ),
    Step(
        "higher-level-review-request",
        w.HigherLevelReviewRequestIn,
        "request_higher_level_review",
        "The executive requests higher-level review (`hr_app`; the executive)",
        HR,
        _own,
        _executive,
    ),
    Step(
        "higher-level-review",
        w.HigherLevelReviewIn,
        "recommend_higher_level_review",
        "Higher-level review recommendation (`hr_app`; `hlr_official` as `reviewer_id`)",
        HR,
        lambda b, f, _s, _p: {Role.HLR_OFFICIAL: b.reviewer_id},
        _field("reviewer_id"),
    ),
    Step(
        "prb-recommendation",
        w.PRBRecommendationIn,
        "recommend_by_prb",
        "PRB recommendation (`hr_app`; a `prb_member` present); actor: `board_id`",
        HR,
        _present_on_board,
        _field("board_id"),
    ),
    Step(
        "final-rating",
        w.FinalRatingIn,
        "assign_final_rating",
        "Annual summary rating (`hr_app`; `appointing_authority` as itself)",
        HR,
        lambda b, f, _s, _p: {Role.APPOINTING_AUTHORITY: b.appointing_authority_id},
        _field("appointing_authority_id"),
        rating=True,
    ),
]


def _register(step: Step) -> None:
    def endpoint(
        appraisal_id: AppraisalId,
        ctx: WriteDep,
        services: ServicesDep,
        body: step.body,  # type: ignore[name-defined]
    ) -> Any:
        facts = services.directory.appraisal(appraisal_id)
        access.require_write(
            ctx.principal,
            facts.agency,
            roles=step.roles,
            acting=step.acting(body, facts, services, ctx.principal),
        )
        access.forbid_own_appraisal(body, facts.executive_id)
        if isinstance(body, w.PRBRecommendationIn):
            _board_in_scope(body.board_id, ctx.principal, services)
        actor = step.actor(body, facts, ctx.principal)
        fields = body.model_dump()
        return execute(
            services,
            ctx,
            body,
            lambda idem: services.ledger.appraisal_command(
                appraisal_id,
                step.command,
                submitted_by=ctx.principal.subject,
                actor=actor,
                expected_version=ctx.if_match,
                idempotency=idem,
                **fields,
            ),
        )

    endpoint.__name__ = step.command
    router.add_api_route(
        f"/{{appraisal_id}}/{step.path}",
        endpoint,
        methods=["POST"],
        status_code=201,
        summary=step.summary,
        response_model=RatingWriteResult if step.rating else WriteResult,
        responses=WRITE_ERRORS,
    )


for _step in STEPS:
    _register(_step)


def _readable_view(
    appraisal_id: str, principal: Principal, services: Services, reader: Reader, query: str
) -> Any:
    facts = services.directory.appraisal(appraisal_id)
    access.require_read(principal, facts.agency, owner=facts.executive_id)
    return reader.view(facts.executive_id, reads=(query,))


@router.get(
    "/{appraisal_id}",
    response_class=Json,
    responses={
        200: documented(r.AppraisalOut, "the appraisal: stage, plan, ratings, version"),
        **READ_ERRORS,
    },
)
async def get_appraisal(
    appraisal_id: AppraisalId,
    principal: PrincipalDep,
    services: ServicesDep,
    reader: ReaderDep,
) -> Json:
    def read() -> Json:
        view = _readable_view(appraisal_id, principal, services, reader, "appraisal")
        body = view.appraisal(appraisal_id)
        if body is None:
            raise NotFound("appraisal", appraisal_id)
        return Json(body)

    return await reader.run(read, appraisal_id)


@router.get(
    "/{appraisal_id}/events",
    response_class=Json,
    responses={
        200: documented(r.AppraisalEventsOut, "the appraisal's ledger entries, in order"),
        **READ_ERRORS,
    },
)
async def get_appraisal_events(
    appraisal_id: AppraisalId,
    principal: PrincipalDep,
    services: ServicesDep,
    reader: ReaderDep,
) -> Json:
    def read() -> Json:
        view = _readable_view(appraisal_id, principal, services, reader, "appraisal_events")
        events = view.appraisal_events(appraisal_id)
        if not events:  # none yet at the replayed point (a plan always starts the stream)
            raise NotFound("appraisal", appraisal_id)
        return Json(events if isinstance(events, dict) else {"events": list(events)})

    return await reader.run(read, appraisal_id)
