"""Full verification vs. its cryptographic floor, and inclusion-proof latency, at 1M events.

The floor is what no verifier can skip: SHA-256 of each event's canonical bytes and one
Ed25519 verification, in a tight loop over bytes already in memory. `verify_ledger` does
that plus reading every row, parsing the seal, re-checking RFC 8785 canonical form, the
stream chains, every Merkle leaf and the root, and every stored checkpoint. Target: at most
1.3 times the floor. Then p99 of `GET /v1/ledger/proofs/inclusion` through the real API
server (1000 requests over HTTP keep-alive; target < 10 ms) and, for comparison, through
`MerkleLog` directly.

The ledger is generated once and cached (default under /tmp): a real demo history
(`ses_ledger.demo`, batch mode) of a few thousand events is the template; it is replicated
with renamed streams, every copy re-sealed (hash chain, Ed25519) with the ledger's key in
worker processes, bulk-inserted, and the Merkle log integrated by `MerkleLog.integrate`, the
same code the server runs. Event sizes and types are therefore the demo's own.

    python bench/verify.py [--events 1000000] [--cache DIR] [--profile] [--no-api]
"""

from __future__ import annotations

import argparse
import base64
import copy
import cProfile
import hashlib
import io
import json
import math
import multiprocessing
import os
import platform
import pstats
import random
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: E402

from ledger.application import LedgerApp  # noqa: E402
from ledger.canonical import canonical_json  # noqa: E402
from ledger.config import LedgerConfig  # noqa: E402
from ledger.entry import HASHED_FIELDS, entry_from_state, seal, split_state  # noqa: E402
from ledger.keys import KeyRing, Signer  # noqa: E402
from ledger.log import MerkleLog  # noqa: E402
from ledger.merkle import CompactRange, leaf_hash  # noqa: E402
from ledger.verify import verify_ledger  # noqa: E402
from ses_ledger.demo import SimulatedClock, run_demo  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TEMPLATE_EXECUTIVES = 300
TEMPLATE_YEARS = 5

# --- generating (once) -----------------------------------------------------------------------


def _template(home: Path, work: Path) -> list[dict[str, Any]]:
    """A real demo history: the hashed fields of each event, in position order."""
    config = LedgerConfig(home, f"sqlite:///{work / 'template.db'}", checkpoint_every=0)
    clock = SimulatedClock()
    app = LedgerApp(config, clock=clock)
    run_demo(
        app,
        clock,
        executives=TEMPLATE_EXECUTIVES,
        years=TEMPLATE_YEARS,
        seed=2025,
        batch_per_appraisal=True,
    )
    entries = [
        entry_from_state(n.state, n.id)
        for n in app.recorder.select_notifications(start=1, limit=10**7)
    ]
    app.close()
    return [{k: e[k] for k in HASHED_FIELDS} for e in entries]


_WORKER: dict[str, Any] = {}


def _init_worker(home: str, template: list[dict[str, Any]]) -> None:
    _WORKER["signer"] = KeyRing(Path(home)).signer()
    _WORKER["template"] = template
    _WORKER["ids"] = {e["stream_id"] for e in template}


def _rename(value: Any, ids: set[str], suffix: str) -> Any:
    if isinstance(value, str):
        return value + suffix if value in ids else value
    if isinstance(value, list):
        return [_rename(v, ids, suffix) for v in value]
    if isinstance(value, dict):
        return {k: _rename(v, ids, suffix) for k, v in value.items()}
    return value


def _seal_replica(k: int) -> list[tuple[str, int, str, bytes]]:
    """Copy k of the template: streams renamed `<id>-R<k>`, every event re-sealed."""
    signer: Signer = _WORKER["signer"]
    ids: set[str] = _WORKER["ids"]
    suffix = f"-R{k:05d}"
    heads: dict[str, str] = {}
    out = []
    for hashed in _WORKER["template"]:
        event = copy.deepcopy(hashed)
        event["stream_id"] += suffix
        event["data"] = _rename(event["data"], ids, suffix)
        event["prev_hash"] = heads.get(event["stream_id"])
        sealed = seal(event, signer.key_id, signer.sign)
        heads[event["stream_id"]] = sealed.hash
        out.append((event["stream_id"], event["stream_version"], event["type"], sealed.state))
    return out


