"""Turning files into file entries and stored chunks.

Per-file Python work dominates at 100k+ files, so reading, hashing and compressing run
on a thread pool (xxhash, blake3 and zstd release the GIL) while one thread appends the
encoded chunks to the pack in a fixed order. Large files are read in blocks of a few
MiB, cut with FastCDC (a chunk is cut only once the block holds ``max_size`` bytes from
its start, so the cut points are those of the whole file) and their chunks encoded in
parallel inside a bounded window, so memory stays bounded whatever the file size
(tests/test_resources.py). They are read, not mapped: a file truncated while it is
read gives a short read, where a map gave SIGBUS and killed the process.

A file that changes while it is read (its size or time differ at the end, or it ends
early) is read again from a fresh ``stat``, a few times at most; one that keeps changing
is an error that names it. The entry and the stat recorded are always of the same read.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, BinaryIO

from .chunking import ChunkParams, cut
from .chunkstore import ChunkStore
from .errors import DsError
from .manifest import LINK, FileEntry
from .packs import FLAG_DELTA, FLAG_ZSTD, encode_chunk
from .scan import Stat

Progress = Callable[[int, int], None]  # (files done, bytes done)
Encoded = tuple[bytes, bytes | memoryview | None, int, int]  # id, stored (None: known), raw, flags
# A delta is kept only if it is this much smaller than the chunk stored whole: a delta
# costs a second read (its base) each time it is decoded
DELTA_SHARE = 0.75
MAX_DELTA_BASE = 4 * 1024 * 1024
_BLOCK = 8 * 1024 * 1024  # a large file is read this much at a time (or twice max_size, if more)
READ_ATTEMPTS = 3  # reads of a file that changes while it is read, before giving up on it
# small files go to the pool in batches (one task, one future for many files): per-task
# overhead, paid on the thread that also stores every chunk, was a fifth of an add's time
BATCH_FILES = 32
BATCH_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Job:
    """One file to ingest: slotted, and its absolute path made on use (a million jobs)."""

    path: str  # store path
    stat: Stat
    root: str = ""  # the working folder the path is relative to, shared by every job
    src: str | None = None  # where the bytes are, when not at root/path (SDK add_files)
    name: str | None = None  # the path's last part, if the caller holds it already (shared, not copied)
    base: bytes | None = None  # the chunk of this file's previous version: a delta may be stored against it

    @property
    def abspath(self) -> str:
        """``os.path.join(root, path)``, spelled out: it runs once a file, on the pool."""
        if self.src is not None:
            return self.src
        root = self.root
        if not root:
            return self.path
        return root + self.path if root[-1] == "/" else f"{root}/{self.path}"

    @property
    def entry_name(self) -> str:
        return self.name if self.name is not None else self.path.rpartition("/")[2]


def default_workers() -> int:
    return max(2, min(8, os.cpu_count() or 2))


class FileReader:
    """Where the ingestor reads a job's bytes: files on this machine. Another source (an
    fsspec URL, ``url_ingest.UrlReader``) gives the same three answers, so every byte that
    enters a store is cut, hashed and packed by the one ``Ingestor``."""

    def read(self, job: Job) -> bytes:
        """The whole of a small file (a link's target); ``_Changed`` if its size moved."""
        if job.stat.kind == LINK:
            return os.fsencode(os.readlink(job.abspath))
        # os.read of one byte more than the scan saw: no file object, no read to find the
        # end (measured: 40% less time a file than open().read()); a file that grew reads long
        size = job.stat.size
        fd = os.open(job.abspath, os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.read(fd, size + 1)
            while len(data) < size:  # a short read: some file systems give less than asked
                more = os.read(fd, size + 1 - len(data))
                if not more:
                    break
                data += more
        finally:
            os.close(fd)
        check_unchanged(job, len(data))
        return data

    @contextmanager
    def open(self, job: Job) -> Iterator[tuple[BinaryIO, int, Callable[[], bool]]]:
        """(file, its size now, whether it is still the same file once read)."""
        with open(job.abspath, "rb", buffering=0) as f:
            before = os.fstat(f.fileno())

            def same() -> bool:  # ctime: also a write that kept the mtime
                after = os.fstat(f.fileno())
                return (after.st_size, after.st_mtime_ns, after.st_ctime_ns) == (
                    before.st_size, before.st_mtime_ns, before.st_ctime_ns)
            yield f, before.st_size, same

    def stat(self, job: Job) -> Stat | None:
        """The file's stat now (FileNotFoundError if it is gone)."""
        return Stat.of(os.stat(job.abspath) if job.src is not None else os.lstat(job.abspath))


class Ingestor:
    """Encodes files into ``chunks``; results come back as FileEntry per path."""

    def __init__(self, chunks: ChunkStore, params: ChunkParams, level: int,
                 workers: int | None = None, progress: Progress | None = None,
                 reader: Any = None):
        self.chunks = chunks
        self.reader = reader or FileReader()
        self.algo = chunks.algo
        self.params = params
        self.level = level
        self.workers = workers or default_workers()
        self.progress = progress
        self.files_done = 0
        self.bytes_done = 0
        self.bytes_new = 0
        self.reread: list[str] = []  # files that changed while they were read, and were read again
        self._write_lock = threading.Lock()
        self._stop = False  # set when the run is failing or interrupted: large files stop being cut

    def _encode(self, raw: bytes | memoryview, base: bytes | None = None) -> Encoded:
        chunk_id = self.algo.digest(raw)
        if self.chunks.has(chunk_id):
            return chunk_id, None, len(raw), 0
        stored, flags = encode_chunk(raw, self.level)
        if base is not None and base != chunk_id:
            delta = self._delta(raw, base)
            if delta is not None and len(delta) < len(stored) * DELTA_SHARE:
                return chunk_id, delta, len(raw), FLAG_ZSTD | FLAG_DELTA
        return chunk_id, stored, len(raw), flags

    def _delta(self, raw: bytes | memoryview, base: bytes) -> bytes | None:
        """``raw`` as a delta against chunk ``base``, or against the chunk ``base`` is itself a
        delta of (a base is never a delta); None when no base is at hand."""
        from .packs import encode_delta

        chunks = self.chunks
        try:
            loc = chunks.locate(base)
            if loc is not None and loc.flags & FLAG_DELTA:
                base = chunks.base_of(loc)
                loc = chunks.locate(base)
            if loc is None or loc.flags & FLAG_DELTA or loc.raw_len > MAX_DELTA_BASE:
                return None
            return encode_delta(raw, base, chunks.read_at(base, loc), self.level)
        except Exception:  # a damaged or unreadable base, a zstd error: the chunk is stored whole
            return None

    def _store(self, enc: Encoded) -> None:
        chunk_id, stored, raw_len, flags = enc
        if stored is None:
            return
        with self._write_lock:  # large files are cut by two threads at once
            if self.chunks.put_encoded(chunk_id, stored, raw_len, flags):
                self.bytes_new += raw_len

    def _small(self, job: Job) -> tuple[Job, FileEntry, Encoded | None]:
        """A file of one chunk (or a link); the job returned carries the stat of the read
        that made the entry. Raises _Grew if a re-read finds the file is large now."""
        for attempt in range(READ_ATTEMPTS):
            try:
                return (job, *self._small_once(job))
            except _Changed:
                job = self._again(job, attempt)
                if job.stat.kind != LINK and job.stat.size > self.params.min_size:
                    raise _Grew(job) from None
        raise AssertionError("unreachable")

    def _small_batch(self, jobs: list[Job]) -> list[tuple[Job, FileEntry, Encoded | None] | Exception]:
        """``_small`` of each job, in order; a job's failure (or ``_Grew``) is its result, so
        the files before it are stored and emitted as if each were its own task."""
        out: list[tuple[Job, FileEntry, Encoded | None] | Exception] = []
        for job in jobs:
            try:
                out.append(self._small(job))
            except Exception as e:
                out.append(e)
        return out

    def _small_once(self, job: Job) -> tuple[FileEntry, Encoded | None]:
        data = self.reader.read(job)
        name = job.entry_name
        if not data:
            return FileEntry(name, job.stat.kind, 0, self.algo.digest(b"")), None
        enc = self._encode(data, job.base)
        return FileEntry(name, job.stat.kind, len(data), enc[0]), enc

    def _large(self, job: Job, pool: ThreadPoolExecutor) -> tuple[Job, FileEntry]:
        """A file of several chunks, read again if it changed meanwhile (see _small)."""
        for attempt in range(READ_ATTEMPTS):
            try:
                if job.stat.size > self.params.min_size:
                    return job, self._large_once(job, pool)
                entry, enc = self._small_once(job)  # read again, it is one chunk now
                if enc is not None:
                    self._store(enc)
                return job, entry
            except _Changed:
                job = self._again(job, attempt)
        raise AssertionError("unreachable")

    def _again(self, job: Job, attempt: int) -> Job:
        """The job with the file's stat now, for another read; DsError after the last try."""
        if attempt + 1 >= READ_ATTEMPTS:
            raise DsError(f"{job.path} kept changing while it was being added ({READ_ATTEMPTS} reads); "
                          "add it again once nothing is writing to it")
        try:
            now = self.reader.stat(job)
        except FileNotFoundError:
            raise DsError(f"{job.path} was removed while it was being added; "
                          "run the command again") from None
        if now is None or (now.kind == LINK) != (job.stat.kind == LINK):
            raise DsError(f"{job.path} was replaced by another kind of file while it was being "
                          "added; run the command again")
        self.reread.append(job.path)
        return replace(job, stat=now)

    def _large_once(self, job: Job, pool: ThreadPoolExecutor) -> FileEntry:
        with self.reader.open(job) as (f, size, same):
            check_unchanged(job, size)
            whole = self.algo.new()
            chunks: list[tuple[bytes, int]] = []
            window: deque[Future[Encoded]] = deque()
            done = 0
            try:
                for piece in self._pieces(f, size):
                    if self._stop:
                        raise _Stopped(job.path)
                    whole.update(piece)
                    window.append(pool.submit(self._encode, piece))
                    # deep enough that the pool still has work while this thread reads and
                    # cuts the next block or waits for the pack (2x the workers left it idle)
                    if len(window) >= 4 * self.workers:
                        done = self._finish_piece(window.popleft(), chunks, done)
                while window:
                    done = self._finish_piece(window.popleft(), chunks, done)
            except BaseException:
                for fut in window:
                    fut.cancel()
                raise
            unchanged = same()
        if done != size or not unchanged:
            raise _Changed(job.path)
        return FileEntry(job.entry_name, job.stat.kind, size, whole.digest(), tuple(chunks))

    def _pieces(self, f, size: int) -> Iterator[memoryview]:
        """The chunks of the first ``size`` bytes of ``f``, read a block at a time. A chunk
        is cut only where the buffer holds ``max_size`` bytes from its start (or the file's
        end), so the cut points are exactly those of cutting the whole file at once. Raises
        _Changed if the file ends early."""
        max_size = self.params.max_size
        block = max(_BLOCK, 2 * max_size)
        buffers: list[bytearray] = []
        carry = b""
        pos = 0
        while True:
            # the first read is short, so the pool has chunks to encode sooner
            want = min(block if pos else 2 * max_size, size - pos)
            view = memoryview(_free_buffer(buffers, block + max_size))[: len(carry) + want]
            view[: len(carry)] = carry
            filled = len(carry)
            while filled < len(view):
                n = f.readinto(view[filled:])
                if not n:
                    raise _Changed("")  # shorter than it was a moment ago
                filled += n
            pos += want
            last = pos >= size
            start = 0
            piece = None
            for piece in cut(view, self.params):
                if not last and len(view) - start < max_size:
                    break  # its cut point may lie past this block: cut it with the next one
                yield piece
                start += len(piece)
            if last:
                return
            carry = bytes(view[start:])
            del view, piece  # the buffer is free again once the pieces in flight are done

    def _finish_piece(self, fut: Future[Encoded], chunks: list[tuple[bytes, int]], done: int) -> int:
        """Store one encoded piece of a large file; returns the file offset now fully stored."""
        enc = fut.result()
        self._store(enc)
        chunks.append((enc[0], enc[2]))
        return done + enc[2]

    def run(self, jobs: Iterable[Job],
            sink: Callable[[Job, FileEntry], None] | None = None) -> dict[str, FileEntry]:
        """Encode every job; returns path -> FileEntry. Chunks are put but not flushed.

        With ``sink``, each (job, entry) goes to it as it is done and nothing is kept
        (the returned map stays empty): at a million files that map alone is ~300 MB.
        """
        out: dict[str, FileEntry] = {}

        def keep(job: Job, entry: FileEntry) -> None:
            out[job.path] = entry
        emit = sink if sink is not None else keep
        # a killed add left packs no fragment names: index their chunks before storing any
        self.chunks.recover()
        big: list[Job] = []
        window: deque[tuple[Job, Future]] = deque()
        try:
            self._run(jobs, emit, big, window)
        except BaseException:
            # the pools are done: publish and index what was stored, so that running the
            # command again finds it (best effort; it raises nothing of its own)
            self.chunks.keep()
            raise
        return out

    def _run(self, jobs: Iterable[Job], emit: Callable[[Job, FileEntry], None], big: list[Job],
             window: deque[tuple[Job, Future]]) -> None:
        limit = self.params.min_size
        with ThreadPoolExecutor(self.workers, thread_name_prefix="ds-ingest") as pool:
            try:
                batch: list[Job] = []
                size = 0
                for job in jobs:
                    if job.stat.kind != LINK and job.stat.size > limit:
                        big.append(job)
                        continue
                    batch.append(job)
                    size += job.stat.size
                    if len(batch) >= BATCH_FILES or size >= BATCH_BYTES:
                        window.append((job, pool.submit(self._small_batch, batch)))
                        batch, size = [], 0
                        if len(window) >= 4 * self.workers:
                            self._finish_small(window.popleft()[1], emit, big)
                if batch:
                    window.append((batch[-1], pool.submit(self._small_batch, batch)))
                while window:
                    self._finish_small(window.popleft()[1], emit, big)
                # two large files at a time: while one's chunks wait for zstd on the pool, the
                # other's are cut and hashed (an incompressible file costs the pool nothing)
                with ThreadPoolExecutor(min(2, len(big)) or 1, thread_name_prefix="ds-cut") as cutters:
                    futures = [cutters.submit(self._large, job, pool) for job in big]
                    try:
                        for fut in futures:
                            job, entry = fut.result()
                            emit(job, entry)
                            self._tick(entry.size)
                    except BaseException:
                        self._halt(futures)  # before the pool waits for the files being cut
                        raise
            except BaseException:
                self._halt([f for _job, f in window])
                raise

    def _halt(self, futures: Iterable[Future]) -> None:
        """A failure or Ctrl-C: stop soon, so the caller can keep what is stored. Queued work
        is dropped and large files stop being cut; the pools wait only for pieces in hand."""
        self._stop = True
        for f in futures:
            f.cancel()

    def _finish_small(self, fut: Future, emit: Callable[[Job, FileEntry], None], big: list[Job]) -> None:
        """Store and emit one batch's files in order; the first failure is raised there."""
        for result in fut.result():
            if isinstance(result, _Grew):  # read again, and large now: it joins the large files
                big.append(result.job)
                continue
            if isinstance(result, Exception):
                raise result
            job, entry, enc = result
            if enc is not None:
                self._store(enc)
            emit(job, entry)
            self._tick(entry.size)

    def _tick(self, size: int) -> None:
        self.files_done += 1
        self.bytes_done += size
        if self.progress is not None:
            self.progress(self.files_done, self.bytes_done)


class _Stopped(Exception):
    """A large file stopped being cut because the run is failing or interrupted."""


class _Changed(Exception):
    """The file is not as it was when its read began: read it again."""


class _Grew(Exception):
    """A small file read again is a large file now."""

    def __init__(self, job: Job):
        super().__init__(job.path)
        self.job = job


def _free_buffer(buffers: list[bytearray], size: int) -> bytearray:
    """A buffer of ``buffers`` that no piece still views, or a new one added to them.

    Reusing buffers saves allocating and zeroing one per block (measured: cutting a file
    in fresh buffers whose pieces are still being encoded cost 60% more than in a map).
    A bytearray with a live view refuses to grow, so the test cannot reuse one in use."""
    for buf in buffers:
        try:
            buf.append(0)
        except BufferError:
            continue
        buf.pop()
        return buf
    buf = bytearray(size)
    buffers.append(buf)
    return buf


def check_unchanged(job: Job, size: int) -> None:
    """The file still has the size its job was made with (the scan's stat)."""
    if size != job.stat.size:
        raise _Changed(job.path)
