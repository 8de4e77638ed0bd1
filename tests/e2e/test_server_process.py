"""The API as a real process on PostgreSQL, checked by the outside verifier.

`ses-ledger serve` runs against its own PostgreSQL schema; a story is written through HTTP
with tokens from `ses-ledger token issue` (every event type the contract names, text beyond
ASCII, a signing key rotated by the CLI while the server runs); then
`/work/shared/tools/verify_ledger.py` (or `$SES_LEDGER_VERIFIER`), written from the contract
alone, re-checks every hash, signature, chain, the checkpoint and the proofs, and must exit
0; so must `ses-ledger verify`.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.auth import load_or_create_token_key
from ledger.checkpoint import parse_note
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
            saved = tmp_path / "k1.note"  # a relying party's checkpoint, before the rotation
            saved.write_text(client.get("/v1/ledger/checkpoint").text, encoding="utf-8")
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
        _after_the_rotation(env, server.url, executive_id, saved, tmp_path)

    verified = cli(env, "verify", "--quiet", check=False)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _signer(note: str) -> str:
    """The key hint of a checkpoint note's signature (C2SP signed-note: 4 bytes of key id)."""
    return base64.b64decode(note.rstrip("\n").rsplit(" ", 1)[1])[:4].hex()


def _after_the_rotation(
    env: dict[str, str], url: str, executive_id: str, saved: Path, tmp_path: Path
) -> None:
    """api-contract.md evidence-bundle, `bundle verify --help` (1 evidence against, 2 not
    checked): a bundle exported after the rotation, its checkpoint signed by the new key, is
    tied to the checkpoint saved before it: verified with --url (the ledger's key list vouches
    for the new key); NOT CHECKED (2), never a problem, with the saved note alone."""
    bundle = tmp_path / "bundle.json"
    first = parse_note(saved.read_text(encoding="utf-8"))[0].size
    export = ["bundle", "export", "--executive", executive_id, "--out", str(bundle)]
    cli(env, *export, "--consistency-from", str(first))
    note = json.loads(bundle.read_text(encoding="utf-8"))["checkpoint"]
    assert parse_note(note)[0].size > first
    assert _signer(note) != _signer(saved.read_text(encoding="utf-8"))  # K2, not K1
    checked = cli(env, "bundle", "verify", str(bundle), "--checkpoint", str(saved), "--url", url)
    assert "trusted checkpoint: consistent" in checked.stdout, checked.stdout
    assert "BUNDLE VERIFIED" in checked.stdout
    alone = cli(env, "bundle", "verify", str(bundle), "--checkpoint", str(saved), check=False)
    assert alone.returncode == 2, alone.stdout + alone.stderr
    assert "PROBLEM" not in alone.stdout
    assert "NOT CHECKED: the bundle's checkpoint extends the trusted one" in alone.stdout
