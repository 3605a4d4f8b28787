"""packs.py (chunk encoding, pack files), index.py (fragments) and chunkstore.py."""

from __future__ import annotations

import gc
import itertools
import os
import random
import struct
import sys
from pathlib import Path

import pytest
import xxhash
import zstandard

from objstore import index as idx
from objstore import packs
from objstore.chunkstore import ChunkStore
from objstore.errors import CorruptObject, FormatError
from objstore.hashing import BLAKE3, XXH3_128, HashAlgo
from objstore.index import ChunkIndex, Fragment, Location, encode_fragment
from objstore.packs import (
    FLAG_ZSTD,
    PackEntry,
    PackReader,
    PackWriter,
    decode_chunk,
    encode_chunk,
    pack_path,
    read_pack_toc,
)


def rand_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def text_bytes(n: int, seed: int) -> bytes:
    """Compressible, but not trivially so."""
    rng = random.Random(seed)
    words = [b"alpha", b"beta", b"gamma", b"delta", b"epsilon", b"zeta", b"eta", b"theta"]
    out = bytearray()
    while len(out) < n:
        out += rng.choice(words) + b" "
    return bytes(out[:n])


def encode(raw: bytes, algo: HashAlgo = XXH3_128, level: int = 3) -> tuple[bytes, bytes, int]:
    stored, flags = encode_chunk(raw, level)
    return algo.digest(raw), bytes(stored), flags


def build_pack(folder: Path, chunks: list[bytes], algo: HashAlgo = XXH3_128) -> tuple[Path, list[PackEntry]]:
    w = PackWriter(folder, algo)
    for raw in chunks:
        cid, stored, flags = encode(raw, algo)
        w.add(cid, stored, len(raw), flags)
    pack_hex, entries = w.finish()
    return pack_path(folder, pack_hex), entries


MIXED = [text_bytes(20_000, 1), rand_bytes(20_000, 2), b"tiny", text_bytes(300_000, 3), rand_bytes(1, 4)]


# -- encode_chunk / decode_chunk --------------------------------------------------------


@pytest.mark.parametrize("n", [64, 1000, 100_000, 1_000_000])
def test_incompressible_data_is_stored_raw(n):
    raw = rand_bytes(n, n)
    stored, flags = encode_chunk(raw, 3)
    assert flags == 0
    assert bytes(stored) == raw


@pytest.mark.parametrize("n", [64, 1000, 100_000, 1_000_000])
@pytest.mark.parametrize("level", [1, 3, 19])
def test_compressible_data_is_stored_zstd(n, level):
    raw = text_bytes(n, n) if n > 64 else b"a" * n
    stored, flags = encode_chunk(raw, level)
    assert flags == FLAG_ZSTD
    assert len(stored) < n
    assert zstandard.ZstdDecompressor().decompress(bytes(stored)) == raw


@pytest.mark.parametrize("n", [0, 1, 63])
def test_tiny_chunks_are_stored_raw_even_if_compressible(n):
    raw = b"\0" * n
    stored, flags = encode_chunk(raw, 3)
    assert (bytes(stored), flags) == (raw, 0)


@pytest.mark.parametrize("raw", [text_bytes(50_000, 5), rand_bytes(50_000, 6), b"", b"x"])
@pytest.mark.parametrize("algo", [XXH3_128, BLAKE3], ids=lambda a: a.name)
def test_decode_chunk_round_trip(raw, algo):
    cid, stored, flags = encode(raw, algo)
    entry = PackEntry(cid, 16, len(stored), len(raw), flags)
    assert decode_chunk(stored, entry, algo, "test") == raw


def _entry(raw: bytes, stored: bytes, flags: int, raw_len: int | None = None) -> PackEntry:
    return PackEntry(XXH3_128.digest(raw), 16, len(stored), len(raw) if raw_len is None else raw_len, flags)


def test_decode_chunk_raw_flipped_byte_at_every_position():
    raw = rand_bytes(300, 7)
    cid, stored, flags = encode(raw)
    assert flags == 0
    entry = PackEntry(cid, 16, len(stored), len(raw), flags)
    for i in range(len(stored)):
        bad = bytearray(stored)
        bad[i] ^= 0x01 << (i % 8)
        with pytest.raises(CorruptObject, match="fails verification") as exc:
            decode_chunk(bytes(bad), entry, XXH3_128, "pack p")
        assert exc.value.expected == cid.hex()
        assert exc.value.got == XXH3_128.digest(bytes(bad)).hex()
        assert exc.value.where == "pack p"


