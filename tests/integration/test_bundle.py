"""Evidence bundles: an executive's whole record leaves the ledger and still verifies.

The story: several appraisal cycles of a synthetic agency; an auditor exports one
executive's bundle, checks it with the standalone verifier (even a copy of the file run with
`python -I` from elsewhere), watches every kind of tampering fail, and later ties the old
bundle to a newer checkpoint with a consistency proof. The `replay` command shows the same
executive as the ledger stood at an earlier position or time.
"""

from __future__ import annotations

import copy
import json
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ledger.application import LedgerApp
from ledger.bundle import FORMAT, build_bundle, rebuild_subject_index, subject_index
from ledger.config import LedgerConfig
from ledger.entry import entry_from_state, entry_hash
from ledger.errors import NotFound, VerificationError
from ledger.log import ProofUnavailable
from ledger.offline_verify import verify_bundle
from ses_ledger import cli
from ses_ledger.demo import SimulatedClock, run_demo
from tests.integration.test_projections import Clock, Story
from tests.ledger_helpers import plan, point_cli_at, raw, register

REPO = Path(__file__).resolve().parents[2]


def demo(config: LedgerConfig, executives: int = 6, years: int = 4) -> LedgerApp:
    clock = SimulatedClock()
    app = LedgerApp(config, clock=clock)
    run_demo(app, clock, executives=executives, years=years, seed=11, batch_per_appraisal=True)
    return app


def all_entries(app: LedgerApp) -> list[dict[str, Any]]:
    return [
        entry_from_state(n.state, n.id)
        for n in app.recorder.select_notifications(start=1, limit=100_000)
    ]


def busiest(app: LedgerApp) -> str:
    """The executive with the most appraisals."""
    plans = Counter(e["data"]["executive_id"] for e in all_entries(app) if e["type"] == "PlanSet")
    return str(plans.most_common(1)[0][0])


def problems(bundle: dict[str, Any], trusted: str | None = None) -> str:
    report = verify_bundle(json.loads(json.dumps(bundle)), trusted)
    return " | ".join(report.problems)


def tree_size(bundle: dict[str, Any]) -> int:
    return int(bundle["checkpoint"].split("\n")[1])


# --- export ----------------------------------------------------------------------------------


def test_a_bundle_holds_the_executives_whole_record_and_verifies(
    ledger_config: LedgerConfig,
) -> None:
    app = demo(ledger_config)
    executive = busiest(app)
    bundle = build_bundle(app, executive)

    assert bundle["format"] == FORMAT and bundle["executive_id"] == executive
    everything = all_entries(app)
    appraisals = {
        e["stream_id"]
        for e in everything
        if e["type"] == "PlanSet" and e["data"]["executive_id"] == executive
    }
    boards = {
        e["data"]["board_id"]
        for e in everything
        if e["type"] == "PRBRecommended" and e["stream_id"] in appraisals
    }
    assert len(appraisals) >= 3
    streams = {executive} | appraisals | boards
    assert bundle["entries"] == [e for e in everything if e["stream_id"] in streams]
    positions = [e["position"] for e in bundle["entries"]]
    assert positions == sorted(positions)
    assert set(bundle["proofs"]) == {str(p) for p in positions}
    assert {k["key_id"] for k in bundle["keys"]} == set(app.keyring.verifiers())
    assert all(e["hash"] == entry_hash(e) for e in bundle["entries"])

    report = verify_bundle(bundle)
    assert report.ok, report.problems
    # The rebuilt history reads the real event shapes: every appraisal has its final rating.
    text = "\n".join(report.summary)
    assert "not understood" not in text and "no final rating" not in text
    finals = sum(1 for e in bundle["entries"] if e["type"] == "FinalRatingAssigned")
    assert finals >= 1 and text.count("final Level") == finals
    # Key order and whitespace do not matter (the contract: verified from parsed content).
    reordered = json.loads(json.dumps(bundle, sort_keys=True, separators=(",", ":")))
    assert verify_bundle(reordered).ok


