"""Re-check the whole ledger: hashes, chains, signatures, Merkle leaves and nodes, checkpoints.

Reports the first bad global position. Works page by page, so memory stays bounded by the
number of streams (one head hash each) and the page size.
"""

from __future__ import annotations

import base64
import hashlib
import json
import multiprocessing
import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from eventsourcing import persistence

from ledger.canonical import canonical_json
from ledger.checkpoint import CheckpointError, parse_note, verify_note
from ledger.entry import split_state
from ledger.merkle import CompactRange, leaf_hash, node_hash

if TYPE_CHECKING:
    from ledger.keys import KeyRing

PAGE = 2000
#: Servers before the fix of 2026-11-30 went on signing with a key `keys rotate` had retired
#: until they restarted, so their events can lie after their key's `valid_until`. Such events
#: recorded before this moment are reported as a warning (they are the ledger's own, and
#: failing them would fail every ledger rotated under the old servers); from it on, an event
#: signed outside its key's window fails verification: current servers seal with the key
#: the key ring names at that moment (`LedgerApp.signer`), stamp an event sealed after they
#: took up a rotated-in key no earlier than that moment, and `keys rotate` closes a key no
#: earlier than the last `recorded_at`; so such an event is what a retired key that leaked,
#: signing entries claimed later, looks like.
OUT_OF_WINDOW_TOLERATED_BEFORE = datetime(2026, 12, 1, tzinfo=UTC)
#: How many positions a warning names before it only counts.
NAMED = 5
#: How far past the verifier's own clock a `recorded_at` may lie before it is warned of (the
#: clocks of the server and of the verifying machine differ a little).
AHEAD_ALLOWED = timedelta(minutes=5)

#: From this many events on, signatures are checked in a second process.
PARALLEL_FROM = 50_000


@dataclass
class VerifyReport:
    ok: bool = True
    checked: int = 0
    first_bad_position: int | None = None
    problem: str | None = None
    tree_size: int = 0
    root: str | None = None
    problems: list[tuple[int | None, str]] = field(default_factory=list)
    #: Findings that leave the evidence authentic but should be read (`ok` stays True).
    warnings: list[str] = field(default_factory=list)

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


def damaged(exc: BaseException) -> bool:
    """Whether `exc` says the store's file is damaged ("database disk image is malformed",
    "file is not a database": SQLite's plain DatabaseError, as eventsourcing re-raises it),
    not that the store is busy, gone or out of room, nor an error of the program."""
    return type(exc) in (sqlite3.DatabaseError, persistence.DatabaseError)


def readable_head(recorder: Any) -> int:
    """The log's highest position, or 0 where the store's file is damaged there (the last
    events cannot be read: `verify_ledger`'s pages find where the damage begins)."""
    try:
        return int(recorder.max_notification_id() or 0)
    except Exception as exc:
        if not damaged(exc):
            raise
        return 0


def _pages(recorder: Any, cut: list[tuple[int, str]]) -> Iterator[list[Any]]:
    """The events in pages; where the store's file is damaged, the events before the damage
    and then (in `cut`) the first position that cannot be read, with the reason."""
    start = 1
    while True:
        try:
            page = recorder.select_notifications(start=start, limit=PAGE)
        except Exception as exc:
            if not damaged(exc):
                raise
            # The events before the damage, one by one, and then where it begins.
            readable = []
            try:
                while found := recorder.select_notifications(start=start, limit=1):
                    readable.append(found[0])
                    start = found[0].id + 1
            except Exception as again:
                if not damaged(again):
                    raise
            if readable:
                yield readable
            cut.append((start, str(exc)))
            return
        if page:
            yield page
        if len(page) < PAGE:
            return
        start = page[-1].id + 1


