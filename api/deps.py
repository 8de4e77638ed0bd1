"""Request dependencies, as `Annotated` aliases (the FastAPI template's `deps.py`).

They are `async def` because none of them blocks (no I/O: a token check is an HMAC):
FastAPI runs a plain `def` dependency on a worker thread, and that hand-off, once per
dependency per request, cost more CPU than the dependencies themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from api.access import forbid_auditor_writes, visible_streams
from api.auth import Principal, TokenError
from api.checkpoints import ON_LOOP, GateNeeded
from api.commands import WriteContext
from api.errors import InvalidRequest, Unauthorized
from api.idempotency import check_key
from api.schemas.common import Position, Timestamp
from api.services import Services
from ledger.application import LedgerApp
from ledger.errors import NotFound

T = TypeVar("T")

_bearer = HTTPBearer(auto_error=False, description="`ses-ledger token issue ...`")


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_ledger(services: ServicesDep) -> LedgerApp:
    return services.ledger


LedgerDep = Annotated[LedgerApp, Depends(get_ledger)]


async def get_principal(
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from `Authorization: Bearer <JWT>`; 401 when absent or not valid."""
    return authenticate(services, None if credentials is None else credentials.credentials)


def authenticate(services: Services, token: str | None) -> Principal:
    """The caller a bearer token names; 401 when there is none or it is not valid (also for
    a body that is not JSON, `api.errors`, which FastAPI reads before any dependency)."""
    if not token:
        raise Unauthorized("send Authorization: Bearer <token> (ses-ledger token issue ...)")
    try:
        return services.verify_token(token)
    except TokenError as exc:
        raise Unauthorized(str(exc)) from None


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def _if_match(value: str | None) -> int | None:
    """`If-Match: 3` (also `"3"` or `W/"3"`, as ETags are usually quoted)."""
    if value is None:
        return None
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isascii() or not text.isdigit() or len(text) > 15:
        raise InvalidRequest(
            "If-Match must be the stream version the client last saw, e.g. `If-Match: 3`",
            [{"loc": ["header", "If-Match"], "msg": "must be a non-negative integer version"}],
        )
    return int(text)


def _combined(request: Request, name: str, first: str | None) -> str | None:
    """The field's value, its lines joined as RFC 9110 5.3 combines them: FastAPI hands over
    the first line only, so a request with two keys was stored under the first, and its
    retry with the second appended it again. Joined, two keys (or versions) are refused as
    a value that is not one (422)."""
    if first is None:
        return None
    lines = request.headers.getlist(name)
    return ", ".join(lines) if len(lines) > 1 else first


async def get_write_context(
    request: Request,
    principal: PrincipalDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Retry-safe key, scoped to the token subject (kept at least 24 h).",
        ),
    ] = None,
    if_match: Annotated[
        str | None,
        Header(
            alias="If-Match",
            description="The stream version last seen, on a write to an existing record (412 "
            "if stale); a create ignores it.",
        ),
    ] = None,
) -> WriteContext:
    # An auditor's 403 comes before any complaint about the body or the headers (docs/api.md,
    # "Who may do what"): a dependency runs before FastAPI validates the body, the route's
    # own check (`api.access.require_write`) after, so a body of the wrong shape was a 422.
    forbid_auditor_writes(principal)
    return WriteContext(
        principal=principal,
        idempotency_key=check_key(_combined(request, "Idempotency-Key", idempotency_key)),
        if_match=_if_match(_combined(request, "If-Match", if_match)),
        method=request.method,
        path=request.url.path,
    )


WriteDep = Annotated[WriteContext, Depends(get_write_context)]


class Replay:
    """`as_of_position=N` or `known_at=<timestamp>`: the ledger as it stood then."""

    def __init__(self, position: int | None, known_at: datetime | None) -> None:
        self.position = position
        self.known_at = known_at

    @property
    def active(self) -> bool:
        return self.position is not None or self.known_at is not None


async def get_replay(
    as_of_position: Annotated[
        Position | None, Query(description="Only events with position <= N.")
    ] = None,
    known_at: Annotated[
        Timestamp | None,
        Query(description="Only events recorded at or before this RFC 3339 timestamp."),
    ] = None,
) -> Replay:
    if as_of_position is not None and known_at is not None:
        raise InvalidRequest(
            "give as_of_position or known_at, not both",
            [
                {"loc": ["query", "as_of_position"], "msg": "not together with known_at"},
                {"loc": ["query", "known_at"], "msg": "not together with as_of_position"},
            ],
        )
    return Replay(as_of_position, known_at)


ReplayDep = Annotated[Replay, Depends(get_replay)]


