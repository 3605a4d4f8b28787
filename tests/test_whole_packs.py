"""A fetch that wants most of a remote pack takes the pack whole (``RemoteRepo.dense_packs``,
``ChunkStore.adopt``): checked before anything names it, and never trusted more than the
chunk-by-chunk copy it replaces."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from objstore.chunkstore import ChunkStore, roll_packs
from objstore.errors import DsError, FormatError
from objstore.hashing import get_algo
from objstore.index import ChunkIndex, Location
from objstore.maintenance import fsck, gc
from objstore.packs import FLAG_DELTA, FLAG_ZSTD, encode_chunk, pack_path
from objstore.remote import Remote
from objstore.remote_fs import RemoteFS
from objstore.remote_repo import WHOLE_MIN
from objstore.store import Store
from objstore.worktree import commit_all

from .conftest import write
from .test_remote import clone_to, make_store


def _pushed(tmp_path: Path, pack_target: int | None = None) -> tuple[Store, str, list[bytes]]:
    """A store of random files of 256 KiB, pushed: 12 in one remote pack of 3 MiB, or with
    ``pack_target`` (1.4 MB) 13 in two packs of 1.4 to 1.7 MB and one of the rest, under
    WHOLE_MIN (a pack is closed once it holds the target, and a chunk is at most 256 KiB)."""
    url = (tmp_path / "remote").as_uri()
    a = make_store(tmp_path / "a", url, {})
    if pack_target:
        a.set_config(replace(a.config, pack_target=pack_target))
    for i in range(13 if pack_target else 12):
        write(a.worktree, f"f{i:02d}", os.urandom(256 * 1024))
    commit_all(a, "v1")
    Remote(a).push()
    return a, url, sorted(c for c, _loc in a.chunks.index)


def _remote_rows(a: Store) -> dict[str, list[tuple[bytes, int]]]:
    """Remote pack -> (chunk id, stored length) of what it holds, in pack order."""
    rows: dict[str, list[tuple[int, bytes, int]]] = {}
    for chunk_id, loc in Remote(a).index():
        rows.setdefault(loc.pack, []).append((loc.offset, chunk_id, loc.stored_len))
    return {pack: [(c, n) for _o, c, n in sorted(r)] for pack, r in rows.items()}


def _big(rows: dict[str, list[tuple[bytes, int]]]) -> list[str]:
    """The packs holding at least WHOLE_MIN bytes."""
    return sorted(p for p, r in rows.items() if sum(n for _c, n in r) >= WHOLE_MIN)


def _remote_packs(tmp_path: Path) -> set[str]:
    return {p.stem for p in (tmp_path / "remote" / "packs").glob("*/*.pack")}


def _local_packs(store: Store) -> set[str]:
    return {p.stem for p in store.chunks.packs_dir.glob("*/*.pack")}


def _leftovers(store: Store) -> list[str]:
    return [p.name for p in store.chunks.packs_dir.iterdir() if p.name.startswith(".tmp-")]


class Adoptions(list):
    """Each ``ChunkStore.adopt`` call: (pack, "taken" or the error's class name)."""

    def taken(self) -> list[str]:
        return sorted(p for p, what in self if what == "taken")

    def refused(self) -> list[str]:
        return sorted(p for p, what in self if what != "taken")


@pytest.fixture
def adopted(monkeypatch) -> Adoptions:
    seen, adopt = Adoptions(), ChunkStore.adopt

    def spy(self, path, pack_hex):
        try:
            got = adopt(self, path, pack_hex)
        except Exception as e:
            seen.append((pack_hex, type(e).__name__))
            raise
        seen.append((pack_hex, "taken" if got else "kept the one here"))
        return got

    monkeypatch.setattr(ChunkStore, "adopt", spy)
    return seen


def test_a_clone_takes_the_remote_packs_whole_and_checked(tmp_path: Path, adopted) -> None:
    """Two packs taken whole (on two threads) and a small one chunk by chunk, in one fetch."""
    a, url, ids = _pushed(tmp_path, pack_target=1_400_000)
    rows = _remote_rows(a)
    assert len(rows) == 3 and len(_big(rows)) == 2
    b = clone_to(url, {}, tmp_path / "b")
    assert adopted.taken() == _big(rows)
    assert adopted.refused() == []
    assert _leftovers(b) == []
    assert len(list((b.path / "index").glob("*.idx"))) == 1  # one fragment for the whole fetch
    fresh = Store(b.path)  # what is durable and indexed
    assert all(fresh.chunks.get(c) == a.chunks.get(c) for c in ids)
    assert fsck(fresh, read_data=True).ok


def test_a_pack_is_taken_whole_from_half_of_it(tmp_path: Path) -> None:
    a, url, _ids = _pushed(tmp_path)
    ((pack, order),) = _remote_rows(a).items()
    size = pack_path(tmp_path / "remote" / "packs", pack).stat().st_size
    total, half = 0, 0
    while 2 * total < size:  # the fewest chunks, in pack order, that make half of the pack
        total += order[half][1]
        half += 1
    b = make_store(tmp_path / "b", url, {})
    ids = [c for c, _n in order]
    assert Remote(b).dense_packs(ids[: half - 1]) == {}
    assert Remote(b).dense_packs(ids[:half]) == {pack: size}
    few = next(k for k in range(len(ids)) if sum(n for _c, n in order[: k + 1]) >= WHOLE_MIN)
    assert Remote(b).dense_packs(ids[:few]) == {}  # under WHOLE_MIN
    b.set_config(replace(b.config, sparse=["f0*"]))
    assert Remote(b).dense_packs(ids) == {}  # a sparse store takes only its part


def test_a_sparse_clone_downloads_only_the_chunks_of_its_part(tmp_path: Path, adopted) -> None:
    a, url, ids = _pushed(tmp_path)
    part = [f"f{i:02d}" for i in range(8)]
    b = clone_to(url, {}, tmp_path / "b", include=part)
    wanted = {c for path, e in a.meta.walk(a.head_tree()) if path in part for c, _n in e.chunk_list()}
    assert adopted == []
    fresh = Store(b.path)
    assert {c for c in ids if fresh.chunks.has(c)} == wanted


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
    asked, cat_ranges = [], RemoteFS.cat_ranges

    def gone(self, rel, ranges):
        if rel.startswith("packs/") and ranges[0][0] == 0:  # a whole pack, from its start
            asked.append(rel)
            raise FileNotFoundError(rel)
        return cat_ranges(self, rel, ranges)

    monkeypatch.setattr(RemoteFS, "cat_ranges", gone)
    assert Remote(b).fetch_chunks(ids) == len(ids)
    assert asked and adopted == []
    fresh = Store(b.path)
    assert all(fresh.chunks.get(c) == a.chunks.get(c) for c in ids)
    assert _leftovers(fresh) == []


def _damage(tmp_path: Path, a: Store, chunk_id: bytes) -> str:
    """Flip a byte inside one record of a remote pack; returns that pack."""
    loc = Remote(a).index().lookup(chunk_id)
    path = pack_path(tmp_path / "remote" / "packs", loc.pack)
    data = bytearray(path.read_bytes())
    data[loc.offset + loc.stored_len // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return loc.pack


def test_a_damaged_remote_pack_is_never_taken_and_its_damage_is_named(tmp_path: Path, adopted) -> None:
    a, url, ids = _pushed(tmp_path, pack_target=1_400_000)
    rows = _remote_rows(a)
    bad_pack, good_pack = _big(rows)
    victim = rows[bad_pack][2][0]
    assert _damage(tmp_path, a, victim) == bad_pack
    b = make_store(tmp_path / "b", url, {})
    remote = Remote(b)
    with pytest.raises(DsError, match=victim.hex()):
        remote.fetch_chunks(ids)
    assert adopted.refused() == [bad_pack] and adopted.taken() == [good_pack]
    assert any(bad_pack in w and "not taken whole" in w for w in remote.warnings)
    fresh = Store(b.path)
    assert bad_pack not in _local_packs(fresh)
    assert _leftovers(fresh) == []
    kept = [c for c in ids if fresh.chunks.has(c)]
    assert {c for c, _n in rows[good_pack]} <= set(kept)  # what arrived before the error is indexed
    assert victim not in kept
    assert all(fresh.chunks.get(c) == a.chunks.get(c) for c in kept)
    assert fsck(fresh, read_data=True).ok


def test_damage_in_a_chunk_not_wanted_is_reported_and_the_rest_fetched(tmp_path: Path, adopted) -> None:
    a, url, ids = _pushed(tmp_path)
    ((pack, rows),) = _remote_rows(a).items()
    order = [c for c, _n in rows]
    _damage(tmp_path, a, order[-1])
    b = make_store(tmp_path / "b", url, {})
    remote = Remote(b)
    assert remote.fetch_chunks(order[:-1]) == len(order) - 1
    assert adopted.refused() == [pack]
    assert any(pack in w for w in remote.warnings)
    fresh = Store(b.path)
    assert all(fresh.chunks.get(c) == a.chunks.get(c) for c in order[:-1])


def test_chunks_held_here_already_come_again_in_a_whole_pack(tmp_path: Path, adopted) -> None:
    """The store holds one chunk of a pack in a pack of its own: taken whole, that chunk is
    in two packs; gc keeps one copy and fsck finds everything sound."""
    a, url, ids = _pushed(tmp_path, pack_target=1_400_000)
    rows = _remote_rows(a)
    pack = _big(rows)[0]
    b = make_store(tmp_path / "b", url, {})
    Remote(b).fetch()  # refs and metadata: gc then keeps what the remote's versions need
    smallest = min(rows[pack], key=lambda row: row[1])[0]  # without it, 5/6 of the pack at least
    assert Remote(b).fetch_chunks([smallest]) == 1
    assert Remote(b).fetch_chunks(ids) == len(ids) - 1
    assert pack in adopted.taken()
    fresh = Store(b.path)
    gc(fresh)
    fresh = Store(b.path)
    assert fsck(fresh, read_data=True).ok
    assert all(fresh.chunks.get(c) == a.chunks.get(c) for c in ids)


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


def test_adopt_never_replaces_a_pack_of_that_name(tmp_path: Path) -> None:
    a, _url, ids = _pushed(tmp_path)
    (pack,) = {loc.pack for _c, loc in a.chunks.index}
    b = Store.init(tmp_path / "b")
    here = pack_path(b.chunks.packs_dir, pack)
    here.parent.mkdir(parents=True)
    here.write_bytes(b"the pack here, whatever it holds")
    download = b.chunks.packs_dir / ".tmp-x.fetched"
    download.write_bytes(pack_path(a.chunks.packs_dir, pack).read_bytes())
    assert b.chunks.adopt(download, pack) == []
    assert here.read_bytes() == b"the pack here, whatever it holds"
    assert not any(b.chunks.has(c) for c in ids)


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


@pytest.mark.parametrize("cleaner", ["gc", "the next write's recover", "the next fetch"])
def test_a_download_a_kill_left_behind_is_removed(tmp_path: Path, cleaner: str) -> None:
    _a, url, ids = _pushed(tmp_path)
    fetching = cleaner == "the next fetch"
    b = make_store(tmp_path / "b", url, {}) if fetching else clone_to(url, {}, tmp_path / "b")
    b.chunks.packs_dir.mkdir(exist_ok=True)
    left = b.chunks.packs_dir / ".tmp-0123456789abcdef.fetched"
    left.write_bytes(b"half a pack")
    os.utime(left, (1, 1))
    if cleaner == "gc":
        gc(b)
    elif fetching:
        assert Remote(b).fetch_chunks(ids[:1]) == 1
    else:
        with b.locked():
            b.chunks.recover()
    assert not left.exists()
    assert fsck(Store(b.path), read_data=True).ok
