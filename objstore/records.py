"""Dataset records: the mutable facts about each dataset version, one JSON file each.

A finalized version's content and lineage are an immutable commit (``refs/datasets/<id>``
points at it, and the commit's ``.ds.meta`` blob keeps the record as it was at
finalize). What may still change — tags, published state, name, project — and whole
drafts (their content is a tree in the object database) live in
``.dsstore/datasets/<id>.json``, replaced atomically under the store lock.

Record fields: ``id``, ``name``, ``project``, ``version``, ``tags``, ``description``,
``status`` (``draft`` | ``completed`` | ``published``), ``parents`` (dataset ids),
``tree`` (draft content), ``commit`` (after finalize), ``created``, ``metadata``,
``output_uri``, ``uploaded`` (URLs the content was mirrored to), ``dirty``, ``changed_files``
(ClearML's counts of ``files added``, ``files removed`` and ``files modified``), ``task``
(the ClearML task stand-in's artifacts, properties, parameters and reports: ``dataset_task``),
``unsynced`` (a changed fact not yet taken by every remote it was uploaded to), ``synced``
(the facts — ``FACTS`` — as this store last saw them on the shared remote: what differs
from them is this store's own change, the only thing a push may carry over another
machine's; never sent). Tags keep the order they were given in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from .errors import DsError, FormatError
from .fsutil import atomic_write

DRAFT, COMPLETED, PUBLISHED = "draft", "completed", "published"
STATUSES = (DRAFT, COMPLETED, PUBLISHED)
_ID = re.compile(r"[0-9a-f]{32}")
_HEX40 = re.compile(r"[0-9a-f]{40}")
# field -> the types it may hold when present (required fields are checked apart)
_OPTIONAL: dict[str, tuple[type, ...]] = {
    "tags": (list,), "description": (str, type(None)), "tree": (str, type(None)),
    "commit": (str, type(None)), "metadata": (dict,), "output_uri": (str, type(None)),
    "uploaded": (list,), "dirty": (bool,), "finalized": (str, type(None)), "changed_files": (dict,),
    "task": (dict,), "unsynced": (bool,), "synced": (dict,),
}
# what may change after finalize, on any machine: merged field by field (``merge_facts``)
FACTS = ("name", "project", "tags", "status", "description")
_RANK = {DRAFT: 0, COMPLETED: 1, PUBLISHED: 2}


def is_dataset_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def project_problem(project: object) -> str | None:
    """Why ``project`` cannot be a project name (``a/b`` nests; no empty, ``.`` or ``..``
    part, no NUL: a listing by project must never name a path outside it), or None."""
    if not isinstance(project, str) or not project:
        return "its project is not a non-empty string"
    if "\0" in project or any(part in ("", ".", "..") for part in project.split("/")):
        return f"its project {project!r} has an empty, '.' or '..' part"
    return None


def record_problem(record: object, dataset_id: str | None = None) -> str | None:
    """Why ``record`` is not a usable dataset record (None if it is).

    The one check for every record read, local or from a remote: field types, ids
    (dataset ids of 32 hex digits, commit and tree ids of 40), a known status, and the
    id a draft or a version needs. ``dataset_id``: the id its file name says it has.
    """
    if not isinstance(record, dict):
        return f"it is a JSON {type(record).__name__}, not an object"
    rid = record.get("id")
    if not is_dataset_id(rid):
        return "its id is not 32 hexadecimal digits"
    if dataset_id is not None and rid != dataset_id:
        return f"it describes dataset {rid}, not {dataset_id}"
    for key in ("name", "version", "created"):
        value = record.get(key)
        if not isinstance(value, str) or not value or "\0" in value:
            return f"its {key} is not a non-empty string"
    why = project_problem(record.get("project"))
    if why is not None:
        return why
    if record.get("status") not in STATUSES:
        return f"its status is not one of {', '.join(STATUSES)}"
    parents = record.get("parents")
    if not isinstance(parents, list) or not all(is_dataset_id(p) for p in parents):
        return "its parents are not a list of dataset ids"
    for key, types in _OPTIONAL.items():
        if key in record and not isinstance(record[key], types):
            return f"its {key} is a {type(record[key]).__name__}"
    for key in ("tags", "uploaded"):
        if not all(isinstance(v, str) for v in record.get(key, [])):
            return f"its {key} are not all strings"
    counts = record.get("changed_files", {})
    if not all(isinstance(k, str) and type(v) is int and v >= 0 for k, v in counts.items()):
        return "its changed_files are not counts of files"
    for key in ("tree", "commit"):
        if record.get(key) is not None and not _HEX40.fullmatch(record[key]):
            return f"its {key} is not a 40-digit id"
    if record["status"] == DRAFT and not record.get("tree"):
        return "it is a draft without a tree"
    if record["status"] != DRAFT and not record.get("commit"):
        return f"it is {record['status']} without a commit"
    return None


def facts(record: dict) -> dict:
    """The ``FACTS`` of a record (a copy)."""
    return {k: (list(record[k]) if k == "tags" else record[k]) for k in FACTS if k in record}


def merge_facts(base: dict | None, mine: dict, theirs: dict) -> dict:
    """The facts of ``theirs`` with only the changes ``mine`` made since ``base`` (the facts
    as ``mine`` last saw them; None: every difference is a change of ``mine``). A name,
    project or description ``mine`` changed is its own; tags ``mine`` added or removed are
    added or removed (another writer's tags stay, in their order); the status is the
    further of the two: a version never goes back from published or completed."""
    base = facts(theirs) if base is None else base
    out = facts(theirs)
    for key in ("name", "project", "description"):
        if key in mine and mine[key] != base.get(key):
            out[key] = mine[key]
    if "tags" in mine:
        seen = base.get("tags") if isinstance(base.get("tags"), list) else []
        added = [t for t in mine["tags"] if t not in seen]
        removed = {t for t in seen if t not in mine["tags"]}
        kept = [t for t in out.get("tags", []) if t not in removed]
        out["tags"] = kept + [t for t in dict.fromkeys(added) if t not in kept]
    statuses = [s for s in (theirs.get("status"), mine.get("status")) if s in _RANK]
    if statuses:
        out["status"] = max(statuses, key=_RANK.__getitem__)
    return out


def status_rank(record: dict) -> int:
    """draft 0, completed 1, published 2: how far a version has gone (never back)."""
    return _RANK.get(record.get("status"), 0)


class RecordStore:
    def __init__(self, store_path: Path, warn: Callable[[str], None] | None = None):
        """``warn(text)`` is told of each record ``all()`` skips (also kept in ``warnings``)."""
        self.folder = store_path / "datasets"
        self.warnings: list[str] = []
        self._warn = warn

    def _path(self, dataset_id: str) -> Path:
        if not is_dataset_id(dataset_id):
            raise DsError(f"{dataset_id!r} is not a dataset id (32 hexadecimal characters)")
        return self.folder / f"{dataset_id}.json"

    def _load(self, dataset_id: str) -> object:
        """The parsed JSON of a record file, unchecked; None if there is none."""
        path = self._path(dataset_id)
        try:
            text = path.read_text("utf-8")
        except FileNotFoundError:
            return None
        except UnicodeDecodeError as e:
            raise FormatError(f"dataset record {path} is not UTF-8 ({e}); fix or delete that file") from None
        try:
            return json.loads(text)
        except ValueError as e:
            raise FormatError(f"dataset record {path} is not JSON ({e}); fix or delete that file") from None

    def read(self, dataset_id: str) -> dict | None:
        record = self._load(dataset_id)
        if record is None:
            return None
        why = record_problem(record, dataset_id)
        if why is not None:
            raise FormatError(f"dataset record {self._path(dataset_id)} is invalid: {why}; "
                              "fix or delete that file")
        return record  # type: ignore[return-value]

    def write(self, record: dict) -> None:
        self.folder.mkdir(exist_ok=True)
        data = json.dumps(record, indent=1, sort_keys=True).encode()
        atomic_write(self._path(record["id"]), data)

    def delete(self, dataset_id: str) -> None:
        self._path(dataset_id).unlink(missing_ok=True)

    def _ids(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return [p.stem for p in sorted(self.folder.glob("*.json")) if _ID.fullmatch(p.stem)]

    def all(self) -> list[dict]:
        """Every valid record; an invalid one is skipped with a warning, so one bad file
        never hides the others."""
        out = []
        for dataset_id in self._ids():
            try:
                rec = self.read(dataset_id)
            except FormatError as e:
                self._skip(f"ignored {e}")
                continue
            if rec is not None:
                out.append(rec)
        return out

    def _skip(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            if self._warn is not None:
                self._warn(message)

    def draft_trees(self) -> list[str]:
        """Trees that drafts name: live for gc even though no ref reaches them.

        A record too damaged to tell (not JSON, or a tree that is no id) raises, so gc
        refuses rather than free a draft's content; an otherwise invalid object keeps its tree.
        """
        trees = []
        for dataset_id in self._ids():
            record = self._load(dataset_id)
            if not isinstance(record, dict):
                continue  # JSON, but names nothing
            tree = record.get("tree")
            valid = record_problem(record, dataset_id) is None
            if tree is None or (valid and record["status"] != DRAFT):
                continue
            if not isinstance(tree, str) or not _HEX40.fullmatch(tree):
                raise FormatError(f"dataset record {self._path(dataset_id)} names a tree that is no id; "
                                  "fix or delete that file")
            trees.append(tree)
        return trees
