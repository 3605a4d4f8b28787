"""A local data pack whose table of contents is intact but whose bytes are not: a bit
flipped inside one chunk's record, a pack that does not hash to its name, a record that
was written wrong. Only reading finds it, so ``ds fsck --read-data --repair`` reads every
record back: what verifies is copied to a fresh pack and indexed, the damaged rows leave
the index, the pack goes to ``.dsstore/damaged/``; a chunk a remote holds is then fetched
when a get or checkout needs it, and one no remote holds is named with its files and
versions. A repair stopped between any two of its steps leaves the store no worse, and the
next run finishes it."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from objstore import repair
from objstore.chunkstore import ChunkStore, roll_packs
from objstore.errors import DsError
from objstore.get import get_copy
from objstore.maintenance import fsck
from objstore.packs import FLAG_DELTA, HEADER, pack_path, read_pack_toc
from objstore.remote import attach_default, push
from objstore.repository import LocalRepository
from objstore.store import Store
from objstore.worktree import checkout, commit_all

from .conftest import ds, read_tree, write
from .test_remote import with_remote


def _files(seed: int = 1) -> dict[str, bytes]:
    """Small files (a chunk each, raw or compressed) and one of several chunks."""
    rng = random.Random(seed)
    files = {f"f{i}.bin": rng.randbytes(20_000 + i) for i in range(3)}
    files["notes.txt"] = b"".join(b"line %d of some text\n" % i for i in range(3000))
    files["big.bin"] = rng.randbytes(2_000_000)
    return files


def _store(tmp_path: Path, remote: bool, files: dict[str, bytes] | None = None) -> tuple[Store, str]:
    """A store with one version in one pack, pushed to a folder remote if ``remote``."""
    s = Store.init(tmp_path / "w")
    if remote:
        with_remote(s, str(tmp_path / "remote"), {})
    for name, data in (files or _files()).items():
        write(s.worktree, name, data)
    v1 = commit_all(s, "v1").id
    if remote:
        push(s)
    return s, v1


def _packs(s: Store) -> list[Path]:
    return sorted(s.chunks.packs_dir.glob("*/*.pack"))


def _aside(s: Store) -> list[Path]:
    return sorted((s.path / "damaged").rglob("*.pack"))


def _chunks(s: Store, rev: str) -> dict[bytes, str]:
    """Chunk id -> the file of version ``rev`` that uses it."""
    return {cid: path for path, e in s.meta.walk(s.tree(rev)) for cid, _n in e.chunk_list()}


def _big_chunk(s: Store, rev: str) -> bytes:
    """A chunk in the middle of big.bin (a file of several chunks)."""
    [e] = [e for path, e in s.meta.walk(s.tree(rev)) if path == "big.bin"]
    ids = [cid for cid, _n in e.chunk_list()]
    assert len(ids) >= 3
    return ids[len(ids) // 2]


def _flip(s: Store, cid: bytes) -> tuple[Path, bytes]:
    """Flip one bit inside the chunk's record; returns (its pack, the pack's damaged bytes)."""
    loc = s.chunks.locate(cid)
    path = pack_path(s.chunks.packs_dir, loc.pack)
    data = bytearray(path.read_bytes())
    data[loc.offset + loc.stored_len // 2] ^= 0x10
    path.write_bytes(bytes(data))
    read_pack_toc(path)  # the table of contents is intact: only reading the record finds it
    return path, bytes(data)


def _readable(s: Store, ids) -> set[bytes]:
    """The chunks this store reads back whole on its own (no remote)."""
    ok = set()
    for cid in ids:
        try:
            s.chunks.get(cid)
            ok.add(cid)
        except (DsError, OSError):
            pass
    return ok


def _reopen(s: Store) -> Store:
    s.close()
    return Store.open(s.worktree)


@pytest.mark.parametrize("reader", ["get", "checkout"])
def test_a_flipped_bit_in_one_chunk_is_fetched_from_the_remote_after_repair(tmp_path: Path,
                                                                            reader: str) -> None:
    files = _files()
    s, v1 = _store(tmp_path, remote=True, files=files)
    os.unlink(s.worktree / "big.bin")
    commit_all(s, "v2 drops big.bin")  # a checkout of v1 must write it again
    bad = _big_chunk(s, v1)
    pack, damaged = _flip(s, bad)
    found = fsck(_reopen(s), read_data=True)
    assert not found.ok and any(pack.stem in p and "--read-data --repair" in p for p in found.problems), \
        found.problems
    s = _reopen(s)
    report = fsck(s, read_data=True, repair=True)
    assert report.ok, report.problems
    assert report.remote_only == 1 and report.unrecoverable == []
    assert report.salvage.dropped == 1 and report.salvage.verified == len(_chunks(s, v1)) - 1
    assert [Path(p) for p in report.salvage.moved_aside] == _aside(s)
    [aside] = _aside(s)
    assert aside.read_bytes() == damaged, "the damaged pack is kept whole, out of every reader's way"
    assert pack not in _packs(s)
    s = _reopen(s)
    assert s.chunks.locate(bad) is None, "left out of the index: a remote's copy is fetched on demand"
    attach_default(s)
    if reader == "get":
        get_copy(s, v1, tmp_path / "out")
        assert {k: v[0] for k, v in read_tree(tmp_path / "out").items()} == files
    else:
        checkout(s, v1)
        assert (s.worktree / "big.bin").read_bytes() == files["big.bin"]
    after = fsck(_reopen(s), read_data=True)
    assert after.ok and after.remote_only == 0, after.problems
    assert after.bytes_verified >= sum(len(d) for d in files.values())


def test_a_flipped_bit_with_no_remote_is_named_and_the_rest_of_the_pack_stays_readable(
        tmp_path: Path) -> None:
    s, v1 = _store(tmp_path, remote=False)
    os.unlink(s.worktree / "f0.bin")
    v2 = commit_all(s, "v2").id  # big.bin is in both versions
    bad = _big_chunk(s, v1)
    everything = set(_chunks(s, v1)) | set(_chunks(s, v2))
    _pack, damaged = _flip(s, bad)
    before = _readable(s, everything)
    assert before == everything - {bad}
    s = _reopen(s)
    report = fsck(s, read_data=True, repair=True)
    assert not report.ok
    [loss] = report.unrecoverable
    assert (loss.chunk, loss.paths, loss.versions) == (bad.hex(), ["big.bin"], sorted([v1, v2]))
    versions = ", ".join(v[:12] for v in sorted([v1, v2]))
    assert f"unrecoverable: chunk {bad.hex()} of big.bin (versions {versions})" in report.problems
    [aside] = _aside(s)
    assert aside.read_bytes() == damaged
    s = _reopen(s)
    assert _readable(s, everything) == before, "every other chunk of the pack is still read"
    get_copy(s, v2, tmp_path / "out", include=["f1.bin", "f2.bin", "notes.txt"])
    assert (tmp_path / "out/notes.txt").read_bytes() == (s.worktree / "notes.txt").read_bytes()
    packs = _packs(s)
    again = fsck(s, read_data=True, repair=True)  # nothing more to do: nothing moves
    assert [loss.chunk for loss in again.unrecoverable] == [bad.hex()]
    assert _packs(_reopen(s)) == packs and _aside(s) == [aside]
    plain = fsck(_reopen(s), read_data=True)
    assert plain.problems == [f"chunk {bad.hex()} of big.bin is not in the index"]


def test_a_pack_whose_bytes_do_not_hash_to_its_name_is_whole_again_under_it(tmp_path: Path) -> None:
    s, _v1 = _store(tmp_path, remote=False)
    [pack] = _packs(s)
    whole = pack.read_bytes()
    data = bytearray(whole)
    data[HEADER.size - 3] = 0x5A  # a reserved byte of the header: no record read shows it
    pack.write_bytes(bytes(data))
    assert any("does not match its name" in p for p in fsck(_reopen(s), read_data=True).problems)
    report = fsck(_reopen(s), read_data=True, repair=True)
    assert report.ok, report.problems
    assert report.salvage.dropped == 0 and report.salvage.moved_aside == []
    assert _packs(s) == [pack] and pack.read_bytes() == whole, "every record rewritten: the pack itself"
    assert fsck(_reopen(s), read_data=True).ok


def test_a_record_written_wrong_in_a_pack_that_hashes_to_its_name(tmp_path: Path) -> None:
    files = _files()
    s, v1 = _store(tmp_path, remote=True, files=files)
    bad = _big_chunk(s, v1)
    [old] = _packs(s)
    _algo, entries = read_pack_toc(old)
    data = old.read_bytes()
    records = [(e.chunk_id, data[e.offset:e.offset + e.stored_len], e.raw_len, e.flags) for e in entries]
    records = [(c, (stored[:100] + bytes([stored[100] ^ 1]) + stored[101:]) if c == bad else stored, raw, fl)
               for c, stored, raw, fl in records]
    [made], rows = roll_packs(s.chunks.packs_dir, s.algo, s.config.pack_target, records)
    s.chunks.index.replace_all(rows)
    old.unlink()
    s = _reopen(s)
    assert s.chunks.intact(made)
    found = fsck(s, read_data=True)
    assert [p for p in found.problems if "fails verification" in p and bad.hex() in p], found.problems
    report = fsck(_reopen(s), read_data=True, repair=True)
    assert report.ok and report.remote_only == 1, report.problems
    assert _aside(s) == [s.path / "damaged" / made.parent.name / made.name]
    s = _reopen(s)
    attach_default(s)
    get_copy(s, v1, tmp_path / "out")
    assert {k: v[0] for k, v in read_tree(tmp_path / "out").items()} == files
    assert fsck(_reopen(s), read_data=True).ok


def test_a_whole_copy_in_another_pack_is_indexed_instead_and_nothing_is_lost(tmp_path: Path) -> None:
    files = _files()
    s, v1 = _store(tmp_path, remote=False, files=files)
    bad = _big_chunk(s, v1)
    loc = s.chunks.locate(bad)
    stored = s.chunks.read_stored(loc)
    # a second copy, as a killed writer leaves one: a published pack no fragment names
    [copy], _rows = roll_packs(s.chunks.packs_dir, s.algo, s.config.pack_target,
                               [(bad, stored, loc.raw_len, loc.flags)])
    _flip(s, bad)
    report = fsck(_reopen(s), read_data=True, repair=True)
    assert report.ok and report.unrecoverable == [] and report.remote_only == 0, report.problems
    s = _reopen(s)
    assert s.chunks.locate(bad).pack == copy.stem
    get_copy(s, v1, tmp_path / "out")
    assert {k: v[0] for k, v in read_tree(tmp_path / "out").items()} == files


def _delta_store(tmp_path: Path, remote: bool) -> tuple[Store, str, str, bytes, bytes]:
    """Two versions of ``f``, the second stored as a delta against the first: (store, v1,
    v2, base id, delta id); each version's pack holds another file too."""
    rng = random.Random(7)
    x = rng.randbytes(8000)
    s = Store.init(tmp_path / "w")
    if remote:
        with_remote(s, str(tmp_path / "remote"), {})
    write(s.worktree, "f", x)
    write(s.worktree, "other.bin", rng.randbytes(9000))
    v1 = commit_all(s, "v1").id
    write(s.worktree, "f", x[:4000] + b"changed" + x[4007:])
    write(s.worktree, "more.bin", rng.randbytes(9000))
    v2 = commit_all(s, "v2").id
    if remote:
        push(s)
    base, delta = s.meta.lookup(s.tree(v1), "f").hash, s.meta.lookup(s.tree(v2), "f").hash
    assert s.chunks.locate(delta).flags & FLAG_DELTA
    return s, v1, v2, base, delta


