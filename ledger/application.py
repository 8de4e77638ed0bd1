"""The ledger's one application service: verb methods that take plain values.

Each command loads the aggregates it needs, lets the domain decide (rules raise
`RuleViolation` before any state changes), then seals (hash-chains and signs) every new event
and stores all of them in one transaction: all or none.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.persistence import IntegrityError, Mapper, Recording
from eventsourcing.utils import Environment, EnvType

from ledger.aggregate_cache import AggregateCache
from ledger.config import LedgerConfig, available_cpus
from ledger.domain.appraisal import Appraisal
from ledger.domain.base import LedgerAggregate, LedgerEvent, Submission
from ledger.domain.executive import Executive
from ledger.domain.rating_cap_waiver import RatingCapWaiver
from ledger.domain.review_board import ReviewBoard
from ledger.entry import entry_from_state, format_timestamp, hash_entry, sealed_state
from ledger.errors import (
    AlreadyExists,
    ConcurrencyConflict,
    NotFound,
    SigningKeyError,
    StaleVersion,
    UnknownReference,
)
from ledger.keys import KeyRing, Signer
from ledger.log import MerkleLog
from ledger.mapper import LedgerMapper
from ledger.recorders import LedgerSQLiteRecorder

log = logging.getLogger("ses_ledger.ledger")

A = TypeVar("A", bound=LedgerAggregate)
#: Commands of at least this many events sign on two threads (`LedgerApp._sign_all`).
SIGN_ON_TWO_THREADS_FROM = 4
_CPUS = available_cpus()


def _sign_each(signer: Signer, digests: list[bytes]) -> list[bytes]:
    return [signer.sign(d) for d in digests]


@dataclass(frozen=True)
class CommandResult:
    """What a successful command stored: the stream, its new version and the entries."""

    id: str
    version: int
    entries: list[dict[str, Any]]
    #: The executive whose record the stream belongs to (None: boards, waivers).
    executive_id: str | None = None

    @property
    def event(self) -> dict[str, Any]:
        return self.entries[-1]


def waiver_id(agency: str, cycle: str) -> str:
    return f"WAIVER-{agency}-{cycle}"


#: Every stream id `waiver_id` can give (a cycle is `FYnnnn`). Executives, review boards and
#: appraisals are named by their clients in the same namespace of stream ids, so an id of
#: this form is not theirs to take: it would stand in the place of that agency's waiver for
#: that cycle, which could then never be granted (`api.schemas.common.NewId`).
WAIVER_ID = re.compile(r"WAIVER-.+-FY[0-9]{4}")


def _replay(aggregate: Any, domain_events: Iterable[Any]) -> Any:
    """eventsourcing's `project_aggregate` without its per-event `isinstance` check against
    a runtime-checkable `Protocol`: that check walks the protocol's attributes each time and
    took most of the CPU of loading an aggregate (a complaint's executive has ~25 events).
    Every event here comes from `LedgerMapper` and has `mutate`."""
    for domain_event in domain_events:
        aggregate = domain_event.mutate(aggregate)
    return aggregate


class LedgerApp(Application[str]):
    """SES Ledger's write side on eventsourcing (SQLite or PostgreSQL)."""

    name = "SESLedger"

    def __init__(
        self,
        config: LedgerConfig,
        clock: Callable[[], datetime] | None = None,
        signer: Signer | None = None,
    ) -> None:
        self.config = config
        self.keyring = KeyRing(config.home)
        self._signer = signer
        #: A signer given here is kept; one read from the key ring follows its rotations.
        self._signer_given = signer is not None
        self._signer_stamp: tuple[int, int, int] | None = None
        #: Whether the key in use was loaded for a seal (not only read when the ledger was
        #: opened): the first use loads it again, and fails as ever if it cannot be loaded.
        self._signer_loaded = False
        self._signer_lock = threading.Lock()
        self._sign_pool: ThreadPoolExecutor | None = None
        self.clock = clock or (lambda: datetime.now(UTC))
        self._since_checkpoint = 0
        #: Held around each write to the store (events, Merkle log): the server's write
        #: gate on SQLite (`ledger.write_gate`). Only the write itself is serialised:
        #: a command loads, judges and seals outside it, and a race on the same stream ends
        #: in ConcurrencyConflict, as between processes.
        self._record_gate: AbstractContextManager[object] = contextlib.nullcontext()
        super().__init__(env=config.eventsourcing_env())
        #: Aggregates replayed by this process, brought up to date on each load instead of
        #: replayed whole (`ledger.aggregate_cache`: why that is sound).
        self.aggregates = AggregateCache(config.aggregate_cache_events)
        #: On SQLite the recorder takes the gate itself, once per group commit.
        self._gate_in_recorder = isinstance(self.recorder, LedgerSQLiteRecorder)
        self.merkle_log = MerkleLog(self.recorder)
        # The key is read now, before any command is stamped, as the one a rotation is seen
        # against: read first when the first command was sealed, the key a rotation had
        # started meanwhile sealed that command at its stamp, before the new key's
        # `valid_from` (`verify` failed it). The first use loads the ring again (and reports
        # a key that cannot be loaded then, as before); no key (yet), or a ring that cannot be
        # read now: looked for at the first use (a command that only reads never needs it).
        if not self._signer_given:
            with contextlib.suppress(SigningKeyError, LookupError, TypeError, ValueError):
                stamp = self.keyring.stamp()
                self._signer = self.keyring.signer()
                self._signer_stamp = stamp

    def construct_env(self, name: str, env: EnvType | None = None) -> Environment:
        """The store's settings as `LedgerConfig` derives them from the SES_LEDGER_*
        variables, and nothing else. The library would lay the whole process environment
        under them, by its own names and by the application's (`SESLEDGER_SQLITE_DBNAME`,
        `SESLEDGER_POSTGRES_DBNAME`, `AGGREGATE_CACHE_MAXSIZE`, ...): a stray variable
        could then move the ledger to a store the probe never looked at, unannounced."""
        return Environment(name, dict(env or {}))

    def construct_mapper(self) -> Mapper[str]:
        return LedgerMapper()

    # -- sealing and storing -------------------------------------------------------------

    @property
    def signer(self) -> Signer:
        """The current signing key of the key ring, looked at again (one stat) on each use.

        `ses-ledger keys rotate` closes the current key's validity and starts a new one while a
        server may be running: without looking again, that server would go on signing events
        and checkpoints with the retired key, past the `valid_until` the key list publishes.
        A ring that cannot be read leaves the key in use (as for the token key).
        """
        if self._signer_given and self._signer is not None:
            return self._signer
        stamp = self.keyring.stamp()
        if stamp != self._signer_stamp or not self._signer_loaded:
            with self._signer_lock:
                if stamp != self._signer_stamp or not self._signer_loaded:
                    try:
                        signer = self.keyring.signer()
                    except SigningKeyError:
                        if self._signer is None or not self._signer_loaded:
                            raise
                    else:
                        current = self._signer
                        if current is not None and signer.key_id == current.key_id:
                            signer = current  # the same key, as taken up (a retirement)
                        else:
                            # Taken up once commands may have been stamped (a rotation, or
                            # no key readable when the ledger was opened): noted with the
                            # key (not beside it, where a thread sealing with the old key
                            # would read it: `_seal`).
                            signer = signer.taken_up(_utc(self.clock()))
                        self._signer, self._signer_stamp = signer, stamp
                        self._signer_loaded = True
        if self._signer is None:  # not reached: a first load that failed raised
            raise SigningKeyError("no signing key")
        return self._signer

    def _seal(self, aggregate: LedgerAggregate) -> None:
        """Hash-chain and sign the aggregate's pending events (api-contract.md entries).

        The whole chain is hashed first, then signed in one run: back-to-back Ed25519 calls
        keep its tables warm in the CPU caches (in alternating A/B runs of ten-event commands,
        medians 3-5 us per event lower than hashing and signing each event in turn).
        """
        signer = self.signer
        key_id = signer.key_id
        events = aggregate.pending_events
        prev = aggregate.head_hash
        since = signer.taken_up_at
        if since is not None:
            # A command stamped before a rotation and sealed after it would be signed by
            # the new key at a moment before that key's `valid_from`, and fail `verify`:
            # such events are stamped when this process took the new key up, after it.
            # The moment of the key this command signs with: another thread may have taken
            # a newer key up meanwhile, after this one's `valid_until`.
            for event in events:
                if _utc(event.timestamp) < since:
                    event.__dict__["timestamp"] = since
        chain = []
        for event in events:
            hashed = _hashed_fields(event, prev)
            body, digest = hash_entry(hashed)
            prev = digest.hex()
            chain.append((event, hashed, body, digest))
        signatures = self._sign_all(signer, [digest for _, _, _, digest in chain])
        for (event, hashed, body, digest), signature in zip(chain, signatures, strict=True):
            sealed = sealed_state(body, digest, key_id, signature)
            hashed["hash"] = sealed.hash
            hashed["signature"] = sealed.signature
            hashed["key_id"] = key_id
            # Seal attributes beside the frozen event's fields: written to its __dict__, as
            # object.__setattr__ would, at a third of the cost.
            attributes = event.__dict__
            attributes["ledger_state"] = sealed.state
            attributes["entry_hash"] = sealed.hash
            attributes["ledger_entry"] = hashed
        aggregate.head_hash = prev

    def close(self) -> None:
        if self._sign_pool is not None:
            # Not joined: every `_sign_all` has its signatures before it returns, so the
            # idle thread just ends. `close` also runs from `__del__`, in whatever thread the
            # collector runs, possibly one holding the thread-registry lock that the
            # signing thread needs to exit: a join there never returned.
            self._sign_pool.shutdown(wait=False)
            self._sign_pool = None
        super().close()

    def _sign_all(self, signer: Signer, digests: list[bytes]) -> list[bytes]:
        """Ed25519 signatures of `digests`, in order; a long chain on two threads.

        `cryptography` releases the GIL while it signs, so with a second core a multi-event
        command signs its later half on a helper thread while this one signs the first half
        (in A/B runs of ten-event commands: about 10 % more events per second on SQLite).
        Short chains stay on this thread, where the hand-over would cost more than it saves.
        """
        if len(digests) < SIGN_ON_TWO_THREADS_FROM or _CPUS < 2:
            return [signer.sign(d) for d in digests]
        if self._sign_pool is None:
            with self._signer_lock:
                if self._sign_pool is None:
                    self._sign_pool = ThreadPoolExecutor(1, thread_name_prefix="ses-ledger-sign")
        half = len(digests) // 2
        later = self._sign_pool.submit(_sign_each, signer, digests[half:])
        first = [signer.sign(d) for d in digests[:half]]
        return first + later.result()

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[str]]:
        """`Application.save`, collecting ledger aggregates' events directly.

        The library's `ProcessingEvent.collect_events` tells aggregates from events with
        `isinstance` against runtime-checkable Protocols, about 12 us per save on Python 3.11
        (the walk of the Protocol's members runs on every call); the ledger only saves
        `LedgerAggregate`s, so it collects their events itself and takes the library's path
        for anything else. The rest is the library's method step for step (eventsourcing 9.5).
        """
        if not all(isinstance(obj, LedgerAggregate) for obj in objs):
            return super().save(*objs, **kwargs)
        processing_event: ProcessingEvent[str] = ProcessingEvent()
        for aggregate in objs:
            processing_event.events.extend(aggregate.collect_events())
            processing_event.aggregates[aggregate.id] = aggregate
        processing_event.saved_kwargs.update(kwargs)
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        self.notify(processing_event.events)
        return recordings

    @property
    def record_gate(self) -> AbstractContextManager[object]:
        return self._record_gate

    @record_gate.setter
    def record_gate(self, gate: AbstractContextManager[object]) -> None:
        self._record_gate = gate
        if isinstance(self.recorder, LedgerSQLiteRecorder):
            self.recorder.gate = gate

    def _record(self, processing_event: ProcessingEvent[str]) -> list[Recording[str]]:
        if self._gate_in_recorder:
            return super()._record(processing_event)
        with self.record_gate:
            return super()._record(processing_event)

    def store(
        self,
        *aggregates: LedgerAggregate,
        idempotency: tuple[str, str, str] | None = None,
        creating: bool = False,
    ) -> list[dict[str, Any]]:
        """Seal and store the aggregates' pending events atomically; returns their entries."""
        for aggregate in aggregates:
            self._seal(aggregate)
        kwargs: dict[str, Any] = {}
        if idempotency is not None:
            kwargs["idempotency"] = idempotency
        try:
            recordings = self.save(*aggregates, **kwargs)
        except IntegrityError as exc:
            if idempotency is not None and "idempotency" in str(exc).lower():
                raise DuplicateRequest(idempotency) from None
            if creating:
                first = aggregates[0]
                raise AlreadyExists(first.kind, first.id) from None
            raise ConcurrencyConflict(
                "another write to the same record was stored first; reload and retry"
            ) from None
        entries = [
            {"position": r.notification.id, **r.domain_event.__dict__["ledger_entry"]}
            for r in recordings
        ]
        self._maybe_checkpoint(len(entries))
        return entries

    def _maybe_checkpoint(self, stored: int) -> None:
        """Integrate the Merkle log and sign a checkpoint after every N events (issue 6)."""
        every = self.config.checkpoint_every
        if every <= 0:
            return
        with self._signer_lock:
            self._since_checkpoint += stored
            due = self._since_checkpoint >= every
            if due:
                self._since_checkpoint = 0
        if not due:
            return
        try:
            with self.record_gate:
                self.merkle_log.issue_checkpoint(
                    lambda: self.signer, self.config.origin, min_growth=every
                )
        except Exception:
            # The events are already committed: failing here would answer the write with an
            # error ("nothing was recorded") that a client retries into a second append. The
            # checkpoint is only late; the next write (or the timer, or a read) issues it.
            log.warning("checkpoint after a write failed; it will be retried", exc_info=True)
            with self._signer_lock:
                self._since_checkpoint += every

    def _load(self, cls: type[A], stream_id: str, *, reference: str | None = None) -> A:
        """The stream's aggregate as stored now, for a command to change (a copy of its own:
        `ledger.aggregate_cache`)."""
        try:
            aggregate: LedgerAggregate = self.aggregates.load(
                stream_id,
                lambda: self._replayed(stream_id),
                lambda after: self.recorder.select_events(stream_id, gt=after),
                self.mapper.to_domain_event,
                _replay,
            )
        except AggregateNotFoundError:
            if reference is not None:
                raise UnknownReference(reference, stream_id) from None
            raise NotFound(cls.kind, stream_id) from None
        if not isinstance(aggregate, cls):
            if reference is not None:
                raise UnknownReference(reference, stream_id)
            raise NotFound(cls.kind, stream_id)
        return aggregate

    def _replayed(self, stream_id: str) -> tuple[LedgerAggregate, int]:
        """The stream's aggregate replayed whole (as `repository.get` would), and the bytes
        its stored entries take (what `ledger.aggregate_cache` weighs it by)."""
        stored = self.recorder.select_events(stream_id)
        aggregate = _replay(None, map(self.mapper.to_domain_event, stored))
        if aggregate is None:
            raise AggregateNotFoundError(stream_id)
        return aggregate, sum(len(s.state) for s in stored)

    def _absent(self, cls: type[LedgerAggregate], stream_id: str, note: str = "") -> None:
        if stream_id in self.repository:
            raise AlreadyExists(cls.kind, stream_id, self._kind_of(stream_id), note)

    def _kind_of(self, stream_id: str) -> str | None:
        """The kind of record stored under `stream_id` (None: none, or none readable)."""
        try:
            aggregate = self.repository.get(stream_id, projector_func=_replay)
        except Exception:  # an error path: the refusal stands, only less precise
            return None
        return str(getattr(aggregate, "kind", "")) or None

    def submission(self, submitted_by: str) -> Submission:
        return Submission(submitted_by=submitted_by, recorded_at=self.clock())

    def _result(
        self,
        aggregate: LedgerAggregate,
        idempotency: tuple[str, str, str] | None,
        creating: bool = False,
    ) -> CommandResult:
        entries = self.store(aggregate, idempotency=idempotency, creating=creating)
        return CommandResult(aggregate.id, aggregate.version, entries, aggregate.executive_of())

    # -- reads the write side needs --------------------------------------------------------

    def executive(self, executive_id: str) -> Executive:
        return self._load(Executive, executive_id)

    def appraisal(self, appraisal_id: str) -> Appraisal:
        return self._load(Appraisal, appraisal_id)

    def review_board(self, board_id: str) -> ReviewBoard:
        return self._load(ReviewBoard, board_id)

    @staticmethod
    def _check_version(aggregate: A, expected_version: int | None) -> A:
        """If-Match: the caller's expected version must be the stream's current one."""
        if expected_version is not None and expected_version != aggregate.version:
            raise StaleVersion(expected_version, aggregate.version)
        return aggregate

    # -- commands ------------------------------------------------------------------------

    def register_executive(
        self,
        executive_id: str,
        *,
        name: str,
        title: str,
        pay_plan: str,
        agency: str,
        duty_station: str,
        appointment_type: str,
        probationary: bool,
        appointed_on: date,
        actor: str,
        submitted_by: str,
        idempotency: tuple[str, str, str] | None = None,
    ) -> CommandResult:
        self._absent(Executive, executive_id)
        executive = Executive.register(
            executive_id,
            name=name,
            title=title,
            pay_plan=pay_plan,
            agency=agency,
            duty_station=duty_station,
            appointment_type=appointment_type,
            probationary=probationary,
            appointed_on=appointed_on,
            actor=actor,
            submission=self.submission(submitted_by),
        )
        return self._result(executive, idempotency, creating=True)

    def register_review_board(
        self,
        board_id: str,
        *,
        agency: str,
        federal_register_published_on: date,
        members: list[dict[str, Any]],
        actor: str,
        submitted_by: str,
        idempotency: tuple[str, str, str] | None = None,
    ) -> CommandResult:
        self._absent(ReviewBoard, board_id)
        board = ReviewBoard.register(
            board_id,
            agency=agency,
            federal_register_published_on=federal_register_published_on,
            members=members,
            actor=actor,
            submission=self.submission(submitted_by),
        )
        return self._result(board, idempotency, creating=True)

    def grant_rating_cap_waiver(
        self,
        *,
        agency: str,
        cycle: str,
        granted_on: date,
        reference: str,
        actor: str,
        submitted_by: str,
        idempotency: tuple[str, str, str] | None = None,
    ) -> CommandResult:
        stream_id = waiver_id(agency, cycle)
        self._absent(
            RatingCapWaiver,
            stream_id,
            note=(
                f", made before such ids were refused (2026-12-01): {agency}'s {cycle} waiver "
                "is stored under this id, and cannot be recorded in this ledger"
            ),
        )
        waiver = RatingCapWaiver.grant(
            stream_id,
            agency=agency,
            cycle=cycle,
            granted_on=granted_on,
            reference=reference,
            actor=actor,
            submission=self.submission(submitted_by),
        )
        return self._result(waiver, idempotency, creating=True)

    def set_plan(
        self,
        appraisal_id: str,
        *,
        executive_id: str,
        policy: str,
        period_start: date,
        period_end: date,
        rating_official_id: str,
        communicated_on: date,
        elements: list[dict[str, Any]],
        submitted_by: str,
        idempotency: tuple[str, str, str] | None = None,
    ) -> CommandResult:
        executive = self._load(Executive, executive_id, reference="executive_id")
        self._absent(Appraisal, appraisal_id)
        appraisal = Appraisal.set_plan(
            appraisal_id,
            executive=executive.facts(),
            policy=policy,
            period_start=period_start,
            period_end=period_end,
            rating_official_id=rating_official_id,
            communicated_on=communicated_on,
            elements=elements,
            actor=rating_official_id,
            submission=self.submission(submitted_by),
        )
        return self._result(appraisal, idempotency, creating=True)

    def appraisal_command(
        self,
        appraisal_id: str,
        command: str,
        *,
        submitted_by: str,
        actor: str,
        expected_version: int | None = None,
        idempotency: tuple[str, str, str] | None = None,
        **fields: Any,
    ) -> CommandResult:
        """Run one of the appraisal's commands after the plan (see `APPRAISAL_COMMANDS`)."""
        appraisal = self._check_version(self.appraisal(appraisal_id), expected_version)
        needs = APPRAISAL_COMMANDS[command]
        if "executive" in needs:
            fields["executive"] = self.executive(appraisal.executive_id).facts()
        if "board" in needs:
            board_id = fields.pop("board_id")
            fields["board"] = self._load(ReviewBoard, board_id, reference="board_id").facts()
        getattr(appraisal, command)(actor=actor, submission=self.submission(submitted_by), **fields)
        return self._result(appraisal, idempotency)

    def record_personnel_action(
        self,
        executive_id: str,
        *,
        action: str,
        basis_appraisal_ids: Sequence[str],
        notice_on: date,
        effective_on: date,
        authority: str,
        hearing_requested_on: date | None,
        actor: str,
        submitted_by: str,
        expected_version: int | None = None,
        idempotency: tuple[str, str, str] | None = None,
    ) -> CommandResult:
        executive = self._check_version(self.executive(executive_id), expected_version)
        for basis in basis_appraisal_ids:
            appraisal = self._load(Appraisal, basis, reference="basis_appraisal_ids")
            if appraisal.executive_id != executive_id:
                # another agency's executive is not named: the caller may not read them
                owner = self.executive(appraisal.executive_id)
                whose = (
                    appraisal.executive_id
                    if owner.agency == executive.agency
                    else "an executive of another agency"
                )
                raise UnknownReference(
                    "basis_appraisal_ids",
                    basis,
                    f"is an appraisal of {whose}, not of {executive_id}",
                )
        executive.record_personnel_action(
            action=action,
            basis_appraisal_ids=list(basis_appraisal_ids),
            notice_on=notice_on,
            effective_on=effective_on,
            authority=authority,
            hearing_requested_on=hearing_requested_on,
            actor=actor,
            submission=self.submission(submitted_by),
        )
        return self._result(executive, idempotency)

    def record_complaint(
        self,
        executive_id: str,
        *,
        forum: str,
        filed_on: date,
        summary: str,
        actor: str,
        submitted_by: str,
        expected_version: int | None = None,
        idempotency: tuple[str, str, str] | None = None,
    ) -> CommandResult:
        executive = self._check_version(self.executive(executive_id), expected_version)
        executive.record_complaint(
            forum=forum,
            filed_on=filed_on,
            summary=summary,
            actor=actor,
            submission=self.submission(submitted_by),
        )
        return self._result(executive, idempotency)

    # -- idempotency records ------------------------------------------------------------

    def idempotent_positions(self, scope: str, key: str) -> tuple[str, list[int]] | None:
        """The request hash and stored positions of an earlier request with this key."""
        tables = self.recorder.tables  # type: ignore[attr-defined]
        p = tables.p
        sql = (
            f"SELECT request_hash AS h, positions AS p FROM {tables.idempotency} "
            f"WHERE scope={p} AND key={p}"
        )
        with self.recorder.datastore.transaction(commit=False) as cursor:  # type: ignore[attr-defined]
            cursor.execute(sql, (scope, key))
            row = cursor.fetchone()
        if row is None:
            return None
        return str(row["h"]), list(json.loads(row["p"]))

    def entries_at(self, positions: Sequence[int]) -> list[dict[str, Any]]:
        """Entries at the given global positions (in that order)."""
        out = []
        for position in positions:
            found = self.recorder.select_notifications(start=position, limit=1, stop=position)
            if found:
                out.append(entry_from_state(found[0].state, found[0].id))
        return out


