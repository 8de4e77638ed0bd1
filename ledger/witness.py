"""A witness of the ledger's Merkle log: detects forks, rewrites and truncation from outside.

Each run fetches the server's signed checkpoint and public keys (`GET /v1/ledger/checkpoint`,
`GET /v1/ledger/keys`, no token needed), verifies the note (c2sp.org/signed-note), then
compares it with the checkpoint the witness saved last time:

- same tree size: the roots must be equal (otherwise the log forked);
- larger: the server's RFC 9162 consistency proof (`GET /v1/ledger/proofs/consistency`) must
  show that the new tree extends the saved one (otherwise history before it was rewritten);
- smaller: never acceptable (history was cut).

The saved public keys are pinned: each must still be listed unchanged; new keys (rotation)
are accepted and pinned from then on. A signature by a new key alone proves little, which is
why the consistency proof, not the signature, is what ties each checkpoint to the last one:
even the ledger's own (stolen) key cannot sign a rewrite that passes it. The first run has
nothing to compare with and trusts what it sees (trust on first use) and says so. The state
is replaced atomically, and only after a checkpoint passed.

Standard library and `cryptography` only, like the rest of `ledger/`.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.checkpoint import Checkpoint, CheckpointError, parse_note, verify_note
from ledger.entry import format_timestamp
from ledger.errors import LedgerError
from ledger.files import open_lock_file, write_output
from ledger.merkle import EMPTY_ROOT, ProofError, verify_consistency
from ledger.offline_verify import read_text

STATE_FORMAT = "ses-ledger-witness/v1"
#: A state file holds one checkpoint and a few keys: far less than this.
STATE_MAX_BYTES = 16 << 20
#: The problem type of the ledger's 404 (api-contract.md: `urn:ses-ledger:problem:<slug>`).
NOT_FOUND = "urn:ses-ledger:problem:not-found"

#: `fetch(url) -> (HTTP status, body text)`; raises OSError when the server cannot be reached.
Fetch = Callable[[str], tuple[int, str]]


class WitnessUnavailable(LedgerError):
    """The log could not be checked: unreachable, a server error, or an unreadable state file.

    Not evidence of tampering (exit status 2, not 1).
    """


class Inconsistent(LedgerError):
    """The log contradicts the witness's saved checkpoint or keys (exit status 1)."""


#: The most of an answer read: keys, a checkpoint note and a consistency proof are a few
#: kilobytes; a server that sends more is not answering as a ledger does.
MAX_ANSWER_BYTES = 4 * 1024 * 1024


def http_fetch(timeout: float = 10.0) -> Fetch:
    """A `Fetch` over urllib (HTTP errors become statuses; network errors raise OSError, and
    so do a URL urllib cannot use and an answer that is not HTTP: no check was made).

    `timeout` bounds each answer's body as a whole, not only each wait for a byte, and an
    answer is read up to `MAX_ANSWER_BYTES`: the server is what the witness distrusts, and
    one that trickled an endless body held the run (and the state's lock, so every later
    run queued behind it) for ever, or filled the memory."""

    def fetch(url: str) -> tuple[int, str]:
        deadline = time.monotonic() + timeout
        try:
            request = urllib.request.Request(
                url, headers={"Accept": "application/json, text/plain"}
            )
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return int(response.status), _read_answer(response, deadline).decode("utf-8")
        except urllib.error.HTTPError as exc:
            return int(exc.code), _read_answer(exc, deadline).decode("utf-8", "replace")
        except (ValueError, http.client.HTTPException) as exc:  # "unknown url type", ...
            raise OSError(f"{type(exc).__name__}: {exc}") from None

    def _read_answer(response: Any, deadline: float) -> bytes:
        """The body, read as it arrives; OSError past the deadline or the size limit."""
        chunks: list[bytes] = []
        size = 0
        while chunk := response.read1(65_536):
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                raise OSError(f"the answer is larger than {MAX_ANSWER_BYTES} bytes")
            if time.monotonic() > deadline:
                raise OSError(f"the answer took longer than {timeout:g} s")
            chunks.append(chunk)
        return b"".join(chunks)

    return fetch


