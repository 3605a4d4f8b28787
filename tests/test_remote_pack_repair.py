"""A remote data pack whose own bytes are damaged (a flipped bit in a chunk, cut short,
garbage in its header or table of contents): ``ds fsck --remote NAME --read-data-subset 1``
finds it, and ``--repair`` copies every chunk of it to a fresh pack (from this store, else
from the pack's own records that still read whole), points the index there, and only then
moves the damaged pack to ``damaged/``: every reader, even one holding an index read before
the repair, then finds a good copy. A chunk no store at hand holds whole keeps the pack in
place, named with the files and versions it breaks; an interrupted repair leaves the remote
no worse, and the next run finishes it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from objstore import remote_fsck
from objstore.dsfs import DsFileSystem
from objstore.get import get_copy
from objstore.packs import FOOTER
from objstore.remote import Remote, push
from objstore.remote_fs import RemoteFS
from objstore.remote_fsck import fsck_remote
from objstore.repository import Repository
from objstore.store import Store
from objstore.worktree import commit_all

from .conftest import ds, read_tree, write
from .test_remote import clone_to, make_store
from .test_remote_repair import _aside, _files, _flip, _listing, _pushed


def _pack_name(rel: str) -> str:
    return rel.rsplit("/", 1)[-1][: -len(".pack")]


def _damage_pack(fs: RemoteFS, rel: str, kind: str) -> None:
    data = bytearray(fs.cat(rel))
    if kind == "flip":  # inside the first chunk's record
        data[100] ^= 0xFF
    elif kind == "truncated":
        data = data[: len(data) // 2]
    elif kind == "header":  # garbage over the magic, hash code and reserved bytes
        data[:16] = bytes(b ^ 0xA5 for b in data[:16])
    elif kind == "reserved":  # only the header's reserved zeros: no chunk read shows it
        data[12] = 0x5A
    else:  # "toc": a byte of the pack's own table of contents
        data[len(data) - FOOTER.size - 3] ^= 0xFF
    fs.put(rel, bytes(data))


def _index_packs(store: Store) -> set[str]:
    """Packs the remote's index names, as a reader new to it reads that index."""
    return {loc.pack for _cid, loc in Remote(store, "origin").index()}


def _unreadable(tmp_path: Path, url: str, opts: dict) -> set[bytes]:
    """Chunks the remote's versions need that cannot be read there, as a store new to the
    remote finds them (every row of a chunk indexed twice counts: readers differ there)."""
    probe = make_store(tmp_path / f"probe-{len(list(tmp_path.glob('probe-*')))}", url, opts)
    c = remote_fsck._check(Remote(probe, "origin"), 1.0, thorough=True)
    return set(c.bad_chunks) | {cid for cid, loc in c.rows
                                if cid in c.marked.chunks and (cid, loc) in c.bad_rows}