@pytest.mark.parametrize("kind", ["whole", "delta"])
def test_a_copy_an_old_fragment_names_in_a_damaged_pack_is_indexed_instead(tmp_path: Path, kind: str) -> None:
    """The flipped record's chunk has a second copy in a pack whose footer is damaged (so
    its table of contents cannot be read), named by an index fragment: that copy is checked
    by hash, copied to a new pack and indexed, and nothing is lost, with no remote."""
    if kind == "whole":
        s, v1 = _store(tmp_path, remote=False)
        versions, cid = [v1], _big_chunk(s, v1)
    else:
        s, v1, v2, _base, cid = _delta_store(tmp_path, remote=False)
        versions = [v1, v2]
    for v in versions:
        get_copy(s, v, tmp_path / "before" / v)
    loc = s.chunks.locate(cid)
    stored = s.chunks.read_stored(loc)
    _flip(s, cid)
    [copy], rows = roll_packs(s.chunks.packs_dir, s.algo, s.config.pack_target,
                              [(cid, stored, loc.raw_len, loc.flags)])
    s.chunks.index.write_fragment(rows)
    data = bytearray(copy.read_bytes())
    data[-3] ^= 0xFF  # the end magic
    copy.write_bytes(bytes(data))
    report = fsck(_reopen(s), read_data=True, repair=True)
    assert report.ok and report.unrecoverable == [], report.problems
    assert report.salvage.dropped == 0 and not copy.exists()
    first = pack_path(s.chunks.packs_dir, loc.pack)  # aside, or whole again: its records rewritten in order
    assert not first.exists() or s.chunks.intact(first)
    s = _reopen(s)
    assert s.chunks.locate(cid).pack != copy.stem
    for v in versions:
        get_copy(s, v, tmp_path / "after" / v)
        assert read_tree(tmp_path / "after" / v) == read_tree(tmp_path / "before" / v)
    assert fsck(_reopen(s), read_data=True).ok


