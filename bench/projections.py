"""Projection rebuild vs. a bare read of the notification log, in one run.

Baseline: every notification read page by page with the recorder's `select_notifications`
(the same page size the rebuild uses), decoding nothing. Rebuild: `ReadModels(app).rebuild()`
of every projection from position 0 on the same store (read, decode, apply, write rows and
tracking positions), as `ses-ledger projections rebuild` runs it: groups of projections in
parallel processes, one per core (`--jobs 1`: one process). Prints both times and the ratio
(target: rebuild <= 2x read), and, for transparency, the bare read again with the cyclic
garbage collector paused (the rebuild pauses it for itself; the baseline's `Notification`
objects set it off about 30 times), and the time of the rebuild's own leaner read of the
same rows (plain tuples, no `Notification` objects), with the ratios to those. Each
timed section also prints the CPU it used (user + system, this process and the rebuild's
spawned processes): with `c` cores a rebuild cannot take less than its CPU / c, which
shows how far the code is from the target whatever the machine's speed that day.
`--solo` then rebuilds each projection alone, in this process: a projection cannot be split
across cores, so the slowest alone is the rebuild's floor however many cores there are. On
SQLite the write-ahead log is checkpointed before each timed section, so each starts from
the same state; on PostgreSQL the store's tables are vacuumed and analysed, as autovacuum
would (`--no-vacuum`: not), and each section also prints the local server's CPU.

The history is the demo generator's (real commands, sealed and Merkle-logged), about 31
events per executive over 5 cycles. It is kept under --home and reused when it already holds
at least --events events, because writing a million events takes minutes. The demo numbers
its executives (`E00001`, ...), so a rebuild meets their rows in key order; `--random-ids`
gives them random UUIDs instead, as ids chosen by HR systems would be (a history of its
own: use another --home).

    python bench/projections.py [--events 1000000] [--home DIR] [--db URL] [--repeat 1]
                                [--jobs N] [--solo] [--random-ids] [--no-vacuum]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.application import LedgerApp  # noqa: E402
from ledger.config import LedgerConfig  # noqa: E402
from ledger.keys import KeyRing  # noqa: E402
from projections.events import EventLog  # noqa: E402
from projections.queries import ReadModels  # noqa: E402
from projections.runner import REBUILD_BATCH, _no_cyclic_gc  # noqa: E402
from ses_ledger.argtypes import non_negative_int  # noqa: E402
from ses_ledger.demo import SimulatedClock, run_demo  # noqa: E402

T = TypeVar("T")
EVENTS_PER_EXECUTIVE = 30  # 5 cycles of the demo generator, a little under its real mean
YEARS = 5


def random_ids_in(app: LedgerApp) -> bool:
    """Whether a stored history's executives have the demo's random ids (`E-<uuid>`)."""
    for event in EventLog(app.recorder).page(0, 1000):
        if event.type == "ExecutiveRegistered":
            return event.stream_id.startswith("E-")
    return False


def ensure_history(config: LedgerConfig, events: int, random_ids: bool) -> int:
    app = LedgerApp(config)
    have = int(app.recorder.max_notification_id() or 0)
    if have >= events:
        if random_ids_in(app) != random_ids:
            raise SystemExit(
                f"{config.redacted_db_url()} holds a history "
                f"{'with' if not random_ids else 'without'} --random-ids: use another --home"
            )
        print(f"reusing {have} events in {config.redacted_db_url()}", flush=True)
        return have
    if have:
        raise SystemExit(f"{config.redacted_db_url()} holds {have} events, fewer than asked")
    executives = -(-events // EVENTS_PER_EXECUTIVE)
    print(f"writing a demo history: {executives} executives x {YEARS} cycles ...", flush=True)
    clock = SimulatedClock()
    writer = LedgerApp(config, clock=clock)
    started = time.perf_counter()
    summary = run_demo(
        writer,
        clock,
        executives=executives,
        years=YEARS,
        seed=2025,
        batch_per_appraisal=True,
        random_ids=random_ids,
    )
    print(f"  {summary.events} events in {time.perf_counter() - started:.0f} s", flush=True)
    return int(writer.recorder.max_notification_id() or 0)


def settle(config: LedgerConfig, vacuum: bool = True) -> None:
    """Start each timed section from the same state: garbage collected and, on SQLite, the
    write-ahead log folded into the database file and written back to disk.

    A rebuild leaves about 600 MB in the WAL. With the collector run, reads measured right
    after a rebuild came out no slower than after this (2.5 against 2.6 s here); the
    checkpoint and sync keep the kernel's write-back of those pages out of the next section.

    On PostgreSQL: `VACUUM (ANALYZE)` of the store's tables, what autovacuum does on a
    maintained server (this machine's runs with autovacuum off, for its tests). Without it
    every round's rebuild deletes the previous rows beside all the dead ones before them,
    and the planner works from no statistics of a freshly loaded log.
    """
    gc.collect()
    if config.is_postgres:
        if vacuum:
            vacuum_analyze(config)
        return
    connection = sqlite3.connect(config.db_url[len("sqlite:///") :])
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        connection.close()
    os.sync()  # and let the kernel write those pages back now, not during the next section


def vacuum_analyze(config: LedgerConfig) -> None:
    import psycopg
    from psycopg.sql import SQL, Identifier

    schema = config.eventsourcing_env()["POSTGRES_SCHEMA"] or "public"
    with psycopg.connect(config.db_url.partition("?")[0], autocommit=True) as connection:
        tables = connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,)
        ).fetchall()
        for (table,) in tables:
            connection.execute(
                SQL("VACUUM (ANALYZE) {}.{}").format(Identifier(schema), Identifier(table))
            )


def server_cpu_seconds() -> float | None:
    """User + system CPU of the local PostgreSQL server's processes so far (None when none
    is seen in /proc): a rebuild's server does a third of its work, on the same cores."""
    ticks, seen = 0, False
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                line = stat.read()
        except OSError:
            continue
        if line[line.index("(") + 1 : line.rindex(")")].startswith("postgres"):
            fields = line[line.rindex(")") + 2 :].split()
            ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
            seen = True
    return ticks / os.sysconf("SC_CLK_TCK") if seen else None


