"""Offline verifier of an SES Ledger evidence bundle (format ``ses-ledger-bundle/v1``).

Standalone: needs Python >= 3.11 and ``cryptography`` only (2.6 or later: Debian 12's own
38.0.4 does), so this file can be copied out and read on its own.
``python offline_verify.py BUNDLE.json [--checkpoint TRUSTED_NOTE]``

It trusts nothing the ledger computed. Per entry it recomputes ``hash`` (SHA-256 of the
RFC 8785 canonical JSON of the ten hashed fields), checks the Ed25519 signature over the 32
raw hash bytes and the stream's ``prev_hash`` chain, and that every stream is the
executive's record (their registration, appraisals whose plan names them, boards those
cite). It checks the checkpoint's signature (C2SP signed-note / tlog-checkpoint) and each
entry's RFC 9162 inclusion proof against the checkpoint root, each entry's position against
its proven leaf index (``_check_proofs``) and the ledger's ``position_seal`` over them, given
one (``_check_position_seal``; a position is not hashed), else, given ``--positions`` (the
ledger's inclusion proof of each entry's position, as ``ses-ledger bundle verify --url``
fetches them), against those (``_check_ledger_positions``), and, given a trusted
checkpoint, that both are the same tree or consistent ones (RFC 9162 2.1.4), and that each
entry's ``recorded_at`` lies in its signing key's ``valid_from`` .. ``valid_until``
(``_check_times``: a warning for entries recorded before 2026-12-01). It cannot prove that
the bundle is complete (an event left out leaves no trace in what remains), and says so.
It then prints the executive's history rebuilt from the events, with the removal history
(REM-2: two final ratings below Level 3 at most 3 years apart; REM-3: two Level 1 final
ratings at most 5 years apart; both ends inclusive; Feb 29 + n years = Feb 28); a bundle
with problems is said NOT VERIFIED before that history as well as after the problems.
Exit status: 0 verified, 1 problems found, 2 usage error, unreadable input, the verifier
failing, or a check asked for that could not be made: the bundle cannot be tied to the trusted
checkpoint (no consistency proof between them, a newer note signed by a key the bundle
cannot list, or, without ``--keys``, a larger bundle tree signed by another key than the
trusted note, as after a key rotation), or ``--positions`` answers that are no inclusion
proofs: ``NOT CHECKED:`` lines (no verdict on the bundle).
"""

from __future__ import annotations

import argparse
import base64
import codecs
import datetime as dt
import hashlib
import io
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

FORMAT = "ses-ledger-bundle/v1"
#: What a bundle's ``position_seal`` signs: this line, then the JCS of the checkpoint's head
#: and the [position, leaf index] pairs (``position_seal_message``).
POSITION_SEAL = "ses-ledger-bundle-positions/v1"
#: How input files are read: UTF-8, a leading byte order mark ignored (RFC 8259 8.1 allows
#: it; Windows editors write one), so a bundle opened and saved there still reads.
TEXT = "utf-8-sig"
HASHED = (
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
#: An entry's fields (api-contract.md, "Ledger entry"): the hashed ones, the hash and its
#: signature, and the position the seal binds. Anything else in an entry is proven by
#: nothing, yet reads as part of the signed record ("note": "rating rescinded").
ENTRY_FIELDS = frozenset((*HASHED, "position", "hash", "signature", "key_id"))
EMPTY_ROOT = hashlib.sha256(b"").digest()
Head = tuple[str, int, bytes]  # checkpoint origin, tree size, root hash
Keys = dict[str, Ed25519PublicKey]
Problem = Callable[[str], None]  # report.problems.append


# --- RFC 8785 (JCS) canonical JSON, for the values the ledger stores (never floats) -----------


class JCSError(ValueError):
    """A value this JCS encoder refuses: a float, an integer beyond 2**53, a lone surrogate."""


_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}


def _jcs_str(s: str) -> str:
    """RFC 8785 3.2.2.2 (ES6 JSON.stringify): escape only '"', '\\' and controls < U+0020."""
    return '"' + "".join(_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if c < " " else c) for c in s) + '"'


def _jcs(v: Any) -> str:
    if v is None or isinstance(v, bool):
        return {None: "null", True: "true", False: "false"}[v]
    if isinstance(v, int):
        if abs(v) > 2**53 - 1:
            raise JCSError(f"integer {v} is beyond the IEEE 754 exact range")
        return str(v)
    if isinstance(v, float):
        raise JCSError(f"number {v!r} is a float; ledger events never hold floats")
    if isinstance(v, str):
        return _jcs_str(v)
    if isinstance(v, list):
        return "[" + ",".join(_jcs(x) for x in v) + "]"
    if isinstance(v, dict) and all(isinstance(k, str) for k in v):
        keys = sorted(v, key=lambda k: k.encode("utf-16-be"))  # RFC 8785 3.2.3: UTF-16 order
        return "{" + ",".join(_jcs_str(k) + ":" + _jcs(v[k]) for k in keys) + "}"
    raise JCSError(f"{type(v).__name__} is not a JSON value")


def jcs(value: Any) -> bytes:
    """The RFC 8785 canonical UTF-8 bytes of a JSON value without floats."""
    try:
        return _jcs(value).encode("utf-8")
    except UnicodeEncodeError:
        raise JCSError("a string holds a lone surrogate") from None


def entry_hash(entry: dict[str, Any]) -> str:
    """The contract's entry hash: SHA-256 hex of the JCS of exactly the hashed keys."""
    return hashlib.sha256(jcs({k: entry.get(k) for k in HASHED})).hexdigest()


# --- RFC 9162 Merkle proofs (leaf = SHA-256(0x00 || d), node = SHA-256(0x01 || l || r)) -------


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _walk(fn: int, sn: int, seed: bytes, path: list[bytes]) -> tuple[bytes, bytes] | None:
    """The shared loop of RFC 9162 2.1.3.2 step 4 and 2.1.4.2 step 6: returns (fr, sr), or None.

    ``sr`` folds in every path hash; ``fr`` only the left siblings (the old tree's part).
    """
    fr = sr = seed
    for c in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = _node(sr, c)
        fn, sn = fn >> 1, sn >> 1
    return (fr, sr) if sn == 0 else None


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2; ``leaf`` is the leaf hash, SHA-256(0x00 || 32 entry hash bytes)."""
    got = _walk(index, size - 1, leaf, proof) if 0 <= index < size else None
    return got is not None and got[1] == root


def verify_consistency(first: int, second: int, proof: list[bytes], r1: bytes, r2: bytes) -> bool:
    """RFC 9162 2.1.4.2 (plus: the empty tree is consistent with every tree)."""
    if first == 0 or first == second:
        return not proof and r1 == (EMPTY_ROOT if first == 0 else r2)
    if first > second or not proof:
        return False
    path = [r1, *proof] if first & (first - 1) == 0 else list(proof)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    return _walk(fn, sn, path[0], path[1:]) == (r1, r2)


def raw_key(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of a public key, as cryptography 2.6 and later give them
    (`public_bytes_raw` is cryptography 40's: Debian 12's Python 3.11 comes with 38)."""
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


