"""Progress reports of long commands: the rebuild's bar says when it has moved on to writing."""

from __future__ import annotations

import io
import re

import pytest

from projections.parallel import _Throttle
from ses_ledger.progress import Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_takes_its_at_total_description_once_the_total_is_reached(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    screen = _Terminal()
    monkeypatch.setattr("sys.stderr", screen)
    with Progress(total=100, desc="rebuilding", at_total="writing rows") as bar:
        bar.update_to(99)
        assert "writing rows" not in screen.getvalue()
        bar.update_to(100)
        assert screen.getvalue().rsplit("\r", 1)[-1].startswith("writing rows")


@pytest.mark.parametrize("done", [81, 120])
def test_work_done_ends_the_bar_at_what_was_done_whatever_the_estimate(
    done: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ses-ledger demo` sizes its bar by an estimate of the events it will write: a
    finished demo's bar stayed at "81%|... 412/510", as if it had stopped short. A bar whose
    work ends is shown complete, at the count done; one interrupted is left where it was."""
    screen = _Terminal()
    monkeypatch.setattr("sys.stderr", screen)
    with Progress(total=100, desc="demo", estimated=True) as bar:
        bar.update(done)
    last = screen.getvalue().rstrip("\n").rsplit("\r", 1)[-1]
    assert "100%" in last and re.search(rf"\b{done}(\.0)?/{done}(\.0)? ", last), last
    screen = _Terminal()
    monkeypatch.setattr("sys.stderr", screen)
    with pytest.raises(KeyboardInterrupt), Progress(100, "demo", estimated=True) as bar:
        bar.update(40)
        raise KeyboardInterrupt
    assert "40.0/100" in screen.getvalue().rsplit("\r", 1)[-1]
    # a known total (verify's head), not reached: shown as it stood
    screen = _Terminal()
    monkeypatch.setattr("sys.stderr", screen)
    with Progress(total=100, desc="verifying") as bar:
        bar.update(40)
    assert "40.0/100" in screen.getvalue().rsplit("\r", 1)[-1]


def test_a_child_reports_on_its_interval_and_always_at_the_head() -> None:
    due = _Throttle(every=0.2, head=1000)
    assert due(10, now=5.0)  # the first position
    assert not due(20, now=5.1)  # too soon
    assert due(30, now=5.2)  # the interval has passed
    assert due(1000, now=5.25)  # too soon, but the head: the group now writes its rows