class _InlineExecutor(Executor):
    """Runs the job at once in this thread (an executor with the pool's interface)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def _bad_signatures(
    raw_keys: dict[str, bytes], jobs: list[tuple[int, str, str, bytes]]
) -> list[int]:
    """Positions whose Ed25519 signature over the entry hash does not verify."""
    keys = {kid: Ed25519PublicKey.from_public_bytes(raw) for kid, raw in raw_keys.items()}
    bad = []
    for position, key_id, signature, digest in jobs:
        try:
            keys[key_id].verify(base64.b64decode(signature), digest)
        except (InvalidSignature, ValueError):
            bad.append(position)
    return bad


def _check_event(
    report: VerifyReport,
    heads: dict[str, tuple[int, str]],
    n: Any,
    body: bytes,
    seal: dict[str, Any],
) -> dict[str, Any] | None:
    """Canonical form, the row's stream/version/type, and the stream's hash chain; the
    entry's hashed fields, when they could be read."""
    position = n.id
    try:
        hashed = json.loads(body)
    except ValueError:
        report.fail(position, "the entry is not JSON")
        return None
    if not isinstance(hashed, dict) or canonical_json(hashed) != body:
        report.fail(position, "the entry is not in RFC 8785 canonical form")
        return None
    stream = str(n.originator_id)
    if (
        hashed.get("stream_id") != stream
        or hashed.get("stream_version") != n.originator_version
        or hashed.get("type") != n.topic
    ):
        report.fail(position, "the entry's stream, version or type differs from its row")
        return None
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
    return hashed


def _moment(text: Any) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime; None when it is not one."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


#: Each key's validity, `valid_from` .. `valid_until` (None: open), by key id.
Windows = dict[str, tuple[datetime | None, datetime | None]]


@dataclass
class _Times:
    """The `recorded_at` checks: log order, and each signing key's validity window.

    `recorded_at` going back in log order is a warning, not a failure: every such entry is
    still hashed, chained and signed as written, and ledgers written before appends were
    stamped under the write lock (a clock stepped back, or a writer that stamped first and
    committed last) have such places; what they lose is that a `known_at` read there is a
    prefix of the log, which the warning says.
    """

    windows: Windows
    #: Entries recorded after this are warned of (None: not checked).
    latest_plausible: datetime | None = None
    last: datetime | None = None
    backwards: list[int] = field(default_factory=list)
    tolerated: list[int] = field(default_factory=list)
    ahead: list[int] = field(default_factory=list)

    def check(self, report: VerifyReport, position: int, key_id: str, text: Any) -> None:
        moment = _moment(text)
        if moment is None:
            report.fail(position, f"recorded_at {str(text)[:40]!r} is not an RFC 3339 timestamp")
            return
        if self.last is not None and moment < self.last:
            self.backwards.append(position)
        if self.latest_plausible is not None and moment > self.latest_plausible:
            self.ahead.append(position)
        self.last = moment
        finding = key_window(self.windows, key_id, moment)
        if finding == "tolerated":
            self.tolerated.append(position)
        elif finding == "outside":
            start, end = self.windows[key_id]
            why = (
                "a key signing entries dated before it was issued"
                if start is not None and moment < start
                else "a retired key signing entries dated after its retirement"
            )
            report.fail(
                position,
                f"recorded at {text}, outside the validity of its signing key {key_id} "
                f"({_shown(start)} .. {_shown(end)}, GET /v1/ledger/keys): {why}",
            )

    def warn(self, report: VerifyReport) -> None:
        if self.backwards:
            report.warnings.append(
                f"recorded_at goes back in log order at {_positions(self.backwards)}: a "
                "known_at read there is not a prefix of the log (a clock stepped back, or an "
                "append stamped when its command began and committed after a later-stamped one)"
            )
        if self.ahead and self.latest_plausible is not None:
            report.warnings.append(
                f"recorded_at lies after this check's own time "
                f"({_shown(self.latest_plausible - AHEAD_ALLOWED)}) by more than "
                f"{AHEAD_ALLOWED.seconds // 60} minutes at {_positions(self.ahead)}: the clock "
                "that stamped them ran ahead (or this machine's is behind), and a known_at "
                "read of a moment before their recorded_at leaves them out"
            )
        if self.tolerated:
            report.warnings.append(
                f"signed outside the signing key's validity window at "
                f"{_positions(self.tolerated)}, all recorded before "
                f"{OUT_OF_WINDOW_TOLERATED_BEFORE.date()}: servers before the fix of "
                "2026-11-30 signed so around a key rotation (until restarted); from "
                f"{OUT_OF_WINDOW_TOLERATED_BEFORE.date()} on this fails verification"
            )


