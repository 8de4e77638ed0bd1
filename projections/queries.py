"""`ReadModels`: the one query facade over the projections (what `api/` calls).

    read_models = ReadModels(app)        # app: ledger.application.LedgerApp
    read_models.catch_up()               # apply new events (safe beside a running worker)
    read_models.executive("E1")

Reads never touch aggregates and never write; `catch_up()` is the only write. `as_of(...)`
builds every projection into a private in-memory SQLite copy from the events the ledger
held at a position or a recorded-at time (optionally only one executive's streams) and
returns a `ReadModels` over that copy; the live tables are not touched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, date, datetime
from typing import Any

from ledger.config import available_cpus
from ledger.entry import format_timestamp, parse_timestamp
from ledger.errors import LedgerError
from ledger.policies.removal import RATING_DATE
from ledger.verify import Windows, ring_keys
from ledger.write_gate import write_gate
from projections import audit, compliance, parallel, removal_history, reports
from projections.audit import Audit
from projections.base import Projection
from projections.compliance import Compliance
from projections.current_ratings import APPRAISALS, EXECUTIVES, CurrentRatings, public_executive
from projections.events import Bound, EventLog, EventSource, ListSource, LogSource
from projections.removal_history import RemovalHistories
from projections.replays import Replays
from projections.runner import Runner, Status, StopFlag
from projections.store import LedgerStore, MemoryStore, Store, loads

PROJECTIONS: tuple[type[Projection], ...] = (CurrentRatings, RemovalHistories, Compliance, Audit)
PROJECTION_NAMES = tuple(p.name for p in PROJECTIONS)

#: The projections each query reads (`ReadModels` methods), so that a replay builds only
#: those (`as_of(projections=needs(...))`): a full replay built the audit index and the
#: compliance tables for a read of one table. A replayed copy holds only the tables it
#: built, so a query whose entry here is short fails ("no such table"), never answers from
#: empty tables.
QUERY_NEEDS: dict[str, tuple[str, ...]] = {
    "executive": (CurrentRatings.name,),
    "ratings": (CurrentRatings.name,),
    "appraisal": (CurrentRatings.name,),
    "appraisal_events": (),  # the log itself, bounded
    "removal_history": (RemovalHistories.name,),
    "below_fully_successful": (CurrentRatings.name,),
    "rating_distribution": (CurrentRatings.name,),
    "compliance": (CurrentRatings.name, RemovalHistories.name, Compliance.name),
}


def needs(*queries: str) -> tuple[str, ...]:
    """The projections the named queries read, in `PROJECTIONS` order."""
    wanted = {name for query in queries for name in QUERY_NEEDS[query]}
    return tuple(name for name in PROJECTION_NAMES if name in wanted)


def normalise_known_at(value: str | datetime) -> str:
    """An RFC 3339 timestamp in the ledger's `recorded_at` form (UTC, microseconds, `Z`)."""
    moment = parse_timestamp(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return format_timestamp(moment.astimezone(UTC))


class ReadModels:
    """Queries over the projections of one ledger (live, or a replayed copy)."""

    def __init__(
        self,
        app: Any,
        *,
        store: Store | None = None,
        source: EventSource | None = None,
        bound: Bound | None = None,
        window_measure: str = RATING_DATE,
        projections: Sequence[str] | None = None,
        setup: bool = True,
    ) -> None:
        """`projections`: only these (names; None: all), for a replayed copy.

        `setup` False: the tables are read as they are stored, nothing is created or
        dropped (`projections status` and `digest` inspect; a projection stored at an older
        version stays as it is, reported stale, instead of being emptied to be rebuilt)."""
        self.app = app
        self.bound = bound or Bound()
        self.store: Store = store if store is not None else LedgerStore(app.recorder)
        self.log = EventLog(app.recorder)
        self.window_measure = window_measure
        chosen = PROJECTIONS
        if projections is not None:
            unknown = set(projections) - set(PROJECTION_NAMES)
            if unknown:
                raise KeyError(f"unknown projection {', '.join(sorted(unknown))}")
            chosen = tuple(p for p in PROJECTIONS if p.name in projections)
        self.projections = [cls(self.store) for cls in chosen]
        #: Whole-ledger replays kept and rationed (`projections.replays`; the API sets it);
        #: None: every `as_of` builds its own.
        self.replays: Replays | None = None
        #: Whether `store` is a kept replay's, shared with other views (never closed here).
        self.shared = False
        self.runner = Runner(
            self.store, source or LogSource(app.recorder, self.bound), self.projections
        )
        if store is None:
            # The ledger's own store: its write transactions queue with every other writer
            # of the file in this process and the others (a no-op on PostgreSQL).
            self.runner.gate = write_gate(app)
        if setup:
            self.runner.setup()

    # -- processing ------------------------------------------------------------------------

    def catch_up(self) -> int:
        """Apply every new event to every projection; returns the position reached."""
        return self.runner.catch_up()

    def rebuild(
        self,
        names: Sequence[str] | None = None,
        *,
        progress: Callable[[int], None] | None = None,
        stop: StopFlag | None = None,
        jobs: int | None = None,
        batch_size: int | None = None,
        flush_every: int | None = None,
    ) -> int:
        """Empty the projections and process the whole log again, on up to `jobs` cores.

        `jobs` None: as many as there are cores (at most one per projection) once the log
        holds `PARALLEL_FROM` events; 1 rebuilds in this process alone. Replayed copies
        (in-memory stores) always rebuild in this process. A name given twice is one
        projection (`Runner.select`).
        """
        chosen = self.runner.select(names)
        sizes = {k: v for k, v in (("batch_size", batch_size), ("flush_every", flush_every)) if v}
        if jobs is None:
            big = self.runner.source.head() >= parallel.PARALLEL_FROM
            jobs = available_cpus() if big else 1
        groups = parallel.plan_groups(chosen, min(jobs, len(chosen)))
        if len(groups) < 2 or not isinstance(self.store, LedgerStore):
            return self.runner.rebuild(names, progress=progress, stop=stop, **sizes)

        def run_here(group: list[str], report: Callable[[int], None], flag: StopFlag) -> int:
            return self.runner.rebuild(group, progress=report, stop=flag, **sizes)

        return parallel.rebuild(
            self.app.config, run_here, groups, progress=progress, stop=stop, sizes=sizes
        )

    def status(self) -> list[Status]:
        return self.runner.status()

    def digest(self) -> dict[str, str]:
        """Each projection's state digest (SHA-256 hex of its canonical dump)."""
        return self.runner.digest()

    def as_of(
        self,
        position: int | None = None,
        known_at: str | datetime | None = None,
        executive_id: str | None = None,
        projections: Sequence[str] | None = None,
    ) -> ReadModels:
        """Read models of the ledger as it stood (positions <= `position`, events recorded at
        or before `known_at`), built into a throw-away in-memory copy.

        With `executive_id`, only that executive's stream and appraisal streams are replayed
        (fast; reports and compliance then cover that executive only). `projections`: build
        only these (see `needs`; None: all, () none: reads of the log alone).
        """
        bound = self._narrowed(position, known_at)
        if executive_id is None and self.replays is not None and projections != ():
            return self._kept_replay(bound, projections)
        if executive_id is None:
            return self._built(LogSource(self.app.recorder, bound), bound, projections)
        self.catch_up()  # the live models, before a slot is held: it may wait for writes
        with self._record_build():
            streams = audit.executive_streams(self.store, executive_id)
            source = ListSource(bound.filter(self.log.by_streams(streams)))
            return self._built(source, bound, projections)

    def _built(
        self, source: EventSource, bound: Bound, projections: Sequence[str] | None
    ) -> ReadModels:
        """Read models of `source`'s events, built into a throw-away in-memory copy."""
        copy = ReadModels(
            self.app,
            store=MemoryStore(),
            source=source,
            bound=bound,
            window_measure=self.window_measure,
            projections=projections,
        )
        if copy.projections:
            copy.runner.catch_up(batch_size=10000)
        return copy

    def _record_build(self) -> AbstractContextManager[None]:
        """A slot for a historical read of one record (`Replays.record_build`; none to
        take without `replays`: the command line's reads, one at a time)."""
        return nullcontext() if self.replays is None else self.replays.record_build()

    def _kept_replay(self, bound: Bound, projections: Sequence[str] | None) -> ReadModels:
        """`as_of` of the whole ledger through `self.replays`: the bound resolved to a
        position (the head at most), the store built once per set of events and shared by
        every request it serves; a view of its own per request (`default_as_of` is the
        request's)."""
        assert self.replays is not None
        head = int(self.app.recorder.max_notification_id() or 0)
        stop = head if bound.stop is None else min(bound.stop, head)
        resolved = Bound(stop=stop, known_at=bound.known_at)
        chosen = [p for p in PROJECTIONS if projections is None or p.name in projections]
        names = [p.name for p in chosen]

        def build(source: EventSource) -> MemoryStore:
            store = MemoryStore()
            copy = ReadModels(
                self.app,
                store=store,
                source=source,
                bound=resolved,
                window_measure=self.window_measure,
                projections=names,
            )
            copy.runner.catch_up(batch_size=10000)
            for projection in copy.projections:
                projection.forget()  # the rows are in the store: free the caches now
            return store

        store = self.replays.store(self.app.recorder, chosen, resolved, build)
        view = ReadModels(
            self.app,
            store=store,
            source=ListSource([]),  # built already: nothing to catch up
            bound=resolved,
            window_measure=self.window_measure,
            projections=names,
        )
        view.shared = True
        return view

    def close(self) -> None:
        """Release a replayed copy's in-memory database (the live store is the app's, a
        kept replay's is `replays`')."""
        if isinstance(self.store, MemoryStore) and not self.shared:
            self.store.close()

    # -- executives and appraisals ---------------------------------------------------------

    def _doc(self, table: str, key_column: str, key: str) -> dict[str, Any] | None:
        with self.store.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT doc AS doc FROM {self.store.name(table)} "
                f"WHERE {key_column} = {self.store.p}",
                (key,),
            )
            row = cursor.fetchone()
        if row is None:
            return None
        doc: dict[str, Any] = loads(row["doc"])
        return doc

    def executive(self, executive_id: str) -> dict[str, Any] | None:
        """Registration fields, `current_rating` (or None) and `version`; None if unknown."""
        doc = self._doc(EXECUTIVES.name, "executive_id", executive_id)
        return None if doc is None else public_executive(doc)

    def executive_agency(self, executive_id: str) -> str | None:
        doc = self._doc(EXECUTIVES.name, "executive_id", executive_id)
        return None if doc is None else str(doc["agency"])

    def ratings(self, executive_id: str) -> dict[str, Any]:
        """The executive's final ratings, oldest period first (then rating date): the last
        is `current_rating`, whatever order earlier periods were backfilled in."""
        with self.store.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT doc AS doc FROM {self.store.name(APPRAISALS.name)} "
                f"WHERE executive_id = {self.store.p} AND final_level IS NOT NULL "
                "ORDER BY period_end, final_rated_on, final_position",
                (executive_id,),
            )
            rows = cursor.fetchall()
        ratings = []
        for row in rows:
            doc = loads(row["doc"])
            final = doc["final_rating"]
            ratings.append(
                {
                    "appraisal_id": doc["appraisal_id"],
                    "policy": doc["policy"],
                    "period_start": doc["period_start"],
                    "period_end": doc["period_end"],
                    "level": final["level"],
                    "score": final.get("score"),
                    "rated_on": final["rated_on"],
                }
            )
        return {"executive_id": executive_id, "ratings": ratings}

    def appraisal(self, appraisal_id: str) -> dict[str, Any] | None:
        """The appraisal body: stage, period, elements, initial and final rating, version."""
        doc = self._doc(APPRAISALS.name, "appraisal_id", appraisal_id)
        if doc is None:
            return None
        plan = self.log.first(appraisal_id)
        doc["elements"] = None if plan is None else plan.data.get("elements")
        return doc

    def executive_appraisal_ids(self, executive_id: str) -> list[str]:
        """The executive's appraisals, by period start (then id)."""
        with self.store.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT appraisal_id AS appraisal_id, doc AS doc "
                f"FROM {self.store.name(APPRAISALS.name)} WHERE executive_id = {self.store.p}",
                (executive_id,),
            )
            rows = [
                (loads(r["doc"])["period_start"], str(r["appraisal_id"])) for r in cursor.fetchall()
            ]
        return [appraisal_id for _start, appraisal_id in sorted(rows)]

    def appraisal_events(self, appraisal_id: str) -> list[dict[str, Any]]:
        """The appraisal stream's ledger entries, in order (within this view's bound)."""
        return [e.entry() for e in self.bound.filter(self.log.by_streams([appraisal_id]))]

    def removal_history(
        self, executive_id: str, as_of: date, window_measure: str | None = None
    ) -> dict[str, Any]:
        return removal_history.query(
            self.store, executive_id, as_of, window_measure or self.window_measure
        )

    # -- reports ---------------------------------------------------------------------------

    def below_fully_successful(self, as_of: date, agency: str | None = None) -> dict[str, Any]:
        return reports.below_fully_successful_report(self.store, as_of, agency)

    def rating_distribution(
        self, agency: str, cycle: str, as_of: date | None = None
    ) -> dict[str, Any]:
        """Counts, share and RAT-9 as of the day the compliance report judges (`as_of`,
        default `default_as_of`): final ratings assigned and waivers granted by then, so
        that both reports give one RAT-9 answer."""
        return reports.rating_distribution_report(
            self.store, agency, cycle, as_of=as_of or self.default_as_of()
        )

    def compliance(self, agency: str | None = None, as_of: date | None = None) -> dict[str, Any]:
        """Every flag-rule finding; `as_of` defaults to today (or the `known_at` day)."""
        return compliance.query(
            self.store, as_of or self.default_as_of(), agency, self.window_measure
        )

    def default_as_of(self, visible: Callable[[str], bool] | None = None) -> date:
        """Today (UTC), or the day the replayed ledger stood at: the day of `known_at`, else
        the day the last event up to the replay's position was recorded (as `known_at` of
        that moment gives; judged as of today, a past state showed findings it then had not).

        `visible` (a stream id test): only those streams' events count for that last event,
        today when none is there by then. The API passes the streams the caller may read:
        the event at a position may be another agency's, whose day a token of one agency
        must not learn (`api.access.visible_streams`).

        A `known_at` in the future is the ledger as it stands now, judged as of today: the
        day of a moment to come judged the present record as of a day no one has reached
        (a removal window of 2031 empty, a below-Fully-Successful report without today's
        ratings)."""
        today = datetime.now(UTC).date()
        if self.bound.known_at is not None:
            return min(date.fromisoformat(self.bound.known_at[:10]), today)
        if self.bound.stop is not None:
            if visible is None:
                last = self.log.last(self.bound.stop)
            else:
                last = self.log.last_visible(self.bound.stop, visible)
            if last is not None:
                return date.fromisoformat(last.recorded_at[:10])
        return today

    # -- audit -----------------------------------------------------------------------------

    def _narrowed(self, position: int | None, known_at: str | datetime | None) -> Bound:
        """This view's bound, narrowed to positions <= `position` and events recorded at or
        before `known_at`."""
        stops = [p for p in (position, self.bound.stop) if p is not None]
        moments = [normalise_known_at(known_at)] if known_at is not None else []
        if self.bound.known_at is not None:
            moments.append(self.bound.known_at)
        return Bound(stop=min(stops, default=None), known_at=min(moments, default=None))

    def audit(
        self,
        executive_id: str | None = None,
        appraisal_id: str | None = None,
        actor: str | None = None,
        *,
        after: int = 0,
        limit: int | None = None,
        position: int | None = None,
        known_at: str | datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Events (position, type, occurred_on, actor, submitted_by, policy, ...) with
        verification: the first `limit` after position `after` (all without a limit).

        `position` / `known_at`: the trail as the ledger stood then. A trail is read from
        the log itself, bounded, and the audit index only ever grows, so these need no
        replayed copy (`as_of`, which for a trail by actor would replay the whole log)."""
        return self.audit_page(
            executive_id,
            appraisal_id,
            actor,
            after=after,
            limit=limit,
            position=position,
            known_at=known_at,
        )[0]

    def audit_page(
        self,
        executive_id: str | None = None,
        appraisal_id: str | None = None,
        actor: str | None = None,
        *,
        after: int = 0,
        limit: int | None = None,
        visible: Callable[[str], bool] | None = None,
        max_scan: int | None = None,
        position: int | None = None,
        known_at: str | datetime | None = None,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """A page of `audit` and where the next one follows (None: the last), holding only
        entries whose stream `visible` admits (`projections.audit.trail_page`).

        As of a point (`position` / `known_at`), it is built in one of the slots of
        historical reads of a record (`Replays.record_build`)."""
        bound = self._narrowed(position, known_at)
        historical = position is not None or known_at is not None
        verifiers, windows = self.key_list()
        with self._record_build() if historical else nullcontext():
            return audit.trail_page(
                self.store,
                self.log,
                verifiers,
                bound,
                windows,
                executive_id=executive_id,
                appraisal_id=appraisal_id,
                actor=actor,
                after=after,
                limit=limit,
                visible=visible,
                max_scan=max_scan,
            )

    def key_list(self) -> tuple[Any, Windows | None]:
        """The key ring's public keys and their validity windows, from one read of the list
        per trail (rotations show at once, and a rotation between two reads cannot pair
        keys with another list's windows); (None, None) when there is no readable key ring
        (signatures are then reported as not checked)."""
        try:
            return ring_keys(self.app.keyring)
        except LedgerError:
            return None, None

    def projection_names(self) -> Sequence[str]:
        return PROJECTION_NAMES
