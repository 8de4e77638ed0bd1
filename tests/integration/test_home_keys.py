"""The signing keys of a ledger home as they may be found: another user's (least privilege:
the service's own user beside a home made by root, or the other way round), or another
key's file under the current key's name.

A signing key the user may not read was reported as a lost one: "restore it from a backup
made with --with-secrets, or start a new signing key with `ses-ledger keys rotate`", by
`serve` and `keys init` alike. The key is there and sound; rotating it (as its owner, since
this user cannot write the ring either) retires a good key and makes one the service still
cannot read. Now the message says the file cannot be read by this user, and to run as the
home's owner or give this user the key.

The first test's command runs in a child process whose file modes bind even when the tests
run as root (`tests/integration/test_read_only_ledger.py`).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from ledger.errors import SigningKeyError
from ledger.keys import KeyRing
from ses_ledger import cli
from tests.api.server import CLI, ledger_env
from tests.integration.test_read_only_ledger import _bound_by_permissions
from tests.ledger_helpers import register


def test_a_signing_key_this_user_cannot_read_is_not_called_lost(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key_id = KeyRing(home).init()
    private = home / "keys" / f"{key_id}.pem"
    os.chmod(private, 0o000)  # another user's key, as this user sees it
    done = subprocess.run(
        [*CLI, "keys", "init"],
        env=ledger_env(home),
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_bound_by_permissions,
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert f"cannot load the private key for {key_id}" in done.stderr
    assert str(private) in done.stderr
    assert f"cannot be read by this user (uid {os.getuid()})" in done.stderr
    assert "keys rotate" not in done.stderr and "backup" not in done.stderr


def test_a_private_key_file_of_another_key_signs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The current key's file holds another key (copied in by hand from another home, or an
    older key's file over it): it was loaded and signed with, every write was stored, and
    `verify` then failed the ledger at the first of them ("the signature does not verify"),
    a charge of tampering that stays in the log for good (RET-1). Now the key is refused
    where it is loaded: no write, and `keys init`/`serve` say which file is not which key."""
    home = tmp_path / "home"
    ring = KeyRing(home)
    old = ring.init()
    current = ring.rotate()
    (ring.dir / f"{current}.pem").write_bytes((ring.dir / f"{old}.pem").read_bytes())

    with pytest.raises(SigningKeyError, match=f"is not key {current}"):
        ring.signer()

    config = LedgerConfig(home=home, db_url=f"sqlite:///{home / 'ledger.db'}")
    app = LedgerApp(config)
    try:
        with pytest.raises(SigningKeyError):
            register(app, "E1")
        assert int(app.recorder.max_notification_id() or 0) == 0  # nothing stored
    finally:
        app.close()

    monkeypatch.setenv("SES_LEDGER_HOME", str(home))
    monkeypatch.delenv("SES_LEDGER_DB", raising=False)
    assert cli.main(["keys", "init"]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert f"{ring.dir / f'{current}.pem'} is not key {current}" in err
