"""The standalone evidence-bundle verifier: a story of one executive, then every tamper."""

from __future__ import annotations

import ast
import base64
import copy
import datetime as dt
import hashlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import offline_verify
from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.merkle import MemoryNodeStore, leaf_hash
from ledger.offline_verify import (
    JCSError,
    add_years,
    jcs,
    main,
    rating_from_elements,
    removal_lines,
    verify_bundle,
)
from ledger.policies.removal import FinalRating, removal_history

ORIGIN = "ses-ledger.local/ledger"
KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()
BASIC = [
    "leading_change",
    "leading_people",
    "business_acumen",
    "building_coalitions",
    "results_driven",
]
WEIGHTS = dict(zip(BASIC, [15, 15, 15, 15, 40], strict=True))


def contract_hash(entry: dict[str, Any]) -> str:
    """api-contract.md: SHA-256 hex of the RFC 8785 JCS of exactly these keys."""
    keys = [
        "stream_id",
        "stream_version",
        "type",
        "occurred_on",
        "recorded_at",
        "actor",
        "submitted_by",
        "policy",
        "data",
        "prev_hash",
    ]
    return hashlib.sha256(rfc8785.dumps({k: entry[k] for k in keys})).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def raw(key: Any) -> bytes:
    return bytes(key.public_bytes_raw())


class LedgerBuilder:
    """Appends contract-shaped entries (hashed with the rfc8785 library) to a Merkle tree."""

    def __init__(self) -> None:
        self.entries: list[dict[str, Any]] = []
        self.tree = MemoryNodeStore()
        self.position = 0

    def add(
        self,
        stream: str,
        etype: str,
        occurred_on: str,
        data: dict[str, Any],
        policy: str | None = None,
    ) -> dict[str, Any]:
        same = [e for e in self.entries if e["stream_id"] == stream]
        self.position += 1 + len(self.entries) % 3  # positions have gaps
        e: dict[str, Any] = {
            "position": self.position,
            "stream_id": stream,
            "stream_version": len(same) + 1,
            "type": etype,
            "occurred_on": occurred_on,
            "recorded_at": f"{occurred_on}T12:00:{len(self.entries) % 60:02d}.000000Z",
            "actor": "hr-1",
            "submitted_by": "hr-app-1",
            "policy": policy,
            "data": data,
            "prev_hash": same[-1]["hash"] if same else None,
        }
        e["hash"] = contract_hash(e)
        e["signature"] = b64(KEY.sign(bytes.fromhex(e["hash"])))
        e["key_id"] = "k1"
        self.tree.append(leaf_hash(bytes.fromhex(e["hash"])))
        self.entries.append(e)
        return e

    def appraisal(self, aid: str, exe: str, year: int, levels: dict[str, int], final: int) -> None:
        policy = "ses-basic-2012"
        base = {"appraisal_id": aid, "executive_id": exe}
        self.add(
            aid,
            "PlanSet",
            f"{year - 1}-10-01",
            base
            | {
                "policy": policy,
                "period_start": f"{year - 1}-10-01",
                "period_end": f"{year}-09-30",
                "rating_official_id": "R1",
                "communicated_on": f"{year - 1}-10-01",
                "elements": [
                    {"code": c, "weight": w, "requirements": "measures, targets, timelines"}
                    for c, w in WEIGHTS.items()
                ],
            },
            policy,
        )
        self.add(
            aid,
            "InitialRatingIssued",
            f"{year}-10-15",
            base
            | {
                "rated_on": f"{year}-10-15",
                "rating_official_id": "R1",
                "element_levels": levels,
                "narrative": "Ratings \u201cas shared\u201d\n\ttab",
                "shared_on": f"{year}-10-15",
            },
            policy,
        )
        self.add(
            aid,
            "FinalRatingAssigned",
            f"{year}-11-15",
            base
            | {
                "appointing_authority_id": "AA1",
                "rated_on": f"{year}-11-15",
                "level": final,
                "score": rating_from_elements(levels, WEIGHTS)[0],
            },
            policy,
        )

    def bundle(
        self, executive_id: str, size: int | None = None, *, seal: bool = True
    ) -> dict[str, Any]:
        """`seal`: with the ledger's `position_seal` over [position, leaf index] pairs, as
        exporters add it (a field the contract allows adding); without, as older ones did."""
        size = self.tree.size if size is None else size
        mine = [
            (i, e)
            for i, e in enumerate(self.entries)
            if e["data"].get("executive_id") == executive_id and i < size
        ]
        cp = Checkpoint(ORIGIN, size, self.tree.root(size))
        pairs = [[e["position"], i] for i, e in mine]
        sealed = KEY.sign(offline_verify.position_seal_message((ORIGIN, size, cp.root_hash), pairs))
        extra = {"position_seal": {"key_id": "k1", "positions": pairs, "signature": b64(sealed)}}
        return {
            **(extra if seal else {}),
            "format": "ses-ledger-bundle/v1",
            "executive_id": executive_id,
            "entries": [e for _, e in mine],
            "keys": [
                {
                    "key_id": "k1",
                    "algorithm": "Ed25519",
                    "public_key": b64(KEY.public_key().public_bytes_raw()),
                    "valid_from": "2017-01-01T00:00:00Z",
                    "valid_until": None,
                }
            ],
            "checkpoint": sign_checkpoint(cp, ORIGIN, KEY),
            "proofs": {
                str(e["position"]): {
                    "leaf_index": i,
                    "tree_size": size,
                    "hashes": [b64(h) for h in self.tree.inclusion_proof(i, size)],
                }
                for i, e in mine
            },
        }


def build_ledger() -> LedgerBuilder:
    """E1: registered 2018, rated Level 2 on 2021-11-15 and again exactly three years later."""
    lb = LedgerBuilder()
    lb.add(
        "E1",
        "ExecutiveRegistered",
        "2018-01-08",
        {
            "executive_id": "E1",
            "name": "Pat Doe",
            "title": "Director",
            "pay_plan": "ES",
            "agency": "DOE",
            "duty_station": "Washington, DC",
            "appointment_type": "career",
            "probationary": False,
            "appointed_on": "2018-01-08",
        },
    )
    lb.add(
        "E2",
        "ExecutiveRegistered",
        "2019-03-04",
        {
            "executive_id": "E2",
            "name": "Sam Roe",
            "title": "CIO",
            "pay_plan": "ES",
            "agency": "DOE",
            "duty_station": "Denver, CO",
            "appointment_type": "noncareer",
            "probationary": True,
            "appointed_on": "2019-03-04",
        },
    )
    lb.appraisal("A-2021-E1", "E1", 2021, dict.fromkeys(BASIC, 2), final=2)
    lb.appraisal("A-2021-E2", "E2", 2021, dict.fromkeys(BASIC, 4), final=4)
    lb.appraisal("A-2024-E1", "E1", 2024, dict.fromkeys(BASIC, 3) | {"results_driven": 2}, final=2)
    lb.add(
        "E1",
        "PersonnelActionRecorded",
        "2024-12-01",
        {
            "executive_id": "E1",
            "action": "removal",
            "basis_appraisal_ids": ["A-2021-E1", "A-2024-E1"],
            "notice_on": "2024-12-01",
            "effective_on": "2025-01-06",
            "authority": "5 U.S.C. 3592(a)(2)",
            "hearing_requested_on": None,
        },
    )
    lb.add(
        "E1",
        "ComplaintRecorded",
        "2024-12-10",
        {"executive_id": "E1", "forum": "OSC", "filed_on": "2024-12-10", "summary": "reprisal"},
    )
    lb.appraisal("A-2024-E2", "E2", 2024, dict.fromkeys(BASIC, 5), final=5)
    return lb


LEDGER = build_ledger()


@pytest.fixture
def bundle() -> dict[str, Any]:
    return copy.deepcopy(LEDGER.bundle("E1"))


# --- the happy path ---------------------------------------------------------------------------


