"""Transfer between a store and a remote: push sends the packs, index fragment and metadata
pack the remote lacks and then moves its refs; fetch brings refs and metadata packs.

Order makes it safe: packs, then index, then metadata, then refs; an interrupted push
leaves only unreferenced files, and the next push indexes the packs that landed whole
(noted locally under ``sent/`` before upload) and sends only what is still missing. Refs
move by compare-and-swap. What a remote sends is untrusted: refs that break the rules are
skipped with a warning (``Remote.warnings``, ``Transfer.warnings``), never stored.

A ref is deleted in two steps, as no storage here deletes on a condition: a compare-and-swap
from the value read to a mark (``DELETING``), which fails if anyone moved the ref, then the
removal of the file. Every reader takes the mark for no ref; a push takes the name over only
once the mark is older than a lease can be (``RemoteLock.STALE``, in the storage's clock),
and the deleter removes the file only while its mark is surely younger than half that, so
a push landing between the two steps is never removed.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DsError
from .manifest import FileEntry
from .reflog import is_hex40
from .remote_fs import RefConflict, RemoteLock
from .remote_repo import (
    DELETING,
    MAX_REF_BYTES,
    RemoteRepo,
    Transfer,
    clone_branch,
    git_pack_ok,
    is_deleting,
    ref_name_problem,
)
from .repository import LocalRepository, copy_meta, transfer


@dataclass(frozen=True)
class RefUpdate:
    """One ref a push sets: ``dst`` on the remote to ``value`` (from local ``src`` if a ref)."""

    src: str | None  # refs/heads/X or refs/tags/X; None when a version id was given
    value: str
    dst: str  # refs/heads/X or refs/tags/X on the remote
    force: bool = False


@dataclass(frozen=True)
class RefDelete:
    """One ref a push deletes on the remote: ``dst`` held ``value`` when read (``token``)."""

    name: str  # as the user gave it
    dst: str  # refs/heads/X or refs/tags/X on the remote
    value: str
    token: Any


def split_deletions(refs: list[str] | None) -> tuple[list[str] | None, list[str], set[str]]:
    """git's refspecs split into (those that push, the names ``:NAME`` deletes, the names
    ``+:NAME`` deletes with force); None stays None (the default push)."""
    if refs is None:
        return None, [], set()
    pushes, deletes, forced = [], [], set()
    for spec in refs:
        force = spec.startswith("+")
        if spec[force:].startswith(":") and spec[force + 1:]:
            deletes.append(spec[force + 1:])
            if force:
                forced.add(spec[force + 1:])
        else:
            pushes.append(spec)
    return pushes, deletes, forced


class Transfers(RemoteRepo):
    """Push and fetch, over a ``RemoteRepo``."""

    # -- pushing ---------------------------------------------------------------------------
    def send(self, tops: list[str], known: list[str], chunk_ids: Iterable[bytes], t: Transfer) -> None:
        """Send the chunks the remote lacks, then the metadata of ``tops`` that the versions
        ``known`` (which the remote holds) lack (``repository.transfer``; an interrupted
        push resumes from the packs that landed). Counted into ``t``."""
        chunks, packs, names = transfer(LocalRepository(self.store), self, tops, known, chunk_ids)
        t.chunks += chunks
        t.packs += packs
        t.meta_packs += sum(n.endswith(".idx") for n in names)
        self.remember_meta(names)

    def resolve_refspecs(self, refs: list[str] | None = None, all_refs: bool = False,
                         tags: bool = False) -> list[RefUpdate]:
        """What a push of ``refs`` (git's refspecs: ``NAME``, ``SRC:DST``, ``+SRC:DST``),
        ``all_refs`` (every branch and tag) and ``tags`` (every tag) sets on the remote;
        with none of them, the current branch under its own name."""
        meta = self.store.meta
        local = {n: c for n, c in meta.refs().items() if n.startswith(("refs/heads/", "refs/tags/"))}
        updates: dict[str, RefUpdate] = {}

        def add(u: RefUpdate) -> None:
            if u.dst in updates and updates[u.dst].value != u.value:
                raise DsError(f"two refspecs send different versions to {u.dst}; push them one at a time")
            updates[u.dst] = u

        for name in sorted(local):
            if all_refs or (tags and name.startswith("refs/tags/")):
                add(RefUpdate(name, local[name], name))
        for spec in refs or []:
            add(_refspec(meta, spec, local))
        if refs is None and not all_refs and not tags:
            add(_refspec(meta, "HEAD", local))
        return list(updates.values())

    def push(self, refs: list[str] | None = None, all_refs: bool = False, force: bool = False,
             tags: bool = False) -> Transfer:
        """Send branches/tags (``resolve_refspecs``) and everything they need."""
        return self.push_updates(self.resolve_refspecs(refs, all_refs, tags), force)

    def push_updates(self, updates: list[RefUpdate], force: bool = False) -> Transfer:
        """Set each ``dst`` on the remote to its version, sending what the remote lacks first.

        Under the remote's shared lock (a remote gc then cannot delete what this push
        finds there and does not send again), from reading the remote's refs and index
        to moving its refs; the refs move last, by compare-and-swap. A remote this push
        creates gets a ``HEAD`` naming the branch pushed, which clones then check out.
        """
        meta = self.store.meta
        self.cache.mkdir(parents=True, exist_ok=True)
        t = Transfer()
        refused: list[RefConflict] = []
        with self.fs.operation("push"):
            created = self.check_config(create=True)
            if not self._plan(updates, force, refused):  # up to date, or only refusals: no lock needed
                return self._refuse(refused, [], t)
            with self.lock("push") as lock:
                plan = self._plan(updates, force, refused, lock.server_now)  # again: what it holds now
                if not plan:
                    return self._refuse(refused, plan, t)
                known = [c for _u, c, _k in plan if self.is_commit(c)] + self._remote_tips(
                    {u.dst for u, *_ in plan})
                tops = [u.value for u, _c, _k in plan]
                self.send(tops, known, self._new_versions(tops, known, t), t)
                lock.check()
                for u, current, token in plan:
                    self.fs.swap_ref(u.dst, u.value, token)
                    if u.dst.startswith("refs/heads/"):
                        meta.set_ref(f"refs/remotes/{self.track}/{u.dst[11:]}", u.value, force=True,
                                     message="update by push")
                    t.refs.append(u.dst)
                    t.updates.append({"ref": u.dst, "local": u.src, "old": current, "new": u.value,
                                      "forced": current is not None and not (
                                          self.is_commit(current) and meta.is_ancestor(current, u.value))})
            heads = [u.dst for u, _c, _k in plan if u.dst.startswith("refs/heads/")]
            if created and heads:
                current = f"refs/heads/{meta.head_branch()}"
                main = next((u.dst for u, _c, _k in plan if u.src == current and u.dst in heads), heads[0])
                self.fs.put("HEAD", f"ref: {main}\n".encode())
        return self._refuse(refused, plan, t)

    def _refuse(self, refused: list[RefConflict], plan: list, t: Transfer, verb: str = "pushed") -> Transfer:
        """The transfer, once the refs that could move have (as git's push: one refused ref
        does not hold back the others); then the refusals, if any, as one error."""
        self.stats(t)
        if not refused:
            return t
        if len(refused) == 1 and not plan:
            raise refused[0]
        done = f"; the other {len(plan)} ref(s) were {verb}" if plan else ""
        error = RefConflict(f"{len(refused)} ref(s) refused{done}: " + "; ".join(str(e) for e in refused))
        error.transfer = t  # what did move (``push -u`` still sets those branches' upstreams)
        raise error

    def _plan(self, updates: list[RefUpdate], force: bool, refused: list[RefConflict],
              now: float | None = None) -> list[tuple[RefUpdate, str | None, Any]]:
        """(update, remote value, token) of each ref to move; a diverged one goes to ``refused``.
        ``now``: the storage's time under our lease, which tells whether a ref being deleted
        may be taken over (without it, as the first look before the lease, it is planned)."""
        meta = self.store.meta
        plan = []
        refused.clear()
        for u in updates:
            name, target = u.dst, u.value
            current, token = self.fs.read_ref(name)
            if is_deleting(current):
                busy = self._deleting(name, now)
                if busy is not None:
                    refused.append(busy)
                    continue
                current = None  # deleted (its delete finished, or was killed): the mark's token is ours
            if current == target:
                continue
            if current is not None and not (force or u.force):
                short = name.split("/", 2)[2]
                if name.startswith("refs/tags/"):
                    refused.append(RefConflict(f"tag {short} already exists on {self.url} with another "
                                               f"version; `ds push --force REMOTE {short}` replaces it"))
                    continue
                if not is_hex40(current) or meta.object_type(current) not in ("commit", None):
                    refused.append(RefConflict(f"{name} on {self.url} does not hold a version id; "
                                               f"`ds push --force {short}` replaces it"))
                    continue
                if not self.is_commit(current) or not meta.is_ancestor(current, target):
                    refused.append(RefConflict(
                        f"{short} on {self.url} has versions you do not have: run `ds pull` (fetch and "
                        "merge) and push again, or `ds push --force` to replace them"))
                    continue
            plan.append((u, current, token))
        return plan

    def _deleting(self, rel: str, now: float | None) -> RefConflict | None:
        """The refusal to take over ``rel`` while a delete may still remove it: its mark is
        younger than ``RemoteLock.STALE`` by the storage's clock (the deleter removes the
        file only within half that); None when the name is free."""
        if now is None:
            return None
        written = self.fs.mtime(rel)
        if written is None or now - written > RemoteLock.STALE:
            return None  # gone meanwhile (the swap then says so), or a delete long dead
        short = rel.split("/", 2)[2]
        return RefConflict(f"{short} on {self.url} is being deleted (a `ds push --delete` marked it "
                           f"{max(0.0, now - written):.0f} s ago); push it again in "
                           f"{RemoteLock.STALE - (now - written):.0f} s, once that delete has finished "
                           "or expired")

    def _remote_tips(self, skip: set[str]) -> list[str]:
        """Versions the remote's branches name now (read under the lock), that we have.

        Only these may be assumed present: a version remembered from an earlier fetch may
        since have been dropped from the remote (branch moved, then `ds gc --remote`).
        """
        prefix = f"refs/remotes/{self.track}/"
        out = []
        for ref in self.store.meta.refs():
            rel = f"refs/heads/{ref[len(prefix):]}"
            if ref.startswith(prefix) and rel not in skip:
                value, _token = self.fs.read_ref(rel)
                if self.is_commit(value):
                    out.append(value)
        return out

    def _new_versions(self, targets: list[str], known: list[str], t: Transfer) -> list[bytes]:
        """Chunks of the versions reachable from ``targets`` but not from ``known`` (which the
        remote holds, with their whole history): cost ∝ change. Counts them into ``t``."""
        from .diff import diff_trees

        meta = self.store.meta
        out: list[bytes] = []
        files: set[tuple[str, bytes]] = set()  # (path, content): a merge repeats its branches' files
        for commit_id in meta.new_versions(dict.fromkeys(targets), dict.fromkeys(known)):
            info = meta.commit_info(commit_id)
            parents = [meta.tree_of(p) for p in info.parents]
            d = diff_trees(meta, parents[0] if parents else None, info.tree, renames=False)
            t.versions += 1
            others = parents[1:]
            for path, e in (*d.added.items(), *d.modified.items()):
                out.extend(c for c, _ in e.chunk_list())
                if not any(_same_file(meta, tree, path, e) for tree in others):  # merged in, not new
                    files.add((path, e.hash))
        t.files += len(files)
        return out

    # -- deleting --------------------------------------------------------------------------
    def plan_deletes(self, names: list[str], force: bool = False,
                     forced: Iterable[str] = ()) -> list[RefDelete]:
        """The refs ``names`` (a branch or tag name, or ``refs/heads/X``, ``refs/tags/X``) as
        the remote holds them now. Refused as a whole, nothing deleted (as git): a name the
        remote does not hold, one that is both a branch and a tag, the remote's default branch
        (the one a clone checks out) and a version whose metadata cannot be had here (its
        deletion could not be undone from this store) unless ``force`` (or the name is in
        ``forced``: ``+:NAME``)."""
        forced = set(forced)
        plan: list[RefDelete] = []
        missing: list[str] = []
        with self.fs.operation("push"):
            self.check_config(create=False)
            for name in dict.fromkeys(names):
                found = []
                for rel in _delete_candidates(name):
                    value, token = self.fs.read_ref(rel)
                    if value is not None and not is_deleting(value):
                        found.append(RefDelete(name, rel, value, token))
                if len(found) > 1:
                    raise DsError(f"{name!r} is both a branch and a tag on {self.label}; say which: "
                                  f"refs/heads/{name} or refs/tags/{name}; nothing was deleted")
                if found:
                    plan.append(found[0])
                else:
                    missing.append(name)
            if missing:
                raise DsError("; ".join(f"unable to delete '{n}': remote ref does not exist" for n in missing)
                              + f" (on {self.label}; `ds fetch` then `ds branch -r` lists its branches, "
                              "`ds tag` the tags); nothing was deleted")
            heads = [d for d in plan if d.dst.startswith("refs/heads/") and not (force or d.name in forced)]
            default = self._clone_default() if heads else None
            for d in heads:
                if d.dst[len("refs/heads/"):] == default:
                    raise DsError(f"refusing to delete {default} on {self.label}: it is the remote's default "
                                  "branch, which `ds clone` checks out; `ds push --force "
                                  f"{self.name or self.url} --delete {d.name}` deletes it anyway (a clone "
                                  "then needs --branch); nothing was deleted")
            if any(is_hex40(d.value) and not self.is_commit(d.value) for d in plan):
                self.fetch_meta()  # versions pushed by others: their reflog here must name what went
            for d in plan:
                if is_hex40(d.value) and not self.is_commit(d.value) and not (force or d.name in forced):
                    raise DsError(f"{d.dst} on {self.label} names {d.value[:12]}, whose metadata is not on "
                                  "the remote, so its deletion could not be undone from here; "
                                  f"`ds push --force {self.name or self.url} --delete {d.name}` deletes it "
                                  "anyway; nothing was deleted")
        return plan

    def _clone_default(self) -> str | None:
        """The branch a clone of the remote checks out now (``remote.clone``'s rule)."""
        head = self.default_branch()
        if head is not None:
            value, _token = self.fs.read_ref(f"refs/heads/{head}")
            if value is not None and not is_deleting(value):
                return head
        return clone_branch(head, [rel[len("refs/heads/"):] for rel in self.read_refs()
                                   if rel.startswith("refs/heads/")])

    def apply_deletes(self, plan: list[RefDelete], t: Transfer | None = None) -> Transfer:
        """Delete each planned ref on the remote if it still holds the value read (compare-
        and-swap to a mark, then removal; see the module's docstring), then its tracking ref
        here, which keeps its reflog, ended by the deletion: the version stays within reach
        of ``NAME@{1}`` and of local gc's reflog grace. A ref that moved meanwhile is refused
        (a ``RefConflict``, nothing deleted here or there), the others go all the same."""
        t = t if t is not None else Transfer()
        refused: list[RefConflict] = []
        done: list[RefDelete] = []
        with self.fs.operation("push"):
            for d in plan:
                short = d.dst.split("/", 2)[2]
                started = time.monotonic()
                try:
                    self.fs.swap_ref(d.dst, f"{DELETING} {uuid.uuid4().hex}", d.token)
                except RefConflict:
                    now, _token = self.fs.read_ref(d.dst)
                    held = "it is gone" if now is None or is_deleting(now) else f"it holds {now[:12]}"
                    refused.append(RefConflict(
                        f"{short} on {self.url} moved since it was read (it held {d.value[:12]}, {held} "
                        "now); nothing was deleted: `ds fetch` to see it, then delete it again"))
                    continue
                if time.monotonic() - started < RemoteLock.STALE / 2:
                    self.fs.delete([d.dst])
                # else the mark stays: read as no ref, taken over by a push once it is stale
                done.append(d)
                local = self._forget_tracking(d, short) if d.dst.startswith("refs/heads/") else None
                t.refs.append(d.dst)
                t.deleted.append(d.dst)
                t.updates.append({"ref": d.dst, "local": local, "old": d.value, "new": None,
                                  "forced": False, "deleted": True})
                if self.is_commit(d.value):
                    back = f"{d.value[:12]}:{d.dst}"
                    kept = f"; {local[len('refs/remotes/'):]}@{{1}} names it here" if local else ""
                    t.hints.append(f"{short} on {self.name or self.url} was at {d.value[:12]}{kept}; "
                                   f"`ds push {self.name or self.url} {back}` puts it back")
        return self._refuse(refused, done, t, verb="deleted")

    def _forget_tracking(self, d: RefDelete, short: str) -> str | None:
        """Delete ``refs/remotes/<track>/<branch>`` here, logging the version the remote's
        branch held (set first if this store saw another); the tracking ref's name, or None."""
        meta = self.store.meta
        local = f"refs/remotes/{self.track}/{short}"
        if self.is_commit(d.value) and meta.ref_target(local) != d.value:
            meta.set_ref(local, d.value, force=True, message=f"push: held on {self.url} when deleted")
        if not meta.has_ref(local):
            return None
        meta.delete_ref(local, self.store.author(), f"push: deleted {short} on {self.url}")
        return local

    def delete_refs(self, names: list[str], force: bool = False) -> Transfer:
        """``plan_deletes`` then ``apply_deletes``: git's ``push --delete``."""
        return self.apply_deletes(self.plan_deletes(names, force))

    # -- fetching --------------------------------------------------------------------------
    def read_refs(self) -> dict[str, str]:
        """Every valid branch and tag on the remote: path -> 40-hex id.

        What a remote holds is untrusted: a ref whose name breaks git's rules or whose
        value is no id is skipped with a warning (listed in ``bad_refs``), so one bad ref
        on a shared remote never blocks everyone. That it names a commit is checked once
        its metadata is here (``version_refs``).
        """
        refs: dict[str, str] = {}
        self.bad_refs = {}
        for rel, (size, _mtime) in sorted(self.fs.list_detail("refs").items()):
            if rel.endswith(".lock") or "/.tmp-" in rel:
                continue
            why = ref_name_problem(rel, self.track)
            if why is None and size > MAX_REF_BYTES:
                why = f"its file holds {size} bytes, not a version id"
            if why is not None:
                self._skip_ref(rel, why)
                continue
            try:
                value = self.fs.cat(rel, size).decode(errors="replace").strip()
            except FileNotFoundError:
                continue  # deleted since it was listed
            if is_deleting(value):
                continue  # being deleted (or a delete was killed): no ref
            if not is_hex40(value):
                self._skip_ref(rel, "it does not hold a version id")
                continue
            refs[rel] = value
        return refs

    def version_refs(self, refs: dict[str, str]) -> dict[str, str]:
        """The refs that name a commit whose metadata is here; the others skipped with a warning."""
        good = {}
        for rel, commit_id in sorted(refs.items()):
            why = self.naming_problem(commit_id)
            if why is None:
                good[rel] = commit_id
            else:
                self._skip_ref(rel, f"it {why}")
        return good

    def fetch(self, prune: bool = False, prune_tags: bool = False) -> Transfer:
        """Bring the remote's refs, metadata and index (not file bytes: those come on demand).
        ``prune``: delete the tracking refs of branches the remote no longer has (each keeps
        its reflog, ended by the deletion); without it they stay, with a hint, as in git.
        ``prune_tags`` (with ``prune``, as git's ``-p -P``): also delete the tags here that
        the remote does not have, made here or not (each keeps its reflog)."""
        if prune_tags and not prune:
            raise DsError("--prune-tags deletes tags only together with --prune, as git's; "
                          "run `ds fetch --prune --prune-tags` (nothing was fetched)")
        meta = self.store.meta
        self.cache.mkdir(parents=True, exist_ok=True)
        t = Transfer()
        with self.fs.operation("fetch"):
            self.check_config(create=False)
            for _attempt in range(3):
                # refs first, then metadata: a push landing in between only adds packs we then
                # take. A ref whose metadata is still missing moved (and a remote gc dropped its
                # old version) meanwhile: read the refs again.
                remote_refs = self.read_refs()
                listed = set(remote_refs) | set(self.bad_refs)  # skipped as invalid: still there
                self.fetch_meta(t)
                if all(meta.object_type(c) is not None for c in remote_refs.values()):
                    break
            # the remote's index too, before any ref names what was fetched: a push lands its
            # index before its refs, so every chunk of a fetched version is then known to be
            # on the remote (`ds fsck` counts it there, not as lost), even if this is killed
            self.forget_index()
            self.index()
            remote_refs = self.version_refs(remote_refs)
            self._drop_broken_tracking_refs()
            before = {name: c for name in meta.ref_names() if (c := meta.ref_target(name)) is not None}
            remote_refs = self.readable_refs(remote_refs, list(before.values()))
            for rel, commit_id in sorted(remote_refs.items()):
                if rel.startswith("refs/heads/"):
                    local = f"refs/remotes/{self.track}/{rel[11:]}"
                elif not meta.has_ref(rel):
                    local = rel  # a tag: created once, never moved by a fetch
                else:
                    mine = before.get(rel)
                    if mine is not None and mine != commit_id:
                        short = rel[len("refs/tags/"):]
                        self.warn(f"tag {short} on {self.label} names {commit_id[:12]}, yours {mine[:12]}; "
                                  f"yours is kept (a fetch never moves a tag): `ds tag -f {short} "
                                  f"{commit_id[:12]}` takes theirs")
                    continue
                old = before.get(local)
                try:
                    meta.set_ref(local, commit_id, force=rel.startswith("refs/heads/"),
                                 message=f"fetch: {'stored' if old is None else 'moved'} from {self.url}")
                except (DsError, OSError) as e:  # e.g. refs/heads/a beside a/b
                    self._skip_ref(rel, f"it cannot be stored here ({e})")
                    continue
                t.refs.append(rel)
                if old != commit_id:
                    t.updates.append({"ref": rel, "local": local, "old": old, "new": commit_id,
                                      "forced": old is not None and not meta.is_ancestor(old, commit_id)})
            self._prune(listed, prune, t)
            if prune_tags:
                self._prune_tags(listed, t)
            self._warn_hidden()  # once every ref is in: a tag fetched just now may be one
            # versions new here: cost ∝ their number
            t.versions = sum(1 for _c in meta.new_versions([u["new"] for u in t.updates if u["new"]],
                                                           before.values()))
        return self.stats(t)

    def _prune(self, listed: set[str], prune: bool, t: Transfer) -> None:
        """The tracking refs of branches not in ``listed`` (the remote's refs, as read): deleted
        with ``prune`` (reflogged, as a branch deletion), else named in a hint."""
        meta = self.store.meta
        prefix = f"refs/remotes/{self.track}/"
        gone = [n for n in meta.ref_names(prefix) if f"refs/heads/{n[len(prefix):]}" not in listed]
        if gone and not prune:
            names = ", ".join(n[len("refs/remotes/"):] for n in gone)
            t.hints.append(f"{names} {'is' if len(gone) == 1 else 'are'} gone from {self.label}; "
                           "`ds fetch --prune` deletes the local copy")
            return
        for name in gone:
            old = meta.delete_ref(name, self.store.author(), f"fetch: pruned, gone from {self.url}")
            t.deleted.append(name)
            t.updates.append({"ref": f"refs/heads/{name[len(prefix):]}", "local": name, "old": old,
                              "new": None, "forced": False, "deleted": True})

    def _warn_hidden(self) -> None:
        """A branch or tag here named as one of this remote's tracking refs (``origin/main``;
        made, or fetched as a tag, before the remote had that branch) wins wherever the
        name is given: say so, and how to rename it."""
        meta = self.store.meta
        mine = set(meta.ref_names("refs/heads/")) | set(meta.ref_names("refs/tags/"))
        for ref in meta.ref_names(f"refs/remotes/{self.track}/"):
            name = ref[len("refs/remotes/"):]
            if f"refs/heads/{name}" in mine:
                self.warn(f"your branch {name} hides {self.track}'s branch of that name (`{name}` means "
                          f"yours); rename it: `ds branch -m {name} NEW`")
            if f"refs/tags/{name}" in mine:
                self.warn(f"your tag {name} hides {self.track}'s branch of that name (`{name}` means "
                          f"yours); rename it: `ds tag NEW {name}` then `ds tag -d {name}`")

    def _prune_tags(self, listed: set[str], t: Transfer) -> None:
        """Delete the tags not in ``listed`` (the remote's refs, as read: one skipped as
        invalid there still counts), each with a reflog entry that names it for a restore."""
        meta = self.store.meta
        for name in meta.ref_names("refs/tags/"):
            if name in listed:
                continue
            old = meta.delete_ref(name, self.store.author(), f"fetch: pruned, tag gone from {self.url}")
            t.deleted.append(name)
            t.updates.append({"ref": name, "local": name, "old": old, "new": None, "forced": False,
                              "deleted": True})

    def readable_refs(self, refs: dict[str, str], known: list[str]) -> dict[str, str]:
        """The refs whose versions new here all read back safely; the others skipped with a
        warning. Once a ref names it, a version whose folder listing is unsafe ('..', a store
        name) or damaged would fail every `ds fsck` and `ds gc` here until the reflog let
        it go. One walk over the new versions, reading only the folders each changed (cost ∝
        change), which a checkout then finds read already."""
        meta = self.store.meta
        problems: dict[str, str] = {}
        for commit_id in meta.new_versions(sorted(set(refs.values())), known):
            try:
                info = meta.commit_info(commit_id)
                parent = meta.tree_of(info.parents[0]) if info.parents else None
                _read_changed(meta, parent, info.tree, "")
            except DsError as e:
                problems[commit_id] = f"version {commit_id[:12]}, which cannot be read ({e})"
        if not problems:
            return dict(refs)
        reach = meta.reaching_versions(set(problems), refs.values())
        good = {}
        for rel, tip in sorted(refs.items()):
            if tip not in reach:
                good[rel] = tip
                continue
            bad = next((b for b in sorted(problems) if meta.is_ancestor(b, tip)), sorted(problems)[0])
            self._skip_ref(rel, f"it {'names' if bad == tip else 'holds in its history'} {problems[bad]}")
        return good

    def _drop_broken_tracking_refs(self) -> None:
        """Remove tracking refs of this remote that name no version (an older objstore
        stored whatever the remote held; such a ref made every push and gc fail)."""
        meta = self.store.meta
        for name in meta.ref_names(f"refs/remotes/{self.track}/"):
            if meta.ref_target(name) is None:
                meta.drop_ref(name)
                self.warn(f"{self.label}: removed the local {name}, which named no version")

    def fetch_meta(self, t: Transfer | None = None) -> None:
        """Download the metadata packs we lack, each verified against its name
        (``repository.copy_meta``; counted into ``t``)."""
        names = copy_meta(self, LocalRepository(self.store))
        if t is not None:
            t.meta_packs += sum(n.endswith(".idx") for n in names)

    def fetch_meta_holding(self, oids: set[str], set_aside: Callable[[Path], object],
                           warn: Callable[[str], object] | None = None) -> set[str]:
        """Download the remote's metadata packs that hold any of ``oids`` (objects missing or
        damaged here), each verified against its name, its ``.idx`` read first and published
        last; the ids of ``oids`` they hold. A pack held here under the same name that fails
        its own check is replaced (``set_aside`` takes the damaged files); one pack that
        cannot be had is a warning, and the next is tried."""
        import tempfile

        from .meta import pack_index_oids

        dest = self.store.meta.pack_folder
        dest.mkdir(parents=True, exist_ok=True)
        idxs = sorted(r for r in self.fs.list_detail("meta")
                      if r.rsplit("/", 1)[-1].startswith("pack-") and r.endswith(".idx"))
        found: set[str] = set()
        with tempfile.TemporaryDirectory(dir=dest, prefix=".tmp-restore-") as tmp:
            for rel in idxs:
                name = rel.rsplit("/", 1)[-1]
                pack = name[:-4] + ".pack"
                if (dest / name).exists() and git_pack_ok(dest / name, name) and (dest / pack).exists() \
                        and git_pack_ok(dest / pack, pack):
                    continue  # whole here: what it holds reads, or is damaged elsewhere
                try:
                    self.fs.get_file(rel, Path(tmp, name), check=lambda p, n=name: git_pack_ok(p, n))
                    held = oids.intersection(pack_index_oids(Path(tmp, name))) - found
                    if not held:
                        continue
                    self.fs.get_file(rel[:-4] + ".pack", Path(tmp, pack),
                                     check=lambda p, n=pack: git_pack_ok(p, n))
                except (DsError, OSError) as e:
                    if warn is not None:
                        warn(f"remote {self.url}: {rel}: {e}")
                    continue
                for damaged in (dest / name, dest / pack):  # the same name, failing its check
                    if damaged.exists():
                        set_aside(damaged)
                os.replace(Path(tmp, pack), dest / pack)
                os.replace(Path(tmp, name), dest / name)  # the .idx last: libgit2 sees whole packs only
                found |= held
        return found


def _read_changed(meta, old: str | None, new: str, where: str) -> None:
    """Read (and so check) every folder of tree ``new`` that tree ``old`` does not hold."""
    if old == new:
        return
    folder = meta.read_folder(new, where)
    before = meta.read_folder(old, where).dirs if old is not None else {}
    for name, sub in folder.dirs.items():
        _read_changed(meta, before.get(name), sub, f"{where}/{name}" if where else name)


def _delete_candidates(name: str) -> list[str]:
    """The remote refs a name given to delete may be: itself if a full branch or tag ref,
    else the branch and the tag of that name."""
    refs = [name] if name.startswith("refs/") else [f"refs/heads/{name}", f"refs/tags/{name}"]
    for rel in refs:
        why = ref_name_problem(rel, "origin")
        if why is not None:
            raise DsError(f"{name!r} cannot name a branch or tag on a remote: {why}; nothing was deleted")
    return refs


def _refspec(meta, spec: str, local: dict[str, str]) -> RefUpdate:
    """One git refspec: ``SRC`` (a branch, tag, or ``HEAD``: the current branch), ``SRC:DST``
    (SRC may also be a version id when DST is given), ``+`` first to force that one."""
    force = spec.startswith("+")
    src, colon, dst = spec[force:].partition(":")
    if not src:
        if colon and dst:  # callers split these off first (``split_deletions``)
            raise DsError(f"`:{dst}` deletes {dst!r} on the remote, which is not a push of a version: "
                          f"`ds push REMOTE --delete {dst}`")
        raise DsError(f"{spec!r} names nothing to push; give a branch or tag (SRC or SRC:DST)")
    src_ref, value = _push_source(meta, src, local, bool(dst))
    if not dst:
        dst_ref = src_ref
    elif dst.startswith("refs/"):
        dst_ref = dst
    else:
        dst_ref = f"refs/tags/{dst}" if (src_ref or "").startswith("refs/tags/") else f"refs/heads/{dst}"
    why = ref_name_problem(dst_ref, "origin")
    if why is not None:
        raise DsError(f"{dst!r} cannot be a branch or tag on a remote: {why}")
    return RefUpdate(src_ref, value, dst_ref, force)


def _push_source(meta, src: str, local: dict[str, str], has_dst: bool) -> tuple[str | None, str]:
    """(local ref, version) a push takes from: a branch, a tag, HEAD, or a version (with a DST)."""
    if src in ("HEAD", "@"):
        branch = meta.head_branch()
        if branch is None:
            head = meta.head_commit()
            if head is not None and has_dst:
                return None, head
            at = f" at {head[:12]}" if head else ""
            raise DsError(f"HEAD is detached{at}: there is no branch to push; `ds switch -c NAME` "
                          "puts your versions on one (then `ds push -u origin NAME`)")
        if f"refs/heads/{branch}" not in local:
            raise DsError(f"branch {branch!r} has no versions yet; commit first")
        return f"refs/heads/{branch}", local[f"refs/heads/{branch}"]
    for ref in ((src,) if src.startswith("refs/") else (f"refs/heads/{src}", f"refs/tags/{src}")):
        if ref in local:
            return ref, local[ref]
    try:
        value = meta.resolve(src)
    except DsError:
        raise DsError(f"{src!r} is neither a branch nor a tag here, nor a version; see `ds branch`, "
                      "`ds tag` and `ds log`") from None
    if not has_dst:
        raise DsError(f"{src!r} is not a branch or tag; to push that version say where it goes: "
                      f"`ds push REMOTE {src}:BRANCH`")
    return None, value


def _same_file(meta, tree: str, path: str, entry) -> bool:
    """Whether version tree ``tree`` holds ``entry``'s content at ``path``."""
    found = meta.lookup(tree, path)
    return isinstance(found, FileEntry) and found.same_content(entry)