# --- C2SP checkpoint note ---------------------------------------------------------------------


def _b64(text: Any) -> bytes:
    """Standard base64 in its one canonical form (RFC 4648 3.5): a decoder ignores the unused
    low bits of the last character, so another character there would be a changed byte of
    the bundle that still verifies."""
    if not isinstance(text, str):
        raise ValueError("expected a base64 string")
    data = base64.b64decode(text, validate=True)
    if base64.b64encode(data).decode() != text:
        raise ValueError("not canonical base64 (its unused bits are not zero)")
    return data


#: What a note an editor changed is told: its bytes are what is signed.
_EXACT = " (a note's bytes are what is signed, exactly: was it edited? use the note as saved)"


_SIGNATURE_LINE = re.compile(r"\u2014 (\S+) (\S+)")


def _editor_changes(note: str) -> None:
    """Refuse, saying what it is, what an editor does to a saved note: Windows line ends, a
    blank line added at the end (signed-note: text and signature lines end in LF alone, and
    nothing follows the last signature). Both were refused without saying so."""
    if "\r" in note:
        raise ValueError(f"it has CR LF line ends, where a note's lines end in LF alone{_EXACT}")
    if note.endswith("\n\n") and note.strip("\n"):
        raise ValueError(f"it ends in a blank line after its signatures{_EXACT}")


def _read_note(note: Any) -> tuple[Head, str, list[bytes]]:
    """A checkpoint note's head, its signed text and the signatures named by its origin;
    ValueError when it is not a well-formed note (nothing about who signed it)."""
    if isinstance(note, str):
        _editor_changes(note)
    if not isinstance(note, str) or not note.endswith("\n") or "\n\n" not in note:
        raise ValueError("not a signed note (text, blank line, signature lines)")
    cut = note.rfind("\n\n")  # the last blank line separates text and signatures
    body, lines = note[: cut + 1], note[:cut].split("\n")
    for number, line in enumerate(lines[:3], 1):
        if line != line.rstrip():
            raise ValueError(f"line {number} ({line!r}) ends in white space{_EXACT}")
    if len(lines) < 3 or not all(lines) or not re.fullmatch(r"0|[1-9][0-9]*", lines[1]):
        raise ValueError("note text is not origin, tree size, root hash")
    origin, size, root = lines[0], int(lines[1]), _b64(lines[2])
    if any(c.isspace() or c == "+" for c in origin):  # C2SP tlog-checkpoint: the key name
        raise ValueError(f"origin {origin!r} holds white space or '+', which no origin may{_EXACT}")
    if len(root) != 32:
        raise ValueError("root hash is not 32 bytes")
    blobs = []
    for line in note[cut + 2 : -1].split("\n"):
        # signed-note: every signature line is an em dash, a space, the key name, a space
        # and base64; one an editor changed (a space after it, "--" for the dash) was read
        # as a signature that does not verify, a verdict against the bundle (exit 1)
        signature = _SIGNATURE_LINE.fullmatch(line)
        if signature is None:
            raise ValueError(f"signature line {line!r} is not '\u2014 NAME BASE64'{_EXACT}")
        if signature[1] == origin:
            blobs.append(_b64(signature[2]))  # signatures by other names are ignored
    return (origin, size, root), body, blobs


def note_head(note: Any) -> Head:
    """The head of a checkpoint note as this verifier reads it; ValueError saying why it is
    none (`ses-ledger bundle verify` checks a trusted note so, naming the user's file, before
    it hands a copy on)."""
    return _read_note(note)[0]


def verify_checkpoint(note: Any, keys: Keys) -> Head:
    """Check a checkpoint note is signed by one of ``keys`` under its origin; return its head."""
    head, body, blobs = _read_note(note)
    origin = head[0]
    signed = False
    for blob in blobs:
        for key in keys.values():
            kid = hashlib.sha256(origin.encode() + b"\n\x01" + raw_key(key)).digest()[:4]
            if blob[:4] == kid:
                try:
                    key.verify(blob[4:], body.encode())
                except InvalidSignature:
                    raise ValueError("a signature by a bundle key does not verify") from None
                signed = True
    if not signed:
        raise ValueError(f"no signature named {origin!r} by a bundle key verifies")
    return head


# --- the bundle -------------------------------------------------------------------------------


@dataclass
class Report:
    """``problems`` (empty when everything verifies) and human-readable ``summary`` lines."""

    problems: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)
    #: What holds but should be read (the bundle still verifies).
    warnings: list[str] = field(default_factory=list)
    #: Checks asked for that could not be made, with nothing found against the bundle: a
    #: trusted checkpoint it cannot be tied to (no consistency proof between them, a newer
    #: note signed by a key the bundle cannot list, or an extension of it signed by another
    #: key, as after a key rotation, with no key list of the ledger's). Not verified, and no
    #: verdict.
    unchecked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.unchecked


#: binascii.Error is a ValueError; RecursionError: a value nested deeper than can be hashed
_MALFORMED = (KeyError, TypeError, ValueError, AttributeError, RecursionError)


def _load_keys(raw: Any, bad: Problem) -> Keys:
    """The listed keys by id. A key id listed twice is a problem, as a member named twice
    is: which public key or validity window counts would depend on the reader."""
    keys: Keys = {}
    for k in raw if isinstance(raw, list) else []:
        try:
            if k["algorithm"] != "Ed25519":
                raise ValueError(f"algorithm {k['algorithm']!r}")
            if k["key_id"] in keys:
                bad(
                    f"keys: key {k['key_id']} is listed more than once: which one counts is "
                    "ambiguous"
                )
            keys[k["key_id"]] = Ed25519PublicKey.from_public_bytes(_b64(k["public_key"]))
            _window_of(k)
        except _MALFORMED as exc:
            bad(f"keys: unusable key ({exc})")
    if not keys:
        bad("keys: the bundle lists no usable Ed25519 key")
    return keys


