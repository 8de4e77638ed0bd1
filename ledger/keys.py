"""Ledger signing keys (Ed25519) under the ledger home directory.

Layout: `<home>/keys/<key_id>.pem` (PKCS#8, mode 0600, never logged) and
`<home>/keys/keyring.json` (public keys with validity ranges, the `/v1/ledger/keys` body).
Rotation closes the current key's validity and adds a new one; old public keys stay so old
events still verify. A key id is the first 16 hex digits of SHA-256 of the raw public key.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from ledger.config import make_private_dir
from ledger.entry import format_timestamp
from ledger.errors import SigningKeyError
from ledger.files import open_lock_file, write_file

#: Serialises the key ring's writers within one process (the `flock` does between processes;
#: it would also between threads, but a thread lock keeps a process's own writers in line
#: where `flock` is missing).
_RING_LOCK = threading.Lock()


def key_id_for(public_key: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_key.public_bytes_raw()).hexdigest()[:16]


@dataclass(frozen=True)
class PublicKeyInfo:
    key_id: str
    public_key: Ed25519PublicKey
    valid_from: str
    valid_until: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "algorithm": "Ed25519",
            "public_key": base64.b64encode(self.public_key.public_bytes_raw()).decode(),
            "valid_from": self.valid_from,
            "valid_until": self.valid_until,
        }


class Signer:
    """The current signing key. Its repr never shows key material.

    `taken_up_at`: when the process that holds it took it up after a rotation (None: it was
    the key when the process began, or given). Kept with the key, not beside it: a thread
    that sealed with the old key must not read the moment another thread took the new one
    up (`LedgerApp._seal`).
    """

    def __init__(
        self,
        key_id: str,
        private_key: Ed25519PrivateKey,
        taken_up_at: datetime | None = None,
    ) -> None:
        self.key_id = key_id
        self._private_key = private_key
        self.taken_up_at = taken_up_at

    def taken_up(self, at: datetime) -> Signer:
        """This key, as taken up by a process at `at`."""
        return Signer(self.key_id, self._private_key, at)

    def sign(self, message: bytes) -> bytes:
        return self._private_key.sign(message)

    @property
    def private_key(self) -> Ed25519PrivateKey:
        return self._private_key

    def __repr__(self) -> str:
        return f"Signer(key_id={self.key_id!r})"


class KeyRing:
    """Signing keys of one ledger home."""

    def __init__(self, home: Path) -> None:
        self.dir = Path(home) / "keys"
        self.index = self.dir / "keyring.json"

    def exists(self) -> bool:
        return self.index.is_file()

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """The ring to oneself: `rotate` and `init` read it, add a key and write it back, so
        two at once lost one's key (the last to write dropped the other's from the index,
        though servers had signed with it); a backup copies the index and the keys it names
        as one. An exclusive `flock` on `keys/keyring.lock` (0600), where `flock` exists.

        Where the lock file cannot be made (no `keys/` yet, a read-only home) no other
        process can write the ring either: the caller goes on without it (a write then fails
        naming the file it meant to write; a backup of a read-only home is taken)."""
        with _RING_LOCK:
            try:
                import fcntl

                lock = open_lock_file(self.dir / "keyring.lock")
            except (ImportError, OSError):
                yield
                return
            with lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)

    def stamp(self) -> tuple[int, int, int] | None:
        """The index file's identity and modification time (None: unreadable): it changes
        when `rotate` replaces the index, so a running process sees a rotation with a stat."""
        try:
            st = os.stat(self.index)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _read_index(self) -> list[dict[str, Any]]:
        try:
            records = json.loads(self.index.read_text())
        except FileNotFoundError:
            raise SigningKeyError(
                f"no key ring at {self.index}: a new ledger starts with `ses-ledger keys init`; "
                "an existing ledger's keys must be restored from its backup"
            ) from None
        except OSError as exc:  # a directory in its way, no permission: the reason itself
            raise SigningKeyError(
                f"cannot read {self.index}: {exc.strerror or type(exc).__name__}"
            ) from None
        except ValueError as exc:  # public keys only: where the JSON breaks is safe to show
            raise SigningKeyError(f"cannot read {self.index}: it is not JSON ({exc})") from None
        if not isinstance(records, list):
            raise SigningKeyError(f"{self.index} is not a key list")
        return records

    def _write_index(self, records: list[dict[str, Any]]) -> None:
        # public, but writable by the owner only, whatever the umask
        data = (json.dumps(records, indent=2) + "\n").encode()
        write_file(self.index, data, 0o644, replace=True)

    def public_keys(self) -> list[PublicKeyInfo]:
        return [
            PublicKeyInfo(
                key_id=r["key_id"],
                public_key=Ed25519PublicKey.from_public_bytes(base64.b64decode(r["public_key"])),
                valid_from=r["valid_from"],
                valid_until=r.get("valid_until"),
            )
            for r in self._read_index()
        ]

    def verifiers(self) -> dict[str, Ed25519PublicKey]:
        return {k.key_id: k.public_key for k in self.public_keys()}

    def validity(self) -> list[tuple[str, str | None, str | None]]:
        """Each key's (key_id, valid_from, valid_until), as the key list publishes them."""
        return [(k.key_id, k.valid_from, k.valid_until) for k in self.public_keys()]

    def signer(self) -> Signer:
        current = [r for r in self._read_index() if r.get("valid_until") is None]
        if not current:
            raise SigningKeyError("no current signing key: run `ses-ledger keys rotate`")
        key_id = current[-1]["key_id"]
        path = self.dir / f"{key_id}.pem"
        try:
            private = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except PermissionError:
            # there and sound, but another user's (the home's owner is not this process's
            # user): a new key would retire a good one, and be the owner's again
            raise SigningKeyError(
                f"cannot load the private key for {key_id}: {path} cannot be read by this "
                f"user (uid {os.getuid()}); run as the user that owns the ledger home, or "
                "give this user the key (`chown`)"
            ) from None
        except (OSError, ValueError) as exc:
            raise SigningKeyError(
                f"cannot load the private key for {key_id}: {type(exc).__name__} ({path}); "
                "restore it from a backup made with --with-secrets, or start a new signing "
                "key with `ses-ledger keys rotate` (earlier events keep verifying)"
            ) from None
        if not isinstance(private, Ed25519PrivateKey):
            raise SigningKeyError(f"key {key_id} is not an Ed25519 key")
        listed = base64.b64decode(current[-1]["public_key"])
        if private.public_key().public_bytes_raw() != listed:
            # another key's file under this key's name (copied in by hand): every entry it
            # signed would fail `verify` for good, a charge of tampering no one did
            raise SigningKeyError(
                f"cannot load the private key for {key_id}: {path} is not key {key_id} (it "
                f"holds key {key_id_for(private.public_key())}, not the public key the key "
                "ring lists); put key "
                f"{key_id}'s own file there, from a backup made with --with-secrets, or start "
                "a new signing key with `ses-ledger keys rotate` (earlier events keep "
                "verifying)"
            )
        return Signer(key_id, private)

    def _new_key(self, now: datetime) -> dict[str, Any]:
        private = Ed25519PrivateKey.generate()
        kid = key_id_for(private.public_key())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_file(self.dir / f"{kid}.pem", pem, 0o600, replace=False)
        return PublicKeyInfo(kid, private.public_key(), format_timestamp(now), None).as_json()

    def init(self, now: datetime | None = None) -> str:
        """Create the first signing key; idempotent (returns the current key id)."""
        if self.exists():
            return self.signer().key_id
        make_private_dir(self.dir)
        os.chmod(self.dir, 0o700)  # also when it was there already
        with self.locked():
            if self.exists():  # another `init` made it meanwhile
                return self.signer().key_id
            record = self._new_key(now or datetime.now(UTC))
            self._write_index([record])
        return str(record["key_id"])

    def rotate(
        self,
        now: datetime | None = None,
        *,
        close_at: datetime | Callable[[set[str]], datetime] | None = None,
    ) -> str:
        """Close the current key and start a new one; old public keys are kept.

        `close_at`: when the old key's validity ends, if not when the new one's begins, or
        a function of the ids of the keys it closes giving it, called once the new key is
        published (`keys rotate`: the clock's time then, or the ledger's latest `recorded_at`
        of those keys, when a clock that ran ahead was set back: the old key must cover the
        events it signed, and the new one the events stamped from now on).

        One rotation at a time (`locked`): the ring is read, and written back with the new
        key, by one rotation only."""
        with self.locked():
            return self._rotate(now, close_at)

    def _rotate(
        self,
        now: datetime | None,
        close_at: datetime | Callable[[set[str]], datetime] | None,
    ) -> str:
        given = close_at or now
        now = now or datetime.now(UTC)
        records = self._read_index()
        closing = {str(r["key_id"]) for r in records if r.get("valid_until") is None}
        record = self._new_key(now)
        # Two writes: the new key is published (and taken up by running servers, which sign
        # with the last open key) before the old one is closed, at a time taken after that,
        # so no event a server sealed with the old key is recorded after its `valid_until`.
        self._write_index([*records, record])
        closed = given(closing) if callable(given) else given
        closed_at = format_timestamp(closed or datetime.now(UTC))
        for r in records:
            if r.get("valid_until") is None:
                r["valid_until"] = closed_at
        records.append(record)
        self._write_index(records)
        return str(record["key_id"])
