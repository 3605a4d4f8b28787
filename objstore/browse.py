"""Read-only views of a store for ``ds ui``: the version DAG, datasets, folders, diffs, previews.

Everything here returns plain data (JSON-ready dicts) and never writes: the store's writer
lock is not taken, no object is created (``MetaStore.empty_tree`` would write one, so it is not used), and
chunks missing locally are reported rather than fetched from a remote. Requests arrive
on several threads; one lock serialises access to the object database, whose handles
are not meant to be shared between threads.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import re
import threading
from collections.abc import Iterator
from typing import Any

from .chunk_range import Lru, chunk_starts, pieces
from .dataset_logger import reports_of, user_metadata
from .diff import diff_trees
from .errors import DsError, FormatError, RevisionNotFound
from .manifest import EXTERNAL, KIND_NAMES, LINK, FileEntry
from .paths import check_relpath, join
from .records import RecordStore
from .store import INTERNAL_REFS, Store

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
_BLOB_HASH = re.compile(r"[0-9a-f]{32}|[0-9a-f]{64}")
JSON_BYTES = 4 * 1024 * 1024  # a JSON blob (a plotly figure, a dict artifact) shown whole up to this
ARRAY_BYTES = 16 * 1024 * 1024
MEDIA_BYTES = 64 * 1024 * 1024
MEDIA_TYPES = {"audio/wav", "audio/x-wav", "audio/wave", "audio/mpeg", "audio/ogg", "audio/flac",
               "audio/x-flac", "audio/mp4", "video/mp4", "video/webm", "video/ogg"}
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
        self._starts = chunk_starts(self._chunks)
        self._size = sum(size for _chunk_id, size in self._chunks)
        self._pos = 0
        self._cached = Lru(1)

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

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        end = min(self._pos + len(view), self._size)
        if self._pos >= end:
            return 0
        done = 0
        for chunk_id, part in pieces(self._chunks, self._starts, self._pos, end):
            data = self._cached.get(chunk_id)
            if data is None:
                data = self._store.chunks.get(chunk_id)
                self._cached.put(chunk_id, data)
            piece = memoryview(data)[part]
            view[done:done + len(piece)] = piece
            done += len(piece)
        self._pos += done
        return done


class Browser:
    """The read-only queries behind ``ds ui``, over one open store."""

    def __init__(self, store: Store):
        self.store = store
        self.meta = store.meta
        self.lock = threading.RLock()
        self._totals: dict[str, tuple[int, int]] = {}

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
        for ref, commit_id in self.meta.refs().items():
            if ref.startswith(INTERNAL_REFS):
                continue  # keeps dataset attachments live for gc; not a version
            names = labels.setdefault(commit_id, [])
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
            commits: list[dict] = []
            truncated = False
            # a record may name a commit this store lacks: new_versions skips it
            for commit_id in self.meta.new_versions(labels, by_time=True):
                if len(commits) >= limit:
                    truncated = True
                    break
                info = self.meta.commit_info(commit_id)
                commits.append(info.as_json() | {"labels": labels.get(commit_id, [])})
            return {"head": self.meta.head_commit(), "branch": self.meta.head_branch(),
                    "commits": commits, "truncated": truncated}

    def datasets(self) -> list[dict]:
        """The SDK's dataset versions (drafts included), by project, name and version."""
        from .clearml_rules import version_order

        keys = ("id", "project", "name", "version", "status", "tags", "parents", "commit", "created",
                "description")
        with self.lock:
            records = RecordStore(self.store.path).all()
        out = [{k: r.get(k) for k in keys} | _extras(r) for r in records]
        return sorted(out, key=lambda r: (r["project"] or "", r["name"] or "",
                                          version_order(r["version"] or "")))

    # -- one version -------------------------------------------------------------------
    def _version(self, rev: str) -> tuple[str, str]:
        """(commit id or dataset id, root tree) for a version id, prefix, name or dataset id."""
        from .revisions import resolve

        if not isinstance(rev, str) or not _REV.fullmatch(rev) or ".." in rev:
            raise BadRequest(f"{rev[:80]!r} is not a version name (an id, tag, branch or dataset id)")
        try:
            found = resolve(self.store, rev)
        except RevisionNotFound as e:
            raise NotFound(str(e)) from None
        return found.id, found.tree

    def _lookup(self, tree: str, path: str) -> FileEntry | str:
        path = path.strip("/")
        if path:
            check_relpath(path, "the path asked for")
        found = self.meta.lookup(tree, path)
        if found is None:
            raise NotFound(f"{path!r} is not in this version")
        return found

    def _folder_totals(self, oid: str, where: str, budget: list[int]) -> tuple[int, int] | None:
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

    def _size_at(self, tree: str, path: str) -> int | None:
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
        from .dataset_attachments import missing

        return missing(self.store, entry)

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
            return self._image_bytes(entry, content_type, repr(path)), content_type

    def _image_bytes(self, entry: FileEntry, content_type: str, what: str) -> bytes:
        if entry.size > IMAGE_BYTES:
            raise TooLarge(f"{what} is {entry.size} bytes; images over {IMAGE_BYTES >> 20} MiB are not shown")
        if not self._is_image(entry, content_type):
            raise NotFound(f"{what} does not hold {content_type} data")
        return self._head(entry, entry.size)

    def _text_head(self, entry: FileEntry) -> dict:
        data = self._head(entry, TEXT_BYTES)
        text = _utf8_prefix(data)
        if text is None or "\x00" in text:
            return {"type": "binary", "head_hex": data[:64].hex()}
        return {"type": "text", "text": text, "truncated": entry.size > len(data)}

    def _csv_head(self, entry: FileEntry, default: str) -> dict:
        data = self._head(entry, TABLE_BYTES)
        return _csv_table(data, entry.size > len(data), default)

    # -- a dataset's task: artifacts, reports, properties, parameters, metadata ----------
    def _record(self, dataset_id: str) -> dict:
        if not isinstance(dataset_id, str) or not _DATASET_ID.fullmatch(dataset_id):
            raise BadRequest(f"{str(dataset_id)[:80]!r} is not a dataset id (32 hexadecimal digits)")
        record = RecordStore(self.store.path).read(dataset_id)
        if record is None:
            raise NotFound(f"no dataset {dataset_id} in this store")
        return record

    def dataset(self, dataset_id: str) -> dict:
        """What a dataset version carries besides its files, for the page's dataset card.

        Record fields may come from a remote: each is type-checked here and the page shows
        every value as text. Blob references become ``{hash, size}``; their content is read
        through ``attachment`` / ``blob``.
        """
        with self.lock:
            r = self._record(dataset_id)
        task = _dict(r.get("task"))
        metadata, reports = user_metadata(r), reports_of(r)
        props = [{k: _text(p.get(k)) for k in ("name", "value", "description", "type") if k in p}
                 | {"name": _text(p.get("name", n))}
                 for n, p in sorted(_dict(task.get("properties")).items()) if isinstance(p, dict)]
        params = [[k, _text(v)] for k, v in sorted(_dict(task.get("parameters")).items())]
        out = {
            **{k: r.get(k) for k in ("id", "name", "project", "version", "status", "commit")},
            "artifacts": [_artifact_row(n, a) for n, a in sorted(_dict(task.get("artifacts")).items())
                          if isinstance(a, dict)],
            "metadata": [_metadata_row(n, v) for n, v in sorted(metadata.items())],
            "reports": [_report_row(i, rep) for i, rep in enumerate(reports[:MAX_REPORTS])],
            "more_reports": max(0, len(reports) - MAX_REPORTS),
            "properties": props,
            "parameters": params,
        }
        return _jsonable(out)

    def _blob(self, dataset_id: str, blob_hash: str) -> tuple[FileEntry, str, str]:
        """(entry, content type, file name) of a blob the dataset's record names."""
        from . import dataset_attachments as blobs

        if not isinstance(blob_hash, str) or not _BLOB_HASH.fullmatch(blob_hash):
            raise BadRequest(f"{str(blob_hash)[:80]!r} is not a content hash")
        with self.lock:
            r = self._record(dataset_id)
        for ref, ctype, file in _blob_refs(r):
            if ref.get("hash") == blob_hash:
                try:
                    return blobs.entry_of(self.store, ref, f"content {blob_hash}"), ctype, file
                except FormatError as e:
                    raise NotFound(str(e)) from None
        raise NotFound(f"dataset {dataset_id} names no content {blob_hash}")

    def attachment(self, dataset_id: str, blob_hash: str, start: int = 0) -> dict:
        """A preview of an artifact, report payload or metadata blob: image, media, JSON,
        table (Parquet, CSV, .csv.gz), array (.npy/.npz, never unpickled), zip listing, text.

        A table is shown ``TABLE_ROWS`` rows at a time from row ``start``, so the page can
        walk through all of it (a big report table is such a blob)."""
        if not isinstance(start, int) or isinstance(start, bool) or not 0 <= start <= MAX_START:
            raise BadRequest(f"start must be a row number from 0 to {MAX_START}")
        entry, ctype, file = self._blob(dataset_id, blob_hash)
        view = _view(ctype, file)
        base = {"hash": blob_hash, "size": entry.size, "content_type": ctype, "file": file, "view": view}
        with self.lock:
            if self._missing(entry):
                return base | {"type": "unavailable",
                               "message": "the content is not in this store (the version came from a remote "
                                          "that did not send it)"}
            if view == "image":
                image_type = _image_type(ctype, file)
                if image_type and self._is_image(entry, image_type):
                    return base | {"type": "image", "content_type": image_type,
                                   "too_large": entry.size > IMAGE_BYTES}
                return base | self._text_head(entry)
            if view == "media":
                return base | {"type": "media", "content_type": ctype, "too_large": entry.size > MEDIA_BYTES}
            if view == "json":
                return base | self._json(entry)
            if view == "parquet":
                return base | self._parquet_head(entry, start)
            if view == "csv":
                gz = file.lower().endswith(".gz") or self._head(entry, 2) == b"\x1f\x8b"
                return base | self._csv_page(entry, gz, start)
            if view == "array":
                return base | self._array(entry)
            if view == "archive":
                return base | self._zip_listing(entry)
            if view == "pickle":
                return base | {"type": "message", "message": "a pickled Python object: it is never "
                                                             "unpickled here (that could run code)"}
            return base | self._text_head(entry)

    def blob(self, dataset_id: str, blob_hash: str) -> tuple[bytes, str]:
        """The bytes and content type of an image, audio or video blob, for ``<img>`` / ``<audio>``."""
        entry, ctype, file = self._blob(dataset_id, blob_hash)
        with self.lock:
            if self._missing(entry):
                raise NotFound(f"content {blob_hash} is not in this store")
            view = _view(ctype, file)
            image_type = _image_type(ctype, file) if view == "image" else None
            if image_type:
                return self._image_bytes(entry, image_type, f"content {blob_hash}"), image_type
            if view == "media":
                if entry.size > MEDIA_BYTES:
                    raise TooLarge(f"content {blob_hash} is {entry.size} bytes; media over "
                                   f"{MEDIA_BYTES >> 20} MiB are not played here")
                return self._head(entry, entry.size), ctype
            raise NotFound(f"content {blob_hash} is not an image, audio or video")

    def _json(self, entry: FileEntry) -> dict:
        if entry.size > JSON_BYTES:
            return self._text_head(entry)
        import json

        data = self._head(entry, entry.size)
        try:
            return {"type": "json", "value": _jsonable(json.loads(data))}
        except ValueError:
            return self._text_head(entry)

    def _array(self, entry: FileEntry) -> dict:
        if entry.size > ARRAY_BYTES:
            return {"type": "message", "message": f"an array of {entry.size} bytes: too large to show here"}
        try:
            import numpy as np
        except ImportError:
            return {"type": "message", "message": "array preview needs numpy: pip install numpy"}
        try:
            loaded = np.load(io.BytesIO(self._head(entry, entry.size)), allow_pickle=False)
            if hasattr(loaded, "files"):  # .npz: its first array (ClearML keeps one, named as the artifact)
                loaded = loaded[loaded.files[0]] if loaded.files else np.zeros(0)
        except (ValueError, OSError) as e:
            return {"type": "message", "message": f"not a plain numpy array ({e})"}
        text = np.array2string(loaded, threshold=400, edgeitems=5)
        return {"type": "array", "shape": list(loaded.shape), "dtype": str(loaded.dtype),
                "text": text[:TEXT_BYTES]}

    def _zip_listing(self, entry: FileEntry) -> dict:
        import zipfile

        try:
            with zipfile.ZipFile(io.BufferedReader(EntryReader(self.store, entry), 1 << 16)) as zf:
                infos = zf.infolist()
        except (zipfile.BadZipFile, OSError, ValueError) as e:
            return {"type": "message", "message": f"not a readable zip archive ({e})"}
        files = [{"name": _cell(i.filename), "size": i.file_size} for i in infos[:MAX_ROWS] if not i.is_dir()]
        return {"type": "archive", "files": files, "more": max(0, len(infos) - MAX_ROWS)}

    def _parquet_head(self, entry: FileEntry, start: int = 0) -> dict:
        """``TABLE_ROWS`` rows from row ``start``; row groups before it are not read."""
        try:
            import pyarrow.parquet as pq
        except ImportError:
            return {"type": "message", "message": "Parquet preview needs pyarrow: pip install pyarrow"}
        try:
            f = io.BufferedReader(EntryReader(self.store, entry), 1 << 20)
            pf = pq.ParquetFile(f)
            names = pf.schema_arrow.names
            total = pf.metadata.num_rows
            first, skipped = 0, 0
            while first < pf.num_row_groups and skipped + pf.metadata.row_group(first).num_rows <= start:
                skipped += pf.metadata.row_group(first).num_rows
                first += 1
            rows: list[dict] = []
            if first < pf.num_row_groups:
                groups = range(first, pf.num_row_groups)
                for batch in pf.iter_batches(batch_size=TABLE_ROWS, row_groups=groups):
                    rows.extend(batch.to_pylist())
                    if len(rows) >= start - skipped + TABLE_ROWS:
                        break
            rows = rows[start - skipped:start - skipped + TABLE_ROWS]
        except Exception as e:  # a damaged or unsupported file is shown as such, not a 500
            return {"type": "message", "message": f"not a readable Parquet file ({e})"}
        return {"type": "table", "format": "parquet", "columns": names,
                "rows": [[_cell(v) for v in row.values()] for row in rows],
                "total_rows": total, "more": total > start + len(rows), "start": start}

    def _csv_page(self, entry: FileEntry, gz: bool, start: int) -> dict:
        """``TABLE_ROWS`` rows of a CSV (or .csv.gz) blob from data row ``start``, read as a stream."""
        import gzip
        import zlib

        what = ".csv.gz" if gz else "CSV"
        try:
            raw: Any = io.BufferedReader(EntryReader(self.store, entry), 1 << 16)
            text = io.TextIOWrapper(gzip.GzipFile(fileobj=raw) if gz else raw, "utf-8", errors="replace",
                                    newline="")
            sample = text.read(8192)
            if sample and not sample.endswith("\n"):  # end the sample with its line
                rest = text.readline(LINE_CHARS)
                if len(rest) >= LINE_CHARS and not rest.endswith("\n"):
                    raise _LongLine
                sample += rest
            try:
                delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
            except csv.Error:
                delimiter = ","
            reader = csv.reader(itertools.chain(io.StringIO(sample, newline=""), _lines(text)),
                                delimiter=delimiter)
            columns = next(reader, [])
            for _ in itertools.islice(reader, start):
                pass
            rows = list(itertools.islice(reader, TABLE_ROWS))
            more = next(reader, None) is not None
        except _LongLine:
            return {"type": "message", "message": f"a line of this {what} is over {LINE_CHARS >> 20} MiB; "
                                                  "not shown here"}
        except (OSError, EOFError, zlib.error, csv.Error) as e:
            return {"type": "message", "message": f"not a readable {what} file ({e})"}
        return {"type": "table", "format": "csv", "columns": [_cell(v) for v in columns],
                "rows": [[_cell(v) for v in row] for row in rows], "total_rows": None, "more": more,
                "start": start}


