"""A ledger that cannot be written (an archive handed over on read-only media, or with its
permissions taken away) is read by the commands that only read: `verify`, `replay`, `audit`,
`bundle export`. They failed ("attempt to write a readonly database", exit 69) because
SQLite in WAL mode makes -wal and -shm files beside the database; the bundle's subject index
and the audit trail's read models were written too. Commands that write still fail in one
line (exit 69), saying why.

The commands run in a child process whose permissions bind even when the tests run as root:
it gives up the capabilities that let root pass over file modes (CAP_DAC_OVERRIDE,
CAP_DAC_READ_SEARCH, CAP_FOWNER) before it starts, as a read-only bind mount would bind it.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger.application import LedgerApp
from ledger.bundle import merkle_log
from ledger.config import LedgerConfig
from ledger.keys import KeyRing
from ses_ledger.demo import SimulatedClock, run_demo
from tests.api.server import CLI, ledger_env
from tests.ledger_helpers import register

#: linux/capability.h and linux/prctl.h
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER = 1, 2, 3
_PR_CAPBSET_DROP = 24


def _bound_by_permissions() -> None:
    """In the child, before it runs the command: file modes bind root too (capabilities
    dropped from the bounding set are not granted again when the command is executed)."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def _run(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env=ledger_env(home),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_bound_by_permissions,
    )


def _config(home: Path) -> LedgerConfig:
    return LedgerConfig(home=home, db_url=f"sqlite:///{home / 'ledger.db'}")


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("original") / "home"
    clock = SimulatedClock()
    # The key is valid from the simulated start: the demo's events are recorded in the past,
    # and an event recorded before its key's valid_from would be reported by verify.
    KeyRing(home).init(clock.now)
    app = LedgerApp(_config(home), clock=clock)
    # Nothing recorded after now, as the command line's demo: `verify` warns of entries
    # recorded ahead of its clock.
    run_demo(app, clock, executives=3, years=2, seed=5, until=datetime.now(UTC))
    log = merkle_log(app)
    log.integrate()
    log.issue_checkpoint(app.signer, app.config.origin)  # covers every event
    app.close()  # the write-ahead log folded into the file, and removed
    assert not Path(f"{home}/ledger.db-wal").exists()
    return home


def _archive(original: Path, where: Path, *, directory_writable: bool = False) -> Path:
    """A copy of `original` whose ledger file (and, unless told, its directory) cannot be
    written."""
    home = where / "archive"
    shutil.copytree(original, home)
    (home / "ledger.db.write.lock").unlink(missing_ok=True)
    os.chmod(home / "ledger.db", 0o444)
    if not directory_writable:
        os.chmod(home, 0o555)
    return home


@pytest.fixture
def archive(original: Path, tmp_path: Path) -> Iterator[Path]:
    home = _archive(original, tmp_path)
    yield home
    os.chmod(home, 0o755)  # so that pytest can remove it


def _listing(home: Path) -> list[str]:
    return sorted(p.name for p in home.iterdir())


def test_the_child_is_bound_by_permissions(archive: Path) -> None:
    """The premise of the other tests: the command cannot write the archive."""
    done = subprocess.run(
        [CLI[0], "-c", f"open({str(archive / 'new')!r}, 'w')"],
        capture_output=True,
        text=True,
        preexec_fn=_bound_by_permissions,
    )
    assert done.returncode != 0 and "PermissionError" in done.stderr


