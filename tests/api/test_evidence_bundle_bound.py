"""Evidence bundles (`GET /v1/executives/{id}/evidence-bundle`) are rationed and keep the
write gate short (docs/api.md, `SES_LEDGER_RECORD_REPLAY_BUILDS`).

A bundle holds an executive's whole record with a proof per entry, and the record has no
limit (APP-1): at 20,000 complaints 3.5-4.5 s and about 200 MB at its peak each, built as
many at once as the server had request threads, and the whole build held the write gate
(about 1 s at 20,000 complaints, and every write waited for it). Now a bundle is built in
one of the slots of historical reads of a record (503 `unavailable` with Retry-After when
they stay taken), and the gate is held only while what was appended since the record was
read is added and the checkpoint chosen; the bundle still verifies offline.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import ledger.bundle as bundle_module
from ses_ledger import cli
from tests.api.story import Api, complaint, record_slots_taken


def _bundle_path(executive_id: str) -> str:
    return f"/v1/executives/{executive_id}/evidence-bundle"


def _record(api: Api, complaints: int = 6) -> str:
    a = api.appraisal("final", fy=2024, level=2)
    for _ in range(complaints):
        api.ok(f"/v1/executives/{a.executive_id}/complaints", complaint())
    return a.executive_id


def _verifies_offline(bundle: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "bundle.json"
    out.write_text(json.dumps(bundle))
    assert cli.main(["bundle", "verify", str(out)]) == 0


def test_bundles_beyond_the_limit_are_503_with_retry_after(any_api: Api, tmp_path: Path) -> None:
    api = any_api
    executive_id = _record(api)
    assert api.get(_bundle_path(executive_id)).status_code == 200
    with record_slots_taken(api):  # bundles being built elsewhere
        busy = api.get(_bundle_path(executive_id))
        assert busy.status_code == 503, busy.text[:300]
        assert busy.headers["Retry-After"] == "1"
        assert busy.headers["content-type"].startswith("application/problem+json")
        assert busy.json()["type"] == "urn:ses-ledger:problem:unavailable"
        assert "evidence bundles" in busy.json()["detail"]
        # other reads of the record are still served
        assert api.get(f"/v1/executives/{executive_id}").status_code == 200
    served = api.get(_bundle_path(executive_id))
    assert served.status_code == 200
    _verifies_offline(served.json(), tmp_path)


def test_no_more_bundles_are_built_at_once_than_the_setting(
    any_api: Api, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """8 requests at once (the server's 8 request threads): at most 2 bundles between the
    start of their build and the end of their check, and every request served (each takes
    about 100 ms, well within the 1 s wait)."""
    api = any_api
    executive_id = _record(api)
    lock = threading.Lock()
    running = [0]
    most = [0]
    build, check = bundle_module.build_bundle, bundle_module.check_bundle

    def counted_build(*args: Any, **kwargs: Any) -> Any:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        return build(*args, **kwargs)

    def counted_check(*args: Any, **kwargs: Any) -> Any:
        try:
            time.sleep(0.1)
            return check(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(bundle_module, "build_bundle", counted_build)
    monkeypatch.setattr(bundle_module, "check_bundle", counted_check)
    answers: list[Any] = []

    def get() -> None:
        answers.append(api.get(_bundle_path(executive_id)))

    threads = [threading.Thread(target=get) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200] * 8
    assert most[0] == 2
    _verifies_offline(answers[0].json(), tmp_path)


class _Owned:
    """A gate that knows which thread holds it."""

    def __init__(self, gate: Any) -> None:
        self.gate = gate
        self.owner: int | None = None

    def __enter__(self) -> Any:
        self.gate.__enter__()
        self.owner = threading.get_ident()
        return self

    def __exit__(self, *exc: object) -> None:
        self.owner = None
        self.gate.__exit__(*exc)

    def held_here(self) -> bool:
        return self.owner == threading.get_ident()


def test_the_record_is_read_outside_the_write_gate(
    api: Api, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """SQLite (PostgreSQL has no gate): of the record's entries, only those appended after
    it was read are read under the gate, and none of the proofs. Entries appended while
    the record was read (a complaint, a new appraisal) are in the bundle all the same, and
    it verifies offline."""
    executive_id = _record(api, complaints=30)
    services = api.client.app.state.services  # type: ignore[attr-defined]
    gate = _Owned(services.write_gate)  # the projector's thread takes the gate too
    monkeypatch.setattr(services, "write_gate", gate)
    under_gate: list[int] = []
    outside: list[int] = []
    decode = bundle_module.entry_from_state
    proofs = bundle_module.inclusion_proofs
    appended: list[str] = []

    def counted_decode(*args: Any, **kwargs: Any) -> Any:
        (under_gate if gate.held_here() else outside).append(1)
        if not appended and not gate.held_here():
            # Writes land while the record is read: they must be in the bundle.
            api.ok(f"/v1/executives/{executive_id}/complaints", complaint())
            later = api.appraisal("planned", executive_id=executive_id, fy=2025)
            appended.append(later.appraisal_id)
        return decode(*args, **kwargs)

    def checked_proofs(*args: Any, **kwargs: Any) -> Any:
        assert not gate.held_here(), "proofs computed under the write gate"
        return proofs(*args, **kwargs)

    monkeypatch.setattr(bundle_module, "entry_from_state", counted_decode)
    monkeypatch.setattr(bundle_module, "inclusion_proofs", checked_proofs)
    answer = api.get(_bundle_path(executive_id))
    assert answer.status_code == 200, answer.text
    bundle = answer.json()
    entries = bundle["entries"]
    assert sum(outside) >= 30
    assert sum(under_gate) <= 3  # the complaint and the new appraisal's plan
    assert appended and appended[0] in {e["stream_id"] for e in entries}
    assert sum(e["type"] == "ComplaintRecorded" for e in entries) == 31
    # every entry of the record that the checkpoint covers is in the bundle
    monkeypatch.setattr(bundle_module, "entry_from_state", decode)
    tree_size = int(bundle["checkpoint"].split("\n")[1])
    whole = bundle_module.executive_entries(services.ledger, executive_id)
    covered = [
        e
        for e in whole
        if bundle_module.merkle_log(services.ledger).leaf_index(e["position"]) < tree_size
    ]
    assert [e["position"] for e in covered] == [e["position"] for e in entries]
    _verifies_offline(bundle, tmp_path)


def test_a_bundle_read_in_two_parts_is_the_bundle_read_at_once(any_api: Api) -> None:
    """On a ledger that does not move, the bundle built around the gate is the one built in
    one go (the command line's), live and as of a point, boards included."""
    api = any_api
    executive_id = _record(api, complaints=12)
    services = api.client.app.state.services  # type: ignore[attr-defined]
    ledger = services.ledger
    head = api.ledger_size()
    entries = bundle_module.build_bundle(ledger, executive_id)["entries"]
    assert any(e["type"] == "ReviewBoardRegistered" for e in entries)
    middle = entries[len(entries) // 2]
    for point in (
        {},
        {"as_of_position": head - 3},
        {"as_of_position": middle["position"]},
        {"known_at": middle["recorded_at"]},
    ):
        at_once = bundle_module.build_bundle(ledger, executive_id, **point)
        in_parts = bundle_module.build_bundle(
            ledger, executive_id, gate=services.write_gate, **point
        )
        assert in_parts == at_once, point
