"""The faster write path stores exactly the bytes the format names.

Large records go to the pack file in writes of their own, the pack's bytes are sent to the
disk early on a thread of their own, and a large file's first block is read short: none of
these may change a chunk boundary, an id, a stored record or the pack layout, and an error
an early write-back meets must still stop the pack from being published.
"""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path

import pytest
import xxhash

from objstore import ingest, packs
from objstore.chunking import ChunkParams, cut
from objstore.chunkstore import ChunkStore
from objstore.hashing import XXH3_128
from objstore.ingest import Ingestor, Job
from objstore.manifest import FileEntry
from objstore.packs import (
    END_MAGIC,
    FOOTER,
    HEADER,
    MAGIC,
    PackEntry,
    PackWriter,
    encode_chunk,
    encode_toc,
    read_pack_toc,
)
from objstore.scan import Stat

PARAMS = ChunkParams(avg_size=64 * 1024, min_size=16 * 1024, max_size=256 * 1024)


def _mixed(size: int, seed: int) -> bytes:
    """Random bytes (stored raw, in large records) and text (zstd frames), interleaved."""
    rnd = random.Random(seed)
    out, n = bytearray(), 0
    while len(out) < size:
        if n % 2:
            out += rnd.randbytes(rnd.randint(100_000, 700_000))
        else:
            out += b"".join(b"%d,%d,row %d\n" % (rnd.randint(0, 999), i, i) for i in range(20_000))
        n += 1
    return bytes(out[:size])


def _expected_pack(entries: list[PackEntry], records: list[bytes]) -> bytes:
    """A pack built from the format's definition alone (packs.py's docstring)."""
    toc = encode_toc(entries)
    body = HEADER.pack(MAGIC, XXH3_128.code) + b"".join(records)
    return body + toc + FOOTER.pack(len(body), len(entries), XXH3_128.code, xxhash.xxh3_128_digest(toc),
                                    END_MAGIC)


def _add_one(tmp: Path, path: Path, pack_target: int) -> tuple[FileEntry, ChunkStore]:
    chunks = ChunkStore(tmp, XXH3_128, pack_target=pack_target)
    job = Job(path.name, Stat.of(os.lstat(path)), str(path.parent))
    out = Ingestor(chunks, PARAMS, 3, workers=2).run([job])
    chunks.flush()
    return out[path.name], chunks


def test_large_file_packs_are_the_format_byte_for_byte(tmp_path: Path, monkeypatch) -> None:
    # write-backs every 64 KiB, records over 32 KiB written directly, packs of ~1 MiB
    monkeypatch.setattr(packs, "WRITEBACK_EVERY", 64 * 1024)
    monkeypatch.setattr(packs, "_DIRECT", 32 * 1024)
    monkeypatch.setattr(ingest, "_BLOCK", 1024 * 1024)
    data = _mixed(7 * 1024 * 1024 + 12_345, seed=3)
    src = tmp_path / "w" / "big.bin"
    src.parent.mkdir()
    src.write_bytes(data)
    entry, chunks = _add_one(tmp_path / "s", src, pack_target=1024 * 1024)

    pieces = [bytes(p) for p in cut(data, PARAMS)]
    assert entry.hash == XXH3_128.digest(data)
    assert entry.chunk_list() == tuple((XXH3_128.digest(p), len(p)) for p in pieces)
    raw_of = {XXH3_128.digest(p): p for p in pieces}
    order = list(dict.fromkeys(XXH3_128.digest(p) for p in pieces))  # first occurrence, file order

    found: list[tuple[int, list[bytes]]] = []
    pack_files = sorted(chunks.packs_dir.glob("*/*.pack"))
    assert len(pack_files) > 2  # several packs rolled
    for path in pack_files:
        _algo, entries = read_pack_toc(path)
        records, offset = [], HEADER.size
        for e in entries:
            raw = raw_of[e.chunk_id]
            stored, flags = encode_chunk(raw, 3)
            assert (e.offset, e.stored_len, e.raw_len, e.flags) == (offset, len(stored), len(raw), flags)
            records.append(bytes(stored))
            offset += len(stored)
        assert path.read_bytes() == _expected_pack(entries, records)
        assert path.stem == XXH3_128.digest(path.read_bytes()).hex()
        found.append((order.index(entries[0].chunk_id), [e.chunk_id for e in entries]))
    assert [c for _first, ids in sorted(found) for c in ids] == order  # every chunk once, in order
    assert not list(chunks.packs_dir.glob(".tmp-*"))


