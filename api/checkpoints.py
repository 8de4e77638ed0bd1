"""Checkpoints for the server: on demand (checkpoint, receipts, proofs) and on a timer.

The ledger itself signs one after every N appended events (`LedgerApp.store`); the timer
here adds one every T seconds while the tree grows, so a quiet ledger is never left with
uncovered events for long. Issuing integrates the Merkle log first and is idempotent and
safe across processes (`ledger.log.MerkleLog.issue_checkpoint`), so several workers may all
run it without coordination.

The ledger's reads (event pages, proofs, receipts, the checkpoint) run on the event loop on
SQLite (`api.deps.run_read`); the few calls that must write first (integrate fresh events,
issue a checkpoint) would take the write gate there and stall the loop, so on the loop
they raise `GateNeeded` instead, and the read starts again on a worker thread.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager
from contextvars import ContextVar
from datetime import UTC, datetime

from eventsourcing.persistence import ConnectionUnavailableError, OperationalError

from ledger.application import LedgerApp
from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.log import ProofUnavailable, StoredCheckpoint
from ledger.merkle import EMPTY_ROOT

log = logging.getLogger("ses_ledger.api")

#: True while a read runs on the event loop (`api.deps.run_read`).
ON_LOOP: ContextVar[bool] = ContextVar("ses_ledger_on_loop", default=False)


class GateNeeded(Exception):
    """A read on the event loop must write first: run it on a worker thread instead."""


class Checkpointer:
    def __init__(
        self, ledger: LedgerApp, gate: AbstractContextManager[object], max_age: float = 0.0
    ) -> None:
        self.ledger = ledger
        self.merkle = ledger.merkle_log
        self.origin = ledger.config.origin
        self._gate = gate
        #: Seconds for which `note()` may serve the newest checkpoint although the tree has
        #: grown since (see `note`); 0: never.
        self.max_age = max_age

    def _gated(self) -> AbstractContextManager[object]:
        if ON_LOOP.get():
            raise GateNeeded
        return self._gate

    def latest(self, max_age: float = 0.0) -> StoredCheckpoint | None:
        """The newest checkpoint, issuing one first if the tree has grown past it, unless
        the newest was issued less than `max_age` seconds ago.

        Checking costs reads only, so it is done before the write gate and again inside
        it; issuing writes, so it passes the gate, where concurrent callers queue and the
        ones after the first usually find nothing to do.
        """
        current = self._current(max_age)
        if current is not None:
            return current
        with self._gated():
            current = self._current(max_age)
            if current is not None:
                return current
            return self.merkle.issue_checkpoint(lambda: self.ledger.signer, self.origin)

    def _current(self, max_age: float) -> StoredCheckpoint | None:
        """The newest checkpoint if it covers every committed event or is younger than
        `max_age` seconds, else None."""
        current = self.merkle.latest_checkpoint()
        if current is None:
            return None
        if max_age > 0:
            issued = datetime.fromisoformat(current.issued_at)
            if (datetime.now(UTC) - issued).total_seconds() < max_age:
                return current
        if current.tree_size == self.merkle.size() and not self.merkle.pending():
            return current
        return None

    def note(self) -> str:
        """The newest checkpoint's signed note (an empty tree gets a fresh unstored note).

        It is issued anew when the tree has grown, but at most once per `max_age` seconds:
        under a steady stream of writes every request would otherwise sign and store one,
        so read traffic alone would grow the checkpoint table (a transparency log's
        checkpoint likewise trails its newest entries by a bounded delay). Receipts and
        proofs of a fresh event still get a checkpoint that covers it (`covering`).
        """
        try:
            checkpoint = self.latest(self.max_age)
        except OperationalError as exc:
            checkpoint = self._stored(exc)
        if checkpoint is not None:
            return checkpoint.note
        return sign_checkpoint(
            Checkpoint(self.origin, 0, EMPTY_ROOT), self.origin, self.ledger.signer.private_key
        )

    def _stored(self, exc: OperationalError) -> StoredCheckpoint | None:
        """The newest stored checkpoint when a new one cannot be stored (`exc`: a full disk,
        a file-size limit, a lock held too long): it is still true of the tree it covers,
        as any checkpoint that trails the newest entries is, and witnesses keep being
        answered (they were told 503 for as long as the disk was full). `exc` is raised
        when none is stored, or when the store cannot even be read."""
        try:
            stored = self.merkle.latest_checkpoint()
        except Exception:
            raise exc from None
        if stored is None:
            raise exc
        log.warning(
            "no new checkpoint (%s): serving the one at tree size %d", exc, stored.tree_size
        )
        return stored

    def leaf_index(self, position: int) -> int:
        """The event's leaf index, integrating committed events into the tree if needed."""
        try:
            return self.merkle.leaf_index(position)
        except ProofUnavailable:
            with self._gated():
                self.merkle.integrate()
            return self.merkle.leaf_index(position)

    def integrated(self, tree_size: int) -> None:
        """Make sure the tree holds `tree_size` leaves if the ledger has that many events
        (so proof code never has to integrate, and write, outside the gate)."""
        if tree_size > self.merkle.size():
            with self._gated():
                self.merkle.integrate()

    def covering(self, leaf_index: int) -> StoredCheckpoint:
        """The earliest checkpoint that includes leaf `leaf_index`, issuing one if needed."""
        found = self.merkle.checkpoint_at_least(leaf_index + 1)
        if found is None:
            found = self.latest()
        if found is None or found.tree_size <= leaf_index:
            raise ProofUnavailable(f"no checkpoint covers leaf {leaf_index} yet")
        return found

    def tick(self) -> None:
        """The timer's work: checkpoint if anything was appended since the last one."""
        try:
            self.latest()
        except (OperationalError, ConnectionUnavailableError) as exc:
            # The store cannot take it now (a full disk, a lock held, a server away): one
            # line per tick, not a traceback a minute for as long as that lasts.
            log.warning("timed checkpoint failed: %s; the next tick retries", exc)
        except Exception:  # the next tick retries; the server must keep serving
            log.exception("timed checkpoint failed")
