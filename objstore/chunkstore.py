"""Chunk storage for one store: packs plus their index, behind put/has/get.

Writes go through a session: chunks are appended to the current pack, packs roll over
at the target size, and ``flush`` makes them durable and publishes one index fragment
for all of them. Only then may metadata that names these chunks be written (a reader
must never see a version whose bytes are missing).
"""

from __future__ import annotations

import threading
from array import array
from pathlib import Path

from .errors import CorruptObject
from .hashing import HashAlgo
from .index import ChunkIndex, Location
from .packs import FLAG_DELTA, PackEntry, PackReader, PackWriter, decode_chunk, delta_base, pack_path


class ChunkStore:
    def __init__(self, root: Path, algo: HashAlgo, pack_target: int = 64 * 1024 * 1024):
        self.root = root
        self.algo = algo
        self.pack_target = pack_target
        self.packs_dir = root / "packs"
        self.index = ChunkIndex(root / "index", algo)
        # chunks in published packs, not yet in an index fragment: id -> row of _rows, whose
        # five numbers per row are (pack number in _packs, offset, stored, raw, flags). A
        # Location object per chunk would cost ~250 bytes, a million times over.
        self._pending: dict[bytes, int] = {}
        self._packs: list[str] = []
        self._rows = array("Q")
        self._writer: PackWriter | None = None
        self._writer_entries: set[bytes] = set()  # ids in the pack being written
        self._readers: dict[str, PackReader] = {}
        self._lock = threading.Lock()

    # -- queries ---------------------------------------------------------------------
    def has(self, chunk_id: bytes) -> bool:
        return (
            chunk_id in self._writer_entries
            or chunk_id in self._pending
            or self.index.lookup(chunk_id) is not None
        )

    def locate(self, chunk_id: bytes) -> Location | None:
        row = self._pending.get(chunk_id)
        return self._location(row) if row is not None else self.index.lookup(chunk_id)

    def _location(self, row: int) -> Location:
        pack_no, offset, stored, raw, flags = self._rows[5 * row : 5 * row + 5]
        return Location(self._packs[pack_no], offset, stored, raw, flags)

    def get(self, chunk_id: bytes) -> bytes:
        """The chunk's bytes, verified against its id."""
        if chunk_id in self._writer_entries:
            self._roll()  # in the pack being written: publish that pack first
        loc = self.locate(chunk_id)
        if loc is None:
            raise CorruptObject(
                f"chunk {chunk_id.hex()} is missing from the store; run `ds fsck` "
                "(and fetch it from a remote if you have one)"
            )
        return self.read_at(chunk_id, loc)

    def read_at(self, chunk_id: bytes, loc: Location) -> bytes:
        return self.decode(chunk_id, loc, self.read_stored(loc))

    def read_stored(self, loc: Location) -> bytes:
        return self._reader(loc.pack).read(loc.offset, loc.stored_len)

    def decode(self, chunk_id: bytes, loc: Location, stored: bytes) -> bytes:
        """A stored record back to the chunk's verified bytes (reading a delta's base)."""
        entry = PackEntry(chunk_id, loc.offset, loc.stored_len, loc.raw_len, loc.flags)
        where = f"pack {loc.pack}"
        base = self.base_bytes(stored, where) if loc.flags & FLAG_DELTA else None
        return decode_chunk(stored, entry, self.algo, where, base)

    def base_bytes(self, stored: bytes, where: str) -> bytes:
        """The bytes of the base a delta record names: whole, never a delta itself."""
        base_id = delta_base(stored, self.algo.size)
        loc = self.locate(base_id)
        if loc is None:
            raise CorruptObject(f"the base chunk {base_id.hex()} of a delta in {where} is missing; "
                                "run `ds fsck`", where=where)
        if loc.flags & FLAG_DELTA:
            raise CorruptObject(f"the base chunk {base_id.hex()} of a delta in {where} is itself a "
                                "delta; run `ds fsck`", where=where)
        return self.read_at(base_id, loc)

    def base_of(self, loc: Location) -> bytes | None:
        """The base id of the chunk at ``loc`` if it is a delta, else None (reads its first bytes)."""
        if not loc.flags & FLAG_DELTA:
            return None
        return delta_base(self._reader(loc.pack).read(loc.offset, self.algo.size), self.algo.size)

    def _reader(self, pack_hex: str) -> PackReader:
        reader = self._readers.get(pack_hex)
        if reader is None:
            with self._lock:
                reader = self._readers.get(pack_hex)
                if reader is None:
                    path = pack_path(self.packs_dir, pack_hex)
                    try:
                        reader = PackReader(path)
                    except FileNotFoundError:
                        raise CorruptObject(
                            f"pack {pack_hex} is named by the index but missing; "
                            "run `ds fsck --repair`"
                        ) from None
                    self._readers[pack_hex] = reader
        return reader

    # -- writes ----------------------------------------------------------------------
    def put_encoded(self, chunk_id: bytes, stored: bytes | memoryview, raw_len: int, flags: int) -> bool:
        """Append an encoded chunk unless the store has it; True when written."""
        if self.has(chunk_id):
            return False
        if self._writer is None:
            self._writer = PackWriter(self.packs_dir, self.algo)
        self._writer.add(chunk_id, stored, raw_len, flags)
        self._writer_entries.add(chunk_id)
        if self._writer.size >= self.pack_target:
            self._roll()
        return True

    def _roll(self) -> None:
        writer, self._writer = self._writer, None
        if writer is None:
            return
        self._writer_entries = set()
        if not len(writer):
            writer.abort()
            return
        pack_hex, entries = writer.finish()
        pack_no = len(self._packs)
        self._packs.append(pack_hex)
        for e in entries:
            row = len(self._rows) // 5
            self._rows.extend((pack_no, e.offset, e.stored_len, e.raw_len, e.flags))
            self._pending[e.chunk_id] = row  # only once its row exists: readers run on other threads

    def flush(self) -> int:
        """Make every chunk put so far durable and indexed; returns chunks published.

        If publishing fails (a full disk), the chunks stay pending, so a later flush in
        the same process indexes them: ``has`` must never answer yes for a chunk that no
        flush will index.
        """
        self._roll()
        written = len(self._pending)
        if written:
            rows = ((cid, self._location(self._pending[cid])) for cid in sorted(self._pending))
            self.index.write_fragment(rows, ordered=True)
        self._pending, self._packs, self._rows = {}, [], array("Q")
        if written:
            self.index.maybe_merge()
        return written

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
            self._writer_entries = set()

    def close(self) -> None:
        self.abort()
        for r in self._readers.values():
            r.close()
        self._readers = {}
        self.index.reload()