class LogClient:
    """The public endpoints a witness (or a bundle verifier) needs."""

    def __init__(self, base_url: str, fetch: Fetch | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.fetch = fetch or http_fetch()

    def _get(self, path: str, **query: int) -> tuple[int, str]:
        url = f"{self.base_url}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        try:
            status, body = self.fetch(url)
        except OSError as exc:
            raise WitnessUnavailable(f"cannot reach {url}: {exc}") from None
        if status >= 500:
            raise WitnessUnavailable(f"{url} answered {status}")
        return status, body

    def _json(self, path: str, **query: int) -> dict[str, Any]:
        return self._object(path, *self._get(path, **query))

    @staticmethod
    def _object(path: str, status: int, body: str) -> dict[str, Any]:
        """The JSON object a 200 answer of `path` holds; Inconsistent for anything else."""
        if status != 200:
            raise Inconsistent(f"{path} answered {status}: {body[:200]}")
        try:
            value = json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: nested too deeply to read
            raise Inconsistent(f"{path} did not answer JSON") from None
        if not isinstance(value, dict):
            raise Inconsistent(f"{path} did not answer a JSON object")
        return value

    def _served(self, path: str) -> tuple[int, str]:
        """An endpoint every ledger answers 200 to anyone (the checkpoint, the key list).
        Another answer (the 404 of a mistyped `--url`, a proxy's 401) says nothing of the
        ledger's history: the check could not be made (WitnessUnavailable), where it was
        INCONSISTENT, a verdict of a fork or rewrite, even on a first contact."""
        status, body = self._get(path)
        if status != 200:
            raise WitnessUnavailable(
                f"{self.base_url}{path} answered {status}, where a ledger answers 200 to "
                f"anyone: is {self.base_url} the ledger API's base URL?"
            )
        return status, body

    def checkpoint(self) -> str:
        return self._served("/v1/ledger/checkpoint")[1]

    def _key_listing(self) -> Any:
        path = "/v1/ledger/keys"
        return self._object(path, *self._served(path)).get("keys")

    def keys(self) -> dict[str, str]:
        """{key_id: base64 raw Ed25519 public key}."""
        found: dict[str, str] = {}
        listed = self._key_listing()
        if not isinstance(listed, list):
            raise Inconsistent("/v1/ledger/keys did not answer a list of keys")
        for key in listed:
            if isinstance(key, dict) and key.get("algorithm") == "Ed25519":
                found[str(key.get("key_id"))] = str(key.get("public_key"))
        return found

    def key_list(self) -> list[dict[str, Any]]:
        """The Ed25519 keys as listed, with their `valid_from` and `valid_until` (a bundle
        verifier holds each entry's `recorded_at` to them: `keys` leaves them out)."""
        listed = self._key_listing()
        if not isinstance(listed, list):
            raise Inconsistent("/v1/ledger/keys did not answer a list of keys")
        return [
            {
                "key_id": str(key.get("key_id")),
                "algorithm": "Ed25519",
                "public_key": str(key.get("public_key")),
                "valid_from": key.get("valid_from"),
                "valid_until": key.get("valid_until"),
            }
            for key in listed
            if isinstance(key, dict) and key.get("algorithm") == "Ed25519"
        ]

    def consistency(self, first: int, second: int) -> list[bytes]:
        """The proof hashes; Inconsistent when the server cannot give one."""
        body = self._json("/v1/ledger/proofs/consistency", first=first, second=second)
        if body.get("first") != first or body.get("second") != second:
            raise Inconsistent(f"asked for a proof {first} -> {second}, got another one")
        return _proof_hashes(body.get("hashes") or [], "consistency")

    def inclusion(self, position: int, tree_size: int) -> dict[str, Any] | None:
        """The ledger's inclusion proof of the event at `position` in the tree of `tree_size`
        (`GET /v1/ledger/proofs/inclusion`): `{leaf_index, tree_size, hashes}`, its hashes
        still base64. None when the ledger answers its own 404 (a problem of type
        `NOT_FOUND`): it holds no event of that tree at that position. Inconsistent for any
        other answer that is not such a proof, a 404 from something else on the way (a proxy,
        a wrong base URL) included: that is no evidence of what the ledger holds."""
        path = "/v1/ledger/proofs/inclusion"
        status, body = self._get(path, position=position, tree_size=tree_size)
        if status == 404:
            if _problem_type(body) == NOT_FOUND:
                return None
            raise Inconsistent(f"{path} answered 404 but not the ledger's not-found problem")
        value = self._object(path, status, body)
        index, hashes = value.get("leaf_index"), value.get("hashes")
        if (
            not isinstance(index, int)
            or isinstance(index, bool)
            or value.get("tree_size") != tree_size
            or not isinstance(hashes, list)
        ):
            raise Inconsistent(f"{path} did not answer an inclusion proof at tree size {tree_size}")
        _proof_hashes(hashes, "inclusion")
        return {"leaf_index": index, "tree_size": tree_size, "hashes": hashes}


def _problem_type(body: str) -> Any:
    """The `type` of a problem+json body (None when the body is not one)."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return value.get("type") if isinstance(value, dict) else None


def _proof_hashes(hashes: list[Any], kind: str) -> list[bytes]:
    """A proof's base64 hashes decoded; Inconsistent when one is not base64."""
    try:
        return [base64.b64decode(h, validate=True) for h in hashes]
    except (binascii.Error, TypeError, ValueError):
        raise Inconsistent(f"the {kind} proof is not base64") from None


@dataclass(frozen=True)
class WitnessState:
    """What a witness remembers between runs: the last checkpoint it accepted and the keys."""

    url: str
    origin: str
    tree_size: int
    root: bytes
    checkpoint: str
    keys: dict[str, str]
    witnessed_at: str

    def as_json(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "url": self.url,
            "origin": self.origin,
            "tree_size": self.tree_size,
            "root": base64.b64encode(self.root).decode(),
            "checkpoint": self.checkpoint,
            "keys": dict(sorted(self.keys.items())),
            "witnessed_at": self.witnessed_at,
        }

    @classmethod
    def load(cls, path: Path) -> WitnessState | None:
        """The saved state, or None when the file does not exist yet."""
        try:
            # In pieces, at most `STATE_MAX_BYTES`: `--state /dev/zero` read until the memory
            # ran out, then ended in a MemoryError traceback, exit 1 ("inconsistent").
            raw = json.loads(read_text(str(path), STATE_MAX_BYTES))
            if raw.get("format") != STATE_FORMAT:
                raise ValueError(f"not a {STATE_FORMAT} file")
            return cls(
                url=str(raw["url"]),
                origin=str(raw["origin"]),
                tree_size=int(raw["tree_size"]),
                root=base64.b64decode(raw["root"], validate=True),
                checkpoint=str(raw["checkpoint"]),
                keys={str(k): str(v) for k, v in raw["keys"].items()},
                witnessed_at=str(raw["witnessed_at"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError, MemoryError) as exc:
            why = str(exc) or type(exc).__name__
            raise WitnessUnavailable(f"cannot read the witness state {path}: {why}") from None

    def save(self, path: Path) -> None:
        """Replace the state file atomically (temp file, fsync, rename, fsync directory)."""
        write_atomically(path, json.dumps(self.as_json(), indent=2) + "\n")


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` whole (temp file, fsync, rename, fsync directory), mode 0600; a pipe or
    a device is written as it is, a symbolic link followed (`ledger.files.write_output`)."""
    directory = path.parent if str(path.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    write_output(path, text.encode("utf-8"), 0o600)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One witness run per state file at a time (cron overlaps), where flock exists."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # Owner-only, as the ledger's own lock files: whoever may open it may take its lock and
    # hold every later witness run of this state up.
    with open_lock_file(Path(f"{path}.lock")) as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass
class Observation:
    """The outcome of one witness run; `verdict` is first-use, unchanged, extended or
    inconsistent."""

    verdict: str
    tree_size: int
    previous_size: int | None
    lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verdict != "inconsistent"


def _public_keys(keys: dict[str, str]) -> list[Ed25519PublicKey]:
    out = []
    for key_id, b64 in keys.items():
        try:
            out.append(Ed25519PublicKey.from_public_bytes(base64.b64decode(b64, validate=True)))
        except (binascii.Error, ValueError):
            raise Inconsistent(f"key {key_id} is not a base64 Ed25519 public key") from None
    return out


def _check_keys(saved: dict[str, str], served: dict[str, str], lines: list[str]) -> None:
    for key_id, public in saved.items():
        if key_id not in served:
            raise Inconsistent(f"key {key_id}, pinned earlier, is no longer listed")
        if served[key_id] != public:
            raise Inconsistent(f"key {key_id} is listed with a different public key")
    for key_id in sorted(set(served) - set(saved)):
        lines.append(f"new key {key_id} listed (rotation): pinned from now on")


def check_extension(previous: WitnessState, current: Checkpoint, client: LogClient) -> str:
    """Raise Inconsistent unless `current` extends `previous`; returns the verdict."""
    old, new = previous.tree_size, current.size
    if new < old:
        raise Inconsistent(
            f"the tree shrank from {old} to {new} leaves: history was cut or rewritten"
        )
    if new == old:
        if current.root_hash != previous.root:
            raise Inconsistent(
                f"fork: the tree of size {new} now has another root "
                f"({base64.b64encode(current.root_hash).decode()}, was "
                f"{base64.b64encode(previous.root).decode()})"
            )
        return "unchanged"
    if old == 0:
        if previous.root != EMPTY_ROOT:
            raise Inconsistent("the saved empty tree has a non-empty root")
        return "extended"
    proof = client.consistency(old, new)
    try:
        verify_consistency(old, new, proof, previous.root, current.root_hash)
    except ProofError as exc:
        raise Inconsistent(
            f"the tree of size {new} does not extend the one of size {old} ({exc}): "
            "history before it was rewritten"
        ) from None
    return "extended"


def witness(
    base_url: str,
    state_path: Path,
    *,
    origin: str | None = None,
    fetch: Fetch | None = None,
    now: datetime | None = None,
) -> Observation:
    """Check the log at `base_url` against the saved state; save the new checkpoint if it passes.

    Raises WitnessUnavailable when the check could not be made; returns an inconsistent
    Observation (state left untouched) when the log contradicts what was seen before.
    """
    client = LogClient(base_url, fetch)
    state_path = Path(state_path)
    with _locked(state_path):
        previous = WitnessState.load(state_path)
        lines: list[str] = []
        try:
            # The checkpoint first, then the keys: a key is never taken off the list, so
            # the list read after names the key that signed it. Read before, a rotation in
            # between (and a checkpoint signed with the new key) looked like a forged note.
            note = client.checkpoint()
            served_keys = client.keys()
            if not served_keys:
                raise Inconsistent("the server lists no Ed25519 key")
            if previous is not None:
                _check_keys(previous.keys, served_keys, lines)
            expected = origin or (previous.origin if previous else None)
            if expected is None:
                expected = parse_note(note)[0].origin
            if previous is not None and expected != previous.origin:
                raise Inconsistent(f"origin {expected!r} is not the witnessed {previous.origin!r}")
            try:
                current = verify_note(note, expected, _public_keys(served_keys), origin=expected)
            except CheckpointError as exc:
                raise Inconsistent(f"the checkpoint does not verify: {exc}") from None
            if previous is None:
                verdict = "first-use"
                lines.append(
                    f"first run: no saved checkpoint, so this one (tree size {current.size}) and "
                    f"the {len(served_keys)} listed key(s) are trusted on first use; later runs "
                    "check every checkpoint against it"
                )
            else:
                verdict = check_extension(previous, current, client)
        except Inconsistent as exc:
            return Observation(
                "inconsistent",
                tree_size=-1,
                previous_size=previous.tree_size if previous else None,
                lines=[*lines, f"INCONSISTENT: {exc}"],
            )
        old_size = previous.tree_size if previous else None
        if verdict == "extended":
            lines.append(f"consistent: tree grew from {old_size} to {current.size} leaves")
        elif verdict == "unchanged":
            lines.append(f"unchanged: tree size {current.size}, same root")
        keys = {**(previous.keys if previous else {}), **served_keys}
        WitnessState(
            url=base_url,
            origin=current.origin,
            tree_size=current.size,
            root=current.root_hash,
            checkpoint=note,
            keys=keys,
            witnessed_at=format_timestamp(now or datetime.now(UTC)),
        ).save(state_path)
        return Observation(verdict, current.size, old_size, lines)
