"""Read-only views of a store for ``ds ui``: the version DAG, datasets, folders, diffs, previews.

Everything here returns plain data (JSON-ready dicts) and never writes: the store's writer
lock is not taken, no object is created (``MetaStore.empty_tree`` would write one, so it is not used), and
chunks missing locally are reported rather than fetched from a remote. Requests arrive
on several threads; one lock serialises access to the object database, whose handles
are not meant to be shared between threads.
"""

from __future__ import annotations

import bisect
import csv
import io
import math
import re
import threading
from typing import Any

import pygit2

from .diff import diff_trees
from .errors import DsError, RevisionNotFound
from .manifest import EXTERNAL, KIND_NAMES, LINK, FileEntry
from .paths import check_relpath, join
from .records import RecordStore
from .store import Store

MAX_COMMITS = 2000
MAX_ROWS = 5000  # files of one folder, or paths of one diff category
TEXT_BYTES = 64 * 1024
TABLE_BYTES = 256 * 1024
TABLE_ROWS = 50
CELL_CHARS = 200
IMAGE_BYTES = 16 * 1024 * 1024
TOTALS_BUDGET = 20_000  # folder reads allowed for the subfolder totals of one listing
_REV = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/~^@{}-]{0,199}")
_DATASET_ID = re.compile(r"[0-9a-f]{32}")
IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
               ".webp": "image/webp", ".bmp": "image/bmp"}
_MAGIC = {"image/png": (b"\x89PNG\r\n\x1a\n",), "image/jpeg": (b"\xff\xd8\xff",),
          "image/gif": (b"GIF87a", b"GIF89a"), "image/webp": (b"RIFF",), "image/bmp": (b"BM",)}


class NotFound(DsError):
    """A version, dataset or path that the store does not have."""


class BadRequest(DsError):
    """A parameter that is malformed (as opposed to well-formed but unknown)."""


class TooLarge(DsError):
    """Content over the size served raw."""


def _suffix(path: str) -> str:
    name = path.rpartition("/")[2]
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


class EntryReader(io.RawIOBase):
    """A seekable file over one entry's chunks, so a Parquet footer is read without the whole file."""

    def __init__(self, store: Store, entry: FileEntry):
        super().__init__()
        self._store = store
        self._chunks = entry.chunk_list()
        self._starts: list[int] = []
        pos = 0
        for _, length in self._chunks:
            self._starts.append(pos)
            pos += length
        self._size = pos
        self._pos = 0
        self._cached: tuple[int, bytes] | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _chunk(self, i: int) -> bytes:
        if self._cached is None or self._cached[0] != i:
            self._cached = (i, self._store.chunks.get(self._chunks[i][0]))
        return self._cached[1]

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self._size:
            i = bisect.bisect_right(self._starts, self._pos) - 1
            data = self._chunk(i)
            at = self._pos - self._starts[i]
            n = min(len(view) - done, len(data) - at)
            view[done:done + n] = data[at:at + n]
            done += n
            self._pos += n
        return done


