"""``ds gc --remote``: delete from a remote what none of its branches, tags and dataset
records needs any more.

Why it is safe with pushes running (see docs/architecture.md, "Remote gc"):

- **Lock.** It runs under the remote's exclusive lock; every push and upload holds a
  shared one from reading the remote's refs and index until its refs have moved. A push
  trusts the remote's index (it does not send a chunk the index lists), so this closes
  the one dangerous window: gc cannot decide a chunk is dead while a push has found it
  there and is about to name it. Leases expire when not refreshed, and a holder that
  cannot prove its lease is fresh stops before its next irreversible step.
- **Grace.** Only files older than the grace period (default one day, measured in the
  storage's clock) are deleted or rewritten: packs of a push that was interrupted (its
  next run reuses them instead of sending them again) or of a writer that does not lock
  (an older objstore) survive. A day is far longer than any one push takes.
- **Order.** New packs first, then a new metadata pack, then one new index fragment;
  only then the old fragments, then old metadata packs (each ``.idx`` before its
  ``.pack``), then dead packs. A gc killed at any point leaves every live chunk indexed
  in an existing pack, and the remote's own index never names a deleted pack. Readers
  take no lock: one holding an older cached index that names a pack gc removed gets
  "not found", syncs its index and reads the chunk where it now is.

Packs whose live share is below ``REPACK_BELOW`` are rewritten with only their live
chunks (read back and verified first); fuller ones are kept whole, dead chunks and all:
rewriting them would move mostly live bytes to free little.
"""

from __future__ import annotations

import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from .errors import DsError, FormatError
from .index import Location
from .maintenance import GcReport, mark_versions
from .meta import pack_index_oids
from .record_sync import attachment_chunks
from .remote import Remote
from .remote_fs import RemoteLock
from .remote_repo import git_pack_ok, roll_packs
from .store import Store

DEFAULT_GRACE = 24 * 3600.0
REPACK_BELOW = 0.5  # rewrite an old pack when less than this share of its bytes is live
MAX_FRAGMENTS = 8  # more index fragments than this are merged into one
MAX_META_PACKS = 8  # more old metadata packs than this are merged into one


@dataclass
class RemoteGcReport(GcReport):
    """The local gc's counts, and what only a remote has (leases, metadata packs, grace)."""

    grace_seconds: float = DEFAULT_GRACE
    versions: int = 0
    packs_written: int = 0
    young_packs_kept: int = 0  # packs holding unreferenced chunks, kept for the grace period
    fragments_replaced: int = 0
    meta_packs_deleted: int = 0
    meta_packs_written: int = 0
    stale_locks_removed: int = 0
    requests: int = 0


def gc_remote(store: Store, name_or_url: str | None = None, grace_seconds: float = DEFAULT_GRACE,
              dry_run: bool = False) -> RemoteGcReport:
    """Mark what the remote's refs and records need, then delete or repack the rest that is
    older than ``grace_seconds``. ``dry_run`` only reports (and takes no lock)."""
    if grace_seconds < 0:
        raise DsError("the grace period cannot be negative")
    remote = Remote(store, name_or_url)
    report = RemoteGcReport(dry_run=dry_run, grace_seconds=grace_seconds)
    with remote.fs.operation("gc"):
        remote.check_config(create=False)
        if dry_run:
            _Collector(remote, report, time.time(), None).run()
        else:
            with remote.lock("gc", exclusive=True) as lock:
                _Collector(remote, report, lock.server_now, lock).run()
    report.requests = remote.fs.request_count
    return report


