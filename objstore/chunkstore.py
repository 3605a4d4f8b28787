"""Chunk storage for one store: packs plus their index, behind put/has/get.

Writes go through a session: chunks are appended to the current pack, packs roll over
at the target size, and ``flush`` makes them durable and publishes one index fragment
for all of them. Only then may metadata that names these chunks be written (a reader
must never see a version whose bytes are missing).

Work is not thrown away. A session that stops early (an error, Ctrl-C) keeps what is
complete: ``keep`` publishes the pack being written and indexes every published pack.
A writer killed outright leaves packs that no fragment names and a temp pack without
its table of contents; ``recover`` (run before a write session stores anything) indexes
the former after checking each against its name, and turns the latter into a pack of
its complete records, each verified by hash, so the next ``ds add`` stores none of
those chunks again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import xxhash

from .errors import CorruptObject, DsError, FormatError
from .fsutil import fsync_dir
from .hashing import HashAlgo
from .index import ChunkIndex, Location, wrong_hash_fix
from .packs import (
    END_MAGIC,
    FLAG_DELTA,
    FOOTER,
    HEADER,
    PackEntry,
    PackReader,
    PackWriter,
    decode_chunk,
    delta_base,
    encode_toc,
    journal_path,
    pack_path,
    read_pack_toc,
    scan_records,
    written_with,
)

_READ = 1 << 20


@dataclass
class Recovered:
    """What ``recover`` indexed: packs and chunks a killed writer left behind."""

    packs: int = 0  # published packs no fragment named
    chunks: int = 0


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
        self._wlock = threading.RLock()  # writes: ingest threads, and an abort on the main thread

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
            with self._wlock:
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
        where = f"pack {loc.pack}"
        base = self.base_bytes(stored, where) if loc.flags & FLAG_DELTA else None
        return decode_chunk(stored, loc.entry(chunk_id), self.algo, where, base)

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
        with self._wlock:
            if self._writer is not None and self._writer.failed:
                self._roll()  # keep what the failed writer holds before starting another
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
        """Publish the pack being written. If publishing fails, the writer stays current
        (closed, failed) so that the next roll, flush or abort salvages its records."""
        writer = self._writer
        if writer is None:
            return
        if writer.failed:
            self._writer, self._writer_entries = None, set()
            self._keep_failed(writer)
            return
        if not len(writer):
            self._writer, self._writer_entries = None, set()
            writer.abort()
            return
        try:
            pack_hex, entries = writer.publish()
        except BaseException:
            if writer.published is not None:  # in place already; its journal or folder sync failed
                self._writer, self._writer_entries = None, set()
                self._add_pending(*writer.published)
            raise
        self._writer, self._writer_entries = None, set()
        self._add_pending(pack_hex, entries)

    def _add_pending(self, pack_hex: str, entries: list[PackEntry]) -> None:
        pack_no = len(self._packs)
        self._packs.append(pack_hex)
        for e in entries:
            row = len(self._rows) // 5
            self._rows.extend((pack_no, e.offset, e.stored_len, e.raw_len, e.flags))
            self._pending[e.chunk_id] = row  # only once its row exists: readers run on other threads

    def _keep_failed(self, writer: PackWriter) -> None:
        """Make a pack of the complete records of a writer whose write or publish failed;
        if even that fails (the disk is still full), remove its temp file and raise."""
        writer.close()
        try:
            kept = self._salvage(writer.path, own=True)
        except BaseException:
            writer.abort()
            raise
        if kept is not None:
            self._add_pending(*kept)

    def flush(self) -> int:
        """Make every chunk put so far durable and indexed; returns chunks published.

        If publishing fails (a full disk), the chunks stay pending, so a later flush in
        the same process indexes them: ``has`` must never answer yes for a chunk that no
        flush will index. The pack that failed to publish is salvaged at once (what it
        holds whole becomes a pack) or its temp file removed: a command that fails here
        leaves nothing half-written. The error is raised either way: a record lost with
        the buffer would leave the caller's entries naming a chunk that is not stored.
        """
        with self._wlock:
            try:
                self._roll()
            except BaseException:
                with contextlib.suppress(Exception):
                    self._roll()  # the failed writer: salvaged, or its temp file removed
                raise
            written = len(self._pending)
            if written:
                rows = ((cid, self._location(self._pending[cid])) for cid in sorted(self._pending))
                self.index.write_fragment(rows, ordered=True)
            self._pending, self._packs, self._rows = {}, [], array("Q")
            if written:
                self.index.maybe_merge()
            return written

    def keep(self) -> int:
        """Publish and index what is complete: for a write session that stops early (an
        error, Ctrl-C), so the chunks it stored are not stored again. Called while another
        exception propagates, so a failure here (a full disk) is not raised: the pack being
        written is then removed, and published packs are left for ``recover``."""
        with self._wlock:
            try:
                return self.flush()
            except Exception:
                self.abort()
                return 0

    def abort(self) -> None:
        """Drop the pack being written (published packs stay pending: a later flush indexes them)."""
        with self._wlock:
            writer, self._writer, self._writer_entries = self._writer, None, set()
            if writer is not None:
                writer.abort()

    def close(self) -> None:
        self.abort()
        for r in self._readers.values():
            r.close()
        self._readers = {}
        self.index.reload()

    # -- what a killed writer left -------------------------------------------------------
    def recover(self) -> Recovered:
        """Index what killed writers left: published packs that no fragment names (each
        checked against its name first) and temp packs no live writer holds (their
        complete records, each verified by hash, become a pack of their own). Call it under
        the store lock before a write session, so the session finds those chunks stored."""
        report = Recovered()
        with self._wlock:
            if self._writer is not None and self._writer.failed:
                self._roll()  # this process's own failed writer: kept as a flush would keep it
            rows: list[tuple[bytes, Location]] = []
            named = {p for frag in self.index.fragments for p in frag.packs} | set(self._packs)
            for path in sorted(self.packs_dir.glob("*/*.pack")):
                if path.stem in named:
                    continue
                entries = self._published_entries(path)
                if entries:
                    report.packs += 1
                    rows.extend(Location.rows(path.stem, entries))
            for path in sorted(self.packs_dir.glob(".tmp-*.pack")):
                try:
                    kept = self._salvage(path, own=False)
                except (OSError, DsError):
                    continue  # unreadable or no room: left as it is for `ds gc`
                if kept:
                    pack_hex, entries = kept
                    rows.extend(Location.rows(pack_hex, entries))
            for journal in self.packs_dir.glob(".tmp-*.toc"):
                if not journal.with_suffix(".pack").exists():  # its pack was published or dropped
                    journal.unlink(missing_ok=True)
            self.drop_downloads()
            if rows:  # every row, even of chunks indexed elsewhere: the pack is named from now on
                self.index.write_fragment(rows)
                self.index.maybe_merge()
            report.chunks = len(rows)
        return report

    def hash_mismatch(self) -> str | None:
        """Why the store's config names another hash than its packs were written with, or
        None. A config copied from another store would make every pack look damaged, and a
        repair would put them all aside: checked before any check or repair judges them."""
        others: dict[str, str] = {}  # other hash -> a pack written with it
        for path in sorted(self.packs_dir.glob("*/*.pack")):
            found = written_with(path)
            if found is None:
                continue  # unreadable or damaged: the check judges it
            if found is self.algo:
                return None  # written with the configured hash: any other is a damaged pack
            others.setdefault(found.name, path.name)
        if len(others) != 1:
            return None
        (name, pack), = others.items()
        return (f"pack {pack} and every other pack here were written with hash {name}, but the store's "
                f"config ({self.root / 'config'}) says {self.algo.name}; {wrong_hash_fix(name)}")

    def drop_downloads(self) -> None:
        """Remove the whole-pack downloads a killed fetch left (``adopt``); under the store
        lock, which every fetch holds, any there is a dead one's."""
        for download in self.packs_dir.glob(".tmp-*.fetched"):
            download.unlink(missing_ok=True)

    def _published_entries(self, path: Path) -> list[PackEntry]:
        """A published pack's table of contents, if the pack's bytes hash to its name."""
        try:
            algo, entries = read_pack_toc(path)
            return entries if algo is self.algo and self.intact(path) else []
        except (OSError, DsError):
            return []

    def intact(self, path: Path, name: str | None = None) -> bool:
        """Whether the pack's bytes hash to its name (a pack is named by its content),
        ``name`` or else the file's."""
        h = self.algo.new()
        with open(path, "rb") as f:
            while block := f.read(_READ):
                h.update(block)
        return h.hexdigest() == (name or path.stem)

    def adopt(self, path: Path, pack_hex: str) -> list[bytes]:
        """Take the file at ``path`` (a whole pack downloaded beside ``packs/``) as pack
        ``pack_hex``; returns its chunks' ids. It is checked as every record would be read: its
        bytes hash to its name, its table of contents is whole, each record decodes to its
        id and none is a delta. Then it is made durable and moved into place, and indexed by
        the next ``flush`` (killed before that, ``recover`` indexes it); none when a pack of
        that name is here already. A failed check raises ``FormatError`` or
        ``CorruptObject`` and leaves ``path`` to the caller."""
        where = f"the downloaded pack {pack_hex}"
        algo, entries = read_pack_toc(path)
        if algo is not self.algo or not self.intact(path, pack_hex):
            raise FormatError(f"{where} does not hash to its name")
        reader = PackReader(path)
        try:
            for e in entries:
                if e.flags & FLAG_DELTA:
                    raise FormatError(f"{where} holds a delta record")
                decode_chunk(reader.read(e.offset, e.stored_len), e, self.algo, where)
            os.fsync(reader.fileno())
        finally:
            reader.close()
        final = pack_path(self.packs_dir, pack_hex)
        final.parent.mkdir(exist_ok=True)
        if final.exists():  # never replaced (the caller holds the store lock): its rows are
            return []       # the index's; the chunks wanted from it come one by one
        os.replace(path, final)
        fsync_dir(final.parent)
        with self._wlock:
            self._add_pending(pack_hex, entries)
        return [e.chunk_id for e in entries]

    def _salvage(self, path: Path, own: bool) -> tuple[str, list[PackEntry]] | None:
        """Turn the temp pack ``path`` into a pack of its complete, verified records;
        returns (pack hex, entries), or None when there is nothing to keep (the file and
        its journal are then removed) or the file is not to be touched: a live writer holds
        its lock, or it is too short to tell a dead writer's from one just created."""
        journal = journal_path(path)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:  # published or removed meanwhile
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None
            if not own and os.fstat(fd).st_size < HEADER.size:
                return None
            try:
                entries = list(scan_records(path, self.algo, base=self._salvage_base))
            except FormatError:  # no journal (killed before its first entry), or not a pack of ours
                entries = []
            if not entries:
                os.unlink(path)
                journal.unlink(missing_ok=True)
                return None
            pack_hex = self._seal(fd, entries)
            final = pack_path(self.packs_dir, pack_hex)
            final.parent.mkdir(exist_ok=True)
            os.replace(path, final)  # under the lock: no other salvager can be at it
        finally:
            os.close(fd)
        journal.unlink(missing_ok=True)
        fsync_dir(final.parent)
        return pack_hex, entries

    def _seal(self, fd: int, entries: list[PackEntry]) -> str:
        """Cut the file after its last good record, append the table of contents and the
        footer, make it durable; returns the name its bytes hash to."""
        end = entries[-1].offset + entries[-1].stored_len
        os.ftruncate(fd, end)
        h = self.algo.new()
        pos = 0
        while pos < end:
            block = os.pread(fd, min(_READ, end - pos), pos)
            if not block:
                raise FormatError("a temp pack shrank while it was salvaged")
            h.update(block)
            pos += len(block)
        toc = encode_toc(entries)
        tail = toc + FOOTER.pack(end, len(entries), self.algo.code, xxhash.xxh3_128_digest(toc), END_MAGIC)
        if os.pwrite(fd, tail, end) != len(tail):
            raise OSError("short write while sealing a salvaged pack")
        h.update(tail)
        os.fsync(fd)
        return h.hexdigest()

    def _salvage_base(self, base_id: bytes) -> bytes | None:
        """A delta's base, to verify a salvaged delta record; None if it cannot be read."""
        loc = self.locate(base_id)
        if loc is None or loc.flags & FLAG_DELTA:
            return None
        try:
            return self.read_at(base_id, loc)
        except (OSError, DsError):
            return None



def roll_packs(folder: Path, algo: HashAlgo, target: int, chunks: Iterable[tuple[bytes, bytes, int, int]],
               on_pack: Callable[[Path, list[tuple[bytes, Location]]], None] | None = None,
               ) -> tuple[list[Path], list[tuple[bytes, Location]]]:
    """Write (id, stored bytes, raw length, flags) into packs of about ``target`` bytes,
    each published in ``folder`` (durable) as it is closed, then ``on_pack(path, rows)``:
    returns (pack files, their index rows). A failure leaves no temp pack behind."""
    packs: list[Path] = []
    rows: list[tuple[bytes, Location]] = []
    writer: PackWriter | None = None

    def close() -> None:
        nonlocal writer
        done, writer = writer, None
        pack_hex, entries = done.finish()
        mine = Location.rows(pack_hex, entries)
        packs.append(pack_path(folder, pack_hex))
        if on_pack is not None:
            on_pack(packs[-1], mine)
        rows.extend(mine)

    try:
        for chunk_id, stored, raw_len, flags in chunks:
            if writer is None:
                writer = PackWriter(folder, algo)
            writer.add(chunk_id, stored, raw_len, flags)
            if writer.size >= target:
                close()
        if writer is not None:
            close()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return packs, rows
