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
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from .errors import DsError
from .ingest import Ingestor, Job, check_unchanged
from .manifest import FILE, FileEntry
from .paths import UnsafePath, check_relpath, join
from .scan import Stat

TASK_BYTES = 128 * 1024 * 1024  # a task reads about this much (a larger object is a task alone)
TASK_FILES = 1024  # and at most this many objects (workers stay busy; an answer stays small)
LIST_THREADS = 8  # top-level folders listed at once
JOURNAL_AGE = 24 * 3600.0  # a listing kept from an add that stopped is used again this long


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
    unchanged: int = 0  # objects with the same size and ETag as at the last add: not read
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

    @property
    def kind(self) -> str:
        """The backend kind of the source's filesystem (s3, gcs, azure, other), for its errors."""
        from .backend_fsspec import backend_class

        return backend_class(self.fs).kind

    def error(self, e: BaseException, doing: str) -> DsError:
        """A storage error as the user's: what failed, why, and the fix (by the backend's rules)."""
        from .backend import CREDENTIALS, DENIED, NO_BUCKET, UNREACHABLE, describe
        from .backend_fsspec import classify
        from .remote_fs import CREDENTIAL_HINTS

        kind, why = classify(e, self.kind), describe(e)
        if kind == CREDENTIALS:
            hint = CREDENTIAL_HINTS.get(self.kind, "give its credentials as storage options (-o)")
            return DsError(f"{self.url}: no usable credentials ({why}); {hint}, then run the command again")
        if kind == DENIED:
            return DsError(f"{self.url}: access denied ({why}); check that the credentials may read it")
        if kind == NO_BUCKET:
            return DsError(f"{self.url}: its bucket or container does not exist; correct the URL")
        if kind == UNREACHABLE:
            return DsError(f"{self.url}: cannot reach the storage ({why}); check the URL, the endpoint "
                           "(-o endpoint_url=...) and the network")
        return DsError(f"{self.url}: {doing} failed ({why}); run the command again: it goes on where "
                       "it stopped")

    def list(self, journal: Path | None = None) -> list[SourceObject]:
        """Every object under the URL (or the one it names), sorted by path. The top-level
        folders are listed side by side (fsspec pages through each); with ``journal``, each
        folder's listing is kept there once complete, so a listing interrupted (or an add
        that failed) goes on from the folders not yet listed, for ``JOURNAL_AGE`` seconds.
        Zero-byte folder markers (``prefix/``) are passed over; names that cannot be paths,
        or an object that another one's path passes through (``a`` and ``a/b``), are refused
        before anything is stored."""
        try:
            info = self.fs.info(self.root)
            if info.get("type") != "directory":  # one object: the source is its folder from now on
                self.root, _, name = self.root.rpartition("/")
                self.url = self.url.rstrip("/").rpartition("/")[0]
                return [SourceObject(check_relpath(name), int(info.get("size") or 0), _token(info))]
            found = self._find(journal)
        except FileNotFoundError:
            raise DsError(f"{self.url}: no such object or prefix; check the URL") from None
        except DsError:
            raise
        except Exception as e:
            raise self.error(e, "listing") from None
        out = []
        for p, (kind, size, token) in found.items():
            if kind == "directory" or not p.startswith(self.root + "/"):
                continue
            rel = p[len(self.root) + 1:]
            if (not rel or rel.endswith("/")) and not size:
                continue  # a folder marker (the S3 console's "Create folder")
            try:
                check_relpath(rel)
            except UnsafePath as e:
                raise DsError(f"{self.url}: object {rel!r} cannot be a path in a version ({e}); "
                              "rename it or add a narrower prefix") from None
            out.append(SourceObject(rel, size, token))
        out.sort(key=lambda o: o.rel)
        names = {o.rel for o in out}
        for o in out:
            parent = o.rel.rpartition("/")[0]
            while parent:
                if parent in names:
                    raise DsError(f"{self.url}: object {parent!r} is also a folder of {o.rel!r}, which "
                                  "a version cannot hold; rename one of them or add a narrower prefix")
                parent = parent.rpartition("/")[0]
        return out

    def _find(self, journal: Path | None) -> dict[str, tuple[str, int, str]]:
        """path -> (type, size, token) of everything under the root: the top level, then each
        folder of it (``LIST_THREADS`` at a time), each kept in ``journal`` once listed."""
        import json
        import threading
        import time
        from concurrent.futures import ThreadPoolExecutor

        lock = threading.Lock()
        done: dict[str, dict] = {}
        if journal is not None:
            try:
                if time.time() - journal.stat().st_mtime < JOURNAL_AGE:
                    for line in journal.read_text(encoding="utf-8").splitlines():
                        with suppress(ValueError, TypeError):
                            folder, rows = json.loads(line)
                            done[folder] = {p: tuple(r) for p, r in rows.items()}
            except OSError:
                pass
        found: dict[str, tuple[str, int, str]] = {}
        folders = []
        for i in self.fs.ls(self.root, detail=True):
            if i.get("type") == "directory":
                folders.append(i["name"].rstrip("/"))
            else:
                found[i["name"]] = ("file", int(i.get("size") or 0), _token(i))

        def listed(folder: str) -> dict[str, tuple[str, int, str]]:
            if folder in done:
                return done[folder]
            rows = {p: (i.get("type", "file"), int(i.get("size") or 0), _token(i))
                    for p, i in self.fs.find(folder, detail=True).items()}
            if journal is not None:
                line = json.dumps([folder, rows]) + "\n"
                with lock, open(journal, "a", encoding="utf-8") as f:  # a line per folder, whole
                    f.write(line)
            return rows
        if journal is not None:
            journal.parent.mkdir(parents=True, exist_ok=True)
        with ThreadPoolExecutor(LIST_THREADS) as pool:
            for rows in pool.map(listed, sorted(folders)):
                found.update(rows)
        return found


