"""Dataset records (the SDK's versions) on a remote: a version is sent with everything it
needs (chunks, lineage metadata, then its record, under the remote's shared lock); records
read from a remote are validated, an invalid one skipped with a warning naming the remote
and the file.

The remote's record is shared by every machine, as ClearML's server is: a write reads it,
applies only this machine's own changes (``merge_record``: the facts that differ from the
``synced`` ones this machine last saw, the task's attachments it added) and writes the
result by compare-and-swap, again from a fresh read when another writer got in between.
So a machine holding an old copy never undoes another's publish, rename or tags.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from .errors import DsError, FormatError
from .records import RecordStore, facts, merge_facts, record_problem, status_rank
from .remote_fs import RefConflict
from .remote_repo import Transfer
from .store import Store
from .transfer import Transfers


def attachment_chunks(store: Store, record: dict, strict: bool = False) -> list[bytes]:
    """The chunks of the files a record keeps beside the version (artifacts, report images,
    typed metadata): they travel with the record. ``strict``: a damaged reference is a
    FormatError (gc must not guess), not skipped."""
    from .dataset_attachments import chunk_ids

    return chunk_ids(store, record, strict=strict)


def with_their_task(mine: dict, theirs: dict | None) -> dict:
    """``mine`` with what another machine added to the remote's copy of the task kept:
    artifacts, properties, parameters and configuration this record lacks, and reports it
    does not have (after the remote's). An update must never drop another writer's
    attachments: the remote's gc would then free their chunks."""
    their_task = (theirs or {}).get("task")
    if not isinstance(their_task, dict):
        return mine
    task = dict(mine.get("task") or {})
    for key, value in their_task.items():
        ours = task.get(key)
        if isinstance(value, dict) and isinstance(ours, dict):
            task[key] = {**value, **ours}
        elif isinstance(value, list) and isinstance(ours, list):
            task[key] = [*value, *(r for r in ours if r not in value)]
        elif key not in task:
            task[key] = value
    return {**mine, "task": task} if task != mine.get("task") else mine


def merge_record(mine: dict, theirs: dict | None) -> dict:
    """The record to write over the remote's ``theirs``: its facts with only the changes
    ``mine`` made since its ``synced`` ones (``records.merge_facts``), the task's attachments
    of both (``with_their_task``), the rest from the further of the two (a draft's content
    until it is finalized, then the version's)."""
    if theirs is None:
        return dict(mine)
    out = dict(theirs if status_rank(theirs) > status_rank(mine) else mine)
    out.update(merge_facts(mine.get("synced"), mine, theirs))
    if "task" in mine:
        out["task"] = mine["task"]
    else:
        out.pop("task", None)
    return with_their_task(out, theirs)


class RecordGone(DsError):
    """A version's record was sent to a remote and is no longer there: deleted there."""


SWAP_TRIES = 8  # compare-and-swap rounds before a record update gives up


def _parsed(text: str) -> dict | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class RecordSync(Transfers):
    """Dataset records, over the transfer of packs and metadata."""

    written: dict | None = None  # the record the last push wrote on the remote

    def push_dataset(self, record: dict) -> Transfer:
        """Mirror a version (bytes, lineage metadata, record) under the remote's shared lock;
        a record already there is updated with this one's changes (``merge_record``)."""
        store, meta = self.store, self.store.meta
        self.cache.mkdir(parents=True, exist_ok=True)
        t = Transfer()
        with self.fs.operation("upload"):
            self.check_config(create=True)
            if record.get("commit"):
                top = record["commit"]
                tree = meta.tree_of(top)
            else:
                top = tree = record["tree"]
            tops = [top]
            records = RecordStore(store.path)
            for pid in record.get("parents", []):
                prec = records.read(pid)
                if prec and prec.get("commit"):
                    tops.append(prec["commit"])
            with self.lock("upload") as lock:
                self.send(tops, [], [c for _p, e in meta.walk(tree) for c, _ in e.chunk_list()]
                          + attachment_chunks(store, record), t)
                lock.check()
                self.written = self._swap_record(record["id"], lambda theirs: merge_record(record, theirs))
        return self.stats(t)

    def _swap_record(self, dataset_id: str, make: Callable[[dict | None], dict],
                     guard: Callable[[dict | None, dict], AbstractContextManager] | None = None,
                     on_missing: Callable[[], None] | None = None) -> dict | None:
        """Write ``make(the remote's record, None if absent or unreadable)`` by compare-and-swap,
        from a fresh read each time another writer got in between; the write runs inside
        ``guard(theirs, new)`` (which sends what the new record needs). With ``on_missing``, a
        record the remote lacks is not written: that is called (it may raise) and None
        returned. Returns what was written."""
        rel = f"datasets/{dataset_id}.json"
        for attempt in range(SWAP_TRIES):
            old, token = self.fs.read_ref(rel)
            if old is None and on_missing is not None:
                on_missing()
                return None
            theirs = None if old is None else _parsed(old)
            if theirs is not None and record_problem(theirs, dataset_id) is not None:
                theirs = None  # an invalid record is replaced whole, as a missing one
            new = _shared(make(theirs))
            why = record_problem(new, dataset_id)
            if why is not None:
                raise FormatError(f"{self.label}: refusing to write dataset record {rel}: {why}")
            try:
                with guard(theirs, new) if guard is not None else nullcontext():
                    self.fs.swap_ref(rel, _record_text(new), token)
                return new
            except RefConflict:
                if attempt + 1 == SWAP_TRIES:
                    raise RefConflict(f"{self.label}: dataset record {rel} kept changing under this "
                                      f"update ({SWAP_TRIES} tries); run the call again") from None
                time.sleep(random.uniform(0.01, 0.05) * (attempt + 1))
        raise AssertionError("unreachable")

    def push_record(self, record: dict) -> dict | None:
        """Carry a version's changes (tags, status, names, task attachments) to the remote's
        record, read afresh and merged (``merge_record``); returns what was written.

        A record the remote no longer has was deleted there (it is only pushed to remotes
        it was uploaded to): ``RecordGone``, never sent again behind the deleter's back.
        """
        def gone() -> None:
            raise RecordGone(
                f"dataset {record['name']!r} version {record['version']} ({record['id']}) is no longer "
                f"on {self.label} (deleted there, e.g. by Dataset.delete on another machine); the change "
                "is kept in this store only: upload() the version to share it again, or "
                f"Dataset.delete(dataset_id={record['id']!r}) to delete it here too")

        @contextmanager
        def with_attachments(theirs: dict | None, new: dict) -> Iterator[None]:
            sent_before = set(attachment_chunks(self.store, theirs or {}))
            extra = [c for c in attachment_chunks(self.store, new) if c not in sent_before]
            if not extra:
                yield
                return
            with self.lock("upload") as lock:  # artifacts or reports added since the remote's record
                self.send([], [], extra, Transfer())
                lock.check()
                yield  # the record names them before a remote gc may look

        with self.fs.operation("upload"):
            self.written = self._swap_record(record["id"], lambda theirs: merge_record(record, theirs),
                                             with_attachments, on_missing=gone)
        return self.written

    def update_record(self, dataset_id: str, change: Callable[[dict], None]) -> dict | None:
        """Apply ``change`` to the remote's record of a version (read afresh, written by
        compare-and-swap); None, changing nothing, when the remote has no such record."""
        def make(theirs: dict | None) -> dict:
            if theirs is None:
                raise FormatError(f"{self.label}: dataset record datasets/{dataset_id}.json is damaged; "
                                  "whoever can write the remote should fix or delete it")
            new = dict(theirs)
            change(new)
            return new

        with self.fs.operation("upload"):
            return self._swap_record(dataset_id, make, on_missing=lambda: None)

    def delete_records(self, dataset_ids: list[str]) -> None:
        """Remove versions' records from the remote (their bytes stay until a remote gc)."""
        if dataset_ids:
            with self.fs.operation("upload"):
                self.fs.delete([f"datasets/{i}.json" for i in dataset_ids])

    def read_record(self, dataset_id: str) -> dict | None:
        """The remote's valid record of a version, None if it has none (or an invalid one,
        with a warning as ``dataset_records`` gives)."""
        rel = f"datasets/{dataset_id}.json"
        with self.fs.operation("fetch"):
            old, _token = self.fs.read_ref(rel)
        if old is None:
            return None
        self.bad_records = {}
        record = _parsed(old)
        why = "it is not a JSON object" if record is None else record_problem(record, dataset_id)
        if why is not None:
            self._skip_record(rel, why)
            return None
        return record

    def dataset_records(self) -> list[dict]:
        """The remote's valid dataset records; each invalid one (not JSON, wrong shape, an
        id that is not its file's) is skipped with a warning naming the remote and the file."""
        listed = {rel: size for rel, (size, _m) in self.fs.list_detail("datasets").items()
                  if rel.endswith(".json") and "/.tmp-" not in rel}
        if listed:
            self.check_config(create=False)
        out = []
        self.bad_records = {}
        for rel, size in sorted(listed.items()):
            stem = rel.rsplit("/", 1)[-1][: -len(".json")]
            if size > MAX_RECORD_BYTES:
                self._skip_record(rel, f"it is {size} bytes long")
                continue
            try:
                record = json.loads(self.fs.cat(rel, size))
            except FileNotFoundError:
                continue  # deleted since it was listed
            except ValueError as e:  # not JSON, not UTF-8
                self._skip_record(rel, f"it is not JSON ({e})")
                continue
            why = record_problem(record, stem)
            if why is not None:
                self._skip_record(rel, why)
                continue
            out.append(record)
        return out

    def _skip_record(self, rel: str, why: str) -> None:
        self.bad_records[rel] = why
        self.warn(f"{self.label}: ignored dataset record {rel}: {why}; whoever can write the "
                  "remote should fix or delete it")

    def fetch_dataset(self, record: dict) -> None:
        """Bring a remote version's metadata and record into the local store.

        File bytes stay on the remote until a copy needs them (``attach_default``), so a
        part of a version costs only that part's chunks.
        """
        store = self.store
        why = record_problem(record)
        if why is not None:
            raise FormatError(f"{self.label}: a dataset record is invalid: {why}")
        self.cache.mkdir(parents=True, exist_ok=True)
        with self.fs.operation("fetch"):
            self.check_config(create=False)
            self.fetch_meta()
        if record.get("commit"):
            if store.meta.object_type(record["commit"]) != "commit":
                raise FormatError(f"{self.label}: version {record['id']} names commit {record['commit']}, "
                                  "which the remote's metadata lacks; push that version again")
        elif store.meta.object_type(record["tree"]) != "tree":
            raise FormatError(f"{self.label}: draft {record['id']} names tree {record['tree']}, which "
                              "the remote's metadata lacks; upload that draft again")
        with store.locked():
            record = dict(record, dirty=False, uploaded=[self.url], synced=facts(record))
            if record.get("commit"):
                store.meta.set_ref(f"refs/datasets/{record['id']}", record["commit"], force=True)
            RecordStore(store.path).write(record)


_LOCAL_ONLY = ("dirty", "uploaded", "synced", "unsynced")  # this store's own bookkeeping


def _shared(record: dict) -> dict:
    """A record as the remote keeps it: without this store's own bookkeeping."""
    return {k: v for k, v in record.items() if k not in _LOCAL_ONLY}


def _record_text(record: dict) -> str:
    return json.dumps(_shared(record), indent=1, sort_keys=True)


MAX_RECORD_BYTES = 16 << 20  # a dataset record larger than this is not read


def push_dataset(store: Store, record: dict, url: str, retries: int = 3, progress=None) -> dict:
    """``progress(bytes done, bytes to send)``, as for ``remote.Remote``."""
    return RecordSync(store, url, retries=retries, progress=progress).push_dataset(record).as_json()


def remote_records(store: Store, url: str, warn: Callable[[str], None] | None = None) -> list[dict]:
    """The remote's valid dataset records; ``warn(text)`` for each one skipped as invalid."""
    return RecordSync(store, url, warn=warn).dataset_records()


def fetch_dataset(store: Store, url: str, record: dict) -> None:
    RecordSync(store, url).fetch_dataset(record)


