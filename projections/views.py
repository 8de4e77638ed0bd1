"""What the projections read of the busiest event types' `data`, decoded from the stored bytes.

A plan's `data` is mostly its elements (names, weights, requirement texts), which only the
compliance projection reads; ratings carry narratives nobody projects. Parsing all of it
into dicts, then freeing it, was the largest single cost of applying these events (a
`PlanSet` 9.6 us against 1.7 us here, measured on the 1M-event benchmark history). So each
view below lists the fields that some projection reads, and msgspec decodes the stored
entry straight into it, skipping every other field without building it: the envelope
(hash, signature, ...), the unlisted `data` keys, and `elements`, kept as raw JSON for the
one handler that parses it. Hand-slicing would do the same for flat fields only; msgspec
is a maintained decoder that validates what it keeps.

A view is a projection of `Event.data` (tested against it, tests/unit/test_event_views.py);
event types without one are read through `Event.data`.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

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

#: The view of each event type that has one.
VIEWS: dict[str, type[msgspec.Struct]] = {
    "PlanSet": PlanSetData,
    "InitialRatingIssued": InitialRatingData,
    "FinalRatingAssigned": FinalRatingData,
    "PeriodExtended": PeriodExtendedData,
}


def _stored_decoder(view: type[msgspec.Struct]) -> msgspec.json.Decoder[Any]:
    """A decoder of the whole stored state that keeps only `entry.data`, as `view`."""
    entry = msgspec.defstruct(f"{view.__name__}Entry", [("data", view)])
    stored = msgspec.defstruct(f"{view.__name__}Stored", [("entry", entry)])
    return msgspec.json.Decoder(stored)


_DECODERS = {view: _stored_decoder(view) for view in VIEWS.values()}


def decode(view: type[View], state: bytes) -> View:
    """`view` of the stored state's `entry.data` (ValueError: the state does not hold it)."""
    try:
        data: View = _DECODERS[view].decode(state).entry.data
    except msgspec.DecodeError as exc:  # ValidationError included
        raise ValueError(f"stored entry has no {view.__name__}: {exc}") from exc
    return data
