"""hashing.py (algorithm table, digests) and chunking.py (content-defined cut points)."""

from __future__ import annotations

import random

import blake3
import pytest
import xxhash

from objstore.chunking import ChunkParams, MiB, cut
from objstore.config import StoreConfig
from objstore.errors import DsError
from objstore.hashing import ALGOS, ALGOS_BY_CODE, BLAKE3, XXH3_128, algo_by_code, get_algo
from objstore.store import Store

SAMPLES = [b"", b"a", b"hello world", bytes(range(256)) * 1000]


def rand_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


# -- hashing -----------------------------------------------------------------------------


def test_default_algorithm_is_xxh3_128(tmp_path):
    assert StoreConfig().hash == "xxh3-128"
    with Store.init(tmp_path / "w") as s:
        assert s.algo is XXH3_128
        assert s.algo.size == 16


def test_store_can_be_created_with_blake3(tmp_path):
    with Store.init(tmp_path / "w", hash="blake3") as s:
        assert s.algo is BLAKE3
    with Store(tmp_path / "w" / ".dsstore") as s2:
        assert s2.algo is BLAKE3


@pytest.mark.parametrize("data", SAMPLES, ids=["empty", "1", "11", "256k"])
def test_xxh3_digest_size_and_value(data):
    algo = get_algo("xxh3-128")
    d = algo.digest(data)
    assert isinstance(d, bytes)
    assert len(d) == 16 == algo.size
    assert d == xxhash.xxh3_128_digest(data)
    assert algo.digest(memoryview(data)) == d


@pytest.mark.parametrize("data", SAMPLES, ids=["empty", "1", "11", "256k"])
def test_blake3_digest_size_and_value(data):
    algo = get_algo("blake3")
    d = algo.digest(data)
    assert len(d) == 32 == algo.size
    assert d == blake3.blake3(data).digest()
    assert algo.digest(memoryview(data)) == d


@pytest.mark.parametrize("name", sorted(ALGOS))
def test_incremental_hasher_matches_one_shot(name):
    algo = get_algo(name)
    data = rand_bytes(300_001, seed=1)
    h = algo.new()
    for i in range(0, len(data), 65_537):
        h.update(memoryview(data)[i : i + 65_537])
    assert h.digest() == algo.digest(data)
    assert len(h.digest()) == algo.size


def test_algorithms_differ_and_codes_are_unique():
    data = b"same input"
    assert XXH3_128.digest(data) != BLAKE3.digest(data)[:16]
    assert XXH3_128.digest(data) != XXH3_128.digest(data + b"\0")
    assert {a.code for a in ALGOS.values()} == set(ALGOS_BY_CODE) == {1, 2}
    assert {a.size for a in ALGOS.values()} == {16, 32}
    for algo in ALGOS.values():
        assert algo_by_code(algo.code) is algo
        assert get_algo(algo.name) is algo


@pytest.mark.parametrize("name", ["sha1", "", "XXH3-128", "blake3 ", "md5"])
def test_unknown_algorithm_is_refused(name):
    with pytest.raises(DsError, match="unknown hash algorithm") as exc:
        get_algo(name)
    # the message lists the choices
    assert "blake3" in str(exc.value) and "xxh3-128" in str(exc.value)


@pytest.mark.parametrize("code", [0, 3, 255])
def test_unknown_algorithm_code_is_refused(code):
    with pytest.raises(DsError, match=f"code {code}"):
        algo_by_code(code)


def test_init_with_unknown_hash_is_refused_and_leaves_nothing(tmp_path):
    with pytest.raises(DsError, match="unknown hash algorithm"):
        Store.init(tmp_path / "w", hash="sha256")
    assert not (tmp_path / "w" / ".dsstore").exists()


# -- chunking ----------------------------------------------------------------------------

SMALL = ChunkParams(avg_size=4096, min_size=1024, max_size=16384)


def sizes(buf: bytes, params: ChunkParams) -> list[int]:
    return [len(c) for c in cut(buf, params)]