def key_window(windows: Windows, key_id: str, recorded: datetime | str | None) -> str | None:
    """Whether an entry recorded then lies in its signing key's validity: "inside",
    "outside", "tolerated" (outside, but recorded before `OUT_OF_WINDOW_TOLERATED_BEFORE`),
    or None (the key or the moment unknown)."""
    moment = recorded if isinstance(recorded, datetime) else _moment(recorded)
    window = windows.get(key_id)
    if window is None or moment is None:
        return None
    start, end = window
    if (start is None or start <= moment) and (end is None or moment <= end):
        return "inside"
    return "tolerated" if moment < OUT_OF_WINDOW_TOLERATED_BEFORE else "outside"


def _shown(moment: datetime | None) -> str:
    return "open" if moment is None else moment.isoformat().replace("+00:00", "Z")


def _positions(positions: list[int]) -> str:
    named = ", ".join(str(p) for p in positions[:NAMED])
    more = f" and {len(positions) - NAMED} more" if len(positions) > NAMED else ""
    return f"{len(positions)} position{'s' if len(positions) != 1 else ''} ({named}{more})"


def key_windows(keys: Iterable[tuple[str, str | None, str | None]]) -> Windows:
    """Each key's validity (key_id, valid_from, valid_until) as moments; an unreadable bound
    is left open (the key list is the ledger's own, checked where it is published)."""
    return {kid: (_moment(start), _moment(end)) for kid, start, end in keys}


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


def _level_rows(recorder: Any, level: int, count: int) -> Iterator[tuple[int, bytes]]:
    """The stored hashes of Merkle level `level` (0: the leaves) with idx < `count`, in order."""
    t = recorder.tables
    after = -1
    while True:
        with recorder.datastore.transaction(commit=False) as cursor:
            if level == 0:
                cursor.execute(
                    f"SELECT leaf_index AS i, leaf_hash AS h FROM {t.leaves} WHERE leaf_index > "
                    f"{t.p} AND leaf_index < {t.p} ORDER BY leaf_index LIMIT {PAGE}",
                    (after, count),
                )
            else:
                cursor.execute(
                    f"SELECT idx AS i, hash AS h FROM {t.nodes} WHERE level = {t.p} AND idx > "
                    f"{t.p} AND idx < {t.p} ORDER BY idx LIMIT {PAGE}",
                    (level, after, count),
                )
            rows = [(int(r["i"]), bytes(r["h"])) for r in cursor.fetchall()]
        yield from rows
        if len(rows) < PAGE:
            return
        after = rows[-1][0]


def _position_of_leaf(recorder: Any, index: int) -> int | None:
    t = recorder.tables
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(f"SELECT position AS p FROM {t.leaves} WHERE leaf_index = {t.p}", (index,))
        row = cursor.fetchone()
    return None if row is None else int(row["p"])


def _check_nodes(report: VerifyReport, recorder: Any, integrated: int) -> None:
    """Every stored interior node of the integrated tree is there and is the hash of its two
    children, level by level up from the leaves (checked against the events already).

    Proofs and roots are read from these nodes, not recomputed: a damaged one makes every
    proof through it fail outside. Named at the position of the node's first leaf.
    """
    for level in range(1, integrated.bit_length()):
        count = integrated >> level
        children = _level_rows(recorder, level - 1, count * 2)
        stored = _level_rows(recorder, level, count)
        for idx in range(count):
            node = next(stored, None)
            left, right = next(children, None), next(children, None)
            if node is None or node[0] != idx:
                problem = "is missing"
            elif (
                left is None
                or right is None
                or (left[0], right[0]) != (2 * idx, 2 * idx + 1)
                or node_hash(left[1], right[1]) != node[1]
            ):
                problem = "is not the hash of its children: proofs through it will not verify"
            else:
                continue
            report.fail(
                _position_of_leaf(recorder, idx << level),
                f"Merkle node ({level}, {idx}) {problem}",
            )
            return


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
    windows: Windows | None = None,
    now: datetime | None = None,
    refresh: Callable[[], tuple[dict[str, Ed25519PublicKey], Windows]] | None = None,
) -> VerifyReport:
    """Check every event and the Merkle log; stop collecting detail after the first problem.

    With `windows` (`key_windows` of the key list), each event's `recorded_at` is also held
    to its signing key's validity (`OUT_OF_WINDOW_TOLERATED_BEFORE` says how); and whether
    `recorded_at` goes back in log order is reported in `warnings` (`_Times`), and so are
    entries recorded more than `AHEAD_ALLOWED` after `now` (default: the clock's time).

    A damaged store file is a finding like any other: the first position that cannot be
    read is the first bad one (the problem names the damage), not an error of the check.

    `refresh` gives the key list again (keys and windows), asked when an event or a
    checkpoint is signed by a key not among `keys`: `keys rotate` may have published it
    since the list was read, and a server signed with it (a key is never taken off).
    """
    report = VerifyReport()
    try:
        times = _Times(dict(windows or {}), (now or datetime.now(UTC)) + AHEAD_ALLOWED)
        _verify(report, recorder, _Keys(dict(keys), times, refresh), origin, progress, times)
    except Exception as exc:
        if not damaged(exc):
            raise
        report.fail(None, f"the store's file is damaged ({exc}): the ledger cannot be checked")
    return report