class UrlReader:
    """The ``Ingestor``'s reader for objects of a ``UrlSource`` (``ingest.FileReader``'s
    three answers): a small object in one GET, a large one in ranged GETs of the
    ingestor's blocks (8 MiB), and an object replaced while it was read (its token moved)
    read again."""

    def __init__(self, source: UrlSource):
        import inspect

        self.fs = source.fs
        # s3fs (and adlfs) ask a whole object's size first (a HEAD) to split its read when
        # more than one request may run at once; a small object is one GET
        cat = getattr(self.fs, "_cat_file", None)
        takes = cat is not None and "max_concurrency" in inspect.signature(cat).parameters
        self._whole = {"max_concurrency": 1} if takes else {}

    def _info(self, path: str) -> dict:
        self.fs.invalidate_cache(path)  # a listing cached earlier would hide a replacement
        return self.fs.info(path)

    def read(self, job: Job) -> bytes:
        data = self.fs.cat_file(job.abspath, **self._whole)
        check_unchanged(job, len(data))
        return data

    @contextmanager
    def open(self, job: Job) -> Iterator[tuple[BinaryIO, int, Callable[[], bool]]]:
        path = job.abspath
        before = self._info(path)
        with self.fs.open(path, "rb", cache_type="none") as f:  # each read its own ranged GET
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
    worker there). On a remote, chunks are deduplicated within the run only: a chunk the
    remote's index lists may sit in an old pack that no version names, which a remote gc
    may delete before this add is pushed; a new pack is young, kept for the gc's grace."""

    def __init__(self, repo: Any, after_packs: Callable[[], None] | None = None):
        from .repository import LocalRepository

        self.repo, self.algo, self.after_packs = repo, repo.algo, after_packs
        # a store's gc needs the lock the add holds: nothing indexed there goes meanwhile
        self.local = isinstance(repo, LocalRepository)
        self._pending: list[tuple[bytes, bytes, int, int]] = []
        self._pending_bytes = 0
        self._rows: list = []
        self._seen: set[bytes] = set()

    def has(self, chunk_id: bytes) -> bool:
        return chunk_id in self._seen or (self.local and self.repo.has(chunk_id))

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
            rows, _packs = self.repo.write_packs(self._pending)
            self._rows += rows
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
        """On a failure: write and name what was stored (so a retry reads it as known), never
        raising over the error that stopped the run; what cannot be written is dropped."""
        try:
            self.flush()
        except Exception:
            self.abort()

    def abort(self) -> None:
        self._pending, self._pending_bytes, self._rows = [], 0, []


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


