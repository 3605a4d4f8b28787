"""Pack files: many chunks in one immutable file that ends with its own table of contents.

Byte layout (all integers little-endian)::

    header   8s magic b"DSPACK\\x00\\x01" | u8 hash code | 7x reserved          (16 bytes)
    records  stored chunk bytes, back to back (a zstd frame, or the raw bytes)
    toc      count x ( id[hash size] | u64 offset | u32 stored_len | u32 raw_len | u8 flags )
    footer   u64 toc_offset | u32 count | u8 hash code | 3x | 16s xxh3-128(toc) | 8s b"DSPKEND1"

Records are not self-describing, and the table of contents is written last, so a pack
whose writer was killed would be bytes nobody can cut into chunks. While a pack is being
written, its *journal* (``.tmp-X.toc`` beside ``.tmp-X.pack``) holds the table of
contents so far, each entry appended only once its record's bytes are in the file. A
later writer reads a dead writer's records in journal order, verifies each by hash and
seals the complete ones into a pack (``scan_records``). The journal is deleted when the
pack is published; published packs never have one, so the pack layout is unchanged.

``flags`` bit 0 set means the record is a zstd frame; clear means the raw bytes. Bit 1
(with bit 0) marks a *delta*: the record is a base chunk's id followed by a zstd frame
compressed with that base's bytes as its dictionary, so a small file changed by a few
bytes costs about those bytes. A base is never itself a delta (one step to decode), and
deltas live only in local stores: a push sends the whole chunk. A pack
is named by the hash of its whole content, so a name is its own checksum. Because each
pack carries its table of contents, the chunk index can always be rebuilt by reading
the packs' tails (``ds fsck --repair``).

No chunk is longer than ``MAX_RAW``, the largest ``max_size`` a store's config accepts.
A longer claim, in a table of contents, an index fragment or a journal, is refused
before anything is read or decompressed for it, and ``decode_chunk`` never produces
more: a forged record cannot make a reader allocate gigabytes for one chunk.
"""

from __future__ import annotations

import fcntl
import functools
import os
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import xxhash

from .errors import CorruptObject, FormatError
from .fsutil import fsync_dir, name_path
from .hashing import HashAlgo, algo_by_code
from .limits import MAX_RAW

MAGIC = b"DSPACK\x00\x01"
END_MAGIC = b"DSPKEND1"
HEADER = struct.Struct("<8sB7x")
FOOTER = struct.Struct("<QIB3x16s8s")
TOC_TAIL = struct.Struct("<QIIB")  # after the id
FLAG_ZSTD = 1
FLAG_DELTA = 2  # with FLAG_ZSTD: base id + a frame compressed against the base's bytes
MiB = 1024 * 1024

_local = threading.local()

JOURNAL_EVERY = 1 << 20  # records reach the file, and their journal entries follow, every MiB
# the bytes of a pack being written are sent to the disk this often, on a thread of their own, so the
# fsync that publishes it waits for the last few MiB only: a 64 MiB pack's fsync on the writing thread
# stalled every ingest thread behind the store lock (~40 ms a pack, three times in the L set's add)
WRITEBACK_EVERY = 8 * MiB
# a record this long goes to the file in one write of its own, not copied through the buffer first
# (incompressible chunks of large files, stored as they are)
_DIRECT = 256 * 1024

# A chunk that zstd cannot shrink by at least this share is stored raw: reading it back
# then costs a copy instead of a decompression, and jpg/parquet/npz pass straight through.
MIN_SAVING = 0.03
_SAMPLE = 16 * 1024


class PackEntry(NamedTuple):
    """A pack's record of one chunk. A tuple: made and compared in C (a pack's table of
    contents is read back whole before the pack is published)."""

    chunk_id: bytes
    offset: int
    stored_len: int
    raw_len: int
    flags: int


def _compressor(level: int):
    import zstandard  # imported on first use: keeps read-only commands' start-up short

    cache = getattr(_local, "cctx", None)
    if cache is None:
        cache = _local.cctx = {}
    cctx = cache.get(level)
    if cctx is None:  # one per level and thread: making one costs more than a small chunk's compression
        cctx = cache[level] = zstandard.ZstdCompressor(level=level)
    return cctx


