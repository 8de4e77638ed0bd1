"""Historical reads (api-contract.md "Reads": `as_of_position` / `known_at`) build only what
they read, and give the same answers as a replay of every projection.

A replay used to build every projection (the audit index and compliance included) from
position 0 for each such request; what a query reads is `projections.queries.QUERY_NEEDS`.
Every answer here is compared with the full rebuild's at the same bound.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from ledger.keys import KeyRing
from projections.events import EventLog
from projections.queries import PROJECTION_NAMES, QUERY_NEEDS, ReadModels, needs
from ses_ledger.demo import SimulatedClock, run_demo

AS_OF = date(2025, 12, 31)


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