class DuplicateRequest(Exception):
    """Another request with the same idempotency key was stored concurrently."""

    def __init__(self, idempotency: tuple[str, str, str]) -> None:
        super().__init__("an identical request is being stored concurrently")
        self.idempotency = idempotency


#: Appraisal commands after the plan, with the facts each needs loaded from other streams.
APPRAISAL_COMMANDS: dict[str, frozenset[str]] = {
    "review_progress": frozenset(),
    "appraise_detail": frozenset(),
    "extend_period": frozenset(),
    "issue_initial_rating": frozenset({"executive"}),
    "respond": frozenset(),
    "waive_response": frozenset(),
    "request_higher_level_review": frozenset(),
    "recommend_higher_level_review": frozenset(),
    "recommend_by_prb": frozenset({"executive", "board"}),
    "assign_final_rating": frozenset({"executive"}),
}


def _utc(moment: datetime) -> datetime:
    """A moment in UTC; a naive one is taken as UTC, as `format_timestamp` takes it."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _hashed_fields(event: LedgerEvent, prev_hash: str | None) -> dict[str, Any]:
    """The entry's hashed fields, in `HASHED_FIELDS` order (tests hold the order)."""
    return {
        "stream_id": event.originator_id,
        "stream_version": event.originator_version,
        "type": event.type,
        "occurred_on": event.occurred_on.isoformat(),
        "recorded_at": format_timestamp(event.timestamp),
        "actor": event.actor,
        "submitted_by": event.submitted_by,
        "policy": event.policy,
        "data": event.data(),
        "prev_hash": prev_hash,
    }
