"""A progress bar for long commands (tqdm), quiet when output is not a terminal."""

from __future__ import annotations

import sys
from types import TracebackType

from tqdm import tqdm


class Progress:
    """`at_total`: the description once the total is reached, for work that goes on after
    it (a rebuild writes its rows once every event is applied: seconds at a million).
    `estimated`: the total is a guess, and the bar ends at the count done."""

    def __init__(
        self,
        total: int,
        desc: str,
        disable: bool = False,
        unit: str = "ev",
        at_total: str | None = None,
        estimated: bool = False,
    ) -> None:
        self._at_total = at_total
        self._estimated = estimated
        self._bar = tqdm(
            total=total,
            desc=desc,
            unit=unit,
            unit_scale=True,
            disable=disable or not sys.stderr.isatty(),
            file=sys.stderr,
        )

    def update_to(self, done: int) -> None:
        self._bar.update(done - self._bar.n)
        if self._at_total is not None and done >= self._bar.total:
            self._bar.set_description(self._at_total)
            self._at_total = None

    def update(self, n: int = 1) -> None:
        self._bar.update(n)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._estimated and exc_type is None and self._bar.n != self._bar.total:
            # The work is done, but the total was an estimate (the demo's): the bar left at
            # 81 % looked like work stopped short. It ends at what was done. (A known total
            # not reached, as a check that stopped early, stays shown as it is.)
            self._bar.total = self._bar.n
            self._bar.refresh()
        self._bar.close()
