"""Audit trails: who did what, in which stream, and whether each stored entry still verifies.

Trails by appraisal and by executive are read straight from the event store by stream (the
store's primary key is the stream); only two small indexes are projected:
- `proj_audit_actors(actor, bucket, positions)`: every event's acting official, as the
  positions each actor acted at within a bucket of `ACTOR_BUCKET` positions. A row per event
  made this index the costliest part of a rebuild; a row per (actor, bucket) holds the same
  facts, and because the bucket is fixed by the position (not by batch boundaries), the rows
  are the same however the log was processed, so digests still compare.
- `proj_audit_streams(stream_id, kind, executive_id)`: one row per stream, so an executive's
  trail can include their appraisal streams.

Each trail item carries its verification status, recomputed when asked: the entry hash
(`ledger.entry.entry_hash` against the stored `hash`), the Ed25519 signature against the key
ring, and the chain link to the previous event of the stream (read where the page does not
hold it). A page by executive or appraisal reads its entries, not whole streams
(`_stream_events`).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ledger.entry import entry_hash
from ledger.errors import NotFound
from ledger.verify import Windows, key_window
from projections.base import Projection
from projections.events import ACTOR_PREFIX, Bound, Event, EventLog
from projections.store import INT, JSON, TEXT, Store, Table, loads
from projections.views import PlanSetData

#: Positions per bucket of the actor index (see the module docstring).
ACTOR_BUCKET = 16384
ACTORS = Table(
    "proj_audit_actors",
    (("actor", TEXT), ("bucket", INT), ("positions", JSON)),
    ("actor", "bucket"),
)
STREAMS = Table(
    "proj_audit_streams",
    (("stream_id", TEXT), ("kind", TEXT), ("executive_id", TEXT)),
    ("stream_id",),
    (("executive_id",),),
)
STREAM_KINDS = {
    "ExecutiveRegistered": "executive",
    "PlanSet": "appraisal",
    "ReviewBoardRegistered": "review_board",
    "RatingCapWaiverGranted": "rating_cap_waiver",
}


class Audit(Projection):
    name = "audit"
    cost = 3.5
    version = 2
    tables = (ACTORS, STREAMS)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.actors = self.rows[ACTORS.name]
        self.streams = self.rows[STREAMS.name]

    def process_all(self, events: Sequence[Event]) -> None:
        """Every event: its actor's bucket, and the stream's first event (tight loop: this
        runs for every event of the log)."""
        grouped: dict[int, dict[bytes | str, list[int]]] = {}
        in_bucket: dict[bytes | str, list[int]] = {}
        bucket = -1
        at = len(ACTOR_PREFIX)
        for event in events:
            position = event.position
            if position // ACTOR_BUCKET != bucket:
                bucket = position // ACTOR_BUCKET
                in_bucket = grouped.setdefault(bucket, {})
            # The actor's raw bytes, sliced (decoded once per bucket below), or the decoded
            # string when the value holds an escape.
            state = event.state
            actor: bytes | str = state[at : state.find(b'"', at)]
            if b"\\" in actor or not state.startswith(ACTOR_PREFIX):
                actor = event.actor
            found = in_bucket.get(actor)
            if found is None:
                in_bucket[actor] = [position]
            else:
                found.append(position)
            if event.version == 1:
                self.first(event)
        merged: dict[tuple[str, int], list[int]] = {}
        for bucket, spellings in grouped.items():
            for actor, positions in spellings.items():
                name = actor.decode() if isinstance(actor, bytes) else actor
                merged.setdefault((name, bucket), []).extend(positions)
        actors = self.actors
        for key, positions in merged.items():
            positions.sort()  # raw and escaped spellings of one actor were grouped apart
            row = actors.get(key)
            if row is None:
                actors.put(key, {"actor": key[0], "bucket": key[1], "positions": positions})
            else:
                row["positions"].extend(positions)
                actors.touch(key)

    def first(self, event: Event) -> None:
        """A stream's first event: index the stream by kind and executive."""
        kind = STREAM_KINDS.get(event.type, "other")
        if kind == "appraisal":
            executive_id: str | None = event.view(PlanSetData).executive_id
        elif kind == "executive":
            executive_id = event.stream_id
        else:
            executive_id = None
        self.streams.put(
            event.stream_id,
            {"stream_id": event.stream_id, "kind": kind, "executive_id": executive_id},
        )


def executive_streams(store: Store, executive_id: str) -> list[str]:
    """The executive's own stream and their appraisal streams."""
    with store.transaction(commit=False) as cursor:
        cursor.execute(
            f"SELECT stream_id AS stream_id FROM {store.name(STREAMS.name)} "
            f"WHERE executive_id = {store.p}",
            (executive_id,),
        )
        found = {str(r["stream_id"]) for r in cursor.fetchall()}
    return sorted(found | {executive_id})