def test_an_untouched_bundle_verifies_and_tells_the_executives_story(
    bundle: dict[str, Any],
) -> None:
    report = verify_bundle(bundle)
    assert report.ok, report.problems
    text = "\n".join(report.summary)
    assert "executive E1: 9 entries, 3 streams" in text
    assert f"tree size {LEDGER.tree.size}" in text
    assert "registered: E1 Pat Doe, Director, DOE, career, appointed 2018-01-08" in text
    assert (
        "appraisal A-2021-E1: ses-basic-2012, 2020-10-01 to 2021-09-30; initial score 200, "
        "Level 2, rated 2021-10-15; final Level 2, rated 2021-11-15"
    ) in text
    assert "initial score 260, Level 2, rated 2024-10-15; final Level 2, rated 2024-11-15" in text
    assert "personnel action: removal, notice 2024-12-01, effective 2025-01-06" in text
    assert "complaint: OSC filed 2024-12-10" in text
    assert "removal history as of 2024-12-10" in text
    # rated exactly three years apart: REM-2 counts it; the 2021 rating is out of the window
    assert (
        "three-year (REM-2): in window: A-2024-E1 L2 2024-11-15; "
        "removal required, triggered on 2024-11-15"
    ) in text
    assert "five-year (REM-3): in window: none; no removal required" in text
    # The other executive appears nowhere. The summary also prints the (random) public
    # keys, whose base64 may hold the letters "E2" by chance: they are left out of the check.
    rest = text.replace("executive E1", "")
    for key in bundle["keys"]:
        rest = rest.replace(key["public_key"], "")
    assert "E2" not in rest


def test_the_json_round_trip_and_key_order_do_not_matter(bundle: dict[str, Any]) -> None:
    shuffled = json.loads(json.dumps(bundle, sort_keys=True, indent=3))
    shuffled["entries"] = [dict(reversed(list(e.items()))) for e in shuffled["entries"]]
    assert verify_bundle(shuffled).ok


# --- every tamper is reported -----------------------------------------------------------------

Tamper = Callable[[dict[str, Any]], None]


