"""A page of an audit trail by executive or appraisal reads that page, not the whole record.

An executive's complaints have no limit (rules.md APP-1), and every page of
`/v1/reports/audit-trail?executive_id=...` read and decoded every entry of the executive's
streams (21 MB at its peak and 50-290 ms a page at 20,000 complaints, on the event loop on
SQLite). A page now reads its entries (found by position in the primary-key index) and the
entry before each of them in its stream, for the chain link.

The pages must not change: each one is compared, byte for byte as the API serialises it,
with the trail as it was read before (`_whole_stream_page`, the code this replaced) over a
long record on each backend: `after` paging, limits, other agencies' streams left out,
`as_of_position` / `known_at` bounds, actors, and a ledger tampered with in the middle of a
long stream and at a page boundary (a payload edited, a stored hash edited, an entry
deleted, two entries swapped).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest

from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from projections import audit
from projections.events import Bound, Event, EventLog
from projections.queries import ReadModels
from tests.integration.test_aggregate_cache import complain
from tests.ledger_helpers import events_table, plan, raw, register, review

#: Complaints on E1's record (the long stream), and E2's entries between them.
COMPLAINTS = 120


def _id_column(config: LedgerConfig) -> str:
    return "notification_id" if config.is_postgres else "rowid"


@pytest.fixture
def long_record(
    ledger_config: LedgerConfig, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[LedgerApp, ReadModels]]:
    _check_each_signature_once(monkeypatch)
    app = LedgerApp(ledger_config)
    register(app, "E1")
    plan(app, "A-2024-E1", "E1")
    register(app, "E2", agency="DOT")
    plan(app, "A-2024-E2", "E2")
    for i in range(COMPLAINTS):
        complain(app, "E1", summary=f"complaint {i}")
        if i % 7 == 3:
            complain(app, "E2", summary=f"other {i}")
        if i == COMPLAINTS // 2:
            review(app, "A-2024-E1")  # the appraisal's entry in the middle of the record
    read_models = ReadModels(app)
    read_models.catch_up()
    yield app, read_models
    app.close()


def _check_each_signature_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both trails verify every entry of every page they build, thousands of pages here: an
    Ed25519 verification is a function of the key, the signature and the signed hash, so
    each distinct one is computed once (it was a third of this module's time). An edited
    hash or signature is a new triple, verified afresh."""
    checked: dict[tuple[str, str, str, bytes | None], bool | None] = {}
    signature_ok = audit._signature_ok

    def once(entry: Any, verifiers: Any) -> bool | None:
        if verifiers is None:
            return signature_ok(entry, verifiers)
        key_id = str(entry.get("key_id"))
        key = verifiers.get(key_id)
        raw = None if key is None else key.public_bytes_raw()
        triple = (key_id, str(entry.get("signature")), str(entry.get("hash")), raw)
        if triple not in checked:
            checked[triple] = signature_ok(entry, verifiers)
        return checked[triple]

    monkeypatch.setattr(audit, "_signature_ok", once)


def _whole_stream_page(
    read_models: ReadModels,
    bound: Bound,
    *,
    executive_id: str | None = None,
    appraisal_id: str | None = None,
    actor: str | None = None,
    after: int = 0,
    limit: int | None = None,
    visible: Callable[[str], bool] | None = None,
) -> tuple[list[dict[str, Any]], int | None]:
    """`projections.audit.trail_page` by executive / appraisal as it was: whole streams read
    for every page (predecessors taken from them)."""
    store, log = read_models.store, read_models.log
    wanted = None if limit is None else limit + 1
    streams: set[str] | None = None
    if executive_id is not None:
        streams = set(audit.executive_streams(store, executive_id))
    if appraisal_id is not None:
        streams = {appraisal_id} if streams is None else streams & {appraisal_id}
    assert streams is not None
    fetched = log.by_streams(sorted(streams))
    events = [e for e in fetched if e.position > after]
    if actor is not None:
        events = [e for e in events if e.actor == actor]
    if visible is not None:
        events = [e for e in events if visible(e.stream_id)]
    events = bound.filter(events)[:wanted]
    next_after = None
    if limit is not None and len(events) > limit:
        events = events[:limit]
        next_after = events[-1].position
    earlier = audit._predecessors(log, events, fetched)
    verifiers, windows = read_models.key_list()
    items = audit.verify_events(events, verifiers, earlier, windows)
    return items, next_after


def _page(read_models: ReadModels, bound: Bound, **query: Any) -> Any:
    verifiers, windows = read_models.key_list()
    return audit.trail_page(read_models.store, read_models.log, verifiers, bound, windows, **query)


