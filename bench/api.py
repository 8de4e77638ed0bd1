"""HTTP API under load: a real `ses-ledger serve`, N concurrent clients, mixed traffic.

1. Builds (or reuses, `--home`) a ledger of at least `--events` events with the demo
   generator (`ses_ledger/demo.py`), and brings the read models up to date.
2. Measures the in-process signed append rate on the same store: one command, one event,
   sealed (RFC 8785 + SHA-256 + Ed25519) and committed, back to back.
3. Starts `ses-ledger serve` on loopback and runs `--clients` concurrent HTTP clients for
   `--duration` seconds: writes (complaints, with Idempotency-Key), record reads
   (executive, appraisal, ratings, removal history) and ledger reads (checkpoint, events
   page, receipt, inclusion proof).
4. Then the same mix paced: the clients send at Poisson arrivals of each `--rates` total
   (requests/s), latency counted from when each request was due.
5. Prints throughput and p50/p99 latency per endpoint class, and the ratio of API write
   throughput to the in-process append rate. Targets at 32 clients: p99 read < 50 ms,
   p99 write < 100 ms. Closed-loop clients saturate the server, and their mean latency is
   then clients / throughput whatever the server does; the paced runs show the latency at
   a stated load.
6. For each run, the CPU time per request of the server (its process tree, from /proc)
   and of the load generator (`time.process_time`), with the load average: the two share
   the machine, so wall-clock figures depend on what else runs on it.

The load generator is `bench/http1.py` (one keep-alive HTTP/1.1 connection per client,
responses parsed in an asyncio protocol): about 0.1 ms of CPU per request, where httpx
spent 1.4-3 ms, CPU the server lost on the same two vCPUs. `--client httpx` runs the old
one for comparison. `--env K=V` passes settings to the server (e.g. SES_LEDGER_THREADS).

    python bench/api.py [--events 100000] [--clients 32] [--duration 20] [--workers 1]
                        [--rates 50,100,150,200] [--postgres URL] [--home DIR]
                        [--client raw|httpx] [--env K=V ...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from api.auth import issue_token, load_or_create_token_key  # noqa: E402
from bench.http1 import Connection, ProtocolError  # noqa: E402
from ledger.application import LedgerApp  # noqa: E402
from ledger.config import LedgerConfig  # noqa: E402
from ledger.keys import KeyRing  # noqa: E402
from tests.api.server import Server, connections_per_worker, ledger_env  # noqa: E402

YEARS = 5
#: What the demo writes per executive over five cycles (about 31; 29 leaves a margin).
EVENTS_PER_EXECUTIVE = 29
LAST_CYCLE = 2026
#: Share of each endpoint class in the traffic.
MIX = {"write": 0.25, "read": 0.60, "ledger": 0.15}
WRITES_ONLY = {"write": 1.0, "read": 0.0, "ledger": 0.0}


def build_ledger(config: LedgerConfig, events: int) -> dict[str, Any]:
    """A demo history of at least `events` events (kept when the home is reused)."""
    marker = config.home / "bench-ledger.json"
    if marker.is_file():
        info: dict[str, Any] = json.loads(marker.read_text())
        if info["events"] >= events:
            print(f"reusing the ledger under {config.home}: {info['events']} events")
            return info
    from ses_ledger.demo import SimulatedClock, run_demo

    executives = max(6, -(-events // EVENTS_PER_EXECUTIVE))
    clock = SimulatedClock()
    # Valid from the simulated clock's start, as `ses-ledger demo` makes its key.
    KeyRing(config.home).init(now=clock.now)
    app = LedgerApp(config, clock=clock)
    started = time.perf_counter()
    summary = run_demo(
        app, clock, executives=executives, years=YEARS, seed=2025, batch_per_appraisal=True
    )
    app.merkle_log.issue_checkpoint(app.signer, config.origin)
    elapsed = time.perf_counter() - started
    total = app.merkle_log.size()
    print(f"demo ledger: {executives} executives, {total} events in {elapsed:.0f} s")
    if total < events:
        print(f"warning: the demo wrote {total} events, fewer than the {events} asked for")
    started = time.perf_counter()
    from projections.queries import ReadModels

    ReadModels(app).catch_up()
    print(f"read models caught up in {time.perf_counter() - started:.0f} s")
    app.close()
    info = {"events": total, "executives": executives, "summary": summary.lines()}
    marker.write_text(json.dumps(info))
    return info


def in_process_rate(config: LedgerConfig, executives: int, seconds: float = 5.0) -> float:
    """Signed appends per second straight through `LedgerApp`: the same command the API
    writes (a complaint on a random demo executive), one event per command, back to back."""
    app = LedgerApp(config)
    rng = random.Random(1)
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        app.record_complaint(
            f"E{rng.randint(1, executives):05d}",
            forum="EEOC",
            filed_on=date(2026, 3, 2),
            summary=f"in-process {count}",
            actor="bench",
            submitted_by="bench",
        )
        count += 1
    rate = count / (time.perf_counter() - started)
    app.close()
    return rate


class Load:
    def __init__(
        self, url: str, key: bytes, executives: int, seed: int, mix: dict[str, float]
    ) -> None:
        self.url = url
        self.mix = mix
        self.executives = executives
        self.rng = random.Random(seed)
        self.writer = issue_token(
            key, subject="bench-hr", roles=["hr_app"], agency="*", ttl_seconds=7200
        )
        self.reader = issue_token(
            key, subject="bench-auditor", roles=["auditor"], agency="*", ttl_seconds=7200
        )
        self.latency: dict[str, list[float]] = defaultdict(list)
        #: Time inside the server (its Server-Timing header), per class.
        self.server: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.size = 1
        self.client_cpu = 0.0
        self.server_cpu = 0.0
        self.server_pid: int | None = None
        #: Open client connections held by each server worker, most first (Linux only).
        self.split: list[int] = []
        self.load_average = (0.0, 0.0, 0.0)

    def executive(self) -> str:
        return f"E{self.rng.randint(1, self.executives):05d}"

    def request(self) -> tuple[str, str, str, dict[str, Any] | None, dict[str, str]]:
        """(class, endpoint name, path, JSON body or None, headers)."""
        roll = self.rng.random()
        read = {"Authorization": f"Bearer {self.reader}"}
        if roll < self.mix["write"]:
            headers = {
                "Authorization": f"Bearer {self.writer}",
                "Idempotency-Key": uuid.uuid4().hex,
            }
            body = {
                "forum": self.rng.choice(["EEOC", "OSC"]),
                "filed_on": "2026-03-02",
                "summary": "Complaint filed during the benchmark.",
            }
            return (
                "write",
                "POST complaints",
                f"/v1/executives/{self.executive()}/complaints",
                body,
                headers,
            )
        if roll < self.mix["write"] + self.mix["read"]:
            e = self.executive()
            choice = self.rng.randrange(4)
            if choice == 0:
                return "read", "GET executive", f"/v1/executives/{e}", None, read
            if choice == 1:
                return (
                    "read",
                    "GET appraisal",
                    f"/v1/appraisals/A-FY{LAST_CYCLE - YEARS + 1}-{e}",
                    None,
                    read,
                )
            if choice == 2:
                return "read", "GET ratings", f"/v1/executives/{e}/ratings", None, read
            return (
                "read",
                "GET removal-history",
                f"/v1/executives/{e}/removal-history?as_of=2026-10-01",
                None,
                read,
            )
        position = self.rng.randint(1, self.size)
        choice = self.rng.randrange(4)
        if choice == 0:
            return "ledger", "GET checkpoint", "/v1/ledger/checkpoint", None, {}
        if choice == 1:
            return (
                "ledger",
                "GET events",
                f"/v1/ledger/events?after={position}&limit=100",
                None,
                read,
            )
        if choice == 2:
            return "ledger", "GET receipt", f"/v1/ledger/receipts/{position}", None, read
        return (
            "ledger",
            "GET inclusion proof",
            f"/v1/ledger/proofs/inclusion?position={position}",
            None,
            {},
        )

    async def client(self, send: Send, deadline: float, rate: float | None = None) -> None:
        """One client. Closed loop (`rate` None): the next request as soon as the last one
        is answered. Paced: requests due at Poisson arrivals of `rate` per second, and the
        latency counted from when each was due, so time spent waiting behind a slow answer
        is counted too (no coordinated omission)."""
        due = time.perf_counter()
        while time.perf_counter() < deadline:
            kind, name, path, body, headers = self.request()
            if rate is None:
                started = time.perf_counter()
            else:
                due += self.rng.expovariate(rate)
                if due >= deadline:
                    return
                pause = due - time.perf_counter()
                if pause > 0:
                    await asyncio.sleep(pause)
                started = due
            payload = None if body is None else json.dumps(body, separators=(",", ":")).encode()
            try:
                status, timing = await send(
                    "GET" if body is None else "POST", path, headers, payload
                )
            except (OSError, ProtocolError, httpx.TransportError) as exc:
                self.errors[f"{name} {type(exc).__name__}"] += 1
                continue
            elapsed = time.perf_counter() - started
            self.latency[kind].append(elapsed)
            self.latency[name].append(elapsed)
            if timing.startswith("app;dur="):
                self.server[kind].append(float(timing[8:]) / 1000)
            if status >= 400:
                self.errors[f"{name} {status}"] += 1

    async def run(
        self, clients: int, seconds: float, rate: float | None = None, client: str = "raw"
    ) -> float:
        """Run `clients` clients for `seconds`; `rate`: total requests per second offered
        (paced), or None for closed-loop clients. Returns the elapsed seconds.

        `client` "raw": one `bench.http1` keep-alive connection per client (the default:
        it spends a small fraction of httpx's CPU, which the server would otherwise lose);
        "httpx": one shared `httpx.AsyncClient` with a connection per client."""
        per_client = None if rate is None else rate / clients
        if client == "httpx":
            limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
            async with httpx.AsyncClient(base_url=self.url, limits=limits, timeout=60) as http:

                async def send(
                    method: str, path: str, headers: dict[str, str], body: bytes | None
                ) -> tuple[int, str]:
                    if body is not None:
                        headers = {**headers, "Content-Type": "application/json"}
                    r = await http.request(method, path, headers=headers, content=body)
                    return r.status_code, r.headers.get("server-timing", "")

                note = (await http.get("/v1/ledger/checkpoint")).text
                return await self._run(note, [send] * clients, seconds, per_client)
        connections = [await Connection.open(self.url) for _ in range(clients)]
        try:
            note = (await connections[0].request("GET", "/v1/ledger/checkpoint")).text
            return await self._run(note, [_sender(c) for c in connections], seconds, per_client)
        finally:
            for c in connections:
                c.close()

    async def _run(
        self, note: str, senders: list[Send], seconds: float, per_client: float | None
    ) -> float:
        self.size = int(note.split("\n")[1])
        started, cpu = time.perf_counter(), time.process_time()
        server_cpu = 0.0 if self.server_pid is None else tree_cpu(self.server_pid)
        deadline = started + seconds
        await asyncio.gather(*(self.client(s, deadline, per_client) for s in senders))
        self.client_cpu = time.process_time() - cpu
        if self.server_pid is not None:  # the connections are still open here
            self.split = connections_per_worker(self.server_pid, int(self.url.rsplit(":", 1)[1]))
        if self.server_pid is not None:
            self.server_cpu = tree_cpu(self.server_pid) - server_cpu
        self.load_average = os.getloadavg()
        return time.perf_counter() - started

    def generator_note(self) -> str:
        """The load generator's own CPU per request and the load average after the run."""
        count = max(sum(len(self.latency[k]) for k in MIX), 1)
        server = ""
        if self.server_pid is not None:
            server = f"server CPU {self.server_cpu / count * 1e6:.0f} µs/request, "
        split = ""
        if len(self.split) > 1:
            split = f"; client connections per server worker: {'/'.join(map(str, self.split))}"
        return (
            f"{server}load generator CPU {self.client_cpu / count * 1e6:.0f} µs/request; "
            f"load average {' '.join(f'{x:.2f}' for x in self.load_average)}{split}"
        )


#: Sends one request: (method, path, headers, JSON body or None) -> (status, Server-Timing).
Send = Callable[[str, str, dict[str, str], bytes | None], Awaitable[tuple[int, str]]]


def _sender(connection: Connection) -> Send:
    async def send(
        method: str, path: str, headers: dict[str, str], body: bytes | None
    ) -> tuple[int, str]:
        r = await connection.request(method, path, headers, body)
        return r.status, r.headers.get("server-timing", "")

    return send


def tree_cpu(pid: int) -> float:
    """User + system CPU seconds of `pid` and its live descendants (uvicorn's workers)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:  # not Linux, or gone
        return 0.0
    total = sum(int(f) for f in fields[11:13]) / os.sysconf("SC_CLK_TCK")
    return total + sum(tree_cpu(int(child)) for child in children)


def _row(name: str, values: list[float], elapsed: float) -> None:
    if values:
        print(
            f"{name:<28}{len(values):>9}{len(values) / elapsed:>9.0f}"
            f"{percentile(values, 0.5):>9.1f}{percentile(values, 0.99):>9.1f}"
        )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument("--postgres", metavar="URL", help="a PostgreSQL URL (with ?schema=)")
    parser.add_argument("--home", type=Path, help="ledger home to build in or reuse")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--rates",
        default="50,100,150,200",
        help="offered loads (total requests/s over all clients) for the paced runs, "
        "comma-separated; empty: closed-loop only",
    )
    parser.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="load generator: bench/http1.py keep-alive connections (default), or httpx",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="K=V",
        help="extra environment for the server (e.g. SES_LEDGER_THREADS=4); repeatable",
    )
    args = parser.parse_args()

    home = args.home or Path(tempfile.mkdtemp(prefix="ses-ledger-bench-api-"))
    home.mkdir(parents=True, exist_ok=True)
    db = args.postgres or f"sqlite:///{home / 'ledger.db'}"
    config = LedgerConfig(home=home, db_url=db)
    print(f"SES Ledger API benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; store: {config.redacted_db_url()}"
    )
    info = build_ledger(config, args.events)
    rate = in_process_rate(config, info["executives"])
    print(f"in-process signed append rate: {rate:.0f} events/s (one event per command)")

    extra = dict(item.split("=", 1) for item in args.env)
    extra.setdefault("SES_LEDGER_CHECKPOINT_INTERVAL_SECONDS", "5")
    env = ledger_env(home, db, **extra)
    key = load_or_create_token_key(home)
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    paced: list[tuple[float, Load, float]] = []
    with Server(env, "--workers", str(args.workers), log=home / "server.log") as server:
        load = Load(server.url, key, info["executives"], args.seed, MIX)
        assert server.process is not None
        load.server_pid = server.process.pid
        elapsed = asyncio.run(load.run(args.clients, args.duration, client=args.client))
        writes_only = Load(server.url, key, info["executives"], args.seed + 1, WRITES_ONLY)
        writes_only.server_pid = server.process.pid
        write_elapsed = asyncio.run(
            writes_only.run(args.clients, min(args.duration, 10.0), client=args.client)
        )
        for n, offered in enumerate(rates, start=2):
            run = Load(server.url, key, info["executives"], args.seed + n, MIX)
            run.server_pid = server.process.pid
            run_elapsed = asyncio.run(
                run.run(args.clients, args.duration, offered, client=args.client)
            )
            paced.append((offered, run, run_elapsed))

    total = sum(len(load.latency[k]) for k in MIX)
    print(
        f"\nmixed traffic ({', '.join(f'{k} {v:.0%}' for k, v in MIX.items())}): "
        f"{args.clients} clients, {args.workers} worker(s), {elapsed:.1f} s, "
        f"{total} requests, {total / elapsed:.0f} req/s"
    )
    print(load.generator_note())
    print(f"{'class / endpoint':<28}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}")
    names = [*MIX, *sorted(n for n in load.latency if n not in MIX)]
    for name in names:
        _row(name, load.latency.get(name, []), elapsed)
    print("time inside the server (Server-Timing); the rest is the client, the network and")
    print("requests waiting to be accepted:")
    for name in MIX:
        _row(f"{name} (in server)", load.server.get(name, []), elapsed)
    reads = load.latency["read"] + load.latency["ledger"]
    print(
        f"closed loop (each client sends again as soon as answered, so by Little's law the "
        f"mean latency is {args.clients} / throughput): p99 read "
        f"{percentile(reads, 0.99):.1f} ms (< 50), p99 write "
        f"{percentile(load.latency['write'], 0.99):.1f} ms (< 100)"
    )
    writes = writes_only.latency["write"]
    print(f"\nwrites only: {args.clients} clients, {write_elapsed:.1f} s")
    _row("write", writes, write_elapsed)
    print(writes_only.generator_note())
    mixed_rate = len(load.latency["write"]) / elapsed
    write_rate = len(writes) / write_elapsed
    print(
        f"API write throughput / in-process signed append rate: mixed {mixed_rate:.0f} / "
        f"{rate:.0f} = {mixed_rate / rate:.2f}; writes only {write_rate:.0f} / {rate:.0f} = "
        f"{write_rate / rate:.2f}"
    )
    if paced:
        print(
            f"\npaced mixed traffic: {args.clients} clients, requests due at Poisson arrivals "
            f"of the offered rate, latency counted from when each was due"
        )
        print(
            f"{'offered req/s':>14}{'served':>9}{'read p50':>10}{'read p99':>10}"
            f"{'write p50':>11}{'write p99':>11}{'in server r/w p99':>19}  targets"
        )
        for offered, run, run_elapsed in paced:
            reads = run.latency["read"] + run.latency["ledger"]
            writes = run.latency["write"]
            inside = run.server["read"] + run.server["ledger"]
            served = sum(len(run.latency[k]) for k in MIX) / run_elapsed
            met = percentile(reads, 0.99) < 50 and percentile(writes, 0.99) < 100
            print(
                f"{offered:>14.0f}{served:>9.0f}{percentile(reads, 0.5):>10.1f}"
                f"{percentile(reads, 0.99):>10.1f}{percentile(writes, 0.5):>11.1f}"
                f"{percentile(writes, 0.99):>11.1f}"
                f"{percentile(inside, 0.99):>10.1f} /{percentile(run.server['write'], 0.99):>6.1f}"
                f"  {'met' if met else 'missed'}"
            )
            print(f"{'':>14}{run.generator_note()}")
    errors = {**load.errors, **{f"(writes only) {k}": v for k, v in writes_only.errors.items()}}
    for offered, run, _ in paced:
        errors.update({f"(paced {offered:.0f}) {k}": v for k, v in run.errors.items()})
    if errors:
        print("errors:", errors)
    return 0


if __name__ == "__main__":
    sys.exit(main())
