"""Signing keys (mode 0600, rotation keeps old events verifiable) and the demo generator."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from ledger.entry import entry_from_state
from ledger.keys import KeyRing
from ledger.verify import verify_ledger
from ses_ledger.demo import SimulatedClock, run_demo
from tests.ledger_helpers import plan, register, review


def test_keys_init_creates_a_private_key_readable_only_by_its_owner(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path)
    key_id = ring.init()
    assert ring.init() == key_id, "init is idempotent"
    pem = ring.dir / f"{key_id}.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert "PRIVATE" not in repr(ring.signer()) and key_id in repr(ring.signer())
    assert "PRIVATE KEY" not in (ring.dir / "keyring.json").read_text()


def test_rotation_keeps_old_events_verifiable(ledger_config: LedgerConfig) -> None:
    app = LedgerApp(ledger_config)
    register(app)
    plan(app)
    old_key = app.signer.key_id
    new_key = KeyRing(ledger_config.home).rotate()
    assert new_key != old_key
    rotated = LedgerApp(ledger_config)
    review(rotated)
    key_ids = [
        entry_from_state(n.state, n.id)["key_id"]
        for n in rotated.recorder.select_notifications(start=1, limit=100)
    ]
    assert key_ids == [old_key, old_key, new_key]
    infos = {k.key_id: k for k in KeyRing(ledger_config.home).public_keys()}
    assert infos[old_key].valid_until is not None and infos[new_key].valid_until is None
    report = verify_ledger(rotated.recorder, rotated.keyring.verifiers(), ledger_config.origin)
    assert report.ok, report.problem


def test_rotation_closes_the_old_key_only_after_the_new_one_is_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A running server signs with whatever the ring names current when it seals, and the
    event's `recorded_at` was taken before that: the old key's `valid_until` must not come
    before the moment the new key is in the ring, or events sealed in between fall outside
    their key's window."""
    from ledger.entry import format_timestamp

    ring = KeyRing(tmp_path)
    old_key = ring.init()
    published: list[str] = []
    write = KeyRing._write_index

    def spy(self: KeyRing, records: list[dict[str, Any]]) -> None:
        write(self, records)
        if not published and any(r["key_id"] != old_key for r in records):
            published.append(format_timestamp(datetime.now(UTC)))

    monkeypatch.setattr(KeyRing, "_write_index", spy)
    ring.rotate()
    infos = {k.key_id: k for k in ring.public_keys()}
    assert infos[old_key].valid_until is not None
    assert infos[old_key].valid_until >= published[0]
    assert ring.signer().key_id != old_key


def test_a_running_app_signs_with_the_key_a_rotation_starts(ledger_config: LedgerConfig) -> None:
    """api-contract.md "Ledger entry" (signature by the key `key_id` listed at /v1/ledger/keys,
    with its validity): after `keys rotate`, a process already running (a server) must sign
    new events and checkpoints with the new key, not go on with the key the rotation retired
    past the `valid_until` the key list now publishes for it (until a restart; and a
    rotation after a leaked key did not stop its use)."""
    from ledger.checkpoint import verify_note

    app = LedgerApp(ledger_config)
    register(app)
    old_key = app.signer.key_id
    new_key = KeyRing(ledger_config.home).rotate()
    plan(app)
    entries = [
        entry_from_state(n.state, n.id)
        for n in app.recorder.select_notifications(start=1, limit=100)
    ]
    assert [e["key_id"] for e in entries] == [old_key, new_key]
    infos = {k.key_id: k for k in KeyRing(ledger_config.home).public_keys()}
    for entry in entries:  # each recorded inside its key's published window
        key = infos[entry["key_id"]]
        assert key.valid_from <= entry["recorded_at"]
        assert key.valid_until is None or entry["recorded_at"] <= key.valid_until
    app.merkle_log.integrate()
    stored = app.merkle_log.issue_checkpoint(app.signer, ledger_config.origin)
    assert stored is not None
    verifiers = app.keyring.verifiers()
    verify_note(stored.note, ledger_config.origin, [verifiers[new_key]])
    report = verify_ledger(app.recorder, verifiers, ledger_config.origin)
    assert report.ok, report.problem