def _check_entries(entries: list[dict[str, Any]], keys: Keys, bad: Problem) -> None:
    last: dict[str, dict[str, Any]] = {}
    prev_pos = -1
    for e in entries:
        at = f"position {e.get('position')}"
        try:
            if not isinstance(e["position"], int) or e["position"] <= prev_pos:
                bad(f"{at}: entries are not in increasing position order")
            prev_pos = max(prev_pos, e["position"])
            absent = [k for k in HASHED if k not in e]
            if absent:  # hashed as null: "policy": null renamed away would still recompute
                bad(f"{at}: the entry lacks the hashed field(s) {', '.join(absent)}")
            added = sorted(set(e) - ENTRY_FIELDS)
            if added:
                bad(
                    f"{at}: field(s) {', '.join(map(repr, added))} neither hashed nor sealed: "
                    "added to the entry after export"
                )
            if entry_hash(e) != e["hash"]:
                bad(f"{at}: hash does not recompute from the entry")
            if e["key_id"] not in keys:
                bad(f"{at}: key_id {e['key_id']!r} is not among the bundle's keys")
            else:
                keys[e["key_id"]].verify(_b64(e["signature"]), bytes.fromhex(e["hash"]))
            sid, version, prev = e["stream_id"], e["stream_version"], last.get(e["stream_id"])
            if prev is None and version != 1:
                bad(f"{at}: stream {sid} starts at version {version}; earlier events missing")
            elif prev is None and e["prev_hash"] is not None:
                bad(f"{at}: version 1 of stream {sid} has a prev_hash")
            elif prev is not None and version != prev["stream_version"] + 1:
                bad(f"{at}: stream {sid} jumps from version {prev['stream_version']} to {version}")
            elif prev is not None and e["prev_hash"] != prev["hash"]:
                bad(f"{at}: prev_hash does not chain to the previous event of stream {sid}")
            last[sid] = e
        except InvalidSignature:
            bad(f"{at}: signature does not verify")
        except _MALFORMED as exc:
            bad(f"{at}: malformed entry ({type(exc).__name__}: {exc})")


#: Servers before the fix of 2026-11-30 went on signing with a key ``keys rotate`` had
#: retired until they restarted, so entries recorded before this moment may lie after their
#: key's ``valid_until``: a warning. From it on, an entry outside its key's window is a
#: problem: what a retired key that leaked, signing entries claimed later, looks like.
OUT_OF_WINDOW_TOLERATED_BEFORE = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
Window = tuple[dt.datetime | None, dt.datetime | None]


def _moment(text: Any) -> dt.datetime | None:
    """An RFC 3339 timestamp as an aware datetime (None: absent or not one)."""
    if not isinstance(text, str):
        return None
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


def _window_of(key: dict[str, Any]) -> Window:
    """A key's ``valid_from`` .. ``valid_until`` (null: open). A bound that is there but is
    no RFC 3339 timestamp is a ValueError (`_load_keys` reports it): read as open, a
    retired key's ``"valid_until": "soon"`` let it sign entries dated after retirement."""
    bounds = []
    for name in ("valid_from", "valid_until"):
        text = key.get(name)
        moment = _moment(text)
        if text is not None and (moment is None or not _offset_given(text)):
            raise ValueError(f"key {key.get('key_id')}: {name} {text!r} is no RFC 3339 timestamp")
        bounds.append(moment)
    return bounds[0], bounds[1]


def _offset_given(text: Any) -> bool:
    """A date and time with its UTC offset (RFC 3339 5.6): not a bare date, nor a time whose
    zone the reader would have to guess."""
    try:
        return "T" in text.upper() and dt.datetime.fromisoformat(text).tzinfo is not None
    except (AttributeError, ValueError):
        return False


def key_windows(raw: Any) -> dict[str, Window]:
    """Each listed key's ``valid_from`` .. ``valid_until`` (null: open; an unreadable bound
    is open here and a problem in `_load_keys`)."""
    windows: dict[str, Window] = {}
    for k in raw if isinstance(raw, list) else []:
        if isinstance(k, dict) and isinstance(k.get("key_id"), str):
            try:
                windows[k["key_id"]] = _window_of(k)
            except ValueError:
                windows[k["key_id"]] = (_moment(k.get("valid_from")), _moment(k.get("valid_until")))
    return windows


def _check_times(entries: list[dict[str, Any]], windows: dict[str, Window], report: Report) -> None:
    """Each entry's ``recorded_at`` inside its signing key's validity (api-contract.md,
    ``GET /v1/ledger/keys``), and never going back in position order (a ``known_at`` read
    is then a prefix of the log; a ledger written before that was held may not be: a
    warning, as its entries are still the ledger's own)."""
    tolerated: list[str] = []
    backwards: list[str] = []
    last: dt.datetime | None = None
    for e in entries:
        moment = _moment(e.get("recorded_at"))
        if moment is None:
            report.problems.append(
                f"position {e.get('position')}: recorded_at is not an RFC 3339 timestamp"
            )
            continue
        if last is not None and moment < last:
            backwards.append(str(e.get("position")))
        last = moment
        window = windows.get(str(e.get("key_id")))
        if window is None:
            continue
        start, end = window
        if (start is None or start <= moment) and (end is None or moment <= end):
            continue
        if moment < OUT_OF_WINDOW_TOLERATED_BEFORE:
            tolerated.append(str(e.get("position")))
            continue
        why = (
            "a key signing entries dated before it was issued"
            if start is not None and moment < start
            else "a retired key signing entries dated after its retirement"
        )
        report.problems.append(
            f"position {e.get('position')}: recorded at {e.get('recorded_at')}, outside the "
            f"validity of its signing key {e.get('key_id')} ({_shown(start)} .. "
            f"{_shown(end)}): {why}"
        )
    if backwards:
        report.warnings.append(
            f"recorded_at goes back in position order at {', '.join(backwards)}: a known_at "
            "read there is not a prefix of the log"
        )
    if tolerated:
        report.warnings.append(
            f"signed outside the signing key's validity at {', '.join(tolerated)}, recorded "
            f"before {OUT_OF_WINDOW_TOLERATED_BEFORE.date()}: servers before the fix of "
            "2026-11-30 signed so around a key rotation (until restarted)"
        )


def _shown(moment: dt.datetime | None) -> str:
    return "open" if moment is None else moment.isoformat().replace("+00:00", "Z")