def test_decode_chunk_zstd_flipped_payload_byte_is_detected():
    raw = text_bytes(5000, 8)
    cid, stored, flags = encode(raw)
    assert flags == FLAG_ZSTD
    entry = PackEntry(cid, 16, len(stored), len(raw), flags)
    header = zstandard.frame_header_size(stored)
    for i in range(header, len(stored)):
        for bit in range(8):
            bad = bytearray(stored)
            bad[i] ^= 1 << bit
            try:
                got = decode_chunk(bytes(bad), entry, XXH3_128, "p")
            except CorruptObject:
                continue
            assert got == raw  # anything that decodes has been verified against the id


def test_decode_chunk_zstd_flipped_magic_is_detected():
    raw = text_bytes(5000, 9)
    cid, stored, flags = encode(raw)
    entry = PackEntry(cid, 16, len(stored), len(raw), flags)
    for i in range(4):
        bad = bytearray(stored)
        bad[i] ^= 0xFF
        with pytest.raises(CorruptObject, match="does not decompress"):
            decode_chunk(bytes(bad), entry, XXH3_128, "p")


def test_decode_chunk_zstd_header_claiming_huge_size_is_corrupt():
    raw = text_bytes(5000, 10)
    cid, stored, flags = encode(raw)
    h = zstandard.frame_header_size(stored)
    # frame header descriptor 0xE0: single segment, 8-byte frame content size field
    forged = stored[:4] + bytes([0xE0]) + struct.pack("<Q", 1 << 62) + stored[h:]
    assert zstandard.frame_content_size(forged) == 1 << 62
    entry = PackEntry(cid, 16, len(forged), len(raw), FLAG_ZSTD)
    with pytest.raises(CorruptObject):
        decode_chunk(forged, entry, XXH3_128, "p")


@pytest.mark.parametrize("delta", [-1, 1, 1000])
@pytest.mark.parametrize("kind", ["raw", "zstd"])
def test_decode_chunk_wrong_raw_len(kind, delta):
    raw = rand_bytes(4000, 11) if kind == "raw" else text_bytes(4000, 11)
    cid, stored, flags = encode(raw)
    assert flags == (FLAG_ZSTD if kind == "zstd" else 0)
    entry = PackEntry(cid, 16, len(stored), len(raw) + delta, flags)
    with pytest.raises(CorruptObject):
        decode_chunk(stored, entry, XXH3_128, "p")


@pytest.mark.parametrize("content_size", [True, False])
def test_decode_chunk_zstd_frame_longer_than_raw_len(content_size):
    """A frame that decompresses to more than raw_len bytes is corrupt, never truncated to fit."""
    raw = text_bytes(1000, 12)
    longer = raw + text_bytes(50_000, 13)
    frame = zstandard.ZstdCompressor(write_content_size=content_size).compress(longer)
    # the id even matches the first raw_len bytes: only the length check can catch this
    entry = PackEntry(XXH3_128.digest(raw), 16, len(frame), len(raw), FLAG_ZSTD)
    with pytest.raises(CorruptObject):
        decode_chunk(frame, entry, XXH3_128, "p")


def test_decode_chunk_raw_bytes_with_zstd_flag_is_corrupt():
    raw = rand_bytes(1000, 14)
    with pytest.raises(CorruptObject, match="does not decompress"):
        decode_chunk(raw, _entry(raw, raw, FLAG_ZSTD), XXH3_128, "p")


def test_decode_chunk_wrong_algo_is_corrupt():
    raw = text_bytes(1000, 15)
    cid, stored, flags = encode(raw, XXH3_128)
    entry = PackEntry(cid, 16, len(stored), len(raw), flags)
    with pytest.raises(CorruptObject):
        decode_chunk(stored, entry, BLAKE3, "p")


# -- pack files -----------------------------------------------------------------------


@pytest.mark.parametrize("algo", [XXH3_128, BLAKE3], ids=lambda a: a.name)
def test_pack_round_trip(tmp_path, algo):
    path, entries = build_pack(tmp_path, MIXED, algo)
    got_algo, toc = read_pack_toc(path)
    assert got_algo is algo
    assert toc == entries
    assert [e.raw_len for e in toc] == [len(c) for c in MIXED]
    assert [e.chunk_id for e in toc] == [algo.digest(c) for c in MIXED]
    assert {e.flags for e in toc} == {0, FLAG_ZSTD}
    # records are back to back after the 16-byte header
    assert toc[0].offset == packs.HEADER.size
    for a, b in zip(toc, toc[1:], strict=False):
        assert b.offset == a.offset + a.stored_len
    reader = PackReader(path)
    try:
        for e, raw in zip(toc, MIXED, strict=True):
            assert decode_chunk(reader.read(e.offset, e.stored_len), e, algo, str(path)) == raw
    finally:
        reader.close()


