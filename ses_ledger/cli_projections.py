"""`ses-ledger projections ...` and `ses-ledger project`: build and watch the read models.

    ses-ledger projections rebuild [NAME ...]   rebuild from position 0, then replace [--jobs N]
    ses-ledger projections status [--max-lag N] position and lag of each projection
    ses-ledger projections digest [--catch-up]  SHA-256 of each projection's state
    ses-ledger project [--follow] [--interval S] [--digest]
                                                catch up once, or keep following new events

The worker stops cleanly on SIGTERM or SIGINT: the batch in flight either commits with its
position or not at all, so the next run resumes exactly where this one stopped.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ses_ledger.argtypes import non_negative_int, positive_int, positive_seconds

log = logging.getLogger("ses_ledger.projector")

#: The defaults named are `projections.runner`'s CATCH_UP_BATCH and FLUSH_EVERY (not
#: imported here: every `ses-ledger` command builds this parser).
BATCH_HELP = (
    "at most N events per transaction (default: 2000 while rows are read from the tables, "
    "up to 2000000 applied in memory between writes during a rebuild)"
)


def _read_models(
    existing: bool = True, *, read_only: bool = False, build: bool = False, inspect: bool = False
) -> Any:
    """The read models of the configured ledger (`existing`: refuse a store that holds no
    ledger rather than create an empty one to report on).

    `inspect`: for a command that only looks at them (`digest`), which reads the stored
    tables as they are when the store holds them (`ReadModels(setup=False)`): opening them
    for work would drop a projection stored at an older version (an older build left it)
    and reset it to position 0, on a ledger that can be written.

    `read_only`: for a command that only reads them (`status`, `digest`), which then reads
    an archive that cannot be written (`LedgerConfig.read_only`, as `verify` and `audit`
    do): its stored read models when they are there and need not be brought up to date
    (`build` False); otherwise read models built in memory from its log (they start at
    position 0, `build`: for the caller to catch up)."""
    from dataclasses import replace

    from ledger.config import LedgerConfig
    from projections.queries import ReadModels
    from projections.store import MemoryStore
    from ses_ledger.bootstrap import build_app

    app = build_app(replace(LedgerConfig.from_env(), read_only=read_only), existing=existing)
    if inspect and not build and _tracked(app):
        return ReadModels(app, setup=False)
    if app.config.opens_read_only and (build or not _stored(app)):
        return ReadModels(app, store=MemoryStore())
    return ReadModels(app)


def _tracked(app: Any) -> bool:
    """Whether the ledger's store holds the read models' tracking table (their positions
    and versions), so that they can be read as stored, without opening them for work."""
    from ledger.recorders import sqlite_names
    from projections.runner import TRACKING
    from projections.store import LedgerStore

    store = LedgerStore(app.recorder)
    with store.transaction(commit=False) as cursor:
        if store.dialect == "postgres":
            cursor.execute(
                "SELECT to_regclass(%s) IS NOT NULL AS present", (store.name(TRACKING.name),)
            )
            return bool(cursor.fetchone()["present"])
        return TRACKING.name in sqlite_names(cursor)


def _stored(app: Any) -> bool:
    """Whether the ledger's store holds every read model at its version (opening them then
    writes nothing)."""
    from projections.events import LogSource
    from projections.queries import PROJECTIONS
    from projections.runner import Runner
    from projections.store import LedgerStore

    store = LedgerStore(app.recorder)
    runner = Runner(store, LogSource(app.recorder), [cls(store) for cls in PROJECTIONS])
    return bool(runner.is_set_up())


@contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event set by SIGTERM/SIGINT while the block runs (previous handlers restored)."""
    stop = threading.Event()

    def handler(signum: int, frame: Any) -> None:
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


#: Seconds between the follow worker's progress lines while it is behind the ledger.
PROGRESS_EVERY = 10.0


class _ProgressLog:
    """`project --follow`'s progress on a long catch-up (after a version change, a restore,
    or a worker down for a while, it may read millions of events): while it is behind, a
    line every `PROGRESS_EVERY` seconds, then one when it has caught up. A worker that keeps
    up logs nothing: the head is read only once the period has passed (then after each batch
    until it has caught up)."""

    def __init__(self, head: Any) -> None:
        self._head = head
        self._since = time.monotonic()
        self._behind = False

    def __call__(self, position: int) -> None:
        now = time.monotonic()
        if not self._behind and now - self._since < PROGRESS_EVERY:
            return
        head = int(self._head())
        if position >= head:
            if self._behind:
                log.info("caught up: position %d", position)
            self._behind = False
            self._since = now
        elif now - self._since >= PROGRESS_EVERY:
            self._behind = True
            self._since = now
            log.info(
                "catching up: position %d of %d (%d events behind)", position, head, head - position
            )


def _sizes(args: argparse.Namespace) -> dict[str, int]:
    """`--batch-size N`: at most N events per transaction (default: the runner's sizes)."""
    if args.batch_size is None:
        return {}
    return {"batch_size": args.batch_size, "flush_every": args.batch_size}