def generate(cache: Path, events: int) -> None:
    """Write `events` signed events into cache/ledger.db (keys in cache/home)."""
    work = cache / "work"
    shutil.rmtree(cache, ignore_errors=True)
    work.mkdir(parents=True)
    home = cache / "home"
    # Valid from the simulated clock's start, as `ses-ledger demo` makes its key: the
    # history is recorded at past business days, and verify holds entries to the window.
    KeyRing(home).init(now=SimulatedClock().now)
    started = time.perf_counter()
    template = _template(home, work)
    print(f"  template: {len(template)} demo events ({time.perf_counter() - started:.0f} s)")
    db = cache / "ledger.db"
    config = LedgerConfig(home, f"sqlite:///{db}", checkpoint_every=0)
    LedgerApp(config).close()  # creates the tables
    replicas = math.ceil(events / len(template))
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA synchronous=OFF")
    written = 0
    workers = max(1, (os.cpu_count() or 2) - 1)
    with multiprocessing.get_context("fork").Pool(
        workers, initializer=_init_worker, initargs=(str(home), template)
    ) as pool:
        for rows in pool.imap(_seal_replica, range(replicas), chunksize=1):
            rows = rows[: events - written]
            conn.executemany(
                "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
                "VALUES (?,?,?,?)",
                rows,
            )
            conn.commit()
            written += len(rows)
            print(f"\r  sealed and stored {written:,} events", end="", flush=True)
    conn.close()
    print(f" ({time.perf_counter() - started:.0f} s)")
    app = LedgerApp(config)
    t = time.perf_counter()
    size = app.merkle_log.integrate()
    app.merkle_log.issue_checkpoint(app.signer, config.origin)
    print(f"  Merkle log integrated: {size:,} leaves ({time.perf_counter() - t:.0f} s)")
    app.close()
    shutil.rmtree(work)
    (cache / "COMPLETE").write_text(f"{events}\n")


# --- measuring ---------------------------------------------------------------------------------


def _states(db: Path) -> Iterator[bytes]:
    conn = sqlite3.connect(db)
    try:
        yield from (bytes(r[0]) for r in conn.execute("SELECT state FROM stored_events"))
    finally:
        conn.close()


def load_floor_items(
    db: Path, keys: dict[str, Ed25519PublicKey]
) -> list[tuple[bytes, bytes, Ed25519PublicKey]]:
    """(canonical bytes, raw signature, key) of every event, read and decoded beforehand."""
    items = []
    for state in _states(db):
        body, sealed = split_state(state)
        items.append((body, base64.b64decode(sealed["signature"]), keys[sealed["key_id"]]))
    return items


def floor(items: list[tuple[bytes, bytes, Ed25519PublicKey]]) -> tuple[float, float]:
    """(wall, CPU) seconds of SHA-256 + Ed25519 verify of every event, a tight loop."""
    sha256 = hashlib.sha256
    wall, cpu = time.perf_counter(), time.process_time()
    for body, signature, key in items:
        key.verify(signature, sha256(body).digest())
    return time.perf_counter() - wall, time.process_time() - cpu


def breakdown(db: Path, app: LedgerApp, sample: int) -> list[str]:
    """Per-event cost of each step verify_ledger takes beyond the floor (microseconds)."""
    recorder = app.recorder
    notes = recorder.select_notifications(start=1, limit=sample)
    n = len(notes)
    out = []

    def timed(label: str, fn: Any) -> None:
        best = math.inf
        for _ in range(3):  # CPU time, best of three: the machine may be shared
            t = time.process_time()
            fn()
            best = min(best, time.process_time() - t)
        out.append(f"    {label:<46s} {best / n * 1e6:7.2f} us/event")

    def read_pages() -> None:
        start = 1
        while start <= notes[-1].id:
            page = recorder.select_notifications(start=start, limit=2000)
            start = page[-1].id + 1

    timed("read events (select_notifications, 2000/page)", read_pages)

    def read_raw() -> None:
        after = 0
        while after < notes[-1].id:
            with recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute(
                    "SELECT rowid, originator_id, originator_version, topic, state "
                    "FROM stored_events WHERE rowid > ? ORDER BY rowid LIMIT 5000",
                    (after,),
                )
                rows = [tuple(r) for r in cursor.fetchall()]
            after = rows[-1][0]

    timed("  same, plain tuples from a cursor (proposal)", read_raw)
    split = [split_state(x.state) for x in notes]
    timed("split_state (seal json.loads)", lambda: [split_state(x.state) for x in notes])
    timed("  seal by one regex match (proposal)", lambda: [_seal_fields(x.state) for x in notes])
    timed("json.loads(body)", lambda: [json.loads(b) for b, _ in split])
    texts = [b.decode() for b, _ in split]
    timed("  JSONDecoder.decode(str) (proposal)", lambda: [_DECODE(x) for x in texts])
    parsed = [json.loads(b) for b, _ in split]
    timed("canonical_json re-encode (RFC 8785 check)", lambda: [canonical_json(h) for h in parsed])
    digests = [hashlib.sha256(b).digest() for b, _ in split]
    timed(
        "digest.hex() compare",
        lambda: [d.hex() == s["hash"] for d, (_, s) in zip(digests, split, strict=True)],
    )
    timed("base64 decode signature", lambda: [base64.b64decode(s["signature"]) for _, s in split])

    def merkle() -> None:
        tree = CompactRange()
        for d in digests:
            tree.append(leaf_hash(d))

    timed("leaf_hash + CompactRange.append", merkle)
    t = recorder.tables

    def leaves() -> None:
        after = -1
        while after < n - 1:
            with recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute(
                    f"SELECT leaf_index AS i, position AS p, leaf_hash AS h FROM {t.leaves} "
                    f"WHERE leaf_index > ? ORDER BY leaf_index LIMIT 2000",
                    (after,),
                )
                rows = [(int(r["i"]), int(r["p"]), bytes(r["h"])) for r in cursor.fetchall()]
            after = rows[-1][0]

    timed("read Merkle leaves (2000/page)", leaves)
    return out


