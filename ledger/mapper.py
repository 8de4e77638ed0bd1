"""Maps ledger events to stored events and back.

Replaces eventsourcing's transcoder-based mapper: the stored state must be the signed,
canonical entry of api-contract.md, byte for byte, so that outside verifiers can recompute
its hash. The topic column holds the contract's event type (`PlanSet`).
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from eventsourcing.persistence import Mapper, StoredEvent

from ledger.domain.base import EVENT_TYPES, LedgerEvent
from ledger.entry import split_state
from ledger.errors import VerificationError


class LedgerMapper(Mapper[str]):
    def __init__(self) -> None:  # no transcoder, compressor or cipher: the state is the entry
        pass

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        state = domain_event.__dict__.get("ledger_state")
        if state is None:
            raise ValueError(f"{domain_event.type} was not sealed before storing")
        return StoredEvent(
            originator_id=domain_event.originator_id,
            originator_version=domain_event.originator_version,
            topic=domain_event.type,
            state=state,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        return event_from_state(
            stored_event.state,
            str(stored_event.originator_id),
            stored_event.originator_version,
            stored_event.topic,
        )


def event_from_state(state: bytes, stream_id: str, version: int, topic: str) -> LedgerEvent:
    """Rebuild a domain event from its stored entry."""
    body, seal = split_state(state)
    hashed: dict[str, Any] = json.loads(body)
    sealed = hashed.get("type")
    event_class = EVENT_TYPES.get(sealed) if isinstance(sealed, str) else None
    if event_class is None:
        raise VerificationError(
            f"{stream_id} version {version}: the sealed entry's type {sealed!r} is not a "
            "ledger event"
        )
    if sealed != topic:
        raise VerificationError(
            f"{stream_id} version {version} is stored as {topic!r}, but its sealed entry is "
            f"{sealed!r}"
        )
    data = dict(hashed["data"])
    for name in event_class.date_fields():
        if isinstance(data.get(name), str):
            data[name] = date.fromisoformat(data[name])
    event = event_class(
        originator_id=stream_id,
        originator_version=version,
        timestamp=datetime.fromisoformat(hashed["recorded_at"]),
        occurred_on=date.fromisoformat(hashed["occurred_on"]),
        actor=hashed["actor"],
        submitted_by=hashed["submitted_by"],
        policy=hashed["policy"],
        **data,
    )
    object.__setattr__(event, "entry_hash", seal["hash"])
    return event
