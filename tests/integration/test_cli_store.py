"""The command line when the store cannot be used: one sentence with the reason, exit 69.

Before `ledger/store_probe.py`, an unreachable PostgreSQL kept every command waiting for
eventsourcing's 30-second pool timeout and then printed a traceback that named no reason;
a malformed SES_LEDGER_DB or an unopenable SQLite path printed a traceback too.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from eventsourcing.persistence import OperationalError

from ledger.config import LedgerConfig
from ledger.errors import StoreUnavailable
from ledger.keys import KeyRing
from ledger.store_probe import probe_store
from ses_ledger import cli, cli_projections
from tests.conftest import PG_URL, require_postgres


def _closed_port() -> int:
    """A local port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    home: Path,
    db: str,
    *argv: str,
) -> tuple[int, str]:
    monkeypatch.setenv("SES_LEDGER_HOME", str(home))
    monkeypatch.setenv("SES_LEDGER_DB", db)
    status = cli.main(list(argv))
    return status, capsys.readouterr().err


def _not_a_database(tmp: Path) -> str:
    path = tmp / "notes.txt"
    path.write_text("not a database, but long enough to have a header " * 4)
    return f"sqlite:///{path}"


def _under_a_file(tmp: Path) -> str:
    (tmp / "plain-file").write_text("x")
    return f"sqlite:///{tmp / 'plain-file' / 'ledger.db'}"


@pytest.mark.parametrize(
    ("make_url", "reason"),
    [
        (lambda tmp: f"postgresql://postgres@127.0.0.1:{_closed_port()}/x", "Connection refused"),
        (lambda tmp: "mysql://ledger@db/x", "must start with sqlite:/// or postgresql://"),
        (lambda tmp: f"sqlite:///{tmp}", "it is a directory"),
        (_not_a_database, "file is not a database"),
        (_under_a_file, "cannot create the directory of the SQLite store"),
    ],
    ids=["refused", "scheme", "directory", "not-a-database", "under-a-file"],
)
def test_a_store_that_cannot_be_used_is_named_with_its_reason(
    make_url: object,
    reason: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = make_url(tmp_path)  # type: ignore[operator]
    status, err = _run(monkeypatch, capsys, tmp_path / "home", url, "projections", "status")
    assert status == cli.EXIT_STORE == 69
    assert err.startswith("ses-ledger: ") and reason in err
    assert err.count("\n") == 1, err  # one line, no traceback


def test_an_unknown_postgres_database_is_named_and_the_password_is_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    require_postgres()
    base = PG_URL.rsplit("/", 1)[0].replace(
        "postgresql://postgres@", "postgresql://postgres:s3cret@"
    )
    status, err = _run(monkeypatch, capsys, tmp_path / "home", f"{base}/no_such_db_here", "verify")
    assert status == 69
    assert 'database "no_such_db_here" does not exist' in err
    assert "s3cret" not in err and "postgres:***@" in err


def test_a_reachable_store_passes_the_probe(ledger_config: LedgerConfig) -> None:
    probe_store(ledger_config)  # SQLite file (created) and PostgreSQL schema alike


def test_demo_makes_no_signing_key_for_a_store_it_cannot_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    url = f"postgresql://postgres@127.0.0.1:{_closed_port()}/x"
    status, err = _run(monkeypatch, capsys, home, url, "demo", "--executives", "2")
    assert status == 69 and "Connection refused" in err
    assert not KeyRing(home).exists()


def test_serve_stops_before_starting_workers(tmp_path: Path) -> None:
    home = tmp_path / "home"
    KeyRing(home).init()
    env = {
        **os.environ,
        "SES_LEDGER_HOME": str(home),
        "SES_LEDGER_DB": f"postgresql://postgres@127.0.0.1:{_closed_port()}/x",
    }
    done = subprocess.run(
        [sys.executable, "-m", "ses_ledger.cli", "serve", "--port", "0", "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 69, done.stderr
    assert "Connection refused" in done.stderr and "Traceback" not in done.stderr
    assert "serving" not in done.stderr  # refused before the banner and the workers


def test_a_store_failing_during_a_command_is_reported_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def lost(_args: object) -> int:
        raise OperationalError("server closed the connection\n\tunexpectedly")

    monkeypatch.setattr(cli_projections, "cmd_status", lost)
    status, err = _run(
        monkeypatch,
        capsys,
        tmp_path / "home",
        f"sqlite:///{tmp_path / 'l.db'}",
        "projections",
        "status",
    )
    assert status == 69
    assert err == "ses-ledger: the store failed: server closed the connection unexpectedly\n"


def test_the_probe_error_is_a_ledger_error_with_the_redacted_url() -> None:
    config = LedgerConfig(Path("."), f"postgresql://u:pw@127.0.0.1:{_closed_port()}/x")
    with pytest.raises(StoreUnavailable, match=r"postgresql://u:\*\*\*@127\.0\.0\.1"):
        probe_store(config, timeout=2)
