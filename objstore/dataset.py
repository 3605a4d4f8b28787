"""``objstore.Dataset``: ClearML Data's ``Dataset`` interface on a local store, no server.

A version is a draft (``create``) until ``finalize`` commits it: its id exists from the
start and never changes; parents are merged in list order (later wins on a path) and
must be final. Drafts live on disk (a tree in the object database plus a record, both
written atomically), so they survive a crash or a restart. Where ClearML only fails on
the server (changing a finalized version) or drops information (removals on squash),
this class keeps the interface and does the right thing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from . import dataset_metadata
from . import records as rec
from .clearml_rules import glob_match, matches_any_wildcard, next_version, tag_filter
from .dataset_logger import DatasetLogger
from .dataset_store import default_remote, open_sdk_store
from .dataset_task import DatasetTask
from .errors import DsError, FormatError, TargetNotEmpty
from .get import copy_items, get_copy
from .ingest import Ingestor, Job
from .links import trust_links
from .manifest import EXEC, EXTERNAL, FILE, LINK, FileEntry
from .paths import check_relpath
from .progress import LogProgress, announce, as_transfer
from .records import RecordStore
from .revisions import DatasetNotFound, find_record, latest, lineage_to_fetch, matching
from .scan import Stat
from .squash import squash_tree
from .store import Store, outside_git
from .tree_edit import TreeEditor


class DatasetFinalized(DsError):
    """A finalized dataset version was asked to change. ``what`` is the problem alone, so the
    command line can give its own fix (``hint`` is the SDK's)."""

    def __init__(self, what: str, hint: str, child_fix: bool = True):
        super().__init__(f"{what}; {hint}")
        self.what, self.hint = what, hint
        self.child_fix = child_fix  # the fix is a child version (the CLI words it its own way)


class NothingDone(DsError, UserWarning):
    """What ClearML only logs a warning for and skips: a rename or move of a dataset that
    is not there. Issued with ``warnings.warn`` so re-run scripts go on; being a DsError
    too, ``warnings.simplefilter("error", NothingDone)`` makes it the usual exception (the
    CLI does this)."""


class DeleteRefused(NothingDone):
    """A delete ClearML refuses with a warning: nothing matches, an ambiguous selection, or
    all versions without force (``Dataset.delete`` warns it, as ``NothingDone``)."""


@dataclass(frozen=True)
class DatasetFile:
    """One file of a version, as ``file_entries_dict`` (stored files) and ``link_entries_dict``
    (external files: ``link`` is the URL, ``hash`` None as in ClearML) return it."""

    relative_path: str
    hash: str | None
    size: int
    parent_dataset_id: str
    link: str | None = None  # the URL of an external file


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _unique(tags: Iterable[str]) -> list[str]:
    """Tags in the order given, each once (ClearML keeps a dataset's tags in order)."""
    return list(dict.fromkeys(str(t) for t in tags))


def _no_changes() -> dict[str, int]:
    return {"files added": 0, "files removed": 0, "files modified": 0}


class Dataset:
    """A dataset version (draft or final). Build it with ``create`` or ``get``."""

    def __init__(self, store: Store, record: dict):
        self._store = store
        self._record = record

    # -- plumbing ----------------------------------------------------------------------
    @property
    def _records(self) -> RecordStore:
        return RecordStore(self._store.path)

    def _reload(self) -> dict:
        fresh = self._records.read(self.id)
        if fresh is None:
            raise DatasetNotFound(f"dataset {self.id} no longer exists (deleted?)")
        self._record = fresh
        return fresh

    def _save(self) -> None:
        self._records.write(self._record)

    def _publish_record(self) -> None:
        """Carry a final version's own changes (status, tags, names, task attachments) to its
        remotes: each applies them to its freshest record (``RecordSync.push_record``), so
        what other machines changed there stays. The record is marked ``unsynced`` until
        every remote took it; its ``synced`` facts tell its own changes from stale ones."""
        if self._record["status"] == rec.DRAFT or not self._record.get("uploaded"):
            return
        from .remote import Remote

        self._mark_unsynced()
        sent = {k: v for k, v in self._record.items() if k != "unsynced"}
        written = None
        for url in self._record.get("uploaded", []):
            written = Remote(self._store, url).push_record(sent) or written
        self._took(sent, written)

    def _mark_unsynced(self) -> None:
        with self._store.locked():
            r = _with_base(self._reload())  # a task's change: the facts are the ones synced
            r["unsynced"] = True
            self._save()

    def _took(self, sent: dict, written: dict | None) -> None:
        """After the remotes took ``sent``: the facts they hold now (another machine's
        changes too) become this record's and its ``synced`` ones; the ``unsynced`` mark
        goes unless a change was saved meanwhile (it stays until that change's push)."""
        with self._store.locked():
            r = self._reload()
            local = ("unsynced", "synced")
            pending = {k: v for k, v in r.items() if k not in local} != \
                {k: v for k, v in sent.items() if k not in local}
            if written is not None:
                r.update(rec.merge_facts(r.get("synced"), r, written), synced=rec.facts(written))
            if not pending:
                r.pop("unsynced", None)
            self._save()

    def _tree(self) -> str:
        r = self._record
        return self._store.meta.tree_of(r["commit"]) if r.get("commit") else r["tree"]

    def _entries(self) -> dict[str, FileEntry]:
        return dict(self._store.meta.walk(self._tree()))

    def _require_draft(self, action: str) -> None:
        if self._reload()["status"] != rec.DRAFT:
            raise DatasetFinalized(
                f"dataset {self.name!r} version {self.version} ({self.id}) is finalized and cannot {action}",
                f"create a child version: Dataset.create(..., parent_datasets=[{self.id!r}])")

    def _edit(self, change) -> Any:
        """Run ``change(editor)`` on the draft under the store lock; persist the new tree."""
        with self._store.locked():
            self._require_draft("be changed")
            editor = TreeEditor(self._store.meta, self._tree())
            result = change(editor)
            self._store.chunks.flush()
            tree = editor.write()
            self._store.meta.make_durable()
            if str(tree) != self._record["tree"]:
                self._record["tree"] = str(tree)
                self._record["dirty"] = True
            self._save()
        return result

    # -- identity ----------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self._record["id"]

    @property
    def name(self) -> str:
        return self._record["name"]

    @property
    def project(self) -> str:
        return self._record["project"]

    @property
    def version(self) -> str:
        return self._record["version"]

    @version.setter
    def version(self, version: str) -> None:
        with self._store.locked():
            self._require_draft("change its version")
            self._record["version"] = str(version).strip()
            self._save()

    @property
    def tags(self) -> list[str]:
        return list(self._record.get("tags", []))

    @tags.setter
    def tags(self, values: Sequence[str]) -> None:
        self._change_tags(lambda _old: list(values or []))

    def add_tags(self, tags: str | Sequence[str]) -> None:
        """Add tags after the ones there; a string is split at spaces, as ClearML's Task does."""
        self._change_tags(lambda old: [*old, *(tags.split(" ") if isinstance(tags, str) else tags)])

    def remove_tags(self, tags: str | Sequence[str]) -> None:
        drop = {tags} if isinstance(tags, str) else set(tags)
        self._change_tags(lambda old: [t for t in old if t not in drop])

    def _change_tags(self, change) -> None:
        """Tags as ``change`` makes them from the saved ones, in one lock hold: another
        writer's tags added meanwhile are kept."""
        self._change_record(lambda r: r.update(tags=_unique(change(list(r.get("tags") or [])))))

    def _change_record(self, change) -> None:
        """Apply ``change`` to the saved record and save it, in one lock hold; then publish it
        (only this change: what other machines changed on the remote stays)."""
        with self._store.locked():
            change(_with_base(self._reload()))
            self._save()
        self._publish_record()

    @property
    def description(self) -> str:
        return self._record.get("description") or ""

    def set_description(self, description: str) -> None:
        self._change_record(lambda r: r.update(description=description))

    def set_metadata(self, metadata: Any, metadata_name: str = "metadata", ui_visible: bool = True) -> None:
        """Attach metadata under a name (before finalize); see ``dataset_metadata`` for the types kept."""
        if metadata_name.startswith("data_"):
            raise DsError(f"metadata name {metadata_name!r} may not start with 'data_' (reserved)")
        with self._store.locked():  # one hold: gc must not let the new blob go before the record names it
            stored = dataset_metadata.encode(self._store, metadata_name, metadata)
            self._require_draft("take new metadata")
            self._record.setdefault("metadata", {})[metadata_name] = stored
            self._save()
        if ui_visible and dataset_metadata.is_dataframe(metadata):  # shown as a table, as in ClearML
            self.get_logger().report_table("Dataset Metadata", "Dataset Metadata", table_plot=metadata)

    def get_metadata(self, metadata_name: str = "metadata") -> Any:
        """The value ``set_metadata`` kept under the name, else (as in ClearML, where metadata
        is an artifact) the artifact of that name; None if neither exists."""
        stored = self._reload().get("metadata", {}).get(metadata_name)
        if stored is None:
            artifact = self._task.artifacts.get(metadata_name)
            return None if artifact is None else artifact.get()
        return dataset_metadata.decode(self._store, stored, metadata_name)

    def is_final(self) -> bool:
        return self._reload()["status"] != rec.DRAFT

    def is_dirty(self) -> bool:
        """True while the draft has changes that upload() has not stored yet."""
        return bool(self._reload().get("dirty"))

    @property
    def changed_files(self) -> dict[str, int]:
        """Files added, removed and modified in this version so far, as ClearML counts them
        (``files added``, ``files removed``, ``files modified``); a copy."""
        return dict(_no_changes(), **self._record.get("changed_files", {}))

    def update_changed_files(self, num_files_added: int | None = None, num_files_modified: int | None = None,
                             num_files_removed: int | None = None) -> None:
        """Add to the counts ``changed_files`` reports (ClearML's bookkeeping of a version's
        changes against its parents; the file operations keep it up to date themselves)."""
        if not (num_files_added or num_files_modified or num_files_removed):
            return
        with self._store.locked():
            self._reload()
            counts = self.changed_files
            for key, n in (("files added", num_files_added), ("files modified", num_files_modified),
                           ("files removed", num_files_removed)):
                if n:
                    counts[key] += int(n)
            self._record["changed_files"] = counts
            self._save()

    _offline = False

    @classmethod
    def set_offline(cls, offline_mode: bool = False) -> None:
        """Kept for ClearML scripts: objstore needs no server, so it always works offline."""
        cls._offline = bool(offline_mode)

    @classmethod
    def is_offline(cls) -> bool:
        return cls._offline

    def get_offline_mode_folder(self) -> Path | None:
        """None: objstore keeps no offline session apart from the store (ClearML's folder of a
        session to import later has no counterpart; every version is already in the store)."""
        return None

    @classmethod
    def import_offline_session(cls, session_folder_zip: str, upload: bool = True,
                               finalize: bool = False) -> str:
        """Refused with the reason: objstore has no offline sessions to import, since a dataset
        made with ``set_offline(True)`` is an ordinary version in the store already."""
        raise DsError(f"cannot import {session_folder_zip}: objstore has no offline sessions; a dataset "
                      "made offline is already in the store (Dataset.list_datasets() lists it)")

    def __repr__(self) -> str:
        return f"<Dataset {self.project}/{self.name} {self.version} {self.id} {self._record['status']}>"

    # -- creating and finding ----------------------------------------------------------
    @classmethod
    def create(
        cls,
        dataset_name: str | None = None,
        dataset_project: str | None = None,
        dataset_tags: Sequence[str] | None = None,
        parent_datasets: Sequence[str | Dataset] | None = None,
        use_current_task: bool = False,
        dataset_version: str | None = None,
        output_uri: str | bool | None = None,
        description: str | None = None,
    ) -> Dataset:
        """A new draft version. ``output_uri``: where ``upload`` sends it; None or True (as in
        ClearML) means the default remote. The version is the next of the highest one the
        dataset has (ClearML's rule: ``1.0.0`` -> ``1.0.1``, ``v1`` -> ``2``), else 1.0.0."""
        store = open_sdk_store()
        parents = [cls._resolve_parent(store, p) for p in (parent_datasets or [])]
        if isinstance(output_uri, bool):
            output_uri = None
        if not dataset_project and parents:
            dataset_project = parents[-1]["project"]
        if not dataset_name or not dataset_project:
            raise DsError("Dataset.create needs dataset_name and dataset_project "
                          "(the project may come from a parent dataset)")
        bad_project = rec.project_problem(dataset_project)
        if bad_project:  # a record with it would be skipped as invalid on every read
            raise DsError(f"Dataset.create: {bad_project}")
        if dataset_version is not None:
            dataset_version = str(dataset_version).strip()  # as ClearML
            if not dataset_version:
                raise DsError("Dataset.create: dataset_version is empty; give a version such as '1.0.0', "
                              "or None for the next one")
        records = RecordStore(store.path)
        theirs = _remote_only(store) if dataset_version is None else []
        with store.locked():
            if dataset_version is None:
                same = [r["version"] for r in [*records.all(), *theirs]
                        if r["project"] == dataset_project and r["name"] == dataset_name]
                dataset_version = next_version(same)
            walks = [store.meta.walk(store.meta.tree_of(p["commit"])) for p in parents]
            if len(parents) > 1:  # only several parents can clash on a path
                walks = [list(w) for w in walks]
                _refuse_parent_collisions(list(zip(parents, walks, strict=True)))
            editor = TreeEditor(store.meta, None)
            for entries in walks:  # union in list order: a later parent wins on a path
                for path, entry in entries:
                    editor.set(path, entry)
            tree = editor.write()
            store.meta.make_durable()
            record = {
                "id": uuid.uuid4().hex,
                "name": dataset_name,
                "project": dataset_project,
                "version": str(dataset_version),
                "tags": _unique(dataset_tags or []),
                "description": description or "",
                "status": rec.DRAFT,
                "parents": [p["id"] for p in parents],
                "tree": str(tree),
                "commit": None,
                "created": _now(),
                "metadata": {},
                "output_uri": output_uri,
                "uploaded": [],
                "dirty": False,
                "changed_files": _no_changes(),
            }
            records.write(record)
        return cls(store, record)

    @staticmethod
    def _resolve_parent(store: Store, parent: str | Dataset, use: str = "using it as a parent") -> dict:
        """A final version by id, here or (as ClearML's get) on the shared remote."""
        pid = parent.id if isinstance(parent, Dataset) else str(parent)
        try:
            record = find_record(store, pid)
        except DatasetNotFound:  # ClearML resolves parents with get(): the shared remote too
            record = _fetch_from_remote(store, lambda rs: [r for r in rs if r["id"] == pid])
            if record is None:
                raise
        if record["status"] == rec.DRAFT:
            raise DsError(f"dataset {record['name']!r} ({record['id']}) is not finalized; "
                          f"finalize it before {use}")
        return record

    @classmethod
    def get(
        cls,
        dataset_id: str | None = None,
        dataset_project: str | None = None,
        dataset_name: str | None = None,
        dataset_tags: Sequence[str] | None = None,
        only_completed: bool = False,
        only_published: bool = False,
        include_archived: bool = False,
        auto_create: bool = False,
        writable_copy: bool = False,
        dataset_version: str | None = None,
        alias: str | None = None,
        overridable: bool = False,
        shallow_search: bool = False,
        silence_alias_warnings: bool = False,
        **kwargs: Any,
    ) -> Dataset:
        """A version by id (or a unique prefix of it or of its commit), or the latest one that
        matches project, name, version and tags (ClearML's tag query: OR by default, ``-tag``
        excludes, ``__$all`` makes the tags after it all required). ``alias``, ``overridable``,
        ``shallow_search`` and ``silence_alias_warnings`` change nothing: there is no server
        task to log the alias to, and the store is always searched whole."""
        bad = [k for k in kwargs if not k.startswith("_")]
        if bad:
            raise DsError(f"Invalid 'Dataset.get' arguments: {bad}")
        if isinstance(dataset_tags, str):
            dataset_tags = [dataset_tags]
        if not (dataset_id or dataset_project or dataset_name or dataset_tags):
            raise DsError("Dataset selection criteria not met: give dataset_id, or dataset_project / "
                          "dataset_name / dataset_tags")
        if dataset_id and (dataset_project or dataset_name):
            raise DsError("give either dataset_id or dataset_project/dataset_name, not both")
        store = open_sdk_store()
        if dataset_id:
            try:  # the remote's facts (name, tags, status) have the last word, as ClearML's server's
                found = _refresh_one(store, find_record(store, dataset_id))
            except DatasetNotFound:
                found = _fetch_from_remote(store, lambda rs: [
                    r for r in rs if r["id"] == dataset_id or (r.get("commit") or "").startswith(dataset_id)])
                if found is None:
                    raise
        else:
            def query(records: Iterable[dict]) -> list[dict]:
                return _filter(records, dataset_project, dataset_name, dataset_tags, dataset_version,
                               only_completed, only_published, exact_name=True)

            # like ClearML's server, the shared remote has the last word: newer versions and
            # changed facts (published, tags) there are brought in before choosing
            _fetch_from_remote(store, query)
            matches = query(RecordStore(store.path).all())
            if not matches:
                if auto_create and dataset_name:  # the next version: ClearML passes none on
                    return cls.create(dataset_name=dataset_name, dataset_project=dataset_project,
                                      dataset_tags=dataset_tags)
                raise DatasetNotFound(
                    f"no dataset matches project={dataset_project!r} name={dataset_name!r} "
                    f"tags={list(dataset_tags or [])} version={dataset_version!r}"
                    f"{' (completed only)' if only_completed else ''}")
            found = latest(matches)
        ds = cls(store, found)  # (the status filters are the query's: an id names its dataset, as in ClearML)
        if writable_copy:
            return cls.create(dataset_name=ds.name, dataset_project=ds.project,
                              dataset_tags=ds.tags, parent_datasets=[ds.id])
        return ds

    # -- changing a draft --------------------------------------------------------------
    def add_files(
        self,
        path: str | os.PathLike[str],
        wildcard: str | Sequence[str] | None = None,
        local_base_folder: str | os.PathLike[str] | None = None,
        dataset_path: str | os.PathLike[str] | None = None,
        recursive: bool = True,
        verbose: bool = False,
        max_workers: int | None = None,
        *,
        dask: str | None = None,
    ) -> int:
        """Add a file, or a folder's files that match ``wildcard`` as pathlib's ``rglob`` (or,
        not ``recursive``, ``glob``) picks them, as ClearML does: ``*.jpg`` at any depth,
        ``sub/*.jpg`` in any folder named ``sub``; a single file is added whatever the wildcard.
        Changed files replace theirs; returns how many are new.

        ``path`` may be a URL (``s3://bucket/prefix``, any fsspec URL): its objects are
        streamed into the store, their bytes stored as a local file's would be (unlike
        ``add_external_files``, which keeps links), matched by ``wildcard`` as there. With
        ``dask`` (``local:N`` or a scheduler's address) the reading runs on that cluster."""
        self._require_draft("take new files")
        if "://" in str(path):
            return self._add_url(str(path), wildcard, dataset_path, recursive, verbose, max_workers, dask)
        if dask is not None:
            raise DsError("add_files: dask= reads a URL's objects on a cluster; give an s3:// (or other) URL")
        src = Path(path).expanduser().absolute()
        if not src.exists():
            raise DsError(f"add_files: {src} does not exist")
        base = Path(local_base_folder).expanduser().absolute() if local_base_folder else (
            src if src.is_dir() else src.parent)
        files = _collect(src, wildcard, recursive)
        jobs = []
        for f in files:
            try:
                rel = f.relative_to(base).as_posix()
            except ValueError:
                raise DsError(f"add_files: {f} is not inside local_base_folder {base}") from None
            target = check_relpath(_join(dataset_path, rel))
            if not outside_git(target):
                raise DsError(f"add_files: {target} is inside a .git folder, which is never versioned (as in "
                              "git and DVC) and never written by a copy; give another dataset_path")
            st = f.stat()
            kind = EXEC if st.st_mode & 0o100 else FILE
            stat_ = Stat(st.st_size, st.st_mtime_ns, st.st_ino, kind, st.st_ctime_ns)
            jobs.append(Job(target, stat_, src=str(f)))

        def change(editor: TreeEditor) -> tuple[int, int]:
            _refuse_collisions(editor, (j.path for j in jobs), "add_files")
            cfg = self._store.config
            report = LogProgress("add_files") if verbose else None
            announce(report, len(jobs), sum(j.stat.size for j in jobs))
            # a file that replaces a one-chunk file may be stored as a delta against it
            based = [replace(j, base=old.delta_base() if (old := editor.get(j.path)) else None)
                     for j in jobs]
            return _apply(editor, Ingestor(self._store.chunks, cfg.chunking, cfg.zstd_level,
                                           max_workers, progress=report).run(based))

        added, modified = self._edit(change)
        self.update_changed_files(num_files_added=added, num_files_modified=modified)
        return added

    def _add_url(self, url: str, wildcard: str | Sequence[str] | None, dataset_path: str | None,
                 recursive: bool, verbose: bool, max_workers: int | None, dask: str | None) -> int:
        from .url_ingest import UrlAddReport, UrlSource, ingest_objects, load_sources, save_sources, unchanged

        source = UrlSource(url)
        objects = [o for o in source.list() if matches_any_wildcard(o.rel, wildcard, recursive=recursive)]
        by_rel = {o.rel: o for o in objects}

        def change(editor: TreeEditor) -> tuple[int, int]:
            targets = (check_relpath(_join(dataset_path, o.rel)) for o in objects)
            _refuse_collisions(editor, targets, "add_files")
            # objects the last add of this URL stored, unchanged since (size, ETag), are not read
            todo, rows = unchanged(objects, load_sources(self._store, source.url),
                                   lambda rel: editor.get(check_relpath(_join(dataset_path, rel))),
                                   self._store.chunks.has)
            report = LogProgress("add_files") if verbose else None
            announce(report, len(todo), sum(o.size for o in todo))
            entries: dict[str, FileEntry] = {}

            def emit(rel: str, entry: FileEntry) -> None:
                entries[check_relpath(_join(dataset_path, rel))] = entry
                rows[rel] = (by_rel[rel].size, by_rel[rel].token, entry.hash.hex())
            ingest_objects(self._store, source, todo, UrlAddReport(), emit, dask, report, workers=max_workers)
            save_sources(self._store, source.url, rows)  # their chunks are durable: ingest_objects returned
            return _apply(editor, entries)

        added, modified = self._edit(change)
        self.update_changed_files(num_files_added=added, num_files_modified=modified)
        return added

    def add_external_files(
        self,
        source_url: str | Sequence[str],
        wildcard: str | Sequence[str] | None = None,
        dataset_path: str | Sequence[str] | None = None,
        recursive: bool = True,
        verbose: bool = False,
        max_workers: int | None = None,
        read_hash: bool = False,
    ) -> int:
        """Record links to remote files (any fsspec URL, ClearML's ``azure://`` too) without
        storing their bytes. A folder URL is listed whole and its files filtered by
        ``wildcard`` against their path under it (``matches_any_wildcard``); the version is
        tagged ``external files``, as in ClearML. Returns how many links are new."""
        self._require_draft("take new files")
        urls = [source_url] if isinstance(source_url, str) else list(source_url)
        prefixes = dataset_path if isinstance(dataset_path, list | tuple) else [dataset_path] * len(urls)
        if len(prefixes) != len(urls):
            raise DsError("add_external_files: a list dataset_path needs one entry per source_url")
        found: list[tuple[str, str, int]] = []
        for url, prefix in zip(urls, prefixes, strict=True):
            found += [(_join(prefix, rel), link, size) for rel, link, size in _list_external(url)
                      if matches_any_wildcard(rel, wildcard, recursive=recursive)]

        def change(editor: TreeEditor) -> tuple[int, int]:
            _refuse_collisions(editor, (check_relpath(t) for t, _u, _s in found), "add_external_files")
            entries = {target: _link_entry(self._store, check_relpath(target), url, size)
                       for target, url, size in found}
            trust_links(self._store.path, (url for _t, url, _s in found))  # the user linked these here
            return _apply(editor, entries)

        added, modified = self._edit(change)
        self.update_changed_files(num_files_added=added, num_files_modified=modified)
        self.add_tags([EXTERNAL_FILES_TAG])
        return added

    def remove_files(self, dataset_path: str | None = None, recursive: bool = True,
                     verbose: bool = False) -> int:
        """Remove the files whose dataset path, or (external files) whose URL, matches
        ``dataset_path`` by ClearML's ``matches_any_wildcard`` (None: all; a leading ``/`` is
        dropped; a folder name alone matches no file, ``folder/*`` its files); returns how many."""
        self._require_draft("lose files")
        pattern = dataset_path[1:] if dataset_path and dataset_path.startswith("/") else dataset_path

        def matches(path: str, entry: FileEntry | None) -> bool:
            if matches_any_wildcard(path, pattern, recursive):
                return True
            if entry is None or entry.kind != EXTERNAL:
                return False
            link = self._store.chunks.get(entry.chunks[0][0]).decode("utf-8", "replace")
            return link == pattern or matches_any_wildcard(link, pattern, recursive)

        def change(editor: TreeEditor) -> int:
            gone = [p for p in editor.files_under("") if matches(p, editor.get(p))]
            for p in gone:
                editor.remove(p)
            return len(gone)

        removed = self._edit(change)
        self.update_changed_files(num_files_removed=removed)
        return removed

    def sync_folder(self, local_path: str | os.PathLike[str],
                    dataset_path: str | os.PathLike[str] | None = None,
                    verbose: bool = False) -> tuple[int, int, int]:
        """Make the dataset (under ``dataset_path``) equal a local folder: (removed, added, modified)."""
        self._require_draft("be synced")
        root = Path(local_path).expanduser().absolute()
        if not root.is_dir():
            raise DsError(f"sync_folder: {root} is not a folder")
        prefix = _prefix(dataset_path)
        before = {p: e for p, e in self._entries().items() if not prefix or p.startswith(prefix + "/")}
        local = {"/".join(x for x in (prefix, f.relative_to(root).as_posix()) if x)
                 for f in _collect(root, None, True)}
        removed = [p for p in before if p not in local]
        if removed:
            self._edit(lambda ed: [ed.remove(p) for p in removed])
            self.update_changed_files(num_files_removed=len(removed))
        self.add_files(root, dataset_path=prefix or None)
        after = self._entries()
        added = sum(1 for p in local if p not in before)
        modified = sum(1 for p in local if p in before and not before[p].same_content(after[p]))
        return len(removed), added, modified

    # -- storing and closing -----------------------------------------------------------
    def upload(self, show_progress: bool = True, verbose: bool = False, output_url: str | None = None,
               compression: str | None = None, chunk_size: int | None = None,
               max_workers: int | None = None, retries: int = 3, preview: bool = True,
               upload_as_external_links: bool = False) -> None:
        """Mirror this version's objects to ``output_url`` (or the default remote).

        With no URL and no default remote the local store is the storage: nothing to send.
        ``preview`` changes nothing (``ds ui`` previews every version from the store).
        ``upload_as_external_links`` (ClearML 2.x): the files this draft added or changed are
        written one object each under ``<url>/external_links/<dataset id>/`` and become external
        files linking there (the parents' files stay as they are); it needs a URL.
        """
        url = (output_url if isinstance(output_url, str) else None) or self.get_default_storage()
        if upload_as_external_links:
            if not url:
                raise DsError("upload_as_external_links needs somewhere to put the files: give "
                              "output_url, or create(output_uri=...), or set a default remote")
            self._upload_as_links(url)
        written = None
        if url:
            from .remote import Remote

            report = as_transfer(LogProgress("upload", count_files=False)) if show_progress else None
            remote = Remote(self._store, url, retries=retries, progress=report)
            remote.push_dataset(_with_base(dict(self._reload())))
            written = remote.written
        with self._store.locked():
            r = self._reload()
            if url and url not in r["uploaded"]:
                r["uploaded"].append(url)
            if written is not None:  # the remote's facts (another machine's changes too) and ours
                r.update(rec.merge_facts(r.get("synced"), r, written), synced=rec.facts(written))
            r["dirty"] = False
            self._save()

    def _upload_as_links(self, url: str) -> None:
        """Write the draft's own stored files to ``url``/external_links/<id>/ and link them there."""
        from .remote import remote_spec
        from .remote_fs import RemoteFS

        self._require_draft("upload its files as external links")
        parents = self._parent_entries(None)
        own = {p: e for p, e in self._entries().items()
               if e.kind != EXTERNAL and not ((old := parents.get(p)) is not None and old.same_content(e))}
        if not own:
            return
        _name, base, options = remote_spec(self._store, url)
        base = f"{base.rstrip('/')}/external_links/{self.id}"
        fs = RemoteFS(base, options)
        with tempfile.TemporaryDirectory() as tmp, fs.operation("upload"):
            staged = Path(tmp, "file")
            for p in sorted(own):  # one file at a time on disk, whatever the version's size
                with open(staged, "wb") as out:
                    for chunk_id, _len in own[p].chunk_list():
                        out.write(self._store.chunks.get(chunk_id))
                fs.put(p, staged)
        links = {p: f"{base}/{p}" for p in own}

        def change(editor: TreeEditor) -> None:
            for p, link in links.items():
                editor.set(p, _link_entry(self._store, p, link, own[p].size))
            trust_links(self._store.path, links.values())

        self._edit(change)

    def get_default_storage(self) -> str | None:
        """Where ``upload`` sends the version: its ``output_uri``, else the default remote."""
        return self._record.get("output_uri") or default_remote(self._store)

    def finalize(self, verbose: bool = False, raise_on_error: bool = True, auto_upload: bool = False) -> bool:
        """Commit the draft: from now on the version is immutable. A version already final
        raises whatever ``raise_on_error`` says, as in ClearML (the flag covers pending uploads)."""
        target = self.get_default_storage()
        if target and self.is_dirty():
            if auto_upload:
                self.upload()
            elif raise_on_error:
                raise DsError(f"cannot finalize dataset {self.id}: changes not uploaded to {target}; "
                              "call upload() or finalize(auto_upload=True)")
            else:
                return False
        store = self._store
        with store.locked():
            r = self._reload()
            if r["status"] != rec.DRAFT:
                raise DatasetFinalized(f"dataset {self.id} is already finalized",
                                       "nothing to do (is_final() tells before finalize)",
                                       child_fix=False)
            ref = f"refs/datasets/{r['id']}"
            if store.meta.has_ref(ref):
                # an earlier finalize was killed after committing, before the record said so:
                # its commit is this version; adopt it rather than fail or commit twice
                done = store.meta.ref_target(ref)
                if done is None:
                    raise FormatError(f"ref {ref} points at nothing; run `ds fsck`")
                r.update(status=rec.COMPLETED, commit=done, tree=None, finalized=_now())
                self._save()
                return True
            parents = [find_record(store, p)["commit"] for p in r["parents"]]
            editor = TreeEditor(store.meta, r["tree"])
            snapshot = {k: r[k] for k in ("id", "name", "project", "version", "tags", "description",
                                          "parents", "created", "metadata")}
            editor.set_record(store.meta.create_blob(json.dumps(snapshot, sort_keys=True).encode()))
            tree = editor.write()
            commit_id = store.meta.commit(tree, parents, f"{r['project']}/{r['name']} {r['version']}",
                                          store.author())
            store.meta.set_ref(ref, commit_id, force=False)
            r.update(status=rec.COMPLETED, commit=commit_id, tree=None, finalized=_now())
            self._save()
        urls = list(r.get("uploaded", []))
        if target and target not in urls and not self.is_offline():
            urls.append(target)  # ClearML's server sees every finalized version: so does the remote
        written = None
        for url in urls:
            from .remote import Remote

            remote = Remote(store, url)
            remote.push_dataset(r)
            written = written or remote.written
        with store.locked():
            fresh = self._reload()
            fresh["uploaded"] = urls
            if written is not None:
                fresh.update(rec.merge_facts(fresh.get("synced"), fresh, written), synced=rec.facts(written))
            self._save()
        return True

    def publish(self, raise_on_error: bool = True) -> bool:
        """Mark a finalized version published (for good: it never goes back to completed).
        A version not finalized raises whatever ``raise_on_error`` says, as in ClearML."""
        with self._store.locked():
            r = _with_base(self._reload())
            if r["status"] == rec.DRAFT:
                raise DsError(f"dataset {self.id} must be finalized before it is published; "
                              "call finalize() first")
            r["status"] = rec.PUBLISHED
            self._save()
        self._publish_record()
        return True

    # -- reading -----------------------------------------------------------------------
    def _require_final(self, what: str) -> None:
        if self._reload()["status"] == rec.DRAFT:
            raise DsError(f"dataset {self.id} is not finalized; finalize() it before {what}")

    def _parts(self, part: int | None, num_parts: int | None) -> int | None:
        """How many parts ``part`` is one of: ``num_parts``, or (as ClearML) the number of
        chunks when it is not given; None when no part is asked for (``num_parts`` alone
        changes nothing, as in ClearML)."""
        if part is None:
            return None
        num_parts = num_parts or max(1, self.get_num_chunks())
        if not (num_parts >= 1 and 0 <= part < num_parts):
            raise DsError(f"part must be in [0, num_parts) and num_parts >= 1 (got part={part}, "
                          f"num_parts={num_parts})")
        return num_parts

    def _part(self, part: int | None, num_parts: int | None) -> list[str] | None:
        num_parts = self._parts(part, num_parts)
        return None if num_parts is None else split_parts(self._entries(), num_parts)[part]

    def get_local_copy(self, use_soft_links: bool | None = None, part: int | None = None,
                       num_parts: int | None = None, raise_on_error: bool = True,
                       max_workers: int | None = None, files: list[str] | None = None) -> str:
        """A read-only cached copy of the version (or of ``files`` / one part); reused later
        while it still holds each file at its size (as ClearML checks; files a script added
        there stay), else made again: a script that moved or deleted files out of it gets
        them back. Made in a temp folder and renamed into place under a lock, so a killed
        copy is never taken for a whole one and two callers never make it at once. ``part``
        without ``num_parts`` is one of ``get_num_chunks()`` parts, as in ClearML."""
        self._require_final("taking a local copy")
        num_parts = self._parts(part, num_parts)
        paths = self._part(part, num_parts)
        name = self.id if part is None else f"{self.id}.part{part}of{num_parts}"
        if files is not None:
            wanted = sorted({f.lstrip("/") for f in files})
            paths = [p for p in (paths if paths is not None else self._entries()) if p in set(wanted)]
            name += "." + hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:12]
        target = self._store.path / "cache" / "copies" / name
        paths = self._without_dead_links(paths, raise_on_error)
        entries = self._entries()
        expected = {p: entries[p] for p in (paths if paths is not None else entries)}
        with _copy_lock(target.parent, name):
            if target.is_dir() and _copy_is_whole(target, expected):
                return str(target)
            return str(_cached_copy(self._store, self._record["commit"], target, paths))

    def get_mutable_local_copy(self, target_folder: str | os.PathLike[str], overwrite: bool = False,
                               part: int | None = None, num_parts: int | None = None,
                               raise_on_error: bool = True, max_workers: int | None = None) -> str | None:
        """Writable files of the version in ``target_folder``. A folder that is not empty is
        refused (TargetNotEmpty), or with ``raise_on_error=False`` left alone and None returned,
        as in ClearML; ``overwrite`` replaces its content."""
        paths = self._without_dead_links(self._part(part, num_parts), raise_on_error)
        ref = self._record["commit"] or None
        try:
            if ref is None:  # a draft: copy its current tree
                return str(_copy_tree(self._store, self._tree(), target_folder, overwrite, paths))
            get_copy(self._store, ref, target_folder, overwrite=overwrite, paths=paths)
        except TargetNotEmpty:
            if raise_on_error:
                raise
            return None
        return str(Path(target_folder).absolute())

    def _without_dead_links(self, paths: list[str] | None, raise_on_error: bool) -> list[str] | None:
        """``paths`` less the external files whose URL cannot be read now, each a warning
        (ClearML logs a failed link download and returns the rest); unchanged when
        ``raise_on_error`` (the copy then fails naming the URL)."""
        if raise_on_error:
            return paths
        import fsspec

        from .links import decode_url
        from .remote_fs import fsspec_url

        entries = self._entries()
        wanted = list(paths if paths is not None else entries)
        dead = set()
        for p in wanted:
            e = entries[p]
            if e.kind != EXTERNAL:
                continue
            url = decode_url(self._store.chunks.get(e.chunk_list()[0][0]), p)
            try:
                fs, where = fsspec.core.url_to_fs(fsspec_url(url))
                gone = not fs.isfile(where)
            except (OSError, ValueError) as err:
                gone, url = True, f"{url} ({err})"
            if gone:
                dead.add(p)
                warnings.warn(f"dataset {self.id}: external file {p} cannot be read from {url}; "
                              "the copy leaves it out", stacklevel=3)
        return [p for p in wanted if p not in dead] if dead else paths

    def list_files(self, dataset_path: str | None = None, recursive: bool = True,
                   dataset_id: str | None = None) -> list[str]:
        """Paths matching ``dataset_path`` by ClearML's ``matches_any_wildcard`` (a leading ``/``
        dropped; not ``recursive``: ``*`` stays in one folder); with ``dataset_id``, only the
        files that version last changed."""
        entries = self._entries()
        pattern = dataset_path[1:] if dataset_path and dataset_path.startswith("/") else dataset_path
        out = [p for p in sorted(entries) if not pattern or matches_any_wildcard(p, pattern, recursive)]
        if dataset_id:
            owners = self._owners()
            out = [p for p in out if owners.get(p) == dataset_id]
        return out

    def _parent_entries(self, dataset_id: str | None) -> dict[str, FileEntry]:
        """The entries to compare with: ``dataset_id``'s, or (None or this version's own id, as
        in ClearML) the parents' merged in order."""
        if dataset_id and dataset_id != self.id:
            other = find_record(self._store, dataset_id)
            return dict(self._store.meta.walk(Dataset(self._store, other)._tree()))
        merged: dict[str, FileEntry] = {}
        for pid in self._record["parents"]:
            merged.update(Dataset(self._store, find_record(self._store, pid))._entries())
        return merged

    def _changes(self, dataset_id: str | None):
        from .diff import diff_maps

        return diff_maps(self._parent_entries(dataset_id), self._entries())

    def list_added_files(self, dataset_id: str | None = None) -> list[str]:
        return sorted(self._changes(dataset_id).added)

    def list_modified_files(self, dataset_id: str | None = None) -> list[str]:
        return sorted(self._changes(dataset_id).modified)

    def list_removed_files(self, dataset_id: str | None = None) -> list[str]:
        return sorted(self._changes(dataset_id).removed)

    def _owners(self) -> dict[str, str]:
        """path -> id of the version in this lineage that last changed the file."""
        owners: dict[str, str] = {}
        memo: dict[str, dict[str, FileEntry]] = {}

        def entries_of(did: str) -> dict[str, FileEntry]:
            if did not in memo:
                memo[did] = Dataset(self._store, find_record(self._store, did))._entries()
            return memo[did]

        memo[self.id] = self._entries()
        for path, entry in memo[self.id].items():
            did = self.id
            while True:
                nxt = next((p for p in reversed(self._parents_of(did))
                            if (e := entries_of(p).get(path)) is not None and e.same_content(entry)), None)
                if nxt is None:
                    break
                did = nxt
            owners[path] = did
        return owners

    def _parents_of(self, dataset_id: str) -> list[str]:
        return (self._record if dataset_id == self.id else find_record(self._store, dataset_id))["parents"]

    def _all_entries(self) -> dict[str, DatasetFile]:
        owners = self._owners()
        out = {}
        for p, e in self._entries().items():
            link = self._store.chunks.get(e.chunks[0][0]).decode("utf-8") if e.kind == EXTERNAL else None
            out[p] = DatasetFile(p, None if link is not None else e.hash.hex(), e.size, owners[p], link)
        return out

    @property
    def file_entries_dict(self) -> dict[str, DatasetFile]:
        """The stored files (external files are in ``link_entries_dict``, as in ClearML)."""
        return {p: f for p, f in self._all_entries().items() if f.link is None}

    @property
    def link_entries_dict(self) -> dict[str, DatasetFile]:
        """The external files: ``link`` is the URL."""
        return {p: f for p, f in self._all_entries().items() if f.link is not None}

    @property
    def file_entries(self) -> list[DatasetFile]:
        return list(self.file_entries_dict.values())

    @property
    def link_entries(self) -> list[DatasetFile]:
        return list(self.link_entries_dict.values())

    def get_logger(self) -> DatasetLogger:
        """Reports (tables, histograms, scalars) kept with the dataset's record."""
        return DatasetLogger(self)

    @property
    def _task(self) -> DatasetTask:
        """ClearML scripts reach the dataset's task for artifacts, reports and properties."""
        return DatasetTask(self)

    def get_dependency_graph(self) -> dict[str, list[str]]:
        """The versions this one's files come from -> their parents among them, as ClearML
        keeps it: a version in the lineage that supplies no file any more is left out (this
        version always keeps its own parents)."""
        graph: dict[str, list[str]] = {}
        todo = [self.id]
        while todo:
            did = todo.pop()
            if did in graph:
                continue
            graph[did] = list(self._parents_of(did))
            todo.extend(graph[did])
        used = {*self._owners().values(), self.id}
        pruned = {k: [p for p in parents if p in used] for k, parents in graph.items() if k in used}
        pruned[self.id] = graph[self.id]
        return pruned

    def verify_dataset_hash(self, local_copy_path: str | None = None, skip_hash: bool = False,
                            verbose: bool = False) -> list[str]:
        """Paths whose local copy is missing, of the wrong size, or (unless skip_hash) content."""
        from .worktree import hash_file

        root = Path(local_copy_path) if local_copy_path else Path(self.get_local_copy())
        bad = []
        for p, e in sorted(self._entries().items()):
            f = root / p
            if not f.is_file() or (e.kind != EXTERNAL and (f.stat().st_size != e.size or (
                    not skip_hash and hash_file(str(f), FILE, self._store.algo) != e.hash))):
                bad.append(p)
        return bad

    def get_num_chunks(self, include_parents: bool = True) -> int:
        mine = {c for e in self._entries().values() for c, _ in e.chunk_list()}
        if include_parents:
            return len(mine)
        theirs = {c for e in self._parent_entries(None).values() for c, _ in e.chunk_list()}
        return len(mine - theirs)

    # -- whole datasets ----------------------------------------------------------------
    @classmethod
    def squash(cls, dataset_name: str, dataset_ids: Sequence[str | Dataset] | None = None,
               dataset_project_name_pairs: Sequence[tuple[str, str]] | None = None,
               output_url: str | None = None, close_squashed_dataset: bool | None = True) -> Dataset:
        """A new root version: the versions' changes replayed in list order (removals kept),
        uploaded and finalized unless ``close_squashed_dataset`` is False (then a draft)."""
        if dataset_ids and dataset_project_name_pairs:
            raise DsError("Dataset.squash takes dataset_ids or dataset_project_name_pairs, not both")
        store = open_sdk_store()
        picked = [cls._resolve_parent(store, d, "squashing") for d in dataset_ids or []]
        picked += [cls.get(dataset_project=project, dataset_name=name, only_completed=True)._record
                   for project, name in dataset_project_name_pairs or []]
        if not picked:
            raise DsError("Dataset.squash needs dataset_ids or dataset_project_name_pairs")
        for r in picked:
            if r["status"] == rec.DRAFT:
                raise DsError(f"dataset {r['id']} is a draft; finalize it before squashing")
        with store.locked():
            tree = squash_tree(store, [r["commit"] for r in picked])
        ds = cls.create(dataset_name=dataset_name, dataset_project=picked[0]["project"],
                        output_uri=output_url,
                        description=f"squash of {', '.join(r['id'] for r in picked)}")
        with store.locked():
            ds._record["tree"] = str(tree)
            ds._record["dirty"] = True
            ds._save()
        if close_squashed_dataset:
            ds.upload(output_url=output_url)
            ds.finalize()
        return ds

    @classmethod
    def list_datasets(cls, dataset_project: str | None = None, partial_name: str | None = None,
                      tags: Sequence[str] | None = None, ids: Sequence[str] | None = None,
                      only_completed: bool = True, recursive_project_search: bool = True,
                      include_archived: bool = True) -> list[dict]:
        """Versions here and on the shared remote, oldest first, as ClearML lists them (from its
        server): ``name``, ``created`` (a datetime),
        ``project``, ``id``, ``tags``, ``version`` and ``status`` (``in_progress`` for a draft,
        ``completed``, ``published``). ``tags`` is ClearML's tag query (see ``get``)."""
        store = open_sdk_store()
        theirs = _remote_only(store)  # first: it refreshes the local copies' facts
        found = _filter([*RecordStore(store.path).all(), *theirs], dataset_project,
                        partial_name, tags, None, only_completed, False, exact_name=False,
                        recursive=recursive_project_search)
        if ids:
            found = [r for r in found if r["id"] in set(ids)]
        return [{"name": r["name"], "created": _when(r["created"]), "project": r["project"], "id": r["id"],
                 "tags": list(r.get("tags", [])), "version": r["version"],
                 "status": "in_progress" if r["status"] == rec.DRAFT else r["status"]}
                for r in sorted(found, key=lambda r: r["created"])]

    @classmethod
    def delete(cls, dataset_id: str | None = None, dataset_project: str | None = None,
               dataset_name: str | None = None, force: bool = False, dataset_version: str | None = None,
               entire_dataset: bool = False, shallow_search: bool = False, delete_files: bool = True,
               delete_external_files: bool = False) -> None:
        """Delete versions, refusing what ClearML 2.1 refuses, so nothing goes by accident.

        Raises DsError (a ValueError, as ClearML's) when no id, project or name is given, or
        when ``dataset_id`` comes with a project or name. Where ClearML logs a warning and
        deletes nothing, this warns ``DeleteRefused`` (a UserWarning) and returns None, so
        ClearML scripts run on unchanged: when project/name (and version, if given) match more
        than one version, and when ``entire_dataset`` comes without ``force``. To get an
        exception instead: ``warnings.simplefilter("error", DeleteRefused)``. A version that
        makes the match unique is deleted even if the name has other versions (ClearML 2.1
        counts them before filtering by version, so it refuses every by-name delete of a
        dataset with two versions). A version others depend on (here or on the shared remote)
        is refused unless ``force``: by id with DsError, by project/name with ``DeleteRefused``
        (ClearML only warns there); no match warns ``DeleteRefused`` too (ClearML logs it), so
        a cleanup can run twice. The versions' records go from the shared remote (and every
        remote they were uploaded to) as from this store, as ClearML deletes on its server;
        versions only the remote has are deleted there. ``shallow_search`` changes nothing.
        ``ds gc`` (``ds gc --remote``) reclaims the bytes; external files are never deleted.
        """
        _check_delete_args(dataset_id, dataset_project, dataset_name)
        store = open_sdk_store()
        records = RecordStore(store.path)
        shared = _shared_records(store)
        try:
            doomed = _delete_selection(store, dataset_id, dataset_project, dataset_name, dataset_version,
                                       entire_dataset, force, shared)
        except DeleteRefused as refused:
            warnings.warn(refused, stacklevel=2)
            return
        ids = {r["id"] for r in doomed}
        with store.locked():
            everyone = {r["id"]: r for r in [*shared, *records.all()]}
            dependants = [r for r in everyone.values() if r["id"] not in ids and ids & set(r["parents"])]
        if dependants and not force:
            d = dependants[0]
            why = (f"dataset {d['name']!r} version {d['version']} ({d['id']}) depends on what you are "
                   "deleting; delete it first or pass force=True")
            if dataset_id:  # by id ClearML deletes it all the same: refused, see docs/clearml-differences.md
                raise DsError(why)
            warnings.warn(DeleteRefused(f"{why}; nothing deleted"), stacklevel=2)  # ClearML warns too
            return
        urls = {u for r in doomed for u in r.get("uploaded", [])}
        if ids & {r["id"] for r in shared}:
            urls.add(default_remote(store))
        if urls:  # first the shared records, so a failure leaves the version here to delete again
            from .remote import Remote

            for u in sorted(urls):
                Remote(store, u).delete_records(sorted(ids))
        with store.locked():
            for r in doomed:
                if records.read(r["id"]) is None:
                    continue  # a version only the remote had
                if r.get("commit"):
                    with contextlib.suppress(FormatError):  # a damaged ref: the record goes all the same
                        store.meta.drop_ref(f"refs/datasets/{r['id']}")
                records.delete(r["id"])
                shutil.rmtree(store.path / "cache" / "copies" / r["id"], ignore_errors=True)

    @classmethod
    def rename(cls, new_dataset_name: str, dataset_project: str, dataset_name: str) -> None:
        """Rename every version of a dataset, here and on the shared remote."""
        if not isinstance(new_dataset_name, str) or not new_dataset_name or "\0" in new_dataset_name:
            raise DsError(f"Dataset.rename: the new name {new_dataset_name!r} is not a non-empty string")
        cls._update_all(dataset_project, dataset_name, {"name": new_dataset_name})

    @classmethod
    def move_to_project(cls, new_dataset_project: str, dataset_project: str, dataset_name: str) -> None:
        """Move every version of a dataset to another project, here and on the shared remote."""
        bad = rec.project_problem(new_dataset_project)
        if bad:
            raise DsError(f"Dataset.move_to_project: the new project cannot be used: {bad}")
        cls._update_all(dataset_project, dataset_name, {"project": new_dataset_project})

    @classmethod
    def _update_all(cls, project: str, name: str, change: dict) -> None:
        """Apply ``change`` to every version named ``name`` in ``project``: the local copies
        (each then carried to its remotes) and the versions only the shared remote has."""
        store = open_sdk_store()
        records = RecordStore(store.path)
        shared = _shared_records(store)
        with store.locked():
            hits = [r for r in records.all() if r["project"] == project and r["name"] == name]
            for r in hits:
                _with_base(r).update(change)
                records.write(r)
        here = {r["id"] for r in records.all()}
        theirs = [r for r in shared if r["project"] == project and r["name"] == name and r["id"] not in here]
        if not hits and not theirs:  # ClearML logs a warning and goes on
            warnings.warn(NothingDone(f"no dataset named {name!r} in project {project!r}; nothing "
                                      "changed (see Dataset.list_datasets())"), stacklevel=3)
            return
        for r in hits:
            Dataset(store, r)._publish_record()
        if theirs:
            from .remote import Remote

            remote = Remote(store, default_remote(store))
            for r in theirs:
                remote.update_record(r["id"], lambda record: record.update(change))


