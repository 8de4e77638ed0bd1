"""Stored events as the projections see them, and the sources that feed the runner.

An `Event` wraps one notification (position, stream, version, type and the stored bytes) and
decodes lazily, with msgspec, only what is asked for: the entry's scalar fields (actor,
dates, policy: `fields`), its `data` (`data`, or a `view` of the fields a projection reads,
`projections/views.py`). msgspec skips what a decoder does not list (the envelope's hash
and signature, unlisted keys) without building it, which is most of the decoding cost.
Only the actor is also sliced straight out of the bytes, by the audit index's per-event
loop (`ACTOR_PREFIX`: the canonical entry, keys sorted, begins with it).
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from ledger.entry import entry_from_state
from projections.views import EntryFields, View, decode_data, decode_fields, decode_view

#: How every canonical stored state begins: the actor's value follows at once.
ACTOR_PREFIX = b'{"entry":{"actor":"'


class Event(msgspec.Struct, gc=False):
    """One stored event in global order; fields decoded on first use.

    A msgspec Struct rather than a plain class with `__slots__`: a rebuild makes one per
    stored event, and a Struct is built in C (a million in 0.11-0.14 s against 0.25-0.56 s
    with the Python `__init__` it replaced; bench/README.md, projections). `gc=False`: an event
    refers to no container that could refer back to it, so it is never part of a cycle
    and the cyclic collector need not track it. Compared and hashed by identity, as before
    (a Struct would compare its fields): two reads of one stored event are two events.
    """

    position: int
    stream_id: str
    version: int
    type: str
    state: bytes
    #: Decoded on first use (`fields`, `data`, `view`); never passed by callers.
    _fields: EntryFields | None = None
    _data: Any = None
    _view: Any = None

    @classmethod
    def from_notification(cls, n: Any) -> Event:
        return cls(n.id, str(n.originator_id), n.originator_version, n.topic, n.state)

    @property
    def fields(self) -> EntryFields:
        """The entry's scalar fields (decoded once, with a view when one is decoded)."""
        fields = self._fields
        if fields is None:
            fields = self._fields = decode_fields(self.state, self.position)
        return fields

    @property
    def data(self) -> dict[str, Any]:
        """The entry's `data`, parsed once."""
        data = self._data
        if data is None:
            data, fields = decode_data(self.state, self.position)
            self._data = data
            if self._fields is None:
                self._fields = fields
        return data  # type: ignore[no-any-return]

    def view(self, view: builtins.type[View]) -> View:  # `type` is a field here
        """The fields of `data` that `view` lists (`projections/views.py`), decoded once."""
        if type(self._view) is not view:
            found, fields = decode_view(view, self.state, self.position)
            self._view = found
            if self._fields is None:
                self._fields = fields
            return found
        return self._view

    @property
    def actor(self) -> str:
        return self.fields.actor

    @property
    def occurred_on(self) -> str:
        return self.fields.occurred_on

    @property
    def recorded_at(self) -> str:
        return self.fields.recorded_at

    @property
    def submitted_by(self) -> str:
        return self.fields.submitted_by

    @property
    def policy(self) -> str | None:
        return self.fields.policy

    def entry(self) -> dict[str, Any]:
        """The contract's ledger entry (api-contract.md)."""
        return entry_from_state(self.state, self.position)

    def __repr__(self) -> str:
        return f"Event({self.position}, {self.stream_id!r} v{self.version}, {self.type})"

    __eq__ = object.__eq__  # identity, as a plain class (a Struct compares fields)
    __hash__ = object.__hash__


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
            else:
                from psycopg.rows import tuple_row  # PostgreSQL only

                # Plain tuples, and the binary protocol: in text `state` (bytea) travels
                # hex-encoded, twice its size, encoded by the server and decoded here. A
                # million events: 1.4-1.5 s of CPU against 3.5 (bench/README.md, projections).
                cursor.row_factory = tuple_row
                cursor.execute(sql, tuple(params), binary=True)
            rows = cursor.fetchall()
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

    def stream_positions(
        self, stream_ids: Sequence[str], after: int, limit: int, stop: int | None = None
    ) -> list[int]:
        """The positions in (after, stop] of the given streams' events, the first `limit` in
        global order, read from the primary-key index (stream, version) alone: on SQLite a
        covering index (it holds the rowid), so no stored entry is read or sent; on
        PostgreSQL the rows' positions, not their states.

        On SQLite the position is written `+rowid`, which keeps the planner on that index:
        once `ANALYZE` has run it preferred a scan of the table in rowid order from `after`,
        reading every later entry of the ledger for an executive with few of them."""
        column = f"+{self.id_column}" if self.id_column == "rowid" else self.id_column
        where = f"{column} > {self.p}"
        bounds: list[Any] = [after]
        if stop is not None:
            where += f" AND {column} <= {self.p}"
            bounds.append(stop)
        found: list[int] = []
        for chunk in _chunks(sorted(set(stream_ids)), 500):
            marks = ",".join([self.p] * len(chunk))
            sql = (
                f"SELECT {self.id_column} AS id FROM {self.table} "
                f"WHERE originator_id IN ({marks}) AND {where} "
                f"ORDER BY {column} LIMIT {self.p}"
            )
            with self.recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute(sql, (*chunk, *bounds, limit))
                found.extend(int(r["id"]) for r in cursor.fetchall())
        found.sort()
        return found[:limit]

    def first(self, stream_id: str) -> Event | None:
        """The event that started a stream (primary-key lookup)."""
        found = self._select(f"originator_id = {self.p} AND originator_version = 1", (stream_id,))
        return found[0] if found else None

    def last(self, stop: int) -> Event | None:
        """The event at the highest position <= `stop` (None: no event by then)."""
        latest = (
            f"(SELECT MAX({self.id_column}) FROM {self.table} WHERE {self.id_column} <= {self.p})"
        )
        found = self._select(f"{self.id_column} = {latest}", (stop,))
        return found[0] if found else None

    def last_visible(
        self, stop: int, visible: Callable[[str], bool], page: int = 1000
    ) -> Event | None:
        """The event at the highest position <= `stop` whose stream `visible` admits (None:
        no such event by then): positions and stream ids read backwards a page at a time,
        the whole event only for the one found."""
        cursor = stop
        sql = (
            f"SELECT {self.id_column} AS id, originator_id AS stream_id FROM {self.table} "
            f"WHERE {self.id_column} <= {self.p} ORDER BY {self.id_column} DESC LIMIT {self.p}"
        )
        while True:
            with self.recorder.datastore.transaction(commit=False) as cursor_:
                cursor_.execute(sql, (cursor, page))
                rows = [(int(r["id"]), str(r["stream_id"])) for r in cursor_.fetchall()]
            for position, stream_id in rows:
                if visible(stream_id):
                    found = self.by_positions([position])
                    return found[0] if found else None
            if len(rows) < page:
                return None
            cursor = rows[-1][0] - 1

    def by_stream_versions(self, keys: Sequence[tuple[str, int]]) -> list[Event]:
        """The events at these (stream, version) keys that exist (primary-key lookups)."""
        found: list[Event] = []
        for chunk in _chunks(sorted(set(keys)), 250):
            key = f"(originator_id = {self.p} AND originator_version = {self.p})"
            found.extend(
                self._select(" OR ".join([key] * len(chunk)), [x for k in chunk for x in k])
            )
        found.sort(key=lambda e: e.position)
        return found

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
