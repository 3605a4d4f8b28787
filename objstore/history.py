"""What the history commands show beside the versions (``ds log``, ``ds show``, ``ds reflog``):
the names of ids (HEAD, branches, tags, dataset versions), what one version changed, and
where a ref has been.

Read-only queries over a ``Store``, returning plain data for the command line to print.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .diff import Diff
    from .meta import CommitInfo
    from .store import Store

DATASET_REFS = "refs/datasets/"


@dataclass(frozen=True)
class Described:
    """One version as ``ds show`` tells it."""

    info: CommitInfo
    changes: Diff  # against its first parent; a root's files are all added
    files: int  # how many files it holds


def describe(store: Store, rev: str) -> Described:
    """Version ``rev``: its commit, what it changed against its first parent, its file count."""
    from .diff import diff_trees

    meta = store.meta
    info = store.info(rev)
    parent_tree = meta.tree_of(info.parents[0]) if info.parents else None
    changes = diff_trees(meta, parent_tree, info.tree)
    return Described(info, changes, sum(1 for _ in meta.walk(info.tree)))


@dataclass(frozen=True)
class Move:
    """One entry of a reflog, as ``ds reflog`` tells it (git's ``NAME@{N}`` selects it)."""

    selector: str  # NAME@{N}, N counting back from the newest (0)
    id: str  # where the ref moved to (zeros: nowhere, the ref was deleted)
    old: str  # where it was (zeros: it was created)
    time: str  # UTC, ISO 8601
    message: str

    def as_json(self) -> dict:
        return dict(self.__dict__)


def reflog(store: Store, name: str = "HEAD", limit: int | None = None) -> list[Move]:
    """Where ``name`` (HEAD, a branch, a tag, a remote's branch, or a full ref name) has
    been, newest first: the safety net after a reset, a squash or a deleted branch (any id
    listed is reachable as ``NAME@{N}`` and kept by gc for 14 days)."""
    import time as _time

    from .errors import DsError

    found = store.meta.moves(name)
    if found is None:
        raise DsError(f"no reflog for {name!r}: it is no branch, tag or remote branch here that has "
                      "moved (`ds reflog` shows HEAD's, `ds branch` lists the branches)")
    entries = found[:None if limit is None or limit < 0 else limit]
    return [Move(f"{name}@{{{i}}}", e.new, e.old,
                 _time.strftime("%Y-%m-%dT%H:%M:%SZ", _time.gmtime(e.time)), e.message)
            for i, e in enumerate(entries)]


def decorations(store: Store, shown: set[str] | None = None) -> dict[str, list[str]]:
    """Names beside ids, as `git log --decorate`: HEAD (and its branch, or "detached"),
    then branches, then remote branches (``origin/main``), then tags, then datasets (only
    for the ids ``shown``, when given)."""
    names: dict[str, list[str]] = {}
    meta = store.meta
    head, branch = store.head(), meta.head_branch()
    if head:
        names[head] = [f"HEAD -> {branch}" if branch else "HEAD detached"]
    for name, commit_id in sorted(meta.branches().items()):
        if name != branch:
            names.setdefault(commit_id, []).append(name)
    from .branches import remote_branches

    for b in remote_branches(store):
        names.setdefault(b.id, []).append(b.name)
    for name, commit_id in sorted(meta.tags().items()):
        names.setdefault(commit_id, []).append(name)
    for commit_id, label in dataset_names(store, shown).items():
        names.setdefault(commit_id, []).append(label)
    return names


def dataset_commits(store: Store) -> dict[str, list[str]]:
    """Finalized dataset versions from their refs alone: commit id -> dataset ids."""
    out: dict[str, list[str]] = {}
    for name, commit_id in store.meta.refs().items():
        if name.startswith(DATASET_REFS):
            out.setdefault(commit_id, []).append(name[len(DATASET_REFS):])
    return out


def dataset_names(store: Store, shown: set[str] | None = None) -> dict[str, str]:
    """Commit id -> "dataset PROJECT/NAME VERSION", reading only the records of the commits
    ``shown`` (a record may be large: it keeps a version's reports)."""
    from .errors import DsError
    from .records import RecordStore

    records, out = RecordStore(store.path), {}
    for commit_id, ids in dataset_commits(store).items():
        if shown is not None and commit_id not in shown:
            continue
        for dataset_id in ids:
            try:
                r = records.read(dataset_id)
            except DsError:  # a damaged record: fsck says so; the log still shows the version
                continue
            if r is not None:
                out[commit_id] = f"dataset {r['project']}/{r['name']} {r['version']}"
    return out