@pytest.mark.parametrize("algo", [XXH3_128, BLAKE3], ids=lambda a: a.name)
def test_pack_is_named_by_the_hash_of_its_bytes(tmp_path, algo):
    path, _ = build_pack(tmp_path, MIXED, algo)
    data = path.read_bytes()
    name = algo.digest(data).hex()
    assert path.name == f"{name}.pack"
    assert path.parent.name == name[:2]
    assert path.parent.parent == tmp_path
    assert len(name) == 2 * algo.size
    # no temp file left behind
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [path]


def test_pack_layout_header_and_footer(tmp_path):
    path, entries = build_pack(tmp_path, MIXED)
    data = path.read_bytes()
    magic, code = packs.HEADER.unpack_from(data, 0)
    assert (magic, code) == (packs.MAGIC, XXH3_128.code)
    toc_offset, count, code2, check, end = packs.FOOTER.unpack_from(data, len(data) - packs.FOOTER.size)
    assert (count, code2, end) == (len(MIXED), XXH3_128.code, packs.END_MAGIC)
    toc = data[toc_offset : len(data) - packs.FOOTER.size]
    assert len(toc) == count * (16 + packs.TOC_TAIL.size)
    assert xxhash.xxh3_128_digest(toc) == check
    assert toc == packs.encode_toc(entries)


def test_same_content_gives_same_pack_name(tmp_path):
    a, _ = build_pack(tmp_path / "a", MIXED)
    b, _ = build_pack(tmp_path / "b", MIXED)
    c, _ = build_pack(tmp_path / "c", MIXED[::-1])
    assert a.name == b.name != c.name


def test_empty_pack_round_trip(tmp_path):
    path, entries = build_pack(tmp_path, [])
    assert entries == []
    assert read_pack_toc(path) == (XXH3_128, [])
    assert path.stat().st_size == packs.HEADER.size + packs.FOOTER.size


def test_pack_writer_abort_leaves_nothing(tmp_path):
    w = PackWriter(tmp_path, XXH3_128)
    w.add(XXH3_128.digest(b"x" * 1000), b"x" * 1000, 1000, 0)
    assert len(w) == 1 and w.size == packs.HEADER.size + 1000
    w.abort()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    with pytest.raises(FormatError):
        w.add(b"\0" * 16, b"y", 1, 0)


@pytest.fixture
def small_pack(tmp_path) -> tuple[Path, bytes]:
    path, _ = build_pack(tmp_path / "p", [text_bytes(500, 20), rand_bytes(100, 21), b"abc"])
    return path, path.read_bytes()


def test_truncated_pack_at_every_length_is_format_error(tmp_path, small_pack):
    _, data = small_pack
    victim = tmp_path / "cut.pack"
    for n in range(len(data)):
        victim.write_bytes(data[:n])
        with pytest.raises(FormatError):
            read_pack_toc(victim)


def test_pack_with_appended_bytes_is_format_error(tmp_path, small_pack):
    _, data = small_pack
    victim = tmp_path / "long.pack"
    victim.write_bytes(data + b"\0")
    with pytest.raises(FormatError):
        read_pack_toc(victim)


def test_pack_bad_magic(tmp_path, small_pack):
    _, data = small_pack
    victim = tmp_path / "x.pack"
    victim.write_bytes(b"DSPACK\x00\x02" + data[8:])
    with pytest.raises(FormatError, match="bad magic"):
        read_pack_toc(victim)
    victim.write_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(FormatError, match="bad magic"):
        read_pack_toc(victim)


def _with_footer(data: bytes, **changes) -> bytes:
    fields = dict(zip(("toc_offset", "count", "code", "check", "end"),
                      packs.FOOTER.unpack_from(data, len(data) - packs.FOOTER.size), strict=True))
    fields.update(changes)
    return data[: -packs.FOOTER.size] + packs.FOOTER.pack(*fields.values())


@pytest.mark.parametrize(
    "changes",
    [
        {"end": b"DSPKEND2"},
        {"code": 2},  # disagrees with the header
        {"toc_offset": 0},
        {"toc_offset": 15},
        {"toc_offset": 17},
        {"toc_offset": 1 << 40},
        {"count": 2},
        {"count": 4},
        {"count": 0xFFFFFFFF},
        {"check": b"\0" * 16},
    ],
    ids=lambda c: next(iter(c)) + "=" + str(next(iter(c.values())))[:12],
)
def test_pack_bad_footer(tmp_path, small_pack, changes):
    _, data = small_pack
    victim = tmp_path / "x.pack"
    victim.write_bytes(_with_footer(data, **changes))
    with pytest.raises(FormatError):
        read_pack_toc(victim)


def test_pack_every_flipped_byte_in_toc_or_footer_is_format_error(tmp_path, small_pack):
    _, data = small_pack
    footer = len(data) - packs.FOOTER.size
    toc_offset = packs.FOOTER.unpack_from(data, footer)[0]
    reserved = range(footer + 13, footer + 16)  # the footer's 3 padding bytes are not checked
    victim = tmp_path / "x.pack"
    positions = [*range(8), *range(toc_offset, len(data))]
    for i in positions:
        if i in reserved:
            continue
        for bit in range(8):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            victim.write_bytes(bytes(bad))
            with pytest.raises(FormatError):
                read_pack_toc(victim)