@pytest.mark.parametrize("size_blocks", [0.5, 1, 2, 3.7])
def test_the_short_first_read_keeps_every_cut_point(tmp_path: Path, monkeypatch, size_blocks: float) -> None:
    block = 4 * PARAMS.max_size  # the first read is half of one
    monkeypatch.setattr(ingest, "_BLOCK", block)
    for extra in (-1, 0, 1, PARAMS.max_size):
        size = max(PARAMS.min_size + 1, int(size_blocks * block) + extra)
        data = _mixed(size, seed=size)
        src = tmp_path / f"w{size}" / "f.bin"
        src.parent.mkdir()
        src.write_bytes(data)
        entry, chunks = _add_one(tmp_path / f"s{size}", src, pack_target=64 * 1024 * 1024)
        assert entry.chunk_list() == tuple((XXH3_128.digest(p), len(p)) for p in cut(data, PARAMS))
        assert b"".join(chunks.get(c) for c, _n in entry.chunk_list()) == data


def _write_pack(folder: Path, records: list[bytes]) -> str:
    writer = PackWriter(folder, XXH3_128)
    for raw in records:
        stored, flags = encode_chunk(raw, 3)
        writer.add(XXH3_128.digest(raw), stored, len(raw), flags)
    pack_hex, _entries = writer.finish()
    return pack_hex


def test_direct_writes_and_early_writebacks_leave_the_same_pack(tmp_path: Path, monkeypatch) -> None:
    rnd = random.Random(9)
    records = [rnd.randbytes(rnd.choice([50, 3000, 40_000, 300_000, 900_000])) for _ in range(60)]
    monkeypatch.setattr(packs, "_DIRECT", 1 << 40)
    monkeypatch.setattr(packs, "WRITEBACK_EVERY", 1 << 40)
    plain = _write_pack(tmp_path / "plain", records)
    monkeypatch.setattr(packs, "_DIRECT", 1000)
    monkeypatch.setattr(packs, "WRITEBACK_EVERY", 100_000)
    fast = _write_pack(tmp_path / "fast", records)
    assert plain == fast
    a = (tmp_path / "plain" / plain[:2] / f"{plain}.pack").read_bytes()
    b = (tmp_path / "fast" / fast[:2] / f"{fast}.pack").read_bytes()
    assert a == b


def test_an_early_writeback_error_stops_the_publish(tmp_path: Path, monkeypatch) -> None:
    """Linux reports a write-back error once per open file: the one the early write-back
    met must fail the publish, or the fsync after it could pass over lost bytes."""
    monkeypatch.setattr(packs, "WRITEBACK_EVERY", 64 * 1024)
    calls = []

    def fdatasync(fd: int) -> None:
        calls.append(fd)
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(packs.os, "fdatasync", fdatasync)
    folder = tmp_path / "packs"
    writer = PackWriter(folder, XXH3_128)
    rnd = random.Random(4)
    for _ in range(30):  # 3 MB: journal syncs (each MiB) start write-backs
        raw = rnd.randbytes(100_000)
        writer.add(XXH3_128.digest(raw), raw, len(raw), 0)
    with pytest.raises(OSError) as failed:
        writer.publish()
    assert failed.value.errno == errno.EIO
    assert calls
    assert writer.failed and writer.published is None
    assert not list(folder.glob("*/*.pack"))  # nothing named
    writer.abort()
    assert not list(folder.glob(".tmp-*"))
