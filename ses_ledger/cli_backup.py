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
    if not args.with_secrets:
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


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "backup",
        help="copy the SQLite ledger and its public keys while it runs (a new ledger home)",
        description=(
            "Writes a consistent snapshot of the ledger database (SQLite's backup API, safe "
            "while the server writes) and the public key ring into DIR, which must be new or "
            "empty and is then itself a ledger home: `SES_LEDGER_HOME=DIR ses-ledger verify` "
            "checks it (with SES_LEDGER_DB unset or empty); restore by serving from it or "
            "copying it back. Signing and token keys are secrets and are copied only with "
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
