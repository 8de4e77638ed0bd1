"""`ses-ledger restore BACKUP_DIR`: a verified backup back into a ledger home, the replaced
ledger kept, nothing changed when it refuses.

By hand (README's steps before this command) an old server's `ledger.db-wal` left beside a
copied-back `ledger.db` was applied to it by SQLite: a restored 20-event backup came up as
the old 40-event ledger.
"""

from __future__ import annotations

import shutil
import sqlite3
import stat
import subprocess
import sys
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from api.auth import load_or_create_token_key
from ledger.application import LedgerApp
from ledger.backup import backup
from ledger.config import LedgerConfig
from ledger.keys import KeyRing
from ledger.verify import verify_ledger
from ses_ledger import cli
from tests.api.server import Server, ledger_env
from tests.ledger_helpers import register


def _config(home: Path) -> LedgerConfig:
    return LedgerConfig(home=home, db_url=f"sqlite:///{home / 'ledger.db'}")


def _ledger(home: Path, events: int) -> LedgerConfig:
    KeyRing(home).init()
    config = _config(home)
    app = LedgerApp(config)
    for n in range(events):
        register(app, f"E{n}")
    app.close()
    return config


def _head(database: Path) -> int:
    """Events in an SQLite ledger file, read from a copy (its -wal, if any, goes with it)."""
    copy = database.parent.parent / f"read-{database.name}"
    shutil.copy(database, copy)
    if Path(f"{database}-wal").exists():
        shutil.copy(f"{database}-wal", f"{copy}-wal")
    with closing(sqlite3.connect(copy)) as db:
        head = int(db.execute("SELECT max(rowid) FROM stored_events").fetchone()[0] or 0)
    for leftover in (copy, Path(f"{copy}-wal"), Path(f"{copy}-shm")):
        leftover.unlink(missing_ok=True)
    return head


def _files(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in home.rglob("*") if p.is_file()}


def _names(home: Path) -> list[str]:
    """The home's files but the lock files a running server makes when it first needs them."""
    return sorted(p.name for p in home.iterdir() if not p.name.endswith(".lock"))


