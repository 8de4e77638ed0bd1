"""`ses-ledger serve --workers N` (`ses_ledger/workers.py`): one listening socket per worker.

With one shared socket, a burst of keep-alive connections went to whichever worker woke
first (32/0 in the API benchmark). Each worker now listens on its own `SO_REUSEPORT`
socket and the kernel spreads connections over them; a second server on the same port
still fails, a dead worker is replaced, and a stopped server leaves no listener behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from ledger.keys import KeyRing
from ses_ledger.workers import reuse_port_available
from tests.api.server import (
    CLI,
    Server,
    connections_per_worker,
    ledger_env,
    listeners,
    worker_pids,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not reuse_port_available(), reason="SO_REUSEPORT spreading is Linux's"),
]


def _env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    KeyRing(home).init()
    return ledger_env(home)


def test_a_burst_of_connections_is_spread_over_theworker_pids(tmp_path: Path) -> None:
    with Server(_env(tmp_path), "--workers", "2") as server:
        assert server.process is not None
        assert listeners(server.port) == 2  # one per worker, none in the parent
        connections = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(32)]
        try:
            for conn in connections:  # each answered on its own keep-alive connection
                conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            for conn in connections:
                assert conn.recv(4096).startswith(b"HTTP/1.1 200")
            counts = connections_per_worker(server.process.pid, server.port)
        finally:
            for conn in connections:
                conn.close()
    assert len(counts) == 2 and sum(counts) == 32
    # Binomial(32, 1/2): below 4 on either side about once in 400,000 runs.
    assert min(counts) >= 4, counts


def test_a_second_server_on_the_same_port_fails(tmp_path: Path) -> None:
    env = _env(tmp_path)
    with Server(env, "--workers", "2") as server:
        second = subprocess.run(
            [*CLI, "serve", "--workers", "2", "--port", str(server.port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "cannot listen" in second.stderr and "in use" in second.stderr
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_a_dead_worker_is_replaced_and_a_stopped_server_leaves_no_listener(
    tmp_path: Path,
) -> None:
    server = Server(_env(tmp_path), "--workers", "2").start()
    try:
        assert server.process is not None
        first = worker_pids(server.process.pid)
        assert len(first) == 2
        os.kill(first[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = worker_pids(server.process.pid)
            if len(now) == 2 and first[0] not in now and listeners(server.port) == 2:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"worker not replaced: {first} -> {worker_pids(server.process.pid)}")
        for _ in range(8):  # every connection is answered: none lands on a dead socket
            assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
    finally:
        server.stop()
    assert server.process.returncode is not None
    assert listeners(server.port) == 0


def test_sigttin_adds_a_worker_with_its_own_socket(tmp_path: Path) -> None:
    with Server(_env(tmp_path), "--workers", "2") as server:
        assert server.process is not None
        server.process.send_signal(signal.SIGTTIN)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and listeners(server.port) < 3:
            time.sleep(0.2)
        assert listeners(server.port) == 3
        assert len(worker_pids(server.process.pid)) == 3
        for _ in range(8):
            assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200


def test_port_0_gives_every_worker_the_same_port(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [*CLI, "serve", "--workers", "2", "--port", "0"],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        port = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not port:
            line = process.stdout.readline()
            if "one socket per worker" in line:
                port = int(line.split("listening on ", 1)[1].split(",")[0].rsplit(":", 1)[1])
        assert port
        while time.monotonic() < deadline and listeners(port) < 2:
            time.sleep(0.2)
        assert listeners(port) == 2
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_sighup_replaces_every_worker_and_keeps_serving(tmp_path: Path) -> None:
    with Server(_env(tmp_path), "--workers", "2") as server:
        assert server.process is not None
        before = set(worker_pids(server.process.pid))
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = set(worker_pids(server.process.pid))
            if len(now) == 2 and not now & before and listeners(server.port) == 2:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"workers not replaced: {before} -> {worker_pids(server.process.pid)}")
        for _ in range(8):
            assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
