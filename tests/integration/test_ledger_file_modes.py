"""The SQLite file of a ledger is personnel data: created owner-only (0600), with its -wal and
-shm, whatever the umask and the home directory's mode; an existing file keeps its mode."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from ledger.application import LedgerApp
from ledger.backup import backup
from ledger.config import LedgerConfig
from ledger.keys import KeyRing
from ses_ledger.cli_serve import readable_by_others
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
    KeyRing(home).init()
    done = subprocess.run(
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
