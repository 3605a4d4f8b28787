"""The chunk check (``chunk_check.py``) is written once over a ``Repository`` and runs on
both sides: the same damage (a chunk's record flipped inside a data pack; an index row
pointing past the end of its pack, whose own table of contents is whole) is found, in the
same words, by ``ds fsck`` here and by ``ds fsck --remote`` on a folder remote. A plain
local ``ds fsck`` still reads no chunk data."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from objstore.chunk_check import IndexRows
from objstore.index import Location, encode_fragment
from objstore.maintenance import fsck
from objstore.packs import FLAG_DELTA, FLAG_ZSTD, encode_delta, pack_path
from objstore.remote import Remote, push
from objstore.remote_fs import RemoteFS
from objstore.remote_fsck import fsck_remote
from objstore.remote_repo import RemoteRepo
from objstore.repository import Repository
from objstore.store import Store
from objstore.worktree import commit_all

from .conftest import ds, write
from .test_remote import with_remote


def _published(tmp_path: Path) -> tuple[Store, RemoteFS, bytes]:
    """A store whose one version is pushed to a folder remote, and a chunk in the middle of
    big.bin (a file of several chunks)."""
    s = Store.init(tmp_path / "w")
    url = str(tmp_path / "remote")
    with_remote(s, url, {})
    rng = random.Random(7)
    write(s.worktree, "big.bin", rng.randbytes(2_000_000))
    write(s.worktree, "small.bin", rng.randbytes(20_000))
    v1 = commit_all(s, "v1").id
    push(s)
    [e] = [e for path, e in s.meta.walk(s.tree(v1)) if path == "big.bin"]
    ids = [cid for cid, _n in e.chunk_list()]
    assert len(ids) >= 3
    return s, RemoteFS(url, {}), ids[len(ids) // 2]


def _reading(monkeypatch) -> list[str]:
    """The sides ("local", "remote") whose chunks the check reads back: ``Repository.verify``
    is its one read path, on either side."""
    sides: list[str] = []
    real = Repository.verify

    def spy(self, items, problems):
        sides.append("remote" if isinstance(self, RemoteRepo) else "local")
        return real(self, items, problems)

    monkeypatch.setattr(Repository, "verify", spy)
    return sides


def test_a_flipped_record_is_found_on_both_sides_by_the_one_check(tmp_path: Path, monkeypatch) -> None:
    s, fs, cid = _published(tmp_path)
    loc = s.chunks.locate(cid)
    path = pack_path(s.chunks.packs_dir, loc.pack)
    data = bytearray(path.read_bytes())
    data[loc.offset + loc.stored_len // 2] ^= 0x10
    path.write_bytes(bytes(data))
    far = Remote(s).index().lookup(cid)
    rel = f"packs/{far.pack[:2]}/{far.pack}.pack"
    data = bytearray(fs.cat(rel))
    data[far.offset + far.stored_len // 2] ^= 0x10
    fs.put(rel, bytes(data))
    sides = _reading(monkeypatch)
    here = [p for p in fsck(s, read_data=True).problems if cid.hex() in p]
    there = [p for p in fsck_remote(s, "origin", read_data_subset=1.0)["problems"] if cid.hex() in p]
    assert set(sides) == {"local", "remote"}, sides
    # the words the shared check adds: which file the chunk is of, and (here) how to mend it
    mend = "; `ds fsck --read-data --repair` copies what verifies to a new pack"
    assert any(p.endswith(f"(a chunk of big.bin){mend}") for p in here), here
    assert any(p.endswith("(a chunk of big.bin)") for p in there), there
    work = s.worktree
    s.close()
    remote = ds("fsck", "--remote", "origin", "--read-data-subset", "1", cwd=work, check=False)
    assert remote.returncode == 1 and "(a chunk of big.bin)" in remote.stderr, remote.stderr
    local = ds("fsck", "--read-data", cwd=work, check=False)
    assert local.returncode == 1 and "(a chunk of big.bin)" in local.stderr, local.stderr


def test_a_row_past_the_end_of_a_whole_pack_is_found_on_both_sides(tmp_path: Path, monkeypatch) -> None:
    s, fs, cid = _published(tmp_path)
    loc = s.chunks.locate(cid)
    size = pack_path(s.chunks.packs_dir, loc.pack).stat().st_size
    s.chunks.index.write_fragment([(cid, Location(loc.pack, size + 10, loc.stored_len, loc.raw_len,
                                                  loc.flags))])
    far = Remote(s).index().lookup(cid)
    far_size = fs.size(f"packs/{far.pack[:2]}/{far.pack}.pack")
    frag = encode_fragment(s.algo, [(cid, Location(far.pack, far_size + 10, far.stored_len, far.raw_len,
                                                   far.flags))])
    fs.put(f"index/{frag[-16:].hex()}.idx", frag)
    sides = _reading(monkeypatch)
    here = fsck(s).problems
    assert sides == [], "a plain local fsck reads no chunk data"
    there = fsck_remote(s, "origin", read_data_subset=1.0)["problems"]
    for problems, pack in ((here, loc.pack), (there, far.pack)):
        said = (f"the index names bytes past the end of pack {pack}, whose own table of contents says it is "
                "whole: the index is wrong (1 row(s))")
        assert any(p.startswith(said) for p in problems), problems
        assert not any("cut short" in p for p in problems), problems
    assert any(p.endswith("; `ds fsck --repair` builds the index again from the packs") for p in here), here
    # a remote's readers may find either row; the store's own find the newest fragment's only
    assert any(p.startswith(f"chunk {cid.hex()} of big.bin is indexed twice, once where it cannot be "
                            "read (its index row points past the end") for p in there), there
    assert not any("indexed twice" in p for p in here), here
    assert fsck(s, repair=True).ok and fsck(s, read_data=True).ok  # the index is built again from the packs


@pytest.mark.parametrize("read_data", [False, True])
def test_a_plain_local_fsck_reads_no_chunk_data(tmp_path: Path, monkeypatch, read_data: bool) -> None:
    s, _fs, _cid = _published(tmp_path)
    sides = _reading(monkeypatch)
    report = fsck(s, read_data=read_data)
    assert report.ok, report.problems
    assert bool(sides) == read_data and (report.bytes_verified > 0) == read_data


def test_the_store_checks_the_row_its_readers_find_and_a_remote_every_row(tmp_path: Path) -> None:
    """Here a row an older fragment holds, shadowed by a newer one, is never read: naming a
    missing pack, it breaks nothing. A remote's readers may find it: there it is a problem."""
    s, fs, cid = _published(tmp_path)
    loc = s.chunks.locate(cid)
    gone = "ab" * 16
    old = s.chunks.index.write_fragment([(cid, loc._replace(pack=gone))])
    os.utime(old, ns=(1, 1))  # the oldest fragment: searched last
    s.chunks.index.reload()
    assert s.chunks.locate(cid) == loc
    for read_data in (False, True):
        report = fsck(s, read_data=read_data)
        assert report.ok, report.problems
    far = Remote(s).index().lookup(cid)
    frag = encode_fragment(s.algo, [(cid, far._replace(pack=gone))])
    fs.put(f"index/{frag[-16:].hex()}.idx", frag)
    there = fsck_remote(s, "origin")["problems"]
    assert f"the index names pack {gone}, which is missing" in there, there
    assert any(p.startswith(f"chunk {cid.hex()} of big.bin is indexed twice") for p in there), there