def test_the_standalone_verifier_copied_elsewhere_accepts_it(
    sqlite_config: LedgerConfig, tmp_path: Path
) -> None:
    app = demo(sqlite_config)
    bundle_file = tmp_path / "away" / "bundle.json"
    bundle_file.parent.mkdir()
    bundle_file.write_text(json.dumps(build_bundle(app, busiest(app))))
    shutil.copy(REPO / "ledger" / "offline_verify.py", bundle_file.parent / "offline_verify.py")
    done = subprocess.run(
        [sys.executable, "-I", "offline_verify.py", "bundle.json"],
        cwd=bundle_file.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "BUNDLE VERIFIED" in done.stdout


def test_board_registrations_ride_along_as_whole_streams(sqlite_config: LedgerConfig) -> None:
    app = demo(sqlite_config)
    bundle = build_bundle(app, busiest(app))
    boards = [e for e in bundle["entries"] if e["type"] == "ReviewBoardRegistered"]
    assert boards and all(e["stream_version"] == 1 for e in boards)
    assert verify_bundle(bundle).ok
    # Without them (an exporter that left them out: no position seal lists them) the bundle
    # still verifies: they are context, not a dependency.
    bare = copy.deepcopy(bundle)
    bare["entries"] = [e for e in bare["entries"] if e["type"] != "ReviewBoardRegistered"]
    for board in boards:
        del bare["proofs"][str(board["position"])]
    bare["position_seal"] = None
    assert verify_bundle(bare).ok
    # Removed after export, the ledger's position seal names them.
    bare["position_seal"] = bundle["position_seal"]
    assert "left out after it was exported" in problems(bare)


# --- tampering with an exported bundle ----------------------------------------------------------


def _payload(b: dict[str, Any]) -> None:
    final = next(e for e in b["entries"] if e["type"] == "FinalRatingAssigned")
    final["data"]["level"] = 5 if final["data"]["level"] != 5 else 4


def _drop_middle(b: dict[str, Any]) -> None:
    reviews = [e for e in b["entries"] if e["type"] == "ProgressReviewed"]
    b["entries"].remove(reviews[0])


def _drop_stream_start(b: dict[str, Any]) -> None:
    plan_set = next(e for e in b["entries"] if e["type"] == "PlanSet")
    b["entries"].remove(plan_set)


def _proof(b: dict[str, Any]) -> None:
    proof = b["proofs"][str(b["entries"][3]["position"])]
    proof["hashes"][0] = "A" * 43 + "="


def _proof_index(b: dict[str, Any]) -> None:
    b["proofs"][str(b["entries"][3]["position"])]["leaf_index"] += 1


def _checkpoint(b: dict[str, Any]) -> None:
    lines = b["checkpoint"].split("\n")
    lines[1] = str(int(lines[1]) + 1)
    b["checkpoint"] = "\n".join(lines)


def _reorder(b: dict[str, Any]) -> None:
    b["entries"][2], b["entries"][3] = b["entries"][3], b["entries"][2]


def _signature(b: dict[str, Any]) -> None:
    e = b["entries"][1]
    e["signature"] = ("B" if e["signature"][0] != "B" else "C") + e["signature"][1:]


def _position(b: dict[str, Any]) -> None:
    """The last entry's position edited (unhashed), its proof moved along: the ledger's
    position seal binds it to its leaf index."""
    last = b["entries"][-1]
    b["proofs"][str(last["position"] + 3)] = b["proofs"].pop(str(last["position"]))
    last["position"] += 3


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (_payload, "hash does not recompute"),
        (_position, "the entry's position was changed"),
        (_drop_middle, "jumps from version"),
        (_drop_stream_start, "earlier events missing"),
        (_proof, "inclusion proof does not verify"),
        (_proof_index, "inclusion proof does not verify"),
        (_checkpoint, "checkpoint"),
        (_reorder, "increasing position order"),
        (_signature, "signature does not verify"),
    ],
    ids=lambda v: getattr(v, "__name__", "")[1:] if callable(v) else "",
)
def test_every_tampering_of_a_bundle_fails(
    sqlite_config: LedgerConfig, tamper: Callable[[dict[str, Any]], None], expected: str
) -> None:
    app = demo(sqlite_config, years=3)
    bundle = build_bundle(app, busiest(app))
    tampered = copy.deepcopy(bundle)
    tamper(tampered)
    assert expected in problems(tampered)
    assert problems(bundle) == ""


# --- a later checkpoint -----------------------------------------------------------------------


def test_an_old_bundle_is_tied_to_a_later_checkpoint_by_a_consistency_proof(
    sqlite_config: LedgerConfig,
) -> None:
    app = demo(sqlite_config, years=3)
    executive = busiest(app)
    old = build_bundle(app, executive)
    old_size = tree_size(old)

    register(app, "E-NEW")
    plan(app, "A-NEW", "E-NEW")
    newer = build_bundle(app, "E-NEW", consistency_from=old_size)
    new_size = tree_size(newer)
    assert new_size == old_size + 2
    assert newer["consistency"]["first"] == old_size
    # The new bundle proves that its tree extends the auditor's old checkpoint...
    assert problems(newer, trusted=old["checkpoint"]) == ""
    # ...and the old bundle, given the proof, accepts the new checkpoint as trusted.
    old_with_proof = copy.deepcopy(old)
    old_with_proof["consistency_proofs"] = [newer["consistency"]]
    assert problems(old_with_proof, trusted=newer["checkpoint"]) == ""
    # Without a proof there is nothing to go on: not verified (a check that could not be
    # made, not a problem found), and it says why.
    report = verify_bundle(json.loads(json.dumps(old)), newer["checkpoint"])
    assert not report.ok and report.problems == []
    assert "no consistency proof" in " | ".join(report.unchecked)
    # A proof that does not match the roots fails.
    wrong = copy.deepcopy(old_with_proof)
    wrong["consistency_proofs"][0]["hashes"][0] = "A" * 43 + "="
    assert "does not verify" in problems(wrong, trusted=newer["checkpoint"])


