"""``ds://``: dataset versions as a read-only fsspec filesystem, read in place from packs.

pandas, pyarrow and PyTorch datasets read a version without a copy on disk: a byte
range maps onto the file's chunk list (manifest rows of (chunk id, size)), only the
chunks covering it are made local (fetched from a remote if the store lacks them) and
decoded through the chunk store, which verifies every chunk against its id.

Paths (``fsspec.open("ds://team/vision/cats@1.0.2/tables/a.csv")``)::

    ds://                                   projects (top-level components), as folders
    ds://PROJECT                            dataset names (and sub-projects), as folders
    ds://PROJECT/NAME                       one folder NAME@VERSION per finalized version
    ds://PROJECT/NAME@VERSION/PATH          a file or folder of that version
    ds://@REV/PATH                          a plain store's revision: id or prefix, tag,
                                            branch, HEAD, HEAD~N, a dataset id or prefix
                                            (what ``ds`` and the SDK accept: ``revisions``)

The project may hold ``/``: the first component holding ``@`` ends the dataset; its part
before the last ``@`` is the name and everything before it the project (so a name with
``/`` cannot be addressed). VERSION is a version string (of two versions with one text,
the most recently finalized), ``latest`` (the highest finalized version), or a dataset id /
commit id or a unique prefix of one, each picked as ``Dataset.get`` picks (``revisions``).
Drafts are not listed or read: finalize them first.

Entries: ``type`` is ``file`` or ``directory``; ``size`` (0 for folders); files add
``hash`` (hex content id), ``kind`` (file / exec / external), ``mode`` (0o644 or
0o755) and ``chunks``; version folders add ``dataset_id``, ``dataset_version``,
``commit``, ``status``, ``tags``, ``created``. External files (``add_external_files``)
are read from their URL with fsspec, only when the trust rule allows it (``links.py``:
a URL that came from a remote may not name a file on this machine unless its remote
allows local links); otherwise, and for links that loop back on themselves, reading
raises a ``DsError`` naming the path and the URL.

Links follow the checkout policy (docs/architecture.md): a link is used only when its
target is relative and stays inside the version at every step
(``materialize.link_is_contained``), followed at most 40 times. A link to a file is
listed as a file (``islink`` and ``destination`` added); a path through a link to a
folder resolves, but such links are left out of listings so ``find``/``walk`` never
loop or list a file twice; any other link is absent, and naming it raises
FileNotFoundError saying why.

Which store: by default the SDK's, found as the SDK finds it at each call
(``DSSTORE_DIR``, else the nearest ``.dsstore``, else the per-user store), with its
default remote (``DSSTORE_REMOTE`` or the store's config) for chunks on demand. The SDK
form names them: ``DsFileSystem(store=FOLDER_OR_DSSTORE, remote=NAME_OR_URL,
remote_options={...})``, also through ``fsspec.filesystem("ds", ...)`` and pandas'
``storage_options``. A remote's options are kept in memory only, never written to a
config. With a remote and no store, a private cache store is used (its config names the
remote as ``origin``, without options, so ``ds`` works there too):
``{cache_dir}/{sha256(url)[:16]}/.dsstore`` where ``cache_dir`` is the argument, else
``DSSTORE_CACHE_DIR``, else ``platformdirs.user_cache_path("objstore")/"dsfs"``.

When a remote is known (named, or the store's default), a version the store lacks is
looked up in the remote's dataset records and only its metadata is fetched (plus its
ancestors' records, so the SDK sees a whole lineage); file bytes come chunk by chunk as
reads need them, and a sequential read that must fetch also takes up to 8 MiB of the
chunks that follow in the same request. ``latest`` and the namespace listings include
the remote's versions. The remote's records are read once per filesystem instance (call
``invalidate_cache()`` to read them again); local records are re-read when the
``datasets/`` folder changes. ``@REV`` not found locally fetches the remote's refs and
metadata once, then also tries its branches (``HEAD`` there: ``main``, or the only branch).
A chunk missing from the remote's cached index makes it re-read that index once (a push
landed since). Fetched chunks and metadata stay in the store, so a second read is local.

Reads are thread-safe: store access is serialised by one lock per instance, chunk
decoding (zstd and the hash check) runs outside it. After a fork (DataLoader workers)
the store is reopened, detected by a pid change. Each open file keeps a small LRU of
decoded chunks so sequential reads decode a chunk once; the default fsspec cache is
``none`` since the LRU already serves small reads. Nothing is written to any working
folder; the filesystem is read-only and write calls raise ``DsReadOnly`` (a
PermissionError). Missing paths raise FileNotFoundError, folders opened as files
IsADirectoryError, files used as folders NotADirectoryError, each also a ``DsError``
whose message names the path and what exists instead.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from .chunk_range import Lru, chunk_starts, pieces
from .errors import DsError, RevisionNotFound, StoreNotFound, UnsafePath
from .links import LinkPolicy, decode_url, following, storage_options
from .manifest import EXEC, EXTERNAL, KIND_NAMES, LINK, FileEntry
from .paths import check_name

if TYPE_CHECKING:
    from .remote import Remote
    from .store import Store

MAX_LINK_HOPS = 40
READAHEAD = 8 * 1024 * 1024  # chunks fetched ahead of a sequential read that must fetch
TRUST_AGE_NS = 100_000_000  # a folder mtime this old cannot hide a change (one timestamp tick)


class DsNotFound(FileNotFoundError, DsError):
    """A ``ds://`` path that names nothing (FileNotFoundError for pandas and fsspec)."""


