"""Branches (``refs/heads/NAME``) and moving HEAD between them, with git's safety nets.

A branch is a movable name for a version; HEAD is on a branch (commits move it) or
detached at a version (commits move HEAD alone, and a later checkout can leave them
behind). What git users rely on holds here too: leaving a detached version no ref
reaches names it and how to keep it, a branch with work found nowhere else is deleted
only with force, and a deleted branch's reflog is kept so gc's reflog grace period
still covers its versions. A branch may follow a branch of a remote (its upstream, kept
as git keeps it: ``branch.NAME.remote`` / ``.merge`` in the store's config), which
``ds push``, ``ds pull`` and ``ds status`` use when no remote is named.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from .errors import DsError, RevisionNotFound
from .meta import valid_ref_name
from .store import Store


@dataclass(frozen=True)
class BranchInfo:
    name: str
    id: str
    current: bool

    def as_json(self) -> dict:
        return {"name": self.name, "id": self.id, "current": self.current}


def check_branch_name(store: Store, name: str, renamed: str | None = None) -> None:
    """Refuse a name git would refuse or that would mislead; ``renamed``: the branch that
    takes the name (it goes, so its own name is no clash)."""
    if (not name or name.startswith("-") or name in ("HEAD", "@") or len(name) > 200
            or not valid_ref_name(f"refs/heads/{name}")):
        raise DsError(f"{name!r} is not a valid branch name")
    if name in store.meta.tags():
        raise DsError(f"{name!r} is a tag name; a branch of the same name would be ambiguous")
    clash = next((b for b in store.meta.branches() if b != renamed
                  and (b.startswith(f"{name}/") or name.startswith(f"{b}/"))), None)
    if clash is not None:  # one ref file cannot also be a folder of refs (git refuses it too)
        raise DsError(f"cannot make branch {name!r}: branch {clash!r} exists, and a name cannot be both a "
                      f"branch and a folder of branches; rename or delete {clash!r} first, or pick "
                      "another name")
    if store.meta.has_ref(f"refs/remotes/{name}"):
        raise DsError(shadows(name, "branch"))


def shadows(name: str, what: str) -> str:
    """The refusal of a branch or tag named as a remote's branch is here (``origin/main``):
    the name would then mean the local one everywhere, silently (git warns on each use)."""
    remote = name.split("/", 1)[0]
    return (f"{name!r} names {remote}'s branch as fetched here; a {what} of the same name would hide it "
            f"(`{name}` would then mean the {what}); pick another name")


def list_branches(store: Store) -> list[BranchInfo]:
    current = store.meta.head_branch()
    return [BranchInfo(n, commit_id, n == current) for n, commit_id in sorted(store.meta.branches().items())]


def remote_branches(store: Store) -> list[BranchInfo]:
    """The remotes' branches as last fetched (``origin/main``), as git's ``branch -r``."""
    out = []
    for ref in store.meta.ref_names("refs/remotes/"):
        if (commit_id := store.meta.ref_target(ref)) is not None:
            out.append(BranchInfo(ref[len("refs/remotes/"):], commit_id, False))
    return sorted(out, key=lambda b: b.name)


def create_branch(store: Store, name: str, rev: str = "HEAD", force: bool = False) -> str:
    """Point a new branch (or, with ``force``, an existing one that HEAD is not on) at REV."""
    check_branch_name(store, name)
    if rev == "HEAD" and store.head() is None:
        raise RevisionNotFound("there is no version yet to put a branch on; commit first")
    commit_id = store.resolve(rev)
    with store.locked():
        if force and name == store.meta.head_branch():
            raise DsError(f"cannot force-move {name!r}: HEAD is on it; `ds switch` to another branch first, "
                          f"or `ds merge` / `ds checkout REV -- .` to change what {name!r} holds")
        store.meta.set_ref(f"refs/heads/{name}", commit_id, force, message=f"branch: Created from {rev}")
    return commit_id


def unmerged(store: Store, tip: str, ignore: str) -> bool:
    """True when ``tip`` is reached by no ref but ``ignore`` (nor by HEAD)."""
    meta = store.meta
    tips = {commit_id for ref, commit_id in meta.refs().items() if ref != ignore}
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
        gone = meta.delete_ref(ref, store.author(), f"branch: deleted {name}")
        unset_upstream(store, name)  # as git drops branch.NAME.*
        return gone


def rename_branch(store: Store, old: str, new: str, force: bool = False) -> str | None:
    """Rename branch ``old`` (its reflog and upstream go with it; HEAD follows when on it).
    The current branch before its first version has no ref yet: HEAD alone is pointed at
    the new name, as git does. Returns the version the branch is at (None: no version yet)."""
    check_branch_name(store, new, renamed=old)
    with store.locked():
        if old not in store.meta.branches():
            if old != store.meta.head_branch() or store.head() is not None:
                raise DsError(f"no branch named {old!r}; see `ds branch`")
            if new in store.meta.branches():
                raise DsError(f"branch {new!r} already exists; `ds switch {new}` goes to it")
            store.meta.attach_head(new)
        else:
            if force and new != old and new == store.meta.head_branch():
                raise DsError(f"cannot replace branch {new!r}: it is the current branch (HEAD and the "
                              f"working folder are on it); `ds switch {old}` first, or choose another name")
            store.meta.rename_branch(old, new, store.author(), force)

        def move(branches: dict) -> None:  # the upstream goes with the branch, as in git
            branches.pop(new, None)
            if old in branches:
                branches[new] = branches.pop(old)

        _edit_upstreams(store, move)
        return store.meta.branches().get(new)


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
           progress: Callable[[int, int], None] | None = None, detach: bool = False, reset: bool = False):
    """Put HEAD on branch ``name`` (``create``: a new branch at REV, default HEAD) and make the
    working folder match it; refuses to drop uncommitted work unless ``force``. As in git, a
    ``name`` only one remote has (``origin/NAME``, as last fetched) becomes a local branch
    following it, and so does a new branch started at a remote's branch. ``detach``: HEAD
    goes to ``name``'s version on no branch (git's ``switch --detach``). ``reset`` (git's
    ``switch -C`` / ``checkout -B``): as ``create``, but a branch ``name`` that exists is
    moved to REV (its reflog keeps where it was: ``NAME@{1}``), the current one too."""
    from .worktree import checkout

    create = create or reset
    if detach:
        if create or rev is not None:
            raise DsError("--detach takes one version and creates no branch: `ds switch --detach REV`")
        return checkout(store, store.resolve(name), force=force, progress=progress, why=f"checkout: {name}")
    if not create and rev is not None:
        raise DsError("a start version is only for a new branch: `ds switch -c NAME REV`")
    if not create and (name == "-" or name.startswith("@{-")):  # git's previous branch (@{-N})
        previous = previous_branch_name(store, name)
        if previous is None:
            raise DsError(f"the checkout {name!r} names was of a version on no branch (or of a branch "
                          f"deleted since); `ds checkout {name}` visits it again")
        name = previous
    follow = None
    if not create and name not in store.meta.branches():
        follow = _guess_remote_branch(store, name)  # git's --guess: only a remote has it
        if follow is None:
            if store.meta.has_ref(f"refs/tags/{name}"):
                raise DsError(f"{name!r} is a tag, not a branch: `ds checkout {name}` visits its version "
                              f"(detached), `ds switch -c NAME {name}` starts a branch there")
            if _names_a_version(store, name):
                raise DsError(f"{name!r} is a version, not a branch: `ds switch --detach {name}` visits it "
                              f"on no branch, `ds switch -c NAME {name}` starts a branch there")
            raise DsError(f"no branch named {name!r}; `ds switch -c {name}` creates it "
                          "(`ds checkout REV` visits a version without a branch)")
        create, rev = True, follow.name
    if not create:
        return checkout(store, name, force=force, progress=progress)
    check_branch_name(store, name)
    exists = name in store.meta.branches()
    if exists and not reset:
        raise DsError(f"branch {name!r} already exists; `ds switch {name}` goes to it "
                      f"(`ds switch -C {name} [REV]` moves it)")
    start = store.resolve(rev or "HEAD") if (rev or store.head()) else None
    if start is None:  # a new store: the branch is born with the first commit
        if exists:
            raise DsError(f"HEAD has no version yet to move {name!r} to; name one: "
                          f"`ds switch -C {name} REV`")
        with store.locked():
            store.meta.attach_head(name)
        return None
    follow = follow or (_remote_branch(store, rev) if rev else None)
    with store.locked():
        why = f"branch: {'Reset to' if exists else 'Created from'} {rev or 'HEAD'}"
        report = checkout(store, start, force=force, progress=progress, new_branch=name, why=why,
                          reset_branch=exists)
        if follow is not None:  # started from a remote's branch: follow it (git's autoSetupMerge)
            set_upstream(store, name, follow.remote, follow.branch)
    return report


def _names_a_version(store: Store, rev: str) -> bool:
    try:
        store.resolve(rev)
        return True
    except DsError:
        return False


def previous_branch_name(store: Store, rev: str) -> str | None:
    """The branch git's ``-`` / ``@{-N}`` names when the checkout N switches ago was on a
    branch that still exists (a checkout then puts HEAD on it, not detached); else None."""
    m = re.fullmatch(r"@\{-([0-9]{1,6})\}", rev)
    n = 1 if rev == "-" else int(m[1]) if m else 0
    if n <= 0:
        return None
    name = store.meta.previous_branch(n)
    if name is None and rev == "-":
        raise DsError("no previous branch: HEAD's reflog names no switch yet")
    return name if name in store.meta.branches() else None


def _remote_branch(store: Store, rev: str) -> Upstream | None:
    """The configured remote's branch ``rev`` names (``origin/main``), if it is one."""
    if rev in store.meta.branches():  # a local branch wins, as in resolving
        return None
    rev = rev.removeprefix("refs/remotes/")
    for remote in store.config.remotes:
        if rev.startswith(f"{remote}/") and store.meta.has_ref(f"refs/remotes/{rev}"):
            return Upstream(remote, rev[len(remote) + 1:])
    return None


