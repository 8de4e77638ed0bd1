"""`/v1/ledger`: the tamper-evidence surface (events, verify, keys, checkpoint, proofs, receipts).

Keys, checkpoint and proofs are public (witnesses and verifiers need no account); events
and verify are for `auditor` and `admin`; a receipt is readable by whoever may read the
record it belongs to.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse

from api import access
from api.auth import ALL_AGENCIES, Principal
from api.deps import LedgerDep, PrincipalDep, ServicesDep, run_read
from api.errors import problem_responses
from api.responses import Json, RawJson
from api.schemas.common import Digits, Position
from api.schemas.responses import (
    ConsistencyProof,
    EventsPage,
    InclusionProof,
    KeysOut,
    ReceiptOut,
    VerifyOut,
)
from api.services import Services
from ledger.entry import entry_json
from ledger.errors import NotFound
from ledger.log import ProofUnavailable
from ledger.verify import verify_with_ring

router = APIRouter(prefix="/v1/ledger", tags=["ledger"])

# Routes with a `response_model` return a rendered `Json`: the model documents the body,
# and FastAPI skips validating and re-serialising it (on another thread, for a `def`
# route), which cost more than the rest of a receipt or a proof. The bodies are built in
# their models' field order, so the bytes are the ones the model would give.

MAX_PAGE = 1000
#: A scoped token's page skips other agencies' events; stop scanning after this many rows.
MAX_SCAN = 20 * MAX_PAGE

#: A tree size: 0 too (the empty ledger's checkpoint has it), for which no proof exists
#: (404, as for a size the tree has not reached), not a malformed query (422).
Size = Annotated[Position, Query()]


def _page(services: Services, principal: Principal, after: int, limit: int) -> bytes:
    """Up to `limit` visible entries after `after`; `next_after` is None only at the end.

    A full page's `next_after` is given only once a visible entry after it is seen: for a
    token of one agency, the other agencies' entries that end the log were skipped past
    without one, and a last page then promised more, to be followed by an empty page.
    After `MAX_SCAN` rows a page ends where the scan stopped (it may then hold nothing:
    `next_after` says where to go on).

    Rendered as bytes spliced from the stored states (`ledger.entry.entry_json`): decoding
    and re-encoding each entry was most of a page's cost, and verifiers read the whole log
    this way. A token of one agency is matched by each notification's stream.
    """
    select = services.ledger.recorder.select_notifications
    everything = principal.agency == ALL_AGENCIES
    directory = services.directory
    events: list[bytes] = []
    cursor, scanned = after, 0
    while True:
        window = select(start=cursor, limit=limit + 1, inclusive_of_start=False)
        for n in window:
            visible = everything or directory.agency_of(str(n.originator_id)) == principal.agency
            if visible and len(events) == limit:
                return _page_json(events, cursor)  # n proves there is more
            cursor = n.id
            scanned += 1
            if visible:
                events.append(entry_json(n.state, n.id))
        if len(window) <= limit:
            return _page_json(events, None)
        if scanned >= MAX_SCAN:
            return _page_json(events, cursor)


def _page_json(events: list[bytes], next_after: int | None) -> bytes:
    tail = b"null" if next_after is None else str(next_after).encode()
    return b'{"events":[' + b",".join(events) + b'],"next_after":' + tail + b"}"


@router.get(
    "/events",
    response_class=RawJson,
    responses={
        200: {"model": EventsPage, "description": "a page of entries in global order"},
        **problem_responses(401, 403, 422),
    },
)
async def list_events(
    principal: PrincipalDep,
    services: ServicesDep,
    after: Annotated[Position, Query(description="A position.")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE), Digits] = 100,
) -> RawJson:
    """Entries after position `after`; `next_after` is null on the last page. A token of one
    agency sees that agency's entries only."""
    access.require_role(principal, access.LEDGER_READERS)
    return RawJson(await run_read(services, lambda: _page(services, principal, after, limit)))


@router.get("/verify", response_model=VerifyOut, responses=problem_responses(401, 403))
def verify(principal: PrincipalDep, services: ServicesDep) -> Any:
    """Re-check every hash, chain link, signature, Merkle leaf and checkpoint, and each
    event's `recorded_at` against its signing key's validity (`auditor`, `admin`)."""
    access.require_role(principal, access.LEDGER_READERS)
    ledger = services.ledger
    report = verify_with_ring(ledger.recorder, ledger.keyring, services.origin).as_json()
    return _told(report, principal, services)


