"""The chunk index: chunk id -> (pack, offset, stored length, raw length, flags).

Written as immutable *fragments*, each named by its checksum, and read through ``mmap``
so memory stays bounded at millions of chunks. Byte layout of a fragment
(little-endian)::

    header   8s magic b"DSIDX\\x00\\x00\\x01" | u8 hash code | u8 hash size | 2x
             | u32 pack count | u64 entry count                              (24 bytes)
    packs    pack count x pack id (hash size bytes; the pack's file name in hex)
    fanout   256 x u32: number of ids whose first byte is <= i
    ids      entry count x id, sorted ascending
    locs     entry count x ( u32 pack no | u64 offset | u32 stored | u32 raw | u8 flags | 3x )
    footer   16s xxh3-128 of everything above (the fragment's name is its hex)

A lookup narrows by the fanout table, then binary-searches the ids in the map: about
12 probes at a million chunks, no per-chunk Python object kept. Fragments are merged
when there are more than ``MAX_FRAGMENTS`` so a lookup touches few files.

A fragment with a row claiming a chunk longer than any chunk can be (``packs.MAX_RAW``)
is refused when it is opened, before any of its rows is used: a fragment from a remote
could otherwise make every reader allocate up to 4 GiB for one chunk.
"""

from __future__ import annotations

import heapq
import mmap
import os
import re
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import xxhash

from .errors import FormatError
from .fsutil import atomic_write
from .hashing import HashAlgo, algo_by_code
from .packs import FLAG_DELTA, PackEntry, check_lengths

MAGIC = b"DSIDX\x00\x00\x01"
HEADER = struct.Struct("<8sBB2xIQ")
LOC = struct.Struct("<IQIIB3x")
FANOUT = struct.Struct("<256I")
CHECK = 16
MAX_FRAGMENTS = 8
# where the top byte of each length is inside a LOC row: stored (u32 at 12), raw (u32 at 16)
_LENGTH_TOPS = (15, 19)
_NONZERO = re.compile(rb"[^\x00]")
_FLAGS_AT = 20  # where the flags byte is inside a LOC row
_DELTA_FLAGS = re.compile(b"[" + b"".join(re.escape(bytes([f])) for f in range(256) if f & FLAG_DELTA) + b"]")


class Location(NamedTuple):
    """Where a chunk is: its pack and that pack's record of it (``PackEntry`` less the id).
    A tuple: made, compared and hashed in C, a million times in a check of a large store."""

    pack: str  # pack id, hex
    offset: int
    stored_len: int
    raw_len: int
    flags: int

    @classmethod
    def rows(cls, pack: str, entries: Iterable[PackEntry]) -> list[tuple[bytes, Location]]:
        """The index rows (id, location) of a pack's records."""
        return [(e.chunk_id, cls(pack, e.offset, e.stored_len, e.raw_len, e.flags)) for e in entries]

    def entry(self, chunk_id: bytes) -> PackEntry:
        """The pack's record of ``chunk_id`` at this location (what decoding checks)."""
        return PackEntry(chunk_id, self.offset, self.stored_len, self.raw_len, self.flags)


def encode_fragment(algo: HashAlgo, entries: Iterable[tuple[bytes, Location]]) -> bytes:
    """Serialise (id, location) pairs; duplicate ids keep the first location."""
    return encode_sorted(algo, sorted(entries, key=lambda r: r[0]))


def encode_sorted(algo: HashAlgo, rows: Iterable[tuple[bytes, Location]]) -> bytes:
    """Serialise pairs already sorted by id (duplicates keep the first), streaming: only
    the output's bytes are held, never a Python object per chunk (a million chunks)."""
    packs: dict[str, int] = {}
    ids = bytearray()
    locs = bytearray()
    fan = [0] * 256
    last = None
    count = 0
    for chunk_id, loc in rows:
        if chunk_id == last:
            continue
        if len(chunk_id) != algo.size:
            raise FormatError(f"chunk id of {len(chunk_id)} bytes in a {algo.name} store")
        if last is not None and chunk_id < last:
            raise FormatError("index rows out of order; nothing was written")
        last = chunk_id
        pack_no = packs.setdefault(loc.pack, len(packs))
        ids += chunk_id
        locs += LOC.pack(pack_no, loc.offset, loc.stored_len, loc.raw_len, loc.flags)
        fan[chunk_id[0]] += 1
        count += 1
    for i in range(1, 256):
        fan[i] += fan[i - 1]
    body = b"".join(
        [
            HEADER.pack(MAGIC, algo.code, algo.size, len(packs), count),
            b"".join(bytes.fromhex(p) for p in packs),
            FANOUT.pack(*fan),
            ids,
            locs,
        ]
    )
    return body + xxhash.xxh3_128_digest(body)


