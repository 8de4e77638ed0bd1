"""Checkpoints as C2SP signed notes (c2sp.org/tlog-checkpoint, c2sp.org/signed-note).

A checkpoint's note text is three lines, each ending in a newline: the origin, the tree size
in decimal (no leading zeros) and the standard-base64 RFC 9162 root hash. A blank line
follows, then one or more signature lines::

    — <key name> base64(key ID || Ed25519 signature)

where the dash is U+2014, the key ID is ``SHA-256(key name || 0x0A || 0x01 || public key)[:4]``
(0x01: the Ed25519 signature type) and the Ed25519 signature (RFC 8032) covers the note text
including its final newline.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

ED25519_SIGNATURE_TYPE = 0x01
SIGNATURE_PREFIX = "\u2014 "
MAX_SIGNATURES = 64  # signed-note: verifiers must accept at least 16
_SIZE = re.compile(r"0|[1-9][0-9]*")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


class CheckpointError(ValueError):
    """A checkpoint note is malformed or no signature by a trusted key verifies."""


@dataclass(frozen=True)
class Checkpoint:
    """A tree head: the log's ``origin``, its tree ``size`` and the 32-byte ``root_hash``."""

    origin: str
    size: int
    root_hash: bytes

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin or _CONTROL.search(self.origin):
            raise CheckpointError("the origin must be one non-empty line")
        if self.size < 0:
            raise CheckpointError("the tree size must be >= 0")
        if len(self.root_hash) != 32:
            raise CheckpointError("the root hash must be 32 bytes")


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: the key name, the 4-byte key ID and the signature bytes."""

    key_name: str
    key_hash: bytes
    signature: bytes


def format_body(cp: Checkpoint) -> str:
    """The note text of ``cp``: origin, size and base64 root lines, each ending in newline."""
    return f"{cp.origin}\n{cp.size}\n{base64.b64encode(cp.root_hash).decode()}\n"


def _check_key_name(name: str) -> None:
    if not name or any(c.isspace() or c == "+" for c in name):
        raise CheckpointError(f"invalid key name {name!r}: empty, or has a space or '+'")


def key_hash(name: str, public_key: Ed25519PublicKey) -> bytes:
    """signed-note key ID: SHA-256(name || 0x0A || 0x01 || raw 32-byte public key)[:4]."""
    prefix = name.encode() + b"\n" + bytes([ED25519_SIGNATURE_TYPE])
    return hashlib.sha256(prefix + public_key.public_bytes_raw()).digest()[:4]


def sign_checkpoint(cp: Checkpoint, key_name: str, private_key: Ed25519PrivateKey) -> str:
    """The full signed note: note text, blank line, one Ed25519 signature line."""
    _check_key_name(key_name)
    body = format_body(cp)
    blob = key_hash(key_name, private_key.public_key()) + private_key.sign(body.encode())
    return f"{body}\n{SIGNATURE_PREFIX}{key_name} {base64.b64encode(blob).decode()}\n"


def _b64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise CheckpointError(f"{what} is not standard base64") from None


def _split_note(text: str) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text (with final newline) and its signatures."""
    if _CONTROL.search(text):
        raise CheckpointError("a signed note must not contain control characters")
    if not text.endswith("\n"):
        raise CheckpointError("a signed note must end with a newline")
    cut = text.rfind("\n\n")  # the text is separated from the signatures by the last blank line
    if cut < 0:
        raise CheckpointError("no blank line between note text and signatures")
    body, sig_lines = text[: cut + 1], text[cut + 2 :].splitlines()
    if not sig_lines:
        raise CheckpointError("a signed note needs at least one signature line")
    if len(sig_lines) > MAX_SIGNATURES:
        raise CheckpointError(f"more than {MAX_SIGNATURES} signatures")
    sigs: list[NoteSignature] = []
    for line in sig_lines:
        name, sep, b64 = line.removeprefix(SIGNATURE_PREFIX).rpartition(" ")
        if not line.startswith(SIGNATURE_PREFIX) or not sep:
            raise CheckpointError(f"malformed signature line {line!r}")
        _check_key_name(name)
        blob = _b64(b64, "a signature")
        if len(blob) < 5:
            raise CheckpointError("a signature must hold a 4-byte key ID and a signature")
        sigs.append(NoteSignature(name, blob[:4], blob[4:]))
    return body, sigs


def _parse_body(body: str) -> Checkpoint:
    lines = body[:-1].split("\n")
    if len(lines) < 3 or not all(lines):
        raise CheckpointError("a checkpoint has at least three non-empty lines")
    if not _SIZE.fullmatch(lines[1]):
        raise CheckpointError(f"tree size {lines[1]!r} is not a decimal without leading zeros")
    return Checkpoint(lines[0], int(lines[1]), _b64(lines[2], "the root hash"))


def parse_note(text: str) -> tuple[Checkpoint, list[NoteSignature]]:
    """Parse a checkpoint note WITHOUT checking signatures (use :func:`verify_note`)."""
    body, sigs = _split_note(text)
    return _parse_body(body), sigs


def verify_note(
    text: str,
    key_name: str,
    public_keys: Iterable[Ed25519PublicKey],
    *,
    origin: str | None = None,
) -> Checkpoint:
    """Return the checkpoint of ``text`` if a signature by one of ``public_keys`` verifies.

    Per signed-note, lines whose (name, key ID) match no known key are ignored; a line that
    matches a known key but fails to verify rejects the whole note. ``origin``, if given,
    must equal the checkpoint's first line.
    """
    body, sigs = _split_note(text)
    cp = _parse_body(body)
    if origin is not None and cp.origin != origin:
        raise CheckpointError(f"checkpoint origin {cp.origin!r} is not {origin!r}")
    known = {key_hash(key_name, k): k for k in public_keys}
    verified = False
    for sig in sigs:
        key = known.get(sig.key_hash) if sig.key_name == key_name else None
        if key is None:
            continue
        try:
            key.verify(sig.signature, body.encode())
        except InvalidSignature:
            raise CheckpointError(f"signature by {key_name} does not verify") from None
        verified = True
    if not verified:
        raise CheckpointError(f"no signature by a known key named {key_name!r}")
    return cp