def _known(runner: Any, names: list[str] | None) -> bool:
    """Whether every named projection exists (else one line on stderr)."""
    try:
        runner.select(names)
    except KeyError as exc:
        print(f"ses-ledger: {exc.args[0]}", file=sys.stderr)
        return False
    return True


def _print_digests(read_models: Any, names: list[str] | None = None) -> None:
    digests = read_models.runner.digest(names)
    width = max((len(name) for name in digests), default=0)
    for name, digest in digests.items():
        print(f"{name:<{width}}  {digest}")


def cmd_rebuild(args: argparse.Namespace) -> int:
    from ses_ledger.progress import Progress

    read_models = _read_models()
    runner = read_models.runner
    names = list(dict.fromkeys(args.names)) or None  # `rebuild audit audit`: audit once
    if not _known(runner, names):
        return 2
    head = runner.source.head()
    started = time.perf_counter()
    with (
        _stop_on_signals() as stop,
        Progress(total=head, desc="rebuilding", disable=args.quiet, at_total="writing rows") as bar,
    ):
        position = read_models.rebuild(
            names, progress=bar.update_to, stop=stop, jobs=args.jobs, **_sizes(args)
        )
    if stop.is_set():
        print(
            f"interrupted: the read models stand at position {position} (a rebuild stopped "
            "before its first write leaves them as they were); `ses-ledger project` resumes "
            "from there"
        )
        return 130
    print(
        f"rebuilt {', '.join(names or read_models.projection_names())} up to position "
        f"{position} in {time.perf_counter() - started:.1f} s"
    )
    if args.digest:
        _print_digests(read_models, names)
    return 0


def _stored_status() -> list[Any]:
    """Each projection's position and version as the store holds them, read only: a read
    model an older build left at its older version is reported stale, not reset (opening
    the read models would drop and reset it, on the server's or projector's behalf), and an
    archive that cannot be written is read as it is. A projection the store has no row of
    (never projected) is at 0, at its current version."""
    from dataclasses import replace

    from ledger.config import LedgerConfig
    from projections.queries import PROJECTIONS
    from projections.runner import TRACKING, Status
    from projections.store import LedgerStore
    from ses_ledger.bootstrap import build_app

    app = build_app(replace(LedgerConfig.from_env(), read_only=True), existing=True)
    try:
        store = LedgerStore(app.recorder)
        table = store.name(TRACKING.name)
        stored: dict[str, tuple[int, int]] = {}
        if _tracked(app):
            with store.transaction(commit=False) as cursor:
                cursor.execute(f"SELECT name AS n, position AS p, version AS v FROM {table}")
                stored = {str(r["n"]): (int(r["p"]), int(r["v"])) for r in cursor.fetchall()}
        head = int(app.recorder.max_notification_id() or 0)
    finally:
        app.close()
    return [
        Status(
            name=cls.name,
            position=stored.get(cls.name, (0, cls.version))[0],
            head=head,
            version=stored.get(cls.name, (0, cls.version))[1],
            current_version=cls.version,
        )
        for cls in PROJECTIONS
    ]