def _forge(entries_raw: list[tuple[bytes, int, int, int, int]], body_len: int, code: int = 1) -> bytes:
    """A pack whose toc checksum is right but whose entries are whatever we say."""
    hsize = 16 if code == 1 else 32
    data = packs.HEADER.pack(packs.MAGIC, code) + b"\0" * body_len
    toc = b"".join(cid.ljust(hsize, b"\0") + packs.TOC_TAIL.pack(o, s, r, f)
                   for cid, o, s, r, f in entries_raw)
    return data + toc + packs.FOOTER.pack(len(data), len(entries_raw), code,
                                          xxhash.xxh3_128_digest(toc), packs.END_MAGIC)


@pytest.mark.parametrize(
    "entry",
    [
        (b"a", 0, 10, 10, 0),  # inside the header
        (b"a", 15, 10, 10, 0),
        (b"a", 16, 101, 101, 0),  # past the records, into the toc
        (b"a", 100, 17, 17, 0),
        (b"a", 16, 10, 10, 2),  # unknown flag
        (b"a", 16, 10, 10, 0x81),
    ],
)
def test_pack_toc_entry_pointing_outside_is_format_error(tmp_path, entry):
    victim = tmp_path / "x.pack"
    victim.write_bytes(_forge([(b"ok", 16, 100, 100, 0), entry], body_len=100))
    with pytest.raises(FormatError, match="entry 1 points outside"):
        read_pack_toc(victim)


def test_forged_pack_with_valid_entries_is_accepted(tmp_path):
    """Control for the test above: the forging helper itself produces readable packs."""
    victim = tmp_path / "x.pack"
    victim.write_bytes(_forge([(b"a", 16, 60, 60, 0), (b"b", 76, 40, 999, 1)], body_len=100))
    algo, toc = read_pack_toc(victim)
    assert algo is XXH3_128
    assert [(e.offset, e.stored_len, e.raw_len, e.flags) for e in toc] == [(16, 60, 60, 0), (76, 40, 999, 1)]


def test_pack_with_unknown_hash_code_is_format_error(tmp_path):
    victim = tmp_path / "x.pack"
    victim.write_bytes(_forge([], body_len=0, code=3))
    with pytest.raises(FormatError):
        read_pack_toc(victim)


def test_pack_reader_on_missing_file_fails_cleanly(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr(sys, "unraisablehook", seen.append)

    def attempt() -> None:
        with pytest.raises(FileNotFoundError):
            PackReader(tmp_path / "nope.pack")

    attempt()
    gc.collect()
    assert [type(u.exc_value).__name__ for u in seen] == []


def test_pack_reader_refuses_reads_past_the_end(small_pack):
    path, data = small_pack
    r = PackReader(path)
    try:
        assert r.read(0, 8) == packs.MAGIC
        with pytest.raises(CorruptObject):
            r.read(len(data) - 4, 5)
    finally:
        r.close()


# -- index fragments -----------------------------------------------------------------------


def rand_ids(n: int, seed: int, size: int = 16) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(size) for _ in range(n)]


def rand_loc(rng: random.Random, packs_hex: list[str]) -> Location:
    return Location(rng.choice(packs_hex), rng.randrange(16, 1 << 40), rng.randrange(packs.MAX_RAW + 1),
                    rng.randrange(packs.MAX_RAW + 1), rng.randrange(2))


def make_entries(n: int, seed: int, npacks: int = 5, size: int = 16) -> dict[bytes, Location]:
    rng = random.Random(seed)
    packs_hex = [rng.randbytes(size).hex() for _ in range(npacks)]
    ids = rand_ids(n, seed + 1000, size)
    # make sure the fanout edges (first byte 0x00 and 0xff) are exercised
    ids[0] = b"\0" * size
    ids[1] = b"\xff" * size
    ids[2] = b"\0" * (size - 1) + b"\1"
    return {cid: rand_loc(rng, packs_hex) for cid in ids}


def write_frag(path: Path, algo: HashAlgo, entries) -> Path:
    path.write_bytes(encode_fragment(algo, entries))
    return path


