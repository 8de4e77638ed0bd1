"""`ses-ledger backup`: a consistent copy of a running SQLite ledger, itself a ledger home."""

from __future__ import annotations

import shlex
import stat
import threading
from pathlib import Path

import pytest

from api.auth import load_or_create_token_key
from ledger.application import LedgerApp
from ledger.backup import BackupRefused, backup
from ledger.config import LedgerConfig
from ledger.errors import StoreUnavailable
from ledger.keys import KeyRing
from ledger.verify import verify_ledger
from ses_ledger import cli
from ses_ledger.demo import SimulatedClock, run_demo
from tests.ledger_helpers import point_cli_at, register


def _home_of(out: Path) -> LedgerConfig:
    return LedgerConfig(home=out, db_url=f"sqlite:///{out / 'ledger.db'}")


def _demo(config: LedgerConfig, executives: int = 4) -> LedgerApp:
    clock = SimulatedClock()
    app = LedgerApp(config, clock=clock)
    run_demo(app, clock, executives=executives, years=2, seed=5)
    return app


def test_a_backup_is_a_ledger_home_that_verifies_without_secrets(
    sqlite_config: LedgerConfig, tmp_path: Path
) -> None:
    app = _demo(sqlite_config)
    load_or_create_token_key(sqlite_config.home)
    head = int(app.recorder.max_notification_id() or 0)
    report = backup(sqlite_config, tmp_path / "copy")
    assert report.head == head and report.files == ("keys/keyring.json",)
    copy = LedgerApp(_home_of(tmp_path / "copy"))
    assert copy.recorder.max_notification_id() == head
    verified = verify_ledger(copy.recorder, copy.keyring.verifiers(), sqlite_config.origin)
    assert verified.ok and verified.checked == head, verified.problem
    assert not list((tmp_path / "copy" / "keys").glob("*.pem"))
    assert not (tmp_path / "copy" / "token.key").exists()

    # Restored without secrets: a new signing key, and old and new events verify together.
    KeyRing(tmp_path / "copy").rotate()
    restored = LedgerApp(_home_of(tmp_path / "copy"))
    register(restored, "E-after-restore")
    again = verify_ledger(restored.recorder, restored.keyring.verifiers(), sqlite_config.origin)
    assert again.ok and again.checked == head + 1, again.problem


def test_secrets_are_copied_only_when_asked_and_stay_private(
    sqlite_config: LedgerConfig, tmp_path: Path
) -> None:
    _demo(sqlite_config, executives=1)
    load_or_create_token_key(sqlite_config.home)
    report = backup(sqlite_config, tmp_path / "copy", with_secrets=True)
    (key_id,) = [k.key_id for k in KeyRing(sqlite_config.home).public_keys()]
    assert set(report.files) == {"keys/keyring.json", f"keys/{key_id}.pem", "token.key"}
    out = tmp_path / "copy"
    for secret in (out / "keys" / f"{key_id}.pem", out / "token.key"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "keys").stat().st_mode) == 0o700
    assert KeyRing(out).signer().key_id == key_id  # the copy can sign as the original


def test_backups_taken_while_the_ledger_is_written_each_verify(
    sqlite_config: LedgerConfig, tmp_path: Path
) -> None:
    clock = SimulatedClock()
    app = LedgerApp(sqlite_config, clock=clock)
    begun = threading.Event()
    writing = threading.Thread(
        target=run_demo,
        args=(app, clock),
        kwargs={"executives": 60, "years": 2, "seed": 5, "progress": lambda *_: begun.set()},
    )
    writing.start()
    heads = []
    try:
        assert begun.wait(60)
        while writing.is_alive() or len(heads) < 2:
            out = tmp_path / f"copy{len(heads)}"
            heads.append(backup(sqlite_config, out).head)
            copy = LedgerApp(_home_of(out))
            report = verify_ledger(copy.recorder, copy.keyring.verifiers(), sqlite_config.origin)
            assert report.ok and report.checked == heads[-1], report.problem
    finally:
        writing.join()
    final = int(app.recorder.max_notification_id() or 0)
    assert heads == sorted(heads) and 0 < heads[0] < final, (heads, final)


def test_a_backup_refuses_a_used_directory_and_postgresql(
    sqlite_config: LedgerConfig, tmp_path: Path
) -> None:
    _demo(sqlite_config, executives=1)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("mine")
    with pytest.raises(BackupRefused, match="not an empty directory"):
        backup(sqlite_config, tmp_path / "used")
    assert (tmp_path / "used" / "notes.txt").read_text() == "mine"
    postgres = LedgerConfig(home=tmp_path, db_url="postgresql://postgres@127.0.0.1:5432/x")
    with pytest.raises(BackupRefused, match="pg_dump"):
        backup(postgres, tmp_path / "pg")
    with pytest.raises(StoreUnavailable, match="there is no ledger"):
        backup(_home_of(tmp_path / "nothing"), tmp_path / "empty")


def test_backup_on_the_command_line(
    sqlite_config: LedgerConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _demo(sqlite_config, executives=1)
    point_cli_at(monkeypatch, sqlite_config)
    out = tmp_path / "copy"
    assert cli.main(["backup", "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert printed.out.startswith("backed up positions 1..") and "keys/keyring.json" in printed.out
    assert cli.main(["backup", "--out", str(out)]) == 2  # not empty now
    assert "not an empty directory" in capsys.readouterr().err
    # The check it prints checks the copy, not the live ledger SES_LEDGER_DB still names
    # (point_cli_at sets it): it said "ledger verified" of the live one, grown since.
    live = LedgerApp(sqlite_config)
    register(live, "E-AFTER-THE-BACKUP")
    live.close()
    check = next(line for line in printed.err.splitlines() if line.startswith("check it: "))
    *assignments, program, command = shlex.split(check.removeprefix("check it: "))
    assert (program, command) == ("ses-ledger", "verify")
    for assignment in assignments:
        monkeypatch.setenv(*assignment.split("=", 1))
    assert cli.main(["verify", "--quiet"]) == 0
    copy = LedgerApp(_home_of(out))
    head = copy.recorder.max_notification_id()
    copy.close()
    assert f"ledger verified: {head} events" in capsys.readouterr().out


def test_backup_into_a_place_it_cannot_write_says_so_in_one_line(
    sqlite_config: LedgerConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    register(LedgerApp(sqlite_config), "E1")
    point_cli_at(monkeypatch, sqlite_config)
    (tmp_path / "a-file").write_text("")
    for out in (tmp_path / "a-file" / "copy", tmp_path / "a-file" / "deeper" / "copy"):
        assert cli.main(["backup", "--out", str(out)]) == 2
        printed = capsys.readouterr()
        assert printed.out == "" and printed.err.count("\n") == 1
        assert printed.err.startswith(f"ses-ledger backup: cannot write into {out}: ")
    # Missing parents are still made.
    assert cli.main(["backup", "--out", str(tmp_path / "new" / "copy")]) == 0
    assert (tmp_path / "new" / "copy" / "ledger.db").is_file()
