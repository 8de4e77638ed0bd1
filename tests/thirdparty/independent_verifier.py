"""An evidence-bundle verifier written from the published contract alone.

A third party (an MSPB hearing's technical expert) does not run the vendor's verifier: this
module checks a `ses-ledger-bundle/v1` bundle with the Python standard library,
`cryptography` (Ed25519) and `rfc8785` (the contract's canonical JSON), from
`shared/api-contract.md`, `README.md` and `docs/api.md` only, never from `ledger/` or
`projections/`. It is kept in the suite so that the product's verifier and this one are held
to each other (tests/thirdparty/test_independent_verifier.py).

Checked: strict JSON (no member named twice, no NaN, nothing after the value), the bundle's
shape, each entry's hash (SHA-256 of RFC 8785 over the ten hashed fields), its Ed25519
signature over the 32 raw hash bytes by the key it names, key validity windows, each stream's
hash chain from version 1 with no gap, the C2SP checkpoint note and its Ed25519 signature
(key hash per C2SP signed-note), each RFC 9162 inclusion proof against the checkpoint's root,
positions against leaf indexes and the `position_seal`, that every stream belongs to the
executive's record, an optional trusted checkpoint (same tree, or the bundle's consistency
proof to it) and trusted key list, and the removal history the events imply.

Usage: python independent_verifier.py BUNDLE [--keys KEYS.json] [--checkpoint NOTE]
[--origin ORIGIN] [--as-of YYYY-MM-DD]; exit 0 verified, 1 problems, 2 not checked.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "ses-ledger-bundle/v1"
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
ENTRY_FIELDS = frozenset({*HASHED_FIELDS, "position", "hash", "signature", "key_id"})
SEAL_PREFIX = b"ses-ledger-bundle-positions/v1\n"
# README: entries outside their key's window recorded before this moment are a warning only.
KEY_WINDOW_GRACE_BEFORE = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
HEX64 = re.compile(r"[0-9a-f]{64}")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
DECIMAL = re.compile(r"0|[1-9][0-9]*")


class NotChecked(Exception):
    """The bundle could not be checked (unreadable input, unusable trusted material)."""


@dataclass
class Report:
    """What the verifier found: problems make the bundle fail, warnings do not."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


# --- strict JSON -------------------------------------------------------------------------


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"JSON member {k!r} named twice")
        out[k] = v
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"JSON has no {name}")


def parse_strict(raw: bytes) -> Any:
    """Parse I-JSON: UTF-8, no duplicate members, no NaN/Infinity, no trailing data.

    A leading byte order mark is ignored (RFC 8259 8.1 lets a parser do so)."""
    text = raw.decode("utf-8").removeprefix("\ufeff")  # UnicodeDecodeError is a ValueError
    return json.loads(text, object_pairs_hook=_pairs, parse_constant=_no_constant)


# --- small decoders ------------------------------------------------------------------------


def b64(value: Any, what: str, size: int | None = None) -> bytes:
    """Standard base64, canonical (re-encodes to the same text), of the expected size."""
    if not isinstance(value, str):
        raise ValueError(f"{what} is not a base64 string")
    try:
        out = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{what} is not standard base64") from None
    if base64.b64encode(out).decode() != value:
        raise ValueError(f"{what} is not canonical base64")
    if size is not None and len(out) != size:
        raise ValueError(f"{what} is {len(out)} bytes, not {size}")
    return out


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def timestamp(v: Any, what: str) -> dt.datetime:
    """An RFC 3339 timestamp with its offset (`...Z` as the ledger writes them, or `+00:00`)."""
    t = None
    if isinstance(v, str) and "T" in v:
        try:
            t = dt.datetime.fromisoformat(v[:-1] + "+00:00" if v.endswith("Z") else v)
        except ValueError:
            t = None
    if t is None or t.tzinfo is None:
        raise ValueError(f"{what} {v!r} is not an RFC 3339 timestamp")
    return t


def date(v: Any, what: str) -> dt.date:
    if not isinstance(v, str) or not DATE.fullmatch(v):
        raise ValueError(f"{what} {v!r} is not YYYY-MM-DD")
    return dt.date.fromisoformat(v)


# --- RFC 9162 ------------------------------------------------------------------------------


