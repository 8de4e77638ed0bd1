"""Group commit (`ledger.group_commit`): writers that queue while one commits share the next
commit; each still succeeds or fails alone, and only after the commit that decides it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from eventsourcing import persistence
from eventsourcing.persistence import StoredEvent

from ledger.application import DuplicateRequest, LedgerApp
from ledger.config import LedgerConfig
from ledger.errors import AlreadyExists
from ledger.group_commit import GroupCommit, Write, _wait
from tests.ledger_helpers import raw, register


class HeldFirstCommit:
    """A commit function whose first call waits until `release` is set, so that writers
    arriving meanwhile queue up behind it."""

    def __init__(self, fail: Callable[[Write], bool] = lambda _w: False) -> None:
        self.batches: list[list[Any]] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail = fail
        self.raise_in_batch: int | None = None

    def __call__(self, batch: list[Write]) -> None:
        self.batches.append([w.stored_events for w in batch])
        if len(self.batches) == 1:
            self.entered.set()
            assert self.release.wait(5)
        if self.raise_in_batch == len(self.batches):
            raise OSError("disk I/O error")
        for i, write in enumerate(batch):
            if self.fail(write):
                write.error = ValueError(f"refused {write.stored_events}")
            else:
                write.ids = [len(self.batches) * 100 + i]


def _run(group: GroupCommit, names: list[str]) -> dict[str, Any]:
    outcomes: dict[str, Any] = {}

    def write(name: str) -> None:
        try:
            outcomes[name] = group.submit([name], {})  # type: ignore[list-item]
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            outcomes[name] = exc

    threads = [threading.Thread(target=write, args=(n,), daemon=True) for n in names]
    for queued, thread in enumerate(threads, 1):
        thread.start()
        _wait_for_queue(group, queued)  # in order: the first leads, the others queue
    return {"threads": threads, "outcomes": outcomes}


def _wait_for_queue(group: GroupCommit, length: int) -> None:
    deadline = time.monotonic() + 10
    while len(group._queue) < length:
        assert time.monotonic() < deadline, f"{len(group._queue)} writes queued, not {length}"
        time.sleep(0.001)


def _finish(run: dict[str, Any]) -> dict[str, Any]:
    for thread in run["threads"]:
        thread.join(5)
        assert not thread.is_alive()
    return dict(run["outcomes"])


def test_writers_queued_behind_a_commit_share_the_next_one() -> None:
    commit = HeldFirstCommit()
    group = GroupCommit(commit)
    run = _run(group, ["a", "b", "c", "d"])
    assert commit.entered.wait(5)
    time.sleep(0.05)
    assert run["outcomes"] == {}  # nobody answered before the commit that decides them
    commit.release.set()
    outcomes = _finish(run)
    assert commit.batches == [[["a"]], [["b"], ["c"], ["d"]]]
    assert outcomes == {"a": [100], "b": [200], "c": [201], "d": [202]}


def test_writes_queued_while_the_leader_waits_for_the_gate_join_its_commit() -> None:
    """The leader takes the write lock before its batch: what queued while another process
    held the lock goes into this commit, not the next."""
    batches: list[list[Any]] = []

    def commit(batch: list[Write]) -> None:
        batches.append([w.stored_events for w in batch])
        for i, write in enumerate(batch):
            write.ids = [i]

    held = threading.Lock()
    held.acquire()  # another process's commit
    group = GroupCommit(commit, gate=held)
    run = _run(group, ["a", "b", "c"])
    time.sleep(0.05)
    assert batches == []
    held.release()
    outcomes = _finish(run)
    assert batches == [[["a"], ["b"], ["c"]]]
    assert outcomes == {"a": [0], "b": [1], "c": [2]}


def test_a_refused_write_fails_alone() -> None:
    commit = HeldFirstCommit(fail=lambda w: w.stored_events == ["c"])  # type: ignore[comparison-overlap]
    group = GroupCommit(commit)
    run = _run(group, ["a", "b", "c", "d"])
    assert commit.entered.wait(5)
    commit.release.set()
    outcomes = _finish(run)
    assert isinstance(outcomes["c"], ValueError)
    assert outcomes["b"] == [200] and outcomes["d"] == [202]


def test_a_failed_commit_fails_its_whole_batch_and_the_next_batch_goes_on() -> None:
    commit = HeldFirstCommit()
    commit.raise_in_batch = 2
    group = GroupCommit(commit)
    run = _run(group, ["a", "b", "c"])
    assert commit.entered.wait(5)
    commit.release.set()
    outcomes = _finish(run)
    assert outcomes["a"] == [100]
    assert isinstance(outcomes["b"], OSError) and isinstance(outcomes["c"], OSError)
    assert outcomes["b"] is not outcomes["c"]  # each thread raises its own instance
    assert group.submit(["e"], {}) == [300]  # type: ignore[list-item]


def test_batches_are_bounded() -> None:
    commit = HeldFirstCommit()
    group = GroupCommit(commit, max_batch=2)
    run = _run(group, ["a", "b", "c", "d", "e"])
    assert commit.entered.wait(5)
    commit.release.set()
    _finish(run)
    assert [len(b) for b in commit.batches] == [1, 2, 2]


class HeldGate:
    """The write gate, held on first entry until `release` is set, so that writers queue
    behind it; counts its entries (one per commit)."""

    def __init__(self) -> None:
        self.entries = 0
        self.lock = threading.Lock()
        self.release = threading.Event()

    def __enter__(self) -> None:
        self.lock.acquire()
        self.entries += 1
        if self.entries == 1:
            assert self.release.wait(10)

    def __exit__(self, *_exc: object) -> None:
        self.lock.release()


def _concurrently(app: LedgerApp, gate: HeldGate, *actions: Callable[[], Any]) -> list[Any]:
    """Run `actions` on threads, each queued for the commit before the next starts; the
    first commit waits for `gate` until all are queued."""
    results: list[Any] = [None] * len(actions)
    group = app.recorder.group

    def run(i: int) -> None:
        try:
            results[i] = actions[i]()
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(len(actions))]
    for queued, thread in enumerate(threads, 1):
        thread.start()
        _wait_for_queue(group, queued)
    gate.release.set()
    for thread in threads:
        thread.join(10)
        assert not thread.is_alive()
    return results


def _registration(
    app: LedgerApp, executive_id: str, idem: tuple[str, str, str] | None = None
) -> Callable[[], Any]:
    return lambda: register(app, executive_id, idempotency=idem)


def _positions(config: LedgerConfig) -> dict[str, int]:
    rows = raw(config, "SELECT originator_id, rowid FROM stored_events")
    return {str(r[0]): int(r[1]) for r in rows}


def test_sqlite_ledger_commands_share_commits_and_conflicts_fail_alone(
    sqlite_config: LedgerConfig,
) -> None:
    """Real commands on SQLite: eight registrations, two of them of the same executive,
    queue behind a held commit and are stored in one. The second registration of E3 alone
    is refused (AlreadyExists), nothing of it is stored, and every other writer is told the
    position its event was stored at."""
    app = LedgerApp(sqlite_config)
    gate = HeldGate()
    app.record_gate = gate
    ids = ["E1", "E2", "E3", "E4", "E3", "E5", "E6", "E7"]
    results = _concurrently(app, gate, *[_registration(app, i) for i in ids])
    assert isinstance(results[4], AlreadyExists)
    assert not any(isinstance(r, Exception) for i, r in enumerate(results) if i != 4)
    assert gate.entries == 1  # one commit (stored again with savepoints after the refusal)
    positions = _positions(sqlite_config)
    assert sorted(positions) == ["E1", "E2", "E3", "E4", "E5", "E6", "E7"]
    for executive_id, result in zip(ids, results, strict=True):
        if not isinstance(result, Exception):
            assert result.entries[0]["position"] == positions[executive_id]
    assert [app.executive(i).version for i in sorted(set(ids))] == [1] * 7
    app.close()


def test_sqlite_a_repeated_idempotency_key_in_one_batch_is_refused_alone(
    sqlite_config: LedgerConfig,
) -> None:
    app = LedgerApp(sqlite_config)
    gate = HeldGate()
    app.record_gate = gate
    key = ("hr-app-1", "k1", "h")
    results = _concurrently(
        app,
        gate,
        _registration(app, "E0"),
        _registration(app, "E1", key),
        _registration(app, "E2", key),
        _registration(app, "E3"),
    )
    assert isinstance(results[2], DuplicateRequest)
    assert gate.entries == 1
    positions = _positions(sqlite_config)
    assert sorted(positions) == ["E0", "E1", "E3"]
    for i in (0, 1, 3):
        assert results[i].entries[0]["position"] == positions[f"E{i}"]
    app.close()


@pytest.mark.parametrize("writers", [1, 6])
def test_positions_follow_commit_order_without_gaps(
    sqlite_config: LedgerConfig, writers: int
) -> None:
    app = LedgerApp(sqlite_config)
    gate = HeldGate()
    app.record_gate = gate
    results = _concurrently(app, gate, *[_registration(app, f"E{i}") for i in range(writers)])
    rows = raw(sqlite_config, "SELECT rowid FROM stored_events ORDER BY rowid")
    assert [r[0] for r in rows] == list(range(1, writers + 1))
    assert [r.entries[0]["position"] for r in results] == list(range(1, writers + 1))
    app.close()


def _stored(stream: str, version: int = 1, state: Any = b"{}") -> StoredEvent:
    return StoredEvent(originator_id=stream, originator_version=version, topic="t", state=state)


def test_sqlite_a_write_refused_part_way_leaves_nothing_of_itself(
    sqlite_config: LedgerConfig,
) -> None:
    """A two-event write whose second event collides is rolled back to its savepoint: its
    first event is not stored either; the writes around it are. A write the store cannot
    take at all (a state it cannot bind) is refused alone too, as eventsourcing's error."""
    app = LedgerApp(sqlite_config)
    recorder = app.recorder
    recorder.insert_events([_stored("B")])
    batch = [
        Write([_stored("A")], {}),
        Write([_stored("C"), _stored("B")], {}),
        Write([_stored("D", state=object())], {}),
        Write([_stored("E")], {}),
    ]
    recorder._commit_batch(batch)
    positions = _positions(sqlite_config)
    assert sorted(positions) == ["A", "B", "E"]
    assert batch[0].ids == [positions["A"]] and batch[3].ids == [positions["E"]]
    assert isinstance(batch[1].error, persistence.IntegrityError) and batch[1].ids is None
    assert isinstance(batch[2].error, persistence.InterfaceError | persistence.ProgrammingError)
    app.close()


def test_a_follower_interrupted_while_waiting_settles_its_write_first() -> None:
    """An interruption (KeyboardInterrupt) while waiting is raised only after the write is
    settled: a follower that left early would strand the writers queued behind it."""

    class Interrupted:
        def __init__(self) -> None:
            self.calls = 0

        def wait(self) -> bool:
            self.calls += 1
            if self.calls == 1:
                raise KeyboardInterrupt
            return True

    event = Interrupted()
    assert isinstance(_wait(event), KeyboardInterrupt)  # type: ignore[arg-type]
    assert event.calls == 2


def test_an_error_leaving_the_gate_after_the_commit_does_not_fail_the_writes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class BrokenExit:
        def __enter__(self) -> None:
            return None

        def __exit__(self, *_exc: object) -> None:
            raise OSError("unlock failed")

    def commit(batch: list[Write]) -> None:
        for write in batch:
            write.ids = [7]

    group = GroupCommit(commit, gate=BrokenExit())
    assert group.submit(["a"], {}) == [7]  # type: ignore[list-item]
    assert "unlock failed" in caplog.text
    assert len(group._queue) == 0
