"""One small surface over any place that holds a store's files, as restic's backends.

What is common to every backend lives here: the protocol (``Backend``: list, stat, read,
write once, delete, compare-and-swap of small files), its four error types, each failure
typed by the backend that knows its storage library, the rules for the standard library's
errors, and ``LocalBackend`` (a folder: folder remotes, fsynced as the local store is). The
fsspec backends are in ``backend_fsspec.py``; retrying, counting and short-read checking
are wrappers around any backend (``backend_wrappers.py``).
"""
from __future__ import annotations

import errno
import fcntl
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISDIR, S_ISFIFO, S_ISLNK, S_ISREG, S_ISSOCK
from typing import Any, Protocol

from .errors import DsError
from .fsutil import fsync_dir

TRANSIENT, CREDENTIALS, DENIED, NO_BUCKET, UNREACHABLE, PERMANENT = (
    "transient", "credentials", "denied", "no-bucket", "unreachable", "permanent")


class NotFound(FileNotFoundError):
    """No such file (a ``FileNotFoundError``, so callers that expect one keep working)."""


class PreconditionFailed(Exception):
    """A compare-and-swap was refused: the file no longer holds what its token was read from."""

    def __init__(self, reason: str = "changed meanwhile; fetch and merge first"):
        super().__init__(reason)
        self.reason = reason


class Permanent(Exception):
    """A failure retrying cannot mend; ``kind`` says which (CREDENTIALS, DENIED, NO_BUCKET,
    UNREACHABLE or PERMANENT), ``cause`` is the storage library's exception, ``where`` the
    host when it is known."""

    def __init__(self, kind: str, cause: BaseException, where: str = ""):
        super().__init__(f"{kind}: {describe(cause)}")
        self.kind, self.cause, self.where = kind, cause, where


class Unsupported(Permanent):
    """The backend cannot do this at all (compare-and-swap on a filesystem without conditions)."""

    def __init__(self, message: str):
        super().__init__(PERMANENT, NotImplementedError(message))
        self.message = message


class Hostile(Permanent):
    """What objstore never puts in a folder it stores into, and never follows: a link below
    the root, a FIFO, socket or device (or a folder) where a file belongs, a file where a
    folder belongs. ``message`` names the path and the fix."""

    def __init__(self, message: str):
        super().__init__(PERMANENT, OSError(message))
        self.message = message


class Transient(Exception):
    """A failure that may pass (network, service, a short read); ``attempts`` is set by
    the retrying wrapper when it gives up."""

    def __init__(self, cause: BaseException | str):
        self.cause = cause if isinstance(cause, BaseException) else self
        super().__init__(describe(cause) if isinstance(cause, BaseException) else cause)
        self.attempts = 1
        self.repeated = False  # set by the retrying wrapper: every try failed the very same way


class ShortRead(Transient):
    """Fewer (or other) bytes than the storage said it holds; retried like a network fault."""


@dataclass(frozen=True)
class Info:
    """What ``stat`` tells of a file; ``token`` is the version compare-and-swap checks
    (ETag, generation), None where the content itself is the version."""

    size: int
    mtime: float
    token: Any = None


class Backend(Protocol):
    """The surface every store location offers; paths are relative to its root."""

    kind: str  # "local", "s3", "gcs", "azure" or "other"

    def list(self, prefix: str) -> dict[str, tuple[int, float]]:
        """Every file under ``prefix`` -> (size, modification time in the storage's clock)."""

    def stat(self, rel: str) -> Info: ...

    def read(self, rel: str, start: int = 0, end: int | None = None) -> bytes:
        """The whole file, or bytes [start, end)."""

    def download(self, rel: str, dest: Path) -> None:
        """The whole file into ``dest`` (large files never pass through memory)."""

    def write(self, rel: str, data: bytes | Path) -> None:
        """Create or replace ``rel``, visible under its name only once complete."""

    def delete(self, rels: list[str]) -> None:
        """Remove files; one already gone is no error."""

    def exists(self) -> bool:
        """Whether the location itself (folder, bucket, container) exists."""

    def read_ref(self, rel: str) -> tuple[bytes | None, Any]:
        """(content, token) of a small file, (None, None) if there is none."""

    def swap_ref(self, rel: str, data: bytes, token: Any) -> None:
        """Write ``data`` only if ``rel`` still holds what ``token`` was read from (None:
        only if it does not exist); else ``PreconditionFailed``."""


