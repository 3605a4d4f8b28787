"""Names that may appear in a version, and the checks applied to every one of them.

Paths from a store or a remote are untrusted input: only plain relative POSIX paths of
plain components pass. Refused: empty, ``.``/``..``, ``/``, backslash, NUL, a drive
letter (``C:``), the store's own folder name, and components over 255 bytes.
"""

from __future__ import annotations

import os

from .errors import UnsafePath

STORE_DIR = ".dsstore"
STORE_INIT_PREFIX = ".dsstore.init-"  # a store being made (.dsstore.init-PID): never versioned
STORE_ENV = "DSSTORE_DIR"  # names the store every command and the SDK use, as GIT_DIR does
GIT_DIR = ".git"  # git's own folder (or a worktree's link file): never versioned, as in git and DVC
IGNORE_FILE = ".dsignore"  # gitignore-style rules for the folder that holds it
TEMP_PREFIX = ".ds-tmp-"  # a file being written by a checkout: .ds-tmp-PID-N (never versioned)


def temp_pid(name: str) -> int | None:
    """The process that writes temp file ``name`` (``.ds-tmp-PID-N``, a name ds keeps for
    itself), or None for any other name."""
    if not name.startswith(TEMP_PREFIX):
        return None
    pid, dash, seq = name[len(TEMP_PREFIX):].partition("-")
    if not (dash and pid.isascii() and pid.isdigit() and seq.isascii() and seq.isdigit()) or len(pid) > 9:
        return None
    return int(pid)


def process_gone(pid: int) -> bool:
    """No process ``pid`` runs here (one of another user's is not gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def pid_space() -> str | None:
    """This machine's boot and PID namespace, in which a process id names one process (a
    host name does not: containers share it); None where the system does not say."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        return f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return None


MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096
_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")  # of a drive (C:)


def check_name(name: str, context: str = "") -> str:
    """Return ``name`` if it is a safe single path component, else raise UnsafePath."""
    problem = None
    if not name or name in (".", ".."):
        problem = "is empty, '.' or '..'"
    elif "/" in name or "\\" in name or "\0" in name:
        problem = "contains '/', '\\' or NUL"
    elif name[1:2] == ":" and name[0] in _LETTERS:
        problem = "starts with a drive letter"
    elif name.casefold() == STORE_DIR:
        problem = f"is the store folder name {STORE_DIR!r}"
    else:
        try:
            if len(name.encode("utf-8")) > MAX_NAME_BYTES:
                problem = f"is longer than {MAX_NAME_BYTES} bytes"
        except UnicodeEncodeError:
            problem = "is not valid UTF-8"
    if problem:
        where = f" in {context}" if context else ""
        raise UnsafePath(f"refusing path component {name[:80]!r}{where}: it {problem}")
    return name


def check_relpath(path: str, context: str = "") -> str:
    """Validate a '/'-separated relative path component by component."""
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise UnsafePath(f"refusing path {path[:80]!r}...: longer than {MAX_PATH_BYTES} bytes")
    for part in path.split("/"):
        check_name(part, context or path)
    return path


def join(folder: str, name: str) -> str:
    return f"{folder}/{name}" if folder else name


def parent_of(path: str) -> str:
    i = path.rfind("/")
    return path[:i] if i >= 0 else ""