Emit = Callable[[str, FileEntry], None]
Known = dict[str, tuple[int, str, str]]  # rel -> (size, token, content hash hex), as last added


def _ingest(sink: RepositoryChunks, config: Any, source: UrlSource, objects: list[SourceObject],
            workers: int | None, progress: Callable[[int, int], None] | None = None,
            emit: Emit | None = None) -> TaskResult:
    """Read ``objects`` into ``sink``; each entry goes to ``emit`` as it is done (else it is
    kept in the result). Chunks are durable once ``sink`` is flushed (here, at the end)."""
    ingestor = Ingestor(sink, config.chunking, config.zstd_level, workers=workers,  # type: ignore[arg-type]
                        progress=progress, reader=UrlReader(source))
    entries: list[tuple[str, FileEntry]] = []
    keep = emit or (lambda path, entry: entries.append((path, entry)))
    ingestor.run(jobs_of(source, objects), sink=lambda job, entry: keep(job.path, entry))
    sink.flush()
    return TaskResult(entries, ingestor.bytes_done, ingestor.bytes_new, ingestor.reread)


def ingest_objects(store: Any, source: UrlSource, objects: list[SourceObject], report: UrlAddReport,
                   emit: Emit, cluster: str | None = None, progress: Callable[[int, int], None] | None = None,
                   after_packs: Callable[[], None] | None = None, workers: int | None = None,
                   remote: str | None = None) -> None:
    """Each entry of ``objects`` to ``emit``, its new chunks stored in ``store``, whose lock
    the caller holds, or with ``remote`` (a name or URL) straight on that remote, under a
    writer's lease (so no remote gc runs meanwhile). Without ``cluster`` they are read
    here; with one (``cluster.open_client``) each task of ``plan_tasks`` runs on a worker,
    which writes its packs and fragment itself: to the store folder on this machine's
    workers, to the remote from anywhere. When this returns, every emitted entry's chunks
    are durable; when it raises, those of the entries done are kept where possible (the
    caller checks with ``stored``)."""
    if remote is not None:
        from .remote_repo import RemoteRepo

        repo = RemoteRepo(store, remote)
        with repo.fs.operation("upload"):
            repo.check_config(create=True)
            try:
                with repo.lock("add"):
                    _run(store, source, objects, report, emit, cluster, progress, after_packs, workers, repo)
            except BaseException:
                with suppress(Exception):  # never over the error that stopped the run
                    repo.forget_index()
                raise
            repo.forget_index()
            repo.index()  # the new fragments, cached: push and fsck find the chunks there
        return
    _run(store, source, objects, report, emit, cluster, progress, after_packs, workers, None)


def _run(store: Any, source: UrlSource, objects: list[SourceObject], report: UrlAddReport, emit: Emit,
         cluster: str | None, progress: Callable[[int, int], None] | None,
         after_packs: Callable[[], None] | None, workers: int | None, repo: Any) -> None:
    if cluster is None:
        if repo is not None:
            result = _ingest(RepositoryChunks(repo, after_packs), store.config, source, objects, workers,
                             progress, emit)
        else:
            try:
                result = _ingest(store.chunks, store.config, source, objects, workers,  # type: ignore[arg-type]
                                 progress, emit)
            except BaseException:
                store.chunks.abort()
                raise
        report.bytes_read, report.bytes_new = result.bytes_read, result.bytes_new
        report.reread = result.reread
        return
    from .cluster import run_tasks

    tasks = plan_tasks(objects)
    report.tasks = len(tasks)
    files = 0

    def done(result: TaskResult) -> None:  # a task returns once its fragment is written
        nonlocal files
        for path, entry in result.entries:
            emit(path, entry)
        files += len(result.entries)
        report.bytes_read += result.bytes_read
        report.bytes_new += result.bytes_new
        report.reread += result.reread
        if progress is not None:
            progress(files, report.bytes_read)
    try:
        run_tasks(cluster, ingest_task, [(Target.of(store, repo), source.url, source.options, task,
                                          after_packs, workers) for task in tasks], on_done=done)
    finally:
        store.chunks.index.reload()  # the workers' fragments


