"""The command line under an output encoding that is not UTF-8 (PYTHONIOENCODING=ascii or
latin-1, LC_ALL=C with PYTHONUTF8=0): records hold text beyond ASCII (names, narratives),
and a checkpoint note's signature lines begin with an em dash (C2SP signed-note). Found
running every printing command under such settings against a ledger with such names:
`replay`, `bundle verify` and `checkpoint` ended in a UnicodeEncodeError traceback, and
`bundle verify` then exited 1, the status of evidence against the bundle."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from ledger.application import LedgerApp
from ledger.checkpoint import parse_note
from ledger.config import LedgerConfig
from ses_ledger import cli
from tests.ledger_helpers import point_cli_at

NAME = "Zoë Ñúñez-Łukasz 山田 😀"
ROOT = Path(__file__).resolve().parents[2]


def _cli(
    config: LedgerConfig, env: dict[str, str], *argv: str
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "ses_ledger.cli", *argv],
        env={
            **os.environ,
            "SES_LEDGER_HOME": str(config.home),
            "SES_LEDGER_DB": config.db_url,
            "PYTHONPATH": str(ROOT),
            **env,
        },
        capture_output=True,
        timeout=60,
    )


@pytest.fixture
def named(sqlite_config: LedgerConfig) -> LedgerConfig:
    LedgerApp(sqlite_config).register_executive(
        "E1",
        name=NAME,
        title="Directrice générale",
        pay_plan="ES",
        agency="DOE",
        duty_station="Zürich",
        appointment_type="career",
        probationary=False,
        appointed_on=date(2019, 5, 1),
        actor="hr-1",
        submitted_by="hr-app-1",
    )
    return sqlite_config


def _main(
    monkeypatch: pytest.MonkeyPatch, config: LedgerConfig, encoding: str, *argv: str
) -> tuple[int, bytes]:
    """`ses-ledger ARGV` in this process, its standard output in `encoding` (as Python opens
    it under PYTHONIOENCODING, or LC_ALL=C with PYTHONUTF8=0)."""
    point_cli_at(monkeypatch, config)
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding=encoding, errors="strict", write_through=True)
    monkeypatch.setattr(sys, "stdout", out)
    status = cli.main(list(argv))
    out.flush()
    return status, raw.getvalue()


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_records_beyond_ascii_print_escaped_not_as_a_traceback(
    monkeypatch: pytest.MonkeyPatch, named: LedgerConfig, tmp_path: Path, encoding: str
) -> None:
    bundle = tmp_path / "bundle.json"
    assert (
        _main(
            monkeypatch,
            named,
            "utf-8",
            "bundle",
            "export",
            "--executive",
            "E1",
            "--out",
            str(bundle),
        )[0]
        == 0
    )
    status, out = _main(
        monkeypatch, named, encoding, "replay", "--executive", "E1", "--as-of-position", "1"
    )
    assert status == 0
    assert NAME.encode(encoding, "backslashreplace") in out  # escaped where it cannot be said
    status, out = _main(monkeypatch, named, encoding, "bundle", "verify", str(bundle))
    assert status == 0 and out.endswith(b"BUNDLE VERIFIED\n")
    assert NAME.encode(encoding, "backslashreplace") in out


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_a_checkpoint_note_is_printed_as_its_exact_utf8_bytes(
    monkeypatch: pytest.MonkeyPatch, named: LedgerConfig, encoding: str
) -> None:
    """A note's bytes are what is signed (C2SP signed-note: UTF-8 text): escaped for the
    output's encoding, a saved note would no longer parse."""
    status, out = _main(monkeypatch, named, encoding, "checkpoint")
    assert status == 0
    note = out.decode("utf-8")
    assert "\n\u2014 " in note
    assert parse_note(note)[0].size == 1


def test_a_c_locale_without_utf8_mode_gets_the_note_whole(named: LedgerConfig) -> None:
    """The same through Python's own standard output under LC_ALL=C, PYTHONUTF8=0."""
    done = _cli(named, {"LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}, "checkpoint")
    assert done.returncode == 0 and done.stderr == b"", done.stderr.decode()
    assert parse_note(done.stdout.decode("utf-8"))[0].size == 1


def test_the_standalone_verifier_prints_escaped_not_as_a_traceback(
    monkeypatch: pytest.MonkeyPatch, named: LedgerConfig, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle.json"
    point_cli_at(monkeypatch, named)
    assert cli.main(["bundle", "export", "--executive", "E1", "--out", str(bundle)]) == 0
    done = subprocess.run(
        [sys.executable, str(ROOT / "ledger" / "offline_verify.py"), str(bundle)],
        env={**os.environ, "PYTHONIOENCODING": "ascii"},
        capture_output=True,
        timeout=60,
    )
    assert b"Traceback" not in done.stderr, done.stderr.decode()
    assert done.returncode == 0 and b"BUNDLE VERIFIED" in done.stdout


def test_a_trusted_note_edited_in_a_witness_state_is_named_by_its_file(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    named: LedgerConfig,
    tmp_path: Path,
) -> None:
    """`bundle verify B --checkpoint STATE` (a witness's state file; so with `--url`) hands
    the verifier a copy of the note in a temporary file: a space an editor left after the
    origin was refused naming that copy (/tmp/tmpXXXX/trusted.note, gone by then), not the
    file the user gave, and without the --url path's own check of the note seeing it."""
    bundle, state = tmp_path / "bundle.json", tmp_path / "witness.json"
    point_cli_at(monkeypatch, named)
    assert cli.main(["bundle", "export", "--executive", "E1", "--out", str(bundle)]) == 0
    assert cli.main(["checkpoint"]) == 0
    note = capsys.readouterr().out
    state.write_text(json.dumps({"checkpoint": note.replace("\n", " \n", 1)}) + "\r\n")
    assert cli.main(["bundle", "verify", str(bundle), "--checkpoint", str(state)]) == 2
    err = capsys.readouterr().err
    assert f"{state} holds no checkpoint note: line 1 " in err and "exact" in err, err


def test_an_origin_beyond_ascii_read_in_the_c_locale_is_named_as_such() -> None:
    """SES_LEDGER_ORIGIN=lédger.example/log is a good origin, but under LC_ALL=C with
    PYTHONUTF8=0 Python reads its bytes as surrogates, and the refusal said 'a checkpoint
    origin holds no control characters, found '\\udcc3'', which it does not hold. Found
    running demo with such an origin under each locale (qa-encoding)."""
    from ledger.config import origin_problem

    assert origin_problem("lédger.example/log") is None
    # what Python makes of the environment there: each byte beyond ASCII a surrogate
    problem = origin_problem("lédger.example/log".encode().decode("ascii", "surrogateescape"))
    assert problem is not None and "not UTF-8" in problem and "locale" in problem, problem