def _same(read_models: ReadModels, bound: Bound, **query: Any) -> Any:
    """The page, asserted byte-identical (as JSON) to the whole-stream read's."""
    new = _page(read_models, bound, **query)
    old = _whole_stream_page(read_models, bound, **query)
    assert json.dumps(new) == json.dumps(old), (bound, query)
    return new


def _walk(read_models: ReadModels, bound: Bound, limit: int, **query: Any) -> list[Any]:
    """Every page from the start, following `next_after`, each compared."""
    seen: list[Any] = []
    after = 0
    while True:
        items, next_after = _same(read_models, bound, after=after, limit=limit, **query)
        seen += items
        if next_after is None:
            return seen
        assert next_after > after
        after = next_after


def _just_before(recorded_at: str) -> str:
    moment = datetime.fromisoformat(recorded_at.replace("Z", "+00:00")) - timedelta(microseconds=1)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


SELECTORS: list[dict[str, str]] = [
    {"executive_id": "E1"},
    {"appraisal_id": "A-2024-E1"},
    {"executive_id": "E1", "appraisal_id": "A-2024-E1"},
    {"executive_id": "E1", "actor": "E1"},
    {"executive_id": "E1", "actor": "R1"},
    {"executive_id": "E2"},
]
VISIBLE: list[Callable[[str], bool] | None] = [
    None,
    lambda stream_id: stream_id != "A-2024-E1",  # the appraisal another agency's, say
    lambda stream_id: stream_id == "A-2024-E1",
    lambda stream_id: False,
]


