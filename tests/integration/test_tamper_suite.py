"""Someone with database access tampers with the ledger; each change is found, and where.

Local changes (a payload byte, a signature, a deleted, truncated, reordered or forged event)
are named by `verify_ledger` / `ses-ledger verify` at the first bad position. A rewrite made
consistent locally (re-sealed with the stolen signing key, Merkle tables and checkpoints
rebuilt) passes `verify` on the server itself; it is caught from outside, by a checkpoint
held earlier: an old evidence bundle here, a witness in test_witness.py.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.application import LedgerApp
from ledger.bundle import build_bundle
from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.config import LedgerConfig
from ledger.entry import HASHED_FIELDS, entry_from_state, seal, sealed_state, split_state
from ledger.keys import KeyRing, key_id_for
from ledger.log import MerkleLog
from ledger.merkle import MemoryNodeStore, leaf_hash, subtree_hashes_completed_by_append
from ledger.offline_verify import verify_bundle
from ledger.verify import VerifyReport, verify_ledger
from ses_ledger.demo import SimulatedClock, run_demo
from tests.ledger_helpers import events_table, raw, register, table

REPO = Path(__file__).resolve().parents[2]
EXECUTIVE = "E00001"


# --- a small history, and raw access as an intruder has it ------------------------------------


def history(config: LedgerConfig) -> LedgerApp:
    """Six executives, two appraisal cycles each (about 90 events), checkpointed."""
    clock = SimulatedClock()
    app = LedgerApp(config, clock=clock)
    run_demo(app, clock, executives=6, years=2, seed=7, batch_per_appraisal=True)
    app.merkle_log.issue_checkpoint(app.signer, config.origin)
    return app


def verify(config: LedgerConfig) -> VerifyReport:
    """A fresh reader, as `ses-ledger verify` is (no caches from before the tampering)."""
    app = LedgerApp(config)
    return verify_ledger(app.recorder, app.keyring.verifiers(), config.origin)


def id_column(config: LedgerConfig) -> str:
    return "notification_id" if config.is_postgres else "rowid"


def raw_many(config: LedgerConfig, sql: str, rows: Sequence[Sequence[Any]]) -> None:
    """executemany in one transaction (raw() opens a connection per statement)."""
    if config.is_postgres:
        import psycopg

        with psycopg.connect(config.db_url.split("?")[0]) as pg, pg.cursor() as cur:
            cur.executemany(sql.replace("?", "%s"), rows)
        return
    lite = sqlite3.connect(config.db_url[len("sqlite:///") :])
    try:
        lite.executemany(sql, rows)
        lite.commit()
    finally:
        lite.close()


@dataclass
class Row:
    position: int
    stream_id: str
    version: int
    topic: str
    state: bytes

    @property
    def entry(self) -> dict[str, Any]:
        return entry_from_state(self.state, self.position)


def rows(config: LedgerConfig) -> list[Row]:
    key = id_column(config)
    found = raw(
        config,
        f"SELECT {key}, originator_id, originator_version, topic, state "
        f"FROM {events_table(config)} ORDER BY {key}",
    )
    return [Row(int(p), str(s), int(v), str(t), bytes(b)) for p, s, v, t, b in found]


def set_state(config: LedgerConfig, position: int, state: bytes) -> None:
    raw(
        config,
        f"UPDATE {events_table(config)} SET state=? WHERE {id_column(config)}=?",
        (state, position),
    )


def rebuild_merkle(
    config: LedgerConfig, replace: dict[int, bytes] | None = None
) -> MemoryNodeStore:
    """Recompute the Merkle leaves, nodes and integration state from the events as they are
    (with the leaf hashes in `replace`, by leaf index, put in instead of the events')."""
    events = rows(config)
    tree = MemoryNodeStore()
    leaves: list[tuple[int, int, bytes]] = []
    nodes: list[tuple[int, int, bytes]] = []
    known: dict[tuple[int, int], bytes] = {}
    for index, row in enumerate(events):
        leaf = (replace or {}).get(index) or leaf_hash(bytes.fromhex(row.entry["hash"]))
        tree.append(leaf)
        for (level, idx), h in subtree_hashes_completed_by_append(index, leaf, known.__getitem__):
            known[(level, idx)] = h
            (leaves.append((idx, row.position, h)) if level == 0 else nodes.append((level, idx, h)))
    raw(config, f"DELETE FROM {table(config, 'ledger_merkle_leaves')}")
    raw(config, f"DELETE FROM {table(config, 'ledger_merkle_nodes')}")
    raw_many(
        config,
        f"INSERT INTO {table(config, 'ledger_merkle_leaves')} (leaf_index, position, leaf_hash) "
        "VALUES (?,?,?)",
        leaves,
    )
    raw_many(
        config,
        f"INSERT INTO {table(config, 'ledger_merkle_nodes')} (level, idx, hash) VALUES (?,?,?)",
        nodes,
    )
    raw(
        config,
        f"UPDATE {table(config, 'ledger_merkle_state')} SET tree_size=?, last_position=? "
        "WHERE id=1",
        (len(events), events[-1].position if events else 0),
    )
    return tree


def resign_checkpoints(config: LedgerConfig, tree: MemoryNodeStore, sizes: Sequence[int]) -> None:
    """Replace the checkpoints table: one note per size, signed with the (stolen) ledger key."""
    signer = KeyRing(config.home).signer()
    checkpoints = table(config, "ledger_checkpoints")
    raw(config, f"DELETE FROM {checkpoints}")
    for size in sizes:
        root = tree.root(size)
        note = sign_checkpoint(
            Checkpoint(config.origin, size, root), config.origin, signer.private_key
        )
        raw(
            config,
            f"INSERT INTO {checkpoints} (tree_size, root, note, issued_at) VALUES (?,?,?,?)",
            (size, root, note, "2026-01-01T00:00:00.000000Z"),
        )


def checkpoint_sizes(config: LedgerConfig) -> list[int]:
    found = raw(config, f"SELECT tree_size FROM {table(config, 'ledger_checkpoints')}")
    return sorted(int(r[0]) for r in found)


def rewrite_with_stolen_key(config: LedgerConfig, change: Callable[[dict[str, Any]], bool]) -> None:
    """Change events with `change(hashed) -> changed?`, then re-seal every event after the
    first change with the real key, and rebuild the Merkle tables and checkpoints: `verify`
    on the server passes afterwards."""
    signer = KeyRing(config.home).signer()
    heads: dict[str, str] = {}
    dirty = False
    for row in rows(config):
        entry = row.entry
        hashed = {k: copy.deepcopy(entry[k]) for k in HASHED_FIELDS}
        dirty = change(hashed) or dirty
        hashed["prev_hash"] = heads.get(row.stream_id)
        if dirty:
            sealed = seal(hashed, signer.key_id, signer.sign)
            set_state(config, row.position, sealed.state)
            heads[row.stream_id] = sealed.hash
        else:
            heads[row.stream_id] = entry["hash"]
    assert dirty, "the rewrite changed nothing"
    sizes = checkpoint_sizes(config)
    tree = rebuild_merkle(config)
    resign_checkpoints(config, tree, sizes)


def lower_final_rating(executive_id: str, level: int) -> Callable[[dict[str, Any]], bool]:
    def change(hashed: dict[str, Any]) -> bool:
        data = hashed["data"]
        if hashed["type"] == "FinalRatingAssigned" and data["executive_id"] == executive_id:
            if data["level"] != level:
                data["level"] = level
                return True
        return False

    return change


def truncate(config: LedgerConfig, k: int, *, merkle: bool, checkpoints: bool) -> list[int]:
    """Delete the last `k` events; optionally their Merkle leaves/nodes and the checkpoints
    that covered them too. Returns the deleted positions."""
    events = rows(config)
    gone = [r.position for r in events[-k:]]
    key = id_column(config)
    raw(config, f"DELETE FROM {events_table(config)} WHERE {key} >= ?", (gone[0],))
    keep = len(events) - k
    if merkle:
        raw(
            config,
            f"DELETE FROM {table(config, 'ledger_merkle_leaves')} WHERE leaf_index >= ?",
            (keep,),
        )
        raw(
            config,
            f"DELETE FROM {table(config, 'ledger_merkle_nodes')} "
            "WHERE (idx + 1) * (1 << level) > ?",
            (keep,),
        )
        raw(
            config,
            f"UPDATE {table(config, 'ledger_merkle_state')} SET tree_size=?, last_position=? "
            "WHERE id=1",
            (keep, events[keep - 1].position),
        )
    if checkpoints:
        raw(
            config,
            f"DELETE FROM {table(config, 'ledger_checkpoints')} WHERE tree_size > ?",
            (keep,),
        )
    return gone


def cli_verify(config: LedgerConfig) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "SES_LEDGER_HOME": str(config.home),
        "SES_LEDGER_DB": config.db_url,
        "SES_LEDGER_ORIGIN": config.origin,
    }
    return subprocess.run(
        [sys.executable, "-m", "ses_ledger.cli", "verify", "--quiet"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


# --- local changes: verify names the first bad position ---------------------------------------


def test_an_untouched_ledger_verifies(ledger_config: LedgerConfig) -> None:
    history(ledger_config)
    report = verify(ledger_config)
    assert report.ok, report.problem
    assert report.checked == len(rows(ledger_config)) > 80


def test_one_edited_payload_byte_is_named_by_the_cli(ledger_config: LedgerConfig) -> None:
    history(ledger_config)
    target = next(r for r in rows(ledger_config) if r.topic == "FinalRatingAssigned")
    body = target.state
    cut = body.index(b'"level":') + len(b'"level":')
    tampered = body[:cut] + bytes([body[cut] ^ 0x01]) + body[cut + 1 :]  # level 4 -> 5, say
    set_state(ledger_config, target.position, tampered)
    report = verify(ledger_config)
    assert not report.ok and report.first_bad_position == target.position
    assert report.problem == "the event's hash does not match its content"
    done = cli_verify(ledger_config)
    assert done.returncode == 1, done.stderr
    assert f"first bad position: {target.position}" in done.stdout


@pytest.mark.parametrize("second_process", [False, True], ids=["inline", "second-process"])
def test_an_edited_signature_is_named(
    ledger_config: LedgerConfig, second_process: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ledger.verify

    if second_process:  # large ledgers check signatures in a second process
        monkeypatch.setattr(ledger.verify, "PARALLEL_FROM", 1)
    history(ledger_config)
    target = rows(ledger_config)[40]
    mark = b'"signature":"'
    cut = target.state.index(mark) + len(mark) + 5
    swapped = b"A" if target.state[cut : cut + 1] != b"A" else b"B"
    set_state(
        ledger_config, target.position, target.state[:cut] + swapped + target.state[cut + 1 :]
    )
    report = verify(ledger_config)
    assert not report.ok and report.first_bad_position == target.position
    assert "signature" in (report.problem or "")


@pytest.mark.parametrize("damage", ["edited", "deleted"])
def test_a_damaged_merkle_node_is_named(ledger_config: LedgerConfig, damage: str) -> None:
    """api-contract.md inclusion and consistency proofs (RFC 9162) are made of the stored
    interior nodes: one that is not the hash of its children makes every proof through it
    fail for outside verifiers (and bundles exported with it), so `verify`, which checks
    "every Merkle leaf and checkpoint", must not answer "ledger verified"."""
    history(ledger_config)
    nodes = table(ledger_config, "ledger_merkle_nodes")
    if damage == "edited":
        raw(ledger_config, f"UPDATE {nodes} SET hash=? WHERE level=3 AND idx=2", (bytes(32),))
    else:
        raw(ledger_config, f"DELETE FROM {nodes} WHERE level=3 AND idx=2")
    first_leaf = rows(ledger_config)[16]
    report = verify(ledger_config)
    assert not report.ok
    assert "Merkle node (3, 2)" in (report.problem or ""), report.problem
    assert report.first_bad_position == first_leaf.position


def test_a_merkle_leaf_not_of_its_event_is_named_though_the_nodes_agree(
    ledger_config: LedgerConfig,
) -> None:
    """One stored leaf replaced and every interior node rebuilt over it, so that each node is
    the hash of its children: proofs then lead to roots no checkpoint signed, and `verify`
    names the leaf that is not its event's."""
    history(ledger_config)
    events = rows(ledger_config)
    rebuild_merkle(ledger_config, replace={20: bytes(32)})
    report = verify(ledger_config)
    assert not report.ok and report.first_bad_position == events[20].position
    assert report.problem == "Merkle leaf 20 does not match the event's hash"


def test_an_event_relabelled_in_its_row_is_named(ledger_config: LedgerConfig) -> None:
    """The row's type column says FinalRatingAssigned; the sealed entry, untouched, says a
    progress review. Projections dispatch on the column, so verify must not trust it."""
    history(ledger_config)
    target = next(r for r in rows(ledger_config)[30:] if r.topic == "ProgressReviewed")
    raw(
        ledger_config,
        f"UPDATE {events_table(ledger_config)} SET topic=? WHERE {id_column(ledger_config)}=?",
        ("FinalRatingAssigned", target.position),
    )
    report = verify(ledger_config)
    assert not report.ok and report.first_bad_position == target.position
    assert report.problem == "the entry's stream, version or type differs from its row"


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda body: body.replace(b'","', b'", "', 1), "not in RFC 8785 canonical form"),
        (lambda body: b"[" + body, "the entry is not JSON"),
    ],
    ids=["not-canonical", "not-json"],
)
def test_an_entry_rewritten_with_its_hash_recomputed_is_named(
    ledger_config: LedgerConfig, edit: Callable[[bytes], bytes], named: str
) -> None:
    """Without the signing key an intruder can still make the stored hash match new bytes;
    bytes that are not the canonical entry are named as such (and the signature fails)."""
    history(ledger_config)
    target = rows(ledger_config)[40]
    body, seal_fields = split_state(target.state)
    changed = edit(body)
    assert changed != body
    state = sealed_state(
        changed,
        hashlib.sha256(changed).digest(),
        seal_fields["key_id"],
        base64.b64decode(seal_fields["signature"]),
    ).state
    set_state(ledger_config, target.position, state)
    report = verify(ledger_config)
    assert not report.ok and report.first_bad_position == target.position
    assert named in (report.problem or "")
    assert (target.position, "the signature does not verify") in report.problems