def test_read_only_commands_read_an_archive_and_leave_it_as_it_was(
    original: Path, archive: Path, tmp_path: Path
) -> None:
    before = _listing(archive)
    head = (
        sqlite3.connect(original / "ledger.db")
        .execute("SELECT max(rowid) FROM stored_events")
        .fetchone()[0]
    )

    done = _run(archive, "verify", "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"ledger verified: {head} events"), done.stdout

    done = _run(archive, "audit", "--executive", "E00001")
    assert done.returncode == 0, done.stderr
    assert "every one verifies" in done.stderr and "E00001" in done.stdout

    done = _run(archive, "replay", "--executive", "E00001", "--as-of-position", str(head))
    assert done.returncode == 0, done.stderr
    assert "FinalRatingAssigned" in done.stdout

    # The bundle holds what one exported from the writable ledger holds.
    for home, out in ((archive, tmp_path / "archived.json"), (original, tmp_path / "live.json")):
        done = _run(home, "bundle", "export", "--executive", "E00001", "--out", str(out))
        assert done.returncode == 0, done.stderr
    archived = json.loads((tmp_path / "archived.json").read_text())
    live = json.loads((tmp_path / "live.json").read_text())
    assert archived["entries"] and archived["entries"] == live["entries"]

    assert _listing(archive) == before  # no -wal, no -shm, no lock file left behind


def test_a_read_only_file_in_a_writable_directory_is_read_too(
    original: Path, tmp_path: Path
) -> None:
    home = _archive(original, tmp_path, directory_writable=True)
    done = _run(home, "verify", "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ledger verified: ")


def test_writing_commands_on_an_archive_fail_in_one_line(archive: Path) -> None:
    before = _listing(archive)
    for command in (["checkpoint"], ["projections", "rebuild"], ["bundle", "reindex"]):
        done = _run(archive, *command)
        assert done.returncode == 69, (command, done.stderr)
        assert done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
        assert done.stderr.startswith("ses-ledger: ") and "readonly database" in done.stderr
        assert "cannot be written, and this command writes" in done.stderr
    assert _listing(archive) == before


def test_a_write_ahead_log_that_cannot_be_read_is_refused_not_ignored(
    original: Path, tmp_path: Path
) -> None:
    """A ledger copied while it was open: its -wal holds committed events, and without its
    -shm SQLite cannot read them in a directory it cannot write. Reading the file alone
    (immutable) would verify a ledger without them: refused, saying what to do."""
    live = tmp_path / "live"
    shutil.copytree(original, live)
    app = LedgerApp(_config(live))
    register(app, "E-IN-THE-LOG")  # in the write-ahead log while the ledger is open
    assert Path(f"{live}/ledger.db-wal").stat().st_size > 0
    home = tmp_path / "archive"
    home.mkdir()
    for name in ("ledger.db", "ledger.db-wal"):
        shutil.copy(live / name, home / name)
    shutil.copytree(live / "keys", home / "keys")
    app.close()
    os.chmod(home, 0o555)
    try:
        done = _run(home, "verify", "--quiet")
    finally:
        os.chmod(home, 0o755)
    assert done.returncode == 69 and done.stderr.count("\n") == 1, done.stderr
    assert "write-ahead log" in done.stderr and "copy the ledger" in done.stderr


def test_a_bundle_no_checkpoint_of_the_archive_covers_is_refused_in_one_line(
    original: Path, tmp_path: Path
) -> None:
    """A bundle needs a checkpoint covering its entries; an archive cannot store a new one."""
    live = tmp_path / "live"
    shutil.copytree(original, live)
    app = LedgerApp(_config(live))
    register(app, "E-AFTER")
    merkle_log(app).integrate()
    app.close()
    home = _archive(live, tmp_path)
    try:
        done = _run(home, "bundle", "export", "--executive", "E-AFTER", "--out", "/dev/null")
    finally:
        os.chmod(home, 0o755)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "cannot be written to store a new one" in done.stderr


def test_a_backup_on_read_only_media_is_restored(
    original: Path, archive: Path, tmp_path: Path
) -> None:
    """`restore` checks and copies the backup without writing beside it."""
    before = _listing(archive)
    home = tmp_path / "restored"
    done = _run(home, "restore", str(archive), "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("restored ") and _listing(archive) == before
    done = _run(home, "verify", "--quiet")
    assert done.returncode == 0 and done.stdout.startswith("ledger verified: "), done.stderr


def test_an_archive_is_backed_up(archive: Path, tmp_path: Path) -> None:
    """A backup of a read-only home (a ledger on read-only media, or a home only readable
    by the backup's user): the key ring's lock is let go of there (`KeyRing.locked`), but
    the database was opened for writing, and with no -wal beside it SQLite failed: "cannot
    back up .../ledger.db into DIR: attempt to write a readonly database", exit 69, as if
    DIR could not be written. Now it is read as `verify` reads it."""
    before = _listing(archive)
    out = tmp_path / "backup"
    done = _run(archive, "backup", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("backed up positions 1..") and _listing(archive) == before
    done = _run(out, "verify", "--quiet")
    assert done.returncode == 0 and done.stdout.startswith("ledger verified: "), done.stderr


def _digests(stdout: str) -> dict[str, str]:
    return dict(line.split() for line in stdout.splitlines())


def test_projections_status_and_digest_read_an_archive(original: Path, tmp_path: Path) -> None:
    """`projections status` and `projections digest` only read (`projections rebuild` and
    `project` write): on an archive they failed like a writing command (exit 69, "attempt to
    write a readonly database"). An archive whose read models were built reports them as
    stored; one without them reports every projection at 0, behind the head, and
    `digest --catch-up` builds them in memory from the log: the digests a writable copy
    gives after catching up."""
    built = tmp_path / "built"
    shutil.copytree(original, built)
    done = _run(built, "projections", "digest", "--catch-up")
    assert done.returncode == 0, done.stderr
    live = _digests(done.stdout)
    status = _run(built, "projections", "status")
    assert status.returncode == 0, status.stderr

    for source, projected in ((built, True), (original, False)):
        home = _archive(source, tmp_path / source.name)
        try:
            before = _listing(home)
            done = _run(home, "projections", "status", "--max-lag", "0")
            if projected:
                assert done.returncode == 0 and done.stdout == status.stdout, done.stderr
            else:
                assert done.returncode == 1, done.stderr
                assert "more than 0 events behind" in done.stderr
                rows = done.stdout.splitlines()[1:]
                assert rows and all(r.split()[1] == "0" and r.endswith("behind") for r in rows)
            done = _run(home, "projections", "digest")
            assert done.returncode == 0, done.stderr
            assert (_digests(done.stdout) == live) is projected
            # The digests of read models at position 0 are said to be that.
            assert ("digests of read models at position 0" in done.stderr) is not projected
            done = _run(home, "projections", "digest", "--catch-up")
            assert done.returncode == 0, done.stderr
            assert _digests(done.stdout) == live
            assert _listing(home) == before
        finally:
            os.chmod(home, 0o755)


def test_projections_status_says_which_read_models_an_older_build_left_stale(
    original: Path, tmp_path: Path
) -> None:
    """A ledger written and projected by an older build holds read models at their older
    versions (current_ratings 1 before d4fdd4b; compliance 1-4). `projections status` did
    not say so: on a ledger it can write it dropped and reset them itself (logging
    'rebuilding from 0', rebuilding nothing) and showed them at 0, 'behind'; on an archive
    it showed every projection, the current ones too, at 0 and 'behind'. It now only reads,
    and reports each as stored: 'stale (version 1 -> 2)', the others at their positions."""
    older = tmp_path / "older"
    shutil.copytree(original, older)
    done = _run(older, "projections", "rebuild")
    assert done.returncode == 0, done.stderr
    head = dict(_status_rows(_run(older, "projections", "status").stdout))["audit"][1]
    database = older / "ledger.db"
    with closing(sqlite3.connect(database)) as db:  # as a build before d4fdd4b left it
        db.execute("UPDATE proj_tracking SET version = 1 WHERE name = 'current_ratings'")
        db.commit()
        rows = db.execute("SELECT count(*) FROM proj_cr_executives").fetchone()[0]
    assert rows > 0
    for home in (older, _archive(older, tmp_path / "archived")):
        done = _run(home, "projections", "status", "--max-lag", "1000")
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert done.stderr.count("\n") == 1 and "current_ratings stale" in done.stderr
        status = dict(_status_rows(done.stdout))
        assert status["current_ratings"] == [head, head, "0", "stale (version 1 -> 2)"]
        for name in ("removal_history", "compliance", "audit"):
            assert status[name] == [head, head, "0", "ok"], status
    os.chmod(tmp_path / "archived" / "archive", 0o755)
    with closing(sqlite3.connect(database)) as db:  # status changed nothing
        assert db.execute("SELECT count(*) FROM proj_cr_executives").fetchone()[0] == rows
        version = "SELECT version FROM proj_tracking WHERE name = 'current_ratings'"
        assert db.execute(version).fetchone()[0] == 1


def _status_rows(stdout: str) -> list[tuple[str, list[str]]]:
    rows = []
    for line in stdout.splitlines()[1:]:
        name, position, head, lag, state = line.split(maxsplit=4)
        rows.append((name, [position, head, lag, state]))
    return rows


@pytest.mark.parametrize("name", ["arch\udcff", "archivé"], ids=["not-utf8", "utf8"])
def test_an_archive_whose_path_is_no_utf8_text_is_read(
    original: Path, tmp_path: Path, name: str
) -> None:
    """A path is bytes: a directory named on another system (Latin-1 `\\xff`), or any name
    beyond ASCII under LC_ALL=C with PYTHONUTF8=0, reaches Python as text with surrogates,
    which the read-only URI's percent-encoding refused as UTF-8: `verify` of such an archive
    ended in a UnicodeEncodeError traceback (found running the commands on a read-only copy
    of a demo home under such names, qa-encoding). The URI now encodes the path's bytes."""
    where = tmp_path / name
    where.mkdir()
    home = _archive(original, where)
    try:
        done = subprocess.run(
            [*CLI, "verify", "--quiet"],
            env={**ledger_env(home), "LC_ALL": "C", "PYTHONUTF8": "0"},
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=_bound_by_permissions,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("ledger verified: ")
    finally:
        os.chmod(home, 0o755)
