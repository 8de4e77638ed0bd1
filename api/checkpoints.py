"""Checkpoints for the server: on demand (checkpoint, receipts, proofs) and on a timer.

The ledger itself signs one after every N appended events (`LedgerApp.store`); the timer
here adds one every T seconds while the tree grows, so a quiet ledger is never left with
uncovered events for long. Issuing integrates the Merkle log first and is idempotent and
safe across processes (`ledger.log.MerkleLog.issue_checkpoint`), so several workers may all
run it without coordination.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager

from ledger.application import LedgerApp
from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.log import ProofUnavailable, StoredCheckpoint
from ledger.merkle import EMPTY_ROOT

log = logging.getLogger("ses_ledger.api")


class Checkpointer:
    def __init__(self, ledger: LedgerApp, gate: AbstractContextManager[object]) -> None:
        self.ledger = ledger
        self.merkle = ledger.merkle_log
        self.origin = ledger.config.origin
        self._gate = gate

    def latest(self) -> StoredCheckpoint | None:
        """The newest checkpoint, issuing one first if the tree has grown past it.

        Checking costs reads only, so it is done before the write gate and again inside
        it; issuing writes, so it passes the gate, where concurrent callers queue and the
        ones after the first usually find nothing to do.
        """
        current = self._current()
        if current is not None:
            return current
        with self._gate:
            current = self._current()
            if current is not None:
                return current
            return self.merkle.issue_checkpoint(self.ledger.signer, self.origin)

    def _current(self) -> StoredCheckpoint | None:
        """The newest checkpoint if it covers every committed event, else None."""
        current = self.merkle.latest_checkpoint()
        if (
            current is not None
            and current.tree_size == self.merkle.size()
            and not self.merkle.pending()
        ):
            return current
        return None

    def note(self) -> str:
        """The newest checkpoint's signed note (an empty tree gets a fresh unstored note)."""
        checkpoint = self.latest()
        if checkpoint is not None:
            return checkpoint.note
        return sign_checkpoint(
            Checkpoint(self.origin, 0, EMPTY_ROOT), self.origin, self.ledger.signer.private_key
        )

    def leaf_index(self, position: int) -> int:
        """The event's leaf index, integrating committed events into the tree if needed."""
        try:
            return self.merkle.leaf_index(position)
        except ProofUnavailable:
            with self._gate:
                self.merkle.integrate()
            return self.merkle.leaf_index(position)

    def integrated(self, tree_size: int) -> None:
        """Make sure the tree holds `tree_size` leaves if the ledger has that many events
        (so proof code never has to integrate, and write, outside the gate)."""
        if tree_size > self.merkle.size():
            with self._gate:
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
        except Exception:  # the next tick retries; the server must keep serving
            log.exception("timed checkpoint failed")
