"""Stored events as the projections see them, and the sources that feed the runner.

An `Event` wraps one notification (position, stream, version, type and the stored bytes) and
decodes lazily: the stored state is the canonical (RFC 8785) JSON of api-contract.md's entry,
keys sorted, so `actor` is the first field and `occurred_on`, `recorded_at` and
`submitted_by` are the last occurrences of their keys (every key after them is a scalar).
Those are sliced out without parsing the whole entry. `data` is the second field, and
every field after it is a scalar, so `data` is parsed alone: from `","data":` (its first
occurrence: the actor holds no unescaped quote) to the last `,"occurred_on":` (nothing after
the entry's own can hold one). The envelope (hash, signature, ...) is then never parsed,
which is most of the decoding cost of the smaller events. Anything else falls back to
parsing the whole entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ledger.entry import entry_from_state
from projections.store import loads
from projections.views import View
from projections.views import decode as decode_view

#: How every stored state begins: the actor's value follows at once.
ACTOR_PREFIX = b'{"entry":{"actor":"'
_OCCURRED = b',"occurred_on":"'
_RECORDED = b',"recorded_at":"'
_SUBMITTED = b',"submitted_by":"'
_DATA = b'","data":'
_DATA_END = b',"occurred_on":'
_POLICY = b',"policy":'


class Event:
    """One stored event in global order; fields decoded on first use."""

    __slots__ = ("position", "stream_id", "version", "type", "state", "_hashed", "_data", "_view")

    def __init__(self, position: int, stream_id: str, version: int, type_: str, state: bytes):
        self.position = position
        self.stream_id = stream_id
        self.version = version
        self.type = type_
        self.state = state
        self._hashed: dict[str, Any] | None = None
        self._data: dict[str, Any] | None = None
        self._view: Any = None

    @classmethod
    def from_notification(cls, n: Any) -> Event:
        return cls(n.id, str(n.originator_id), n.originator_version, n.topic, n.state)

    @property
    def hashed(self) -> dict[str, Any]:
        """The entry's hashed fields (decoded once; the seal fields are not parsed)."""
        if self._hashed is None:
            # The whole stored object parses faster than slicing out the hashed bytes first.
            value = loads(self.state).get("entry")
            if not isinstance(value, dict):
                raise ValueError(f"event at position {self.position} is not an object")
            self._hashed = value
        return self._hashed

    @property
    def data(self) -> dict[str, Any]:
        """The entry's `data` (parsed once, alone when the layout allows: module docstring)."""
        data = self._data
        if data is None:
            if self._hashed is None:
                data = _slice_data(self.state)
            if data is None:
                data = self.hashed["data"]
            self._data = data
        return data

    def view(self, view: type[View]) -> View:
        """The fields of `data` that `view` lists (`projections/views.py`), decoded once."""
        found = self._view
        if type(found) is not view:
            found = self._view = decode_view(view, self.state)
        return found

    def _field(self, key: str, mark: bytes) -> str:
        if self._hashed is None:
            fast = _slice_string(self.state, mark)
            if fast is not None:
                return fast
        return str(self.hashed[key])

    @property
    def actor(self) -> str:
        return self._field("actor", ACTOR_PREFIX)

    @property
    def occurred_on(self) -> str:
        return self._field("occurred_on", _OCCURRED)

    @property
    def recorded_at(self) -> str:
        return self._field("recorded_at", _RECORDED)

    @property
    def submitted_by(self) -> str:
        return self._field("submitted_by", _SUBMITTED)

    @property
    def policy(self) -> str | None:
        if self._hashed is None:
            state = self.state
            at = state.rfind(_POLICY)  # the entry's own: only scalars follow it
            if at >= 0:
                at += len(_POLICY)
                if state.startswith(b"null", at):
                    return None
                if state.startswith(b'"', at):
                    fast = _string_at(state, at + 1)
                    if fast is not None:
                        return fast
        policy = self.hashed["policy"]
        return None if policy is None else str(policy)

    def entry(self) -> dict[str, Any]:
        """The contract's ledger entry (api-contract.md)."""
        return entry_from_state(self.state, self.position)

    def __repr__(self) -> str:
        return f"Event({self.position}, {self.stream_id!r} v{self.version}, {self.type})"