def _demo_entries(tmp: Path, seed: int, random_ids: bool = False) -> list[dict[str, Any]]:
    home = tmp / "home"
    KeyRing(home).init()
    clock = SimulatedClock()
    app = LedgerApp(LedgerConfig(home, f"sqlite:///{tmp / 'l.db'}"), clock=clock)
    run_demo(app, clock, executives=12, years=3, seed=seed, random_ids=random_ids)
    assert verify_ledger(app.recorder, app.keyring.verifiers(), app.config.origin).ok
    return [
        entry_from_state(n.state, n.id)
        for n in app.recorder.select_notifications(start=1, limit=100_000)
    ]


def _demo_hashes(tmp: Path, seed: int) -> tuple[list[str], Counter[str]]:
    entries = _demo_entries(tmp, seed)
    return [e["hash"] for e in entries], Counter(e["type"] for e in entries)


def test_demo_same_seed_same_history(tmp_path: Path) -> None:
    first, types = _demo_hashes(tmp_path / "a", seed=7)
    second, _ = _demo_hashes(tmp_path / "b", seed=7)
    other, _ = _demo_hashes(tmp_path / "c", seed=8)
    assert first == second, "same seed: the same events, byte for byte (keys differ, hashes not)"
    assert first != other
    for kind in (
        "ExecutiveRegistered",
        "ReviewBoardRegistered",
        "PlanSet",
        "ProgressReviewed",
        "InitialRatingIssued",
        "PRBRecommended",
        "FinalRatingAssigned",
    ):
        assert types[kind] > 0, kind
    # Removed executives get no further appraisals; everyone else is rated every cycle.
    assert 12 * 2 < types["FinalRatingAssigned"] <= 12 * 3


def test_demo_random_ids_change_only_the_ids(tmp_path: Path) -> None:
    """The benchmark's `--random-ids` history: executives get random UUIDs, the same ones
    for the same seed, and every event is otherwise what the numbered history holds."""
    numbered = _demo_entries(tmp_path / "a", seed=7)
    random_ids = _demo_entries(tmp_path / "b", seed=7, random_ids=True)
    again = _demo_entries(tmp_path / "c", seed=7, random_ids=True)
    executives = [e["stream_id"] for e in random_ids if e["type"] == "ExecutiveRegistered"]
    assert len(executives) == 12
    assert all(uuid.UUID(x.removeprefix("E-")).version == 4 for x in executives)
    assert executives != sorted(executives), "not in key order"
    assert [e["hash"] for e in again] == [e["hash"] for e in random_ids]
    assert [(e["type"], e["occurred_on"]) for e in numbered] == [
        (e["type"], e["occurred_on"]) for e in random_ids
    ]
    assert [e["data"].get("level") for e in numbered] == [
        e["data"].get("level") for e in random_ids
    ]


def test_no_demo_event_is_dated_after_the_day_it_was_recorded(tmp_path: Path) -> None:
    """A demo is a history as it was recorded: each entry's `occurred_on` (its body's own
    date, api-contract.md "Ledger entry") on or before the day of its `recorded_at`. The
    FY2026 rating cap waiver was granted on 2026-09-01 but recorded months earlier."""
    entries = _demo_entries(tmp_path, seed=7)
    assert any(e["type"] == "RatingCapWaiverGranted" for e in entries)
    ahead = [
        (e["position"], e["type"], e["occurred_on"], e["recorded_at"])
        for e in entries
        if e["occurred_on"] > e["recorded_at"][:10]
    ]
    assert ahead == [], ahead