@pytest.mark.parametrize("algo", [XXH3_128, BLAKE3], ids=lambda a: a.name)
def test_fragment_lookup_hit_and_miss(tmp_path, algo):
    entries = make_entries(5000, 1, size=algo.size)
    frag = Fragment(write_frag(tmp_path / "f.idx", algo, entries.items()))
    try:
        assert frag.algo is algo
        assert frag.count == len(entries)
        assert len(frag.packs) == 5
        for cid, loc in entries.items():
            assert frag.lookup(cid) == loc
        for cid in rand_ids(5000, 99, algo.size):
            if cid not in entries:
                assert frag.lookup(cid) is None
        # near misses: neighbours of present ids
        for cid in list(entries)[:500]:
            n = int.from_bytes(cid, "big")
            for other in (n - 1, n + 1):
                if 0 <= other < 1 << (8 * algo.size):
                    near = other.to_bytes(algo.size, "big")
                    if near not in entries:
                        assert frag.lookup(near) is None
        assert list(frag) == sorted(entries.items())
    finally:
        frag.close()


def test_fragment_fanout_is_cumulative(tmp_path):
    entries = make_entries(3000, 2)
    frag = Fragment(write_frag(tmp_path / "f.idx", XXH3_128, entries.items()))
    try:
        for b in range(256):
            assert frag.fanout[b] == sum(1 for cid in entries if cid[0] <= b)
    finally:
        frag.close()


def test_empty_fragment(tmp_path):
    frag = Fragment(write_frag(tmp_path / "f.idx", XXH3_128, []))
    try:
        assert frag.count == 0 and list(frag) == []
        assert frag.lookup(b"\0" * 16) is None and frag.lookup(b"\xff" * 16) is None
    finally:
        frag.close()


def test_fragment_duplicate_ids_keep_the_first_location(tmp_path):
    cid = b"\x42" * 16
    first = Location("aa" * 16, 16, 1, 1, 0)
    second = Location("bb" * 16, 99, 2, 2, 1)
    other = (b"\x41" * 16, Location("cc" * 16, 16, 3, 3, 0))
    data = encode_fragment(XXH3_128, [(cid, first), other, (cid, second), (cid, first)])
    assert data == encode_fragment(XXH3_128, [(cid, first), other])
    frag = Fragment(write_frag(tmp_path / "f.idx", XXH3_128, [(cid, first), other, (cid, second)]))
    try:
        assert frag.count == 2
        assert frag.lookup(cid) == first
        assert list(frag) == [other, (cid, first)]
        assert "bb" * 16 not in frag.packs  # a dropped duplicate does not list its pack
    finally:
        frag.close()


def test_encode_fragment_refuses_wrong_id_size():
    with pytest.raises(FormatError):
        encode_fragment(XXH3_128, [(b"\1" * 32, Location("aa" * 16, 16, 1, 1, 0))])
    with pytest.raises(FormatError):
        encode_fragment(BLAKE3, [(b"\1" * 16, Location("aa" * 32, 16, 1, 1, 0))])


@pytest.fixture
def frag_bytes() -> bytes:
    return encode_fragment(XXH3_128, list(make_entries(3, 3, npacks=2).items()))


def test_truncated_fragment_is_format_error(tmp_path, frag_bytes):
    victim = tmp_path / "x.idx"
    for n in range(len(frag_bytes)):
        victim.write_bytes(frag_bytes[:n])
        with pytest.raises(FormatError):
            Fragment(victim)


def test_bit_flipped_fragment_is_format_error(tmp_path, frag_bytes):
    victim = tmp_path / "x.idx"
    for i in range(len(frag_bytes)):
        bad = bytearray(frag_bytes)
        bad[i] ^= 1 << (i % 8)
        victim.write_bytes(bytes(bad))
        with pytest.raises(FormatError):
            Fragment(victim)


def test_fragment_appended_bytes_is_format_error(tmp_path, frag_bytes):
    victim = tmp_path / "x.idx"
    victim.write_bytes(frag_bytes + b"\0" * 16)
    with pytest.raises(FormatError):
        Fragment(victim)


def _checksummed(body: bytes) -> bytes:
    return body + xxhash.xxh3_128_digest(body)


def test_fragment_with_good_checksum_but_bad_header_is_format_error(tmp_path, frag_bytes):
    body = frag_bytes[: -idx.CHECK]
    magic, code, hsize, npacks, count = idx.HEADER.unpack_from(body, 0)
    victim = tmp_path / "x.idx"
    for header in [
        idx.HEADER.pack(b"DSIDX\0\0\2", code, hsize, npacks, count),
        idx.HEADER.pack(magic, code, 32, npacks, count),
        idx.HEADER.pack(magic, code, hsize, npacks, count + 1),
        idx.HEADER.pack(magic, code, hsize, npacks - 1, count),
    ]:
        victim.write_bytes(_checksummed(header + body[idx.HEADER.size :]))
        with pytest.raises(FormatError):
            Fragment(victim)


