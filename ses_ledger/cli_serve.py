"""`ses-ledger serve`: the HTTP API under uvicorn, on the store SES_LEDGER_DB names.

Settings reach the workers through the environment (each worker builds its own app with
`api.main:app_factory`), so the flags here are written into it before uvicorn starts.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ses_ledger.argtypes import MAX_WORKERS, non_negative_seconds, port, positive_int, workers

if TYPE_CHECKING:
    from pydantic import ValidationError

    from ledger.config import LedgerConfig

#: The settings the flags override, by the environment variable the workers read.
FLAG_VARIABLES = {
    "checkpoint_interval": "SES_LEDGER_CHECKPOINT_INTERVAL_SECONDS",
    "checkpoint_every": "SES_LEDGER_CHECKPOINT_EVERY",
}


def settings_error(exc: ValidationError) -> str:
    """A settings error in one line, naming the environment variable that is wrong."""
    from api.settings import ApiSettings

    prefix = ApiSettings.model_config.get("env_prefix", "")
    problems = []
    for error in exc.errors():
        name = f"{prefix}{'_'.join(str(part) for part in error['loc'])}".upper()
        problems.append(f"{name}={error['input']!r}: {error['msg']}")
    return "; ".join(problems)


def readable_by_others(config: LedgerConfig) -> str | None:
    """A warning when the SQLite file may be read by others than its owner, else None.

    The tool creates `ledger.db` 0600 (`ledger.config.make_private_file`), but a file made
    by an earlier version, or copied in, keeps its mode: it is not changed silently (a
    backup agent's group may be meant to read it), it is said once, where the server starts.
    """
    if config.is_postgres:
        return None
    path = config.sqlite_path()
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None
    if not mode & 0o077:
        return None
    return (
        f"{path} has mode {mode:04o}: others than its owner may read the ledger's personnel "
        f"data (and its -wal and -shm files, which take its mode); `chmod 600 {path}` "
        "unless that is meant"
    )


def exposed_secrets(config: LedgerConfig) -> list[str]:
    """Warnings for the home's secrets that others than their owner may read or replace.

    The tool makes the home and `keys/` 0700 and the token key and private keys 0600
    whatever the umask, but a home that existed, or files copied in by hand (`cp` under
    a umask of 022 makes them 0644), keep their modes: whoever reads `token.key` can issue
    tokens of any role, a private key signs history, and whoever may write the home or
    `keys/` can put their own `token.key` or key ring there (a running server reloads the
    token key). Said where the server starts, like `readable_by_others`; nothing changed.
    """
    from ledger.config import TOKEN_KEY_FILE

    home = config.home
    keys = home / "keys"
    warnings = []
    held = {home: "the token key or the keys directory", keys: "the signing keys or key ring"}
    for directory, what in held.items():
        mode = _mode(directory)
        if mode is not None and mode & 0o022:
            warnings.append(
                f"{directory} has mode {mode:04o}: others than its owner may replace {what} "
                f"in it; `chmod 700 {directory}`"
            )
    try:
        private_keys = sorted(keys.glob("*.pem"))
    except OSError:
        private_keys = []
    for path in (home / TOKEN_KEY_FILE, *private_keys):
        mode = _mode(path)
        if mode is not None and mode & 0o077:
            what = "issue tokens of any role" if path.name == TOKEN_KEY_FILE else "sign entries"
            warnings.append(
                f"{path} has mode {mode:04o}: others than its owner may read this secret and "
                f"{what}; `chmod 600 {path}`"
            )
    return warnings


def _mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None


def cmd_serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError
    from uvicorn.config import Config

    from api.http_head import PROTOCOL
    from api.settings import ApiSettings
    from ledger.errors import SigningKeyError
    from ledger.keys import KeyRing
    from ledger.store_probe import probe_store
    from ses_ledger import workers

    for flag, variable in FLAG_VARIABLES.items():
        if (value := getattr(args, flag)) is not None:
            os.environ[variable] = str(value)  # read by every worker's `ApiSettings`
    try:
        # The settings every worker loads: checked here once, in one line, before the
        # server says it is serving (a worker would fail with a traceback, and each alone).
        settings = ApiSettings()
    except ValidationError as exc:
        print(f"ses-ledger serve: bad setting: {settings_error(exc)}", file=sys.stderr)
        return 2
    config = settings.ledger_config()
    try:
        # Loaded, not only looked for: an unreadable key ring or key file fails here, in
        # one line, before the server says it is serving (each worker would fail alone).
        KeyRing(config.home).signer()
    except SigningKeyError as exc:
        print(f"ses-ledger serve: {exc}", file=sys.stderr)
        return 2
    probe_store(config)  # a store that cannot be used fails here, not in every worker
    if (loose := readable_by_others(config)) is not None:
        print(f"ses-ledger serve: warning: {loose}", file=sys.stderr)
    for exposed in exposed_secrets(config):
        print(f"ses-ledger serve: warning: {exposed}", file=sys.stderr)
    server = Config(
        "api.main:app_factory",
        factory=True,
        http=PROTOCOL,  # httptools', with a bound on the request head (api.http_head)
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=args.access_log,
        log_level=args.log_level,
        timeout_graceful_shutdown=10,
    )
    try:
        # Bound before anything is announced: a port in use fails here (status 1), and
        # `--port 0` is announced with the port it picked.
        listener = workers.bind(server)
    except OSError as exc:
        print(f"ses-ledger serve: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"serving {config.redacted_db_url()} on http://{host}:{server.port} "
        f"({args.workers} worker{'s' if args.workers != 1 else ''}); docs at /docs",
        file=sys.stderr,
        flush=True,
    )
    if args.workers == 1:
        return workers.run_one(server, listener)
    if workers.handoff_available():
        return workers.run(server, listener)
    from uvicorn.supervisors.multiprocess import Multiprocess

    with listener:  # elsewhere: uvicorn's workers, sharing the socket
        Multiprocess(server, sockets=[listener]).run()
    return 0


def register(sub: Any) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the HTTP API (uvicorn)",
        description=(
            "Serves the API on the SQLite database under SES_LEDGER_HOME, or on "
            "SES_LEDGER_DB. Checkpoints are signed after every N events and every T seconds."
        ),
    )
    serve.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=port, default=8000, help="port (default 8000; 0: any free one)"
    )
    serve.add_argument(
        "--workers",
        type=workers,
        default=1,
        help=f"worker processes, 1 to {MAX_WORKERS} (default 1); the main process accepts "
        "connections and hands them to the workers in turn",
    )
    serve.add_argument(
        "--checkpoint-interval",
        type=non_negative_seconds,
        metavar="T",
        help="seconds between timed checkpoints (default: SES_LEDGER_CHECKPOINT_INTERVAL_SECONDS, "
        "else 60; 0: off)",
    )
    serve.add_argument(
        "--checkpoint-every",
        type=positive_int,
        metavar="N",
        help="checkpoint after this many new events (default: SES_LEDGER_CHECKPOINT_EVERY, "
        "else 1000)",
    )
    serve.add_argument(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="log every request (default on)",
    )
    serve.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="the server's log level (default info)",
    )
    serve.set_defaults(handler=cmd_serve)
