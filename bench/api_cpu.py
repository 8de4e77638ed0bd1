"""CPU time per request, per endpoint, of the server and of the load generator.

Wall-clock latency on a shared 2-vCPU machine is noisy; CPU time is not (much). This starts
a real `ses-ledger serve` (one worker, so one process to account) on an existing benchmark
home (`bench/api.py --home DIR` builds one), sends `--requests` requests of each endpoint
with `--clients` concurrent clients, and reports, per request: the server's CPU time (user +
system, from /proc, less its idle background work measured for the same wall time) and the
load generator's (`time.process_time`).

    python bench/api_cpu.py --home /tmp/bench-api [--requests 2000] [--clients 8]
                            [--client raw|httpx] [--only NAME,...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api.auth import load_or_create_token_key  # noqa: E402
from bench.api import Load  # noqa: E402
from tests.api.server import Server, ledger_env  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int, which: slice = slice(11, 15)) -> float:
    """User + system CPU seconds of `pid` and its children that were waited for
    (`which`: slice(11, 12) user only, slice(12, 13) system only)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(f) for f in fields[which]) / TICK


def tree_cpu(pid: int) -> float:
    """CPU seconds of `pid` and its live descendants (uvicorn's workers)."""
    total = process_cpu(pid)
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        total += tree_cpu(int(child))
    return total


ENDPOINTS = [
    "GET executive",
    "GET appraisal",
    "GET ratings",
    "GET removal-history",
    "GET checkpoint",
    "GET events",
    "GET receipt",
    "GET inclusion proof",
    "POST complaints",  # last: the reads after it would also pay for projecting it
]


#: Not in the benchmark's mix: the floor of a request (routing, middleware, HTTP).
EXTRA = {"GET healthz": "/healthz", "GET 404": "/v1/nothing"}


def requests_for(load: Load, name: str, count: int) -> list[tuple[str, str, Any, dict[str, str]]]:
    """`count` requests of endpoint `name`, drawn as the benchmark draws them."""
    if name in EXTRA:
        return [("GET", EXTRA[name], None, {})] * count
    mix = {"write": 1.0, "read": 0.0, "ledger": 0.0}
    if name.startswith("GET"):
        ledger = name in ENDPOINTS[4:8]
        mix = {"write": 0.0, "read": 0.0 if ledger else 1.0, "ledger": 1.0 if ledger else 0.0}
    load.mix = mix
    out = []
    while len(out) < count:
        _kind, n, path, body, headers = load.request()
        if n == name:
            out.append(("GET" if body is None else "POST", path, body, headers))
    return out


async def drive(
    client_kind: str, url: str, reqs: list[tuple[str, str, Any, dict[str, str]]], clients: int
) -> int:
    """Send `reqs` over `clients` connections; returns the count of non-2xx answers."""
    queue = list(reversed(reqs))
    bad = 0
    if client_kind == "httpx":
        import httpx

        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:

            async def one() -> None:
                nonlocal bad
                while queue:
                    method, path, body, headers = queue.pop()
                    if body is None:
                        r = await http.get(path, headers=headers)
                    else:
                        r = await http.post(path, json=body, headers=headers)
                    bad += r.status_code >= 300

            await asyncio.gather(*(one() for _ in range(clients)))
        return bad
    from bench.http1 import Connection

    conns = [await Connection.open(url) for _ in range(clients)]

    async def run(conn: Connection) -> None:
        nonlocal bad
        while queue:
            method, path, body, headers = queue.pop()
            payload = None if body is None else json.dumps(body).encode()
            r = await conn.request(method, path, headers, payload)
            bad += r.status >= 300

    await asyncio.gather(*(run(c) for c in conns))
    for c in conns:
        c.close()
    return bad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--client", choices=["raw", "httpx"], default="raw")
    parser.add_argument("--only", default="", help="comma-separated endpoint names")
    parser.add_argument(
        "--env", action="append", default=[], metavar="K=V", help="server environment"
    )
    parser.add_argument("--profile", type=Path, help="py-spy each endpoint's run into DIR")
    args = parser.parse_args()
    info = json.loads((args.home / "bench-ledger.json").read_text())
    extra = dict(item.split("=", 1) for item in args.env)
    extra.setdefault("SES_LEDGER_CHECKPOINT_INTERVAL_SECONDS", "5")
    env = ledger_env(args.home, None, **extra)
    key = load_or_create_token_key(args.home)
    names = [n for n in [*EXTRA, *ENDPOINTS] if not args.only or n in args.only.split(",")]
    print(f"load average: {os.getloadavg()[0]:.2f}; client: {args.client}")
    print(
        f"{'endpoint':<22}{'server µs/req':>14}{'client µs/req':>14}{'wall req/s':>11}"
        f"{'server sys':>12}"
    )
    with Server(env, "--workers", "1") as server:
        assert server.process is not None
        pid = server.process.pid
        load = Load(server.url, key, info["executives"], 11, {})
        load.size = 100_000
        # warm up (imports, caches, connections), then measure idle background CPU
        for name in names:
            asyncio.run(drive(args.client, server.url, requests_for(load, name, 50), 4))
        idle_from, idle_wall = tree_cpu(pid), time.perf_counter()
        time.sleep(3)
        idle_rate = (tree_cpu(pid) - idle_from) / (time.perf_counter() - idle_wall)
        for name in names:
            reqs = requests_for(load, name, args.requests)
            spy = None
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
                out = args.profile / (name.replace(" ", "_") + ".txt")
                spy = subprocess.Popen(
                    [
                        str(Path(sys.executable).parent / "py-spy"),
                        "record",
                        "-p",
                        str(pid),
                        "-r",
                        "400",
                        "-f",
                        "raw",
                        "-o",
                        str(out),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(1)
            sys0 = process_cpu(pid, slice(12, 13))
            s0, c0, w0 = tree_cpu(pid), time.process_time(), time.perf_counter()
            bad = asyncio.run(drive(args.client, server.url, reqs, args.clients))
            wall = time.perf_counter() - w0
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait()
            server_cpu = tree_cpu(pid) - s0 - idle_rate * wall
            server_sys = process_cpu(pid, slice(12, 13)) - sys0
            client_cpu = time.process_time() - c0
            n = len(reqs)
            print(
                f"{name:<22}{server_cpu / n * 1e6:>14.0f}{client_cpu / n * 1e6:>14.0f}"
                f"{n / wall:>11.0f}{server_sys / n * 1e6:>12.0f}"
                + (f"  ({bad} non-2xx)" if bad else "")
            )
    print(f"idle server CPU: {idle_rate * 100:.1f} % of a core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
