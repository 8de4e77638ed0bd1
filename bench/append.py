"""Append throughput: raw eventsourcing vs. SES Ledger signed appends, in one run.

Baseline: an equivalent *unsigned* eventsourcing `Aggregate` (same payload fields) saved with
the library's default application on the same store. SES Ledger: the real `Appraisal`
aggregate, domain checks, RFC 8785 + SHA-256 + Ed25519 sealing, and the Merkle log, stored in
one transaction per command. Both hold the aggregate in memory, so the figures compare the
append paths, not reads. Prints rates and ratios (targets: >= 0.8 for one event per command,
>= 0.6 for ten).

    python bench/append.py [--events 3000] [--postgres URL | --no-postgres]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from eventsourcing.application import Application  # noqa: E402
from eventsourcing.domain import Aggregate, event  # noqa: E402

from ledger.application import LedgerApp  # noqa: E402
from ledger.config import LedgerConfig  # noqa: E402
from ledger.keys import KeyRing  # noqa: E402
from tests.ledger_helpers import plan, register  # noqa: E402


class UnsignedAppraisal(Aggregate):
    """The baseline: the same progress-review payload, no checks, no signature."""

    def __init__(self, executive_id: str) -> None:
        self.executive_id = executive_id
        self.reviews: list[str] = []

    @event("ProgressReviewed")
    def review_progress(
        self,
        reviewed_on: str,
        reviewer_id: str,
        notes: str,
        actor: str,
        submitted_by: str,
        occurred_on: str,
        policy: str,
    ) -> None:
        self.reviews.append(reviewed_on)


def _pg_env(url: str) -> dict[str, str]:
    return {
        k: v
        for k, v in LedgerConfig(Path("."), url).eventsourcing_env().items()
        if k != "APPLICATION_RECORDER_TOPIC"
    }


def baseline(env: dict[str, str], n: int, per_command: int) -> float:
    app: Application[Any] = Application(env={**env, "ORIGINATOR_ID_TYPE": "uuid"})
    agg = UnsignedAppraisal("E1")
    app.save(agg)
    started = time.perf_counter()
    for i in range(n // per_command):
        for k in range(per_command):
            agg.review_progress(
                reviewed_on=f"2024-03-{1 + (i + k) % 28:02d}",
                reviewer_id="R1",
                notes="Mid-year review held.",
                actor="R1",
                submitted_by="hr-app-1",
                occurred_on="2024-03-15",
                policy="ses-basic-2012",
            )
        app.save(agg)
    return (n // per_command) * per_command / (time.perf_counter() - started)


def ledger(config: LedgerConfig, n: int, per_command: int) -> float:
    app = LedgerApp(config)
    register(app)
    plan(app)
    agg = app.appraisal("A-2024-E1")
    day = date(2024, 1, 1)
    started = time.perf_counter()
    for _ in range(n // per_command):
        for _ in range(per_command):
            agg.review_progress(
                reviewed_on=day,
                reviewer_id="R1",
                notes="Mid-year review held.",
                actor="R1",
                submission=app.submission("hr-app-1"),
            )
        app.store(agg)
    return (n // per_command) * per_command / (time.perf_counter() - started)


def run_backend(name: str, make: Any, n: int, rounds: int) -> list[str]:
    lines = []
    for per_command in (1, 10):
        base_rates, ledger_rates = [], []
        for _ in range(rounds):  # alternate, so drift hits both sides alike
            env, config = make()
            base_rates.append(baseline(env, n, per_command))
            env, config = make()
            ledger_rates.append(ledger(config, n, per_command))
        b, s = statistics.median(base_rates), statistics.median(ledger_rates)
        lines.append(
            f"{name:10s} {per_command:2d} ev/cmd  raw {b:8.0f} ev/s  signed {s:8.0f} ev/s  "
            f"ratio {s / b:.2f}"
        )
        print(lines[-1], flush=True)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=3000, help="events per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (median)")
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ses-bench-"))
    home = tmp / "home"
    KeyRing(home).init()
    print(
        f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
        f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}"
    )

    def sqlite_case() -> tuple[dict[str, str], LedgerConfig]:
        path = tmp / f"{uuid.uuid4().hex}.db"
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(path)}
        return env, LedgerConfig(home, f"sqlite:///{tmp / (uuid.uuid4().hex + '.db')}")

    run_backend("sqlite", sqlite_case, args.events, args.rounds)
    if not args.no_postgres:
        import psycopg

        schemas: list[str] = []

        def pg_case() -> tuple[dict[str, str], LedgerConfig]:
            schema = f"bench_{uuid.uuid4().hex[:10]}"
            schemas.append(schema)
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            url = f"{args.postgres}?schema={schema}"
            return _pg_env(url), LedgerConfig(home, url)

        try:
            run_backend("postgres", pg_case, args.events, args.rounds)
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                for schema in schemas:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return 0


if __name__ == "__main__":
    sys.exit(main())