def test_a_pinned_checkpoint_shows_the_record_as_it_stood(sqlite_config: LedgerConfig) -> None:
    app = demo(sqlite_config, years=3)
    executive = busiest(app)
    then = build_bundle(app, executive)
    size_then = tree_size(then)
    app.record_complaint(  # the record grows
        executive,
        forum="OSC",
        filed_on=date(2026, 12, 1),
        summary="Filed later.",
        actor=executive,
        submitted_by="hr-app-1",
    )
    now = build_bundle(app, executive)
    assert tree_size(now) == size_then + 1
    assert len(now["entries"]) == len(then["entries"]) + 1
    pinned = build_bundle(app, executive, tree_size=size_then)
    assert pinned["entries"] == then["entries"] and pinned["checkpoint"] == then["checkpoint"]
    assert verify_bundle(pinned).ok
    with pytest.raises(ProofUnavailable, match="no checkpoint was issued at tree size 3"):
        build_bundle(app, executive, tree_size=3)


def test_events_not_yet_in_the_merkle_log_are_integrated_and_checkpointed(
    sqlite_config: LedgerConfig,
) -> None:
    app = LedgerApp(sqlite_config)
    register(app)
    plan(app)
    assert app.merkle_log.latest_checkpoint() is None
    bundle = build_bundle(app, "E1")
    assert [e["type"] for e in bundle["entries"]] == ["ExecutiveRegistered", "PlanSet"]
    assert tree_size(bundle) == 2 and verify_bundle(bundle).ok


def test_an_unknown_executive_has_no_bundle(sqlite_config: LedgerConfig) -> None:
    app = LedgerApp(sqlite_config)
    register(app)
    with pytest.raises(NotFound):
        build_bundle(app, "E404")
    with pytest.raises(NotFound):  # an appraisal id is not an executive
        plan(app)
        build_bundle(app, "A-2024-E1")


# --- the subject index ------------------------------------------------------------------------


def test_the_subject_index_follows_new_appraisals_and_rebuilds(
    ledger_config: LedgerConfig,
) -> None:
    app = LedgerApp(ledger_config)
    register(app)
    plan(app)
    assert subject_index(app).streams("E1") == ["A-2024-E1"]
    plan(app, "A-2025-E1")
    register(app, "E2")
    plan(app, "A-2024-E2", "E2")
    other = LedgerApp(ledger_config)  # another process catches up from the stored mark
    assert subject_index(other).streams("E1") == ["A-2024-E1", "A-2025-E1"]
    assert subject_index(other).streams("E2") == ["A-2024-E2"]
    assert rebuild_subject_index(other) == 3
    assert subject_index(app).streams("E1") == ["A-2024-E1", "A-2025-E1"]


def test_a_tampered_subject_index_is_refused_not_believed(sqlite_config: LedgerConfig) -> None:
    app = LedgerApp(sqlite_config)
    register(app)
    register(app, "E2")
    plan(app, "A-2024-E2", "E2")
    build_bundle(app, "E1")
    raw(
        sqlite_config,
        "INSERT INTO ledger_subject_streams (executive_id, stream_id, position) VALUES (?,?,?)",
        ("E1", "A-2024-E2", 3),
    )
    with pytest.raises(VerificationError, match="subject index"):
        build_bundle(app, "E1")


# --- the command line ---------------------------------------------------------------------------


def ses(argv: list[str]) -> int:
    """`ses-ledger ARGV`, in-process."""
    return cli.main(argv)