def _check_subject(entries: list[dict[str, Any]], executive_id: Any, bad: Problem) -> None:
    """Every stream is the executive's record: their own stream, registered under the
    bundle's ``executive_id``; an appraisal whose ``PlanSet`` names them; or a review board
    one of those appraisals' ``PRBRecommended`` cites. Each of those events is genuine and in
    the log, so without this a bundle relabelled for another executive, or with another
    executive's appraisals added, verifies, and the history below is computed from them."""
    first: dict[str, dict[str, Any]] = {}
    for e in entries:
        first.setdefault(str(e.get("stream_id")), e)

    def data(e: dict[str, Any]) -> dict[str, Any]:
        d = e.get("data")
        return d if isinstance(d, dict) else {}

    own = first.get(str(executive_id))
    if (
        not isinstance(executive_id, str)
        or own is None
        or own.get("type") != "ExecutiveRegistered"
        or data(own).get("executive_id") != executive_id
    ):
        bad(f"executive_id: the bundle holds no registration of executive {executive_id!r}")
    plans = {
        sid
        for sid, e in first.items()
        if e.get("type") == "PlanSet" and data(e).get("executive_id") == executive_id
    }
    boards = {
        str(data(e).get("board_id"))
        for e in entries
        if e.get("type") == "PRBRecommended" and str(e.get("stream_id")) in plans
    }
    for sid, e in first.items():
        board = e.get("type") == "ReviewBoardRegistered" and sid in boards
        if sid != executive_id and sid not in plans and not board:
            bad(
                f"position {e.get('position')}: stream {sid} is not part of executive "
                f"{executive_id}'s record"
            )


def _check_proofs(
    entries: list[dict[str, Any]], proofs: Any, head: Head, bad: Problem
) -> dict[int, int]:
    """Each entry's inclusion proof; returns {position: leaf index} of the entries proved.

    A position is not hashed (api-contract.md: the store assigns it), so it is held to what
    its leaf index proves: leaf n is the n-th event in global order (0-based) and positions
    are increasing whole numbers from 1, gaps allowed, so leaf n lies at position n + 1 or
    later, and two entries' positions lie at least as far apart as their leaf indices. An
    entry given a smaller position, or entries moved closer, fail; the position seal
    (`_check_position_seal`) binds the exact positions."""
    _, size, root = head
    prev: tuple[int, int] | None = None  # (position, leaf index) of the last entry proved
    proved: dict[int, int] = {}
    held = {str(e.get("position")) for e in entries}
    unheld = sorted(set(proofs) - held if isinstance(proofs, dict) else (), key=_position_key)
    if unheld:  # an exporter proves what it exports: its entry was taken out since
        bad(
            f"proofs: proof(s) for position(s) {', '.join(unheld)}, which no entry of the "
            "bundle holds: entries removed after export, or proofs added"
        )
    for e in entries:
        at = f"position {e.get('position')}"
        try:
            p = proofs[str(e["position"])]
            index, hashes = p["leaf_index"], [_b64(h) for h in p["hashes"]]
            leaf = _leaf(e)
            if p["tree_size"] != size:
                bad(f"{at}: inclusion proof is for tree size {p['tree_size']}, not {size}")
            elif not verify_inclusion(index, size, leaf, hashes, root):
                bad(f"{at}: inclusion proof does not verify against the checkpoint")
            else:
                proved[e["position"]] = index
            position = e["position"]
            if not _whole(position) or position < index + 1:
                bad(
                    f"{at}: the entry is leaf {index} of the log, which lies at position "
                    f"{index + 1} or later (positions start at 1): its position was changed"
                )
            elif prev is not None and index <= prev[1]:
                bad(f"{at}: leaf indices do not follow the position order")
            elif prev is not None and position - prev[0] < index - prev[1]:
                bad(
                    f"{at}: leaves {prev[1]} and {index} lie {index - prev[1]} apart in the "
                    f"log, positions {prev[0]} and {position} only {position - prev[0]}: "
                    "a position was changed"
                )
            prev = (position, index) if _whole(position) else prev
        except _MALFORMED as exc:
            bad(f"{at}: no usable inclusion proof ({type(exc).__name__}: {exc})")
    return proved


def _position_key(text: str) -> tuple[int, str]:
    return (int(text), text) if text.isdigit() else (-1, text)


def _leaf(entry: dict[str, Any]) -> bytes:
    """The entry's RFC 9162 leaf hash: SHA-256 of 0x00 and its hash bytes."""
    return hashlib.sha256(b"\x00" + bytes.fromhex(entry["hash"])).digest()


def position_seal_message(head: Head, pairs: list[list[int]]) -> bytes:
    """The bytes a bundle's ``position_seal`` signs: ``POSITION_SEAL``, a line feed, and the
    JCS of the checkpoint's origin, tree size and root with the [position, leaf index] pairs.
    The line feed keeps it apart from what else the key signs: an entry's 32 hash bytes and
    a checkpoint note, whose second line is a number, never ``{``."""
    origin, size, root = head
    body = {
        "origin": origin,
        "tree_size": size,
        "root": base64.b64encode(root).decode(),
        "positions": pairs,
    }
    return (POSITION_SEAL + "\n").encode() + jcs(body)


def _check_position_seal(
    entries: list[dict[str, Any]],
    proved: dict[int, int],
    seal: Any,
    head: Head,
    keys: Keys,
    report: Report,
) -> None:
    """The ledger's signature over each entry's position and leaf index (``position_seal``:
    ``{key_id, positions: [[position, leaf_index], ...], signature}``, a field the contract
    lets a bundle add). The inclusion proofs bind each entry to its leaf index; the seal
    binds the leaf index to the position the ledger gave it, so an entry whose position was
    edited (its proof moved along under the new key of ``proofs``) fails; and it lists every
    entry exported, so one removed from the bundle afterwards fails too. Without one (and
    without the ledger's answers, ``_check_ledger_positions``) a warning says the positions
    are unproven."""
    bad = report.problems.append
    if seal is None:
        report.warnings.append(
            "the bundle has no position_seal (exported before the ledger signed positions): "
            "the entries' order is proven by their leaf indices, their position numbers are not"
        )
        return
    try:
        pairs = seal["positions"]
        if not isinstance(pairs, list) or not all(
            isinstance(x, list) and len(x) == 2 and all(_whole(v) for v in x) for x in pairs
        ):
            raise ValueError("positions is not a list of [position, leaf index] pairs")
        key = keys.get(seal["key_id"])
        if key is None:
            bad(f"position seal: key_id {seal['key_id']!r} is not among the bundle's keys")
            return
        key.verify(_b64(seal["signature"]), position_seal_message(head, pairs))
    except InvalidSignature:
        bad("position seal: the signature does not verify (the sealed positions were changed)")
        return
    except _MALFORMED as exc:
        bad(f"position seal: malformed ({type(exc).__name__}: {exc})")
        return
    sealed = {leaf: position for position, leaf in pairs}
    for e in entries:
        position = e.get("position")
        leaf = proved.get(position) if isinstance(position, int) else None
        if leaf is None:
            continue  # no proven leaf: its inclusion proof is reported already
        if sealed.get(leaf) != position:
            was = sealed.get(leaf)
            bad(
                f"position {position}: the ledger sealed leaf {leaf} at "
                + (f"position {was}" if was is not None else "no position")
                + ": the entry's position was changed"
            )
    held = set(proved.values())
    left_out = sorted(position for leaf, position in sealed.items() if leaf not in held)
    if left_out:
        shown = ", ".join(map(str, left_out[:10])) + (" ..." if len(left_out) > 10 else "")
        bad(
            f"position seal: the ledger exported {len(left_out)} "
            f"entr{'y' if len(left_out) == 1 else 'ies'} the bundle does not hold "
            f"(positions {shown}): left out after it was exported"
        )
    report.summary.append(
        f"positions: sealed by the ledger (key {seal['key_id']}) with each entry's leaf index"
    )