# -- helpers -------------------------------------------------------------------------------
def _ancestors(path: str) -> Iterable[str]:
    """The folders a path is in: ``a/b/c`` -> ``a``, ``a/b``."""
    parts = path.split("/")
    return ("/".join(parts[:i]) for i in range(1, len(parts)))


def _refuse_parent_collisions(parents: list[tuple[dict, list[tuple[str, FileEntry]]]]) -> None:
    """Refuse parents where one has a file at a path another has as a folder: a tree cannot
    hold both (ClearML keys files by path and keeps both), and silently dropping either
    would lose files."""
    folders: dict[str, tuple[str, dict]] = {}  # folder -> (a file in it, the parent that has it)
    for p, entries in parents:
        for path, _e in entries:
            for folder in _ancestors(path):
                folders.setdefault(folder, (path, p))
    for p, entries in parents:
        for path, _e in entries:
            if path in folders and folders[path][1]["id"] != p["id"]:
                inner, q = folders[path]
                raise DsError(
                    f"parents {p['name']!r} ({p['id']}) and {q['name']!r} ({q['id']}) cannot be merged: the "
                    f"first has a file {path!r}, the second a folder {path!r} (with {inner!r}), and a path "
                    "cannot be both; make a child version of one of them that removes or moves it "
                    f"(remove_files({path!r}) or remove_files({path + '/*'!r}), then add_files with "
                    "another dataset_path) and use that as the parent; nothing was created")


