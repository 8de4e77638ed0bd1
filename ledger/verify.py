"""Re-check the whole ledger: hashes, stream chains, signatures, Merkle leaves and checkpoints.

Reports the first bad global position. Works page by page, so memory stays bounded by the
number of streams (one head hash each) and the page size.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.canonical import canonical_json
from ledger.checkpoint import CheckpointError, verify_note
from ledger.entry import split_state
from ledger.merkle import CompactRange, leaf_hash

PAGE = 2000


@dataclass
class VerifyReport:
    ok: bool = True
    checked: int = 0
    first_bad_position: int | None = None
    problem: str | None = None
    tree_size: int = 0
    root: str | None = None
    problems: list[tuple[int | None, str]] = field(default_factory=list)

    def fail(self, position: int | None, problem: str) -> None:
        """Record a problem; the first bad position is the lowest position named."""
        self.problems.append((position, problem))
        earlier = position is not None and (
            self.first_bad_position is None or position < self.first_bad_position
        )
        if self.ok or earlier:
            self.ok = False
            self.first_bad_position = position
            self.problem = problem

    def as_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "first_bad_position": self.first_bad_position,
            "problem": self.problem,
            "tree_size": self.tree_size,
            "root": self.root,
        }


def _pages(recorder: Any) -> Iterator[list[Any]]:
    start = 1
    while True:
        page = recorder.select_notifications(start=start, limit=PAGE)
        if page:
            yield page
        if len(page) < PAGE:
            return
        start = page[-1].id + 1


def _bad_signatures(jobs: list[tuple[int, Ed25519PublicKey, str, bytes]]) -> list[int]:
    """Positions whose Ed25519 signature over the entry hash does not verify."""
    bad = []
    for position, key, signature, digest in jobs:
        try:
            key.verify(base64.b64decode(signature), digest)
        except (InvalidSignature, ValueError):
            bad.append(position)
    return bad


def _check_event(
    report: VerifyReport,
    heads: dict[str, tuple[int, str]],
    n: Any,
    body: bytes,
    seal: dict[str, Any],
) -> None:
    """Canonical form, the row's stream/version/type, and the stream's hash chain."""
    position = n.id
    try:
        hashed = json.loads(body)
    except ValueError:
        report.fail(position, "the entry is not JSON")
        return
    if canonical_json(hashed) != body:
        report.fail(position, "the entry is not in RFC 8785 canonical form")
        return
    stream = str(n.originator_id)
    if (
        hashed.get("stream_id") != stream
        or hashed.get("stream_version") != n.originator_version
        or hashed.get("type") != n.topic
    ):
        report.fail(position, "the entry's stream, version or type differs from its row")
        return
    last_version, last_hash = heads.get(stream, (0, None))
    if n.originator_version != last_version + 1:
        report.fail(
            position,
            f"stream {stream} jumps from version {last_version} to {n.originator_version}"
            " (an event is missing or out of order)",
        )
    elif hashed.get("prev_hash") != last_hash:
        report.fail(position, f"prev_hash does not chain to version {last_version} of {stream}")
    heads[stream] = (n.originator_version, seal["hash"])


def _check_leaf(
    report: VerifyReport,
    leaves: Iterator[tuple[int, int, bytes]],
    integrated: int,
    tree: CompactRange,
    position: int,
    expected_leaf: bytes,
) -> None:
    """The stored Merkle leaf at this index names this position and this event's hash."""
    if tree.size >= integrated:
        return  # committed after the last integration: not yet a leaf, not a problem
    stored = next(leaves, None)
    if stored is None:
        report.fail(position, "the event is missing from the Merkle log")
        return
    index, leaf_position, stored_leaf = stored
    if leaf_position != position:
        missing = leaf_position if leaf_position < position else position
        report.fail(
            missing,
            f"Merkle leaf {index} records position {leaf_position}, but the log has "
            f"position {position} there (an event was removed, inserted or moved)",
        )
    elif stored_leaf != expected_leaf:
        report.fail(position, f"Merkle leaf {index} does not match the event's hash")


