"""The cost of historical reads (`as_of_position` / `known_at`), per request, through the API.

A historical read answers from read models replayed into a throw-away in-memory copy. This
serves the oversight reads in-process (FastAPI's TestClient, the server's own code path) on a
demo history (`bench/projections.py`'s generator, kept under --home and reused) and prints,
per scenario: wall seconds per request, the CPU seconds of the process per request, and the
peak resident memory the scenario added to a process that had already served live reads
(each scenario runs in a fresh child process, so `ru_maxrss` is its own).

Scenarios, at position P = head // 2 (or --position) and at `known_at` = P's recorded_at:
one executive's ratings and removal history, each report (first request, then the same
request again: a repeat), and `--concurrent` report requests at once at distinct positions
(with the statuses they got: a 503 is the replay-build limit answering). `kept`: the
in-memory replays the server keeps afterwards for the next requests (`projections.replays`).

    python bench/replay.py [--events 100000] [--home DIR] [--repeat 3] [--concurrent 4]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fastapi.testclient import TestClient  # noqa: E402

from api.auth import issue_token  # noqa: E402
from api.main import create_app  # noqa: E402
from api.settings import ApiSettings  # noqa: E402
from bench.projections import ensure_history  # noqa: E402
from ledger.application import LedgerApp  # noqa: E402
from ledger.config import LedgerConfig  # noqa: E402
from ledger.keys import KeyRing  # noqa: E402
from projections.events import EventLog  # noqa: E402
from ses_ledger.demo import SimulatedClock  # noqa: E402

EXECUTIVE = "E00001"
AGENCY = "DOE"
CYCLE = "FY2024"

#: name -> (path, extra query parameters)
READS: dict[str, tuple[str, dict[str, str]]] = {
    "ratings": (f"/v1/executives/{EXECUTIVE}/ratings", {}),
    "removal-history": (f"/v1/executives/{EXECUTIVE}/removal-history", {}),
    "below-fully-successful": ("/v1/reports/below-fully-successful", {"agency": AGENCY}),
    "rating-distribution": ("/v1/reports/rating-distribution", {"agency": AGENCY, "cycle": CYCLE}),
    "compliance": ("/v1/reports/compliance", {"agency": AGENCY}),
}


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(
    home: Path, name: str, bound: str, position_arg: str | None, repeat: int, concurrent: int
) -> dict[str, Any]:
    """One scenario in this (fresh) process; returns its figures."""
    config = LedgerConfig(home=home, db_url=f"sqlite:///{home / 'ledger.db'}")
    ledger = LedgerApp(config)
    app = create_app(ledger, settings=ApiSettings(home=home, checkpoint_interval_seconds=0))
    with TestClient(app) as client:
        key = app.state.services.token_key
        token = issue_token(
            key, subject="auditor-1", roles=["auditor"], agency="*", ttl_seconds=3600
        )
        headers = {"Authorization": f"Bearer {token}"}
        path, extra = READS.get(name, READS["compliance"])
        live = client.get(path, params=extra, headers=headers)  # live read models caught up
        assert live.status_code == 200, live.text
        head = int(ledger.recorder.max_notification_id() or 0)
        position = int(position_arg) if position_arg else head // 2
        point: dict[str, str] = {"as_of_position": str(position)}
        if bound == "known_at":
            last = EventLog(ledger.recorder).last(position)
            assert last is not None
            point = {"known_at": last.recorded_at}
        before = rss_mb()
        times: list[tuple[float, float]] = []
        statuses: Counter[int] = Counter()
        if name == "concurrent":
            # Distinct positions: no two requests can share a replay.
            def one(i: int) -> None:
                params = {**extra, "as_of_position": str(position - i)}
                statuses[client.get(path, params=params, headers=headers).status_code] += 1

            threads = [threading.Thread(target=one, args=(i,)) for i in range(concurrent)]
            wall, cpu = time.perf_counter(), time.process_time()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            times.append((time.perf_counter() - wall, time.process_time() - cpu))
        else:
            for _ in range(repeat):
                wall, cpu = time.perf_counter(), time.process_time()
                r = client.get(path, params={**extra, **point}, headers=headers)
                times.append((time.perf_counter() - wall, time.process_time() - cpu))
                statuses[r.status_code] += 1
        replays = getattr(app.state.services.read_models, "replays", None)
        kept = sum(e.size for e in replays._entries) if replays is not None else 0
    ledger.close()
    return {
        "kept_mb": round(kept / 2**20, 1),
        "scenario": name,
        "point": point,
        "head": head,
        "wall": [round(w, 3) for w, _ in times],
        "cpu": [round(c, 3) for _, c in times],
        "peak_mb_added": round(rss_mb() - before, 1),
        "statuses": dict(statuses),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="history size (>=)")
    parser.add_argument("--home", type=Path, help="ledger home to create or reuse")
    parser.add_argument("--repeat", type=int, default=3, help="requests per scenario")
    parser.add_argument("--concurrent", type=int, default=4, help="report requests at once")
    parser.add_argument("--position", help="the replayed position (default: head // 2)")
    parser.add_argument("--only", help="scenarios, comma-separated (default: all)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--bound", default="position", help=argparse.SUPPRESS)
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="ses-bench-replay-"))
    if args.child:
        result = child(home, args.child, args.bound, args.position, args.repeat, args.concurrent)
        print(json.dumps(result))
        return 0
    # Valid from the simulated clock's start, as `ses-ledger demo` makes its key.
    KeyRing(home).init(now=SimulatedClock().now)
    ensure_history(
        LedgerConfig(home=home, db_url=f"sqlite:///{home / 'ledger.db'}"), args.events, False
    )
    chosen = args.only.split(",") if args.only else [*READS, "concurrent"]
    for name in chosen:
        bounds = ["position"] if name == "concurrent" else ["position", "known_at"]
        for bound in bounds:
            command = [sys.executable, __file__, "--home", str(home), "--child", name]
            command += ["--bound", bound, "--repeat", str(args.repeat)]
            command += ["--position", args.position] if args.position else []
            command += ["--concurrent", str(args.concurrent)]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(
                f"{name:24} {next(iter(r['point'])):15} wall {r['wall']} s  cpu {r['cpu']} s  "
                f"peak +{r['peak_mb_added']} MB  kept {r['kept_mb']} MB  statuses {r['statuses']}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
