"""Atomic, durable file writes.

Every mutable file in a store (refs, config, caches, the stage) is replaced whole:
write a temp file in the same folder, fsync it, ``os.replace`` it over the old one,
fsync the folder. A crash leaves the old or the new content, never a mix.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def fsync_dir(path: str | os.PathLike[str]) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new bytes only."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        name_path(e, path)
        raise
    if durable:
        fsync_dir(path.parent)


def name_path(error: BaseException, path: str | os.PathLike[str]) -> None:
    """Give a write error without a file name (a full disk, most often) ``path``, so the
    message says where: "No space left on device: /data/.dsstore/packs"."""
    if isinstance(error, OSError) and error.filename is None and error.errno is not None:
        error.filename = os.fspath(path)


def held_open(path: str | os.PathLike[str]) -> bool | None:
    """Whether a running process has the file at ``path`` open, read from Linux's ``/proc``
    (every process of the file owner's user is looked at, this one included); None where
    that cannot be told: no ``/proc``, or the owner's processes are not this user's to read."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    except OSError:
        return None
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:  # no /proc (not Linux)
        return None
    if not pids:
        return None
    for pid in pids:
        try:
            if os.stat(f"/proc/{pid}").st_uid != st.st_uid:
                continue
            fds = os.listdir(f"/proc/{pid}/fd")
        except FileNotFoundError:  # (the process ended meanwhile)
            continue
        except OSError:
            return None
        for fd in fds:
            try:
                held = os.stat(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if (held.st_ino, held.st_dev) == (st.st_ino, st.st_dev):
                return True
    return False
