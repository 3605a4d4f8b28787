"""A small file changed by a few bytes is stored as a delta against its previous version.

Checked: the store grows by about the change, every version reads back byte-exact
(checkout, get, ds://, fsck --read-data), a base is never a delta itself, gc keeps the
base of a live delta even when the base's own version is gone, a push sends whole
chunks (remotes hold no deltas), and damaged or hostile delta records are refused.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from objstore.errors import CorruptObject, FormatError
from objstore.get import get_copy
from objstore.index import Location
from objstore.maintenance import fsck, gc
from objstore.packs import FLAG_DELTA, FLAG_ZSTD, PackEntry, decode_toc, encode_toc
from objstore.remote import Remote
from objstore.squash import squash
from objstore.store import Store
from objstore.worktree import checkout, commit_all

from .conftest import read_tree, write
from .test_remote import clone_to, make_store


def _changed(data: bytes, rng: random.Random, span: int = 100) -> bytes:
    at = rng.randrange(0, len(data) - span)
    return data[:at] + rng.randbytes(span) + data[at + span :]


def _du(store: Store) -> int:
    return sum(p.stat().st_size for p in (store.path / "packs").glob("*/*.pack"))


def _loc(store: Store, work: Path, path: str, rev: str = "HEAD") -> Location:
    entry = store.meta.lookup(store.tree(rev), path)
    return store.chunks.locate(entry.hash)


def test_a_small_change_costs_about_its_bytes_and_reads_back(store: Store, work: Path,
                                                           tmp_path: Path) -> None:
    rng = random.Random(1)
    files = {f"d/f{i}.bin": rng.randbytes(6000) for i in range(20)}
    files["d/t.csv"] = b"".join(b"%d,row %d,%f\n" % (i, i * 7, i / 3) for i in range(400))
    for p, data in files.items():
        write(work, p, data)
    v1 = commit_all(store, "v1").id
    before = _du(store)
    changed = {p: _changed(d, rng) for p, d in files.items()}
    for p, data in changed.items():
        write(work, p, data)
    v2 = commit_all(store, "v2").id
    grown = _du(store) - before
    assert grown < 21 * 100 * 3, f"grew {grown} bytes for 21 changes of 100 bytes"
    loc = _loc(store, work, "d/f0.bin")
    assert loc.flags & FLAG_DELTA and loc.stored_len < 600
    assert not store.chunks.locate(store.chunks.base_of(loc)).flags & FLAG_DELTA
    assert fsck(store, read_data=True).ok
    out = tmp_path / "out"
    get_copy(store, v1, out)
    assert {p: (out / p).read_bytes() for p in files} == files
    checkout(store, v1)
    assert {p: (work / p).read_bytes() for p in files} == files
    checkout(store, v2)
    assert {p: (work / p).read_bytes() for p in files} == changed


def test_a_base_is_never_a_delta_and_gc_keeps_bases_of_live_deltas(store: Store, work: Path,
                                                                   tmp_path: Path) -> None:
    rng = random.Random(2)
    data = rng.randbytes(8000)
    write(work, "f", data)
    v1 = commit_all(store, "v1").id
    first = store.meta.lookup(store.tree(v1), "f").hash
    history = [data]
    for n in range(3):
        data = _changed(data, rng)
        history.append(data)
        write(work, "f", data)
        commit_all(store, f"v{n + 2}")
        loc = _loc(store, work, "f")
        assert loc.flags & FLAG_DELTA
        assert store.chunks.base_of(loc) == first, "every later version is a delta against v1's chunk"
    squash(store, ["HEAD"], "only the last")  # v1's version is gone; its chunk is the base
    report = gc(store, reflog_grace=None)  # forget the squashed versions the reflog still holds
    assert report.chunks_dropped == 2  # the two middle versions
    assert store.chunks.locate(first) is not None
    assert fsck(store, read_data=True).ok
    out = tmp_path / "out"
    get_copy(store, "HEAD", out)
    assert (out / "f").read_bytes() == history[-1]


def test_push_sends_whole_chunks_and_the_clone_reads_every_version(tmp_path: Path) -> None:
    url = (tmp_path / "remote").as_uri()
    a = make_store(tmp_path / "a", url, {})
    rng = random.Random(3)
    data = {f"f{i}": rng.randbytes(5000) for i in range(5)}
    for p, d in data.items():
        write(a.worktree, p, d)
    commit_all(a, "v1")
    for p, d in data.items():
        write(a.worktree, p, _changed(d, rng))
    commit_all(a, "v2")
    assert _loc(a, a.worktree, "f0").flags & FLAG_DELTA
    Remote(a).push()
    b = clone_to(url, {}, tmp_path / "b")
    assert read_tree(b.worktree) == read_tree(a.worktree)
    assert not any(loc.flags & FLAG_DELTA for _c, loc in b.chunks.index)
    checkout(b, "HEAD~1")
    assert {p: (b.worktree / p).read_bytes() for p in data} == data
    assert fsck(b, read_data=True).ok


def test_ds_url_reads_a_delta(store: Store, work: Path) -> None:
    import fsspec

    rng = random.Random(4)
    data = rng.randbytes(7000)
    write(work, "f", data)
    commit_all(store, "v1")
    new = _changed(data, rng)
    write(work, "f", new)
    commit_all(store, "v2")
    assert _loc(store, work, "f").flags & FLAG_DELTA
    fs = fsspec.filesystem("ds", store=str(work), skip_instance_cache=True)
    assert fs.cat("ds://@HEAD/f") == new
    assert fs.cat("ds://@HEAD~1/f") == data
    with fs.open("ds://@HEAD/f") as f:
        f.seek(3000)
        assert f.read(100) == new[3000:3100]


def test_a_delta_whose_base_is_missing_or_a_delta_is_refused(store: Store, work: Path) -> None:
    rng = random.Random(5)
    write(work, "f", rng.randbytes(5000))
    commit_all(store, "v1")
    base = store.meta.lookup(store.head_tree(), "f").hash
    raw = rng.randbytes(5000)
    from objstore.packs import encode_delta

    good = encode_delta(raw, base, store.chunks.get(base), 3)
    unknown = encode_delta(raw, b"\x07" * 16, raw, 3)
    cid = store.algo.digest(raw)
    store.chunks.put_encoded(cid, unknown, len(raw), FLAG_ZSTD | FLAG_DELTA)
    store.chunks.flush()
    with pytest.raises(CorruptObject, match="base chunk 0707.* is missing"):
        store.chunks.get(cid)
    raw2 = rng.randbytes(3000)
    cid2 = store.algo.digest(raw2)
    chained = encode_delta(raw2, cid, raw, 3)  # its base is the delta above
    store.chunks.put_encoded(cid2, chained, len(raw2), FLAG_ZSTD | FLAG_DELTA)
    store.chunks.flush()
    with pytest.raises(CorruptObject, match="itself a delta"):
        store.chunks.get(cid2)
    assert good[:16] == base


def test_pack_tables_refuse_a_delta_flag_without_zstd_or_room_for_its_base() -> None:
    for flags, stored in ((FLAG_DELTA, 100), (FLAG_DELTA | FLAG_ZSTD, 16), (8, 100)):
        toc = encode_toc([PackEntry(b"\1" * 16, 16, stored, 100, flags)])
        with pytest.raises(FormatError):
            decode_toc(toc, 1, 16, 1000, "test")
    toc = encode_toc([PackEntry(b"\1" * 16, 16, 100, 200, FLAG_DELTA | FLAG_ZSTD)])
    assert decode_toc(toc, 1, 16, 1000, "test")[0].flags == FLAG_DELTA | FLAG_ZSTD


@pytest.mark.parametrize(("content", "why"), [
    (os.urandom(5000), "unknown flags 0x2"),  # stored raw: a delta flag alone
    (b"row,1,2,3\n" * 500, "a delta record, and its base chunk is not at hand"),  # a zstd frame
])
def test_a_fetched_record_claiming_to_be_a_delta_is_refused(tmp_path: Path, content: bytes, why: str) -> None:
    """Remotes hold no deltas: a record that says it is one is damage, and fetch says so."""
    url = (tmp_path / "remote").as_uri()
    a = make_store(tmp_path / "a", url, {})
    write(a.worktree, "f", content)
    commit_all(a, "v1")
    Remote(a).push()
    idx = next((tmp_path / "remote" / "index").glob("*.idx"))
    data = bytearray(idx.read_bytes())
    from objstore import index as index_mod

    frag = index_mod.Fragment(idx)
    off = frag._locs + 20  # the flags byte of the first (only) location
    frag.close()
    data[off] |= FLAG_DELTA
    body = bytes(data[: -index_mod.CHECK])
    import xxhash

    idx.unlink()
    new = body + xxhash.xxh3_128_digest(body)
    (idx.parent / f"{new[-16:].hex()}.idx").write_bytes(new)
    with pytest.raises(CorruptObject, match=why):
        clone_to(url, {}, tmp_path / "b")
    assert not (tmp_path / "b" / "f").exists(), "nothing read from the damaged record is written"


def test_a_child_dataset_version_stores_a_changed_file_as_a_delta(tmp_path: Path, monkeypatch) -> None:
    from objstore import Dataset

    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "sdk" / ".dsstore"))
    monkeypatch.delenv("DSSTORE_REMOTE", raising=False)
    rng = random.Random(6)
    old = rng.randbytes(6000)
    write(tmp_path / "d1", "img.bin", old)
    v1 = Dataset.create(dataset_name="n", dataset_project="p")
    v1.add_files(tmp_path / "d1")
    v1.finalize()
    new = _changed(old, rng)
    write(tmp_path / "d2", "img.bin", new)
    v2 = Dataset.create(dataset_name="n", dataset_project="p", parent_datasets=[v1.id])
    v2.add_files(tmp_path / "d2")
    v2.finalize()
    with Store(tmp_path / "sdk" / ".dsstore") as s:
        entry = s.meta.lookup(s.meta.tree_of(v2._record["commit"]), "img.bin")
        loc = s.chunks.locate(entry.hash)
        assert loc.flags & FLAG_DELTA and loc.stored_len < 600
    assert (Path(v2.get_local_copy()) / "img.bin").read_bytes() == new
    assert (Path(v1.get_local_copy()) / "img.bin").read_bytes() == old


def test_gc_keeps_the_base_of_an_unused_delta_it_keeps(store: Store, work: Path, tmp_path: Path) -> None:
    """A dead delta in a mostly live pack stays indexed, so its base must stay too: the
    same bytes added again reuse the delta."""
    rng = random.Random(7)
    x = rng.randbytes(8000)
    y = x[:4000] + rng.randbytes(50) + x[4050:]
    write(work, "f", x)
    commit_all(store, "v1")
    write(work, "f", y)
    write(work, "big", rng.randbytes(200_000))  # keeps v2's pack mostly live
    commit_all(store, "v2")
    assert _loc(store, work, "f").flags & FLAG_DELTA
    write(work, "f", rng.randbytes(8000))
    commit_all(store, "v3")
    squash(store, ["HEAD"], "only v3")  # neither x nor y is in any version now
    gc(store, reflog_grace=None)
    write(work, "g", y)  # dedupes onto the kept delta
    commit_all(store, "v4")
    assert fsck(store, read_data=True).ok
    out = tmp_path / "out"
    get_copy(store, "HEAD", out)
    assert (out / "g").read_bytes() == y
