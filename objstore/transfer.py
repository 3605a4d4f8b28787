"""Transfer between a store and a remote: push sends the packs, index fragment and metadata
pack the remote lacks and then moves its refs; fetch brings refs and metadata packs.

Order makes it safe: packs, then index, then metadata, then refs; an interrupted push
leaves only unreferenced files, and the next push indexes the packs that landed whole
(noted locally under ``sent/`` before upload) and sends only what is still missing. Refs
move by compare-and-swap. What a remote sends is untrusted: refs that break the rules are
skipped with a warning (``Remote.warnings``, ``Transfer.warnings``), never stored.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DsError
from .manifest import FileEntry
from .reflog import is_hex40
from .remote_fs import RefConflict, RemoteError
from .remote_repo import MAX_REF_BYTES, RemoteRepo, Transfer, git_pack_ok, ref_name_problem
from .repository import LocalRepository, copy_chunks


@dataclass(frozen=True)
class RefUpdate:
    """One ref a push sets: ``dst`` on the remote to ``value`` (from local ``src`` if a ref)."""

    src: str | None  # refs/heads/X or refs/tags/X; None when a version id was given
    value: str
    dst: str  # refs/heads/X or refs/tags/X on the remote
    force: bool = False


class Transfers(RemoteRepo):
    """Push and fetch, over a ``RemoteRepo``."""

    # -- pushing ---------------------------------------------------------------------------
    def push_chunks(self, chunk_ids, t: Transfer) -> None:
        """Send the chunks the remote lacks, as new packs, then one index fragment
        (``repository.copy_chunks``; an interrupted push resumes from the packs that landed)."""
        chunks, packs = copy_chunks(LocalRepository(self.store), self, chunk_ids)
        t.chunks += chunks
        t.packs += packs

    def push_meta(self, tops: list[str], known: list[str], t: Transfer) -> None:
        """Send, as one git pack, the objects under ``tops`` that ``known`` commits lack."""
        meta = self.store.meta
        seen: set[str] = set()
        meta.reachable([c for c in known if meta.object_type(c) is not None], seen)
        new: set[str] = set()
        meta.reachable(tops, seen, new)
        names = self.put_meta_pack(new)
        if names:
            t.meta_packs += 1
            self._remember_meta(names)

    def _remembered_meta(self) -> set[str]:
        """The metadata packs this store sent to or fetched from the remote."""
        path = self.cache / "meta-packs.json"
        return set(json.loads(path.read_text())) if path.exists() else set()

    def _remember_meta(self, names: list[str]) -> None:
        (self.cache / "meta-packs.json").write_text(json.dumps(sorted(self._remembered_meta() | set(names))))

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
                plan = self._plan(updates, force, refused)  # again: what the remote holds now
                if not plan:
                    return self._refuse(refused, plan, t)
                known = [c for _u, c, _k in plan if self.is_commit(c)] + self._remote_tips(
                    {u.dst for u, *_ in plan})
                chunk_ids = self._new_versions([u.value for u, _c, _k in plan], known, t)
                self.push_chunks(chunk_ids, t)
                self.push_meta([u.value for u, _c, _k in plan], known, t)
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

    def _refuse(self, refused: list[RefConflict], plan: list, t: Transfer) -> Transfer:
        """The transfer, once the refs that could move have (as git's push: one refused ref
        does not hold back the others); then the refusals, if any, as one error."""
        self.stats(t)
        if not refused:
            return t
        if len(refused) == 1 and not plan:
            raise refused[0]
        done = f"; the other {len(plan)} ref(s) were pushed" if plan else ""
        error = RefConflict(f"{len(refused)} ref(s) refused{done}: " + "; ".join(str(e) for e in refused))
        error.transfer = t  # what did move (``push -u`` still sets those branches' upstreams)
        raise error

    def _plan(self, updates: list[RefUpdate], force: bool,
              refused: list[RefConflict]) -> list[tuple[RefUpdate, str | None, Any]]:
        """(update, remote value, token) of each ref to move; a diverged one goes to ``refused``."""
        meta = self.store.meta
        plan = []
        refused.clear()
        for u in updates:
            name, target = u.dst, u.value
            current, token = self.fs.read_ref(name)
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

    def fetch(self) -> Transfer:
        """Bring the remote's refs, metadata and index (not file bytes: those come on demand)."""
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
            # versions new here: cost ∝ their number
            t.versions = sum(1 for _c in meta.new_versions([u["new"] for u in t.updates], before.values()))
        return self.stats(t)

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
        """Download the metadata packs we lack, each verified against its name (counted
        into ``t``)."""
        dest = self.store.meta.pack_folder
        dest.mkdir(parents=True, exist_ok=True)
        gone = ""
        for _attempt in range(3):
            known = self.store.meta.pack_names() | self._remembered_meta()
            sizes = {r: size for r, (size, _mtime) in self.fs.list_detail("meta").items()
                     if r.rsplit("/", 1)[-1].startswith("pack-")}
            # a pack counts only once its .idx is there (the .idx is uploaded last)
            complete = {f[:-4] for f in sizes if f.endswith(".idx") and f not in self.unreadable}
            wanted = [stem + suffix for stem in sorted(complete)
                      for suffix in (".pack", ".idx")  # .idx last: libgit2 then sees whole packs only
                      if stem.rsplit("/", 1)[-1] + suffix not in known]
            total, done = sum(sizes.get(r, 0) for r in wanted), 0
            got = []
            try:
                for rel in wanted:
                    name = rel.rsplit("/", 1)[-1]
                    self.fs.get_file(rel, dest / name, check=lambda p, n=name: git_pack_ok(p, n))
                    got.append(name)
                    done += sizes.get(rel, 0)
                    if self.progress is not None:
                        self.progress(done, total)
            except FileNotFoundError:
                gone = rel  # a remote gc replaced that pack while we listed: list again
                continue
            finally:
                if got:
                    if t is not None:
                        t.meta_packs += len(got) // 2
                    self._remember_meta(got)
            return
        raise RemoteError(f"remote {self.url}: {gone}, named by its listing, could not be read at each of "
                          "3 listings: a `ds gc --remote` may be running (try again when it has finished); "
                          "if it persists the remote is damaged: `ds fsck --remote NAME` names what it "
                          "affects, and `--repair` there, in a store that holds those versions, mends it")

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


def _refspec(meta, spec: str, local: dict[str, str]) -> RefUpdate:
    """One git refspec: ``SRC`` (a branch, tag, or ``HEAD``: the current branch), ``SRC:DST``
    (SRC may also be a version id when DST is given), ``+`` first to force that one."""
    force = spec.startswith("+")
    src, colon, dst = spec[force:].partition(":")
    if not src:
        if colon and dst:
            raise DsError(f"deleting {dst!r} on a remote (`:{dst}`) is not supported yet; "
                          "push another version to it with --force instead")
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
