"""RFC 9457 problem details: the only place where HTTP statuses are chosen.

Every error leaves as `application/problem+json` with `type`
`urn:ses-ledger:problem:<slug>`, `title`, `status` and `detail`, plus `rule` for a rule
violation and `errors: [{loc, msg}]` for an invalid request. Routes raise ledger errors or
the `ApiProblem` subclasses below; the handlers here map both to statuses.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from eventsourcing.persistence import (
    ConnectionUnavailableError,
    DatabaseError,
    InterfaceError,
    InternalError,
    OperationalError,
)
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security.utils import get_authorization_scheme_param
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from api.strict_json import NotUtf8, UnsupportedEncoding
from ledger.errors import (
    AlreadyExists,
    BundleDoesNotVerify,
    ConcurrencyConflict,
    LedgerError,
    NotFound,
    ReplayBusy,
    RuleViolation,
    SigningKeyError,
    StaleVersion,
    StoreUnavailable,
    UnknownReference,
    UnreadableEntry,
    VerificationError,
    WriteOutcomeUnknown,
    out_of_resources,
)
from ledger.log import ProofUnavailable

log = logging.getLogger("ses_ledger.api")

PROBLEM_JSON = "application/problem+json"
URN = "urn:ses-ledger:problem:"


class ApiProblem(Exception):
    """An error the API itself detects; subclasses fix the status and slug."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class Unauthorized(ApiProblem):
    status, slug, title = 401, "unauthorized", "Authentication required"


class Forbidden(ApiProblem):
    status, slug, title = 403, "forbidden", "Not allowed for this token"


class InvalidRequest(ApiProblem):
    """A parameter, header or body field is invalid; `errors` lists each with its location."""

    status, slug, title = 422, "invalid-request", "Invalid request"

    def __init__(self, detail: str, errors: Sequence[dict[str, Any]]) -> None:
        super().__init__(detail, errors=list(errors))


class IdempotencyKeyReused(ApiProblem):
    status, slug, title = 422, "idempotency-key-reused", "Idempotency key already used"


