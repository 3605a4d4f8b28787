"""``ds fsck --repair``: restore damaged refs from their reflogs and rebuild the chunk
index, salvaging whatever still verifies; then say exactly what is lost.

The one rule: repair never makes a readable chunk unreadable. So the new index is the
union of
  1. old index rows that an intact pack's table of contents confirms (same id, same
     offset): what ``ds get`` reads today, kept as it is;
  2. every entry of every intact table of contents (this also indexes a pack whose
     writer was killed after publishing it);
  3. old index rows into a pack whose table of contents is damaged, or read out of a
     fragment that fails its checksum, kept only when the record they point at still
     decodes to bytes with the chunk's id (a delta only if its base is kept too);
  4. records of a damaged pack found from the pack alone (``_scan``: its table of
     contents located by its own consistency when the footer is damaged, or read row by
     row when its checksum fails), each verified by hash.
What was salvaged from a damaged pack is copied into a new pack (verified again while
copied), the new fragment is made durable, and only then are the damaged pack and any
damaged fragment moved aside to ``.dsstore/damaged/`` (kept for inspection, out of every
reader's way; the user deletes that folder). Sound old fragments are removed: the new
one holds every row of theirs that points at a readable record.

An intact table of contents says where records are, not that they are whole: a flipped
bit inside one record is found only by reading it. So with ``--read-data`` (``read``)
every record of those packs is read back first (``_ReadBack``): a pack whose bytes do not
hash to its name, or holding a record that fails, is *suspect*, and is handled as a
damaged one (what verifies copied out, the pack moved aside); a chunk with no copy that
verifies is left out of the index, so that ``ds get`` fetches it from a remote that has
it, and fsck names it with its files and versions otherwise.

The steps run in an order that a kill between any two leaves no worse and the next run
finishes: new packs (nothing names them yet), then the new fragment, then the old
fragments go, then the damaged packs are moved aside (nothing names them any more).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import packs
from .errors import DsError
from .index import CHECK, FANOUT, HEADER, LOC, MAGIC, Fragment, Location
from .meta import MetaStore, RefDamage
from .packs import (
    FLAG_DELTA,
    MAX_RAW,
    TOC_TAIL,
    PackEntry,
    PackReader,
    decode_chunk,
    delta_base,
    pack_path,
)
from .progress import Progress, announce
from .store import Store

if TYPE_CHECKING:
    from .repository import LocalRepository, Rows


@dataclass
class Salvage:
    """What a rebuild kept and where it came from."""

    rows: int = 0
    verified: int = 0  # rows kept only after their record was read and hash-checked
    dropped: int = 0  # old rows whose record no longer verifies (or whose pack is gone)
    scanned: int = 0  # records found by scanning damaged packs
    damaged_fragments: list[str] = field(default_factory=list)
    moved_aside: list[str] = field(default_factory=list)  # damaged files now under .dsstore/damaged/
    recovered: int = 0  # chunks ChunkStore.recover indexed from packs killed writers left


def restore_refs(meta: MetaStore) -> list[RefDamage]:
    """Each damaged ref the reflog can name a version for, pointed back at it; the others
    are left for the user (fsck lists candidates)."""
    restored = [damage for damage in meta.damaged_refs() if damage.last_good is not None]
    for damage in restored:
        meta.restore_ref(damage)
    return restored


def old_rows(folder: Path, damaged: list[Path]) -> Iterator[tuple[bytes, Location, bool]]:
    """(id, location, trusted) of every row of every fragment; a fragment that fails its
    checks is added to ``damaged`` and read row by row anyway (``trusted`` False: each row
    must be verified)."""
    for path in sorted(folder.glob("*.idx")):
        try:
            frag = Fragment(path)
        except (DsError, OSError, ValueError):
            damaged.append(path)
            yield from ((cid, loc, False) for cid, loc in _rows_of_damaged(path))
            continue
        try:
            yield from ((cid, loc, True) for cid, loc in frag)
        finally:
            frag.close()


def _rows_of_damaged(path: Path) -> Iterator[tuple[bytes, Location]]:
    """Rows of a fragment whose checksum or fanout failed, bounds-checked one by one."""
    try:
        data = path.read_bytes()
    except OSError:
        return
    if len(data) < HEADER.size + FANOUT.size + CHECK or data[:8] != MAGIC:
        return
    _magic, _code, hsize, npacks, count = HEADER.unpack_from(data, 0)
    off = HEADER.size
    if hsize not in (16, 20, 32) or off + npacks * hsize > len(data):
        return
    packs = [data[off + i * hsize : off + (i + 1) * hsize].hex() for i in range(npacks)]
    ids = off + npacks * hsize + FANOUT.size
    locs = ids + count * hsize
    end = len(data) - CHECK
    for i in range(count):
        row = locs + i * LOC.size
        if row + LOC.size > end:
            return
        pack_no, offset, stored, raw, flags = LOC.unpack_from(data, row)
        if pack_no < npacks:
            yield data[ids + i * hsize : ids + (i + 1) * hsize], Location(packs[pack_no], offset, stored,
                                                                          raw, flags)


class _Verifier:
    """Reads a record straight from its pack file and checks it against its id."""

    def __init__(self, store: Store, kept: dict[bytes, Location]):
        self.store, self.kept = store, kept

    def read(self, loc: Location) -> bytes | None:
        path = pack_path(self.store.chunks.packs_dir, loc.pack)
        try:
            with open(path, "rb") as f:
                if loc.offset + loc.stored_len > os.fstat(f.fileno()).st_size:
                    return None
                f.seek(loc.offset)
                return f.read(loc.stored_len)
        except OSError:
            return None

    def ok(self, cid: bytes, loc: Location) -> bytes | None:
        """The record's stored bytes if it decodes to the chunk, else None."""
        stored = self.read(loc)
        if stored is None:
            return None
        algo, base = self.store.algo, None
        try:
            if loc.flags & FLAG_DELTA:
                base_id = delta_base(stored, algo.size)
                base_loc = self.kept.get(base_id)
                base_stored = None if base_loc is None or base_loc.flags & FLAG_DELTA else self.read(base_loc)
                if base_stored is None:
                    return None
                base = decode_chunk(base_stored, base_loc.entry(base_id), algo, f"pack {base_loc.pack}")
            decode_chunk(stored, loc.entry(cid), algo, f"pack {loc.pack}", base)
        except DsError:
            return None
        return stored


