"""Squash: several versions become one new root version (no parents).

Content is the versions' changes replayed in the order given. Each version contributes
its difference from the nearest earlier listed version that is its ancestor (or its
whole content if none is): so for a chain the result equals the last version, removals
included, and for unrelated versions it is their union, later overriding earlier.
"""

from __future__ import annotations

from .diff import diff_trees
from .errors import DsError
from .meta import CommitInfo
from .store import Store
from .tree_edit import TreeEditor


def squash_tree(store: Store, commit_ids: list[str]):
    meta = store.meta
    editor = TreeEditor(meta, None)
    for i, commit_id in enumerate(commit_ids):
        base = next((p for p in reversed(commit_ids[:i]) if meta.is_ancestor(p, commit_id)), None)
        d = diff_trees(meta, meta.tree_of(base) if base else None, meta.tree_of(commit_id), renames=False)
        for path in d.removed:
            editor.remove(path)
        for path, entry in (*d.added.items(), *d.modified.items()):
            editor.set(path, entry)
    return editor.write()


def squash(store: Store, revs: list[str], message: str, branch: str | None = None,
           force: bool = False) -> CommitInfo:
    """Create the squashed root version.

    With ``branch`` it becomes that branch's tip and nothing else moves: a new branch, as
    ``ds branch`` makes one (the same name checks), or with ``force`` an existing one moved
    (its reflog keeps the old tip). Without, it replaces the current lineage: the working
    folder is checked out to it (refused on uncommitted changes unless ``force``) and the
    current branch points at it; older versions stay only where a tag or another branch
    keeps them (gc frees the rest).
    """
    from .branches import check_branch_name
    from .worktree import checkout

    if not revs:
        raise DsError("squash needs at least one version")
    ids = [store.resolve(r) for r in revs]
    why = f"squash: {len(ids)} version{'s' if len(ids) != 1 else ''}"
    with store.locked():
        current = store.meta.head_branch()
        elsewhere = branch is not None and branch != current
        if elsewhere:
            check_branch_name(store, branch)
            if branch in store.meta.branches() and not force:
                raise DsError(f"branch {branch!r} already exists; name a new branch, or pass -f to move it "
                              f"to the squashed version (`ds reflog {branch}` keeps where it was)")
        tree = squash_tree(store, ids)
        commit_id = store.meta.commit(tree, [], message or f"squash of {len(ids)} versions", store.author())
        if elsewhere:
            store.meta.set_ref(f"refs/heads/{branch}", commit_id, force=True, message=why)
        else:  # the branch moves in one ref update once the files are written: HEAD stays on it
            checkout(store, commit_id, force=force, branch=current, why=why)
        return store.meta.commit_info(commit_id)
