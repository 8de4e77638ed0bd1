"""`projections.events.Event` decodes only the fields asked for (msgspec: the entry's scalar
fields, its `data`), and `ledger.entry.entry_json` splices the API's entry from the stored
bytes; each must equal the fully parsed entry, whatever the strings hold (quotes,
backslashes, the markers the splicing looks for) and however `data` nests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.entry import (
    entry_from_state,
    entry_json,
    event_hash_bytes,
    format_timestamp,
    hashed_body,
    parse_timestamp,
    seal,
    sealed_state,
)
from projections.events import Event
from projections.store import loads

MARKERS = ['","data":', ',"occurred_on":', ',"policy":', '"', "\\", '},"occurred_on":"x"']
text = st.one_of(st.text(max_size=12), st.sampled_from(MARKERS), st.just(""))
keys = st.one_of(st.sampled_from(["occurred_on", "policy", "data", "actor", "a"]), text)
values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), text),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)),
    max_leaves=8,
)


def stored(actor: str, policy: str | None, data: Any) -> bytes:
    hashed = {
        "stream_id": "A-1",
        "stream_version": 2,
        "type": "PlanSet",
        "occurred_on": "2025-10-01",
        "recorded_at": "2025-10-02T17:00:00.000001Z",
        "actor": actor,
        "submitted_by": "hr",
        "policy": policy,
        "data": data,
        "prev_hash": None,
    }
    return seal(hashed, "k1", lambda digest: b"signature").state


@settings(max_examples=300, deadline=None)
@given(
    actor=text,
    policy=st.one_of(st.none(), text),
    data=st.one_of(st.dictionaries(keys, values, max_size=4), values),
)
def test_sliced_fields_equal_the_parsed_entry(actor: str, policy: str | None, data: Any) -> None:
    state = stored(actor, policy, data)
    entry = loads(state)["entry"]
    fast = Event(1, "A-1", 2, "PlanSet", state)
    assert fast.data == entry["data"]
    assert fast.policy == entry["policy"]
    assert fast.actor == entry["actor"]
    assert fast.occurred_on == entry["occurred_on"]


def test_a_stored_state_without_the_entry_fields_is_refused_with_its_position() -> None:
    for state in (b'{"entry":[1],"hash":"h"}', b'{"entry":{"actor":"a"},"hash":"h"}', b"{"):
        event = Event(7, "A-1", 2, "PlanSet", state)
        with pytest.raises(ValueError, match="position 7"):
            event.occurred_on  # noqa: B018 - the property decodes


@settings(max_examples=300, deadline=None)
@given(
    actor=text,
    policy=st.one_of(st.none(), text),
    data=st.one_of(st.dictionaries(keys, values, max_size=4), values),
    position=st.integers(1, 2**53 - 1),
)
def test_the_spliced_entry_is_the_parsed_entry(
    actor: str, policy: str | None, data: Any, position: int
) -> None:
    state = stored(actor, policy, data)
    assert json.loads(entry_json(state, position)) == entry_from_state(state, position)


@pytest.mark.parametrize(
    "state",
    [b'{"entry":{"a":1},"hash":"h"', b'{"other":{"a":1},"hash":"h"}', b'{"entry":[1],"hash":"h"}'],
)
def test_a_state_in_another_layout_is_refused(state: bytes) -> None:
    with pytest.raises(ValueError):
        entry_json(state, 1)


def test_events_compare_by_identity_and_keep_what_they_decoded() -> None:
    """Two reads of one stored event are two events (an event is a msgspec Struct, which
    would otherwise compare fields), and a decoded part is decoded once per event."""
    state = stored("RO-1", None, {"x": 1})
    first, second = Event(3, "A-1", 2, "PlanSet", state), Event(3, "A-1", 2, "PlanSet", state)
    assert first != second and first == first
    assert len({first, second}) == 2
    assert first.fields is first.fields
    assert first.data is first.data
    assert repr(first) == "Event(3, 'A-1' v2, PlanSet)"


def test_recorded_at_is_written_in_utc_with_microseconds_and_z() -> None:
    """The contract's `recorded_at`: RFC 3339 in UTC with a `Z`. A naive moment is taken as
    UTC; a moment in another zone is refused, not written with its clock time and a `Z`."""
    moment = datetime(2025, 1, 2, 3, 4, 5)
    assert format_timestamp(moment) == "2025-01-02T03:04:05.000000Z"
    assert format_timestamp(moment.replace(tzinfo=UTC, microsecond=7)) == (
        "2025-01-02T03:04:05.000007Z"
    )
    assert parse_timestamp(format_timestamp(moment)) == moment.replace(tzinfo=UTC)
    with pytest.raises(ValueError, match="UTC"):
        format_timestamp(moment.replace(tzinfo=timezone(timedelta(hours=5))))


def test_a_seal_field_name_inside_the_entry_does_not_move_the_seal() -> None:
    """The seal is found by its last `,"hash":"`: `data` may hold a key `hash` (after another
    key, where canonical JSON writes the same bytes), and the hashed body, the entry hash
    (the Merkle leaf's data) and the seal fields still come from the right place."""
    data = {"a": 1, "hash": "ff" * 32, "key_id": "x", "signature": "y"}
    state = stored("R1", None, data)
    sealed = seal(json.loads(hashed_body(state)), "k1", lambda digest: b"signature")
    assert sealed.state == state
    assert event_hash_bytes(state) == bytes.fromhex(sealed.hash)
    entry = entry_from_state(state, 3)
    assert entry["data"] == data
    assert (entry["hash"], entry["key_id"]) == (sealed.hash, "k1")
    assert json.loads(entry_json(state, 3)) == entry


@pytest.mark.parametrize("key_id", ["", "k-1", 'k"1', "k 1"])
def test_a_key_id_that_would_need_json_escaping_is_refused(key_id: str) -> None:
    """The seal is spliced without escaping, so only an alphanumeric key id goes in."""
    with pytest.raises(ValueError, match="alphanumeric"):
        sealed_state(b"{}", bytes(32), key_id, b"signature")
