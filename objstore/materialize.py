"""Writing a version's files into a folder without ever writing outside it.

Rules: paths were validated when their manifests were read; every parent folder is
checked with ``lstat`` (a link or a file standing where a folder must be is removed,
never followed); every file is opened with ``O_NOFOLLOW|O_EXCL``, which fails on
anything already at the name, a link included. Inside a folder this writer made in this
run (or a root its caller just made: ``fresh``) the file is opened under its final
name: nothing of anyone else's can be there, and if something is, ``O_EXCL`` refuses it
and the file takes the general way: a temp name, renamed over the destination. A failed
file is removed, whichever name it had. Links are created last, and only when their
target is relative and stays inside the folder at every step (``link_is_contained``).
Any other link is not written and is reported back. External entries name a URL: every
one is checked against the trust rule (``links.py``) before anything is written, and a
refusal writes nothing.

Speed (many small files): writing in place saves a rename and a temp name per file; the
mode is set with ``fchmod`` only when the umask changed it, and the stat data comes from
``fstat`` of the open file. Small files are written on the calling thread (threads cost
more in GIL hand-offs than they overlap); runs of large files go to a thread pool, a
batch per future. Past ``FORK_FILES`` files, the list is cut into one run per core and
each run but the first is written by a forked child (the per-file Python work is then
shared between cores, which threads cannot do), which sends back its files' stat data or
its error. A child stops between two batches when told to, so a failure anywhere leaves no
half-written file, as with one process.
"""

from __future__ import annotations

import contextlib
import itertools
import marshal
import os
import pickle
import shutil
import stat
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from .chunkstore import ChunkStore
from .errors import DsError
from .links import LinkError, LinkPolicy, LinkRefused, decode_url, following
from .manifest import EXEC, EXTERNAL, LINK, FileEntry
from .paths import TEMP_PREFIX, parent_of
from .quickstatus import fork_cores
from .scan import Stat, lstat_inside

_seq = itertools.count()
_BATCH_FILES, _BATCH_BYTES = 32, 1 << 20
_BIG_FILE = 256 << 10  # files at least this large on average go to the thread pool
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
# files below which one process writes (few files gain nothing from a second process);
# measured on 20,000 files of 1-8 KiB on 2 cores, paired with one process: ds get into
# tmpfs 0.90x the wall time, ds clone onto disk 0.89x (benchmarks/RESULTS.md has the rest)
FORK_FILES = 2_000


REPOSITORY_NAMES = (".dsstore", ".git")  # a store's or git's: never deleted to make room, even forced


def repository_inside(folder: str) -> str | None:
    """The first store or git repository (``.dsstore``, ``.git``: a folder, or git's file
    of a linked worktree; a bare git repository; a folder remote of ds) at or below
    ``folder``, which removing ``folder`` would destroy with every version it holds; None
    when there is none, or ``folder`` is no folder."""
    if os.path.islink(folder) or not os.path.isdir(folder):
        return None
    for here, dirs, files in os.walk(folder):
        found = repository_at(here, dirs, files)
        if found is not None:
            return found
    return None


def repository_at(here: str, dirs: list[str], files: list[str]) -> str | None:
    """The repository a folder walked (``os.walk``'s row) is or holds right inside it."""
    for name in REPOSITORY_NAMES:
        if name in dirs or name in files:
            return os.path.join(here, name)
    bare_git = "HEAD" in files and {"objects", "refs"} <= set(dirs)
    if bare_git or "config" in files and {"packs", "meta"} <= set(dirs):  # or a folder remote of ds
        return here
    return None


def _rmtree(folder: str, path: str) -> None:
    """Remove ``path``'s folder for a forced write; one holding a repository is refused."""
    refuse_repository(folder, path)
    shutil.rmtree(folder)


