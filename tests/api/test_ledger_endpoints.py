"""The tamper-evidence surface: paged events, verify, keys, checkpoints, proofs, receipts,
each checked with the ledger's own verification code as an outside client would."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.concurrency import run_in_threadpool

from api.main import create_app
from api.settings import ApiSettings
from ledger.application import LedgerApp
from ledger.checkpoint import verify_note
from ledger.config import LedgerConfig
from ledger.merkle import leaf_hash, verify_consistency, verify_inclusion
from tests.api import story as s
from tests.api.story import Api
from tests.ledger_helpers import events_table, raw


def _keys(api: Api) -> list[Any]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    keys = api.get("/v1/ledger/keys", {}).json()["keys"]
    assert keys and all(k["algorithm"] == "Ed25519" for k in keys)
    return [Ed25519PublicKey.from_public_bytes(base64.b64decode(k["public_key"])) for k in keys]


def _all_events(api: Api, limit: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    after: int | None = 0
    while after is not None:
        page = api.get("/v1/ledger/events", after=after, limit=limit).json()
        assert len(page["events"]) <= limit
        events += page["events"]
        after = page["next_after"]
    return events


def test_events_page_through_the_whole_ledger(any_api: Api) -> None:
    any_api.appraisal("final")
    total = any_api.ledger_size()
    for limit in (1, 3, total, 1000):
        events = _all_events(any_api, limit)
        assert [e["stream_version"] >= 1 for e in events] and len(events) == total
        positions = [e["position"] for e in events]
        assert positions == sorted(positions)
    last = any_api.get("/v1/ledger/events", after=positions[-1]).json()
    assert last == {"events": [], "next_after": None}
    exact = any_api.get("/v1/ledger/events", after=0, limit=total).json()
    assert exact["next_after"] is None


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_an_agencys_pages_end_on_its_last_entries_not_on_an_empty_page(
    api: Api, limit: int
) -> None:
    """api-contract.md, Reads: `next_after` is null on the last page. For a token of one
    agency, a full page followed only by other agencies' entries promised more (a
    `next_after`) and the next page was empty; now no page of a scoped token is empty
    unless the agency has no entries after `after` at all, and a non-null `next_after`
    means entries follow."""
    for _ in range(2):
        api.new_executive(agency="DOE")
    for _ in range(3):
        api.new_executive(agency="DOJ")  # the log ends with another agency's entries
    doe = api.as_("auditor", subject="auditor-doe", agency="DOE")
    pages, after = [], 0
    while after is not None:
        page = api.get("/v1/ledger/events", doe, after=after, limit=limit).json()
        pages.append(page)
        after = page["next_after"]
    assert all(page["events"] for page in pages), pages
    assert sum(len(page["events"]) for page in pages) == 2
    assert all(e["data"]["agency"] == "DOE" for page in pages for e in page["events"])


ORIGIN = "ses-ledger.local/ledger"


def _services(api: Api) -> Any:
    return api.client.app.state.services  # type: ignore[attr-defined]


def test_the_checkpoint_is_a_signed_note_over_the_events(any_api: Api) -> None:
    _services(any_api).checkpointer.max_age = 0  # a new one whenever the tree grew
    any_api.appraisal("initially_rated")
    r = any_api.client.get("/v1/ledger/checkpoint")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    checkpoint = verify_note(r.text, "ses-ledger.local/ledger", _keys(any_api))
    events = _all_events(any_api, 100)
    assert checkpoint.size == len(events)
    leaves = [leaf_hash(bytes.fromhex(e["hash"])) for e in events]
    for index, event in enumerate(events):
        proof = any_api.get(
            "/v1/ledger/proofs/inclusion", {}, position=event["position"], tree_size=checkpoint.size
        ).json()
        assert proof["leaf_index"] == index and proof["tree_size"] == checkpoint.size
        hashes = [base64.b64decode(h) for h in proof["hashes"]]
        verify_inclusion(index, checkpoint.size, leaves[index], hashes, checkpoint.root_hash)
    any_api.ok(f"/v1/executives/{events[0]['stream_id']}/complaints", s.complaint())
    grown = verify_note(
        any_api.client.get("/v1/ledger/checkpoint").text, "ses-ledger.local/ledger", _keys(any_api)
    )
    assert grown.size == checkpoint.size + 1  # issued on demand: the tree grew
    proof = any_api.get(
        "/v1/ledger/proofs/consistency", {}, first=checkpoint.size, second=grown.size
    ).json()
    hashes = [base64.b64decode(h) for h in proof["hashes"]]
    verify_consistency(checkpoint.size, grown.size, hashes, checkpoint.root_hash, grown.root_hash)
    latest = any_api.get("/v1/ledger/proofs/consistency", {}, first=1).json()
    assert latest["second"] == grown.size


def test_an_empty_origin_variable_means_the_default_origin(
    sqlite_config: LedgerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`SES_LEDGER_ORIGIN=` (set, empty) is the contract's default origin for the server as
    for the CLI (`LedgerConfig.from_env`). The server took it as the origin "": it started
    and took writes, and then every checkpoint and receipt was a 500."""
    monkeypatch.setenv("SES_LEDGER_HOME", str(sqlite_config.home))
    monkeypatch.setenv("SES_LEDGER_DB", sqlite_config.db_url)
    monkeypatch.setenv("SES_LEDGER_ORIGIN", "")
    assert ApiSettings().origin == LedgerConfig.from_env().origin == ORIGIN
    app = create_app()  # as a worker builds it (`api.main.app_factory`): from the environment
    try:
        with TestClient(app) as client:
            api = Api(client, app.state.services.token_key)
            written = api.ok("/v1/executives", s.executive("E1"))
            r = client.get(f"/v1/ledger/receipts/{written['event']['position']}", headers=api.hr)
            assert r.status_code == 200, r.text
            assert verify_note(r.json()["checkpoint"], ORIGIN, _keys(api)).size == 1
            assert client.get("/v1/ledger/checkpoint").text.startswith(f"{ORIGIN}\n1\n")
    finally:
        app.state.services.ledger.close()


