"""`ses-ledger serve --workers N` (`ses_ledger/workers.py`): the main process accepts and
hands connections to the workers in turn.

With one shared socket, a burst of keep-alive connections went to whichever worker woke
first (32/0 in the API benchmark); with a `SO_REUSEPORT` socket per worker, to a hash of
their addresses (23/9 at worst in one session). Handed out in turn, 32 connections split
16/16; a second server on the same port still fails, a dead worker is replaced, a stopped
server leaves no listener behind, and SIGTTIN / SIGHUP workers get their share.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from ses_ledger.workers import handoff_available
from tests.api.server import (
    CLI,
    Server,
    children,
    connections_per_worker,
    healthz_burst,
    keyed_env,
    listeners,
    serve_started,
    worker_pids,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not handoff_available(), reason="passing sockets (SCM_RIGHTS) is POSIX's"),
]


def _workers(server: Server, count: int, timeout: float = 15.0) -> list[int]:
    """The server's `count` workers, once that many are running. Every worker has answered
    by the time `Server.start` returns, so a shortfall here means one ended or was replaced
    in between; the failure then shows the processes and the server's log."""
    assert server.process is not None
    deadline = time.monotonic() + timeout
    while len(found := worker_pids(server.process.pid)) != count:
        if time.monotonic() > deadline:
            log = server.log.read_text(errors="replace")[-4000:] if server.log else ""
            pytest.fail(f"{len(found)} workers, not {count}: {children(server.process.pid)}\n{log}")
        time.sleep(0.1)
    return found


def _burst(server: Server, count: int) -> list[int]:
    """Open `count` keep-alive connections at once, have each answered, and return how
    many each worker holds."""
    assert server.process is not None
    with healthz_burst(server.port, count) as answered:
        assert all(answered), answered
        return connections_per_worker(server.process.pid, server.port)


def test_a_burst_of_connections_is_split_evenly_over_the_workers(tmp_path: Path) -> None:
    with Server(keyed_env(tmp_path), "--workers", "2") as server:
        assert server.process is not None
        assert listeners(server.port) == 1  # the main process's; the workers are handed
        counts = _burst(server, 32)
        assert counts == [16, 16]
        assert _burst(server, 7) == [4, 3]  # taking turns goes on from where it was


def test_a_second_server_on_the_same_port_fails(tmp_path: Path) -> None:
    env = keyed_env(tmp_path)
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
    server = Server(keyed_env(tmp_path), "--workers", "2", log=tmp_path / "server.log").start()
    try:
        assert server.process is not None
        first = _workers(server, 2)
        os.kill(first[0], signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = worker_pids(server.process.pid)
            if len(now) == 2 and first[0] not in now:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"worker not replaced: {first} -> {worker_pids(server.process.pid)}")
        for _ in range(8):  # every connection is answered: none is handed to the dead one
            assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
        assert _burst(server, 8) == [4, 4]
    finally:
        server.stop()
    assert server.process.returncode is not None
    assert listeners(server.port) == 0


def test_sigttin_adds_a_worker_that_gets_its_share(tmp_path: Path) -> None:
    with Server(keyed_env(tmp_path), "--workers", "2") as server:
        assert server.process is not None
        server.process.send_signal(signal.SIGTTIN)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(worker_pids(server.process.pid)) < 3:
            time.sleep(0.2)
        assert len(worker_pids(server.process.pid)) == 3
        assert _burst(server, 9) == [3, 3, 3]
        server.process.send_signal(signal.SIGTTOU)
        while time.monotonic() < deadline and len(worker_pids(server.process.pid)) > 2:
            time.sleep(0.2)
        assert _burst(server, 8) == [4, 4]  # the one that went is handed nothing more


def test_port_0_picks_one_port(tmp_path: Path) -> None:
    with serve_started(keyed_env(tmp_path), "--workers", "2", "--port", "0") as lines:
        handed = [line for line in lines if "connections handed to" in line]
        assert handed, lines
        port = int(handed[0].split("listening on ", 1)[1].split(",")[0].rsplit(":", 1)[1])
        assert port
        assert listeners(port) == 1
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200


def test_sighup_replaces_every_worker_and_keeps_serving(tmp_path: Path) -> None:
    with Server(keyed_env(tmp_path), "--workers", "2") as server:
        assert server.process is not None
        before = set(worker_pids(server.process.pid))
        server.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            now = set(worker_pids(server.process.pid))
            if len(now) == 2 and not now & before:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"workers not replaced: {before} -> {worker_pids(server.process.pid)}")
        for _ in range(8):
            assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
        assert _burst(server, 8) == [4, 4]


def test_the_workers_exit_when_the_main_process_is_killed(tmp_path: Path) -> None:
    """No orphans: with the main process gone nobody hands out connections, so its workers
    finish what they hold and exit (the port is free for a restart at once)."""
    server = Server(keyed_env(tmp_path), "--workers", "2", log=tmp_path / "server.log").start()
    assert server.process is not None
    workers = _workers(server, 2)
    server.kill()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(Path(f"/proc/{w}").exists() for w in workers):
        time.sleep(0.2)
    assert not [w for w in workers if Path(f"/proc/{w}").exists()]
    assert listeners(server.port) == 0


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_a_record_created_through_one_worker_is_read_at_once_through_the_other(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """Contract, Errors: 404 is an unknown id. Two keep-alive connections, handed to the two
    workers in turn: every create goes through one worker and its read, sent the moment the
    201 arrives, through the other. Before, the reading worker waited only for its own
    writes, and most such reads answered 404 for the id just created (95 of 100 on
    PostgreSQL; on SQLite too)."""
    from api.auth import issue_token, load_or_create_token_key
    from tests.api import story as s

    extra = (
        {"SES_LEDGER_DB": request.getfixturevalue("pg_schema_url")} if backend == "postgres" else {}
    )
    env = keyed_env(tmp_path, **extra)
    with Server(env, "--workers", "2") as server:
        key = load_or_create_token_key(Path(env["SES_LEDGER_HOME"]))
        token = issue_token(
            key, subject="hr-app-1", roles=["hr_app"], agency="DOE", ttl_seconds=600
        )
        hr = {"Authorization": f"Bearer {token}"}
        with (
            httpx.Client(base_url=server.url) as writer,
            httpx.Client(base_url=server.url) as reader,
        ):
            writer.get("/healthz").raise_for_status()  # one worker's connection
            reader.get("/healthz").raise_for_status()  # the other's
            assert server.process is not None
            assert connections_per_worker(server.process.pid, server.port) == [1, 1]
            answers = []
            for i in range(30):
                executive_id = f"E-RAW-{i}"
                made = writer.post("/v1/executives", json=s.executive(executive_id), headers=hr)
                assert made.status_code == 201, made.text
                answers.append(reader.get(f"/v1/executives/{executive_id}", headers=hr).status_code)
    assert answers == [200] * 30