def problem(
    status: int,
    slug: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body: dict[str, Any] = {"type": URN + slug, "title": title, "status": status, "detail": detail}
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _api_problem(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiProblem)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
    return problem(exc.status, exc.slug, exc.title, exc.detail, headers, **exc.extra)


#: Ledger errors: (class, status, slug, title); the first matching class wins.
_LEDGER: list[tuple[type[LedgerError], int, str, str]] = [
    (RuleViolation, 422, "rule-violation", "The appraisal rules forbid this"),
    (UnknownReference, 422, "unknown-reference", "Unknown reference"),
    (NotFound, 404, "not-found", "Not found"),
    (AlreadyExists, 409, "already-exists", "Already exists"),
    (StaleVersion, 412, "stale-version", "The record has changed"),
    (ConcurrencyConflict, 409, "conflict", "Concurrent write"),
    (ProofUnavailable, 404, "not-found", "No such proof"),
    (SigningKeyError, 503, "unavailable", "Signing key unavailable"),
    (WriteOutcomeUnknown, 503, "write-outcome-unknown", "Write outcome unknown"),
    (ReplayBusy, 503, "unavailable", "Service unavailable"),
    (StoreUnavailable, 503, "unavailable", "Service unavailable"),
    (VerificationError, 500, "ledger-integrity", "Stored data does not verify"),
]


#: A key that cannot be loaded is told to the client in these words only: the reason
#: (`SigningKeyError`'s message) names the server's files and how to restore them, which is
#: for the operator, in the server's log; `GET /v1/ledger/keys` answers it to anyone.
SIGNING_KEY_UNAVAILABLE = (
    "the ledger's signing keys cannot be loaded; nothing was recorded (the server's log says why)"
)

#: A write whose commit was cut off and could not be looked up afterwards is told so in
#: these words only (the reason, with the store's error, is for the server's log): not
#: "nothing was recorded", which a client would retry into a second append.
WRITE_OUTCOME_UNKNOWN = (
    "the ledger's store failed while this write was being committed: "
    "it may or may not have been recorded. Do not send it again as a new request: if it had "
    "an Idempotency-Key, retry with the same key (a write that was recorded answers its "
    "stored result and appends nothing); otherwise read the record (its events) to see "
    "whether it is there"
)


#: The store could not be reached within SES_LEDGER_STORE_WAIT_SECONDS (`StoreUnreachable`):
#: told in these words (the reason, with the server's address, is for the server's log).
STORE_UNREACHABLE = "the ledger's database cannot be reached; nothing was recorded, retry shortly"


def _ledger_error(_: Request, exc: Exception) -> Response:
    for cls, status, slug, title in _LEDGER:
        if isinstance(exc, cls):
            extra: dict[str, Any] = {}
            if isinstance(exc, RuleViolation):
                extra["rule"] = exc.rule
                detail = exc.message
            else:
                detail = str(exc)
            if isinstance(exc, UnknownReference):
                extra["errors"] = [{"loc": ["body", exc.field], "msg": detail}]
            if isinstance(exc, StaleVersion):
                extra["current_version"] = exc.actual
            if isinstance(exc, BundleDoesNotVerify):
                extra["positions"] = exc.positions
            if status >= 500:
                log.error("ledger error: %s", exc)
            if isinstance(exc, SigningKeyError):  # its message names files: for the log only
                detail = SIGNING_KEY_UNAVAILABLE
            if isinstance(exc, UnreadableEntry):
                detail = (
                    f"a stored event cannot be read ({exc}); nothing was recorded, "
                    "`ses-ledger verify` names the first damaged position"
                )
            headers = None
            if isinstance(exc, WriteOutcomeUnknown):
                detail, headers = WRITE_OUTCOME_UNKNOWN, {"Retry-After": "1"}
            elif isinstance(exc, ReplayBusy):
                headers = {"Retry-After": "1"}
            elif isinstance(exc, StoreUnavailable):
                detail, headers = STORE_UNREACHABLE, {"Retry-After": "1"}
            return problem(status, slug, title, detail, headers, **extra)
    log.error("unmapped ledger error: %r", exc)
    return problem(500, "internal-error", "Internal error", "the ledger failed unexpectedly")


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """pydantic's errors as the contract's `[{loc, msg}]` (JSON-safe, no input echoed)."""
    out = []
    for e in errors:
        loc = [p if isinstance(p, int) else str(p) for p in e.get("loc", ())]
        out.append({"loc": loc, "msg": str(e.get("msg", "invalid"))})
    return out


def _request_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if any(e.get("type") == "json_invalid" for e in exc.errors()):
        refused = _caller_refused(request)
        if refused is not None:
            return _api_problem(request, refused)
    errors = validation_errors(exc.errors())
    syntax = False
    for error, raw in zip(errors, exc.errors(), strict=False):
        if raw.get("type") != "json_invalid":
            continue
        syntax = True
        # FastAPI's loc is ["body", <character offset>], read as an array index ("body.0"
        # of a member named twice): the offset goes into the sentence instead, where the
        # parser found the error (0 where the whole body was judged: a name used twice).
        offset = error["loc"][1] if len(error["loc"]) > 1 else 0
        error["loc"] = ["body"]
        at = f" at character {offset}" if isinstance(offset, int) and offset > 0 else ""
        reason = (raw.get("ctx") or {}).get("error")
        # say why: "Expecting ',' delimiter", a name used twice
        error["msg"] = f"{error['msg']}{at}" + (f": {reason}" if isinstance(reason, str) else "")
    first = errors[0] if errors else {"loc": [], "msg": "invalid"}
    where = ".".join(str(p) for p in first["loc"])
    detail = f"{where}: {first['msg']}" if where else str(first["msg"])
    content_type = request.headers.get("Content-Type")
    if first["loc"] == ["body"] and not syntax and not _is_json(content_type):
        # FastAPI reads a body as JSON only under a JSON media type (`curl -d` sends a form
        # type): "Input should be a valid dictionary" of a JSON object tells nobody why.
        sent = "none" if content_type is None else repr(content_type)
        first["msg"] = (
            "the body is read only when sent with Content-Type: application/json "
            f"(this request's: {sent})"
        )
        detail = f"body: {first['msg']}"
    return problem(422, InvalidRequest.slug, InvalidRequest.title, detail, errors=errors)


def _is_json(content_type: str | None) -> bool:
    """A media type FastAPI reads as JSON: `application/json` or `application/*+json`."""
    media = (content_type or "").split(";")[0].strip().lower()
    main, _, sub = media.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def _caller_refused(request: Request) -> ApiProblem | None:
    """401/403 for a body that is not even JSON (or not UTF-8), as for any other body:
    FastAPI parses the JSON before it runs the dependencies that authenticate, so without
    this a caller with no token (or an auditor, who never writes) would learn of the syntax
    error first. The same checks as theirs (imported here: those modules import this one)."""
    from api.access import forbid_auditor_writes
    from api.deps import authenticate

    scheme, token = get_authorization_scheme_param(request.headers.get("Authorization"))
    try:
        principal = authenticate(
            request.app.state.services, token if scheme.lower() == "bearer" else None
        )
        forbid_auditor_writes(principal)
    except ApiProblem as exc:
        return exc
    return None


_HTTP_SLUGS = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Not allowed for this token"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
}


