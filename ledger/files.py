"""The small files of a ledger home (signing keys, the key ring, the token secret), and the
evidence bundles it exports, written whole or not at all.

A write that fails part-way (a full disk, a home made read-only, a file-size limit) must not
leave a file behind: an empty `token.key` made every later start fail ("the token key is
empty") after the space came back, and an empty `<key_id>.pem` lay beside the keys. So the
bytes go to a hidden temporary file in the same directory, are flushed to the disk, and only
then take the file's name (a hard link where the name must be new, a rename where it
replaces); the directory is flushed after, so a key, or the key ring that publishes it, does
not vanish in a power cut after events signed with it were committed (their commits wait
for the disk).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path
from typing import IO

#: `link` errors of file systems without hard links: the name is then taken by a rename.
_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK}


def open_lock_file(path: Path) -> IO[str]:
    """The lock file `path` beside a ledger (`<ledger.db>.write.lock`, `.projector.lock`),
    opened to hold an `flock` on, and created owner-only (0600) whatever the umask: an
    `flock` needs only an open file, so a lock file others may open (0644 under the usual
    umask, 0666 under 0000, in a home of 0755 that existed) let any local user take the
    write lock and hold every write of the ledger up. An existing file keeps its mode."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    return os.fdopen(fd, "a")


def write_file(path: Path, data: bytes, mode: int | None, *, replace: bool) -> None:
    """Write `data` to `path` (permissions `mode`, whatever the umask; None: as `open` makes
    a file, under the umask) whole or not at all.

    With `replace`, an existing file is replaced in one step; without, `FileExistsError` is
    raised when `path` exists (and it is left as it was). An `OSError` names `path`, not the
    temporary file, and leaves nothing new behind.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror, str(path)) from exc
    finally:
        with contextlib.suppress(OSError):  # gone after a rename; never made (read-only)
            os.unlink(tmp)
    sync_directory(path.parent)


def write_output(
    path: Path, data: bytes, mode: int | None = None, *, new_mode: int | None = None
) -> None:
    """A file the user named for a command's output (a bundle, a checkpoint note, a
    witness state), whole or not at all (`write_file`), through a symbolic link to the file
    it names as `open` would; a pipe or a device (`/dev/stdout`) is written as it is (a
    rename would have put a plain file in its place, and the reader got nothing). A file
    that is there keeps its mode unless `mode` is given, as `open` would keep it: one made
    owner-only before a bundle (personnel data) was exported into it came out 0644. A new
    file gets `new_mode` when given (else the umask's)."""
    if path.exists() and not path.is_file():
        with open(path, "wb") as f:
            f.write(data)
        return
    target = path.resolve()
    if mode is None:
        mode = stat.S_IMODE(target.stat().st_mode) if target.is_file() else new_mode
    write_file(target, data, mode, replace=True)


def _link_new(tmp: Path, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_LINKS:
            raise
        if path.exists():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
        os.replace(tmp, path)


def sync_directory(directory: Path) -> None:
    """Flush a directory's entries to the disk (where the file system allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