def rebuild_index(repo: LocalRepository, tocs: dict[str, Rows], damaged: dict[str, Exception],
                  read: dict[str, int] | None = None, progress: Progress | None = None) -> Salvage:
    """Write a new index from the packs' tables of contents ``tocs`` (and the ``damaged``
    packs) and every old row that still verifies (module doc).

    ``read`` (``--read-data``; a dict this fills): every record of ``tocs``' packs is read
    back and checked first, and ``read`` gets each pack found sound (its bytes hash to its
    name, every record verifies) with the raw bytes verified, so fsck need not read it
    again; ``progress(packs, bytes)`` follows that reading."""
    store, index = repo.store, repo.index()
    confirmed = {(p, loc.offset, cid) for p, rows in tocs.items() for cid, loc in rows}
    kept: dict[bytes, Location] = {}
    doubtful: dict[bytes, list[Location]] = {}
    s = Salvage()
    bad_fragments: list[Path] = []
    for cid, loc, trusted in old_rows(index.folder, bad_fragments):
        if trusted and (loc.pack, loc.offset, cid) in confirmed:
            kept.setdefault(cid, loc)
        else:
            doubtful.setdefault(cid, []).append(loc)
    for rows in tocs.values():
        for cid, loc in rows:
            kept.setdefault(cid, loc)
    check = _Verifier(store, kept)
    back = None if read is None else _ReadBack(store, tocs, kept, doubtful, check)
    if back is not None:  # whole records now: the doubtful deltas below are checked against them
        back.whole(progress)
    rescued: set[bytes] = set()
    # whole chunks first, so a delta's base is known when the delta is checked
    for cid, locs in sorted(doubtful.items(), key=lambda r: min(loc.flags & FLAG_DELTA for loc in r[1])):
        if cid in kept:
            continue
        good = next((loc for loc in locs if check.ok(cid, loc) is not None), None)
        if good is None:
            if back is None or cid not in back.lost:  # (those are counted below)
                s.dropped += 1
        else:
            kept[cid] = good
            rescued.add(cid)
            s.verified += 1
    for pack in damaged:
        path = pack_path(store.chunks.packs_dir, pack)
        for e in sorted(_scan(path, store), key=lambda e: e.flags & FLAG_DELTA):  # bases first
            loc = Location(pack, e.offset, e.stored_len, e.raw_len, e.flags)
            if e.chunk_id not in kept and check.ok(e.chunk_id, loc) is not None:
                kept[e.chunk_id] = loc
                s.scanned += 1
    suspect: set[str] = set()
    if back is not None:  # deltas last: every base that is kept is known by now
        back.deltas()
        suspect = back.suspect
        s.dropped += len(back.lost - kept.keys())
        s.verified += sum(loc.pack in suspect and cid not in rescued for cid, loc in kept.items())
        read.update((p, sum(loc.raw_len for _cid, loc in rows)) for p, rows in tocs.items()
                    if p not in suspect and p not in back.unread)
    s.damaged_fragments = [p.name for p in bad_fragments]
    aside = sorted({*damaged, *suspect})
    moved = _copy_out(repo, kept, set(aside))  # 1. new packs: nothing names them yet
    kept.update(moved)
    # 2. a damaged fragment goes aside first: the new one may have its name (the same rows)
    s.moved_aside.extend(quarantine(store, p) for p in bad_fragments)
    # 3. the new fragment, durable, then the old ones go: from here nothing names the packs below
    repo.replace_index(list(kept.items()), sorted(p.name for p in index.folder.glob("*.idx")))
    # 4. (a rewrite of every record of a pack is that pack, whole again, under its own name)
    rewritten = {loc.pack for loc in moved.values()}
    s.moved_aside.extend(quarantine(store, pack_path(store.chunks.packs_dir, p)) for p in aside
                         if p not in rewritten)
    s.rows = len(kept)
    s.recovered = store.chunks.recover().chunks  # temp packs of killed writers: verified records
    return s