class Fragment:
    """One index fragment, memory-mapped and checked on open."""

    def __init__(self, path: Path):
        self.path = path
        where = str(path)
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < HEADER.size + FANOUT.size + CHECK:
                raise FormatError(f"{where}: index fragment is truncated; run `ds fsck --repair`")
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        mm = self._mm
        if xxhash.xxh3_128_digest(memoryview(mm)[: size - CHECK]) != mm[size - CHECK :]:
            raise FormatError(f"{where}: index fragment fails its checksum; run `ds fsck --repair`")
        magic, code, hsize, npacks, count = HEADER.unpack_from(mm, 0)
        if magic != MAGIC:
            raise FormatError(f"{where}: not an index fragment (bad magic)")
        self.algo = algo_by_code(code)
        if hsize != self.algo.size:
            raise FormatError(f"{where}: id size {hsize} does not match {self.algo.name}")
        self.count = count
        self.hsize = hsize
        if HEADER.size + npacks * hsize + FANOUT.size + count * (hsize + LOC.size) + CHECK != size:
            raise FormatError(f"{where}: index fragment sizes are inconsistent; run `ds fsck --repair`")
        off = HEADER.size
        self.packs = [mm[off + i * hsize : off + (i + 1) * hsize].hex() for i in range(npacks)]
        off += npacks * hsize
        self.fanout = FANOUT.unpack_from(mm, off)
        off += FANOUT.size
        self._ids = off
        self._locs = off + count * hsize
        fan = self.fanout
        if fan[255] != count or any(fan[i] > fan[i + 1] for i in range(255)):
            raise FormatError(f"{where}: index fragment fanout is damaged; run `ds fsck --repair`")
        self._check_lengths()

    def _check_lengths(self) -> None:
        """Refuse the fragment if any row claims a chunk longer than a chunk can be.

        Every row is checked, cheaply: the top byte of each length is copied out in one
        strided slice and counted (C speed: ~6 ms per million rows, twice, against ~5 for
        the checksum), and only rows where it is set (a chunk of 16 MiB or more) are
        decoded and compared with the bound."""
        start, end = self._locs, self._locs + self.count * LOC.size
        for top in _LENGTH_TOPS:
            column = self._mm[start + top : end : LOC.size]
            if column.count(0) == len(column):
                continue
            for hit in _NONZERO.finditer(column):
                i = hit.start()
                _pack, _offset, stored, raw, _flags = LOC.unpack_from(self._mm, start + i * LOC.size)
                check_lengths(raw, stored, str(self.path), f"entry {i}")

    def _id_at(self, i: int) -> bytes:
        base = self._ids + i * self.hsize
        return self._mm[base : base + self.hsize]

    def _loc_at(self, i: int) -> Location:
        pack_no, offset, stored, raw, flags = LOC.unpack_from(self._mm, self._locs + i * LOC.size)
        if pack_no >= len(self.packs):
            raise FormatError(f"{self.path}: entry {i} names pack {pack_no} of {len(self.packs)}")
        return Location(self.packs[pack_no], offset, stored, raw, flags)

    def lookup(self, chunk_id: bytes) -> Location | None:
        first = chunk_id[0]
        lo = self.fanout[first - 1] if first else 0
        hi = self.fanout[first]
        while lo < hi:
            mid = (lo + hi) // 2
            got = self._id_at(mid)
            if got < chunk_id:
                lo = mid + 1
            elif got > chunk_id:
                hi = mid
            else:
                return self._loc_at(mid)
        return None

    def __iter__(self) -> Iterator[tuple[bytes, Location]]:
        for i in range(self.count):
            yield self._id_at(i), self._loc_at(i)

    def rows(self) -> Iterator[tuple[bytes, Location]]:
        """The rows in order, as ``__iter__`` gives them, unpacked a block at a time in C."""
        h, packs, block = self.hsize, self.packs, 1 << 16  # rows copied out per step: bounded memory
        for first in range(0, self.count, block):
            n = min(block, self.count - first)
            ids = self._mm[self._ids + first * h : self._ids + (first + n) * h]
            at = self._locs + first * LOC.size
            locs = LOC.iter_unpack(self._mm[at : at + n * LOC.size])
            try:
                yield from ((ids[i * h : i * h + h], Location(packs[p], offset, stored, raw, flags))
                            for i, (p, offset, stored, raw, flags) in enumerate(locs))
            except IndexError:  # a pack number past the list: said as a lookup would say it
                for i in range(first, first + n):
                    self._loc_at(i)
                raise

    def deltas(self) -> Iterator[tuple[bytes, Location]]:
        """The rows stored as deltas, found by one strided scan of the flags column in C."""
        start = self._locs + _FLAGS_AT
        column = self._mm[start : start + self.count * LOC.size : LOC.size]
        for hit in _DELTA_FLAGS.finditer(column):
            i = hit.start()
            yield self._id_at(i), self._loc_at(i)

    def count_stored(self, wanted: set[bytes], out: dict[str, int]) -> None:
        """Add to ``out`` (pack -> bytes) the stored length of each chunk of ``wanted`` held
        here, and take it out of ``wanted``: one pass over the rows, unpacked in C, which
        beats a lookup each when most rows are wanted."""
        h, packs, block = self.hsize, self.packs, 1 << 16  # rows copied out per step: bounded memory
        for first in range(0, self.count, block):
            n = min(block, self.count - first)
            ids = self._mm[self._ids + first * h : self._ids + (first + n) * h]
            locs = self._mm[self._locs + first * LOC.size : self._locs + (first + n) * LOC.size]
            for i, (pack_no, _offset, stored, _raw, _flags) in enumerate(LOC.iter_unpack(locs)):
                chunk_id = ids[i * h : i * h + h]
                if chunk_id in wanted:
                    if pack_no >= len(packs):
                        raise FormatError(f"{self.path}: entry {first + i} names pack {pack_no} of "
                                          f"{len(packs)}")
                    wanted.discard(chunk_id)
                    out[packs[pack_no]] = out.get(packs[pack_no], 0) + stored

    def close(self) -> None:
        self._mm.close()


