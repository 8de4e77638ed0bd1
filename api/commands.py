"""Running a write: idempotency, optimistic concurrency, and the contract's 201 body.

Routes describe *what* to run (a closure over the ledger command); this module decides how:
replay an earlier response for a known `Idempotency-Key`, retry a lost race when the client
did not pin a version with `If-Match` (the command is re-judged against the new state, so a
retry is as safe as a fresh request), and shape the result with its receipt.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
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
from ledger.errors import (
    AlreadyExists,
    ConcurrencyConflict,
    LedgerError,
    RuleViolation,
    StaleVersion,
)

#: Attempts for a write without `If-Match` that keeps losing races to other processes.
RACE_ATTEMPTS = 5
#: Writes to one record wait for each other within this process (`_record_lock`): without
#: that, of N concurrent writes to one record all but one lost each round, and with a few
#: retries each, half of 20 concurrent complaints came back 409 (all were independent).
_RECORD_LOCKS = tuple(threading.Lock() for _ in range(256))

Command = Callable[[Idempotency | None], CommandResult]
#: Refusals an identical request committed in the meantime can cause (looked up again then;
#: only on that error path, nothing is added to a write that succeeds).
_MAYBE_OUR_OWN_DOING = (AlreadyExists, ConcurrencyConflict, StaleVersion, RuleViolation)


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
            return _replayed(services, replay)
    attempts = 1 if ctx.if_match is not None else RACE_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            with _record_lock(ctx.path):
                result = command(None if request is None else request.record)
            break
        except DuplicateRequest:
            assert request is not None
            replay = earlier_entries(services.ledger, request)
            if replay:
                return _replayed(services, replay)
            raise ConcurrencyConflict("an identical request is being stored; retry") from None
        except LedgerError as exc:
            # An identical request may have committed after our first lookup: it took the id
            # (409), moved the stream (409, or 412 under If-Match), or made this command
            # a rule violation (a second initial rating is SEQ-1). Its answer is ours.
            if request is not None and isinstance(exc, _MAYBE_OUR_OWN_DOING):
                replay = earlier_entries(services.ledger, request)
                if replay:
                    return _replayed(services, replay)
            if isinstance(exc, ConcurrencyConflict) and attempt < attempts:
                # Lost to another process: a random pause, so two processes that keep
                # meeting on one record fall out of step.
                time.sleep(random.uniform(0, 0.002 * attempt))
                continue
            raise
    services.projector.written(result.entries[-1]["position"], result.executive_id)
    return result_body(result.entries)


def _replayed(services: Services, stored: list[dict[str, Any]]) -> dict[str, Any]:
    """The stored answer of an earlier identical request. Answering it acknowledges the write
    here too (docs/api.md: reads see every write this process acknowledged), and with
    `serve --workers N` it may have been stored through another process: this process's
    reads of that record wait for it from now on, as after a write of its own."""
    last = stored[-1]
    services.projector.written(last["position"], services.directory.executive_of(last["stream_id"]))
    return result_body(stored)


def _record_lock(path: str) -> contextlib.AbstractContextManager[Any]:
    """The lock of the record a write path names (`/v1/appraisals/A-1/initial-rating`: the
    appraisal A-1), one of a fixed set by hash (two records may share one, which costs only a
    wait); a create (`POST /v1/appraisals`) names none yet and takes no lock."""
    parts = path.split("/")  # "", "v1", collection, id, action
    if len(parts) < 5:
        return contextlib.nullcontext()
    return _RECORD_LOCKS[hash((parts[2], parts[3])) % len(_RECORD_LOCKS)]


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
