"""What `verify` says of `recorded_at`: where it goes back in log order, and events outside
their signing key's validity window; and how key rotations keep current servers inside it.

A replay by `known_at` (api-contract.md, "Reads": events with recorded_at <= the timestamp)
is a prefix of the log only where `recorded_at` is non-decreasing in log order: a clock
stepped back (an NTP correction, a restored VM) breaks that, and `verify` says where.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from ledger.domain.executive import Executive
from ledger.entry import entry_from_state
from ledger.keys import KeyRing, Signer
from ledger.verify import VerifyReport, key_windows, verify_ledger
from projections.queries import ReadModels
from ses_ledger import cli
from tests.ledger_helpers import plan, point_cli_at, register

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


# -- what `ses-ledger verify` says of recorded_at ---------------------------------------


def _signer_of(ring: KeyRing, key_id: str) -> Signer:
    private = serialization.load_pem_private_key(
        (ring.dir / f"{key_id}.pem").read_bytes(), password=None
    )
    assert isinstance(private, Ed25519PrivateKey)
    return Signer(key_id, private)


def _verify(app: LedgerApp) -> VerifyReport:
    """`verify` as run on NOON's day (the tests' clocks run in 2030: on today's, every entry
    would be warned of as recorded ahead of the clock)."""
    return verify_ledger(
        app.recorder,
        app.keyring.verifiers(),
        app.config.origin,
        windows=key_windows(app.keyring.validity()),
        now=NOON,
    )


def test_verify_warns_of_recorded_at_going_back_and_still_passes(
    ledger_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A clock stepped back: every entry is authentic, so the ledger verifies, but the places
    where a known_at read is not a prefix are named."""
    clock = SteppingClock(NOON)
    app = LedgerApp(ledger_config, clock=clock)
    register(app)
    clock.now = NOON - timedelta(hours=1)
    plan(app)
    register(app, "E2")
    report = _verify(app)
    assert report.ok, report.problem
    assert report.warnings == [
        "recorded_at goes back in log order at 1 position (2): a known_at read there is not "
        "a prefix of the log (a clock stepped back, or an append stamped when its command "
        "began and committed after a later-stamped one)"
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
    new_key = KeyRing(ledger_config.home).signer().key_id
    assert infos[new_key].valid_from < "2030"  # opened at the clock's time, for what follows
    register(LedgerApp(ledger_config), "E2")  # today's clock, the new key
    capsys.readouterr()
    assert cli.main(["verify", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "ledger verified: 2 events" in out
    # The clock went back, and verify says so, and of the entry stamped while it ran ahead
    # (verify runs today); no event is outside its key's validity.
    warnings = [line for line in out.splitlines() if line.startswith("warning")]
    assert warnings[0] == (
        "warning: recorded_at goes back in log order at 1 position (2): a known_at read there "
        "is not a prefix of the log (a clock stepped back, or an append stamped when its "
        "command began and committed after a later-stamped one)"
    )
    assert warnings[1].startswith("warning: recorded_at lies after this check's own time (")
    assert warnings[1].endswith(
        ") by more than 5 minutes at 1 position (1): the clock that stamped them ran ahead "
        "(or this machine's is behind), and a known_at read of a moment before their "
        "recorded_at leaves them out"
    )
    assert len(warnings) == 2


def test_keys_rotate_after_a_clock_that_ran_ahead_and_later_writes_closes_at_the_latest(
    ledger_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """As above, but the server went on writing once the clock was set right (as it does):
    the last event's recorded_at is then today's, and a key closed no earlier than that
    still ended before the events it signed while the clock ran ahead, so verify failed
    the ledger's own entries ('a retired key signing entries dated after its retirement').
    The key is closed no earlier than the latest recorded_at it signed."""
    ahead = LedgerApp(ledger_config, clock=SteppingClock(NOON))
    register(ahead)
    old_key = ahead.signer.key_id
    register(LedgerApp(ledger_config), "E2")  # the clock set right; the same key signs
    point_cli_at(monkeypatch, ledger_config)
    assert cli.main(["keys", "rotate"]) == 0
    infos = {k.key_id: k for k in KeyRing(ledger_config.home).public_keys()}
    assert infos[old_key].valid_until == "2030-11-30T12:00:00.000000Z"
    register(LedgerApp(ledger_config), "E3")  # the new key, from the clock's time
    capsys.readouterr()
    assert cli.main(["verify", "--quiet"]) == 0
    assert "ledger verified: 3 events" in capsys.readouterr().out


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


@pytest.mark.parametrize(
    ("ahead", "warned"),
    [(timedelta(minutes=5), False), (timedelta(minutes=5, microseconds=1), True)],
)
def test_verify_warns_of_entries_recorded_ahead_of_its_own_clock(
    ledger_config: LedgerConfig, ahead: timedelta, warned: bool
) -> None:
    """A clock that ran ahead stamps entries in the future: they verify (authentic), but a
    `known_at` read of today leaves them out though the ledger holds them. verify said
    nothing of it; it warns beyond `AHEAD_ALLOWED` (5 minutes of clock difference between
    the server and the verifying machine)."""
    app = LedgerApp(ledger_config, clock=SteppingClock(NOON))
    register(app)
    report = verify_ledger(
        app.recorder,
        app.keyring.verifiers(),
        app.config.origin,
        windows=key_windows(app.keyring.validity()),
        now=NOON - ahead,
    )
    assert report.ok, report.problem
    if warned:
        assert report.warnings == [
            "recorded_at lies after this check's own time (2030-11-30T11:54:59.999999Z) by "
            "more than 5 minutes at 1 position (1): the clock that stamped them ran ahead (or "
            "this machine's is behind), and a known_at read of a moment before their "
            "recorded_at leaves them out"
        ]
    else:
        assert report.warnings == []


def test_a_write_while_keys_rotate_reads_the_ledger_stays_inside_its_keys_window(
    ledger_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`keys rotate` reads every entry for the latest `recorded_at` the old key signed (a
    million-event ledger: seconds). A running server goes on signing with the old key until
    the new one is published: the old key must not be closed at a time taken before that,
    or those writes are recorded after its `valid_until` and `verify` fails the ledger's own
    entries (seen: a PostgreSQL server's entry 3 ms past the window)."""
    point_cli_at(monkeypatch, ledger_config)
    server = LedgerApp(ledger_config)  # real clock, as `keys rotate` uses
    register(server)
    real_latest = cli._latest_recorded_at
    written: list[str] = []

    def a_write_during_the_scan(app: LedgerApp | None, key_ids: set[str]) -> datetime | None:
        latest = real_latest(app, key_ids)
        register(server, f"E{len(written) + 2}")  # the server, meanwhile
        written.append(stored(server)[-1]["key_id"])
        return latest

    monkeypatch.setattr(cli, "_latest_recorded_at", a_write_during_the_scan)
    assert cli.main(["keys", "rotate"]) == 0
    assert len(written) == 1
    register(server, "E9")  # after the rotation: the new key
    capsys.readouterr()
    assert cli.main(["verify", "--quiet"]) == 0, capsys.readouterr()
    assert "ledger verified: 3 events" in capsys.readouterr().out


def test_a_store_failing_after_the_new_key_is_published_closes_the_old_key_and_says_so(
    ledger_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The store is opened before anything is written (a store that cannot be used: exit
    69, the ring untouched); if it fails while the ledger is read, after the new key is
    published, the old key is closed at the clock's time rather than left open beside the
    new one, and the command says so and exits 69."""
    from ledger.errors import StoreUnavailable

    point_cli_at(monkeypatch, ledger_config)
    register(LedgerApp(ledger_config))
    old_key = LedgerApp(ledger_config).signer.key_id

    def fails(app: LedgerApp | None, key_ids: set[str]) -> datetime | None:
        raise StoreUnavailable("the store went away")

    monkeypatch.setattr(cli, "_latest_recorded_at", fails)
    before = datetime.now(UTC)
    assert cli.main(["keys", "rotate"]) == cli.EXIT_STORE
    err = capsys.readouterr().err
    assert "it was closed at the clock's time" in err and "the store went away" in err
    infos = {k.key_id: k for k in KeyRing(ledger_config.home).public_keys()}
    assert set(infos) == {old_key, LedgerApp(ledger_config).signer.key_id} and len(infos) == 2
    closed = infos[old_key].valid_until
    assert closed is not None and datetime.fromisoformat(closed) >= before


def test_an_entry_recorded_before_its_keys_valid_from_is_said_to_be_so(
    ledger_config: LedgerConfig,
) -> None:
    """verify explained an entry dated before its key was issued as "a retired key signing
    entries dated after its retirement"; it says which side of the window it fell on."""
    app = LedgerApp(ledger_config, clock=SteppingClock(datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)))
    register(app)
    report = _verify(app)
    assert not report.ok and report.first_bad_position == 1
    assert report.problem is not None
    assert report.problem.endswith("a key signing entries dated before it was issued"), (
        report.problem
    )