def wrong_hash_fix(found: str) -> str:
    """How to mend a store whose config names another hash than its data was written with
    (a config copied from another store): the config, never the data, is wrong."""
    return (f"if every pack and index fragment says {found}, the config is what is wrong: set "
            f'hash = "{found}" under [store] in the config file (nothing was changed)')


class ChunkIndex:
    """All fragments of one store, searched newest first."""

    def __init__(self, folder: Path, algo: HashAlgo):
        self.folder = folder
        self.algo = algo
        self._fragments: list[Fragment] | None = None

    @property
    def fragments(self) -> list[Fragment]:
        if self._fragments is None:
            self._fragments = self._load()
        return self._fragments

    def _load(self) -> list[Fragment]:
        out = []
        if not self.folder.is_dir():
            return out
        paths = sorted(self.folder.glob("*.idx"), key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for p in paths:
            try:
                frag = Fragment(p)
            except FileNotFoundError:  # merged away by another process meanwhile
                continue
            if frag.algo is not self.algo:
                raise FormatError(f"{p}: index fragment uses {frag.algo.name}, but the store's config says "
                                  f"{self.algo.name}; {wrong_hash_fix(frag.algo.name)}")
            out.append(frag)
        return out

    def reload(self) -> None:
        if self._fragments is not None:
            for f in self._fragments:
                f.close()
        self._fragments = None

    def lookup(self, chunk_id: bytes) -> Location | None:
        for frag in self.fragments:
            loc = frag.lookup(chunk_id)
            if loc is not None:
                return loc
        return None

    def stored_by_pack(self, chunk_ids: Iterable[bytes]) -> dict[str, int]:
        """Stored bytes of these chunks in each pack, where ``lookup`` finds each: by one
        pass over the rows when the chunks are a good part of them, else by lookups."""
        wanted, out = set(chunk_ids), {}
        if 8 * len(wanted) >= len(self):
            for frag in self.fragments:  # newest first, as lookup searches them
                frag.count_stored(wanted, out)
        else:
            for chunk_id in wanted:
                loc = self.lookup(chunk_id)
                if loc is not None:
                    out[loc.pack] = out.get(loc.pack, 0) + loc.stored_len
        return out

    def as_dict(self) -> dict[bytes, Location]:
        """Every chunk's location, the one ``lookup`` finds (the newest fragment's)."""
        out: dict[bytes, Location] = {}
        for frag in reversed(self.fragments):  # oldest first: a newer row replaces an older one
            out.update(frag.rows())
        return out

    def deltas(self) -> Iterator[tuple[bytes, Location]]:
        """Every (id, location) stored as a delta where ``lookup`` finds it."""
        frags = self.fragments
        for n, frag in enumerate(frags):
            for chunk_id, loc in frag.deltas():
                if not any(newer.lookup(chunk_id) for newer in frags[:n]):
                    yield chunk_id, loc

    def __iter__(self) -> Iterator[tuple[bytes, Location]]:
        """Every (id, location), deduplicated, ascending by id."""
        last = None
        for chunk_id, loc in heapq.merge(*self.fragments, key=lambda r: r[0]):
            if chunk_id != last:
                last = chunk_id
                yield chunk_id, loc

    def __len__(self) -> int:
        return sum(f.count for f in self.fragments)

    def write_fragment(self, entries: Iterable[tuple[bytes, Location]], ordered: bool = False) -> Path:
        """Publish a new fragment atomically; returns its path. ``ordered``: the entries
        come sorted by id already (they are then streamed, not collected)."""
        data = encode_sorted(self.algo, entries) if ordered else encode_fragment(self.algo, entries)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{data[-CHECK:].hex()}.idx"
        if not path.exists():
            atomic_write(path, data)
        self.reload()
        return path

    def replace_all(self, entries: Iterable[tuple[bytes, Location]], ordered: bool = False) -> Path:
        """Write one fragment holding ``entries`` and remove every other fragment.

        Safe against readers: the new fragment is durable before any old one goes, and
        a reader that lost a race simply reloads.
        """
        old = [f.path for f in self.fragments]
        path = self.write_fragment(entries, ordered)
        for p in old:
            if p != path:
                try:
                    p.unlink()
                except FileNotFoundError:
                    pass
        self.reload()
        return path

    def maybe_merge(self) -> None:
        """Keep the fragment count small: merge every fragment into one past the limit."""
        if len(self.fragments) > MAX_FRAGMENTS:
            self.replace_all(iter(self), ordered=True)  # streamed: sorted and deduplicated already
