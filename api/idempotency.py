"""`Idempotency-Key`: a retried write returns the first response and appends nothing.

The ledger stores (subject, key, request fingerprint, positions) in the same transaction as
the events, so the record exists exactly when the events do: a crash between commit and
response leaves a record the retry finds, and a refused request (4xx) leaves none. Records
are never purged, which more than meets the contract's 24 hours. The fingerprint covers the
method, path and the validated body, so a reuse of the key for another request is detected.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from api.errors import IdempotencyKeyReused, InvalidRequest
from ledger.application import LedgerApp
from ledger.canonical import canonical_json

_KEY = re.compile(r"[\x21-\x7e]{1,255}")

Idempotency = tuple[str, str, str]


def check_key(key: str | None) -> str | None:
    """The header's value, or InvalidRequest when it is not 1-255 visible ASCII characters."""
    if key is None:
        return None
    if not _KEY.fullmatch(key):
        raise InvalidRequest(
            "Idempotency-Key must be 1 to 255 visible ASCII characters",
            [{"loc": ["header", "Idempotency-Key"], "msg": "1-255 visible ASCII characters"}],
        )
    return key


def fingerprint(method: str, path: str, body: dict[str, Any] | None) -> str:
    payload = {"method": method, "path": path, "body": body}
    return hashlib.sha256(canonical_json(payload)).hexdigest()


@dataclass(frozen=True)
class IdempotentRequest:
    subject: str
    key: str
    fingerprint: str

    @property
    def record(self) -> Idempotency:
        return (self.subject, self.key, self.fingerprint)


def earlier_entries(ledger: LedgerApp, request: IdempotentRequest) -> list[dict[str, Any]] | None:
    """The entries an earlier request with this key stored, or None if there was none.

    Raises IdempotencyKeyReused when the key was used for a different request.
    """
    found = ledger.idempotent_positions(request.subject, request.key)
    if found is None:
        return None
    stored_fingerprint, positions = found
    if stored_fingerprint != request.fingerprint:
        raise IdempotencyKeyReused(
            f"the Idempotency-Key {request.key!r} was already used by this subject for a "
            "different request"
        )
    return ledger.entries_at(positions)