@pytest.mark.parametrize("n", [1025, 5000, 100_000, 1_000_003])
@pytest.mark.parametrize("seed", [1, 2])
def test_cut_covers_buffer_exactly(n, seed):
    buf = rand_bytes(n, seed)
    chunks = list(cut(buf, SMALL))
    assert b"".join(bytes(c) for c in chunks) == buf
    assert sum(len(c) for c in chunks) == n
    assert all(len(c) > 0 for c in chunks)
    assert all(len(c) <= SMALL.max_size for c in chunks)
    # every chunk but the last respects the minimum
    assert all(len(c) >= SMALL.min_size for c in chunks[:-1])
    if n > 10 * SMALL.max_size:
        assert len(chunks) > 1


def test_cut_yields_views_into_the_buffer():
    buf = rand_bytes(50_000, 3)
    chunks = list(cut(buf, SMALL))
    assert all(isinstance(c, memoryview) for c in chunks)


def test_cut_accepts_memoryview_input():
    buf = rand_bytes(60_000, 4)
    assert [bytes(c) for c in cut(memoryview(buf), SMALL)] == [bytes(c) for c in cut(buf, SMALL)]


@pytest.mark.parametrize("n", [1, 63, 1000, 1024])
def test_buffer_up_to_min_size_is_one_chunk(n):
    buf = rand_bytes(n, n)
    chunks = list(cut(buf, SMALL))
    assert len(chunks) == 1
    assert bytes(chunks[0]) == buf


def test_default_params_min_size_boundary():
    p = ChunkParams()
    buf = rand_bytes(p.min_size, 5)
    assert sizes(buf, p) == [p.min_size]


def test_empty_buffer_has_no_chunks():
    assert list(cut(b"", SMALL)) == []
    assert list(cut(b"", ChunkParams())) == []


def test_uniform_data_is_cut_at_max_size():
    p = ChunkParams()
    got = sizes(bytes(10 * MiB), p)
    assert sum(got) == 10 * MiB
    assert got[:-1] == [p.max_size] * (len(got) - 1)
    assert all(s <= p.max_size for s in got)


def test_cut_is_deterministic():
    buf = rand_bytes(2_000_000, 6)
    assert sizes(buf, SMALL) == sizes(buf, SMALL)
    assert sizes(buf, SMALL) == sizes(bytes(buf), ChunkParams(4096, 1024, 16384))


def test_content_defined_insertion_changes_few_chunks():
    p = ChunkParams()
    buf = rand_bytes(16 * MiB, 7)
    mid = len(buf) // 2
    edited = buf[:mid] + rand_bytes(100, 8) + buf[mid:]

    before = [XXH3_128.digest(c) for c in cut(buf, p)]
    after = [XXH3_128.digest(c) for c in cut(edited, p)]
    assert len(before) >= 8  # ~1 MiB average: the test must see many chunks
    shared = set(before) & set(after)
    # only the chunk(s) around the insertion point differ
    assert len(shared) >= len(before) - 2
    assert len(set(after) - shared) <= 2
    # the chunks before and after the edit are identical, in order
    assert before[0] == after[0] and before[-1] == after[-1]


def test_fixed_size_chunking_would_not_have_resynchronised():
    """Sanity check of the test above: the edit really shifts every later offset."""
    buf = rand_bytes(4 * MiB, 9)
    mid = len(buf) // 2
    edited = buf[:mid] + rand_bytes(100, 10) + buf[mid:]
    block = 256 * 1024
    fixed_before = {XXH3_128.digest(buf[i : i + block]) for i in range(0, len(buf), block)}
    fixed_after = {XXH3_128.digest(edited[i : i + block]) for i in range(0, len(edited), block)}
    cdc_before = set(map(XXH3_128.digest, cut(buf, SMALL)))
    cdc_after = set(map(XXH3_128.digest, cut(edited, SMALL)))
    assert len(fixed_before & fixed_after) <= len(fixed_before) // 2 + 1
    assert len(cdc_before & cdc_after) >= len(cdc_before) - 3
