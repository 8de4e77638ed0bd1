"""`/v1/executives`: registration, personnel actions, complaints, reads and evidence bundles."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from api import access
from api.auth import Principal, Role
from api.commands import execute
from api.deps import PrincipalDep, Reader, ReaderDep, ReplayDep, ServicesDep, WriteDep
from api.errors import BODY_STATUSES, problem_responses
from api.responses import Json, documented
from api.schemas import reads as r
from api.schemas.common import MAX_ID_LENGTH, Day
from api.schemas.responses import WriteResult
from api.schemas.writes import ComplaintIn, ExecutiveIn, PersonnelActionIn
from api.services import Services
from api.strict_json import UniqueNamesRoute
from ledger.entry import format_timestamp
from ledger.errors import NotFound, UnknownReference
from ledger.policies.removal import WindowMeasure

router = APIRouter(prefix="/v1/executives", tags=["executives"], route_class=UniqueNamesRoute)

# No id is longer (docs/api.md): the path said "at most 256 characters" to one of 200.
ExecutiveId = Annotated[str, Path(max_length=MAX_ID_LENGTH, description="The executive's id.")]
WRITE_ERRORS = problem_responses(*BODY_STATUSES, 401, 403, 404, 409, 412, 422)
READ_ERRORS = problem_responses(401, 403, 404, 422)


@router.post(
    "",
    status_code=201,
    response_model=WriteResult,
    responses=problem_responses(*BODY_STATUSES, 401, 403, 409, 422),
)
def register_executive(ctx: WriteDep, services: ServicesDep, body: ExecutiveIn) -> Any:
    """Register a senior executive (`admin`, `hr_app`); actor: the token subject."""
    access.require_write(ctx.principal, body.agency, roles={Role.ADMIN, Role.HR_APP})
    who = ctx.principal.subject
    fields = body.model_dump(exclude={"executive_id"})
    return execute(
        services,
        ctx,
        body,
        lambda idem: services.ledger.register_executive(
            body.executive_id, **fields, actor=who, submitted_by=who, idempotency=idem
        ),
    )


@router.post(
    "/{executive_id}/personnel-actions",
    status_code=201,
    response_model=WriteResult,
    responses=WRITE_ERRORS,
)
def record_personnel_action(
    executive_id: ExecutiveId, ctx: WriteDep, services: ServicesDep, body: PersonnelActionIn
) -> Any:
    """Reassignment, transfer, demotion or removal (`hr_app`, `appointing_authority`)."""
    facts = services.directory.executive(executive_id)
    access.require_write(
        ctx.principal, facts.agency, roles={Role.HR_APP, Role.APPOINTING_AUTHORITY}
    )
    for basis in body.basis_appraisal_ids:
        _basis_in_scope(basis, ctx.principal, services)
    who = ctx.principal.subject
    return execute(
        services,
        ctx,
        body,
        lambda idem: services.ledger.record_personnel_action(
            executive_id,
            **body.model_dump(),
            actor=who,
            submitted_by=who,
            expected_version=ctx.if_match,
            idempotency=idem,
        ),
    )


def _basis_in_scope(appraisal_id: str, principal: Principal, services: Services) -> None:
    """A basis appraisal of an agency the token does not cover is, to that token, no
    appraisal it knows: 422 unknown-reference as for an id naming nothing, as another
    agency's review board is (docs/api.md). The command's refusal said "is an appraisal of
    an executive of another agency", which told any agency's `hr_app` which ids were other
    agencies' appraisals; a `*` token is still told so."""
    found = services.directory.facts(appraisal_id)
    if found is not None and found.type == "PlanSet" and not principal.covers(found.agency):
        raise UnknownReference("basis_appraisal_ids", appraisal_id)


@router.post(
    "/{executive_id}/complaints",
    status_code=201,
    response_model=WriteResult,
    responses=WRITE_ERRORS,
)
def record_complaint(
    executive_id: ExecutiveId, ctx: WriteDep, services: ServicesDep, body: ComplaintIn
) -> Any:
    """An EEOC or OSC complaint (`hr_app`; `executive` on own records). APP-1: never a
    rating change. Actor: the executive when filing themselves, else the token subject."""
    facts = services.directory.executive(executive_id)
    principal = ctx.principal
    access.require_write(
        principal, facts.agency, roles={Role.HR_APP}, acting={Role.EXECUTIVE: executive_id}
    )
    own = Role.EXECUTIVE in principal.roles and principal.subject == executive_id
    actor = executive_id if own else principal.subject
    return execute(
        services,
        ctx,
        body,
        lambda idem: services.ledger.record_complaint(
            executive_id,
            **body.model_dump(),
            actor=actor,
            submitted_by=principal.subject,
            expected_version=ctx.if_match,
            idempotency=idem,
        ),
    )


def _readable(services: ServicesDep, principal: PrincipalDep, executive_id: str) -> None:
    facts = services.directory.executive(executive_id)
    access.require_read(principal, facts.agency, owner=executive_id)


