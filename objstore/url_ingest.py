"""Adding data that already lives in object storage: the objects under any fsspec URL
streamed into a store's packs, with no copy of the files on this machine.

Objects are listed once (fsspec pages through the listing), read whole when small (one
GET each) and in blocks when large (ranged GETs: memory stays bounded), and go through
the one ``Ingestor``, so their chunks, ids and folder trees are exactly those a ``ds add``
of the same files on disk gives. The work splits into tasks of bounded bytes
(``plan_tasks``); each task writes its packs, then one index fragment naming them, to the
target (``RepositoryChunks``) and returns its entries. A task may therefore run anywhere
(a Dask cluster: ``cluster.py``) and run again after a lost worker: packs are named by
their content, a fragment names only packs already durable, and packs a dead task left
unnamed are garbage a gc reclaims. Only the caller builds the folders and stages them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .errors import DsError
from .ingest import Ingestor, Job, check_unchanged
from .manifest import FILE, FileEntry
from .paths import UnsafePath, check_relpath, join
from .scan import Stat

TASK_BYTES = 256 * 1024 * 1024  # a task reads about this much (a larger object is a task alone)
TASK_FILES = 4096  # and at most this many objects: its entries travel back in one answer
BLOCK = 16 * 1024 * 1024  # a large object is read this much per ranged GET


@dataclass(frozen=True, slots=True)
class SourceObject:
    """One object to add: its path under the URL, size, and what changes when it is
    replaced (ETag, generation or modification time, as the storage gives)."""

    rel: str
    size: int
    token: str


@dataclass
class UrlAddReport:
    staged: int = 0  # entries new or changed in the stage
    removed: int = 0  # entries under the target that the URL no longer holds
    objects: int = 0
    bytes_read: int = 0
    bytes_new: int = 0
    tasks: int = 0
    reread: list[str] = field(default_factory=list)


def _token(info: dict) -> str:
    for key in ("ETag", "etag", "generation", "mtime", "LastModified", "last_modified", "created"):
        if info.get(key) is not None:
            return str(info[key])
    return ""


class UrlSource:
    """An fsspec location read as the source of an add; rebuilt from (url, options) where
    a task runs."""

    def __init__(self, url: str, options: dict | None = None):
        import fsspec

        from .links import storage_options
        from .remote_fs import fsspec_url

        self.url, self.options = url, dict(options or {})
        try:
            self.fs, root = fsspec.core.url_to_fs(fsspec_url(url), **storage_options(options))
        except ImportError as e:
            raise DsError(f"{url}: its filesystem is not installed ({e}); install objstore[s3] "
                          "(or [gcs], [azure], [all])") from None
        except (ValueError, TypeError) as e:
            raise DsError(f"{url}: {e}") from None
        self.root = root.rstrip("/")

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def list(self) -> list[SourceObject]:
        """Every object under the URL (or the one it names), sorted by path; fsspec pages
        through the storage's listing."""
        try:
            info = self.fs.info(self.root)
            if info.get("type") != "directory":  # one object: the source is its folder from now on
                self.root, _, name = self.root.rpartition("/")
                self.url = self.url.rstrip("/").rpartition("/")[0]
                return [SourceObject(check_relpath(name), int(info.get("size") or 0), _token(info))]
            found = self.fs.find(self.root, detail=True)
        except FileNotFoundError:
            raise DsError(f"{self.url}: no such object or prefix; check the URL") from None
        except OSError as e:
            raise DsError(f"{self.url}: cannot list it ({e}); check the URL and its credentials") from None
        out = []
        for p, i in found.items():
            if i.get("type") == "directory" or not p.startswith(self.root + "/"):
                continue
            rel = p[len(self.root) + 1:]
            try:
                check_relpath(rel)
            except UnsafePath as e:
                raise DsError(f"{self.url}: object {rel!r} cannot be a path in a version ({e}); "
                              "rename it or add a narrower prefix") from None
            out.append(SourceObject(rel, int(i.get("size") or 0), _token(i)))
        return sorted(out, key=lambda o: o.rel)


