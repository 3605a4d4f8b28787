"""Which version a string names: one resolver for the CLI, the SDK, ``ds://`` and ``ds ui``.

A plain store's revisions (an id or a unique prefix of 4+ characters, a tag, a branch,
``HEAD~N``, a finalized dataset's id) are resolved by ``MetaStore.resolve``. On top of that
come dataset versions: a dataset id names its version, draft included, and a unique prefix
of 4+ characters of a dataset id or of its commit id names that version too; within one
dataset (``ds://PROJECT/NAME@VERSION``), ``latest`` is the highest version in ClearML's
order (``clearml_rules.Version``; the most recently finalized of equal ones), and a version
text names itself. Every caller gets the same answer for the same string. A version named
on a remote comes with the ancestors the store lacks (``lineage_to_fetch``), for the SDK
and ``ds://`` alike.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .clearml_rules import Version
from .errors import DsError, RevisionNotFound
from .records import RecordStore, is_dataset_id
from .store import Store


class DatasetNotFound(DsError):
    """No dataset matches the query. ``what`` is the problem alone, so the command line can
    give its own fix instead of the SDK's (``hint``)."""

    def __init__(self, what: str, hint: str = "see Dataset.list_datasets()"):
        super().__init__(f"{what}; {hint}")
        self.what = what


MIN_PREFIX = 4  # as for commit ids: shorter prefixes name too many things


@dataclass(frozen=True)
class Resolved:
    """A version: its root tree, its commit (None for a draft) and, for a dataset version,
    its record."""

    tree: str
    commit: str | None
    record: dict | None = None

    @property
    def id(self) -> str:
        """What names it: the commit, or a draft's dataset id."""
        return self.commit or (self.record or {}).get("id", "")


def latest(records: Sequence[dict]) -> dict:
    """The version ClearML's ``Dataset.get`` picks among matches: the highest version it can
    order (the most recently finalized of equal ones), else the most recently changed."""
    def rank(r: dict) -> tuple:
        recency = str(r.get("finalized") or r.get("created") or "")
        v = Version.parse(str(r["version"]))
        return (1, v.key, recency) if v is not None else (0, (), recency)

    return max(records, key=rank)


def matching(records: Iterable[dict], key: str) -> list[dict]:
    """Records a dataset id names exactly, else those whose id or commit id starts with it
    (4+ hexadecimal characters); the caller decides what several mean."""
    key = key.strip().lower()
    records = list(records)
    exact = [r for r in records if r["id"] == key]
    if exact or len(key) < MIN_PREFIX or any(c not in "0123456789abcdef" for c in key):
        return exact
    return [r for r in records if r["id"].startswith(key) or str(r.get("commit") or "").startswith(key)]


def _by_id(records: RecordStore, key: str) -> dict | None:
    """The record a whole dataset id names; None if ``key`` is none, or its record is missing or invalid."""
    with contextlib.suppress(DsError):
        return records.read(key) if is_dataset_id(key) else None
    return None


def find_record(store: Store, key: str) -> dict:
    """The record a dataset id (or a unique prefix of a dataset id or of its commit) names."""
    records = RecordStore(store.path)
    found = _by_id(records, key.strip().lower())
    if found is not None:
        return found
    hits = matching(records.all(), key)
    if len(hits) > 1:
        raise DsError(f"{key!r} matches {len(hits)} datasets; give more characters")
    if not hits:
        raise DatasetNotFound(f"no dataset with id {key.strip()}")
    return hits[0]


def pick(versions: Sequence[dict], version: str, what: str = "the dataset") -> dict | None:
    """The version of one dataset that ``version`` names: ``latest``, a version text, or a
    unique prefix of a dataset or commit id; None when none does."""
    if not versions:
        return None
    if version == "latest":
        return latest(versions)
    same = [r for r in versions if str(r["version"]) == version]
    if same:
        return latest(same)
    hits = matching(versions, version)
    if len(hits) > 1:
        raise RevisionNotFound(f"{version!r} matches {len(hits)} versions of {what}; give more characters")
    return hits[0] if hits else None


def lineage_to_fetch(store: Store, record: dict, known: Iterable[dict]) -> list[dict]:
    """``record`` and each ancestor of it the store lacks, each before its parents: what to
    fetch from a remote (whose records are ``known``) for the SDK to see a whole lineage. A
    version the store has ends the walk there (its ancestors came with it)."""
    records = RecordStore(store.path)
    by_id = {r["id"]: r for r in known}
    out: list[dict] = []
    todo, seen = [record], set()
    while todo:
        r = todo.pop()
        if r["id"] in seen or records.read(r["id"]) is not None:
            continue
        seen.add(r["id"])
        out.append(r)
        todo.extend(by_id[p] for p in r.get("parents", []) if p in by_id)
    return out


def resolve(store: Store, rev: str) -> Resolved:
    """The version ``rev`` names in ``store``: a dataset id (a draft too), else what
    ``MetaStore.resolve`` takes, else a unique prefix of a dataset id. A finalized dataset's
    id or id prefix gives its commit with its record."""
    meta = store.meta
    key = rev.strip().lower()
    records = RecordStore(store.path)
    record = _by_id(records, key)
    if record is None:
        try:
            commit = store.resolve(rev)
            return Resolved(str(meta.tree_of(commit)), commit)
        except RevisionNotFound:
            hits = matching(records.all(), key) if len(key) >= MIN_PREFIX else []
            if len(hits) != 1:
                raise
            record = hits[0]
    if record.get("commit"):
        return Resolved(str(meta.tree_of(record["commit"])), record["commit"], record)
    if record.get("tree") and meta.has_tree(record["tree"]):
        return Resolved(record["tree"], None, record)
    raise RevisionNotFound(f"dataset {record['id']} has no content in this store yet")