def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, NotUtf8 | UnsupportedEncoding) or exc.status_code == 413:  # a body,
        refused = _caller_refused(request)  # met after the token check as any other body
        if refused is not None:
            return _api_problem(request, refused)
    slug, title = _HTTP_SLUGS.get(exc.status_code, ("http-error", "HTTP error"))
    detail = exc.detail if isinstance(exc.detail, str) else title
    headers = dict(exc.headers) if exc.headers else None
    if exc.status_code == 405 and headers is not None and "Allow" in headers:
        headers["Allow"] = _with_head(headers["Allow"])
    return problem(exc.status_code, slug, title, detail, headers)


def _with_head(allow: str) -> str:
    """`Allow` naming HEAD wherever it names GET: `api.main.HeadAsGet` serves HEAD there
    (RFC 9110 10.2.1: the methods the resource supports)."""
    methods = [m.strip() for m in allow.split(",") if m.strip()]
    if "GET" in methods and "HEAD" not in methods:
        methods.append("HEAD")
    return ", ".join(methods)


#: SQLite's words for storage that cannot take a write at all, and what the client is told:
#: unlike a lock or a lost connection these do not pass by themselves ("busy" misled).
_FULL = "is full: nothing was recorded; retry once there is room"
_READ_ONLY = "is read-only: nothing was recorded; retry once it is writable"
_CANNOT_WRITE = (
    ("database or disk is full", _FULL),
    ("No space left on device", _FULL),  # PostgreSQL's "could not extend file ..."
    ("readonly database", _READ_ONLY),
    ("read-only transaction", _READ_ONLY),  # a PostgreSQL standby (after a failover)
    ("disk I/O error", "failed to read or write (an I/O error): nothing was recorded"),
)


def _store_busy(_: Request, exc: Exception) -> Response:
    """The store is overloaded or briefly unreachable, or its storage cannot take a write
    (full, read-only): nothing was stored; retry."""
    log.warning("store unavailable: %s", exc)
    reason = str(exc)
    detail = next(
        (f"the ledger's storage {what}" for words, what in _CANNOT_WRITE if words in reason),
        "the ledger's store is busy or unreachable; nothing was recorded, retry shortly",
    )
    return problem(503, "unavailable", "Service unavailable", detail, {"Retry-After": "1"})


def _store_internal(request: Request, exc: Exception) -> Response:
    """PostgreSQL refuses a write in a read-only transaction (a standby, after a failover)
    with an internal error: a 503 like a read-only SQLite file, not the bare 500 it was."""
    if any(words in str(exc) for words, what in _CANNOT_WRITE if what == _READ_ONLY):
        return _store_busy(request, exc)
    return _unexpected(request, exc)


def _store_damaged(request: Request, exc: Exception) -> Response:
    """The store's file cannot be read where the request needs it ("database disk image is
    malformed": a failing disk, a file changed by hand): stored events do not verify, as
    `ses-ledger verify` then names at their position; not an unforeseen error."""
    if type(exc) is not DatabaseError:  # an integrity or programming error: unforeseen
        return _unexpected(request, exc)
    log.error("the store is damaged: %s", exc)
    detail = (
        f"the ledger's stored data cannot be read ({exc}); nothing was recorded, "
        "`ses-ledger verify` names the first damaged position"
    )
    return problem(500, "ledger-integrity", "Stored data does not verify", detail)