def _decompressor():
    import zstandard

    dctx = getattr(_local, "dctx", None)
    if dctx is None:
        dctx = _local.dctx = zstandard.ZstdDecompressor()
    return dctx


def encode_chunk(raw: bytes | memoryview, level: int) -> tuple[bytes | memoryview, int]:
    """Compress ``raw`` unless it will not shrink; returns (stored bytes, flags).

    Large chunks are probed with a fast level-1 pass over a 16 KiB sample first, so
    already-compressed data costs one small trial instead of a full compression (for a
    small chunk a probe costs more than it saves: measured).
    """
    n = len(raw)
    if n < 64:
        return raw, 0
    cctx = _compressor(level)
    if n > 4 * _SAMPLE:
        probe = _compressor(1) if level != 1 else cctx
        mid = n // 2
        sample = memoryview(raw)[mid : mid + _SAMPLE]
        if len(probe.compress(sample)) > len(sample) * (1 - MIN_SAVING):
            return raw, 0
        cctx = _compressor(level)
    out = cctx.compress(raw)
    if len(out) > n * (1 - MIN_SAVING):
        return raw, 0
    return out, FLAG_ZSTD


def encode_delta(raw: bytes | memoryview, base_id: bytes, base: bytes, level: int) -> bytes:
    """``raw`` compressed against ``base`` (a raw-content dictionary), prefixed by the base's id."""
    import zstandard

    zdict = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    return base_id + zstandard.ZstdCompressor(level=level, dict_data=zdict).compress(raw)


def delta_base(stored: bytes | memoryview, hash_size: int) -> bytes:
    """The base chunk id a delta record starts with."""
    return bytes(stored[:hash_size])


def max_stored(max_raw: int) -> int:
    """The longest stored record for chunks of at most ``max_raw`` bytes: a zstd frame may
    outgrow its input by a little (a writer then stores the raw bytes, but a reader must
    not refuse a valid frame), and a delta starts with an id."""
    return max_raw + max_raw // 128 + 1024


def valid_flags(flags: int) -> bool:
    return not flags & ~(FLAG_ZSTD | FLAG_DELTA) and flags != FLAG_DELTA


_VALID_FLAGS = frozenset(f for f in range(256) if valid_flags(f))


def decode_chunk(stored: bytes, entry: PackEntry, algo: HashAlgo, where: str,
                 base: bytes | None = None, max_raw: int = MAX_RAW) -> bytes:
    """Turn stored bytes back into the chunk and verify them against the chunk id.

    A delta record needs ``base``: the bytes of the chunk its first id names. Nothing
    longer than ``max_raw`` is ever produced: a longer claim is refused before decoding."""
    import zstandard

    if not valid_flags(entry.flags):
        raise CorruptObject(f"chunk {entry.chunk_id.hex()} in {where} at offset {entry.offset} has "
                            f"unknown flags {entry.flags:#x}; run `ds fsck --read-data`", where=where)
    if entry.raw_len > max_raw:
        raise CorruptObject(f"chunk {entry.chunk_id.hex()} in {where} at offset {entry.offset} claims "
                            f"{entry.raw_len} bytes, more than the {max_raw} a chunk may have; the "
                            "record is damaged or forged: run `ds fsck --read-data`", where=where)
    if entry.flags & FLAG_ZSTD:
        try:
            if entry.flags & FLAG_DELTA:
                if base is None:
                    raise zstandard.ZstdError("a delta record, and its base chunk is not at hand")
                stored = stored[algo.size :]
            # a damaged header may claim any size: check it before anything is allocated
            declared = zstandard.frame_content_size(stored)
            if declared not in (-1, entry.raw_len):
                raise zstandard.ZstdError(f"frame claims {declared} bytes")
            if entry.flags & FLAG_DELTA:
                dctx = zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(
                    base, dict_type=zstandard.DICT_TYPE_RAWCONTENT))
            else:
                dctx = _decompressor()
            # the output limit is the entry's length, at most max_raw (checked above)
            raw = dctx.decompress(stored, max_output_size=entry.raw_len)
        except zstandard.ZstdError as e:
            raise CorruptObject(
                f"chunk {entry.chunk_id.hex()} in {where} at offset {entry.offset} does not "
                f"decompress ({e}); run `ds fsck --read-data`",
                where=where,
            ) from None
    else:
        raw = stored
    if len(raw) != entry.raw_len:
        raise CorruptObject(
            f"chunk {entry.chunk_id.hex()} in {where} at offset {entry.offset} has "
            f"{len(raw)} bytes, expected {entry.raw_len}; run `ds fsck --read-data`",
            where=where,
        )
    got = algo.digest(raw)
    if got != entry.chunk_id:
        raise CorruptObject(
            f"chunk {entry.chunk_id.hex()} in {where} at offset {entry.offset} fails "
            f"verification (hash {got.hex()}); run `ds fsck --read-data`",
            where=where,
            expected=entry.chunk_id.hex(),
            got=got.hex(),
        )
    return raw