def _slice_data(state: bytes) -> dict[str, Any] | None:
    """The entry's `data` object parsed on its own (None: not the canonical layout)."""
    if not state.startswith(ACTOR_PREFIX):
        return None
    start = state.find(_DATA, len(ACTOR_PREFIX))
    end = state.rfind(_DATA_END)
    if start < 0 or end < start:
        return None
    try:
        data = loads(state[start + len(_DATA) : end])
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _slice_string(state: bytes, mark: bytes) -> str | None:
    """The plain string value after `mark` (its last occurrence; the first for `actor`).

    None when the value holds an escape: the caller then parses the entry properly.
    """
    if mark is ACTOR_PREFIX:
        at = len(mark) if state.startswith(mark) else -1
    else:
        at = state.rfind(mark)
        at = at + len(mark) if at >= 0 else -1
    if at < 0:
        return None
    return _string_at(state, at)


def _string_at(state: bytes, at: int) -> str | None:
    """The plain string value starting at `at` (None when it holds an escape)."""
    end = state.find(b'"', at)
    if end < 0:
        return None
    chunk = state[at:end]
    return None if b"\\" in chunk else chunk.decode()


@dataclass(frozen=True)
class Page:
    """Events with positions in (after, covered]; `covered` None when nothing was read."""

    events: list[Event]
    covered: int | None


@dataclass(frozen=True)
class Bound:
    """The ledger as it stood: positions <= `stop`, `recorded_at` <= `known_at`."""

    stop: int | None = None
    known_at: str | None = None

    def admits(self, event: Event) -> bool:
        if self.stop is not None and event.position > self.stop:
            return False
        return self.known_at is None or event.recorded_at <= self.known_at

    def filter(self, events: Sequence[Event]) -> list[Event]:
        return [e for e in events if self.admits(e)]


class EventSource(Protocol):
    """Where the runner reads events from, in global order."""

    def read(self, after: int, limit: int, types: frozenset[str] | None = None) -> Page:
        """Events after `after`: at most `limit`; with `types`, only events of those types
        among the next `limit` positions (`covered` is then the window's end)."""
        ...

    def head(self) -> int: ...


class LogSource:
    """The live notification log, in global order, optionally bounded.

    Pages are read with `EventLog.page`, the same query as the recorder's
    `select_notifications` without building a `Notification` per row first (at a million
    events that object alone costs more than the query).
    """

    def __init__(self, recorder: Any, bound: Bound | None = None):
        self.recorder = recorder
        self.bound = bound or Bound()
        self.log = EventLog(recorder)

    def read(self, after: int, limit: int, types: frozenset[str] | None = None) -> Page:
        stop = self.bound.stop
        if stop is not None and after >= stop:
            return Page([], None)
        if types is None:
            events = self.log.page(after, limit, stop)
            if not events:
                return Page([], None)
            covered = events[-1].position
        else:
            # A window of positions, bounded by a head read first: every position up to it
            # is committed (ids are handed out in commit order), so none can appear later.
            head = self.head()
            if after >= head:
                return Page([], None)
            covered = min(after + limit, head)
            events = self.log.page(after, limit, covered, types)
        if self.bound.known_at is not None:
            events = self.bound.filter(events)
        return Page(events, covered)

    def head(self) -> int:
        head = int(self.recorder.max_notification_id() or 0)
        stop = self.bound.stop
        return head if stop is None else min(head, stop)


class ListSource:
    """Events already selected (e.g. one executive's streams), served in global order."""

    def __init__(self, events: Iterable[Event]):
        self.events = sorted(events, key=lambda e: e.position)

    def read(self, after: int, limit: int, types: frozenset[str] | None = None) -> Page:
        chosen = [e for e in self.events if e.position > after][:limit]
        if not chosen:
            return Page([], None)
        covered = chosen[-1].position
        if types is not None:
            chosen = [e for e in chosen if e.type in types]
        return Page(chosen, covered)

    def head(self) -> int:
        return self.events[-1].position if self.events else 0