def _store_interface(request: Request, exc: Exception) -> Response:
    """eventsourcing's InterfaceError: SQLite could not open a connection ("unable to open
    database file": the process is out of file descriptors, or the file is gone for a
    moment) is the store unavailable, a 503 before anything was stored, not the bare 500
    with a traceback it was; an interface misused (sqlite3.InterfaceError) is a bug."""
    if isinstance(exc.__cause__, sqlite3.OperationalError):
        return _store_busy(request, exc)
    return _unexpected(request, exc)


#: What a client is told when the server ran short of memory or threads
#: (`ledger.errors.out_of_resources`): a read may be sent again; a write may have been cut
#: off after its commit, so it is told as a write whose outcome is unknown (never "nothing
#: was recorded", which would invite a second append).
SHORT_OF_RESOURCES_READ = (
    "the server ran short of memory or threads and could not answer; retry shortly"
)
SHORT_OF_RESOURCES_WRITE = (
    "the server ran short of memory or threads while handling this write: it may or may not "
    "have been recorded. Do not send it again as a new request: if it had an "
    "Idempotency-Key, retry with the same key shortly (a write that was recorded answers "
    "its stored result and appends nothing); otherwise read the record (its events) to see "
    "whether it is there"
)


def _unexpected(request: Request, exc: Exception) -> Response:
    if out_of_resources(exc):
        # One line: formatting a traceback needs the memory that ran out.
        log.error(
            "out of memory or threads: %s", type(exc).__name__ + (f": {exc}" if str(exc) else "")
        )
        read = request.method in ("GET", "HEAD", "OPTIONS")
        detail = SHORT_OF_RESOURCES_READ if read else SHORT_OF_RESOURCES_WRITE
        return problem(503, "unavailable", "Service unavailable", detail, {"Retry-After": "1"})
    log.exception("unexpected error", exc_info=exc)
    return problem(500, "internal-error", "Internal error", "the server failed unexpectedly")


Handler = Callable[[Request, Exception], Response]


def _on_loop(handler: Handler) -> Callable[[Request, Exception], Awaitable[Response]]:
    """`handler` as a coroutine, so Starlette runs it on the event loop: a plain function
    is run on a worker thread, and a server that could not start one (short of memory)
    answered a bare text/plain 500 instead of the problem. These handlers only build a
    response."""

    async def on_loop(request: Request, exc: Exception) -> Response:
        return handler(request, exc)

    return on_loop


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiProblem, _on_loop(_api_problem))
    app.add_exception_handler(LedgerError, _on_loop(_ledger_error))
    # These two may authenticate the caller (`_caller_refused`): left on a worker thread.
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_exception)
    app.add_exception_handler(ConnectionUnavailableError, _on_loop(_store_busy))
    app.add_exception_handler(OperationalError, _on_loop(_store_busy))
    app.add_exception_handler(InterfaceError, _on_loop(_store_interface))
    app.add_exception_handler(InternalError, _on_loop(_store_internal))
    app.add_exception_handler(DatabaseError, _on_loop(_store_damaged))
    # Answered here rather than by the catch-all below, which re-raises into the server's
    # log as a traceback (other RuntimeErrors are still logged with theirs, and 500).
    app.add_exception_handler(MemoryError, _on_loop(_unexpected))
    app.add_exception_handler(RuntimeError, _on_loop(_unexpected))
    app.add_exception_handler(Exception, _on_loop(_unexpected))


#: OpenAPI documentation of the error responses (one shared schema).
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "rule": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"loc": {"type": "array"}, "msg": {"type": "string"}},
            },
        },
    },
}


#: Statuses a route that takes a body gives for the body itself, after the token check:
#: not UTF-8 text (400, `api.strict_json.NotUtf8`), over the size limit (413,
#: `api.main.BodyLimit`). Routes without a body ignore one: neither status.
BODY_STATUSES = (400, 413)
#: Statuses every route may give, since every one reads the store or the keys: a store
#: that fails in a way foreseen or not, or stored data that does not verify (500), a store
#: or signing key that is unavailable (503). Added to each router by `api.main`.
SERVER_STATUSES = (500, 503)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        s: {
            "description": "problem details (RFC 9457)",
            "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
        }
        for s in statuses
    }
