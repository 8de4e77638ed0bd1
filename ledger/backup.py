"""An online backup of an SQLite ledger, into a directory that is itself a ledger home.

SQLite's backup API (`sqlite3.Connection.backup`) copies a consistent snapshot of the
database while the server goes on writing; copying `ledger.db` as a file beside its
write-ahead log would not be one. The public key ring (`keys/keyring.json`) always goes
with it: without it no signature in the copy can be checked, and `SES_LEDGER_HOME=DIR
ses-ledger verify` checks the copy like any ledger. Secrets (the signing keys and the
token key) only when asked: backups are often kept where secrets should not be, and a
ledger restored without them starts a new signing key (`ses-ledger keys rotate`; earlier
events keep verifying against the kept public keys) and issues new tokens.

On PostgreSQL the database's own tools do this job (`pg_dump` of the ledger's schema).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Collection
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from ledger.config import TOKEN_KEY_FILE, LedgerConfig, make_private_dir, make_private_file
from ledger.errors import LedgerError, StoreUnavailable
from ledger.files import sync_directory, write_file
from ledger.keys import KeyRing
from ledger.recorders import SQLITE_EVENTS_TABLE, LedgerTables


class BackupRefused(LedgerError):
    """A backup was not made (the target is not empty, the store is not SQLite)."""


@dataclass(frozen=True)
class BackupReport:
    database: Path
    #: The highest position in the copy (0 for an empty ledger).
    head: int
    #: The newest signed checkpoint in the copy (tree size), if any.
    checkpoint: int | None
    #: Files copied besides the database, relative to the backup directory.
    files: tuple[str, ...]


def backup(config: LedgerConfig, out: Path, *, with_secrets: bool = False) -> BackupReport:
    """Copy the ledger under `config` into the new or empty directory `out`."""
    if config.is_postgres:
        raise BackupRefused(
            "the store is PostgreSQL: back it up with pg_dump (the ledger's schema), and "
            f"copy {KeyRing(config.home).dir} beside it"
        )
    source = config.sqlite_path()
    if not source.is_file():
        raise StoreUnavailable(f"there is no ledger at {source}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise BackupRefused(f"{out} is not an empty directory: a backup goes into a new one")
    made = not out.exists()
    make_private_dir(out)  # it may hold the secrets (--with-secrets)
    partial = out / "ledger.db.partial"
    try:
        head, checkpoint = _copy_database(source, partial, out)
        files = _copy_keys(config.home, out, with_secrets)
        # The database takes its name last: a backup cut short (killed, a power cut) never
        # holds a ledger.db without the key ring that checks it.
        os.replace(partial, out / "ledger.db")
    except BaseException:
        # Nothing half-made is left to be taken for a backup later: the directory is as
        # it was (gone, or empty), so the same command can simply be run again.
        if made:
            shutil.rmtree(out, ignore_errors=True)
        else:
            for child in out.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise
    sync_directory(out)
    return BackupReport(out / "ledger.db", head, checkpoint, files)


def _copy_database(source: Path, partial: Path, out: Path) -> tuple[int, int | None]:
    """The live database's snapshot in `partial`, checked: SQLite's backup copies pages as
    they are, so a damaged ledger gave a copy that did not open, announced as a backup of
    every position."""
    make_private_file(partial)  # personnel data, in a directory that may be shared
    # Opened as `verify` opens it: a home that cannot be written (read-only media, or one
    # only readable by this user) read-only, as the key ring is read without its lock there
    reader = LedgerConfig(home=source.parent, db_url=f"sqlite:///{source}", read_only=True)
    try:
        with (
            closing(sqlite3.connect(reader.sqlite_database(), uri=True)) as live,
            closing(sqlite3.connect(partial)) as copy,
        ):
            live.backup(copy)  # one step: a consistent snapshot of the live database
            problems = damage(copy)
            if problems is not None:
                raise sqlite3.DatabaseError(problems)
            facts = _facts(copy)
    except sqlite3.Error as exc:
        partial.unlink(missing_ok=True)
        raise StoreUnavailable(f"cannot back up {source} into {out}: {exc}") from exc
    if facts is None:
        # Another program's database, or an empty file: "backed up" it would be a backup
        # that `restore` refuses, found out only when it is needed.
        partial.unlink(missing_ok=True)
        raise StoreUnavailable(
            f"there is no ledger at {source} (the file holds no ledger's tables): nothing "
            "to back up (check SES_LEDGER_HOME and SES_LEDGER_DB)"
        )
    return facts


def damage(db: sqlite3.Connection) -> str | None:
    """What SQLite's `quick_check` finds wrong with a database (its first three findings),
    None when nothing: a damaged file still copies page by page, and opens."""
    problems = [str(row[0]) for row in db.execute("PRAGMA quick_check")]
    return None if problems == ["ok"] else "; ".join(problems[:3])


def holds_ledger(tables: Collection[str]) -> bool:
    """Whether an SQLite file with these tables is a ledger's (its events and its Merkle
    state): what a backup takes and a restore accepts, so that no backup is taken that
    `restore` would refuse."""
    names = LedgerTables("sqlite", events_table=SQLITE_EVENTS_TABLE)
    return {names.events, names.state} <= set(tables)


def _facts(copy: sqlite3.Connection) -> tuple[int, int | None] | None:
    """The copy's head and newest checkpoint; None when it holds no ledger (`holds_ledger`)."""
    names = LedgerTables("sqlite", events_table=SQLITE_EVENTS_TABLE)
    tables = {r[0] for r in copy.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not holds_ledger(tables):
        return None
    head = int(copy.execute(f"SELECT max(rowid) FROM {names.events}").fetchone()[0] or 0)
    checkpoint = None
    if names.checkpoints in tables:
        sql = f"SELECT max(tree_size) FROM {names.checkpoints}"
        checkpoint = copy.execute(sql).fetchone()[0]
    return head, checkpoint


def _copy_keys(home: Path, out: Path, with_secrets: bool) -> tuple[str, ...]:
    """The public key ring; with secrets, the signing keys and the token key (mode 0600)."""
    ring = KeyRing(home)
    # Under the ring's lock: a rotation between listing the private keys and copying the
    # ring left a backup whose ring named a current key without its private key.
    with ring.locked():
        return _copy_key_files(ring, home, out, with_secrets)


def _copy_key_files(ring: KeyRing, home: Path, out: Path, with_secrets: bool) -> tuple[str, ...]:
    wanted = [ring.index] if ring.index.is_file() else []
    if with_secrets:
        wanted += sorted(ring.dir.glob("*.pem"))
        if (home / TOKEN_KEY_FILE).is_file():
            wanted.append(home / TOKEN_KEY_FILE)
    copied = []
    for path in wanted:
        relative = path.relative_to(home)
        target = out / relative
        if not target.parent.exists():
            target.parent.mkdir(mode=0o700, parents=True)
            if target.parent != out:
                os.chmod(target.parent, 0o700)
        secret = path.suffix == ".pem" or path.name == TOKEN_KEY_FILE
        # whole, on the disk, and private or public whatever the umask
        write_file(target, path.read_bytes(), 0o600 if secret else 0o644, replace=False)
        copied.append(str(relative))
    return tuple(copied)