class EventLog:
    """Reads of the ledger's event table the library's recorder does not offer.

    By stream (with positions, which `select_events` leaves out) and by position, for audit
    trails and per-executive replays. SQLite: `rowid` is the notification id; PostgreSQL:
    `notification_id`, in the datastore's schema.
    """

    def __init__(self, recorder: Any):
        self.recorder = recorder
        dialect = recorder.tables.dialect
        self.p = recorder.tables.p
        table = recorder.events_table_name
        #: PostgreSQL rows come as dicts (the recorder's `dict_row`); SQLite's as sequences.
        self.dict_rows = dialect != "sqlite"
        if dialect == "sqlite":
            self.table = table
            self.id_column = "rowid"
        else:
            self.table = f'"{recorder.datastore.schema}"."{table}"'
            self.id_column = "notification_id"

    def page(
        self,
        after: int,
        limit: int,
        stop: int | None = None,
        types: frozenset[str] | None = None,
    ) -> list[Event]:
        """Up to `limit` events with positions in (after, stop], in global order (only
        `types`, when given)."""
        where = f"{self.id_column} > {self.p}"
        params: list[Any] = [after]
        if stop is not None:
            where += f" AND {self.id_column} <= {self.p}"
            params.append(stop)
        if types is not None:
            where += f" AND topic IN ({', '.join([self.p] * len(types))})"
            params.extend(sorted(types))
        sql = (
            f"SELECT {self.id_column}, originator_id, originator_version, topic, state "
            f"FROM {self.table} WHERE {where} ORDER BY {self.id_column} LIMIT {self.p}"
        )
        params.append(limit)
        with self.recorder.datastore.transaction(commit=False) as cursor:
            raw = getattr(cursor, "sqlite_cursor", None)
            if raw is not None:
                # Plain tuples: the connection's sqlite3.Row factory costs more per row than
                # everything else this read does.
                raw.row_factory = None
            cursor.execute(sql, tuple(params))
            rows = cursor.fetchall()
        if self.dict_rows:
            return [
                Event(
                    r["notification_id"],
                    r["originator_id"],
                    r["originator_version"],
                    r["topic"],
                    bytes(r["state"]),
                )
                for r in rows
            ]
        return [Event(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    def _select(self, where: str, params: Sequence[Any]) -> list[Event]:
        sql = (
            f"SELECT {self.id_column} AS id, originator_id AS stream_id, "
            f"originator_version AS version, topic AS type, state AS state "
            f"FROM {self.table} WHERE {where} ORDER BY {self.id_column}"
        )
        with self.recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(sql, tuple(params))
            rows = cursor.fetchall()
        return [
            Event(
                int(r["id"]), str(r["stream_id"]), int(r["version"]), r["type"], bytes(r["state"])
            )
            for r in rows
        ]

    def by_streams(self, stream_ids: Sequence[str]) -> list[Event]:
        """Every event of the given streams, in global order."""
        found: list[Event] = []
        for chunk in _chunks(sorted(set(stream_ids)), 500):
            marks = ",".join([self.p] * len(chunk))
            found.extend(self._select(f"originator_id IN ({marks})", chunk))
        found.sort(key=lambda e: e.position)
        return found

    def first(self, stream_id: str) -> Event | None:
        """The event that started a stream (primary-key lookup)."""
        found = self._select(f"originator_id = {self.p} AND originator_version = 1", (stream_id,))
        return found[0] if found else None

    def by_positions(self, positions: Sequence[int]) -> list[Event]:
        found: list[Event] = []
        for chunk in _chunks(sorted(set(positions)), 500):
            marks = ",".join([self.p] * len(chunk))
            found.extend(self._select(f"{self.id_column} IN ({marks})", chunk))
        found.sort(key=lambda e: e.position)
        return found


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
