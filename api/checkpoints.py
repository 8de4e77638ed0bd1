"""Checkpoint issuing for the server: on demand, after every N events, and on a timer.

Issuing signs a C2SP note over the current tree (`ledger.log.MerkleLog.issue_checkpoint`),
which is idempotent and safe across processes (the row is keyed by tree size), so several
workers may all run this without coordination. Writes never wait for it: the count trigger
hands the work to one background thread.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from ledger.application import LedgerApp
from ledger.checkpoint import Checkpoint, sign_checkpoint
from ledger.log import MerkleLog, StoredCheckpoint
from ledger.merkle import EMPTY_ROOT

log = logging.getLogger("ses_ledger.api")


class Checkpointer:
    def __init__(self, ledger: LedgerApp, merkle: MerkleLog, origin: str, every: int) -> None:
        self.ledger = ledger
        self.merkle = merkle
        self.origin = origin
        self.every = every
        self._pending = 0
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._running: Future[None] | None = None

    def latest(self) -> StoredCheckpoint | None:
        """The newest checkpoint, issuing one first if the tree has grown past it."""
        checkpoint = self.merkle.issue_checkpoint(self.ledger.signer, self.origin)
        with self._lock:
            self._pending = 0
        return checkpoint

    def note(self) -> str:
        """The newest checkpoint's signed note (an empty tree gets a fresh unstored note)."""
        checkpoint = self.latest()
        if checkpoint is not None:
            return checkpoint.note
        return sign_checkpoint(
            Checkpoint(self.origin, 0, EMPTY_ROOT), self.origin, self.ledger.signer.private_key
        )

    def covering(self, leaf_index: int) -> StoredCheckpoint | None:
        """The earliest checkpoint that includes leaf `leaf_index`, issuing one if needed."""
        found = self.merkle.checkpoint_at_least(leaf_index + 1)
        if found is None:
            found = self.latest()
            if found is not None and found.tree_size <= leaf_index:
                return None
        return found

    def appended(self, events: int) -> None:
        """Count new events; once `every` have accumulated, checkpoint in the background."""
        with self._lock:
            self._pending += events
            due = self._pending >= self.every and (self._running is None or self._running.done())
            if due:
                self._running = self._pool.submit(self._issue_quietly)

    def _issue_quietly(self) -> None:
        try:
            self.latest()
        except Exception:  # a failed background checkpoint is retried by the next trigger
            log.exception("background checkpoint failed")

    def tick(self) -> None:
        """The timer's work: checkpoint if anything was appended since the last one."""
        self._issue_quietly()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