def _spare_bits(text: str) -> str:
    """`text` (standard base64 ending in padding) with the unused low bits of its last data
    character set: one changed byte of the file, the same bytes for a lenient decoder."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    data = text.rstrip("=")
    last = alphabet.index(data[-1]) | 1
    return data[:-1] + alphabet[last] + text[len(data) :]


def _signature_spare_bits(b: dict[str, Any]) -> None:
    b["entries"][1]["signature"] = _spare_bits(b["entries"][1]["signature"])


def _public_key_spare_bits(b: dict[str, Any]) -> None:
    b["keys"][0]["public_key"] = _spare_bits(b["keys"][0]["public_key"])


def _proof_hash_spare_bits(b: dict[str, Any]) -> None:
    proof = next(iter(b["proofs"].values()))
    proof["hashes"][0] = _spare_bits(proof["hashes"][0])


def _checkpoint_signature_spare_bits(b: dict[str, Any]) -> None:
    body, _, line = b["checkpoint"].rstrip("\n").rpartition("\n")
    name, _, sig = line.rpartition(" ")
    b["checkpoint"] = f"{body}\n{name} {_spare_bits(sig)}\n"


def _null_field_renamed(b: dict[str, Any]) -> None:
    entry = b["entries"][0]  # E1 v1: policy and prev_hash are null
    entry["policx"] = entry.pop("policy")


def _payload_byte(b: dict[str, Any]) -> None:
    b["entries"][2]["data"]["rated_on"] = "2021-10-16"


def _signature(b: dict[str, Any]) -> None:
    sig = bytearray(base64.b64decode(b["entries"][1]["signature"]))
    sig[10] ^= 1
    b["entries"][1]["signature"] = b64(bytes(sig))


def _drop_middle(b: dict[str, Any]) -> None:
    del b["entries"][2]  # A-2021-E1 version 2


def _drop_first(b: dict[str, Any]) -> None:
    del b["entries"][0]  # E1 version 1


def _reorder(b: dict[str, Any]) -> None:
    b["entries"][1], b["entries"][2] = b["entries"][2], b["entries"][1]


def _swap_streams(b: dict[str, Any]) -> None:
    e = b["entries"][4]  # A-2024-E1 v1 claims to be a later version of A-2021-E1
    e["stream_id"], e["stream_version"] = "A-2021-E1", 4


def _repeat_position(b: dict[str, Any]) -> None:
    b["entries"][2]["position"] = b["entries"][1]["position"]  # two entries, one position


def _swap_positions(b: dict[str, Any]) -> None:
    e1, e2 = b["entries"][1], b["entries"][2]
    e1["position"], e2["position"] = e2["position"], e1["position"]
    b["entries"][1], b["entries"][2] = e2, e1  # positions unhashed: only the proofs notice


def _wrong_proof(b: dict[str, Any]) -> None:
    proof = next(iter(b["proofs"].values()))
    proof["hashes"][0] = b64(bytes(32))


def _proof_for_other_size(b: dict[str, Any]) -> None:
    next(iter(b["proofs"].values()))["tree_size"] -= 1


def _missing_proof(b: dict[str, Any]) -> None:
    del b["proofs"][str(b["entries"][-1]["position"])]


def _other_signer(b: dict[str, Any]) -> None:
    body = b["checkpoint"].partition("\n\n")[0].split("\n")
    cp = Checkpoint(body[0], int(body[1]), base64.b64decode(body[2]))
    b["checkpoint"] = sign_checkpoint(cp, ORIGIN, OTHER_KEY)


def _checkpoint_root(b: dict[str, Any]) -> None:
    lines = b["checkpoint"].split("\n")
    lines[2] = b64(bytes(32))
    b["checkpoint"] = "\n".join(lines)


def _float(b: dict[str, Any]) -> None:
    b["entries"][3]["data"]["score"] = 200.0


def _unknown_key(b: dict[str, Any]) -> None:
    b["entries"][0]["key_id"] = "k9"


def _no_keys(b: dict[str, Any]) -> None:
    b["keys"] = []


def _prev_hash(b: dict[str, Any]) -> None:
    b["entries"][2]["prev_hash"] = "00" * 32


@pytest.mark.parametrize(
    ("tamper", "problem"),
    [
        (_payload_byte, r"position \d+: hash does not recompute"),
        (_signature, r"position \d+: signature does not verify"),
        (_drop_middle, r"stream A-2021-E1 jumps from version 1 to 3"),
        (_drop_first, r"stream E1 starts at version 2; earlier events missing"),
        (_reorder, r"entries are not in increasing position order"),
        (_repeat_position, r"entries are not in increasing position order"),
        (_swap_streams, r"hash does not recompute"),
        (_swap_positions, r"inclusion proof does not verify"),
        (_wrong_proof, r"inclusion proof does not verify against the checkpoint"),
        (_proof_for_other_size, r"inclusion proof is for tree size \d+, not \d+"),
        (_missing_proof, r"no usable inclusion proof \(KeyError"),
        (_other_signer, r"checkpoint: no signature named .* by a bundle key verifies"),
        (_checkpoint_root, r"checkpoint: a signature by a bundle key does not verify"),
        (_float, r"malformed entry \(JCSError: number 200.0 is a float"),
        (_unknown_key, r"key_id 'k9' is not among the bundle's keys"),
        (_no_keys, r"the bundle lists no usable Ed25519 key"),
        (_prev_hash, r"hash does not recompute"),
        (_null_field_renamed, r"position \d+: the entry lacks the hashed field\(s\) policy"),
        (_signature_spare_bits, r"malformed entry \(ValueError: not canonical base64"),
        (_public_key_spare_bits, r"keys: unusable key \(not canonical base64"),
        (_proof_hash_spare_bits, r"no usable inclusion proof \(ValueError: not canonical"),
        (_checkpoint_signature_spare_bits, r"checkpoint: not canonical base64"),
    ],
    ids=lambda v: getattr(v, "__name__", "")[1:] or None,
)
def test_each_tamper_is_reported(bundle: dict[str, Any], tamper: Tamper, problem: str) -> None:
    tamper(bundle)
    report = verify_bundle(bundle)
    assert not report.ok
    assert any(re.search(problem, p) for p in report.problems), report.problems


def test_prev_hash_that_skips_a_link_is_reported_even_if_rehashed(bundle: dict[str, Any]) -> None:
    # an insider with the signing key re-signs an event whose prev_hash points elsewhere
    e = bundle["entries"][3]  # A-2021-E1 v3
    e["prev_hash"] = bundle["entries"][1]["hash"]  # v1, skipping v2
    e["hash"] = contract_hash(e)
    e["signature"] = b64(KEY.sign(bytes.fromhex(e["hash"])))
    problems = verify_bundle(bundle).problems
    assert any(
        "prev_hash does not chain to the previous event of stream A-2021-E1" in p for p in problems
    )
    assert any("inclusion proof does not verify" in p for p in problems)  # and not in the log


def test_a_first_version_with_a_prev_hash_is_reported_even_if_rehashed(
    bundle: dict[str, Any],
) -> None:
    """Version 1 of a stream chains to nothing: an insider who re-signs E1's first event
    with a prev_hash (another event's hash) is reported."""
    e = bundle["entries"][0]
    assert (e["stream_id"], e["stream_version"], e["prev_hash"]) == ("E1", 1, None)
    e["prev_hash"] = bundle["entries"][1]["hash"]
    e["hash"] = contract_hash(e)
    e["signature"] = b64(KEY.sign(bytes.fromhex(e["hash"])))
    problems = verify_bundle(bundle).problems
    assert any("version 1 of stream E1 has a prev_hash" in p for p in problems), problems


def _splice(b: dict[str, Any], stream: str) -> None:
    """Add another record's stream, each event with its genuine proof against the checkpoint."""
    other = LEDGER.bundle("E2")
    extra = [e for e in other["entries"] if e["stream_id"] == stream]
    b["entries"] = sorted(b["entries"] + extra, key=lambda e: e["position"])
    b["proofs"].update({str(e["position"]): other["proofs"][str(e["position"])] for e in extra})


def test_another_executives_appraisal_added_to_a_bundle_is_reported(
    bundle: dict[str, Any],
) -> None:
    """api-contract.md evidence-bundle (one executive's `entries`; REM-2): E2's Level 4 and
    Level 5 appraisals, genuine and provably in the log, are not E1's record, and a verifier
    that takes them as E1's computes E1's history and removal verdict from them."""
    _splice(bundle, "A-2021-E2")
    problems = verify_bundle(bundle).problems
    assert any("stream A-2021-E2 is not part of executive E1's record" in p for p in problems)


def test_a_bundle_relabelled_for_another_executive_is_reported(bundle: dict[str, Any]) -> None:
    """api-contract.md evidence-bundle `executive_id`: a one-byte change of it (E1 -> E2) must
    not verify as E2's evidence made of E1's events."""
    bundle["executive_id"] = "E2"
    problems = verify_bundle(bundle).problems
    assert any("the bundle holds no registration of executive 'E2'" in p for p in problems)
    assert any("stream E1 is not part of executive E2's record" in p for p in problems)


def test_a_bundle_without_the_executives_registration_is_reported(
    bundle: dict[str, Any],
) -> None:
    bundle["entries"] = [e for e in bundle["entries"] if e["stream_id"] != "E1"]
    problems = verify_bundle(bundle).problems
    assert any("the bundle holds no registration of executive 'E1'" in p for p in problems)


@pytest.mark.parametrize("junk", [None, [], "text", {"format": "other"}])
def test_what_is_not_a_bundle_is_reported(junk: Any) -> None:
    assert verify_bundle(junk).problems == ["not a ses-ledger-bundle/v1 bundle"]


def test_garbage_inside_a_bundle_is_reported_not_raised(bundle: dict[str, Any]) -> None:
    bundle["entries"].append("not an entry")
    bundle["entries"][0]["data"] = None
    bundle["entries"][1]["data"]["elements"] = "junk"
    bundle["keys"].append({"key_id": "k2", "algorithm": "RSA", "public_key": "AA=="})
    bundle["proofs"] = {"1": None}
    problems = verify_bundle(bundle, "not a note").problems
    assert "entries: missing, or not all objects" in problems
    assert any("unusable key" in p for p in problems)


# --- a trusted checkpoint and consistency -----------------------------------------------------


def _note(size: int, key: Ed25519PrivateKey = KEY, origin: str = ORIGIN) -> str:
    return sign_checkpoint(Checkpoint(origin, size, LEDGER.tree.root(size)), origin, key)


def _consistency(first: int, second: int) -> dict[str, Any]:
    return {
        "first": first,
        "second": second,
        "hashes": [b64(h) for h in LEDGER.tree.consistency_proof(first, second)],
    }


def test_the_same_trusted_checkpoint_agrees(bundle: dict[str, Any]) -> None:
    report = verify_bundle(bundle, _note(LEDGER.tree.size))
    assert report.ok, report.problems
    assert "trusted checkpoint: consistent with the bundle's" in report.summary


@pytest.mark.parametrize("field", ["consistency", "consistency_proofs"])
def test_an_older_trusted_checkpoint_needs_a_consistency_proof(
    bundle: dict[str, Any], field: str
) -> None:
    report = verify_bundle(bundle, _note(9))
    assert not report.ok and report.problems == []
    assert [u for u in report.unchecked if "could not be established" in u]
    proof = _consistency(9, LEDGER.tree.size)
    bundle[field] = proof if field == "consistency" else [_consistency(3, 9), proof]
    assert verify_bundle(bundle, _note(9)).ok
    proof["hashes"][-1] = b64(bytes(32))
    assert verify_bundle(bundle, _note(9)).problems == [
        f"consistency proof 9 -> {LEDGER.tree.size} does not verify"
    ]


def test_a_newer_trusted_checkpoint_is_checked_the_other_way() -> None:
    older = copy.deepcopy(LEDGER.bundle("E1", size=15))
    assert verify_bundle(older).ok
    older["consistency_proofs"] = [_consistency(15, LEDGER.tree.size)]
    assert verify_bundle(older, _note(LEDGER.tree.size)).ok


def test_a_newer_trusted_checkpoint_signed_by_a_later_key_says_how_to_check_it() -> None:
    """api-contract.md `GET /v1/ledger/keys` (keys rotate; old ones stay listed): a bundle
    exported before a rotation cannot hold the key that signed a checkpoint issued after it.
    Such a genuine pair was NOT VERIFIED with only "no signature ... by a bundle key
    verifies", nothing saying the bundle may be genuine or how to check it (the key list)."""
    older = copy.deepcopy(LEDGER.bundle("E1", size=15))
    older["consistency_proofs"] = [_consistency(15, LEDGER.tree.size)]
    newer = _note(LEDGER.tree.size, key=OTHER_KEY)
    report = verify_bundle(older, newer)
    assert not report.ok and report.problems == []  # not checked: no verdict (exit 2)
    [problem] = report.unchecked
    assert f"newer than the bundle's (tree size 15 < {LEDGER.tree.size})" in problem
    assert "`ses-ledger bundle verify --url URL`" in problem and "--keys" in problem
    listed = [
        *older["keys"],
        older["keys"][0] | {"key_id": "k2", "public_key": b64(raw(OTHER_KEY.public_key()))},
    ]
    assert verify_bundle(older, newer, trusted_keys=listed).ok
    # the same tree size: the bundle, exported after the note, lists every key there was
    same = verify_bundle(LEDGER.bundle("E1"), _note(LEDGER.tree.size, key=OTHER_KEY))
    assert same.problems and "newer than the bundle's" not in same.problems[0]


def test_a_genuine_tree_extended_under_a_key_of_the_bundles_own_is_reported() -> None:
    """api-contract.md evidence-bundle / checkpoint: a consistency proof shows the bundle's
    tree extends a trusted checkpoint, not who extended it. Anyone can append an invented
    Level 1 final rating to a copy of the genuine tree, sign it and the larger checkpoint with
    a key of their own listed in the bundle, and prove consistency with the genuine one.
    Never verified against the trusted note alone, though not a problem either (`--help`:
    2, a check that could not be made): a genuine `keys rotate` between the two notes looks
    the same. The ledger's key list (`--keys`, `--url`) tells them apart."""
    forger = build_ledger()  # the same entries, the same tree as LEDGER
    trusted_size = forger.tree.size
    forger.appraisal("A-2025-E1", "E1", 2025, dict.fromkeys(BASIC, 1), final=1)
    for e in forger.entries[trusted_size:]:  # re-signed: the hashes, so the tree, stay
        e["signature"], e["key_id"] = b64(OTHER_KEY.sign(bytes.fromhex(e["hash"]))), "k2"
    forged = forger.bundle("E1")
    forged["keys"].append(
        forged["keys"][0]
        | {"key_id": "k2", "public_key": b64(OTHER_KEY.public_key().public_bytes_raw())}
    )
    size = forger.tree.size
    forged["checkpoint"] = sign_checkpoint(
        Checkpoint(ORIGIN, size, forger.tree.root()), ORIGIN, OTHER_KEY
    )
    forged["consistency"] = {
        "first": trusted_size,
        "second": size,
        "hashes": [b64(h) for h in forger.tree.consistency_proof(trusted_size, size)],
    }
    assert verify_bundle(forged).ok  # alone: only the printed keys could tell
    report = verify_bundle(forged, _note(trusted_size))
    assert not report.ok and report.problems == []  # NOT CHECKED (exit 2), not verified
    [unchecked] = report.unchecked
    assert f"extends the trusted one ({trusted_size} -> {size}) but is signed by another key" in (
        unchecked
    )
    assert "`ses-ledger bundle verify --url URL`" in unchecked and "--keys FILE" in unchecked
    genuine = LEDGER.bundle("E1")["keys"]  # the ledger's list: no "k2" in it
    listed = verify_bundle(forged, _note(trusted_size), trusted_keys=genuine)
    assert any(
        "key k2 of the bundle is not among the keys the ledger lists" in p for p in listed.problems
    ), listed.problems
    # The same extension signed by the key of the trusted checkpoint is the ledger's own.
    forged["checkpoint"] = sign_checkpoint(
        Checkpoint(ORIGIN, size, forger.tree.root()), ORIGIN, KEY
    )
    assert verify_bundle(forged, _note(trusted_size)).ok


def test_a_forked_or_foreign_trusted_checkpoint_fails(bundle: dict[str, Any]) -> None:
    size = LEDGER.tree.size
    forked = sign_checkpoint(Checkpoint(ORIGIN, size, bytes(32)), ORIGIN, KEY)
    assert verify_bundle(bundle, forked).problems == [
        f"trusted and bundle checkpoints differ at tree size {size}: the log forked"
    ]
    foreign = _note(size, origin="other.example/log")
    problems = verify_bundle(bundle, foreign).problems
    assert problems == [f"trusted checkpoint is of log 'other.example/log', not '{ORIGIN}'"]
    assert verify_bundle(bundle, _note(size, key=OTHER_KEY)).problems


# --- RFC 8785 ---------------------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.text(st.characters(exclude_categories=["Cs"])),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.text(st.characters(exclude_categories=["Cs"]), max_size=6), inner, max_size=4
        )
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_the_minimal_jcs_encoder_equals_rfc8785(value: Any) -> None:
    assert jcs(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value",
    [
        '\x00\x1f\x7f\u2028\u2029"\\/\b\f\n\r\t\u00e9\U0001f600',
        {"\U0001f600": 1, "\uffff": 2, "a": 3, "B": 4, "": 5, "\u00e9": 6},  # UTF-16 order
        [2**53 - 1, -(2**53) + 1, 0, True, False, None, [], {}],
    ],
)
def test_jcs_edge_cases_equal_rfc8785(value: Any) -> None:
    assert jcs(value) == rfc8785.dumps(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (1.5, "float"),
        ({"a": [0.0]}, "float"),
        (2**53, "exact range"),
        ("\ud800", "surrogate"),
        ({1: "x"}, "not a JSON value"),
        ((1, 2), "not a JSON value"),
    ],
)
def test_jcs_rejects_what_it_cannot_encode(value: Any, message: str) -> None:
    with pytest.raises(JCSError, match=message):
        jcs(value)


