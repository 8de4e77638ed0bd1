"""`ses-ledger demo`: write a synthetic agency history into the ledger."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from typing import Any

from ledger.config import LedgerConfig
from ledger.keys import KeyRing
from ses_ledger.argtypes import positive_int


def cmd_demo(args: argparse.Namespace) -> int:
    from ledger.write_gate import write_gate
    from ses_ledger.bootstrap import build_app, merkle_log
    from ses_ledger.demo import SimulatedClock, estimate_events, run_demo
    from ses_ledger.progress import Progress

    config = LedgerConfig.from_env()
    clock = SimulatedClock()
    # The store is probed first, before a signing key is made for a store that cannot be
    # used; the app loads its signing key only at its first write.
    app = build_app(config, clock=clock)
    held = int(app.recorder.max_notification_id() or 0)
    if held:
        # Nothing in a ledger can be removed (RET-1): synthetic appraisals written into a
        # real ledger by mistake would stay in it for good. (Into an earlier demo's ledger
        # they would also collide with its boards and executives part-way.)
        print(
            f"ses-ledger demo: {config.redacted_db_url()} already holds {held} events, and "
            "nothing written to a ledger can be removed: the demo writes only into an empty "
            "one (choose another SES_LEDGER_HOME or SES_LEDGER_DB)",
            file=sys.stderr,
        )
        return 2
    ring = KeyRing(config.home)
    if not ring.exists():
        # Valid from the simulated clock's start: the demo's events are recorded at past
        # business dates, and a verifier may hold each to its key's validity window.
        print(f"creating the ledger signing key {ring.init(now=clock.now)} under {ring.dir}")
    elif (late := _key_after(ring, clock.now)) is not None:
        # A key made by `keys init` is valid from when it was made: every demo event would
        # be signed before its validity began (a warning of `verify` for events recorded
        # before 2026-12-01, a failure after), and the key ring cannot be rewritten.
        print(
            f"ses-ledger demo: the signing key {late.key_id} is valid from {late.valid_from}, "
            "but the demo records its history at the past business days it tells (and signs "
            "it with the current key), so every entry would be signed before that key's "
            "validity began: choose a new SES_LEDGER_HOME (and SES_LEDGER_DB) for the demo, "
            "which then makes its own key, valid from 2000-01-01",
            file=sys.stderr,
        )
        return 2
    # Queue with a running server's writes (and the read models') instead of meeting them
    # in SQLite's busy handler: the same gate, held only while storing (`write_gate`).
    app.record_gate = write_gate(app)
    print(
        f"writing a synthetic history: {args.executives} executives, {args.years} appraisal "
        f"cycles, seed {args.seed}, into {config.redacted_db_url()}"
    )
    started = time.perf_counter()
    try:
        estimate = estimate_events(args.executives, args.years)
        with Progress(total=estimate, desc="demo", estimated=True) as bar:
            summary = run_demo(
                app,
                clock,
                executives=args.executives,
                years=args.years,
                seed=args.seed,
                batch_per_appraisal=args.batch,
                random_ids=args.random_ids,
                progress=bar.update,
                # Nothing dated ahead of the real clock: the history ends today, with the
                # appraisals whose next step is not due yet still in progress.
                until=datetime.now(UTC),
            )
    except KeyboardInterrupt:
        # What was stored stays (each command is atomic): a part of the history, which
        # nothing can remove and which this command will not add to (it writes only into
        # an empty ledger). Said now, not at the next run's refusal.
        written = int(app.recorder.max_notification_id() or 0)
        print(_what_stays(config, written, "interrupted"), file=sys.stderr)
        return 130
    except Exception:
        # The store failed part-way (a full disk, no memory): said as for an interruption,
        # before the failure's own line (`cli._run`), since the next run refuses the events
        # already stored without saying they are a part of this one.
        _say_what_stays(app, config)
        raise
    elapsed = time.perf_counter() - started
    with app.record_gate:
        checkpoint = merkle_log(app).issue_checkpoint(lambda: app.signer, config.origin)
    for line in summary.lines():
        print(line)
    rate = summary.events / elapsed if elapsed else 0.0
    print(f"done in {elapsed:.1f} s ({rate:.0f} events/s)")
    if checkpoint is not None:
        print(f"checkpoint issued at tree size {checkpoint.tree_size}")
    print("next: `ses-ledger verify`, `ses-ledger serve`, or `ses-ledger projections rebuild`")
    return 0


def _say_what_stays(app: Any, config: LedgerConfig) -> None:
    """After a failed demo: how many of its events the ledger holds, and what follows."""
    try:
        written = int(app.recorder.max_notification_id() or 0)
    except Exception:  # noqa: BLE001 - the store is failing: its own failure is reported
        return
    if not written:
        print("ses-ledger demo: stopped before storing any event", file=sys.stderr)
        return
    print(_what_stays(config, written, "stopped"), file=sys.stderr)


def _what_stays(config: LedgerConfig, written: int, how: str) -> str:
    """The sentence for a demo ended part-way (`how`: interrupted, stopped) that left
    `written` events: they stay, and the next run will not add to them."""
    return (
        f"ses-ledger demo: {how}: {config.redacted_db_url()} now holds {written} events, a "
        "part of the demo's history (each stored whole; `ses-ledger verify` checks them); "
        "the demo will not add to it: to run it again, choose a new SES_LEDGER_HOME (and "
        "SES_LEDGER_DB)"
    )


def _key_after(ring: KeyRing, start: datetime) -> Any:
    """The ring's current key if its validity begins after `start` (else None)."""
    from ledger.entry import parse_timestamp

    current = [k for k in ring.public_keys() if k.valid_until is None]
    if current and parse_timestamp(current[-1].valid_from) > start:
        return current[-1]
    return None


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "demo",
        help="write a realistic synthetic agency history (same seed, same history)",
        description=(
            "Registers executives and review boards, then runs each fiscal-year appraisal "
            "cycle through the same domain commands as any client: plans under the policy in "
            "force (ses-basic-2012 before FY2026, ses-2025 after), progress reviews, initial "
            "ratings, responses, higher-level reviews, PRB recommendations, final ratings, "
            "and poor-performance actions, up to the last fiscal year. Nothing is recorded "
            "ahead of the clock: steps not due yet are left undone (the summary counts the "
            "appraisals still in progress). Each event's recorded_at is the day it tells "
            "(17:00 UTC), so known_at replays walk through the history. It writes only into "
            "an empty ledger (nothing written to a ledger can be removed), and signs with a "
            "key it makes itself, valid from 2000-01-01: a key made before (keys init) is "
            "refused, as every entry would be signed before its validity began."
        ),
    )
    parser.add_argument("--executives", type=positive_int, default=60, help="how many (default 60)")
    parser.add_argument(
        "--years", type=positive_int, default=5, help="appraisal cycles (default 5)"
    )
    parser.add_argument("--seed", type=int, default=2025, help="random seed (default 2025)")
    parser.add_argument(
        "--batch",
        action="store_true",
        help="store each appraisal's events in one transaction (faster, for big histories)",
    )
    parser.add_argument(
        "--random-ids",
        action="store_true",
        help="executives get random ids (E-<uuid>), as an HR system's would be, instead of "
        "E00001...; nothing else changes",
    )
    parser.set_defaults(handler=cmd_demo)