def test_a_flipped_base_takes_its_deltas_out_of_the_index_and_both_come_from_the_remote(
        tmp_path: Path) -> None:
    s, v1, v2, base, delta = _delta_store(tmp_path, remote=True)
    for v in (v1, v2):
        get_copy(s, v, tmp_path / "before" / v)
    _flip(s, base)
    report = fsck(_reopen(s), read_data=True, repair=True)
    assert report.ok and report.remote_only == 2, report.problems
    assert len(_aside(s)) == 2, "the delta's pack too: its delta cannot be read any more"
    s = _reopen(s)
    assert s.chunks.locate(base) is None and s.chunks.locate(delta) is None
    assert s.chunks.locate(s.meta.lookup(s.tree(v2), "more.bin").hash) is not None, "copied out"
    attach_default(s)
    for v in (v1, v2):
        get_copy(s, v, tmp_path / "after" / v)
        assert read_tree(tmp_path / "after" / v) == read_tree(tmp_path / "before" / v)
    assert fsck(_reopen(s), read_data=True).ok


def test_a_pack_the_disk_fails_to_read_is_left_as_it_is(tmp_path: Path, monkeypatch) -> None:
    s, v1 = _store(tmp_path, remote=True)
    [first] = _packs(s)
    write(s.worktree, "later.bin", os.urandom(30_000))
    v2 = commit_all(s, "v2").id
    push(s)
    [second] = [p for p in _packs(s) if p != first]
    bad = s.meta.lookup(s.tree(v2), "later.bin").hash
    _flip(s, bad)
    real = ChunkStore.intact

    def failing(self, path, name=None):
        if Path(path) == first:
            raise OSError(5, "Input/output error")
        return real(self, path, name)

    monkeypatch.setattr(ChunkStore, "intact", failing)
    report = fsck(_reopen(s), read_data=True, repair=True)
    assert [p for p in report.problems if first.stem in p and "cannot be read" in p], report.problems
    s = _reopen(s)
    assert first.exists() and all(s.chunks.locate(c).pack == first.stem for c in _chunks(s, v1)), \
        "judged on nothing: indexed as it was"
    assert not second.exists() and s.chunks.locate(bad) is None
    monkeypatch.setattr(ChunkStore, "intact", real)
    after = fsck(s, read_data=True)
    assert after.ok and after.remote_only == 1, after.problems