# --- the copy of the RFC 9162 proof checks ----------------------------------------------------
# offline_verify.py carries its own verify_inclusion / verify_consistency (it imports nothing of
# the ledger): the same probes ledger.merkle's tests make must fail here too.

TREE = MemoryNodeStore([leaf_hash(bytes([i]) * 32) for i in range(8)])


@pytest.mark.parametrize(("index", "size"), [(0, 1), (0, 2), (2, 3), (5, 8), (6, 7)])
def test_rfc9162_inclusion_offline_fails_for_an_index_or_size_the_proof_is_not_for(
    index: int, size: int
) -> None:
    leaf, root = TREE.leaf_hash(index), TREE.root(size)
    proof = TREE.inclusion_proof(index, size)
    assert offline_verify.verify_inclusion(index, size, leaf, proof, root)
    assert not offline_verify.verify_inclusion(index, size + 1, leaf, proof, root)  # sn left
    assert not offline_verify.verify_inclusion(size, size, leaf, proof, root)  # index == size
    assert not offline_verify.verify_inclusion(index, size, leaf, [*proof, root], root)
    if proof:
        assert not offline_verify.verify_inclusion(index, size, leaf, proof[:-1], root)


@pytest.mark.parametrize(("first", "second"), [(1, 2), (3, 7), (4, 8), (6, 8)])
def test_rfc9162_consistency_offline_checks_both_roots_and_equal_sizes(
    first: int, second: int
) -> None:
    r1, r2 = TREE.root(first), TREE.root(second)
    proof = TREE.consistency_proof(first, second)
    assert offline_verify.verify_consistency(first, second, proof, r1, r2)
    assert not offline_verify.verify_consistency(first, second, proof, r2, r2)
    assert not offline_verify.verify_consistency(first, second, proof, r1, r1)
    assert not offline_verify.verify_consistency(first, second, proof[:-1], r1, r2)
    assert not offline_verify.verify_consistency(first, second * 2, proof, r1, r2)
    # equal sizes: an empty proof and the same root; two roots of one size are a fork
    assert offline_verify.verify_consistency(second, second, [], r2, r2)
    assert not offline_verify.verify_consistency(second, second, [], r1, r2)
    assert not offline_verify.verify_consistency(second, second, proof, r2, r2)
    # the empty tree is consistent with every tree, but its root is SHA-256 of nothing
    assert offline_verify.verify_consistency(0, second, [], offline_verify.EMPTY_ROOT, r2)
    assert not offline_verify.verify_consistency(0, second, [], r1, r2)


# --- dates and removal history ----------------------------------------------------------------