def ref_of(store: Store, rev: str) -> str:
    """The full name of the ref ``rev`` is, or of the remote's branch it names as last
    fetched (``origin/main`` is ``refs/remotes/origin/main``); else ``rev`` as given."""
    if store.meta.has_ref(rev):
        return rev
    if store.meta.has_ref(f"refs/remotes/{rev}"):
        return f"refs/remotes/{rev}"
    return rev


def _guess_remote_branch(store: Store, name: str) -> Upstream | None:
    """The one configured remote that has a branch ``name`` (as last fetched); None if none
    has it; an error naming them when several do."""
    found = [Upstream(r, name) for r in sorted(store.config.remotes)
             if store.meta.has_ref(f"refs/remotes/{r}/{name}")]
    if len(found) > 1:
        raise DsError(f"branch {name!r} is on several remotes ({', '.join(u.remote for u in found)}); "
                      f"choose one: `ds switch -c {name} {found[0].name}`")
    return found[0] if found else None


# -- upstreams (git's branch.NAME.remote / branch.NAME.merge, in the store's config) -------
@dataclass(frozen=True)
class Upstream:
    """The remote branch a local branch follows: ``ds push`` and ``ds pull`` with no
    arguments use it, ``ds status`` compares with it (as last fetched)."""

    remote: str  # a configured remote's name
    branch: str  # the branch on that remote

    @property
    def name(self) -> str:
        return f"{self.remote}/{self.branch}"

    @property
    def ref(self) -> str:
        """Where fetch and push keep what the remote was last seen to hold."""
        return f"refs/remotes/{self.remote}/{self.branch}"