def refuse_repository(folder: str, path: str, found: str | None = None) -> None:
    """DsError if ``folder`` (the working folder's ``path``) holds a repository (``found``,
    if the caller's walk met it already)."""
    found = found or repository_inside(folder)
    if found is not None:
        raise DsError(f"{path} is a folder holding a repository ({found}) where the version needs "
                      "something else; ds never deletes a repository, --force included: move it out "
                      "of the working folder, then run the command again")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def link_is_contained(path: str, target: str) -> bool:
    """True if link ``path`` -> ``target`` resolves inside the root at every step."""
    if not target or target.startswith("/") or "\\" in target or "\0" in target:
        return False
    depth = path.count("/")  # folders above the link's own folder, inside the root
    for part in target.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            depth -= 1
            if depth < 0:
                return False
        else:
            depth += 1
    return True


def _batches(files: list[tuple[str, FileEntry]]) -> Iterator[tuple[list[tuple[str, FileEntry]], int]]:
    """Runs of files written by one thread, with their bytes: up to 32 files or 1 MiB
    (a larger file goes alone)."""
    batch: list[tuple[str, FileEntry]] = []
    size = 0
    for pe in files:
        batch.append(pe)
        size += pe[1].size
        if len(batch) >= _BATCH_FILES or size >= _BATCH_BYTES:
            yield batch, size
            batch, size = [], 0
    if batch:
        yield batch, size


@dataclass
class WriteReport:
    written: dict[str, Stat] = field(default_factory=dict)  # kept only when asked (record=True)
    count: int = 0  # files and links written
    links_refused: list[str] = field(default_factory=list)


