"""A real `ses-ledger serve` process for end-to-end tests and the benchmark."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import httpx

CLI = [sys.executable, "-m", "ses_ledger.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ledger_env(home: Path, db_url: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SES_LEDGER_")}
    env["SES_LEDGER_HOME"] = str(home)
    if db_url:
        env["SES_LEDGER_DB"] = db_url
    env.update(extra)
    return env


def keyed_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a ledger home under `tmp_path` with its signing key made."""
    from ledger.keys import KeyRing

    home = tmp_path / "home"
    KeyRing(home).init()
    return ledger_env(home, **extra)


@contextmanager
def serve_started(env: dict[str, str], *args: str, timeout: float = 30) -> Iterator[list[str]]:
    """`ses-ledger serve ARGS`, its log (stdout and stderr) read until its app has started
    (or it ended, or `timeout`): yields those lines, and stops it afterwards."""
    process = subprocess.Popen(
        [*CLI, "serve", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Application startup complete" in line:
                break
        assert process.poll() is None, f"the server ended: {lines}"
        yield lines
    finally:
        process.terminate()
        process.wait(timeout=timeout)


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `ses-ledger ARGS...` and return its completed process."""
    return subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, check=check, timeout=300
    )


class Server:
    """`ses-ledger serve` on a free loopback port; `kill()` is SIGKILL, no goodbye."""

    def __init__(self, env: dict[str, str], *args: str, log: Path | None = None) -> None:
        self.env = env
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Server:
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            [*CLI, "serve", "--port", str(self.port), "--no-access-log", *self.args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ses-ledger serve exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    if self._all_workers_answer(deadline):
                        return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"ses-ledger serve did not answer on {self.url} in {timeout} s")

    def _all_workers_answer(self, deadline: float) -> bool:
        """With `--workers N` the server hands new connections to its workers in turn
        (`ses_ledger/workers.py`): N connections opened together reach every worker, so
        once all N are answered every worker has started (a client that connects earlier
        waits for its worker's start-up)."""
        wanted = int(self.args[self.args.index("--workers") + 1]) if "--workers" in self.args else 1
        if wanted <= 1:
            return True
        try:
            with healthz_burst(self.port, wanted, max(1.0, deadline - time.monotonic())) as ok:
                return all(ok)
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@contextmanager
def healthz_burst(port: int, count: int, timeout: float | None = None) -> Iterator[list[bool]]:
    """Open `count` keep-alive connections at once and send each `GET /healthz`; yields
    whether each was answered 200, while the connections are still open."""
    connections: list[socket.socket] = []
    try:
        for _ in range(count):
            connections.append(socket.create_connection(("127.0.0.1", port), timeout=timeout))
        for conn in connections:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        yield [conn.recv(4096).startswith(b"HTTP/1.1 200") for conn in connections]
    finally:
        for conn in connections:
            conn.close()


def children(pid: int) -> dict[int, bytes]:
    """The live child processes of `pid` with their command lines (a child is listed under
    the thread that started it, so every thread's list is read)."""
    found: dict[int, bytes] = {}
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            pids = listing.read_text().split()
        except OSError:  # the thread ended meanwhile
            continue
        for child in pids:
            try:
                found[int(child)] = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:  # the child ended meanwhile
                continue
    return found


def worker_pids(pid: int) -> list[int]:
    """The uvicorn workers of the server `pid` (its spawned children, not multiprocessing's
    resource tracker), by process id."""
    return sorted(child for child, line in children(pid).items() if b"spawn_main" in line)


def _tcp_inodes(port: int, state: str) -> list[str]:
    """Socket inodes of TCP sockets on local `port` in `state` (from /proc/net/tcp and
    tcp6: "01" established, "0A" listening)."""
    inodes = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == state and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.append(fields[9])
    return inodes


def connections_per_worker(pid: int, port: int) -> list[int]:
    """Established TCP connections on `port` held by each worker of the server `pid`, most
    first (from /proc: each worker's socket inodes against /proc/net/tcp): how the server
    handed them out (`ses_ledger/workers.py`)."""
    try:
        workers = worker_pids(pid) or [pid]
        established = set(_tcp_inodes(port, "01"))
        counts = []
        for worker in workers:
            held = 0
            for fd in Path(f"/proc/{worker}/fd").iterdir():
                try:
                    target = os.readlink(fd)
                except OSError:
                    continue
                if target.startswith("socket:[") and target[8:-1] in established:
                    held += 1
            counts.append(held)
    except OSError:  # not Linux, or a worker went away
        return []
    return sorted(counts, reverse=True)


def listeners(port: int) -> int:
    """Listening TCP sockets on `port`."""
    return len(_tcp_inodes(port, "0A"))