class DsStoreNotFound(FileNotFoundError, StoreNotFound):
    """No store where one was expected."""


class DsUnsafePath(FileNotFoundError, UnsafePath):
    """A path that would leave the version (``..``) or could never be in one."""


class DsIsADirectory(IsADirectoryError, DsError):
    """A folder opened as a file."""


class DsNotADirectory(NotADirectoryError, DsError):
    """A file used as a folder."""


class DsReadOnly(PermissionError, DsError):
    """A write to ``ds://``, which serves immutable versions."""


def _url(path: str) -> str:
    return f"ds://{path}"


def _few(names, limit: int = 12) -> str:
    names = sorted(names)
    if not names:
        return "none"
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


class _Parsed:
    """A ``ds://`` path split into its namespace part, its version and the path inside."""

    __slots__ = ("namespace", "project", "name", "version", "rev", "inner", "top")

    def __init__(self, path: str):
        parts = path.split("/") if path else []
        for part in parts:
            if part in ("", ".", ".."):
                raise DsUnsafePath(f"{_url(path)}: refusing path component {part!r}: ds:// paths are "
                                   "plain names; '.', '..' and empty components are not allowed")
        self.namespace: list[str] | None = None
        self.project = self.name = self.version = ""
        self.rev: str | None = None
        self.inner: list[str] = []
        self.top = ""
        if parts and parts[0].startswith("@"):
            self.rev, self.top, self.inner = parts[0][1:] or "HEAD", parts[0], parts[1:]
        else:
            at = next((i for i, p in enumerate(parts) if "@" in p), None)
            if at is None:
                self.namespace = parts
                return
            name, _, version = parts[at].rpartition("@")
            if at == 0 or not name or not version:
                raise DsNotFound(f"{_url(path)}: not a dataset path; write ds://PROJECT/NAME@VERSION/PATH "
                                 "(VERSION: a version, latest, or an id) or ds://@REV/PATH")
            self.project, self.name, self.version = "/".join(parts[:at]), name, version
            self.top, self.inner = "/".join(parts[: at + 1]), parts[at + 1 :]
        for part in self.inner:
            try:
                check_name(part, _url(path))
            except UnsafePath as e:
                raise DsUnsafePath(f"{e}; no version can hold it") from None


class _Catalog:
    """Finalized dataset versions by project and name, for listings and version lookup."""

    def __init__(self, records: list[dict], local_ids: set[str]):
        from .revisions import latest

        self.local_ids = local_ids
        self.every: dict[tuple[str, str], list[dict]] = {}  # what an id or a version text may name
        self.final: dict[tuple[str, str], dict[str, dict]] = {}  # version text -> the one it names
        self.drafts: dict[tuple[str, str], set[str]] = {}
        for r in records:
            key = (r["project"], r["name"])
            if r.get("status") == "draft" or not r.get("commit"):
                self.drafts.setdefault(key, set()).add(r["version"])
                continue
            self.every.setdefault(key, []).append(r)
            versions = self.final.setdefault(key, {})
            old = versions.get(r["version"])
            versions[r["version"]] = r if old is None else latest([old, r])  # as Dataset.get picks
        self.projects = {p for p, _n in self.final}
        self.datasets = {f"{p}/{n}": (p, n) for p, n in self.final}

    def is_dir(self, prefix: str) -> bool:
        return (not prefix or prefix in self.projects or prefix in self.datasets
                or any(p.startswith(prefix + "/") for p in self.projects))

    def children(self, prefix: str) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for project in self.projects:
            if not prefix:
                top = project.split("/", 1)[0]
                out[top] = _dir(top, kind="project")
            elif project.startswith(prefix + "/"):
                child = f"{prefix}/{project[len(prefix) + 1 :].split('/', 1)[0]}"
                out[child] = _dir(child, kind="project")
        for (project, name), _versions in self.final.items():
            if project == prefix and prefix:
                out[f"{prefix}/{name}"] = _dir(f"{prefix}/{name}", kind="dataset")
        if prefix in self.datasets:
            for version, r in self.final[self.datasets[prefix]].items():
                out[f"{prefix}@{version}"] = _version_info(f"{prefix}@{version}", r)
        return out

    def pick(self, project: str, name: str, version: str) -> dict | None:
        from .revisions import pick

        try:
            return pick(self.every.get((project, name), []), version, f"{project}/{name}")
        except RevisionNotFound as e:  # an ambiguous prefix: for fsspec, no such file
            raise DsNotFound(str(e)) from None