def _refuse_collisions(editor: TreeEditor, paths: Iterable[str], action: str) -> None:
    """Refuse new files where a path would be both a file and a folder, among themselves or
    against the draft (``TreeEditor.set`` would silently drop the other side's files), before
    anything changes."""
    new = set(paths)
    folders: dict[str, str] = {}  # folder -> a new file in it
    for path in new:
        for folder in _ancestors(path):
            folders.setdefault(folder, path)
    fix = "; a path cannot be both: remove_files the one you do not want first, or give dataset_path " \
          "to put the new files elsewhere; nothing was added"
    for path in sorted(new):
        if path in folders:
            raise DsError(f"{action}: cannot add both a file {path!r} and a folder {path!r} (with "
                          f"{folders[path]!r}){fix}")
        if editor.names_in(path):
            inner = editor.files_under(path)
            raise DsError(f"{action}: cannot add file {path!r}: the dataset has a folder {path!r} (with "
                          f"{(inner or [path + '/...'])[0]!r}){fix}")
    for folder in sorted(folders):
        if editor.get(folder) is not None:
            raise DsError(f"{action}: cannot add {folders[folder]!r}: the dataset has a file {folder!r} "
                          f"where that needs a folder{fix}")


def _with_base(record: dict) -> dict:
    """``record``, given the ``synced`` facts it needs before a change is made to it: an
    uploaded version that has none yet takes its current facts (the remote's, as far as
    this store knows; a record marked ``unsynced`` without them keeps none, so its every
    difference counts as its own change, as before ``synced`` existed)."""
    if record.get("uploaded") and "synced" not in record and not record.get("unsynced"):
        record["synced"] = rec.facts(record)
    return record