MAX_REPORTS = 2000  # reports of one dataset sent to the page
MAX_START = 10 ** 12  # the last row a table page may start at
LINE_CHARS = 1 << 20  # a CSV line longer than this is not shown


class _LongLine(Exception):
    """A CSV line over ``LINE_CHARS``: shown as a message, never read whole."""


def _lines(text: io.TextIOBase) -> Iterator[str]:
    """The lines of ``text``, refusing (``_LongLine``) one longer than ``LINE_CHARS``."""
    while line := text.readline(LINE_CHARS):
        if len(line) >= LINE_CHARS and not line.endswith("\n"):
            raise _LongLine
        yield line


def _dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return None if value is None else (value if isinstance(value, str) else str(value))[:CELL_CHARS * 10]


def _extras(record: dict) -> dict:
    """How many artifacts, reports, properties and metadata a dataset carries (the page marks them)."""
    task = _dict(record.get("task"))
    return {"artifacts": len(_dict(task.get("artifacts"))), "reports": len(reports_of(record)),
            "properties": len(_dict(task.get("properties"))), "metadata": len(user_metadata(record))}


def _summary(ref: Any) -> dict | None:
    """A blob reference as the page needs it: its hash and size (chunk lists stay here)."""
    from .dataset_attachments import is_ref

    return {"hash": ref["hash"], "size": ref.get("size")} if is_ref(ref) else None