def test_fragment_entry_naming_a_missing_pack_is_format_error(tmp_path):
    body = encode_fragment(XXH3_128, [(b"\1" * 16, Location("aa" * 16, 16, 1, 1, 0))])[: -idx.CHECK]
    pos = len(body) - idx.LOC.size
    body = body[:pos] + struct.pack("<I", 1) + body[pos + 4 :]  # pack no 1 of 1
    frag = Fragment(write_frag_raw(tmp_path / "x.idx", _checksummed(body)))
    try:
        with pytest.raises(FormatError, match="names pack 1 of 1"):
            frag.lookup(b"\1" * 16)
    finally:
        frag.close()


def write_frag_raw(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_fragment_with_huge_pack_count_is_format_error(tmp_path):
    header = idx.HEADER.pack(idx.MAGIC, XXH3_128.code, 16, 100_000, 0)
    victim = write_frag_raw(tmp_path / "x.idx", _checksummed(header + idx.FANOUT.pack(*[0] * 256)))
    with pytest.raises(FormatError):
        Fragment(victim)


def test_fragment_with_unknown_hash_code_is_format_error(tmp_path):
    header = idx.HEADER.pack(idx.MAGIC, 3, 16, 0, 0)
    victim = write_frag_raw(tmp_path / "x.idx", _checksummed(header + idx.FANOUT.pack(*[0] * 256)))
    with pytest.raises(FormatError):
        Fragment(victim)


def test_fragment_control_header_is_accepted(tmp_path):
    """Control for the two tests above: the same hand-built fragment with sane fields opens."""
    header = idx.HEADER.pack(idx.MAGIC, XXH3_128.code, 16, 0, 0)
    frag = Fragment(write_frag_raw(tmp_path / "x.idx", _checksummed(header + idx.FANOUT.pack(*[0] * 256))))
    try:
        assert frag.count == 0 and frag.packs == []
    finally:
        frag.close()


# -- the chunk index (several fragments) ------------------------------------------------


def _set_mtime(path: Path, t: int) -> None:
    os.utime(path, ns=(t, t))


def test_chunk_index_searches_all_fragments_newest_first(tmp_path):
    folder = tmp_path / "index"
    ci = ChunkIndex(folder, XXH3_128)
    assert ci.lookup(b"\1" * 16) is None and len(ci) == 0 and list(ci) == []
    parts = [make_entries(200, s) for s in range(4)]
    shared = b"\x77" * 16
    for i, part in enumerate(parts):
        part[shared] = Location(f"{i:02x}" * 16, 16, i + 1, i + 1, 0)
        p = ci.write_fragment(part.items())
        _set_mtime(p, 1_000_000_000_000_000_000 + i * 1_000_000_000)
    ci.reload()
    assert len(ci.fragments) == 4
    expected: dict[bytes, Location] = {}
    for part in parts:  # oldest first: a later fragment's location wins
        expected.update(part)
    assert len(expected) > 700  # mostly distinct ids, a few shared ones
    for cid, loc in expected.items():
        assert ci.lookup(cid) == loc
    assert ci.lookup(shared) == Location("03" * 16, 16, 4, 4, 0)  # newest fragment wins
    listed = list(ci)
    assert [c for c, _ in listed] == sorted(expected)
    assert dict(listed) == expected
    assert len(ci) == sum(len(p) for p in parts)  # len counts per fragment, duplicates included


def test_chunk_index_refuses_a_fragment_of_another_algorithm(tmp_path):
    folder = tmp_path / "index"
    ChunkIndex(folder, BLAKE3).write_fragment([(b"\1" * 32, Location("aa" * 32, 16, 1, 1, 0))])
    with pytest.raises(FormatError, match="blake3"):
        ChunkIndex(folder, XXH3_128).lookup(b"\1" * 16)


def test_chunk_index_write_fragment_is_named_by_its_checksum(tmp_path):
    ci = ChunkIndex(tmp_path / "index", XXH3_128)
    p = ci.write_fragment(make_entries(10, 5).items())
    data = p.read_bytes()
    assert p.name == xxhash.xxh3_128_digest(data[: -idx.CHECK]).hex() + ".idx"
    assert ci.write_fragment(make_entries(10, 5).items()) == p  # same content, same file
    assert len(ci.fragments) == 1


def test_maybe_merge_below_the_limit_does_nothing(tmp_path):
    ci = ChunkIndex(tmp_path / "index", XXH3_128)
    for s in range(idx.MAX_FRAGMENTS):
        ci.write_fragment(make_entries(20, s).items())
    ci.maybe_merge()
    assert len(ci.fragments) == idx.MAX_FRAGMENTS


def test_maybe_merge_past_max_fragments_keeps_every_entry(tmp_path):
    folder = tmp_path / "index"
    ci = ChunkIndex(folder, XXH3_128)
    parts = [make_entries(300, s) for s in range(idx.MAX_FRAGMENTS + 3)]
    # overlapping ids across fragments, with different locations
    overlap = rand_ids(50, 777)
    for i, part in enumerate(parts):
        for cid in overlap:
            part[cid] = Location(f"{i:02x}" * 16, 16 + i, 1, 1, 0)
        p = ci.write_fragment(part.items())
        _set_mtime(p, 1_000_000_000_000_000_000 + i * 1_000_000_000)
    ci.reload()
    assert len(ci.fragments) == idx.MAX_FRAGMENTS + 3
    all_ids = {cid for part in parts for cid in part}
    before = {cid: ci.lookup(cid) for cid in all_ids}

    ci.maybe_merge()
    assert len(ci.fragments) == 1
    assert len(list(folder.glob("*.idx"))) == 1
    assert len(ci) == len(all_ids)
    for cid in all_ids:
        assert ci.lookup(cid) == before[cid]
    assert before[overlap[0]].pack == f"{idx.MAX_FRAGMENTS + 2:02x}" * 16
    # a fresh reader sees the same
    fresh = ChunkIndex(folder, XXH3_128)
    assert dict(fresh) == before


# -- chunk store ------------------------------------------------------------------------


def put(cs: ChunkStore, raw: bytes) -> tuple[bytes, bool]:
    cid, stored, flags = encode(raw, cs.algo)
    return cid, cs.put_encoded(cid, stored, len(raw), flags)


def all_packs(root: Path) -> list[Path]:
    return sorted((root / "packs").rglob("*.pack"))


@pytest.mark.parametrize("algo", [XXH3_128, BLAKE3], ids=lambda a: a.name)
def test_chunkstore_put_flush_get_round_trip(tmp_path, algo):
    cs = ChunkStore(tmp_path, algo)
    ids = {}
    for raw in MIXED:
        cid, written = put(cs, raw)
        assert written
        ids[cid] = raw
    assert all(cs.has(c) for c in ids)
    assert cs.flush() == len(MIXED)
    for cid, raw in ids.items():
        assert cs.get(cid) == raw
    cs.close()
    cs2 = ChunkStore(tmp_path, algo)  # persisted: a new instance finds everything
    try:
        for cid, raw in ids.items():
            assert cs2.has(cid)
            assert cs2.get(cid) == raw
        assert len(all_packs(tmp_path)) == 1
    finally:
        cs2.close()


def test_chunkstore_get_missing_chunk_is_corrupt_object(tmp_path):
    cs = ChunkStore(tmp_path, XXH3_128)
    try:
        with pytest.raises(CorruptObject, match="missing"):
            cs.get(b"\1" * 16)
        put(cs, b"something else entirely" * 10)
        cs.flush()
        assert not cs.has(b"\1" * 16)
        with pytest.raises(CorruptObject, match="missing"):
            cs.get(b"\1" * 16)
    finally:
        cs.close()


def test_chunkstore_dedupes_within_and_across_sessions(tmp_path):
    cs = ChunkStore(tmp_path, XXH3_128)
    raw = text_bytes(10_000, 30)
    cid, first = put(cs, raw)
    _, second = put(cs, raw)
    assert (first, second) == (True, False)
    assert cs.flush() == 1
    _, third = put(cs, raw)
    assert third is False
    assert cs.flush() == 0
    cs.close()
    cs2 = ChunkStore(tmp_path, XXH3_128)
    try:
        _, fourth = put(cs2, raw)
        assert fourth is False
        assert cs2.flush() == 0
        tocs = [read_pack_toc(p)[1] for p in all_packs(tmp_path)]
        assert [e.chunk_id for toc in tocs for e in toc] == [cid]
        assert len(list(cs2.index)) == 1
        assert cs2.get(cid) == raw
    finally:
        cs2.close()


def test_chunkstore_rolls_packs_at_target_size(tmp_path):
    cs = ChunkStore(tmp_path, XXH3_128, pack_target=50_000)
    chunks = [rand_bytes(20_000, 40 + i) for i in range(10)]
    ids = [put(cs, c)[0] for c in chunks]
    # chunks in packs already closed are readable before flush
    assert cs.get(ids[0]) == chunks[0]
    assert cs.flush() == 10
    assert len(all_packs(tmp_path)) >= 3
    for cid, raw in zip(ids, chunks, strict=True):
        assert cs.get(cid) == raw
    cs.close()


def test_chunkstore_abort_discards_unflushed_chunks(tmp_path):
    cs = ChunkStore(tmp_path, XXH3_128)
    cid, _ = put(cs, text_bytes(1000, 50))
    cs.abort()
    assert not cs.has(cid)
    assert cs.flush() == 0
    assert all_packs(tmp_path) == []
    assert [p for p in (tmp_path / "packs").rglob("*") if p.is_file()] == []
    cs.close()


def test_chunkstore_detects_damaged_pack(tmp_path):
    cs = ChunkStore(tmp_path, XXH3_128)
    raw = rand_bytes(5000, 60)
    cid, _ = put(cs, raw)
    cs.flush()
    cs.close()
    (path,) = all_packs(tmp_path)
    data = bytearray(path.read_bytes())
    data[packs.HEADER.size + 100] ^= 0xFF
    path.write_bytes(bytes(data))
    cs2 = ChunkStore(tmp_path, XXH3_128)
    try:
        with pytest.raises(CorruptObject, match="fails verification"):
            cs2.get(cid)
    finally:
        cs2.close()


def test_chunkstore_missing_pack_is_corrupt_object(tmp_path):
    cs = ChunkStore(tmp_path, XXH3_128)
    cid, _ = put(cs, b"z" * 500)
    cs.flush()
    cs.close()
    (path,) = all_packs(tmp_path)
    path.unlink()
    cs2 = ChunkStore(tmp_path, XXH3_128)
    try:
        assert cs2.has(cid)  # still indexed
        with pytest.raises(CorruptObject, match="missing"):
            cs2.get(cid)
    finally:
        cs2.close()


def test_chunkstore_flush_merges_fragments(tmp_path):
    cs = ChunkStore(tmp_path, XXH3_128)
    ids = {}
    for i in range(idx.MAX_FRAGMENTS + 4):
        raw = rand_bytes(100, 70 + i)
        ids[put(cs, raw)[0]] = raw
        assert cs.flush() == 1
        assert len(cs.index.fragments) <= idx.MAX_FRAGMENTS
    for cid, raw in ids.items():
        assert cs.get(cid) == raw
    cs.close()


@pytest.mark.parametrize("bad", [
    (b"a", 16, 10, 10, 0x81),  # outside and a length too big: "outside", as the checks are ordered
    (b"a", 16, 10, packs.MAX_RAW + 1, 0),  # only the length: the length's own message
])
def test_toc_reports_the_first_bad_entry_with_its_own_message(tmp_path, bad):
    victim = tmp_path / "x.pack"
    victim.write_bytes(_forge([(b"ok", 16, 50, 50, 0), bad, (b"z", 0, 1, 1, 9)], body_len=100))
    match = "entry 1 points outside" if bad[4] else "entry 1 claims a chunk of"
    with pytest.raises(FormatError, match=match):
        read_pack_toc(victim)


def _fragments(tmp_path: Path) -> ChunkIndex:
    """Three fragments, newest first: ids shared between them, some rows stored as deltas."""
    rng = random.Random(7)
    ids = [rng.randbytes(16) for _ in range(300)]
    index = ChunkIndex(tmp_path / "index", XXH3_128)
    for age, pack in enumerate(("aa" * 16, "bb" * 16, "cc" * 16)):
        rows = [(cid, Location(pack, 16 + n, 20 + age, 30, rng.choice((0, 1, 3))))
                for n, cid in enumerate(ids) if rng.random() < 0.6]
        path = index.write_fragment(rows)
        os.utime(path, ns=(10**9 * (100 - age),) * 2)  # the first written is the newest
    index.reload()
    return index


def test_fragment_rows_and_index_dict_are_what_a_lookup_finds(tmp_path):
    index = _fragments(tmp_path)
    for frag in index.fragments:
        assert list(frag.rows()) == list(frag)
    as_dict = index.as_dict()
    assert as_dict == dict(index) == {cid: index.lookup(cid) for cid, _loc in index}
    assert len({loc.pack for loc in as_dict.values()}) == 3  # the fixture shadows rows


def test_fragment_rows_in_blocks_name_a_bad_pack_number(tmp_path):
    body = encode_fragment(XXH3_128, [(bytes([n]) * 16, Location("aa" * 16, 16, 1, 1, 0)) for n in range(5)])
    body = body[: -idx.CHECK]
    pos = len(body) - 2 * idx.LOC.size  # the fourth row
    body = body[:pos] + struct.pack("<I", 1) + body[pos + 4 :]
    frag = Fragment(write_frag_raw(tmp_path / "x.idx", _checksummed(body)))
    try:
        assert len(list(itertools.islice(frag.rows(), 3))) == 3
        with pytest.raises(FormatError, match="entry 3 names pack 1 of 1"):
            list(frag.rows())
    finally:
        frag.close()


def test_index_deltas_are_the_delta_rows_a_lookup_finds(tmp_path):
    index = _fragments(tmp_path)
    expected = [(cid, loc) for cid, loc in index if loc.flags & packs.FLAG_DELTA]
    assert expected and sorted(index.deltas(), key=lambda r: r[0]) == expected
    shadowed = [(cid, loc) for frag in index.fragments[1:] for cid, loc in frag
                if loc.flags & packs.FLAG_DELTA and index.lookup(cid) != loc]
    assert shadowed  # older delta rows a newer row hides: not listed
