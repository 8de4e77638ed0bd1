"""`recorded_at` never goes back in log order, whatever the server's clock does.

A replay by `known_at` (api-contract.md, "Reads": events with recorded_at <= the timestamp)
is a prefix of the log only if `recorded_at` is non-decreasing in log order; otherwise it
admits a later event and leaves out an earlier one: a state of the ledger that never existed.
The clock here steps back (an NTP correction, a restored VM), within one process and across
a restart, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from ledger.entry import entry_from_state, entry_hash
from ledger.verify import verify_ledger
from projections.events import Bound
from tests.ledger_helpers import plan, register, review

NOON = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class SteppingClock:
    """A clock the test sets, as NTP or a VM restore would."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def stored(app: LedgerApp) -> list[dict]:  # type: ignore[type-arg]
    return [
        entry_from_state(n.state, n.id)
        for n in app.recorder.select_notifications(start=1, limit=10_000)
    ]


def assert_known_at_replays_are_prefixes(app: LedgerApp) -> None:
    entries = stored(app)
    stamps = [e["recorded_at"] for e in entries]
    assert stamps == sorted(stamps), f"recorded_at goes back in log order: {stamps}"
    for entry in entries:
        bound = Bound(known_at=entry["recorded_at"])
        admitted = [e["position"] for e in entries if bound.admits(_Event(e))]
        assert admitted == [e["position"] for e in entries][: len(admitted)], (
            "a known_at replay must be a prefix of the log"
        )
    for e in entries:
        assert e["hash"] == entry_hash(e)
    assert verify_ledger(app.recorder, app.keyring.verifiers(), app.config.origin).ok


class _Event:
    def __init__(self, entry: dict) -> None:  # type: ignore[type-arg]
        self.position = entry["position"]
        self.recorded_at = entry["recorded_at"]


def test_a_clock_stepped_back_in_process_does_not_take_recorded_at_back(
    ledger_config: LedgerConfig,
) -> None:
    clock = SteppingClock(NOON)
    app = LedgerApp(ledger_config, clock=clock)
    register(app)
    clock.now = NOON - timedelta(hours=1)  # NTP steps the clock back an hour
    plan(app)
    clock.now = NOON - timedelta(minutes=30)
    result = review(app)
    entries = stored(app)
    assert [e["recorded_at"] for e in entries] == ["2026-11-30T12:00:00.000000Z"] * 3
    # What the command answered is what was stored, re-sealed: hash, signature, chain.
    assert result.entries[-1] == entries[-1]
    assert entries[2]["prev_hash"] == entries[1]["hash"]
    assert app.appraisal("A-2024-E1").head_hash == entries[2]["hash"]
    assert_known_at_replays_are_prefixes(app)
    # Once the clock passes the head again, it is used as it is.
    clock.now = NOON + timedelta(minutes=1)
    review(app, expected_version=2)
    assert stored(app)[-1]["recorded_at"] == "2026-11-30T12:01:00.000000Z"


def test_a_restart_after_the_clock_stepped_back_reads_the_head_from_the_store(
    ledger_config: LedgerConfig,
) -> None:
    """The last recorded_at comes from the store: a new process (or another worker, or
    another server on the same PostgreSQL) knows nothing of the first one's clock."""
    first = LedgerApp(ledger_config, clock=SteppingClock(NOON))
    register(first)
    plan(first)
    first.close()
    restarted = LedgerApp(ledger_config, clock=SteppingClock(NOON - timedelta(days=1)))
    review(restarted)
    register(restarted, "E2")
    assert [e["recorded_at"] for e in stored(restarted)][2:] == ["2026-11-30T12:00:00.000000Z"] * 2
    assert_known_at_replays_are_prefixes(restarted)


def test_a_writer_that_stamped_first_but_stores_last_is_stamped_again(
    ledger_config: LedgerConfig,
) -> None:
    """Two servers on one store: the one whose clock is behind stores after the other."""
    ahead = LedgerApp(ledger_config, clock=SteppingClock(NOON))
    behind = LedgerApp(ledger_config, clock=SteppingClock(NOON - timedelta(seconds=5)))
    register(behind, "E2")
    register(ahead)
    plan(behind)  # stamped 11:59:55 by its clock, stored after ahead's 12:00
    entries = stored(ahead)
    assert [e["recorded_at"][11:19] for e in entries] == ["11:59:55", "12:00:00", "12:00:00"]
    assert_known_at_replays_are_prefixes(ahead)