class Materializer:
    def __init__(self, root: str, chunks: ChunkStore, workers: int = 4,
                 progress: Callable[[int, int], None] | None = None, force: bool = False,
                 record: bool = True, links: LinkPolicy | None = None, fresh: bool = False,
                 version: str | None = None, remote: str | None = None):
        """``force``: allow replacing folders and files that stand in the way (callers check
        first that nothing unrecoverable is there; without it such a case is an error).
        ``record``: keep each written file's stat data (for the stat cache) in the report.
        ``links``: which external URLs may be fetched (default: the chunk store's own rule).
        ``fresh``: the caller made ``root`` empty for this writer alone (files at its top
        are then written in place, as in the folders this writer makes).
        ``version``, ``remote``: what is written and where it came from, for messages."""
        self.root = root
        self.version, self.remote = version, remote
        self.links = links
        self._urls: dict[str, tuple[bytes, str]] = {}  # path -> (URL chunk id, URL) once allowed
        self.record = record
        self.force = force
        self.chunks = chunks
        self.workers = workers
        self.progress = progress
        self._dirs: set[str] = {""}
        self._made: set[str] = {""} if fresh else set()  # folders made empty for this writer
        self._prefix = os.path.join(root, "")
        self._done = 0
        self._bytes = 0

    def _abs(self, rel: str) -> str:
        return self._prefix + rel

    def ensure_dir(self, folder: str) -> None:
        """Make ``folder`` a real directory, replacing any link or file in its way."""
        if folder in self._dirs:
            return
        self.ensure_dir(parent_of(folder))
        p = self._abs(folder)
        try:
            st = os.lstat(p)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISDIR(st.st_mode):
            if not self.force:
                raise DsError(f"{folder} is in the way of a folder the version needs; use --force")
            os.unlink(p)  # a link or a file in the way: removed, never followed
            st = None
        if st is None:
            try:
                os.mkdir(p)
                self._made.add(folder)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(p).st_mode):
                    raise DsError(f"{folder} changed while files were written into it") from None
        self._dirs.add(folder)

    def _write_batch(self, batch: list[tuple[str, FileEntry]]) -> list[tuple[str, Stat | int]]:
        """Write a few files on one thread: (path, stat data, or only the size unless recording)."""
        return [self._write_file(path, entry) for path, entry in batch]

    def _write_file(self, path: str, entry: FileEntry) -> tuple[str, Stat | int]:
        folder, _, _name = path.rpartition("/")
        mode = 0o755 if entry.kind == EXEC else 0o644
        dest = self._prefix + path
        if folder in self._made:
            try:
                fd = os.open(dest, _FLAGS, mode)
            except FileExistsError:
                pass  # not ours: replaced through a temp name, as anywhere else
            else:
                return path, self._fill(fd, dest, None, path, entry, mode)
        tmp = f"{self._prefix}{folder}{'/' if folder else ''}{TEMP_PREFIX}{os.getpid()}-{next(_seq)}"
        return path, self._fill(os.open(tmp, _FLAGS, mode), tmp, dest, path, entry, mode)

    def _fill(self, fd: int, name: str, dest: str | None, path: str, entry: FileEntry,
              mode: int) -> Stat | int:
        """Write ``entry``'s bytes into ``fd`` (just created at ``name``), close it, then
        rename it onto ``dest`` if given; on any failure the file is removed. Closed before
        the rename: a write error that shows only at close (a quota, NFS) must not replace
        the file at ``dest``."""
        try:
            if entry.kind == EXTERNAL:
                self._fetch_external(fd, path, self._urls[path][1])
            for data in self._content(entry):
                _write_all(fd, data)
            st = os.fstat(fd)
            if st.st_mode & 0o7777 != mode:  # the umask took bits away
                os.fchmod(fd, mode)
                st = os.fstat(fd)
            if st.st_size != entry.size and entry.kind != EXTERNAL:
                raise DsError(self._wrong_size(path, entry.size, st.st_size))
        except BaseException:
            os.close(fd)
            os.unlink(name)
            raise
        try:
            os.close(fd)  # the descriptor is released even when this fails
            if dest is not None:
                self._replace(name, dest, path)
                st = os.lstat(dest)  # the rename moved the ctime on
        except BaseException:
            with contextlib.suppress(FileNotFoundError):  # renamed already: nothing of ours left
                os.unlink(name)
            raise
        if not self.record:
            return st.st_size
        return Stat(st.st_size, st.st_mtime_ns, st.st_ino, entry.kind, st.st_ctime_ns)

    def _wrong_size(self, path: str, listed: int, held: int) -> str:
        """The message for a file whose chunks hold other than the length its entry lists."""
        version = f"version {self.version[:12]}" if self.version else "the version being written"
        source = f" (from remote {self.remote})" if self.remote else ""
        return (f"{path}: wrote {held} bytes, expected {listed}: {version}{source} lists a length its "
                "chunks do not have, so its metadata is wrong (written so, e.g. by a hostile remote); "
                "`ds fsck` names the version and what reaches it, and `ds fsck --repair` drops a remote's "
                "refs to it")

    def _replace(self, tmp: str, dest: str, path: str) -> None:
        """Rename ``tmp`` over ``dest``; a folder there goes only with ``force``."""
        try:
            os.replace(tmp, dest)
        except OSError:
            if not os.path.isdir(dest) or os.path.islink(dest):
                raise
            if not self.force:
                raise DsError(f"{path} is a folder in the working folder; use --force") from None
            _rmtree(dest, path)
            os.replace(tmp, dest)

    def _content(self, entry: FileEntry):
        """The file's bytes, chunk by chunk (nothing for an external entry: see _fetch_external)."""
        if entry.kind != EXTERNAL:
            for chunk_id, _clen in entry.chunk_list():
                yield self.chunks.get(chunk_id)

    @staticmethod
    def _fetch_external(fd: int, path: str, url: str) -> None:
        """Copy an allowed URL's bytes into ``fd``; a URL that leads back to itself is an error."""
        import fsspec

        from .remote_fs import fsspec_url

        try:
            with following(path, url), fsspec.open(fsspec_url(url), "rb") as f:
                while block := f.read(1 << 22):
                    _write_all(fd, block)
        except LinkError:
            raise
        except (OSError, ValueError) as e:
            raise DsError(f"cannot fetch external file {url}: {e}") from None

    def check_links(self, items: Iterable[tuple[str, FileEntry]]) -> None:
        """Refuse, before anything is written, external entries whose URL the trust rule forbids."""
        externals = [(p, e) for p, e in items if e.kind == EXTERNAL
                     and self._urls.get(p, (b"",))[0] != e.chunk_list()[0][0]]
        if not externals:
            return
        if self.links is None:
            self.links = LinkPolicy.of_store(self.chunks.root)
        refused: list[tuple[str, str, str]] = []
        for path, entry in externals:
            chunk_id = entry.chunk_list()[0][0]
            url = decode_url(self.chunks.get(chunk_id), path)
            why = self.links.refusal(url, chunk_id)
            if why is None:
                self._urls[path] = (chunk_id, url)
            else:
                refused.append((path, url, why))
        if refused:
            path, url, why = refused[0]
            more = f" ({len(refused) - 1} more external entries are refused the same way)"
            raise LinkRefused(self.links.message(path, url, why) + (more if len(refused) > 1 else ""))

    def write(self, items: Iterable[tuple[str, FileEntry]]) -> WriteReport:
        report = WriteReport()
        files, links = [], []
        for path, entry in items:
            (links if entry.kind == LINK else files).append((path, entry))
        self.check_links(files)
        for folder in dict.fromkeys(parent_of(p) for p, _e in files):
            self.ensure_dir(folder)
        self._write_files(files, report)
        created = []
        for path, entry in links:
            target = os.fsdecode(b"".join(self.chunks.get(c) for c, _ in entry.chunk_list()))
            self.remove(path)  # whatever stood there belongs to another version
            if not link_is_contained(path, target):
                report.links_refused.append(path)
                continue
            self.ensure_dir(parent_of(path))
            os.symlink(target, self._abs(path))
            created.append(path)
        # Links may chain through links (a/up -> .., esc -> a/up/../../x): only the final
        # tree tells where each resolves, so check them all once every link exists.
        root = os.path.realpath(self.root)
        for path in created:
            real = os.path.realpath(self._abs(path))
            if real != root and not real.startswith(root + os.sep):
                os.unlink(self._abs(path))
                report.links_refused.append(path)
                continue
            st = os.lstat(self._abs(path))
            if self.record:
                report.written[path] = Stat(st.st_size, st.st_mtime_ns, st.st_ino, LINK, st.st_ctime_ns)
            report.count += 1
            self._tick(0)
        report.links_refused.sort()
        return report

    def _write_files(self, files: list[tuple[str, FileEntry]], report: WriteReport) -> None:
        """Many files: one run per core, each but the first in a forked child (see the
        module's docstring); the first run is written here while the children write theirs.
        The first error (here, else the first child's) is raised once every child stopped."""
        procs = fork_cores() if len(files) >= FORK_FILES and self.workers > 1 else 1
        if procs <= 1 or any(e.kind == EXTERNAL for _p, e in files):
            self._write_here(files, lambda done: self._finish(done, report))
            return
        runs = _runs(files, procs)
        children: list[_Child] = []
        try:
            for run in runs[1:]:
                if not self._fork(run, children):
                    runs[0].extend(run)  # no process to spare: written here
            self._write_here(runs[0], lambda done: self._finish(done, report))
            for child in children:
                self._finish(child.result(), report)
        finally:
            for child in children:
                child.stop()

    def _fork(self, run: list[tuple[str, FileEntry]], children: list[_Child]) -> bool:
        """Write ``run`` in a child process, added to ``children``; False if no process could
        be made. The child answers on a pipe (its files' stat data, or its error) and stops
        between two batches once the parent closes its end of the other pipe. SIGINT and
        SIGTERM wait (``_HeldSignals``) until the child is in its ``try`` and the parent has
        noted it: neither may run the caller's clean-up in the child, nor leave a child
        nobody waits for."""
        fds: list[int] = []
        try:
            fds += os.pipe()
            fds += os.pipe()
        except OSError:
            for fd in fds:
                os.close(fd)
            return False
        answer_r, answer_w, stop_r, stop_w = fds
        held = _HeldSignals()
        try:
            pid = os.fork()
        except OSError:
            held.release()
            for fd in fds:
                os.close(fd)
            return False
        if pid == 0:  # the child: write, answer, and leave without any of the parent's clean-up
            code = 1
            try:
                inherited = [fd for c in children for fd in (c.answer, c.stop_fd)]
                for fd in [answer_r, stop_w, *inherited]:
                    os.close(fd)  # an earlier child's stop pipe open here would keep it writing
                self.progress = None  # another thread of the parent may own the progress display
                os.set_blocking(stop_r, False)
                try:
                    held.release()  # a signal that came meanwhile acts here, inside the try
                    done: list[tuple[str, Stat | int]] = []
                    self._write_here(run, done.extend, stopped=lambda: _closed(stop_r))
                    data = b"R" + marshal.dumps([(p, st if isinstance(st, int) else (
                        st.size, st.mtime_ns, st.ino, st.kind, st.ctime_ns)) for p, st in done])
                except BaseException as e:  # noqa: BLE001 (every error goes back to the parent)
                    data = b"E" + _pickled(e)
                view = memoryview(data)
                while view:
                    view = view[os.write(answer_w, view):]
                code = 0  # a whole answer
            finally:
                os._exit(code)
        try:
            os.close(answer_w)
            os.close(stop_r)
            children.append(_Child(pid, answer_r, stop_w))
        finally:
            held.release()  # the child is noted: an interrupt now stops and reaps it
        return True

    def _write_here(self, files: list[tuple[str, FileEntry]],
                    sink: Callable[[list[tuple[str, Stat | int]]], None],
                    stopped: Callable[[], bool] | None = None) -> None:
        """Write ``files`` here, each batch's results given to ``sink`` in order; before each
        batch, ``stopped()`` True stops it. Small files are written on this thread: a pool
        costs more in GIL hand-offs (a futex call per switch) than it gains; batches of large
        files go to the pool, whose threads decode and write in parallel (zstd and write
        release the GIL)."""
        window: deque[Future[list[tuple[str, Stat | int]]]] = deque()
        pool = None
        try:
            for batch, size in _batches(files):
                if stopped is not None and stopped():
                    raise _Stopped()
                if self.workers <= 1 or size < len(batch) * _BIG_FILE:
                    sink(self._write_batch(batch))
                    continue
                if pool is None:
                    pool = ThreadPoolExecutor(self.workers, thread_name_prefix="ds-write")
                # a bounded window, not every batch at once (gigabytes at a million files)
                window.append(pool.submit(self._write_batch, batch))
                if len(window) >= 2 * self.workers:
                    sink(window.popleft().result())
            while window:
                sink(window.popleft().result())
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)  # after a failure: what has not started is dropped

    def _finish(self, done: list[tuple[str, Stat | int]], report: WriteReport) -> None:
        for path, st in done:
            if isinstance(st, Stat):
                report.written[path] = st
                st = st.size
            report.count += 1
            self._tick(st)

    def check_no_repository(self, paths: Iterable[str]) -> None:
        """Refuse, before anything is written, if writing or removing ``paths`` would delete
        a folder holding a store or a git repository (a nested project), ``force`` or not."""
        for path in paths:
            refuse_repository(self._abs(path), path)

    def remove(self, path: str) -> None:
        """Remove the file or link at ``path``; a folder there only with ``force``.

        Nothing is removed through a link: a path whose parent is a link is not ours.
        """
        st = lstat_inside(self.root, path)
        if st is None:
            return
        if stat.S_ISDIR(st.st_mode):
            if not self.force:
                raise DsError(f"{path} is a folder in the working folder; use --force")
            _rmtree(self._abs(path), path)
        else:
            os.unlink(self._abs(path))

    def prune_empty_dirs(self, folders: Iterable[str]) -> None:
        for folder in sorted(set(folders), key=lambda f: -f.count("/")):
            while folder:
                try:
                    os.rmdir(self._abs(folder))
                except OSError:
                    break
                folder = parent_of(folder)

    def _tick(self, size: int) -> None:
        self._done += 1
        self._bytes += size
        if self.progress is not None:
            self.progress(self._done, self._bytes)


