"""A command that runs out of memory or threads says so in one line, exit 71; a demo stopped
by a full disk says what it stored.

Under a memory limit (`prlimit --as=52000000 ses-ledger verify`) `verify` printed a
MemoryError traceback and exited 1, the status that says the ledger does not verify; `keys
rotate` did the same once its new key was published. The limit itself is impractical in a
test (where Python fails first depends on the machine), so the error is raised where the
real one was met.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from eventsourcing.persistence import OperationalError

from ledger import verify
from ledger.application import LedgerApp
from ledger.config import LedgerConfig
from ledger.keys import KeyRing
from ses_ledger import cli
from tests.integration.test_home_faults import _ledger_with_events
from tests.ledger_helpers import point_cli_at, register

ONE_LINE = (
    "ses-ledger: out of memory (or threads): the command stopped; what it had committed "
    "stays, run it again with more memory\n"
)


@pytest.mark.parametrize(
    "exc",
    [MemoryError(), RuntimeError("can't start new thread")],
    ids=["memory", "threads"],
)
def test_verify_out_of_memory_is_exit_71_in_one_line_not_a_failed_check(
    sqlite_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    exc: Exception,
) -> None:
    _ledger_with_events(sqlite_config, 3)
    point_cli_at(monkeypatch, sqlite_config)

    def short(*_args: object, **_kwargs: object) -> None:
        raise exc

    monkeypatch.setattr(verify, "verify_with_ring", short)
    assert cli.main(["verify", "--quiet"]) == cli.EXIT_RESOURCES == 71
    printed = capsys.readouterr()
    assert printed.err == ONE_LINE and printed.out == ""
    monkeypatch.undo()  # the ledger is whole: verify passes once there is memory again
    point_cli_at(monkeypatch, sqlite_config)
    assert cli.main(["verify", "--quiet"]) == 0


def test_a_rotation_out_of_memory_after_publishing_says_so_and_exits_71(
    sqlite_config: LedgerConfig,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _ledger_with_events(sqlite_config, 3)
    point_cli_at(monkeypatch, sqlite_config)
    before = len(KeyRing(sqlite_config.home).public_keys())

    def short(*_args: object) -> None:
        raise MemoryError

    monkeypatch.setattr(cli, "_latest_recorded_at", short)
    assert cli.main(["keys", "rotate"]) == 71
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.endswith(ONE_LINE), err
    assert "the old key" in err  # the rotation's own line: closed at the clock's time
    keys = KeyRing(sqlite_config.home).public_keys()
    assert len(keys) == before + 1 and [k.valid_until is None for k in keys][-1]
    monkeypatch.undo()
    point_cli_at(monkeypatch, sqlite_config)
    assert cli.main(["verify", "--quiet"]) == 0


def test_other_runtime_errors_are_not_taken_for_a_lack_of_memory(
    sqlite_config: LedgerConfig, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ledger_with_events(sqlite_config, 1)
    point_cli_at(monkeypatch, sqlite_config)

    def bug(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(verify, "verify_with_ring", bug)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["verify", "--quiet"])


def test_a_demo_stopped_by_a_full_disk_says_how_many_events_it_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`prlimit --fsize=200000 ses-ledger demo --executives 10 --years 3` stored 15 events
    and said only "the store failed: disk I/O error"; the next run then refused the home
    ("already holds 15 events") without its being told that they were this demo's."""
    from ses_ledger import demo

    def fills_the_disk(app: LedgerApp, *_args: object, **_kwargs: object) -> None:
        register(app, "E-DEMO-1")
        register(app, "E-DEMO-2")
        raise OperationalError("disk I/O error")

    monkeypatch.setattr(demo, "run_demo", fills_the_disk)
    config = LedgerConfig(home=tmp_path / "home", db_url=f"sqlite:///{tmp_path / 'l.db'}")
    point_cli_at(monkeypatch, config)
    assert cli.main(["demo", "--executives", "2", "--years", "1"]) == 69
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "Traceback" not in err[0], err
    assert "stopped:" in err[0] and "now holds 2 events" in err[0]
    assert "choose a new SES_LEDGER_HOME" in err[0]
    assert err[1] == "ses-ledger: the store failed: disk I/O error"