class RefsByStat:
    """``read_ref`` over ``stat`` and ``read``: the token is read before the body, so a
    ref that moves in between makes the swap fail (a spurious conflict), never succeed
    on a stale base."""

    def read_ref(self, rel: str) -> tuple[bytes | None, Any]:
        try:
            info = self.stat(rel)  # type: ignore[attr-defined]
            data = self.read(rel)  # type: ignore[attr-defined]
        except NotFound:
            return None, None
        if len(data) != info.size:
            raise ShortRead(f"read {len(data)} bytes of {info.size}")
        return data, data if info.token is None else info.token


def causes(e: BaseException) -> list[BaseException]:
    """``e`` and what it wraps, outermost first: ``__cause__``/``__context__`` and the
    attributes SDKs keep the underlying error in (botocore ``kwargs['error']``, azure
    ``inner_exception``, aiohttp ``os_error``)."""
    out: list[BaseException] = []
    todo: list[Any] = [e]
    while todo and len(out) < 16:
        x = todo.pop(0)
        if not isinstance(x, BaseException) or any(x is y for y in out):
            continue
        out.append(x)
        kwargs = getattr(x, "kwargs", None)
        todo += [x.__cause__, x.__context__, getattr(x, "inner_exception", None),
                 getattr(x, "os_error", None), kwargs.get("error") if isinstance(kwargs, dict) else None]
    return out


def status_kind(status: Any) -> str | None:
    """An HTTP status's kind: 401 no credentials, 403 denied, 408/429/5xx transient,
    other 4xx permanent."""
    try:
        code = int(status)
    except (TypeError, ValueError):
        return None
    if code == 401:
        return CREDENTIALS
    if code == 403:
        return DENIED
    if code in (408, 429) or code >= 500:
        return TRANSIENT
    if 400 <= code < 500 and code not in (404, 409, 412):
        return PERMANENT
    return None


def os_kind(x: BaseException) -> str | None:
    """Kinds of the standard library's errors (by type and errno)."""
    if isinstance(x, PermissionError):
        return DENIED
    if isinstance(x, ConnectionRefusedError):
        return UNREACHABLE
    if isinstance(x, socket.gaierror):  # name resolution: "no such host" will not get better
        return TRANSIENT if x.errno in (socket.EAI_AGAIN,) else UNREACHABLE
    if isinstance(x, OSError):
        if x.errno == errno.ECONNREFUSED:
            return UNREACHABLE
        if x.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.ENAMETOOLONG, errno.ENOTDIR,
                       errno.EISDIR, errno.ELOOP):
            return PERMANENT
        return None
    if isinstance(x, (TypeError, AttributeError, NotImplementedError, ImportError)):
        return PERMANENT  # a wrong option or a bug: the same every time
    return None


def describe(e: BaseException) -> str:
    """An error as one short line: its type and its text, whitespace collapsed."""
    text = " ".join(str(e).split())
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


@contextmanager
def backend_errors(kind_of: Callable[[BaseException], str],
                   refused: Callable[[BaseException], bool] | None = None) -> Iterator[None]:
    """Raise what fails inside as a backend error, by ``kind_of(e)`` (TRANSIENT or a permanent
    kind); our own errors pass as they are. ``refused``: whether an error (or what it wraps)
    says a compare-and-swap's condition failed, raised as ``PreconditionFailed``."""
    try:
        yield
    except Exception as e:
        if refused is not None and any(refused(x) for x in causes(e)):
            raise PreconditionFailed() from None
        if isinstance(e, (NotFound, PreconditionFailed, Permanent, Transient, DsError)):
            raise
        kind = kind_of(e)
        if isinstance(e, FileNotFoundError) and kind != NO_BUCKET:
            raise NotFound(*e.args) from e
        raise (Transient(e) if kind == TRANSIENT else Permanent(kind, e)) from e


