"""The API as a real process on PostgreSQL when the database goes away, and comes back.

A client (an HR application) must get a prompt, clear answer: when PostgreSQL's server
processes are cut under the API (`pg_terminate_backend`, a restart), its next requests are
served on new connections at once; while PostgreSQL cannot be reached at all, each request
is answered 503 `unavailable` (problem+json, `Retry-After`, docs/api.md Errors) within
`SES_LEDGER_STORE_WAIT_SECONDS`; once it is back, requests are served again without a
restart, and a write retried with its Idempotency-Key is appended once (api-contract.md,
Idempotency).

Before: psycopg_pool's pre-ping paused 1 s, 2 s, 4 s ... between dead pooled connections,
so the first write after its backends were terminated took 7 s to answer 201, and every
request while PostgreSQL was down waited the pool's 30 s for its 503.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from api.auth import load_or_create_token_key
from tests.api import story as s
from tests.api.server import Server, cli, ledger_env
from tests.api.story import Api
from tests.conftest import PG_URL
from tests.pg_proxy import PgProxy

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

PROBLEM = "application/problem+json"
UNAVAILABLE = "urn:ses-ledger:problem:unavailable"
#: The wait the outage test sets, and what else an answer may take on a busy machine.
WAIT = 2.0
SLACK = 2.0


def _timed(request: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = request()
    return response, time.monotonic() - started


def _requests(api: Api, executive_id: str, key: str) -> dict[str, Callable[[], httpx.Response]]:
    """A read of one executive, a write (with an Idempotency-Key), a report, and /healthz."""
    auditor = api.as_("auditor", agency="*")
    return {
        "read": lambda: api.get("/v1/executives/E1", api.hr),
        "write": lambda: api.post(
            "/v1/executives", s.executive(executive_id), {**api.hr, "Idempotency-Key": key}
        ),
        "report": lambda: api.get(
            "/v1/reports/rating-distribution", auditor, cycle="FY2026", agency="DOE"
        ),
        "healthz": lambda: api.client.get("/healthz"),
    }


def _entries(api: Api, stream_id: str) -> list[dict[str, Any]]:
    page = api.get("/v1/ledger/events", api.auditor, limit=1000).json()
    return [e for e in page["events"] if e["stream_id"] == stream_id]


@pytest.fixture
def served_app_name(pg_schema_url: str) -> str:
    """The application_name of the server's connections (libpq's PGAPPNAME): its own
    backends, and no other session's, are the ones the test terminates."""
    return "ses-ledger-outage-" + (urlsplit(pg_schema_url).query.partition("=")[2] or "x")


def _terminate(app_name: str) -> list[int]:
    """Terminate the backends named `app_name`, and no other: their pids are read first and
    each is then terminated by number. (`WHERE application_name = ... AND
    pg_terminate_backend(pid)` must never be written: PostgreSQL may evaluate the call before
    the name's test, on every session of the cluster.)"""
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        pids = [
            row[0]
            for row in admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (app_name,)
            ).fetchall()
        ]
        for pid in pids:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    return pids


@pytest.fixture
def started(
    tmp_path: Path, pg_schema_url: str, served_app_name: str
) -> Iterator[tuple[Api, Server]]:
    env = ledger_env(tmp_path / "home", pg_schema_url, PGAPPNAME=served_app_name)
    cli(env, "keys", "init")
    with (
        Server(env, log=tmp_path / "server.log") as server,
        httpx.Client(base_url=server.url, timeout=120) as client,
    ):
        yield Api(client, load_or_create_token_key(tmp_path / "home")), server


def test_terminated_backends_are_replaced_at_once_and_every_request_is_served(
    started: tuple[Api, Server], served_app_name: str
) -> None:
    """Only this server's backends are terminated, before each request: a read, a write and
    a report are each answered (200/201) in well under a second's pause per dead pooled
    connection. Before: the write answered 201 after 7 s, the report 200 after 7.5 s."""
    api, _ = started
    api.ok("/v1/executives", s.executive("E1"))
    for round_ in range(2):
        requests = _requests(api, f"E2-{round_}", f"outage-{round_}")
        for name in ("read", "write", "report"):
            assert _terminate(served_app_name), "the server holds connections"
            response, took = _timed(requests[name])
            assert response.status_code in (200, 201), (name, response.text)
            assert took < SLACK, f"{name} took {took:.2f} s after its backends were terminated"
    assert len(_entries(api, "E2-0")) == 1 and len(_entries(api, "E2-1")) == 1