def verify_with_ring(
    recorder: Any,
    ring: KeyRing,
    origin: str,
    progress: Callable[[int], None] | None = None,
) -> VerifyReport:
    """`verify_ledger` with the ring's public keys and their validity windows: what
    `ses-ledger verify`, `GET /v1/ledger/verify` and `restore` check, alike (restore once
    checked without the windows, and put back a backup `verify` failed)."""
    keys, windows = ring_keys(ring)
    return verify_ledger(
        recorder,
        keys,
        origin,
        progress=progress,
        windows=windows,
        refresh=lambda: ring_keys(ring),
    )


def ring_keys(ring: KeyRing) -> tuple[dict[str, Ed25519PublicKey], Windows]:
    """The ring's public keys and their windows, from one read of the key list."""
    listed = ring.public_keys()
    keys = {k.key_id: k.public_key for k in listed}
    return keys, key_windows((k.key_id, k.valid_from, k.valid_until) for k in listed)


@dataclass
class _Keys:
    """The verifying keys, and the key list read again (`refresh`) for a key not among
    them: once per such key id, and once per checkpoint no key verifies."""

    keys: dict[str, Ed25519PublicKey]
    times: _Times
    refresh: Callable[[], tuple[dict[str, Ed25519PublicKey], Windows]] | None
    asked: set[str] = field(default_factory=set)
    #: Why the key list could not be read again, said beside the finding it leaves standing.
    unread: str | None = None

    def get(self, key_id: str) -> Ed25519PublicKey | None:
        key = self.keys.get(key_id)
        if key is None and key_id not in self.asked:
            self.asked.add(key_id)
            self.read_again()
            key = self.keys.get(key_id)
        return key

    def unread_note(self) -> str:
        """For a finding of an unknown key: that the list could not be read again to look
        for it (a key rotated in meanwhile, or a full descriptor table, looks the same)."""
        if self.unread is None:
            return ""
        return f" (the key list could not be read again to look for it: {self.unread})"

    def read_again(self) -> bool:
        """Read the key list again; whether it named keys not known before."""
        if self.refresh is None:
            return False
        try:
            keys, windows = self.refresh()
        except Exception as exc:  # noqa: BLE001 - unreadable now: the finding stands as it was
            self.unread = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return False
        self.unread = None
        added = bool(keys.keys() - self.keys.keys())
        self.keys.update(keys)
        self.times.windows.update(windows)
        return added


