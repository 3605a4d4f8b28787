"""Turning files into file entries and stored chunks.

Per-file Python work dominates at 100k+ files, so reading, hashing and compressing run
on a thread pool (xxhash, blake3 and zstd release the GIL) while one thread appends the
encoded chunks to the pack in a fixed order. Large files are cut with FastCDC over an
``mmap`` and their chunks encoded in parallel inside a bounded window; the map's pages
already stored are released as it goes, so memory stays bounded whatever the file size
(tests/test_resources.py: ~70 MiB peak for 256 MiB and for 4 GiB).
"""

from __future__ import annotations

import mmap
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from .chunking import ChunkParams, cut
from .chunkstore import ChunkStore
from .errors import DsError
from .manifest import LINK, FileEntry
from .packs import FLAG_DELTA, FLAG_ZSTD
from .scan import Stat

Progress = Callable[[int, int], None]  # (files done, bytes done)
Encoded = tuple[bytes, bytes | memoryview | None, int, int]  # id, stored (None: known), raw, flags
# A delta is kept only if it is this much smaller than the chunk stored whole: a delta
# costs a second read (its base) each time it is decoded
DELTA_SHARE = 0.75
MAX_DELTA_BASE = 4 * 1024 * 1024
_RELEASE_STEP = 16 * 1024 * 1024  # mapped bytes of a large file released from the process at a time


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
        return self.src if self.src is not None else os.path.join(self.root, self.path)

    @property
    def entry_name(self) -> str:
        return self.name if self.name is not None else self.path.rpartition("/")[2]


def default_workers() -> int:
    return max(2, min(8, os.cpu_count() or 2))


class Ingestor:
    """Encodes files into ``chunks``; results come back as FileEntry per path."""

    def __init__(self, chunks: ChunkStore, params: ChunkParams, level: int,
                 workers: int | None = None, progress: Progress | None = None):
        self.chunks = chunks
        self.algo = chunks.algo
        self.params = params
        self.level = level
        self.workers = workers or default_workers()
        self.progress = progress
        self.files_done = 0
        self.bytes_done = 0
        self.bytes_new = 0
        self.recovered = None  # what a killed writer had left, indexed before this run (chunkstore)
        self._write_lock = threading.Lock()
        self._stop = False  # set when the run is failing or interrupted: large files stop being cut

    def _encode(self, raw: bytes | memoryview, base: bytes | None = None) -> Encoded:
        from .packs import encode_chunk

        cid = self.algo.digest(raw)
        if self.chunks.has(cid):
            return cid, None, len(raw), 0
        stored, flags = encode_chunk(raw, self.level)
        if base is not None and base != cid:
            delta = self._delta(raw, base)
            if delta is not None and len(delta) < len(stored) * DELTA_SHARE:
                return cid, delta, len(raw), FLAG_ZSTD | FLAG_DELTA
        return cid, stored, len(raw), flags

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
        cid, stored, raw_len, flags = enc
        if stored is None:
            return
        with self._write_lock:  # large files are cut by two threads at once
            if self.chunks.put_encoded(cid, stored, raw_len, flags):
                self.bytes_new += raw_len

    def _small(self, job: Job) -> tuple[FileEntry, Encoded | None]:
        if job.stat.kind == LINK:
            data = os.fsencode(os.readlink(job.abspath))
        else:
            with open(job.abspath, "rb", buffering=0) as f:
                data = f.read()
            _check_unchanged(job, len(data))
        name = job.entry_name
        if not data:
            return FileEntry(name, job.stat.kind, 0, self.algo.digest(b"")), None
        enc = self._encode(data, job.base)
        return FileEntry(name, job.stat.kind, len(data), enc[0]), enc

    def _large(self, job: Job, pool: ThreadPoolExecutor) -> FileEntry:
        with open(job.abspath, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            _check_unchanged(job, size)
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            whole = self.algo.new()
            chunks: list[tuple[bytes, int]] = []
            window: deque[Future[Encoded]] = deque()
            done = released = 0
            for piece in cut(mm, self.params):
                if self._stop:
                    for f in window:
                        f.cancel()
                    raise _Stopped(job.path)
                whole.update(piece)
                window.append(pool.submit(self._encode, piece))
                if len(window) >= 2 * self.workers:
                    done = self._finish_piece(window.popleft(), chunks, done)
                    released = _release(mm, released, done)
            while window:
                done = self._finish_piece(window.popleft(), chunks, done)
            del piece
        finally:
            try:
                mm.close()
            except BufferError:  # a view is still alive; the map closes when it is collected
                pass
        name = job.entry_name
        return FileEntry(name, job.stat.kind, size, whole.digest(), tuple(chunks))

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
        self.recovered = self.chunks.recover()
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
                for job in jobs:
                    if job.stat.kind != LINK and job.stat.size > limit:
                        big.append(job)
                        continue
                    window.append((job, pool.submit(self._small, job)))
                    if len(window) >= 64 * self.workers:
                        self._finish_small(*window.popleft(), emit)
                while window:
                    self._finish_small(*window.popleft(), emit)
                # two large files at a time: while one's chunks wait for zstd on the pool, the
                # other's are cut and hashed (an incompressible file costs the pool nothing)
                with ThreadPoolExecutor(min(2, len(big)) or 1, thread_name_prefix="ds-cut") as cutters:
                    futures = [cutters.submit(self._large, job, pool) for job in big]
                    try:
                        for job, fut in zip(big, futures, strict=True):
                            emit(job, fut.result())
                            self._tick(job.stat.size)
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

    def _finish_small(self, job: Job, fut: Future, emit: Callable[[Job, FileEntry], None]) -> None:
        entry, enc = fut.result()
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


def _release(mm: mmap.mmap, start: int, end: int) -> int:
    """Drop the pages of ``mm[start:end]`` (already stored) from this process; returns the new start.

    A mapped page read once stays in the process's resident set until the map closes, so
    without this the RSS of adding a file grows with the file (the data stays in the page
    cache, which the kernel reclaims as it needs).
    """
    end -= end % mmap.PAGESIZE
    if end - start >= _RELEASE_STEP and hasattr(mmap, "MADV_DONTNEED"):
        mm.madvise(mmap.MADV_DONTNEED, start, end - start)
        return end
    return start


def _check_unchanged(job: Job, size: int) -> None:
    if size != job.stat.size:
        raise DsError(f"{job.path} changed while it was being added; run the command again")