def _delete(config: LedgerConfig, position: int) -> None:
    raw(config, f"DELETE FROM {events_table(config)} WHERE {id_column(config)}=?", (position,))


def _rechain_with_stolen_key(config: LedgerConfig, from_position: int, prev_hash: str) -> None:
    """Re-seal the event at `from_position` with `prev_hash`, and every later event chained
    on as it comes, with the real key; rebuild the Merkle tables and re-sign the checkpoints:
    only the stream chain itself can still show the change."""
    signer = KeyRing(config.home).signer()
    heads: dict[str, str] = {}
    for row in rows(config):
        entry = row.entry
        hashed = {k: copy.deepcopy(entry[k]) for k in HASHED_FIELDS}
        hashed["prev_hash"] = heads.get(row.stream_id)
        if row.position == from_position:
            hashed["prev_hash"] = prev_hash
        if row.position >= from_position:
            sealed = seal(hashed, signer.key_id, signer.sign)
            set_state(config, row.position, sealed.state)
            heads[row.stream_id] = sealed.hash
        else:
            heads[row.stream_id] = entry["hash"]
    tree = rebuild_merkle(config)
    resign_checkpoints(config, tree, sorted({min(n, tree.size) for n in checkpoint_sizes(config)}))


def _third_of_a_stream(events: list[Row]) -> tuple[Row, Row, Row]:
    third = next(r for r in events if r.version == 3)
    first, second = (
        next(r for r in events if r.stream_id == third.stream_id and r.version == v) for v in (1, 2)
    )
    return first, second, third


