"""docker-compose.yml's processes, started here as compose would start them (README, Docker).

Docker does not run on the development machines, so this reads docker-compose.yml and runs
each ledger service's own command and health check, with the file's own environment, on a
PostgreSQL schema of its own: only the database URL, the home volume's path and the
published port are replaced. A command, flag or variable that the product no longer knows
then fails here, not at an agency's first `docker compose up`.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.api.server import CLI, free_port, ledger_env

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
LEDGER_SERVICES = ("keys", "api", "projector")


def _interpolate(value: str) -> str:
    """Compose's `${NAME:-default}` with NAME unset, as on a fresh deployment."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def _services() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())["services"]
    return services


def _argv(command: list[str], port: int) -> list[str]:
    """A service's command or health check as it would run in the image, run here: the
    `ses-ledger` script and `python` are this interpreter, port 8000 is `port`."""
    if command[0] == "CMD":
        command = command[1:]
    head, *rest = command
    rest = [arg.replace("8000", str(port)) for arg in rest]
    if head == "ses-ledger":
        return [*CLI, *rest]
    assert head == "python", command
    return [sys.executable, *rest]


def _until_ok(argv: list[str], env: dict[str, str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
        if done.returncode == 0:
            return
        assert time.monotonic() < deadline, (argv, done.returncode, done.stdout, done.stderr)
        time.sleep(0.5)


def test_every_ledger_variable_in_the_file_is_one_the_product_reads() -> None:
    source = "\n".join(
        path.read_text()
        for package in ("ledger", "api", "ses_ledger", "projections")
        for path in (ROOT / package).rglob("*.py")
    )
    services = _services()
    names = {
        name
        for service in LEDGER_SERVICES
        for name in services[service]["environment"]
        if name.startswith("SES_LEDGER_")
    }
    assert {"SES_LEDGER_HOME", "SES_LEDGER_DB"} <= names
    assert [name for name in sorted(names) if f'"{name}"' not in source] == []


def test_the_ledger_services_run_here_as_compose_runs_them(
    tmp_path: Path, pg_schema_url: str
) -> None:
    services = _services()
    port = free_port()

    def env_of(service: str) -> dict[str, str]:
        given = {k: _interpolate(str(v)) for k, v in services[service]["environment"].items()}
        assert given["SES_LEDGER_HOME"] == "/data"  # the shared volume
        given["SES_LEDGER_HOME"] = str(tmp_path / "data")
        assert given["SES_LEDGER_DB"].startswith("postgresql://ses:ses-ledger-dev@postgres:5432/")
        given["SES_LEDGER_DB"] = pg_schema_url
        return ledger_env(tmp_path / "data", **given)

    keys = _argv(services["keys"]["command"], port)
    for _ in range(2):  # a one-shot that compose may run again on every `up`
        done = subprocess.run(keys, env=env_of("keys"), capture_output=True, text=True)
        assert done.returncode == 0, done.stderr

    processes: list[subprocess.Popen[bytes]] = []
    try:
        api_env = env_of("api")
        processes.append(subprocess.Popen(_argv(services["api"]["command"], port), env=api_env))
        _until_ok(_argv(services["api"]["healthcheck"]["test"], port), api_env, 60)

        projector_env = env_of("projector")
        processes.append(
            subprocess.Popen(_argv(services["projector"]["command"], port), env=projector_env)
        )
        _until_ok(_argv(services["projector"]["healthcheck"]["test"], port), projector_env, 60)

        # The file's header: a token from `docker compose exec api ses-ledger token issue ...`.
        header = re.search(r"exec api (ses-ledger token issue [^\n]*)", COMPOSE.read_text())
        assert header is not None
        issue = _argv(header.group(1).replace("'*'", "*").split(), port)
        token = subprocess.run(issue, env=api_env, capture_output=True, text=True, check=True)
        verified = httpx.get(
            f"http://127.0.0.1:{port}/v1/ledger/verify",
            headers={"Authorization": f"Bearer {token.stdout.strip()}"},
            timeout=30,
        )
        assert verified.status_code == 200 and verified.json()["ok"] is True, verified.text
    finally:
        for process in processes:  # `docker compose stop`: SIGTERM to each PID 1
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(timeout=10) for process in processes]
    # Each ended by itself within compose's 10 s grace (no SIGKILL): the projector with 0,
    # the server with 0 or, after its graceful shutdown, by the SIGTERM uvicorn raises again
    # on itself (in a container as PID 1 that raise is ignored, and it exits with 0).
    assert codes[0] in (0, -signal.SIGTERM) and codes[1] == 0, codes
