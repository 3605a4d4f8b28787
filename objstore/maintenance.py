"""``ds fsck`` (verify everything, optionally repair the index) and ``ds gc``, written once
over a ``repository.Repository``: the store's own, or a remote's (``remote_gc.py``).

Both start from the same mark phase: every version that a name keeps (here refs, HEAD,
the stage, drafts, recent reflogs), every tree under them (validated as it is read),
every chunk they name. gc then plans (``plan``) and sweeps (``sweep``): a pack with no
live chunk is deleted; a mostly dead one is rewritten with its live chunks (verified
while copied); one new index fragment names what stays before any old fragment or pack
is deleted. Locally it all runs under the store's writer lock, so no local writer can be
between writing chunks and naming them; remote stores add leases and a grace period
(see docs/architecture.md).
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field, replace

from .errors import DsError, FormatError
from .index import MAX_FRAGMENTS, ChunkIndex, Location
from .manifest import EXTERNAL, FileEntry
from .meta import MetaStore
from .packs import pack_path
from .progress import Progress, announce
from .records import RecordStore
from .repair import Loss, Salvage, losses, rebuild_index, restore_refs
from .repository import Listing, LocalRepository, Repository, Rows
from .store import Store

REWRITE_BELOW = 0.8  # rewrite a pack when less than this share of its bytes is live
TEMP_GRACE = 24 * 3600.0  # what an interrupted write left in the metadata is this old first
REFLOG_GRACE = 14 * 24 * 3600  # gc keeps what a reflog reached this recently (git: gc.reflogExpire)


@dataclass
class Marked:
    commits: set[str] = field(default_factory=set)
    trees: set[str] = field(default_factory=set)
    chunks: dict[bytes, str] = field(default_factory=dict)  # id -> a path that uses it
    problems: list[str] = field(default_factory=list)
    unreadable: set[str] = field(default_factory=set)  # objects (versions, folders) missing or damaged
    malformed: dict[str, str] = field(default_factory=dict)  # version -> why a folder of it is unsafe
    bad_trees: dict[str, str] = field(default_factory=dict)  # folder -> why (no remote can mend it)
    lengths: dict[bytes, int] = field(default_factory=dict)  # chunk -> the length a file entry gives it
    odd_lengths: set[bytes] = field(default_factory=set)  # chunks file entries give different lengths
    wrong_sizes: set[str] = field(default_factory=set)  # versions ``check_sizes`` found (in malformed too)


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
        _mark_tree(meta, tree, "", m)
    _mark_bases(store, m)
    return m


def _mark_bases(store: Store, m: Marked) -> None:
    """Mark the base of every delta the index names, live or not: a delta cannot be read
    without its base, and one gc keeps may be named again (the same bytes added once
    more reuse it). A dead delta's base is freed by the gc after the one that drops it."""
    chunks = store.chunks
    try:
        deltas = list(chunks.index.deltas())
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
    stack = list(commits)[::-1]
    while stack:  # each version read once: one that cannot be read is one problem, however reached
        cid = stack.pop()
        if cid in m.commits or cid in m.unreadable:
            continue
        try:
            info = meta.commit_info(cid)
        except (DsError, KeyError, ValueError) as e:
            m.unreadable.add(cid)
            m.problems.append(f"version {cid} cannot be read ({getattr(e, 'why', e)}): the versions "
                              "before it are not checked, and gc is refused until it is restored "
                              "(`ds fsck --repair` brings it back from a remote that has it; else a "
                              "backup of .dsstore/meta)")
            continue
        m.commits.add(cid)
        _mark_tree(meta, info.tree, "", m, cid)
        stack.extend(reversed(info.parents))
    for tree in trees:
        _mark_tree(meta, str(tree), "", m)
    return m