def test_a_read_data_repair_reads_each_sound_pack_once(tmp_path: Path, monkeypatch) -> None:
    s, _v1 = _store(tmp_path, remote=True)
    [sound] = _packs(s)
    write(s.worktree, "later.bin", os.urandom(30_000))
    write(s.worktree, "kept.bin", os.urandom(30_000))  # copied to a new pack: read again by the check
    commit_all(s, "v2")
    push(s)
    _flip(s, s.meta.lookup(s.tree("HEAD"), "later.bin").hash)
    read: list[str] = []
    real = LocalRepository.verify

    def counting(self, items, problems):
        read.extend({loc.pack for _cid, loc in items})
        return real(self, items, problems)

    class Seen:
        def __init__(self) -> None:
            self.totals: list[tuple[int, int]] = []
            self.calls: list[tuple[int, int]] = []

        def total(self, files: int, nbytes: int) -> None:
            self.totals.append((files, nbytes))

        def __call__(self, files: int, nbytes: int) -> None:
            self.calls.append((files, nbytes))

    monkeypatch.setattr(LocalRepository, "verify", counting)
    seen = Seen()
    report = fsck(_reopen(s), read_data=True, repair=True, progress=seen)
    assert report.ok and report.remote_only == 1, report.problems
    assert sound.stem not in read and read, "read whole by the repair: only the new pack is read again"
    assert seen.totals[0][0] == 2 and seen.calls[:2] == [(1, seen.calls[0][1]), (2, seen.totals[0][1])], \
        "the repair's reading is followed too"
    whole = sum(loc.raw_len for _cid, loc in _reopen(s).chunks.index)
    assert report.bytes_verified == whole


