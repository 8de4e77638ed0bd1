"""The API as a real process on PostgreSQL, checked by the outside verifier.

`ses-ledger serve` runs against its own PostgreSQL schema; a story is written through HTTP
with tokens from `ses-ledger token issue`; then `/work/shared/tools/verify_ledger.py` (or
`$SES_LEDGER_VERIFIER`), written from the contract alone, re-checks every hash, signature,
chain, the checkpoint and the proofs, and must exit 0; so must `ses-ledger verify`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from api.auth import load_or_create_token_key
from tests.api.server import Server, cli, ledger_env
from tests.api.story import Api
from tests.conftest import outside_verifier

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_a_served_ledger_passes_the_outside_verifier(tmp_path: Path, pg_schema_url: str) -> None:
    verifier = outside_verifier()
    env = ledger_env(tmp_path / "home", pg_schema_url)
    cli(env, "keys", "init")
    token = cli(
        env, "token", "issue", "--subject", "aud-1", "--role", "auditor", "--agency", "*"
    ).stdout.strip()
    assert token.count(".") == 2 and "\n" not in token

    with Server(env, "--checkpoint-interval", "0.5", log=tmp_path / "server.log") as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            api = Api(client, load_or_create_token_key(tmp_path / "home"))
            for level in (2, 4, 5):
                api.appraisal("final", level=level)
            api.appraisal("hlr_done")
            api.new_executive(agency="DOT")
            events = client.get(
                "/v1/ledger/events",
                params={"limit": 5},
                headers={"Authorization": f"Bearer {token}"},
            ).json()
            assert len(events["events"]) == 5 and events["next_after"] == 5

        result = subprocess.run(
            [sys.executable, str(verifier), server.url, token],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "ledger verified" in result.stdout

    verified = cli(env, "verify", "--quiet", check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr
