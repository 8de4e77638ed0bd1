"""`ses-ledger serve` as a command: what it refuses, and how it ends, before it serves.

Bad flags and bad settings are refused in one line (status 2) before anything is
announced; a port in use ends it with status 1 before it says it is serving, with one
worker as with several; `--port 0` is announced with the port bound; a worker that fails
before it serves stops the server with status 3, once, instead of being restarted forever.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import httpx
import pytest
from uvicorn.config import Config

from ses_ledger.workers import handoff_available
from tests.api.server import CLI, free_port, keyed_env, serve_started

pytestmark = pytest.mark.slow

#: Long enough for a server that fails at start to be gone (about 3 s with 2 workers), and
#: short enough that one that loops or serves instead fails the test quickly.
TIMEOUT = 15


def _serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "serve", "--no-access-log", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


@pytest.mark.parametrize(
    ("args", "extra", "named"),
    [
        (["--checkpoint-every", "0"], {}, "--checkpoint-every"),
        (["--checkpoint-interval", "-1"], {}, "--checkpoint-interval"),
        (["--checkpoint-interval", "nan"], {}, "--checkpoint-interval"),
        (["--workers", "0"], {}, "--workers"),
        (["--workers", "-3"], {}, "--workers"),
        # a traceback (OverflowError from bind) and status 1, as if the port were in use
        (["--port", "70000"], {}, "--port"),
        (["--port", "-1"], {}, "--port"),
        ([], {"SES_LEDGER_THREADS": "abc"}, "SES_LEDGER_THREADS"),
        (["--workers", "2"], {"SES_LEDGER_THREADS": "abc"}, "SES_LEDGER_THREADS"),
        ([], {"SES_LEDGER_CHECKPOINT_EVERY": "0"}, "SES_LEDGER_CHECKPOINT_EVERY"),
        ([], {"SES_LEDGER_ORIGIN": "SES Ledger"}, "SES_LEDGER_ORIGIN"),
    ],
    ids=[
        "every-0",
        "interval-negative",
        "interval-nan",
        "workers-0",
        "workers-negative",
        "port-too-big",
        "port-negative",
        "threads-env",
        "threads-env-2-workers",
        "every-env",
        "origin-with-a-space",
    ],
)
def test_bad_settings_are_refused_in_one_line_before_serving(
    tmp_path: Path, args: list[str], extra: dict[str, str], named: str
) -> None:
    result = _serve(keyed_env(tmp_path, **extra), "--port", str(free_port()), *args)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "serving" not in result.stderr and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("ses-ledger serve") and named in last, result.stderr
    if named.startswith("SES_LEDGER_"):  # not argparse's usage: the one line alone
        assert result.stderr.count("\n") == 1, result.stderr


def test_a_checkpoint_interval_of_0_is_still_allowed(tmp_path: Path) -> None:
    """0 turns the timer off (`--help`): refused negatives, not zero."""
    with serve_started(
        keyed_env(tmp_path), "--port", "0", "--checkpoint-interval", "0", timeout=TIMEOUT
    ):
        pass  # it started, and is still running


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_port_in_use_ends_with_status_1_before_serving_is_announced(
    tmp_path: Path, workers: str
) -> None:
    if workers != "1" and not handoff_available():
        pytest.skip("the main process binds only where it hands connections out (POSIX)")
    env = keyed_env(tmp_path)
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _serve(env, "--port", str(port), "--workers", workers)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "cannot listen" in result.stderr and "in use" in result.stderr
    assert "serving" not in result.stderr
    assert "Application startup" not in result.stderr  # the app was never started


def test_port_0_is_announced_with_the_port_bound_with_one_worker(tmp_path: Path) -> None:
    with serve_started(keyed_env(tmp_path), "--port", "0", timeout=TIMEOUT) as lines:
        listening = [line for line in lines if "listening on 127.0.0.1:" in line]
        assert len(listening) == 1, lines
        port = int(listening[0].split("listening on 127.0.0.1:", 1)[1].split()[0])
        assert port != 0
        serving = [line for line in lines if line.startswith("serving ")]
        assert len(serving) == 1 and f"on http://127.0.0.1:{port} (1 worker)" in serving[0]
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_worker_that_fails_before_it_serves_stops_the_server_with_status_3(
    tmp_path: Path, workers: str
) -> None:
    """The token secret is a directory: the settings, the signing key and the store pass
    the main process's checks, and building the app fails in the worker. Before, a worker
    whose app factory raised ended with status 1 (uvicorn stops only on 3), and was
    replaced, and failed again, forever, a traceback each time."""
    env = keyed_env(tmp_path)
    (tmp_path / "home" / "token.key").mkdir()
    result = _serve(env, "--port", str(free_port()), "--workers", workers)
    assert result.returncode == 3, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert "starting another" not in result.stderr
    reasons = [line for line in result.stderr.splitlines() if "failed to start" in line]
    assert reasons and all("IsADirectoryError" in line for line in reasons), result.stderr
    if workers != "1":
        assert result.stderr.count("stopped before it served") == 1, result.stderr


def test_a_worker_has_served_once_it_wrote_so_even_after_it_died() -> None:
    """What the main process reads when a worker has died: whether it had served (it is
    replaced) or not (the server stops, status 3), whatever the worker's exit status."""
    from ses_ledger.workers import SERVING, WorkerProcess

    config = Config("api.main:app_factory", factory=True)
    silent, serving = WorkerProcess(config), WorkerProcess(config)
    try:
        assert not silent.has_served()  # alive, nothing written yet
        silent._child_end.close()  # died without a word
        assert not silent.has_served()
        serving._child_end.sendall(SERVING)
        serving._child_end.close()  # died after it served
        assert serving.has_served() and serving.has_served()
    finally:
        for worker in (silent, serving):
            worker.close_handoff()
            worker._child_end.close()
