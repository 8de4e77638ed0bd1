"""The projection protocol: handle events of some types, keep rows, write them back.

As in eventsourcing 9.5's `Projection.process_event(event, tracking)`, a projection applies
one event at a time in global order; the runner (`projections/runner.py`) gives it a cursor
inside the transaction that also moves its tracking position, so rows and position commit
together. Handlers are methods named after the event type: `def PlanSet(self, e: Event)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from projections.events import Event
from projections.store import Rows, Store, Table


class Projection:
    """Base class: subclasses set `name`, `version`, `tables` and define handlers."""

    #: Stable name: tracking row, CLI argument, digest key.
    name: ClassVar[str] = ""
    #: Bump when the rows a projection writes change meaning: stored rows are then rebuilt.
    version: ClassVar[int] = 1
    tables: ClassVar[tuple[Table, ...]] = ()
    #: Relative cost of a rebuild, to balance parallel groups (`projections/parallel.py`);
    #: measured with bench/projections.py.
    cost: ClassVar[float] = 1.0
    #: Event types handled (derived from the handler methods by `__init_subclass__`).
    handled: ClassVar[frozenset[str]] = frozenset()

    #: Whether every event matters (`every` or `process_all` overridden), or only `handled`.
    reads_every_event: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.handled = frozenset(
            n for n in dir(cls) if n[:1].isupper() and callable(getattr(cls, n, None))
        )
        cls.reads_every_event = (
            cls.every is not Projection.every or cls.process_all is not Projection.process_all
        )

    def __init__(self, store: Store) -> None:
        self.store = store
        self.rows: dict[str, Rows] = {}
        for table in self.tables:
            self.rows[table.name] = Rows(store, table)

    # -- runner interface ------------------------------------------------------------------

    def bind(self, cursor: Any) -> None:
        for rows in self.rows.values():
            rows.cursor = cursor

    def process_all(self, events: Sequence[Event]) -> None:
        """Apply a batch in order (skipping, without a call, what this projection ignores)."""
        handlers = self.handlers()
        if type(self).every is Projection.every:
            for event in events:
                handler = handlers.get(event.type)
                if handler is not None:
                    handler(event)
        else:
            every = self.every
            for event in events:
                handler = handlers.get(event.type)
                if handler is not None:
                    handler(event)
                every(event)

    def handlers(self) -> dict[str, Callable[[Event], None]]:
        """Bound handlers by event type, made per batch: kept on the instance they would
        form a reference cycle, and a rebuild's cached rows would then wait for the cyclic
        garbage collector instead of being freed with the projection."""
        return {name: getattr(self, name) for name in self.handled}

    def every(self, event: Event) -> None:
        """Called for every event after its handler (override for log-wide indexes)."""

    def prepare(self) -> None:
        """Encode changed rows ahead of `flush`, outside the write transaction."""
        for rows in self.rows.values():
            rows.prepare()

    def flush(self, cursor: Any, fresh: bool = False) -> None:
        """Write the changed rows (`fresh`: the tables were emptied in this transaction)."""
        self.prepare()
        for rows in self.rows.values():
            rows.flush(cursor, fresh)

    def forget(self) -> None:
        for rows in self.rows.values():
            rows.forget()

    def mark_complete(self) -> None:
        """Every row is in the cache (the tables were emptied here, or a rebuild builds from
        nothing and replaces them): misses need no query."""
        for rows in self.rows.values():
            rows.cache.clear()
            rows.complete = True

    @property
    def complete(self) -> bool:
        """Every row is cached: events can be applied without reading the tables."""
        return all(rows.complete for rows in self.rows.values())

    def cached_rows(self) -> int:
        return sum(len(rows.cache) for rows in self.rows.values())
