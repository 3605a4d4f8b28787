"""``ds merge``: join two diverged lineages into a version with both as parents.

Three-way by path against the merge base: a path changed on one side only takes that
side; changed identically on both, either; changed differently on both, it is a
conflict, listed in full, and resolved only by ``ours`` or ``theirs`` for all of them.
"""

from __future__ import annotations

from .diff import diff_trees
from .errors import DsError
from .meta import CommitInfo
from .store import Store
from .tree_edit import TreeEditor


class MergeConflict(DsError):
    def __init__(self, paths: list[str]):
        shown = ", ".join(paths[:10]) + (f" and {len(paths) - 10} more" if len(paths) > 10 else "")
        super().__init__(f"{len(paths)} path(s) changed differently on both sides: {shown}; nothing "
                         "changed here: `ds merge --ours REV` or `ds merge --theirs REV` chooses a side for "
                         "all of them")
        self.paths = paths


def merge(store: Store, rev: str, ours: bool = False, theirs: bool = False,
          message: str | None = None, allow_unrelated: bool = False) -> CommitInfo | None:
    """Merge ``rev`` into the current branch and check the result out; None if nothing to do.
    Lineages that share no version (a squash on one side, another store's root) are refused
    unless ``allow_unrelated``, as git does: their union is rarely what was meant."""
    from .worktree import checkout

    if ours and theirs:
        raise DsError("choose --ours or --theirs, not both")
    meta = store.meta
    head, other = store.head(), store.resolve(rev)
    if head is None:
        raise DsError("nothing to merge into: the store has no version yet")
    if meta.is_ancestor(other, head):
        return None  # already contains it
    branch = meta.head_branch()
    with store.locked():
        if meta.is_ancestor(head, other):  # fast-forward: the branch moves as the files are written
            checkout(store, other, branch=branch, why=f"merge {rev}: Fast-forward", forceable=False)
            return meta.commit_info(other)
        base = meta.merge_base(head, other)
        if base is None and not allow_unrelated:
            raise DsError(f"refusing to merge unrelated histories: {rev} shares no version with HEAD (a "
                          "squash on one side, or another store's root?); nothing changed. "
                          f"`ds merge --allow-unrelated-histories {rev}` joins them (their files' union)")
        base_tree = meta.tree_of(base) if base else None
        head_tree, other_tree = meta.tree_of(head), meta.tree_of(other)
        mine = diff_trees(meta, base_tree, head_tree, renames=False)
        theirs_d = diff_trees(meta, base_tree, other_tree, renames=False)
        changed_mine = {**mine.added, **mine.modified, **dict.fromkeys(mine.removed)}
        editor = TreeEditor(meta, head_tree)
        theirs_changes = {**dict.fromkeys(theirs_d.removed), **theirs_d.added, **theirs_d.modified}
        mine_folders = {f for p in changed_mine for f in _folders_of(p)}
        theirs_folders = {f for p in theirs_changes for f in _folders_of(p)}
        conflicts, plan = [], []
        for path, entry in theirs_changes.items():
            if path in changed_mine:
                a = changed_mine[path]
                same = (a is None and entry is None) or (a is not None and entry is not None
                                                         and a.same_content(entry))
                if same or ours:
                    continue
                if not theirs:
                    conflicts.append(path)
                    continue
            elif entry is not None and (path in mine_folders or any(
                    f in changed_mine and changed_mine[f] is not None for f in _folders_of(path))):
                # a file on one side where the other side changed a folder of that name
                if ours:
                    continue
                if not theirs:
                    conflicts.append(path)
                    continue
            plan.append((path, entry))
        conflicts += [p for p, e in changed_mine.items() if e is not None and p in theirs_folders
                      and not (ours or theirs)]
        if conflicts:
            raise MergeConflict(sorted(set(conflicts)))
        for path, entry in sorted(plan, key=lambda pe: pe[1] is not None):  # removals first
            if entry is None:
                if editor.get(path) is not None:
                    editor.remove(path)
            else:
                editor.set(path, entry)
        tree = editor.write()
        commit_id = meta.commit(tree, [head, other], message or f"merge {rev}", store.author())
        checkout(store, commit_id, branch=branch, why=f"merge {rev}: Merge made", forceable=False)
        return meta.commit_info(commit_id)


def _folders_of(path: str) -> list[str]:
    """Every folder above ``path`` ("a/b/c" -> ["a", "a/b"])."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]
