"""Historical reads (api-contract.md "Reads": `as_of_position` / `known_at`) build only what
they read, and give the same answers as a replay of every projection.

A replay used to build every projection (the audit index and compliance included) from
position 0 for each such request; what a query reads is `projections.queries.QUERY_NEEDS`.
Every answer here is compared with the full rebuild's at the same bound.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from ledger.errors import ReplayBusy
from ledger.keys import KeyRing
from projections import replays as replays_module
from projections.current_ratings import CurrentRatings
from projections.events import Bound, EventLog, EventSource
from projections.queries import PROJECTION_NAMES, QUERY_NEEDS, ReadModels, needs
from projections.replays import Replays
from projections.store import MemoryStore
from ses_ledger.demo import SimulatedClock, run_demo
from tests.integration.test_projections import Clock, Story

AS_OF = date(2025, 12, 31)
#: The day the small stories below are judged at (their ratings are of Nov 2022).
EARLY = date(2023, 6, 30)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LedgerApp]:
    """A demo history (real commands): 12 executives over 4 cycles, on SQLite."""
    tmp: Path = tmp_path_factory.mktemp("replay-cost")
    KeyRing(tmp / "home").init()
    config = LedgerConfig(home=tmp / "home", db_url=f"sqlite:///{tmp / 'ledger.db'}")
    clock = SimulatedClock()
    app = LedgerApp(config, clock=clock)
    run_demo(app, clock, executives=12, years=4, seed=11, batch_per_appraisal=True)
    yield app
    app.close()


def bounds(app: LedgerApp) -> list[dict[str, Any]]:
    """Positions through the history (and past its head), and the `known_at` of some."""
    head = int(app.recorder.max_notification_id() or 0)
    log = EventLog(app.recorder)
    points: list[dict[str, Any]] = [{"position": p} for p in (1, head // 3, head // 2, head)]
    points.append({"position": head + 50})
    for p in (head // 4, (2 * head) // 3):
        last = log.last(p)
        assert last is not None
        points.append({"known_at": last.recorded_at})
    points.append({"known_at": "2199-01-01T00:00:00Z"})
    return points


def executives(app: LedgerApp) -> list[str]:
    return sorted({e.stream_id for e in EventLog(app.recorder).page(0, 100_000) if e.version == 1})


#: query -> how to ask it of a view (whole-ledger queries), for one executive / appraisal
REPORTS: dict[str, Callable[[ReadModels], Any]] = {
    "below_fully_successful": lambda v: v.below_fully_successful(AS_OF),
    "rating_distribution": lambda v: [
        v.rating_distribution(agency, cycle)
        for agency in ("DOE", "DOT")
        for cycle in ("FY2023", "FY2024", "FY2025", "FY2026")
    ],
    "compliance": lambda v: (v.compliance(), v.compliance(as_of=AS_OF)),
}


def per_executive(query: str, view: ReadModels, executive_id: str) -> Any:
    if query == "executive":
        return view.executive(executive_id)
    if query == "ratings":
        return view.ratings(executive_id)
    if query == "removal_history":
        return view.removal_history(executive_id, AS_OF), view.default_as_of()
    ids = view.executive_appraisal_ids(executive_id) if view.projections else []
    if query == "appraisal":
        return [view.appraisal(a) for a in ids]
    return [view.appraisal_events(a) for a in ids]


def test_every_query_reads_only_known_projections() -> None:
    assert set(QUERY_NEEDS) >= {"executive", "ratings", "removal_history", "compliance"}
    for query, names in QUERY_NEEDS.items():
        assert set(names) <= set(PROJECTION_NAMES), query
    assert needs("compliance") == ("current_ratings", "removal_history", "compliance")
    assert needs("executive", "removal_history") == ("current_ratings", "removal_history")
    assert needs("appraisal_events") == ()


@pytest.mark.parametrize("query", sorted(REPORTS))
def test_a_report_replay_builds_only_what_it_reads_with_the_same_answers(
    demo: LedgerApp, query: str
) -> None:
    models = ReadModels(demo)
    answers = []
    for point in bounds(demo):
        full = models.as_of(**point)
        narrow = models.as_of(**point, projections=needs(query))
        assert [p.name for p in narrow.projections] == list(QUERY_NEEDS[query]), point
        assert "audit" not in [p.name for p in narrow.projections]
        assert REPORTS[query](narrow) == REPORTS[query](full), (query, point)
        assert narrow.default_as_of() == full.default_as_of()
        answers.append(REPORTS[query](full))
    assert len({repr(a) for a in answers}) >= 3, "the bounds must give different answers"


def test_an_executive_replay_builds_only_what_it_reads_with_the_same_answers(
    demo: LedgerApp,
) -> None:
    models = ReadModels(demo)
    chosen = executives(demo)
    people = [e for e in chosen if e.startswith("E")][:4]
    assert people
    queries = ["executive", "ratings", "removal_history", "appraisal", "appraisal_events"]
    for point in bounds(demo):
        for executive_id in people:
            full = models.as_of(**point, executive_id=executive_id)
            for query in queries:
                narrow = models.as_of(
                    **point, executive_id=executive_id, projections=needs("executive", query)
                )
                assert per_executive(query, narrow, executive_id) == per_executive(
                    query, full, executive_id
                ), (query, executive_id, point)
    # A read of the log alone builds nothing.
    events_only = models.as_of(position=10, executive_id=people[0], projections=())
    assert events_only.projections == []


def test_a_query_outside_what_was_built_fails_rather_than_answering_empty(
    demo: LedgerApp,
) -> None:
    """A narrowed copy has only the tables it built: a query left out of `QUERY_NEEDS` would
    fail loudly (a 500), not give an empty report."""
    narrow = ReadModels(demo).as_of(position=200, projections=needs("ratings"))
    with pytest.raises(Exception, match="no such table"):
        narrow.compliance()


# -- kept replays (projections.replays) ----------------------------------------------------


def test_kept_replays_give_the_full_rebuilds_answers_and_repeats_do_not_rebuild(
    demo: LedgerApp,
) -> None:
    """Each bound once per set of events: a repeat, and a report that reads fewer
    projections than one already built there, are served without a build."""
    plain = ReadModels(demo)
    kept = ReadModels(demo)
    kept.replays = replays = Replays(entries=64)
    for point in bounds(demo):
        for query in ("compliance", "below_fully_successful", "rating_distribution"):
            expected = REPORTS[query](plain.as_of(**point))
            built = replays.built
            for _ in range(2):
                view = kept.as_of(**point, projections=needs(query))
                assert REPORTS[query](view) == expected, (query, point)
                assert view.default_as_of() == plain.as_of(**point).default_as_of()
            # at most one build per bound (none where an earlier bound had the same
            # events); compliance builds current_ratings too: the other two reuse it
            assert replays.built <= built + (query == "compliance"), (query, point)
    assert replays.built == len(bounds(demo)) - 2  # head, head + 50, 2199: one set
    assert replays.hits == 2 * 3 * len(bounds(demo)) - replays.built


def test_a_bound_is_resolved_to_a_position_before_it_is_kept(demo: LedgerApp) -> None:
    """`known_at` after every event, a position past the head and the head itself are one
    set of events: one build (each answer still dated as its request asks)."""
    head = int(demo.recorder.max_notification_id() or 0)
    kept = ReadModels(demo)
    kept.replays = replays = Replays()
    plain = ReadModels(demo)
    for point in (
        {"position": head},
        {"position": head + 1000},
        {"known_at": "2199-01-01T00:00:00Z"},
    ):
        view = kept.as_of(**point, projections=needs("compliance"))
        full = plain.as_of(**point)
        assert view.compliance() == full.compliance(), point
        assert view.default_as_of() == full.default_as_of()
    assert replays.built == 1
    # ... but a position before the last event is another set
    kept.as_of(position=head - 1, projections=needs("compliance"))
    assert replays.built == 2


def test_a_kept_replay_at_a_past_known_at_serves_it_while_writes_go_on(
    ledger_config: LedgerConfig,
) -> None:
    """New events recorded after `known_at` change nothing it sees: the replay kept for it
    still serves it (after reading only the new events), with the full rebuild's answers;
    a position at the new head is another replay."""
    app = LedgerApp(ledger_config, clock=Clock())
    story = Story(app)
    story.executive("E1")
    story.appraisal("E1", date(2022, 11, 15), 2)
    known_at = app.clock.now.isoformat()  # type: ignore[attr-defined]
    kept = ReadModels(app)
    kept.replays = replays = Replays()
    plain = ReadModels(app)
    first = kept.as_of(known_at=known_at, projections=needs("compliance"))
    assert replays.built == 1
    story.executive("E2")
    story.appraisal("E2", date(2022, 11, 15), 1)
    again = kept.as_of(known_at=known_at, projections=needs("compliance"))
    assert replays.built == 1
    full = plain.as_of(known_at=known_at)
    for view in (first, again):
        assert view.compliance() == full.compliance()
        assert view.below_fully_successful(EARLY) == full.below_fully_successful(EARLY)
    assert again.below_fully_successful(EARLY)["executives"][0]["executive_id"] == "E1"
    now = kept.as_of(
        position=int(app.recorder.max_notification_id() or 0), projections=needs("compliance")
    )
    assert replays.built == 2
    assert len(now.below_fully_successful(EARLY)["executives"]) == 2
    app.close()


def test_recorded_at_out_of_position_order_is_never_served_from_the_wrong_replay(
    sqlite_config: LedgerConfig,
) -> None:
    """`recorded_at` is taken before commit, so a later position can carry an earlier time
    (two writers; a clock set back). A replay kept for one `known_at` serves another only
    if both admit exactly the same events."""
    clock = Clock()
    app = LedgerApp(sqlite_config, clock=clock)
    story = Story(app)
    story.executive("E1")
    story.appraisal("E1", date(2022, 11, 15), 2)
    late = clock.now
    clock.now = datetime(2029, 6, 1, tzinfo=UTC)  # set back: E2's events sort before E1's
    story.executive("E2")
    story.appraisal("E2", date(2022, 11, 15), 1)
    kept = ReadModels(app)
    kept.replays = Replays()
    plain = ReadModels(app)
    moments = [
        datetime(2029, 12, 31, tzinfo=UTC),  # E2's part only
        late - timedelta(seconds=5),  # E2's and some of E1's
        late,  # everything
        datetime(2031, 1, 1, tzinfo=UTC),
    ]
    answers = []
    for _ in range(2):
        for moment in moments:
            view = kept.as_of(known_at=moment.isoformat(), projections=needs("compliance"))
            full = plain.as_of(known_at=moment.isoformat())
            assert view.compliance(as_of=EARLY) == full.compliance(as_of=EARLY), moment
            got = view.below_fully_successful(EARLY)
            assert got == full.below_fully_successful(EARLY), moment
            assert view.executive("E1") == full.executive("E1"), moment
            answers.append(repr((got, view.executive("E1"))))
    assert len(set(answers)) >= 3
    assert kept.replays.hits >= len(moments)  # the second round: all kept
    app.close()


def test_kept_replays_are_bounded_in_number_and_memory(demo: LedgerApp) -> None:
    kept = ReadModels(demo)
    kept.replays = replays = Replays(entries=2)
    for position in (100, 150, 200):
        kept.as_of(position=position, projections=needs("ratings"))
    assert len(replays) == 2
    kept.as_of(position=100, projections=needs("ratings"))  # the oldest was dropped
    assert replays.built == 4
    kept.replays = replays = Replays(max_bytes=0)  # none fits: each request builds
    for _ in range(2):
        kept.as_of(position=100, projections=needs("ratings"))
    assert (len(replays), replays.built) == (0, 2)


def test_builds_beyond_the_limit_wait_briefly_then_are_refused(demo: LedgerApp) -> None:
    """At most `builds` replays are built at once; a request finding no slot waits
    `wait_seconds`, then gets ReplayBusy (the API's 503). Kept replays need no slot."""
    kept = ReadModels(demo)
    kept.replays = replays = Replays(builds=1, wait_seconds=0.05)
    kept.as_of(position=120, projections=needs("ratings"))
    started, release = threading.Event(), threading.Event()

    def blocking(source: EventSource) -> MemoryStore:
        started.set()
        release.wait(10)
        return MemoryStore()

    thread = threading.Thread(
        target=replays.store,
        args=(demo.recorder, [CurrentRatings], Bound(stop=130), blocking),
    )
    thread.start()
    try:
        assert started.wait(10)
        with pytest.raises(ReplayBusy):
            kept.as_of(position=140, projections=needs("ratings"))
        # a kept replay, and one executive's replay, need no slot
        assert kept.as_of(position=120, projections=needs("ratings")).ratings("E00001")
        assert kept.as_of(position=120, executive_id="E00001").ratings("E00001")
    finally:
        release.set()
        thread.join(10)
    kept.as_of(position=140, projections=needs("ratings"))  # a slot again
    assert replays.built == 3


def test_requests_waiting_for_the_same_replay_share_one_build(
    demo: LedgerApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests for the same events at once: the second waits for the slot and is
    then served what the first built, not a second build of it (the replay is kept before
    the slot is released; measuring its size, slowed here, came between)."""
    size = replays_module._size

    def slow_size(store: MemoryStore) -> int:
        time.sleep(0.3)
        return size(store)

    monkeypatch.setattr(replays_module, "_size", slow_size)
    replays = Replays(builds=1, wait_seconds=10)
    calls: list[int] = []
    started = threading.Event()

    def build(source: EventSource) -> MemoryStore:
        calls.append(1)
        started.set()
        time.sleep(0.3)
        return MemoryStore()

    got: list[MemoryStore] = []

    def ask() -> None:
        got.append(replays.store(demo.recorder, [CurrentRatings], Bound(stop=150), build))

    first = threading.Thread(target=ask)
    first.start()
    assert started.wait(10)
    ask()
    first.join(10)
    assert len(calls) == 1 and replays.built == 1
    assert got[0] is got[1]


@pytest.mark.parametrize("page", [1, 2, 7, 1000])
def test_the_last_visible_event_is_found_across_pages(demo: LedgerApp, page: int) -> None:
    """`EventLog.last_visible` (the day a token of one agency's replay stands at,
    `ReadModels.default_as_of(visible)`): the event at the highest position <= stop among
    the streams admitted, read backwards a page at a time, equals the scan of every event."""
    log = EventLog(demo.recorder)
    events = log.page(0, 100_000)
    streams = sorted({e.stream_id for e in events})
    head = events[-1].position
    tests: list[Callable[[str], bool]] = [
        lambda s: True,
        lambda s: False,
        lambda s: s == streams[0],
        lambda s: s == streams[-1],
        lambda s: sum(map(ord, s)) % 3 == 0,
    ]
    for stop in (0, 1, head // 3, head // 2, head, head + 50):
        for visible in tests:
            expected = [e for e in events if e.position <= stop and visible(e.stream_id)]
            found = log.last_visible(stop, visible, page=page)
            if not expected:
                assert found is None
            else:
                assert found is not None and found.position == expected[-1].position
                assert found.recorded_at == expected[-1].recorded_at