def test_an_empty_ledger_has_a_checkpoint_of_size_zero(api: Api) -> None:
    note = api.client.get("/v1/ledger/checkpoint").text
    assert verify_note(note, "ses-ledger.local/ledger", _keys(api)).size == 0
    assert api.get("/v1/ledger/events").json() == {"events": [], "next_after": None}


@pytest.mark.parametrize(
    "query",
    [
        {"position": 999, "tree_size": 1},
        {"position": 1, "tree_size": 999},
        {"position": 2, "tree_size": 1},
    ],
)
def test_impossible_inclusion_proofs_are_404(api: Api, query: dict[str, int]) -> None:
    api.new_executive()
    api.new_executive()
    r = api.get("/v1/ledger/proofs/inclusion", {}, **query)
    assert r.status_code == 404 and r.json()["type"] == "urn:ses-ledger:problem:not-found"


def test_impossible_consistency_proofs_are_404(api: Api) -> None:
    api.new_executive()
    assert api.get("/v1/ledger/proofs/consistency", {}, first=2, second=1).status_code == 404
    assert api.get("/v1/ledger/proofs/consistency", {}, first=1, second=5).status_code == 404


@pytest.mark.parametrize(
    ("path", "query"),
    [
        ("/v1/ledger/proofs/inclusion", {"position": 1, "tree_size": 0}),
        ("/v1/ledger/proofs/consistency", {"first": 0}),
        ("/v1/ledger/proofs/consistency", {"first": 0, "second": 1}),
        ("/v1/ledger/proofs/consistency", {"first": 1, "second": 0}),
    ],
    ids=repr,
)
def test_proofs_in_the_empty_tree_are_404_not_an_invalid_query(
    api: Api, path: str, query: dict[str, int]
) -> None:
    """Size 0 is a tree size the log has had (the empty ledger's checkpoint); RFC 9162
    defines no inclusion proof in it and no consistency proof from it (2.1.3, 2.1.4).
    A proof that does not exist is 404 (docs/api.md, Errors: "an unknown route or proof"),
    as for a size the tree has not reached; it was a 422 "Input should be greater than or
    equal to 1", as if the query were malformed."""
    api.new_executive()
    r = api.get(path, {}, **query)
    assert r.status_code == 404, r.text
    assert r.json()["type"] == "urn:ses-ledger:problem:not-found"


def test_a_consistency_proof_from_the_empty_ledgers_checkpoint_is_404(api: Api) -> None:
    note = api.client.get("/v1/ledger/checkpoint").text
    assert verify_note(note, "ses-ledger.local/ledger", _keys(api)).size == 0
    r = api.get("/v1/ledger/proofs/consistency", {}, first=0)
    assert r.status_code == 404 and r.json()["type"] == "urn:ses-ledger:problem:not-found"