KINDS = ["flip", "truncated", "header", "reserved", "toc"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_pack_is_found_then_emptied_and_moved_aside(tmp_path: Path, kind: str) -> None:
    url = str(tmp_path / "remote")
    a = _pushed(tmp_path, url, {})
    fs = RemoteFS(url, {})
    [rel] = _files(fs, "packs", ".pack")
    pack = _pack_name(rel)
    reader = clone_to(url, {}, tmp_path / "reader", include=["nothing/"])  # holds no chunk
    stale = Remote(reader).attach()
    stale.index()  # a reader that read the index before the damage and the repair
    _damage_pack(fs, rel, kind)
    damaged = fs.cat(rel)
    checker = make_store(tmp_path / "checker", url, {})
    found = fsck_remote(checker, "origin", read_data_subset=1.0)
    assert not found["ok"] and any(pack in p for p in found["problems"]), found["problems"]
    assert "--repair" in found["hint"]
    if kind != "truncated":  # found only by reading: the repair must read too
        assert "`ds fsck --remote origin --read-data-subset 1 --repair`" in found["hint"]
    fixed = fsck_remote(a, "origin", read_data_subset=1.0, repair=True)
    assert fixed["ok"], fixed["problems"]
    mended = fixed["repaired"]
    assert mended["moved_aside"] == [rel] and mended["damaged_packs_kept"] == []
    assert mended["chunks_sent"] + mended["chunks_moved"] == 30 and mended["packs_sent"] == 1
    assert rel not in _files(fs, "packs", ".pack")
    assert fs.cat(_aside(fs, rel)) == damaged, "the damaged bytes are kept, out of every reader's way"
    assert pack not in _index_packs(make_store(tmp_path / "fresh", url, {}))
    assert fsck_remote(checker, "origin", read_data_subset=1.0)["ok"]
    get_copy(reader, "HEAD", tmp_path / "copy")  # through the index it read before the repair
    assert read_tree(tmp_path / "copy") == read_tree(a.worktree)
    assert read_tree(clone_to(url, {}, tmp_path / "b").worktree) == read_tree(a.worktree)


def test_the_cli_finds_a_damaged_pack_header_and_mends_it(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    a = _pushed(tmp_path, url, {})
    fs = RemoteFS(url, {})
    [rel] = _files(fs, "packs", ".pack")
    _damage_pack(fs, rel, "header")
    check = ds("fsck", "--remote", "origin", "--read-data-subset", "1", cwd=a.worktree, check=False)
    assert check.returncode == 1, check.stderr
    assert f"problem: pack {_pack_name(rel)} is damaged on the remote: its header is damaged" in check.stderr
    assert "hint: `ds fsck --remote origin --read-data-subset 1 --repair`" in check.stderr
    repair = ("fsck", "--remote", "origin", "--read-data-subset", "1", "--repair")
    fixed = ds(*repair, cwd=a.worktree, check=False)
    assert fixed.returncode == 0, fixed.stderr
    assert "30 chunk(s) of damaged packs copied to new packs" in fixed.stderr
    assert f"moved to damaged/ on the remote: {rel}" in fixed.stderr and "OK" in fixed.stdout
    assert ds("fsck", "--remote", "origin", "--read-data-subset", "1", cwd=a.worktree).returncode == 0
    assert rel not in _files(fs, "packs", ".pack")


def _one_pack_damaged(tmp_path: Path) -> tuple[str, Store, RemoteFS, str]:
    """A folder remote whose one data pack has a flipped byte: (url, the store that pushed
    it, the remote's files, the pack's path)."""
    url = str(tmp_path / "remote")
    a = _pushed(tmp_path, url, {})
    fs = RemoteFS(url, {})
    [rel] = _files(fs, "packs", ".pack")
    _flip(fs, rel, 100)
    return url, a, fs, rel


def test_a_chunk_no_store_at_hand_holds_keeps_its_pack_and_is_named(tmp_path: Path) -> None:
    """The repair runs from a store that holds no chunk: the pack's other records read whole
    there, but the damaged one is nowhere else, so nothing is moved, sent or removed, and the
    file and version it breaks are named with where to run the repair. From the store that
    pushed it, the same repair then empties and removes the pack."""
    url, a, fs, rel = _one_pack_damaged(tmp_path)
    files = _listing(fs)
    empty = make_store(tmp_path / "empty", url, {})
    result = fsck_remote(empty, "origin", read_data_subset=1.0, repair=True)
    assert not result["ok"]
    [kept] = result["repaired"]["damaged_packs_kept"]
    assert kept["pack"] == _pack_name(rel)
    [lost] = kept["chunks"]
    [path] = lost["paths"]
    assert (a.worktree / path).is_file() and lost["versions"] == [a.meta.head_commit()]
    [named] = [p for p in result["problems"] if "this store holds no whole copy" in p]
    assert lost["chunk"] in named and _pack_name(rel) in named and path in named, named
    assert a.meta.head_commit()[:12] in named
    assert "--read-data-subset 1 --repair` on a machine whose store holds those files" in named
    assert result["repaired"]["chunks_moved"] == 0 and result["repaired"]["moved_aside"] == []
    assert _listing(fs) == files, "nothing was sent, moved or removed"
    fixed = fsck_remote(a, "origin", read_data_subset=1.0, repair=True)
    assert fixed["ok"], fixed["problems"]
    assert fixed["repaired"]["moved_aside"] == [rel]
    assert read_tree(clone_to(url, {}, tmp_path / "b").worktree) == read_tree(a.worktree)


def test_a_damaged_chunk_no_version_needs_does_not_keep_its_pack(tmp_path: Path) -> None:
    """One pack holds chunks main needs and one no version needs any more, whose record is
    damaged: a store that holds no chunk copies the needed ones from the pack's whole
    records, drops the dead one's row, and moves the pack aside."""
    url = str(tmp_path / "remote")
    a = make_store(tmp_path / "a", url, {})
    keep = {f"k{i}.bin": os.urandom(4000 + 50 * i) for i in range(8)}
    for name, data in keep.items():
        write(a.worktree, name, data)
    write(a.worktree, "x.bin", os.urandom(6000))
    commit_all(a, "with x")
    push(a)
    b = make_store(tmp_path / "b", url, {})
    for name, data in keep.items():
        write(b.worktree, name, data)
    commit_all(b, "without x")
    push(b, force=True)  # main no longer reaches x; b sent no chunk: the remote had them all
    fs = RemoteFS(url, {})
    [rel] = _files(fs, "packs", ".pack")
    [(x, _n)] = a.meta.lookup(a.meta.tree_of(a.meta.head_commit()), "x.bin").chunk_list()
    loc = Remote(a, "origin").index().lookup(x)
    _flip(fs, rel, loc.offset + loc.stored_len // 2)
    empty = make_store(tmp_path / "empty", url, {})
    fixed = fsck_remote(empty, "origin", read_data_subset=1.0, repair=True)
    assert fixed["ok"], fixed["problems"]
    mended = fixed["repaired"]
    assert mended["moved_aside"] == [rel]
    assert (mended["chunks_moved"], mended["chunks_sent"]) == (len(keep), 0)
    index = Remote(make_store(tmp_path / "fresh", url, {}), "origin").index()
    assert index.lookup(x) is None and _pack_name(rel) not in {loc.pack for _cid, loc in index}
    assert read_tree(clone_to(url, {}, tmp_path / "c").worktree) == read_tree(b.worktree)


def test_a_damaged_pack_whose_chunks_are_whole_elsewhere_is_removed_without_sending(tmp_path: Path) -> None:
    """The same chunks in two packs, one damaged: nothing needs copying; the index keeps
    the whole copy and the damaged pack goes aside."""
    from objstore.index import Location

    from .test_remote_repair import _put_fragment

    url = str(tmp_path / "remote")
    a = _pushed(tmp_path, url, {}, files=3)
    fs = RemoteFS(url, {})
    [rel] = _files(fs, "packs", ".pack")
    copy = "f" * 32
    fs.put(f"packs/ff/{copy}.pack", fs.cat(rel))
    rows = list(Remote(a, "origin").index())
    _put_fragment(fs, a, [(cid, Location(copy, loc.offset, loc.stored_len, loc.raw_len, loc.flags))
                          for cid, loc in rows])
    _damage_pack(fs, rel, "header")
    fixed = fsck_remote(a, "origin", read_data_subset=1.0, repair=True)
    assert fixed["ok"], fixed["problems"]
    mended = fixed["repaired"]
    assert (mended["chunks_sent"], mended["chunks_moved"], mended["packs_sent"]) == (0, 0, 0)
    assert mended["moved_aside"] == [rel]
    assert _index_packs(make_store(tmp_path / "fresh", url, {})) == {copy}


class Killed(Exception):
    """The repair stopped here, as by a kill."""


def _kill(*_args, **_kw):
    raise Killed


@pytest.mark.parametrize("step", ["after-packs", "after-index", "after-copy-aside"])
def test_a_repair_interrupted_between_steps_leaves_the_remote_no_worse_and_a_rerun_finishes(
        tmp_path: Path, monkeypatch, step: str) -> None:
    """Killed once the fresh pack landed (before the index names it), once the index
    names it (before the damaged pack goes), or once the damaged pack is copied aside
    (before it is deleted): nothing readable before is unreadable, readers still read
    every file they could, and the same repair run again removes the damaged pack."""
    url, a, fs, rel = _one_pack_damaged(tmp_path)
    before = _unreadable(tmp_path, url, {})
    assert len(before) == 1
    if step == "after-packs":
        monkeypatch.setattr(Repository, "replace_index", _kill)
    elif step == "after-index":
        monkeypatch.setattr(remote_fsck, "_move_pack_aside", _kill)
    else:
        real = RemoteFS.delete

        def delete(self, rels):
            if any(r.startswith("packs/") for r in rels):
                raise Killed
            return real(self, rels)

        monkeypatch.setattr(RemoteFS, "delete", delete)
    with pytest.raises(Killed):
        fsck_remote(a, "origin", read_data_subset=1.0, repair=True)
    monkeypatch.undo()
    assert rel in _files(fs, "packs", ".pack")
    after = _unreadable(tmp_path, url, {})
    assert after <= before, "the interrupted repair made something unreadable"
    if step != "after-packs":
        assert after == set(), "the index already names a whole copy of every chunk"
    again = fsck_remote(Store.open(a.worktree), "origin", read_data_subset=1.0, repair=True)
    assert again["ok"], again["problems"]
    assert rel not in _files(fs, "packs", ".pack")
    assert _aside(fs, rel), "one copy of the damaged pack is kept aside"
    if step == "after-packs":  # the landed pack is indexed, not sent again
        assert again["repaired"]["packs_sent"] == 0 and again["repaired"]["chunks_reindexed"] == 30
    assert fsck_remote(make_store(tmp_path / "checker", url, {}), "origin", read_data_subset=1.0)["ok"]
    assert read_tree(clone_to(url, {}, tmp_path / "b").worktree) == read_tree(a.worktree)


def test_a_copy_that_does_not_read_back_whole_leaves_the_damaged_pack_as_it_was(tmp_path: Path,
                                                                                 monkeypatch) -> None:
    """Every fresh copy fails its read-back (storage that corrupts what it is sent): the
    index keeps naming the damaged pack's records that read, the pack stays, and that is
    reported; nothing readable before is unreadable. A later repair finishes."""
    url, a, fs, rel = _one_pack_damaged(tmp_path)
    before = _unreadable(tmp_path, url, {})
    monkeypatch.setattr(remote_fsck, "_read_back", lambda remote, rows: set())
    result = fsck_remote(a, "origin", read_data_subset=1.0, repair=True)
    monkeypatch.undo()
    assert not result["ok"] and result["repaired"]["moved_aside"] == []
    [kept] = result["repaired"]["damaged_packs_kept"]
    assert kept["pack"] == _pack_name(rel) and "did not read back whole" in kept["why"]
    assert any(f"damaged pack {_pack_name(rel)} stays" in p for p in result["problems"]), result["problems"]
    assert rel in _files(fs, "packs", ".pack")
    assert _index_packs(make_store(tmp_path / "fresh", url, {})) == {_pack_name(rel)}
    assert _unreadable(tmp_path, url, {}) == before
    fixed = fsck_remote(Store.open(a.worktree), "origin", read_data_subset=1.0, repair=True)
    assert fixed["ok"] and fixed["repaired"]["moved_aside"] == [rel], fixed


def test_a_ds_url_reader_that_read_the_index_before_the_repair_reads_the_good_copy(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    a = _pushed(tmp_path, url, {})
    fs = RemoteFS(url, {})
    [rel] = _files(fs, "packs", ".pack")
    reader = clone_to(url, {}, tmp_path / "reader", include=["nothing/"])
    dsfs = DsFileSystem(store=str(reader.worktree), remote="origin")
    names = sorted(p.relative_to(a.worktree).as_posix() for p in a.worktree.rglob("*.bin"))
    assert dsfs.cat(f"ds://@HEAD/{names[-1]}") == (a.worktree / names[-1]).read_bytes()  # index read
    _flip(fs, rel, 100)
    fixed = fsck_remote(a, "origin", read_data_subset=1.0, repair=True)
    for name in names:  # today's index has no row in the damaged pack, and that pack is gone
        assert dsfs.cat(f"ds://@HEAD/{name}") == (a.worktree / name).read_bytes(), name
    assert fixed["ok"] and fixed["repaired"]["moved_aside"] == [rel], fixed


def test_a_damaged_pack_on_s3_is_emptied_and_moved_aside(tmp_path: Path, moto_s3) -> None:
    url, opts = f"s3://{moto_s3.new_bucket()}/data", moto_s3.options
    a = _pushed(tmp_path, url, opts, files=12)
    fs = RemoteFS(url, opts)
    [rel] = _files(fs, "packs", ".pack")
    _flip(fs, rel, 100)
    damaged = fs.cat(rel)
    assert not fsck_remote(make_store(tmp_path / "checker", url, opts), "origin", read_data_subset=1.0)["ok"]
    fixed = fsck_remote(a, "origin", read_data_subset=1.0, repair=True)
    assert fixed["ok"], fixed["problems"]
    assert fixed["repaired"]["moved_aside"] == [rel]
    assert rel not in _files(fs, "packs", ".pack") and fs.cat(_aside(fs, rel)) == damaged
    shutil.rmtree(a.path / "remotes", ignore_errors=True)  # a's view of the remote, read afresh
    assert fsck_remote(Store.open(a.worktree), "origin", read_data_subset=1.0)["ok"]
    assert read_tree(clone_to(url, opts, tmp_path / "b").worktree) == read_tree(a.worktree)