def _mark_tree(meta: MetaStore, oid: str, where: str, m: Marked, version: str | None = None) -> None:
    if oid in m.trees or oid in m.unreadable:
        return
    if oid in m.bad_trees:  # unsafe, as already said: this version holds it too
        if version is not None:
            m.malformed.setdefault(version, m.bad_trees[oid])
        return
    try:
        folder = meta.read_folder(oid, where)
    except (DsError, KeyError) as e:
        if getattr(e, "oid", None):  # missing or damaged here: a remote may have it
            m.unreadable.add(e.oid)
            m.problems.append(str(e).removesuffix("; run `ds fsck`")
                              + "; `ds fsck --repair` brings it back from a remote that has it")
        else:  # well-formed objects that say something unsafe ('..'): written so, by someone
            m.bad_trees[oid] = str(e)
            if version is not None:
                m.malformed[version] = str(e)
            m.problems.append(f"version {version}: {e}" if version else str(e))
        return
    m.trees.add(oid)
    for name, e in folder.files.items():
        for cid, clen in e.chunk_list():
            m.chunks.setdefault(cid, f"{where}/{name}".lstrip("/"))
            if m.lengths.setdefault(cid, clen) != clen:
                m.odd_lengths.add(cid)
    for name, sub in folder.dirs.items():
        _mark_tree(meta, sub, f"{where}/{name}".lstrip("/"), m, version)


def check_sizes(meta: MetaStore, m: Marked, indexed: Callable[[bytes], int | None]) -> dict[str, str]:
    """Versions listing a file whose chunk lengths are not its chunks' (a checkout then writes
    other than its size, a ranged read the wrong bytes): their metadata is wrong and no chunk
    mends it. Each is added to ``m.malformed`` and ``m.wrong_sizes``, and one problem per
    wrong file to ``m.problems``; returns version -> why.

    ``indexed(chunk)`` is a chunk's length (from the index: no data is read; None when
    unknown), asked once per marked chunk. The versions are walked again only when a
    length differs."""
    truth: dict[bytes, int] = {}
    for cid, clen in m.lengths.items():
        n = indexed(cid)
        if n is not None and (n != clen or cid in m.odd_lengths):
            truth[cid] = n
    if not truth:
        return {}
    suspects = set(truth)
    memo: dict[str, tuple[str, str] | None] = {}  # folder -> its first wrong file (path, why)

    def wrong(oid: str, where: str) -> tuple[str, str] | None:
        if oid not in memo:
            memo[oid] = None
            try:
                folder = meta.read_folder(oid, where)
            except (DsError, KeyError):
                return None  # reported by the marking
            for name in sorted(folder.files):
                why = _wrong_entry(folder.files[name], suspects, truth)
                if why is not None:
                    memo[oid] = (name, why)
                    break
            else:
                for name in sorted(folder.dirs):
                    found = wrong(folder.dirs[name], f"{where}/{name}".lstrip("/"))
                    if found is not None:
                        memo[oid] = (f"{name}/{found[0]}", found[1])
                        break
        return memo[oid]

    by_problem: dict[tuple[str, str], list[str]] = {}
    parents: dict[str, tuple[str, ...]] = {}
    for cid in sorted(m.commits):
        try:
            info = meta.commit_info(cid)
            found = wrong(info.tree, "")
        except (DsError, KeyError, ValueError):
            continue
        if found is not None:
            by_problem.setdefault(found, []).append(cid)
            parents[cid] = info.parents
    bad: dict[str, str] = {}  # only the first versions holding a wrong file: what reaches them
    for (path, why), versions in sorted(by_problem.items()):  # reaches the later ones too
        firsts = [v for v in versions if not any(p in parents for p in parents[v])] or versions
        more = f" (and {len(versions) - 1} more version(s) holding that file)" if len(versions) > 1 else ""
        m.problems.append(f"version {firsts[0]}: {path} {why}{more}: its metadata is wrong and no chunk "
                          "can mend it")
        bad.update(dict.fromkeys(firsts, f"{path} {why}"))
    for v, why in bad.items():
        m.malformed.setdefault(v, why)
    m.wrong_sizes |= bad.keys()
    return bad


def _wrong_entry(e: FileEntry, suspects: set[bytes], truth: dict[bytes, int]) -> str | None:
    """Why this file entry's chunk lengths are not its chunks' (None if they are, as far as known)."""
    chunks = e.chunk_list()
    if not any(cid in suspects for cid, _clen in chunks):
        return None
    wrong = [(cid, clen) for cid, clen in chunks if cid in truth and truth[cid] != clen]
    if not wrong:
        return None
    if all(cid in truth for cid, _clen in chunks) and e.kind != EXTERNAL:
        held = sum(truth[cid] for cid, _clen in chunks)
        if held != e.size:
            hold = "its chunks hold" if len(chunks) > 1 else "its chunk holds"
            return f"is listed as {e.size} bytes, but {hold} {held}"
    cid, clen = wrong[0]
    return f"lists chunk {cid.hex()[:12]} as {clen} bytes, but it holds {truth[cid]}"


