"""Ledger entries: the contract's hashed form of every stored event.

`hash` = SHA-256 (hex) of the RFC 8785 canonical JSON of exactly `HASHED_FIELDS`;
`signature` = Ed25519 over the 32 raw bytes of `hash` (api-contract.md, "Ledger entry").

The stored state of an event is itself canonical JSON,
`{"entry": <hashed object>, "hash": ..., "key_id": ..., "signature": ...}`, assembled so that
the hashed bytes sit verbatim inside it: `verify` hashes a byte slice instead of re-encoding.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, NamedTuple

from ledger.canonical import MAX_SAFE_INTEGER, canonical_json, encode_string, fast_text
from ledger.errors import UnreadableEntry

HASHED_FIELDS = (
    "stream_id",
    "stream_version",
    "type",
    "occurred_on",
    "recorded_at",
    "actor",
    "submitted_by",
    "policy",
    "data",
    "prev_hash",
)

_PREFIX = b'{"entry":'
_HASH_MARK = b',"hash":"'


#: RFC 3339's date-time: a `T`, seconds, and an offset (`Z` or +hh:mm), so no moment is read
#: in a zone the caller did not state; a fraction of any length (RFC 3339's `time-secfrac`).
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")
_PAST_MICROSECONDS = re.compile(r"(\.\d{6})\d+")


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 date-time, in UTC (ValueError: not one, e.g. a bare date, or no offset, or
    one that in UTC falls outside years 1-9999).

    Digits past the microsecond (the ledger's precision) are cut, not rounded: a `recorded_at`
    is at or before a moment exactly when it is at or before the moment cut so.

    A leap second (RFC 3339 5.7: `23:59:60` UTC on a month's last day, in any offset) is read
    as the last microsecond of its day: Python's datetime has no 61st second, and no
    `recorded_at` (stamped by such a clock) lies in one, so a moment "at or before" the leap
    second is one before the next day. A second of 60 at any other time is no moment.
    """
    if not _RFC3339.fullmatch(text):
        raise ValueError(
            f"must be an RFC 3339 timestamp with its offset, e.g. 2025-01-01T00:00:00Z, "
            f"got {text[:40]!r}"
        )
    leap = text[17:19] == "60"
    if leap:
        text = f"{text[:17]}59{text[19:]}"
    try:
        moment = datetime.fromisoformat(_PAST_MICROSECONDS.sub(r"\1", text.upper())).astimezone(UTC)
    except OverflowError:  # 9999-12-31T23:59:59-01:00 is in year 10000 in UTC
        raise ValueError(f"must lie in years 1-9999 in UTC, got {text[:40]!r}") from None
    if leap:
        last_day = calendar.monthrange(moment.year, moment.month)[1]
        if (moment.day, moment.hour, moment.minute, moment.second) != (last_day, 23, 59, 59):
            raise ValueError(
                "a second of 60 is a leap second, which falls only at 23:59:60 UTC on the last "
                f"day of a month; {text[:17]}60{text[19:40]} is not one"
            )
        moment = moment.replace(microsecond=999_999)
    return moment


def format_timestamp(value: Any) -> str:
    """RFC 3339 UTC with microseconds and a `Z`, the contract's `recorded_at` form.

    A naive value is taken as UTC. Formats first and swaps the `+00:00` suffix, rather than
    copying the datetime without its zone, and passes `timespec` only when needed (whole
    seconds): keyword parsing is a third of `isoformat`'s cost, on every append's path.
    """
    text: str = value.isoformat() if value.microsecond else value.isoformat(timespec="microseconds")
    if text.endswith("+00:00"):
        return text[:-6] + "Z"
    if value.utcoffset():
        raise ValueError("recorded_at must be in UTC")
    return text + "Z"


#: The hashed fields in JCS order (ASCII keys, so code-point order is UTF-16 order).
_JCS_ORDER = tuple(sorted(HASHED_FIELDS))
_sorted_values = itemgetter(*_JCS_ORDER)
_str = encode_string


def canonical_entry(hashed: dict[str, Any]) -> bytes:
    """The RFC 8785 bytes of an entry's hashed fields: exactly `canonical_json(hashed)`.

    Assembled by hand because the top-level keys are fixed, so their JCS order is known and
    only `data` needs the sorting encoder: about three times faster than the general path on
    every append. Each value's type is checked first; anything else (missing or extra keys,
    floats, unsafe integers, non-string fields, a lone surrogate) takes `canonical_json`.
    Equality with the `rfc8785` library is tested (tests/unit/test_canonical.py).
    """
    if len(hashed) == len(HASHED_FIELDS):
        try:
            (
                actor,
                data,
                occurred_on,
                policy,
                prev_hash,
                recorded_at,
                stream_id,
                version,
                by,
                kind,
            ) = _sorted_values(hashed)
        except KeyError:
            return canonical_json(hashed)
        if (
            type(actor) is str
            and type(occurred_on) is str
            and type(recorded_at) is str
            and type(stream_id) is str
            and type(by) is str
            and type(kind) is str
            and (policy is None or type(policy) is str)
            and (prev_hash is None or type(prev_hash) is str)
            and type(version) is int
            and -MAX_SAFE_INTEGER <= version <= MAX_SAFE_INTEGER
        ):
            data_text = fast_text(data)
            if data_text is not None:
                text = (
                    f'{{"actor":{_str(actor)},"data":{data_text},'
                    f'"occurred_on":{_str(occurred_on)},'
                    f'"policy":{"null" if policy is None else _str(policy)},'
                    f'"prev_hash":{"null" if prev_hash is None else _str(prev_hash)},'
                    f'"recorded_at":{_str(recorded_at)},"stream_id":{_str(stream_id)},'
                    f'"stream_version":{version},"submitted_by":{_str(by)},"type":{_str(kind)}}}'
                )
                try:
                    return text.encode("utf-8")
                except UnicodeEncodeError:
                    pass  # a lone surrogate: the library raises its own clear error
    return canonical_json(hashed)


