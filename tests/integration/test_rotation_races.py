"""Key rotations racing the writes of a running server, and each other.

Each test holds a race open at its window (monkeypatching there) and then asks `verify`,
or the key ring itself, whether the ledger's own evidence still holds.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ledger import bundle as bundle_module
from ledger import verify as verify_module
from ledger.application import LedgerApp
from ledger.backup import backup
from ledger.checkpoint import CheckpointError, verify_note
from ledger.config import TOKEN_KEY_FILE, LedgerConfig
from ledger.domain.base import Submission
from ledger.entry import entry_from_state, parse_timestamp
from ledger.errors import SigningKeyError
from ledger.keys import KeyRing, Signer
from ledger.log import MerkleLog
from ledger.restore import restore
from ledger.witness import http_fetch, witness
from ses_ledger import cli
from tests.ledger_helpers import point_cli_at, register


def stored(app: LedgerApp) -> list[dict[str, Any]]:
    return [
        entry_from_state(n.state, n.id)
        for n in app.recorder.select_notifications(start=1, limit=10_000)
    ]


def _verified(capsys: pytest.CaptureFixture[str], events: int) -> None:
    capsys.readouterr()
    assert cli.main(["verify", "--quiet"]) == 0, capsys.readouterr()
    assert f"ledger verified: {events} events" in capsys.readouterr().out


def test_a_command_sealed_with_the_old_key_while_another_thread_takes_the_new_one_up(
    ledger_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A server's threads share one `LedgerApp`. One thread seals with the key it looked up
    (the old one); before it reads when the process took up a new key, `keys rotate` closes
    the old key and another thread's command takes the new one up. The first thread must not
    stamp its events at that take-up (after the old key's `valid_until`) and then sign them
    with the old key: `verify` failed them as a retired key signing after its retirement."""
    point_cli_at(monkeypatch, ledger_config)
    server = LedgerApp(ledger_config)  # real clock, as `keys rotate` uses
    register(server)
    real: Callable[[LedgerApp], Signer] = LedgerApp.signer.fget  # type: ignore[attr-defined,assignment]
    rotated: list[str] = []

    def looked_up_then_rotated(app: LedgerApp) -> Signer:
        signer = real(app)
        if app is server and not rotated:
            rotated.append(signer.key_id)
            assert cli.main(["keys", "rotate"]) == 0
            time.sleep(0.005)
            real(app)  # another thread's command, meanwhile: it takes the new key up
        return signer

    monkeypatch.setattr(LedgerApp, "signer", property(looked_up_then_rotated))
    register(server, "E2")
    monkeypatch.undo()
    point_cli_at(monkeypatch, ledger_config)
    entries = stored(server)
    assert entries[-1]["key_id"] == rotated[0]  # sealed with the key it looked up, the old one
    register(server, "E3")  # the new key
    assert stored(server)[-1]["key_id"] != rotated[0]
    server.close()
    _verified(capsys, 3)


