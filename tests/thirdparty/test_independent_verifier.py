"""A hearing's expert checks a removed executive's evidence bundle without our software.

The story: a small synthetic agency in which one executive was removed (REM-2, REM-1) after
two poor final ratings. The auditor exports that executive's bundle (the command line's
`build_bundle`, the HTTP endpoint, now and as the ledger stood earlier); the MSPB's expert
checks it with `independent_verifier.py`, written from the contract and the docs alone, and
the product's `ledger/offline_verify.py` is held to the same verdicts: every genuine bundle
verifies in both, every tampered one fails in both, with a message naming what is wrong.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from api.main import create_app
from api.settings import ApiSettings
from ledger import offline_verify
from ledger.application import LedgerApp
from ledger.bundle import build_bundle
from ledger.config import LedgerConfig
from ledger.entry import entry_from_state
from ledger.keys import KeyRing
from ledger.merkle import MemoryNodeStore
from ses_ledger.demo import SimulatedClock, run_demo
from tests.api.story import Api
from tests.ledger_helpers import plan, register, review
from tests.thirdparty import independent_verifier as iv

Bundle = dict[str, Any]


@dataclass
class Verdict:
    ok: bool
    messages: list[str]


def mine(raw: bytes, **trust: Any) -> Verdict:
    """The independent verifier's verdict (not checked counts as not verified)."""
    try:
        report = iv.verify_bundle(raw, **trust)
    except iv.NotChecked as exc:
        return Verdict(False, [f"NOT CHECKED: {exc}"])
    return Verdict(report.ok, report.problems)


def product(raw: bytes, trusted_checkpoint: str | None = None, trusted_keys: Any = None) -> Verdict:
    """`ledger/offline_verify.py`'s verdict on the same bytes, as its command line reads them."""
    try:
        bundle, repeated = offline_verify.read_json(raw.decode("utf-8").removeprefix("\ufeff"))
    except ValueError as exc:
        return Verdict(False, [f"cannot read input: {exc}"])
    report = offline_verify.verify_bundle(bundle, trusted_checkpoint, trusted_keys, repeated)
    return Verdict(report.ok, report.problems + report.unchecked)


def dump(b: Any) -> bytes:
    return json.dumps(b).encode()


# --- the ledgers -----------------------------------------------------------------------------


@dataclass
class Agency:
    config: LedgerConfig
    removed: str  # an executive with a recorded removal
    other: str  # another executive, with appraisals
    bundle: Bundle


