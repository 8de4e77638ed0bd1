"""Re-check the whole ledger: hashes, stream chains, signatures, Merkle leaves and checkpoints.

Reports the first bad global position. Works page by page, so memory stays bounded by the
number of streams (one head hash each) and the page size.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Iterator
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


def _notifications(recorder: Any) -> Iterator[Any]:
    start = 1
    while True:
        page = recorder.select_notifications(start=start, limit=PAGE)
        yield from page
        if len(page) < PAGE:
            return
        start = page[-1].id + 1


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
    b64decode = base64.b64decode
    for n in _notifications(recorder):
        position = n.id
        report.checked += 1
        if progress is not None and report.checked % 10000 == 0:
            progress(report.checked)
        try:
            body, seal = split_state(n.state)
            digest = sha256(body).digest()
            if digest.hex() != seal.get("hash"):
                report.fail(position, "the event's hash does not match its content")
                continue
            key = keys.get(seal.get("key_id", ""))
            if key is None:
                report.fail(position, f"signed with unknown key {seal.get('key_id')!r}")
                continue
            try:
                key.verify(b64decode(seal["signature"]), digest)
            except (InvalidSignature, ValueError):
                report.fail(position, "the signature does not verify")
                continue
            hashed = json.loads(body)
            if canonical_json(hashed) != body:
                report.fail(position, "the entry is not in RFC 8785 canonical form")
                continue
        except (ValueError, KeyError, TypeError) as exc:
            report.fail(position, f"the stored event is unreadable ({type(exc).__name__})")
            continue
        stream = str(n.originator_id)
        if (
            hashed.get("stream_id") != stream
            or hashed.get("stream_version") != n.originator_version
            or hashed.get("type") != n.topic
        ):
            report.fail(position, "the entry's stream, version or type differs from its row")
            continue
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
        expected_leaf = leaf_hash(digest)
        stored = next(leaves, None) if tree.size < integrated else None
        if stored is None:
            if tree.size < integrated:
                report.fail(position, "the event is missing from the Merkle log")
        else:
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
        tree.append(expected_leaf)
        while pending_cps and pending_cps[0][0] == tree.size:
            _check_checkpoint(report, pending_cps.pop(0), tree.root(), keys, origin, position)
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