def pack_path(packs_dir: Path, pack_hex: str) -> Path:
    return packs_dir / pack_hex[:2] / f"{pack_hex}.pack"


def encode_toc(entries: list[PackEntry]) -> bytes:
    return b"".join(
        e.chunk_id + TOC_TAIL.pack(e.offset, e.stored_len, e.raw_len, e.flags) for e in entries
    )


def decode_toc(toc: bytes, count: int, hash_size: int, data_end: int, where: str) -> list[PackEntry]:
    rec = hash_size + TOC_TAIL.size
    if len(toc) != count * rec:
        raise FormatError(f"{where}: table of contents has the wrong length; the pack is damaged")
    rows = _toc_row(hash_size).iter_unpack(toc)  # unpacked in C
    out = [PackEntry(*row) for row in rows]
    most = max_stored(MAX_RAW)
    # every record checked in one pass of plain comparisons; the first that fails is decoded
    # again below for the message
    bad = next((i for i, e in enumerate(out)
                if e.offset < HEADER.size or e.offset + e.stored_len > data_end or e.flags not in _VALID_FLAGS
                or e.flags & FLAG_DELTA and e.stored_len <= hash_size
                or e.raw_len > MAX_RAW or e.stored_len > most), None)
    if bad is not None:
        e = out[bad]
        if e.offset >= HEADER.size and e.offset + e.stored_len <= data_end and e.flags in _VALID_FLAGS \
                and not (e.flags & FLAG_DELTA and e.stored_len <= hash_size):
            check_lengths(e.raw_len, e.stored_len, where, f"entry {bad}")
        raise FormatError(f"{where}: entry {bad} points outside the pack; the pack is damaged")
    return out


@functools.cache
def _toc_row(hash_size: int) -> struct.Struct:
    """One record of a table of contents: the id, then ``TOC_TAIL``."""
    return struct.Struct(f"<{hash_size}s{TOC_TAIL.format.lstrip('<')}")


def check_lengths(raw_len: int, stored_len: int, where: str, what: str) -> None:
    """Refuse lengths no chunk can have, before anything is read or allocated for them."""
    if raw_len > MAX_RAW or stored_len > max_stored(MAX_RAW):
        raise FormatError(f"{where}: {what} claims a chunk of {raw_len} bytes stored in {stored_len}, "
                          f"more than the {MAX_RAW} bytes a chunk may have; it is damaged or forged: "
                          "run `ds fsck --repair` (`ds fsck --remote NAME` for a remote's)")


def journal_path(temp_pack: Path) -> Path:
    """Where the journal of the temp pack ``temp_pack`` is (``.tmp-X.pack`` -> ``.tmp-X.toc``)."""
    return temp_pack.with_suffix(".toc")