class UrlReader:
    """The ``Ingestor``'s reader for objects of a ``UrlSource`` (``ingest.FileReader``'s
    three answers): a small object in one GET, a large one in ranged GETs of ``BLOCK``
    bytes, and an object replaced while it was read (its token moved) read again."""

    def __init__(self, source: UrlSource):
        self.fs = source.fs

    def _info(self, path: str) -> dict:
        self.fs.invalidate_cache(path)  # a listing cached earlier would hide a replacement
        return self.fs.info(path)

    def read(self, job: Job) -> bytes:
        data = self.fs.cat_file(job.abspath)
        check_unchanged(job, len(data))
        return data

    @contextmanager
    def open(self, job: Job) -> Iterator[tuple[BinaryIO, int, Callable[[], bool]]]:
        path = job.abspath
        before = self._info(path)
        with self.fs.open(path, "rb", block_size=BLOCK, cache_type="none") as f:
            yield f, int(before.get("size") or 0), lambda: _token(self._info(path)) == _token(before)

    def stat(self, job: Job) -> Stat:
        return Stat(int(self._info(job.abspath).get("size") or 0), 0, 0, FILE)


def jobs_of(source: UrlSource, objects: Iterable[SourceObject]) -> Iterator[Job]:
    for o in objects:
        yield Job(o.rel, Stat(o.size, 0, 0, FILE), src=source.path(o.rel))


class RepositoryChunks:
    """The part of a ``ChunkStore`` an ``Ingestor`` uses, over any ``Repository`` (a
    ``.dsstore`` or a remote): new chunks are gathered up to a pack's size and written as
    packs (durable before anything names them), and ``flush`` writes one index fragment
    naming every pack of the task. ``after_packs`` runs between the two (tests kill a
    worker there)."""

    def __init__(self, repo: Any, after_packs: Callable[[], None] | None = None):
        self.repo, self.algo, self.after_packs = repo, repo.algo, after_packs
        self._pending: list[tuple[bytes, bytes, int, int]] = []
        self._pending_bytes = 0
        self._rows: list = []
        self._seen: set[bytes] = set()
        self.packs = 0

    def has(self, chunk_id: bytes) -> bool:
        return chunk_id in self._seen or self.repo.has(chunk_id)

    def locate(self, chunk_id: bytes) -> None:
        return None  # no delta bases: an object's chunks are stored whole

    def put_encoded(self, chunk_id: bytes, stored: bytes | memoryview, raw_len: int, flags: int) -> bool:
        if chunk_id in self._seen:
            return False
        self._seen.add(chunk_id)
        self._pending.append((chunk_id, bytes(stored), raw_len, flags))  # stored may view a reused buffer
        self._pending_bytes += len(stored)
        if self._pending_bytes >= self.repo.pack_target:
            self._write_packs()
        return True

    def _write_packs(self) -> None:
        if self._pending:
            rows, packs = self.repo.write_packs(self._pending)
            self._rows += rows
            self.packs += packs
            self._pending, self._pending_bytes = [], 0

    def flush(self) -> None:
        self._write_packs()
        if self._rows:
            if self.after_packs is not None:
                self.after_packs()
            self.repo.put_fragment(self._rows, [])
            self._rows = []

    def recover(self) -> None:
        return None

    def keep(self) -> None:
        """On a failure: what is written stays unnamed (a retry writes it again)."""
        self._pending, self._pending_bytes = [], 0

    abort = keep


def plan_tasks(objects: list[SourceObject], task_bytes: int | None = None,
               task_files: int | None = None) -> list[list[SourceObject]]:
    """Consecutive runs of objects (in path order, so a task's files share folders) of at
    most ``task_bytes`` and ``task_files``; an object larger than ``task_bytes`` is a task
    of its own."""
    task_bytes, task_files = task_bytes or TASK_BYTES, task_files or TASK_FILES
    tasks: list[list[SourceObject]] = []
    run: list[SourceObject] = []
    size = 0
    for o in objects:
        if run and (size + o.size > task_bytes or len(run) >= task_files):
            tasks.append(run)
            run, size = [], 0
        run.append(o)
        size += o.size
    if run:
        tasks.append(run)
    return tasks