def _dir(name: str, **extra: Any) -> dict:
    return {"name": name, "size": 0, "type": "directory", **extra}


def _version_info(name: str, r: dict) -> dict:
    return _dir(name, kind="version", dataset_id=r["id"], dataset_version=r["version"], commit=r["commit"],
                status=r.get("status"), tags=list(r.get("tags") or []), created=r.get("created"))


def _file_info(name: str, e: FileEntry, **extra: Any) -> dict:
    return {"name": name, "size": e.size, "type": "file", "kind": KIND_NAMES[e.kind],
            "mode": 0o755 if e.kind == EXEC else 0o644, "hash": e.hash.hex(),
            "chunks": len(e.chunk_list()), **extra}


class _Session:
    """One opened store (per process and per SDK environment) and what was learnt from it."""

    def __init__(self, key: tuple, store: Store, remote_name: str | None):
        self.key = key
        self.store = store
        self.remote_name = remote_name
        self.lock = threading.RLock()
        self.decoded = 0
        self._remote: Remote | None = None
        self._retired: list[Remote] = []  # replaced remotes, kept for read_stats
        self._remote_records: list[dict] | None = None
        self._refs_fetched = False
        self._local: tuple[int, list[dict]] | None = None
        self._catalogs: dict[bool, tuple[list[dict], list[dict] | None, _Catalog]] = {}
        self._external: dict[bytes, tuple[Any, str, str]] = {}  # URL chunk id -> (fs, path, URL)
        self._links: LinkPolicy | None = None
        if remote_name is not None:
            store.fetcher = self.fetch_chunks

    # -- remote ------------------------------------------------------------------------
    def remote(self) -> Remote:
        with self.lock:
            if self._remote is None:
                from .remote import Remote

                self._remote = Remote(self.store, self.remote_name)
            return self._remote

    def fetch_chunks(self, ids) -> None:
        """The store's fetcher: a miss re-reads the remote's index once (a push since it was read)."""
        from .remote_fs import RemoteError

        ids = list(ids)
        try:
            self.remote().fetch_chunks(ids)
        except RemoteError:
            self._retire_remote()
            self.remote().fetch_chunks(ids)

    def _retire_remote(self) -> None:
        with self.lock:
            if self._remote is not None:
                self._retired.append(self._remote)
                self._remote = None

    def remote_records(self) -> list[dict]:
        with self.lock:
            if self._remote_records is None:
                self._remote_records = self.remote().dataset_records()  # invalid ones skipped there
            return self._remote_records

    def forget(self) -> None:
        with self.lock:
            self._remote_records = None
            self._refs_fetched = False
            self._local = None
            self._retire_remote()

    # -- the catalog of dataset versions -------------------------------------------------
    def local_records(self) -> list[dict]:
        from .records import RecordStore

        folder = self.store.path / "datasets"
        try:
            mtime = folder.stat().st_mtime_ns
        except FileNotFoundError:
            return []
        cached = self._local
        if cached is not None and cached[0] == mtime:
            return cached[1]
        records = RecordStore(self.store.path).all()
        if time.time_ns() - mtime > TRUST_AGE_NS:  # a later change would move the mtime on
            self._local = (mtime, records)
        return records

    def catalog(self, with_remote: bool) -> _Catalog:
        """Local records, plus the remote's when asked and known; rebuilt only when either changes."""
        local = self.local_records()
        remote = self.remote_records() if with_remote and self.remote_name is not None else None
        cached = self._catalogs.get(with_remote)
        if cached is not None and cached[0] is local and cached[1] is remote:
            return cached[2]
        ids = {r["id"] for r in local}
        cat = _Catalog(local + [r for r in remote or () if r["id"] not in ids], ids)
        self._catalogs[with_remote] = (local, remote, cat)
        return cat

    def version(self, p: _Parsed, path: str) -> dict:
        """The record of the version ``p`` names, its metadata fetched if only a remote has it."""
        cat = self.catalog(with_remote=False)
        rec = cat.pick(p.project, p.name, p.version)
        if (rec is None or p.version == "latest") and self.remote_name is not None:
            cat = self.catalog(with_remote=True)
            rec = cat.pick(p.project, p.name, p.version)
        if rec is None:
            raise self._no_version(cat, p, path)
        if rec["id"] not in cat.local_ids:
            self._fetch_version(rec)
        return rec

    def _no_version(self, cat: _Catalog, p: _Parsed, path: str) -> DsNotFound:
        key = (p.project, p.name)
        where = ""
        if self.remote_name is not None:
            where = f" (nor on {self.store.config.remotes[self.remote_name]['url']})"
        if key in cat.final:
            drafts = cat.drafts.get(key, set())
            if p.version in drafts:
                return DsNotFound(f"{_url(path)}: version {p.version} of {p.project}/{p.name} is a draft; "
                                  "finalize it to read it through ds://")
            return DsNotFound(f"{_url(path)}: {p.project}/{p.name} has no version {p.version!r}{where}; "
                              f"versions: {_few(cat.final[key])} (or latest, or a dataset id)")
        if key in cat.drafts:
            return DsNotFound(f"{_url(path)}: {p.project}/{p.name} has only drafts "
                              f"({_few(cat.drafts[key])}); finalize one to read it through ds://")
        if p.project in cat.projects:
            names = [n for (proj, n) in cat.final if proj == p.project]
            return DsNotFound(f"{_url(path)}: project {p.project!r} has no dataset {p.name!r}{where}; "
                              f"datasets: {_few(names)}")
        return DsNotFound(f"{_url(path)}: no project {p.project!r}{where} in store {self.store.path}; "
                          f"projects: {_few(cat.projects)}")

    def _fetch_version(self, rec: dict) -> None:
        """Bring a remote version's metadata and record, and its ancestors' (no file bytes)."""
        from .revisions import lineage_to_fetch

        with self.lock:
            remote = self.remote()
            for r in lineage_to_fetch(self.store, rec, self.remote_records()):
                remote.fetch_dataset(r)
            self._local = None

    def _commit_of(self, rev: str, path: str) -> str:
        """The version ``rev`` names, as the SDK and ``ds ui`` read it (``revisions.resolve``)."""
        from .revisions import resolve

        found = resolve(self.store, rev)
        if found.commit is None:
            raise DsNotFound(f"{_url(path)}: dataset {found.id} is a draft; finalize it to read it "
                             "through ds://")
        return found.commit

    def revision(self, rev: str, path: str) -> str:
        """A commit id for ``@REV``; a remote's refs are fetched once if the store lacks it."""
        with self.lock:
            try:
                return self._commit_of(rev, path)
            except RevisionNotFound as e:
                if self.remote_name is None:
                    raise DsNotFound(f"{_url(path)}: {e}") from None
                first = e
            remote = self.remote()
            if not self._refs_fetched:
                remote.fetch()
                self._refs_fetched = True
            track = f"refs/remotes/{remote.track}/"
            branches = [r[len(track):] for r in self.store.meta.ref_names(track)]
            tries = [rev, track + rev]
            if rev == "HEAD":
                tries += [track + "main"] + ([track + branches[0]] if len(branches) == 1 else [])
            for candidate in tries:
                try:
                    return self._commit_of(candidate, path)
                except RevisionNotFound:
                    continue
            raise DsNotFound(f"{_url(path)}: {first} (remote {remote.url} has branches "
                             f"{_few(branches)})") from None

    # -- paths inside a version ----------------------------------------------------------
    def root(self, p: _Parsed, path: str) -> tuple[Any, dict]:
        """(tree oid, info of the version folder) for a parsed version path."""
        with self.lock:
            if p.rev is not None:
                info = self.store.meta.commit_info(self.revision(p.rev, path))
                return info.tree, _dir(p.top, kind="revision", commit=info.id, created=info.created)
            rec = self.version(p, path)
            return self.store.meta.tree_of(rec["commit"]), _version_info(p.top, rec)

    def resolve(self, tree, parts: list[str], path: str) -> tuple[str, Any, str | None]:
        """Follow ``parts`` from a version's root: (real path, FileEntry or tree oid, link target
        when the last component given is a link). Contained links are followed."""
        from .materialize import link_is_contained

        meta = self.store.meta
        parts, done, i, hops = list(parts), [], 0, 0
        final_link: str | None = None
        original_last = True
        node = tree
        while i < len(parts):
            with self.lock:
                folder = meta.read_folder(node, "/".join(done))
            name = parts[i]
            here = "/".join([*done, name])
            if name in folder.dirs:
                node = folder.dirs[name]
                done.append(name)
                i += 1
                continue
            entry = folder.files.get(name)
            if entry is None:
                where = "/".join(done) or "the version's top folder"
                raise DsNotFound(f"{_url(path)}: no file or folder {here!r} in this version; {where} holds: "
                                 f"{_few([*folder.dirs, *folder.files])}")
            if entry.kind != LINK:
                if i < len(parts) - 1:
                    raise DsNotADirectory(f"{_url(path)}: {here!r} is a file, not a folder")
                return here, entry, final_link
            target = self.link_target(entry)
            if not link_is_contained(here, target):
                raise DsNotFound(f"{_url(path)}: {here!r} is a link to {target!r}, which leaves the version; "
                                 "ds:// follows only links that stay inside it (as `ds get` does)")
            hops += 1
            if hops > MAX_LINK_HOPS:
                raise DsNotFound(f"{_url(path)}: more than {MAX_LINK_HOPS} links to follow (a loop?)")
            if i == len(parts) - 1 and original_last:
                final_link, original_last = target, False
            parts = _normalize([*done, *target.split("/")]) + parts[i + 1 :]
            node, done, i = tree, [], 0
        return "/".join(done), node, final_link

    def link_target(self, entry: FileEntry) -> str:
        return os.fsdecode(self.read(entry, 0, entry.size, Lru()))

    def listing(self, tree, real: str, folder_oid, asked: str) -> list[dict]:
        """A folder's entries named under ``asked``; links as the policy says."""
        with self.lock:
            folder = self.store.meta.read_folder(folder_oid, real)
        out = [_dir(f"{asked}/{name}", tree=str(oid)) for name, oid in folder.dirs.items()]
        for name, e in folder.files.items():
            if e.kind != LINK:
                out.append(_file_info(f"{asked}/{name}", e))
                continue
            try:
                _real, target, dest = self.resolve(tree, [*filter(None, real.split("/")), name], asked)
            except (DsNotFound, DsNotADirectory):
                continue  # leaves the version, dangles or loops: not part of it, as in a checkout
            if isinstance(target, FileEntry):
                out.append(_file_info(f"{asked}/{name}", target, islink=True, destination=dest))
        return sorted(out, key=lambda d: d["name"])

    # -- bytes ---------------------------------------------------------------------------
    def read(self, entry: FileEntry, start: int, end: int, lru: Lru, starts: list[int] | None = None,
             ahead: bool = False, path: str = "") -> bytes:
        """Bytes [start, end) of a file: only the chunks covering them are fetched and decoded."""
        if entry.kind == EXTERNAL:
            with self.external(entry, path) as (fs, where):
                return fs.cat_file(where, start=start, end=end)
        end = min(end, entry.size)
        if start >= end:
            return b""
        chunks = entry.chunk_list()
        starts = starts if starts is not None else chunk_starts(chunks)
        parts = pieces(chunks, starts, start, end)
        extra: list[bytes] = []
        if ahead:
            budget = READAHEAD
            for chunk_id, size in chunks[bisect.bisect_left(starts, end):]:
                budget -= size
                if budget < 0:
                    break
                extra.append(chunk_id)
        data = self.chunk_bytes([chunk_id for chunk_id, _part in parts], lru, extra)
        return b"".join(memoryview(data[chunk_id])[part] for chunk_id, part in parts)

    def chunk_bytes(self, ids: list[bytes], lru: Lru, extra: list[bytes]) -> dict[bytes, bytes]:
        from .packs import FLAG_DELTA, decode_chunk

        got: dict[bytes, bytes] = {}
        todo = []
        for chunk_id in dict.fromkeys(ids):
            data = lru.get(chunk_id)
            if data is None:
                todo.append(chunk_id)
            else:
                got[chunk_id] = data
        if not todo:
            return got
        chunks = self.store.chunks
        with self.lock:
            absent = [c for c in todo if not chunks.has(c)]
            if absent:
                chunks.index.reload()  # another process may have added them meanwhile
                absent = [c for c in absent if not chunks.has(c)]
            if absent and self.store.fetcher is not None:
                self.store.ensure_chunks([*absent, *extra])
            stored = []
            for chunk_id in todo:
                loc = chunks.locate(chunk_id)
                if loc is None:
                    hint = ("the remote lacks it too" if self.remote_name else
                            "its bytes may be on a remote: pass remote=NAME_OR_URL or set DSSTORE_REMOTE")
                    raise DsError(f"chunk {chunk_id.hex()} is not in store {self.store.path}; {hint}")
                raw = chunks.read_stored(loc)
                base = chunks.base_bytes(raw, f"pack {loc.pack}") if loc.flags & FLAG_DELTA else None
                stored.append((loc.entry(chunk_id), loc.pack, raw, base))
            self.decoded += len(stored)
        for pe, pack, raw, base in stored:  # zstd and the hash check release the GIL: outside the lock
            got[pe.chunk_id] = decode_chunk(raw, pe, self.store.algo, f"pack {pack}", base)
            lru.put(pe.chunk_id, got[pe.chunk_id])
        return got

    def links(self) -> LinkPolicy:
        """The trust rule for external URLs, from the store's config as this session holds it
        (with remote options given in memory)."""
        with self.lock:
            if self._links is None:
                self._links = LinkPolicy(self.store.path, self.store.config)
            return self._links

    @contextmanager
    def external(self, entry: FileEntry, path: str) -> Iterator[tuple[Any, str]]:
        """(filesystem, path) of an external file's URL (its one chunk), while it is read; refused
        unless the trust rule allows it, and a URL already being read on this thread is a loop."""
        chunk_id = entry.chunk_list()[0][0]
        found = self._external.get(chunk_id)
        if found is None:
            import fsspec

            url = decode_url(self.chunk_bytes([chunk_id], Lru(), [])[chunk_id], _url(path))
            self.links().check(_url(path), url, chunk_id)
            from .remote_fs import fsspec_url

            found = self._external[chunk_id] = (*fsspec.core.url_to_fs(fsspec_url(url)), url)
        fs, where, url = found
        with following(_url(path), url):
            yield fs, where