def test_a_first_write_stamped_before_a_rotation_and_sealed_after_it(
    ledger_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A process (a server's worker just started, a command line write) stamps its first
    command, then `keys rotate` runs, then the command is sealed: the process took no key up
    before, so it took the new one up without noting when, and sealed the event with the new
    key at its stamp, before the new key's `valid_from`: `verify` failed it."""
    point_cli_at(monkeypatch, ledger_config)
    setup = LedgerApp(ledger_config)
    register(setup)
    setup.close()
    fresh = LedgerApp(ledger_config)
    real_submission = LedgerApp.submission

    def stamped_then_rotated(app: LedgerApp, submitted_by: str) -> Submission:
        submission = real_submission(app, submitted_by)
        time.sleep(0.005)
        assert cli.main(["keys", "rotate"]) == 0
        return submission

    monkeypatch.setattr(LedgerApp, "submission", stamped_then_rotated)
    register(fresh, "E2")
    monkeypatch.undo()
    point_cli_at(monkeypatch, ledger_config)
    first, second = stored(fresh)
    assert first["key_id"] != second["key_id"]  # the first write was sealed by the new key
    fresh.close()
    _verified(capsys, 2)


def test_two_key_rotations_at_once_leave_one_open_key_and_lose_none(
    ledger_config: LedgerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `keys rotate` at once (two operators, a cron job and a person) each read the key
    ring, add their key and wrote the whole ring back: the one that wrote last dropped the
    other's key from `keyring.json`, though running servers had taken it up and signed with
    it (`verify`: "signed with unknown key"), and its `.pem` lay there unlisted."""
    point_cli_at(monkeypatch, ledger_config)
    ring = KeyRing(ledger_config.home)
    real_new_key = KeyRing._new_key
    other: list[threading.Thread] = []
    errors: list[BaseException] = []

    def second_rotation() -> None:
        try:
            KeyRing(ledger_config.home).rotate()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    def new_key_while_another_rotates(self: KeyRing, now: Any) -> dict[str, Any]:
        record = real_new_key(self, now)
        if not other:
            other.append(threading.Thread(target=second_rotation))
            other[0].start()
            other[0].join(timeout=1.0)  # done, unless it waits for this rotation
        return record

    monkeypatch.setattr(KeyRing, "_new_key", new_key_while_another_rotates)
    ring.rotate()
    other[0].join(timeout=30)
    assert not other[0].is_alive() and not errors
    keys = ring.public_keys()
    assert len(keys) == 3  # the first key and both rotations' keys
    assert [k.key_id for k in keys if k.valid_until is None] == [keys[-1].key_id]
    listed = {k.key_id for k in keys}
    assert {p.stem for p in ring.dir.glob("*.pem")} == listed
    for earlier, later in zip(keys, keys[1:], strict=False):
        assert earlier.valid_until is not None and earlier.valid_until >= later.valid_from


def test_a_backup_with_secrets_taken_during_a_rotation_holds_every_key_its_ring_names(
    sqlite_config: LedgerConfig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """`backup --with-secrets` listed the private keys, then copied the key ring: a rotation
    in between left a backup whose ring names a current key it holds no private key of (a
    home restored from it cannot sign: "cannot load the private key")."""
    app = LedgerApp(sqlite_config)
    register(app)
    app.close()
    real_is_file = Path.is_file
    other: list[threading.Thread] = []

    def rotation_once_the_keys_are_listed(path: Path) -> bool:
        if path.name == TOKEN_KEY_FILE and not other:  # asked after the keys are listed
            other.append(threading.Thread(target=KeyRing(sqlite_config.home).rotate))
            other[0].start()
            other[0].join(timeout=1.0)  # done, unless it waits for the backup
        return real_is_file(path)

    monkeypatch.setattr(Path, "is_file", rotation_once_the_keys_are_listed)
    out = tmp_path / "copy"
    backup(sqlite_config, out, with_secrets=True)
    other[0].join(timeout=30)
    monkeypatch.undo()
    assert not other[0].is_alive()
    copied = KeyRing(out)
    listed = {k.key_id for k in copied.public_keys()}
    assert {p.stem for p in copied.dir.glob("*.pem")} == listed
    assert copied.signer().key_id in listed
    assert len(KeyRing(sqlite_config.home).public_keys()) == 2  # the rotation, after it


def test_a_bundle_exported_during_a_rotation_verifies_offline(
    ledger_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """`bundle export` listed the ledger's keys, then sealed the entries' positions with the
    current key: a rotation in between sealed them with a key the bundle does not list, and
    the bundle the export had checked (against the ring read again) failed `bundle verify`
    offline: "position seal: key_id ... is not among the bundle's keys"."""
    point_cli_at(monkeypatch, ledger_config)
    app = LedgerApp(ledger_config)
    register(app)
    app.close()
    real_seal = bundle_module.position_seal

    def rotated_then_sealed(*args: Any) -> Any:
        KeyRing(ledger_config.home).rotate()
        return real_seal(*args)

    monkeypatch.setattr(bundle_module, "position_seal", rotated_then_sealed)
    out = tmp_path / "bundle.json"
    assert cli.main(["bundle", "export", "--executive", "E1", "--out", str(out)]) == 0
    monkeypatch.undo()
    capsys.readouterr()
    assert cli.main(["bundle", "verify", str(out)]) == 0, capsys.readouterr().out[-2000:]
    assert "BUNDLE VERIFIED" in capsys.readouterr().out


def test_a_checkpoint_is_signed_by_a_key_current_after_the_last_entry_of_its_tree(
    ledger_config: LedgerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A checkpoint after N writes took the key up before it integrated the tree: while it
    integrated (under the write gate, behind other writers), `keys rotate` retired that key
    and another process wrote with the new one, so the checkpoint was signed with the
    retired key over a tree holding an entry recorded after that key's `valid_until`."""
    point_cli_at(monkeypatch, ledger_config)
    server = LedgerApp(dataclasses.replace(ledger_config, checkpoint_every=2))
    register(server)
    real_integrate = MerkleLog.integrate
    meanwhile: list[str] = []

    def rotated_and_written_while_integrating(log: MerkleLog, batch: int = 5000) -> int:
        if not meanwhile:
            meanwhile.append("rotated")
            assert cli.main(["keys", "rotate"]) == 0
            other = LedgerApp(ledger_config)  # another worker, with the new key
            register(other, "E3")
            other.close()
        return real_integrate(log, batch)

    monkeypatch.setattr(MerkleLog, "integrate", rotated_and_written_while_integrating)
    register(server, "E2")  # the second write: a checkpoint
    monkeypatch.undo()
    latest = server.merkle_log.latest_checkpoint()
    assert latest is not None and latest.tree_size == 3
    entries = stored(server)
    last_recorded = max(parse_timestamp(e["recorded_at"]) for e in entries)
    ring = KeyRing(ledger_config.home)
    signed_by = [
        k for k in ring.public_keys() if _verifies(latest.note, ledger_config.origin, k.public_key)
    ]
    assert len(signed_by) == 1
    until = signed_by[0].valid_until
    assert until is None or parse_timestamp(until) >= last_recorded
    server.close()


def _verifies(note: str, origin: str, key: Any) -> bool:
    try:
        verify_note(note, origin, [key])
    except CheckpointError:
        return False
    return True


@pytest.mark.parametrize("signed", ["event", "checkpoint"])
def test_verify_while_keys_rotate_and_a_server_writes(
    signed: str,
    ledger_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`verify` (and GET /v1/ledger/verify) read the key ring once, then the ledger: a
    rotation meanwhile, and a server's write (or checkpoint) with the new key, were failed
    as "signed with unknown key" (a checkpoint: "no signature by a known key"), though the
    key list names that key: a false alarm of tampering on a ledger that is whole."""
    point_cli_at(monkeypatch, ledger_config)
    server = LedgerApp(ledger_config)
    register(server)
    real_size = verify_module._integrated_size
    meanwhile: list[str] = []

    def rotated_and_written(recorder: Any) -> int:
        if not meanwhile:
            meanwhile.append("rotated")
            KeyRing(ledger_config.home).rotate()
            if signed == "event":
                register(server, "E2")  # the server, with the new key
            else:  # a checkpoint of the one event, signed with the new key
                server.merkle_log.issue_checkpoint(lambda: server.signer, ledger_config.origin)
        return int(real_size(recorder))

    monkeypatch.setattr(verify_module, "_integrated_size", rotated_and_written)
    capsys.readouterr()
    assert cli.main(["verify", "--quiet"]) == 0, capsys.readouterr()
    events = 2 if signed == "event" else 1
    assert f"ledger verified: {events} events" in capsys.readouterr().out
    assert meanwhile
    server.close()


@pytest.mark.parametrize("signed", ["event", "checkpoint"])
def test_a_key_list_that_cannot_be_read_again_is_named_beside_the_unknown_key(
    signed: str, ledger_config: LedgerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rotation above, but the key list cannot be read again (out of descriptors, the
    home unmounted): the entry stays a finding, and it said only "signed with unknown key",
    a charge of tampering with nothing saying the verifier could not look (noticed by the
    qa-exhaust pass). The finding now names the failed read."""
    server = LedgerApp(ledger_config)
    register(server)
    ring = KeyRing(ledger_config.home)
    keys, windows = verify_module.ring_keys(ring)
    ring.rotate()
    if signed == "event":
        register(server, "E2")
    else:
        server.merkle_log.issue_checkpoint(lambda: server.signer, ledger_config.origin)

    def unreadable() -> Any:
        raise OSError(24, "Too many open files")

    report = verify_module.verify_ledger(
        server.recorder, keys, ledger_config.origin, windows=windows, refresh=unreadable
    )
    assert not report.ok
    [(_, problem)] = report.problems
    expected = "signed with unknown key" if signed == "event" else "does not verify"
    assert expected in problem, problem
    assert problem.endswith(
        "(the key list could not be read again to look for it: OSError: [Errno 24] Too many "
        "open files)"
    ), problem
    report = verify_module.verify_ledger(
        server.recorder,
        keys,
        ledger_config.origin,
        windows=windows,
        refresh=lambda: verify_module.ring_keys(ring),
    )
    assert report.ok, report.problems
    server.close()


def test_verify_while_a_server_writes_and_integrates(
    ledger_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`verify` on a live ledger (GET /v1/ledger/verify, seen in a load run: 7 of 8 failed):
    it takes the Merkle log's size when it begins and reads the events to the end; an event
    written and integrated meanwhile was read and checked, but its leaf, read last, was
    reported as "Merkle leaf N names position P, which is gone" (P was there)."""
    point_cli_at(monkeypatch, ledger_config)
    server = LedgerApp(ledger_config)
    register(server)
    server.merkle_log.integrate()
    real_size = verify_module._integrated_size
    meanwhile: list[str] = []

    def written_and_integrated(recorder: Any) -> int:
        size = int(real_size(recorder))
        if not meanwhile:
            meanwhile.append("written")
            register(server, "E2")
            server.merkle_log.integrate()
        return size

    monkeypatch.setattr(verify_module, "_integrated_size", written_and_integrated)
    capsys.readouterr()
    assert cli.main(["verify", "--quiet"]) == 0, capsys.readouterr()
    assert "ledger verified: 2 events" in capsys.readouterr().out
    assert meanwhile
    server.close()


def test_a_witness_run_during_a_key_rotation_is_no_alarm(
    sqlite_config: LedgerConfig, tmp_path: Path
) -> None:
    """`ses-ledger witness` read the key list, then the checkpoint: a rotation between the
    two, and a checkpoint signed with the new key, made it report INCONSISTENT ("the
    checkpoint does not verify: no signature by a known key"), the witness's alarm for a
    forked or rewritten log, on a log that had only rotated its key."""
    from tests.integration.test_witness import real_api

    app = LedgerApp(sqlite_config)
    register(app)
    app.merkle_log.issue_checkpoint(lambda: app.signer, sqlite_config.origin)
    state = tmp_path / "state.json"
    real_fetch = http_fetch()
    rotated: list[str] = []

    def rotation_after_the_keys(url: str) -> tuple[int, str]:
        answer = real_fetch(url)
        if "/v1/ledger/keys" in url and len(rotated) == 0:
            rotated.append(KeyRing(sqlite_config.home).rotate())
            register(app, "E2")
            app.merkle_log.issue_checkpoint(lambda: app.signer, sqlite_config.origin)
        return answer

    with real_api(sqlite_config) as url:
        first = witness(url, state)
        assert first.ok, first.lines
        observed = witness(url, state, fetch=rotation_after_the_keys)
        assert rotated
        assert observed.ok, observed.lines
        later = witness(url, state)  # the new key's checkpoint, the tree grown
    assert later.ok and later.verdict == "extended", later.lines
    app.close()


@pytest.mark.parametrize("ring", ['[{"public_key": "x"}]', "{}", "not json", None])
def test_a_ledger_opens_for_reading_whatever_its_key_ring_holds(
    ring: str | None, sqlite_config: LedgerConfig
) -> None:
    """The key is taken up when the ledger is opened (above), not first at a seal: a ring
    that cannot be read must still let a command that only reads open the ledger, and the
    first write report it, as before."""
    app = LedgerApp(sqlite_config)
    register(app)
    app.close()
    index = KeyRing(sqlite_config.home).index
    if ring is None:
        index.unlink()
    else:
        index.write_text(ring)
    reader = LedgerApp(sqlite_config)
    assert len(stored(reader)) == 1
    with pytest.raises((SigningKeyError, KeyError)):
        register(reader, "E2")
    reader.close()


def test_a_restore_during_a_key_rotation_keeps_the_backups_key_ring(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`restore` placed the backup's key ring while `keys rotate` was between its two
    writes: the rotation's second write put back the home's old ring with its new key, and
    the restored ledger's key was gone from the ring (`verify`: "signed with unknown key")."""
    home = tmp_path / "home"
    KeyRing(home).init()
    config = LedgerConfig(home=home, db_url=f"sqlite:///{home / 'ledger.db'}")
    app = LedgerApp(config)
    register(app)
    app.close()
    saved = tmp_path / "backup"
    backup(config, saved, with_secrets=True)
    # The home's keys are lost and made anew (the backup's ring will replace this one).
    for path in (home / "keys").iterdir():
        path.unlink()
    KeyRing(home).init()
    other: list[threading.Thread] = []
    errors: list[BaseException] = []

    def restoring() -> None:
        try:
            restore(config, saved)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    def restore_between_the_writes(closing: set[str]) -> datetime:
        other.append(threading.Thread(target=restoring))
        other[0].start()
        other[0].join(timeout=1.0)  # done, unless it waits for the rotation
        return datetime.now(UTC)

    KeyRing(home).rotate(close_at=restore_between_the_writes)
    other[0].join(timeout=60)
    assert not other[0].is_alive() and not errors, errors
    point_cli_at(monkeypatch, config)
    _verified(capsys, 1)
