"""How the projections decode stored entries: only the fields they read, with msgspec.

A stored state is `{"entry": {...}, "hash", "key_id", "signature"}` and a plan's `data` is
mostly its elements (names, weights, requirement texts), which only the compliance
projection reads; ratings carry narratives nobody projects. Parsing all of it into dicts,
then freeing it, was the largest single cost of applying these events (a `PlanSet` 9.6 us
against 1.7 us here, on the 1M-event benchmark history). So msgspec decodes each stored
state straight into structs of the fields wanted, skipping the rest without building it:

- `EntryFields`: the entry's scalar fields (actor, dates, policy), for every event;
- a view of `data` for the busiest event types (`VIEWS`), with the entry's fields in the
  same pass; a plan's `elements` stay raw JSON until the one handler that parses them;
- `data` whole (any other event type).

msgspec rather than slicing the canonical bytes by hand (what this module replaced): it
is a maintained decoder, independent of key order, and validates what it keeps. Each view
is tested against the parsed `data` (tests/unit/test_event_views.py).
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import msgspec

from ledger.errors import UnreadableEntry
from projections.store import loads


class PlanSetData(msgspec.Struct, frozen=True):
    executive_id: str
    period_start: str
    period_end: str
    communicated_on: str | None = None
    rating_official_id: str | None = None
    #: The plan's elements as stored (JSON text): see `element_list`.
    elements: msgspec.Raw = msgspec.Raw(b"[]")
    policy: str | None = None

    def element_list(self) -> list[dict[str, Any]]:
        """The elements parsed (code, weight, requirements)."""
        elements: list[dict[str, Any]] = loads(bytes(self.elements))
        return elements


class InitialRatingData(msgspec.Struct, frozen=True):
    rated_on: str
    element_levels: dict[str, int]
    score: int
    summary_level: int
    shared_on: str | None = None
    narrative: str | None = None


class FinalRatingData(msgspec.Struct, frozen=True):
    rated_on: str
    level: int
    score: int | None = None
    #: Absent from final ratings recorded before the field was added to the event.
    executive_id: str | None = None


class PeriodExtendedData(msgspec.Struct, frozen=True):
    new_period_end: str


View = TypeVar("View", bound=msgspec.Struct)
D = TypeVar("D")

#: The view of each event type that has one.
VIEWS: dict[str, type[msgspec.Struct]] = {
    "PlanSet": PlanSetData,
    "InitialRatingIssued": InitialRatingData,
    "FinalRatingAssigned": FinalRatingData,
    "PeriodExtended": PeriodExtendedData,
}


class EntryFields(msgspec.Struct, frozen=True, kw_only=True):
    """The stored entry's scalar fields (api-contract.md's ledger entry)."""

    actor: str
    occurred_on: str
    recorded_at: str
    submitted_by: str
    policy: str | None = None


class _Entry(EntryFields, Generic[D], frozen=True, kw_only=True):
    data: D


class _Stored(msgspec.Struct, Generic[D], frozen=True):
    """A stored state: `{"entry": {...}, "hash": ..., "signature": ...}` (seal not kept)."""

    entry: D


_FIELDS = msgspec.json.Decoder(_Stored[EntryFields])
_DATA = msgspec.json.Decoder(_Stored[_Entry[Any]])
_VIEWS = {view: msgspec.json.Decoder(_Stored[_Entry[view]]) for view in VIEWS.values()}  # type: ignore[valid-type]


def decode_fields(state: bytes, position: int) -> EntryFields:
    """The entry's scalar fields (ValueError: the state does not hold them)."""
    try:
        return _FIELDS.decode(state).entry
    except msgspec.DecodeError as exc:  # ValidationError included
        raise UnreadableEntry(f"event at position {position}: {exc}") from exc


def decode_data(state: bytes, position: int) -> tuple[Any, EntryFields]:
    """The entry's `data`, whole, as plain Python values, and its scalar fields."""
    try:
        entry = _DATA.decode(state).entry
    except msgspec.DecodeError as exc:
        raise UnreadableEntry(f"event at position {position}: {exc}") from exc
    return entry.data, entry


def decode_view(view: type[View], state: bytes, position: int) -> tuple[View, EntryFields]:
    """`view` of the entry's `data`, and the entry's scalar fields, in one pass."""
    try:
        entry = _VIEWS[view].decode(state).entry
    except msgspec.DecodeError as exc:
        raise UnreadableEntry(
            f"event at position {position} has no {view.__name__}: {exc}"
        ) from exc
    return entry.data, entry
