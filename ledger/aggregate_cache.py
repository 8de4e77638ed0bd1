"""Aggregates this process has replayed, kept to be brought up to date instead of replayed.

Without it every command replays its aggregates' whole streams: an executive with 2,000
complaints (APP-1 sets no limit, and an `hr_app` or the executive may file them) decoded
2,000 entries on every later write to that record: 21-24 ms a write on SQLite (33 ms on
PostgreSQL) against 0.6 ms (1.5 ms) for a record of 21 events, most of it `json.loads` of
each stored entry; with it, 0.4 ms (1.1 ms) for both.

Why keeping them is sound (why this is not the snapshot the ledger refuses to trust):

- Nothing is read from anywhere but the event store, through the same mapper as a replay.
  A kept aggregate is only ever the result of applying, in order, entries this process
  read from the store itself: it is the state a replay computed, held in memory, never
  written anywhere, never read back from the database. (An unsigned snapshot stored in the
  database is not used: someone with access to the database could rewrite it without
  breaking any hash or signature, and commands would judge rules on it.)
- Every load brings it up to date from the store: the entries after its version are read
  and applied (`_replay`, which refuses a gap), so what other processes stored (a second
  `serve` worker, the projector's process, a command line) counts as in a replay.
- Every load first checks that the store still holds the kept aggregate's last entry,
  same version and same `hash`: the entry at that version is read with the newer ones.
  Each entry's hash covers its `prev_hash`, so a store that holds that entry holds the
  same history up to it (a ledger restored from a backup under a running process, a
  PostgreSQL schema reloaded, a stream cut short or rewritten). Otherwise the kept copy is
  dropped and the stream replayed whole, as it would be without this cache; a command
  could otherwise chain its event to a head the store no longer holds.
- A command gets a copy (`copy.deepcopy`), never the kept object: a command that fails
  after changing its copy (a rule, a lost race at the store: `ConcurrencyConflict`, a
  store that cannot be reached) leaves the kept aggregate as it was. A kept object is
  never changed: a load brings a copy of it up to date and keeps that instead, so threads
  read the store and copy without holding any lock (a lock held across the store's read
  queued every load of a stream, and of the streams sharing its lock, behind the one
  before it: in an outage each waited out the store wait of those before it, 0.3, 0.6,
  0.9 and 1.2 s for four loads of a 0.3 s wait, where each is promised one wait).
- Key rotation does not touch it: it holds no signature or key, only the head `hash`,
  which the next event chains to whatever key signs it.

Bounded by the number of events its aggregates hold together (`max_events`, the setting
`SES_LEDGER_AGGREGATE_CACHE_EVENTS`; 0 turns it off), an aggregate whose stored entries
take more than `EVENT_BYTES` an event on average counting as one event per `EVENT_BYTES` of
them: the least recently loaded go first, and an aggregate of more than that is never kept.
(A kept aggregate holds its entries' text decoded, about as many bytes as they take stored:
a complaint's summary may be 20,000 characters, and counted one event each, 100,000 such
complaints were 2 GB kept in every process; now at most about 100 MB of stored entries.)
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger.domain.base import LedgerAggregate

#: Stored bytes an aggregate's entries may take on average before it counts as more events
#: than it has (a ledger entry takes 0.5-1 KB as stored: one event each).
EVENT_BYTES = 1024

#: The stream's aggregate replayed whole, and the bytes its stored entries take.
Replay = Callable[[], "tuple[LedgerAggregate, int]"]
#: The stream's stored entries after a version, oldest first (`select_events(gt=...)`).
EventsAfter = Callable[[int], Sequence[Any]]
#: A stored entry as a domain event (the mapper's `to_domain_event`).
Decode = Callable[[Any], Any]
Project = Callable[[Any, Iterable[Any]], Any]


class AggregateCache:
    """Replayed aggregates of this process, by stream id (see the module docstring)."""

    def __init__(self, max_events: int) -> None:
        self.max_events = max_events
        #: Each stream's aggregate and the bytes its stored entries take.
        self._kept: OrderedDict[str, tuple[LedgerAggregate, int]] = OrderedDict()
        #: The kept aggregates' sizes together (`_size`).
        self._events = 0
        self._lock = threading.Lock()
        #: Loads served from a kept aggregate, and replays (for tests and monitoring).
        self.hits = 0
        self.replays = 0

    def load(
        self,
        stream_id: str,
        replay: Replay,
        events_after: EventsAfter,
        decode: Decode,
        project: Project,
    ) -> LedgerAggregate:
        """A copy of the stream's aggregate as the store holds it now: the kept one brought
        up to date, else `replay()` (whose errors, such as not found, pass through)."""
        if self.max_events <= 0:
            return replay()[0]
        kept = self._peek(stream_id)
        found = None
        if kept is not None:
            # The read runs here, outside the `try`: a store that cannot be reached
            # answers now, not after a second wait for the replay's read.
            newer = events_after(kept[0].version - 1)
            try:
                found = _brought_up_to_date(kept, newer, decode, project)
            except Exception:
                found = None  # replayed below: its error, if any, is the answer
        if found is None:
            try:
                found = replay()
            except Exception:
                if kept is not None:  # its stream is gone (a restored store): not kept on
                    self._forget(stream_id, kept)
                raise
            with self._lock:
                self.replays += 1
        else:
            with self._lock:
                self.hits += 1
        if found is not kept:
            self._keep(stream_id, found)
        return copy.deepcopy(found[0])

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self._events = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._kept)

    def _peek(self, stream_id: str) -> tuple[LedgerAggregate, int] | None:
        """The kept aggregate of the stream (left kept: kept objects are never changed), as
        the most recently used."""
        with self._lock:
            kept = self._kept.get(stream_id)
            if kept is not None:
                self._kept.move_to_end(stream_id)
            return kept

    def _forget(self, stream_id: str, kept: tuple[LedgerAggregate, int]) -> None:
        """Drop the stream's kept aggregate if it is still `kept`."""
        with self._lock:
            if self._kept.get(stream_id) is kept:
                del self._kept[stream_id]
                self._events -= _size(kept)

    def _keep(self, stream_id: str, found: tuple[LedgerAggregate, int]) -> None:
        """Keep `found` for the stream, in place of what is kept: the last load's (one that
        read the store earlier than another thread's costs the next load a longer read; what
        is kept is checked against the store at every load whatever it is, and a version
        test would leave a kept head from before a restore in place for good)."""
        size = _size(found)
        with self._lock:
            current = self._kept.pop(stream_id, None)
            if current is not None:
                self._events -= _size(current)
            if size > self.max_events:
                return
            self._kept[stream_id] = found
            self._events += size
            while self._events > self.max_events:
                _, dropped = self._kept.popitem(last=False)
                self._events -= _size(dropped)


def _size(kept: tuple[LedgerAggregate, int]) -> int:
    """The events an aggregate counts as: its own, or one per `EVENT_BYTES` its stored
    entries take, if more."""
    aggregate, stored_bytes = kept
    return max(aggregate.version, stored_bytes // EVENT_BYTES)


def _brought_up_to_date(
    kept: tuple[LedgerAggregate, int],
    newer: Sequence[Any],
    decode: Decode,
    project: Project,
) -> tuple[LedgerAggregate, int] | None:
    """`kept` with the store's `newer` entries (from its version on) applied, or None when
    the store no longer holds its last entry as it was (version and hash). `kept` itself
    when there is nothing newer; else the entries are applied to a copy (`kept` stays as
    it is: another thread may be copying it)."""
    aggregate, stored_bytes = kept
    if not newer:
        return None
    last = decode(newer[0])
    if (
        last.originator_version != aggregate.version
        or last.__dict__.get("entry_hash") != aggregate.head_hash
    ):
        return None
    rest = newer[1:]
    if not rest:
        return kept
    applied: LedgerAggregate = project(copy.deepcopy(aggregate), map(decode, rest))
    return applied, stored_bytes + sum(len(stored.state) for stored in rest)