def test_cli_keys_demo_verify(tmp_path: Path) -> None:
    env = {**os.environ, "SES_LEDGER_HOME": str(tmp_path / "home")}
    env.pop("SES_LEDGER_DB", None)
    cli = [sys.executable, "-m", "ses_ledger.cli"]
    # no `keys init` first: the demo makes its own key, valid from before its history
    demo = subprocess.run(
        [*cli, "demo", "--executives", "8", "--years", "2", "--seed", "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stderr
    assert "creating the ledger signing key" in demo.stdout
    assert "final ratings:" in demo.stdout and "events written:" in demo.stdout
    verify = subprocess.run([*cli, "verify"], env=env, capture_output=True, text=True)
    assert verify.returncode == 0 and "ledger verified" in verify.stdout
    assert "warning" not in verify.stdout
    init = subprocess.run([*cli, "keys", "init"], env=env, capture_output=True, text=True)
    assert init.returncode == 0 and "existing signing key" in init.stdout
    helptext = subprocess.run([*cli, "--help"], env=env, capture_output=True, text=True)
    assert "demo" in helptext.stdout and "verify" in helptext.stdout


def test_cli_keys_rotate_and_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ses_ledger import cli

    monkeypatch.setenv("SES_LEDGER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SES_LEDGER_DB", raising=False)
    assert cli.main(["demo", "--executives", "2", "--years", "1"]) == 0  # makes the key
    (first,) = [k.key_id for k in KeyRing(tmp_path / "home").public_keys()]
    assert cli.main(["keys", "rotate"]) == 0
    rotated = capsys.readouterr().out
    second = rotated.split("new signing key ")[1].split(";")[0]
    assert second != first and "earlier public keys are kept" in rotated
    assert cli.main(["keys", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in listed] == [first, second]
    assert listed[0].split()[-1] != "current" and listed[1].endswith(".. current")
    register(LedgerApp(LedgerConfig.from_env()), "E-AFTER-ROTATION")
    assert cli.main(["verify", "--quiet"]) == 0  # events signed by both keys verify
    assert "ledger verified" in capsys.readouterr().out
    app = LedgerApp(LedgerConfig.from_env())
    key_ids = {
        entry_from_state(n.state, n.id)["key_id"]
        for n in app.recorder.select_notifications(start=1, limit=100_000)
    }
    assert key_ids == {first, second}


def test_the_demo_records_nothing_ahead_of_the_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`ses-ledger demo` tells its FY2026 cycle up to now: its final ratings fell due in
    December 2026 and January 2027 and were recorded then, ahead of the real clock. A
    server's writes after it then went back in `recorded_at`, and after `keys rotate` (which
    closes the old key at the last entry's `recorded_at`) `verify` failed on the demo's
    entries signed by the old key after that moment. Now the steps not yet due are left
    undone, the appraisals in progress, and that sequence verifies."""
    from ses_ledger import cli

    monkeypatch.setenv("SES_LEDGER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SES_LEDGER_DB", raising=False)
    before = datetime.now(UTC)
    assert cli.main(["demo", "--executives", "12", "--years", "2"]) == 0
    capsys.readouterr()
    app = LedgerApp(LedgerConfig.from_env())
    stamps = [
        entry_from_state(n.state, n.id)["recorded_at"]
        for n in app.recorder.select_notifications(start=1, limit=100_000)
    ]
    latest = max(stamps)
    assert datetime.fromisoformat(latest) <= datetime.now(UTC), latest
    if before.date() < datetime(2027, 2, 1, tzinfo=UTC).date():
        # FY2026's story runs into 2027, so on such a day part of it is not due yet
        assert latest[:10] <= before.date().isoformat()
    register(app, "E-AFTER-DEMO")  # a write at the real clock's time
    assert cli.main(["keys", "rotate"]) == 0
    register(LedgerApp(LedgerConfig.from_env()), "E-AFTER-ROTATION")
    capsys.readouterr()
    assert cli.main(["verify"]) == 0, capsys.readouterr()
    assert "ledger verified" in capsys.readouterr().out


def test_the_demo_writes_only_into_an_empty_ledger(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing written can be removed (RET-1), so synthetic appraisals must never land in a
    ledger that holds anything, a real one least of all."""
    from ses_ledger import cli

    home = tmp_path / "home"
    monkeypatch.setenv("SES_LEDGER_HOME", str(home))
    monkeypatch.delenv("SES_LEDGER_DB", raising=False)
    KeyRing(home).init()
    register(LedgerApp(LedgerConfig.from_env()), "E-REAL")
    assert cli.main(["demo", "--executives", "2", "--years", "1", "--random-ids"]) == 2
    refused = capsys.readouterr()
    assert "already holds 1 events" in refused.err and "writes only into an empty" in refused.err
    assert "writing a synthetic history" not in refused.out
    assert LedgerApp(LedgerConfig.from_env()).recorder.max_notification_id() == 1


def test_an_interrupted_demo_says_what_it_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Ctrl-C during `demo` (minutes for a large history) printed only "ses-ledger:
    interrupted" (130), while the ledger kept the part already stored, for good (RET-1): the
    next `demo` then refused it as a ledger that "already holds N events". The interruption
    now says so itself: how many events stay, that they verify, and that a new home is
    needed to run the demo again. Exit status 130, as `ses-ledger --help` documents."""
    from ses_ledger import cli
    from ses_ledger.progress import Progress

    home = tmp_path / "home"
    monkeypatch.setenv("SES_LEDGER_HOME", str(home))
    monkeypatch.delenv("SES_LEDGER_DB", raising=False)
    calls = 0

    def ctrl_c_at_the_40th_event(self: Progress, n: int = 1) -> None:
        nonlocal calls
        calls += 1
        if calls == 40:
            raise KeyboardInterrupt

    monkeypatch.setattr(Progress, "update", ctrl_c_at_the_40th_event)
    assert cli.main(["demo", "--executives", "5", "--years", "2"]) == 130
    printed = capsys.readouterr()
    app = LedgerApp(LedgerConfig.from_env())
    held = int(app.recorder.max_notification_id() or 0)
    assert 40 <= held < 100
    assert printed.err.count("\n") == 1, printed.err
    assert printed.err.startswith(
        f"ses-ledger demo: interrupted: sqlite:///{home / 'ledger.db'} now holds {held} events"
    )
    assert "choose a new SES_LEDGER_HOME" in printed.err
    assert "checkpoint issued" not in printed.out and "done in" not in printed.out
    report = verify_ledger(app.recorder, app.keyring.verifiers(), app.config.origin)
    assert report.ok and report.checked == held, report.problem


def test_key_ring_faults_are_named(tmp_path: Path) -> None:
    """What an operator sees for each way the key ring can be broken (SigningKeyError)."""
    from ledger.errors import SigningKeyError

    ring = KeyRing(tmp_path / "home")
    with pytest.raises(
        SigningKeyError, match="no key ring at .*keys init.*restored from its backup"
    ):
        ring.signer()
    ring.init()
    key_id = ring.signer().key_id
    index = ring.index.read_text()
    ring.index.write_text("{not json")
    # It said only "cannot read ...keyring.json: JSONDecodeError": where the file breaks now.
    with pytest.raises(
        SigningKeyError, match=r"cannot read .*keyring.json: it is not JSON \(Expecting .* line 1"
    ):
        ring.verifiers()
    ring.index.unlink()
    ring.index.mkdir()
    with pytest.raises(SigningKeyError, match="cannot read .*keyring.json: Is a directory$"):
        ring.verifiers()
    ring.index.rmdir()
    ring.index.write_text("{}")
    with pytest.raises(SigningKeyError, match="is not a key list"):
        ring.signer()
    ring.index.write_text(index)
    private = ring.dir / f"{key_id}.pem"
    pem = private.read_bytes()
    private.unlink()
    with pytest.raises(SigningKeyError, match=f"private key for {key_id}: FileNotFoundError"):
        ring.signer()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PrivateKey

    private.write_bytes(
        Ed448PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(SigningKeyError, match=f"key {key_id} is not an Ed25519 key"):
        ring.signer()
    private.write_bytes(pem)
    assert ring.signer().key_id == key_id
    ring.rotate()
    records = json.loads(ring.index.read_text())
    ring.index.write_text(json.dumps([{**r, "valid_until": "2030-01-01"} for r in records]))
    with pytest.raises(SigningKeyError, match="no current signing key: run `ses-ledger keys"):
        ring.signer()


@pytest.mark.parametrize("fault", ["missing", "unreadable"])
def test_serve_refuses_a_broken_key_ring_before_it_says_it_serves(
    tmp_path: Path, fault: str
) -> None:
    home = tmp_path / "home"
    if fault == "unreadable":
        KeyRing(home).init()
        KeyRing(home).index.write_text("garbage")
    env = {**os.environ, "SES_LEDGER_HOME": str(home)}
    env.pop("SES_LEDGER_DB", None)
    served = subprocess.run(
        [sys.executable, "-m", "ses_ledger.cli", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert served.returncode == 2, served.stderr
    assert "serving" not in served.stderr
    expected = "keys init" if fault == "missing" else "cannot read"
    assert served.stderr.startswith("ses-ledger serve: ") and expected in served.stderr


def test_cli_demo_random_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ses_ledger import cli

    monkeypatch.setenv("SES_LEDGER_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SES_LEDGER_DB", raising=False)
    assert cli.main(["demo", "--executives", "3", "--years", "1", "--random-ids"]) == 0
    capsys.readouterr()
    app = LedgerApp(LedgerConfig.from_env())
    registered = [
        n.originator_id
        for n in app.recorder.select_notifications(start=1, limit=1000)
        if n.topic == "ExecutiveRegistered"
    ]
    assert len(registered) == 3
    assert all(uuid.UUID(str(e).removeprefix("E-")) for e in registered)


def test_the_demo_key_is_valid_from_before_its_backdated_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo records events at past business dates; a key it makes itself must not be
    valid only from today, or a verifier holding entries to key windows would reject them."""
    from ses_ledger import cli

    home = tmp_path / "home"
    monkeypatch.setenv("SES_LEDGER_HOME", str(home))
    monkeypatch.delenv("SES_LEDGER_DB", raising=False)
    assert cli.main(["demo", "--executives", "2", "--years", "1"]) == 0
    capsys.readouterr()
    (key,) = KeyRing(home).public_keys()
    app = LedgerApp(LedgerConfig.from_env())
    recorded = [
        entry_from_state(n.state, n.id)["recorded_at"]
        for n in app.recorder.select_notifications(start=1, limit=1000)
    ]
    assert recorded and all(key.valid_from <= r for r in recorded)


def test_the_demo_keeps_the_rules(sqlite_config: LedgerConfig) -> None:
    """The demo's commands are refused by no rule: a refusal would bend its history away
    from what its seed should give (a probationer's removal once asked for a hearing, which
    REM-7 refuses, so the removal was never recorded). The store does not matter here."""
    KeyRing(sqlite_config.home).init()
    clock = SimulatedClock()
    app = LedgerApp(sqlite_config, clock=clock)
    summary = run_demo(app, clock, executives=300, years=5, seed=2025, batch_per_appraisal=True)
    assert summary.rejected == {}
    assert sum(summary.personnel_actions.values()) > 0


def test_the_demo_refuses_a_key_made_after_the_history_it_would_sign(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/api.md runs `ses-ledger keys init` once; README then shows `ses-ledger demo`.
    The demo stamps its events with their past business days, so a key made by `keys init`
    (valid from now) signed them all before its validity began: `verify` warned of 1,878
    entries "signed outside the signing key's validity window" as if servers before the fix
    of 2026-11-30 had signed them, and from 2026-12-02 on the demo's entries of Dec 1 and
    later would fail it. The demo now refuses that key, before anything is written."""
    from ses_ledger import cli

    home = tmp_path / "home"
    monkeypatch.setenv("SES_LEDGER_HOME", str(home))
    monkeypatch.delenv("SES_LEDGER_DB", raising=False)
    assert cli.main(["keys", "init"]) == 0
    (key,) = KeyRing(home).public_keys()
    capsys.readouterr()
    assert cli.main(["demo", "--executives", "2", "--years", "1"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert f"signing key {key.key_id} is valid from {key.valid_from}" in err
    assert "choose a new SES_LEDGER_HOME" in err
    app = LedgerApp(LedgerConfig.from_env())
    assert (app.recorder.max_notification_id() or 0) == 0
    assert KeyRing(home).public_keys() == [key]
    # a home without keys: the demo makes its own, valid from before its history
    monkeypatch.setenv("SES_LEDGER_HOME", str(tmp_path / "demo-home"))
    assert cli.main(["demo", "--executives", "2", "--years", "1"]) == 0
    capsys.readouterr()
    assert cli.main(["verify", "--quiet"]) == 0
    assert "warning" not in capsys.readouterr().out