class _ReadBack:
    """``--read-data`` repair: every record of every pack with an intact table of contents
    read back and checked by hash. A pack whose bytes do not hash to its name, or with a
    record that fails, is ``suspect`` (copied out and moved aside like a damaged one); each
    chunk whose indexed copy is in one is indexed at a copy that verifies, a sound pack's
    first, else left out (``lost``): then a remote's copy is fetched when it is needed.

    A delta cannot be checked without its base, so whole records are read first
    (``whole``), and deltas once every base the index will keep is known (``deltas``). A
    delta whose base is gone is unreadable here, so it counts as a failing record: its
    chunk too is then fetched whole from a remote. A pack the disk fails to read (an
    ``OSError``, perhaps for a moment) is judged on nothing: left as it is, indexed as it
    was, for fsck to name."""

    def __init__(self, store: Store, tocs: dict[str, Rows], kept: dict[bytes, Location],
                 doubtful: dict[bytes, list[Location]], check: _Verifier):
        self.store, self.tocs, self.kept, self.doubtful, self.check = store, tocs, kept, doubtful, check
        self.bad: set[tuple[str, int, bytes]] = set()  # (pack, offset, id) of records that fail
        self.suspect: set[str] = set()
        self.unread: set[str] = set()  # packs an OSError kept from being read: left as they are
        self.lost: set[bytes] = set()  # chunks taken out of the index: no copy of them verifies

    def whole(self, progress: Progress | None = None) -> None:
        """Read each pack: its bytes against its name, each whole record against its id."""
        chunks, algo = self.store.chunks, self.store.algo
        sizes = {p: sum(loc.stored_len for _cid, loc in rows) for p, rows in self.tocs.items()}
        announce(progress, len(sizes), sum(sizes.values()))
        done = 0
        for n, (p, rows) in enumerate(self.tocs.items(), 1):
            path = pack_path(chunks.packs_dir, p)
            bad: set[tuple[str, int, bytes]] = set()
            try:
                whole = chunks.intact(path)
                reader = PackReader(path)
                try:
                    for cid, loc in rows:
                        if not loc.flags & FLAG_DELTA:
                            try:
                                decode_chunk(reader.read(loc.offset, loc.stored_len), loc.entry(cid), algo,
                                             f"pack {p}")
                            except DsError:
                                bad.add((p, loc.offset, cid))
                finally:
                    reader.close()
            except OSError:  # the disk failed to read it (perhaps for a moment): judged on nothing
                self.unread.add(p)
            else:
                self.bad |= bad
                if bad or not whole:
                    self.suspect.add(p)
            done += sizes[p]
            if progress is not None:
                progress(n, done)
        self._choose({cid for cid, loc in self.kept.items()
                      if not loc.flags & FLAG_DELTA and loc.pack in self.suspect}, deltas=False)

    def deltas(self) -> None:
        """Check every delta record against the base the index keeps, then index each
        chunk at a copy that verifies (a chunk lost so far may have a delta copy)."""
        hsize = self.store.algo.size
        for p, rows in self.tocs.items():
            for cid, loc in rows:
                if not loc.flags & FLAG_DELTA or p in self.unread:
                    continue
                stored = self.check.read(loc)
                base = None if stored is None else self.kept.get(delta_base(stored, hsize))
                if base is not None and base.pack in self.unread:
                    continue  # its base could not be read: nothing to judge it by
                if self.check.ok(cid, loc) is None:
                    self.bad.add((p, loc.offset, cid))
                    self.suspect.add(p)
        moving = {cid for cid, loc in self.kept.items()
                  if loc.flags & FLAG_DELTA and loc.pack in self.suspect}
        self._choose(moving | (self.lost - self.kept.keys()), deltas=True)

    def _choose(self, want: set[bytes], deltas: bool) -> None:
        """Index each chunk of ``want`` at a copy that verifies (of the records checked so
        far: whole ones, and with ``deltas`` delta ones), a sound pack's first; with
        ``deltas``, an old row the tables of contents do not hold is tried last."""
        if not want:
            return
        copies: dict[bytes, list[Location]] = {cid: [] for cid in want}
        for rows in self.tocs.values():
            for cid, loc in rows:
                if cid in copies and (deltas or not loc.flags & FLAG_DELTA):
                    copies[cid].append(loc)
        for cid, locs in copies.items():
            good = [loc for loc in locs if (loc.pack, loc.offset, cid) not in self.bad]
            here = self.kept.get(cid)
            if here is not None and here not in locs:  # an old row or a damaged pack's: verified as kept
                good.append(here)
            # a sound copy first (nothing to move); one no disk error kept from being checked last
            good.sort(key=lambda loc: (loc.pack in self.unread, loc.pack in self.suspect))
            if not good and deltas:
                good = [loc for loc in self.doubtful.get(cid, []) if self._old_row_ok(cid, loc)][:1]
            if good:
                self.kept[cid] = good[0]
                self.lost.discard(cid)
            else:
                self.kept.pop(cid, None)
                self.lost.add(cid)


    def _old_row_ok(self, cid: bytes, loc: Location) -> bool:
        """Whether an old index row the tables of contents do not confirm reads back whole."""
        return (loc.pack, loc.offset, cid) not in self.bad and self.check.ok(cid, loc) is not None