#: How an unusable ``--positions`` answer is reported (NOT CHECKED, not a problem).
_POSITIONS_UNUSABLE = "the ledger's inclusion proofs of the positions are unusable"


def _check_ledger_positions(
    entries: list[dict[str, Any]],
    proved: dict[int, int],
    answers: Any,
    head: Head,
    report: Report,
) -> None:
    """A bundle without a ``position_seal``, its positions checked against the ledger's own
    answers (``--positions``: ``{"proofs": {position: inclusion proof or null}}``, what
    ``GET /v1/ledger/proofs/inclusion?position=P&tree_size=N`` answered for each entry's
    position at the bundle's tree size; null where the ledger answered that it holds no event
    of that tree there). The ledger proves which leaf lies at position P; the entry's leaf hash
    must be that leaf (its proof verifies against the bundle's checkpoint root), so an entry
    whose position was edited, its proof moved along, fails. Trusted as ``--keys`` is: it
    comes from the ledger, not from the bundle."""
    _, size, root = head
    bad = report.problems.append
    try:
        for e in entries:
            position = e.get("position")
            if not _whole(position) or position not in proved:
                continue  # its position or its inclusion proof is reported already
            answer = answers[str(position)]
            if answer is None:
                bad(
                    f"position {position}: the ledger holds no event at that position in the "
                    f"tree of size {size}: the entry's position was changed"
                )
                continue
            index, hashes = answer["leaf_index"], [_b64(h) for h in answer["hashes"]]
            leaf = _leaf(e)
            if (
                answer["tree_size"] != size
                or index != proved[position]
                or not verify_inclusion(index, size, leaf, hashes, root)
            ):
                bad(
                    f"position {position}: the ledger proves another entry at that position "
                    f"(leaf {index}, not this entry's leaf {proved[position]}): the entry's "
                    "position was changed"
                )
    except _MALFORMED as exc:
        report.unchecked.append(
            f"{_POSITIONS_UNUSABLE} ({type(exc).__name__}: {exc}): the positions were not checked"
        )
        return
    report.summary.append(
        "positions: each proven by the ledger (its inclusion proof of the entry's position "
        f"at tree size {size}), the bundle holding no seal of them"
    )


def _whole(value: Any) -> bool:
    """A JSON integer (not a boolean, which Python counts as one)."""
    return isinstance(value, int) and not isinstance(value, bool)


class NotEstablished(Exception):
    """The bundle could not be tied to the trusted checkpoint, with nothing found against
    either: a check that could not be made (exit status 2), not a problem (1)."""


def _check_trusted(
    trusted: str, bundle: dict[str, Any], head: Head, keys: Keys, listed: bool = False
) -> str:
    """Compare the bundle's checkpoint with a trusted one; return a problem or ''. Raises
    NotEstablished where the bundle cannot be tied to it (no consistency proof between the
    two, a newer note signed by a key the bundle could not list, or a larger bundle tree
    signed by another key than the trusted note without the ledger's key list).

    A consistency proof shows the bundle's tree extends the trusted one, not who made the
    extension: unless ``keys`` is the ledger's own key list (``listed``), a larger bundle
    tree signed by a key other than the trusted checkpoint's is not verified, or anyone could
    extend a genuine tree with invented entries signed by a key of their own. Nor is it a
    problem: a ledger's key rotation between the two notes looks exactly the same."""
    try:
        t_origin, t_size, t_root = verify_checkpoint(trusted, keys)
    except ValueError:
        t_size = _read_note(trusted)[0][1]
        if listed or t_size <= head[1]:
            raise  # a bundle exported at or after the note lists every key there was
        raise NotEstablished(
            f"the trusted checkpoint is signed by no key the bundle lists; it is newer than "
            f"the bundle's (tree size {head[1]} < {t_size}), so it may be signed by a key the "
            "ledger took up after the bundle was exported: check it with the ledger's key "
            "list, `ses-ledger bundle verify --url URL`, or offline `offline_verify.py "
            "--keys FILE` with the answer of GET /v1/ledger/keys"
        ) from None
    (first, r1), (second, r2) = sorted([(t_size, t_root), (head[1], head[2])])
    cands = [*(bundle.get("consistency_proofs") or []), bundle.get("consistency")]
    proof = next(
        (
            c
            for c in cands
            if isinstance(c, dict) and (c.get("first"), c.get("second")) == (first, second)
        ),
        None,
    )
    if t_origin != head[0]:
        return f"trusted checkpoint is of log {t_origin!r}, not {head[0]!r}"
    if proof is None and 0 < first < second:
        raise NotEstablished(
            f"consistency of tree sizes {first} and {second} could not be established: "
            "the bundle has no consistency proof between them (export the bundle again "
            f"with `ses-ledger bundle export --consistency-from {t_size}`, or verify it with "
            "`ses-ledger bundle verify --url URL`, which fetches the proof from the ledger)"
        )
    hashes = [_b64(h) for h in (proof or {}).get("hashes", [])]
    if first == second and r1 != r2:
        return f"trusted and bundle checkpoints differ at tree size {first}: the log forked"
    if not verify_consistency(first, second, hashes, r1, r2):
        return f"consistency proof {first} -> {second} does not verify"
    if not listed and head[1] > t_size and not _signed_alike(trusted, bundle["checkpoint"], keys):
        # What a `keys rotate` between the two notes gives, as a forger's own key would: only
        # the ledger's key list can tell them apart, so no verdict without it.
        raise NotEstablished(
            f"the bundle's checkpoint extends the trusted one ({t_size} -> {head[1]}) but is "
            "signed by another key than the trusted one (as after a key rotation, `ses-ledger "
            "keys rotate`): that key is vouched for only by the bundle itself, so the entries "
            f"past tree size {t_size} are not tied to the trusted checkpoint: check the key "
            "with the ledger's key list, `ses-ledger bundle verify --url URL`, or offline "
            "`offline_verify.py --keys FILE` with the answer of GET /v1/ledger/keys"
        )
    return ""


