"""`GET /v1/reports/audit-trail`: who did what, when, under which policy (read model 6 of
issue #4, the audit projection), for oversight staff."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from projections.queries import ReadModels
from tests.api.conftest import make_api
from tests.api.story import Api
from tests.ledger_helpers import register

TRAIL = "/v1/reports/audit-trail"


def _all_pages(
    api: Api, limit: int, headers: dict[str, str] | None = None, **query: Any
) -> list[Any]:
    seen: list[Any] = []
    after = 0
    while True:
        r = api.get(TRAIL, headers, limit=limit, after=after, **query)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page["events"]) <= limit
        seen += page["events"]
        if page["next_after"] is None:
            return seen
        assert page["next_after"] > after
        after = page["next_after"]


def test_an_actor_trail_is_in_order_verified_with_its_policy_and_pages_alike(
    any_api: Api,
) -> None:
    api = any_api
    first = api.appraisal("final", level=2)
    second = api.appraisal("final", level=4)
    whole = api.get(TRAIL, actor="AA1").json()
    assert whole["next_after"] is None
    events = whole["events"]
    assert [e["stream_id"] for e in events] == [first.appraisal_id, second.appraisal_id]
    assert {e["type"] for e in events} == {"FinalRatingAssigned"}
    assert [e["position"] for e in events] == sorted(e["position"] for e in events)
    for event in events:
        assert event["actor"] == "AA1" and event["submitted_by"] == "hr-app-1"
        assert event["policy"] == "ses-basic-2012"  # the rules it was recorded under
        assert event["verification"] == {
            "ok": True,
            "hash_ok": True,
            "signature_ok": True,
            "chain_ok": True,  # checked against the entry before it, outside this trail
            "key_window_ok": True,  # recorded inside its key's validity (keys list)
            "problems": [],
        }
    assert _all_pages(api, 1, actor="AA1") == events


def test_an_executive_trail_holds_their_record_and_appraisals(api: Api) -> None:
    a = api.appraisal("final", level=3)
    api.appraisal("final")  # someone else's
    trail = api.get(TRAIL, executive_id=a.executive_id).json()["events"]
    assert {e["stream_id"] for e in trail} == {a.executive_id, a.appraisal_id}
    assert trail[0]["type"] == "ExecutiveRegistered"
    assert all(e["verification"]["ok"] for e in trail)
    chained = [e for e in trail if e["stream_id"] == a.appraisal_id]
    assert [e["stream_version"] for e in chained] == list(range(1, len(chained) + 1))
    assert all(e["verification"]["chain_ok"] for e in chained)
    assert _all_pages(api, 2, executive_id=a.executive_id) == trail
    # Selectors together: the entries matching all of them.
    by_both = api.get(TRAIL, executive_id=a.executive_id, actor="R1").json()["events"]
    assert by_both and by_both == [e for e in trail if e["actor"] == "R1"]
    by_appraisal = api.get(TRAIL, appraisal_id=a.appraisal_id).json()["events"]
    assert by_appraisal == chained


def test_a_trail_replays_the_ledger_as_it_stood(api: Api) -> None:
    first = api.appraisal("final")
    then = api.get(TRAIL, actor="AA1").json()["events"][0]
    api.appraisal("final")
    assert len(api.get(TRAIL, actor="AA1").json()["events"]) == 2
    for point in ({"as_of_position": then["position"]}, {"known_at": then["recorded_at"]}):
        replayed = api.get(TRAIL, actor="AA1", **point).json()["events"]
        assert [e["stream_id"] for e in replayed] == [first.appraisal_id], point


def test_a_record_not_yet_made_at_a_replayed_point_is_404_as_in_every_other_read(
    api: Api,
) -> None:
    """docs/api.md: the trail takes as_of_position and known_at like the other reads, which
    answer 404 for a record made after that point; the trail answered 200 with no entries,
    as if the record had stood there with nothing done."""
    earlier = api.appraisal("final")
    later = api.appraisal("planned")
    trail = api.get(TRAIL, appraisal_id=later.appraisal_id).json()["events"]
    made = trail[0]
    assert made["type"] == "PlanSet"
    registered = api.get(TRAIL, executive_id=later.executive_id).json()["events"][0]
    for query, first in (
        ({"appraisal_id": later.appraisal_id}, made),
        ({"executive_id": later.executive_id}, registered),
    ):
        for before, at in (
            ({"as_of_position": first["position"] - 1}, {"as_of_position": first["position"]}),
            (
                {"known_at": _just_before(first["recorded_at"])},
                {"known_at": first["recorded_at"]},
            ),
        ):
            missing = api.get(TRAIL, **query, **before)
            assert missing.status_code == 404, (query, before, missing.text)
            assert missing.headers["content-type"] == "application/problem+json"
            shown = api.get(TRAIL, **query, **at)
            assert shown.status_code == 200, (query, at, shown.text)
            assert shown.json()["events"][0]["position"] == first["position"]
    # A record made before the point is there, and an actor trail has no record to miss.
    old = api.get(TRAIL, appraisal_id=earlier.appraisal_id, as_of_position=made["position"] - 1)
    assert old.status_code == 200 and old.json()["events"]
    assert api.get(TRAIL, actor="nobody-at-all", as_of_position=1).status_code == 200


def _just_before(recorded_at: str) -> str:
    """One microsecond before an RFC 3339 `...Z` timestamp with six fraction digits."""
    moment = datetime.fromisoformat(recorded_at.replace("Z", "+00:00")) - timedelta(microseconds=1)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def test_a_scoped_token_sees_its_agency_entries_only(api: Api) -> None:
    doe = api.appraisal("final")
    dot = Api(api.client, api.key, agency="DOT").appraisal("final")  # same authority, AA1
    everything = api.get(TRAIL, actor="AA1").json()["events"]
    assert {e["stream_id"] for e in everything} == {doe.appraisal_id, dot.appraisal_id}
    dot_auditor = api.as_("auditor", subject="aud-dot", agency="DOT")
    assert [e["stream_id"] for e in _all_pages(api, 1, dot_auditor, actor="AA1")] == [
        dot.appraisal_id
    ]
    refused = api.get(TRAIL, dot_auditor, executive_id=doe.executive_id)
    assert refused.status_code == 403


def test_a_trail_needs_a_selector_and_a_known_record(api: Api) -> None:
    r = api.get(TRAIL)
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["loc"] == ["query", "actor"]
    assert api.get(TRAIL, executive_id="E-nobody").status_code == 404
    assert api.get(TRAIL, appraisal_id="A-nothing").status_code == 404
    assert api.get(TRAIL, actor="nobody-at-all").json() == {"events": [], "next_after": None}
    hr = api.get(TRAIL, api.hr, actor="AA1")
    assert hr.status_code == 403  # oversight staff (auditor, admin) only


def test_a_scoped_token_pages_no_empty_pages_and_the_last_one_says_so(api: Api) -> None:
    """A token of one agency, reading an actor who acts for two: every page but the last
    holds entries, and `next_after` is null on the page that holds the agency's last
    entries, as `/v1/ledger/events` pages (docs/api.md, Reads). The trail used to be cut
    at `limit + 1` entries before the agency filter: the pages over the other agency's
    entries came back empty with a `next_after`, and one that ended on them promised more."""
    doe = Api(api.client, api.key, agency="DOE")
    dot = Api(api.client, api.key, agency="DOT")
    mine = [doe.appraisal("final").appraisal_id]
    dot.appraisal("final")
    mine.append(doe.appraisal("final").appraisal_id)
    for _ in range(3):  # the authority's last entries are the other agency's
        dot.appraisal("final")
    doe_auditor = api.as_("auditor", subject="aud-doe", agency="DOE")
    for limit in (1, 2, 3):
        after, pages = 0, []
        while True:
            r = api.get(TRAIL, doe_auditor, actor="AA1", limit=limit, after=after)
            assert r.status_code == 200, r.text
            page = r.json()
            pages.append([e["stream_id"] for e in page["events"]])
            if page["next_after"] is None:
                break
            after = page["next_after"]
        assert [s for p in pages for s in p] == mine, limit
        assert all(pages), (limit, pages)  # no empty page, the last one included


def test_an_actor_recorded_with_a_trailing_newline_can_be_asked_for(
    sqlite_config: LedgerConfig,
) -> None:
    """Servers before 2026-12-01 took a token subject `hr-1\\n` (`re`'s `$` matched before a
    final newline) and recorded it as the entry's actor. The audit trail refused
    `actor=hr-1%0A` (422: not an id), so that actor's entries could not be listed by actor
    at all; it is taken now, as exactly that actor, and `actor=hr-1` stays another one."""
    old = LedgerApp(sqlite_config)
    for executive_id, actor in (("E1", "hr-1\n"), ("E2", "hr-1")):
        register(old, executive_id, actor=actor, submitted_by=actor)
    # Projected before the server starts: it waits only for its own writes, and its
    # projector thread might not yet have reached another process's (the test then read an
    # empty trail, now and then).
    ReadModels(old).catch_up()
    old.close()
    for api in make_api(sqlite_config):
        r = api.client.get(f"{TRAIL}?actor=hr-1%0A", headers=api.auditor)
        assert r.status_code == 200, r.text
        events = r.json()["events"]
        assert [(e["stream_id"], e["actor"]) for e in events] == [("E1", "hr-1\n")]
        assert events[0]["verification"]["ok"] is True
        plain = api.get(TRAIL, actor="hr-1").json()["events"]
        assert [e["stream_id"] for e in plain] == ["E2"]
        # one line break only, as the old servers took it; anything else is still not an id
        for bad in ("hr-1%0A%0A", "hr-1%0D%0A", "%0Ahr-1", "hr-1%20"):
            r = api.client.get(f"{TRAIL}?actor={bad}", headers=api.auditor)
            assert r.status_code == 422, (bad, r.text)