def _verify(
    report: VerifyReport,
    recorder: Any,
    keys: _Keys,
    origin: str,
    progress: Callable[[int], None] | None,
    times: _Times,
) -> None:
    heads: dict[str, tuple[int, str]] = {}
    tree = CompactRange()
    leaves = _leaves(recorder)
    integrated = _integrated_size(recorder)
    checkpoints = _checkpoints(recorder)
    pending_cps = list(checkpoints)
    sha256 = hashlib.sha256
    # Signatures cost most of verification. On a large ledger, a second process checks each
    # page's signatures while this one parses, chains and hashes the same page into the tree
    # (threads do not help: between Ed25519 calls the checking thread waits for the GIL).
    # Small ledgers check inline: starting a process would cost more than it saves.
    total = readable_head(recorder)
    known = keys.keys  # updated in place when the key list is read again
    raw_keys = {kid: key.public_bytes_raw() for kid, key in known.items()}
    pool: Executor = (
        ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
        if total >= PARALLEL_FROM
        else _InlineExecutor()
    )
    outstanding: deque[Future[list[int]]] = deque()
    with pool:
        cut: list[tuple[int, str]] = []
        for page in _pages(recorder, cut):
            ready: list[tuple[Any, bytes, dict[str, Any], bytes]] = []
            jobs: list[tuple[int, str, str, bytes]] = []
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
                key = known.get(seal.get("key_id", ""))
                if key is None:
                    key = keys.get(str(seal.get("key_id", "")))  # the key list read again
                    if key is None:
                        report.fail(
                            n.id,
                            f"signed with unknown key {seal.get('key_id')!r}{keys.unread_note()}",
                        )
                        continue
                    raw_keys.update((k, v.public_bytes_raw()) for k, v in known.items())
                jobs.append((n.id, str(seal["key_id"]), str(seal.get("signature", "")), digest))
                ready.append((n, body, seal, digest))
            signatures = pool.submit(_bad_signatures, raw_keys, jobs)
            for n, body, seal, digest in ready:
                hashed = _check_event(report, heads, n, body, seal)
                if hashed is not None:
                    times.check(report, n.id, str(seal["key_id"]), hashed.get("recorded_at"))
                _check_leaf(report, leaves, integrated, tree, n.id, leaf_hash(digest))
                tree.append(leaf_hash(digest))
                while pending_cps and pending_cps[0][0] == tree.size:
                    _check_checkpoint(report, pending_cps.pop(0), tree.root(), keys, origin, n.id)
            report.checked += len(page)
            outstanding.append(signatures)
            while len(outstanding) > 4 or (outstanding and outstanding[0].done()):
                for position in outstanding.popleft().result():
                    report.fail(position, "the signature does not verify")
            if progress is not None:
                progress(report.checked)
        for signatures in outstanding:
            for position in signatures.result():
                report.fail(position, "the signature does not verify")
    report.tree_size = tree.size
    report.root = base64.b64encode(tree.root()).decode()
    times.warn(report)
    for position, reason in cut:
        # What follows depends on the events that cannot be read: not checked.
        report.fail(
            position,
            f"the store's file is damaged ({reason}): the events from here on cannot be read",
        )
        return
    _check_nodes(report, recorder, min(integrated, tree.size))
    extra = next(leaves, None)
    if extra is not None and extra[0] >= integrated:
        # Integrated after this check began (a live ledger): its event, if read, was
        # checked without its leaf; not a leaf whose event is gone.
        extra = None
    if extra is None and tree.size < integrated:
        report.fail(None, f"the Merkle log holds {integrated} leaves but only {tree.size} events")
    if extra is not None:
        report.fail(extra[1], f"Merkle leaf {extra[0]} names position {extra[1]}, which is gone")
    for size, _note in pending_cps:
        report.fail(
            None,
            f"a checkpoint covers {size} events but the log holds {tree.size}: history was cut",
        )


def _hint(note: str, origin: str) -> str:
    """A note made for another origin than the one checked against: most likely this
    verifier's setting, not damage at that position (the note names its origin, and its
    signatures the key by it, so both fail)."""
    try:
        named = parse_note(note)[0].origin
    except CheckpointError:
        return ""
    if named == origin:
        return ""
    return (
        f" (it names the origin {named!r}: if that is the ledger's, check SES_LEDGER_ORIGIN here)"
    )


def _check_checkpoint(
    report: VerifyReport,
    checkpoint: tuple[int, str],
    root: bytes,
    keys: _Keys,
    origin: str,
    position: int,
) -> None:
    size, note = checkpoint
    try:
        try:
            cp = verify_note(note, origin, keys.keys.values())
        except CheckpointError:
            if not keys.read_again():  # signed with a key published since the list was read?
                raise
            cp = verify_note(note, origin, keys.keys.values())
    except CheckpointError as exc:
        report.fail(
            position,
            f"checkpoint at size {size} does not verify: {exc}{_hint(note, origin)}"
            f"{keys.unread_note()}",
        )
        return
    if cp.size != size or cp.root_hash != root:
        report.fail(position, f"checkpoint at size {size} has a root the log does not produce")
