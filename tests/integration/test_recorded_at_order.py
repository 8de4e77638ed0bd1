"""`recorded_at` never goes back in log order, whatever the server's clock does.

A replay by `known_at` (api-contract.md, "Reads": events with recorded_at <= the timestamp)
is a prefix of the log only if `recorded_at` is non-decreasing in log order; otherwise it
admits a later event and leaves out an earlier one: a state of the ledger that never existed.
The clock here steps back (an NTP correction, a restored VM), within one process and across
a restart, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.application import LedgerApp, Restamp
from ledger.config import LedgerConfig
from ledger.domain.executive import Executive
from ledger.entry import entry_from_state, entry_hash
from ledger.keys import KeyRing, Signer
from ledger.verify import VerifyReport, key_windows, verify_ledger
from ledger.write_gate import write_gate
from projections.events import Bound
from projections.queries import ReadModels
from ses_ledger import cli
from tests.ledger_helpers import plan, point_cli_at, register, review

#: After the test key's `valid_from` (now): entries inside their key's validity.
NOON = datetime(2030, 11, 30, 12, 0, tzinfo=UTC)


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
    back = [
        (a["position"], a["recorded_at"], b["position"], b["recorded_at"])
        for a, b in zip(entries, entries[1:], strict=False)
        if b["recorded_at"] < a["recorded_at"]
    ]
    assert not back, f"recorded_at goes back in log order ({len(back)} times), first: {back[0]}"
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
    assert [e["recorded_at"] for e in entries] == ["2030-11-30T12:00:00.000000Z"] * 3
    # What the command answered is what was stored, re-sealed: hash, signature, chain.
    assert result.entries[-1] == entries[-1]
    assert entries[2]["prev_hash"] == entries[1]["hash"]
    assert app.appraisal("A-2024-E1").head_hash == entries[2]["hash"]
    assert_known_at_replays_are_prefixes(app)
    # Once the clock passes the head again, it is used as it is.
    clock.now = NOON + timedelta(minutes=1)
    review(app, expected_version=2)
    assert stored(app)[-1]["recorded_at"] == "2030-11-30T12:01:00.000000Z"


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
    assert [e["recorded_at"] for e in stored(restarted)][2:] == ["2030-11-30T12:00:00.000000Z"] * 2
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


class LateClock:
    """Reads `first` once (the command's stamp), then `later`: a writer that waited."""

    def __init__(self, first: datetime, later: datetime) -> None:
        self.times = [first]
        self.later = later

    def __call__(self) -> datetime:
        return self.times.pop() if self.times else self.later


def test_a_write_behind_the_head_is_stamped_at_the_head_not_at_the_clock(
    ledger_config: LedgerConfig,
) -> None:
    """Stamped again at the head's recorded_at, the latest time known to be before its
    commit: stamped at the clock's time instead, it ran ahead of every writer still queued
    behind it, each of which was then stamped again in turn (with 32 threads appending, 3,197
    of 3,200 writes re-signed under the write lock, against 696 stamped at the head)."""
    ahead = LedgerApp(ledger_config, clock=SteppingClock(NOON))
    waited = LedgerApp(
        ledger_config,
        clock=LateClock(NOON - timedelta(seconds=5), NOON + timedelta(seconds=10)),
    )
    register(ahead)
    register(waited, "E2")  # stamped 11:59:55, stored after 12:00 while its clock says 12:00:10
    entries = stored(ahead)
    assert entries[1]["recorded_at"] == entries[0]["recorded_at"]
    assert_known_at_replays_are_prefixes(ahead)


# -- what `ses-ledger verify` says of recorded_at ---------------------------------------


def _signer_of(ring: KeyRing, key_id: str) -> Signer:
    private = serialization.load_pem_private_key(
        (ring.dir / f"{key_id}.pem").read_bytes(), password=None
    )
    assert isinstance(private, Ed25519PrivateKey)
    return Signer(key_id, private)


def _verify(app: LedgerApp) -> VerifyReport:
    return verify_ledger(
        app.recorder,
        app.keyring.verifiers(),
        app.config.origin,
        windows=key_windows(app.keyring.validity()),
    )


def test_verify_warns_of_recorded_at_going_back_and_still_passes(
    ledger_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A ledger written before appends were stamped in log order: every entry is authentic,
    so it verifies, but the places where a known_at read is not a prefix are named."""
    clock = SteppingClock(NOON)
    app = LedgerApp(ledger_config, clock=clock)
    register(app)
    monkeypatch.setattr(Restamp, "__call__", lambda self, head: None)  # the old writer
    clock.now = NOON - timedelta(hours=1)
    plan(app)
    register(app, "E2")
    report = _verify(app)
    assert report.ok, report.problem
    assert report.warnings == [
        "recorded_at goes back in log order at 1 position (2): a known_at read there is not "
        "a prefix of the log (written before appends were stamped in log order, or with a "
        "clock stepped back)"
    ]
    point_cli_at(monkeypatch, ledger_config)
    assert cli.main(["verify", "--quiet"]) == 0  # api-contract.md: 0 when everything holds
    out = capsys.readouterr().out
    assert "warning: recorded_at goes back in log order at 1 position (2)" in out
    assert "ledger verified: 3 events" in out


def test_an_event_signed_by_a_retired_key_after_its_retirement_fails_verify(
    ledger_config: LedgerConfig,
) -> None:
    """GET /v1/ledger/keys publishes each key's validity: an entry dated after its key's
    `valid_until` is what a leaked retired key signing entries claimed later looks like."""
    ring = KeyRing(ledger_config.home)
    old_key = LedgerApp(ledger_config).signer.key_id
    ring.rotate(NOON)
    current = LedgerApp(ledger_config, clock=SteppingClock(NOON + timedelta(minutes=1)))
    register(current)
    leaked = LedgerApp(
        ledger_config,
        clock=SteppingClock(NOON + timedelta(days=1)),
        signer=_signer_of(ring, old_key),
    )
    # The forger's own events: signed with the retired key, stored without a restamp.
    executive = Executive.register(
        "E-FORGED",
        name="Pat Example",
        title="Deputy Assistant Secretary",
        pay_plan="ES",
        agency="DOE",
        duty_station="Washington, DC",
        appointment_type="career",
        probationary=False,
        appointed_on=date(2019, 5, 1),
        actor="hr-1",
        submission=leaked.submission("hr-app-1"),
    )
    leaked._seal(executive)
    leaked.save(executive)
    assert verify_ledger(leaked.recorder, ring.verifiers(), ledger_config.origin).ok
    report = _verify(leaked)
    assert not report.ok and report.first_bad_position == 2
    assert report.problem is not None
    assert f"outside the validity of its signing key {old_key}" in report.problem
    assert "2030-11-30T12:00:00Z" in report.problem
    # The audit trail's per-event verification says the same of that entry.
    models = ReadModels(leaked)
    models.catch_up()
    trail = models.audit(actor="hr-1")
    assert [t["verification"]["key_window_ok"] for t in trail] == [True, False]
    assert trail[1]["verification"]["problems"] == ["key_window"]
    assert trail[1]["verification"]["ok"] is False


def test_events_of_a_pre_fix_server_outside_their_key_window_are_a_warning(
    ledger_config: LedgerConfig,
) -> None:
    """Servers before the fix of 2026-11-30 went on signing with a rotated-out key until
    they restarted: those entries are the ledger's own, so they are reported, not failed."""
    ring = KeyRing(ledger_config.home)
    old_key = LedgerApp(ledger_config).signer.key_id
    records = json.loads(ring.index.read_text())
    records[0]["valid_from"] = "2026-11-01T00:00:00.000000Z"
    ring.index.write_text(json.dumps(records))
    ring.rotate(datetime(2026, 11, 15, tzinfo=UTC))
    stale = LedgerApp(
        ledger_config,
        clock=SteppingClock(datetime(2026, 11, 20, tzinfo=UTC)),
        signer=_signer_of(ring, old_key),
    )
    register(stale)
    report = _verify(stale)
    assert report.ok, report.problem
    models = ReadModels(stale)
    models.catch_up()
    (item,) = models.audit(actor="hr-1")
    assert item["verification"]["key_window_ok"] is False  # outside, but not a problem
    assert item["verification"]["ok"] is True and item["verification"]["problems"] == []
    assert report.warnings == [
        "signed outside the signing key's validity window at 1 position (1), all recorded "
        "before 2026-12-01: servers before the fix of 2026-11-30 signed so around a key "
        "rotation (until restarted); from 2026-12-01 on this fails verification"
    ]


def test_keys_rotate_after_a_clock_that_ran_ahead_closes_the_key_at_the_last_event(
    ledger_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The clock ran ahead (to NOON, in 2030) while events were signed, then was set right:
    a key closed at the clock's time would end before events it signed, and verify would
    fail them; `keys rotate` closes it no earlier than the last recorded_at."""
    app = LedgerApp(ledger_config, clock=SteppingClock(NOON))
    register(app)
    old_key = app.signer.key_id
    point_cli_at(monkeypatch, ledger_config)
    assert cli.main(["keys", "rotate"]) == 0
    infos = {k.key_id: k for k in KeyRing(ledger_config.home).public_keys()}
    assert infos[old_key].valid_until == "2030-11-30T12:00:00.000000Z"
    register(LedgerApp(ledger_config), "E2")  # today's clock: stamped at the head
    capsys.readouterr()
    assert cli.main(["verify", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "ledger verified: 2 events" in out and "warning" not in out


def test_a_command_stamped_before_a_rotation_is_not_signed_by_the_new_key_before_its_time(
    ledger_config: LedgerConfig,
) -> None:
    """A running server stamps a command, `keys rotate` starts a new key, then the server
    seals: the entry must not carry a recorded_at before the new key's `valid_from`, or a
    verifier holding entries to key windows fails the ledger's own entry."""
    clock = SteppingClock(NOON)
    app = LedgerApp(ledger_config, clock=clock)
    register(app)
    executive = app.executive("E1")
    clock.now = NOON + timedelta(seconds=1)
    executive.record_complaint(
        forum="EEOC",
        filed_on=date(2024, 5, 1),
        summary="a complaint",
        actor="hr-1",
        submission=app.submission("hr-app-1"),
    )
    new_key = KeyRing(ledger_config.home).rotate(NOON + timedelta(seconds=2))
    clock.now = NOON + timedelta(seconds=3)
    app.store(executive)
    entry = stored(app)[-1]
    assert entry["key_id"] == new_key
    assert entry["recorded_at"] == "2030-11-30T12:00:03.000000Z"
    report = _verify(app)
    assert report.ok and not report.warnings, (report.problem, report.warnings)


def test_concurrent_writers_leave_recorded_at_in_log_order(ledger_config: LedgerConfig) -> None:
    """Threads stamp when their command starts but are stored in commit order (on SQLite in
    shared group commits, under the server's write gate): without stamping again under the
    lock, a writer that stamped first and committed last went back in time."""
    app = LedgerApp(ledger_config)
    app.record_gate = write_gate(app)

    def work(thread: int) -> None:
        for n in range(60):
            register(app, f"E{thread}-{n}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stored(app)) == 360
    assert_known_at_replays_are_prefixes(app)