def _artifact_row(name: str, a: dict) -> dict:
    ctype, file = _text(a.get("content_type")) or "", _text(a.get("file")) or name
    meta = _dict(a.get("metadata"))
    return {"name": name, "type": _text(a.get("type")), "content_type": ctype, "file": file,
            "size": a.get("size") if isinstance(a.get("size"), int) else None,
            "timestamp": _text(a.get("timestamp")), "preview": (_text(a.get("preview")) or "")[:TEXT_BYTES],
            "metadata": {str(k): _text(v) for k, v in meta.items()}, "url": _text(a.get("url")),
            "blob": _summary(a.get("blob")), "view": _view(ctype, file)}


def _metadata_row(name: str, value: Any) -> dict:
    if isinstance(value, dict) and value.get("$ds") in ("pandas", "numpy"):
        return {"name": name, "kind": value["$ds"], "shape": value.get("shape"),
                "dtype": _text(value.get("dtype")), "columns": value.get("columns"),
                "blob": _summary(value.get("blob"))}
    if isinstance(value, dict) and value.get("$ds") == "json":
        value = value.get("value")
    return {"name": name, "kind": "json", "value": value}


def _report_row(index: int, report: dict) -> dict:
    row = {k: v for k, v in report.items() if k != "blob"}
    row["index"] = index
    row["blob"] = _summary(report.get("blob"))
    for key in ("kind", "title", "series", "content_type", "file", "url"):
        if key in row:
            row[key] = _text(row[key])
    return row