def test_a_row_two_fragments_share_is_one_row(tmp_path: Path, monkeypatch) -> None:
    """Rows a second fragment repeats (a push resumed after its fragment landed writes the
    rows again) are one row each: every row is read once."""
    s, fs, _cid = _published(tmp_path)
    old_rows = list(Remote(s).index().fragments[0].rows())
    frag = encode_fragment(s.algo, old_rows[1:])  # the same rows, less one: another fragment
    fs.put(f"index/{frag[-16:].hex()}.idx", frag)
    read: list[int] = []
    real = Repository.verify

    def counting(self, items, problems):
        read.append(len(items))
        return real(self, items, problems)

    monkeypatch.setattr(Repository, "verify", counting)
    result = fsck_remote(s, "origin", read_data_subset=1.0)
    rows = IndexRows.of_fragments(Remote(s).index().fragments)
    assert len(Remote(s).index().fragments) == 2
    assert not rows.more and sum(read) == len(rows) == result["chunks_read"], (read, result)


def test_a_damaged_record_is_found_by_reading_the_row_a_reader_finds(tmp_path: Path) -> None:
    """``--read-data`` reads what the store's readers read: a newer fragment's row naming the
    wrong bytes of a whole pack is the index's fault, and a repair builds the index again."""
    s, _fs, cid = _published(tmp_path)
    loc = s.chunks.locate(cid)
    s.chunks.index.write_fragment([(cid, loc._replace(offset=loc.offset + 1))])
    report = fsck(s, read_data=True)
    assert any(p.startswith(f"the index row of chunk {cid.hex()} (a chunk of big.bin) names the wrong bytes")
               for p in report.problems), report.problems
    assert fsck(s, repair=True, read_data=True).ok
    assert fsck(s, read_data=True).ok and s.chunks.locate(cid) == loc


def test_a_wrong_row_in_a_pack_whose_header_is_damaged_is_still_read(tmp_path: Path) -> None:
    """A damaged header stops nothing else: the rows naming the pack are read as the index
    gives them, so a wrong one is found there too."""
    s, _fs, cid = _published(tmp_path)
    loc = s.chunks.locate(cid)
    s.chunks.index.write_fragment([(cid, loc._replace(offset=loc.offset + 1))])
    path = pack_path(s.chunks.packs_dir, loc.pack)
    data = bytearray(path.read_bytes())
    data[12] ^= 0x01  # header padding: every record still reads
    path.write_bytes(bytes(data))
    problems = fsck(s, read_data=True).problems
    assert any(p.startswith(f"pack {loc.pack} is damaged: its header is damaged") for p in problems), problems
    assert any(p.startswith(f"the index row of chunk {cid.hex()} (a chunk of big.bin) names the wrong bytes")
               for p in problems), problems


def test_a_delta_whose_base_is_missing_is_said_once_with_its_fix(tmp_path: Path) -> None:
    """The read-back of a delta whose base is gone says so, and ends with the fix that fsck
    gives (not "run `ds fsck`", the hint of the commands that read chunks)."""
    s = Store.init(tmp_path / "w")
    rng = random.Random(5)
    write(s.worktree, "f", rng.randbytes(5000))
    commit_all(s, "v1")
    raw = rng.randbytes(5000)
    cid = s.algo.digest(raw)
    s.chunks.put_encoded(cid, encode_delta(raw, b"\x07" * 16, raw, 3), len(raw), FLAG_ZSTD | FLAG_DELTA)
    s.chunks.flush()
    problems = fsck(s, read_data=True).problems
    said = [p for p in problems if p.startswith("the base chunk 0707")]
    mend = "; `ds fsck --read-data --repair` copies what verifies to a new pack"
    assert len(said) == 1 and said[0].endswith(f"is missing{mend}"), problems
