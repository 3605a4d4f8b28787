"""What the history commands show beside the versions (``ds log``, ``ds show``): the names
of ids (HEAD, branches, tags, dataset versions) and what one version changed.

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


def decorations(store: Store, shown: set[str] | None = None) -> dict[str, list[str]]:
    """Names beside ids, as `git log --decorate`: HEAD (and its branch, or "detached"),
    then branches, then tags, then datasets (only for the ids ``shown``, when given)."""
    names: dict[str, list[str]] = {}
    meta = store.meta
    head, branch = store.head(), meta.head_branch()
    if head:
        names[head] = [f"HEAD -> {branch}" if branch else "HEAD detached"]
    for name, commit_id in sorted(meta.branches().items()):
        if name != branch:
            names.setdefault(commit_id, []).append(name)
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