class PackWriter:
    """Appends encoded chunks to a temp file and publishes it under its content hash.

    The temp file is locked (``flock``) while its writer lives, and its journal lists the
    records already in the file: a killed writer's lock goes with it, so a salvager that
    can take the lock knows the file is orphaned and which of its records are whole. Its
    bytes go to the disk every ``WRITEBACK_EVERY`` on a thread of their own; the fsync that
    publishes it (and reports any error those met) still comes before its rename."""

    def __init__(self, packs_dir: Path, algo: HashAlgo):
        self.packs_dir = packs_dir
        self.algo = algo
        packs_dir.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = _mkstemp(packs_dir)
        self._f = os.fdopen(fd, "wb", buffering=1 << 20)  # few large writes: each one gives up the GIL
        self._journal = -1
        self._hasher = algo.new()
        self._entries: list[PackEntry] = []
        self._journaled = 0  # entries written to the journal
        self._journaled_size = 0  # file bytes they cover
        self._failed = False
        self.published: tuple[str, list[PackEntry]] | None = None  # set once renamed into place
        self.size = 0
        self._writeback: _Writeback | None = None
        self._writeback_error: OSError | None = None
        self._written_back = 0  # file bytes handed to the last early writeback
        try:
            # blocking: a salvager may hold it for a moment, to find the file empty and leave it
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._journal = os.open(journal_path(self.path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            self._write(HEADER.pack(MAGIC, algo.code))
        except BaseException:
            self.abort()
            raise

    @property
    def path(self) -> Path:
        """The temp file being written."""
        return Path(self._tmp)

    @property
    def failed(self) -> bool:
        """A write failed or was interrupted: the writer refuses to go on or to publish."""
        return self._failed

    def _write(self, data: bytes | memoryview) -> None:
        if self._failed:
            raise FormatError("pack writer failed earlier and refuses further writes")
        # failed until this write is whole: an exception anywhere below, even a signal's
        # KeyboardInterrupt between two statements, leaves the writer refusing to publish
        # rather than naming a pack by a hash of other bytes
        self._failed = True
        try:
            if len(data) >= _DIRECT:  # the file's buffer is emptied first, so the order holds
                self._f.flush()
                _write_all(self._f.fileno(), data)
            else:
                self._f.write(data)
        except BaseException as e:
            name_path(e, self.packs_dir)
            raise
        self._hasher.update(data)
        self.size += len(data)
        self._failed = False

    def add(self, chunk_id: bytes, stored: bytes | memoryview, raw_len: int, flags: int) -> None:
        if raw_len > MAX_RAW:
            raise FormatError(f"a chunk of {raw_len} bytes is over the {MAX_RAW}-byte limit; "
                              "nothing was written for it")
        entry = PackEntry(chunk_id, self.size, len(stored), raw_len, flags)
        self._write(stored)
        self._entries.append(entry)
        if self.size - self._journaled_size >= JOURNAL_EVERY:
            self._sync_journal()

    def _sync_journal(self) -> None:
        """The records written so far reach the file, then the journal entries naming them."""
        self._failed = True  # as in _write: an interrupted step leaves the writer refusing
        try:
            self._f.flush()
            _write_all(self._journal, encode_toc(self._entries[self._journaled :]))
        except BaseException as e:
            name_path(e, self.packs_dir)
            raise
        self._journaled, self._journaled_size = len(self._entries), self.size
        self._failed = False
        if self.size - self._written_back >= WRITEBACK_EVERY:
            self._start_writeback()

    def _start_writeback(self) -> None:
        """Send what the file holds so far to the disk on another thread (none if the last
        is still running: it will have less to do at the next)."""
        if self._writeback is not None:
            if self._writeback.running():
                return
            self._join_writeback()
        try:
            self._writeback = _Writeback(self._f.fileno())
        except RuntimeError:  # no thread to be had: the fsync that publishes does it all
            return
        self._written_back = self.size

    def _join_writeback(self) -> None:
        """Wait for the early writeback in flight, if any, keeping the error it met. Before
        the file is synced or closed: its descriptor must not be reused under it."""
        wb = self._writeback
        if wb is not None:
            wb.join()
            self._writeback = None
            self._writeback_error = self._writeback_error or wb.error

    def __len__(self) -> int:
        return len(self._entries)

    def finish(self) -> tuple[str, list[PackEntry]]:
        """Write the table of contents, make the file durable, name it; returns (hex, entries).

        On any failure (a full disk, most often) the temp file is removed: nothing is left.
        """
        try:
            return self.publish()
        except BaseException as e:
            self.abort()
            name_path(e, self.packs_dir)
            raise

    def publish(self) -> tuple[str, list[PackEntry]]:
        """``finish`` without the clean-up: on a failure the temp file and its journal stay
        (closed, the lock released), for a caller that salvages the complete records."""
        try:
            if self._failed:
                raise FormatError("pack writer failed earlier and refuses to publish")
            toc = encode_toc(self._entries)
            toc_offset = self.size
            # Parse the table back before trusting it (cheap, and catches an encoder bug).
            if decode_toc(toc, len(self._entries), self.algo.size, toc_offset, "new pack") != self._entries:
                raise FormatError("pack table of contents does not round-trip; nothing was written")
            self._write(toc)
            self._write(
                FOOTER.pack(toc_offset, len(self._entries), self.algo.code,
                            xxhash.xxh3_128_digest(toc), END_MAGIC)
            )
            self._f.flush()
            self._join_writeback()
            if self._writeback_error is not None:
                # raised here: Linux reports a write-back error once per open file, so the
                # fsync below might not see it again
                raise self._writeback_error
            os.fsync(self._f.fileno())
            self._f.close()
            pack_hex = self._hasher.digest().hex()
            final = pack_path(self.packs_dir, pack_hex)
            final.parent.mkdir(exist_ok=True)
            os.replace(self._tmp, final)
            self.published = (pack_hex, self._entries)
        except BaseException as e:
            name_path(e, self.packs_dir)
            self._failed = True
            self.close()
            raise
        self._drop_journal()
        fsync_dir(final.parent)
        return pack_hex, self._entries

    def close(self) -> None:
        """Close the temp file and its journal, keeping both for a salvager: what was
        buffered is written if it can be, and then the journal names every record this
        writer completed (a salvager still verifies each one)."""
        self._failed = True
        self._join_writeback()  # its error, if any, no longer matters: this file is not published
        try:
            self._f.close()
            flushed = True
        except OSError:
            flushed = False
        if self._journal < 0:
            return
        try:
            if flushed and self._journaled < len(self._entries):
                _write_all(self._journal, encode_toc(self._entries[self._journaled :]))
                self._journaled = len(self._entries)
        except OSError:
            pass  # no room: the journal names fewer records, which loses only those
        finally:
            os.close(self._journal)
            self._journal = -1

    def _drop_journal(self) -> None:
        if self._journal >= 0:
            os.close(self._journal)
            self._journal = -1
        try:
            os.unlink(journal_path(self.path))
        except FileNotFoundError:
            pass

    def abort(self) -> None:
        """Drop the temp file and its journal. Closing may fail again (the buffered tail
        cannot be written to a full disk); the files are removed all the same."""
        try:
            self.close()
        finally:
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass
            self._drop_journal()


class _Writeback:
    """One ``fdatasync`` of a pack being written, on a thread of its own (it releases the GIL
    and waits for the disk, not for a core). The error it meets is kept for the writer."""

    def __init__(self, fd: int):
        self.error: OSError | None = None
        self._thread = threading.Thread(target=self._run, args=(fd,), name="ds-writeback", daemon=True)
        self._thread.start()

    def _run(self, fd: int) -> None:
        try:
            getattr(os, "fdatasync", os.fsync)(fd)  # macOS has no fdatasync
        except OSError as e:
            self.error = e

    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self) -> None:
        self._thread.join()


def written_with(path: Path) -> HashAlgo | None:
    """The hash a pack file's header names, or None (unreadable, or not a pack of ours)."""
    try:
        with open(path, "rb") as f:
            magic, code = HEADER.unpack(f.read(HEADER.size))
        return algo_by_code(code) if magic == MAGIC else None
    except (OSError, struct.error, FormatError):
        return None


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def scan_records(path: Path, algo: HashAlgo, max_raw: int = MAX_RAW,
                 base: Callable[[bytes], bytes | None] | None = None) -> Iterator[PackEntry]:
    """The complete records of the pack being written at ``path`` (a temp pack), found
    through its journal, never through a table of contents or footer: each one read back,
    decoded and verified against its id before it is yielded.

    Records must follow one another from the header on; the scan stops at the first that
    does not, that is incomplete (the file or the journal ends inside it), claims more
    than ``max_raw`` bytes, or fails verification: what follows a torn write is never
    trusted. A delta is verified only if ``base(id)`` returns its base chunk's bytes;
    otherwise it is skipped (it is whole, only not checkable here) and the scan goes on.
    A pack with no journal (a published one, or one written before journals) cannot be
    scanned: FormatError."""
    where = str(path)
    try:
        journal = journal_path(path).read_bytes()
    except FileNotFoundError:
        raise FormatError(f"{where}: no journal beside it: only its table of contents can list "
                          "its records") from None
    rec = algo.size + TOC_TAIL.size
    with open(path, "rb") as f:
        head = f.read(HEADER.size)
        if len(head) < HEADER.size:
            return
        magic, code = HEADER.unpack(head)
        if magic != MAGIC:
            raise FormatError(f"{where}: not a pack file (bad magic)")
        if code != algo.code:
            raise FormatError(f"{where}: pack uses hash code {code}, the store {algo.name}")
        expected = HEADER.size
        for at in range(0, len(journal) - rec + 1, rec):
            chunk_id = journal[at : at + algo.size]
            offset, stored_len, raw_len, flags = TOC_TAIL.unpack_from(journal, at + algo.size)
            if offset != expected or raw_len > max_raw or stored_len > max_stored(max_raw) \
                    or not valid_flags(flags) or flags & FLAG_DELTA and stored_len <= algo.size:
                return
            stored = os.pread(f.fileno(), stored_len, offset)
            if len(stored) < stored_len:
                return
            expected = offset + stored_len
            entry = PackEntry(chunk_id, offset, stored_len, raw_len, flags)
            base_bytes = None
            if flags & FLAG_DELTA:
                base_bytes = base(delta_base(stored, algo.size)) if base is not None else None
                if base_bytes is None:
                    continue
            try:
                decode_chunk(stored, entry, algo, where, base_bytes, max_raw)
            except CorruptObject:
                return
            yield entry


def _mkstemp(folder: Path) -> tuple[int, str]:
    import tempfile

    return tempfile.mkstemp(prefix=".tmp-", suffix=".pack", dir=folder)


def read_pack_toc(path: Path) -> tuple[HashAlgo, list[PackEntry]]:
    """Read and check a pack's table of contents (not its records)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        return toc_of(size, lambda start, end: os.pread(f.fileno(), end - start, start), str(path))


def toc_of(size: int, read: Callable[[int, int], bytes], where: str) -> tuple[HashAlgo, list[PackEntry]]:
    """A pack's table of contents, checked, from its ``size`` and ``read(start, end)`` of its
    bytes: two reads at its tail, so a remote pack is indexed without downloading it."""
    if size < HEADER.size + FOOTER.size:
        raise FormatError(f"{where}: too short to be a pack; it is truncated")
    magic, code = HEADER.unpack(read(0, HEADER.size))
    if magic != MAGIC:
        raise FormatError(f"{where}: not a pack file (bad magic)")
    toc_offset, count, code2, check, end = FOOTER.unpack(read(size - FOOTER.size, size))
    if end != END_MAGIC or code2 != code:
        raise FormatError(f"{where}: pack footer is damaged or the pack is truncated")
    algo = algo_by_code(code)
    toc_len = size - FOOTER.size - toc_offset
    if toc_offset < HEADER.size or toc_len != count * (algo.size + TOC_TAIL.size):
        raise FormatError(f"{where}: pack footer is inconsistent; the pack is damaged")
    toc = read(toc_offset, toc_offset + toc_len)
    if xxhash.xxh3_128_digest(toc) != check:
        raise FormatError(f"{where}: pack table of contents fails its checksum")
    return algo, decode_toc(toc, count, algo.size, toc_offset, where)


class PackReader:
    """Random access to one pack's records by (offset, length), by ``pread``."""

    def __init__(self, path: Path):
        self.path = path
        self._fd = -1
        self._fd = os.open(path, os.O_RDONLY)
        self.size = os.fstat(self._fd).st_size

    def read(self, offset: int, length: int) -> bytes:
        if offset + length > self.size:
            raise CorruptObject(f"{self.path}: read past the end at offset {offset}; pack truncated")
        data = os.pread(self._fd, length, offset)
        if len(data) != length:
            raise CorruptObject(f"{self.path}: short read at offset {offset}; pack truncated")
        return data

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()
