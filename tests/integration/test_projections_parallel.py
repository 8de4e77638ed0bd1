"""Rebuilding on several cores (`projections/parallel.py`) and reading only handled types.

A parallel rebuild must leave exactly the state a single-process rebuild leaves (same
digests), on SQLite and PostgreSQL; a group whose projections keep no log-wide index reads
only the event types it handles, and must still end at the head with the same rows.
"""

from __future__ import annotations

import multiprocessing
import threading
from datetime import date

import pytest

from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from ledger.errors import VerificationError
from projections import parallel
from projections.compliance import Compliance
from projections.current_ratings import CurrentRatings
from projections.queries import PROJECTIONS, ReadModels
from projections.removal_history import RemovalHistories
from projections.runner import StopFlag, _types
from tests.integration.test_projections import Clock, Story, history
from tests.ledger_helpers import events_table, raw


@pytest.fixture
def story(ledger_config: LedgerConfig) -> Story:
    story = Story(LedgerApp(ledger_config, clock=Clock()))
    history(story)
    story.appraisal("E1", date(2024, 11, 15), 1)
    return story


def test_groups_balance_the_cost_and_cover_every_projection_once() -> None:
    groups = parallel.plan_groups(PROJECTIONS, 2)
    assert sorted(n for g in groups for n in g) == sorted(p.name for p in PROJECTIONS)
    costs = [sum(p.cost for p in PROJECTIONS if p.name in g) for g in groups]
    assert len(groups) == 2 and max(costs) <= 1.5 * min(costs)
    assert len(parallel.plan_groups(PROJECTIONS, 1)) == 1
    assert len(parallel.plan_groups(PROJECTIONS, 9)) == len(PROJECTIONS)  # never empty groups


def test_only_projections_without_a_log_wide_index_narrow_their_reads() -> None:
    narrowed = _types([Compliance, RemovalHistories])  # type: ignore[list-item]
    assert narrowed == Compliance.handled | RemovalHistories.handled
    assert _types([Compliance, CurrentRatings]) is None  # type: ignore[list-item]


@pytest.mark.slow
def test_a_parallel_rebuild_leaves_the_state_of_a_single_process_rebuild(story: Story) -> None:
    single = ReadModels(story.app)
    head = single.runner.rebuild()
    expected = single.digest()
    parallel_models = ReadModels(story.app)
    seen: list[int] = []
    assert parallel_models.rebuild(jobs=2, progress=seen.append) == head
    assert parallel_models.digest() == expected
    assert seen and seen[-1] == head and seen == sorted(seen)
    assert [s.lag for s in parallel_models.status()] == [0] * len(PROJECTIONS)


def test_narrowed_reads_in_small_batches_give_the_rebuilt_rows(story: Story) -> None:
    models = ReadModels(story.app)
    models.runner.reset()
    names = ["compliance", "removal_history"]
    # Windows of 3 positions: many hold none of the handled types and still move on.
    models.runner.catch_up(names, batch_size=3, flush_every=3)
    assert models.runner.positions()["compliance"] == story.app.recorder.max_notification_id()
    narrowed = models.runner.digest(names)
    fresh = ReadModels(story.app)
    fresh.runner.rebuild()
    assert fresh.runner.digest(names) == narrowed


@pytest.mark.slow
def test_a_failing_group_is_reported_and_the_others_stop(story: Story) -> None:
    models = ReadModels(story.app)

    def here(group: list[str], report: object, flag: StopFlag) -> int:
        return models.runner.rebuild(group, stop=flag)

    with pytest.raises(RuntimeError, match="unknown projection nonsense"):
        parallel.rebuild(story.app.config, here, [["audit"], ["nonsense"]])


@pytest.mark.slow
def test_a_damaged_event_met_by_another_group_is_reported_as_this_process_reports_it(
    story: Story,
) -> None:
    """A stored event cut short by hand, met by a group rebuilt in a spawned process (a
    parallel rebuild is the default on a large log): it is the same VerificationError (with
    its position) that the group rebuilt here raises, which the command line says in one
    line (exit 1, as `--jobs 1` does); it came back as a RuntimeError naming
    'UnreadableEntry', and `ses-ledger projections rebuild` ended in its traceback."""
    config = story.app.config
    models = ReadModels(story.app)
    head = models.runner.catch_up()
    events = models.log.page(0, head, head)
    position = next(e.position for e in events if e.stream_id == "E1" and e.version == 1)
    raw(
        config,
        f"UPDATE {events_table(config)} SET state = substr(state, 1, 40) "
        "WHERE originator_id = 'E1' AND originator_version = 1",
    )

    def here(group: list[str], report: object, flag: StopFlag) -> int:
        return head  # this process's group meets nothing: only the child reads the log

    with pytest.raises(VerificationError, match=rf"^event at position {position}: "):
        parallel.rebuild(config, here, [["audit"], ["current_ratings"]])


@pytest.mark.slow
def test_a_stop_request_reaches_every_group(story: Story) -> None:
    models = ReadModels(story.app)
    head = models.runner.catch_up()
    before = models.digest()
    stop = threading.Event()
    stop.set()
    assert models.rebuild(jobs=2, stop=stop) == head
    # Stopped before the first write: the stored rows and positions are as they were.
    assert set(models.runner.positions().values()) == {head}
    assert models.digest() == before


def test_without_processes_the_rebuild_runs_here(
    story: Story, monkeypatch: pytest.MonkeyPatch
) -> None:
    single = ReadModels(story.app)
    head = single.runner.rebuild()
    expected = single.digest()

    def refuse(self: object) -> None:
        raise OSError("no processes in this sandbox")

    monkeypatch.setattr(multiprocessing.get_context("spawn").Process, "start", refuse)
    models = ReadModels(story.app)
    assert models.rebuild(jobs=2) == head
    assert models.digest() == expected
