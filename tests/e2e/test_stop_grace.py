"""`docker compose stop` gives the API long enough to stop by itself.

On SIGTERM `ses-ledger serve` waits up to 10 s for the requests it holds (uvicorn's
`timeout_graceful_shutdown`), then runs the app's shutdown. Compose sends SIGKILL once a
service's `stop_grace_period` has passed, 10 s unless the file says otherwise: one client
that stopped halfway through a request body held a server 12 s after SIGTERM, so every
`docker compose stop` or `down` then ended the API with SIGKILL, the requests it held cut
without an answer and its shutdown never run.
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest
import yaml

from tests.api.server import Server, keyed_env

pytestmark = pytest.mark.slow

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
#: Docker's `stop_grace_period` when a service names none.
DOCKER_DEFAULT_GRACE = 10.0


def _seconds(duration: str) -> float:
    """A compose duration such as `30s`, `1m30s` or `1m`, in seconds."""
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?", duration.strip())
    assert match is not None and duration.strip(), duration
    return int(match.group(1) or 0) * 60 + float(match.group(2) or 0)


def _grace(service: str) -> float:
    given = yaml.safe_load(COMPOSE.read_text())["services"][service].get("stop_grace_period")
    return DOCKER_DEFAULT_GRACE if given is None else _seconds(str(given))


def test_the_api_stops_within_its_grace_period_while_a_client_stalls_mid_body(
    tmp_path: Path,
) -> None:
    grace = _grace("api")
    server = Server(keyed_env(tmp_path)).start()
    assert server.process is not None
    stalled = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    try:
        stalled.sendall(
            b"POST /v1/executives HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        time.sleep(0.5)  # the request has reached the app, which waits for the rest
        started = time.monotonic()
        server.process.terminate()
        server.process.wait(timeout=120)
        stopped_after = time.monotonic() - started
    finally:
        stalled.close()
        server.stop()
    # A margin for a loaded machine: the container must be gone before SIGKILL.
    assert stopped_after + 5 <= grace, (stopped_after, grace)