def cpu_seconds() -> float:
    """User + system CPU of this process and of its ended children (the rebuild's spawned
    processes are joined before `rebuild` returns, so theirs is counted)."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    )


def timed(section: Callable[[], T]) -> tuple[T, float, float, float | None]:
    """What one section returned, its wall-clock and CPU seconds, and the local PostgreSQL
    server's CPU seconds meanwhile (None when no server process is seen)."""
    cpu, server, started = cpu_seconds(), server_cpu_seconds(), time.perf_counter()
    result = section()
    wall, used, server_after = time.perf_counter() - started, cpu_seconds(), server_cpu_seconds()
    spent = None if server is None or server_after is None else server_after - server
    return result, wall, used - cpu, spent


def bare_read(app: LedgerApp, page: int) -> int:
    count, start = 0, 1
    while True:
        notifications = app.recorder.select_notifications(start=start, limit=page)
        count += len(notifications)
        if len(notifications) < page:
            return count
        start = notifications[-1].id + 1


def bare_read_collector_paused(app: LedgerApp, page: int) -> int:
    """`bare_read` with the cyclic garbage collector paused, as the rebuild pauses it for
    itself (`projections/runner.py`, `_no_cyclic_gc`). For transparency only: the target's
    baseline is the library's read as a caller gets it, collector on; each page's 10,000
    `Notification` objects trigger collections, 30 full ones in a million-event read."""
    with _no_cyclic_gc():  # the rebuild's own pause
        return bare_read(app, page)


