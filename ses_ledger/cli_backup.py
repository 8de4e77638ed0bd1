"""`ses-ledger backup`: a consistent copy of an SQLite ledger while it runs (`ledger/backup.py`)."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import Any

from ledger.config import LedgerConfig


def cmd_backup(args: argparse.Namespace) -> int:
    from ledger.backup import backup
    from ses_ledger.outputs import unwritable

    out = Path(args.out)
    # A new directory (its missing parents made too), or files in an existing one.
    problem = unwritable(out / "ledger.db", make_parents=True)
    if problem is not None:
        print(f"ses-ledger backup: cannot write into {out}: {problem}", file=sys.stderr)
        return 2
    try:
        report = backup(LedgerConfig.from_env(), out, with_secrets=args.with_secrets)
    except OSError as exc:
        print(f"ses-ledger backup: nothing was backed up into {out}: {exc}", file=sys.stderr)
        return 2
    checkpoint = (
        f"newest checkpoint at tree size {report.checkpoint}"
        if report.checkpoint is not None
        else "no checkpoint yet"
    )
    print(f"backed up positions 1..{report.head} to {report.database} ({checkpoint})")
    for name in report.files:
        print(f"  with {name}")
    if args.with_secrets:
        from ses_ledger.cli_serve import exposed_secrets

        # An existing directory keeps its mode: one others may write lets them put their own
        # token key or signing key in the backup, for `restore` to bring into the home.
        for exposed in exposed_secrets(LedgerConfig(home=out, db_url=f"sqlite:///{out}")):
            print(f"ses-ledger backup: warning: {exposed}", file=sys.stderr)
    else:
        print(
            "  without the signing and token keys (--with-secrets): a ledger restored from "
            "this starts a new signing key with `ses-ledger keys rotate`",
            file=sys.stderr,
        )
    # SES_LEDGER_DB, when set, would still name the live ledger: `verify` would check that,
    # with the copy's keys, and say "verified" of a copy it never opened.
    unset_db = " SES_LEDGER_DB=" if os.environ.get("SES_LEDGER_DB") else ""
    print(
        f"check it: SES_LEDGER_HOME={shlex.quote(args.out)}{unset_db} ses-ledger verify",
        file=sys.stderr,
    )
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from ledger.restore import BackupDoesNotVerify, restore
    from ses_ledger.progress import Progress

    config = LedgerConfig.from_env()
    bar: Progress | None = None

    def checked(total: int) -> None:
        nonlocal bar
        bar = Progress(total=total, desc="verifying the backup", disable=args.quiet)
        bar.__enter__()

    def progress(position: int) -> None:
        if bar is not None:
            bar.update_to(position)

    try:
        report = restore(config, Path(args.backup_dir), progress=progress, checked=checked)
    except BackupDoesNotVerify as exc:
        print(f"ses-ledger restore: {exc}", file=sys.stderr)
        return 1
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    print(
        f"restored {report.checked} events (tree size {report.tree_size}, root {report.root}) "
        f"from {args.backup_dir}, verified before anything was changed"
    )
    for action in report.actions:
        print(f"  {action}")
    for warning in report.warnings:
        print(f"warning: {warning}")
    if report.needs_signing_key:
        print(
            "  the backup has no private key for its current signing key: run "
            "`ses-ledger keys rotate` before serving (earlier events keep verifying)",
            file=sys.stderr,
        )
    db = f" SES_LEDGER_DB={shlex.quote(config.db_url)}" if os.environ.get("SES_LEDGER_DB") else ""
    home = shlex.quote(str(config.home))
    print(f"check it: SES_LEDGER_HOME={home}{db} ses-ledger verify", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "backup",
        help="copy the SQLite ledger and its public keys while it runs (a new ledger home)",
        description=(
            "Writes a consistent snapshot of the ledger database (SQLite's backup API, safe "
            "while the server writes) and the public key ring into DIR, which must be new or "
            "empty and is then itself a ledger home: `SES_LEDGER_HOME=DIR ses-ledger verify` "
            "checks it (with SES_LEDGER_DB unset or empty); `ses-ledger restore DIR` puts it "
            "back. Signing and token keys are secrets and are copied only with "
            "--with-secrets. On PostgreSQL use pg_dump."
        ),
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="a new or empty directory")
    parser.add_argument(
        "--with-secrets",
        action="store_true",
        help="also copy the private signing keys and the token key (mode 0600)",
    )
    parser.set_defaults(handler=cmd_backup)

    restore = sub.add_parser(
        "restore",
        help="replace the SQLite ledger of SES_LEDGER_HOME by a verified backup "
        "(the replaced one is kept)",
        description=(
            "Restores into the ledger that SES_LEDGER_HOME (and SES_LEDGER_DB, if set) names, "
            "as for every command. "
            "Checks the backup in BACKUP_DIR first (SQLite's quick_check, then every hash, "
            "chain link, signature, Merkle leaf and checkpoint, and each event's recorded_at "
            "against its signing key's validity, as `verify` does, its warnings printed) and "
            "changes nothing unless it holds; refuses while a server, projector or other "
            "command has the ledger open. Then renames the ledger it replaces to "
            "ledger.db.replaced-<UTC time> (its write-ahead log folded in; never deleted), "
            "removes its stale -wal/-shm, and places a private (0600) copy of the backup's "
            "ledger in one rename. Keys: the home's key ring is kept when it holds every key "
            "of the backup, else the backup's replaces it (the old one kept aside); private "
            "keys and the token key from a --with-secrets backup are added where the home "
            "has none (0600, keys/ 0700). Exit status 0 restored; 1 the backup does not "
            "verify; 2 refused (not a backup, in use, PostgreSQL); 69 the backup's file is "
            "damaged or a file cannot be written."
        ),
    )
    restore.add_argument("backup_dir", metavar="BACKUP_DIR", help="a `ses-ledger backup` directory")
    restore.add_argument("--quiet", action="store_true", help="no progress bar")
    restore.set_defaults(handler=cmd_restore)