def upstream(store: Store, branch: str) -> Upstream | None:
    """The upstream of ``branch``, or None when it has none (or only half of one)."""
    entry = store.config.branches.get(branch, {})
    remote, merge = entry.get("remote"), entry.get("merge", "")
    if not remote or not merge.startswith("refs/heads/"):
        return None
    return Upstream(remote, merge[len("refs/heads/"):])


def set_upstream(store: Store, branch: str, remote: str, remote_branch: str) -> Upstream:
    """Make ``branch`` follow ``remote_branch`` on the configured remote ``remote``."""
    from .config import load_config

    if remote not in store.config.remotes:
        raise DsError(f"an upstream names a configured remote, and {remote!r} is not one; "
                      f"`ds remote add NAME URL` first")
    if not valid_ref_name(f"refs/heads/{remote_branch}"):
        raise DsError(f"{remote_branch!r} is not a valid branch name")
    with store.locked():
        config = load_config(store.path / "config")  # what other processes saved meanwhile
        branches = dict(config.branches)
        branches[branch] = {"remote": remote, "merge": f"refs/heads/{remote_branch}"}
        store.set_config(replace(config, branches=branches))
    return Upstream(remote, remote_branch)


def follow(store: Store, branch: str, remote_branch: str) -> Upstream:
    """Make ``branch`` follow ``REMOTE/BRANCH`` (``ds branch -u``), which must have been
    fetched, as git requires: a typo then fails here, not at the next pull."""
    remote_branch = remote_branch.removeprefix("refs/remotes/")
    found = _remote_branch(store, remote_branch) if remote_branch not in store.meta.branches() else None
    if found is None:
        remotes = ", ".join(sorted(store.config.remotes)) or "none configured"
        raise DsError(f"{remote_branch!r} is not a remote's branch as last fetched (remotes: {remotes}); "
                      "give REMOTE/BRANCH, and run `ds fetch` if the remote has it")
    return set_upstream(store, branch, found.remote, found.branch)