def stored(store: Any, remote: str | None) -> Callable[[bytes], bool]:
    """Whether a chunk is durable and indexed where an add wrote it."""
    if remote is None:
        return store.chunks.has
    from .remote_repo import RemoteRepo

    return RemoteRepo(store, remote).has


# -- what an add of the URL found last time -------------------------------------------------------
def _sources_file(store: Any, url: str) -> Path:
    import hashlib

    return store.path / "cache" / "sources" / hashlib.sha256(url.encode()).hexdigest()[:32]


def load_sources(store: Any, url: str) -> Known:
    """rel -> (size, token, content hash hex) of the objects the last add of ``url`` stored.
    Only a hint: an object is passed over only if the entry at its path still has that hash."""
    try:
        text = _sources_file(store, url).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    import json

    out = {}
    for line in text.splitlines():
        try:
            rel, size, token, h = json.loads(line)
        except (ValueError, TypeError):
            continue  # a damaged line: its object is read again
        if isinstance(rel, str) and isinstance(size, int) and isinstance(token, str) and isinstance(h, str):
            out[rel] = (size, token, h)
    return out


def save_sources(store: Any, url: str, rows: Known) -> None:
    from .fsutil import atomic_write

    path = _sources_file(store, url)
    path.parent.mkdir(parents=True, exist_ok=True)
    import json

    lines = (json.dumps([rel, size, token, h]) + "\n" for rel, (size, token, h) in sorted(rows.items()))
    atomic_write(path, "".join(lines).encode(), durable=False)


def unchanged(objects: list[SourceObject], known: Known, entry_at: Callable[[str], FileEntry | None],
              has: Callable[[bytes], bool]) -> tuple[list[SourceObject], Known]:
    """(objects to read, rows of those passed over): an object is passed over when the last
    add saw it with the same size and token, the entry at its path still holds what that
    add stored, and ``has`` finds each of its chunks where this add stores them (a remote
    gc may have removed packs no version named yet). A token-less storage never passes
    anything over."""
    todo, kept = [], {}
    for o in objects:
        row = known.get(o.rel)
        entry = entry_at(o.rel) if row is not None and o.token and row[:2] == (o.size, o.token) else None
        if (entry is not None and entry.size == o.size and entry.hash.hex() == row[2]
                and all(has(c) for c, _n in entry.chunk_list())):
            kept[o.rel] = row
        else:
            todo.append(o)
    return todo, kept