def _blob_refs(record: dict):
    """(reference, content type, file name) of every blob a record names."""
    task = _dict(record.get("task"))
    for name, a in _dict(task.get("artifacts")).items():
        if isinstance(a, dict) and isinstance(a.get("blob"), dict):
            yield a["blob"], _text(a.get("content_type")) or "", _text(a.get("file")) or str(name)
    for rep in reports_of(record):
        if isinstance(rep.get("blob"), dict):
            yield rep["blob"], _text(rep.get("content_type")) or "", _text(rep.get("file")) or "report"
    for name, value in user_metadata(record).items():
        if isinstance(value, dict) and isinstance(value.get("blob"), dict):
            fmt = {"pandas": ("application/parquet", ".parquet"), "numpy": ("application/x-npy", ".npy")}
            ctype, suffix = fmt.get(value.get("$ds"), ("application/octet-stream", ""))
            yield value["blob"], ctype, f"{name}{suffix}"


def _view(content_type: str, file: str) -> str:
    """How the page shows a blob, from its content type and file name."""
    ctype, name = (content_type or "").lower(), (file or "").lower()
    if ctype.startswith("image/") or _suffix(name) in IMAGE_TYPES:
        return "image"
    if ctype in MEDIA_TYPES:
        return "media"
    for view, types, suffixes in (
            ("json", ("application/json",), (".json",)),
            ("parquet", ("application/parquet",), (".parquet", ".pq")),
            ("csv", ("text/csv",), (".csv", ".csv.gz")),
            ("array", ("application/x-npy", "application/numpy"), (".npy", ".npz")),
            ("archive", ("application/zip",), (".zip",)),
            ("pickle", ("application/pickle",), (".pkl", ".pickle")),
            ("text", ("text/plain", "application/yaml"), (".txt", ".yaml", ".yml", ".md", ".log"))):
        if ctype in types or name.endswith(suffixes):
            return view
    return "text" if ctype.startswith("text/") else "binary"


def _image_type(content_type: str, file: str) -> str | None:
    """The image type to check the bytes against: by the file's suffix, else its content type."""
    return IMAGE_TYPES.get(_suffix(file or "")) or (content_type if content_type in _MAGIC else None)


def _jsonable(value: Any) -> Any:
    """JSON the page can parse: NaN and infinities (which Python's json writes bare) as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _csv_table(data: bytes, truncated: bool, default: str) -> dict:
    """The first rows of CSV text as the page's table (``truncated``: more bytes follow)."""
    text = data.decode("utf-8", "replace")
    if truncated:  # the last line may be cut short
        text = text[: text.rfind("\n") + 1] or text
    try:
        delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|").delimiter
    except csv.Error:
        delimiter = default
    rows = [[_cell(v) for v in row]
            for row in itertools.islice(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter),
                                        TABLE_ROWS + 1)]
    columns = rows[0] if rows else []
    return {"type": "table", "format": "csv", "columns": columns, "rows": rows[1:TABLE_ROWS + 1],
            "total_rows": None, "more": len(rows) > TABLE_ROWS or truncated}


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

