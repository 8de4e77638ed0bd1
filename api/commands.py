"""Running a write: idempotency, optimistic concurrency, and the contract's 201 body.

Routes describe *what* to run (a closure over the ledger command); this module decides how:
replay an earlier response for a known `Idempotency-Key`, retry a lost race when the client
did not pin a version with `If-Match` (the command is re-judged against the new state, so a
retry is as safe as a fresh request), and shape the result with its receipt.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from api.auth import Principal
from api.idempotency import Idempotency, IdempotentRequest, earlier_entries, fingerprint
from api.responses import Json
from api.schemas.common import Body
from api.services import Services
from ledger.application import CommandResult, DuplicateRequest
from ledger.canonical import canonical_json
from ledger.entry import HASHED_FIELDS
from ledger.errors import AlreadyExists, ConcurrencyConflict, LedgerError

#: Attempts for a write without `If-Match` that keeps losing races to other writers.
RACE_ATTEMPTS = 3

Command = Callable[[Idempotency | None], CommandResult]


@dataclass(frozen=True)
class WriteContext:
    """The request-level facts of a write: who, which key, which version, where."""

    principal: Principal
    idempotency_key: str | None
    if_match: int | None
    method: str
    path: str


def execute(services: Services, ctx: WriteContext, body: Body | None, command: Command) -> Json:
    """Run `command` once (or replay it) and return the contract's success response (201).

    Returned as a rendered response, so FastAPI does not validate and re-serialise it
    against the route's `response_model` (which only documents it) on another thread:
    `result_body` builds it in that model's field order, so the bytes are the same.
    """
    return Json(_execute(services, ctx, body, command), status_code=201)


def _execute(
    services: Services, ctx: WriteContext, body: Body | None, command: Command
) -> dict[str, Any]:
    request = None
    if ctx.idempotency_key is not None:
        payload = None if body is None else body.model_dump(mode="json")
        request = IdempotentRequest(
            ctx.principal.subject, ctx.idempotency_key, fingerprint(ctx.method, ctx.path, payload)
        )
        replay = earlier_entries(services.ledger, request)
        if replay:
            return result_body(replay)
    attempts = 1 if ctx.if_match is not None else RACE_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            result = command(None if request is None else request.record)
            break
        except DuplicateRequest:
            assert request is not None
            replay = earlier_entries(services.ledger, request)
            if replay:
                return result_body(replay)
            raise ConcurrencyConflict("an identical request is being stored; retry") from None
        except LedgerError as exc:
            # An identical request may have won a race on the stream itself.
            if request is not None and isinstance(exc, AlreadyExists | ConcurrencyConflict):
                replay = earlier_entries(services.ledger, request)
                if replay:
                    return result_body(replay)
            if isinstance(exc, ConcurrencyConflict) and attempt < attempts:
                continue
            raise
    services.projector.written(result.entries[-1]["position"], result.executive_id)
    return result_body(result.entries)


def _normal(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry in one fixed key order (contract order, `data` sorted), so that a replayed
    response is byte-for-byte the first one whether its entry was just sealed or reloaded."""
    out = {"position": entry["position"]}
    out.update((k, entry[k]) for k in HASHED_FIELDS)
    out["data"] = json.loads(canonical_json(entry["data"]))
    out.update((k, entry[k]) for k in ("hash", "signature", "key_id"))
    return out


def result_body(stored: list[dict[str, Any]]) -> dict[str, Any]:
    """`{id, version, event, receipt}`; ratings add `score` and `summary_level`."""
    entries = [_normal(e) for e in stored]
    event = entries[-1]
    body: dict[str, Any] = {
        "id": event["stream_id"],
        "version": event["stream_version"],
        "event": event,
        "receipt": {
            "position": event["position"],
            "hash": event["hash"],
            "signature": event["signature"],
            "key_id": event["key_id"],
        },
    }
    data = event.get("data") or {}
    if event["type"] == "InitialRatingIssued":
        body["score"], body["summary_level"] = data["score"], data["summary_level"]
    elif event["type"] == "FinalRatingAssigned":
        body["score"], body["summary_level"] = data["score"], data["level"]
    if len(entries) > 1:
        body["events"] = entries
    return body