def test_an_unreachable_database_is_a_prompt_503_and_service_resumes_when_it_is_back(
    tmp_path: Path, pg_schema_url: str
) -> None:
    """PostgreSQL goes away (every connection cut, new ones refused: a relay in front of it
    is taken down) and comes back. Each request meanwhile is 503 `unavailable` with
    Retry-After within SES_LEDGER_STORE_WAIT_SECONDS (2 here) and a little; once it is back
    the write retried with its Idempotency-Key is 201 within a second or so, appended once,
    and read back; the projecting thread says what failed in one line, not a traceback
    per round. Before: every request waited 30 s for its 503 whatever the setting."""
    schema = urlsplit(pg_schema_url).query.partition("=")[2]
    pg = urlsplit(PG_URL)
    with PgProxy((pg.hostname or "127.0.0.1", pg.port or 5432)) as proxy:
        url = f"postgresql://{pg.username or 'postgres'}@127.0.0.1:{proxy.port}{pg.path}"
        env = ledger_env(
            tmp_path / "home",
            f"{url}?schema={schema}",
            SES_LEDGER_STORE_WAIT_SECONDS=str(WAIT),
            SES_LEDGER_PROJECTION_INTERVAL_SECONDS="0.2",
        )
        cli(env, "keys", "init")
        log = tmp_path / "server.log"
        with (
            Server(env, log=log) as server,
            httpx.Client(base_url=server.url, timeout=120) as client,
        ):
            api = Api(client, load_or_create_token_key(tmp_path / "home"))
            api.ok("/v1/executives", s.executive("E1"))
            requests = _requests(api, "E2", "outage-write")
            proxy.down()
            for name, request in requests.items():
                response, took = _timed(request)
                assert response.status_code == 503, (name, response.text)
                assert response.headers["content-type"] == PROBLEM
                assert response.headers["retry-after"] == "1"
                problem = response.json()
                assert problem["type"] == UNAVAILABLE, (name, problem)
                assert problem["detail"] == (
                    "the ledger's database cannot be reached; nothing was recorded, retry shortly"
                )
                assert took < WAIT + SLACK, f"{name}: 503 after {took:.2f} s"
            time.sleep(1.0)  # the projecting thread meets the outage too
            proxy.up()
            back = time.monotonic()
            while True:
                response = requests["write"]()
                if response.status_code == 201 or time.monotonic() - back > 10:
                    break
                time.sleep(0.1)
            assert response.status_code == 201, response.text
            assert time.monotonic() - back < SLACK, "served again only after a while"
            replayed = requests["write"]()
            assert replayed.status_code == 201 and replayed.json() == response.json()
            assert api.get("/v1/executives/E2", api.hr).status_code == 200
            for name in ("read", "report", "healthz"):
                assert requests[name]().status_code == 200, name
            assert len(_entries(api, "E2")) == 1  # neither lost nor appended twice
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert "projection catch-up failed" in text


def test_the_wait_is_a_setting_refused_by_name_when_unusable(tmp_path: Path) -> None:
    """SES_LEDGER_STORE_WAIT_SECONDS: more than 0 and at most 300 (docs/api.md); anything
    else stops `serve` with status 2 and names the variable, as for every setting."""
    for value in ("abc", "0", "-1", "301"):
        env = ledger_env(tmp_path / "home", SES_LEDGER_STORE_WAIT_SECONDS=value)
        result = cli(env, "serve", "--port", "0", check=False)
        assert result.returncode == 2, (value, result.stdout, result.stderr)
        assert "STORE_WAIT_SECONDS" in result.stderr.upper(), (value, result.stderr)


def test_the_wait_bounds_the_pool_and_new_connections() -> None:
    """The pool made for a PostgreSQL ledger waits SES_LEDGER_STORE_WAIT_SECONDS (default 5)
    for a connection, gives up reconnecting in the background after as long, and gives
    libpq a connect_timeout (a server that does not answer at all)."""
    from ledger.config import LedgerConfig
    from ledger.recorders_postgres import LedgerConnectionPool, LedgerPostgresFactory

    schema = f"unused_{uuid.uuid4().hex[:8]}"
    for environ, wait, connect_timeout in (
        ({}, 5.0, 5),
        ({"SES_LEDGER_STORE_WAIT_SECONDS": "2.5"}, 2.5, 3),
    ):
        config = LedgerConfig.from_env(
            {
                "SES_LEDGER_DB": f"{PG_URL}?schema={schema}",
                "SES_LEDGER_HOME": "/nonexistent",
                **environ,
            }
        )
        env = config.eventsourcing_env()
        env["CREATE_TABLE"] = "n"
        factory = LedgerPostgresFactory(env)
        pool = factory.datastore.pool
        try:
            assert isinstance(pool, LedgerConnectionPool) and pool.pre_ping
            assert pool.timeout == wait and pool.reconnect_timeout == wait
            assert (
                isinstance(pool.kwargs, dict) and pool.kwargs["connect_timeout"] == connect_timeout
            )
        finally:
            factory.close()