def _point_at(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    monkeypatch.setenv("SES_LEDGER_HOME", str(home))
    monkeypatch.delenv("SES_LEDGER_DB", raising=False)
    monkeypatch.delenv("SES_LEDGER_ORIGIN", raising=False)


def _write_and_die(home: Path, events: int) -> None:
    """A server's way to leave a home: events committed into the write-ahead log, then the
    process gone without closing (killed, a power cut), so the -wal stays beside the file."""
    code = (
        "import os, sys\n"
        "from ledger.application import LedgerApp\n"
        "from ledger.config import LedgerConfig\n"
        "from tests.ledger_helpers import register\n"
        f"app = LedgerApp(LedgerConfig.from_env())\n"
        f"for n in range({events}):\n"
        "    register(app, f'LATER{n}')\n"
        "os._exit(0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=ledger_env(home), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_a_backup_is_restored_over_an_old_write_ahead_log_and_the_old_ledger_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    config = _ledger(home, 20)
    backup(config, tmp_path / "backup")
    _write_and_die(home, 20)
    assert Path(f"{home}/ledger.db-wal").stat().st_size > 0  # the trap of the manual steps
    assert _head(home / "ledger.db") == 40

    _point_at(monkeypatch, home)
    assert cli.main(["restore", str(tmp_path / "backup"), "--quiet"]) == 0
    printed = capsys.readouterr()
    assert printed.out.startswith("restored 20 events (tree size 20, root "), printed.out
    assert "check it: SES_LEDGER_HOME=" in printed.err

    # The restored ledger is the backup (20), not the old one (40), and verifies.
    assert not Path(f"{home}/ledger.db-wal").exists() and not Path(f"{home}/ledger.db-shm").exists()
    assert stat.S_IMODE((home / "ledger.db").stat().st_mode) == 0o600
    app = LedgerApp(config)
    report = verify_ledger(app.recorder, app.keyring.verifiers(), config.origin)
    assert report.ok and report.checked == 20, report.problem
    register(app, "E-AFTER-RESTORE")  # it goes on: the home's signing key signs
    app.close()

    # The replaced ledger is kept, whole: its write-ahead log folded in.
    (kept,) = home.glob("ledger.db.replaced-*")
    assert str(kept) in printed.out and _head(kept) == 40
    assert not Path(f"{kept}-wal").exists()
    assert cli.main(["verify", "--quiet"]) == 0


def test_a_running_server_holds_the_home_and_nothing_is_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    config = _ledger(home, 5)
    backup(config, tmp_path / "backup")
    app = LedgerApp(config)
    register(app, "E-SINCE")
    app.close()
    load_or_create_token_key(home)  # not made by the server while the test looks
    _point_at(monkeypatch, home)
    server = Server(ledger_env(home)).start()
    try:
        # (The server itself may write meanwhile: its periodic checkpoints.)
        names, keys = _names(home), _files(home / "keys")
        assert cli.main(["restore", str(tmp_path / "backup"), "--quiet"]) == 2
        printed = capsys.readouterr()
        assert printed.out == "" and printed.err.count("\n") == 1, printed
        assert "is in use" in printed.err and "stop it, then restore" in printed.err
        # no partial copy, nothing kept aside, nothing moved
        assert _names(home) == names
        assert _files(home / "keys") == keys
    finally:
        server.stop()
    assert _head(home / "ledger.db") == 6  # the served ledger, still in place
    assert cli.main(["restore", str(tmp_path / "backup"), "--quiet"]) == 0  # stopped: done
    assert _head(home / "ledger.db") == 5


def test_a_damaged_or_tampered_backup_is_refused_before_anything_is_touched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    config = _ledger(home, 30)
    _point_at(monkeypatch, home)
    before = _files(home)

    tampered = tmp_path / "tampered"
    backup(config, tampered)
    with closing(sqlite3.connect(tampered / "ledger.db")) as db:  # SQLite-valid, signature not
        db.execute("UPDATE stored_events SET state = replace(state, 'DOE', 'DOX') WHERE rowid = 7")
        db.commit()
    assert cli.main(["restore", str(tampered), "--quiet"]) == 1
    printed = capsys.readouterr()
    assert printed.err.count("\n") == 1 and "does not verify: first bad position 7" in printed.err
    assert _files(home) == before

    damaged = tmp_path / "damaged"
    backup(config, damaged)
    with closing(sqlite3.connect(damaged / "ledger.db")) as db:
        page = db.execute("PRAGMA page_size").fetchone()[0]
        sql = "SELECT rootpage FROM sqlite_master WHERE name = 'ledger_merkle_leaves'"
        (root,) = db.execute(sql).fetchone()
    with (damaged / "ledger.db").open("r+b") as fh:
        fh.seek((root - 1) * page)
        fh.write(b"\xa5" * page)
    assert cli.main(["restore", str(damaged), "--quiet"]) == 69
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err.count("\n") == 1, printed
    assert "nothing was restored" in printed.err
    assert _files(home) == before


def test_wrong_paths_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    _ledger(home, 3)
    _point_at(monkeypatch, home)
    before = _files(home)
    (tmp_path / "empty").mkdir()
    (tmp_path / "no-keys").mkdir()
    shutil.copy(home / "ledger.db", tmp_path / "no-keys" / "ledger.db")
    for where, reason in (
        (tmp_path / "missing", "is not a directory"),
        (tmp_path / "empty", "holds no ledger.db"),
        (tmp_path / "no-keys", "holds no keys/keyring.json"),
        (home, "the ledger's own home"),
    ):
        assert cli.main(["restore", str(where), "--quiet"]) == 2, where
        printed = capsys.readouterr()
        assert printed.err.count("\n") == 1 and reason in printed.err, printed.err
    assert _files(home) == before


def test_secrets_are_restored_private_into_a_new_home_and_never_over_the_homes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old = tmp_path / "old"
    config = _ledger(old, 4)
    token_key = load_or_create_token_key(old)
    backup(config, tmp_path / "backup", with_secrets=True)

    new = tmp_path / "new"  # a lost home: nothing in it
    _point_at(monkeypatch, new)
    assert cli.main(["restore", str(tmp_path / "backup"), "--quiet"]) == 0
    capsys.readouterr()
    (key_id,) = [k.key_id for k in KeyRing(old).public_keys()]
    assert stat.S_IMODE((new / "keys").stat().st_mode) == 0o700
    for secret in (new / "keys" / f"{key_id}.pem", new / "token.key", new / "ledger.db"):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    assert KeyRing(new).signer().key_id == key_id
    assert load_or_create_token_key(new) == token_key

    # A home with a token key of its own keeps it (a restored older one would revive
    # tokens revoked since), and a home with other keys gets the backup's ring, its own
    # kept aside.
    other = tmp_path / "other"
    _ledger(other, 1)
    other_token = load_or_create_token_key(other)
    other_ring = (other / "keys" / "keyring.json").read_bytes()
    _point_at(monkeypatch, other)
    assert cli.main(["restore", str(tmp_path / "backup"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert load_or_create_token_key(other) == other_token and "kept the home's" in out
    assert (other / "keys" / "keyring.json").read_bytes() == (
        tmp_path / "backup" / "keys" / "keyring.json"
    ).read_bytes()
    (aside,) = (other / "keys").glob("keyring.json.replaced-*")
    assert aside.read_bytes() == other_ring
    assert cli.main(["verify", "--quiet"]) == 0


def test_any_process_with_the_ledger_open_holds_the_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not only a server: a projector, a command, any SQLite client that has the file open
    (SQLite's own lock, held while a WAL-mode connection is open, between transactions too)."""
    home = tmp_path / "home"
    config = _ledger(home, 3)
    backup(config, tmp_path / "backup")
    code = (
        "import sys, time\n"
        "from ledger.application import LedgerApp\n"
        "from ledger.config import LedgerConfig\n"
        "app = LedgerApp(LedgerConfig.from_env())\n"
        "app.recorder.max_notification_id()\n"
        "print('open', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], env=ledger_env(home), stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        _point_at(monkeypatch, home)
        names = _names(home)
        assert cli.main(["restore", str(tmp_path / "backup"), "--quiet"]) == 2
        printed = capsys.readouterr()
        assert "has it open): stop it, then restore; nothing was changed" in printed.err
        assert _names(home) == names
    finally:
        holder.kill()
        holder.wait()


def test_a_backup_without_secrets_says_to_start_a_new_signing_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _ledger(tmp_path / "old", 3)
    backup(config, tmp_path / "backup")
    new = tmp_path / "new"
    _point_at(monkeypatch, new)
    assert cli.main(["restore", str(tmp_path / "backup"), "--quiet"]) == 0
    assert "run `ses-ledger keys rotate` before serving" in capsys.readouterr().err
    assert cli.main(["keys", "rotate"]) == 0
    app = LedgerApp(_config(new))
    register(app, "E-NEW-KEY")  # signed with the new key; the restored events keep theirs
    report = verify_ledger(app.recorder, app.keyring.verifiers(), config.origin)
    app.close()
    assert report.ok and report.checked == 4, report.problem


def test_postgresql_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _ledger(tmp_path / "home", 1)
    backup(config, tmp_path / "backup")
    monkeypatch.setenv("SES_LEDGER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SES_LEDGER_DB", "postgresql://postgres@127.0.0.1:5432/test")
    assert cli.main(["restore", str(tmp_path / "backup"), "--quiet"]) == 2
    assert "pg_restore" in capsys.readouterr().err


def test_a_restore_stopped_between_its_renames_puts_the_ledger_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """README: restore "changes nothing unless it holds". Ctrl-C (or a failure removing the
    stale -wal/-shm) after the home's ledger.db was renamed aside and before the backup's
    took its place left a home with no ledger.db at all ("there is no ledger at ..." to
    every command) and the backup's checked copy deleted. The replaced ledger is renamed
    back now; the command says it was interrupted (130)."""
    from ledger import restore as restore_module

    home = tmp_path / "home"
    config = _ledger(home, 3)
    backup(config, tmp_path / "backup")
    register(LedgerApp(config), "E-AFTER-THE-BACKUP")  # the home's own: 4 events
    before = _head(home / "ledger.db")

    def ctrl_c(*_args: object) -> list[str]:
        raise KeyboardInterrupt

    monkeypatch.setattr(restore_module, "_clear_stale_files", ctrl_c)
    _point_at(monkeypatch, home)
    assert cli.main(["restore", str(tmp_path / "backup"), "--quiet"]) == 130
    assert capsys.readouterr().err == "ses-ledger: interrupted\n"
    assert (home / "ledger.db").is_file() and _head(home / "ledger.db") == before == 4
    assert not list(home.glob("ledger.db.replaced-*")) and not list(home.glob(".ledger.db.*"))
    assert cli.main(["verify", "--quiet"]) == 0


def _backup_signed_before_a_rotation(backup_dir: Path, recorded_at: datetime) -> None:
    """A backup home whose one event, recorded at `recorded_at`, was signed by a key closed
    a day before it: what the demo of builds before 2026-12-01 left after `keys rotate`
    (it stamped FY2026's story ahead of the clock, and rotate closed the key at the clock's
    time), or a retired key that leaked."""
    ring = KeyRing(backup_dir)
    ring.init(datetime(2026, 1, 1, tzinfo=UTC))
    app = LedgerApp(_config(backup_dir), clock=lambda: recorded_at)
    register(app, "E-LATE")
    app.close()
    ring.rotate(recorded_at - timedelta(days=1))


def test_a_backup_that_verify_fails_on_its_key_windows_is_not_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """restore checks 'everything verify checks' (README): an event recorded outside its
    signing key's validity (from 2026-12-01 on a failure of `verify`) fails the backup too,
    where restore used to call it verified and put it in place."""
    home = tmp_path / "home"
    _ledger(home, 3)
    _point_at(monkeypatch, home)
    before = _files(home)
    late = tmp_path / "late"
    _backup_signed_before_a_rotation(late, datetime(2027, 1, 4, 17, tzinfo=UTC))
    _point_at(monkeypatch, late)
    assert cli.main(["verify", "--quiet"]) == 1
    capsys.readouterr()

    _point_at(monkeypatch, home)
    assert cli.main(["restore", str(late), "--quiet"]) == 1
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err.count("\n") == 1, printed
    assert "does not verify: first bad position 1: recorded at 2027-01-04T17:00:00" in printed.err
    assert "outside the validity of its signing key" in printed.err
    assert _files(home) == before


def test_restore_prints_the_warnings_verify_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An event a server before the fix of 2026-11-30 signed past its key's close is a
    warning of `verify`, not a failure: restore puts such a backup in place and says so."""
    home = tmp_path / "home"
    _ledger(home, 3)
    early = tmp_path / "early"
    _backup_signed_before_a_rotation(early, datetime(2026, 11, 20, 17, tzinfo=UTC))
    _point_at(monkeypatch, early)
    assert cli.main(["verify", "--quiet"]) == 0
    (warning,) = [line for line in capsys.readouterr().out.splitlines() if "warning" in line]
    assert "signed outside the signing key's validity window at 1 position (1)" in warning

    _point_at(monkeypatch, home)
    assert cli.main(["restore", str(early), "--quiet"]) == 0
    printed = capsys.readouterr()
    assert printed.out.startswith("restored 1 events"), printed.out
    assert warning in printed.out.splitlines(), printed.out