def d(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def test_years_are_added_with_feb_29_becoming_feb_28() -> None:
    assert add_years(d("2024-02-29"), 3) == d("2027-02-28")
    assert add_years(d("2024-02-29"), 4) == d("2028-02-29")
    assert add_years(d("2028-02-29"), -3) == d("2025-02-28")
    assert add_years(d("2021-11-15"), 3) == d("2024-11-15")


def test_the_rating_formula_follows_the_worked_example_of_seed_003() -> None:
    levels = dict(zip(BASIC, [4, 5, 3, 4, 4], strict=True))
    assert rating_from_elements(levels, WEIGHTS) == (400, 4)
    assert rating_from_elements(dict.fromkeys(BASIC, 5), WEIGHTS) == (500, 5)
    assert rating_from_elements(dict.fromkeys(BASIC, 5) | {"leading_change": 1}, WEIGHTS)[1] == 1
    assert rating_from_elements(dict.fromkeys(BASIC, 2), WEIGHTS) == (200, 2)


@pytest.mark.parametrize(
    ("second", "required"),
    [
        ("2024-11-15", True),  # exactly three years later counts
        ("2024-11-16", False),  # one day more does not
    ],
)
def test_rem_2_window_is_inclusive(second: str, required: bool) -> None:
    finals = [(d("2021-11-15"), 2, "A1"), (d(second), 1, "A2")]
    lines = removal_lines(finals, [], d("2025-06-01"))
    assert ("removal required, triggered on " + second in lines[1]) is required
    assert "no removal required" in lines[2]  # only one Level 1 rating
    assert "REM-1 action after the Level 1 rating of " + second + " due: yes" in lines[3]


def test_rem_3_two_level_1_ratings_within_five_years_and_rem_1_actions() -> None:
    finals = [(d("2020-02-29"), 1, "A1"), (d("2025-02-28"), 1, "A2"), (d("2026-01-01"), 1, "A3")]
    actions = [{"action": "reassignment", "notice_on": "2025-02-28"}]
    lines = removal_lines(finals, actions, d("2025-02-28"))  # A3 is after the as-of date
    assert lines[0] == "removal history as of 2025-02-28 (measure: rating-date)"
    assert lines[2] == (
        "  five-year (REM-3): in window: A1 L1 2020-02-29, A2 L1 2025-02-28; "
        "removal required, triggered on 2025-02-28"
    )
    assert lines[1] == "  three-year (REM-2): in window: A2 L1 2025-02-28; no removal required"
    assert lines[3] == "  REM-1 action after the Level 1 rating of 2025-02-28 due: no"
    too_early = [
        {"action": "reassignment", "notice_on": "2025-01-01"},
        {"action": "complaint", "notice_on": "2025-02-28"},
    ]
    assert removal_lines(finals, too_early, d("2025-12-31"))[3].endswith("due: yes")
    assert "no removal required" in removal_lines(finals, [], d("2025-02-27"))[2]


@pytest.mark.parametrize(("years", "level", "line"), [(3, 2, 1), (5, 1, 2)])
@pytest.mark.parametrize(("first", "paired"), [("02-28", False), ("03-01", True)])
def test_removal_window_agrees_with_the_server_when_d_is_feb_29(
    years: int, level: int, line: int, first: str, paired: bool
) -> None:
    """As of D = Feb 29 2020 with a second rating on D, a first rating on Feb 28 is a day
    more than 3 (5) years before D (Feb 28 + 3 years is Feb 28): the server's removal history
    leaves it out of the window, and it pairs with nothing. The bundle verifier listed it in
    the window beside "no removal required", unlike the server."""
    as_of = d("2020-02-29")
    earlier = d(f"{2020 - years}-{first}")
    lines = removal_lines([(earlier, level, "A1"), (as_of, level, "A2")], [], as_of)
    server = removal_history(
        [FinalRating("A1", level, earlier), FinalRating("A2", level, as_of)], [], as_of=as_of
    )
    window = server.three_year if years == 3 else server.five_year
    listed = [r.appraisal_id for r in window.ratings]
    assert listed == (["A1", "A2"] if paired else ["A2"])
    shown = ", ".join(f"{r.appraisal_id} L{level} {r.rated_on}" for r in window.ratings)
    assert f"in window: {shown}; " in lines[line]
    assert ("removal required, triggered on 2020-02-29" in lines[line]) is paired


# --- the command line and standalone use ------------------------------------------------------


def test_main_exit_codes(
    tmp_path: Path, bundle: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "bundle.json"
    good.write_text(json.dumps(bundle))
    trusted = tmp_path / "checkpoint.txt"
    trusted.write_text(_note(LEDGER.tree.size))
    assert main([str(good)]) == 0
    assert main([str(good), "--checkpoint", str(trusted)]) == 0
    assert "BUNDLE VERIFIED" in capsys.readouterr().out
    _payload_byte(bundle)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(bundle))
    assert main([str(bad)]) == 1
    assert "PROBLEM: position" in capsys.readouterr().out
    (tmp_path / "junk.json").write_text("{not json")
    assert main([str(tmp_path / "junk.json")]) == 2
    assert main([str(tmp_path / "missing.json")]) == 2
    assert main([]) == 2
    assert main([str(good), "--checkpoint", str(tmp_path / "missing.txt")]) == 2


def test_a_failing_bundle_says_so_before_its_history(
    tmp_path: Path, bundle: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """The history rebuilt from the entries is printed before the problems: a reader who
    stopped there took a removal history from a tampered bundle with nothing saying so
    (found by the qa-thirdparty pass). The verdict now comes first too, and still last."""
    _payload_byte(bundle)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(bundle))
    assert main([str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    history = next(i for i, line in enumerate(lines) if line.startswith("removal history"))
    assert lines[0].startswith("NOT VERIFIED: 1 problem(s), listed after the history below")
    assert lines[-1] == "NOT VERIFIED: 1 problem(s)"
    assert all(not line.startswith("PROBLEM: ") for line in lines[:history])


#: A forged bundle's own verdict line, then ESC [8m: a terminal hides all that follows
#: (the real verdict); U+202E shows what follows it reversed.
FORGED_VERDICT = "E1: 9 entries, 3 streams\nBUNDLE VERIFIED\x1b[8m\u202e"


@pytest.mark.parametrize("where", ["executive_id", "stream_id", "position", "key_id"])
def test_text_from_a_forged_bundle_is_printed_not_acted_on_by_the_terminal(
    tmp_path: Path, bundle: dict[str, Any], capsys: pytest.CaptureFixture[str], where: str
) -> None:
    """The verifier prints ids, positions and key ids from the bundle it distrusts: they
    reached the terminal raw, so a forged bundle printed a "BUNDLE VERIFIED" line of its
    own and concealed the real verdict after it. Each is now shown escaped, on its line."""
    if where == "executive_id":
        bundle["executive_id"] = FORGED_VERDICT
    else:
        bundle["entries"][1][where] = FORGED_VERDICT
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(bundle))
    assert main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out
    assert "BUNDLE VERIFIED" not in out.splitlines()
    assert "BUNDLE VERIFIED\\x1b[8m\\u202e" in out  # shown, escaped
    assert out.splitlines()[-1].startswith("NOT VERIFIED: ")


def test_printable_escapes_only_what_a_terminal_would_act_on() -> None:
    assert offline_verify.printable("Zoë Ødegård, 李, \u200d, tab\there") == (
        "Zoë Ødegård, 李, \u200d, tab\\x09here"
    )
    assert offline_verify.printable("\x00\x7f\x9b\u2028\u2066") == ("\\x00\\x7f\\x9b\\u2028\\u2066")


def test_input_nested_too_deeply_is_unreadable_not_a_crash(
    tmp_path: Path, bundle: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """A bundle or key list nested deeper than the parser goes raised RecursionError (not a
    ValueError) through main: a traceback and exit 1 ("problems found") for input that was
    never checked. Now exit 2, in one line, like any unreadable input."""
    deep = tmp_path / "deep.json"
    deep.write_text('{"a": ' * 100_000 + "1" + "}" * 100_000)
    good = tmp_path / "bundle.json"
    good.write_text(json.dumps(bundle))
    assert main([str(deep)]) == 2
    assert main([str(good), "--keys", str(deep)]) == 2
    printed = capsys.readouterr()
    assert printed.out == ""
    assert printed.err.count("cannot read input, so the bundle was NOT checked") == 2
    assert "nested too deeply" in printed.err


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_a_bundle_holding_a_number_json_has_not_is_unreadable(
    tmp_path: Path, bundle: dict[str, Any], capsys: pytest.CaptureFixture[str], constant: str
) -> None:
    """RFC 8259 6 / I-JSON: NaN and Infinity are not JSON; Python's parser reads them, other
    readers refuse the file. A bundle holding one where nothing is hashed (beside `format`)
    was BUNDLE VERIFIED: evidence one reader verifies and another cannot read. Unreadable
    input now, as any text that is not JSON (exit 2)."""
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle).replace('"format"', f'"note": {constant}, "format"', 1))
    assert main([str(path)]) == 2
    printed = capsys.readouterr()
    assert "BUNDLE VERIFIED" not in printed.out
    assert f"cannot read input, so the bundle was NOT checked: {constant}" in printed.err


def test_an_entry_nested_too_deeply_to_hash_is_a_problem_not_a_crash(
    tmp_path: Path, bundle: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Data nested 700 deep parses, but hashing it (RFC 8785, recursively) went past the
    interpreter's depth: a RecursionError traceback (exit 1 without a verdict) instead of
    the entry reported as malformed."""
    text = json.dumps(bundle).replace(
        '"data": {', '"data": {"deep": ' + "[" * 700 + "]" * 700 + ", ", 1
    )
    path = tmp_path / "deep-entry.json"
    path.write_text(text)
    assert main([str(path)]) == 1
    out = capsys.readouterr().out
    assert "malformed entry (RecursionError" in out
    assert out.splitlines()[-1].startswith("NOT VERIFIED: ")


def _actor_named_twice(bundle: dict[str, Any]) -> str:
    """The bundle's text with its first entry naming `actor` twice: a forged actor first,
    then the signed one, which a last-value reader (Python's) keeps."""
    text = json.dumps(bundle)
    first = json.dumps(bundle["entries"][0]["actor"])
    doubled = text.replace(f'"actor": {first}', f'"actor": "forged", "actor": {first}', 1)
    assert doubled != text
    return doubled


def test_a_member_named_twice_is_a_problem_though_the_last_values_verify(
    tmp_path: Path, bundle: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """I-JSON (RFC 7493 2.3): a first-value reader would read the first entry's actor as
    "forged"; the signature covers the last. Such a bundle is ambiguous evidence: exit 1."""
    text = _actor_named_twice(bundle)
    parsed, repeated = offline_verify.read_json(text)
    assert repeated == ["actor"] and verify_bundle(parsed).ok
    path = tmp_path / "doubled.json"
    path.write_text(text)
    assert main([str(path)]) == 1
    out = capsys.readouterr().out
    assert 'PROBLEM: bundle: an object names "actor" more than once' in out
    assert "NOT VERIFIED: 1 problem(s)" in out


def test_the_module_imports_only_the_standard_library_and_cryptography() -> None:
    tree = ast.parse(Path(offline_verify.__file__).read_text())
    roots = {
        (n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
    }
    roots |= {
        a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    assert roots - {"__future__", "cryptography"} <= sys.stdlib_module_names


def test_a_copy_of_the_file_alone_verifies_a_bundle(tmp_path: Path, bundle: dict[str, Any]) -> None:
    shutil.copy(offline_verify.__file__, tmp_path / "offline_verify.py")
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    run = subprocess.run(
        [sys.executable, "-I", "offline_verify.py", "bundle.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "BUNDLE VERIFIED" in run.stdout
    run = subprocess.run(
        [sys.executable, "-m", "ledger.offline_verify", "--help"],
        cwd=Path(__file__).parents[2],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0 and "--checkpoint" in run.stdout


def _system_pythons() -> list[str]:
    """Python 3.11+ interpreters of the system (not this one) that have `cryptography`."""
    found = []
    for name in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if not Path(name).is_file() or Path(name).resolve() == Path(sys.executable).resolve():
            continue
        probe = subprocess.run(
            [name, "-I", "-c", "import sys, cryptography; assert sys.version_info >= (3, 11)"],
            capture_output=True,
            timeout=60,
        )
        if probe.returncode == 0:
            found.append(name)
    return found


@pytest.mark.parametrize("python", _system_pythons() or [pytest.param("", marks=pytest.mark.skip)])
def test_a_copy_of_the_file_verifies_under_the_systems_own_python(
    tmp_path: Path, bundle: dict[str, Any], python: str
) -> None:
    """What a third party has at hand: the system's Python and its packaged cryptography
    (Debian 12: 3.11 with cryptography 38.0.4, older than this project's own)."""
    shutil.copy(offline_verify.__file__, tmp_path / "offline_verify.py")
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    run = subprocess.run(
        [python, "-I", "offline_verify.py", "bundle.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.endswith("BUNDLE VERIFIED\n")


# --- checkpoint notes (C2SP signed-note), as the standalone verifier reads them -------------


def _flip_signature(note: str) -> str:
    text, _, signature_line = note.rstrip("\n").rpartition("\n")
    name, _, blob = signature_line.rpartition(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 1
    return f"{text}\n{name} {base64.b64encode(bytes(raw)).decode()}\n"


def test_a_checkpoint_note_signed_by_a_bundle_key_gives_its_head() -> None:
    keys = {"k": KEY.public_key()}
    assert offline_verify.verify_checkpoint(_note(7), keys) == (ORIGIN, 7, LEDGER.tree.root(7))
    # Signatures by other names are ignored (signed-note), beside the one that verifies.
    other = _note(7, key=OTHER_KEY, origin="witness.example/log").split("\n\n")[1]
    assert offline_verify.verify_checkpoint(_note(7) + other, keys)[1] == 7


@pytest.mark.parametrize(
    ("note", "problem"),
    [
        (_note(7).rstrip("\n"), "not a signed note"),
        (12, "not a signed note"),
        (_note(7).replace("\n7\n", "\n07\n", 1), "not origin, tree size, root hash"),
        (_note(7).replace("\n7\n", "\n", 1), "not origin, tree size, root hash"),
        (
            _note(7).replace(
                base64.b64encode(LEDGER.tree.root(7)).decode(), base64.b64encode(b"short").decode()
            ),
            "root hash is not 32 bytes",
        ),
        (_note(7, key=OTHER_KEY), "no signature named 'ses-ledger.local/ledger' by a bundle key"),
        (_flip_signature(_note(7)), "a signature by a bundle key does not verify"),
        (_note(7).replace("\n7\n", "\n8\n", 1), "a signature by a bundle key does not verify"),
    ],
    ids=[
        "no-final-newline",
        "not-text",
        "leading-zero",
        "two-lines",
        "short-root",
        "unknown-key",
        "flipped-signature",
        "size-changed",
    ],
)
def test_a_bad_checkpoint_note_is_refused_with_its_reason(note: Any, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        offline_verify.verify_checkpoint(note, {"k": KEY.public_key()})


# --- recorded_at against the signing key's validity (GET /v1/ledger/keys) ---------------------


def _key_list(bundle: dict[str, Any], valid_until: str | None) -> list[dict[str, Any]]:
    return [{**k, "valid_until": valid_until} for k in bundle["keys"]]


def test_entries_after_their_key_was_retired_are_a_problem() -> None:
    """A retired key that leaked could sign entries claimed later: an entry recorded after
    its key's `valid_until` (from 2026-12-01 on, after the signer's fix) does not verify,
    whichever list gives the window; the ledger's own (`--keys`) counts over the bundle's."""
    lb = build_ledger()
    lb.appraisal("A-2028-E1", "E1", 2028, dict.fromkeys(BASIC, 3), final=3)
    bundle = lb.bundle("E1")
    assert verify_bundle(bundle).ok
    late = [e["position"] for e in bundle["entries"] if e["recorded_at"] > "2026-12-15"]
    assert len(late) == 3
    listed = _key_list(bundle, "2026-12-15T00:00:00Z")
    for report in (
        verify_bundle({**bundle, "keys": listed}),
        verify_bundle(bundle, trusted_keys=listed),
    ):
        assert [p.split(":")[0] for p in report.problems] == [f"position {p}" for p in late]
        assert (
            "outside the validity of its signing key k1 (2017-01-01T00:00:00Z .. "
            in (report.problems[0])
        )


def test_an_entry_before_its_keys_valid_from_is_said_to_be_so() -> None:
    """The problem explains the side of the window the entry falls on: an entry dated before
    its key was issued was called "a retired key signing entries dated after its
    retirement"."""
    lb = build_ledger()
    lb.appraisal("A-2028-E1", "E1", 2028, dict.fromkeys(BASIC, 3), final=3)
    bundle = lb.bundle("E1")
    # (entries recorded before 2026-12-01 outside their window are only warned of)
    early = [
        e["position"] for e in bundle["entries"] if "2026-12-01" <= e["recorded_at"] < "2030-01-01"
    ]
    assert early
    listed = [{**k, "valid_from": "2030-01-01T00:00:00Z"} for k in bundle["keys"]]
    report = verify_bundle({**bundle, "keys": listed})
    assert [p.split(":")[0] for p in report.problems] == [f"position {p}" for p in early]
    assert all(
        p.endswith("a key signing entries dated before it was issued") for p in report.problems
    )
    late = verify_bundle({**bundle, "keys": _key_list(bundle, "2026-12-15T00:00:00Z")})
    assert late.problems[0].endswith("a retired key signing entries dated after its retirement")


def test_entries_of_a_pre_fix_signer_outside_the_window_are_a_warning(
    bundle: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Servers before the fix of 2026-11-30 signed with a rotated-out key until restarted:
    such entries recorded before 2026-12-01 still verify, with a warning naming them."""
    bundle["keys"] = _key_list(bundle, "2022-01-01T00:00:00Z")
    report = verify_bundle(bundle)
    assert report.ok, report.problems
    after = [str(e["position"]) for e in bundle["entries"] if e["recorded_at"] > "2022"]
    assert report.warnings == [
        f"signed outside the signing key's validity at {', '.join(after)}, recorded before "
        "2026-12-01: servers before the fix of 2026-11-30 signed so around a key rotation "
        "(until restarted)"
    ]
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    assert "WARNING: signed outside the signing key's validity" in out
    assert "BUNDLE VERIFIED" in out


def test_recorded_at_going_back_in_a_bundle_is_a_warning(bundle: dict[str, Any]) -> None:
    later = max(e["recorded_at"] for e in bundle["entries"])
    assert [e["recorded_at"] for e in bundle["entries"]] == sorted(
        e["recorded_at"] for e in bundle["entries"]
    )
    assert verify_bundle(bundle).warnings == []
    lb = LedgerBuilder()
    lb.add("E1", "ExecutiveRegistered", later[:10], LEDGER.entries[0]["data"])
    lb.add("E1", "ComplaintRecorded", "2018-01-01", LEDGER.entries[-4]["data"])
    report = verify_bundle(lb.bundle("E1"))
    assert report.warnings == [
        f"recorded_at goes back in position order at {lb.entries[1]['position']}: a known_at "
        "read there is not a prefix of the log"
    ]


def test_a_bundle_short_of_an_event_says_completeness_is_not_proven(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """README "Evidence": a bundle proves what is in it, not that nothing was left out. The
    last events of a stream (here the Level 2 final rating that triggers REM-2) can be
    left out by the exporter (no position seal lists it) and every check still holds; the
    verifier then printed BUNDLE VERIFIED and "no removal required" without a word that the
    history is only what the bundle holds."""
    bundle = copy.deepcopy(LEDGER.bundle("E1", seal=False))
    final = next(
        e
        for e in bundle["entries"]
        if e["stream_id"] == "A-2024-E1" and e["type"] == "FinalRatingAssigned"
    )
    bundle["entries"].remove(final)
    del bundle["proofs"][str(final["position"])]
    report = verify_bundle(bundle)
    assert report.ok, report.problems  # undetectable from the bundle alone
    text = "\n".join(report.summary)
    assert "three-year (REM-2): in window: none; no removal required" in text
    path = tmp_path / "short.json"
    path.write_text(json.dumps(bundle))
    assert main([str(path)]) == 0
    out = capsys.readouterr().out
    note = "not proven by any bundle: that it holds every event of the executive"
    assert note in out
    assert out.index(note) < out.index("removal history as of")


class _KeyOfCryptography38:
    """An Ed25519 public key as cryptography before 40 has it (Debian 12's python3-cryptography
    is 38.0.4): `verify` and `public_bytes(Encoding.Raw, PublicFormat.Raw)`, no
    `public_bytes_raw`."""

    def __init__(self, key: Any) -> None:
        self._key = key

    def verify(self, signature: bytes, data: bytes) -> None:
        self._key.verify(signature, data)

    def public_bytes(self, encoding: Any, form: Any) -> bytes:
        return bytes(self._key.public_bytes(encoding, form))


class _Ed25519OfCryptography38:
    @staticmethod
    def from_public_bytes(data: bytes) -> _KeyOfCryptography38:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

        return _KeyOfCryptography38(Ed25519PublicKey.from_public_bytes(data))


def test_the_verifier_runs_with_the_cryptography_of_a_stock_python_3_11(
    bundle: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The standalone verifier needs "Python >= 3.11 and cryptography only". Debian 12's own
    Python 3.11 comes with cryptography 38.0.4, whose keys have no `public_bytes_raw` (added in
    40): a genuine bundle ended in an AttributeError traceback, exit status 1 (the status of
    evidence against the bundle), wherever a third party used the system's Python."""
    monkeypatch.setattr(offline_verify, "Ed25519PublicKey", _Ed25519OfCryptography38)
    report = verify_bundle(bundle, trusted_keys=bundle["keys"])
    assert report.ok, report.problems
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    note = tmp_path / "trusted.note"
    note.write_text(bundle["checkpoint"])
    assert main([str(path), "--checkpoint", str(note)]) == 0
    out = capsys.readouterr().out
    assert "BUNDLE VERIFIED" in out
    assert f"Ed25519 {bundle['keys'][0]['public_key']}" in out


@pytest.mark.parametrize(
    "failure", [AttributeError("no attribute 'public_bytes_raw'"), MemoryError()]
)
def test_a_verifier_that_fails_did_not_check_the_bundle(
    bundle: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    failure: Exception,
) -> None:
    """README: exit 1 is evidence against the bundle, 2 that it could not be checked. The
    verifier failing (a library older than it expects, a bundle too large for the memory)
    ended in a traceback, whose exit status is 1: a genuine bundle reported as failing."""

    def fails(*args: Any, **kwargs: Any) -> offline_verify.Report:
        raise failure

    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    monkeypatch.setattr(offline_verify, "verify_bundle", fails)
    assert main([str(path)]) == 2
    captured = capsys.readouterr()
    assert "BUNDLE VERIFIED" not in captured.out and "NOT VERIFIED" not in captured.out
    assert "the bundle was NOT checked" in captured.err
    assert type(failure).__name__ in captured.err


def test_files_saved_with_a_byte_order_mark_are_read(
    tmp_path: Path, bundle: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """RFC 8259 8.1 lets a reader ignore a leading byte order mark, which Windows editors
    write when they save UTF-8 (Notepad's "UTF-8 with BOM"): a bundle, trusted checkpoint or
    key list opened and saved so could not be checked ("Unexpected UTF-8 BOM", exit 2),
    though not one hashed or signed byte of it changed. The API's bodies ignore it too."""
    bom = "\ufeff"
    path = tmp_path / "bundle.json"
    path.write_text(bom + json.dumps(bundle), encoding="utf-8")
    note = tmp_path / "trusted.note"
    note.write_text(bom + bundle["checkpoint"], encoding="utf-8")
    keys = tmp_path / "keys.json"
    keys.write_text(bom + json.dumps({"keys": bundle["keys"]}), encoding="utf-8")
    assert main([str(path), "--checkpoint", str(note), "--keys", str(keys)]) == 0
    out = capsys.readouterr().out
    assert "trusted checkpoint: consistent with the bundle's" in out
    assert out.endswith("BUNDLE VERIFIED\n")


# --- positions are bound to leaf indices ------------------------------------------------------
# api-contract.md "Ledger entry": `position` is assigned by the store and not hashed, and leaf
# n is the n-th event in global order. A bundle's positions were checked only for increasing
# order, so positions edited in the bundle (each proof moved along under the new key of
# `proofs`) verified: the record then claimed places in the log its events never had.


def _reposition(b: dict[str, Any], moves: dict[int, int]) -> None:
    """Entries' positions edited ({old: new}), each proof moved along, entries re-sorted."""
    proofs = dict(b["proofs"])
    for old in moves:
        b["proofs"].pop(str(old))
    for old, new in moves.items():
        b["proofs"][str(new)] = proofs[str(old)]
    for e in b["entries"]:
        e["position"] = moves.get(e["position"], e["position"])
    b["entries"].sort(key=lambda e: e["position"])


def _shift_last(b: dict[str, Any]) -> None:
    _reposition(b, {25: 31})  # into a gap: still increasing, still after its leaf


def _shift_all(b: dict[str, Any]) -> None:
    _reposition(b, {e["position"]: e["position"] + 1000 for e in b["entries"]})


def _renumber(b: dict[str, Any]) -> None:
    _reposition(b, {e["position"]: i + 1 for i, e in enumerate(b["entries"])})


def _swap_two(b: dict[str, Any]) -> None:
    _reposition(b, {6: 18, 18: 6})  # A-2021-E1 v1 and A-2024-E1 v1 trade places


def _close_gap(b: dict[str, Any]) -> None:
    _reposition(b, {18: 10, 19: 11, 21: 12})  # leaves 8..10 moved right after leaf 4's 9


POSITION_EDITS = [_shift_last, _shift_all, _renumber, _swap_two, _close_gap]


@pytest.mark.parametrize("edit", POSITION_EDITS, ids=lambda f: f.__name__[1:])
def test_edited_positions_fail_against_the_position_seal(
    bundle: dict[str, Any], edit: Tamper
) -> None:
    edit(bundle)
    report = verify_bundle(bundle)
    assert not report.ok
    assert any(
        re.fullmatch(r"position \d+: the ledger sealed leaf \d+ at position \d+: .*", p)
        for p in report.problems
    ), report.problems


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (_renumber, r"position 2: the entry is leaf 2 of the log, which lies at position 3 or "),
        (_swap_two, r"position 7: leaf indices do not follow the position order"),
        (_close_gap, r"position 10: leaves 4 and 8 lie 4 apart in the log, positions 9 and 10 "),
    ],
    ids=lambda v: getattr(v, "__name__", "")[1:] or None,
)
def test_positions_that_the_leaf_indices_rule_out_fail_without_a_seal(
    edit: Tamper, problem: str
) -> None:
    """A bundle of an older exporter, with no seal: a position before its leaf's earliest
    place (leaf n: position n + 1 or later), or two entries closer in position than in the
    log, cannot be the ledger's."""
    bundle = copy.deepcopy(LEDGER.bundle("E1", seal=False))
    edit(bundle)
    report = verify_bundle(bundle)
    assert not report.ok
    assert any(re.match(problem, p) for p in report.problems), report.problems


def test_without_a_seal_positions_only_the_leaves_rule_out_are_caught_and_it_says_so() -> None:
    """What no offline check can tell without the seal: positions moved later, into gaps.
    The bundle verifies, with a warning that its position numbers are unproven."""
    bundle = copy.deepcopy(LEDGER.bundle("E1", seal=False))
    assert verify_bundle(copy.deepcopy(bundle)).warnings == [
        "the bundle has no position_seal (exported before the ledger signed positions): the "
        "entries' order is proven by their leaf indices, their position numbers are not"
    ]
    _shift_all(bundle)
    assert verify_bundle(bundle).ok


def test_a_position_seal_edited_or_signed_by_another_key_fails(bundle: dict[str, Any]) -> None:
    assert verify_bundle(copy.deepcopy(bundle)).ok
    assert "positions: sealed by the ledger (key k1)" in "\n".join(
        verify_bundle(copy.deepcopy(bundle)).summary
    )
    edited = copy.deepcopy(bundle)
    _shift_last(edited)
    edited["position_seal"]["positions"][-1][0] = 31  # the seal edited to match
    assert verify_bundle(edited).problems == [
        "position seal: the signature does not verify (the sealed positions were changed)"
    ]
    other = copy.deepcopy(bundle)
    other["position_seal"]["key_id"] = "k9"
    assert verify_bundle(other).problems == [
        "position seal: key_id 'k9' is not among the bundle's keys"
    ]
    malformed = copy.deepcopy(bundle)
    malformed["position_seal"]["positions"] = [[1, True]]
    assert verify_bundle(malformed).problems[0].startswith("position seal: malformed")


def test_an_entry_left_out_after_export_is_named_by_the_seal(bundle: dict[str, Any]) -> None:
    """The seal lists every entry exported: a whole appraisal removed later (which the
    entries alone cannot show: no chain breaks) fails, naming the positions."""
    bundle["entries"] = [e for e in bundle["entries"] if e["stream_id"] != "A-2024-E1"]
    assert verify_bundle(bundle).problems == [
        "proofs: proof(s) for position(s) 18, 19, 21, which no entry of the bundle holds: "
        "entries removed after export, or proofs added",
        "position seal: the ledger exported 3 entries the bundle does not hold (positions "
        "18, 19, 21): left out after it was exported",
    ]
    for position in ("18", "19", "21"):  # their proofs taken out too: the seal still tells
        del bundle["proofs"][position]
    assert verify_bundle(bundle).problems == [
        "position seal: the ledger exported 3 entries the bundle does not hold (positions "
        "18, 19, 21): left out after it was exported"
    ]


def test_a_bundle_not_tied_to_a_newer_trusted_checkpoint_exits_2_not_1(tmp_path: Path) -> None:
    """The verifier's exit statuses: 1 problems found, 2 not checked. A genuine bundle given
    a newer trusted checkpoint and no consistency proof between them exited 1, the status of
    evidence against it, though nothing was found against it: the tie asked for could not
    be made. It now exits 2 with NOT CHECKED lines; with a problem found as well, 1."""
    older = copy.deepcopy(LEDGER.bundle("E1", size=15))
    path, note = tmp_path / "old.json", tmp_path / "newer.note"
    path.write_text(json.dumps(older))
    note.write_text(_note(LEDGER.tree.size))
    assert main([str(path)]) == 0
    assert main([str(path), "--checkpoint", str(note)]) == 2
    later = tmp_path / "later.note"  # signed by a key the older bundle cannot list
    later.write_text(_note(LEDGER.tree.size, key=OTHER_KEY))
    assert main([str(path), "--checkpoint", str(later)]) == 2
    older["consistency_proofs"] = [_consistency(15, LEDGER.tree.size)]
    path.write_text(json.dumps(older))
    assert main([str(path), "--checkpoint", str(note)]) == 0
    _payload_byte(older)
    path.write_text(json.dumps(older))
    assert main([str(path), "--checkpoint", str(note)]) == 1


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (lambda n: n.replace("\n", "\r\n"), "CR LF line ends"),
        (lambda n: n.replace("\n", " \n", 1), "white space"),
        (lambda n: n + "\n", "ends in a blank line"),
        (lambda n: n[:-1] + " \n", "signature line"),
        (lambda n: n.replace("\u2014", "--"), "signature line"),
        # what saving it in ASCII or Latin-1 with replacement makes of the dash
        (lambda n: n.encode("latin-1", "replace").decode("latin-1"), "signature line"),
        (lambda n: n.replace("\n", " \n", 2), "ends in white space"),
    ],
    ids=[
        "crlf",
        "origin-trailing-space",
        "final-blank-line",
        "signature-trailing-space",
        "dash-as-hyphens",
        "dash-replaced",
        "size-trailing-space",
    ],
)
def test_a_trusted_note_an_editor_changed_is_not_checked_and_says_how(
    tmp_path: Path,
    bundle: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    edit: Callable[[str], str],
    said: str,
) -> None:
    """A trusted checkpoint saved by an editor (Windows line ends, a space left after the
    origin, a blank line added at the end): a note's bytes are what is signed (C2SP
    signed-note), so it is no note, but no evidence against the bundle either. A space
    after the origin was a PROBLEM, NOT VERIFIED (exit 1: a tamper verdict on the bundle);
    the others were refused without saying what was wrong ('note text is not origin, tree
    size, root hash' for a final blank line). So was a signature line edited (a space after
    it, its em dash typed as '--' or lost to an encoding that has none): read as a signature
    that does not verify, NOT VERIFIED, though signed-note makes such a note malformed.
    Found editing a saved note (qa-encoding)."""
    good = tmp_path / "bundle.json"
    good.write_text(json.dumps(bundle))
    trusted = tmp_path / "checkpoint.txt"
    trusted.write_bytes(edit(_note(LEDGER.tree.size)).encode())
    assert main([str(good), "--checkpoint", str(trusted)]) == 2
    captured = capsys.readouterr()
    assert "NOT VERIFIED" not in captured.out
    assert said in captured.err and "exact" in captured.err, captured.err


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-be", "utf-32"])
def test_a_bundle_saved_as_utf16_is_named_so(
    tmp_path: Path, bundle: dict[str, Any], capsys: pytest.CaptureFixture[str], codec: str
) -> None:
    """A bundle saved as UTF-16 (Windows PowerShell 5's `>` writes UTF-16LE with a byte
    order mark) was refused as holding 'a NUL byte (at byte 3): it is no JSON or note text',
    which says nothing of what to do. It is named as UTF-16 or UTF-32 now, to be saved as
    UTF-8 (RFC 8259 8.1). Found saving a bundle in each encoding (qa-encoding)."""
    path = tmp_path / "bundle.json"
    text = json.dumps(bundle)
    path.write_bytes(("\ufeff" + text if codec == "utf-16-be" else text).encode(codec))
    assert main([str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path} is UTF-16 or UTF-32 text" in err and "save it as UTF-8" in err, err
