"""`projections/views.py`: each view of an event's `data`, decoded from the stored bytes, holds
exactly what `Event.data` holds for the fields it lists, whatever the strings contain and
whatever else the entry carries; a stored entry without a listed field is refused."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.entry import seal
from projections.events import Event
from projections.views import (
    VIEWS,
    FinalRatingData,
    InitialRatingData,
    PeriodExtendedData,
    PlanSetData,
)

MARKERS = ['","data":', ',"occurred_on":', '"elements":[', '"', "\\", "]}"]
text = st.one_of(st.text(max_size=12), st.sampled_from(MARKERS))
extra = st.dictionaries(
    st.text(max_size=8).filter(lambda k: k not in _LISTED),
    st.one_of(text, st.integers(-(2**53) + 1, 2**53 - 1)),
    max_size=3,
)
_LISTED = {name for view in VIEWS.values() for name in view.__struct_fields__}
element = st.fixed_dictionaries(
    {"code": text, "weight": st.integers(0, 100), "requirements": st.lists(text, max_size=3)}
)
optional = st.one_of(st.none(), text)
DATA = {
    PlanSetData: st.fixed_dictionaries(
        {
            "appraisal_id": text,
            "executive_id": text,
            "period_start": text,
            "period_end": text,
            "communicated_on": optional,
            "rating_official_id": text,
            "elements": st.lists(element, max_size=3),
        }
    ),
    InitialRatingData: st.fixed_dictionaries(
        {
            "rated_on": text,
            "element_levels": st.dictionaries(text, st.integers(1, 5), max_size=5),
            "score": st.integers(0, 500),
            "summary_level": st.integers(1, 5),
            "shared_on": optional,
            "narrative": text,
            "rating_official_id": text,
        }
    ),
    FinalRatingData: st.fixed_dictionaries(
        {"rated_on": text, "level": st.integers(1, 5), "score": st.integers(0, 500)},
        optional={"executive_id": text, "appointing_authority_id": text},
    ),
    PeriodExtendedData: st.fixed_dictionaries(
        {"new_period_end": text, "extended_on": text, "reason": text}
    ),
}
TYPE_OF = {view: name for name, view in VIEWS.items()}


def stored(event_type: str, data: dict[str, Any]) -> bytes:
    hashed = {
        "stream_id": "A-1",
        "stream_version": 2,
        "type": event_type,
        "occurred_on": "2025-10-01",
        "recorded_at": "2025-10-02T17:00:00.000001Z",
        "actor": "RO-1",
        "submitted_by": "hr",
        "policy": "ses-2025",
        "data": data,
        "prev_hash": None,
    }
    return seal(hashed, "k1", lambda digest: b"signature").state


def test_every_view_is_tested() -> None:
    assert set(DATA) == set(VIEWS.values())


@pytest.mark.parametrize("view", list(DATA), ids=lambda v: v.__name__)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_a_view_holds_what_the_parsed_data_holds(view: type[msgspec.Struct], data: Any) -> None:
    fields = {**data.draw(extra), **data.draw(DATA[view])}
    event = Event(1, "A-1", 2, TYPE_OF[view], stored(TYPE_OF[view], fields))
    decoded = event.view(view)
    parsed = Event(1, "A-1", 2, TYPE_OF[view], event.state).data
    for name in view.__struct_fields__:
        value = getattr(decoded, name)
        if name == "elements":
            assert decoded.element_list() == parsed["elements"]  # type: ignore[attr-defined]
        else:
            assert value == parsed.get(name), name
    assert event.view(view) is decoded  # decoded once


def test_a_stored_entry_without_a_listed_field_is_refused() -> None:
    state = stored("FinalRatingAssigned", {"rated_on": "2025-11-01"})  # no level
    with pytest.raises(ValueError, match="FinalRatingData"):
        Event(1, "A-1", 2, "FinalRatingAssigned", state).view(FinalRatingData)
