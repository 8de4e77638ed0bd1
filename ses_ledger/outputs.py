"""Where a command will write its output: checked before it signs, stores or fetches
anything, so a bad path is one line, not a traceback after the work (or a checkpoint issued
for nothing)."""

from __future__ import annotations

import codecs
import os
import sys
import tempfile
from pathlib import Path


def unwritable(path: Path, *, make_parents: bool) -> str | None:
    """Why a file cannot be written at `path`, or None: checked before anything is signed,
    stored or fetched. With `make_parents`, missing parent directories are to be created (so
    the nearest existing one must take new entries); otherwise the parent must exist."""
    if path.is_dir():
        return f"{path} is a directory"
    if path.exists() and not os.access(path, os.W_OK):
        return f"{path} is not writable"
    where = path.parent
    if make_parents:
        while not where.exists() and where != where.parent:
            where = where.parent
    if not where.exists():
        return f"there is no directory {where}"
    if not where.is_dir():
        return f"{where} is not a directory"
    try:
        fd, probe = tempfile.mkstemp(prefix=".ses-ledger-probe.", dir=where)
    except OSError as exc:
        return f"cannot create files in {where}: {exc.strerror or exc}"
    os.close(fd)
    os.unlink(probe)
    return None


def write_exact(text: str) -> None:
    """`text` on standard output as its UTF-8 bytes, whatever the output's encoding: a
    signed note, whose bytes are what is signed (C2SP signed-note: UTF-8 text; its signature
    lines begin with an em dash), which an output in ASCII (PYTHONIOENCODING=ascii, LC_ALL=C
    with PYTHONUTF8=0) could not say and must not escape (a saved note would not parse)."""
    stream = sys.stdout
    buffer = getattr(stream, "buffer", None)
    if buffer is None or codecs.lookup(stream.encoding or "utf-8").name == "utf-8":
        stream.write(text)
        return
    stream.flush()  # what was written before goes first
    buffer.write(text.encode("utf-8"))
    buffer.flush()
