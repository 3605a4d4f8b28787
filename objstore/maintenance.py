"""``ds fsck`` (verify everything, optionally repair the index) and ``ds gc``.

Both start from the same mark phase: every commit reachable from any ref, HEAD and
the stage; every tree under them (validated as it is read); every chunk they name.
gc then sweeps: a pack with no live chunk is deleted; a pack that is mostly dead is
rewritten with its live chunks (verified while copied); the index is rewritten from
the surviving packs' own tables of contents before any old pack is deleted. All of it
runs under the store's writer lock, so no local writer can be between writing chunks
and naming them; remote stores add a grace period (see docs/architecture.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DsError, FormatError
from .index import ChunkIndex, Location
from .meta import MetaStore
from .packs import FLAG_DELTA, PackEntry, PackWriter, read_pack_toc
from .progress import Progress, announce
from .records import RecordStore
from .repair import Loss, Salvage, losses, rebuild_index, restore_refs
from .store import Store

REWRITE_BELOW = 0.8  # rewrite a pack when less than this share of its bytes is live
REFLOG_GRACE = 14 * 24 * 3600  # gc keeps what a reflog reached this recently (git: gc.reflogExpire)


@dataclass
class Marked:
    commits: set[str] = field(default_factory=set)
    trees: set[str] = field(default_factory=set)
    chunks: dict[bytes, str] = field(default_factory=dict)  # id -> a path that uses it
    problems: list[str] = field(default_factory=list)


def mark(store: Store, reflog_since: float | None = None) -> Marked:
    """Everything live: refs, HEAD, the stage, drafts, and (``reflog_since``, seconds) every
    version a reflog reached since then. A damaged ref is a problem, never an empty branch."""
    meta = store.meta
    m = Marked()
    roots: list[str] = []
    m.problems.extend(d.message() for d in meta.damaged_refs())
    try:
        roots.extend(meta.refs().values())
    except FormatError as e:
        m.problems.append(str(e))
    head_ok = True
    try:
        head = store.head()
    except DsError:
        head, head_ok = None, False  # reported above, as a damaged ref
    if head:
        roots.append(head)
    if reflog_since is not None:
        roots.extend(sorted(meta.reflog_versions(reflog_since)))
    mark_versions(meta, roots, (), m)
    if head_ok:  # the stage is read against HEAD
        try:
            _mark_tree(meta, str(store.staged_tree()), "", m)
        except (DsError, KeyError, ValueError) as e:
            m.problems.append(f"stage: {e}")
    try:
        drafts = RecordStore(store.path).draft_trees()
    except DsError as e:
        m.problems.append(f"dataset records: {e}")
        drafts = []
    for tree in drafts:
        try:
            _mark_tree(meta, tree, "", m)
        except (DsError, ValueError) as e:
            m.problems.append(f"draft tree {tree}: {e}")
    _mark_bases(store, m)
    return m


def _mark_bases(store: Store, m: Marked) -> None:
    """Mark the base of every delta the index names, live or not: a delta cannot be read
    without its base, and one gc keeps may be named again (the same bytes added once
    more reuse it). A dead delta's base is freed by the gc after the one that drops it."""
    chunks = store.chunks
    try:
        deltas = [(cid, loc) for cid, loc in chunks.index if loc.flags & FLAG_DELTA]
    except (DsError, OSError) as e:
        m.problems.append(f"index: {e}")
        return
    for cid, loc in deltas:
        try:
            base = chunks.base_of(loc)
        except (DsError, OSError) as e:
            m.problems.append(f"chunk {cid.hex()} of {m.chunks.get(cid, 'no version')}: {e}")
            continue
        if base is not None:
            m.chunks.setdefault(base, f"{m.chunks.get(cid, 'an unused delta')} (the base of its delta)")


def mark_versions(meta: MetaStore, commits: Iterable[str], trees: Iterable[str] = (),
                  m: Marked | None = None) -> Marked:
    """Mark the versions ``commits`` with their whole history, and the folders ``trees``
    (drafts). Shared by local gc/fsck and by the remote ones, which start from a remote's
    refs and dataset records instead."""
    m = Marked() if m is None else m
    for root in commits:
        try:
            for cid in meta.ancestors(root):
                if cid in m.commits:
                    continue
                m.commits.add(cid)
                _mark_tree(meta, meta.tree_of(cid), "", m)
        except (DsError, KeyError, ValueError) as e:
            m.problems.append(f"history of {root[:12]}: {e}")
    for tree in trees:
        _mark_tree(meta, str(tree), "", m)
    return m