def test_a_prev_hash_that_skips_a_link_is_named_even_with_the_stolen_key(
    ledger_config: LedgerConfig,
) -> None:
    """Version 3 re-sealed with version 1's hash as its prev_hash, everything after it
    re-sealed, the Merkle tables rebuilt and the checkpoints re-signed: `verify` still names
    the broken chain, at version 3."""
    history(ledger_config)
    first, _second, third = _third_of_a_stream(rows(ledger_config))
    _rechain_with_stolen_key(ledger_config, third.position, first.entry["hash"])
    report = verify(ledger_config)
    assert not report.ok and report.first_bad_position == third.position
    assert f"prev_hash does not chain to version 2 of {third.stream_id}" in (report.problem or "")


def test_a_deleted_event_rechained_with_the_stolen_key_is_named_by_its_version_gap(
    ledger_config: LedgerConfig,
) -> None:
    """Version 2 deleted and version 3 re-sealed to chain to version 1 (the Merkle tables
    rebuilt, the checkpoints re-signed): the stream's version numbers still show the gap."""
    history(ledger_config)
    first, second, third = _third_of_a_stream(rows(ledger_config))
    _delete(ledger_config, second.position)
    _rechain_with_stolen_key(ledger_config, third.position, first.entry["hash"])
    report = verify(ledger_config)
    assert not report.ok and report.first_bad_position == third.position
    assert f"stream {third.stream_id} jumps from version 1 to 3" in (report.problem or "")


