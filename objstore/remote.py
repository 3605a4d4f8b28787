"""Mirroring a store to a remote: push, fetch, pull, clone, and chunks on
demand.

A ``Remote`` is one remote of one store, built in layers by responsibility:
``remote_repo.RemoteRepo`` (the remote's layout, URL, cache, index, chunks read on demand),
``transfer.Transfers`` (push and fetch of packs, index fragments, metadata packs and
refs) and ``record_sync.RecordSync`` (the SDK's dataset records). This module holds the
whole operations the CLI runs and re-exports the names callers import from here.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import DsError
from .meta import CommitInfo
from .paths import STORE_DIR
from .record_sync import RecordSync, fetch_dataset, push_dataset, remote_records
from .remote_fs import RefConflict, RemoteFS
from .remote_repo import (
    Transfer,
    check_url,
    clone_branch,
    forget_remote,
    layout_files,
    missing_config,
    remote_config,
    remote_spec,
)
from .store import CLONING, Store

__all__ = ["Remote", "Transfer", "attach_default", "check_url", "clone", "fetch_dataset",
           "forget_remote", "pull", "push", "push_dataset", "remote_records", "remote_spec"]


class Remote(RecordSync):
    """One remote of one store: push, fetch, dataset records, chunks on demand."""


def attach_default(store: Store, name_or_url: str | None = None) -> None:
    """Let the store fetch missing chunks from its (default) remote, opened on first need."""
    target = name_or_url or store.default_remote()
    if not target:
        return
    opened: list[Remote] = []

    def fetch(chunk_ids) -> None:
        if not opened:
            opened.append(Remote(store, target))
        opened[0].fetch_chunks(chunk_ids)

    store.fetcher = fetch


def restore_objects(store: Store, oids: set[str], warn=None) -> set[str]:
    """Metadata objects of ``oids`` (missing or damaged here) brought back from the store's
    remotes (``fsck --repair``): the metadata packs holding them are downloaded, each
    verified against its name, and a damaged copy here (a loose file, or a pack of the same
    name) is moved to ``.dsstore/damaged/`` so that the whole one is read. Only the objects
    that then read back whole count; a remote that cannot be reached is passed over
    (``warn(text)``)."""
    from .repair import quarantine

    found: set[str] = set()
    for name in sorted(store.config.remotes):
        left = oids - found
        if not left:
            break
        try:
            got = Remote(store, name).fetch_meta_holding(left, lambda path: quarantine(store, path), warn)
        except (DsError, OSError) as e:
            if warn is not None:
                warn(str(e) if name in str(e) else f"remote {name}: {e}")
            continue
        store.reopen_meta()
        for oid in got:
            loose = store.meta.loose_path(oid)
            aside = Path(quarantine(store, loose)) if loose.exists() else None
            if store.meta.readable(oid):
                found.add(oid)
            elif aside is not None:  # the remote's copy does not read either: put it back as it was
                os.replace(aside, loose)
    return found


# -- whole operations (CLI) --------------------------------------------------------------
def push(store: Store, name_or_url: str | None = None, refs: list[str] | None = None,
         all_refs: bool = False, tags: bool = False, force: bool = False, set_upstream: bool = False,
         progress=None, delete: bool = False) -> Transfer:
    """git's push. With no remote and no refs: the current branch to its upstream; a branch
    with none goes to the same name on the default remote, with a hint to set one (as git's
    ``push.default = current``). A remote but no refs: the current branch, to its upstream's
    name when that is the remote's. ``set_upstream`` (-u): each branch pushed follows the
    remote's branch afterwards, even when nothing needed sending. ``delete`` (--delete):
    ``refs`` are branches or tags to delete on the remote, as ``:NAME`` refspecs are
    (``Transfers.plan_deletes``: checked before anything moves)."""
    from .branches import set_upstream as follow
    from .branches import upstream
    from .transfer import split_deletions

    if delete:
        if not refs:
            raise DsError("--delete needs the branches or tags to delete: `ds push REMOTE --delete NAME...`")
        if all_refs or tags or set_upstream:
            raise DsError("--delete cannot be given with --all, --tags or -u")
        if bad := [r for r in refs if ":" in r]:
            raise DsError(f"--delete takes plain branch or tag names, not {bad[0]!r}")
        pushes, deletes, forced = [], list(refs), set()
    else:
        pushes, deletes, forced = split_deletions(refs)
    meta = store.meta
    hints = []
    branch = meta.head_branch()
    default = refs is None and not all_refs and not tags
    up = upstream(store, branch) if default and branch else None
    if default and name_or_url is None:
        if up is not None:
            name_or_url = up.remote
        elif branch is not None and not store.default_remote():
            raise DsError(f"branch {branch!r} has no upstream and there is no remote: "
                          f"`ds remote add origin URL`, then `ds push -u origin {branch}`")
    remote = Remote(store, name_or_url, progress=progress)
    if set_upstream and not remote.name:
        raise DsError("-u makes a branch follow a named remote, and this URL is not one: "
                      f"`ds remote add origin {remote.url}` first")
    if default and up is not None and remote.name == up.remote:
        pushes = [f"HEAD:refs/heads/{up.branch}"]
    elif default and branch is not None and up is None and not set_upstream and remote.name:
        hints.append(f"branch {branch!r} has no upstream; `ds push -u {remote.name} {branch}` makes it "
                     f"follow {remote.name}/{branch} (then `ds push`, `ds pull` and `ds status` use it)")
    updates = remote.resolve_refspecs(pushes, all_refs, tags)  # the local refs only: no request
    # deletions are checked first, so a name the remote lacks stops the push before anything moves
    doomed = remote.plan_deletes(deletes, force, forced) if deletes else []
    if both := {u.dst for u in updates} & {d.dst for d in doomed}:
        raise DsError(f"{sorted(both)[0]} is both pushed and deleted; push and delete it one at a time")
    refused: list[RefConflict] = []
    t = Transfer()
    if updates or not doomed:
        try:
            t = remote.push_updates(updates, force)
        except RefConflict as e:  # some refs moved, others were refused: as git, -u for those that moved
            if getattr(e, "transfer", None) is None and not doomed:
                raise
            t, refused = getattr(e, "transfer", None) or t, [e]
    if doomed:
        try:
            t = remote.apply_deletes(doomed, t)
        except RefConflict as e:
            refused.append(e)
    if set_upstream:
        for u in updates:
            if (u.src or "").startswith("refs/heads/") and u.dst.startswith("refs/heads/") \
                    and (not refused or u.dst in t.refs):
                t.upstreams[u.src[11:]] = follow(store, u.src[11:], remote.name, u.dst[11:]).name
    if len(refused) == 1:
        raise refused[0]
    if refused:
        error = RefConflict("; ".join(str(e) for e in refused))
        error.transfer = t
        raise error
    t.hints = hints + t.hints
    return t


def pull(store: Store, name_or_url: str | None = None, branch: str | None = None,
         progress=None, allow_unrelated: bool = False) -> tuple[Transfer, CommitInfo | None]:
    """git's pull: fetch, then bring the current branch up to date with its upstream
    (fast-forward, or a merge when both moved). ``name_or_url`` / ``branch`` name another
    remote branch; a branch with no upstream pulls the same name from the default remote,
    with a hint to set one. ``Transfer.files`` counts the working files changed."""
    from .branches import upstream
    from .diff import diff_trees
    from .merge import merge

    current = store.meta.head_branch()
    if current is None:
        head = store.head()
        raise DsError(f"HEAD is detached{f' at {head[:12]}' if head else ''}; `ds switch BRANCH` "
                      "first (or `ds merge REMOTE/BRANCH` to merge into this version)")
    up = upstream(store, current)
    hints = []
    if name_or_url is None and branch is None and up is not None:
        name_or_url, branch = up.remote, up.branch
    elif name_or_url is None and up is None:
        hints.append(f"branch {current!r} has no upstream, so the default remote's {current!r} was "
                     f"pulled; `ds push -u REMOTE {current}` sets one")
    remote = Remote(store, name_or_url, progress=progress).attach()
    if branch is None:
        branch = up.branch if up is not None and up.remote == remote.name else current
    with remote.fs.operation("pull"):
        t = remote.fetch()
        t.hints = hints
        ref = f"refs/remotes/{remote.track}/{branch}"
        if not store.meta.has_ref(ref):
            spec = current if current == branch else f"{current}:{branch}"
            raise DsError(f"{remote.label} has no branch {branch!r}; nothing to pull "
                          f"(`ds push -u {remote.name or 'REMOTE'} {spec}` creates it)" + _ignored(remote))
        before = store.head()
        cid = store.meta.resolve(ref)
        if before is None:  # a new store: take the remote's branch as it is
            from .worktree import checkout

            report = checkout(store, cid, branch=current, why=f"pull: from {remote.url}", forceable=False)
            store.meta.attach_head(current)
            t.files, t.outcome, t.pulled = report.count, "fast-forward", f"{remote.track}/{branch}"
            for warning in _refused(report):
                remote.warn(warning)
            return remote.stats(t), store.meta.commit_info(cid)
        t.pulled = f"{remote.track}/{branch}"
        info = merge(store, ref, message=f"merge {t.pulled} into {current}", allow_unrelated=allow_unrelated)
        t.outcome = "up to date" if info is None else "fast-forward" if info.id == cid else "merge"
        if info is not None:
            d = diff_trees(store.meta, store.meta.tree_of(before), store.meta.tree_of(info.id), renames=False)
            t.files = sum(store.in_scope()(p) for p in (*d.added, *d.modified, *d.removed))
    return remote.stats(t), info


def clone(url: str, directory: str, rev: str | None = None, include: list[str] | None = None,
          name: str = "origin", options: dict | None = None, progress=None) -> tuple[Store, Transfer]:
    """A new store in ``directory`` mirroring ``url``, with ``rev`` checked out.

    ``rev``: a remote branch (checked out as a local branch of that name following
    ``origin/NAME``, as git's clone), or a tag or id (detached HEAD); default: the branch
    the remote's HEAD names, else ``main``, else the remote's only branch. With ``include``
    only matching files are written and only their chunks downloaded. A failed clone
    leaves no folder behind; one killed part-way (SIGKILL, power loss) is finished by the
    same clone run again, which, if it fails too, keeps the folder for the next run.
    """
    import shutil
    from dataclasses import replace

    target = Path(directory)
    url = check_url(url, worktree=target)
    probe = RemoteFS(url, options)
    with probe.operation("clone"):
        cfg = remote_config(probe)
        if cfg is None:
            held = layout_files(probe)
            raise missing_config(probe, held, None) if held and held != ["config"] else probe.not_a_remote()
    existed = target.exists()
    store = _unfinished_clone(target, url) if existed else None
    if store is None and existed and any(target.iterdir()):
        raise DsError(f"{target} exists and is not empty; clone into a new folder")
    resuming = store is not None
    # HEAD set: the checkout, the clone's last step but one, was done (or a version was
    # committed here since): nothing of the folder is touched again
    finished = resuming and store.head() is not None
    try:
        if store is None:
            store = Store.init(target, hash=str(cfg.get("hash", "xxh3-128")), cloning=url)
        if not finished:
            store.set_config(replace(store.config, remote=name, sparse=list(include or []), remotes={
                **store.config.remotes, name: {"url": url, **({"options": options} if options else {})}}))
        remote = Remote(store, name, progress=progress).attach()
        with remote.fs.operation("clone"):
            t = remote.fetch()
            if not finished:
                branch, cid = _clone_target(remote, rev)
                from .worktree import checkout

                if branch is not None:  # before the checkout, which ends with the branch set
                    from .branches import set_upstream

                    store.meta.attach_head(branch)
                    t.upstreams[branch] = set_upstream(store, branch, name, branch).name
                # a killed clone's own files (whole, cut short, temp) are no work to lose;
                # anything else at the version's paths is refused as by any checkout
                report = checkout(store, cid, branch=branch, why=f"clone: from {url}")
                t.files = report.count
                for warning in _refused(report):
                    remote.warn(warning)
        (store.path / CLONING).unlink(missing_ok=True)
    except BaseException:
        if not resuming:  # a new clone leaves nothing; an unfinished one is kept for the next run
            if existed:
                for child in target.iterdir():
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
            else:
                shutil.rmtree(target, ignore_errors=True)
        raise
    return store, remote.stats(t)


def _unfinished_clone(target: Path, url: str) -> Store | None:
    """The store a clone of ``url`` killed part-way left in ``target`` (None if there is
    none); what store creations killed there left is removed first."""
    from .store import drop_dead_inits

    drop_dead_inits(target)
    mark = target / STORE_DIR / CLONING
    try:
        was = mark.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise DsError(f"{target} holds an unfinished clone whose {mark.name} cannot be read ({e}); "
                      f"delete {target} and clone again") from None
    if was != url:
        raise DsError(f"{target} holds an unfinished clone of {was}: clone that URL again to finish it, "
                      f"or delete {target} and clone {url}")
    return Store(target / STORE_DIR)


def _clone_target(remote: Remote, rev: str | None) -> tuple[str | None, str]:
    """(branch to create, or None to detach; version) a clone checks out."""
    meta = remote.store.meta
    prefix = f"refs/remotes/{remote.track}/"
    branches = [r[len(prefix):] for r in meta.ref_names(prefix)]
    if rev is None:
        if not branches:
            raise DsError(f"{remote.url} has no branch yet; nothing to clone (push one there first)"
                          + _ignored(remote))
        rev = clone_branch(remote.default_branch(), branches)
        if rev is None:
            raise DsError(f"{remote.url} has several branches ({', '.join(branches)}); "
                          "choose one with --rev")
    if rev in branches:
        return rev, meta.resolve(prefix + rev)
    try:
        return None, meta.resolve(rev)  # a tag or a version id: HEAD detached there
    except DsError:
        names = ", ".join(branches) or "none"
        raise DsError(f"{remote.url} has no branch or tag {rev!r}, and no version with that id "
                      f"(its branches: {names}); `ds push --tags` sends tags to it"
                      + _ignored(remote)) from None


def _refused(report) -> list[str]:
    """Warnings for the links a checkout did not create (their target leads out of the folder)."""
    return [f"link {p} points outside the folder; not created (it stays in the version; "
            f"`ds rm --cached {p}` drops it)" for p in getattr(report, "links_refused", [])]


def _ignored(remote: Remote) -> str:
    """The remote's refs a fetch skipped as invalid, and why: what an error must not hide."""
    bad = getattr(remote, "bad_refs", {})
    return "".join(f"; ignored its {rel}: {why}" for rel, why in sorted(bad.items()))