def leaf_hash(entry_hash: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry_hash).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def root_from_inclusion(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes:
    """RFC 9162 2.1.3.2: the root an inclusion proof leads to (ValueError if malformed)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            raise ValueError("inclusion proof is too long")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ValueError("inclusion proof is too short")
    return r


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, path: list[bytes]
) -> None:
    """RFC 9162 2.1.4.2: raise ValueError unless the proof ties the two roots."""
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from size {first} to {second}")
    if first == second:
        if path or first_root != second_root:
            raise ValueError("same tree size, different roots")
        return
    if not path:
        raise ValueError("empty consistency proof")
    if first & (first - 1) == 0:  # a power of two: the first root is the proof's seed
        path = [first_root, *path]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ValueError("consistency proof is too long")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if fn & 1 or fn == 0:
                        break
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0 or fr != first_root or sr != second_root:
        raise ValueError("consistency proof does not tie the two checkpoints")


# --- C2SP signed note / tlog-checkpoint ----------------------------------------------------


@dataclass
class Checkpoint:
    origin: str
    size: int
    root: bytes
    body: bytes
    signatures: list[tuple[str, bytes, bytes]]  # (key name, 4-byte key hash, signature)


def c2sp_key_hash(name: str, public: bytes) -> bytes:
    """C2SP signed-note key ID: SHA-256(name || 0x0A || 0x01 (Ed25519) || key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n\x01" + public).digest()[:4]


def parse_checkpoint(note: Any) -> Checkpoint:
    if not isinstance(note, str) or not note.endswith("\n"):
        raise ValueError("checkpoint is not a signed note text ending in a line feed")
    if "\n\n" not in note:
        raise ValueError("checkpoint has no signature block")
    body, sigs = note.split("\n\n", 1)
    body += "\n"
    lines = body[:-1].split("\n")
    if len(lines) < 3 or any(not x for x in lines):
        raise ValueError("checkpoint body must be origin, tree size, root (and extensions)")
    origin, size_text, root_text = lines[:3]
    if not DECIMAL.fullmatch(size_text):
        raise ValueError(f"checkpoint tree size {size_text!r} is not a decimal")
    root = b64(root_text, "checkpoint root", 32)
    signatures = []
    for line in sigs[:-1].split("\n"):
        m = re.fullmatch(r"\u2014 (\S+) (\S+)", line)
        if not m:
            raise ValueError(f"checkpoint signature line {line!r} is malformed")
        raw = b64(m.group(2), "checkpoint signature")
        if len(raw) < 5:
            raise ValueError("checkpoint signature is too short")
        signatures.append((m.group(1), raw[:4], raw[4:]))
    if not signatures:
        raise ValueError("checkpoint has no signature")
    return Checkpoint(origin, int(size_text), root, body.encode(), signatures)


# --- keys ----------------------------------------------------------------------------------


@dataclass
class Key:
    key_id: str
    public: Ed25519PublicKey
    raw: bytes
    valid_from: dt.datetime
    valid_until: dt.datetime | None


def parse_keys(keys: Any, what: str) -> dict[str, Key]:
    if not isinstance(keys, list) or not keys:
        raise ValueError(f"{what}: keys must be a non-empty list")
    out: dict[str, Key] = {}
    for k in keys:
        if not isinstance(k, dict) or not isinstance(k.get("key_id"), str):
            raise ValueError(f"{what}: a key without key_id")
        kid = k["key_id"]
        if kid in out:
            raise ValueError(f"{what}: key {kid} listed twice")
        if k.get("algorithm") != "Ed25519":
            raise ValueError(f"{what}: key {kid} algorithm {k.get('algorithm')!r} is not Ed25519")
        raw = b64(k.get("public_key"), f"{what}: key {kid} public_key", 32)
        until = k.get("valid_until")
        out[kid] = Key(
            kid,
            Ed25519PublicKey.from_public_bytes(raw),
            raw,
            timestamp(k.get("valid_from"), f"{what}: key {kid} valid_from"),
            None if until is None else timestamp(until, f"{what}: key {kid} valid_until"),
        )
    return out


def verify_sig(key: Key, signature: bytes, message: bytes) -> bool:
    try:
        key.public.verify(signature, message)
    except InvalidSignature:
        return False
    return True


# --- the bundle ----------------------------------------------------------------------------


def entry_hash(entry: dict[str, Any]) -> str:
    """The contract's hash: SHA-256 hex of RFC 8785 over exactly the ten hashed fields."""
    return hashlib.sha256(rfc8785.dumps({k: entry[k] for k in HASHED_FIELDS})).hexdigest()


def _has_float(v: Any) -> bool:
    if isinstance(v, float):
        return True
    if isinstance(v, dict):
        return any(_has_float(x) for x in v.values())
    if isinstance(v, list):
        return any(_has_float(x) for x in v)
    return False


def _check_entry_shape(e: Any, i: int) -> str | None:
    if not isinstance(e, dict):
        return f"entry {i} is not an object"
    if _has_float(e):
        # README: a bundle's numbers are integers written as such (1.0, 1E0 are refused).
        return f"entry {i} holds a number written as a float; ledger entries hold integers"
    missing = ENTRY_FIELDS - e.keys()
    if missing:
        return f"entry {i} lacks {sorted(missing)}"
    extra = e.keys() - ENTRY_FIELDS
    if extra:
        return f"entry {i} has fields the contract does not hash or sign: {sorted(extra)}"
    if not is_int(e["position"]) or e["position"] < 1:
        return f"entry {i} position {e['position']!r} is not a positive integer"
    if not is_int(e["stream_version"]) or e["stream_version"] < 1:
        return f"entry {i} stream_version {e['stream_version']!r} is not a positive integer"
    for k in ("stream_id", "type", "actor", "submitted_by", "key_id", "recorded_at"):
        if not isinstance(e[k], str) or not e[k]:
            return f"entry {i} {k} is not a non-empty string"
    if not isinstance(e["data"], dict):
        return f"entry {i} data is not an object"
    if not isinstance(e["hash"], str) or not HEX64.fullmatch(e["hash"]):
        return f"entry {i} hash is not 64 lower-case hex digits"
    if e["prev_hash"] is not None and (
        not isinstance(e["prev_hash"], str) or not HEX64.fullmatch(e["prev_hash"])
    ):
        return f"entry {i} prev_hash is neither null nor 64 lower-case hex digits"
    if e["policy"] is not None and not isinstance(e["policy"], str):
        return f"entry {i} policy is neither null nor a string"
    try:
        date(e["occurred_on"], f"entry {i} occurred_on")
        timestamp(e["recorded_at"], f"entry {i} recorded_at")
    except ValueError as exc:
        return str(exc)
    return None


def verify_bundle(  # noqa: C901 - one pass, in the order an expert would check
    raw: bytes,
    trusted_keys: Any = None,
    trusted_checkpoint: str | None = None,
    origin: str | None = None,
    as_of: dt.date | None = None,
) -> Report:
    """Check a bundle's bytes; NotChecked when trusted material itself is unusable."""
    rep = Report()
    P = rep.problems.append
    try:
        b = parse_strict(raw)
    except (ValueError, RecursionError) as exc:
        P(f"not a strict JSON text: {exc}")
        return rep
    if not isinstance(b, dict):
        P("bundle is not a JSON object")
        return rep
    if b.get("format") != FORMAT:
        P(f"format {b.get('format')!r} is not {FORMAT!r}")
        return rep
    known = {
        "format",
        "executive_id",
        "entries",
        "keys",
        "checkpoint",
        "proofs",
        "position_seal",
        "consistency",
        "consistency_proofs",
    }
    if b.keys() - known:
        rep.warnings.append(f"bundle fields not checked: {sorted(b.keys() - known)}")
    exe = b.get("executive_id")
    entries = b.get("entries")
    proofs = b.get("proofs")
    if not isinstance(exe, str) or not isinstance(entries, list) or not entries:
        P("executive_id must be a string and entries a non-empty list")
        return rep
    if not isinstance(proofs, dict):
        P("proofs is not an object")
        return rep

    # keys: the bundle's, held to a trusted key list when one is given
    try:
        keys = parse_keys(b.get("keys"), "bundle")
    except ValueError as exc:
        P(str(exc))
        return rep
    if trusted_keys is not None:
        try:
            tkeys = parse_keys(
                trusted_keys.get("keys") if isinstance(trusted_keys, dict) else trusted_keys,
                "trusted key list",
            )
        except ValueError as exc:
            raise NotChecked(str(exc)) from None
        for kid, k in keys.items():
            t = tkeys.get(kid)
            if t is None or t.raw != k.raw:
                P(f"bundle key {kid} is not in the trusted key list")
        # The trusted windows count: a bundle exported before a rotation still shows its
        # key open-ended, which is no tampering.
        keys = tkeys

    # checkpoint
    try:
        cp = parse_checkpoint(b.get("checkpoint"))
    except ValueError as exc:
        P(f"checkpoint: {exc}")
        return rep
    if origin is not None and cp.origin != origin:
        P(f"checkpoint origin {cp.origin!r} is not the expected {origin!r}")
    signed_by = None
    for name, khash, sig in cp.signatures:
        if name != cp.origin:
            continue  # another signer's line (a witness): C2SP lets verifiers skip it
        for k in keys.values():
            if c2sp_key_hash(name, k.raw) != khash:
                continue  # an unknown key's line: skipped
            if verify_sig(k, sig, cp.body):
                signed_by = k
            else:  # a known key's bad signature voids the note (as Go's note.Open does)
                P(f"checkpoint: the signature line of key {k.key_id} does not verify")
    if signed_by is None:
        P(
            f"checkpoint ({cp.origin}, size {cp.size}) carries no valid signature by a listed "
            f"key under its origin's name"
        )

    # trusted checkpoint: same tree, or the bundle's consistency proof to it
    if trusted_checkpoint is not None:
        try:
            tcp = parse_checkpoint(trusted_checkpoint)
        except ValueError as exc:
            raise NotChecked(f"trusted checkpoint: {exc}") from None
        if not any(
            n == tcp.origin and c2sp_key_hash(n, k.raw) == h and verify_sig(k, s, tcp.body)
            for n, h, s in tcp.signatures
            for k in keys.values()
        ):
            raise NotChecked("trusted checkpoint is signed by no key available here")
        if tcp.origin != cp.origin:
            P(f"checkpoint origin {cp.origin!r} is not the trusted one's {tcp.origin!r}")
        elif tcp.size == cp.size:
            if tcp.root != cp.root:
                P(f"checkpoint root differs from the trusted checkpoint's at size {cp.size}")
        else:
            small, big = sorted((tcp, cp), key=lambda x: x.size)
            listed = b.get("consistency_proofs")
            cands = [*(listed if isinstance(listed, list) else []), b.get("consistency")]
            c = next(
                (
                    x
                    for x in cands
                    if isinstance(x, dict)
                    and x.get("first") == small.size
                    and x.get("second") == big.size
                    and isinstance(x.get("hashes"), list)
                ),
                None,
            )
            if c is None:
                raise NotChecked(
                    f"no consistency proof between tree sizes {small.size} and "
                    f"{big.size} in the bundle"
                )
            try:
                path = [b64(h, "consistency hash", 32) for h in c["hashes"]]
                verify_consistency(small.size, big.size, small.root, big.root, path)
            except ValueError as exc:
                P(f"consistency with the trusted checkpoint: {exc}")

    # entries: shape, hash, signature, key window
    good: list[dict[str, Any]] = []
    positions: set[int] = set()
    last_position = 0
    for i, e in enumerate(entries):
        msg = _check_entry_shape(e, i)
        if msg:
            P(msg)
            continue
        if e["position"] <= last_position:
            # docs/api.md: a bundle lists its entries in increasing position order
            P(f"entry {i} at position {e['position']} is not after position {last_position}")
        last_position = max(last_position, e["position"])
        where = f"entry at position {e['position']} ({e['stream_id']} v{e['stream_version']})"
        if e["position"] in positions:
            P(f"{where}: position listed twice")
            continue
        positions.add(e["position"])
        try:
            h = entry_hash(e)
        except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
            P(f"{where}: cannot be put in RFC 8785 form: {exc}")
            continue
        if h != e["hash"]:
            P(f"{where}: hash does not match its content")
            continue
        signer = keys.get(e["key_id"])
        if signer is None:
            P(f"{where}: signed by key {e['key_id']} which is not listed")
            continue
        try:
            sig = b64(e["signature"], f"{where}: signature", 64)
        except ValueError as exc:
            P(str(exc))
            continue
        if not verify_sig(signer, sig, bytes.fromhex(e["hash"])):
            P(f"{where}: Ed25519 signature does not verify with key {signer.key_id}")
            continue
        rec = timestamp(e["recorded_at"], "recorded_at")
        if rec < signer.valid_from or (signer.valid_until is not None and rec > signer.valid_until):
            text = f"{where}: recorded_at {e['recorded_at']} outside key {signer.key_id}'s window"
            if rec < KEY_WINDOW_GRACE_BEFORE:
                rep.warnings.append(text + " (before 2026-12-01: warning only)")
            else:
                P(text)
        good.append(e)
    if rep.problems:
        return rep

    # streams: contiguous from version 1, chained, in position order
    streams: dict[str, list[dict[str, Any]]] = {}
    for e in good:
        streams.setdefault(e["stream_id"], []).append(e)
    for sid, es in streams.items():
        es.sort(key=lambda x: x["stream_version"])
        for n, e in enumerate(es, start=1):
            if e["stream_version"] != n:
                P(
                    f"stream {sid}: version {e['stream_version']} where {n} was due (a gap or a "
                    f"duplicate)"
                )
                break
            want = None if n == 1 else es[n - 2]["hash"]
            if e["prev_hash"] != want:
                P(f"stream {sid} v{n}: prev_hash does not chain to v{n - 1}")
                break
            if n > 1 and e["position"] <= es[n - 2]["position"]:
                P(f"stream {sid} v{n}: position {e['position']} is not after v{n - 1}'s")
                break

    # inclusion proofs and positions
    if set(proofs) != {str(p) for p in positions}:
        P(f"proofs are for positions {sorted(proofs)}, entries are at {sorted(positions)}")
    leaf_of: dict[int, int] = {}
    for e in good:
        pr = proofs.get(str(e["position"]))
        where = f"entry at position {e['position']}"
        if (
            not isinstance(pr, dict)
            or not is_int(pr.get("leaf_index"))
            or not is_int(pr.get("tree_size"))
            or not isinstance(pr.get("hashes"), list)
        ):
            P(f"{where}: no usable inclusion proof")
            continue
        if pr["tree_size"] != cp.size:
            P(
                f"{where}: inclusion proof is for tree size {pr['tree_size']}, checkpoint is "
                f"{cp.size}"
            )
            continue
        try:
            path = [b64(x, "proof hash", 32) for x in pr["hashes"]]
            root = root_from_inclusion(
                pr["leaf_index"], cp.size, leaf_hash(bytes.fromhex(e["hash"])), path
            )
        except ValueError as exc:
            P(f"{where}: inclusion proof: {exc}")
            continue
        if root != cp.root:
            P(f"{where}: inclusion proof does not lead to the checkpoint's root")
            continue
        leaf_of[e["position"]] = pr["leaf_index"]
    order = sorted(leaf_of.items())
    for (p1, l1), (p2, l2) in zip(order, order[1:], strict=False):
        if l2 <= l1 or p2 - p1 < l2 - l1:
            P(f"positions {p1} and {p2} do not fit leaf indexes {l1} and {l2}")
    for p, leaf in order:
        if p < leaf + 1:
            P(f"position {p} cannot hold leaf {leaf} (leaf n lies at position n + 1 or later)")

    # position seal
    seal = b.get("position_seal")
    if seal is None:
        rep.warnings.append("no position_seal: entry positions are unproven")
    elif not isinstance(seal, dict) or not isinstance(seal.get("positions"), list):
        P("position_seal is malformed")
    else:
        sealer = keys.get(str(seal.get("key_id")))
        sealed = SEAL_PREFIX + rfc8785.dumps(
            {
                "origin": cp.origin,
                "tree_size": cp.size,
                "root": base64.b64encode(cp.root).decode(),
                "positions": seal["positions"],
            }
        )
        try:
            sig = b64(seal.get("signature"), "position_seal signature", 64)
        except ValueError as exc:
            P(str(exc))
        else:
            if sealer is None or not verify_sig(sealer, sig, sealed):
                P("position_seal signature does not verify")
            elif sorted(map(tuple, seal["positions"])) != sorted(leaf_of.items()) or len(
                seal["positions"]
            ) != len(entries):
                P("entries and their leaf indexes are not the ones the position_seal names")

    # the executive's record
    _check_record(exe, streams, rep)
    if not rep.problems:
        rep.state = derive_state(exe, good, as_of)
    return rep


def _check_record(exe: str, streams: dict[str, list[dict[str, Any]]], rep: Report) -> None:
    first = {sid: es[0] for sid, es in streams.items()}
    own = first.get(exe)
    if (
        own is None
        or own["type"] != "ExecutiveRegistered"
        or own["data"].get("executive_id") != exe
    ):
        rep.problems.append(f"no ExecutiveRegistered stream of {exe}")
        return
    boards = set()
    for sid, e in first.items():
        if e["type"] == "PlanSet":
            if e["data"].get("executive_id") != exe:
                rep.problems.append(f"stream {sid} is not part of {exe}'s record (another's plan)")
            for x in streams[sid]:
                if x["type"] == "PRBRecommended":
                    boards.add(x["data"].get("board_id"))
    for sid, e in first.items():
        if sid == exe or e["type"] == "PlanSet":
            continue
        if e["type"] == "ReviewBoardRegistered" and sid in boards:
            continue
        rep.problems.append(f"stream {sid} ({e['type']}) is not part of {exe}'s record")


# --- state ---------------------------------------------------------------------------------


def minus_years(d: dt.date, n: int) -> dt.date:
    """D - n years; Feb 29 minus n years is Mar 1 (docs/api.md)."""
    try:
        return d.replace(year=d.year - n)
    except ValueError:
        return dt.date(d.year - n, 3, 1)


def plus_years(d: dt.date, n: int) -> dt.date:
    """Feb 29 plus n years is Feb 28 (docs/api.md)."""
    try:
        return d.replace(year=d.year + n)
    except ValueError:
        return dt.date(d.year + n, 2, 28)


def derive_state(exe: str, entries: list[dict[str, Any]], as_of: dt.date | None) -> dict[str, Any]:
    """Ratings and the rating-date removal history as of D, from the entries alone."""
    entries = sorted(entries, key=lambda e: e["position"])
    if as_of is None:  # README: the latest occurred_on of the bundle's entries
        as_of = max(dt.date.fromisoformat(e["occurred_on"]) for e in entries)
    plans: dict[str, dict[str, Any]] = {}
    ratings = []
    actions = []
    for e in entries:
        d = e["data"]
        if e["type"] == "PlanSet":
            plans[e["stream_id"]] = {"policy": e["policy"], **d}
        elif e["type"] == "InitialRatingIssued":
            plans[e["stream_id"]]["score"] = d.get("score")
        elif e["type"] == "FinalRatingAssigned":
            p = plans[e["stream_id"]]
            ratings.append(
                {
                    "appraisal_id": e["stream_id"],
                    "policy": p["policy"],
                    "period_start": p["period_start"],
                    "period_end": p["period_end"],
                    "level": d["level"],
                    "score": p.get("score"),
                    "rated_on": d["rated_on"],
                }
            )
        elif e["type"] == "PersonnelActionRecorded":
            actions.append(d)
    ratings.sort(key=lambda r: (r["rated_on"], r["appraisal_id"]))
    upto = [r for r in ratings if dt.date.fromisoformat(r["rated_on"]) <= as_of]

    def window(pred: Any, years: int, rule: str) -> dict[str, Any]:
        rs = [r for r in upto if pred(r["level"])]
        start = minus_years(as_of, years)
        trig = None
        for i, later in enumerate(rs):
            ld = dt.date.fromisoformat(later["rated_on"])
            for earlier in rs[:i]:
                if ld <= plus_years(dt.date.fromisoformat(earlier["rated_on"]), years):
                    trig = later["rated_on"]
        return {
            "ratings": [
                {"appraisal_id": r["appraisal_id"], "level": r["level"], "rated_on": r["rated_on"]}
                for r in rs
                if start <= dt.date.fromisoformat(r["rated_on"])
            ],
            "removal_required": trig is not None,
            "triggered_on": trig,
            "rule": rule,
        }

    l1 = [r for r in upto if r["level"] == 1]
    due = False
    if l1:
        since = l1[-1]["rated_on"]
        due = not any(
            a["action"] in ("reassignment", "transfer", "demotion", "removal")
            and since <= a["notice_on"] <= as_of.isoformat()
            for a in actions
        )
    return {
        "executive_id": exe,
        "as_of": as_of.isoformat(),
        "ratings": ratings,
        "three_year": window(lambda lv: lv < 3, 3, "REM-2"),
        "five_year": window(lambda lv: lv == 1, 5, "REM-3"),
        "level1_action_due": due,
        "actions": [a for a in actions if a["notice_on"] <= as_of.isoformat()],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--keys", help="trusted GET /v1/ledger/keys answer")
    ap.add_argument("--checkpoint", help="trusted checkpoint note")
    ap.add_argument("--origin", help="expected checkpoint origin")
    ap.add_argument("--as-of", type=dt.date.fromisoformat)
    a = ap.parse_args(argv)
    try:
        with open(a.bundle, "rb") as f:
            raw = f.read()
        tk = None
        if a.keys:
            with open(a.keys, "rb") as f:
                tk = parse_strict(f.read())
        tc = None
        if a.checkpoint:
            with open(a.checkpoint, encoding="utf-8") as f:
                tc = f.read()
        rep = verify_bundle(raw, tk, tc, a.origin, a.as_of)
    except (OSError, ValueError, NotChecked) as exc:
        print(f"NOT CHECKED: {exc}")
        return 2
    for w in rep.warnings:
        print(f"WARNING: {w}")
    for p in rep.problems:
        print(f"PROBLEM: {p}")
    if rep.ok:
        print(json.dumps(rep.state, indent=1))
        print("VERIFIED")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
