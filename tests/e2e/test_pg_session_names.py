"""The PostgreSQL sessions of `ses-ledger serve` and `ses-ledger project` say whose they are.

Every session had an empty `application_name`, so `pg_stat_activity` could not tell the
API's connections from the projector's, or either from another program's on the same
database: finding the sessions of one process (to see how many it holds, or to end a stuck
one with `pg_terminate_backend`) meant matching client ports against the host's sockets.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.api.server import CLI, Server, keyed_env
from tests.conftest import PG_URL

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def _client_ports(pids: list[int]) -> set[int]:
    """Local ports of the TCP connections these processes hold open."""
    inodes: set[str] = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _names(pids: list[int], timeout: float = 30) -> list[str]:
    """`application_name` of the PostgreSQL sessions these processes hold (waits for some)."""
    import psycopg

    deadline = time.monotonic() + timeout
    while True:
        ports = _client_ports(pids)
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT application_name FROM pg_stat_activity WHERE client_port = ANY(%s)",
                (sorted(ports),),
            ).fetchall()
        if rows or time.monotonic() > deadline:
            return sorted(str(name) for (name,) in rows)
        time.sleep(0.2)


def _children(pid: int) -> list[int]:
    return [
        int(child)
        for listing in Path(f"/proc/{pid}/task").glob("*/children")
        for child in listing.read_text().split()
    ]


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads /proc (Linux)")
def test_serve_and_project_name_their_sessions(tmp_path: Path, pg_schema_url: str) -> None:
    env = keyed_env(tmp_path, SES_LEDGER_DB=pg_schema_url)
    env.pop("PGAPPNAME", None)
    with Server(env, "--workers", "2") as server:
        assert server.process is not None
        names = _names(_children(server.process.pid))
        assert names and set(names) == {"ses-ledger serve"}, names

        project = subprocess.Popen([*CLI, "project", "--follow"], env=env)
        try:
            names = _names([project.pid])
            assert names and set(names) == {"ses-ledger project"}, names
        finally:
            project.terminate()
            project.wait(timeout=30)


def test_a_name_given_in_the_environment_is_kept(tmp_path: Path, pg_schema_url: str) -> None:
    env = keyed_env(tmp_path, SES_LEDGER_DB=pg_schema_url, PGAPPNAME="hr-ledger-api")
    with Server(env) as server:
        assert server.process is not None
        assert set(_names([server.process.pid])) == {"hr-ledger-api"}
