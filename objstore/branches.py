"""Branches (``refs/heads/NAME``) and moving HEAD between them, with git's safety nets.

A branch is a movable name for a version; HEAD is on a branch (commits move it) or
detached at a version (commits move HEAD alone, and a later checkout can leave them
behind). What git users rely on holds here too: leaving a detached version no ref
reaches names it and how to keep it, a branch with work found nowhere else is deleted
only with force, and a deleted branch's reflog is kept so gc's reflog grace period
still covers its versions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pygit2

from .errors import DsError, RevisionNotFound
from .store import Store


@dataclass(frozen=True)
class BranchInfo:
    name: str
    id: str
    current: bool

    def as_json(self) -> dict:
        return {"name": self.name, "id": self.id, "current": self.current}


def check_branch_name(store: Store, name: str) -> None:
    if (not name or name.startswith("-") or name in ("HEAD", "@") or len(name) > 200
            or not pygit2.reference_is_valid_name(f"refs/heads/{name}")):
        raise DsError(f"{name!r} is not a valid branch name")
    if name in store.meta.tags():
        raise DsError(f"{name!r} is a tag name; a branch of the same name would be ambiguous")


def list_branches(store: Store) -> list[BranchInfo]:
    current = store.meta.head_branch()
    return [BranchInfo(n, cid, n == current) for n, cid in sorted(store.meta.branches().items())]


def create_branch(store: Store, name: str, rev: str = "HEAD", force: bool = False) -> str:
    """Point a new branch (or, with ``force``, an existing one that HEAD is not on) at REV."""
    check_branch_name(store, name)
    if rev == "HEAD" and store.head() is None:
        raise RevisionNotFound("there is no version yet to put a branch on; commit first")
    cid = store.resolve(rev)
    with store.locked():
        if force and name == store.meta.head_branch():
            raise DsError(f"cannot force-move {name!r}: HEAD is on it (use `ds checkout` or `ds reset`)")
        store.meta.set_ref(f"refs/heads/{name}", cid, force)
    return cid


def unmerged(store: Store, tip: str, ignore: str) -> bool:
    """True when ``tip`` is reached by no ref but ``ignore`` (nor by HEAD)."""
    meta = store.meta
    tips = {cid for ref, cid in meta.refs().items() if ref != ignore}
    head = store.head()
    if head and ignore != "HEAD":
        tips.add(head)
    return not any(meta.is_ancestor(tip, other) for other in tips)


def delete_branch(store: Store, name: str, force: bool = False) -> str:
    """Delete a branch; refuses the current one, and one whose versions no other ref or
    HEAD reaches unless ``force`` (git's -D). Returns the id it pointed at."""
    meta = store.meta
    ref = f"refs/heads/{name}"
    with store.locked():
        if name not in meta.branches():
            raise DsError(f"no branch named {name!r}; see `ds branch`")
        if name == meta.head_branch():
            raise DsError(f"cannot delete {name!r}: HEAD is on it; switch to another branch first")
        tip = meta.branches()[name]
        if not force and unmerged(store, tip, ref):
            raise DsError(f"branch {name!r} holds versions no other branch or tag reaches "
                          f"(tip {tip[:12]}); use -D to delete it anyway")
        return meta.delete_ref(ref, store.author(), f"branch: deleted {name}")


def rename_branch(store: Store, old: str, new: str, force: bool = False) -> None:
    check_branch_name(store, new)
    with store.locked():
        if old not in store.meta.branches():
            raise DsError(f"no branch named {old!r}; see `ds branch`")
        store.meta.rename_branch(old, new, force)


def left_behind(store: Store, target: str) -> str | None:
    """The detached version HEAD is at, if moving HEAD to ``target`` leaves it reached by
    no ref: the one moment work can silently go missing (git warns here too)."""
    meta = store.meta
    if meta.head_branch() is not None:
        return None
    head = store.head()
    if head is None or head == target or not unmerged(store, head, "HEAD"):
        return None
    return head


def switch(store: Store, name: str, create: bool = False, rev: str | None = None, force: bool = False,
           progress: Callable[[int, int], None] | None = None):
    """Put HEAD on branch ``name`` (``create``: a new branch at REV, default HEAD) and make the
    working folder match it; refuses to drop uncommitted work unless ``force``."""
    from .worktree import checkout

    if create:
        check_branch_name(store, name)
        if name in store.meta.branches():
            raise DsError(f"branch {name!r} already exists; `ds switch {name}` goes to it")
        start = store.resolve(rev or "HEAD") if (rev or store.head()) else None
        if start is None:  # a new store: the branch is born with the first commit
            with store.locked():
                store.meta.attach_head(name)
            return None
        with store.locked():
            report = checkout(store, start, force=force, progress=progress)
            store.meta.set_ref(f"refs/heads/{name}", start)
            store.meta.attach_head(name)
        return report
    if rev is not None:
        raise DsError("a start version is only for a new branch: `ds switch -c NAME REV`")
    if name not in store.meta.branches():
        raise DsError(f"no branch named {name!r}; `ds switch -c {name}` creates it "
                      "(`ds checkout REV` visits a version without a branch)")
    return checkout(store, name, force=force, progress=progress)