def _mark_tree(meta: MetaStore, oid: str, where: str, m: Marked) -> None:
    if oid in m.trees:
        return
    try:
        folder = meta.read_folder(oid, where)
    except (DsError, KeyError) as e:
        m.problems.append(str(e))
        return
    m.trees.add(oid)
    for name, e in folder.files.items():
        for cid, _ in e.chunk_list():
            m.chunks.setdefault(cid, f"{where}/{name}".lstrip("/"))
    for name, sub in folder.dirs.items():
        _mark_tree(meta, sub, f"{where}/{name}".lstrip("/"), m)


def all_packs(store: Store) -> list[Path]:
    return sorted(store.chunks.packs_dir.glob("*/*.pack"))


@dataclass
class FsckReport:
    commits: int = 0
    trees: int = 0
    chunks: int = 0
    packs: int = 0
    bytes_verified: int = 0
    remote_only: int = 0  # chunks of a partial clone, present on a remote's index only
    unindexed_packs: int = 0  # left by an interrupted writer; reclaimed by gc
    problems: list[str] = field(default_factory=list)
    repaired: bool = False
    refs_restored: list[str] = field(default_factory=list)  # "NAME -> ID", with --repair
    salvage: Salvage | None = None  # what the index rebuild kept, with --repair
    unrecoverable: list[Loss] = field(default_factory=list)  # chunks no pack holds, and their users
    unreferenced: list[str] = field(default_factory=list)  # versions no ref reaches, when a ref is lost

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict:
        keys = ("commits", "trees", "chunks", "packs", "bytes_verified", "remote_only", "unindexed_packs",
                "problems", "repaired", "refs_restored", "unreferenced")
        return {k: getattr(self, k) for k in keys} | {
            "ok": self.ok,
            "salvage": None if self.salvage is None else dict(self.salvage.__dict__),
            "unrecoverable": [loss.as_json() for loss in self.unrecoverable],
        }