@dataclass
class FsckReport:
    commits: int = 0
    trees: int = 0
    chunks: int = 0
    packs: int = 0
    bytes_verified: int = 0
    remote_only: int = 0  # chunks of a partial clone, present on a remote's index only
    unindexed_packs: int = 0  # left by an interrupted writer; reclaimed by gc
    meta_packs_reindexed: list[str] = field(default_factory=list)  # their lost .idx rebuilt, with --repair
    meta_mended: list[str] = field(default_factory=list)  # HEAD, refs/: written again, with --repair
    problems: list[str] = field(default_factory=list)
    repaired: bool = False
    refs_restored: list[str] = field(default_factory=list)  # "NAME -> ID", with --repair
    salvage: Salvage | None = None  # what the index rebuild kept, with --repair
    unrecoverable: list[Loss] = field(default_factory=list)  # chunks no pack holds, and their users
    unreferenced: list[str] = field(default_factory=list)  # versions no ref reaches, when a ref is lost
    objects_restored: list[str] = field(default_factory=list)  # from a remote, with --repair
    refs_dropped: list[str] = field(default_factory=list)  # reaching unsafe versions, with --repair

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict:
        keys = ("commits", "trees", "chunks", "packs", "bytes_verified", "remote_only", "unindexed_packs",
                "problems", "repaired", "refs_restored", "unreferenced", "objects_restored", "refs_dropped",
                "meta_packs_reindexed", "meta_mended")
        return {k: getattr(self, k) for k in keys} | {
            "ok": self.ok,
            "salvage": None if self.salvage is None else dict(self.salvage.__dict__),
            "unrecoverable": [loss.as_json() for loss in self.unrecoverable],
        }