class SealedState(NamedTuple):
    """What the store keeps for one event: canonical bytes and the three seal fields.

    A named tuple, not a frozen dataclass: one is built per append, at half the cost.
    """

    state: bytes
    hash: str
    signature: str
    key_id: str


def seal(hashed: dict[str, Any], key_id: str, sign: Callable[[bytes], bytes]) -> SealedState:
    """Hash and sign one entry's hashed fields; returns the bytes to store."""
    body, digest = hash_entry(hashed)
    return sealed_state(body, digest, key_id, sign(digest))


def hash_entry(hashed: dict[str, Any]) -> tuple[bytes, bytes]:
    """The canonical bytes of an entry's hashed fields and their raw SHA-256 digest."""
    body = canonical_entry(hashed)
    return body, hashlib.sha256(body).digest()


def sealed_state(body: bytes, digest: bytes, key_id: str, signature: bytes) -> SealedState:
    """The stored state of an entry from `hash_entry`, given the signature of its digest.

    `key_id` is hex (see ledger.keys), so it needs no JSON escaping.
    """
    if not key_id.isalnum():
        raise ValueError("a key id is alphanumeric")
    hex_hash = digest.hex()
    encoded = base64.b64encode(signature)
    state = b"".join(
        (
            _PREFIX,
            body,
            _HASH_MARK,
            hex_hash.encode(),
            b'","key_id":"',
            key_id.encode(),
            b'","signature":"',
            encoded,
            b'"}',
        )
    )
    return SealedState(state=state, hash=hex_hash, signature=encoded.decode(), key_id=key_id)


def split_state(state: bytes) -> tuple[bytes, dict[str, Any]]:
    """The hashed canonical bytes and the seal fields of a stored state.

    Raises UnreadableEntry (a ValueError) when the state is not in the stored layout.
    """
    cut = _seal_start(state)
    try:
        seal_fields = json.loads(b"{" + state[cut + 1 :])
    except ValueError as exc:
        raise UnreadableEntry(f"stored seal is not JSON: {exc}") from exc
    if not isinstance(seal_fields, dict):
        raise UnreadableEntry("stored seal is not an object")
    return state[len(_PREFIX) : cut], seal_fields


def _seal_start(state: bytes) -> int:
    """Where the seal fields begin; UnreadableEntry (a ValueError) when the state is not in
    the stored layout."""
    if not state.startswith(_PREFIX):
        raise UnreadableEntry("stored state does not start with the entry object")
    cut = state.rfind(_HASH_MARK)
    if cut < 0:
        raise UnreadableEntry("stored state has no hash field")
    return cut


def hashed_body(state: bytes) -> bytes:
    """The hashed canonical bytes of a stored state, without parsing its seal."""
    return state[len(_PREFIX) : _seal_start(state)]


def event_hash_bytes(state: bytes) -> bytes:
    """The 32 raw bytes of the entry hash inside a stored state (the Merkle leaf's data)."""
    at = _seal_start(state) + len(_HASH_MARK)
    return bytes.fromhex(state[at : at + 64].decode())


def entry_from_state(state: bytes, position: int | None = None) -> dict[str, Any]:
    """The contract's ledger entry (position first) from a stored state."""
    body, seal_fields = split_state(state)
    try:
        hashed = json.loads(body)
    except ValueError as exc:
        raise UnreadableEntry(f"stored entry is not JSON: {exc}") from exc
    if not isinstance(hashed, dict):
        raise UnreadableEntry("stored entry is not an object")
    entry: dict[str, Any] = {"position": position}
    entry.update(hashed)
    entry["hash"] = seal_fields.get("hash")
    entry["signature"] = seal_fields.get("signature")
    entry["key_id"] = seal_fields.get("key_id")
    return entry


def entry_json(state: bytes, position: int) -> bytes:
    """`entry_from_state(state, position)` as JSON bytes, spliced from the stored state.

    The stored state already holds the entry's members as JSON (the hashed object, then the
    seal fields), so a page of the log is served without decoding and re-encoding each
    event: `{"position": N,` + the hashed object's members + the seal's. Same members and
    values as `entry_from_state` (tested); raises UnreadableEntry likewise on another layout.
    """
    cut = _seal_start(state)
    if state[cut - 1 : cut] != b"}" or not state.endswith(b"}"):
        raise UnreadableEntry("stored state is not an entry object followed by its seal")
    return b"".join(
        (
            b'{"position":',
            str(int(position)).encode(),
            b",",
            state[len(_PREFIX) + 1 : cut - 1],
            b",",
            state[cut + 1 :],
        )
    )


def entry_hash(entry: dict[str, Any]) -> str:
    """Recompute an entry's hash from its fields, as an outside verifier does."""
    return hashlib.sha256(canonical_json({k: entry.get(k) for k in HASHED_FIELDS})).hexdigest()