# --- a prototype of the changes proposed for ledger/verify.py (measured, never used) ------

_SEAL = re.compile(
    rb',"hash":"([0-9a-f]{64})","key_id":"([0-9A-Za-z]{1,64})","signature":"([A-Za-z0-9+/]{86}==)"\}'
)
_DECODE = json.JSONDecoder().decode


def _seal_fields(state: bytes) -> tuple[bytes, bytes, str, bytes] | None:
    """(body, hex hash, key id, base64 signature) from the fixed layout `seal()` writes."""
    if not state.startswith(b'{"entry":'):
        return None
    cut = state.rfind(b',"hash":"')
    m = _SEAL.fullmatch(state, cut)
    if m is None:
        return None
    return state[9:cut], m[1], m[2].decode(), m[3]


def _signatures_ok(batch: list[tuple[Ed25519PublicKey, bytes, bytes]]) -> list[bool]:
    """Ed25519 checks of one batch; cryptography releases the GIL inside verify."""
    out = []
    for key, signature, digest in batch:
        try:
            key.verify(base64.b64decode(signature), digest)
            out.append(True)
        except (InvalidSignature, ValueError):
            out.append(False)
    return out


def proposed_verify(
    db: Path, recorder: Any, keys: dict[str, Ed25519PublicKey], threads: int = 0
) -> tuple[int, bytes]:
    """The per-event checks of verify_ledger with the proposed changes (SQLite only):
    plain cursor rows, the seal read by one regex, and with `threads` > 0 the Ed25519
    checks of each page run in worker threads while this thread parses, re-encodes,
    chains and hashes the same page.

    Returns (events checked, root). Raises AssertionError at the first problem: it measures
    the cost of the checks, it does not report.
    """
    leaves_sql = (
        f"SELECT leaf_index, position, leaf_hash FROM {recorder.tables.leaves} "
        "WHERE leaf_index > ? ORDER BY leaf_index LIMIT 5000"
    )
    events_sql = (
        "SELECT rowid, originator_id, originator_version, topic, state FROM stored_events "
        "WHERE rowid > ? ORDER BY rowid LIMIT 5000"
    )
    conn = sqlite3.connect(db)
    pool = ThreadPoolExecutor(threads) if threads else None
    heads: dict[str, tuple[int, str | None]] = {}
    tree = CompactRange()
    sha256 = hashlib.sha256
    after, leaf_after, checked = 0, -1, 0
    leaf_rows: list[tuple[int, int, bytes]] = []
    leaf_i = 0
    while True:
        rows = conn.execute(events_sql, (after,)).fetchall()
        if not rows:
            break
        after = rows[-1][0]
        page = []
        for position, stream, version, topic, state in rows:
            fields = _seal_fields(state)
            assert fields is not None, position
            body, hex_hash, key_id, signature = fields
            digest = sha256(body).digest()
            assert digest.hex().encode() == hex_hash, position
            page.append(
                (
                    position,
                    stream,
                    version,
                    topic,
                    body,
                    hex_hash,
                    digest,
                    (keys[key_id], signature, digest),
                )
            )
        sigs = [p[7] for p in page]
        if pool is not None:
            size = math.ceil(len(sigs) / threads)
            futures = [
                pool.submit(_signatures_ok, sigs[i : i + size]) for i in range(0, len(sigs), size)
            ]
        else:
            verdicts = _signatures_ok(sigs)
        for position, stream, version, topic, body, hex_hash, digest, _ in page:
            hashed = _DECODE(body.decode())
            assert canonical_json(hashed) == body, position
            assert (hashed["stream_id"], hashed["stream_version"], hashed["type"]) == (
                stream,
                version,
                topic,
            ), position
            last_version, last_hash = heads.get(stream, (0, None))
            assert version == last_version + 1 and hashed["prev_hash"] == last_hash, position
            heads[stream] = (version, hex_hash.decode())
            if leaf_i == len(leaf_rows):
                leaf_rows = conn.execute(leaves_sql, (leaf_after,)).fetchall()
                leaf_i = 0
                if leaf_rows:
                    leaf_after = leaf_rows[-1][0]
            leaf = leaf_hash(digest)
            if leaf_rows:
                _, leaf_position, stored = leaf_rows[leaf_i]
                leaf_i += 1
                assert leaf_position == position and stored == leaf, position
            tree.append(leaf)
            checked += 1
        if pool is not None:
            verdicts = [ok for f in futures for ok in f.result()]
        assert all(verdicts), page[verdicts.index(False)][0]
    conn.close()
    if pool is not None:
        pool.shutdown()
    return checked, tree.root()


