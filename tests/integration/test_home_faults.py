"""The ledger's home when storage fails: a full disk, a damaged database file.

Each command that fails says so in one line (exit 69) and leaves the home as it was: before,
a full disk while `token.key` was first written left it empty, and every later start of the
server or `token issue` failed ("the token key is empty") after the space came back; `keys
rotate` left an empty `<key_id>.pem`; both printed a traceback. A damaged database made
`verify` print a traceback too.

A full disk is simulated with a file-size limit of 0 (RLIMIT_FSIZE) on the command's process:
every write to a file fails (EFBIG, where a full disk gives ENOSPC), while the directory
entries can still be made, as on a full disk.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from api.auth import decode_token, load_or_create_token_key, rotate_token_key
from ledger import files
from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from ledger.keys import KeyRing
from ses_ledger import cli
from ses_ledger.demo import SimulatedClock, run_demo
from tests.api.server import CLI, ledger_env
from tests.ledger_helpers import point_cli_at, register


def _no_room() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))


def _run(env: dict[str, str], *args: str, full: bool) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_no_room if full else None,
    )


def _files(home: Path) -> dict[str, bytes]:
    return {str(p.relative_to(home)): p.read_bytes() for p in home.rglob("*") if p.is_file()}


def _one_line_about(done: subprocess.CompletedProcess[str], path: Path) -> None:
    assert done.returncode == 69, done.stderr
    assert done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"ses-ledger: {path}: "), done.stderr


def test_a_token_key_not_written_for_lack_of_room_leaves_nothing_behind(tmp_path: Path) -> None:
    home = tmp_path / "home"
    KeyRing(home).init()
    env = ledger_env(home)
    before = _files(home)
    issue = ("token", "issue", "--subject", "auditor-1", "--role", "auditor", "--agency", "DOE")

    done = _run(env, *issue, full=True)
    assert _files(home) == before, done.stderr  # no empty token.key, no temporary file
    _one_line_about(done, home / "token.key")

    # Room again: the key is made, and the token it signs verifies.
    done = _run(env, *issue, full=False)
    assert done.returncode == 0, done.stderr
    principal = decode_token(done.stdout.strip(), load_or_create_token_key(home))
    assert principal.subject == "auditor-1"


def test_a_token_key_rotation_without_room_keeps_the_old_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    key = load_or_create_token_key(home)
    before = _files(home)
    done = _run(ledger_env(home), "token", "rotate-key", full=True)
    assert _files(home) == before and load_or_create_token_key(home) == key
    _one_line_about(done, home / "token.key")


def test_a_key_rotation_without_room_leaves_the_key_ring_as_it_was(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ring = KeyRing(home)
    first = ring.init()
    env = ledger_env(home)
    before = _files(home)

    done = _run(env, "keys", "rotate", full=True)
    assert _files(home) == before, done.stderr  # no empty .pem beside the keys
    assert ring.signer().key_id == first
    assert done.returncode == 69 and done.stdout == "", done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"ses-ledger: {ring.dir}/")

    done = _run(env, "keys", "rotate", full=False)
    assert done.returncode == 0, done.stderr
    assert ring.signer().key_id != first and len(list(ring.dir.glob("*.pem"))) == 2
    assert [p.name for p in ring.dir.iterdir() if p.name.startswith(".")] == []


def _damage(database: Path) -> None:
    """Overwrite the second half of an SQLite file (its write-ahead log folded in first)."""
    size = database.stat().st_size
    assert not Path(f"{database}-wal").exists() or Path(f"{database}-wal").stat().st_size == 0
    with database.open("r+b") as fh:
        fh.seek(size // 2)
        fh.write(b"\xa5" * (size - size // 2))


def _ledger_with_events(config: LedgerConfig, count: int) -> None:
    app = LedgerApp(config)
    for n in range(count):
        register(app, f"E{n}")
    app.close()  # the last connection folds the write-ahead log into the file


def test_a_command_on_a_damaged_database_says_so_in_one_line(
    sqlite_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _ledger_with_events(sqlite_config, 60)
    _damage(sqlite_config.sqlite_path())
    point_cli_at(monkeypatch, sqlite_config)
    assert cli.main(["projections", "rebuild"]) == 69
    printed = capsys.readouterr()
    assert printed.err == "ses-ledger: the store failed: database disk image is malformed\n"

    # verify names the damage as its finding (tests/integration/test_tamper_suite.py).
    assert cli.main(["verify", "--quiet"]) == 1
    printed = capsys.readouterr()
    assert printed.out.startswith("first bad position: ") and "damaged" in printed.out


def test_a_home_that_cannot_take_files_is_named_not_a_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a read-only file system the temporary file cannot be made, nor removed: the error
    names the file the command meant to write (the clean-up's own error hid it)."""
    home = tmp_path / "home"
    ring = KeyRing(home)
    ring.init()

    def read_only(path: Any, *_args: Any, **_kwargs: Any) -> Any:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(files.os, "open", read_only)
    monkeypatch.setattr(files.os, "unlink", read_only)
    with pytest.raises(OSError) as raised:
        rotate_token_key(home)
    assert raised.value.errno == errno.EROFS and raised.value.filename == str(home / "token.key")
    with pytest.raises(OSError) as raised:
        ring.rotate()
    assert raised.value.filename is not None
    assert Path(raised.value.filename).parent == ring.dir
    assert Path(raised.value.filename).suffix == ".pem"


