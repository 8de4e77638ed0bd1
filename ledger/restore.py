"""Restoring an SQLite ledger home from a backup (`ses-ledger backup`), whole or not at all.

By hand this went wrong: a `ledger.db-wal` left by the old server beside a copied-back
`ledger.db` is applied to it by SQLite at the next open (a restored 20-event backup came up
as the old 40-event ledger), and a file copied while a server ran was a torn mix. So:

1. The backup is checked before anything in the home is touched: SQLite's `quick_check`,
   then every hash, chain link, signature, Merkle leaf and checkpoint, and each event's
   `recorded_at` against its signing key's validity in the backup's key ring
   (`verify_with_ring`, as `ses-ledger verify` does: the key windows too; its warnings are
   passed on), read-only (a backup on read-only media is read as it is).
2. The home must not be in use. A process that has the ledger open in WAL mode (a server,
   a projector, any command, the `sqlite3` shell) holds a shared lock on the database file
   for as long as it has it open, between transactions too; a connection in SQLite's
   EXCLUSIVE locking mode cannot get its exclusive lock while one does. That lock is the
   test, and while it is held the old file's write-ahead log is folded into it, so the file
   kept aside is the old ledger whole (SQLite removes the emptied log when that connection
   closes). A process that opens the ledger in the instant between that check and the
   rename is not seen: stop the server first, as the command says.
3. The replaced ledger is never deleted: it is renamed `ledger.db.replaced-<UTC time>` in
   the home (with its write-ahead log, if one appeared meanwhile, as that file's own `-wal`),
   and a stale `-shm` index is removed. The restored file is a private (0600) copy made with
   SQLite's backup API beside the ledger and checked, then renamed into place in one step.
4. Keys. The public key ring is the backup's unless the home's already holds every key of
   the backup (the same ledger, keys rotated since or not: keeping it keeps the newer key
   and the retirement of the older). A replaced ring is kept as `keyring.json.replaced-...`.
   Private keys (`--with-secrets` backups) are added when the home lacks them (0600, in a
   0700 `keys/`); one that differs from the home's file of the same name is refused. The
   token key is restored only into a home without one: an older token key would make tokens
   valid again that `token rotate-key` revoked.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger.backup import damage, holds_ledger
from ledger.config import TOKEN_KEY_FILE, LedgerConfig, make_private_dir, make_private_file
from ledger.errors import LedgerError, StoreUnavailable
from ledger.files import sync_directory, write_file
from ledger.keys import KeyRing
from ledger.recorders import SQLITE_EVENTS_TABLE, LedgerTables


class RestoreRefused(LedgerError):
    """Nothing was restored, and the home is as it was (the reason says why)."""


class BackupDoesNotVerify(LedgerError):
    """The backup's ledger failed `verify_ledger`: nothing was restored."""


#: Seconds to wait for another process to let go of the ledger before refusing.
BUSY_TIMEOUT = 1.0


@dataclass(frozen=True)
class RestoreReport:
    database: Path
    #: Events checked in the backup, the tree size and root of its Merkle log.
    checked: int
    tree_size: int
    root: str
    #: Where the replaced ledger was kept (None: the home had none).
    kept: Path | None
    #: What else was done, one line each (files placed, kept aside, removed).
    actions: tuple[str, ...]
    #: The current signing key has no private key in the home (`keys rotate` before serving).
    needs_signing_key: bool
    #: What `verify` warns of in the restored ledger (it verified nonetheless).
    warnings: tuple[str, ...] = ()


