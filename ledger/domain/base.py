"""Base classes for the ledger's aggregates and events.

The library's `Aggregate` assumes UUID ids and builds event classes with a metaclass; our
streams have caller-chosen string ids (`A-2024-E1`) and every event carries the contract's
common fields, so, as in eventsourcing's own `aggregate4` example, we define small explicit
bases. They satisfy the library's protocols: `Application.save()` collects `pending_events`
and the default projector calls `event.mutate(aggregate)`.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar, Self, TypeVar

#: Every concrete event class, by its contract type name (`PlanSet`, ...).
EVENT_TYPES: dict[str, type[LedgerEvent]] = {}

#: Fields every event has; the rest of an event's fields are its `data`.
BASE_FIELDS = frozenset(
    {
        "originator_id",
        "originator_version",
        "timestamp",
        "occurred_on",
        "actor",
        "submitted_by",
        "policy",
    }
)


@dataclass(frozen=True)
class Submission:
    """Who submitted a command and when the ledger records it (supplied by the application)."""

    submitted_by: str
    recorded_at: datetime


@dataclass(frozen=True)
class LedgerEvent:
    """A signed, immutable fact: one appraisal action as the ledger recorded it.

    `timestamp` is `recorded_at`; `occurred_on` is the business date the action happened;
    `actor` the person who acted; `submitted_by` the authenticated client.
    """

    originator_id: str
    originator_version: int
    timestamp: datetime
    occurred_on: date
    actor: str
    submitted_by: str
    policy: str | None

    #: True for the event that starts a stream.
    creates: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            EVENT_TYPES[cls.__name__] = cls

    @property
    def type(self) -> str:
        return type(self).__name__

    @classmethod
    def data_fields(cls) -> tuple[str, ...]:
        """Names of the event's own fields (cached: this is on every append's path)."""
        cached: tuple[str, ...] | None = cls.__dict__.get("_data_fields")
        if cached is None:
            cached = tuple(f.name for f in dataclasses.fields(cls) if f.name not in BASE_FIELDS)
            cls._data_fields = cached  # type: ignore[attr-defined]
        return cached

    def data(self) -> dict[str, Any]:
        """The event's own fields as JSON values (dates as `YYYY-MM-DD`).

        On every append's path: reads the instance dict and converts dates and strings
        inline, leaving only lists, dicts and other values to `_to_json`.
        """
        values = self.__dict__
        out: dict[str, Any] = {}
        for name in self.data_fields():
            value = values[name]
            t = type(value)
            if t is date:
                value = value.isoformat()
            elif t is not str and t is not int:
                value = _to_json(value)
            out[name] = value
        return out

    @classmethod
    def date_fields(cls) -> frozenset[str]:
        """Names of fields typed as dates, converted back from JSON strings on load."""
        cached: frozenset[str] | None = cls.__dict__.get("_date_fields")
        if cached is None:
            hints = typing.get_type_hints(cls)
            cached = frozenset(
                name
                for name, hint in hints.items()
                if hint is date or (date in typing.get_args(hint) and name != "timestamp")
            )
            cls._date_fields = cached  # type: ignore[attr-defined]
        return cached

    def apply(self, aggregate: Any) -> None:
        """Evolve the aggregate's state; overridden by each event."""

    def mutate(self, aggregate: Any) -> Any:
        """The library's projector hook: apply this event as the next in its stream."""
        if aggregate is None:
            if not self.creates:
                raise ValueError(f"{self.type} cannot start a stream")
            aggregate = self.new_aggregate()
        elif self.originator_version != aggregate.version + 1:
            raise ValueError(
                f"{self.type} v{self.originator_version} does not follow v{aggregate.version}"
            )
        self.apply(aggregate)
        aggregate._version = self.originator_version
        sealed_hash = self.__dict__.get("entry_hash")
        if sealed_hash is not None:
            aggregate.head_hash = sealed_hash
        return aggregate

    def new_aggregate(self) -> Any:
        raise NotImplementedError


def _to_json(value: Any) -> Any:
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if isinstance(value, date):
        return value.isoformat()
    if t is list or t is tuple:
        return [_to_json(v) for v in value]
    if t is dict:
        return {k: _to_json(v) for k, v in value.items()}
    return value


E = TypeVar("E", bound=LedgerEvent)


class LedgerAggregate:
    """A mutable aggregate with a string id, rebuilt by applying its events in order."""

    #: The stream kind named in not-found errors ("executive", "appraisal", ...).
    kind: ClassVar[str] = "stream"

    def __init__(self, stream_id: str) -> None:
        self._id = stream_id
        self._version = 0
        self._pending_events: list[LedgerEvent] = []
        #: Hash of the last *stored* event: the next event's `prev_hash`.
        self.head_hash: str | None = None

    @property
    def id(self) -> str:
        return self._id

    @property
    def version(self) -> int:
        return self._version

    @property
    def pending_events(self) -> list[LedgerEvent]:
        return self._pending_events

    def collect_events(self) -> list[LedgerEvent]:
        collected, self._pending_events = self._pending_events, []
        return collected

    def policy_name(self) -> str | None:
        """The policy recorded on this stream's events (appraisals only)."""
        return None

    def executive_of(self) -> str | None:
        """The executive whose record this stream belongs to (None: boards, waivers)."""
        return None

    def _trigger(
        self,
        event_class: type[E],
        *,
        occurred_on: date,
        actor: str,
        submission: Submission,
        **data: Any,
    ) -> E:
        event = event_class(
            originator_id=self.id,
            originator_version=self.version + 1,
            timestamp=submission.recorded_at,
            occurred_on=occurred_on,
            actor=actor,
            submitted_by=submission.submitted_by,
            policy=self.policy_name(),
            **data,
        )
        event.mutate(self)
        self._pending_events.append(event)
        return event

    @classmethod
    def _start(
        cls,
        event_class: type[LedgerEvent],
        stream_id: str,
        *,
        occurred_on: date,
        actor: str,
        submission: Submission,
        policy: str | None = None,
        **data: Any,
    ) -> Self:
        event = event_class(
            originator_id=stream_id,
            originator_version=1,
            timestamp=submission.recorded_at,
            occurred_on=occurred_on,
            actor=actor,
            submitted_by=submission.submitted_by,
            policy=policy,
            **data,
        )
        aggregate = event.mutate(None)
        if not isinstance(aggregate, cls):
            raise TypeError(f"{event_class.__name__} does not start a {cls.__name__}")
        aggregate._pending_events.append(event)
        return aggregate
