"""paths.py name checks, and fuzzing of every binary decoder that reads untrusted bytes.

The decoders' contract: bytes that do not follow the format raise a DsError subclass
(FormatError), never IndexError/struct.error/MemoryError/...
"""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path
from unittest import mock

import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from objstore import index as idx
from objstore import manifest as manifest_mod
from objstore import packs
from objstore.errors import DsError, FormatError, UnsafePath
from objstore.hashing import XXH3_128
from objstore.index import Fragment, Location, encode_fragment
from objstore.manifest import EXTERNAL, LINK, MAX_CHUNK, FileEntry, decode_manifest, encode_manifest
from objstore.packs import PackWriter, encode_chunk, read_pack_toc
from objstore.paths import MAX_NAME_BYTES, MAX_PATH_BYTES, check_name, check_relpath

FUZZ = settings(max_examples=200, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# -- check_name / check_relpath tables ----------------------------------------------------

ACCEPTED_NAMES = [
    "a", "a.b", "data.csv", ".hidden", "...", "..a", "a..", ".a.", "a b", " ", "-", "~", "#x",
    "é", "données", "日本語", "emoji-🎉", "x" * MAX_NAME_BYTES, "é" * 127, "日" * 85,
    ".ds.manifest", ".ds.meta", ".ds.d.x", ".dsstore2", "dsstore", "x.dsstore", ".dsstor",
    "C", "1:x", "ab:c", "é:x", "::", ":a", "CON", "nul", "a\tb", "a\nb",
]

REFUSED_NAMES = [
    "", ".", "..", "/", "a/", "/a", "a/b", "\\", "a\\b", "\\a", "\0", "a\0", "a\0b",
    "C:", "C:x", "c:x", "a:b", "z:\\x", "Z:foo",
    ".dsstore", ".DSSTORE", ".DsStore", ".dsStore",
    "x" * (MAX_NAME_BYTES + 1), "é" * 128, "日" * 86,
    "\ud800", "a\udcff",  # lone surrogates: not encodable as UTF-8
]


@pytest.mark.parametrize("name", ACCEPTED_NAMES, ids=repr)
def test_check_name_accepts(name):
    assert check_name(name) == name
    assert check_relpath(name) == name


@pytest.mark.parametrize("name", REFUSED_NAMES, ids=lambda n: repr(n)[:40])
def test_check_name_refuses(name):
    with pytest.raises(UnsafePath):
        check_name(name)
    if "/" not in name:  # "a/b" is a fine path, just not a name
        with pytest.raises(UnsafePath):
            check_relpath(name)


def test_unsafe_path_is_a_format_error_and_a_ds_error():
    with pytest.raises(FormatError):
        check_name("..")
    with pytest.raises(DsError):
        check_name("..")
    with pytest.raises(ValueError):  # ClearML compatibility
        check_name("..")


def test_check_name_message_names_the_context():
    with pytest.raises(UnsafePath, match="in manifest of 'x'"):
        check_name("a/b", "manifest of 'x'")
    with pytest.raises(UnsafePath, match="'\\.\\.'"):
        check_name("..")


ACCEPTED_PATHS = ["a/b", "a/b/c.txt", "日本/語/x", ".ds.x/y", "a/.../b", ".hidden/.x",
                  "/".join(["d"] * 2048)[:-1] + "dd"]

REFUSED_PATHS = [
    "", "/", "/a", "a/", "a//b", "./a", "a/./b", "a/.", "a/../b", "../a", "a/..", "a\\b/c", "a/b\\c",
    "C:/x", "a/C:x", "a/.dsstore/b", ".dsstore/x", "x/.DSSTORE", "a/\0/b",
    "a/" + "x" * (MAX_NAME_BYTES + 1) + "/b", "a/\ud800",
]


@pytest.mark.parametrize("path", ACCEPTED_PATHS, ids=lambda p: repr(p)[:40])
def test_check_relpath_accepts(path):
    assert check_relpath(path) == path


@pytest.mark.parametrize("path", REFUSED_PATHS, ids=lambda p: repr(p)[:40])
def test_check_relpath_refuses(path):
    with pytest.raises(UnsafePath):
        check_relpath(path)


def test_check_relpath_length_limit():
    exact = "/".join(["x" * 240] * 17)
    assert len(exact.encode()) == MAX_PATH_BYTES
    assert check_relpath(exact) == exact
    with pytest.raises(UnsafePath, match="longer than"):
        check_relpath(exact + "x")
    # multi-byte characters count as bytes, not characters
    wide = "/".join(["日本"] * 700)
    assert len(wide) < MAX_PATH_BYTES < len(wide.encode())
    with pytest.raises(UnsafePath, match="longer than"):
        check_relpath(wide)


@given(st.text(max_size=40))
@FUZZ
def test_fuzz_check_name_agrees_with_the_rules(name):
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        encoded = None
    unsafe = (
        name in ("", ".", "..")
        or any(c in name for c in "/\\\0")
        or (len(name) >= 2 and name[1] == ":" and name[0].isascii() and name[0].isalpha())
        or name.casefold() == ".dsstore"
        or encoded is None
        or len(encoded) > MAX_NAME_BYTES
    )
    if unsafe:
        with pytest.raises(UnsafePath):
            check_name(name)
    else:
        assert check_name(name) == name


@given(st.lists(st.text(alphabet="ab./\\:\0C", max_size=4), min_size=1, max_size=5))
@FUZZ
def test_fuzz_check_relpath_is_check_name_of_every_part(parts):
    path = "/".join(parts)
    expect_ok = True
    for part in path.split("/"):
        try:
            check_name(part)
        except UnsafePath:
            expect_ok = False
    if expect_ok:
        assert check_relpath(path) == path
    else:
        with pytest.raises(UnsafePath):
            check_relpath(path)


# -- fuzzing helpers -----------------------------------------------------------------------


def mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Apply (op, position, value) edits: 0 flip bits, 1 set byte, 2 insert, 3 delete, 4 truncate."""
    buf = bytearray(data)
    for op, pos, val in edits:
        if op == 2:
            buf.insert(pos % (len(buf) + 1), val)
            continue
        if not buf:
            continue
        i = pos % len(buf)
        if op == 0:
            buf[i] ^= val or 1
        elif op == 1:
            buf[i] = val
        elif op == 3:
            del buf[i]
        else:
            del buf[i:]
    return bytes(buf)


EDITS = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 1 << 20), st.integers(0, 255)),
                 min_size=1, max_size=4)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# -- decode_manifest -----------------------------------------------------------------------

_PLAIN = st.text(alphabet="abZé Q.", min_size=1, max_size=5)
ANY_NAMES = st.one_of(_PLAIN, _PLAIN, _PLAIN, st.text(alphabet="aZ.é/\\:\0 Q", max_size=5),
                      st.sampled_from(["..", ".dsstore", "C:x", "x" * 256]))
SIZES = st.sampled_from([0, 1, 7, 4096, 4097, MAX_CHUNK, MAX_CHUNK + 1, 1 << 32, (1 << 64) - 1]) \
    | st.integers(0, 100)
CHUNK_LENS = st.sampled_from([0, 1, 3, 4, MAX_CHUNK, MAX_CHUNK + 1, 0xFFFFFFFF]) | st.integers(1, 100)
IDS = st.binary(min_size=16, max_size=16)


@st.composite
def any_entries(draw) -> list[FileEntry]:
    """Entries the encoder accepts but the decoder may not: any name, kind, size, chunk list."""
    out = []
    for _ in range(draw(st.integers(0, 4))):
        chunks = tuple(draw(st.lists(st.tuples(IDS, CHUNK_LENS), max_size=3)))
        size = sum(n for _, n in chunks) if chunks and draw(st.booleans()) else draw(SIZES)
        out.append(FileEntry(draw(ANY_NAMES), draw(st.sampled_from([0, 1, 2, 3, 255])), size, draw(IDS),
                             chunks))
    return out


def _keep_order():
    """encode_manifest sorts rows by name; patched, it writes them in the given order."""
    return mock.patch.object(manifest_mod, "sorted", lambda items, key=None: list(items), create=True)


SAFE_NAMES = st.text(min_size=1, max_size=20).filter(lambda n: _safe(n))


def _safe(name: str) -> bool:
    try:
        check_name(name)
    except UnsafePath:
        return False
    return True


@st.composite
def file_entries(draw) -> list[FileEntry]:
    names = draw(st.lists(SAFE_NAMES, max_size=6, unique=True))
    out = []
    for name in names:
        kind = draw(st.integers(0, 2))
        h = draw(st.binary(min_size=16, max_size=16))
        if kind == LINK:
            out.append(FileEntry(name, kind, draw(st.integers(0, 4096)), h))
            continue
        lens = draw(st.lists(st.integers(1, MAX_CHUNK), max_size=4))
        chunks = tuple((draw(st.binary(min_size=16, max_size=16)), n) for n in lens)
        size = sum(lens) if chunks else draw(st.integers(0, MAX_CHUNK))
        out.append(FileEntry(name, kind, size, h, chunks))
    return out


def _check_decoded(entries: list[FileEntry], hsize: int) -> None:
    names = [e.name.encode("utf-8") for e in entries]
    assert names == sorted(set(names))
    for e in entries:
        check_name(e.name)
        assert len(e.hash) == hsize
        if e.kind == EXTERNAL:  # one chunk holding the URL; size is the remote file's
            assert len(e.chunks) == 1 and 0 < e.chunks[0][1] <= 8192
        elif e.chunks:
            assert sum(n for _, n in e.chunks) == e.size
        else:
            assert e.size <= MAX_CHUNK


@given(any_entries(), st.booleans(), st.integers(0, 255), st.just([]) | EDITS)
@FUZZ
def test_fuzz_decode_manifest_structured(entries, keep_order, q_byte, edits):
    with _keep_order() if keep_order else contextlib.nullcontext():
        data = encode_manifest(entries, 16)
    # "Q" in a name becomes any byte (same length, so the layout still holds): non-UTF-8 names
    data = mutate(data.replace(b"Q", bytes([q_byte])), edits)
    try:
        got = decode_manifest(data, 16, "fuzz")
    except DsError as e:
        assert isinstance(e, FormatError)
        return
    _check_decoded(got, 16)


@given(st.binary(max_size=300))
@FUZZ
def test_fuzz_decode_manifest_random_bytes(data):
    header = encode_manifest([], 16)[:8]  # magic, version, hash size, padding
    for blob in (data, header + data):
        try:
            entries = decode_manifest(blob, 16, "fuzz")
        except DsError as e:
            assert isinstance(e, FormatError)
            continue
        _check_decoded(entries, 16)


@given(file_entries(), EDITS)
@FUZZ
def test_fuzz_decode_manifest_mutated(entries, edits):
    good = encode_manifest(entries, 16)
    assert len(decode_manifest(good, 16, "fuzz")) == len(entries)  # the unmutated bytes are valid
    bad = mutate(good, edits)
    try:
        got = decode_manifest(bad, 16, "fuzz")
    except DsError as e:
        assert isinstance(e, FormatError)
        return
    _check_decoded(got, 16)


@given(file_entries())
@FUZZ
def test_fuzz_manifest_round_trip(entries):
    decoded = decode_manifest(encode_manifest(entries, 16), 16, "fuzz")
    expected = sorted(entries, key=lambda e: e.name.encode("utf-8"))
    assert [e.name for e in decoded] == [e.name for e in expected]
    for got, want in zip(decoded, expected, strict=True):
        assert (got.kind, got.size, got.hash, got.chunk_list()) == (want.kind, want.size, want.hash,
                                                                     want.chunk_list())


# -- read_pack_toc -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pack_bytes(tmp_path_factory) -> bytes:
    folder = tmp_path_factory.mktemp("packs")
    w = PackWriter(folder, XXH3_128)
    for raw in (b"alpha " * 200, bytes(range(256)), b"x"):
        stored, flags = encode_chunk(raw, 3)
        w.add(XXH3_128.digest(raw), stored, len(raw), flags)
    pack_hex, _ = w.finish()
    return packs.pack_path(folder, pack_hex).read_bytes()


def _read_toc_or_error(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        algo, entries = read_pack_toc(path)
    except DsError:
        return
    toc_offset = struct.unpack_from("<Q", data, len(data) - packs.FOOTER.size)[0]
    for e in entries:
        assert packs.HEADER.size <= e.offset and e.offset + e.stored_len <= toc_offset
        assert len(e.chunk_id) == algo.size
        assert e.flags in VALID_FLAGS and (e.flags != DELTA or e.stored_len > algo.size)


@given(EDITS)
@FUZZ
def test_fuzz_read_pack_toc_mutated(scratch, pack_bytes, edits):
    _read_toc_or_error(scratch / "m.pack", mutate(pack_bytes, edits))


@given(st.binary(max_size=300))
@FUZZ
def test_fuzz_read_pack_toc_random_bytes(scratch, data):
    path = scratch / "r.pack"
    _read_toc_or_error(path, data)
    # the same bytes between a real header and a real-looking footer
    wrapped = packs.HEADER.pack(packs.MAGIC, 1) + data
    tail = packs.FOOTER.pack(16, len(data) // 37, 1, xxhash.xxh3_128_digest(data), packs.END_MAGIC)
    _read_toc_or_error(path, wrapped + tail)


DELTA = packs.FLAG_ZSTD | packs.FLAG_DELTA  # a delta record: base id, then a zstd frame
VALID_FLAGS = (0, packs.FLAG_ZSTD, DELTA)


@st.composite
def forged_pack(draw) -> bytes:
    """Header and footer consistent with a checksummed toc whose entries are arbitrary but
    for their flags, drawn from the valid ones (invalid flags: the test after this one)."""
    code = draw(st.sampled_from([1, 1, 1, 2, 0, 3, 255]))
    hsize = {1: 16, 2: 32}.get(code, 16)
    body = draw(st.binary(max_size=64))
    data_end = packs.HEADER.size + len(body)
    entries = draw(st.lists(st.tuples(
        st.binary(min_size=hsize, max_size=hsize),
        st.integers(0, data_end + 4) | st.integers(0, (1 << 64) - 1),
        st.integers(0, 80) | st.integers(0, (1 << 32) - 1),
        st.integers(0, (1 << 32) - 1),
        st.sampled_from(VALID_FLAGS),
    ), max_size=5))
    toc = b"".join(cid + packs.TOC_TAIL.pack(o, s, r, f) for cid, o, s, r, f in entries)
    toc_offset = draw(st.sampled_from([data_end] * 4 + [data_end - 1, data_end + 1, 0]))
    count = draw(st.sampled_from([len(entries)] * 4 + [len(entries) + 1, 0xFFFFFFFF]))
    code2 = draw(st.sampled_from([code] * 6 + [1, 2]))
    return (packs.HEADER.pack(packs.MAGIC, code) + body + toc
            + packs.FOOTER.pack(toc_offset, count, code2, xxhash.xxh3_128_digest(toc), packs.END_MAGIC))


@given(forged_pack())
@FUZZ
def test_fuzz_read_pack_toc_forged(scratch, data):
    _read_toc_or_error(scratch / "f.pack", data)


def _one_entry_pack(flags: int, stored: int) -> bytes:
    body = bytes(64)
    toc = bytes(16) + packs.TOC_TAIL.pack(packs.HEADER.size, stored, 100, flags)
    return (packs.HEADER.pack(packs.MAGIC, 1) + body + toc
            + packs.FOOTER.pack(packs.HEADER.size + len(body), 1, 1, xxhash.xxh3_128_digest(toc),
                                packs.END_MAGIC))


@pytest.mark.parametrize(("flags", "stored"), [(packs.FLAG_DELTA, 20), (4, 20), (5, 20), (7, 20),
                                               (0x80, 20), (0x81, 20), (0xFF, 20), (DELTA, 16), (DELTA, 0)])
def test_read_pack_toc_refuses_invalid_flags(tmp_path, flags, stored):
    """Unknown bits, a delta flag without zstd, and a delta too short to hold its base id."""
    path = tmp_path / "x.pack"
    path.write_bytes(_one_entry_pack(flags, stored))
    with pytest.raises(FormatError, match="entry 0 points outside"):
        read_pack_toc(path)


@pytest.mark.parametrize("flags", VALID_FLAGS)
def test_read_pack_toc_accepts_every_valid_flag(tmp_path, flags):
    """Control for the test above, and what the forged-pack strategy may draw."""
    path = tmp_path / "x.pack"
    path.write_bytes(_one_entry_pack(flags, 20))
    assert [e.flags for e in read_pack_toc(path)[1]] == [flags]
    _read_toc_or_error(path, path.read_bytes())


# -- index fragments -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def fragment_bytes() -> bytes:
    rows = [(bytes([i * 37 % 256]) + bytes(15), Location(f"{i % 3:02x}" * 16, 16 + i, i, i, i % 2))
            for i in range(12)]
    return encode_fragment(XXH3_128, rows)


def _open_fragment_or_error(path: Path, data: bytes, probes: list[bytes]) -> None:
    path.write_bytes(data)
    try:
        frag = Fragment(path)
    except DsError:
        return
    try:
        listed = list(frag)
        for cid, loc in listed:
            assert len(cid) == frag.hsize
            assert loc.pack in frag.packs
            found = frag.lookup(cid)
            assert found is None or isinstance(found, Location)
        for cid in probes:
            if len(cid) == frag.hsize:
                frag.lookup(cid)
    except DsError:
        pass
    finally:
        frag.close()


@given(EDITS, st.lists(st.binary(min_size=16, max_size=16), max_size=3))
@FUZZ
def test_fuzz_fragment_mutated(scratch, fragment_bytes, edits, probes):
    bad = mutate(fragment_bytes, edits)
    path = scratch / "m.idx"
    if bad != fragment_bytes:
        path.write_bytes(bad)
        with pytest.raises(FormatError):  # the checksum catches any change
            Fragment(path)
    _open_fragment_or_error(path, bad, probes)


@given(st.binary(max_size=1400))
@FUZZ
def test_fuzz_fragment_random_bytes(scratch, data):
    path = scratch / "r.idx"
    _open_fragment_or_error(path, data, [])
    # with a valid checksum appended the parser behind the checksum gets the bytes
    _open_fragment_or_error(path, data + xxhash.xxh3_128_digest(data), [])


@st.composite
def checksummed_fragment(draw, free_pack_count: bool) -> bytes:
    code = draw(st.sampled_from([1, 1, 1, 2, 0, 3]))
    hsize = draw(st.sampled_from([{1: 16, 2: 32}.get(code, 16)] * 4 + [0, 1, 32, 255]))
    ids = sorted(set(draw(st.lists(st.binary(min_size=max(hsize, 1), max_size=max(hsize, 1)), max_size=12))))
    npacks = draw(st.integers(0, 4))
    pack_ids = draw(st.binary(min_size=npacks * hsize, max_size=npacks * hsize))
    fan = [0] * 256
    for cid in ids:
        fan[cid[0]] += 1
    for i in range(1, 256):
        fan[i] += fan[i - 1]
    if draw(st.booleans()):  # a damaged fanout table
        i = draw(st.integers(0, 255))
        fan[i] = draw(st.integers(0, (1 << 32) - 1))
    locs = b"".join(
        idx.LOC.pack(draw(st.integers(0, 5)), draw(st.integers(0, 1 << 40)), draw(st.integers(0, 99)),
                     draw(st.integers(0, 99)), draw(st.integers(0, 255)))
        for _ in ids
    )
    count = draw(st.sampled_from([len(ids)] * 4 + [len(ids) + 1, max(len(ids) - 1, 0), (1 << 64) - 1]))
    header_packs = draw(st.integers(0, 5000)) if free_pack_count else npacks
    body = (idx.HEADER.pack(draw(st.sampled_from([idx.MAGIC] * 5 + [b"DSIDX\0\0\2"])), code, hsize,
                            header_packs, count)
            + pack_ids + idx.FANOUT.pack(*fan) + b"".join(ids) + locs)
    return body + xxhash.xxh3_128_digest(body)


@given(checksummed_fragment(free_pack_count=False), st.lists(st.binary(min_size=16, max_size=16), max_size=3))
@FUZZ
def test_fuzz_fragment_checksummed(scratch, data, probes):
    _open_fragment_or_error(scratch / "c.idx", data, probes)


@given(checksummed_fragment(free_pack_count=True))
@settings(FUZZ, derandomize=True)
def test_fuzz_fragment_checksummed_any_pack_count(scratch, data):
    _open_fragment_or_error(scratch / "p.idx", data, [])
