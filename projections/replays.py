"""Whole-ledger replays (`ReadModels.as_of` without an executive): kept, and rationed.

A historical report is built from the log's first event up to its bound, in memory: at a
million events tens of seconds of CPU and hundreds of MB, which any authenticated reader
could ask for again and again, and several at once (starving the writers of the same
process of the CPU). `Replays` bounds that:

- Built replays are kept (the last `entries`, at most `max_bytes` of in-memory SQLite in
  all; one bigger than that is not kept) and served again to every request whose events
  are the same. A replay to a position at or below the head is immutable: positions are
  handed out in commit order, so nothing can appear below the head later. A bound is
  therefore first resolved to a concrete position, `min(as_of_position, head)`, also for
  `known_at` (in the future too): the events a replay holds are those of its projections'
  types at positions <= that position recorded at or before `known_at`.
- An entry records which requests share its events: it applied every event of its types
  at positions <= `low` recorded by `k_min`, and none at positions up to `high`, all
  recorded after `k_max` (None: no such event). A request for the same projections (or
  fewer) at a position in [low, high] and a `known_at` in [k_min, k_max) (no `known_at`:
  k_max None) is served from it. A request beyond `high` first reads the events since
  (at most `EXTEND_SCAN` positions): if none of them is admitted, the entry covers it too,
  so a `known_at` in the past stays served while writes go on.
- At most `builds` replays are built at once per process. A request that finds every build
  slot taken waits up to `wait_seconds` for one (a replay of a small ledger takes
  milliseconds), then is refused with `ReplayBusy` (the API's 503 `unavailable`, with
  `Retry-After`): a queue would hold the server's request threads for as long as other
  people's builds take, which is the starvation this prevents.
- Historical reads of one record are rationed alike, in slots of their own
  (`record_builds`, `SES_LEDGER_RECORD_REPLAY_BUILDS`), so that one never waits for a
  whole-ledger build: an executive's record or an appraisal as of a point (`ReadModels.as_of`
  with an executive, which reads all the executive's streams and replays them), and an
  audit trail as of a point (a page of which may read much of the record when `known_at`
  leaves entries out, `projections.audit._stream_events`). Their
  cost grows with the record, which has no limit (an executive's complaints, APP-1): 32 at
  once of a 20,000-complaint executive's record or trail were all built at once, 150-164 MB
  at their peak. They are not kept; the same wait and the same refusal apply. Evidence
  bundles take these slots too (`GET /v1/executives/{id}/evidence-bundle`, live or not):
  each holds the whole record with a proof per entry (at 20,000 complaints 3.5-4.5 s and
  about 200 MB at its peak), and the server's request threads built as many at once as
  they were.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from ledger.errors import ReplayBusy
from projections.base import Projection
from projections.events import Bound, EventSource, LogSource, Page
from projections.store import MemoryStore

#: Positions a request beyond an entry's `high` may read to find the entry still serves it.
EXTEND_SCAN = 20_000
#: Notifications per page when building or scanning.
PAGE = 10_000
#: Why a historical report is refused when every slot stays taken.
REPORT_BUSY = (
    "too many historical reads (as_of_position / known_at) are being rebuilt at once on this "
    "server; retry shortly"
)
#: ... and a historical read of one record.
RECORD_BUSY = (
    "too many historical reads (as_of_position / known_at) of records are being rebuilt at "
    "once on this server; retry shortly"
)


def read_types(projections: Sequence[type[Projection]]) -> frozenset[str] | None:
    """The event types these projections read (None: every type), as the runner reads."""
    if any(p.reads_every_event for p in projections):
        return None
    return frozenset().union(*(p.handled for p in projections))


@dataclass
class Entry:
    """A built replay and the requests it serves (see the module docstring)."""

    names: frozenset[str]
    types: frozenset[str] | None
    store: MemoryStore
    low: int
    high: int
    k_min: str | None
    k_max: str | None
    size: int

    def serves(self, names: frozenset[str], stop: int, known_at: str | None) -> bool:
        return self.low <= stop <= self.high and self.covers(names, known_at)

    def covers(self, names: frozenset[str], known_at: str | None) -> bool:
        """Whether it holds these projections and admits what `known_at` admits (at
        positions up to `high`)."""
        if not names <= self.names:
            return False
        if known_at is None:
            return self.k_max is None
        return (self.k_min is None or self.k_min <= known_at) and (
            self.k_max is None or known_at < self.k_max
        )


class _Admitting:
    """A log source that admits events recorded by `known_at` and records what it saw."""

    def __init__(self, source: LogSource, known_at: str | None) -> None:
        self.source = source
        self.known_at = known_at
        self.low = 0
        self.k_min: str | None = None
        self.k_max: str | None = None

    def read(self, after: int, limit: int, types: frozenset[str] | None = None) -> Page:
        page = self.source.read(after, limit, types)
        admitted = []
        for event in page.events:
            recorded_at = event.recorded_at
            if self.known_at is None or recorded_at <= self.known_at:
                admitted.append(event)
                self.low = event.position
                if self.k_min is None or recorded_at > self.k_min:
                    self.k_min = recorded_at
            elif self.k_max is None or recorded_at < self.k_max:
                self.k_max = recorded_at
        return Page(admitted, page.covered)

    def head(self) -> int:
        return self.source.head()


class Replays:
    """Built whole-ledger replays of one ledger, and the slots to build them in."""

    def __init__(
        self,
        entries: int = 4,
        max_bytes: int = 256 * 1024 * 1024,
        builds: int = 1,
        wait_seconds: float = 1.0,
        record_builds: int = 2,
    ) -> None:
        if builds < 1 or record_builds < 1:
            raise ValueError("builds and record_builds must be 1 or more")
        self.max_entries = entries
        self.max_bytes = max_bytes
        self.wait_seconds = wait_seconds
        self._slots = threading.BoundedSemaphore(builds)
        self._record_slots = threading.BoundedSemaphore(record_builds)
        self._lock = threading.Lock()
        self._entries: list[Entry] = []  # least recently used first
        #: Replays built, and requests served from a kept one (for tests and monitoring).
        self.built = 0
        self.hits = 0

    def store(
        self,
        recorder: object,
        projections: Sequence[type[Projection]],
        bound: Bound,
        build: Callable[[EventSource], MemoryStore],
    ) -> MemoryStore:
        """The in-memory store of `projections` replayed to `bound` (its `stop` resolved:
        not beyond the head): a kept one, or one `build(source)` makes from the log."""
        assert bound.stop is not None, "resolve the bound to a position first"
        names = frozenset(p.name for p in projections)
        found = self._find(recorder, names, bound.stop, bound.known_at)
        if found is not None:
            return found
        with self._held(self._slots, REPORT_BUSY):
            found = self._find(recorder, names, bound.stop, bound.known_at)  # built meanwhile
            if found is not None:
                return found
            source = _Admitting(LogSource(recorder, Bound(stop=bound.stop)), bound.known_at)
            store = build(source)
            with self._lock:
                self.built += 1
            # Kept before the slot is released: a request that waited for the slot for the
            # same events then finds it instead of building it again.
            self._keep(
                Entry(
                    names=names,
                    types=read_types(projections),
                    store=store,
                    low=source.low,
                    high=bound.stop,
                    k_min=source.k_min,
                    k_max=source.k_max,
                    size=_size(store),
                )
            )
        return store

    def record_build(self, busy: str = RECORD_BUSY) -> AbstractContextManager[None]:
        """Hold one of the slots for a historical read of one record (an executive's or an
        appraisal's replay, an audit trail as of a point) or an evidence bundle while it is
        built; `ReplayBusy` saying `busy` when none frees up within `wait_seconds`."""
        return self._held(self._record_slots, busy)

    @contextmanager
    def _held(self, slots: threading.BoundedSemaphore, busy: str) -> Iterator[None]:
        """One of `slots` held, or `ReplayBusy` saying `busy` when none frees up within
        `wait_seconds` (a queue would hold the server's request threads: see the module)."""
        if not slots.acquire(timeout=self.wait_seconds):
            raise ReplayBusy(busy)
        try:
            yield
        finally:
            slots.release()

    def _find(
        self, recorder: object, names: frozenset[str], stop: int, known_at: str | None
    ) -> MemoryStore | None:
        with self._lock:
            for entry in reversed(self._entries):
                if entry.serves(names, stop, known_at):
                    self._used(entry)
                    return entry.store
            later = [
                e
                for e in self._entries
                if e.high < stop <= e.high + EXTEND_SCAN and e.covers(names, known_at)
            ]
        for entry in later:
            if self._extend(recorder, entry, stop, known_at) and entry.serves(
                names, stop, known_at
            ):
                with self._lock:
                    self._used(entry)
                return entry.store
        return None

    def _used(self, entry: Entry) -> None:
        """Count a hit and make `entry` the most recently used (the lock is held)."""
        self.hits += 1
        if entry in self._entries:
            self._entries.remove(entry)
            self._entries.append(entry)

    def _extend(self, recorder: object, entry: Entry, stop: int, known_at: str | None) -> bool:
        """Whether `entry` also holds the events up to `stop` a request at `known_at` sees
        (none of its types since `high` admitted); if so, `high` moves to `stop`."""
        high = entry.high
        source = LogSource(recorder, Bound(stop=stop))
        after, k_max = high, entry.k_max
        while True:
            page = source.read(after, PAGE, entry.types)
            if page.covered is None:
                break
            for event in page.events:
                recorded_at = event.recorded_at
                if known_at is None or recorded_at <= known_at:
                    return False
                if k_max is None or recorded_at < k_max:
                    k_max = recorded_at
            after = page.covered
        with self._lock:
            if entry.high != high:
                return False  # another request moved it meanwhile: look again next time
            entry.high, entry.k_max = stop, k_max
        return True

    def _keep(self, entry: Entry) -> None:
        if entry.size > self.max_bytes or self.max_entries < 1:
            return
        with self._lock:
            self._entries.append(entry)
            while len(self._entries) > self.max_entries or (
                sum(e.size for e in self._entries) > self.max_bytes
            ):
                # Dropped, not closed: a request may still be reading it (freed with it).
                self._entries.pop(0)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


def _size(store: MemoryStore) -> int:
    """Bytes the in-memory database holds."""
    with store.transaction(commit=False) as cursor:
        pages = int(cursor.execute("PRAGMA page_count").fetchone()[0])
        page_size = int(cursor.execute("PRAGMA page_size").fetchone()[0])
    return pages * page_size