def test_a_deleted_event_is_named(ledger_config: LedgerConfig) -> None:
    """The event after the deleted one belongs to another stream."""
    history(ledger_config)
    events = rows(ledger_config)
    i = next(i for i in range(30, len(events)) if events[i + 1].stream_id != events[i].stream_id)
    _delete(ledger_config, events[i].position)
    report = verify(ledger_config)
    assert not report.ok and report.first_bad_position == events[i].position


def test_a_deleted_event_followed_by_its_own_stream_is_named(
    ledger_config: LedgerConfig,
) -> None:
    history(ledger_config)
    events = rows(ledger_config)
    i = next(i for i in range(30, len(events)) if events[i + 1].stream_id == events[i].stream_id)
    _delete(ledger_config, events[i].position)
    report = verify(ledger_config)
    assert not report.ok and report.first_bad_position == events[i].position


def test_truncation_of_events_alone_is_named_at_the_first_cut(
    ledger_config: LedgerConfig,
) -> None:
    history(ledger_config)
    gone = truncate(ledger_config, 5, merkle=False, checkpoints=False)
    report = verify(ledger_config)
    assert not report.ok and report.first_bad_position == gone[0]
    assert "gone" in (report.problem or "")


def test_truncation_with_leaves_and_checkpoints_cut_is_caught_by_the_merkle_state(
    ledger_config: LedgerConfig,
) -> None:
    """Events, leaves, nodes and checkpoints cut alike, but the Merkle state still counts
    the integrated leaves from before: verify says the log is shorter than that count."""
    history(ledger_config)
    total = len(rows(ledger_config))
    truncate(ledger_config, 5, merkle=True, checkpoints=True)
    raw(
        ledger_config,
        f"UPDATE {table(ledger_config, 'ledger_merkle_state')} SET tree_size=? WHERE id=1",
        (total,),
    )
    report = verify(ledger_config)
    assert not report.ok
    assert f"the Merkle log holds {total} leaves but only {total - 5} events" in (
        report.problem or ""
    ), report.problems