@dataclass
class TaskResult:
    entries: list[tuple[str, FileEntry]]
    bytes_read: int
    bytes_new: int
    reread: list[str]


@dataclass(frozen=True)
class Target:
    """Where a task writes: the store at ``store`` (on machine ``host``), or, with ``remote``,
    that remote (a URL, with ``options``). A worker on another machine writes to a remote
    through a scratch store of ``config`` (the client store's: the same hash and chunking
    make the same chunks)."""

    store: str
    host: str
    config: bytes
    remote: str | None = None  # as the client's store names it
    spec: dict = field(default_factory=dict)  # its URL and options, for a scratch store

    @classmethod
    def of(cls, store: Any, remote: Any = None) -> Target:
        import socket

        if remote is None:
            return cls(str(store.path), socket.gethostname(), (store.path / "config").read_bytes())
        from .remote_repo import remote_spec

        _name, url, options = remote_spec(store, remote.name or remote.url)
        return cls(str(store.path), socket.gethostname(), (store.path / "config").read_bytes(),
                   remote.name or remote.url, {"url": url, "options": options})

    @contextmanager
    def opened(self) -> Iterator[Any]:
        """The target's ``Repository``, on the worker that runs a task."""
        import socket
        import tempfile

        from .repository import LocalRepository
        from .store import Store

        with tempfile.TemporaryDirectory(prefix="ds-task-") as scratch:
            if socket.gethostname() == self.host:
                store = Store(Path(self.store))
            else:  # another machine: a store of the same config, for the remote's cache
                if self.remote is None:
                    raise DsError(f"a worker on {socket.gethostname()} cannot write to the store on "
                                  f"{self.host}; add with a remote as the target (--into-remote)")
                from dataclasses import replace

                folder = Path(scratch) / ".dsstore"
                Store.create(folder)
                (folder / "config").write_bytes(self.config)
                store = Store(folder)
                store.set_config(replace(store.config, remotes={"target": self.spec}))
            try:
                if self.remote is None:
                    yield LocalRepository(store)
                else:
                    from .remote_repo import RemoteRepo

                    yield RemoteRepo(store, self.remote if store.path == Path(self.store) else "target")
            finally:
                store.close()


def ingest_task(target: Target, url: str, options: dict, objects: list[SourceObject],
                after_packs: Callable[[], None] | None = None, workers: int | None = None) -> TaskResult:
    """One task, wherever it runs: read ``objects`` of ``url``, write their new chunks to
    ``target`` as packs and one index fragment, and return the entries. Running it twice
    writes nothing twice that the first run named."""
    with target.opened() as repo:
        sink = RepositoryChunks(repo, after_packs)
        return _ingest(sink, repo.store.config, UrlSource(url, options), objects, workers)


def _ingest(sink: RepositoryChunks, config: Any, source: UrlSource, objects: list[SourceObject],
            workers: int | None, progress: Callable[[int, int], None] | None = None) -> TaskResult:
    ingestor = Ingestor(sink, config.chunking, config.zstd_level, workers=workers,  # type: ignore[arg-type]
                        progress=progress, reader=UrlReader(source))
    entries: list[tuple[str, FileEntry]] = []
    ingestor.run(jobs_of(source, objects), sink=lambda job, entry: entries.append((job.path, entry)))
    sink.flush()
    return TaskResult(entries, ingestor.bytes_done, ingestor.bytes_new, ingestor.reread)