def _normalize(parts: list[str]) -> list[str]:
    out: list[str] = []
    for part in parts:
        if part == "..":
            out.pop()  # link_is_contained ruled out climbing above the root
        elif part not in ("", "."):
            out.append(part)
    return out


def _store_folder(arg: str | os.PathLike[str]) -> Path:
    """The store folder for ``store=``: a ``.dsstore`` (any name) or a folder holding one."""
    p = Path(arg).expanduser().absolute()
    if (p / "config").is_file() and (p / "meta").is_dir():
        return p
    if (p / ".dsstore" / "config").is_file():
        return p / ".dsstore"
    raise DsStoreNotFound(f"store={str(arg)!r}: no objstore store there; give a folder holding .dsstore, "
                          "the .dsstore folder itself, or remote= alone to use a private cache store")


def _as_url(target: str) -> str:
    return target if "://" in target else str(Path(target).expanduser().absolute())


def _remote_name(store: Store, target: str | None, options: dict | None) -> str | None:
    """Register ``target`` (a configured name or a URL) with ``options`` in the store's config, in
    memory only: credentials are never written. Returns the name ``Remote`` then opens."""
    from dataclasses import replace

    if not target:
        return None
    remotes = dict(store.config.remotes)
    name = target if target in remotes else next((n for n, r in remotes.items() if r["url"] == target), None)
    if name is None:
        if "://" not in target and not target.startswith(("/", ".", "~")) and not os.path.exists(target):
            raise DsError(f"remote={target!r}: no remote of that name in {store.path / 'config'}; "
                          f"give a URL or one of: {_few(remotes)}")
        url = _as_url(target)
        name = "url-" + hashlib.sha256(url.encode()).hexdigest()[:16]  # Remote's key for a bare URL
        remotes[name] = {"url": url}
    if options:
        remotes[name] = {**remotes[name], "options": {**remotes[name].get("options", {}), **options}}
    store.config = replace(store.config, remotes=remotes)
    return name