def lean_read(app: LedgerApp, page: int) -> None:
    """The rows the rebuild reads, as `EventLog.page` reads them (tuples, light objects)."""
    log = EventLog(app.recorder)
    after = 0
    while events := log.page(after, page):
        after = events[-1].position


def server_part(config: LedgerConfig, seconds: float | None) -> str:
    if not config.is_postgres or seconds is None:
        return ""
    return f", server {seconds:.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="history size (>=)")
    parser.add_argument("--home", type=Path, help="ledger home to create or reuse")
    parser.add_argument("--db", help="store URL (default: SQLite file under --home)")
    parser.add_argument(
        "--repeat",
        type=non_negative_int,
        default=1,
        help="rounds (each printed, then the median ratio); 0: only write the history",
    )
    parser.add_argument(
        "--jobs", type=int, help="rebuild processes (default: as `projections rebuild`)"
    )
    parser.add_argument(
        "--solo", action="store_true", help="then rebuild each projection alone, in one process"
    )
    parser.add_argument(
        "--random-ids",
        action="store_true",
        help="a history whose executives have random UUIDs, not E00001... (its own --home)",
    )
    parser.add_argument(
        "--no-vacuum",
        action="store_true",
        help="PostgreSQL: no VACUUM (ANALYZE) before each section (as where autovacuum is off)",
    )
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="ses-bench-projections-"))
    # Valid from the simulated clock's start, as `ses-ledger demo` makes its key: the
    # history is recorded at past business days, and verify holds entries to the window.
    KeyRing(home).init(now=SimulatedClock().now)
    config = LedgerConfig(home=home, db_url=args.db or f"sqlite:///{home / 'ledger.db'}")
    print(
        f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}, "
        f"{'PostgreSQL' if config.is_postgres else 'SQLite'}",
        flush=True,
    )
    events = ensure_history(config, args.events, args.random_ids)
    app = LedgerApp(config)
    read_models = ReadModels(app)
    ratios = []
    for round_ in range(1, args.repeat + 1):  # alternate, so drift hits both sides alike
        settle(config, not args.no_vacuum)
        count, read, read_cpu, read_server = timed(partial(bare_read, app, REBUILD_BATCH))
        settle(config, not args.no_vacuum)
        _count, paused, _cpu, _server = timed(
            partial(bare_read_collector_paused, app, REBUILD_BATCH)
        )
        settle(config, not args.no_vacuum)
        _none, lean, _cpu, _server = timed(partial(lean_read, app, REBUILD_BATCH))
        settle(config, not args.no_vacuum)
        _head, built, built_cpu, built_server = timed(partial(read_models.rebuild, jobs=args.jobs))
        ratios.append(built / read)
        print(
            f"round {round_}: bare read {count} notifications {read:6.2f} s "
            f"(CPU {read_cpu:.2f} s{server_part(config, read_server)}, "
            f"{count / read:.0f} ev/s); full rebuild {built:6.2f} s "
            f"(CPU {built_cpu:.2f} s{server_part(config, built_server)}, "
            f"{events / built:.0f} ev/s); ratio {ratios[-1]:.2f}; "
            f"(the bare read with the garbage collector paused, as the rebuild pauses it: "
            f"{paused:.2f} s, rebuild / that {built / paused:.2f}; "
            f"the rebuild's own lean read of the log: {lean:.2f} s, "
            f"rebuild / lean read {built / lean:.2f})",
            flush=True,
        )
    if ratios:
        print(f"median ratio {statistics.median(ratios):.2f} (target <= 2)", flush=True)
    if args.solo:
        for name in read_models.runner.projections:
            settle(config, not args.no_vacuum)
            _head, alone, alone_cpu, alone_server = timed(
                partial(read_models.rebuild, [name], jobs=1)
            )
            print(
                f"alone: {name:<16} {alone:6.2f} s "
                f"(CPU {alone_cpu:.2f} s{server_part(config, alone_server)}), "
                f"{alone / read:.2f} x the last bare read",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