def test_truncation_with_merkle_tables_cut_is_caught_by_the_checkpoints(
    ledger_config: LedgerConfig,
) -> None:
    """The Merkle log is consistent with the shorter history, but a checkpoint signed
    earlier still covers the lost events. No surviving event is bad, so verify names no
    position (see the report: it could name the position after the last event left)."""
    history(ledger_config)
    truncate(ledger_config, 5, merkle=True, checkpoints=False)
    report = verify(ledger_config)
    assert not report.ok
    assert "history was cut" in (report.problem or "")
    done = cli_verify(ledger_config)
    assert done.returncode == 1 and "first bad position:" in done.stdout


def test_two_reordered_events_are_named(ledger_config: LedgerConfig) -> None:
    history(ledger_config)
    events = rows(ledger_config)
    a, b = events[20].position, events[21].position
    t, key = events_table(ledger_config), id_column(ledger_config)
    raw(ledger_config, f"UPDATE {t} SET {key}=? WHERE {key}=?", (-1, a))
    raw(ledger_config, f"UPDATE {t} SET {key}=? WHERE {key}=?", (a, b))
    raw(ledger_config, f"UPDATE {t} SET {key}=? WHERE {key}=?", (b, -1))
    report = verify(ledger_config)
    assert not report.ok and report.first_bad_position == a