def restore(
    config: LedgerConfig,
    backup_dir: Path,
    *,
    progress: Callable[[int], None] | None = None,
    checked: Callable[[int], Any] | None = None,
) -> RestoreReport:
    """Replace the SQLite ledger of `config` by the backup in `backup_dir` (see the module).

    `checked(total)` is called once the backup's size is known, `progress(position)` while
    it is verified. Raises RestoreRefused (nothing touched), BackupDoesNotVerify, or
    StoreUnavailable (the backup's file is damaged).
    """
    if config.is_postgres:
        raise RestoreRefused(
            "the store is PostgreSQL: restore its schema with pg_restore (or psql), and copy "
            "the backup's keys/ into the home"
        )
    target = config.sqlite_path()
    source = _backup_database(backup_dir, target)
    verified = _verify_backup(config, backup_dir, progress, checked)
    keys = _KeyPlan(config.home, backup_dir)  # refusals here touch nothing either
    # (A ledger found free has its write-ahead log folded in as its connection closes: its
    # content is the same, whatever follows.)
    _refuse_if_in_use(target, fold=False)
    projector = _ProjectorLock(target)  # a server's, held for its life: refused if held

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    partial = target.with_name(f".{target.name}.restoring")
    actions: list[str] = []
    kept = None
    try:
        make_private_dir(target.parent)  # a lost home is made again, owner-only
        _copy_checked(source, partial, verified.checked_head)
        if target.exists():
            _refuse_if_in_use(target, fold=True)  # and folds the old log into the old file
            kept = _free_name(target.with_name(f"{target.name}.replaced-{stamp}"))
            os.rename(target, kept)
            actions.append(f"kept the replaced ledger as {kept}")
        actions += _clear_stale_files(target, kept, stamp)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        if kept is not None and not os.path.lexists(target):
            # Stopped between the two renames (Ctrl-C, a failure clearing the stale files):
            # the home held no ledger.db at all. The replaced one goes back (its log was
            # folded in, so the -wal/-shm removed were stale): nothing changed.
            os.rename(kept, target)
        raise
    finally:
        projector.release()
    sync_directory(target.parent)
    actions.append(f"placed the backup's ledger at {target} (mode 0600)")
    # Under the key ring's lock: a `keys rotate` between its two writes of the ring put the
    # home's old ring back over the one placed here (the restored ledger's keys gone).
    with keys.home_ring.locked():
        actions += keys.apply(stamp)
    return RestoreReport(
        database=target,
        checked=verified.checked,
        tree_size=verified.tree_size,
        root=verified.root,
        kept=kept,
        actions=tuple(actions),
        needs_signing_key=keys.needs_signing_key(),
        warnings=verified.warnings,
    )


def _backup_database(backup_dir: Path, target: Path) -> Path:
    if not backup_dir.is_dir():
        raise RestoreRefused(f"{backup_dir} is not a directory: name a `ses-ledger backup` one")
    source = backup_dir / "ledger.db"
    if not source.is_file():
        raise RestoreRefused(f"{backup_dir} is not a backup: it holds no ledger.db")
    if not KeyRing(backup_dir).exists():
        raise RestoreRefused(
            f"{backup_dir} is not a backup: it holds no keys/keyring.json, without which no "
            "signature in it can be checked"
        )
    if target.exists() and os.path.samefile(source, target):
        raise RestoreRefused(f"{backup_dir} is the ledger's own home: nothing to restore")
    return source


@dataclass(frozen=True)
class _Verified:
    checked: int
    tree_size: int
    root: str
    #: The highest position in the backup.
    checked_head: int
    #: What `verify` warns of in the backup (it still verifies).
    warnings: tuple[str, ...]


def _verify_backup(
    config: LedgerConfig,
    backup_dir: Path,
    progress: Callable[[int], None] | None,
    checked: Callable[[int], Any] | None,
) -> _Verified:
    from ledger.application import LedgerApp
    from ledger.verify import readable_head, verify_with_ring

    copy = LedgerConfig(
        home=backup_dir,
        db_url=f"sqlite:///{backup_dir / 'ledger.db'}",
        origin=config.origin,
        read_only=True,  # nothing is written into the backup, on read-only media too
    )
    _quick_check(copy.sqlite_database(), backup_dir / "ledger.db")
    app = LedgerApp(copy)
    try:
        head = readable_head(app.recorder)
        if checked is not None:
            checked(head)
        report = verify_with_ring(app.recorder, app.keyring, copy.origin, progress)
    finally:
        app.close()
    if not report.ok:
        raise BackupDoesNotVerify(
            f"the backup in {backup_dir} does not verify: first bad position "
            f"{report.first_bad_position}: {report.problem}; nothing was restored"
        )
    return _Verified(
        report.checked, report.tree_size, str(report.root), head, tuple(report.warnings)
    )