def ingest_objects(store: Any, source: UrlSource, objects: list[SourceObject], report: UrlAddReport,
                   cluster: str | None = None, progress: Callable[[int, int], None] | None = None,
                   after_packs: Callable[[], None] | None = None, workers: int | None = None,
                   remote: str | None = None) -> list[tuple[str, FileEntry]]:
    """The entries of ``objects``, their new chunks stored (durable) in ``store``, whose lock
    the caller holds, or with ``remote`` (a name or URL) straight on that remote, under a
    writer's lease (so no remote gc runs meanwhile). Without ``cluster`` they are read
    here; with one (``cluster.open_client``) each task of ``plan_tasks`` runs on a worker,
    which writes its packs and fragment itself: to the store folder on this machine's
    workers, to the remote from anywhere."""
    report.objects += len(objects)
    if remote is not None:
        from .remote_repo import RemoteRepo

        repo = RemoteRepo(store, remote)
        with repo.fs.operation("upload"):
            repo.check_config(create=True)
            with repo.lock("add"):
                entries = _run(store, source, objects, report, cluster, progress, after_packs, workers, repo)
            repo.forget_index()
            repo.index()  # the new fragments, cached: push and fsck find the chunks there
        return entries
    return _run(store, source, objects, report, cluster, progress, after_packs, workers, None)


def _run(store: Any, source: UrlSource, objects: list[SourceObject], report: UrlAddReport,
         cluster: str | None, progress: Callable[[int, int], None] | None,
         after_packs: Callable[[], None] | None, workers: int | None,
         repo: Any) -> list[tuple[str, FileEntry]]:
    if cluster is None:
        if repo is not None:
            sink = RepositoryChunks(repo, after_packs)
            result = _ingest(sink, store.config, source, objects, workers, progress)
        else:
            try:
                result = _ingest(store.chunks, store.config, source, objects, workers, progress)  # type: ignore[arg-type]
            except BaseException:
                store.chunks.abort()
                raise
        report.bytes_read, report.bytes_new = result.bytes_read, result.bytes_new
        report.reread = result.reread
        return result.entries
    from .cluster import run_tasks

    tasks = plan_tasks(objects)
    report.tasks = len(tasks)
    entries: list[tuple[str, FileEntry]] = []

    def done(result: TaskResult) -> None:
        entries.extend(result.entries)
        report.bytes_read += result.bytes_read
        report.bytes_new += result.bytes_new
        report.reread += result.reread
        if progress is not None:
            progress(len(entries), report.bytes_read)
    target = Target.of(store, repo)
    run_tasks(cluster, ingest_task, [(target, source.url, source.options, task, after_packs, workers)
                                     for task in tasks], on_done=done)
    store.chunks.index.reload()  # the workers' fragments
    return entries


def add_url(store: Any, url: str, to: str, options: dict | None = None,
            progress: Callable[[int, int], None] | None = None, cluster: str | None = None,
            after_packs: Callable[[], None] | None = None, remote: str | None = None) -> UrlAddReport:
    """Stage the objects under ``url`` as the folder ``to`` of the working folder's store,
    which then holds exactly them (entries the URL no longer has are removed). The folder
    is left out of the checked-out part (``worktree.sparse`` gains ``!/TO/``): its bytes live
    in the bucket and the store, not in the working folder, so status does not call them
    deleted and checkout does not write them."""
    from dataclasses import replace

    from .tree_edit import TreeEditor

    prefix = check_relpath(to.strip("/")) if to.strip("/") else ""
    if not prefix:
        raise DsError(f"{url}: name the folder it becomes with --to PATH")
    source = UrlSource(url, options)
    report = UrlAddReport()
    with store.locked():
        if store.in_scope()(prefix + "/x") and os.path.lexists(os.path.join(store.worktree, prefix)):
            raise DsError(f"{prefix} exists in the working folder; add the URL under another --to, "
                          "or move that folder away first")
        editor = TreeEditor(store.meta, store.staged_tree())
        if editor.get(prefix) is not None:
            raise DsError(f"{prefix} is a file in the stage; add the URL under another --to")
        before = set(editor.files_under(prefix))
        objects = source.list()
        for rel, entry in ingest_objects(store, source, objects, report, cluster, progress, after_packs,
                                         remote=remote):
            path = join(prefix, rel)
            before.discard(path)
            old = editor.get(path)
            if old is None or not old.same_content(entry):
                editor.set(path, entry)
                report.staged += 1
        for path in sorted(before):
            editor.remove(path)
            report.removed += 1
        if store.in_scope()(prefix + "/x"):
            store.set_config(replace(store.config, sparse=[*(store.config.sparse or ["/*"]), f"!/{prefix}/"]))
        store.set_stage(editor.write())
    return report
