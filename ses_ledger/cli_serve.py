"""`ses-ledger serve`: the HTTP API under uvicorn, on the store SES_LEDGER_DB names.

Settings reach the workers through the environment (each worker builds its own app with
`api.main:app_factory`), so the flags here are written into it before uvicorn starts.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ledger.config import LedgerConfig


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from ledger.errors import SigningKeyError
    from ledger.keys import KeyRing
    from ledger.store_probe import probe_store
    from ses_ledger import workers

    config = LedgerConfig.from_env()
    try:
        # Loaded, not only looked for: an unreadable key ring or key file fails here, in
        # one line, before the server says it is serving (each worker would fail alone).
        KeyRing(config.home).signer()
    except SigningKeyError as exc:
        print(f"ses-ledger serve: {exc}", file=sys.stderr)
        return 2
    probe_store(config)  # a store that cannot be used fails here, not in every worker
    if args.checkpoint_interval is not None:
        os.environ["SES_LEDGER_CHECKPOINT_INTERVAL_SECONDS"] = str(args.checkpoint_interval)
    if args.checkpoint_every is not None:
        os.environ["SES_LEDGER_CHECKPOINT_EVERY"] = str(args.checkpoint_every)
    print(
        f"serving {config.redacted_db_url()} on http://{args.host}:{args.port} "
        f"({args.workers} worker{'s' if args.workers != 1 else ''}); docs at /docs",
        file=sys.stderr,
        flush=True,
    )
    options: dict[str, Any] = {
        "factory": True,
        "host": args.host,
        "port": args.port,
        "workers": args.workers,
        "access_log": args.access_log,
        "log_level": args.log_level,
        "timeout_graceful_shutdown": 10,
    }
    if args.workers > 1 and workers.handoff_available():
        return workers.run("api.main:app_factory", **options)
    uvicorn.run("api.main:app_factory", **options)
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
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (default 1); the main process accepts connections and "
        "hands them to the workers in turn",
    )
    serve.add_argument(
        "--checkpoint-interval",
        type=float,
        metavar="T",
        help="seconds between timed checkpoints (default 60; 0: off)",
    )
    serve.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="N",
        help="checkpoint after this many new events (default 1000)",
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
    )
    serve.set_defaults(handler=cmd_serve)