def add_url(store: Any, url: str, to: str, options: dict | None = None,
            progress: Callable[[int, int], None] | None = None, cluster: str | None = None,
            after_packs: Callable[[], None] | None = None, remote: str | None = None) -> UrlAddReport:
    """Stage the objects under ``url`` as the folder ``to`` (a store path) of the working
    folder's store, which then holds exactly them (entries the URL no longer has are
    removed). The folder is left out of the checked-out part (``worktree.sparse`` gains
    ``!/TO/**``, written with the stage): its bytes live in the bucket and the store, not in
    the working folder, so status does not call them deleted and checkout does not write
    them. Objects unchanged since the last add of the URL (same size and ETag) are not read
    again; if the add fails or is interrupted, what was stored is staged, so running it
    again goes on where it stopped."""
    from .tree_edit import TreeEditor

    prefix = check_relpath(to.strip("/")) if to.strip("/") else ""
    if not prefix:
        raise DsError(f"{url}: name the folder it becomes with --to PATH")
    if cluster is not None:
        from .cluster import check_spec

        check_spec(cluster)
    source = UrlSource(url, options)
    report = UrlAddReport()
    with store.locked():
        editor = TreeEditor(store.meta, store.staged_tree())
        _check_target(store, editor, prefix)
        journal = _sources_file(store, url).with_suffix(".listing")
        objects = source.list(journal)
        # the journal serves a listing that stopped, nothing after: an object gone since it was
        # listed would fail every later read of a kept listing, where a fresh one drops it
        journal.unlink(missing_ok=True)
        scope = store.in_scope()  # a clone's --include may take some of the folder's files in
        shown = [o.rel for o in objects if scope(join(prefix, o.rel))]
        if shown and os.path.lexists(os.path.join(store.worktree, prefix)):
            raise DsError(f"{prefix} exists in the working folder; add the URL under another --to, "
                          "or move that folder away first")
        before = set(editor.files_under(prefix))
        by_rel = {o.rel: o for o in objects}
        known = load_sources(store, source.url)
        todo, rows = unchanged(objects, known, lambda rel: editor.get(join(prefix, rel)),
                               stored(store, remote))
        report.unchanged = len(rows)
        before.difference_update(join(prefix, o.rel) for o in objects)
        done: list[tuple[str, FileEntry]] = []
        try:
            ingest_objects(store, source, todo, report, lambda rel, e: done.append((rel, e)), cluster,
                           progress, after_packs, remote=remote)
        except BaseException as e:
            _keep_done(store, editor, prefix, bool(shown), done, by_rel, rows, source.url, remote)
            if isinstance(e, Exception) and not isinstance(e, DsError):
                raise source.error(e, "reading its objects") from e
            raise
        report.objects = len(objects)
        _stage(editor, prefix, done, by_rel, rows, report)
        for path in sorted(before):
            editor.remove(path)
            report.removed += 1
        _set_stage(store, editor, prefix, bool(shown))
        save_sources(store, source.url, rows)
        if cluster is not None and remote is None:
            store.chunks.index.maybe_merge()  # a fragment per task
    return report


def _check_target(store: Any, editor: Any, prefix: str) -> None:
    """Refuse a folder that a file stands for, in the stage or the working folder (at it or
    at one of its parents): adding would silently replace that file."""
    parts = prefix.split("/")
    for i in range(1, len(parts) + 1):
        path = "/".join(parts[:i])
        on_disk = os.path.join(store.worktree, path)
        if editor.get(path) is not None or (os.path.lexists(on_disk) and not os.path.isdir(on_disk)):
            raise DsError(f"{path} is a file, where the URL's folder {prefix} must go; add the URL "
                          "under another --to")


def _set_stage(store: Any, editor: Any, prefix: str, exclude: bool) -> None:
    """The stage, and (``exclude``: some of its files would be checked out) the folder out of
    the checked-out part; the config first: a stage naming files that are not there would
    show them deleted."""
    from dataclasses import replace

    if exclude:
        sparse = [*(store.config.sparse or ["/*"]), f"!/{_escape(prefix)}/**"]
        store.set_config(replace(store.config, sparse=sparse))
    store.set_stage(editor.write())


def _escape(path: str) -> str:
    """A path as a literal in a gitignore-style pattern."""
    return "".join("\\" + ch if ch in "[]*?!#\\" else ch for ch in path)


def _stage(editor: Any, prefix: str, done: list[tuple[str, FileEntry]], by_rel: dict[str, SourceObject],
           rows: Known, report: UrlAddReport) -> None:
    for rel, entry in done:
        old = editor.get(join(prefix, rel))
        if old is None or not old.same_content(entry):
            editor.set(join(prefix, rel), entry)
            report.staged += 1
        o = by_rel[rel]
        rows[rel] = (o.size, o.token, entry.hash.hex())


def _keep_done(store: Any, editor: Any, prefix: str, exclude: bool, done: list[tuple[str, FileEntry]],
               by_rel: dict[str, SourceObject], rows: Known, url: str,
               remote: str | None) -> None:
    """A failed or interrupted add: stage the entries whose every chunk is stored, and
    remember them, so the next run passes them over. Never raises over the failure."""
    try:
        if remote is None:
            store.chunks.flush()
        has = stored(store, remote)
        kept = [(rel, e) for rel, e in done if all(has(c) for c, _n in e.chunk_list())]
        if kept:
            _stage(editor, prefix, kept, by_rel, rows, UrlAddReport())
            _set_stage(store, editor, prefix, exclude)
            save_sources(store, url, rows)
    except Exception:
        if remote is None:
            store.chunks.abort()
