"""`ses-ledger backup`: a consistent copy of a running SQLite ledger, itself a ledger home."""

from __future__ import annotations

import os
import re
import shlex
import sqlite3
import stat
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from api.auth import load_or_create_token_key
from ledger import backup as backup_module
from ledger.application import LedgerApp
from ledger.backup import BackupRefused, backup
from ledger.config import LedgerConfig
from ledger.errors import StoreUnavailable
from ledger.keys import KeyRing
from ledger.verify import verify_ledger
from ses_ledger import cli
from ses_ledger.demo import SimulatedClock, run_demo
from tests.ledger_helpers import point_cli_at, register, write_no_ledger


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


def test_secrets_are_never_readable_by_others_while_they_are_copied(
    sqlite_config: LedgerConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Into an existing empty directory others may enter (a shared backup disk), under the
    usual umask: the token key was copied with mode 0644 and only then set to 0600, so
    anyone could open it meanwhile and keep reading it."""
    _demo(sqlite_config, executives=1)
    load_or_create_token_key(sqlite_config.home)
    out = tmp_path / "shared"
    out.mkdir(mode=0o755)
    os.chmod(out, 0o755)
    seen: dict[str, int] = {}  # each file's mode just before the backup sets it
    real_chmod, real_fchmod = os.chmod, os.fchmod

    def note(name: str, mode: int) -> None:
        if name.startswith(str(out)) and stat.S_ISREG(os.stat(name).st_mode):
            # a file written whole (ledger.files.write_file) is first its temporary name
            base = re.sub(r"^\.(.+)\.[0-9a-f]{8}\.tmp$", r"\1", os.path.basename(name))
            seen[base] = stat.S_IMODE(mode)

    def chmod(path: Any, mode: int, **kwargs: Any) -> None:
        note(os.fspath(path), os.stat(path).st_mode)
        real_chmod(path, mode, **kwargs)

    def fchmod(fd: int, mode: int) -> None:
        note(os.readlink(f"/proc/self/fd/{fd}"), os.fstat(fd).st_mode)
        real_fchmod(fd, mode)

    old_umask = os.umask(0o022)
    try:
        with monkeypatch.context() as patched:
            patched.setattr(os, "chmod", chmod)
            patched.setattr(os, "fchmod", fchmod)
            backup(sqlite_config, out, with_secrets=True)
    finally:
        os.umask(old_umask)
    assert "token.key" in seen
    for name, mode in seen.items():
        secret = name.endswith(".pem") or name == "token.key"
        assert not (secret and mode & 0o077), f"{name} was {oct(mode)} while it was written"
    assert stat.S_IMODE((out / "token.key").stat().st_mode) == 0o600
    assert stat.S_IMODE((out / "keys" / "keyring.json").stat().st_mode) == 0o644


def test_a_secret_is_not_written_through_a_link_planted_during_the_backup(
    sqlite_config: LedgerConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone who may write into the (empty, existing) backup directory plants
    token.key -> a file of theirs while the database is copied: the token secret went into
    their file. The backup now fails instead, and their file stays empty."""
    import ledger.backup as backup_module

    _demo(sqlite_config, executives=1)
    load_or_create_token_key(sqlite_config.home)
    out = tmp_path / "shared"
    out.mkdir()
    theirs = tmp_path / "theirs"
    theirs.write_text("")
    real_facts = backup_module._facts

    def facts_and_plant(copy: Any) -> Any:
        (out / "token.key").symlink_to(theirs)
        return real_facts(copy)

    monkeypatch.setattr(backup_module, "_facts", facts_and_plant)
    with pytest.raises(FileExistsError):
        backup(sqlite_config, out, with_secrets=True)
    assert theirs.read_text() == ""


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


def _damage(database: Path, table: str) -> None:
    """Overwrite the root page of `table` (the write-ahead log folded in before)."""
    with closing(sqlite3.connect(database)) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        sql = "SELECT rootpage FROM sqlite_master WHERE name = ?"
        (root,) = db.execute(sql, (table,)).fetchone()
    with database.open("r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(b"\xa5" * page_size)


def test_a_damaged_ledger_is_not_announced_as_backed_up(
    sqlite_config: LedgerConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SQLite's backup copies pages as they are: a damaged ledger gave a copy that did not
    open, printed as 'backed up positions 1..N', exit 0."""
    _demo(sqlite_config, executives=3).close()  # closed: the write-ahead log is folded in
    _damage(sqlite_config.sqlite_path(), "ledger_merkle_leaves")
    point_cli_at(monkeypatch, sqlite_config)
    out = tmp_path / "copy"
    assert cli.main(["backup", "--out", str(out)]) == 69
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err.count("\n") == 1, printed
    source = sqlite_config.sqlite_path()
    assert printed.err.startswith(f"ses-ledger: cannot back up {source} into {out}: ")
    assert not out.exists()  # nothing a restore could later take for a backup


@pytest.mark.parametrize("content", ["another-programs-database", "empty-file"])
def test_a_file_that_holds_no_ledger_is_not_backed_up(
    content: str,
    sqlite_config: LedgerConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """SES_LEDGER_DB naming another program's SQLite database (or an empty `ledger.db`) was
    "backed up positions 1..0" (exit 0), a backup that `restore` then refuses as "not a
    ledger's database": found out when it is needed. Refused now (69, as a missing ledger
    is), nothing left in DIR."""
    source = sqlite_config.sqlite_path()
    write_no_ledger(source, content)
    point_cli_at(monkeypatch, sqlite_config)
    out = tmp_path / "copy"
    assert cli.main(["backup", "--out", str(out)]) == 69
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err.count("\n") == 1, printed
    assert printed.err.startswith(f"ses-ledger: there is no ledger at {source} ")
    assert not out.exists()


def test_a_backup_that_fails_part_way_leaves_its_directory_as_it_was(
    sqlite_config: LedgerConfig, tmp_path: Path
) -> None:
    """A secret that cannot be read (here a key file on a volume no longer mounted) after the
    database was copied left a ledger.db without its key ring, and the directory was then
    refused as not empty by the retry."""
    _demo(sqlite_config, executives=1)
    keys = KeyRing(sqlite_config.home).dir
    (keys / "0000000000000000.pem").symlink_to(tmp_path / "unmounted" / "key.pem")
    for out in (tmp_path / "new", tmp_path / "empty"):
        if out.name == "empty":
            out.mkdir()
        with pytest.raises(FileNotFoundError):
            backup(sqlite_config, out, with_secrets=True)
        assert (list(out.iterdir()) == []) if out.name == "empty" else not out.exists()
    (keys / "0000000000000000.pem").unlink()
    assert backup(sqlite_config, tmp_path / "empty", with_secrets=True).head > 0


def test_the_database_of_a_backup_takes_its_name_last(
    sqlite_config: LedgerConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backup killed after the database was copied (nothing can clean up after SIGKILL or
    a power cut) left a ledger.db without the key ring that checks it: a directory that
    looks like a backup. The key files are written while the copy is still `.partial`."""
    _demo(sqlite_config, executives=1)
    out = tmp_path / "copy"
    seen: list[bool] = []
    real = backup_module.write_file

    def watching(path: Path, data: bytes, mode: int, *, replace: bool) -> None:
        seen.append((out / "ledger.db").exists())
        real(path, data, mode, replace=replace)

    monkeypatch.setattr(backup_module, "write_file", watching)
    assert backup(sqlite_config, out, with_secrets=True).head > 0
    assert seen and not any(seen)
    assert sorted(p.name for p in out.iterdir()) == ["keys", "ledger.db"]


def test_secrets_backed_up_into_a_directory_others_may_write_are_warned_of(
    sqlite_config: LedgerConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An existing directory keeps its mode (only one the backup makes is 0700): in one
    others may write, they can put their own token key or signing key beside the copy,
    for `restore` to bring into the home. `--with-secrets` said nothing of it."""
    _demo(sqlite_config, executives=1)
    load_or_create_token_key(sqlite_config.home)
    point_cli_at(monkeypatch, sqlite_config)
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    assert cli.main(["backup", "--out", str(shared), "--with-secrets"]) == 0
    err = capsys.readouterr().err
    assert f"ses-ledger backup: warning: {shared} has mode 0777" in err
    assert stat.S_IMODE(shared.stat().st_mode) == 0o777  # not ours to change
    private = tmp_path / "private"
    assert cli.main(["backup", "--out", str(private), "--with-secrets"]) == 0
    assert "warning" not in capsys.readouterr().err
    public_only = tmp_path / "public"
    public_only.mkdir()
    os.chmod(public_only, 0o777)
    assert cli.main(["backup", "--out", str(public_only)]) == 0  # no secrets in it
    assert "warning" not in capsys.readouterr().err
