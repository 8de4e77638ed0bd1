"""`ses-ledger token issue`: print a bearer token for the API (and nothing else);
`ses-ledger token rotate-key`: a new signing secret, so every token issued before is refused.

The token is signed with the HS256 secret under SES_LEDGER_HOME (created on first use, mode
0600), the same one `ses-ledger serve` checks, so both must share the home directory.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ledger.config import TOKEN_KEY_FILE, LedgerConfig

DEFAULT_TTL = 3600


def _unusable_key(home: Path, exc: Exception) -> int:
    """A token key that is not one (not hex, empty): one line, status 2, not a traceback.
    A file-system failure (a file in the way, a full disk) is left to the command line's
    handler (`ses_ledger.cli.main`), which names the file with status 69, as for the rest of
    the home."""
    from api.auth import TokenError

    if isinstance(exc, TokenError):  # it names the file itself (as `serve` says it)
        print(f"ses-ledger token: {exc}", file=sys.stderr)
    else:
        where = home / TOKEN_KEY_FILE
        print(f"ses-ledger token: cannot use the token key {where}: {exc}", file=sys.stderr)
    return 2


def cmd_token_issue(args: argparse.Namespace) -> int:
    from api.auth import Role, TokenError, issue_token, load_or_create_token_key

    home = LedgerConfig.from_env().home
    made = not os.path.lexists(home / TOKEN_KEY_FILE)
    try:
        key = load_or_create_token_key(home)
    except (ValueError, TokenError) as exc:  # not hex, empty
        return _unusable_key(home, exc)
    try:
        token = issue_token(
            key,
            subject=args.subject,
            roles=args.role,
            agency=args.agency,
            ttl_seconds=args.ttl_seconds,
        )
    except ValueError as exc:
        unknown_role = any(r not in {role.value for role in Role} for r in args.role)
        roles = f" (roles: {', '.join(r.value for r in Role)})" if unknown_role else ""
        print(f"ses-ledger token: {exc}{roles}", file=sys.stderr)
        return 2
    if made:
        # Said on stderr (stdout is the token alone, for scripts): a token signed with a key
        # just made is refused by every server running with another home, as after a
        # mistyped or unset SES_LEDGER_HOME.
        print(
            f"ses-ledger token: made a new token key {home / TOKEN_KEY_FILE}: only a server "
            "run with this SES_LEDGER_HOME takes the token",
            file=sys.stderr,
        )
    print(token)
    return 0


def cmd_token_rotate_key(args: argparse.Namespace) -> int:
    from api.auth import rotate_token_key

    home = LedgerConfig.from_env().home
    path = home / TOKEN_KEY_FILE
    try:
        path.stat()
    except FileNotFoundError:
        # No server (nor `token issue`) ever used this home: the key the tokens to end are
        # signed with is elsewhere. A new key here would end none of them, and saying it did
        # would leave a leaked token working (a mistyped or unset SES_LEDGER_HOME).
        print(
            f"ses-ledger token: there is no token key at {path}, so no token was signed "
            "with one here and none would be ended: nothing was changed (SES_LEDGER_HOME "
            "must be the home the server runs with)",
            file=sys.stderr,
        )
        return 2
    rotate_token_key(home)
    print(
        f"new token key under {home}: every token issued before is refused from now on "
        "(a running server notices within a second); issue new ones with `ses-ledger token "
        "issue`"
    )
    return 0


def register(sub: Any) -> None:
    token = sub.add_parser(
        "token", help="issue API bearer tokens, or rotate their key (ending every token)"
    )
    actions = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    issue = actions.add_parser(
        "issue",
        help="print a signed token (only the token, for scripts)",
        description=(
            "Roles: hr_app, rating_official, executive, hlr_official, prb_member, "
            "appointing_authority, auditor, admin. Agency '*' covers every agency."
        ),
    )
    issue.add_argument("--subject", required=True, help="the token's subject (an id)")
    issue.add_argument("--role", required=True, action="append", help="a role; repeat for several")
    issue.add_argument("--agency", required=True, help="agency code, or '*' for all")
    issue.add_argument(
        "--ttl-seconds",
        type=int,
        default=DEFAULT_TTL,
        help=f"lifetime in seconds (default {DEFAULT_TTL}; at most a year, 31622400)",
    )
    issue.set_defaults(handler=cmd_token_issue)
    rotate = actions.add_parser(
        "rotate-key",
        help="replace the token signing secret: every token issued so far stops working",
        description=(
            "For a token that leaked or a holder who left: writes a new HS256 secret under "
            "SES_LEDGER_HOME (mode 0600). Running servers pick it up within a second and "
            "refuse every token signed with the old one. Exit status 2, nothing changed, "
            "when the home holds no token key (it is not the server's home)."
        ),
    )
    rotate.set_defaults(handler=cmd_token_rotate_key)
