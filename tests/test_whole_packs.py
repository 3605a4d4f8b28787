"""A fetch that wants most of a remote pack takes the pack whole (``RemoteRepo.dense_packs``,
``ChunkStore.adopt``): checked before anything names it, and never trusted more than the
chunk-by-chunk copy it replaces."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from objstore.chunkstore import ChunkStore, roll_packs
from objstore.errors import DsError, FormatError
from objstore.hashing import get_algo
from objstore.index import ChunkIndex, Location
from objstore.maintenance import fsck
from objstore.packs import FLAG_DELTA, FLAG_ZSTD, encode_chunk, pack_path
from objstore.remote import Remote
from objstore.remote_fs import RemoteFS
from objstore.repository import LocalRepository, copy_chunks
from objstore.store import Store
from objstore.worktree import commit_all

from .conftest import write
from .test_remote import clone_to, make_store


def _pushed(tmp_path: Path, files: int = 12) -> tuple[Store, str, list[bytes]]:
    """A store with ``files`` random files of 256 KiB (one pack of 3 MiB), pushed."""
    url = (tmp_path / "remote").as_uri()
    a = make_store(tmp_path / "a", url, {})
    for i in range(files):
        write(a.worktree, f"f{i:02d}", os.urandom(256 * 1024))
    commit_all(a, "v1")
    Remote(a).push()
    return a, url, sorted(c for c, _loc in a.chunks.index)


def _remote_packs(tmp_path: Path) -> set[str]:
    return {p.stem for p in (tmp_path / "remote" / "packs").glob("*/*.pack")}


def _local_packs(store: Store) -> set[str]:
    return {p.stem for p in store.chunks.packs_dir.glob("*/*.pack")}


def _leftovers(store: Store) -> list[str]:
    return [p.name for p in store.chunks.packs_dir.iterdir() if p.name.startswith(".tmp-")]


@pytest.fixture
def adopted(monkeypatch) -> list[str]:
    """The packs ``ChunkStore.adopt`` took whole (the rest came chunk by chunk)."""
    took, adopt = [], ChunkStore.adopt

    def spy(self, path, pack_hex):
        got = adopt(self, path, pack_hex)
        took.append(pack_hex)
        return got

    monkeypatch.setattr(ChunkStore, "adopt", spy)
    return took


def test_a_clone_takes_the_remote_packs_whole_and_checked(tmp_path: Path, adopted) -> None:
    a, url, ids = _pushed(tmp_path)
    b = clone_to(url, {}, tmp_path / "b")
    assert adopted == sorted(_remote_packs(tmp_path))
    assert _local_packs(b) == _remote_packs(tmp_path)
    assert _leftovers(b) == []
    fresh = Store(b.path)  # what is durable and indexed
    assert all(fresh.chunks.get(c) == a.chunks.get(c) for c in ids)
    assert fsck(fresh, read_data=True).ok


def test_a_few_chunks_of_a_pack_come_one_by_one(tmp_path: Path, adopted) -> None:
    a, url, ids = _pushed(tmp_path)
    b = make_store(tmp_path / "b", url, {})
    assert Remote(b).fetch_chunks(ids[:2]) == 2
    assert adopted == []
    fresh = Store(b.path)
    assert [fresh.chunks.has(c) for c in ids] == [True, True] + [False] * (len(ids) - 2)


def test_a_pack_gone_meanwhile_is_read_chunk_by_chunk(tmp_path: Path, monkeypatch, adopted) -> None:
    """A remote gc replaced the pack between the index read and the download."""
    a, url, ids = _pushed(tmp_path)
    b = make_store(tmp_path / "b", url, {})
    asked, get_file = [], RemoteFS.get_file

    def gone(self, rel, dest, check=None):
        if not rel.startswith("packs/"):
            return get_file(self, rel, dest, check)
        asked.append(rel)
        raise FileNotFoundError(rel)

    monkeypatch.setattr(RemoteFS, "get_file", gone)
    assert Remote(b).fetch_chunks(ids) == len(ids)
    assert asked and adopted == []
    fresh = Store(b.path)
    assert all(fresh.chunks.get(c) == a.chunks.get(c) for c in ids)
    assert _leftovers(fresh) == []


def test_a_damaged_remote_pack_is_never_taken_and_its_damage_is_named(tmp_path: Path) -> None:
    a, url, ids = _pushed(tmp_path)
    (pack,) = _remote_packs(tmp_path)
    path = pack_path(tmp_path / "remote" / "packs", pack)
    loc = Remote(a).index().lookup(ids[5])
    data = bytearray(path.read_bytes())
    data[loc.offset + loc.stored_len // 2] ^= 0xFF  # inside one record: only that chunk is bad
    path.write_bytes(bytes(data))
    b = make_store(tmp_path / "b", url, {})
    with pytest.raises(DsError, match=ids[5].hex()):
        Remote(b).fetch_chunks(ids)
    fresh = Store(b.path)
    assert pack not in _local_packs(fresh)
    assert _leftovers(fresh) == []
    kept = [c for c in ids if fresh.chunks.has(c)]
    assert ids[5] not in kept
    assert all(fresh.chunks.get(c) == a.chunks.get(c) for c in kept)


def _forge(tmp_path: Path, records) -> str:
    """A remote holding one pack of ``records`` that hashes to its name and an index
    fragment naming it; returns its URL."""
    url = (tmp_path / "forged").as_uri()
    remote = Remote(make_store(tmp_path / "forger", url, {}))
    remote.check_config(create=True)
    (path,), rows = roll_packs(tmp_path, remote.store.algo, 1 << 30, records)
    remote.fs.put(f"packs/{path.stem[:2]}/{path.name}", path)
    remote.put_fragment(rows, [])
    return url


@pytest.mark.parametrize("lie", ["another chunk's bytes", "a delta record"])
def test_a_forged_pack_that_hashes_to_its_name_is_refused(tmp_path: Path, lie: str) -> None:
    """A hostile remote's pack is whole by its name, yet one record is not what its id says."""
    a, url, ids = _pushed(tmp_path)
    records = []
    for c in ids:
        stored, flags = encode_chunk(a.chunks.get(c), 3)
        records.append((c, bytes(stored), len(a.chunks.get(c)), flags))
    victim = records[3][0]
    if lie == "another chunk's bytes":
        records[3] = (victim, *records[4][1:])
    else:
        records[3] = (victim, ids[0] + records[3][1], records[3][2], FLAG_ZSTD | FLAG_DELTA)
    b = make_store(tmp_path / "b", _forge(tmp_path, records), {})
    (forged,) = Remote(b).dense_packs(ids)  # it is offered whole...
    with pytest.raises(DsError, match=victim.hex()):
        Remote(b).fetch_chunks(ids)
    fresh = Store(b.path)
    assert forged not in _local_packs(fresh)  # ...and refused: the error names the chunk
    assert _leftovers(fresh) == []
    assert fsck(fresh, read_data=True).ok