def _apply(editor: TreeEditor, entries: dict[str, FileEntry]) -> tuple[int, int]:
    """Put entries into a draft (changed content replaces); returns how many paths are new
    (what ClearML's add_files / add_external_files return) and how many changed."""
    new = modified = 0
    for path, entry in entries.items():
        old = editor.get(path)
        new += old is None
        if old is None or not old.same_content(entry):
            modified += old is not None
            editor.set(path, entry)
    return new, modified


def _when(text: str) -> datetime:
    """A record's time as the timezone-aware datetime ClearML's listings give."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return datetime.fromtimestamp(0, UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _prefix(dataset_path: str | os.PathLike[str] | None) -> str:
    """A ``dataset_path`` as ClearML's ``Path(dataset_path or ".")`` reads it: a str or a Path,
    ``.`` parts, doubled and outer slashes dropped ("./x", "/x//y/" -> "x", "x/y")."""
    if dataset_path is None:
        return ""
    return "/".join(p for p in PurePosixPath(os.fspath(dataset_path)).parts if p not in ("/", "."))


def _join(prefix: str | os.PathLike[str] | None, rel: str) -> str:
    return "/".join(p for p in (_prefix(prefix), rel) if p)


def _check_delete_args(dataset_id: str | None, project: str | None, name: str | None) -> None:
    """ClearML's hard refusals: a delete selects something, by id or by project/name, not both."""
    if not (dataset_id or project or name):
        raise DsError("nothing selected to delete; give dataset_id (--id), or dataset_project "
                      "and/or dataset_name (--project/--name)")
    if dataset_id and (project or name):
        raise DsError("give either dataset_id or dataset_project/dataset_name (--id or "
                      "--project/--name), not both; nothing deleted")


