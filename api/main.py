"""The FastAPI application: `create_app()` wires services, routers and error handlers.

`create_app(app)` serves an existing `LedgerApp` (tests, embedding); without one it builds
the ledger from `ApiSettings` (the environment), as `ses-ledger serve` does through
`app_factory`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import errors
from api.errors import problem, problem_responses
from api.query_check import reject_unknown_query
from api.routes import (
    appraisals,
    executives,
    health,
    ledger,
    reports,
    review_boards,
    waivers,
)
from api.services import Services
from api.settings import ApiSettings
from ledger.application import LedgerApp

log = logging.getLogger("ses_ledger.api")

DESCRIPTION = """\
A tamper-evident, event-sourced audit ledger of US Senior Executive Service performance
appraisals. Every write is hash-chained, signed and added to an RFC 9162 Merkle log.

Authenticate with `Authorization: Bearer <token>` (`ses-ledger token issue ...`). Errors are
RFC 9457 `application/problem+json`. Writes accept `Idempotency-Key`; writes to an existing
record (`/v1/executives/{id}/...`, `/v1/appraisals/{id}/...`) also `If-Match` (a create
ignores it). `HEAD` is answered wherever `GET` is (the GET's status and header fields, no
content), though only the `GET` operations are listed here.
"""


class BodyLimit:
    """Refuse request bodies over `limit` bytes (413) without reading them, after the
    token check as any other complaint about a body (docs/api.md: 401 and 403 come first).

    A body declared larger than the limit is not read at all: reading it raises `_TooLarge`
    where a route reads its body, which `api.errors` answers as it does a body that is not
    UTF-8 (the caller's 401/403 first, else 413). A body with no length (chunked) is read
    up to the limit. A route that reads no body answers as without one. Either way the
    connection is closed after the answer (`Connection: close`), so that the HTTP server
    does not read and discard the rest of the body to reuse it."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        over = declared is not None and (not declared.isdigit() or int(declared) > self.limit)
        seen = 0

        async def counted() -> Message:
            nonlocal seen, over
            if over:
                raise _TooLarge(self.limit)
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    over = True
                    raise _TooLarge(self.limit)
            return message

        async def closing(message: Message) -> None:
            if over and message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), _CLOSE]}
            await send(message)

        try:
            await self.app(scope, counted, closing)
        except _TooLarge:  # read outside a route (no handler of the app's saw it)
            await self._refuse(scope, receive, closing)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(
            413,
            "payload-too-large",
            "Request body too large",
            _too_large(self.limit),
        )
        await response(scope, receive, send)


_CLOSE = (b"connection", b"close")


def _too_large(limit: int) -> str:
    return f"request bodies are limited to {limit} bytes"


class _TooLarge(StarletteHTTPException):
    """Raised where the body is read: an HTTP exception, because FastAPI turns any other
    error from reading the body into a 400 ("There was an error parsing the body"), and
    lets this one through to `api.errors`, which answers 413 after the token check."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large(limit))


class HeadAsGet:
    """HEAD wherever GET is (RFC 9110 9.3.2): the status and header fields the GET would
    get, `Content-Length` included, and no content. FastAPI's routes answer GET alone (a
    monitor's or a proxy's `HEAD /healthz` got 405); a HEAD request is served as its GET
    and the body is dropped here, not left to the HTTP server, so that none is ever sent.
    A path with no GET still answers HEAD with 405 (its `Allow` says what it takes)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, headers_only)


class ServerTiming:
    """`Server-Timing: app;dur=<ms>` on every response: time spent inside the server, so a
    client can tell the server's latency from its own and the network's."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                elapsed = (time.perf_counter() - started) * 1000
                headers = [
                    *message.get("headers", []),
                    (b"server-timing", f"app;dur={elapsed:.2f}".encode()),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, timed)


def create_app(
    app: LedgerApp | None = None,
    read_models: Any | None = None,
    settings: ApiSettings | None = None,
) -> FastAPI:
    settings = settings or ApiSettings()
    ledger_app = app or LedgerApp(settings.ledger_config())
    ledger_app.keyring.signer()  # fail at start-up, not on the first write, without a key
    services = Services(ledger_app, settings, read_models)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        timer = None
        interval = settings.checkpoint_interval_seconds
        if interval > 0:
            timer = asyncio.create_task(_checkpoint_timer(services, interval))
        if settings.project_in_background:
            services.projector.start()
        try:
            yield
        finally:
            if timer is not None:
                timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await timer
            await run_in_threadpool(services.projector.stop)

    api = FastAPI(
        title="SES Ledger",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        # A path with a slash too many is an unknown route (404, a problem), not a 307 to
        # a `Location` made of the request's Host header and the scheme seen here (`http`
        # behind a TLS proxy), which clients that follow redirects sent their writes to.
        redirect_slashes=False,
    )
    api.state.services = services
    errors.install(api)
    for module in (executives, review_boards, waivers, appraisals, reports, ledger, health):
        api.include_router(
            module.router,
            responses=problem_responses(*errors.SERVER_STATUSES),
            dependencies=[Depends(reject_unknown_query)],
        )
    api.add_middleware(HeadAsGet)
    api.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    api.add_middleware(ServerTiming)
    return api


async def _checkpoint_timer(services: Services, interval: float) -> None:
    """Sign a checkpoint every `interval` seconds while the tree grows."""
    while True:
        await asyncio.sleep(interval)
        await run_in_threadpool(services.checkpointer.tick)


def app_factory() -> FastAPI:
    """For `uvicorn --factory api.main:app_factory` (each worker builds its own)."""
    return create_app()