def _cache_store(url: str, options: dict | None, cache_dir: str | os.PathLike[str] | None) -> Store:
    """The private store that caches what was read from ``url`` (created on first use)."""
    import shutil
    import tomllib
    from dataclasses import replace

    from .remote_fs import RemoteError, RemoteFS
    from .store import Store

    if cache_dir is None:
        cache_dir = os.environ.get("DSSTORE_CACHE_DIR")
    if cache_dir is None:
        import platformdirs

        cache_dir = platformdirs.user_cache_path("objstore") / "dsfs"
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    path = Path(cache_dir).expanduser().absolute() / key / ".dsstore"
    if not (path / "config").is_file():
        try:
            raw = RemoteFS(url, storage_options(options)).cat("config")
            cfg = tomllib.loads(raw.decode()).get("store", {})
        except FileNotFoundError:
            raise RemoteError(f"{url} is not an objstore remote (no config); "
                              "push or upload to it first") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise RemoteError(f"remote {url}: config is unreadable ({e})") from None
        try:
            made = Store.create(path, hash=str(cfg.get("hash", "xxh3-128")))
            made.set_config(replace(made.config, remote="origin", remotes={"origin": {"url": url}}))
            made.close()
        except (DsError, OSError):
            if not (path / "config").is_file():  # not another process winning the race: a real error
                raise
        finally:
            shutil.rmtree(path.parent / f".dsstore.init-{os.getpid()}", ignore_errors=True)
    return Store(path)