def p99(samples: list[float]) -> float:
    return sorted(samples)[max(0, math.ceil(0.99 * len(samples)) - 1)]


def proofs_direct(app: LedgerApp, positions: list[int], size: int) -> list[float]:
    log = MerkleLog(app.recorder)
    out = []
    for position in positions:
        t = time.perf_counter()
        log.inclusion(position, size)
        out.append(time.perf_counter() - t)
    return out


def proofs_http(env: dict[str, str], positions: list[int]) -> tuple[list[float], list[float]]:
    """1000 requests to a real `ses-ledger serve`: with tree_size given, and without."""
    import httpx

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ses_ledger.cli",
            "serve",
            "--port",
            str(port),
            "--checkpoint-interval",
            "0",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            for _ in range(600):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
            else:
                raise RuntimeError("the API server did not answer /healthz within 60 s")
            size = int(client.get("/v1/ledger/checkpoint").text.split("\n")[1])
            for position in positions[:50]:  # warm up
                client.get("/v1/ledger/proofs/inclusion", params={"position": position})
            pinned, latest = [], []
            for position in positions:
                t = time.perf_counter()
                r = client.get(
                    "/v1/ledger/proofs/inclusion",
                    params={"position": position, "tree_size": size},
                )
                pinned.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text
            for position in positions:
                t = time.perf_counter()
                r = client.get("/v1/ledger/proofs/inclusion", params={"position": position})
                latest.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text
        return pinned, latest
    finally:
        server.terminate()
        server.wait(timeout=30)