def _quick_check(database: str, path: Path) -> None:
    """SQLite's own check of the file, and that it is a ledger (its tables are there): a
    file that is not one would otherwise be given the ledger's tables by opening it."""
    try:
        with closing(sqlite3.connect(database, uri=True)) as db:
            problems = damage(db)
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    except sqlite3.Error as exc:
        raise StoreUnavailable(
            f"cannot read the backup {path}: {exc}; nothing was restored"
        ) from exc
    if problems is not None:
        raise StoreUnavailable(f"the backup {path} is damaged: {problems}; nothing was restored")
    if not holds_ledger(tables):
        raise RestoreRefused(f"{path} is not a ledger's database (no ledger tables in it)")


def _refuse_if_in_use(target: Path, *, fold: bool) -> None:
    """RestoreRefused when a process has the ledger at `target` open (see the module);
    with `fold`, the old file's write-ahead log is folded into it while the lock is held."""
    if not target.exists():
        return
    try:
        db = sqlite3.connect(target, timeout=BUSY_TIMEOUT, isolation_level=None)
    except sqlite3.Error as exc:
        raise RestoreRefused(f"cannot open the ledger at {target}: {exc}") from exc
    try:
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        db.execute("BEGIN EXCLUSIVE")
        db.execute("COMMIT")
        if fold:
            busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:
                raise sqlite3.OperationalError("database is locked")
    except sqlite3.DatabaseError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise RestoreRefused(
                f"the ledger at {target} is in use (a server, a projector or another command "
                "has it open): stop it, then restore; nothing was changed"
            ) from None
        # The old file is damaged: it is kept aside as it is (its log too), not folded.
        if fold:
            return
    finally:
        db.close()


class _ProjectorLock:
    """The lock a running server's projecting worker holds on `<ledger.db>.projector.lock`
    for its whole life (`api.projector.FileLeadership`): taken here for the restore, so a
    server is refused even before it has the database open, and one that starts meanwhile
    does not project until the restored file is in place. Not made when missing."""

    def __init__(self, target: Path) -> None:
        self._fd: int | None = None
        path = Path(f"{target}.projector.lock")
        try:
            self._fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.release()
            raise RestoreRefused(
                f"the ledger at {target} is in use by a server ({path} is held): stop it, "
                "then restore; nothing was changed"
            ) from None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _copy_checked(source: Path, partial: Path, head: int) -> None:
    """The backup's database into `partial` (0600), by SQLite's backup API, checked."""
    partial.unlink(missing_ok=True)  # left by a restore that was killed
    make_private_file(partial)
    reader = LedgerConfig(home=source.parent, db_url=f"sqlite:///{source}", read_only=True)
    try:
        with (
            closing(sqlite3.connect(reader.sqlite_database(), uri=True)) as src,
            closing(sqlite3.connect(partial)) as copy,
        ):
            src.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")  # no -wal beside it before it is placed
            problems = damage(copy)
            events = LedgerTables("sqlite", events_table=SQLITE_EVENTS_TABLE).events
            copied = int(copy.execute(f"SELECT max(rowid) FROM {events}").fetchone()[0] or 0)
    except sqlite3.Error as exc:
        raise StoreUnavailable(
            f"cannot copy the backup {source}: {exc}; nothing was restored"
        ) from exc
    if problems is not None or copied != head:
        raise StoreUnavailable(
            f"the copy of {source} does not match what was verified (it changed meanwhile?); "
            "nothing was restored"
        )
    os.chmod(partial, 0o600)
    fd = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _free_name(path: Path) -> Path:
    """`path`, or `path.N` if taken (two restores in one second): nothing is overwritten."""
    candidate, n = path, 1
    while candidate.exists() or Path(f"{candidate}-wal").exists():
        candidate, n = path.with_name(f"{path.name}.{n}"), n + 1
    return candidate


