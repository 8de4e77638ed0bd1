"""A ledger home run by a user that does not own it (least privilege: the service's own user
beside a home made by root, or the other way round).

A signing key the user may not read was reported as a lost one: "restore it from a backup
made with --with-secrets, or start a new signing key with `ses-ledger keys rotate`", by
`serve` and `keys init` alike. The key is there and sound; rotating it (as its owner, since
this user cannot write the ring either) retires a good key and makes one the service still
cannot read. Now the message says the file cannot be read by this user, and to run as the
home's owner or give this user the key.

The command runs in a child process whose file modes bind even when the tests run as root
(`tests/integration/test_read_only_ledger.py`).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ledger.keys import KeyRing
from tests.api.server import CLI, ledger_env
from tests.integration.test_read_only_ledger import _bound_by_permissions


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