class Browser:
    """The read-only queries behind ``ds ui``, over one open store."""

    def __init__(self, store: Store):
        self.store = store
        self.meta = store.meta
        self.lock = threading.RLock()
        self._totals: dict[pygit2.Oid, tuple[int, int]] = {}

    # -- versions ----------------------------------------------------------------------
    def summary(self) -> dict:
        with self.lock:
            return {"store": str(self.store.path), "worktree": str(self.store.worktree),
                    "head": self.meta.head_commit(), "branch": self.meta.head_branch()}

    def _labels(self) -> dict[str, list[dict]]:
        """commit id -> its names: branches, tags, remote branches, dataset versions, HEAD.

        Every ref is a key, named or not (``refs/datasets/<id>`` of a dataset whose record
        is gone still keeps its versions in the graph).
        """
        labels: dict[str, list[dict]] = {}
        for ref, cid in self.meta.refs().items():
            names = labels.setdefault(cid, [])
            for prefix, kind in (("refs/heads/", "branch"), ("refs/tags/", "tag"),
                                 ("refs/remotes/", "remote")):
                if ref.startswith(prefix):
                    names.append({"kind": kind, "name": ref[len(prefix):]})
        for r in RecordStore(self.store.path).all():
            if r.get("commit"):
                labels.setdefault(r["commit"], []).append(
                    {"kind": "dataset", "name": f"{r['project']}/{r['name']} {r['version']}", "id": r["id"]})
        head = self.meta.head_commit()
        if head:
            labels.setdefault(head, []).insert(0, {"kind": "head", "name": "HEAD"})
        return labels

    def graph(self, limit: int = MAX_COMMITS) -> dict:
        """Every version reachable from any name (branches, tags, datasets, remotes), newest first.

        Topological order, so a child always comes before its parents; the page lays the
        lanes out from this order alone.
        """
        with self.lock:
            labels = self._labels()
            repo = self.meta.repo
            tips = [pygit2.Oid(hex=c) for c in labels]
            tips = [t for t in tips if t in repo]  # a record may name a commit this store lacks
            commits: list[dict] = []
            truncated = False
            if tips:
                walker = self.meta.repo.walk(tips[0], pygit2.enums.SortMode.TOPOLOGICAL
                                             | pygit2.enums.SortMode.TIME)
                for t in tips[1:]:
                    walker.push(t)
                for c in walker:
                    if len(commits) >= limit:
                        truncated = True
                        break
                    cid = str(c.id)
                    info = self.meta.commit_info(cid)
                    commits.append(info.as_json() | {"labels": labels.get(cid, [])})
            return {"head": self.meta.head_commit(), "branch": self.meta.head_branch(),
                    "commits": commits, "truncated": truncated}

    def datasets(self) -> list[dict]:
        """The SDK's dataset versions (drafts included), by project, name and version."""
        from .dataset import version_key

        keys = ("id", "project", "name", "version", "status", "tags", "parents", "commit", "created",
                "description")
        with self.lock:
            records = RecordStore(self.store.path).all()
        out = [{k: r.get(k) for k in keys} for r in records]
        return sorted(out, key=lambda r: (r["project"] or "", r["name"] or "",
                                          version_key(r["version"] or "")))

    # -- one version -------------------------------------------------------------------
    def _version(self, rev: str) -> tuple[str, pygit2.Oid]:
        """(commit id or dataset id, root tree) for a version id, prefix, name or dataset id."""
        if not isinstance(rev, str) or not _REV.fullmatch(rev) or ".." in rev:
            raise BadRequest(f"{rev[:80]!r} is not a version name (an id, tag, branch or dataset id)")
        if _DATASET_ID.fullmatch(rev):
            record = RecordStore(self.store.path).read(rev)
            if record is not None:
                if record.get("commit"):
                    return record["commit"], self.meta.tree_of(record["commit"])
                if record.get("tree"):
                    tree = pygit2.Oid(hex=record["tree"])
                    if tree in self.meta.repo:
                        return record["id"], tree
                raise NotFound(f"dataset {rev} has no content in this store")
        try:
            cid = self.meta.resolve(rev)
        except RevisionNotFound as e:
            raise NotFound(str(e)) from None
        return cid, self.meta.tree_of(cid)

    def _lookup(self, tree: pygit2.Oid, path: str) -> FileEntry | pygit2.Oid:
        path = path.strip("/")
        if path:
            check_relpath(path, "the path asked for")
        found = self.meta.lookup(tree, path)
        if found is None:
            raise NotFound(f"{path!r} is not in this version")
        return found

    def _folder_totals(self, oid: pygit2.Oid, where: str, budget: list[int]) -> tuple[int, int] | None:
        """(files, bytes) under a folder; None once the listing's budget of folder reads is spent."""
        got = self._totals.get(oid)
        if got is not None:
            return got
        if budget[0] <= 0:
            return None
        budget[0] -= 1
        folder = self.meta.read_folder(oid, where)
        files, size = len(folder.files), sum(e.size for e in folder.files.values())
        for name, sub in folder.dirs.items():
            t = self._folder_totals(sub, join(where, name), budget)
            if t is None:
                return None
            files, size = files + t[0], size + t[1]
        if len(self._totals) > 100_000:
            self._totals.clear()
        self._totals[oid] = (files, size)
        return files, size

    def folder(self, rev: str, path: str = "") -> dict:
        """A folder of a version: its files with sizes, its subfolders with totals when cheap."""
        with self.lock:
            version, tree = self._version(rev)
            path = path.strip("/")
            found = self._lookup(tree, path)
            if isinstance(found, FileEntry):
                raise NotFound(f"{path!r} is a file, not a folder")
            folder = self.meta.read_folder(found, path)
            budget = [TOTALS_BUDGET]
            dirs = []
            for name in sorted(folder.dirs):
                t = self._folder_totals(folder.dirs[name], join(path, name), budget)
                dirs.append({"name": name, "path": join(path, name),
                             "files": t[0] if t else None, "bytes": t[1] if t else None})
            names = sorted(folder.files)
            files = [{"name": n, "path": join(path, n), "size": folder.files[n].size,
                      "kind": KIND_NAMES[folder.files[n].kind]} for n in names[:MAX_ROWS]]
            return {"version": version, "path": path, "folders": dirs, "files": files,
                    "more_files": max(0, len(names) - MAX_ROWS)}

    def diff(self, a: str, b: str) -> dict:
        """What changed from version ``a`` to ``b``, with sizes (renames detected)."""
        with self.lock:
            va, ta = self._version(a)
            vb, tb = self._version(b)
            d = diff_trees(self.meta, ta, tb)
            rows = {
                "added": [{"path": p, "size": e.size} for p, e in sorted(d.added.items())],
                "removed": [{"path": p, "size": e.size} for p, e in sorted(d.removed.items())],
                "modified": [{"path": p, "old_size": d.old_sizes.get(p), "size": e.size}
                             for p, e in sorted(d.modified.items())],
                "renamed": [{"from": x, "to": y, "size": self._size_at(tb, y)} for x, y in sorted(d.renamed)],
            }
            truncated = any(len(v) > MAX_ROWS for v in rows.values())
            return {"a": va, "b": vb, "stat": d.stat(), "truncated": truncated,
                    **{k: v[:MAX_ROWS] for k, v in rows.items()}}

    def _size_at(self, tree: pygit2.Oid, path: str) -> int | None:
        found = self.meta.lookup(tree, path)
        return found.size if isinstance(found, FileEntry) else None

    # -- file content ------------------------------------------------------------------
    def _entry(self, rev: str, path: str) -> tuple[str, FileEntry]:
        version, tree = self._version(rev)
        path = path.strip("/")
        if not path:
            raise BadRequest("give the path of a file")
        found = self._lookup(tree, path)
        if not isinstance(found, FileEntry):
            raise NotFound(f"{path!r} is a folder, not a file")
        return version, found

    def _missing(self, entry: FileEntry) -> bool:
        """True when a chunk is not in this store (say, a clone that has not fetched it)."""
        chunks = self.store.chunks
        if all(chunks.has(c) for c, _ in entry.chunk_list()):
            return False
        chunks.index.reload()  # another process may have added it since
        return not all(chunks.has(c) for c, _ in entry.chunk_list())

    def _head(self, entry: FileEntry, limit: int) -> bytes:
        with EntryReader(self.store, entry) as f:
            return f.read(limit)

    def preview(self, rev: str, path: str) -> dict:
        """What the page shows for a file: text, a table head, an image link, or why not."""
        with self.lock:
            version, entry = self._entry(rev, path)
            path = path.strip("/")
            base = {"version": version, "path": path, "size": entry.size, "kind": KIND_NAMES[entry.kind]}
            if self._missing(entry):
                return base | {"type": "unavailable",
                               "message": "the content is not in this store (it is on a remote); "
                                          "`ds checkout` or `ds get` brings it"}
            if entry.kind == LINK:
                return base | {"type": "link", "target": self._head(entry, 4096).decode("utf-8", "replace")}
            if entry.kind == EXTERNAL:  # its one chunk is the URL; the bytes stay there
                url = self.store.chunks.get(entry.chunks[0][0]).decode("utf-8", "replace")
                return base | {"type": "external", "url": url}
            suffix = _suffix(path)
            if suffix in IMAGE_TYPES and self._is_image(entry, IMAGE_TYPES[suffix]):
                return base | {"type": "image", "content_type": IMAGE_TYPES[suffix],
                               "too_large": entry.size > IMAGE_BYTES}
            if suffix in (".csv", ".tsv"):
                return base | self._csv_head(entry, "\t" if suffix == ".tsv" else ",")
            if suffix in (".parquet", ".pq"):
                return base | self._parquet_head(entry)
            return base | self._text_head(entry)

    def _is_image(self, entry: FileEntry, content_type: str) -> bool:
        head = self._head(entry, 16)
        return any(head.startswith(m) for m in _MAGIC[content_type]) and (
            content_type != "image/webp" or head[8:12] == b"WEBP")

    def image(self, rev: str, path: str) -> tuple[bytes, str]:
        """The bytes and content type of an image file, for the page's ``<img>``."""
        with self.lock:
            _, entry = self._entry(rev, path)
            content_type = IMAGE_TYPES.get(_suffix(path.strip("/")))
            if entry.kind in (LINK, EXTERNAL) or content_type is None or self._missing(entry):
                raise NotFound(f"{path!r} is not an image held in this store")
            if entry.size > IMAGE_BYTES:
                raise TooLarge(f"{path!r} is {entry.size} bytes; images over {IMAGE_BYTES >> 20} MiB "
                               "are not shown")
            if not self._is_image(entry, content_type):
                raise NotFound(f"{path!r} does not hold {content_type} data")
            return self._head(entry, entry.size), content_type

    def _text_head(self, entry: FileEntry) -> dict:
        data = self._head(entry, TEXT_BYTES)
        text = _utf8_prefix(data)
        if text is None or "\x00" in text:
            return {"type": "binary", "head_hex": data[:64].hex()}
        return {"type": "text", "text": text, "truncated": entry.size > len(data)}

    def _csv_head(self, entry: FileEntry, default: str) -> dict:
        data = self._head(entry, TABLE_BYTES)
        truncated = entry.size > len(data)
        text = data.decode("utf-8", "replace")
        if truncated:  # the last line may be cut short
            text = text[: text.rfind("\n") + 1] or text
        try:
            delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = default
        rows = []
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            rows.append([_cell(v) for v in row])
            if len(rows) > TABLE_ROWS:
                break
        columns = rows[0] if rows else []
        return {"type": "table", "format": "csv", "columns": columns, "rows": rows[1:TABLE_ROWS + 1],
                "total_rows": None, "more": len(rows) > TABLE_ROWS or truncated}

    def _parquet_head(self, entry: FileEntry) -> dict:
        try:
            import pyarrow.parquet as pq
        except ImportError:
            return {"type": "message", "message": "Parquet preview needs pyarrow: pip install pyarrow"}
        try:
            f = io.BufferedReader(EntryReader(self.store, entry), 1 << 20)
            pf = pq.ParquetFile(f)
            names = pf.schema_arrow.names
            batch = next(pf.iter_batches(batch_size=TABLE_ROWS), None)
        except Exception as e:  # a damaged or unsupported file is shown as such, not a 500
            return {"type": "message", "message": f"not a readable Parquet file ({e})"}
        rows = [[_cell(v) for v in row.values()] for row in batch.to_pylist()] if batch else []
        total = pf.metadata.num_rows
        return {"type": "table", "format": "parquet", "columns": names, "rows": rows,
                "total_rows": total, "more": total > len(rows)}


def _utf8_prefix(data: bytes) -> str | None:
    """``data`` as UTF-8, allowing a character cut at the end; None if it is not text."""
    for cut in range(4):
        try:
            return data[: len(data) - cut].decode("utf-8")
        except UnicodeDecodeError as e:
            if e.start < len(data) - 4:
                return None
    return None


def _cell(value: Any) -> Any:
    """A table value as JSON can carry it: numbers and booleans as they are, others as short text."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    text = value.hex() if isinstance(value, bytes) else str(value)
    return text if len(text) <= CELL_CHARS else text[:CELL_CHARS] + "…"

