"""Who owns a stream: the facts access control needs, read from each stream's first event.

A stream's first event never changes, so its agency, executive and rating official can be
cached for the life of the process. Reading them from the event store (not the read
models) keeps authorization exact even while the projections lag behind the writes.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any

from api.auth import ID_PATTERN
from ledger.application import LedgerApp
from ledger.entry import entry_from_state
from ledger.errors import NotFound, UnknownReference

#: Facts kept before the cache is emptied whole. A dict rather than `functools.lru_cache`:
#: only streams that exist are kept (an id that names nothing yet may be created by the next
#: request, and must not be remembered as absent), and `facts` recurses into the owning
#: executive's entry under the same cache; a miss after emptying costs one indexed read.
_CACHE_LIMIT = 200_000
_ID = re.compile(ID_PATTERN)


@dataclass(frozen=True)
class StreamFacts:
    """The first event's type, the owning agency and, for appraisals, who it concerns."""

    type: str
    agency: str | None
    executive_id: str | None = None
    rating_official_id: str | None = None


class Directory:
    def __init__(self, app: LedgerApp) -> None:
        self.app = app
        self._facts: dict[str, StreamFacts] = {}
        self._lock = threading.Lock()

    def _first_entry(self, stream_id: str) -> dict[str, Any] | None:
        stored = self.app.recorder.select_events(stream_id, lte=1, limit=1)
        return entry_from_state(stored[0].state) if stored else None

    def executive_of(self, stream_id: str) -> str | None:
        """The executive whose record holds the stream (itself, for an executive), or None
        for a board, a waiver or no such stream."""
        facts = self.facts(stream_id)
        return None if facts is None else facts.executive_id

    def agency_of(self, stream_id: str) -> str | None:
        """The agency whose records hold the stream, or None (no such stream, no agency)."""
        facts = self.facts(stream_id)
        return None if facts is None else facts.agency

    def facts(self, stream_id: str) -> StreamFacts | None:
        """Facts of any stream, or None when it does not exist (or cannot be an id)."""
        if not _ID.fullmatch(stream_id):
            return None
        cached = self._facts.get(stream_id)
        if cached is not None:
            return cached
        first = self._first_entry(stream_id)
        if first is None:
            return None
        data = first.get("data") or {}
        kind = str(first.get("type"))
        if kind == "PlanSet":
            executive_id = str(data.get("executive_id"))
            owner = self.facts(executive_id)
            facts = StreamFacts(
                kind,
                owner.agency if owner else None,
                executive_id=executive_id,
                rating_official_id=str(first.get("actor")),
            )
        elif kind == "ExecutiveRegistered":
            facts = StreamFacts(kind, _str(data.get("agency")), executive_id=stream_id)
        else:
            facts = StreamFacts(kind, _str(data.get("agency")))
        with self._lock:
            if len(self._facts) >= _CACHE_LIMIT:
                self._facts.clear()
            self._facts[stream_id] = facts
        return facts

    def executive(self, executive_id: str, *, reference: str | None = None) -> StreamFacts:
        """An executive's facts; NotFound (path id) or UnknownReference (body id, `reference`)."""
        facts = self.facts(executive_id)
        if facts is None or facts.type != "ExecutiveRegistered":
            if reference is not None:
                raise UnknownReference(reference, executive_id)
            raise NotFound("executive", executive_id)
        return facts

    def appraisal(self, appraisal_id: str) -> StreamFacts:
        facts = self.facts(appraisal_id)
        if facts is None or facts.type != "PlanSet":
            raise NotFound("appraisal", appraisal_id)
        return facts


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