def _delete_selection(store: Store, dataset_id: str | None, project: str | None, name: str | None,
                      version: str | None, entire: bool, force: bool, shared: list[dict]) -> list[dict]:
    """The records a delete removes, here or (``shared``: the remote's records) only on the
    shared remote; DeleteRefused where ClearML warns and deletes nothing."""
    here = RecordStore(store.path).all()
    theirs = [r for r in shared if r["id"] not in {h["id"] for h in here}]
    if dataset_id:
        try:
            return [find_record(store, dataset_id)]
        except DatasetNotFound as e:
            hits = matching(theirs, dataset_id)
            if len(hits) > 1:
                raise DsError(f"{dataset_id!r} matches {len(hits)} datasets; give more characters") from None
            if not hits:
                raise DeleteRefused(f"{e.what}; nothing deleted") from None
            return hits
    if entire and not force:
        raise DeleteRefused("entire_dataset deletes every matching version; nothing deleted: pass "
                            "force=True (--force) as well to confirm")
    hits = _filter([*here, *theirs], project, name, None, version, False, False, exact_name=True)
    if not hits:
        raise DeleteRefused(f"no dataset to delete matches project={project!r} name={name!r} "
                            f"version={version!r}; nothing deleted")
    if len(hits) > 1 and not entire:
        raise DeleteRefused(f"{len(hits)} datasets match project={project!r} name={name!r} "
                            f"version={version!r}; nothing deleted: pick one with dataset_version "
                            "(--version) or dataset_id (--id), or delete them all with "
                            "entire_dataset=True and force=True (--entire-dataset --force)")
    return hits