def _demo_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    KeyRing(home).init()
    clock = SimulatedClock()
    app = LedgerApp(LedgerConfig(home=home, db_url=f"sqlite:///{home / 'ledger.db'}"), clock=clock)
    run_demo(app, clock, executives=3, years=6, seed=5)  # a checkpoint covers every event
    app.close()
    return home


def test_a_bundle_not_written_for_lack_of_room_leaves_the_earlier_one_whole(
    tmp_path: Path,
) -> None:
    """A full disk while `bundle export` wrote left a truncated file, and in place of an
    earlier bundle of the same name: that one was lost. (A file-size limit above SQLite's
    32 KB shared-memory file, below the bundle's size.)"""
    home = _demo_home(tmp_path)
    env = ledger_env(home)
    out = tmp_path / "bundle.json"
    export = ("bundle", "export", "--out", str(out), "--executive")
    assert _run(env, *export, "E00001", full=False).returncode == 0
    earlier = out.read_bytes()
    assert len(earlier) > 40_000

    def little_room() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (33_000, 33_000))

    done = subprocess.run(
        [*CLI, *export, "E00002"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=little_room,
    )
    assert out.read_bytes() == earlier, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle.json", "home"]
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"ses-ledger bundle export: cannot write {out}: ")


def test_a_bundle_goes_through_a_link_and_into_a_pipe_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = _demo_home(tmp_path)
    monkeypatch.setenv("SES_LEDGER_HOME", str(home))
    monkeypatch.delenv("SES_LEDGER_DB", raising=False)
    (tmp_path / "real.json").write_text("")
    (tmp_path / "link.json").symlink_to(tmp_path / "real.json")
    export = ["bundle", "export", "--executive", "E00001", "--out"]
    assert cli.main([*export, str(tmp_path / "link.json")]) == 0
    assert (tmp_path / "link.json").is_symlink()
    assert json.loads((tmp_path / "real.json").read_text())["entries"]

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()), daemon=True)
    reader.start()
    assert cli.main([*export, str(pipe)]) == 0
    reader.join(timeout=30)
    assert json.loads(received[0])["entries"] and pipe.is_fifo()
    capsys.readouterr()


def test_a_checkpoint_note_goes_through_a_link_and_into_a_pipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`checkpoint --out` renamed its temporary file over whatever the name was: a pipe's
    reader got nothing and found a plain file in the pipe's place (run as root, `--out
    /dev/stdout` would have replaced the system's /dev/stdout), and a symbolic link was
    replaced instead of the file it names being written."""
    home = _demo_home(tmp_path)
    monkeypatch.setenv("SES_LEDGER_HOME", str(home))
    monkeypatch.delenv("SES_LEDGER_DB", raising=False)
    (tmp_path / "link.note").symlink_to(tmp_path / "real.note")
    assert cli.main(["checkpoint", "--out", str(tmp_path / "link.note")]) == 0
    assert (tmp_path / "link.note").is_symlink()
    assert (tmp_path / "real.note").read_text().startswith("ses-ledger.local/ledger\n")

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()), daemon=True)
    reader.start()
    assert cli.main(["checkpoint", "--out", str(pipe)]) == 0
    reader.join(timeout=30)
    assert pipe.is_fifo() and received and received[0].startswith(b"ses-ledger.local/ledger\n")
    capsys.readouterr()