class Killed(BaseException):
    """Stands for a SIGKILL between two steps of the repair."""


STEPS = ["packs-written", "fragment-written", "old-fragments-gone", "pack-aside", "recover"]


@pytest.mark.parametrize("step", STEPS)
def test_a_repair_stopped_between_two_steps_leaves_the_store_no_worse_and_a_rerun_finishes(
        tmp_path: Path, monkeypatch, step: str) -> None:
    files = _files()
    s, v1 = _store(tmp_path, remote=True, files=files)
    bad = _big_chunk(s, v1)
    _pack, damaged = _flip(s, bad)
    everything = set(_chunks(s, v1))
    before = _readable(s, everything)

    def after(cls, name):
        real = getattr(cls, name)

        def stop(*args, **kwargs):
            real(*args, **kwargs)
            raise Killed(step)

        monkeypatch.setattr(cls, name, stop)

    if step == "packs-written":
        after(LocalRepository, "write_packs")
    elif step == "fragment-written":
        after(LocalRepository, "put_fragment")
    elif step == "old-fragments-gone":
        after(LocalRepository, "delete")
    elif step == "pack-aside":
        after(repair, "quarantine")
    else:
        monkeypatch.setattr(ChunkStore, "recover", lambda self: (_ for _ in ()).throw(Killed(step)))
    with pytest.raises(Killed):
        fsck(_reopen(s), read_data=True, repair=True)
    monkeypatch.undo()
    s = Store.open(s.worktree)
    assert _readable(s, everything) >= before, "no chunk read before is lost"
    held = [p.read_bytes() for p in _packs(s) + _aside(s)]
    assert damaged in held, "the damaged pack is still here, in packs/ or in damaged/"
    report = fsck(_reopen(s), read_data=True, repair=True)
    assert report.ok and report.remote_only == 1, report.problems
    assert [p.read_bytes() for p in _aside(s)] == [damaged], "set aside once"
    s = _reopen(s)
    attach_default(s)
    get_copy(s, v1, tmp_path / "out")
    assert {k: v[0] for k, v in read_tree(tmp_path / "out").items()} == files
    assert fsck(_reopen(s), read_data=True).ok


@pytest.mark.parametrize("remote", [True, False], ids=["remote", "no-remote"])
def test_cli_fsck_read_data_repair_exit_code_and_messages(tmp_path: Path, remote: bool) -> None:
    files = _files()
    s, v1 = _store(tmp_path, remote=remote, files=files)
    bad = _big_chunk(s, v1)
    pack, _damaged = _flip(s, bad)
    n = len(_chunks(s, v1))
    work = s.worktree
    s.close()
    check = ds("fsck", "--read-data", cwd=work, check=False)
    assert check.returncode == 1
    assert (f"problem: pack {pack.stem}: content does not match its name (damaged); "
            "`ds fsck --read-data --repair` copies what verifies to a new pack") in check.stderr
    fixed = ds("fsck", "--read-data", "--repair", cwd=work, check=False)
    aside = work / ".dsstore" / "damaged" / pack.parent.name / pack.name
    assert (f"index rebuilt: {n - 1} chunk(s) indexed, {n - 1} kept after reading them back, 0 found by "
            f"scanning damaged packs, 1 old row(s) no longer readable; damaged files moved aside: {aside}"
            ) in fixed.stderr
    if remote:
        assert fixed.returncode == 0, fixed.stderr
        assert "1 chunks on a remote only" in fixed.stdout and fixed.stdout.rstrip().endswith(": OK")
        ds("get", "HEAD", str(tmp_path / "out"), cwd=work)
        assert {k: v[0] for k, v in read_tree(tmp_path / "out").items()} == files
        clean = ds("fsck", "--read-data", cwd=work)
        assert "remote only" not in clean.stdout and clean.stdout.rstrip().endswith(": OK")
    else:
        assert fixed.returncode == 1
        assert f"problem: unrecoverable: chunk {bad.hex()} of big.bin (versions {v1[:12]})" in fixed.stderr
        assert fixed.stdout.rstrip().endswith(": 2 problem(s)")
