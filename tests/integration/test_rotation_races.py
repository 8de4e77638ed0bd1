"""Key rotations racing the writes of a running server, and each other.

Each test holds a race open at its window (monkeypatching there) and then asks `verify`,
or the key ring itself, whether the ledger's own evidence still holds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from ledger.domain.base import Submission
from ledger.entry import entry_from_state
from ledger.keys import Signer
from ses_ledger import cli
from tests.ledger_helpers import point_cli_at, register


def stored(app: LedgerApp) -> list[dict[str, Any]]:
    return [
        entry_from_state(n.state, n.id)
        for n in app.recorder.select_notifications(start=1, limit=10_000)
    ]


def _verified(capsys: pytest.CaptureFixture[str], events: int) -> None:
    capsys.readouterr()
    assert cli.main(["verify", "--quiet"]) == 0, capsys.readouterr()
    assert f"ledger verified: {events} events" in capsys.readouterr().out


def test_a_command_sealed_with_the_old_key_while_another_thread_takes_the_new_one_up(
    ledger_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A server's threads share one `LedgerApp`. One thread seals with the key it looked up
    (the old one); before it reads when the process took up a new key, `keys rotate` closes
    the old key and another thread's command takes the new one up. The first thread must not
    stamp its events at that take-up (after the old key's `valid_until`) and then sign them
    with the old key: `verify` failed them as a retired key signing after its retirement."""
    point_cli_at(monkeypatch, ledger_config)
    server = LedgerApp(ledger_config)  # real clock, as `keys rotate` uses
    register(server)
    real: Callable[[LedgerApp], Signer] = LedgerApp.signer.fget  # type: ignore[attr-defined,assignment]
    rotated: list[str] = []

    def looked_up_then_rotated(app: LedgerApp) -> Signer:
        signer = real(app)
        if app is server and not rotated:
            rotated.append(signer.key_id)
            assert cli.main(["keys", "rotate"]) == 0
            time.sleep(0.005)
            real(app)  # another thread's command, meanwhile: it takes the new key up
        return signer

    monkeypatch.setattr(LedgerApp, "signer", property(looked_up_then_rotated))
    register(server, "E2")
    monkeypatch.undo()
    point_cli_at(monkeypatch, ledger_config)
    entries = stored(server)
    assert entries[-1]["key_id"] == rotated[0]  # sealed with the key it looked up, the old one
    register(server, "E3")  # the new key
    assert stored(server)[-1]["key_id"] != rotated[0]
    server.close()
    _verified(capsys, 3)


def test_a_first_write_stamped_before_a_rotation_and_sealed_after_it(
    ledger_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A process (a server's worker just started, a command line write) stamps its first
    command, then `keys rotate` runs, then the command is sealed: the process took no key up
    before, so it took the new one up without noting when, and sealed the event with the new
    key at its stamp, before the new key's `valid_from`: `verify` failed it."""
    point_cli_at(monkeypatch, ledger_config)
    setup = LedgerApp(ledger_config)
    register(setup)
    setup.close()
    fresh = LedgerApp(ledger_config)
    real_submission = LedgerApp.submission

    def stamped_then_rotated(app: LedgerApp, submitted_by: str) -> Submission:
        submission = real_submission(app, submitted_by)
        time.sleep(0.005)
        assert cli.main(["keys", "rotate"]) == 0
        return submission

    monkeypatch.setattr(LedgerApp, "submission", stamped_then_rotated)
    register(fresh, "E2")
    monkeypatch.undo()
    point_cli_at(monkeypatch, ledger_config)
    first, second = stored(fresh)
    assert first["key_id"] != second["key_id"]  # the first write was sealed by the new key
    fresh.close()
    _verified(capsys, 2)