def _clear_stale_files(target: Path, kept: Path | None, stamp: str) -> list[str]:
    """No -wal or -shm of the old ledger is left where SQLite would apply it to the restored
    file. A log that still holds something (it appeared after the fold, or there was no
    ledger beside it) is kept, never deleted: as the kept file's own log, or by itself."""
    done = []
    wal, shm = Path(f"{target}-wal"), Path(f"{target}-shm")
    if wal.exists():
        if wal.stat().st_size == 0:
            wal.unlink()
            done.append(f"removed the empty {wal}")
        else:
            owner = kept if kept is not None else target.with_name(f"{target.name}.orphan-{stamp}")
            os.rename(wal, f"{owner}-wal")
            done.append(f"kept the old write-ahead log {wal} as {owner}-wal")
    if shm.exists():
        shm.unlink()  # an index SQLite rebuilds; no data
        done.append(f"removed the stale {shm}")
    return done


class _KeyPlan:
    """What restoring the keys will do, decided (and refused) before anything is touched."""

    def __init__(self, home: Path, backup_dir: Path) -> None:
        self.home_ring, self.backup_ring = KeyRing(home), KeyRing(backup_dir)
        self.home = home
        backup_keys = {
            k.key_id: k.public_key.public_bytes_raw() for k in self.backup_ring.public_keys()
        }
        home_keys: dict[str, bytes] = {}
        if self.home_ring.exists():
            home_keys = {
                k.key_id: k.public_key.public_bytes_raw() for k in self.home_ring.public_keys()
            }
        self.keep_ring = bool(home_keys) and all(
            home_keys.get(kid) == raw for kid, raw in backup_keys.items()
        )
        self.secrets: list[tuple[Path, Path]] = []
        for pem in sorted(self.backup_ring.dir.glob("*.pem")):
            there = self.home_ring.dir / pem.name
            if there.exists():
                if there.read_bytes() != pem.read_bytes():
                    raise RestoreRefused(
                        f"{there} differs from the backup's {pem}: a key file is never "
                        "replaced; nothing was changed"
                    )
                continue
            self.secrets.append((pem, there))
        token = backup_dir / TOKEN_KEY_FILE
        self.token = token if token.is_file() else None

    def apply(self, stamp: str) -> list[str]:
        done = []
        if self.secrets:
            if not self.home_ring.dir.exists():
                self.home_ring.dir.mkdir(mode=0o700, parents=True)
            os.chmod(self.home_ring.dir, 0o700)
        for pem, there in self.secrets:
            write_file(there, pem.read_bytes(), 0o600, replace=False)
            done.append(f"restored the private key {there} (mode 0600)")
        if self.keep_ring:
            done.append(
                f"kept the home's key ring {self.home_ring.index}: it holds every key of the backup"
            )
        else:
            if self.home_ring.exists():
                aside = _free_name(self.home_ring.index.with_name(f"keyring.json.replaced-{stamp}"))
                os.rename(self.home_ring.index, aside)
                done.append(f"kept the replaced key ring as {aside}")
            if not self.home_ring.dir.exists():
                self.home_ring.dir.mkdir(mode=0o700, parents=True)
            data = self.backup_ring.index.read_bytes()
            write_file(self.home_ring.index, data, 0o644, replace=True)
            done.append(f"placed the backup's key ring at {self.home_ring.index}")
        if self.token is not None:
            there = self.home / TOKEN_KEY_FILE
            if there.exists():
                done.append(
                    f"kept the home's {there}: the backup's older one would make tokens "
                    "revoked since valid again"
                )
            else:
                write_file(there, self.token.read_bytes(), 0o600, replace=False)
                done.append(f"restored the token key {there} (mode 0600)")
        return done

    def needs_signing_key(self) -> bool:
        try:
            self.home_ring.signer()
        except LedgerError:
            return True
        return False