def measure_verify(
    args: argparse.Namespace, config: LedgerConfig, db: Path, env: dict[str, str]
) -> None:
    """The floor (twice), verify_ledger, the CLI, the breakdown, the prototype, cProfile."""
    keys = LedgerApp(config).keyring.verifiers()
    items = load_floor_items(db, keys)
    n = len(items)
    # The machine may be shared: the floor runs before and after verify, the ratio uses
    # their mean, and CPU time (process_time) is reported beside wall time.
    floors = [floor(items)]
    fresh = LedgerApp(config)
    wall, cpu = time.perf_counter(), time.process_time()
    report = verify_ledger(fresh.recorder, fresh.keyring.verifiers(), config.origin)
    verify_wall, verify_cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert report.ok, report.problem
    floors.append(floor(items))
    del items
    floor_wall = statistics.mean(f[0] for f in floors)
    floor_cpu = statistics.mean(f[1] for f in floors)
    for i, (w, c) in enumerate(floors):
        print(
            f"floor run {i + 1} (SHA-256 + Ed25519 verify, in memory): wall {w:7.1f} s  "
            f"CPU {c:7.1f} s  {c / n * 1e6:6.1f} us/event  ({n:,} events)"
        )
    print(
        f"verify_ledger in-process:  wall {verify_wall:7.1f} s  CPU {verify_cpu:7.1f} s  "
        f"{verify_cpu / n * 1e6:6.1f} us/event"
    )
    print(
        f"ratio verify/floor: CPU {verify_cpu / floor_cpu:.2f}, wall "
        f"{verify_wall / floor_wall:.2f} (target <= 1.30)"
    )
    if not args.no_cli:
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "ses_ledger.cli", "verify", "--quiet"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        cli_s = time.perf_counter() - started
        print(
            f"`ses-ledger verify` (subprocess): wall {cli_s:7.1f} s, ratio to the floor's wall "
            f"{cli_s / floor_wall:.2f}; exit {done.returncode}: {done.stdout.strip()}"
        )
    print("  where the time beyond the floor goes (first 200,000 events):")
    for line in breakdown(db, fresh, 200_000):
        print(line)
    if args.proposal:
        for threads in (0, 2):
            wall, cpu = time.perf_counter(), time.process_time()
            checked, root = proposed_verify(db, fresh.recorder, keys, threads)
            p_wall, p_cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert checked == n and base64.b64encode(root).decode() == report.root
            print(
                f"prototype, {threads or 'no'} signature threads: wall {p_wall:7.1f} s  CPU "
                f"{p_cpu:7.1f} s  ratio wall {p_wall / floor_wall:.2f}, CPU {p_cpu / floor_cpu:.2f}"
            )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        verify_ledger(fresh.recorder, fresh.keyring.verifiers(), config.origin)
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(14)
        print(text.getvalue())

    fresh.close()


def measure_proofs(
    args: argparse.Namespace, config: LedgerConfig, db: Path, env: dict[str, str]
) -> None:
    """p50/p99 of inclusion proofs: MerkleLog in-process, then the API server over HTTP."""
    app = LedgerApp(config)
    rng = random.Random(7)
    size = app.merkle_log.size()
    conn = sqlite3.connect(db)
    leaves = [int(r[0]) for r in conn.execute("SELECT position FROM ledger_merkle_leaves")]
    conn.close()
    positions = [rng.choice(leaves) for _ in range(args.requests)]
    direct = proofs_direct(app, positions, size)
    print(
        f"inclusion proof via MerkleLog directly: p50 {statistics.median(direct) * 1e3:.2f} ms"
        f"  p99 {p99(direct) * 1e3:.2f} ms  ({len(direct)} proofs, tree size {size:,})"
    )
    app.close()  # nothing of this process may hold the database while the server runs
    if not args.no_api:
        pinned, latest = proofs_http(env, positions)
        for label, samples in (("tree_size given", pinned), ("latest checkpoint", latest)):
            print(
                f"inclusion proof via the API ({label}): p50 "
                f"{statistics.median(samples) * 1e3:.2f} ms  p99 {p99(samples) * 1e3:.2f} ms  "
                f"({len(samples)} requests, target p99 < 10 ms)"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--cache", type=Path, help="default /tmp/ses-ledger-bench-verify-N")
    parser.add_argument("--regenerate", action="store_true")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--no-api", action="store_true", help="skip the HTTP proof latency")
    parser.add_argument("--no-cli", action="store_true", help="skip `ses-ledger verify` wall")
    parser.add_argument("--profile", action="store_true", help="cProfile verify_ledger too")
    parser.add_argument(
        "--proposal", action="store_true", help="also time the prototype of the proposed loop"
    )
    parser.add_argument("--proofs-only", action="store_true", help="only the proof latency")
    parser.add_argument("--generate-only", action="store_true", help="make the cache, stop")
    args = parser.parse_args()
    cache = args.cache or Path(f"/tmp/ses-ledger-bench-verify-{args.events}")
    print(
        f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus, "
        f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, "
        f"{time.strftime('%Y-%m-%d')}"
    )
    if args.regenerate or not (cache / "COMPLETE").exists():
        print(f"generating {args.events:,} events into {cache}")
        generate(cache, args.events)
    else:
        print(f"reusing {cache}")
    if args.generate_only:
        return 0
    home, db = cache / "home", cache / "ledger.db"
    config = LedgerConfig(home, f"sqlite:///{db}", checkpoint_every=0)
    print(f"database {db.stat().st_size / 1e9:.2f} GB")

    env = {**os.environ, "SES_LEDGER_HOME": str(home), "SES_LEDGER_DB": config.db_url}
    if not args.proofs_only:
        measure_verify(args, config, db, env)
    measure_proofs(args, config, db, env)
    return 0


if __name__ == "__main__":
    sys.exit(main())