class _HeldSignals:
    """SIGINT and SIGTERM noted instead of acted on, from now until ``release``, which puts
    the handlers back and sends itself what came meanwhile. Only the main thread is ever
    interrupted by a signal: elsewhere there is nothing to hold."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self) -> None:
        import signal
        import threading

        self.got: list[int] = []
        self.old: dict[int, object] = {}
        if threading.current_thread() is threading.main_thread():
            for name in self.SIGNALS:
                number = getattr(signal, name)
                self.old[number] = signal.signal(number, lambda n, _frame: self.got.append(n))

    def release(self) -> None:
        import signal

        old, self.old = self.old, {}
        for number, handler in old.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        got, self.got = self.got, []
        for number in got:
            os.kill(os.getpid(), number)


class _Stopped(Exception):
    """A child stopped between two batches because the parent failed."""


def _closed(fd: int) -> bool:
    """Whether the other end of non-blocking pipe ``fd`` was closed (the parent says: stop)."""
    try:
        return os.read(fd, 1) == b""
    except BlockingIOError:
        return False


def _pickled(e: BaseException) -> bytes:
    """The error and its text: raised in the parent as it is, or as a DsError with its text
    where it cannot travel (an error holding what pickle cannot write or rebuild)."""
    try:
        whole = pickle.dumps(e)
    except Exception:  # noqa: BLE001
        whole = b""
    return marshal.dumps((whole, f"{type(e).__name__}: {e}"))


def _unpickled(data: bytes) -> BaseException:
    whole, text = marshal.loads(data)
    try:
        error = pickle.loads(whole)
    except Exception:  # noqa: BLE001
        return DsError(text)
    return error if isinstance(error, BaseException) else DsError(text)


def _runs(files: list[tuple[str, FileEntry]], n: int) -> list[list[tuple[str, FileEntry]]]:
    """``files`` cut into ``n`` consecutive runs of about equal work (bytes, plus a fixed
    cost per file, which dominates for small files)."""
    cost = [entry.size + _FILE_COST for _path, entry in files]
    total, runs, start, acc = sum(cost), [], 0, 0
    for i, c in enumerate(cost):
        acc += c
        if len(runs) < n - 1 and acc >= total * (len(runs) + 1) / n:
            runs.append(files[start : i + 1])
            start = i + 1
    runs.append(files[start:])
    return [run for run in runs if run] or [[]]


_FILE_COST = 64 << 10  # one more file's cost in bytes written: an estimate, not measured


class _Child:
    """A forked writer: its pid, the pipe it answers on and the one that tells it to stop."""

    def __init__(self, pid: int, answer: int, stop: int):
        self.pid, self.answer, self.stop_fd = pid, answer, stop
        self.reaped = False

    def result(self) -> list[tuple[str, Stat | int]]:
        """The child's files and their stat data (or size); its error raised here."""
        chunks = []
        while block := os.read(self.answer, 1 << 20):
            chunks.append(block)
        status = self._reap()
        data = b"".join(chunks)
        whole = status in (0, None)  # None: reaped elsewhere, its answer is then the evidence
        try:
            if whole and data[:1] == b"R":
                return [(p, st if isinstance(st, int) else Stat(*st)) for p, st in marshal.loads(data[1:])]
            error = _unpickled(data[1:]) if whole and data[:1] == b"E" else None
        except (EOFError, ValueError, TypeError):
            error = None
        if error is not None:
            raise error
        raise DsError("a process writing files ended without a whole answer (was it killed?); run "
                      "the command again")

    def stop(self) -> None:
        """Tell the child to stop before its next batch, and wait for it."""
        if self.stop_fd >= 0:
            os.close(self.stop_fd)
            self.stop_fd = -1
        if not self.reaped:
            with contextlib.suppress(OSError):
                while os.read(self.answer, 1 << 20):  # its answer, unread: let it finish writing
                    pass
            self._reap()
        with contextlib.suppress(OSError):
            os.close(self.answer)

    def _reap(self) -> int | None:
        """Wait for the child; its exit code (None if it was reaped elsewhere)."""
        if self.reaped:
            return None
        try:
            status: int | None = os.waitpid(self.pid, 0)[1]
        except ChildProcessError:
            status = None
        self.reaped = True  # only once waitpid returned: an interrupted wait is tried again
        return None if status is None else os.waitstatus_to_exitcode(status)