def fsck(store: Store, read_data: bool = False, repair: bool = False,
         progress: Progress | None = None, now: float | None = None) -> FsckReport:
    """Check refs, versions, folders, index and packs; ``read_data`` reads every byte too.

    What is checked is what gc keeps: refs, HEAD, the stage, drafts, and versions a reflog
    reached within ``REFLOG_GRACE``. ``repair`` first restores damaged refs from their
    reflogs, then rebuilds the index (``repair.py``: nothing readable is ever dropped).
    ``progress(packs, bytes)`` follows the packs read back (the long part).
    """
    report = FsckReport()
    now = time.time() if now is None else now
    with store.locked():
        if repair:
            restored, _left = restore_refs(store.meta)
            report.refs_restored = [f"{d.name} -> {d.last_good}" for d in restored]
        if repair:
            pack_tocs, damaged_packs, _ = _read_tocs(store)
            report.salvage = rebuild_index(store, pack_tocs, damaged_packs)
            report.repaired = True
        pack_tocs, _, pack_problems = _read_tocs(store)
        report.problems.extend(pack_problems)
        report.packs = len(pack_tocs)
        m = mark(store, reflog_since=now - REFLOG_GRACE)
        report.problems.extend(m.problems)
        report.commits, report.trees, report.chunks = len(m.commits), len(m.trees), len(m.chunks)
        if any(d.last_good is None for d in store.meta.damaged_refs()):
            report.unreferenced = store.meta.unreferenced_tips(m.commits)
            report.problems.extend(f"version {c} is reached by no ref (was it on the damaged ref? "
                                   f"`ds branch NAME {c[:12]}` keeps it)" for c in report.unreferenced)
        index = store.chunks.index
        try:
            indexed = dict(index)
        except (FormatError, OSError) as e:
            report.problems.append(f"index: {e}; run `ds fsck --repair`")
            indexed = {}
        remote_indexes = [ChunkIndex(p, store.algo) for p in sorted(store.path.glob("remotes/*/index"))]
        lost: set[bytes] = set()
        for cid, path in m.chunks.items():
            loc = indexed.get(cid)
            if loc is None and any(ri.lookup(cid) for ri in remote_indexes):
                report.remote_only += 1  # a partial clone: the bytes are on a remote
            elif loc is None:
                lost.add(cid)
                report.problems.append(f"chunk {cid.hex()} of {path} is not in the index")
            elif loc.pack not in pack_tocs and _pack_file(store, loc.pack).is_file():
                report.problems.append(f"chunk {cid.hex()} of {path} is in damaged pack {loc.pack}; "
                                       "run `ds fsck --repair` to salvage what still verifies")
            elif loc.pack not in pack_tocs:
                lost.add(cid)
                report.problems.append(f"chunk {cid.hex()} of {path} is in missing pack {loc.pack}")
        if repair:  # after a repair, what is still missing is lost: say exactly what it takes
            report.unrecoverable = losses(store.meta, m.commits, lost)
            report.problems.extend(
                f"unrecoverable: chunk {loss.chunk} of {', '.join(loss.paths) or 'a draft or the stage'}"
                f" (versions {', '.join(v[:12] for v in loss.versions) or 'none'})"
                for loss in report.unrecoverable)
        for entries in pack_tocs.values():
            # a pack written by a command killed before it indexed the pack: garbage that
            # no version names (gc removes it; --repair indexes it), not damage
            if any(e.chunk_id not in indexed for e in entries):
                report.unindexed_packs += 1
        if read_data:
            paths = {p: store.chunks.packs_dir / p[:2] / f"{p}.pack" for p in pack_tocs}
            announce(progress, len(paths), sum(f.stat().st_size for f in paths.values()))
            done_bytes = 0
            for n, (p, entries) in enumerate(pack_tocs.items(), 1):
                report.bytes_verified += _verify_pack(store, p, entries, report.problems)
                done_bytes += paths[p].stat().st_size
                if progress is not None:
                    progress(n, done_bytes)
    return report


def _read_tocs(store: Store) -> tuple[dict[str, list[PackEntry]], list[Path], list[str]]:
    """(pack -> its table of contents, damaged packs, a problem line for each)."""
    tocs: dict[str, list[PackEntry]] = {}
    damaged: list[Path] = []
    problems: list[str] = []
    for path in all_packs(store):
        try:
            _algo, tocs[path.stem] = read_pack_toc(path)
        except (FormatError, OSError) as e:
            damaged.append(path)
            problems.append(f"pack {path.name}: {e}")
    return tocs, damaged, problems


def _pack_file(store: Store, pack_hex: str) -> Path:
    return store.chunks.packs_dir / pack_hex[:2] / f"{pack_hex}.pack"


def _verify_pack(store: Store, pack_hex: str, entries: list[PackEntry], problems: list[str]) -> int:
    path = store.chunks.packs_dir / pack_hex[:2] / f"{pack_hex}.pack"
    h = store.algo.new()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    if h.digest().hex() != pack_hex:
        problems.append(f"pack {pack_hex}: content does not match its name (damaged)")
    total = 0
    with open(path, "rb") as f:
        for e in entries:
            f.seek(e.offset)
            try:
                loc = Location(pack_hex, e.offset, e.stored_len, e.raw_len, e.flags)
                store.chunks.decode(e.chunk_id, loc, f.read(e.stored_len))
            except DsError as err:
                problems.append(str(err))
            total += e.raw_len
    return total


@dataclass
class GcReport:
    packs_deleted: int = 0
    packs_rewritten: int = 0
    bytes_freed: int = 0
    chunks_dropped: int = 0
    temp_files_removed: int = 0
    meta_objects_packed: int = 0
    reflog_entries_expired: int = 0
    dry_run: bool = False

    def as_json(self) -> dict:
        return dict(self.__dict__)