class _Collector:
    def __init__(self, remote: Remote, report: RemoteGcReport, now: float, lock: RemoteLock | None):
        self.remote, self.fs, self.store = remote, remote.fs, remote.store
        self.report = report
        self.now = now
        self.lock = lock
        self.grace = report.grace_seconds

    def old(self, mtime: float) -> bool:
        return self.now - mtime >= self.grace

    def check(self) -> None:
        if self.lock is not None:
            self.lock.check()

    def run(self) -> None:
        live_chunks, live_objects = self.mark()
        listing = self.fs.list_detail("")  # after marking: anything newer is young anyway
        index = self.remote.index()
        fragments = sorted(f.path.name for f in index.fragments)
        packs = {rel.rsplit("/", 1)[-1][:-5]: info for rel, info in listing.items()
                 if rel.startswith("packs/") and rel.endswith(".pack") and "/.tmp-" not in rel}
        by_pack: dict[str, dict[bytes, Location]] = defaultdict(dict)
        for frag in index.fragments:
            for cid, loc in frag:
                if loc.pack in packs:
                    by_pack[loc.pack].setdefault(cid, loc)
        keep, rewrite, drop, moved = self.plan_packs(packs, by_pack, live_chunks)
        meta_drop, meta_objects = self.plan_meta(listing, live_objects)
        r = self.report
        r.packs_deleted, r.packs_rewritten = len(drop), len(rewrite)
        before = {cid for entries in by_pack.values() for cid in entries}
        rows = [(cid, loc) for p in keep for cid, loc in by_pack[p].items()]
        r.bytes_freed = sum(packs[p][0] for p in (*drop, *rewrite))
        new_fragment = bool(drop or rewrite) or len(fragments) > MAX_FRAGMENTS
        if self.lock is None:  # dry run: estimate the rewritten packs by the bytes they keep
            r.bytes_freed -= sum(loc.stored_len for _c, loc in moved)
            r.chunks_dropped = len(before - {cid for cid, _l in rows} - {cid for cid, _l in moved})
            r.meta_packs_deleted = len(meta_drop)
            r.fragments_replaced = len(fragments) if new_fragment else 0
            self.sweep_small(listing)
            return
        # 1. new packs, 2. new metadata pack: nothing names them yet
        with tempfile.TemporaryDirectory(dir=self.remote.cache) as tmp:
            new_rows, sizes = self.repack(moved, Path(tmp))
        r.bytes_freed -= sum(sizes)
        rows += new_rows
        if meta_drop and (written := self.write_meta_pack(meta_objects)):
            # the same objects make the same pack, perhaps one an interrupted gc left half sent
            meta_drop = [s for s in meta_drop if s != written]
            listing = {rel: info for rel, info in listing.items() if not rel.startswith(f"meta/{written}.")}
        r.chunks_dropped = len(before - {cid for cid, _l in rows})
        # 3. one fragment for everything that stays, 4. the old fragments go
        if new_fragment:
            self.check()
            name = self.remote.put_fragment(rows, fragments)
            self.check()
            old = [f"index/{n}" for n in fragments if n != name]
            self.fs.delete(old)
            r.fragments_replaced = len(old)
        # 5. old metadata packs, each .idx before its .pack (a reader takes a pack by its .idx)
        if meta_drop:
            self.check()
            self.fs.delete([f"meta/{s}.idx" for s in meta_drop])
            self.fs.delete([f"meta/{s}.pack" for s in meta_drop])
            r.meta_packs_deleted = len(meta_drop)
        # 6. packs nothing indexes any more (never one the new fragment names: a rewrite can
        # reproduce, byte for byte, a pack an interrupted gc wrote)
        named = {loc.pack for _cid, loc in rows}
        doomed = [p for p in (*drop, *rewrite) if p not in named]
        if doomed:
            self.check()
            self.fs.delete([f"packs/{p[:2]}/{p}.pack" for p in doomed])
        self.sweep_small(listing)

    # -- mark --------------------------------------------------------------------------
    def mark(self) -> tuple[dict[bytes, str], set[str]]:
        """Chunks and git objects that some ref or dataset record on the remote needs."""
        remote = self.remote
        refs = remote.read_refs()
        if remote.bad_refs:  # what it would keep is unknown: refuse rather than guess
            rel, why = sorted(remote.bad_refs.items())[0]
            raise DsError(f"gc refused: {remote.label}: {rel} is not a valid ref ({why}); nothing "
                          "was deleted. Delete or fix that ref on the remote, then run gc again")
        remote.fetch_meta()
        records = remote.dataset_records()
        if remote.bad_records:
            rel, why = sorted(remote.bad_records.items())[0]
            raise DsError(f"gc refused: {remote.label}: dataset record {rel} is invalid ({why}); "
                          "nothing was deleted. Fix or delete that record on the remote, then run gc again")
        commits, trees, problems = remote.named_versions(refs, records)
        trees = [str(t) for t in trees]
        if problems:
            raise DsError(f"gc refused: remote {remote.url}: {problems[0]}; nothing was deleted. Run "
                          "`ds fsck --remote` to list every such problem, then fix or delete them there")
        m = mark_versions(self.store.meta, commits, trees)
        if m.problems:
            raise DsError(f"gc refused: remote {remote.url}: {m.problems[0]}; run `ds fsck --remote`")
        for record in records:  # files kept beside a version (artifacts, report images)
            try:
                chunks = attachment_chunks(self.store, record, strict=True)
            except FormatError as e:
                raise DsError(f"gc refused: {remote.label}: dataset record {record['id']}: {e}; nothing was "
                              "deleted. Fix or delete that record on the remote, then run gc again") from None
            for cid in chunks:
                m.chunks.setdefault(cid, f"dataset {record['id']} attachment")
        objects: set[str] = set()
        self.store.meta.reachable([*commits, *trees], objects)
        self.report.versions = len(m.commits)
        return m.chunks, objects

    # -- chunk packs -------------------------------------------------------------------
    def plan_packs(self, packs: dict[str, tuple[int, float]], by_pack: dict[str, dict[bytes, Location]],
                   live: dict[bytes, str]):
        """(keep, rewrite, drop, chunks to move) over the remote's packs."""
        young = {p for p, (_s, mtime) in packs.items() if not self.old(mtime)}
        live_share = {p: sum(loc.stored_len for cid, loc in entries.items() if cid in live)
                      / max(1, sum(loc.stored_len for loc in entries.values()))
                      for p, entries in by_pack.items()}
        # each live chunk stays in one pack: a young one (kept anyway), else the one with the
        # largest live share (a pack an interrupted gc already rewrote, rather than its source)
        owner: dict[bytes, str] = {}
        for p in sorted(by_pack, key=lambda p: (p not in young, -live_share[p], p)):
            for cid in by_pack[p]:
                if cid in live:
                    owner.setdefault(cid, p)
        lost = [cid for cid in live if cid not in owner]
        if lost:
            raise DsError(f"gc refused: remote {self.remote.url}: chunk {lost[0].hex()} of {live[lost[0]]} "
                          "is not there; nothing was deleted. Run `ds fsck --remote`")
        owned: dict[str, int] = defaultdict(int)
        for cid, p in owner.items():
            owned[p] += by_pack[p][cid].stored_len
        keep, rewrite, drop = [], [], []
        for p in sorted(packs):
            stored = sum(loc.stored_len for loc in by_pack.get(p, {}).values())
            if p in young:
                keep.append(p)
                if not stored or any(cid not in live for cid in by_pack[p]):
                    self.report.young_packs_kept += 1
            elif owned[p] == 0:
                drop.append(p)
            elif owned[p] < stored * REPACK_BELOW:
                rewrite.append(p)
            else:
                keep.append(p)
        moved = sorted(((cid, by_pack[p][cid]) for p in rewrite for cid in by_pack[p] if owner.get(cid) == p),
                       key=lambda it: (it[1].pack, it[1].offset))  # the same pack whenever repeated
        return keep, rewrite, drop, moved

    def repack(self, moved: list[tuple[bytes, Location]], tmp: Path) -> tuple[list, list[int]]:
        """Copy these chunks (read back, verified) into new packs and upload them."""
        if not moved:
            return [], []
        try:
            files, rows = roll_packs(tmp, self.store.algo, self.store.config.pack_target,
                                     ((cid, stored, loc.raw_len, loc.flags)
                                      for cid, loc, stored in self.remote.read_chunks(moved)))
        except FileNotFoundError as e:
            raise FormatError(f"gc refused: remote {self.remote.url}: a pack vanished while being "
                              f"rewritten ({e}); is another gc running without a lock?") from None
        for f in files:
            self.check()
            rel = f"packs/{f.stem[:2]}/{f.name}"
            if self.fs.size(rel) != f.stat().st_size:
                self.fs.put(rel, f)
        self.report.packs_written = len(files)
        return rows, [f.stat().st_size for f in files]

    # -- metadata packs ----------------------------------------------------------------
    def plan_meta(self, listing: dict[str, tuple[int, float]],
                  live: set[str]) -> tuple[list[str], set[str]]:
        """(old metadata packs to replace, the live objects of theirs to carry over)."""
        stems: dict[str, dict[str, tuple[int, float]]] = defaultdict(dict)
        for rel, info in listing.items():
            name = rel.rsplit("/", 1)[-1]
            if rel.startswith("meta/") and name.startswith("pack-"):
                stem, _dot, suffix = name.rpartition(".")
                stems[stem][suffix] = info
        old = sorted(s for s, files in stems.items() if {"pack", "idx"} <= files.keys()
                     and self.old(files["pack"][1]))
        if not old:
            return [], set()
        contents = {s: self._meta_objects(s) for s in old}
        drop = [s for s in old if any(o not in live for o in contents[s])]
        if len(old) > MAX_META_PACKS:
            drop = old
        if not drop:
            return [], set()
        kept: set[str] = set()
        for s in set(stems) - set(drop):
            if s in contents:
                kept.update(contents[s])
        carry = {o for s in drop for o in contents[s] if o in live and o not in kept}
        return drop, carry

    def _meta_objects(self, stem: str) -> list[str]:
        """The objects one remote metadata pack holds, from its .idx (read once, cached)."""
        local = self.store.meta.path / "objects" / "pack" / f"{stem}.idx"
        if local.exists():
            return pack_index_oids(local)
        cached = self.remote.cache / "meta-idx" / f"{stem}.idx"
        if not cached.exists():
            cached.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(f"meta/{stem}.idx", cached, check=lambda p: git_pack_ok(p, f"{stem}.idx"))
        return pack_index_oids(cached)

    def write_meta_pack(self, objects: set[str]) -> str | None:
        """Upload one git pack of these objects (.idx last); returns its name without suffix."""
        names = self.remote.put_meta_pack(objects, self.check)
        if not names:
            return None
        self.report.meta_packs_written = 1
        return names[0].rsplit(".", 1)[0]

    # -- leftovers -----------------------------------------------------------------------
    def sweep_small(self, listing: dict[str, tuple[int, float]]) -> None:
        """Temp files of interrupted writes, metadata packs whose .idx never came, stale locks."""
        doomed, stale = [], []
        names = set(listing)
        for rel, (_size, mtime) in listing.items():
            name = rel.rsplit("/", 1)[-1]
            if name.startswith(".tmp-") and self.old(mtime) and self.now - mtime > RemoteLock.STALE:
                # (never one a writer may still be renaming: a waiting push writes its lock)
                doomed.append(rel)
            elif (rel.startswith("meta/") and name.startswith("pack-") and name.endswith(".pack")
                    and rel[:-5] + ".idx" not in names and self.old(mtime)):
                doomed.append(rel)
            elif self.now - mtime > RemoteLock.STALE and rel.startswith("locks/") and name.endswith(".json"):
                # (a ref's *.lock on a folder remote is an flock'd file kept for good: never swept,
                # or a writer holding it could lose it to the next one)
                stale.append(rel)
        self.report.temp_files_removed = len(doomed)
        self.report.stale_locks_removed = len(stale)
        if self.lock is not None and (doomed or stale):
            self.check()
            self.fs.delete(doomed + stale)
