"""Keeps the read models current from a background thread, so reads never do projection work.

A read must see every write this process has acknowledged (read-your-writes): it waits, on a
condition variable, until the projections have passed the last position this process wrote.
The thread catches up in batches, so a burst of writes costs one projection transaction, not
one per read. Writes by other processes are picked up within `interval` seconds. Without the
thread (lifespan not run), reads catch up inline, as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

log = logging.getLogger("ses_ledger.api")


class Projector:
    def __init__(
        self,
        read_models: Callable[[], Any],
        gate: AbstractContextManager[object],
        interval: float = 0.5,
    ) -> None:
        self._read_models = read_models
        self._gate = gate
        self.interval = interval
        self._cond = threading.Condition()
        self._wanted = 0
        self._reached = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="projector", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=30)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def written(self, position: int) -> None:
        """This process stored an event at `position`: wake the thread to project it."""
        with self._cond:
            if position > self._wanted:
                self._wanted = position
                self._cond.notify_all()

    def ready(self, timeout: float = 10.0) -> Any:
        """The read models, once they include this process's writes."""
        read_models = self._read_models()
        if not self.running:
            with self._gate:
                read_models.catch_up()
            return read_models
        with self._cond:
            # The writes acknowledged before this read began, not those that arrive while it
            # waits: under a steady stream of writes the moving target is never reached.
            target = self._wanted
            if not self._cond.wait_for(lambda: self._reached >= target, timeout):
                log.warning("read models are %s events behind", target - self._reached)
        return read_models

    def ready_nowait(self) -> Any | None:
        """The read models if they already include this process's acknowledged writes (no
        waiting, so the caller may be the event loop), else None."""
        if not self.running:
            return None
        with self._cond:
            if self._reached < self._wanted:
                return None
        return self._read_models()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                target = self._wanted
            try:
                with self._gate:
                    reached = int(self._read_models().catch_up())
            except Exception:  # keep serving stale reads rather than none; retried next round
                log.exception("projection catch-up failed")
                self._stop.wait(self.interval)
                continue
            with self._cond:
                self._reached = max(reached, target, self._reached)
                self._cond.notify_all()
                if self._wanted <= self._reached:
                    self._cond.wait(self.interval)
