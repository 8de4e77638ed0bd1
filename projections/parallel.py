"""Rebuilding projections on several cores: one process per group of projections.

Projections are independent of each other (own tables, own tracking row), so a rebuild of
several can run as groups side by side: this process rebuilds one group and spawned
processes the others, each reading the log itself. Reading is the cheap part of a rebuild
(decoding, handlers and row writes cost more), so on two cores two groups take little more
than the larger group alone. Each group is an ordinary `Runner.rebuild` of its own
projections, so exactly-once and crash safety hold as in one process: a group killed
mid-way resumes from its own stored positions.

Progress, the result and errors come back over a queue; a stop request (SIGINT/SIGTERM in
the CLI) is relayed to the children through a shared event, so every group commits or
drops its batch in flight the same way.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from ledger.config import LedgerConfig
from ledger.errors import LedgerError, StoreUnavailable, VerificationError
from projections.runner import TRANSIENT_ERRORS, StopFlag

log = logging.getLogger("ses_ledger.projections")

#: Below this many events a rebuild stays in one process: starting one costs about a second.
PARALLEL_FROM = 50_000
#: Seconds between progress messages from a child.
PROGRESS_EVERY = 0.2


class Weighted(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def cost(self) -> float: ...


def plan_groups(projections: Sequence[Weighted], jobs: int) -> list[list[str]]:
    """Split projections into at most `jobs` groups of similar cost (largest first)."""
    groups: list[tuple[float, list[str]]] = [(0.0, []) for _ in range(max(1, jobs))]
    for projection in sorted(projections, key=lambda p: (-p.cost, p.name)):
        index = min(range(len(groups)), key=lambda i: groups[i][0])
        cost, names = groups[index]
        groups[index] = (cost + projection.cost, [*names, projection.name])
    return [names for _cost, names in groups if names]


def rebuild(
    config: LedgerConfig,
    run_here: Callable[[list[str], Callable[[int], None], StopFlag], int],
    groups: list[list[str]],
    *,
    progress: Callable[[int], None] | None = None,
    stop: StopFlag | None = None,
    sizes: Mapping[str, int] | None = None,
) -> int:
    """Rebuild `groups[0]` with `run_here` and every other group in a spawned process.

    `sizes`: the `batch_size` / `flush_every` keywords each child passes to
    `Runner.rebuild`. Returns the lowest position reached (the head, unless stopped early).
    A child's error is raised here as a RuntimeError once every group has ended.
    """
    sizes = dict(sizes or {})
    context = multiprocessing.get_context("spawn")
    children: list[Any] = []
    try:
        messages: Any = context.Queue()
        stop_children = context.Event()
        for index, names in enumerate(groups[1:], start=1):
            child = context.Process(
                target=_child,
                args=(config, names, index, messages, stop_children, sizes),
                name=f"ses-ledger-rebuild-{index}",
                daemon=True,
            )
            child.start()
            children.append(child)
    except OSError as exc:  # no processes here (limits, no /dev/shm): one process does it all
        for child in children:
            child.kill()
            child.join()
        log.warning("parallel rebuild unavailable (%s): rebuilding in this process", exc)
        return run_here(
            [name for group in groups for name in group],
            progress or (lambda _position: None),
            stop if stop is not None else _Never(),
        )
    positions = dict.fromkeys(range(len(groups)), 0)
    ended: dict[int, int] = {}
    errors: list[str] = []
    #: The first error of a group that is the ledger's to report (`_portable`).
    reported: list[LedgerError] = []

    def drain(timeout: float | None = None) -> None:
        if stop is not None and stop.is_set():
            stop_children.set()
        try:
            kind, index, value = messages.get(timeout=timeout) if timeout else messages.get_nowait()
            while True:
                if kind == "error":
                    what, text, position = value
                    errors.append(f"group {groups[index]}: {text}")
                    if what == "verification":
                        reported.append(VerificationError(text, position))
                    elif what == "store":
                        reported.append(StoreUnavailable(f"the store failed: {text}"))
                    ended[index] = positions[index]
                    stop_children.set()
                else:
                    positions[index] = int(value)
                    if kind == "done":
                        ended[index] = int(value)
                kind, index, value = messages.get_nowait()
        except queue.Empty:
            pass
        if progress is not None:
            progress(min(positions.values()))

    def here(position: int) -> None:
        positions[0] = position
        drain()

    def wait(until: Callable[[], bool]) -> None:
        while not until():
            drain(timeout=PROGRESS_EVERY)
            for index, child in enumerate(children, start=1):
                if index not in ended and not child.is_alive() and child.exitcode is not None:
                    drain()  # its last message may still be in the queue
                    if index not in ended:
                        errors.append(f"group {groups[index]}: exited with {child.exitcode}")
                        ended[index] = positions[index]

    try:
        # No need to wait for the children to open the store: this process set the tables up
        # already, so theirs is a read (`Runner.setup`), which no write of ours can block.
        positions[0] = ended[0] = run_here(groups[0], here, _Either(stop, stop_children))
        wait(lambda: len(ended) == len(groups))
    finally:
        if len(ended) < len(groups):  # this process failed: stop the others cleanly
            stop_children.set()
        for child in children:
            child.join()
    if reported:
        raise reported[0]
    if errors:
        raise RuntimeError("parallel rebuild failed: " + "; ".join(errors))
    return min(ended.values())


class _Never:
    def is_set(self) -> bool:
        return False


class _Either:
    """Set when either flag is set (the caller's stop, or a failed child's)."""

    def __init__(self, first: StopFlag | None, second: StopFlag) -> None:
        self.first, self.second = first, second

    def is_set(self) -> bool:
        return (self.first is not None and self.first.is_set()) or self.second.is_set()


class _Orphaned:
    """Set once the parent process is gone (killed): the child then stops at the next page,
    committing or dropping its batch like any stop, rather than running on unattended."""

    def __init__(self, parent: Any) -> None:
        self.parent = parent

    def is_set(self) -> bool:
        return self.parent is not None and not self.parent.is_alive()


class _Throttle:
    """Whether a child reports a position: every `every` seconds, and always at `head`, so
    the parent learns at once that this group has applied the log and is writing its rows
    (at a million events that takes seconds, during which the bar would stand short)."""

    def __init__(self, every: float, head: int) -> None:
        self.every, self.head = every, head
        self.last = -every

    def __call__(self, position: int, now: float) -> bool:
        if now - self.last >= self.every or position >= self.head:
            self.last = now
            return True
        return False


def _portable(exc: BaseException) -> tuple[str, str, int | None]:
    """A group's error as the parent re-raises it: (kind, text, position). A damaged stored
    event or a store that failed is the ledger's to report (the command line says it in one
    line, as when this process's own group meets it: a parallel rebuild, the default on a
    large log, ended in a traceback of a RuntimeError); anything else is unforeseen."""
    if isinstance(exc, VerificationError):
        return "verification", exc.message, exc.position
    if isinstance(exc, (StoreUnavailable, *TRANSIENT_ERRORS)) and not isinstance(exc, OSError):
        return "store", " ".join(str(exc).split()), None
    return "other", f"{type(exc).__name__}: {exc}", None


def _child(
    config: LedgerConfig,
    names: list[str],
    index: int,
    messages: Any,
    stop: Any,
    sizes: dict[str, int],
) -> None:
    """A spawned process: rebuild `names`, reporting progress, the end or the error."""
    # Ctrl-C reaches the whole process group: the parent relays it through `stop`, so the
    # batch in flight ends the same way in every group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: stop.set())
    try:
        from ledger.application import LedgerApp
        from projections.queries import ReadModels

        read_models = ReadModels(LedgerApp(config))
        due = _Throttle(PROGRESS_EVERY, read_models.runner.source.head())

        def progress(position: int) -> None:
            if due(position, time.monotonic()):
                messages.put(("progress", index, position))

        parent = multiprocessing.parent_process()
        orphaned = _Orphaned(parent)
        position = read_models.runner.rebuild(
            names, progress=progress, stop=_Either(stop, orphaned), **sizes
        )
        messages.put(("done", index, position))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        messages.put(("error", index, _portable(exc)))
    # Everything is committed and reported: leave without tearing down millions of cached
    # rows one by one (about a second at a million events), once the report is sent.
    messages.close()
    messages.join_thread()
    os._exit(0)
