"""A command's output file (`bundle export --out`, `checkpoint`-like outputs) written over a
file that is there keeps that file's mode, as `open` (and the shell's `>`) would.

An evidence bundle is an executive's record: names, ratings, complaints. An operator who
made the file owner-only (`touch out.json; chmod 600 out.json`) before exporting into it
found it 0644 after: the bundle was written to a new file under the umask and renamed over
the old one, so the mode chosen for it was lost, and every local user could read it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.files import write_output


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_output_written_over_a_private_file_stays_private(
    tmp_path: Path, umask_022: None
) -> None:
    out = tmp_path / "bundle.json"
    out.write_bytes(b"")
    out.chmod(0o600)
    write_output(out, b'{"entries": []}')
    assert out.read_bytes() == b'{"entries": []}'
    assert _mode(out) == 0o600


def test_a_new_output_follows_the_umask_and_a_given_mode_wins(
    tmp_path: Path, umask_022: None
) -> None:
    new = tmp_path / "new.json"
    write_output(new, b"{}")
    assert _mode(new) == 0o644
    state = tmp_path / "state.json"  # the witness's state: always 0600
    state.write_bytes(b"")
    state.chmod(0o644)
    write_output(state, b"{}", 0o600)
    assert _mode(state) == 0o600


def test_through_a_symbolic_link_the_target_keeps_its_mode(tmp_path: Path, umask_022: None) -> None:
    target = tmp_path / "target.json"
    target.write_bytes(b"")
    target.chmod(0o640)
    link = tmp_path / "link.json"
    link.symlink_to(target)
    write_output(link, b"{}")
    assert link.is_symlink() and target.read_bytes() == b"{}"
    assert _mode(target) == 0o640


def test_a_new_bundle_is_owner_only_and_one_written_over_keeps_its_mode(
    tmp_path: Path, umask_022: None
) -> None:
    """A bundle is an executive's record, as personal as `ledger.db` (0600): a new one came
    out 0644 under umask 022, readable by every local user."""
    from ledger.bundle import write_bundle

    new = tmp_path / "new-bundle.json"
    write_bundle({"entries": []}, str(new))
    assert _mode(new) == 0o600
    shared = tmp_path / "shared-bundle.json"
    shared.write_bytes(b"")
    shared.chmod(0o640)
    write_bundle({"entries": []}, str(shared))
    assert _mode(shared) == 0o640
