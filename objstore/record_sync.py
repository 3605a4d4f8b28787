"""Dataset records (the SDK's versions) on a remote: a version is sent with everything it
needs (chunks, lineage metadata, then its record, under the remote's shared lock), its
record updated by compare-and-swap; records read from a remote are validated, an invalid
one skipped with a warning naming the remote and the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from .errors import FormatError
from .records import RecordStore, record_problem
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


def _parsed(text: str) -> dict | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


class RecordSync(Transfers):
    """Dataset records, over the transfer of packs and metadata."""

    def push_dataset(self, record: dict) -> Transfer:
        """Mirror a version (bytes, lineage metadata, record) under the remote's shared lock."""
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
                self.push_chunks([c for _p, e in meta.walk(tree) for c, _ in e.chunk_list()]
                                 + attachment_chunks(store, record), t)
                self.push_meta(tops, [], t)
                lock.check()
                rel = f"datasets/{record['id']}.json"
                _old, token = self.fs.read_ref(rel)  # created once, later updated by compare-and-swap
                self.fs.swap_ref(rel, _record_text(record), token)
        return self.stats(t)

    def push_record(self, record: dict) -> None:
        """Update a version's record (tags, status, names) on the remote.

        A record the remote lacks (never sent, or deleted there and its bytes perhaps
        collected since) is sent with everything it needs, never alone.
        """
        rel = f"datasets/{record['id']}.json"
        with self.fs.operation("upload"):
            old, token = self.fs.read_ref(rel)
            if old is None:
                self.push_dataset(record)
                return
            theirs = _parsed(old)
            record = with_their_task(record, theirs)
            sent_before = set(attachment_chunks(self.store, theirs))
            extra = [c for c in attachment_chunks(self.store, record) if c not in sent_before]
            if extra:  # artifacts or reports added since the remote's record
                with self.lock("upload") as lock:
                    self.push_chunks(extra, Transfer())
                    lock.check()
                    self.fs.swap_ref(rel, _record_text(record), token)
                return
            self.fs.swap_ref(rel, _record_text(record), token)

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
            record = dict(record, dirty=False, uploaded=[self.url])
            if record.get("commit"):
                store.meta.set_ref(f"refs/datasets/{record['id']}", record["commit"], force=True)
            RecordStore(store.path).write(record)


def _record_text(record: dict) -> str:
    return json.dumps({k: v for k, v in record.items() if k not in ("dirty", "uploaded")},
                      indent=1, sort_keys=True)


MAX_RECORD_BYTES = 16 << 20  # a dataset record larger than this is not read


def push_dataset(store: Store, record: dict, url: str, retries: int = 3, progress=None) -> dict:
    """``progress(bytes done, bytes to send)``, as for ``remote.Remote``."""
    return RecordSync(store, url, retries=retries, progress=progress).push_dataset(record).as_json()


def remote_records(store: Store, url: str, warn: Callable[[str], None] | None = None) -> list[dict]:
    """The remote's valid dataset records; ``warn(text)`` for each one skipped as invalid."""
    return RecordSync(store, url, warn=warn).dataset_records()


def fetch_dataset(store: Store, url: str, record: dict) -> None:
    RecordSync(store, url).fetch_dataset(record)


