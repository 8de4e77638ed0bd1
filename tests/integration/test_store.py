"""The signed store on SQLite and PostgreSQL: round trip, concurrency, atomicity, tampering."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from ledger.entry import HASHED_FIELDS, entry_from_state, entry_hash
from ledger.errors import AlreadyExists, ConcurrencyConflict, StaleVersion, UnknownReference
from ledger.keys import KeyRing
from ledger.log import MerkleLog
from ledger.merkle import leaf_hash, root_from_leaf_hashes
from ledger.verify import verify_ledger
from projections.queries import PROJECTION_NAMES, ReadModels
from tests.conftest import PG_URL, SCHEMA_PREFIX, require_postgres
from tests.ledger_helpers import events_table, plan, raw, register, review


def verify(app: LedgerApp):  # type: ignore[no-untyped-def]
    return verify_ledger(app.recorder, app.keyring.verifiers(), app.config.origin)


def all_entries(app: LedgerApp) -> list[dict]:  # type: ignore[type-arg]
    return [
        entry_from_state(n.state, n.id)
        for n in app.recorder.select_notifications(start=1, limit=10_000)
    ]


def test_round_trip_entries_follow_the_contract(ledger_config: LedgerConfig) -> None:
    app = LedgerApp(ledger_config)
    register(app)
    plan(app)
    result = review(app)
    assert result.version == 2
    entries = all_entries(app)
    assert [e["type"] for e in entries] == ["ExecutiveRegistered", "PlanSet", "ProgressReviewed"]
    for e in entries:
        assert e["hash"] == entry_hash(e), "hash recomputes from the contract's fields"
    plan_entry, review_entry = entries[1], entries[2]
    assert plan_entry["prev_hash"] is None and plan_entry["stream_version"] == 1
    assert review_entry["prev_hash"] == plan_entry["hash"]
    assert review_entry["policy"] == "ses-basic-2012" and entries[0]["policy"] is None
    assert review_entry["actor"] == "R1" and review_entry["submitted_by"] == "hr-app-1"
    assert review_entry["occurred_on"] == "2024-03-15"
    assert result.entries[-1] == review_entry
    assert list(result.entries[-1]) == ["position", *HASHED_FIELDS, "hash", "signature", "key_id"]
    again = LedgerApp(ledger_config).appraisal("A-2024-E1")
    assert again.version == 2 and again.head_hash == review_entry["hash"]
    assert verify(app).ok


def test_unknown_references_and_existing_ids_are_refused(ledger_config: LedgerConfig) -> None:
    app = LedgerApp(ledger_config)
    with pytest.raises(UnknownReference, match="executive_id"):
        plan(app)
    register(app)
    with pytest.raises(AlreadyExists):
        register(app)
    assert len(all_entries(app)) == 1


def test_two_writers_one_version_exactly_one_wins(ledger_config: LedgerConfig) -> None:
    app = LedgerApp(ledger_config)
    register(app)
    plan(app)
    writers = [LedgerApp(ledger_config), LedgerApp(ledger_config)]
    loaded = [w.appraisal("A-2024-E1") for w in writers]
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def write(i: int) -> None:
        agg = loaded[i]
        agg.review_progress(
            reviewed_on=date(2024, 3, 15 + i),
            reviewer_id="R1",
            notes=f"writer {i}",
            actor="R1",
            submission=writers[i].submission("hr-app-1"),
        )
        barrier.wait()
        try:
            writers[i].store(agg)
            outcomes.append("won")
        except ConcurrencyConflict:
            outcomes.append("lost")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["lost", "won"]
    assert [e["type"] for e in all_entries(app)].count("ProgressReviewed") == 1
    assert verify(app).ok


def test_stale_expected_version_is_refused(ledger_config: LedgerConfig) -> None:
    app = LedgerApp(ledger_config)
    register(app)
    plan(app)
    review(app, expected_version=1)
    with pytest.raises(StaleVersion):
        review(app, day=date(2024, 4, 1), expected_version=1)


def test_a_multi_event_command_is_stored_all_or_none(ledger_config: LedgerConfig) -> None:
    app = LedgerApp(ledger_config)
    register(app)
    plan(app)
    appraisal = app.appraisal("A-2024-E1")
    for day in (10, 11, 12):
        appraisal.review_progress(
            reviewed_on=date(2024, 3, day),
            reviewer_id="R1",
            notes="x",
            actor="R1",
            submission=app.submission("hr-app-1"),
        )
    # Someone else appends version 2 first: the three-event batch must vanish entirely.
    review(app, day=date(2024, 3, 1))
    before = len(all_entries(app))
    with pytest.raises(ConcurrencyConflict):
        app.store(appraisal)
    assert len(all_entries(app)) == before
    fresh = LedgerApp(ledger_config).appraisal("A-2024-E1")
    assert fresh.version == 2
    # ...and a batch that fits is stored whole, chained, in one go.
    fresh_app = LedgerApp(ledger_config)
    appraisal = fresh_app.appraisal("A-2024-E1")
    for day in (10, 11, 12):
        appraisal.review_progress(
            reviewed_on=date(2024, 4, day),
            reviewer_id="R1",
            notes="y",
            actor="R1",
            submission=fresh_app.submission("hr-app-1"),
        )
    stored = fresh_app.store(appraisal)
    assert [e["stream_version"] for e in stored] == [3, 4, 5]
    assert stored[1]["prev_hash"] == stored[0]["hash"]
    assert verify(app).ok


def _history(config: LedgerConfig) -> LedgerApp:
    app = LedgerApp(config)
    register(app)
    register(app, "E2")
    plan(app)
    plan(app, "A-2024-E2", "E2")
    review(app)
    review(app, "A-2024-E2")
    review(app, day=date(2024, 4, 1))
    app.merkle_log.issue_checkpoint(app.signer, app.config.origin)  # integrates the Merkle log
    return app


def _positions(app: LedgerApp) -> list[int]:
    return [e["position"] for e in all_entries(app)]


def test_verify_names_an_edited_payload_byte(ledger_config: LedgerConfig) -> None:
    app = _history(ledger_config)
    target = _positions(app)[3]
    table = events_table(ledger_config)
    key = "notification_id" if ledger_config.is_postgres else "rowid"
    (state,) = raw(ledger_config, f"SELECT state FROM {table} WHERE {key}=?", (target,))[0]
    tampered = bytes(state).replace(b"Mid-year", b"Mid-yeax").replace(b"2023-10-01", b"2023-10-02")
    assert tampered != bytes(state)
    raw(ledger_config, f"UPDATE {table} SET state=? WHERE {key}=?", (tampered, target))
    report = verify(app)
    assert not report.ok and report.first_bad_position == target
    assert "hash" in (report.problem or "")


def test_verify_names_a_deleted_event(ledger_config: LedgerConfig) -> None:
    app = _history(ledger_config)
    positions = _positions(app)
    table = events_table(ledger_config)
    key = "notification_id" if ledger_config.is_postgres else "rowid"
    # Delete E1's first progress review (position 5): its successor's chain breaks, and the
    # Merkle leaf for position 5 names an event that is gone.
    raw(ledger_config, f"DELETE FROM {table} WHERE {key}=?", (positions[4],))
    report = verify(app)
    assert not report.ok and report.first_bad_position == positions[4]


def test_verify_names_swapped_events(ledger_config: LedgerConfig) -> None:
    app = _history(ledger_config)
    positions = _positions(app)
    table = events_table(ledger_config)
    key = "notification_id" if ledger_config.is_postgres else "rowid"
    a, b = positions[2], positions[3]  # the two PlanSet events of E1 and E2
    raw(ledger_config, f"UPDATE {table} SET {key}=? WHERE {key}=?", (-1, a))
    raw(ledger_config, f"UPDATE {table} SET {key}=? WHERE {key}=?", (a, b))
    raw(ledger_config, f"UPDATE {table} SET {key}=? WHERE {key}=?", (b, -1))
    report = verify(app)
    assert not report.ok and report.first_bad_position == a


def test_a_checkpoint_is_signed_after_every_n_events(ledger_config: LedgerConfig) -> None:
    """SES_LEDGER_CHECKPOINT_EVERY: the writer itself signs one each time the log has grown
    by N since the last (README, Tamper evidence)."""
    from ledger.checkpoint import verify_note

    app = LedgerApp(replace(ledger_config, checkpoint_every=3))
    sizes = []
    for n in range(1, 8):
        register(app, f"E{n}")
        latest = app.merkle_log.latest_checkpoint()
        sizes.append(None if latest is None else latest.tree_size)
    assert sizes == [None, None, 3, 3, 3, 6, 6]
    latest = app.merkle_log.latest_checkpoint()
    assert latest is not None
    signed = verify_note(latest.note, ledger_config.origin, app.keyring.verifiers().values())
    assert (signed.size, signed.root_hash) == (6, app.merkle_log.root(6))
    unchecked = LedgerApp(replace(ledger_config, checkpoint_every=0))
    for n in range(8, 12):
        register(unchecked, f"E{n}")
    assert unchecked.merkle_log.latest_checkpoint() == latest  # 0: none of its own


def test_merkle_log_integrated_in_odd_batches_matches_the_reference_tree(
    ledger_config: LedgerConfig,
) -> None:
    """Every stored node equals RFC 9162's tree over the event hashes, whatever the batching."""
    app = LedgerApp(replace(ledger_config, checkpoint_every=0))
    register(app)
    plan(app)
    log = app.merkle_log
    for step, batch in enumerate((1, 3, 2, 5, 7, 4, 1000)):
        appraisal = app.appraisal("A-2024-E1")
        for k in range(step * 3 + 1):
            appraisal.review_progress(
                reviewed_on=date(2024, 3, 1 + k % 28),
                reviewer_id="R1",
                notes=f"review {step}.{k}",
                actor="R1",
                submission=app.submission("hr-app-1"),
            )
        app.store(appraisal)
        if step % 2:
            MerkleLog(app.recorder).integrate(batch)  # a fresh reader: frontier from the store
        else:
            log.integrate(batch)
    leaves = [leaf_hash(bytes.fromhex(e["hash"])) for e in all_entries(app)]
    assert log.size() == len(leaves) == 2 + sum(step * 3 + 1 for step in range(7))
    for size in range(1, len(leaves) + 1):
        assert log.root(size) == root_from_leaf_hashes(leaves[:size])
    for index in (0, 17, 71):
        proof = log.inclusion(all_entries(app)[index]["position"], len(leaves))
        assert proof["leaf_index"] == index