def _flock(lock: Path) -> int:
    """An exclusive ``flock`` on ``lock``: the kernel drops it when its holder dies, so a
    push killed in the middle leaves no lock that blocks the next one (an ``O_EXCL`` file
    would). The file is kept; if something removed it meanwhile, lock the new one."""
    for _attempt in range(3):
        with suppress(FileNotFoundError):
            if not S_ISREG(mode := os.lstat(lock).st_mode):
                raise Hostile(not_a_file(lock, mode))
        fd = os.open(lock, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        if not S_ISREG(mode := os.fstat(fd).st_mode):  # replaced since the check
            os.close(fd)
            raise Hostile(not_a_file(lock, mode))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise PreconditionFailed("is being updated by another writer right now; retry") from None
        try:
            same = os.stat(lock, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
    raise PreconditionFailed("has a lock file that keeps being replaced; retry")


def _write_file(path: str | Path, data: bytes | Path, durable: bool) -> None:
    """Create ``path`` (as any file, so a shared folder's permissions hold; never through a
    link or over anything standing there) holding ``data`` (bytes, or a file's content),
    fsynced if ``durable``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    with open(fd, "wb") as out:
        if isinstance(data, Path):
            with open(data, "rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
        else:
            out.write(data)
        if durable:
            out.flush()
            os.fsync(out.fileno())


def fsync_file(path: str | Path) -> None:
    """Make a file written through another handle durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


DAMAGED = ("so the folder is damaged or hostile (objstore puts only files and folders there, "
           "and never follows a link below the folder itself)")


def linked(path: Path) -> str:
    """The message for a link standing where objstore keeps a folder or a file."""
    try:
        target = f" (to {os.readlink(path)})"
    except OSError:
        target = ""
    return (f"{path} is a symbolic link{target}, {DAMAGED}; nothing was read or written through "
            "it. Replace the link with a real folder holding what it points to (or remove it), "
            "then run the command again")


def not_a_file(path: Path, mode: int) -> str:
    """The message for something other than a regular file where objstore keeps a file."""
    if S_ISLNK(mode):
        return linked(path)
    if S_ISDIR(mode):  # as git: refs `a` and `a/b` cannot both be; nothing is damaged
        return (f"{path} is a folder where a file was to be: a name cannot be both a ref and the "
                "folder of others (as `a` and `a/b`), and the remote holds refs under this one; "
                "choose another name")
    what = ("a FIFO (named pipe)" if S_ISFIFO(mode) else "a socket" if S_ISSOCK(mode)
            else "a folder" if S_ISDIR(mode) else "a device or other special file")
    return (f"{path} is {what}, not a regular file, {DAMAGED}; it was not opened. Remove it (or "
            "move it aside), then run the command again")


def no_folder(path: Path) -> str:
    """The message for a file standing where objstore keeps a folder."""
    return (f"{path} is a file where objstore keeps a folder, {DAMAGED}. Remove it (or move it "
            "aside), then run the command again")


def _local_kind(e: BaseException) -> str:
    return next((k for x in causes(e) if (k := os_kind(x)) is not None), TRANSIENT)


def _open_file(path: Path) -> int:
    """A read-only descriptor of the regular file ``path``: anything else (a link, a FIFO, a
    socket, a device, a folder) is ``Hostile``, never opened in a way that could block."""
    mode = os.lstat(path).st_mode
    if not S_ISREG(mode):
        raise Hostile(not_a_file(path, mode))
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    mode = os.fstat(fd).st_mode
    if not S_ISREG(mode):  # replaced since the check
        os.close(fd)
        raise Hostile(not_a_file(path, mode))
    return fd


class LocalBackend(RefsByStat):
    """A folder on this machine (a folder remote): a file is written to a temp name beside
    it, fsynced, renamed into place and its folder fsynced, as the local store writes, so a
    crash leaves the old file or the new one, never a half or lost one; refs change by
    ``flock`` compare-and-swap. ``FolderBackend`` runs the same file operations through an
    fsspec filesystem that wraps a folder.

    What the folder holds is untrusted: nothing is read, written, created, renamed or
    deleted through a link below the root (the root itself may be one), only regular files
    are listed, and reading anything else is ``Hostile`` (never an ``open`` that blocks on a
    FIFO)."""

    kind = "local"

    def __init__(self, root: str | os.PathLike[str], durable: bool = True):
        self.root = Path(root)
        self.durable = durable

    def _path(self, rel: str) -> Path:
        return self.root / rel if rel else self.root

    def path(self, rel: str) -> str:
        return str(self._path(rel))

    def rel(self, path: str) -> str:
        return path[len(str(self.root)) + 1:]

    def probe(self) -> None:
        """Nothing to connect to (remotes probe their endpoint before the first request)."""

    def typed_errors(self) -> AbstractContextManager[None]:
        return backend_errors(_local_kind)

    def _guard(self, rel: str, whole: bool = False) -> Path:
        """``rel``'s path, once no folder on the way to it below the root is a link or a file
        (``whole``: nor is ``rel`` itself a link); one that does not exist ends the check."""
        parts = [p for p in rel.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise Hostile(f"{rel!r} is not a path inside {self.root}")
        path = self.root
        for i, part in enumerate(parts if whole else parts[:-1]):
            path = path / part
            try:
                mode = os.lstat(path).st_mode
            except (FileNotFoundError, NotADirectoryError):
                break
            if S_ISLNK(mode):
                raise Hostile(linked(path))
            if not S_ISDIR(mode) and i < len(parts) - 1:
                raise Hostile(no_folder(path))
        return self._path(rel)

    def list(self, prefix: str) -> dict[str, tuple[int, float]]:
        """Regular files only: a link (to a file or a folder) is neither followed nor listed, nor
        is a FIFO, socket or device; a file removed while listed (a finished writer's lock, a
        renamed temp file) is left out, never an error."""
        out = {}
        with self.typed_errors():
            top = self._guard(prefix, whole=True)
            for dirpath, _dirs, names in os.walk(top):  # never into a linked folder
                for name in names:
                    path = os.path.join(dirpath, name)
                    try:
                        st = os.lstat(path)
                    except FileNotFoundError:
                        continue
                    if S_ISREG(st.st_mode):
                        out[self.rel(path)] = (st.st_size, st.st_mtime)
        return out

    def stat(self, rel: str) -> Info:
        with self.typed_errors():
            path = self._guard(rel)
            st = os.lstat(path)
        if not S_ISREG(st.st_mode):
            raise Hostile(not_a_file(path, st.st_mode))
        return Info(st.st_size, st.st_mtime)

    def read(self, rel: str, start: int = 0, end: int | None = None) -> bytes:
        with self.typed_errors(), open(_open_file(self._guard(rel)), "rb") as f:
            f.seek(start)
            return f.read() if end is None else f.read(max(0, end - start))

    def download(self, rel: str, dest: Path) -> None:
        with self.typed_errors(), open(_open_file(self._guard(rel)), "rb") as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)

    def write(self, rel: str, data: bytes | Path) -> None:
        """As the class says (the fsyncs with ``durable``); a failed write removes its temp file."""
        with self.typed_errors():
            target = str(self._guard(rel))
            folder = os.path.dirname(target)
            tmp = os.path.join(folder, f".tmp-{uuid.uuid4().hex}")
            self._makedirs(folder)
            try:
                self._send(tmp, data)
                self._move(tmp, target)
            except BaseException:
                self._discard(tmp)
                raise
            if self.durable:
                fsync_dir(folder)

    # the file operations of a write (``FolderBackend`` runs them through its filesystem)
    def _makedirs(self, folder: str) -> None:
        """``folder`` and the folders on the way, one at a time below the root, each checked
        not to be a link (the root itself may be one, and is created if missing)."""
        os.makedirs(self.root, exist_ok=True)
        path = self.root
        for part in Path(folder).relative_to(self.root).parts:
            path = path / part
            with suppress(FileExistsError):
                os.mkdir(path)
            mode = os.lstat(path).st_mode
            if S_ISLNK(mode):
                raise Hostile(linked(path))
            if not S_ISDIR(mode):
                raise Hostile(no_folder(path))

    def _send(self, tmp: str, data: bytes | Path) -> None:
        _write_file(tmp, data, self.durable)

    def _move(self, tmp: str, target: str) -> None:
        os.replace(tmp, target)  # a link standing at ``target`` is replaced, not followed

    def _discard(self, tmp: str) -> None:
        with suppress(OSError):  # best effort: the write's own error is what matters
            os.unlink(tmp)

    def delete(self, rels: list[str]) -> None:
        """Remove files, one already gone being no error; when ``durable``, their folders are
        fsynced before returning, so a later step's deletion (a pack, after the index fragment
        that named it) can never outlive this one's in a power loss."""
        with self.typed_errors():
            paths = [self._guard(rel) for rel in rels]
            for path in paths:
                path.unlink(missing_ok=True)  # a link is removed itself, never followed
            if self.durable:
                for folder in sorted({path.parent for path in paths}):
                    with suppress(FileNotFoundError, NotADirectoryError):
                        fsync_dir(folder)

    def exists(self) -> bool:
        return self.root.is_dir()

    def swap_ref(self, rel: str, data: bytes, token: Any) -> None:
        """Under an ``flock`` on ``<name>.lock`` beside the file (the empty lock file stays;
        readers skip ``*.lock``); ``token`` is the content the caller read, None for "does not
        exist yet". The lock and the rename are this machine's own, in a ``FolderBackend`` too."""
        with self.typed_errors():
            target = self._guard(rel)
            LocalBackend._makedirs(self, str(target.parent))
            fd = _flock(target.with_name(target.name + ".lock"))
            try:
                try:
                    current: bytes | None = LocalBackend.read(self, rel)
                except NotFound:
                    current = None
                if current != token:
                    raise PreconditionFailed()
                LocalBackend(target.parent, self.durable).write(target.name, data)
            finally:
                os.close(fd)