def _view(reader: Reader, executive_id: str, query: str) -> Any:
    """The read models for this executive, for `query`; 404 when replaying to before they
    existed."""
    view = reader.view(executive_id, reads=("executive", query))
    if reader.replay.active and view.executive(executive_id) is None:
        raise NotFound("executive", executive_id)
    return view


def _found(body: Any, executive_id: str) -> Json:
    if body is None:
        raise NotFound("executive", executive_id)
    return Json(body)


@router.get(
    "/{executive_id}",
    response_class=Json,
    responses={
        200: documented(r.ExecutiveOut, "registration fields, current_rating and version"),
        **READ_ERRORS,
    },
)
async def get_executive(
    executive_id: ExecutiveId,
    principal: PrincipalDep,
    services: ServicesDep,
    reader: ReaderDep,
) -> Json:
    def read() -> Json:
        _readable(services, principal, executive_id)
        view = reader.view(executive_id, reads=("executive",))
        return _found(view.executive(executive_id), executive_id)

    return await reader.run(read, executive_id)


@router.get(
    "/{executive_id}/ratings",
    response_class=Json,
    responses={200: documented(r.RatingsOut, "final ratings, oldest first"), **READ_ERRORS},
)
async def get_ratings(
    executive_id: ExecutiveId,
    principal: PrincipalDep,
    services: ServicesDep,
    reader: ReaderDep,
) -> Json:
    def read() -> Json:
        _readable(services, principal, executive_id)
        return _found(_view(reader, executive_id, "ratings").ratings(executive_id), executive_id)

    return await reader.run(read, executive_id)


@router.get(
    "/{executive_id}/removal-history",
    response_class=Json,
    responses={
        200: documented(
            r.RemovalHistoryOut, "REM-2 / REM-3 windows and level-1 action as of a date"
        ),
        **READ_ERRORS,
    },
)
async def get_removal_history(
    executive_id: ExecutiveId,
    principal: PrincipalDep,
    services: ServicesDep,
    reader: ReaderDep,
    as_of: Annotated[
        Day | None,
        Query(description="The date D (default: today, UTC; in a replay, the day it stands at)."),
    ] = None,
    window_measure: Annotated[
        WindowMeasure | None,
        Query(
            description="How 'within 3/5 years' is measured (default: the server's "
            "SES_LEDGER_WINDOW_MEASURE, else rating-date)."
        ),
    ] = None,
) -> Json:
    def read() -> Json:
        _readable(services, principal, executive_id)
        view = _view(reader, executive_id, "removal_history")
        day = as_of or reader.default_as_of(view, principal)
        body = view.removal_history(executive_id, day, window_measure=window_measure)
        return _found(body, executive_id)

    return await reader.run(read, executive_id)


#: The 503's detail when every slot for a record stays taken (`get_evidence_bundle`).
BUNDLES_BUSY = (
    "too many evidence bundles and historical reads (as_of_position / known_at) of records "
    "are being built at once on this server; retry shortly"
)


@router.get(
    "/{executive_id}/evidence-bundle",
    response_class=Json,
    responses={
        200: documented(
            r.EvidenceBundleOut, "a self-verifying bundle: entries, keys, checkpoint, proofs"
        ),
        **READ_ERRORS,
    },
)
def get_evidence_bundle(
    executive_id: ExecutiveId, principal: PrincipalDep, services: ServicesDep, replay: ReplayDep
) -> Json:
    """Everything needed to verify one executive's record offline (`auditor`, `admin`,
    `hr_app`; `executive` own). With `as_of_position` or `known_at`, the record as the
    ledger stood then (404 when the executive was not registered by then)."""
    from ledger.bundle import build_bundle, check_bundle

    facts = services.directory.executive(executive_id)
    access.require_read(principal, facts.agency, roles=access.BUNDLE_READERS, owner=executive_id)
    known_at = None if replay.known_at is None else format_timestamp(replay.known_at)
    # A bundle holds the whole record, which has no limit (APP-1): built in one of the slots
    # of historical reads of a record (`SES_LEDGER_RECORD_REPLAY_BUILDS`; 503 when they stay
    # taken), JSON included.
    with services.read_models.replays.record_build(BUNDLES_BUSY):
        # The write gate is held only while the record is completed and its checkpoint
        # chosen (`build_bundle`: it may index, integrate and checkpoint), not while the
        # record and the proofs are read.
        bundle = build_bundle(
            services.ledger,
            executive_id,
            as_of_position=replay.position,
            known_at=known_at,
            check=False,
            gate=services.write_gate,
        )
        # Checked as its reader will check it, outside the gate (writes need not wait for
        # it): entries that do not verify are a 500 `ledger-integrity` naming them
        # (docs/api.md).
        check_bundle(services.ledger, bundle)
        return Json(bundle)