class DsFile(AbstractBufferedFile):
    """A file of a version, read by chunk ranges (see the module docstring)."""

    def __init__(self, fs: DsFileSystem, path: str, session: _Session, entry: FileEntry, info: dict,
                 block_size=None, autocommit=True, cache_type: str = "none", cache_options=None, **kwargs):
        self._session = session
        self._entry = entry
        self._chunk_starts = chunk_starts(entry.chunk_list())
        self._lru = Lru()
        self._next = 0
        super().__init__(fs, path, mode="rb", block_size=block_size, autocommit=autocommit,
                         cache_type=cache_type, cache_options=cache_options, size=info["size"], **kwargs)
        self.details = info

    def _fetch_range(self, start: int, end: int) -> bytes:
        data = self._session.read(self._entry, start, end, self._lru, self._chunk_starts,
                                  ahead=start == self._next and start > 0, path=self.path)
        self._next = end
        return data


class DsFileSystem(AbstractFileSystem):
    """Read-only ``ds://`` filesystem over dataset versions and store revisions."""

    protocol = "ds"
    root_marker = ""

    def __init__(self, store: str | os.PathLike[str] | None = None, remote: str | None = None,
                 remote_options: dict | None = None, cache_dir: str | os.PathLike[str] | None = None,
                 **kwargs: Any):
        """Nothing is opened here (fsspec makes instances freely): the store opens on first use."""
        super().__init__(**kwargs)
        self._store_arg = store
        self._remote_arg = remote
        self._remote_options = dict(remote_options or {})
        self._cache_dir = cache_dir
        self._session_now: _Session | None = None
        self._lock = threading.Lock()
        self._lock_pid = os.getpid()

    @classmethod
    def _strip_protocol(cls, path):
        path = super()._strip_protocol(path)
        return [p.strip("/") for p in path] if isinstance(path, list) else path.strip("/")

    # -- the store -----------------------------------------------------------------------
    def _key(self) -> tuple:
        env_dir = os.environ.get("DSSTORE_DIR")
        default = self._store_arg is None and self._remote_arg is None
        return (os.getpid(), env_dir if default else None,
                os.environ.get("DSSTORE_REMOTE") if self._remote_arg is None else None,
                os.getcwd() if default and not env_dir else None)

    def _session(self) -> _Session:
        """The session for this process and SDK environment (reopened after a fork)."""
        key = self._key()
        session = self._session_now
        if session is not None and session.key == key:
            return session
        if self._lock_pid != key[0]:  # a lock held by a thread of the parent would never be released
            self._lock, self._lock_pid = threading.Lock(), key[0]
        with self._lock:
            session = self._session_now
            if session is None or session.key != key:
                session = self._session_now = self._open_session(key)
            return session

    def _open_session(self, key: tuple) -> _Session:
        from .store import Store

        if self._store_arg is None and self._remote_arg is not None:
            url = _as_url(self._remote_arg)
            store = _cache_store(url, self._remote_options, self._cache_dir)
            return _Session(key, store, _remote_name(store, url, self._remote_options))
        if self._store_arg is not None:
            store = Store(_store_folder(self._store_arg))
        else:
            from .dataset_store import store_path

            path = store_path()
            if (path / "config").is_file():
                store = Store(path)
            elif os.environ.get("DSSTORE_REMOTE"):
                store = Store.create(path)  # as the SDK does: a store to fetch the remote's versions into
            else:
                raise DsStoreNotFound(f"no objstore store at {path} (DSSTORE_DIR, else the nearest .dsstore, "
                                      "else the per-user store); create a dataset first, or pass store= "
                                      "or remote=")
        from .dataset_store import default_remote

        target = self._remote_arg or default_remote(store)
        return _Session(key, store, _remote_name(store, target, self._remote_options))

    def store_path(self) -> Path:
        """The ``.dsstore`` folder this filesystem reads (a private cache store with remote= alone)."""
        return self._session().store.path

    def read_stats(self) -> dict:
        """What reads cost so far in this process: chunks decoded, chunks and requests from a remote."""
        s = self._session()
        remotes = [*s._retired, *([s._remote] if s._remote is not None else [])]
        return {"chunks_decoded": s.decoded, "chunks_fetched": sum(r.chunks_fetched for r in remotes),
                "remote_requests": sum(r.fs.request_count for r in remotes),
                "remote_bytes": sum(r.fs.bytes_received for r in remotes)}

    def invalidate_cache(self, path: str | None = None) -> None:
        """Read the remote's dataset records and refs again at the next need."""
        if self._session_now is not None:
            self._session_now.forget()

    # -- reading -------------------------------------------------------------------------
    def _node(self, path: str) -> tuple[_Session, dict, Any, Any, str]:
        """(session, info, version tree, FileEntry or folder oid, real path) of a path."""
        s = self._session()
        p = _Parsed(path)
        if p.namespace is not None:
            prefix = "/".join(p.namespace)
            cat = s.catalog(with_remote=True)
            if not cat.is_dir(prefix):
                raise DsNotFound(f"{_url(path)}: no project or dataset {prefix!r} in store {s.store.path}; "
                                 f"projects: {_few(cat.projects)}")
            kind = "dataset" if prefix in cat.datasets else "project"
            return s, _dir(prefix, **({"kind": kind} if prefix else {})), None, None, ""
        tree, top = s.root(p, path)
        if not p.inner:
            return s, top, tree, tree, ""
        real, node, dest = s.resolve(tree, p.inner, path)
        extra = {"islink": True, "destination": dest} if dest is not None else {}
        if isinstance(node, FileEntry):
            return s, _file_info(path, node, **extra), tree, node, real
        return s, _dir(path, tree=str(node), **extra), tree, node, real

    def info(self, path, **kwargs):
        return self._node(self._strip_protocol(path))[1]

    def ls(self, path, detail=True, **kwargs):
        path = self._strip_protocol(path)
        s, info, tree, node, real = self._node(path)
        if info["type"] == "file":
            out = [info]
        elif tree is None:
            out = sorted(s.catalog(with_remote=True).children(path).values(), key=lambda d: d["name"])
        else:
            out = s.listing(tree, real, node, path)
        return out if detail else [d["name"] for d in out]

    def _file(self, path: str) -> tuple[_Session, FileEntry, dict]:
        s, info, _tree, node, _real = self._node(path)
        if not isinstance(node, FileEntry):
            raise DsIsADirectory(f"{_url(path)} is a folder, not a file; list it with ls() or find()")
        if node.kind == EXTERNAL:
            with s.external(node, path) as (fs, where):  # refused here, before anything is opened
                if not node.size:  # the remote file's size was not known when added
                    info = dict(info, size=fs.size(where))
        return s, node, info

    def size(self, path):
        """A file's size (an external file's unrecorded size is asked of its URL); 0 for a folder."""
        try:
            return self._file(self._strip_protocol(path))[2]["size"]
        except DsIsADirectory:
            return 0

    def _open(self, path, mode="rb", block_size=None, autocommit=True, cache_options=None, **kwargs):
        path = self._strip_protocol(path)
        if mode != "rb":
            self._refuse(path)
        s, entry, info = self._file(path)
        return DsFile(self, path, s, entry, info, block_size=block_size, autocommit=autocommit,
                      cache_type=kwargs.pop("cache_type", "none"), cache_options=cache_options, **kwargs)

    def cat_file(self, path, start=None, end=None, **kwargs):
        """Bytes [start, end) (negative: from the end), decoding only the chunks they cover."""
        path = self._strip_protocol(path)
        s, entry, info = self._file(path)
        size = info["size"]
        start = 0 if start is None else max(size + start, 0) if start < 0 else start
        end = size if end is None else max(size + end, 0) if end < 0 else min(end, size)
        if start >= end:
            return b""
        return s.read(entry, start, end, Lru(), path=path)

    def checksum(self, path):
        info = self.info(path)
        return int(info["hash"], 16) if "hash" in info else super().checksum(path)

    # -- writing: refused ----------------------------------------------------------------
    def _refuse(self, path=None, *args: Any, **kwargs: Any):
        where = f"{_url(self._strip_protocol(path))}: " if isinstance(path, str) else ""
        raise DsReadOnly(f"{where}ds:// is read-only (versions never change); write files locally and make "
                         "a new version: Dataset.create(..., parent_datasets=[...]), add_files, finalize")

    mkdir = makedirs = rmdir = rm_file = rm = pipe_file = put_file = cp_file = mv = touch = _refuse