def test_adopt_leaves_a_file_it_refuses_to_its_caller(tmp_path: Path) -> None:
    a, _url, ids = _pushed(tmp_path)
    (pack,) = {loc.pack for _c, loc in a.chunks.index}
    copy = tmp_path / "copy.pack"
    copy.write_bytes(pack_path(a.chunks.packs_dir, pack).read_bytes())
    b = Store.init(tmp_path / "b")
    with pytest.raises(FormatError, match="does not hash to its name"):
        b.chunks.adopt(copy, "0" * len(pack))
    assert copy.exists() and not _local_packs(b)


def test_a_pack_taken_but_not_yet_indexed_is_recovered(tmp_path: Path) -> None:
    """Killed between the rename and the index fragment: the next write session's
    ``recover`` indexes the pack (it hashes to its name)."""
    a, _url, ids = _pushed(tmp_path)
    (pack,) = {loc.pack for _c, loc in a.chunks.index}
    b = Store.init(tmp_path / "b")
    download = b.chunks.packs_dir / ".tmp-download"
    b.chunks.packs_dir.mkdir(exist_ok=True)
    download.write_bytes(pack_path(a.chunks.packs_dir, pack).read_bytes())
    assert sorted(b.chunks.adopt(download, pack)) == ids
    assert not download.exists()
    fresh = Store(b.path)  # the first process is gone; nothing indexed it
    assert not any(fresh.chunks.has(c) for c in ids)
    assert fresh.chunks.recover().packs == 1
    assert all(fresh.chunks.get(c) == a.chunks.get(c) for c in ids)


def test_a_fetch_copies_from_whole_packs_and_one_by_one_together(tmp_path: Path, adopted) -> None:
    """Chunks of a pack taken whole and of one read chunk by chunk, in one fetch."""
    a, url, ids = _pushed(tmp_path)
    write(a.worktree, "small", os.urandom(3000))
    commit_all(a, "v2")
    Remote(a).push()
    everything = sorted(c for c, _loc in a.chunks.index)
    b = make_store(tmp_path / "b", url, {})
    with b.locked():
        assert copy_chunks(Remote(b), LocalRepository(b), everything) == (len(everything), 0)
    (whole,) = adopted  # the small one came chunk by chunk
    assert whole in _remote_packs(tmp_path)
    fresh = Store(b.path)
    assert all(fresh.chunks.get(c) == a.chunks.get(c) for c in everything)


def _row(pack: str, stored: int) -> Location:
    return Location(pack, 0, stored, stored, 0)


def test_stored_by_pack_counts_as_lookups_would(tmp_path: Path) -> None:
    """One pass over the rows (many chunks) and a lookup each (few) answer alike, a chunk in
    two fragments counted where the newest one says."""
    algo = get_algo("xxh3-128")
    index = ChunkIndex(tmp_path / "index", algo)
    ids = sorted(os.urandom(algo.size) for _ in range(300))
    old = index.write_fragment([(c, _row("aa" * 16, 10 + i)) for i, c in enumerate(ids[:200])])
    os.utime(old, (1, 1))
    index.write_fragment([(c, _row("bb" * 16, 1000 + i)) for i, c in enumerate(ids[150:])])
    index.reload()

    def by_lookups(chunks: list[bytes]) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in set(chunks):
            loc = index.lookup(c)
            if loc is not None:
                out[loc.pack] = out.get(loc.pack, 0) + loc.stored_len
        return out

    unknown = [os.urandom(algo.size) for _ in range(5)]
    for chunks in (ids + unknown + ids[:7], ids[140:160] + unknown[:1], ids[:3]):
        assert index.stored_by_pack(chunks) == by_lookups(chunks)
    assert set(index.stored_by_pack(ids)) == {"aa" * 16, "bb" * 16}


def test_a_download_a_kill_left_behind_is_swept_by_gc(tmp_path: Path) -> None:
    from objstore.maintenance import gc

    _a, url, _ids = _pushed(tmp_path)
    b = clone_to(url, {}, tmp_path / "b")
    left = b.chunks.packs_dir / ".tmp-0123456789abcdef.fetched"
    left.write_bytes(b"half a pack")
    os.utime(left, (1, 1))
    gc(b)
    assert not left.exists()
    assert fsck(Store(b.path), read_data=True).ok