def actor_positions(store: Store, actor: str) -> list[int]:
    with store.transaction(commit=False) as cursor:
        cursor.execute(
            f"SELECT positions AS positions FROM {store.name(ACTORS.name)} "
            f"WHERE actor = {store.p} ORDER BY bucket",
            (actor,),
        )
        return [int(p) for r in cursor.fetchall() for p in loads(r["positions"])]


def trail_page(
    store: Store,
    log: EventLog,
    verifiers: Mapping[str, Ed25519PublicKey] | None,
    bound: Bound,
    windows: Windows | None = None,
    *,
    executive_id: str | None = None,
    appraisal_id: str | None = None,
    actor: str | None = None,
    after: int = 0,
    limit: int | None = None,
    visible: Callable[[str], bool] | None = None,
    max_scan: int | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """Events of an executive (with their appraisals), an appraisal, and/or an actor, paged
    as `/v1/ledger/events` pages: up to `limit` (None: all) after position `after` whose
    stream `visible` admits (None: all), and `next_after`, the position the next page follows, None
    on the last page. `next_after` is given only once an admitted entry after the page is
    seen, so a token of one agency is never promised more after its agency's last entry.
    An actor's trail that scanned `max_scan` of their entries without filling the page ends
    where the scan stopped (the page may then hold nothing; `next_after` goes on from it)."""
    wanted = None if limit is None else limit + 1
    events, fetched, stopped = _select(
        store, log, bound, executive_id, appraisal_id, actor, after, wanted, visible, max_scan
    )
    next_after = stopped
    if limit is not None and len(events) > limit:
        events = events[:limit]
        next_after = events[-1].position
    items = verify_events(events, verifiers, _predecessors(log, events, fetched), windows)
    return items, next_after


def _select(
    store: Store,
    log: EventLog,
    bound: Bound,
    executive_id: str | None,
    appraisal_id: str | None,
    actor: str | None,
    after: int,
    limit: int | None,
    visible: Callable[[str], bool] | None,
    max_scan: int | None,
) -> tuple[list[Event], list[Event], int | None]:
    """The trail's events (the first `limit` after `after` that `visible` admits), events
    read for them that may hold their predecessors, and where an actor's scan stopped short
    (see `trail_page`)."""
    if executive_id is None and appraisal_id is None and actor is None:
        raise ValueError("an audit trail needs an executive_id, an appraisal_id or an actor")
    if bound.stop is not None or bound.known_at is not None:
        # The ledger as it stood: a record made after that point was not there, as every
        # other read at that point answers (an empty trail said it was, with nothing done).
        for kind, named in (("executive", executive_id), ("appraisal", appraisal_id)):
            first = None if named is None else log.first(named)
            if named is not None and (first is None or not bound.admits(first)):
                raise NotFound(kind, named)
    streams: set[str] | None = None
    if executive_id is not None:
        streams = set(executive_streams(store, executive_id))
    if appraisal_id is not None:
        streams = {appraisal_id} if streams is None else streams & {appraisal_id}
    if streams is None:
        assert actor is not None
        events, stopped = _actor_events(store, log, bound, actor, after, limit, visible, max_scan)
        return events, [], stopped
    shown = sorted(s for s in streams if visible is None or visible(s))
    events, fetched = _stream_events(log, bound, shown, actor, after, limit)
    return events, fetched, None


#: Entries a trail by stream reads at a time at most (`_stream_events`).
STREAM_CHUNK = 5000


def _stream_events(
    log: EventLog,
    bound: Bound,
    streams: Sequence[str],
    actor: str | None,
    after: int,
    limit: int | None,
) -> tuple[list[Event], list[Event]]:
    """The first `limit` events (None: all) of `streams` after `after` that `bound` and
    `actor` admit, in global order, and the events read that may hold their predecessors.

    A page reads what it shows, not whole streams: the positions come from the event
    table's primary-key index (`EventLog.stream_positions`), then the entries at the next
    `limit + 1` of them (more, doubling up to `STREAM_CHUNK`, while `known_at` or `actor`
    leave some out). An executive's complaints have no limit (APP-1): at 20,000 of them
    each page read and decoded every one of their entries (21 MB at its peak, 50-60 ms for
    100 of them on a quiet machine, up to 290 ms under load; now 0.4 MB and 9 ms)."""
    found: list[Event] = []
    kept: list[Event] = []
    if not streams:
        return found, kept
    size = min(max(limit or STREAM_CHUNK, 1), STREAM_CHUNK)
    cursor = after
    while limit is None or len(found) < limit:
        positions = log.stream_positions(streams, cursor, size, bound.stop)
        if not positions:
            break
        batch = log.by_positions(positions)
        kept = batch  # the entries just before the page's are most often in the same read
        chosen = bound.filter(batch)
        if actor is not None:
            chosen = [e for e in chosen if e.actor == actor]
        found += chosen
        if len(positions) < size:
            break
        cursor = positions[-1]
        size = min(size * 2, STREAM_CHUNK)
    return found[:limit], kept


def _predecessors(log: EventLog, events: Sequence[Event], fetched: Sequence[Event]) -> list[Event]:
    """The entry before each of `events` in its stream, where it is not among them (a page,
    or a trail by actor, leaves them out), so every chain link can be checked: from the
    events already `fetched`, else read."""
    have = {(e.stream_id, e.version) for e in events}
    wanted = {(e.stream_id, e.version - 1) for e in events if e.version > 1} - have
    known = [e for e in fetched if (e.stream_id, e.version) in wanted]
    missing = wanted - {(e.stream_id, e.version) for e in known}
    return known + (log.by_stream_versions(sorted(missing)) if missing else [])


def _actor_events(
    store: Store,
    log: EventLog,
    bound: Bound,
    actor: str,
    after: int,
    limit: int | None,
    visible: Callable[[str], bool] | None = None,
    max_scan: int | None = None,
) -> tuple[list[Event], int | None]:
    """The actor's events after `after` that `visible` admits, read a page at a time until
    `limit` are admitted (an actor such as an appointing authority acts at thousands of
    positions), and the last position scanned when `max_scan` of them were read first (None:
    the scan reached `limit` or the end)."""
    stop = bound.stop
    positions = [
        p for p in actor_positions(store, actor) if p > after and (stop is None or p <= stop)
    ]
    found: list[Event] = []
    size = max(limit or 0, 100)
    for start in range(0, len(positions), size):
        chunk = positions[start : start + size]
        batch = bound.filter(log.by_positions(chunk))
        found += batch if visible is None else [e for e in batch if visible(e.stream_id)]
        if limit is not None and len(found) >= limit:
            break
        scanned = start + len(chunk)
        if max_scan is not None and scanned >= max_scan and scanned < len(positions):
            return found, chunk[-1]
    return found[:limit], None


def verify_events(
    events: Sequence[Event],
    verifiers: Mapping[str, Ed25519PublicKey] | None,
    earlier: Sequence[Event] = (),
    windows: Windows | None = None,
) -> list[dict[str, Any]]:
    """Trail items with `hash_ok`, `signature_ok` (None: no key ring here) and `chain_ok`:
    whether `prev_hash` is the stored hash of the stream's entry before it, found among
    `events` or `earlier` (False when that entry is missing from the ledger); and
    `key_window_ok`: whether `recorded_at` lies in the signing key's validity (None: no key
    ring, or a key it does not list). Outside it is a problem (`key_window`) except for an
    entry recorded before 2026-12-01, signed so by servers before the fix of 2026-11-30
    (`ledger.verify.OUT_OF_WINDOW_TOLERATED_BEFORE`): False, but not a problem."""
    entries = [event.entry() for event in events]
    hashes = {(e.stream_id, e.version): e.entry().get("hash") for e in earlier}
    for event, entry in zip(events, entries, strict=True):
        hashes[event.stream_id, event.version] = entry.get("hash")
    items = []
    for event, entry in zip(events, entries, strict=True):
        stored_hash = entry.get("hash")
        hash_ok = entry_hash(entry) == stored_hash
        signature_ok = _signature_ok(entry, verifiers)
        if event.version == 1:
            chain_ok = entry.get("prev_hash") is None
        else:
            before = (event.stream_id, event.version - 1)
            chain_ok = before in hashes and entry.get("prev_hash") == hashes[before]
        finding = (
            None
            if windows is None
            else key_window(windows, str(entry.get("key_id")), entry.get("recorded_at"))
        )
        window_ok = None if finding is None else finding == "inside"
        problems = [
            name
            for name, ok in (
                ("hash", hash_ok),
                ("signature", signature_ok),
                ("chain", chain_ok),
                ("key_window", finding != "outside"),
            )
            if ok is False
        ]
        items.append(
            {
                "position": event.position,
                "stream_id": event.stream_id,
                "stream_version": event.version,
                "type": event.type,
                "occurred_on": entry.get("occurred_on"),
                "recorded_at": entry.get("recorded_at"),
                "actor": entry.get("actor"),
                "submitted_by": entry.get("submitted_by"),
                "policy": entry.get("policy"),
                "hash": stored_hash,
                "key_id": entry.get("key_id"),
                "verification": {
                    "ok": not problems,
                    "hash_ok": hash_ok,
                    "signature_ok": signature_ok,
                    "chain_ok": chain_ok,
                    "key_window_ok": window_ok,
                    "problems": problems,
                },
            }
        )
    return items


def _signature_ok(
    entry: Mapping[str, Any], verifiers: Mapping[str, Ed25519PublicKey] | None
) -> bool | None:
    if verifiers is None:
        return None
    key = verifiers.get(str(entry.get("key_id")))
    if key is None:
        return False
    try:
        key.verify(
            base64.b64decode(str(entry.get("signature")), validate=True),
            bytes.fromhex(str(entry.get("hash"))),
        )
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True
