"""SIGKILL the server in the middle of a stream of writes, restart it, retry every write that
was never acknowledged with its own Idempotency-Key: every acknowledged write is present
exactly once, nothing is duplicated, and `ses-ledger verify` passes. On each backend.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.auth import issue_token, load_or_create_token_key
from tests.api import story as s
from tests.api.server import Server, cli, ledger_env

pytestmark = pytest.mark.slow

CLIENTS = 4
WRITES_PER_CLIENT = 60
KILL_AFTER_ACKS = 40


def _writes(client_no: int) -> list[tuple[str, str, dict[str, Any]]]:
    """(idempotency key, path, body): a registration, then complaints appended to it."""
    executive_id = f"E-crash-{client_no}"
    writes = [(f"c{client_no}-reg", "/v1/executives", s.executive(executive_id))]
    for i in range(1, WRITES_PER_CLIENT):
        body = s.complaint() | {"summary": f"complaint {client_no}/{i}"}
        writes.append((f"c{client_no}-{i}", f"/v1/executives/{executive_id}/complaints", body))
    return writes


failures: list[str] = []


def _stream(url: str, token: str, writes: list[Any], acked: dict[str, int], stop: Any) -> None:
    """Send writes in order until the server dies; remember each acknowledged position."""
    with httpx.Client(base_url=url, timeout=5) as client:
        for key, path, body in writes:
            if stop.is_set():
                return
            headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
            try:
                r = client.post(path, json=body, headers=headers)
            except httpx.TransportError:
                return  # the server is gone: this write is unacknowledged
            if r.status_code != 201:
                failures.append(f"{path}: {r.status_code} {r.text}")
                return
            acked[key] = r.json()["event"]["position"]


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_acknowledged_writes_survive_sigkill_exactly_once(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    db = request.getfixturevalue("pg_schema_url") if backend == "postgres" else None
    env = ledger_env(tmp_path / "home", db)
    cli(env, "keys", "init")
    key = load_or_create_token_key(tmp_path / "home")
    token = issue_token(key, subject="hr-app-1", roles=["hr_app"], agency="DOE", ttl_seconds=600)
    plans = [_writes(n) for n in range(CLIENTS)]
    acked: dict[str, int] = {}
    stop = threading.Event()

    server = Server(env, "--checkpoint-every", "25", log=tmp_path / "server.log").start()
    threads = [
        threading.Thread(target=_stream, args=(server.url, token, plan, acked, stop))
        for plan in plans
    ]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(acked) < KILL_AFTER_ACKS and time.monotonic() < deadline:
        time.sleep(0.002)
    server.kill()  # SIGKILL while the clients are still writing
    stop.set()
    for t in threads:
        t.join(timeout=30)
    log = (tmp_path / "server.log").read_text(errors="replace")[-3000:]
    assert KILL_AFTER_ACKS <= len(acked) < CLIENTS * WRITES_PER_CLIENT, (len(acked), failures, log)

    with Server(env, log=tmp_path / "server.log") as restarted:
        auditor = issue_token(key, subject="aud-1", roles=["auditor"], agency="*", ttl_seconds=600)
        with httpx.Client(base_url=restarted.url, timeout=30) as client:
            for plan in plans:  # retry, in order, everything not acknowledged
                for idem, path, body in plan:
                    if idem in acked:
                        continue
                    r = client.post(
                        path,
                        json=body,
                        headers={"Authorization": f"Bearer {token}", "Idempotency-Key": idem},
                    )
                    assert r.status_code == 201, r.text
            # a retry of an acknowledged write replays it, appending nothing
            first = next(iter(acked))
            plan = plans[int(first[1:].split("-")[0])]
            idem, path, body = next(w for w in plan if w[0] == first)
            replay = client.post(
                path,
                json=body,
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": idem},
            )
            assert replay.json()["event"]["position"] == acked[first]

            events: list[dict[str, Any]] = []
            after: int | None = 0
            while after is not None:
                page = client.get(
                    "/v1/ledger/events",
                    params={"after": after, "limit": 500},
                    headers={"Authorization": f"Bearer {auditor}"},
                ).json()
                events += page["events"]
                after = page["next_after"]

    by_position = {e["position"]: e for e in events}
    for idem, position in acked.items():  # every acknowledged write, as acknowledged
        assert position in by_position, idem
    facts = [e["data"].get("summary") or e["data"].get("executive_id") for e in events]
    assert len(facts) == len(set(facts)) == CLIENTS * WRITES_PER_CLIENT  # once each
    verified = cli(env, "verify", "--quiet", check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