def test_a_consistency_proof_from_a_size_no_checkpoint_covers_yet(any_api: Api) -> None:
    """`proofs/consistency?first=` defaults `second` to the newest checkpoint, issued to
    cover `first` if need be, as `proofs/inclusion` does for a fresh event. A size the tree
    has (`/v1/ledger/verify` says so) but no checkpoint reached yet was 404 "no
    consistency proof from size 3 to size 1", as if the tree were smaller."""
    api = any_api
    api.new_executive()
    old = verify_note(api.client.get("/v1/ledger/checkpoint").text, ORIGIN, _keys(api))
    api.new_executive()
    api.new_executive()
    size = api.get("/v1/ledger/verify").json()["tree_size"]
    assert (old.size, size) == (1, 3)
    r = api.get("/v1/ledger/proofs/consistency", {}, first=size)
    assert r.status_code == 200, r.text
    assert r.json() == {"first": 3, "second": 3, "hashes": []}
    new = verify_note(api.client.get("/v1/ledger/checkpoint").text, ORIGIN, _keys(api))
    assert new.size == 3  # the checkpoint the default named is there to be fetched
    proof = api.get("/v1/ledger/proofs/consistency", {}, first=old.size).json()
    hashes = [base64.b64decode(h) for h in proof["hashes"]]
    verify_consistency(old.size, proof["second"], hashes, old.root_hash, new.root_hash)
    beyond = api.get("/v1/ledger/proofs/consistency", {}, first=size + 1)
    assert beyond.status_code == 404  # still: a size beyond the tree


def test_a_receipt_proves_a_fresh_write(any_api: Api) -> None:
    written = any_api.ok("/v1/executives", s.executive("E1"))
    receipt = written["receipt"]
    assert receipt == {k: written["event"][k] for k in ("position", "hash", "signature", "key_id")}
    full = any_api.get(f"/v1/ledger/receipts/{receipt['position']}").json()
    assert full["entry"] == written["event"]
    checkpoint = verify_note(full["checkpoint"], "ses-ledger.local/ledger", _keys(any_api))
    proof = full["inclusion_proof"]
    hashes = [base64.b64decode(h) for h in proof["hashes"]]
    leaf = leaf_hash(bytes.fromhex(receipt["hash"]))
    verify_inclusion(proof["leaf_index"], checkpoint.size, leaf, hashes, checkpoint.root_hash)


def test_verify_reports_the_first_bad_position(any_api: Api) -> None:
    any_api.appraisal("initially_rated")
    assert any_api.get("/v1/ledger/verify").json()["ok"] is True
    config: LedgerConfig = any_api.client.app.state.services.ledger.config  # type: ignore[attr-defined]
    table, column = events_table(config), "state"
    rows = raw(config, f"SELECT originator_version, {column} FROM {table}")
    target = [r for r in rows if r[0] == 2][0]
    forged = bytes(target[1]).replace(b"Mid-year review.", b"Mid-year praise!")
    raw(config, f"UPDATE {table} SET {column} = ? WHERE originator_version = 2", (forged,))
    report = any_api.get("/v1/ledger/verify").json()
    assert report["ok"] is False and report["first_bad_position"] is not None
    assert report["checked"] >= 1 and report["problem"]


def test_verify_names_no_other_agencys_record_to_a_token_of_one_agency(any_api: Api) -> None:
    """docs/api.md: `/v1/ledger/verify` reports on the whole ledger to `auditor` and `admin`
    of any agency, as it "reveals integrity, not content". Its `problem` named the damaged
    entry's stream ("stream A-3 jumps from version 1 to 3") to a DOE auditor when the
    entry was DOT's: another agency's appraisal id, which `/v1/ledger/events` and every
    read hide from that token. A token of one agency now hears that an entry not of its
    agency does not verify, at which position; its own agency's problems, and every problem
    for a `*` token, are told as before."""
    api = any_api
    ours = api.appraisal("initially_rated")  # before theirs: its damage is found first
    theirs = Api(api.client, api.key, agency="DOT").appraisal("initially_rated")
    config: LedgerConfig = api.client.app.state.services.ledger.config  # type: ignore[attr-defined]
    table = events_table(config)
    delete = f"DELETE FROM {table} WHERE originator_id = ? AND originator_version = 2"
    raw(config, delete, (theirs.appraisal_id,))
    doe = {role: api.as_(role, subject=f"{role}-doe") for role in ("auditor", "admin")}
    everyone = api.get("/v1/ledger/verify", api.auditor).json()
    assert everyone["ok"] is False and theirs.appraisal_id in everyone["problem"]
    for headers in doe.values():
        report = api.get("/v1/ledger/verify", headers).json()
        assert report["ok"] is False
        assert report["first_bad_position"] == everyone["first_bad_position"]
        assert report["checked"] == everyone["checked"]
        assert theirs.appraisal_id not in report["problem"], report["problem"]
        assert "not of agency 'DOE'" in report["problem"], report["problem"]
    # DOT's own auditor, and DOE's once its own entry is the first bad one, hear the detail
    dot = api.get("/v1/ledger/verify", api.as_("auditor", subject="aud-dot", agency="DOT"))
    assert dot.json() == everyone
    raw(config, delete, (ours.appraisal_id,))
    first = api.get("/v1/ledger/verify", api.auditor).json()
    assert ours.appraisal_id in first["problem"], first
    assert api.get("/v1/ledger/verify", doe["auditor"]).json() == first