def test_a_forged_event_signed_by_an_outside_key_is_named(ledger_config: LedgerConfig) -> None:
    """Correct hash, correct chain, even a Merkle leaf: only the key is not the ledger's."""
    history(ledger_config)
    events = rows(ledger_config)
    head = [r for r in events if r.stream_id == EXECUTIVE][-1]
    forged = {k: head.entry[k] for k in HASHED_FIELDS}
    forged.update(
        stream_version=head.version + 1,
        type="ComplaintRecorded",
        data={
            "executive_id": EXECUTIVE,
            "forum": "OSC",
            "filed_on": "2026-01-05",
            "summary": "Forged.",
        },
        occurred_on="2026-01-05",
        prev_hash=head.entry["hash"],
    )
    outsider = Ed25519PrivateKey.generate()
    sealed = seal(forged, key_id_for(outsider.public_key()), outsider.sign)
    position = events[-1].position + 1
    raw(
        ledger_config,
        f"INSERT INTO {events_table(ledger_config)} ({id_column(ledger_config)}, originator_id, "
        "originator_version, topic, state) VALUES (?,?,?,?,?)",
        (position, EXECUTIVE, head.version + 1, "ComplaintRecorded", sealed.state),
    )
    rebuild_merkle(ledger_config)
    report = verify(ledger_config)
    assert not report.ok and report.first_bad_position == position
    assert "unknown key" in (report.problem or "")


# --- consistent rewrites: invisible locally, caught by an earlier checkpoint ------------------


def _old_bundle(config: LedgerConfig) -> dict[str, Any]:
    app = LedgerApp(config)
    bundle = build_bundle(app, EXECUTIVE)
    assert verify_bundle(bundle).ok
    return bundle


def test_a_rewrite_with_the_stolen_key_passes_verify_but_not_an_old_bundle(
    ledger_config: LedgerConfig,
) -> None:
    history(ledger_config)
    old = _old_bundle(ledger_config)
    old_size = int(old["checkpoint"].split("\n")[1])
    rewrite_with_stolen_key(ledger_config, lower_final_rating(EXECUTIVE, 1))
    report = verify(ledger_config)
    assert report.ok, f"the rewrite is meant to be locally consistent: {report.problem}"
    assert report.tree_size == old_size

    # The rewritten server's own checkpoint at the same size: a fork.
    app = LedgerApp(ledger_config)
    same_size = app.merkle_log.latest_checkpoint()
    assert same_size is not None and same_size.tree_size == old_size
    forked = verify_bundle(old, same_size.note)
    assert not forked.ok and "forked" in " ".join(forked.problems)

    # The server grows, and proves consistency with the old bundle's checkpoint: it cannot.
    register(app, "E-LATER")
    later = app.merkle_log.issue_checkpoint(app.signer, ledger_config.origin)
    assert later is not None and later.tree_size == old_size + 1
    stale = copy.deepcopy(old)
    stale["consistency"] = MerkleLog(app.recorder).consistency(old_size, later.tree_size)
    report_later = verify_bundle(stale, later.note)
    assert not report_later.ok
    assert any("does not verify" in p for p in report_later.problems)

    # A bundle exported after the rewrite verifies on its own: only history held from
    # before (a checkpoint, a bundle, a witness) can tell.
    fresh = build_bundle(app, EXECUTIVE)
    assert verify_bundle(fresh).ok
    levels = [e["data"]["level"] for e in fresh["entries"] if e["type"] == "FinalRatingAssigned"]
    assert levels and set(levels) == {1}