def test_bundle_export_and_verify_on_the_command_line(
    env: LedgerConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = demo(env, years=3)
    executive = busiest(app)
    out = tmp_path / "bundle.json"
    assert ses(["bundle", "export", "--executive", executive, "--out", str(out)]) == 0
    assert ses(["bundle", "verify", str(out)]) == 0
    assert "BUNDLE VERIFIED" in capsys.readouterr().out

    note = tmp_path / "now.note"
    assert ses(["checkpoint", "--out", str(note)]) == 0
    printed = capsys.readouterr().out
    assert printed == note.read_text() and printed.startswith(env.origin + "\n")
    assert ses(["bundle", "verify", str(out), "--checkpoint", str(note)]) == 0
    assert "trusted checkpoint: consistent" in capsys.readouterr().out

    bundle = json.loads(out.read_text())
    _payload(bundle)
    out.write_text(json.dumps(bundle))
    assert ses(["bundle", "verify", str(out)]) == 1
    assert "NOT VERIFIED" in capsys.readouterr().out
    assert ses(["bundle", "verify", str(tmp_path / "missing.json")]) == 2
    capsys.readouterr()

    # A member named twice (I-JSON, RFC 7493 2.3) is reported on the --url path too, where
    # the bundle is re-encoded before the verifier reads it (which would hide it), and
    # before any ledger is asked (the URL here answers nothing).
    doubled = out.read_text().replace('"actor": ', '"actor": "forged", "actor": ', 1)
    assert doubled != out.read_text()
    out.write_text(doubled)
    assert ses(["bundle", "verify", str(out), "--url", "http://127.0.0.1:9"]) == 1
    assert 'names "actor" more than once' in capsys.readouterr().out
    assert ses(["bundle", "reindex"]) == 0
    assert capsys.readouterr().out.startswith("indexed ")


def test_replay_shows_the_executive_as_the_ledger_stood(
    env: LedgerConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    app = demo(env, years=3)
    executive = busiest(app)
    mine = [
        e
        for e in all_entries(app)
        if e["stream_id"] == executive or e["data"].get("executive_id") == executive
    ]
    finals = [e for e in mine if e["type"] == "FinalRatingAssigned"]
    assert len(finals) >= 2
    first_final = finals[0]

    argv = ["replay", "--executive", executive, "--json"]
    assert ses([*argv, "--as-of-position", str(first_final["position"])]) == 0
    then = json.loads(capsys.readouterr().out)
    assert [r["appraisal_id"] for r in then["ratings"]] == [first_final["stream_id"]]
    assert all(e["position"] <= first_final["position"] for e in then["events"])
    assert then["events"] and all(e["verification"]["ok"] for e in then["events"])
    assert then["removal_history"]["as_of"] == first_final["recorded_at"][:10]

    assert ses([*argv, "--known-at", finals[-1]["recorded_at"]]) == 0
    later = json.loads(capsys.readouterr().out)
    assert len(later["ratings"]) == len(finals)

    assert (
        ses(
            [
                "replay",
                "--executive",
                executive,
                "--as-of-position",
                str(first_final["position"]),
                "--as-of",
                "2030-01-01",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert f"executive {executive}:" in text and "removal history as of 2030-01-01" in text
    assert "three_year (REM-2)" in text and first_final["hash"][:16] in text

    assert ses(["replay", "--executive", executive, "--as-of-position", "1"]) == 1
    assert "not registered then" in capsys.readouterr().err


def test_replay_past_the_last_position_judges_removal_as_of_the_ledgers_last_day(
    env: LedgerConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    """`replay --as-of-position N` without `--as-of`: the removal history (REM-2/REM-3) is as
    of the day the ledger stood at N, which for N past the head (or in a gap of positions)
    is the day of the last event up to N, as the API's replays take it. It was the day of
    the executive's own latest event, days or years before the ledger's last."""
    app = demo(env, years=3)
    entries = all_entries(app)
    last = entries[-1]
    executive = next(
        e["data"]["executive_id"]
        for e in entries
        if e["type"] == "ExecutiveRegistered"
        and max(
            x["recorded_at"]
            for x in entries
            if x["stream_id"] == e["stream_id"] or x["data"].get("executive_id") == e["stream_id"]
        )[:10]
        != last["recorded_at"][:10]
    )
    argv = ["replay", "--executive", executive, "--json"]
    assert ses([*argv, "--as-of-position", str(last["position"] + 1000)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["removal_history"]["as_of"] == last["recorded_at"][:10]
    assert record["head"] == last["position"]


def test_replay_beyond_the_head_says_a_later_run_may_show_more(
    env: LedgerConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    """A point past what the ledger holds (a position beyond its last, a `known_at` still to
    come) is answered with the ledger as it stands now, which the same command run later can
    contradict: it said only "the ledger as it stood at position N", as if N were on record.
    A point the ledger has passed gets no such note."""
    app = demo(env, years=1)
    last = all_entries(app)[-1]
    executive = busiest(app)
    beyond = ["--as-of-position", str(last["position"] + 1000)]
    for point in (beyond, ["--known-at", "2999-01-01T00:00:00Z"]):
        assert ses(["replay", "--executive", executive, *point]) == 0
        text = capsys.readouterr().out
        assert "a later run may show more" in text and f"{last['position']}" in text
    assert ses(["replay", "--executive", executive, "--as-of-position", str(last["position"])]) == 0
    assert "a later run may show more" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--as-of-position", "-3"], "must be a whole number, 0 or more"),
        # past SQLite's 64-bit integers: an OverflowError traceback from the store (exit 1)
        (["--as-of-position", str(2**63)], "at most 9007199254740991"),
        (["--as-of-position", "1_0"], "must be a whole number, 0 or more"),  # int() read 10
        (["--known-at", "yesterday"], "must be an RFC 3339 timestamp"),
        (["--as-of-position", "5", "--as-of", "2025-13-01"], "must be a date, YYYY-MM-DD"),
    ],
)
def test_replay_refuses_a_malformed_point_in_one_line(
    env: LedgerConfig, capsys: pytest.CaptureFixture[str], argv: list[str], said: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        ses(["replay", "--executive", "E00001", *argv])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err


def test_audit_lists_an_actors_entries_verified(
    env: LedgerConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    app = demo(env, years=3)
    entries = all_entries(app)
    final = next(e for e in entries if e["type"] == "FinalRatingAssigned")
    actor = final["actor"]
    theirs = [e for e in entries if e["actor"] == actor]

    assert ses(["audit", "--actor", actor, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["events"]
    assert [e["position"] for e in listed] == [e["position"] for e in theirs]
    assert [e["policy"] for e in listed] == [e["policy"] for e in theirs]
    assert all(e["verification"]["ok"] for e in listed)

    assert ses(["audit", "--actor", actor, "--as-of-position", str(final["position"])]) == 0
    out = capsys.readouterr()
    lines = out.out.splitlines()
    upto = [e for e in theirs if e["position"] <= final["position"]]
    assert len(lines) == len(upto) and lines[-1].split()[0] == str(final["position"])
    assert all(line.endswith("verified") for line in lines)
    assert out.err == f"{len(upto)} entries; every one verifies\n"

    with pytest.raises(SystemExit) as exit_:
        ses(["audit"])
    assert exit_.value.code == 2
    assert "name an --actor, an --executive or an --appraisal" in capsys.readouterr().err

    # An appraisal not yet made at the point: nothing matched then (exit 1, as --help says).
    made = next(e for e in entries if e["type"] == "PlanSet")
    at = ["--as-of-position", str(made["position"] - 1)]
    assert ses(["audit", "--appraisal", made["stream_id"], *at]) == 1
    out = capsys.readouterr()
    assert out.out == "" and out.err == (
        f"0 entries: no entry matches appraisal {made['stream_id']} "
        f"at position {made['position'] - 1}\n"
    )


def test_audit_exits_1_when_an_entry_does_not_verify(
    env: LedgerConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    app = demo(env, years=2)
    executive = busiest(app)
    final = next(
        e
        for e in all_entries(app)
        if e["type"] == "FinalRatingAssigned" and e["data"].get("executive_id") == executive
    )
    with sqlite3.connect(env.db_url.removeprefix("sqlite:///")) as db:
        (state,) = db.execute(
            "SELECT state FROM stored_events WHERE rowid = ?", (final["position"],)
        ).fetchone()
        forged = bytes(state).replace(b'"level":', b'"level":1', 1)
        db.execute(
            "UPDATE stored_events SET state = ? WHERE rowid = ?", (forged, final["position"])
        )
    assert ses(["audit", "--executive", executive]) == 1
    out = capsys.readouterr()
    assert f"{final['position']:>8}" in out.out and "NOT VERIFIED (hash)" in out.out
    assert out.err.endswith("; 1 do not verify\n")
    # `replay` rebuilds the record from the same entries: it listed the one that does not
    # verify and still exited 0 (--help: 1 when a check failed); a clean point still is 0.
    for as_json in ([], ["--json"]):
        argv = ["replay", "--executive", executive, *as_json]
        assert ses([*argv, "--as-of-position", str(final["position"])]) == 1
        out = capsys.readouterr()
        assert "NOT VERIFIED (hash)" in out.out or '"ok": false' in out.out
        assert out.err.startswith("1 of ") and "do not verify" in out.err
        assert ses([*argv, "--as-of-position", str(final["position"] - 1)]) == 0
        assert capsys.readouterr().err == ""


# --- the command line: one-line refusals, exit statuses -----------------------------------------


def small(config: LedgerConfig, executives: int = 2) -> LedgerApp:
    """E1..En registered, each with a plan: 2n events, no checkpoint yet."""
    app = LedgerApp(config)
    for i in range(1, executives + 1):
        register(app, f"E{i}")
        plan(app, f"A-2024-E{i}", f"E{i}")
    return app


def issue(app: LedgerApp) -> int:
    stored = app.merkle_log.issue_checkpoint(app.signer, app.config.origin)
    assert stored is not None
    return stored.tree_size


def test_bundle_export_to_a_path_it_cannot_write_says_so_before_issuing_a_checkpoint(
    env: LedgerConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = small(env)
    (tmp_path / "a-file").write_text("")
    for out in (tmp_path / "missing" / "b.json", tmp_path / "a-file" / "b.json", tmp_path):
        assert ses(["bundle", "export", "--executive", "E1", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"ses-ledger bundle export: cannot write {out}: ")
        assert err.count("\n") == 1 and "Traceback" not in err
    assert app.merkle_log.latest_checkpoint() is None  # nothing issued for it


def test_bundle_export_at_a_tree_size_never_checkpointed_lists_the_sizes_issued(
    ledger_config: LedgerConfig,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    point_cli_at(monkeypatch, ledger_config)
    app = LedgerApp(ledger_config)
    sizes = []
    for i in range(1, 10):
        register(app, f"E{i}")
        register(app, f"E{i}b")
        sizes.append(issue(app))
    assert sizes == list(range(2, 20, 2))
    out = str(tmp_path / "b.json")
    argv = ["bundle", "export", "--executive", "E1", "--out", out, "--tree-size"]
    assert ses([*argv, "8"]) == 0
    capsys.readouterr()

    assert ses([*argv, "9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ses-ledger bundle export: no checkpoint was issued at tree size 9: ")
    assert "the nearest of the 9 checkpoints are at tree sizes 4, 6, 8, 10, 12, 14" in err
    assert ses([*argv, "50"]) == 2
    assert "tree sizes 14, 16, 18 (pin one of those" in capsys.readouterr().err
    assert ses([*argv, "1"]) == 2
    assert "tree sizes 2, 4, 6 (pin one of those" in capsys.readouterr().err


def test_replay_and_audit_refuse_an_id_no_executive_can_have(
    env: LedgerConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    for argv in (
        ["replay", "--executive", "bad id!", "--as-of-position", "10"],
        ["replay", "--executive", "", "--as-of-position", "10"],
        ["replay", "--executive", "E" * 129, "--as-of-position", "10"],
        ["audit", "--executive", "bad id!"],
        ["audit", "--actor=-dash-first"],
        ["audit", "--appraisal", "A/1"],
        ["bundle", "export", "--executive", "E 1", "--out", "b.json"],
    ):
        with pytest.raises(SystemExit) as exit_:
            ses(argv)
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert "must be an id: 1-128 characters" in err and "not registered" not in err
    small(env, executives=1)
    assert ses(["replay", "--executive", "E" * 128, "--as-of-position", "1"]) == 1
    assert ses(["audit", "--executive", "user@example.org:x+y_z-1.2"]) == 1


def test_replay_names_the_point_it_replays_at_in_words(
    env: LedgerConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    small(env, executives=1)
    assert ses(["replay", "--executive", "E1", "--known-at", "2999-01-01T00:00:00Z"]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert head.endswith("(the ledger as it stood at 2999-01-01T00:00:00Z)")
    assert ses(["replay", "--executive", "E1", "--as-of-position", "2"]) == 0
    assert (
        capsys.readouterr().out.splitlines()[0].endswith("(the ledger as it stood at position 2)")
    )
    assert ses(["replay", "--executive", "E1", "--known-at", "2000-01-01T00:00:00Z"]) == 1
    assert capsys.readouterr().err == (
        "executive E1 was not registered then (at 2000-01-01T00:00:00Z)\n"
    )


def test_audit_of_an_unknown_id_exits_1_like_replay(
    env: LedgerConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    small(env, executives=1)
    assert ses(["replay", "--executive", "E404", "--as-of-position", "2"]) == 1
    capsys.readouterr()
    assert ses(["audit", "--executive", "E404"]) == 1
    assert capsys.readouterr().err == "0 entries: no entry matches executive E404\n"
    assert ses(["audit", "--executive", "E1", "--as-of-position", "0"]) == 1
    assert "no entry matches executive E1 at position 0" in capsys.readouterr().err
    assert ses(["audit", "--appraisal", "A-2024-E1", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["events"]) == 1
    assert ses(["audit", "--actor", "nobody", "--json"]) == 1
    out = capsys.readouterr()
    assert json.loads(out.out) == {"events": []} and "no entry matches actor nobody" in out.err
    with pytest.raises(SystemExit):
        ses(["audit", "--help"])
    assert "does not verify, or when there is none" in " ".join(capsys.readouterr().out.split())


def test_bundle_verify_of_an_unreadable_trusted_checkpoint_is_not_checked(
    env: LedgerConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small(env, executives=1)
    out = tmp_path / "b.json"
    assert ses(["bundle", "export", "--executive", "E1", "--out", str(out)]) == 0
    bad = tmp_path / "bad.note"
    bad.write_text("garbage\n")
    state = tmp_path / "state.json"
    state.write_text(json.dumps({"checkpoint": "garbage\n"}))
    capsys.readouterr()
    for trusted in (bad, state):
        assert ses(["bundle", "verify", str(out), "--checkpoint", str(trusted)]) == 2
        printed = capsys.readouterr()
        assert "NOT VERIFIED" not in printed.out and "PROBLEM" not in printed.out
        assert printed.err.startswith("cannot read input, so the bundle was NOT checked: ")
        assert str(trusted) in printed.err


def test_a_trusted_checkpoint_newer_than_the_bundle_names_the_remedy(
    env: LedgerConfig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = small(env, executives=1)
    old = tmp_path / "old.json"
    assert ses(["bundle", "export", "--executive", "E1", "--out", str(old)]) == 0
    register(app, "E2")
    note = tmp_path / "now.note"
    assert ses(["checkpoint", "--out", str(note)]) == 0
    capsys.readouterr()
    # `--help`: 2 a check that could not be made; 1 is for evidence against the bundle,
    # and nothing here is: the genuine bundle just cannot be tied to the newer note.
    assert ses(["bundle", "verify", str(old), "--checkpoint", str(note)]) == 2
    out = capsys.readouterr().out
    assert "NOT CHECKED: consistency of tree sizes 2 and 3 could not be established" in out
    assert "PROBLEM" not in out and out.rstrip().endswith(
        "NOT VERIFIED: 1 check(s) could not be made (no problem found in the bundle): it is "
        "not tied to the trusted checkpoint"
    )
    assert "ses-ledger bundle export --consistency-from 3" in out and "--url" in out
    # A problem found as well is evidence against the bundle: 1.
    tampered = json.loads(old.read_text())
    _signature(tampered)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(tampered))
    assert ses(["bundle", "verify", str(bad), "--checkpoint", str(note)]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM: position 2: signature does not verify" in out and "NOT CHECKED" in out
    assert out.rstrip().endswith("NOT VERIFIED: 1 problem(s)")
    with pytest.raises(SystemExit):
        ses(["bundle", "verify", "--help"])
    assert "cannot be tied to the trusted --checkpoint" in " ".join(capsys.readouterr().out.split())
    # The remedy it names works.
    again = tmp_path / "again.json"
    argv = ["bundle", "export", "--executive", "E1", "--out", str(again)]
    assert ses([*argv, "--consistency-from", "3"]) == 0
    assert ses(["bundle", "verify", str(again), "--checkpoint", str(note)]) == 0


def test_replay_judges_removal_by_the_deployments_window_measure(
    env: LedgerConfig, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """REM-2 (rules.md: the window measure is a named setting the agency chooses): `replay`
    takes `SES_LEDGER_WINDOW_MEASURE` as the API server of the deployment does, and
    `--window-measure` overrides it. Two final Level 2 ratings exactly three years apart
    (Nov 25 2021 and 2024) need removal by rating date, not by appraisal cycle (FY2021 and
    FY2024); `replay` always judged by rating date, so on an appraisal-cycle deployment it
    said removal was required where the API said it was not."""
    app = LedgerApp(env, clock=Clock())
    story = Story(app)
    story.executive("E1")
    for final_on in (date(2021, 11, 25), date(2024, 11, 25)):
        story.appraisal("E1", final_on, 2)
    app.close()
    argv = ["replay", "--executive", "E1", "--as-of-position", "1000", "--json"]
    argv += ["--as-of", "2024-12-31"]

    def three_year(*extra: str) -> tuple[str, bool]:
        assert ses([*argv, *extra]) == 0
        history = json.loads(capsys.readouterr().out)["removal_history"]
        return history["window_measure"], history["three_year"]["removal_required"]

    assert three_year() == ("rating-date", True)
    monkeypatch.setenv("SES_LEDGER_WINDOW_MEASURE", "appraisal-cycle")
    assert three_year() == ("appraisal-cycle", False)
    assert three_year("--window-measure", "rating-date") == ("rating-date", True)

    monkeypatch.setenv("SES_LEDGER_WINDOW_MEASURE", "fiscal-quarters")
    assert ses(argv) == 2
    err = capsys.readouterr().err
    assert "SES_LEDGER_WINDOW_MEASURE must be one of" in err and "Traceback" not in err


# --- export refuses a ledger whose stored entries do not verify ---------------------------------


def _flip_level(state: bytes) -> bytes:
    """The stored final rating's level changed by one bit (an SQL UPDATE of the state)."""
    cut = state.index(b'"level":') + len(b'"level":')
    return state[:cut] + bytes([state[cut] ^ 0x01]) + state[cut + 1 :]


def _break_signature(state: bytes) -> bytes:
    mark = b'"signature":"'
    cut = state.index(mark) + len(mark) + 5
    return state[:cut] + (b"A" if state[cut : cut + 1] != b"A" else b"B") + state[cut + 1 :]


@pytest.mark.parametrize(
    ("tamper", "found"),
    [
        (_flip_level, "hash does not recompute from the entry"),
        (_break_signature, "signature does not verify"),
    ],
    ids=["payload-byte", "signature"],
)
def test_bundle_export_of_a_tampered_ledger_names_the_positions_and_writes_nothing(
    env: LedgerConfig,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    tamper: Callable[[bytes], bytes],
    found: str,
) -> None:
    """A stored entry's bytes changed by SQL (as tests/integration/test_tamper_suite.py does):
    `bundle export` exited 0 and wrote a bundle that `bundle verify` then failed. It checks
    what it exports as the verifier will (api-contract.md: hash, signature, prev_hash chain,
    inclusion proof against the checkpoint), names the positions, exits 1 (`--help`: a check
    failed) and writes nothing; an earlier bundle of that name is left as it was."""
    app = demo(env, years=3)
    executive = busiest(app)
    earlier = tmp_path / "earlier.json"
    assert ses(["bundle", "export", "--executive", executive, "--out", str(earlier)]) == 0
    kept = earlier.read_bytes()
    final = next(
        e for e in build_bundle(app, executive)["entries"] if e["type"] == "FinalRatingAssigned"
    )
    (state,) = raw(env, "SELECT state FROM stored_events WHERE rowid = ?", (final["position"],))[0]
    raw(
        env,
        "UPDATE stored_events SET state = ? WHERE rowid = ?",
        (tamper(bytes(state)), final["position"]),
    )
    capsys.readouterr()
    files = sorted(tmp_path.iterdir())

    fresh = tmp_path / "fresh.json"
    for out in (fresh, earlier):
        assert ses(["bundle", "export", "--executive", executive, "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"ses-ledger bundle export: nothing written to {out}: ")
        assert f"the stored entry at position {final['position']} does not verify" in err
        assert found in err and "ses-ledger verify" in err and "Traceback" not in err
    assert not fresh.exists() and earlier.read_bytes() == kept
    assert sorted(tmp_path.iterdir()) == files  # no partial file beside them either
    with pytest.raises(VerificationError, match=f"position {final['position']}"):
        build_bundle(app, executive)

    with pytest.raises(SystemExit):
        ses(["bundle", "export", "--help"])
    assert "1 the ledger's stored entries do not verify" in " ".join(
        capsys.readouterr().out.split()
    )


def test_an_archive_without_its_signing_key_exports_a_bundle_without_a_position_seal(
    sqlite_config: LedgerConfig,
) -> None:
    """The position seal is signed with the current key: a home copied without its private
    keys (a backup without --with-secrets) still exports, at an issued checkpoint, a bundle
    whose `position_seal` is null, and the verifier says its positions are unproven."""
    app = demo(sqlite_config, executives=2, years=2)
    executive = busiest(app)
    sealed = build_bundle(app, executive)
    assert sealed["position_seal"]["positions"] == [
        [e["position"], sealed["proofs"][str(e["position"])]["leaf_index"]]
        for e in sealed["entries"]
    ]
    app.close()
    for pem in (sqlite_config.home / "keys").glob("*.pem"):
        pem.unlink()
    bare = build_bundle(LedgerApp(sqlite_config), executive, tree_size=tree_size(sealed))
    assert bare["position_seal"] is None and bare["entries"] == sealed["entries"]
    report = verify_bundle(bare)
    assert report.ok, report.problems
    assert any("no position_seal" in w for w in report.warnings)


def test_audit_lists_an_actor_recorded_with_a_trailing_newline(
    env: LedgerConfig, capsys: pytest.CaptureFixture[str]
) -> None:
    """Servers before 2026-12-01 recorded a token subject `hr-1\\n` as the actor; `audit
    --actor` refused that id ("must be an id"), as `GET /v1/reports/audit-trail` did, so its
    entries could not be listed by actor. One trailing line feed is taken now, as that actor."""
    app = LedgerApp(env)
    for executive_id, actor in (("E1", "hr-1\n"), ("E2", "hr-1")):
        register(app, executive_id, actor=actor, submitted_by=actor)
    app.close()
    assert ses(["audit", "--actor", "hr-1\n", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["events"]
    assert [(e["stream_id"], e["actor"]) for e in listed] == [("E1", "hr-1\n")]
    assert ses(["audit", "--actor", "hr-1", "--json"]) == 0
    assert [e["stream_id"] for e in json.loads(capsys.readouterr().out)["events"]] == ["E2"]
    for bad in ("hr-1\n\n", "hr-1\r\n", "\nhr-1"):
        with pytest.raises(SystemExit) as exit_:
            ses(["audit", "--actor", bad])
        assert exit_.value.code == 2
        assert "must be an id" in capsys.readouterr().err