def test_timed_checkpoints_cover_new_events(sqlite_config: LedgerConfig) -> None:
    ledger = LedgerApp(sqlite_config)
    settings = ApiSettings(home=sqlite_config.home, checkpoint_interval_seconds=0.05)
    app = create_app(ledger, settings=settings)
    with TestClient(app) as client:
        api = Api(client, app.state.services.token_key)
        api.new_executive()
        deadline = time.monotonic() + 5
        while ledger.merkle_log.latest_checkpoint() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        latest = ledger.merkle_log.latest_checkpoint()
        assert latest is not None and latest.tree_size == 1
    ledger.close()


def test_health_and_documentation(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    schema = api.client.get("/openapi.json").json()
    assert "/v1/appraisals/{appraisal_id}/prb-recommendation" in schema["paths"]
    assert "bearer" in str(schema["components"]["securitySchemes"]).lower()
    assert api.client.get("/docs").status_code == 200
    # a page of events is documented as its JSON model, not as a string beside it
    page = schema["paths"]["/v1/ledger/events"]["get"]["responses"]["200"]
    assert page["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/EventsPage"
    }


def test_ledger_reads_run_on_the_event_loop_unless_they_must_write_first(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On SQLite (`api.deps.run_read`): a receipt of a fresh event must integrate it and
    issue a checkpoint under the write gate, so it moves to a worker thread and still
    answers; once covered, receipts, proofs and pages are served on the event loop."""
    import api.deps as deps

    handed_over: list[str] = []

    async def counted(func: Any, *args: Any) -> Any:
        handed_over.append(getattr(func, "__name__", "?"))
        return await run_in_threadpool(func, *args)

    monkeypatch.setattr(deps, "run_in_threadpool", counted)
    position = api.ok("/v1/executives", s.executive("E1"))["event"]["position"]
    handed_over.clear()
    fresh = api.get(f"/v1/ledger/receipts/{position}")
    assert fresh.status_code == 200 and fresh.json()["entry"]["position"] == position
    assert len(handed_over) == 1  # it needed the gate: integrated and issued on a thread
    handed_over.clear()
    for path, query in (
        (f"/v1/ledger/receipts/{position}", {}),
        ("/v1/ledger/proofs/inclusion", {"position": position}),
        ("/v1/ledger/events", {}),
        ("/v1/ledger/checkpoint", {}),
    ):
        assert api.get(path, **query).status_code == 200, path
    assert handed_over == []  # nothing to write: all on the event loop


def test_the_checkpoint_is_reissued_at_most_once_per_max_age(api: Api) -> None:
    """`SES_LEDGER_CHECKPOINT_MAX_AGE_SECONDS`: a grown tree gets a new checkpoint on request
    only once the newest is that old; a receipt of a fresh event still gets one covering
    it, which is then the newest."""
    keys = _keys(api)
    api.ok("/v1/executives", s.executive("E1"))
    first = verify_note(api.client.get("/v1/ledger/checkpoint").text, ORIGIN, keys)
    assert first.size == api.ledger_size()
    checkpointer = _services(api).checkpointer
    checkpointer.max_age = 3600.0
    position = api.ok("/v1/executives", s.executive("E2"))["event"]["position"]
    same = verify_note(api.client.get("/v1/ledger/checkpoint").text, ORIGIN, keys)
    assert same.size == first.size < api.ledger_size()  # young enough: served as it is
    receipt = api.get(f"/v1/ledger/receipts/{position}").json()
    covering = verify_note(receipt["checkpoint"], ORIGIN, keys)
    assert covering.size == api.ledger_size() == receipt["inclusion_proof"]["tree_size"]
    newest = verify_note(api.client.get("/v1/ledger/checkpoint").text, ORIGIN, keys)
    assert newest.size == covering.size
    checkpointer.max_age = 0
    api.ok("/v1/executives", s.executive("E3"))
    grown = verify_note(api.client.get("/v1/ledger/checkpoint").text, ORIGIN, keys)
    assert grown.size == api.ledger_size() > covering.size