async def run_read(services: Services, read: Callable[[], T]) -> T:
    """`read()` on the event loop on SQLite (see `Reader.run`), else on a worker thread; on
    a thread too when it turns out to need the write gate (`api.checkpoints.GateNeeded`).

    A worker thread waits for the GIL behind the event loop each time it comes back from
    the database, up to the switch interval (5 ms) each time; a read of a few queries spent
    most of its time so, queued with the writes.
    """
    if services.inline_reads:
        token = ON_LOOP.set(True)
        try:
            return read()
        except GateNeeded:
            pass
        finally:
            ON_LOOP.reset(token)
    return await run_in_threadpool(read)


class Reader:
    """Opens the read models only once access is granted (no work for refused requests)."""

    def __init__(self, services: Services, replay: Replay) -> None:
        self.services = services
        self.replay = replay
        self._current: Any | None = None

    async def run(self, read: Callable[[], T], stream_id: str | None = None) -> T:
        """`read()` (access checks and queries), on the event loop when nothing in it can
        wait: the store is SQLite (a local file: its queries use the CPU, not the network;
        PostgreSQL's round trips would stall the loop), the read models already hold this
        process's acknowledged writes to the record of the executive `stream_id` belongs
        to (None, a report: all of them; see `api.projector`), and no replay is asked for.
        Otherwise on a worker thread, as a plain `def` route runs. A read that found
        nothing (404) for an id the ledger holds runs again once the read models have
        caught up with the ledger (`_catch_up_with_ledger`).

        A record read is a few indexed queries; handing it to a thread and back cost more
        CPU than the read itself, and the threads' contention for the GIL more still.
        """
        try:
            return await self._run(read, stream_id)
        except NotFound:
            if stream_id is None or self.replay.active:
                raise
            if not await run_in_threadpool(self._catch_up_with_ledger, stream_id):
                raise
        return await run_in_threadpool(read)

    def _catch_up_with_ledger(self, stream_id: str) -> bool:
        """After a read found nothing for `stream_id`: whether the ledger holds that stream,
        and if so, the read models caught up to the ledger's head (read now, after the
        request arrived) for the read to be run again.

        A process waits before a read only for its own writes (`api.projector`): with
        `serve --workers N`, a record created through one worker and read at once through
        another could be read before the projecting process had reached it, and answered
        404 for an id the ledger held (contract, Errors: 404 is an unknown id). Only a
        read that would answer 404 pays for this: one look at the stream's first event
        (cached once found) and at the ledger's head.
        """
        if self.services.directory.facts(stream_id) is None:
            return False  # not in the ledger: the 404 is true
        head = int(self.services.ledger.recorder.max_notification_id() or 0)
        self._current = self.services.projector.ready(at_least=head)
        return True

    async def _run(self, read: Callable[[], T], stream_id: str | None) -> T:
        if self.services.inline_reads and not self.replay.active:
            executive_id = None
            if stream_id is not None:  # cached after the first read: at most one query
                executive_id = self.services.directory.executive_of(stream_id)
            current = self.services.projector.ready_nowait(executive_id)
            if current is not None:
                self._current = current
                return read()
        return await run_in_threadpool(read)

    def view(self, executive_id: str | None = None, reads: Sequence[str] | None = None) -> Any:
        """The read models, with this process's writes to `executive_id`'s record (None:
        all its writes; read-your-writes), now or as of the requested point.

        `reads`: the queries (`ReadModels` method names) the caller makes, so that a replay
        builds only the projections they read (`projections.queries.QUERY_NEEDS`); None:
        every projection."""
        if self._current is not None:
            return self._current
        read_models = self.services.projector.ready(executive_id=executive_id)
        if not self.replay.active:
            return read_models
        from projections.queries import needs  # lazily, as `Services.read_models`

        read_models.catch_up()  # so that as_of's own catch-up has nothing to write
        return read_models.as_of(
            position=self.replay.position,
            known_at=self.replay.known_at,
            executive_id=executive_id,
            projections=None if reads is None else needs(*reads),
        )

    def default_as_of(self, view: Any, principal: Principal) -> date:
        """The day D a read judges by when it names none (`view.default_as_of`): in an
        `as_of_position` replay, the day of the last event up to the position that
        `principal` may read (`api.access.visible_streams`), not the day of whatever event
        stands there: another agency's day is not the token's to learn."""
        return view.default_as_of(visible_streams(principal, self.services.directory))  # type: ignore[no-any-return]

    def live(self, executive_id: str | None = None) -> Any:
        """The read models as they are now, even when a replay is asked for: for reads that
        apply the replay's bound themselves (audit trails)."""
        if self._current is not None:
            return self._current
        return self.services.projector.ready(executive_id=executive_id)


async def get_reader(
    services: ServicesDep, replay: Annotated[Replay, Depends(get_replay)]
) -> Reader:
    return Reader(services, replay)


ReaderDep = Annotated[Reader, Depends(get_reader)]