def fsck(store: Store, read_data: bool = False, repair: bool = False,
         progress: Progress | None = None, now: float | None = None,
         restore: Callable[[set[str]], set[str]] | None = None) -> FsckReport:
    """Check refs, versions, folders, index and packs; ``read_data`` reads every byte too.

    What is checked is what gc keeps: refs, HEAD, the stage, drafts, and versions a reflog
    reached within ``REFLOG_GRACE``. ``repair`` first restores damaged refs from their
    reflogs, then rebuilds the index (``repair.py``: nothing readable is ever dropped; with
    ``read_data`` every record is read back first, as a bit flipped inside one is found only
    so, and a pack it finds sound is not read twice), and
    with ``restore`` (ids -> those brought back, from a remote) asks for the metadata
    objects that are missing or damaged here.
    ``progress(packs, bytes)`` follows the packs read back (the long part).
    """
    from .chunk_check import ChunkCheck, IndexRows, check_chunks  # which builds on this module

    report = FsckReport()
    now = time.time() if now is None else now
    read_back: dict[str, int] = {}  # packs the repair read whole and found sound -> raw bytes verified
    # a damaged record under an intact table of contents: what reads it fails until a repair
    mend = "" if repair else "; `ds fsck --read-data --repair` copies what verifies to a new pack"
    with store.locked():
        repo = LocalRepository(store)
        wrong_hash = store.chunks.hash_mismatch()
        if wrong_hash is not None:  # every pack would look damaged, and a repair put them all aside
            raise FormatError(wrong_hash)
        if repair:  # libgit2 opens no database without HEAD and refs/: they come first
            from .git_layout import mend_skeleton

            report.meta_mended = mend_skeleton(store.path / "meta")
        if repair:  # then the metadata a lost .idx hid: the refs and versions below may be in it
            report.meta_packs_reindexed, unindexable = store.meta.reindex_lone_packs()
            report.problems += [f"metadata pack {why}" for why in unindexable]
            if restore is not None:  # a ref's own version, if a remote has it, before any ref moves back
                tips = {d.points_at for d in store.meta.damaged_refs() if d.points_at}
                report.objects_restored = sorted(restore(tips)) if tips else []
            report.refs_restored = [f"{d.name} -> {d.last_good}" for d in restore_refs(store.meta)]
            if "HEAD" in report.meta_mended:  # once the branches are back: onto the one it was on
                store.meta.reattach_head()
            report.salvage = rebuild_index(repo, *repo.tocs(), read=read_back if read_data else None,
                                           progress=progress)
            report.repaired = True
        tocs, damaged = repo.tocs()
        report.problems.extend(f"pack {p}.pack: {e}" for p, e in damaged.items())
        report.packs = len(tocs)
        try:
            indexed = repo.index().as_dict()
            index_problem = None
        except (FormatError, OSError) as e:
            index_problem = f"index: {e}; run `ds fsck --repair`"
            indexed = {}

        def marked() -> Marked:
            m = mark(store, reflog_since=now - REFLOG_GRACE)
            check_sizes(store.meta, m, lambda cid: loc.raw_len if (loc := indexed.get(cid)) else None)
            return m

        m = marked()
        if repair and m.malformed:  # only a remote's branch and reflog entries: never your branches
            report.refs_dropped = store.meta.forget_versions(set(m.malformed))
            if report.refs_dropped:
                m = marked()
        if repair and restore is not None and m.unreadable:
            more = restore(set(m.unreadable))
            if more:
                report.objects_restored = sorted({*report.objects_restored, *more})
                m = marked()
        report.problems.extend(m.problems)
        if m.unreadable and not repair:  # a lost .idx hides a whole pack of them
            report.problems += [f"metadata pack {p.name} has no index (.idx), so what it holds is unseen; "
                                "`ds fsck --repair` rebuilds the index from the pack"
                                for p in store.meta.lone_packs()]
        if m.malformed:
            report.problems.append(_malformed_hint(store, m.malformed, repair, m.wrong_sizes))
        report.commits, report.trees, report.chunks = len(m.commits), len(m.trees), len(m.chunks)
        if any(d.last_good is None for d in store.meta.damaged_refs()):
            report.unreferenced = store.meta.unreferenced_tips(m.commits)
            report.problems.extend(f"version {c} is reached by no ref (was it on the damaged ref? "
                                   f"`ds branch NAME {c[:12]}` keeps it)" for c in report.unreferenced)
        if index_problem is not None:
            report.problems.append(index_problem)
        remote_indexes = [ChunkIndex(p, store.algo) for p in sorted(store.path.glob("remotes/*/index"))]
        far = {cid for cid in m.chunks if cid not in indexed and any(ri.lookup(cid) for ri in remote_indexes)}
        report.remote_only = len(far)  # a partial clone: the bytes are on a remote
        # the chunk check ``fsck --remote`` runs too (``chunk_check.py``), over the rows this
        # store's readers find; every table of contents is read above, and --read-data reads
        # every record (a pack the repair read whole: not again)
        here = replace(m, chunks={cid: p for cid, p in m.chunks.items() if cid not in far}) if far else m
        c = ChunkCheck(marked=here, tocs={**tocs, **dict.fromkeys(damaged)},
                       toc_errors={p: str(e) for p, e in damaged.items()}, unread={*damaged, *read_back})

        def whole(p: str) -> str | None:  # a pack whose bytes are not its name's, whatever its records say
            if store.chunks.intact(pack_path(store.chunks.packs_dir, p)):
                return None
            return f"pack {p}: content does not match its name (damaged){mend}"

        check_chunks(repo, c, IndexRows(indexed), float(read_data), read_data, many_readers=False,
                     absent="is not in the index", mend=mend, reindex="`ds fsck --repair` indexes it",
                     fix_index="" if repair else "; `ds fsck --repair` builds the index again from the packs",
                     check_pack=whole if read_data else None, progress=progress)
        report.problems += c.problems
        report.bytes_verified = c.bytes_read + sum(read_back.values())
        lost = {cid for cid in c.bad_chunks if cid not in indexed or indexed[cid].pack not in c.packs}
        for cid, path in c.marked.chunks.items() if lost or damaged else ():
            pack = loc.pack if (loc := indexed.get(cid)) else None
            if pack in damaged:
                report.problems.append(f"chunk {cid.hex()} of {path} is in damaged pack {pack}; "
                                       "run `ds fsck --repair` to salvage what still verifies")
            elif pack is not None and cid in lost:
                report.problems.append(f"chunk {cid.hex()} of {path} is in missing pack {pack}")
        if repair:  # after a repair, what is still missing is lost: say exactly what it takes
            report.unrecoverable = losses(store.meta, m.commits, lost)
            report.problems.extend(
                f"unrecoverable: chunk {loss.chunk} of {', '.join(loss.paths) or 'a draft or the stage'}"
                f" (versions {', '.join(v[:12] for v in loss.versions) or 'none'})"
                for loss in report.unrecoverable)
        # a pack written by a command killed before it indexed the pack: garbage that no
        # version names (gc removes it; --repair indexes it), not damage
        report.unindexed_packs = sum(any(cid not in indexed for cid, _loc in rows) for rows in tocs.values())
    return report