def gc(store: Store, dry_run: bool = False, grace_seconds: float = 0,
       progress: Progress | None = None, reflog_grace: float | None = REFLOG_GRACE,
       now: float | None = None) -> GcReport:
    """Drop chunks no version needs; ``progress(packs, bytes)`` follows the packs examined.

    A version a reflog reached within ``reflog_grace`` seconds is still needed (work left on
    a detached HEAD, a branch moved away); None keeps only what refs reach.

    Metadata is repacked too: every git object into one pack with deltas (nothing is
    pruned there: it is small, and a dataset draft or a stage may still name it). Dataset
    files (artifacts, report images) that no record names any more are let go first; a dry
    run does not count those.
    """
    report = GcReport(dry_run=dry_run)
    now = time.time() if now is None else now
    with store.locked():
        if not dry_run:  # dataset files (artifacts, report images) no record names any more
            from .dataset_attachments import prune

            prune(store)
        m = mark(store, reflog_since=None if reflog_grace is None else now - reflog_grace)
        if m.problems:
            raise DsError(f"gc refused: the store has problems ({m.problems[0]}); run `ds fsck`")
        live = m.chunks
        new_locs: list[tuple[bytes, Location]] = []
        doomed: list[Path] = []
        packs = all_packs(store)
        announce(progress, len(packs), sum(p.stat().st_size for p in packs))
        seen_bytes = 0
        for n, path in enumerate(packs, 1):
            if progress is not None:
                progress(n - 1, seen_bytes)
            seen_bytes += path.stat().st_size
            _algo, entries = read_pack_toc(path)
            size = path.stat().st_size
            young = now - path.stat().st_mtime < grace_seconds
            def owned(e: PackEntry, pack: str = path.stem, index=store.chunks.index) -> bool:
                # a chunk stored twice (a killed writer's unindexed pack, then a rerun) is
                # live only where the index points: the other copy is garbage
                loc = index.lookup(e.chunk_id)
                return loc is None or loc.pack == pack

            live_entries = [e for e in entries if e.chunk_id in live and owned(e)]
            live_bytes = sum(e.stored_len for e in live_entries)
            total = sum(e.stored_len for e in entries) or 1
            if young or live_bytes / total >= REWRITE_BELOW:
                new_locs.extend((e.chunk_id, Location(path.stem, e.offset, e.stored_len, e.raw_len,
                                                      e.flags)) for e in entries if owned(e))
                continue
            report.chunks_dropped += len(entries) - len(live_entries)
            if live_entries:
                report.packs_rewritten += 1
                if not dry_run:
                    new_locs.extend(_rewrite(store, path, live_entries))
            else:
                report.packs_deleted += 1
            report.bytes_freed += size - (live_bytes if live_entries else 0)
            doomed.append(path)
        for tmp in store.chunks.packs_dir.glob(".tmp-*"):
            if now - tmp.stat().st_mtime >= grace_seconds:
                report.temp_files_removed += 1
                if not dry_run:
                    tmp.unlink(missing_ok=True)
        if progress is not None:
            progress(len(packs), seen_bytes)
        if not dry_run:
            report.meta_objects_packed = store.meta.repack()
            # before any pack goes: a crash after this leaves data unprotected, never named and gone
            report.reflog_entries_expired = store.meta.expire_reflogs(
                now - reflog_grace if reflog_grace is not None else float("inf"))
        if dry_run or not doomed:
            return report
        store.chunks.index.replace_all(new_locs)  # durable before any pack goes
        store.chunks.close()
        for path in doomed:
            path.unlink(missing_ok=True)
    return report


def _rewrite(store: Store, path: Path, entries: list[PackEntry]) -> list[tuple[bytes, Location]]:
    writer = PackWriter(store.chunks.packs_dir, store.algo)
    try:
        with open(path, "rb") as f:
            for e in entries:
                f.seek(e.offset)
                stored = f.read(e.stored_len)
                loc = Location(path.stem, e.offset, e.stored_len, e.raw_len, e.flags)
                store.chunks.decode(e.chunk_id, loc, stored)  # never copy damage
                writer.add(e.chunk_id, stored, e.raw_len, e.flags)
        pack_hex, new = writer.finish()
    except BaseException:
        writer.abort()
        raise
    return [(e.chunk_id, Location(pack_hex, e.offset, e.stored_len, e.raw_len, e.flags)) for e in new]
