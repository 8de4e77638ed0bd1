"""RFC 8785 (JCS) canonical JSON.

Hand-written fast path, with the `rfc8785` library as fallback and test oracle: that library
is pure Python and about ten times slower than `json.dumps`, which is on the hot path of every
append and of `verify`. For the values the ledger stores (strings, integers, booleans, null,
lists, objects with ASCII keys; never floats) `json.dumps(sort_keys=True, ensure_ascii=False)`
produces exactly the JCS bytes: Python escapes the same characters as ECMAScript (`"`, `\\`,
control characters, with lowercase `\\u00xx`), and for ASCII keys code-point order equals
UTF-16 order. Anything else (a float, a non-ASCII key, an integer beyond 2**53) goes to the
library, which also rejects what JCS cannot encode.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

_encoder = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
)
# `JSONEncoder.encode` builds its C encoder afresh on every call, about a quarter of the cost
# of encoding one ledger entry; it is built once here with the same settings. No
# circular-reference markers: the fast path only encodes trees `_fast_path_ok` has walked.
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_c_iterencode = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(
        None, _encoder.default, json.encoder.encode_basestring, None, ":", ",", True, False, False
    )
)

#: The JSON string encoder of `ensure_ascii=False` (the C one): escapes `"`, `\\` and
#: control characters, as JCS does.
encode_string = json.encoder.encode_basestring


def _encode(value: Any) -> str:
    if _c_iterencode is None:  # pragma: no cover - CPython always has the _json accelerator
        return _encoder.encode(value)
    return "".join(_c_iterencode(value, 0))


#: Integers JCS (IEEE 754 doubles) represents exactly.
MAX_SAFE_INTEGER = 2**53 - 1


_LEAF = frozenset({str, bool, type(None)})


def _fast_path_ok(value: Any) -> bool:
    """True when `json.dumps` provably gives the JCS bytes for `value`."""
    t = type(value)
    if t in _LEAF:
        return True
    if t is int:
        return bool(-MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER)
    if t is dict:
        for k, item in value.items():
            if type(k) is not str or not k.isascii():
                return False
            if type(item) not in _LEAF and not _fast_path_ok(item):
                return False
        return True
    if t is list or t is tuple:
        for item in value:
            if type(item) not in _LEAF and not _fast_path_ok(item):
                return False
        return True
    return False


def fast_text(value: Any) -> str | None:
    """The JCS text of `value` when the fast path applies, else None (use `canonical_json`).

    The text may still hold a lone surrogate, which fails on encoding to UTF-8.
    """
    return _encode(value) if _fast_path_ok(value) else None


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of a JSON value."""
    if _fast_path_ok(value):
        try:
            return _encode(value).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: let the library raise its own clear error
    return bytes(rfc8785.dumps(value))