def _told(report: dict[str, Any], principal: Principal, services: Services) -> dict[str, Any]:
    """The report as a token of one agency may hear it: integrity, not content (docs/api.md).

    A problem names what it found (a stream id, a `recorded_at`); of an entry not of the
    token's agency (or no longer readable, so not known to be), only its position is told:
    `/v1/ledger/events` and every read hide another agency's ids from that token."""
    position = report.get("first_bad_position")
    if principal.agency == ALL_AGENCIES or report.get("problem") is None or position is None:
        return report
    found = services.ledger.recorder.select_notifications(start=position, limit=1)
    try:
        agency = (
            services.directory.agency_of(str(found[0].originator_id))
            if found and found[0].id == position
            else None
        )
    except Exception:  # a damaged first event: not known to be the token's
        agency = None
    if agency != principal.agency:
        report["problem"] = (
            f"the entry at position {position}, not of agency {principal.agency!r}, does not "
            "verify; a token for every agency ('*') is told what is wrong with it"
        )
    return report


@router.get("/keys", response_model=KeysOut)
def keys(ledger: LedgerDep) -> Any:
    """Public signing keys with their validity (no token needed)."""
    return Json({"keys": [k.as_json() for k in ledger.keyring.public_keys()]})


@router.get(
    "/checkpoint",
    response_class=PlainTextResponse,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "a C2SP tlog-checkpoint signed note",
        }
    },
)
async def checkpoint(services: ServicesDep) -> PlainTextResponse:
    """The latest signed tree head; if the tree has grown since, a new one is issued on
    the spot, at most once per `SES_LEDGER_CHECKPOINT_MAX_AGE_SECONDS` (default 1 s)."""
    return PlainTextResponse(await run_read(services, services.checkpointer.note))


def _latest_size(services: Services, leaf_index: int = 0) -> int:
    """The size of the newest checkpoint (issued now if none covers `leaf_index`)."""
    latest = services.merkle.latest_checkpoint()
    if latest is None or latest.tree_size <= leaf_index:
        latest = services.checkpointer.latest()
    if latest is None:
        raise ProofUnavailable("the ledger is empty")
    return latest.tree_size


@router.get(
    "/proofs/inclusion", response_model=InclusionProof, responses=problem_responses(404, 422)
)
async def inclusion_proof(
    services: ServicesDep,
    position: Annotated[Position, Query(description="A ledger position.")],
    tree_size: Annotated[
        Position | None, Query(description="Default: the latest checkpoint.")
    ] = None,
) -> Any:
    """RFC 9162 inclusion proof of the event at `position` in the tree of `tree_size`."""

    def read() -> Json:
        index = services.checkpointer.leaf_index(position)  # integrates a fresh event first
        size = tree_size if tree_size is not None else _latest_size(services, index)
        services.checkpointer.integrated(size)
        return Json(services.merkle.inclusion(position, size))

    return await run_read(services, read)


@router.get(
    "/proofs/consistency", response_model=ConsistencyProof, responses=problem_responses(404, 422)
)
async def consistency_proof(
    services: ServicesDep,
    first: Size,
    second: Annotated[Position | None, Query(description="Default: the latest checkpoint.")] = None,
) -> Any:
    """RFC 9162 consistency proof between two tree sizes."""

    def read() -> Json:
        size = second if second is not None else _latest_size(services)
        if second is None and first > size:
            # The tree may hold `first` leaves that no checkpoint covers yet (a size read
            # from `/v1/ledger/verify`, or a proof's `tree_size`): as an inclusion proof of
            # a fresh event does, default to a checkpoint issued to cover them.
            services.checkpointer.integrated(first)
            if first <= services.merkle.size():
                size = _latest_size(services, first - 1)
        services.checkpointer.integrated(size)
        return Json(services.merkle.consistency(first, size))

    return await run_read(services, read)


@router.get(
    "/receipts/{position}",
    response_model=ReceiptOut,
    responses=problem_responses(401, 403, 404, 422),
)
async def receipt(
    position: Annotated[Position, Path()],
    principal: PrincipalDep,
    services: ServicesDep,
) -> Any:
    """The entry, a checkpoint covering it and its inclusion proof in that checkpoint."""
    return await run_read(services, lambda: _receipt(position, principal, services))


def _receipt(position: int, principal: Principal, services: Services) -> Json:
    entries = services.ledger.entries_at([position])
    if not entries:
        raise NotFound("event at position", str(position))
    entry = entries[0]
    facts = services.directory.facts(entry["stream_id"])
    access.require_read(
        principal,
        None if facts is None else facts.agency,
        roles=access.BUNDLE_READERS,
        owner=None if facts is None else facts.executive_id,
    )
    checkpointer = services.checkpointer
    covering = checkpointer.covering(checkpointer.leaf_index(position))
    return Json(
        {
            "entry": entry,
            "checkpoint": covering.note,
            "inclusion_proof": services.merkle.inclusion(position, covering.tree_size),
        }
    )