def _copy_out(repo: LocalRepository, kept: dict[bytes, Location], damaged: set[str]) -> dict[bytes, Location]:
    """Copy the kept records of damaged packs into new packs (each verified again while
    copied): their new locations."""
    check = _Verifier(repo.store, kept)
    moving = sorted((loc.pack, loc.offset, cid) for cid, loc in kept.items() if loc.pack in damaged)
    records = ((cid, stored, kept[cid].raw_len, kept[cid].flags) for _pack, _offset, cid in moving
               if (stored := check.ok(cid, kept[cid])) is not None)
    return dict(repo.write_packs(records)[0])


def quarantine(store: Store, path: Path) -> str:
    """Move a damaged file out of every reader's way, keeping it for inspection."""
    aside = store.path / "damaged" / path.parent.name / path.name
    n = 1
    while aside.exists():  # one set aside before, under the same name: both are kept
        aside, n = aside.with_name(f"{path.name}.{n}"), n + 1
    aside.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        os.replace(path, aside)
    return str(aside)


def _scan(path: Path, store: Store) -> Iterator[PackEntry]:
    """Candidate records of a published pack whose footer or table of contents is damaged
    (each is verified by hash before use). Records carry no header of their own, but a
    table of contents is self-checking: its first record starts after the pack header,
    each starts where the one before ends, and the last ends where the table begins. So
    the footer's own count is tried first, then every count whose table would fit; a
    table that fails its checksum still gives each row that lies inside the pack."""
    try:
        data = path.read_bytes()
    except OSError:
        return iter(())
    hsize = store.algo.size
    rec = hsize + TOC_TAIL.size
    end = len(data) - packs.FOOTER.size
    if end <= packs.HEADER.size:
        return iter(())
    toc_offset, count = packs.FOOTER.unpack_from(data, end)[:2]
    footer_ok = toc_offset + count * rec == end  # the footer agrees with itself
    for n in ([count] if footer_ok else []) + list(range(1, (end - packs.HEADER.size) // rec + 1)):
        start = end - n * rec
        if _chained(data, start, n, rec, hsize):
            return iter([_row(data, start + i * rec, hsize) for i in range(n)])
    if footer_ok:  # take what lies inside
        rows = [_row(data, toc_offset + i * rec, hsize) for i in range(count)]
        return iter(r for r in rows if packs.HEADER.size <= r.offset and r.offset + r.stored_len <= toc_offset
                    and r.raw_len <= MAX_RAW)
    return iter(())


def _row(data: bytes, at: int, hsize: int) -> PackEntry:
    offset, stored, raw, flags = TOC_TAIL.unpack_from(data, at + hsize)
    return PackEntry(data[at : at + hsize], offset, stored, raw, flags)


def _chained(data: bytes, start: int, n: int, rec: int, hsize: int) -> bool:
    """Whether the ``n`` rows at ``start`` tile the records exactly (checked ends first)."""
    first, last = _row(data, start, hsize), _row(data, start + (n - 1) * rec, hsize)
    if first.offset != packs.HEADER.size or last.offset + last.stored_len != start:
        return False
    pos = packs.HEADER.size
    for i in range(n):
        r = _row(data, start + i * rec, hsize)
        if r.offset != pos or r.raw_len > MAX_RAW:
            return False
        pos += r.stored_len
    return pos == start


@dataclass
class Loss:
    """A chunk no pack holds any more, and what it takes with it."""

    chunk: str
    paths: list[str]
    versions: list[str]

    def as_json(self) -> dict:
        return {"chunk": self.chunk, "paths": self.paths, "versions": self.versions}


def losses(meta: MetaStore, commits: set[str], lost: set[bytes]) -> list[Loss]:
    """For each lost chunk: the files that use it and the versions that hold those files.
    Each folder is read once, however many versions share it."""
    if not lost:
        return []
    memo: dict[str, list[tuple[str, bytes]]] = {}

    def hits(oid: str) -> list[tuple[str, bytes]]:
        found = memo.get(oid)
        if found is None:
            try:
                folder = meta.read_folder(oid)
            except (DsError, KeyError):
                folder = None
            found = []
            if folder is not None:
                for name, e in folder.files.items():
                    found.extend((name, cid) for cid, _ in e.chunk_list() if cid in lost)
                for name, sub in folder.dirs.items():
                    found.extend((f"{name}/{p}", cid) for p, cid in hits(sub))
            memo[oid] = found
        return found

    by_chunk: dict[bytes, tuple[set[str], set[str]]] = {c: (set(), set()) for c in lost}
    for commit in sorted(commits):
        try:
            tree = meta.tree_of(commit)
        except DsError:
            continue
        for path, cid in hits(tree):
            by_chunk[cid][0].add(path)
            by_chunk[cid][1].add(commit)
    return [Loss(c.hex(), sorted(p), sorted(v)) for c, (p, v) in sorted(by_chunk.items())]