def _signed_alike(trusted: str, note: str, keys: Keys) -> bool:
    """Whether a key that signed the trusted note also signed `note`."""
    for key_id, key in keys.items():
        try:
            verify_checkpoint(trusted, {key_id: key})
            verify_checkpoint(note, {key_id: key})
        except ValueError:
            continue
        return True
    return False


# --- the executive's history ---------------------------------------------------------------


def add_years(d: dt.date, years: int) -> dt.date:
    """``d`` plus (or minus) whole years; Feb 29 becomes Feb 28 in a common year."""
    try:
        return d.replace(year=d.year + years)
    except ValueError:
        return d.replace(year=d.year + years, day=28)


def rating_from_elements(levels: dict[str, int], weights: dict[str, int]) -> tuple[int, int]:
    """RAT-1..3: score = sum(points x weight), L5=5 L4=4 L3=3 L2=2 L1=0; any L1 -> Level 1."""
    score = sum({5: 5, 4: 4, 3: 3, 2: 2}.get(lv, 0) * weights.get(c, 0) for c, lv in levels.items())
    floors = ((5, 475), (4, 400), (3, 300), (2, 200))
    return score, 1 if 1 in levels.values() else next((L for L, f in floors if score >= f), 1)


def removal_lines(
    finals: list[tuple[dt.date, int, str]], actions: list[dict[str, Any]], as_of: dt.date
) -> list[str]:
    """REM-2, REM-3 and REM-1 as of ``as_of``, from final ratings (rated_on, level, appraisal)."""
    rated = sorted(f for f in finals if f[0] <= as_of)
    out = [f"removal history as of {as_of} (measure: rating-date)"]
    for label, rule, years, worst in (("three-year", "REM-2", 3, 2), ("five-year", "REM-3", 5, 1)):
        hits = [f for f in rated if f[1] <= worst]
        # "D - years <= rated_on" read as the pairs read "years apart" (rated_on + years >=
        # D), as the server reads it: for D = Feb 29 2020 the window begins Mar 1 2017
        window = [f"{a} L{lv} {d}" for d, lv, a in hits if add_years(d, years) >= as_of]
        trig = [
            b[0] for a, b in zip(hits, hits[1:], strict=False) if b[0] <= add_years(a[0], years)
        ]
        verdict = f"removal required, triggered on {trig[-1]}" if trig else "no removal required"
        out.append(f"  {label} ({rule}): in window: {', '.join(window) or 'none'}; {verdict}")
    level1 = [d for d, lv, _ in rated if lv == 1]
    if level1:
        moves = ("reassignment", "transfer", "demotion", "removal")
        done = any(
            a.get("action") in moves
            and level1[-1].isoformat() <= str(a.get("notice_on")) <= as_of.isoformat()
            for a in actions
        )
        out.append(
            f"  REM-1 action after the Level 1 rating of {level1[-1]} due: "
            f"{'no' if done else 'yes'}"
        )
    return out