def test_a_consistent_truncation_passes_verify_but_not_an_old_bundle(
    ledger_config: LedgerConfig,
) -> None:
    history(ledger_config)
    old = _old_bundle(ledger_config)
    old_size = int(old["checkpoint"].split("\n")[1])
    truncate(ledger_config, 4, merkle=True, checkpoints=True)
    app = LedgerApp(ledger_config)
    # Re-sign a checkpoint of the cut tree so the server has something to show.
    cut = app.merkle_log.issue_checkpoint(app.signer, ledger_config.origin)
    assert cut is not None and cut.tree_size == old_size - 4
    assert verify(ledger_config).ok
    proof = MerkleLog(app.recorder).consistency  # cannot reach the old, larger size
    with pytest.raises(Exception, match="tree size"):
        proof(cut.tree_size, old_size)
    # ...and the old bundle with the cut checkpoint as the trusted one: no proof is possible,
    # so offline the two cannot be tied (not verified; a check that could not be made, exit
    # 2: the bundle holds no proof); the ledger asked for one (`--url`) cannot give it.
    report = verify_bundle(old, cut.note)
    assert not report.ok and "could not be established" in " ".join(report.unchecked)
    # Regrown past the old size, the proof exists but fails against the old root.
    for i in range(6):
        register(app, f"E-REGROWN-{i}")
    grown = app.merkle_log.issue_checkpoint(app.signer, ledger_config.origin)
    assert grown is not None and grown.tree_size > old_size
    regrown = copy.deepcopy(old)
    regrown["consistency"] = MerkleLog(app.recorder).consistency(old_size, grown.tree_size)
    assert not verify_bundle(regrown, grown.note).ok


def test_the_honest_ledger_proves_consistency_with_an_old_bundle(
    ledger_config: LedgerConfig,
) -> None:
    """The control for the two tests above: no tampering, so the same check passes."""
    app = history(ledger_config)
    old = _old_bundle(ledger_config)
    old_size = int(old["checkpoint"].split("\n")[1])
    register(app, "E-LATER")
    later = app.merkle_log.issue_checkpoint(app.signer, ledger_config.origin)
    assert later is not None
    old["consistency"] = MerkleLog(app.recorder).consistency(old_size, later.tree_size)
    report = verify_bundle(old, later.note)
    assert report.ok, report.problems
    assert base64.b64decode(old["consistency"]["hashes"][0])  # a real proof was needed


def test_a_damaged_database_page_is_named_as_the_first_bad_position(
    sqlite_config: LedgerConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    """A page of the events table overwritten on the disk (a failing drive, not an intruder):
    verify (and so `GET /v1/ledger/verify`, a 500 before) raised "database disk image is
    malformed"; now the events before the damage are checked and the first position that
    cannot be read is the first bad one, the problem naming the damage."""
    app = history(sqlite_config)
    target = app.entries_at([40])[0]["signature"].encode()
    app.close()  # the write-ahead log is folded into the file
    database = sqlite_config.sqlite_path()
    with sqlite3.connect(database) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
    content = database.read_bytes()
    assert content.count(target) == 1  # the signature is stored once, in its row
    page = content.index(target) // page_size
    with database.open("r+b") as fh:
        fh.seek(page * page_size)
        fh.write(b"\xa5" * page_size)

    report = verify(sqlite_config)
    assert not report.ok and report.first_bad_position is not None, report
    assert 1 < report.first_bad_position <= 40, report
    assert report.checked == report.first_bad_position - 1
    assert report.problem is not None and "damaged" in report.problem
    assert "malformed" in report.problem
