"""Group commit (`ledger.group_commit`): writers that queue while one commits share the next
commit; each still succeeds or fails alone, and only after the commit that decides it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from ledger.application import DuplicateRequest, LedgerApp
from ledger.config import LedgerConfig
from ledger.errors import AlreadyExists
from ledger.group_commit import GroupCommit, Write
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

    threads = [threading.Thread(target=write, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
        time.sleep(0.01)  # in order: the first leads, the others queue
    return {"threads": threads, "outcomes": outcomes}


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


class SlowGate:
    """The write gate, held a while on first entry so that writers pile up behind it."""

    def __init__(self) -> None:
        self.entries = 0
        self.lock = threading.Lock()

    def __enter__(self) -> None:
        self.lock.acquire()
        self.entries += 1
        if self.entries == 1:
            time.sleep(0.3)

    def __exit__(self, *_exc: object) -> None:
        self.lock.release()


def _concurrently(*actions: Callable[[], Any]) -> list[Any]:
    results: list[Any] = [None] * len(actions)

    def run(i: int) -> None:
        try:
            results[i] = actions[i]()
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(actions))]
    for thread in threads:
        thread.start()
        time.sleep(0.02)
    for thread in threads:
        thread.join(10)
    return results


def test_sqlite_ledger_commands_share_commits_and_conflicts_fail_alone(
    sqlite_config: LedgerConfig,
) -> None:
    """Real commands on SQLite: eight registrations, two of them of the same executive,
    queue behind a held commit. They share commits; the duplicate alone is refused
    (AlreadyExists, rule of the stream's first version) and nothing of it is stored."""
    app = LedgerApp(sqlite_config)
    gate = SlowGate()
    app.record_gate = gate
    ids = ["E1", "E2", "E3", "E4", "E3", "E5", "E6", "E7"]
    results = _concurrently(*[lambda i=i: register(app, i) for i in ids])
    assert [type(r).__name__ for r in results].count("AlreadyExists") == 1
    assert isinstance(results[4], AlreadyExists)
    assert gate.entries < len(ids)  # fewer commits than writes
    stored = raw(sqlite_config, "SELECT originator_id FROM stored_events ORDER BY rowid")
    assert sorted(r[0] for r in stored) == ["E1", "E2", "E3", "E4", "E5", "E6", "E7"]
    assert [app.executive(i).version for i in sorted(set(ids))] == [1] * 7
    app.close()


def test_sqlite_a_repeated_idempotency_key_in_one_batch_is_refused_alone(
    sqlite_config: LedgerConfig,
) -> None:
    app = LedgerApp(sqlite_config)
    gate = SlowGate()
    app.record_gate = gate
    key = ("hr-app-1", "k1", "h")

    def registration(executive_id: str, idem: tuple[str, str, str] | None) -> Callable[[], Any]:
        def run() -> Any:
            return app.register_executive(
                executive_id,
                name="Pat Example",
                title="Director",
                pay_plan="ES",
                agency="DOE",
                duty_station="Washington, DC",
                appointment_type="career",
                probationary=False,
                appointed_on=date(2019, 5, 1),
                actor="hr-1",
                submitted_by="hr-app-1",
                idempotency=idem,
            )

        return run

    results = _concurrently(
        registration("E0", None), registration("E1", key), registration("E2", key)
    )
    assert not isinstance(results[1], Exception)
    assert isinstance(results[2], DuplicateRequest)
    # E0's leader waited for the gate; E1 and E2 queued meanwhile and joined its commit,
    # which was stored again with savepoints once E2's key was refused.
    assert gate.entries == 1
    stored = raw(sqlite_config, "SELECT originator_id FROM stored_events ORDER BY rowid")
    assert [r[0] for r in stored] == ["E0", "E1"]
    app.close()


@pytest.mark.parametrize("writers", [1, 6])
def test_positions_follow_commit_order_without_gaps(
    sqlite_config: LedgerConfig, writers: int
) -> None:
    app = LedgerApp(sqlite_config)
    app.record_gate = SlowGate()
    _concurrently(*[lambda i=i: register(app, f"E{i}") for i in range(writers)])
    rows = raw(sqlite_config, "SELECT rowid FROM stored_events ORDER BY rowid")
    assert [r[0] for r in rows] == list(range(1, writers + 1))
    app.close()