def test_a_long_chain_signed_on_two_threads_gives_the_serial_signatures(
    sqlite_config: LedgerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    from ledger import application

    monkeypatch.setattr(application, "_CPUS", 2)  # use the helper thread on any machine
    app = LedgerApp(sqlite_config)
    signer = app.signer
    digests = [hashlib.sha256(str(i).encode()).digest() for i in range(11)]
    serial = [signer.sign(d) for d in digests]  # Ed25519 signatures are deterministic
    assert app._sign_all(signer, digests) == serial
    assert app._sign_pool is not None  # the later half went to the helper thread
    assert app._sign_all(signer, digests[:3]) == serial[:3]  # short: this thread only
    app.close()
    assert app._sign_pool is None


def test_closing_never_waits_for_the_signing_thread(
    sqlite_config: LedgerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`close` runs from `__del__` too, when the collector frees an unclosed app in
    whatever thread it happens to run, such as one starting a thread while it holds the
    interpreter's thread-registry lock: joining the signing thread there (its exit needs
    that lock) hung a test run for 30 minutes. Every `_sign_all` has its signatures before
    it returns, so there is nothing to wait for: close must return while the thread is
    still busy."""
    import hashlib
    import threading

    from ledger import application

    monkeypatch.setattr(application, "_CPUS", 2)
    app = LedgerApp(sqlite_config)
    digests = [hashlib.sha256(str(i).encode()).digest() for i in range(11)]
    app._sign_all(app.signer, digests)
    pool = app._sign_pool
    assert pool is not None
    release = threading.Event()
    pool.submit(release.wait, 30)  # the thread busy, as one that cannot exit yet
    closer = threading.Thread(target=app.close)
    closer.start()
    closer.join(5)
    finished = not closer.is_alive()
    release.set()
    closer.join()
    assert finished, "close waited for the signing thread"
    assert app._sign_pool is None


def _hold_write_lock(db_path: str, seconds: float) -> subprocess.Popen[str]:
    """Another process holding SQLite's write lock (an uncommitted write) for `seconds`."""
    script = (
        "import sqlite3, sys, time\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE')\n"
        "c.execute('UPDATE proj_tracking SET position = position')\n"
        "print('held', flush=True)\n"
        "time.sleep(float(sys.argv[2]))\n"
        "c.execute('COMMIT')\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script, db_path, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    return holder


def test_an_existing_sqlite_store_opens_beside_another_processs_write(
    sqlite_config: LedgerConfig,
) -> None:
    """Opening the ledger and its read models only reads when the tables exist: it neither
    fails with "database is locked" nor waits while another process holds a long write (as
    a projection rebuild's final write does)."""
    ReadModels(LedgerApp(sqlite_config))  # create everything
    holder = _hold_write_lock(sqlite_config.db_url[len("sqlite:///") :], 3.0)
    try:
        started = time.monotonic()
        app = LedgerApp(sqlite_config)
        read_models = ReadModels(app)
        opened = time.monotonic() - started
        assert holder.poll() is None, "the writer ended before the store was opened"
        assert opened < 2.0
        assert {s.name for s in read_models.status()} == set(PROJECTION_NAMES)
    finally:
        holder.wait(timeout=30)


def test_a_new_projection_table_waits_for_another_processs_write(
    sqlite_config: LedgerConfig,
) -> None:
    """Set-up that must write (here: a projection table dropped) waits for the write lock
    instead of failing at once, and completes when the other process commits."""
    ReadModels(LedgerApp(sqlite_config))
    with sqlite3.connect(sqlite_config.db_url[len("sqlite:///") :]) as connection:
        connection.execute("DROP TABLE proj_audit_streams")
    holder = _hold_write_lock(sqlite_config.db_url[len("sqlite:///") :], 1.5)
    try:
        started = time.monotonic()
        read_models = ReadModels(LedgerApp(sqlite_config))
        waited = time.monotonic() - started
    finally:
        holder.wait(timeout=30)
    assert waited >= 1.0, "set-up should have waited for the other writer"
    assert read_models.audit(executive_id="nobody") == []


@pytest.mark.postgres
def test_a_postgres_schema_named_in_the_url_is_created_when_missing(tmp_path: Path) -> None:
    """`?schema=NAME` that does not exist yet: the ledger creates it (it used to fail with a
    traceback), and opens it again once it exists."""
    require_postgres()
    import psycopg

    schema = f"{SCHEMA_PREFIX}new_{uuid.uuid4().hex[:10]}"
    home = tmp_path / "home"
    KeyRing(home).init()
    config = LedgerConfig(home=home, db_url=f"{PG_URL}?schema={schema}")
    try:
        app = LedgerApp(config)
        register(app, "E1")
        again = LedgerApp(config)
        assert again.recorder.max_notification_id() == 1
        with psycopg.connect(PG_URL) as conn:
            found = conn.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            ).fetchone()
        assert found is not None and found[0] >= 6
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_postgres_processes_opening_one_store_at_once_all_open_it(tmp_path: Path) -> None:
    """Server workers start together and each opens the store, creating what is missing.
    PostgreSQL refuses concurrent `CREATE OR REPLACE` of one object ("tuple concurrently
    updated": a worker of `serve --workers 2` died of it at start); creating is serialised
    with an advisory lock, so every opener succeeds, on a fresh schema and an existing one."""
    require_postgres()
    import multiprocessing

    import psycopg

    schema = f"{SCHEMA_PREFIX}race_{uuid.uuid4().hex[:10]}"
    home = tmp_path / "home"
    KeyRing(home).init()
    config = LedgerConfig(home=home, db_url=f"{PG_URL}?schema={schema}")
    context = multiprocessing.get_context("spawn")
    try:
        for _ in range(2):  # a new schema, then the same one again
            start, outcomes = context.Event(), context.Queue()
            openers = [
                context.Process(target=_open_store, args=(config, start, outcomes))
                for _ in range(6)
            ]
            for opener in openers:
                opener.start()
            start.set()
            results = [outcomes.get(timeout=120) for _ in openers]
            for opener in openers:
                opener.join(30)
            assert results == ["ok"] * 6, results
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _open_store(config: LedgerConfig, start: Any, outcomes: Any) -> None:
    start.wait(30)
    try:
        app = LedgerApp(config)
        app.recorder.max_notification_id()
    except Exception as exc:  # noqa: BLE001 - the outcome under test
        outcomes.put(f"{type(exc).__name__}: {exc}")
        return
    outcomes.put("ok")


#: Rounds of `test_sqlite_processes_opening_a_new_ledger_at_once_all_open_it`.
NEW_LEDGER_ROUNDS = 40


def test_sqlite_processes_opening_a_new_ledger_at_once_all_open_it(tmp_path: Path) -> None:
    """Server workers (or compose's API and projector) open a new SQLite ledger together.
    eventsourcing switches a new file to WAL as it opens it, with no retry, and SQLite
    answers all but one switcher "database is locked" at once (a `serve --workers 2` worker
    failed so at start, and the server stopped with status 3). `LedgerConfig` switches it
    first, polling while locked (`ledger.config.use_wal`): every opener succeeds."""
    import multiprocessing

    home = tmp_path / "home"
    KeyRing(home).init()
    context = multiprocessing.get_context("spawn")
    openers, barrier, outcomes = 4, context.Barrier(4), context.Queue()
    processes = [
        context.Process(target=_open_new_ledgers, args=(home, tmp_path, barrier, outcomes))
        for _ in range(openers)
    ]
    for process in processes:
        process.start()
    results = [outcomes.get(timeout=120) for _ in range(openers * NEW_LEDGER_ROUNDS)]
    for process in processes:
        process.join(30)
    failed = [r for r in results if r != "ok"]
    assert not failed, f"{len(failed)} of {len(results)} openings failed: {failed[:3]}"


def _open_new_ledgers(home: Path, where: Path, barrier: Any, outcomes: Any) -> None:
    for n in range(NEW_LEDGER_ROUNDS):
        config = LedgerConfig(home=home, db_url=f"sqlite:///{where / f'new-{n}.db'}")
        barrier.wait(60)
        try:
            app = LedgerApp(config)
            app.recorder.max_notification_id()
            app.close()
        except Exception as exc:  # noqa: BLE001 - the outcome under test
            outcomes.put(f"{type(exc).__name__}: {exc}")
            continue
        outcomes.put("ok")