def _copy_is_whole(target: Path, expected: dict[str, FileEntry]) -> bool:
    """The cached copy holds every expected file at its size, links as links (ClearML's
    check: files a script added there are its own, and stay)."""
    for rel, entry in expected.items():
        path = target / rel
        try:
            st = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            return False
        sized = entry.kind != LINK and not (entry.kind == EXTERNAL and not entry.size)  # (0: unknown)
        if (entry.kind == LINK) != os.path.islink(path) or (sized and st.st_size != entry.size):
            return False
    return True


@contextlib.contextmanager
def _copy_lock(folder: Path, name: str):
    """One process at a time checks and makes a given cached copy (as ClearML locks its
    target folder); others wait, then find it whole."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / f".{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _cached_copy(store: Store, commit: str, target: Path, paths: list[str] | None) -> Path:
    """Write a read-only copy in a temp folder beside ``target`` and rename it into place (a
    stale copy there goes first); what killed copies of this machine left is removed once
    their process is gone. The caller holds ``_copy_lock``."""
    from .paths import pid_space, process_gone

    folder = target.parent
    here = hashlib.sha256(str(pid_space()).encode()).hexdigest()[:8]  # pids mean something here only
    for old in folder.glob(f".tmp-{here}-*"):
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and process_gone(int(pid)):
            shutil.rmtree(old, ignore_errors=True)
    tmp = folder / f".tmp-{here}-{target.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    get_copy(store, commit, tmp, include=None, paths=paths)
    for dirpath, _dirs, files in os.walk(tmp):
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode & 0o555)
    stale = folder / f".tmp-{here}-stale-{target.name}-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.replace(target, stale)
    os.replace(tmp, target)
    shutil.rmtree(stale, ignore_errors=True)
    return target


def _shared_records(store: Store) -> list[dict]:
    """The default remote's valid records ([] with none, or offline), the local copies'
    facts refreshed from them (``_refresh``)."""
    url = default_remote(store)
    if not url or Dataset.is_offline():
        return []
    from .remote import remote_records

    theirs = remote_records(store, url, warn=lambda text: warnings.warn(text, stacklevel=4))
    _refresh(store, theirs)
    return theirs


def _remote_only(store: Store) -> list[dict]:
    """The shared remote's valid records this store lacks ([] with none, or offline); the
    facts of the versions it has are refreshed from the same listing (``_refresh``)."""
    theirs = _shared_records(store)
    here = {r["id"] for r in RecordStore(store.path).all()}
    return [r for r in theirs if r["id"] not in here]


def _refresh(store: Store, remote: Iterable[dict]) -> None:
    """The local copies of the versions in ``remote`` (the remote's records) take its facts
    (name, project, tags, status, description), as ClearML reads them from its server; what
    this store changed and the remote has not taken yet stays (``merge_facts`` against the
    record's ``synced`` facts)."""
    records = RecordStore(store.path)
    with store.locked():
        for r in remote:
            try:
                local = records.read(r["id"])
            except FormatError:
                continue  # a damaged local record: every read names it
            if local is None or not local.get("commit") or local.get("commit") != r.get("commit"):
                continue
            base = local.get("synced", None if local.get("unsynced") else rec.facts(local))
            fresh = dict(local, **rec.merge_facts(base, local, r), synced=rec.facts(r))
            if fresh != local:
                records.write(fresh)


def _refresh_one(store: Store, record: dict) -> dict:
    """``record`` with its facts refreshed from the default remote's copy (one read); as it
    was when there is no remote, it was never uploaded, or the remote has no copy."""
    url = default_remote(store)
    if not url or not record.get("uploaded") or not record.get("commit"):
        return record
    from .remote import Remote

    theirs = Remote(store, url, warn=lambda text: warnings.warn(text, stacklevel=4)).read_record(record["id"])
    if theirs is None:
        return record
    _refresh(store, [theirs])
    return RecordStore(store.path).read(record["id"]) or record


def _fetch_from_remote(store: Store, pick, remote: list[dict] | None = None) -> dict | None:
    """Fetch the best remote-only record ``pick`` selects (and its lineage); None if none.
    The local copies' facts are refreshed from the same listing (``remote``, if already read)."""
    url = default_remote(store)
    if not url:
        return None
    from .remote import fetch_dataset, remote_records

    if remote is None:
        remote = remote_records(store, url, warn=lambda text: warnings.warn(text, stacklevel=4))
    _refresh(store, remote)
    hits = [r for r in pick(remote) if r.get("status") != rec.DRAFT]
    if not hits:
        return None
    best = latest(hits)
    for r in lineage_to_fetch(store, best, remote):  # the version and each ancestor we lack
        fetch_dataset(store, url, r)
    return RecordStore(store.path).read(best["id"])


def _name_pattern(partial_name: str) -> re.Pattern:
    """ClearML's ``partial_name`` is a regular expression; a broken one is one clear error."""
    try:
        return re.compile(partial_name)
    except re.error as e:
        raise DsError(f"name pattern {partial_name!r} is not a regular expression ({e}); "
                      "escape its special characters (e.g. '\\(' for '(')") from None


def _filter(records: Iterable[dict], project: str | None, name: str | None, tags: Iterable[str] | None,
            version: str | None, only_completed: bool, only_published: bool, exact_name: bool,
            recursive: bool = True) -> list[dict]:
    out = []
    tags_ok = tag_filter(tags or None)
    pattern = _name_pattern(name) if name is not None and not exact_name else None
    for r in records:
        if project is not None and r["project"] != project and not (
                recursive and not exact_name and r["project"].startswith(project.rstrip("/") + "/")):
            continue
        if name is not None and (r["name"] != name if pattern is None else not pattern.search(r["name"])):
            continue
        if not tags_ok(r.get("tags", [])):
            continue
        if version is not None and r["version"] != str(version):
            continue
        if only_completed and r["status"] == rec.DRAFT:
            continue
        if only_published and r["status"] != rec.PUBLISHED:
            continue
        out.append(r)
    return out


def _collect(src: Path, wildcard: str | Sequence[str] | None, recursive: bool) -> list[Path]:
    """The regular files ``add_files`` takes: ``src`` itself if it is a file (whatever the
    wildcard, as ClearML), else the files under it that ``glob_match`` picks (links to files
    count as their content; links to folders are not followed, as pathlib's ``**``)."""
    if src.is_file():
        return [src]
    patterns = [wildcard] if isinstance(wildcard, str) else list(wildcard or ["*"])
    glob_match("x", patterns, recursive)  # a bad pattern is refused before the walk
    depth = None  # without recursion or '**', a pattern of N parts looks N - 1 folders down
    if not recursive and not any("**" in str(p) for p in patterns):
        depth = max(len(str(p).strip("/").split("/")) for p in patterns) - 1
    out = []
    for dirpath, dirnames, filenames in os.walk(src):
        # a store, and git's folders, are never versioned (as by `ds add`): a copy never writes them
        dirnames[:] = sorted(d for d in dirnames if d != ".dsstore" and d.casefold() != ".git")
        rel_dir = Path(dirpath).relative_to(src).as_posix()
        if depth is not None and (0 if rel_dir == "." else rel_dir.count("/") + 1) >= depth:
            dirnames[:] = []
        for f in sorted(filenames):
            rel = f if rel_dir == "." else f"{rel_dir}/{f}"
            p = Path(dirpath, f)
            if glob_match(rel, patterns, recursive) and p.is_file() and f.casefold() != ".git":
                out.append(p)
    return out


EXTERNAL_FILES_TAG = "external files"  # the tag ClearML gives a version with external files


def _link_entry(store: Store, path: str, url: str, size: int) -> FileEntry:
    """An external entry: the URL is its one chunk (stored here), the size the file's."""
    data = url.encode("utf-8")
    chunk_id = store.algo.digest(data)
    store.chunks.put_encoded(chunk_id, data, len(data), 0)
    return FileEntry(path.rpartition("/")[2], EXTERNAL, size, chunk_id, ((chunk_id, len(data)),))


def _list_external(url: str) -> list[tuple[str, str, int]]:
    """(path under ``url``, the file's URL, size) for a file URL (its name) or each file under a
    folder URL (listed as ``ds add URL`` lists it). Links keep the URL's own form
    (``azure://`` stays ``azure://``)."""
    from .url_ingest import UrlSource

    source = UrlSource(url)
    objects = source.list()  # a file URL: the source becomes its folder
    base = source.url.rstrip("/")
    return [(o.rel, f"{base}/{o.rel}", o.size) for o in objects]


def split_parts(entries: dict[str, FileEntry], num_parts: int) -> list[list[str]]:
    """Deterministic, size-balanced split of paths into ``num_parts`` lists.

    Largest files first, each to the lightest part so far (ties: lowest part number),
    so every machine computes the same split and parts differ by at most one file's size.
    """
    loads = [0] * num_parts
    parts: list[list[str]] = [[] for _ in range(num_parts)]
    for path, e in sorted(entries.items(), key=lambda pe: (-pe[1].size, pe[0])):
        i = min(range(num_parts), key=lambda k: (loads[k], k))
        parts[i].append(path)
        loads[i] += e.size
    return [sorted(p) for p in parts]


def _copy_tree(store: Store, tree: str, target, overwrite: bool, paths: list[str] | None) -> Path:
    """Like ``get_copy`` for a draft's tree (no commit yet)."""
    items = [(p, e) for p, e in store.meta.walk(tree) if paths is None or p in set(paths)]
    copy_items(store, items, target, overwrite)
    return Path(target).absolute()