def unset_upstream(store: Store, branch: str) -> None:
    """Forget ``branch``'s upstream (git's ``--unset-upstream``); the branch stays."""
    _edit_upstreams(store, lambda branches: branches.pop(branch, None))


def _edit_upstreams(store: Store, edit: Callable[[dict], object]) -> None:
    from .config import load_config

    with store.locked():
        config = load_config(store.path / "config")
        branches = dict(config.branches)
        edit(branches)
        if branches != config.branches:
            store.set_config(replace(config, branches=branches))


def tracking(store: Store, branch: str | None = None) -> dict:
    """Where ``branch`` (default: the current one) stands against its upstream, counted in
    versions with the metadata database as last fetched: ``{"branch", "head", "upstream",
    "ahead", "behind", "gone"}``. ``branch`` is None when HEAD is detached (``head`` is then
    its version); ``upstream`` ("origin/main") is None when the branch has none; ``gone``
    when the remote no longer had it at the last fetch (ahead and behind are then 0)."""
    meta = store.meta
    current = meta.head_branch()
    name = branch or current
    if branch is not None and branch != current and branch not in meta.branches():
        raise DsError(f"no branch named {branch!r}; see `ds branch`")
    head = store.head() if name == current else meta.branches()[name]
    out = {"branch": name, "head": head, "upstream": None, "ahead": 0, "behind": 0, "gone": False}
    up = upstream(store, name) if name is not None else None
    if up is None:
        return out
    out["upstream"] = up.name
    theirs = meta.ref_target(up.ref)
    if theirs is None:
        out["gone"] = True
        return out
    # a branch with no version yet (head None): all of the upstream is ahead of it
    out["ahead"], out["behind"] = meta.ahead_behind(head, theirs)
    return out


def tracking_all(store: Store) -> dict[str, dict]:
    """``tracking`` of every local branch that has an upstream (for ``ds branch -vv``)."""
    return {name: tracking(store, name) for name in sorted(store.meta.branches())
            if upstream(store, name) is not None}