def _malformed_hint(store: Store, bad: dict[str, str], repaired: bool, sizes: set[str] = frozenset()) -> str:
    """What reaches the malformed versions (unsafe folders; ``sizes``: wrong file lengths), and
    how to let them go."""
    ids = short_ids(bad)
    what = malformed_kinds(bad, sizes)
    who = store.meta.reaching(set(bad))
    if repaired or not who:
        return (f"versions {ids} {what} and are still reached by "
                f"{', '.join(who) or 'a dataset record, a draft or the stage'}: no remote can mend them; "
                "move your branches and tags off them (`ds switch` to another branch, then `ds branch -f "
                "NAME REV`, or `ds branch -D`); the reflogs keep them until `ds gc "
                "--prune-reflog-older-than now`")
    refused = "" if sizes else " (a fetch now refuses such versions)"
    return (f"versions {ids} {what} (written so, e.g. by a hostile remote) and are reached "
            f"by {', '.join(who)}: `ds fsck --repair` drops a remote's branches and reflog entries that "
            f"reach them{refused}; your own branches it never moves")


def short_ids(versions: Collection[str], most: int = 5) -> str:
    """Version ids as a hint lists them: short, the first ``most``, and how many more."""
    ids = sorted(v[:12] for v in versions)
    return ", ".join(ids[:most]) + (f" and {len(ids) - most} more" if len(ids) > most else "")


def malformed_kinds(bad: Collection[str], sizes: set[str]) -> str:
    """How a hint names what is wrong with versions ``bad``, ``sizes`` of them by ``check_sizes``."""
    n = sum(v in sizes for v in bad)
    if not n:
        return "hold unsafe folders"
    if n == len(bad):
        return "list files at lengths their chunks do not have"
    return "hold unsafe folders or list files at lengths their chunks do not have"


@dataclass
class GcReport:
    packs_deleted: int = 0
    packs_rewritten: int = 0
    bytes_freed: int = 0  # of the packs that go, less the live chunks moved out of them
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
        wrong_hash = store.chunks.hash_mismatch()
        if wrong_hash is not None:  # no chunk would be found needed: every pack would go
            raise DsError(f"gc refused: {wrong_hash}")
        if not dry_run:  # dataset files (artifacts, report images) no record names any more
            from .dataset_attachments import prune

            prune(store)
        m = mark(store, reflog_since=None if reflog_grace is None else now - reflog_grace)
        if m.problems:
            raise DsError(f"gc refused: the store has problems ({m.problems[0]}); run `ds fsck`")
        repo = LocalRepository(store)
        todo = plan(repo, m.chunks, report, now, grace_seconds, REWRITE_BELOW, progress)
        if dry_run:
            return report

        def tidy_meta() -> None:
            report.temp_files_removed += store.meta.drop_temps(now - TEMP_GRACE)
            report.meta_objects_packed = store.meta.repack()
            # before any pack goes: a crash after this leaves data unprotected, never named and gone
            report.reflog_entries_expired = store.meta.expire_reflogs(
                now - reflog_grace if reflog_grace is not None else float("inf"))

        sweep(repo, todo, write_meta=tidy_meta)
    return report


@dataclass
class Plan:
    """What one gc does to a repository's packs (``plan``), for ``sweep`` to carry out."""

    listing: Listing
    fragments: list[str]
    rewrite: list[str] = field(default_factory=list)
    drop: list[str] = field(default_factory=list)
    rows: Rows = field(default_factory=list)  # every chunk of the kept packs
    moved: Rows = field(default_factory=list)  # the live chunks of the rewritten ones
    lost: list[bytes] = field(default_factory=list)  # live chunks no pack holds
    young_garbage: int = 0  # packs kept for the grace period that hold unreferenced chunks
    temps: list[str] = field(default_factory=list)  # files of interrupted writes
    locks: list[str] = field(default_factory=list)  # expired leases
    new_index: bool = False  # packs go, or the index has too many fragments


