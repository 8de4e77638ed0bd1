"""Projection rebuild vs. a bare read of the notification log, in one run.

Baseline: every notification read page by page with the recorder's `select_notifications`
(the same page size the rebuild uses), decoding nothing. Rebuild: `ReadModels(app).rebuild()`
of every projection from position 0 on the same store (read, decode, apply, write rows and
tracking positions), as `ses-ledger projections rebuild` runs it: groups of projections in
parallel processes, one per core (`--jobs 1`: one process). Prints both times and the ratio
(target: rebuild <= 2x read), and, for transparency, the time of the rebuild's own leaner
read of the same rows (plain tuples, no `Notification` objects) and the ratio to that. On
SQLite the write-ahead log is checkpointed before each timed section, so each starts from
the same state.

The history is the demo generator's (real commands, sealed and Merkle-logged), about 31
events per executive over 5 cycles. It is kept under --home and reused when it already holds
at least --events events, because writing a million events takes minutes.

    python bench/projections.py [--events 1000000] [--home DIR] [--db URL] [--repeat 1]
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.application import LedgerApp  # noqa: E402
from ledger.config import LedgerConfig  # noqa: E402
from ledger.keys import KeyRing  # noqa: E402
from projections.events import EventLog  # noqa: E402
from projections.queries import ReadModels  # noqa: E402
from projections.runner import REBUILD_BATCH  # noqa: E402
from ses_ledger.demo import SimulatedClock, run_demo  # noqa: E402

EVENTS_PER_EXECUTIVE = 30  # 5 cycles of the demo generator, a little under its real mean
YEARS = 5


def ensure_history(config: LedgerConfig, events: int) -> int:
    app = LedgerApp(config)
    have = int(app.recorder.max_notification_id() or 0)
    if have >= events:
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


def bare_read(app: LedgerApp, page: int) -> tuple[int, float]:
    started = time.perf_counter()
    count, start = 0, 1
    while True:
        notifications = app.recorder.select_notifications(start=start, limit=page)
        count += len(notifications)
        if len(notifications) < page:
            return count, time.perf_counter() - started
        start = notifications[-1].id + 1


def lean_read(app: LedgerApp, page: int) -> float:
    """The rows the rebuild reads, as `EventLog.page` reads them (tuples, light objects)."""
    log = EventLog(app.recorder)
    started = time.perf_counter()
    after = 0
    while events := log.page(after, page):
        after = events[-1].position
    return time.perf_counter() - started


def rebuild(app: LedgerApp, jobs: int | None) -> float:
    read_models = ReadModels(app)
    started = time.perf_counter()
    read_models.rebuild(jobs=jobs)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="history size (>=)")
    parser.add_argument("--home", type=Path, help="ledger home to create or reuse")
    parser.add_argument("--db", help="store URL (default: SQLite file under --home)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds (best of each is kept)")
    parser.add_argument(
        "--jobs", type=int, help="rebuild processes (default: as `projections rebuild`)"
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
    events = ensure_history(config, args.events)
    app = LedgerApp(config)
    ratios = []
    for round_ in range(1, args.repeat + 1):  # alternate, so drift hits both sides alike
        settle(config)
        count, read = bare_read(app, REBUILD_BATCH)
        settle(config)
        lean = lean_read(app, REBUILD_BATCH)
        settle(config)
        built = rebuild(app, args.jobs)
        ratios.append(built / read)
        print(
            f"round {round_}: bare read {count} notifications {read:6.2f} s "
            f"({count / read:.0f} ev/s); full rebuild {built:6.2f} s ({events / built:.0f} ev/s); "
            f"ratio {ratios[-1]:.2f}; (the rebuild's own lean read of the log: {lean:.2f} s, "
            f"rebuild / lean read {built / lean:.2f})",
            flush=True,
        )
    print(f"median ratio {statistics.median(ratios):.2f} (target <= 2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