def cmd_status(args: argparse.Namespace) -> int:
    statuses = _stored_status()  # a store that cannot be used is reported before any line
    print(f"{'projection':<18}{'position':>12}{'head':>12}{'lag':>10}  state")
    unhealthy = []
    for s in statuses:
        if s.stale:
            state = f"stale (version {s.version} -> {s.current_version})"
        else:
            state = "behind" if s.lag else "ok"
        print(f"{s.name:<18}{s.position:>12}{s.head:>12}{s.lag:>10}  {state}")
        if args.max_lag is not None and (s.stale or s.lag > args.max_lag):
            unhealthy.append(s.name)
    if unhealthy:
        print(
            f"ses-ledger: {', '.join(unhealthy)} stale or more than {args.max_lag} events "
            "behind the ledger",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_digest(args: argparse.Namespace) -> int:
    read_models = _read_models(read_only=True, build=args.catch_up, inspect=True)
    if not _known(read_models.runner, args.names or None):
        return 2
    stale = [
        s for s in read_models.status() if s.stale and (not args.names or s.name in args.names)
    ]
    if stale and not args.catch_up:
        print(
            "ses-ledger: "
            + ", ".join(f"{s.name} (version {s.version} -> {s.current_version})" for s in stale)
            + " stored by another build: no digest of rows this build does not make; "
            "`ses-ledger projections rebuild` (or `project`) rebuilds them",
            file=sys.stderr,
        )
        return 1
    if args.catch_up:
        read_models.catch_up()
    else:
        from projections.store import MemoryStore

        if isinstance(read_models.store, MemoryStore):
            # Digests of empty read models look like any others: say what they are of.
            print(
                "ses-ledger: note: this ledger cannot be written and holds no read models at "
                "their current versions: these are the digests of read models at position "
                "0; --catch-up builds them in memory from the log",
                file=sys.stderr,
            )
    _print_digests(read_models, args.names or None)
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # The worker may start before the API has created the store (docker-compose): it waits
    # on an empty one rather than refusing it, and says so (a mistyped SES_LEDGER_HOME or
    # schema otherwise looks like a worker at position 0 with nothing to do, for good).
    _say_if_no_ledger_yet()
    read_models = _read_models(existing=False)
    runner = read_models.runner
    with _stop_on_signals() as stop:
        if args.follow:
            print(
                f"following the ledger (every {args.interval}s); SIGTERM or Ctrl-C stops",
                flush=True,
            )
            runner.follow(
                stop,
                interval=args.interval,
                on_batch=_ProgressLog(runner.source.head),
                **_sizes(args),
            )
        else:
            from ses_ledger.progress import Progress

            # On a terminal: a catch-up after a version change reads the whole log again.
            with Progress(total=runner.source.head(), desc="catching up") as bar:
                bar.update_to(min(runner.positions().values(), default=0))
                runner.catch_up(stop=stop, progress=bar.update_to, **_sizes(args))
            if stop.is_set():  # a one-shot catch-up cut short is not done (`--follow` is)
                print(
                    f"interrupted: the read models stand at position "
                    f"{min(runner.positions().values(), default=0)} of {runner.source.head()}; "
                    "`ses-ledger project` resumes from there",
                    flush=True,
                )
                return 130
    positions = runner.positions()
    print("positions: " + ", ".join(f"{n} {p}" for n, p in positions.items()), flush=True)
    if args.digest:
        _print_digests(read_models)
    return 0


def _say_if_no_ledger_yet() -> None:
    from ledger.config import LedgerConfig
    from ledger.errors import NoLedger
    from ledger.store_probe import probe_store

    config = LedgerConfig.from_env()
    try:
        probe_store(config, existing=True)
    except NoLedger:
        where = config.redacted_db_url() if config.is_postgres else str(config.sqlite_path())
        print(
            f"ses-ledger: note: there was no ledger at {where}: an empty one is made and "
            "projected as it fills (the API's store? check SES_LEDGER_HOME and SES_LEDGER_DB)",
            file=sys.stderr,
            flush=True,
        )
    # a store that cannot be used at all raises here as the open below would (exit 69)


def register(sub: Any) -> None:
    projections = sub.add_parser(
        "projections",
        help="rebuild, inspect and digest the read models",
        description="The read models live in the ledger's own database (tables proj_*).",
    )
    actions = projections.add_subparsers(
        dest="projections_command", required=True, metavar="ACTION"
    )
    rebuild = actions.add_parser(
        "rebuild", help="rebuild the read models from position 0, replacing the stored rows"
    )
    rebuild.add_argument(
        "names", nargs="*", metavar="NAME", help="projections to rebuild (default: all)"
    )
    rebuild.add_argument("--quiet", action="store_true", help="no progress bar")
    rebuild.add_argument("--digest", action="store_true", help="print digests afterwards")
    rebuild.add_argument("--batch-size", type=positive_int, metavar="N", help=BATCH_HELP)
    rebuild.add_argument(
        "--jobs",
        type=positive_int,
        metavar="N",
        help="processes to rebuild in, one group of projections each (default: one per core "
        "once the log holds 50,000 events; 1 keeps everything in this process)",
    )
    rebuild.set_defaults(handler=cmd_rebuild)

    status = actions.add_parser(
        "status",
        help="each projection's position, lag and state as stored (only read): ok (caught "
        "up), behind (lag > 0) or stale (stored at an older version, as an older build left "
        "it: the server, `project` or `projections rebuild` rebuilds it from position 0)",
    )
    status.add_argument(
        "--max-lag",
        type=non_negative_int,
        metavar="N",
        help="exit 1 when a projection is stale or more than N events behind (a health "
        "check for the projector; default: always exit 0)",
    )
    status.set_defaults(handler=cmd_status)

    digest = actions.add_parser(
        "digest",
        help="SHA-256 of each projection's full state (exit 1 for one stored at an older "
        "version: stale)",
    )
    digest.add_argument(
        "names", nargs="*", metavar="NAME", help="projections to digest (default: all)"
    )
    digest.add_argument(
        "--catch-up",
        action="store_true",
        help="catch the read models up to the log first (built in memory on a ledger that "
        "cannot be written)",
    )
    digest.set_defaults(handler=cmd_digest)

    project = sub.add_parser(
        "project",
        help="catch the read models up (once, or --follow as a long-lived worker)",
        description="Safe beside other workers and the API: batches are serialised by a "
        "lock on each projection's tracking row.",
    )
    project.add_argument("--follow", action="store_true", help="keep polling for new events")
    project.add_argument(
        "--interval",
        type=positive_seconds,
        default=1.0,
        metavar="S",
        help="seconds between polls when idle (default 1)",
    )
    project.add_argument("--digest", action="store_true", help="print digests when done")
    project.add_argument("--batch-size", type=positive_int, metavar="N", help=BATCH_HELP)
    project.set_defaults(handler=cmd_project)