def _leaves(recorder: Any) -> Iterator[tuple[int, int, bytes]]:
    t = recorder.tables
    after = -1
    while True:
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT leaf_index AS i, position AS p, leaf_hash AS h FROM {t.leaves} "
                f"WHERE leaf_index > {t.p} ORDER BY leaf_index LIMIT {PAGE}",
                (after,),
            )
            rows = [(int(r["i"]), int(r["p"]), bytes(r["h"])) for r in cursor.fetchall()]
        yield from rows
        if len(rows) < PAGE:
            return
        after = rows[-1][0]


def _integrated_size(recorder: Any) -> int:
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT tree_size AS n FROM {recorder.tables.state} WHERE id=1")
        row = cursor.fetchone()
    return 0 if row is None else int(row["n"])


def _checkpoints(recorder: Any) -> list[tuple[int, str]]:
    with recorder.datastore.transaction(commit=False) as cursor:
        table = recorder.tables.checkpoints
        cursor.execute(f"SELECT tree_size AS n, note AS t FROM {table} ORDER BY tree_size")
        return [(int(r["n"]), str(r["t"])) for r in cursor.fetchall()]


def verify_ledger(
    recorder: Any,
    keys: dict[str, Ed25519PublicKey],
    origin: str,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """Check every event and the Merkle log; stop collecting detail after the first problem."""
    report = VerifyReport()
    heads: dict[str, tuple[int, str]] = {}
    tree = CompactRange()
    leaves = _leaves(recorder)
    integrated = _integrated_size(recorder)
    checkpoints = _checkpoints(recorder)
    pending_cps = list(checkpoints)
    sha256 = hashlib.sha256
    # Ed25519 verification releases the GIL: check each page's signatures on a second
    # thread while this one parses, chains and hashes the same page into the Merkle tree.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="verify-sig") as pool:
        for page in _pages(recorder):
            ready: list[tuple[Any, bytes, dict[str, Any], bytes]] = []
            jobs: list[tuple[int, Ed25519PublicKey, str, bytes]] = []
            for n in page:
                try:
                    body, seal = split_state(n.state)
                except (ValueError, KeyError, TypeError) as exc:
                    report.fail(n.id, f"the stored event is unreadable ({type(exc).__name__})")
                    continue
                digest = sha256(body).digest()
                if digest.hex() != seal.get("hash"):
                    report.fail(n.id, "the event's hash does not match its content")
                    continue
                key = keys.get(seal.get("key_id", ""))
                if key is None:
                    report.fail(n.id, f"signed with unknown key {seal.get('key_id')!r}")
                    continue
                jobs.append((n.id, key, str(seal.get("signature", "")), digest))
                ready.append((n, body, seal, digest))
            signatures = pool.submit(_bad_signatures, jobs)
            for n, body, seal, digest in ready:
                _check_event(report, heads, n, body, seal)
                _check_leaf(report, leaves, integrated, tree, n.id, leaf_hash(digest))
                tree.append(leaf_hash(digest))
                while pending_cps and pending_cps[0][0] == tree.size:
                    _check_checkpoint(report, pending_cps.pop(0), tree.root(), keys, origin, n.id)
            for position in signatures.result():
                report.fail(position, "the signature does not verify")
            report.checked += len(page)
            if progress is not None:
                progress(report.checked)
    extra = next(leaves, None)
    if extra is None and tree.size < integrated:
        report.fail(None, f"the Merkle log holds {integrated} leaves but only {tree.size} events")
    if extra is not None:
        report.fail(extra[1], f"Merkle leaf {extra[0]} names position {extra[1]}, which is gone")
    for size, _note in pending_cps:
        report.fail(
            None,
            f"a checkpoint covers {size} events but the log holds {tree.size}: history was cut",
        )
    report.tree_size = tree.size
    report.root = base64.b64encode(tree.root()).decode()
    return report


def _check_checkpoint(
    report: VerifyReport,
    checkpoint: tuple[int, str],
    root: bytes,
    keys: dict[str, Ed25519PublicKey],
    origin: str,
    position: int,
) -> None:
    size, note = checkpoint
    try:
        cp = verify_note(note, origin, keys.values())
    except CheckpointError as exc:
        report.fail(position, f"checkpoint at size {size} does not verify: {exc}")
        return
    if cp.size != size or cp.root_hash != root:
        report.fail(position, f"checkpoint at size {size} has a root the log does not produce")