def _bounds(read_models: ReadModels) -> list[Bound]:
    trail = read_models.audit(executive_id="E1")
    middle = trail[len(trail) // 2]
    head = int(read_models.app.recorder.max_notification_id())
    e2 = read_models.audit(executive_id="E2")[-1]
    return [
        Bound(),
        Bound(stop=middle["position"]),
        Bound(stop=middle["position"] - 1),
        Bound(stop=e2["position"]),  # a position of someone else's entry
        Bound(stop=head + 10),
        Bound(known_at=middle["recorded_at"]),
        Bound(known_at=_just_before(middle["recorded_at"])),
        Bound(stop=head - 3, known_at=trail[-10]["recorded_at"]),
    ]


def _compare_everything(read_models: ReadModels) -> None:
    head = int(read_models.app.recorder.max_notification_id())
    afters = [1, 2, *range(3, head + 3, 29), head, head + 1]
    for selector in SELECTORS:
        whole = _walk(read_models, Bound(), 1, **selector)  # one entry a page
        assert whole == _page(read_models, Bound(), **selector)[0]
        _walk(read_models, Bound(), 1000, **selector)
        for bound in _bounds(read_models):
            for visible in VISIBLE:
                _walk(read_models, bound, 7, visible=visible, **selector)
                _same(read_models, bound, visible=visible, **selector)  # no limit
                for after in afters:
                    _same(read_models, bound, after=after, limit=5, visible=visible, **selector)


def test_pages_of_a_long_record_are_those_of_a_whole_stream_read(
    long_record: tuple[LedgerApp, ReadModels],
) -> None:
    _app, read_models = long_record
    trail = read_models.audit(executive_id="E1")
    assert len(trail) == 1 + 1 + COMPLAINTS + 1  # registered, plan, complaints, review
    assert all(item["verification"]["ok"] for item in trail)
    _compare_everything(read_models)


def _set_state(config: LedgerConfig, position: int, state: bytes) -> None:
    raw(
        config,
        f"UPDATE {events_table(config)} SET state=? WHERE {_id_column(config)}=?",
        (state, position),
    )


def _state(config: LedgerConfig, position: int) -> bytes:
    found = raw(
        config,
        f"SELECT state FROM {events_table(config)} WHERE {_id_column(config)}=?",
        (position,),
    )
    return bytes(found[0][0])


def test_pages_of_a_tampered_long_record_are_those_of_a_whole_stream_read(
    long_record: tuple[LedgerApp, ReadModels], ledger_config: LedgerConfig
) -> None:
    """Tampered in the middle of E1's stream and at the boundary of pages of 7 (the last
    entry of a page has its stored hash edited: the next page's first entry's link to it
    is checked against the entry read from outside that page)."""
    app, read_models = long_record
    config = ledger_config
    trail = read_models.audit(executive_id="E1")
    complaints = [i for i, e in enumerate(trail) if e["type"] == "ComplaintRecorded"]
    last_of_page = 7 * 7 - 1  # pages of 7 from the start: index 48 ends the seventh
    first_of_page = 7 * 4  # and index 28 begins the fifth
    assert {last_of_page, last_of_page + 1, first_of_page} <= set(complaints)
    # 1. A stored hash edited (its entry's hash fails, the next entry's link fails).
    boundary = trail[last_of_page]
    state = _state(config, boundary["position"])
    _set_state(config, boundary["position"], state.replace(boundary["hash"].encode(), b"0" * 64))
    # 2. A payload edited at the first entry of a page (its hash fails).
    edited = trail[first_of_page]
    state = _state(config, edited["position"])
    _set_state(config, edited["position"], state.replace(b"complaint ", b"COMPLAINT ", 1))
    # 3. An entry deleted in the middle (the next one's predecessor is missing).
    deleted = trail[80]
    table, key = events_table(config), _id_column(config)
    raw(config, f"DELETE FROM {table} WHERE {key}=?", (deleted["position"],))
    # 4. Two entries of the stream swapped (positions no longer follow versions).
    a, b = trail[100]["position"], trail[101]["position"]
    raw(config, f"UPDATE {table} SET {key}=? WHERE {key}=?", (-1, a))
    raw(config, f"UPDATE {table} SET {key}=? WHERE {key}=?", (a, b))
    raw(config, f"UPDATE {table} SET {key}=? WHERE {key}=?", (b, -1))

    now = {e["position"]: e for e in _walk(read_models, Bound(), 7, executive_id="E1")}
    assert now[boundary["position"]]["verification"]["problems"] == ["hash", "signature"]
    assert now[trail[last_of_page + 1]["position"]]["verification"]["problems"] == ["chain"]
    assert now[edited["position"]]["verification"]["problems"] == ["hash"]
    assert deleted["position"] not in now
    assert now[trail[81]["position"]]["verification"]["problems"] == ["chain"]
    assert now[a]["stream_version"] == trail[101]["stream_version"]
    assert sum(not e["verification"]["ok"] for e in now.values()) == 4
    _compare_everything(read_models)
    del app


def test_a_page_reads_its_entries_and_their_predecessors_only(
    long_record: tuple[LedgerApp, ReadModels], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries read from the event table for one page: the page's, the one after it (for
    `next_after`) and each stream's entry before the page. The whole-stream read took every
    entry of the record for each page."""
    _app, read_models = long_record
    read: list[int] = []
    select = EventLog._select

    def counted(self: EventLog, where: str, params: Any) -> list[Event]:
        found = select(self, where, params)
        read.append(len(found))
        return found

    monkeypatch.setattr(EventLog, "_select", counted)
    whole = read_models.audit(executive_id="E1")
    for limit in (1, 10, 50):
        for after in (0, 40, 90):
            read.clear()
            items, _next = read_models.audit_page(executive_id="E1", after=after, limit=limit)
            assert items == [e for e in whole if e["position"] > after][:limit]
            assert sum(read) <= limit + 1 + 2, (limit, after, read)  # 2 streams


def test_the_positions_are_read_from_the_index_once_the_store_is_analysed(
    sqlite_config: LedgerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite, after `ANALYZE` (which a database administrator may run): a page's positions
    are still found in the primary-key index, not by a scan of the table from `after`,
    which reads every later entry of the ledger for an executive with few of them."""
    app = LedgerApp(sqlite_config)
    register(app, "E1")
    register(app, "E2")
    for i in range(200):
        complain(app, "E1" if i % 50 else "E2", summary=f"complaint {i}")
    raw(sqlite_config, "ANALYZE")
    log = EventLog(app.recorder)
    executed: list[tuple[str, tuple[Any, ...]]] = []
    transaction = app.recorder.datastore.transaction

    @contextmanager
    def spied(commit: bool = False) -> Iterator[Any]:
        with transaction(commit=commit) as cursor:
            real = cursor.execute

            def execute(sql: str, params: Any = ()) -> Any:
                executed.append((sql, tuple(params)))
                return real(sql, params)

            cursor.execute = execute
            yield cursor

    monkeypatch.setattr(app.recorder.datastore, "transaction", spied)
    assert len(log.stream_positions(["E2"], 0, 3)) == 3
    monkeypatch.undo()
    sql, params = executed[-1]
    plan = raw(sqlite_config, f"EXPLAIN QUERY PLAN {sql}", params)
    details = " ".join(str(row[-1]) for row in plan)
    assert "COVERING INDEX" in details, details
    app.close()
