"""The API as a real process on PostgreSQL, checked by the outside verifier.

`ses-ledger serve` runs against its own PostgreSQL schema; a story is written through HTTP
with tokens from `ses-ledger token issue` (every event type the contract names, text beyond
ASCII, a signing key rotated by the CLI while the server runs); then
`/work/shared/tools/verify_ledger.py` (or `$SES_LEDGER_VERIFIER`), written from the contract
alone, re-checks every hash, signature, chain, the checkpoint and the proofs, and must exit
0; so must `ses-ledger verify`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.auth import load_or_create_token_key
from tests.api import story as s
from tests.api.server import Server, cli, ledger_env
from tests.api.story import Api
from tests.conftest import outside_verifier

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

#: api-contract.md, "Ledger entry": the event types.
ENTRY_TYPES = {
    "ExecutiveRegistered",
    "ReviewBoardRegistered",
    "RatingCapWaiverGranted",
    "PlanSet",
    "ProgressReviewed",
    "DetailAppraised",
    "PeriodExtended",
    "InitialRatingIssued",
    "ExecutiveResponded",
    "ResponseWaived",
    "HigherLevelReviewRequested",
    "HigherLevelReviewRecommended",
    "PRBRecommended",
    "FinalRatingAssigned",
    "PersonnelActionRecorded",
    "ComplaintRecorded",
}


def _all_entries(client: httpx.Client, token: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {token}"}
    page = client.get("/v1/ledger/events", params={"limit": 1000}, headers=headers).json()
    assert page["next_after"] is None
    entries: list[dict[str, Any]] = page["events"]
    return entries


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
            # Every other event type, text beyond ASCII, and a key rotated (by the CLI) while
            # the server runs: the verifier checks events and checkpoints under both keys.
            executive_id = api.new_executive(name="Zoë Ñúñez-李 \U0001f680")
            a = api.appraisal("planned", executive_id=executive_id, period_end="2024-08-31")
            path = f"/v1/appraisals/{a.appraisal_id}"
            api.ok(f"{path}/detail-appraisals", s.detail(2024))
            api.ok(f"{path}/period-extension", s.extension(2024))
            cli(env, "keys", "rotate")
            api.advance(a, "final", level=1)
            api.appraisal("response_closed")  # a response waived
            api.ok(f"/v1/executives/{executive_id}/complaints", s.complaint())
            action = s.personnel_action("reassignment", [a.appraisal_id])
            api.ok(f"/v1/executives/{executive_id}/personnel-actions", action)
            api.ok("/v1/rating-cap-waivers", s.waiver("DOE", "FY2026"), api.as_("admin"))
            types = {e["type"] for e in _all_entries(client, token)}
            assert types == ENTRY_TYPES, ENTRY_TYPES - types
            keys = {e["key_id"] for e in _all_entries(client, token)}
            assert len(keys) == 2  # signed before and after the rotation
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
