"""One transfer for push and fetch (``repository.transfer``, ``copy_meta``): chunks, then the
metadata packs the destination lacks, whichever side is the source: a store to a remote
(push), a remote to a store (fetch, clone), a store to another store. Each pack is
verified before it is published, its ``.idx`` last; a copy stopped part way keeps what
arrived whole and the next one brings only the rest."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from objstore.errors import DsError
from objstore.remote import Remote
from objstore.repository import LocalRepository, copy_chunks, copy_meta, transfer
from objstore.store import Store
from objstore.worktree import commit_all

from .conftest import write
from .test_remote import make_store, with_remote


def two_versions(store: Store) -> tuple[str, str]:
    write(store.worktree, "a/one.bin", os.urandom(30_000))
    write(store.worktree, "b.txt", "first\n")
    v1 = commit_all(store, "v1").id
    write(store.worktree, "b.txt", "second\n")
    write(store.worktree, "c/two.bin", os.urandom(20_000))
    return v1, commit_all(store, "v2").id


def objects_under(store: Store, tops: list[str], known: list[str] = ()) -> set[str]:
    seen: set[str] = set()
    store.meta.reachable(list(known), seen)
    new: set[str] = set()
    store.meta.reachable(tops, seen, new)
    return new


def chunks_of(store: Store, version: str) -> list[bytes]:
    meta = store.meta
    return [c for _p, e in meta.walk(meta.tree_of(version)) for c, _ in e.chunk_list()]


def remote_packs(remote: Remote) -> list[str]:
    listed = remote.fs.list_detail("meta")
    return sorted(rel.rsplit("/", 1)[-1][:-4] for rel in listed if rel.endswith(".idx"))


def test_push_sends_what_the_remote_lacks_and_a_new_store_fetches_it(tmp_path: Path, remote_spec) -> None:
    url, opts = remote_spec
    a = make_store(tmp_path / "a", url, opts)
    v1, v2 = two_versions(a)
    Remote(a).push([f"{v1}:refs/heads/main"])
    before = remote_packs(Remote(a))

    sent = Remote(a)
    chunks, _packs, names = transfer(LocalRepository(a), sent, [v2], [v1], chunks_of(a, v2))
    assert chunks == 2  # c/two.bin, b.txt's new bytes: a/one.bin is there since v1
    new = sorted(set(remote_packs(sent)) - set(before))
    assert [n for n in names if n.endswith(".idx")] == [f"{new[0]}.idx"] and len(new) == 1
    assert set(sent.meta_pack_objects(new[0])) == objects_under(a, [v2], [v1])  # v1's not again

    b = with_remote(Store.init(tmp_path / "b"), url, opts)
    src = Remote(b)
    got = copy_meta(src, LocalRepository(b))
    assert sorted(n[:-4] for n in got if n.endswith(".idx")) == remote_packs(src)
    assert all(b.meta.readable(o) for o in objects_under(a, [v2]))
    assert copy_meta(Remote(b), LocalRepository(b)) == []  # nothing lacking: nothing read
    assert copy_chunks(src, LocalRepository(b), chunks_of(b, v2))[0] == 3
    assert all(b.chunks.get(c) == a.chunks.get(c) for c in chunks_of(a, v2))
    assert not [p for p in b.meta.pack_folder.iterdir() if p.name.startswith(".tmp-")]


def test_one_store_copies_to_another_with_no_remote_between(tmp_path: Path) -> None:
    a = Store.init(tmp_path / "a")
    v1, v2 = two_versions(a)
    b = Store.init(tmp_path / "b")
    chunks, _packs, names = transfer(LocalRepository(a), LocalRepository(b), [v1], [], chunks_of(a, v1))
    assert chunks == 2 and len(names) == 2
    assert all(b.meta.readable(o) for o in objects_under(a, [v1]))
    assert not b.meta.readable(v2)
    _c, _p, names = transfer(LocalRepository(a), LocalRepository(b), [v2], [v1], chunks_of(a, v2))
    packs = sorted(b.meta.pack_folder.glob("pack-*.idx"))
    assert len(packs) == 2 and all(b.meta.readable(o) for o in objects_under(a, [v2]))
    assert b.chunks.get(chunks_of(a, v2)[-1]) == a.chunks.get(chunks_of(a, v2)[-1])


class StopsAtSecondPack(LocalRepository):
    """A store whose second metadata pack fails to arrive (a full disk, a kill)."""

    calls = 0

    def add_meta_pack(self, files: list[Path]) -> None:
        StopsAtSecondPack.calls += 1
        if StopsAtSecondPack.calls == 2:
            raise OSError(28, "No space left on device")
        super().add_meta_pack(files)


def test_a_fetch_stopped_part_way_keeps_whole_packs_and_resumes(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    a = make_store(tmp_path / "a", url, {})
    v1, v2 = two_versions(a)
    Remote(a).push([f"{v1}:refs/heads/main"])
    Remote(a).push([f"{v2}:refs/heads/main"])
    b = with_remote(Store.init(tmp_path / "b"), url, {})
    assert len(remote_packs(Remote(b))) == 2

    with pytest.raises(OSError, match="No space"):
        copy_meta(Remote(b), StopsAtSecondPack(b))
    held = sorted(p.name for p in b.meta.pack_folder.glob("pack-*"))
    assert len(held) == 2 and {n[:-5] for n in held if n.endswith(".pack")} == {n[:-4] for n in held
                                                                                if n.endswith(".idx")}
    assert set(held) <= Remote(b).remembered_meta()
    assert not [p for p in b.meta.pack_folder.iterdir() if p.name.startswith(".tmp-")]

    again = copy_meta(Remote(b), LocalRepository(b))
    assert len(again) == 2 and not set(again) & set(held)  # only the pack that did not arrive
    assert all(b.meta.readable(o) for o in objects_under(a, [v2]))


def test_a_damaged_metadata_pack_is_never_published(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    a = make_store(tmp_path / "a", url, {})
    v1, _v2 = two_versions(a)
    Remote(a).push([f"{v1}:refs/heads/main"])
    (pack,) = Path(url, "meta").glob("pack-*.pack")
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))

    b = with_remote(Store.init(tmp_path / "b"), url, {})
    with pytest.raises(DsError, match="damaged"):
        copy_meta(Remote(b, retries=0), LocalRepository(b))
    folder = b.meta.pack_folder
    assert not folder.exists() or not [p for p in folder.iterdir()]  # nothing published, no temp left
    assert not b.meta.readable(v1) and Remote(b).remembered_meta() == set()
