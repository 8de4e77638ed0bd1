"""The SQLite file of a ledger is personnel data: created owner-only (0600), with its -wal and
-shm, whatever the umask and the home directory's mode; an existing file keeps its mode."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
from pathlib import Path

from api.auth import load_or_create_token_key
from api.projector import FileLeadership
from ledger.application import LedgerApp
from ledger.backup import backup
from ledger.config import LedgerConfig
from ledger.keys import KeyRing
from ledger.write_gate import write_gate
from ses_ledger.cli_serve import exposed_secrets, readable_by_others
from tests.api.server import CLI, ledger_env
from tests.ledger_helpers import register


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _umask_022() -> None:
    os.umask(0o022)


def test_a_ledger_made_in_an_existing_open_home_is_owner_only(tmp_path: Path) -> None:
    """In a home of 0755 that existed (only homes the tool makes are 0700), `ledger.db` was
    made 0644, and SQLite gave its -wal and -shm that mode: every local user could read
    the appraisals."""
    home = tmp_path / "home"
    home.mkdir()
    os.chmod(home, 0o755)
    done = subprocess.run(  # the demo makes its own key, valid from before its history
        [*CLI, "demo", "--executives", "1", "--years", "1"],
        env=ledger_env(home),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_umask_022,
    )
    assert done.returncode == 0, done.stderr
    assert _mode(home / "ledger.db") == 0o600
    # While it is open, the write-ahead log and the shared-memory index exist: theirs too.
    config = LedgerConfig(home=home, db_url=f"sqlite:///{home / 'ledger.db'}")
    app = LedgerApp(config)
    register(app, "E-MODES")
    try:
        for name in ("ledger.db-wal", "ledger.db-shm"):
            assert _mode(home / name) == 0o600, name
    finally:
        app.close()
    assert _mode(home / "ledger.db") == 0o600 and _mode(home) == 0o755  # not ours to change


def test_an_existing_ledger_keeps_its_mode_and_serve_says_others_may_read_it(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    KeyRing(home).init()
    config = LedgerConfig(home=home, db_url=f"sqlite:///{home / 'ledger.db'}")
    LedgerApp(config).close()
    assert readable_by_others(config) is None  # made 0600 by the tool
    os.chmod(home / "ledger.db", 0o640)  # the owner's choice (a backup agent's group)
    app = LedgerApp(config)
    register(app, "E-KEPT")
    app.close()
    assert _mode(home / "ledger.db") == 0o640  # never changed silently
    warning = readable_by_others(config)
    assert warning is not None and "mode 0640" in warning and "chmod 600" in warning


def test_a_backup_into_an_existing_open_directory_is_owner_only(
    sqlite_config: LedgerConfig, tmp_path: Path
) -> None:
    register(LedgerApp(sqlite_config), "E1")
    out = tmp_path / "shared"
    out.mkdir()
    os.chmod(out, 0o755)
    old = os.umask(0o022)
    try:
        backup(sqlite_config, out)
    finally:
        os.umask(old)
    assert _mode(out / "ledger.db") == 0o600


def test_serve_says_when_others_may_read_or_replace_the_secrets(tmp_path: Path) -> None:
    """A home that existed, or keys copied in by hand, keep their modes (README: the secrets
    are 0600, the home 0700). A world-readable token key (anyone could issue an admin
    token), private key or world-writable home was served without a word; now each is
    named where the server starts, as a readable `ledger.db` is."""
    home = tmp_path / "home"
    ring = KeyRing(home)
    ring.init()
    load_or_create_token_key(home)
    config = LedgerConfig(home=home, db_url=f"sqlite:///{home / 'ledger.db'}")
    LedgerApp(config).close()
    assert exposed_secrets(config) == []  # as the tool makes them
    pem = next((home / "keys").glob("*.pem"))
    os.chmod(home / "token.key", 0o644)
    os.chmod(pem, 0o640)
    os.chmod(home, 0o777)
    os.chmod(home / "keys", 0o775)
    warnings = exposed_secrets(config)
    assert len(warnings) == 4, warnings
    assert f"{home} has mode 0777" in warnings[0] and f"chmod 700 {home}" in warnings[0]
    assert f"{home / 'keys'} has mode 0775" in warnings[1]
    # each says what it holds: the token key is in the home, not in keys/
    assert "replace the token key or the keys directory in it" in warnings[0]
    assert "replace the signing keys or key ring in it" in warnings[1]
    assert f"{home / 'token.key'} has mode 0644" in warnings[2] and "chmod 600" in warnings[2]
    assert f"{pem} has mode 0640" in warnings[3]
    assert _mode(home / "token.key") == 0o644  # never changed silently
    with socket.socket() as taken:  # serve warns before it binds: a port in use ends it
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = subprocess.run(
            [*CLI, "serve", "--port", str(taken.getsockname()[1])],
            env=ledger_env(home),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1, done.stderr
    for warning in warnings:
        assert f"ses-ledger serve: warning: {warning}" in done.stderr
    os.chmod(home, 0o700)
    os.chmod(home / "keys", 0o700)
    assert len(exposed_secrets(config)) == 2


def test_the_lock_files_are_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    """An `flock` needs only an open file: the write lock and the projector lock were made
    under the umask (0644, or 0666 under 0000), so in a home of 0755 that existed any local
    user could open `ledger.db.write.lock`, take the lock and hold every write up."""
    home = tmp_path / "home"
    home.mkdir()
    os.chmod(home, 0o755)
    KeyRing(home).init()
    config = LedgerConfig(home=home, db_url=f"sqlite:///{home / 'ledger.db'}")
    old = os.umask(0)
    try:
        app = LedgerApp(config)
        with write_gate(app):
            register(app, "E-LOCKS")
        leader = FileLeadership(Path(f"{home / 'ledger.db'}.projector.lock"))
        assert leader.try_acquire()
        leader.release()
        app.close()
    finally:
        os.umask(old)
    assert _mode(home / "ledger.db.write.lock") == 0o600
    assert _mode(home / "ledger.db.projector.lock") == 0o600