@pytest.fixture(scope="module")
def agency(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agency]:
    tmp = tmp_path_factory.mktemp("agency")
    KeyRing(tmp / "home").init(now=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    config = LedgerConfig(home=tmp / "home", db_url=f"sqlite:///{tmp / 'ledger.db'}")
    clock = SimulatedClock()
    app = LedgerApp(config, clock=clock)
    run_demo(app, clock, executives=30, years=5, seed=3, batch_per_appraisal=True)
    removed = other = None
    for n in app.recorder.select_notifications(start=1, limit=100_000):
        e = entry_from_state(n.state, n.id)
        if e["type"] == "PersonnelActionRecorded" and e["data"]["action"] == "removal":
            removed = removed or e["stream_id"]
        if e["type"] == "PlanSet":
            other = e["data"]["executive_id"]
    assert removed is not None and other is not None and other != removed
    bundle = json.loads(json.dumps(build_bundle(app, removed)))
    app.close()
    yield Agency(config, removed, other, bundle)


def _fresh_app(config: LedgerConfig) -> LedgerApp:
    return LedgerApp(config)


@dataclass
class Rotated:
    """A ledger written today, so that key windows are held strictly (README)."""

    before: Bundle  # exported before the rotation: every entry by the first key
    after: Bundle  # exported after it: entries by both keys
    tied: Bundle  # `after` with the consistency proof from `before`'s tree size
    keys_after: list[dict[str, Any]]  # GET /v1/ledger/keys after the rotation
    foreign: Bundle  # a bundle of another ledger (another origin and key)


@pytest.fixture(scope="module")
def rotated(tmp_path_factory: pytest.TempPathFactory) -> Rotated:
    tmp = tmp_path_factory.mktemp("rotated")
    KeyRing(tmp / "home").init()
    config = LedgerConfig(home=tmp / "home", db_url=f"sqlite:///{tmp / 'ledger.db'}")
    app = _fresh_app(config)
    register(app)
    plan(app)
    review(app)
    before = json.loads(json.dumps(build_bundle(app, "E1")))
    app.close()
    KeyRing(config.home).rotate()
    app = _fresh_app(config)
    review(app, day=dt.date(2024, 6, 15))
    after = json.loads(json.dumps(build_bundle(app, "E1")))
    size = int(before["checkpoint"].split("\n")[1])
    tied = json.loads(json.dumps(build_bundle(app, "E1", consistency_from=size)))
    app.close()
    keys_after = [k.as_json() for k in KeyRing(config.home).public_keys()]
    assert len({e["key_id"] for e in after["entries"]}) == 2

    KeyRing(tmp / "other").init()
    other = LedgerConfig(
        home=tmp / "other", db_url=f"sqlite:///{tmp / 'other.db'}", origin="other.example/ledger"
    )
    app = _fresh_app(other)
    register(app)
    foreign = json.loads(json.dumps(build_bundle(app, "E1")))
    app.close()
    return Rotated(before, after, tied, keys_after, foreign)


# --- genuine bundles -------------------------------------------------------------------------


def test_genuine_bundles_of_every_exporter_verify_in_both(agency: Agency) -> None:
    """The command line's export, the HTTP endpoint now and as of an earlier position, and a
    bundle pinned to an earlier checkpoint with its consistency proof all verify."""
    app = LedgerApp(agency.config)
    settings = ApiSettings(home=agency.config.home, checkpoint_interval_seconds=0)
    from fastapi.testclient import TestClient

    with TestClient(create_app(app, settings=settings)) as client:
        api = Api(client, client.app.state.services.token_key)  # type: ignore[attr-defined]
        auditor = api.as_("auditor", agency="*")
        url = f"/v1/executives/{agency.removed}/evidence-bundle"
        now = client.get(url, headers=auditor)
        assert now.status_code == 200, now.text
        last = max(e["position"] for e in agency.bundle["entries"])
        earlier = client.get(f"{url}?as_of_position={last - 1}", headers=auditor)
        assert earlier.status_code == 200, earlier.text
        bundles = {"cli": dump(agency.bundle), "http": now.content, "http-past": earlier.content}
        size = int(agency.bundle["checkpoint"].split("\n")[1])
        with_consistency = build_bundle(app, agency.removed, consistency_from=size - 7)
        bundles["consistency"] = dump(with_consistency)
        checkpoint = client.get("/v1/ledger/checkpoint").text
        keys = client.get("/v1/ledger/keys").json()
        for name, raw in bundles.items():
            assert mine(raw).ok, (name, mine(raw).messages)
            assert product(raw).ok, (name, product(raw).messages)
            trusted = mine(
                raw,
                trusted_keys=keys,
                trusted_checkpoint=checkpoint,
                origin="ses-ledger.local/ledger",
            )
            assert trusted.ok, (name, trusted.messages)
            assert product(raw, checkpoint, keys["keys"]).ok, name

        # The history each bundle implies is the one the API states (REM-1, REM-2, REM-3).
        for raw in (bundles["http"], bundles["http-past"]):
            state = iv.verify_bundle(raw).state
            history = client.get(
                f"/v1/executives/{agency.removed}/removal-history?as_of={state['as_of']}",
                headers=auditor,
            ).json()
            for part in ("three_year", "five_year", "level1_action_due"):
                assert state[part] == history[part], part
            assert [a["notice_on"] for a in state["actions"]] == [
                a["notice_on"] for a in history["actions"]
            ]
        ratings = client.get(f"/v1/executives/{agency.removed}/ratings", headers=auditor).json()
        assert iv.verify_bundle(bundles["http"]).state["ratings"] == ratings["ratings"]
    app.close()
    state = iv.verify_bundle(bundles["cli"]).state
    assert state["three_year"]["removal_required"] and state["actions"]


def test_the_product_prints_the_removal_history_the_events_imply(agency: Agency) -> None:
    """`bundle verify` states a removal history; it is the one the entries give, as of the
    latest `occurred_on` (README)."""
    report = offline_verify.verify_bundle(copy.deepcopy(agency.bundle))
    state = iv.verify_bundle(dump(agency.bundle)).state
    text = "\n".join(report.summary)
    assert f"removal history as of {state['as_of']} (measure: rating-date)" in text
    three = state["three_year"]
    shown = ", ".join(
        f"{r['appraisal_id']} L{r['level']} {r['rated_on']}" for r in three["ratings"]
    )
    assert (
        f"three-year (REM-2): in window: {shown}; removal required, triggered on "
        f"{three['triggered_on']}" in text
    )


# --- tampering -------------------------------------------------------------------------------


def _entry(b: Bundle, kind: str) -> dict[str, Any]:
    return next(e for e in b["entries"] if e["type"] == kind)


def _drop(b: Bundle, index: int) -> None:
    e = b["entries"].pop(index)
    del b["proofs"][str(e["position"])]


def _swap_positions(b: Bundle, seal: bool = True) -> None:
    e1, e2 = b["entries"][3], b["entries"][4]
    p1, p2 = str(e1["position"]), str(e2["position"])
    e1["position"], e2["position"] = e2["position"], e1["position"]
    b["proofs"][p1], b["proofs"][p2] = b["proofs"][p2], b["proofs"][p1]
    if not seal:
        b["position_seal"] = None


def _rehash(b: Bundle) -> None:
    e = _entry(b, "FinalRatingAssigned")
    e["data"]["level"] = 3
    e["hash"] = iv.entry_hash(e)


def _text(edit: Callable[[str], str]) -> Callable[[Bundle], bytes]:
    return lambda b: edit(json.dumps(b)).encode()


def _sub(pattern: str, repl: str) -> Callable[[Bundle], bytes]:
    return _text(lambda s: re.sub(pattern, repl, s, count=1))


def _first_plan_type(s: str, repl: str) -> str:
    return s.replace('"type": "PlanSet"', repl, 1)


def _checkpoint_size(b: Bundle) -> None:
    lines = b["checkpoint"].split("\n")
    lines[1] = str(int(lines[1]) + 1)
    b["checkpoint"] = "\n".join(lines)


def _noncanonical_signature(b: Bundle) -> None:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    s = b["entries"][1]["signature"]  # 64 bytes: 86 characters and "==", 4 bits unused
    b["entries"][1]["signature"] = s[:-3] + alphabet[alphabet.index(s[-3]) ^ 1] + s[-2:]


def _bad_known_signature(b: Bundle) -> None:
    """A second line under the origin and the ledger's key hash whose signature fails: a
    known key's line that does not verify voids the note (C2SP signed-note), however good
    the other line."""
    name = b["checkpoint"].split("\n")[0]
    public = base64.b64decode(b["keys"][0]["public_key"])
    line = base64.b64encode(iv.c2sp_key_hash(name, public) + bytes(64)).decode()
    b["checkpoint"] += f"\u2014 {name} {line}\n"


def _dup_key(b: Bundle) -> None:
    """The key listed again under its id, closed before any entry: which window counts?"""
    b["keys"].append({**b["keys"][0], "valid_until": "2001-01-01T00:00:00.000000Z"})


Tamper = Callable[[Bundle], Any]
TAMPERS: dict[str, Tamper] = {
    "a final rating's level edited": lambda b: _entry(b, "FinalRatingAssigned")["data"].update(
        level=3
    ),
    "a level edited and the hash recomputed": _rehash,
    "recorded_at edited": lambda b: b["entries"][3].update(recorded_at="2020-01-01T00:00:00Z"),
    "an event dropped from a stream's middle": lambda b: _drop(b, 4),
    "a stream's first event dropped": lambda b: _drop(
        b, next(i for i, e in enumerate(b["entries"]) if e["type"] == "PlanSet")
    ),
    "the last event dropped (position seal)": lambda b: _drop(b, -1),
    "the entries listed out of position order": lambda b: b["entries"].reverse(),
    "two positions swapped with their proofs": _swap_positions,
    "two positions swapped, seal removed": lambda b: _swap_positions(b, seal=False),
    "signatures swapped": lambda b: b["entries"].__setitem__(
        slice(3, 5),
        [
            {**b["entries"][3], "signature": b["entries"][4]["signature"]},
            {**b["entries"][4], "signature": b["entries"][3]["signature"]},
        ],
    ),
    "a proof of another tree size": lambda b: b["proofs"][str(b["entries"][2]["position"])].update(
        tree_size=int(b["checkpoint"].split("\n")[1]) - 1
    ),
    "a proof hash removed": lambda b: b["proofs"][str(b["entries"][2]["position"])]["hashes"].pop(),
    "a proof's leaf index moved": lambda b: b["proofs"][str(b["entries"][2]["position"])].update(
        leaf_index=b["proofs"][str(b["entries"][2]["position"])]["leaf_index"] + 1
    ),
    "the checkpoint's origin line edited": lambda b: b.update(
        checkpoint=b["checkpoint"].replace("ses-ledger.local/ledger\n", "evil.example/l\n", 1)
    ),
    "the checkpoint's tree size edited": _checkpoint_size,
    "the checkpoint without its last line feed": lambda b: b.update(
        checkpoint=b["checkpoint"][:-1]
    ),
    "a bad signature line by the ledger's key added": _bad_known_signature,
    "the key's algorithm renamed": lambda b: b["keys"][0].update(algorithm="ed25519"),
    "a key listed twice with another window": _dup_key,
    "a field added to an entry": lambda b: b["entries"][2].update(note="rating rescinded"),
    "a proof for a position no entry holds": lambda b: b["proofs"].update(
        {"999999": next(iter(b["proofs"].values()))}
    ),
    "the executive_id changed": lambda b: b.update(executive_id="E00003"),
    "the format changed": lambda b: b.update(format="ses-ledger-bundle/v2"),
    "trailing data": lambda b: dump(b) + b"{}",
    "a member named twice (top)": lambda b: dump(b)[:-1] + b', "format": "ses-ledger-bundle/v1"}',
    "a member named twice (data)": _sub(r'"level": (\d)', r'"level": 5, "level": \1'),
    "a level written 1.0": _sub(r'"level": (\d)', r'"level": \1.0'),
    "a level written 1E0": _sub(r'"level": (\d)', r'"level": \1E0'),
    "a stream_version written 2.0": _sub(r'"stream_version": 2,', '"stream_version": 2.0,'),
    "a position written as a float": _sub(r'"position": (\d+),', r'"position": \1.0,'),
    "a lone surrogate in a string": _text(lambda s: _first_plan_type(s, '"type": "P\\ud800"')),
    "NaN": _sub(r'"level": (\d)', '"level": NaN'),
    "true for a stream_version": _sub(r'"stream_version": 1,', '"stream_version": true,'),
    "an upper-case hash": lambda b: b["entries"][1].update(hash=b["entries"][1]["hash"].upper()),
    "a signature in non-canonical base64": _noncanonical_signature,
    "a signature without its padding": lambda b: b["entries"][1].update(
        signature=b["entries"][1]["signature"].rstrip("=")
    ),
    "sealed positions edited": lambda b: b["position_seal"]["positions"][0].__setitem__(
        0, b["position_seal"]["positions"][0][0] + 1
    ),
    "a proof keyed '085' for position 85": lambda b: b["proofs"].update(
        {"0" + k: b["proofs"].pop(k) for k in [str(b["entries"][2]["position"])]}
    ),
    "UTF-16": lambda b: json.dumps(b).encode("utf-16"),
}


@pytest.mark.parametrize("name", list(TAMPERS))
def test_every_tampering_fails_in_both_verifiers(agency: Agency, name: str) -> None:
    b = copy.deepcopy(agency.bundle)
    out = TAMPERS[name](b)
    raw = out if isinstance(out, bytes) else dump(b)
    theirs, ours = product(raw), mine(raw)
    assert not ours.ok and ours.messages, name
    assert not theirs.ok and theirs.messages, (name, ours.messages)


HARMLESS: dict[str, Callable[[Bundle], bytes]] = {
    "re-indented, keys sorted": lambda b: json.dumps(b, indent=3, sort_keys=True).encode(),
    "a string written with \\u escapes": _text(
        lambda s: _first_plan_type(s, '"type": "\\u0050lan\\u0053et"')
    ),
    "a UTF-8 byte order mark": lambda b: b"\xef\xbb\xbf" + dump(b),
    "a witness's cosignature on the checkpoint": lambda b: dump(
        {
            **b,
            "checkpoint": b["checkpoint"]
            + "\u2014 witness.example/w "
            + base64.b64encode(b"\x01\x02\x03\x04" + bytes(64)).decode()
            + "\n",
        }
    ),
    "white space after the value": lambda b: dump(b) + b"\n \n",
}


@pytest.mark.parametrize("name", list(HARMLESS))
def test_what_leaves_the_content_alone_verifies_in_both(agency: Agency, name: str) -> None:
    """The contract: a bundle verifies from its parsed content."""
    raw = HARMLESS[name](copy.deepcopy(agency.bundle))
    assert mine(raw).ok, mine(raw).messages
    assert product(raw).ok, product(raw).messages


def test_the_last_event_removed_with_the_seal_is_beyond_any_verifier(agency: Agency) -> None:
    """The documented limit (README): a bundle proves what it holds, not that it is whole;
    without its position seal, an event cut from the end leaves a valid bundle. Both say its
    positions are unproven."""
    b = copy.deepcopy(agency.bundle)
    _drop(b, -1)
    b["position_seal"] = None
    assert mine(dump(b)).ok and product(dump(b)).ok
    assert any("position_seal" in w for w in iv.verify_bundle(dump(b)).warnings)
    assert any("position_seal" in w for w in offline_verify.verify_bundle(b).warnings)


def test_another_executives_genuine_event_added_fails(agency: Agency) -> None:
    """An extra event of the same ledger, with its genuine proof, is not this record."""
    app = LedgerApp(agency.config)
    other = json.loads(json.dumps(build_bundle(app, agency.other)))
    app.close()
    b = copy.deepcopy(agency.bundle)
    extra = next(e for e in other["entries"] if e["type"] == "PlanSet")
    b["entries"] = sorted([*b["entries"], extra], key=lambda e: e["position"])
    b["proofs"][str(extra["position"])] = other["proofs"][str(extra["position"])]
    if (
        b["proofs"][str(extra["position"])]["tree_size"]
        != other["proofs"][str(extra["position"])]["tree_size"]
    ):
        pytest.fail("both bundles should stand on the same checkpoint")
    assert not mine(dump(b)).ok and not product(dump(b)).ok
    assert any("not part of" in m for m in mine(dump(b)).messages)
    assert any("not part of" in m for m in product(dump(b)).messages)


# --- keys and their windows, on a ledger written today ------------------------------------


def test_an_old_bundle_verifies_against_the_key_list_after_a_rotation(rotated: Rotated) -> None:
    """Exported before `keys rotate`, its key shows no end; the ledger's list now closes it
    after every entry the bundle holds: genuine in both."""
    raw = dump(rotated.before)
    assert rotated.before["keys"][0]["valid_until"] is None
    assert mine(raw, trusted_keys={"keys": rotated.keys_after}).ok
    assert product(raw, trusted_keys=rotated.keys_after).ok
    assert mine(dump(rotated.after), trusted_keys={"keys": rotated.keys_after}).ok
    assert product(dump(rotated.after), trusted_keys=rotated.keys_after).ok


def _key_of(b: Bundle, position: int) -> dict[str, Any]:
    kid = b["entries"][position]["key_id"]
    return next(k for k in b["keys"] if k["key_id"] == kid)


WINDOW_TAMPERS: dict[str, Tamper] = {
    "the first key closed before its entries": lambda b: _key_of(b, 0).update(
        valid_until="2026-01-01T00:00:00.000000Z"
    ),
    "the new key opened after its entries": lambda b: _key_of(b, -1).update(
        valid_from="2199-01-01T00:00:00.000000Z"
    ),
    "an unreadable valid_until": lambda b: _key_of(b, 0).update(valid_until="soon"),
    "a valid_until without its offset": lambda b: _key_of(b, 0).update(
        valid_until="2199-01-01T00:00:00"
    ),
    "a valid_from that is a bare date": lambda b: _key_of(b, 0).update(valid_from="2000-01-01"),
}


@pytest.mark.parametrize("name", list(WINDOW_TAMPERS))
def test_a_key_window_moved_or_unreadable_fails_in_both(rotated: Rotated, name: str) -> None:
    b = copy.deepcopy(rotated.after)
    WINDOW_TAMPERS[name](b)
    assert not mine(dump(b)).ok
    assert not product(dump(b)).ok, name


def test_a_trusted_key_list_closing_a_key_early_fails_its_entries(rotated: Rotated) -> None:
    keys = copy.deepcopy(rotated.keys_after)
    first = rotated.after["entries"][0]
    for k in keys:
        if k["key_id"] == first["key_id"]:
            k["valid_until"] = "2026-01-01T00:00:00.000000Z"
    assert not mine(dump(rotated.after), trusted_keys={"keys": keys}).ok
    assert not product(dump(rotated.after), trusted_keys=keys).ok


def test_another_ledgers_bundle_or_checkpoint_fails(rotated: Rotated) -> None:
    """Self-consistent, but another origin and key: refused once the ledger's keys, origin or
    a checkpoint of it are trusted; a checkpoint of it swapped in fails alone."""
    raw = dump(rotated.foreign)
    assert mine(raw).ok and product(raw).ok  # its own keys vouch for it, printed to compare
    assert not mine(raw, trusted_keys={"keys": rotated.keys_after}).ok
    assert not product(raw, trusted_keys=rotated.keys_after).ok
    assert not mine(raw, origin="ses-ledger.local/ledger").ok
    ours = rotated.after["checkpoint"]
    assert not mine(raw, trusted_checkpoint=ours, trusted_keys={"keys": rotated.keys_after}).ok
    assert not product(raw, ours, rotated.keys_after).ok
    swapped = {**rotated.after, "checkpoint": rotated.foreign["checkpoint"]}
    assert not mine(dump(swapped)).ok and not product(dump(swapped)).ok


def test_the_verifier_runs_standalone(agency: Agency, tmp_path: Path) -> None:
    """The expert runs the script itself: exit 0 for the genuine bundle, 1 for a tampered."""
    good = tmp_path / "good.json"
    good.write_bytes(dump(agency.bundle))
    assert iv.main([str(good)]) == 0
    bad = copy.deepcopy(agency.bundle)
    bad["entries"][0]["actor"] = "someone-else"
    bad_file = tmp_path / "bad.json"
    bad_file.write_bytes(dump(bad))
    assert iv.main([str(bad_file)]) == 1


def test_a_later_bundle_is_tied_to_an_older_trusted_checkpoint(rotated: Rotated) -> None:
    """The expert holds the checkpoint of an earlier bundle (signed before a rotation): the
    later bundle's consistency proof ties the two trees; a forged proof fails, and without
    one neither verifier calls the bundle verified."""
    old = rotated.before["checkpoint"]
    keys = {"keys": rotated.keys_after}
    assert mine(dump(rotated.tied), trusted_checkpoint=old, trusted_keys=keys).ok
    assert product(dump(rotated.tied), old, rotated.keys_after).ok
    forged = copy.deepcopy(rotated.tied)
    forged["consistency"]["hashes"][0] = base64.b64encode(bytes(32)).decode()
    assert not mine(dump(forged), trusted_checkpoint=old, trusted_keys=keys).ok
    assert not product(dump(forged), old, rotated.keys_after).ok
    assert not mine(dump(rotated.after), trusted_checkpoint=old, trusted_keys=keys).ok
    assert not product(dump(rotated.after), old, rotated.keys_after).ok


def _proves(index: int, size: int, leaf: bytes, path: list[bytes], root: bytes) -> bool:
    try:
        return iv.root_from_inclusion(index, size, leaf, path) == root
    except ValueError:  # a path of the wrong length for that index and size
        return False


def test_the_independent_rfc_9162_code_accepts_the_ledgers_proofs_and_only_those() -> None:
    """Every inclusion and consistency proof of trees up to 17 leaves (powers of two and
    not) that the ledger's Merkle code makes verifies in the expert's code, and a proof with
    one hash changed, or checked at the neighbouring index or size, does not."""
    leaves = [iv.leaf_hash(bytes([i]) * 32) for i in range(17)]
    tree = MemoryNodeStore(leaves)
    flip = bytes(32)
    for size in range(1, 18):
        root = tree.root(size)
        for index in range(size):
            path = tree.inclusion_proof(index, size)
            assert iv.root_from_inclusion(index, size, leaves[index], path) == root
            if path:
                forged = [flip, *path[1:]]
                assert iv.root_from_inclusion(index, size, leaves[index], forged) != root
            if index + 1 < size:
                assert not _proves(index + 1, size, leaves[index], path, root)
        for first in range(1, size + 1):
            proof = tree.consistency_proof(first, size)
            iv.verify_consistency(first, size, tree.root(first), root, proof)
            if proof:
                with pytest.raises(ValueError):
                    iv.verify_consistency(first, size, tree.root(first), root, [flip, *proof[1:]])
            if first < size:
                with pytest.raises(ValueError):
                    iv.verify_consistency(first, size, tree.root(first + 1), root, proof)
