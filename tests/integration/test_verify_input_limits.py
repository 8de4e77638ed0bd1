"""`ses-ledger bundle verify` and the offline verifier read their input files in pieces
(`ledger.offline_verify.read_text`): an input that cannot be JSON text is refused as soon as
that shows, and none is read past `MAX_INPUT_BYTES`.

`bundle verify /dev/zero` (or `/dev/urandom`, or an endless pipe) read until the memory ran
out: 2.6 GB within 2 s under a 3 GB address-space limit, then "MemoryError"; without one it
would take the machine's memory, and the ledger's server beside it. Each run here is a
process of its own with its address space limited to 2 GiB, so that the old behaviour
fails the test instead of taking the machine.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ledger import offline_verify

_LIMIT = 2 << 30


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (_LIMIT, _LIMIT))


def _verify(*args: str, stdin: int | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {**os.environ, "SES_LEDGER_HOME": "/nonexistent-home"}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "ses_ledger.cli", "bundle", "verify", *args],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limited,  # noqa: PLW1509 - a plain limit, no thread started
        stdin=stdin,
        env=env,
    )
    return done, time.monotonic() - started


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_of_endless_bytes_is_refused_at_once(device: str) -> None:
    done, took = _verify(device)
    assert done.returncode == 2, done.stderr
    assert "the bundle was NOT checked" in done.stderr
    assert f"{device} holds a NUL byte" in done.stderr
    assert took < 30, took


def test_a_trusted_checkpoint_of_endless_bytes_is_refused_at_once(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.json"
    bundle.write_text("{}", encoding="utf-8")
    done, _ = _verify(str(bundle), "--checkpoint", "/dev/zero")
    assert done.returncode == 2, done.stderr
    assert "/dev/zero holds a NUL byte" in done.stderr


def test_a_file_that_is_not_utf_8_is_refused_naming_it(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(b'{"a": "\xff"}')
    done, _ = _verify(str(bundle))
    assert done.returncode == 2, done.stderr
    assert f"{bundle} is not UTF-8 text" in done.stderr


def test_an_endless_stream_of_text_is_read_no_further_than_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process, with the limit at 1 MiB: a FIFO that never ends (`yes '[' |`)."""
    monkeypatch.setattr(offline_verify, "MAX_INPUT_BYTES", 1 << 20)
    fifo = tmp_path / "endless"
    os.mkfifo(fifo)
    written = [0]

    def endless() -> None:
        with open(fifo, "wb") as f:
            try:
                while written[0] < 64 << 20:  # bounded, in case the reader reads on
                    f.write(b"[" * 65536)
                    written[0] += 65536
            except BrokenPipeError:
                pass

    writer = threading.Thread(target=endless, daemon=True)
    writer.start()
    assert offline_verify.main([str(fifo)]) == 2
    writer.join(timeout=30)
    assert f"{fifo} holds more than {1 << 20} bytes" in capsys.readouterr().err
    assert written[0] < 4 << 20


def test_a_bundle_within_the_limit_is_read_as_before(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.json"
    bundle.write_text('\ufeff{"a": "\u00e9\u4e2d\U0001f600"}', encoding="utf-8")
    assert offline_verify.read_text(str(bundle)) == '{"a": "\u00e9\u4e2d\U0001f600"}'
    # a character cut across two pieces of the read is whole in the text
    text = "\u4e2d" * 700_000
    bundle.write_text(text, encoding="utf-8")
    assert offline_verify.read_text(str(bundle)) == text


def test_a_witness_state_of_endless_bytes_is_refused_at_once() -> None:
    """`witness --state /dev/zero` read until the memory ran out, then ended in a
    MemoryError traceback with exit status 1, which says "inconsistent"."""
    env = {**os.environ, "SES_LEDGER_HOME": "/nonexistent-home"}
    done = subprocess.run(
        [sys.executable, "-m", "ses_ledger.cli", "witness", "--state", "/dev/zero"]
        + ["--url", "http://127.0.0.1:9", "--timeout", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limited,  # noqa: PLW1509 - a plain limit, no thread started
        env=env,
    )
    assert done.returncode == 2, done.stderr
    assert "cannot read the witness state /dev/zero: /dev/zero holds a NUL byte" in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