class _Fields(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


_LINES = {
    "ExecutiveRegistered": "registered: {executive_id} {name}, {title}, {agency}, "
    "{appointment_type}, appointed {appointed_on}",
    "PersonnelActionRecorded": "personnel action: {action}, notice {notice_on}, "
    "effective {effective_on}, basis {basis_appraisal_ids}",
    "ComplaintRecorded": "complaint: {forum} filed {filed_on}",
}


def _date(text: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if isinstance(text, str) and len(text) == 10 else None
    except ValueError:
        return None


def history_lines(entries: list[dict[str, Any]]) -> list[str]:
    """Registrations, appraisals, personnel actions, complaints and the removal history."""
    regs: list[str] = []
    later: list[str] = []
    apps: dict[str, _Fields] = {}
    finals: list[tuple[dt.date, int, str]] = []
    actions: list[dict[str, Any]] = []
    for e in entries:
        t, d = e.get("type"), e.get("data")
        try:
            if not isinstance(d, dict):
                raise TypeError("no data object")
            # Appraisal events carry their policy; their stream id is the appraisal id.
            in_appraisal = e.get("policy") is not None
            a = apps.setdefault(str(e["stream_id"]), _Fields()) if in_appraisal else _Fields()
            if t in _LINES:
                flat = {
                    k: ", ".join(map(str, v)) if isinstance(v, list) else v for k, v in d.items()
                }
                if in_appraisal:
                    flat.setdefault("appraisal_id", e["stream_id"])
                (regs if t == "ExecutiveRegistered" else later).append(
                    _LINES[t].format_map(_Fields(flat))
                )
            if t == "PersonnelActionRecorded":
                actions.append(d)
            elif t == "PlanSet":
                a.update(
                    policy=e["policy"],
                    start=d["period_start"],
                    end=d["period_end"],
                    weights={x["code"]: x["weight"] for x in d["elements"]},
                )
            elif t == "PeriodExtended":
                a["end"] = d["new_period_end"]
            elif t == "InitialRatingIssued":
                score, level = d.get("score"), d.get("summary_level")
                if score is None or level is None:
                    score, level = rating_from_elements(d["element_levels"], a.get("weights", {}))
                a["initial"] = f"initial score {score}, Level {level}, rated {d['rated_on']}"
            elif t == "FinalRatingAssigned":
                a["final"] = f"final Level {d['level']}, rated {d['rated_on']}"
                rated_on = _date(d["rated_on"])
                if rated_on is None:
                    raise ValueError(f"rated_on {d['rated_on']!r}")
                finals.append((rated_on, int(d["level"]), str(e["stream_id"])))
        except _MALFORMED as exc:
            later.append(f"position {e.get('position')}: {t} data not understood ({exc!r})")
    for aid, a in apps.items():
        a.setdefault("initial", "no initial rating")
        a.setdefault("final", "no final rating")
        regs.append(
            f"appraisal {aid}: " + "{policy}, {start} to {end}; {initial}; {final}".format_map(a)
        )
    dates = [x for x in (_date(e.get("occurred_on")) for e in entries) if x is not None]
    return regs + later + (removal_lines(finals, actions, max(dates)) if dates else [])


def _check_listed(keys: Keys, listed: Keys, bad: Problem) -> None:
    """Each bundle key is one the ledger lists under its id (the bundle's own key list would
    vouch for a key replaced under a familiar id, with everything re-signed by it)."""
    for key_id, key in keys.items():
        known = listed.get(key_id)
        if known is None:
            bad(f"keys: key {key_id} of the bundle is not among the keys the ledger lists")
        elif raw_key(known) != raw_key(key):
            bad(f"keys: key {key_id} of the bundle differs from the key the ledger lists")


def read_json(text: str | bytes) -> tuple[Any, list[str]]:
    """Parse JSON text, noting each member name that an object holds twice.

    RFC 8259 leaves such a name to the reader, and readers differ (first value or last):
    evidence whose meaning depends on who reads it proves nothing (I-JSON, RFC 7493 2.3),
    so ``verify_bundle`` reports it however well the rest verifies.
    """
    repeated: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for name, value in items:
            if name in found:
                repeated.append(name)
            found[name] = value
        return found

    def not_json(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number (RFC 8259 6)")

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_constant=not_json), repeated
    except RecursionError:  # not a ValueError: it escaped every caller's handling of bad input
        doc = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        raise json.JSONDecodeError("arrays or objects nested too deeply", doc, 0) from None


def repeated_names_problem(names: list[str]) -> str:
    listed = ", ".join(sorted({json.dumps(n) for n in names}))
    return (
        f"bundle: an object names {listed} more than once (I-JSON, RFC 7493 2.3): readers "
        "may take different values, so what the bundle says is ambiguous"
    )


def verify_bundle(
    bundle: Any,
    trusted_checkpoint: str | None = None,
    trusted_keys: Any = None,
    repeated_names: list[str] | None = None,
    ledger_positions: Any = None,
) -> Report:
    """Verify a parsed evidence bundle, optionally against a trusted checkpoint note.

    ``trusted_keys`` (the ``keys`` list of the ledger's ``/v1/ledger/keys``) checks the
    trusted checkpoint, signed with the key current when it was issued, which an older bundle
    does not hold, and every bundle key must be listed there under its id.
    ``repeated_names``: member names the bundle's text held twice in an object (``read_json``).
    ``ledger_positions`` (the ``proofs`` of ``--positions``): the ledger's inclusion proof of
    each entry's position, which proves the positions of a bundle without a ``position_seal``
    (``_check_ledger_positions``).
    """
    report = Report()
    bad = report.problems.append
    if repeated_names:
        bad(repeated_names_problem(repeated_names))
    if not isinstance(bundle, dict) or bundle.get("format") != FORMAT:
        bad(f"not a {FORMAT} bundle")
        return report
    keys = _load_keys(bundle.get("keys"), bad)
    trusted_by = keys
    if trusted_keys is not None:
        trusted_by = _load_keys(trusted_keys, lambda p: bad(f"trusted {p}"))
        _check_listed(keys, trusted_by, bad)
    raw = bundle.get("entries")
    entries = [e for e in raw if isinstance(e, dict)] if isinstance(raw, list) else []
    if not entries or not isinstance(raw, list) or len(entries) != len(raw):
        bad("entries: missing, or not all objects")
    _check_entries(entries, keys, bad)
    # The windows of the ledger's own key list when given (a bundle's are its own claim).
    windows = key_windows(bundle.get("keys"))
    if trusted_keys is not None:
        windows.update(key_windows(trusted_keys))
    _check_times(entries, windows, report)
    _check_subject(entries, bundle.get("executive_id"), bad)
    report.summary.append(
        f"executive {bundle.get('executive_id')}: {len(entries)} entries, "
        f"{len({str(e.get('stream_id')) for e in entries})} streams"
    )
    try:
        head = verify_checkpoint(bundle.get("checkpoint"), keys)
    except ValueError as exc:
        bad(f"checkpoint: {exc}")
    else:
        report.summary.append(f"checkpoint: {head[0]}, tree size {head[1]}, root {head[2].hex()}")
        proved = _check_proofs(entries, bundle.get("proofs"), head, bad)
        seal = bundle.get("position_seal")
        if seal is None and ledger_positions is not None:
            _check_ledger_positions(entries, proved, ledger_positions, head, report)
        else:
            _check_position_seal(entries, proved, seal, head, keys, report)
        if trusted_checkpoint is None:
            report.summary.append(
                "no trusted checkpoint given: compare the checkpoint above or "
                "the keys below with ones obtained from the ledger directly"
            )
        else:
            try:
                problem = _check_trusted(
                    trusted_checkpoint, bundle, head, trusted_by, trusted_keys is not None
                )
            except _MALFORMED as exc:
                problem = f"trusted checkpoint or consistency proof unusable: {exc}"
            except NotEstablished as exc:
                report.unchecked.append(str(exc))
                problem = None
            if problem:
                bad(problem)
            elif problem is not None:
                report.summary.append("trusted checkpoint: consistent with the bundle's")
    report.summary += [
        f"key {k}: Ed25519 {base64.b64encode(raw_key(v)).decode()}" for k, v in keys.items()
    ]
    report.summary.append(
        "not proven by any bundle: that it holds every event of the executive (one the "
        "exporter left out, a whole appraisal or the last events of a stream, goes "
        "undetected; the position seal names only those removed after export): the history "
        "below is rebuilt from these entries only"
    )
    report.summary += history_lines(entries)
    return report


#: Characters a terminal acts on rather than shows: C0 and C1 controls (ESC starts the
#: sequences that recolour, hide or move text; a line feed starts a line), the line and
#: paragraph separators, and the bidirectional embeddings, overrides and isolates (which
#: reorder what follows them on screen).
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` as one line a terminal shows as it is: every character it would act on
    instead (`_UNPRINTABLE`) escaped as ``\\xNN`` or ``\\uNNNN``.

    What a verifier prints holds text from the very input it distrusts (ids, dates, key ids,
    a server's answer): unescaped, a forged bundle could print its own "BUNDLE VERIFIED"
    line and hide the real verdict (ESC [8m conceals the rest of the output)."""

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _UNPRINTABLE.sub(escape, text)


#: The most an input file may hold: an endless one (a stream, a device) is not read on
#: until the memory runs out.
MAX_INPUT_BYTES = 1 << 30


def read_text(path: str, limit: int | None = None) -> str:
    """The text of the file at `path` (UTF-8, `TEXT`), read in pieces, refused (ValueError,
    naming the file) as soon as it cannot be JSON or note text: a NUL byte (neither holds
    one: /dev/zero, /dev/urandom, a binary file), bytes that are not UTF-8, or more than
    `limit` (`MAX_INPUT_BYTES`) bytes. `read()` of /dev/zero took every byte of memory
    there was before it failed."""
    limit = MAX_INPUT_BYTES if limit is None else limit
    decoder = codecs.getincrementaldecoder(TEXT)()
    parts: list[str] = []
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            if not size and chunk.startswith((b"\xff\xfe", b"\xfe\xff", b"\0\0\xfe\xff")):
                # Windows PowerShell 5's `>` writes UTF-16 with this mark: said so, not as
                # the NUL bytes that follow it
                raise ValueError(
                    f"{path} is UTF-16 or UTF-32 text (it starts with that byte order mark): "
                    "JSON and notes are read as UTF-8 (RFC 8259 8.1), save it as UTF-8"
                )
            if b"\0" in chunk:
                at = size + chunk.index(b"\0")
                raise ValueError(
                    f"{path} holds a NUL byte (at byte {at}): it is no JSON or note text"
                )
            size += len(chunk)
            if size > limit:
                raise ValueError(f"{path} holds more than {limit} bytes: not read")
            try:
                parts.append(decoder.decode(chunk))
            except UnicodeDecodeError as exc:
                raise ValueError(f"{path} is not UTF-8 text: {exc.reason}") from None
        try:
            parts.append(decoder.decode(b"", final=True))
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path} is not UTF-8 text: {exc.reason}") from None
    return "".join(parts)


def _read_member(path: str, member: str, kind: type, shape: str, what: str) -> Any:
    """`member` of the JSON object in the file at `path` (ValueError naming the file and the
    shape expected when it is not one)."""
    found = read_json(read_text(path))[0]
    if not isinstance(found, dict) or not isinstance(found.get(member), kind):
        raise ValueError(f"{path} is not {what} ({shape})")
    return found[member]


def main(argv: list[str] | None = None) -> int:
    """Command line; exit 0 when the bundle verifies, 1 on problems, 2 when not checked."""
    parser = argparse.ArgumentParser(
        description="Verify an SES Ledger evidence bundle offline.",
        epilog="Exit status: 0 verified; 1 problems found (evidence against the bundle); 2 "
        "not checked: a usage error, unreadable input (a file over 1 GiB, a NUL byte or bytes "
        "that are not UTF-8 included), the verifier failing, or a check asked "
        "for that could not be made (NOT CHECKED: the bundle cannot be tied to the trusted "
        "--checkpoint, e.g. no consistency proof between them, or, without --keys, a bundle "
        "checkpoint signed by another key than the trusted one, as after a key rotation; or "
        "--positions answers that are no inclusion proofs).",
    )
    parser.add_argument("bundle", help="the evidence bundle JSON file")
    parser.add_argument("--checkpoint", metavar="FILE", help="a trusted checkpoint note")
    parser.add_argument(
        "--keys",
        metavar="FILE",
        help="the ledger's key list (GET /v1/ledger/keys), trusted: it checks the trusted "
        "checkpoint, and every bundle key must be in it",
    )
    parser.add_argument(
        "--positions",
        metavar="FILE",
        help="the ledger's inclusion proof of each entry's position at the bundle's tree "
        'size ({"proofs": {"<position>": proof or null}}, from GET /v1/ledger/proofs/'
        "inclusion; null: no event there), trusted: it proves the positions of a bundle "
        "without a position_seal",
    )
    try:
        args = parser.parse_args(argv)
        bundle, repeated = read_json(read_text(args.bundle))
        trusted = None
        if args.checkpoint is not None:
            trusted = read_text(args.checkpoint)
            try:
                _read_note(trusted)
            except ValueError as exc:
                raise ValueError(f"{args.checkpoint} is not a checkpoint note: {exc}") from None
        trusted_keys = None
        if args.keys is not None:
            trusted_keys = _read_member(args.keys, "keys", list, '{"keys": [...]}', "a key list")
        ledger_positions = None
        if args.positions is not None:
            ledger_positions = _read_member(
                args.positions, "proofs", dict, '{"proofs": {...}}', "a set of proofs"
            )
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return 0 if exc.code == 0 else 2
    except (OSError, ValueError, MemoryError) as exc:
        why = printable(str(exc) or type(exc).__name__)  # a MemoryError says nothing
        print(
            f"cannot read input, so the bundle was NOT checked: {why}",
            file=sys.stderr,
        )
        return 2
    try:
        report = verify_bundle(bundle, trusted, trusted_keys, repeated, ledger_positions)
    except Exception as exc:  # noqa: BLE001 - the verifier's failure is no finding (exit 1)
        print(
            "the verifier failed, so the bundle was NOT checked (this is no verdict on it): "
            f"{type(exc).__name__}: {printable(str(exc))}",
            file=sys.stderr,
        )
        return 2
    if report.problems:  # said before the history, which a reader may take without the end
        print(
            f"NOT VERIFIED: {len(report.problems)} problem(s), listed after the history below, "
            "which is read from entries that do not verify and proves nothing"
        )
    for line in report.summary:
        print(printable(line))
    for w in report.warnings:
        print(f"WARNING: {printable(w)}")
    for p in report.problems:
        print(f"PROBLEM: {printable(p)}")
    for u in report.unchecked:
        print(f"NOT CHECKED: {printable(u)}")
    if report.problems:
        print(f"NOT VERIFIED: {len(report.problems)} problem(s)")
        return 1
    if report.unchecked:  # nothing against the bundle, but what was asked was not shown
        untied = any(not u.startswith(_POSITIONS_UNUSABLE) for u in report.unchecked)
        print(
            f"NOT VERIFIED: {len(report.unchecked)} check(s) could not be made (no problem "
            "found in the bundle): "
            + (
                "it is not tied to the trusted checkpoint"
                if untied
                else "its positions are not proven"
            )
        )
        return 2
    print("BUNDLE VERIFIED")
    return 0


if __name__ == "__main__":
    if isinstance(sys.stdout, io.TextIOWrapper):
        # An output that cannot say a name beyond its encoding (PYTHONIOENCODING=ascii,
        # LC_ALL=C with PYTHONUTF8=0) escapes it, as stderr does: it was a traceback, exit 1.
        sys.stdout.reconfigure(errors="backslashreplace")
    sys.exit(main())