def plan(repo: Repository, live: dict[bytes, str], report: GcReport, now: float, grace: float,
         below: float, progress: Progress | None = None) -> Plan:
    """Decide what gc does to ``repo``'s packs and count it in ``report`` (a dry run stops here).

    A pack younger than ``grace`` (by the storage's clock) is kept whole. Each live chunk
    stays in one pack: a young one, else the one with the largest live share (a pack an
    interrupted gc already rewrote, rather than its source). A pack that keeps no live
    chunk is dropped; one whose live chunks are under ``below`` of its bytes is rewritten
    with only those; a fuller one is kept whole, dead chunks and all (rewriting it would
    move mostly live bytes to free little). ``progress(packs, bytes)`` as packs are read.
    """
    listing = repo.listing()  # after marking: anything newer is young anyway
    packs = repo.packs(listing)
    names = sorted(packs)
    announce(progress, len(names), sum(size for size, _mtime in packs.values()))
    by_pack: dict[str, dict[bytes, Location]] = {}
    done_bytes = 0
    for n, (p, rows) in enumerate(repo.pack_rows(names), 1):
        by_pack[p] = rows
        done_bytes += packs[p][0]
        if progress is not None:
            progress(n, done_bytes)
    young = {p for p in names if now - packs[p][1] < grace}
    stored = {p: sum(loc.stored_len for loc in rows.values()) for p, rows in by_pack.items()}
    held = {p: {c: loc for c, loc in rows.items() if c in live and repo.home(c) in (None, p)}
            for p, rows in by_pack.items()}  # the live chunks each pack holds for the store
    share = {p: sum(loc.stored_len for loc in held[p].values()) / max(1, stored[p]) for p in names}
    owner: dict[bytes, str] = {}
    for p in sorted(names, key=lambda p: (p not in young, -share[p], p)):
        for cid in held[p]:
            owner.setdefault(cid, p)
    owned: dict[str, int] = defaultdict(int)
    for cid, p in owner.items():
        owned[p] += held[p][cid].stored_len
    todo = Plan(listing, repo.fragments(), lost=[cid for cid in live if cid not in owner])
    keep = []
    for p in names:
        if p in young:
            keep.append(p)
            todo.young_garbage += not stored[p] or any(cid not in live for cid in by_pack[p])
        elif owned[p] == 0:
            todo.drop.append(p)
        elif owned[p] < stored[p] * below:
            todo.rewrite.append(p)
        else:
            keep.append(p)
    todo.new_index = bool(todo.drop or todo.rewrite) or len(todo.fragments) > MAX_FRAGMENTS
    todo.rows = [(cid, loc) for p in keep for cid, loc in by_pack[p].items() if repo.home(cid) in (None, p)]
    todo.moved = sorted(((cid, loc) for p in todo.rewrite for cid, loc in held[p].items() if owner[cid] == p),
                        key=lambda it: (it[1].pack, it[1].offset))
    todo.temps, todo.locks = repo.leftovers(listing, now, grace)
    report.packs_deleted, report.packs_rewritten = len(todo.drop), len(todo.rewrite)
    report.bytes_freed = (sum(packs[p][0] for p in todo.drop + todo.rewrite)
                          - sum(loc.stored_len for _cid, loc in todo.moved))
    report.chunks_dropped = len({cid for rows in by_pack.values() for cid in rows}
                                - {cid for cid, _loc in todo.rows} - {cid for cid, _loc in todo.moved})
    report.temp_files_removed = len(todo.temps)
    return todo


def sweep(repo: Repository, todo: Plan, write_meta: Callable[[], None] | None = None,
          drop_meta: Callable[[], None] | None = None) -> tuple[int, int]:
    """Carry out a plan in the order that keeps every live chunk indexed in an existing
    pack whenever it stops (module doc); returns (packs written, fragments replaced)."""
    rows, written = todo.rows, 0
    if todo.moved:  # 1. new packs: nothing names them yet
        new_rows, written = repo.write_packs((cid, stored, loc.raw_len, loc.flags)
                                             for cid, loc, stored in repo.read_chunks(todo.moved))
        rows = rows + new_rows
    if write_meta is not None:  # 2. the side's metadata (a new metadata pack: nothing names it yet)
        write_meta()
    replaced = repo.replace_index(rows, todo.fragments) if todo.new_index else 0  # 3. 4.
    if drop_meta is not None:  # 5. old metadata
        drop_meta()
    # 6. packs nothing indexes any more (never one the new fragment names: a rewrite can
    # reproduce, byte for byte, a pack an interrupted gc wrote)
    named = {loc.pack for _cid, loc in rows}
    repo.delete([f"packs/{p[:2]}/{p}.pack" for p in todo.drop + todo.rewrite if p not in named])
    repo.delete(todo.temps + todo.locks)  # 7.
    return written, replaced
