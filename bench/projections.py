"""Projection rebuild vs. a bare read of the notification log, in one run.

Baseline: every notification read page by page with the recorder's `select_notifications`
(the same page size the rebuild uses), decoding nothing. Rebuild: `ReadModels(app).rebuild()`
of every projection from position 0 on the same store (read, decode, apply, write rows and
tracking positions), as `ses-ledger projections rebuild` runs it: groups of projections in
parallel processes, one per core (`--jobs 1`: one process). Prints both times and the ratio
(target: rebuild <= 2x read), and, for transparency, the time of the rebuild's own leaner
read of the same rows (plain tuples, no `Notification` objects) and the ratio to that. Each
timed section also prints the CPU it used (user + system, this process and the rebuild's
spawned processes): with `c` cores a rebuild cannot take less than its CPU / c, which
shows how far the code is from the target whatever the machine's speed that day.
`--solo` then rebuilds each projection alone, in this process: a projection cannot be split
across cores, so the slowest alone is the rebuild's floor however many cores there are. On
SQLite the write-ahead log is checkpointed before each timed section, so each starts from
the same state.

The history is the demo generator's (real commands, sealed and Merkle-logged), about 31
events per executive over 5 cycles. It is kept under --home and reused when it already holds
at least --events events, because writing a million events takes minutes. The demo numbers
its executives (`E00001`, ...), so a rebuild meets their rows in key order; `--random-ids`
gives them random UUIDs instead, as ids chosen by HR systems would be (a history of its
own: use another --home).

    python bench/projections.py [--events 1000000] [--home DIR] [--db URL] [--repeat 1]
                                [--jobs N] [--solo] [--random-ids]
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
from projections.runner import REBUILD_BATCH  # noqa: E402
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


def settle(config: LedgerConfig) -> None:
    """Start each timed section from the same state: garbage collected and, on SQLite, the
    write-ahead log folded into the database file and written back to disk.

    A rebuild leaves about 600 MB in the WAL. With the collector run, reads measured right
    after a rebuild came out no slower than after this (2.5 against 2.6 s here); the
    checkpoint and sync keep the kernel's write-back of those pages out of the next section.
    """
    gc.collect()
    if config.is_postgres:
        return
    connection = sqlite3.connect(config.db_url[len("sqlite:///") :])
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        connection.close()
    os.sync()  # and let the kernel write those pages back now, not during the next section


def cpu_seconds() -> float:
    """User + system CPU of this process and of its ended children (the rebuild's spawned
    processes are joined before `rebuild` returns, so theirs is counted)."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    )


def timed(section: Callable[[], T]) -> tuple[T, float, float]:
    """What one section returned, and its wall-clock and CPU seconds."""
    cpu, started = cpu_seconds(), time.perf_counter()
    result = section()
    return result, time.perf_counter() - started, cpu_seconds() - cpu


def bare_read(app: LedgerApp, page: int) -> int:
    count, start = 0, 1
    while True:
        notifications = app.recorder.select_notifications(start=start, limit=page)
        count += len(notifications)
        if len(notifications) < page:
            return count
        start = notifications[-1].id + 1


def lean_read(app: LedgerApp, page: int) -> None:
    """The rows the rebuild reads, as `EventLog.page` reads them (tuples, light objects)."""
    log = EventLog(app.recorder)
    after = 0
    while events := log.page(after, page):
        after = events[-1].position


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="history size (>=)")
    parser.add_argument("--home", type=Path, help="ledger home to create or reuse")
    parser.add_argument("--db", help="store URL (default: SQLite file under --home)")
    parser.add_argument(
        "--repeat", type=int, default=1, help="rounds (each printed, then the median ratio)"
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
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="ses-bench-projections-"))
    KeyRing(home).init()
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
        settle(config)
        count, read, read_cpu = timed(partial(bare_read, app, REBUILD_BATCH))
        settle(config)
        _none, lean, _cpu = timed(partial(lean_read, app, REBUILD_BATCH))
        settle(config)
        _head, built, built_cpu = timed(partial(read_models.rebuild, jobs=args.jobs))
        ratios.append(built / read)
        print(
            f"round {round_}: bare read {count} notifications {read:6.2f} s "
            f"(CPU {read_cpu:.2f} s, {count / read:.0f} ev/s); full rebuild {built:6.2f} s "
            f"(CPU {built_cpu:.2f} s, {events / built:.0f} ev/s); ratio {ratios[-1]:.2f}; "
            f"(the rebuild's own lean read of the log: {lean:.2f} s, "
            f"rebuild / lean read {built / lean:.2f})",
            flush=True,
        )
    print(f"median ratio {statistics.median(ratios):.2f} (target <= 2)", flush=True)
    if args.solo:
        for name in read_models.runner.projections:
            settle(config)
            _head, alone, alone_cpu = timed(partial(read_models.rebuild, [name], jobs=1))
            print(
                f"alone: {name:<16} {alone:6.2f} s (CPU {alone_cpu:.2f} s), "
                f"{alone / read:.2f} x the last bare read",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
