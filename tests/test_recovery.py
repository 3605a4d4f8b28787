"""Recovery paths: a damaged or lost ref, fsck --repair salvaging what still verifies,
and gc keeping what the reflogs reached. Each test reproduces a way data was lost."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest

from objstore.errors import DsError, FormatError
from objstore.get import get_copy
from objstore.maintenance import REFLOG_GRACE, fsck, gc
from objstore.packs import FOOTER, read_pack_toc
from objstore.store import Store
from objstore.worktree import commit_all

from .conftest import ds, read_tree, write


def _two_versions(store: Store, work: Path) -> tuple[str, str]:
    write(work, "a.bin", os.urandom(50_000))
    v1 = commit_all(store, "v1").id
    write(work, "b.bin", os.urandom(50_000))
    v2 = commit_all(store, "v2").id
    return v1, v2


def _packs(work: Path) -> list[Path]:
    return sorted((work / ".dsstore/packs").glob("*/*.pack"))


def _reopen(work: Path) -> Store:
    return Store.open(work)


# -- a damaged or missing branch ref -------------------------------------------------------

@pytest.mark.parametrize("damage", ["empty", "garbage", "missing"])
def test_a_damaged_branch_ref_is_reported_refused_by_gc_and_commit_and_restored(
        store: Store, work: Path, damage: str) -> None:
    v1, v2 = _two_versions(store, work)
    packs = _packs(work)
    ref = work / ".dsstore/meta/refs/heads/main"
    if damage == "missing":
        ref.unlink()
    else:
        ref.write_bytes(b"" if damage == "empty" else b"not an id\n")
    s = _reopen(work)
    report = fsck(s, read_data=True)
    assert not report.ok
    assert any("refs/heads/main is damaged" in p and v2 in p for p in report.problems), report.problems
    with pytest.raises(DsError, match="gc refused"):
        gc(s)
    assert _packs(work) == packs, "gc deleted nothing"
    write(work, "c.bin", b"more")
    with pytest.raises(FormatError, match="refs/heads/main is damaged"):
        commit_all(s, "v3 on a damaged branch")
    fixed = fsck(s, repair=True)
    assert fixed.refs_restored == [f"refs/heads/main -> {v2}"]
    assert fixed.ok, fixed.problems
    s = _reopen(work)
    assert s.head() == v2 and [e.id for e in s.log()] == [v2, v1]
    assert commit_all(s, "v3").parents == (v2,)


def test_a_missing_ref_with_a_missing_reflog_is_restored_from_heads_reflog(store: Store, work: Path) -> None:
    _v1, v2 = _two_versions(store, work)
    (work / ".dsstore/meta/refs/heads/main").unlink()
    (work / ".dsstore/meta/logs/refs/heads/main").unlink()
    s = _reopen(work)
    with pytest.raises(FormatError, match=v2):
        s.head()
    assert fsck(s, repair=True).ok
    assert _reopen(work).head() == v2


def test_a_damaged_ref_with_no_reflog_lists_the_versions_no_ref_reaches(store: Store, work: Path) -> None:
    _v1, v2 = _two_versions(store, work)
    store.tag("keep", "HEAD~1")
    (work / ".dsstore/meta/refs/heads/main").write_bytes(b"")
    (work / ".dsstore/meta/logs/refs/heads/main").unlink()
    (work / ".dsstore/meta/logs/HEAD").unlink()
    report = fsck(_reopen(work), repair=True)
    assert not report.ok and report.refs_restored == []
    assert report.unreferenced == [v2], "the lost tip is named; the tagged v1 is reached"
    assert any("no version to restore" in p for p in report.problems)


def test_a_ref_pointing_at_a_tree_is_damage_not_a_crash(store: Store, work: Path) -> None:
    _v1, v2 = _two_versions(store, work)
    tree = str(store.meta.tree_of(v2))
    (work / ".dsstore/meta/refs/tags/evil").write_text(tree + "\n")
    report = fsck(_reopen(work))
    assert any("refs/tags/evil is damaged" in p for p in report.problems)
    with pytest.raises(DsError, match="gc refused"):
        gc(_reopen(work))


def test_cli_damaged_ref_fsck_gc_commit_exit_nonzero_with_one_line(tmp_path: Path) -> None:
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "a", os.urandom(10_000))
    ds("add", "-A", cwd=w)
    v1 = ds("commit", "-m", "v1", cwd=w).stdout.strip()
    (w / ".dsstore/meta/refs/heads/main").write_bytes(b"")
    for args in (["fsck", "--read-data"], ["gc"], ["commit", "-a", "-m", "x"], ["status"], ["log"]):
        r = ds(*args, cwd=w, check=False)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert v1 in r.stderr and "ds fsck --repair" in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
    r = ds("fsck", "--repair", cwd=w)
    assert f"restored ref refs/heads/main -> {v1}" in r.stderr
    assert ds("log", "--json", cwd=w).stdout.count(v1) == 1


def test_gc_leaves_an_unreachable_object_whose_content_is_damaged_in_place(tmp_path: Path) -> None:
    """Its header reads (the pack builder takes it) but its content does not: gc packs the
    rest and leaves that file as it is, instead of failing half-way through its repack."""
    import pygit2

    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "a", "1")
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "v1", cwd=w)
    oid = str(pygit2.Repository(str(w / ".dsstore/meta")).create_blob(random.Random(0).randbytes(20_000)))
    loose = w / ".dsstore/meta/objects" / oid[:2] / oid[2:]
    data = bytearray(loose.read_bytes())
    data[-100] ^= 0xFF  # far from the header, which still reads
    loose.chmod(0o644)
    loose.write_bytes(bytes(data))
    ds("gc", cwd=w)
    assert loose.read_bytes() == bytes(data)
    ds("fsck", "--read-data", cwd=w)
    assert read_tree(w) == {"a": (b"1", False)}


def test_a_damaged_head_file_is_restored_where_it_was(tmp_path: Path) -> None:
    """HEAD itself unreadable (libgit2 will not even replace it): repair puts it back on the
    branch the last checkout moved to (not merely one at that version), or detached there."""
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "a", "1")
    ds("add", "-A", cwd=w)
    v1 = ds("commit", "-m", "v1", cwd=w).stdout.strip()
    write(w, "a", "2")
    ds("add", "-A", cwd=w)
    v2 = ds("commit", "-m", "v2", cwd=w).stdout.strip()
    head = w / ".dsstore/meta/HEAD"
    for move, expected in ((["switch", "-c", "dev"], "ref: refs/heads/dev\n"),
                           (["switch", "main"], "ref: refs/heads/main\n"),
                           (["checkout", v1], f"{v1}\n")):
        ds(*move, "-q", cwd=w)
        head.write_text("garbage")
        r = ds("status", cwd=w, check=False)
        assert r.returncode == 1 and "ds fsck --repair" in r.stderr and "Traceback" not in r.stderr
        r = ds("fsck", "--repair", cwd=w)
        assert "restored ref HEAD" in r.stderr
        assert head.read_text() == expected
        ds("status", cwd=w)
    assert ds("log", "--json", "main", cwd=w).stdout.count(v2) == 1


@pytest.mark.parametrize("stage", [b"\xff\xfe not text", b"garbage", b"tree " + b"0" * 40 + b"\nbase HEAD\n"])
def test_a_damaged_stage_is_named_with_its_fix_and_nothing_is_committed_from_it(tmp_path: Path,
                                                                               stage: bytes) -> None:
    """A STAGE file that cannot be read: status, add and commit say so (no traceback, no
    commit of some other tree), fsck lists it and gc keeps everything; `ds restore --staged .`
    clears it and the working folder is as it was."""
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "a", "1")
    ds("add", "-A", cwd=w)
    v1 = ds("commit", "-m", "v1", cwd=w).stdout.strip()
    write(w, "b", "2")
    ds("add", "b", cwd=w)
    (w / ".dsstore/STAGE").write_bytes(stage.replace(b"HEAD", v1.encode()))
    for args in (["status"], ["add", "a"], ["commit", "-m", "v2"], ["gc"], ["fsck"]):
        r = ds(*args, cwd=w, check=False)
        assert r.returncode == 1 and "Traceback" not in r.stderr, (args, r.stderr)
        assert "the stage (.dsstore/STAGE) cannot be read" in r.stderr and "ds restore --staged ." in r.stderr
    assert ds("log", "--json", cwd=w).stdout.count('"id"') == 1
    ds("restore", "--staged", ".", cwd=w)
    assert [line for line in ds("status", "-s", cwd=w).stdout.splitlines()] == ["?? b"]
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "v2", cwd=w)
    assert read_tree(w) == {"a": (b"1", False), "b": (b"2", False)}


def _damage_object(work: Path, oid: str) -> None:
    path = work / ".dsstore" / "meta" / "objects" / oid[:2] / oid[2:]
    path.chmod(0o644)
    path.write_bytes(b"garbage")


@pytest.mark.parametrize("which", ["middle", "old tip"])
def test_a_damaged_version_object_is_one_problem_and_gc_deletes_nothing(tmp_path: Path, which: str) -> None:
    """A version whose object cannot be read (a damaged file in meta/objects): fsck, repair
    and gc answer with that version named once, exit 1, and no pack is deleted (the
    versions before it cannot be marked, so nothing may be called dead)."""
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    ids = []
    for i in range(3):
        write(w, f"f{i}", os.urandom(20_000))
        ids.append(ds("add", ".", cwd=w) and ds("commit", "-m", f"v{i}", cwd=w).stdout.strip())
    ds("squash", "HEAD", "-m", "one", cwd=w)  # gc would free v0 and v1 once their reflog entries expire
    damaged = ids[1] if which == "middle" else ids[2]
    _damage_object(w, damaged)
    packs = sorted(p.name for p in _packs(w))
    for args in (["fsck"], ["fsck", "--repair"], ["gc"]):
        r = ds(*args, cwd=w, check=False)
        assert r.returncode == 1 and "Traceback" not in r.stderr, (args, r.stderr)
        assert r.stderr.count(f"version {damaged} cannot be read") == 1, (args, r.stderr)
    assert sorted(p.name for p in _packs(w)) == packs
    # once no reflog reaches it, it is garbage: gc packs the rest and leaves its file as it is
    ds("gc", "--prune-reflog-older-than", "now", cwd=w)
    assert (w / ".dsstore/meta/objects" / damaged[:2] / damaged[2:]).read_bytes() == b"garbage"
    loose = list((w / ".dsstore/meta/objects").glob("[0-9a-f][0-9a-f]/*[0-9a-f]"))
    assert [p.parent.name + p.name for p in loose] == [damaged], "the rest is packed"
    ds("fsck", "--read-data", cwd=w)
    get_copy(_reopen(w), "HEAD", tmp_path / "head")  # the squashed version reads as before
    assert read_tree(tmp_path / "head") == read_tree(w)


def test_repair_brings_back_damaged_and_missing_metadata_from_a_remote(tmp_path: Path) -> None:
    """A damaged version, a damaged folder and a missing manifest that the remote holds are
    downloaded in its metadata packs (verified by name) and the damaged copies moved aside;
    a version only this store had stays a named problem; a remote that cannot be reached
    is a warning."""
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    ids = []
    for i in range(3):
        write(w, f"d{i}/f", os.urandom(5000))
        ds("add", ".", cwd=w)
        ids.append(ds("commit", "-m", f"v{i}", cwd=w).stdout.strip())
    ds("remote", "add", "origin", str(tmp_path / "remote"), cwd=w)
    ds("push", "-u", "origin", "main", cwd=w)
    expected = read_tree(w)
    meta = w / ".dsstore" / "meta"
    import pygit2

    repo = pygit2.Repository(str(meta))
    tree = str(repo[ids[2]].tree_id)
    manifest = str(next(e.id for e in repo[repo[ids[0]].tree["d0"].id] if e.type_str == "blob"))
    _damage_object(w, ids[1])
    _damage_object(w, tree)
    (meta / "objects" / manifest[:2] / manifest[2:]).unlink()
    assert ds("fsck", cwd=w, check=False).returncode == 1
    r = ds("fsck", "--repair", cwd=w)
    assert "restored 3 metadata object(s) from a remote" in r.stderr
    ds("fsck", "--read-data", cwd=w)
    assert [c["id"] for c in json.loads(ds("log", "--json", cwd=w).stdout)] == ids[::-1]
    assert sorted(p.parent.name + p.name for p in (w / ".dsstore" / "damaged").glob("*/*")) == sorted(
        [ids[1], tree])
    get_copy(_reopen(w), ids[0], tmp_path / "v0")
    assert read_tree(tmp_path / "v0") == {"d0/f": expected["d0/f"]}

    write(w, "late", "only here")  # a version the remote never got
    ds("add", "late", cwd=w)
    late = ds("commit", "-m", "v3", cwd=w).stdout.strip()
    _damage_object(w, late)
    (tmp_path / "a-file").write_text("not a folder")
    ds("remote", "add", "broken", str(tmp_path / "a-file"), cwd=w)
    r = ds("fsck", "--repair", cwd=w, check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert f"version {late} cannot be read" in r.stderr
    assert (meta / "objects" / late[:2] / late[2:]).read_bytes() == b"garbage"  # left where it was


def test_a_branchs_own_damaged_version_comes_back_before_the_branch_would_move(tmp_path: Path) -> None:
    """The version a branch points at is damaged and a remote has it: it is restored, and
    the branch stays where it was (moving it back to the reflog's last good is for a
    version nobody has)."""
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    for i in range(2):
        write(w, "f", str(i))
        ds("add", "-A", cwd=w)
        tip = ds("commit", "-m", f"v{i}", cwd=w).stdout.strip()
    ds("remote", "add", "origin", str(tmp_path / "remote"), cwd=w)
    ds("push", "-u", "origin", "main", cwd=w)
    _damage_object(w, tip)
    r = ds("fsck", "--repair", cwd=w)
    assert "restored 1 metadata object(s) from a remote" in r.stderr and "restored ref" not in r.stderr
    assert json.loads(ds("log", "-n", "1", "--json", cwd=w).stdout)[0]["id"] == tip


def test_a_remote_that_fails_while_restoring_is_a_warning_and_the_next_one_is_asked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from objstore.remote import restore_objects
    from objstore.remote_fs import RemoteError
    from objstore.transfer import Transfers

    store = Store.init(tmp_path / "w")
    for name in ("a", "b"):
        ds("remote", "add", name, str(tmp_path / name), cwd=store.worktree)
    store = _reopen(store.worktree)
    asked, warnings = [], []

    def holding(self, oids, set_aside, warn=None):
        asked.append(self.url)
        if self.url.endswith("/a"):
            raise RemoteError("remote a: connection refused")
        return {"1" * 40} & oids  # claimed, but nothing of that id reads back here

    monkeypatch.setattr(Transfers, "fetch_meta_holding", holding)
    assert restore_objects(store, {"1" * 40, "2" * 40}, warn=warnings.append) == set()
    assert [u.rsplit("/", 1)[1] for u in asked] == ["a", "b"]
    assert warnings == ["remote a: connection refused"]


def test_a_metadata_pack_damaged_here_is_replaced_by_the_remotes_copy_of_the_same_name(
        tmp_path: Path) -> None:
    """A clone holds the remote's metadata pack under its own name: damaged here, it is set
    aside and the remote's (checked against the name) takes its place."""
    src = tmp_path / "src"
    ds("init", str(src), cwd=tmp_path)
    write(src, "d/a", "1")
    ds("add", "-A", cwd=src)
    ds("commit", "-m", "v1", cwd=src)
    ds("remote", "add", "origin", str(tmp_path / "remote"), cwd=src)
    ds("push", "-u", "origin", "main", cwd=src)
    ds("clone", str(tmp_path / "remote"), str(tmp_path / "c"), cwd=tmp_path)
    c = tmp_path / "c"
    [pack] = (c / ".dsstore/meta/objects/pack").glob("pack-*.pack")
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.chmod(0o644)
    pack.write_bytes(bytes(data))
    assert ds("fsck", cwd=c, check=False).returncode == 1
    r = ds("fsck", "--repair", cwd=c)
    assert "metadata object(s) from a remote" in r.stderr
    ds("fsck", "--read-data", cwd=c)
    assert (c / ".dsstore/damaged/pack" / pack.name).read_bytes() == bytes(data)
    assert read_tree(c) == read_tree(src)


# -- gc keeps what the reflogs reached ------------------------------------------------------

def test_gc_keeps_versions_the_reflog_reached_until_the_grace_period_ends(store: Store, work: Path,
                                                                          tmp_path: Path) -> None:
    from objstore.squash import squash

    v1, _v2 = _two_versions(store, work)
    v1_files = {"a.bin": (work / "a.bin").read_bytes()}
    write(work, "a.bin", os.urandom(50_000))
    commit_all(store, "v3")
    squash(store, ["HEAD"], "one root")  # v1..v3 now reached by the reflog only
    report = gc(store)
    assert report.bytes_freed == 0
    get_copy(store, v1, tmp_path / "v1")
    assert {k: v[0] for k, v in read_tree(tmp_path / "v1").items()} == v1_files
    assert fsck(store, read_data=True).ok
    # fifteen days on, the reflog entries have expired: gc frees them, fsck stays clean
    later = gc(store, now=os.path.getmtime(work / ".dsstore/config") + REFLOG_GRACE + 86400)
    assert later.bytes_freed > 45_000 and later.reflog_entries_expired > 0  # v1 and v2's a.bin
    assert fsck(store, read_data=True).ok
    with pytest.raises(DsError):
        get_copy(store, v1, tmp_path / "v1-again")


def test_cli_gc_prune_reflog_older_than(tmp_path: Path) -> None:
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "a", os.urandom(100_000))
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "v1", cwd=w)
    write(w, "a", os.urandom(100_000))
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "v2", cwd=w)
    ds("squash", "HEAD", "-m", "one", cwd=w)
    assert '"bytes_freed": 0' in ds("gc", "--json", cwd=w).stdout
    r = ds("gc", "--prune-reflog-older-than", "bogus", cwd=w, check=False)
    assert r.returncode == 1 and "--prune-reflog-older-than takes a duration" in r.stderr
    assert '"bytes_freed": 0' not in ds("gc", "--json", "--prune-reflog-older-than", "now", cwd=w).stdout
    assert "OK" in ds("fsck", "--read-data", cwd=w).stdout


# -- fsck --repair never makes a readable chunk unreadable -----------------------------------

def _fragment(work: Path) -> Path:
    frags = sorted((work / ".dsstore/index").glob("*.idx"))
    assert len(frags) == 1
    return frags[0]


def test_repair_with_a_flipped_byte_in_an_index_fragment(store: Store, work: Path, tmp_path: Path) -> None:
    _two_versions(store, work)
    store.chunks.flush()
    store.chunks.index.replace_all(iter(store.chunks.index), ordered=True)  # one fragment
    frag = _fragment(work)
    data = bytearray(frag.read_bytes())
    data[len(data) // 2] ^= 0x40
    frag.write_bytes(bytes(data))
    s = _reopen(work)
    broken = fsck(s)
    assert not broken.ok and any("ds fsck --repair" in p for p in broken.problems)
    fixed = fsck(s, repair=True)
    assert fixed.ok, fixed.problems
    assert fixed.salvage is not None and frag.name in fixed.salvage.damaged_fragments
    assert (work / ".dsstore/damaged/index" / frag.name).exists(), "kept aside for inspection"
    assert [f.name for f in (work / ".dsstore/index").glob("*.idx")] == [frag.name], \
        "the rebuilt fragment holds the same rows, so it has the same name"
    get_copy(_reopen(work), "HEAD", tmp_path / "out")
    assert read_tree(tmp_path / "out") == read_tree(work)


@pytest.mark.parametrize("where", ["footer", "toc"])
def test_repair_of_a_damaged_pack_keeps_every_chunk_get_could_read(store: Store, work: Path,
                                                                   tmp_path: Path, where: str) -> None:
    write(work, "a.bin", os.urandom(50_000))
    write(work, "t.txt", "text " * 5000)
    commit_all(store, "v1")
    [pack] = _packs(work)
    _algo, entries = read_pack_toc(pack)
    data = bytearray(pack.read_bytes())
    toc_start = max(e.offset + e.stored_len for e in entries)
    data[len(data) - FOOTER.size + 2 if where == "footer" else toc_start + 3] ^= 0xFF
    pack.write_bytes(bytes(data))
    s = _reopen(work)
    get_copy(s, "HEAD", tmp_path / "before")  # the index still reaches every record
    assert not fsck(s).ok
    fixed = fsck(_reopen(work), repair=True)
    assert fixed.ok, fixed.problems
    assert fixed.salvage.verified == len(entries)
    assert _packs(work) == [pack], "every record was salvaged: the pack is whole again, under its name"
    assert fsck(_reopen(work), read_data=True).ok
    get_copy(_reopen(work), "HEAD", tmp_path / "after")
    assert read_tree(tmp_path / "after") == read_tree(work)


def test_repair_of_a_damaged_pack_and_a_damaged_fragment_together(store: Store, work: Path,
                                                                  tmp_path: Path) -> None:
    _two_versions(store, work)
    store.chunks.index.replace_all(iter(store.chunks.index), ordered=True)
    for pack in _packs(work):
        data = bytearray(pack.read_bytes())
        data[-3] ^= 0xFF  # the end magic
        pack.write_bytes(bytes(data))
    frag = _fragment(work)
    data = bytearray(frag.read_bytes())
    data[-1] ^= 0xFF  # its checksum: every row is still there, none is trusted
    frag.write_bytes(bytes(data))
    fixed = fsck(_reopen(work), repair=True)
    assert fixed.ok, fixed.problems
    get_copy(_reopen(work), "HEAD", tmp_path / "out")
    assert read_tree(tmp_path / "out") == read_tree(work)


def test_repair_reports_exactly_the_chunks_files_and_versions_that_are_lost(store: Store, work: Path) -> None:
    write(work, "keep.bin", os.urandom(30_000))
    v1 = commit_all(store, "v1").id
    write(work, "lost.bin", os.urandom(30_000))
    v2 = commit_all(store, "v2").id
    lost_id = store.meta.lookup(store.tree(v2), "lost.bin").hash  # a small file is one chunk
    pack = next(p for p in _packs(work) if any(e.chunk_id == lost_id for e in read_pack_toc(p)[1]))
    _algo, [entry] = read_pack_toc(pack)
    data = bytearray(pack.read_bytes())
    data[entry.offset + 100] ^= 0xFF  # the record itself
    data[-3] ^= 0xFF  # and the footer
    pack.write_bytes(bytes(data))
    report = fsck(_reopen(work), repair=True)
    assert not report.ok
    [loss] = report.unrecoverable
    assert loss.chunk == entry.chunk_id.hex() and loss.paths == ["lost.bin"] and loss.versions == [v2]
    s = _reopen(work)
    assert s.chunks.locate(store.meta.lookup(store.tree(v1), "keep.bin").hash) is not None


def test_repair_keeps_deltas_whose_base_verifies(store: Store, work: Path, tmp_path: Path) -> None:
    from objstore.packs import FLAG_DELTA

    rng = random.Random(3)
    x = rng.randbytes(8000)
    write(work, "f", x)
    commit_all(store, "v1")
    write(work, "f", x[:4000] + b"changed" + x[4007:])
    commit_all(store, "v2")
    store.chunks.index.replace_all(iter(store.chunks.index), ordered=True)
    assert any(loc.flags & FLAG_DELTA for _c, loc in store.chunks.index)
    for pack in _packs(work):
        data = bytearray(pack.read_bytes())
        data[-3] ^= 0xFF
        pack.write_bytes(bytes(data))
    fixed = fsck(_reopen(work), repair=True)
    assert fixed.ok, fixed.problems
    assert fsck(_reopen(work), read_data=True).ok
    get_copy(_reopen(work), "HEAD~1", tmp_path / "v1")
    assert (tmp_path / "v1/f").read_bytes() == x


# -- detached HEAD: announced, shown, and its work kept ---------------------------------------

def test_detached_work_is_announced_reported_when_left_and_kept_by_gc(store: Store, work: Path,
                                                                      tmp_path: Path) -> None:
    from objstore.worktree import checkout

    v1, _v2 = _two_versions(store, work)
    store.tag("v1", v1)
    report = checkout(store, "v1")
    assert report.detached == v1 and report.left_behind is None
    write(work, "only-here.bin", os.urandom(60_000))
    lost = commit_all(store, "work on a detached HEAD").id
    back = checkout(store, "main")
    assert back.detached is None and back.left_behind == lost
    assert gc(store).bytes_freed == 0, "the reflog keeps the detached version"
    get_copy(store, lost, tmp_path / "kept")
    assert (tmp_path / "kept/only-here.bin").read_bytes()
    assert fsck(store, read_data=True).ok


def test_leaving_a_detached_version_a_ref_reaches_says_nothing(store: Store, work: Path) -> None:
    from objstore.worktree import checkout

    v1, _v2 = _two_versions(store, work)
    checkout(store, v1)
    assert checkout(store, "main").left_behind is None


def test_cli_detached_head_messages_status_log_and_switch_c(tmp_path: Path) -> None:
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "a", "1")
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "v1", cwd=w)
    ds("tag", "v1", cwd=w)
    write(w, "a", "2")
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "v2", cwd=w)
    r = ds("checkout", "v1", cwd=w)
    assert "HEAD is now detached" in r.stderr and "ds switch -c NAME" in r.stderr
    assert ds("status", cwd=w).stdout.startswith("HEAD detached at ")
    assert "(HEAD detached, v1)" in ds("log", cwd=w).stdout
    write(w, "b", "work")
    ds("add", "-A", cwd=w)
    r = ds("commit", "-m", "detached work", cwd=w)
    work_id = r.stdout.strip()
    assert "detached HEAD" in r.stderr
    r = ds("checkout", "main", cwd=w)
    assert f"leaving version {work_id[:12]} behind" in r.stderr and f"ds branch NAME {work_id}" in r.stderr
    ds("switch", "-c", "rescued", work_id, cwd=w)
    assert "(HEAD -> rescued)" in ds("log", "-n", "1", cwd=w).stdout
    assert (w / "b").read_text() == "work"
    assert ds("status", cwd=w).stdout.strip() == "On branch rescued\nNothing changed."


def test_a_deleted_branch_keeps_its_reflog_so_gc_keeps_its_versions(store: Store, work: Path,
                                                                    tmp_path: Path) -> None:
    from objstore.branches import create_branch, delete_branch, switch

    _two_versions(store, work)
    create_branch(store, "side")
    switch(store, "side")
    write(work, "side.bin", os.urandom(60_000))
    side = commit_all(store, "side work").id
    switch(store, "main")
    with pytest.raises(DsError, match="-D"):
        delete_branch(store, "side")
    assert delete_branch(store, "side", force=True) == side
    report = fsck(store)
    assert report.ok, report.problems  # a deleted branch's kept reflog is not a damaged ref
    assert gc(store).bytes_freed == 0
    get_copy(store, side, tmp_path / "side")
    assert gc(store, reflog_grace=None).bytes_freed > 50_000
    assert fsck(store, read_data=True).ok


def test_branch_names_and_current_branch_rules(store: Store, work: Path) -> None:
    from objstore.branches import create_branch, delete_branch, list_branches, rename_branch

    with pytest.raises(DsError, match="no version yet"):
        create_branch(store, "early")
    _two_versions(store, work)
    store.tag("v1", "HEAD~1")
    for bad in ("", "-x", "HEAD", "a..b", "v1"):
        with pytest.raises(DsError):
            create_branch(store, bad)
    with pytest.raises(DsError, match="HEAD is on it"):
        delete_branch(store, "main")
    create_branch(store, "old", "v1")
    assert delete_branch(store, "old") == store.resolve("v1"), "v1 is on main: an ordinary delete"
    rename_branch(store, "main", "trunk")
    assert [(b.name, b.current) for b in list_branches(store)] == [("trunk", True)]
    assert store.meta.head_branch() == "trunk" and fsck(store).ok


@pytest.mark.parametrize("where", ["footer", "toc-checksum"])
def test_repair_finds_records_from_a_damaged_pack_alone(store: Store, work: Path, tmp_path: Path,
                                                       where: str) -> None:
    """The index is gone too: the pack's own table of contents is found (footer damaged)
    or read row by row (its checksum fails), and every row is verified by hash."""
    files = {f"f{i}.bin": os.urandom(3000 + i) for i in range(5)}
    for name, data in files.items():
        write(work, name, data)
    commit_all(store, "v1")
    [pack] = _packs(work)
    _algo, entries = read_pack_toc(pack)
    data = bytearray(pack.read_bytes())
    if where == "footer":
        data[len(data) - FOOTER.size : len(data) - FOOTER.size + 8] = b"\xff" * 8  # toc offset gone
    else:
        data[-FOOTER.size - 1] ^= 0xFF  # the last row's flags: that row fails, the others stand
    pack.write_bytes(bytes(data))
    for frag in (work / ".dsstore/index").glob("*.idx"):
        frag.unlink()
    report = fsck(_reopen(work), repair=True)
    if where == "footer":
        assert report.ok, report.problems
        assert report.salvage.scanned == len(entries)
        get_copy(_reopen(work), "HEAD", tmp_path / "out")
        assert {k: v[0] for k, v in read_tree(tmp_path / "out").items()} == files
    else:
        assert report.salvage.scanned == len(entries) - 1
        [loss] = report.unrecoverable
        assert loss.chunk == entries[-1].chunk_id.hex() and len(loss.paths) == 1


def test_switch_c_stopped_before_head_moves_leaves_head_on_its_branch(store: Store, work: Path,
                                                                       monkeypatch) -> None:
    """`ds switch -c NAME REV` stopped after the files are written: HEAD stays on the branch
    it was on (it never passes through a detached state), and the new branch is there."""
    from objstore.branches import switch
    from objstore.meta import MetaStore

    v1, v2 = _two_versions(store, work)

    def stopped(self, name):
        raise KeyboardInterrupt

    monkeypatch.setattr(MetaStore, "attach_head", stopped)
    with pytest.raises(KeyboardInterrupt):
        switch(store, "older", create=True, rev=v1)
    monkeypatch.undo()
    s = _reopen(work)
    assert s.meta.head_branch() == "main" and s.head() == v2
    assert s.meta.ref_target("refs/heads/older") == v1
    switch(s, "older")
    assert s.meta.head_branch() == "older" and set(read_tree(work)) == {"a.bin"}


def test_gc_removes_what_a_killed_repair_or_repack_left_in_the_metadata_a_day_on(
        store: Store, work: Path) -> None:
    import time

    _two_versions(store, work)
    folder = store.meta.pack_folder
    old_dir, old_file, young = folder / ".tmp-restore-abc", folder / ".tmp-0123", folder / ".tmp-pack-xyz"
    for d in (old_dir, young):
        d.mkdir()
        (d / "pack-1.pack").write_bytes(b"half a pack")
    old_file.write_bytes(b"half a download")
    day_ago = time.time() - 2 * 24 * 3600
    for p in (old_dir, old_file):
        os.utime(p, (day_ago, day_ago))
    report = gc(store)
    assert not old_dir.exists() and not old_file.exists()
    assert young.exists(), "one a live command may still be writing stays"
    assert report.temp_files_removed >= 2
    assert fsck(_reopen(work), read_data=True).ok


@pytest.mark.parametrize("stop", ["before HEAD moves", "after HEAD moves"])
def test_a_switch_killed_while_carrying_the_stage_keeps_what_was_staged(
        store: Store, work: Path, monkeypatch, stop: str) -> None:
    """The carried stage is recorded for both bases before HEAD moves: killed on either side
    of the move, what was staged is still staged, and the switch run again finishes."""
    from objstore.branches import create_branch, switch
    from objstore.meta import MetaStore
    from objstore.worktree import add, rm, status

    write(work, "a", "a")
    write(work, "b", "b")
    commit_all(store, "one")
    create_branch(store, "other")
    write(work, "a", "STAGED")
    add(store, [str(work / "a")])
    write(work, "a", "edited after staging")
    rm(store, [str(work / "b")], keep=True)
    if stop == "before HEAD moves":
        def killed(self, rev, commit_id):
            raise KeyboardInterrupt
        monkeypatch.setattr(MetaStore, "checkout_ref", killed)
    else:
        real = Store.set_stage

        def killed(self, tree, base=None, also=None):
            if also is None:  # the one record written after HEAD moved
                raise KeyboardInterrupt
            real(self, tree, base, also)
        monkeypatch.setattr(Store, "set_stage", killed)
    with pytest.raises(KeyboardInterrupt):
        switch(store, "other")
    monkeypatch.undo()
    s = _reopen(work)
    st = status(s)
    assert sorted(st.staged.modified) == ["a"] and sorted(st.staged.removed) == ["b"], st.staged
    switch(s, "other")
    s = _reopen(work)
    st = status(s)
    assert s.head_branch() == "other"
    assert sorted(st.staged.modified) == ["a"] and sorted(st.staged.removed) == ["b"], st.staged
    assert (work / "a").read_text() == "edited after staging"


def test_a_version_holding_git_content_never_touches_the_live_git_folder(store: Store, work: Path) -> None:
    """A version stored before `.git` was passed over can hold `.git/...` files. The working
    folder's `.git` is git's: no checkout writes or removes it, status does not list it,
    and a commit keeps the version's copy as it was."""
    from dataclasses import replace

    from objstore.branches import switch
    from objstore.tree_edit import TreeEditor
    from objstore.worktree import checkout, status

    write(work, "x", "old git HEAD\n")
    commit_all(store, "v0")
    entry = store.meta.lookup(store.head_tree(), "x")
    editor = TreeEditor(store.meta, store.head_tree())
    editor.set(".git/HEAD", replace(entry, name="HEAD"))
    with_git = store.meta.commit(editor.write(), [store.head()], "holds .git", store.author())
    store.meta.set_head(with_git, "commit: holds .git")
    write(work, ".git/HEAD", "ref: refs/heads/live\n")  # the live repository's
    assert status(store).clean
    write(work, "y", "y")
    commit_all(store, "v2")
    assert store.meta.lookup(store.head_tree(), ".git/HEAD") is not None  # kept as it was
    checkout(store, "HEAD~2")
    assert (work / ".git/HEAD").read_text() == "ref: refs/heads/live\n"
    switch(store, "main")
    checkout(store, "HEAD~1", paths=[str(work)])
    assert (work / ".git/HEAD").read_text() == "ref: refs/heads/live\n"


def test_get_never_writes_a_versions_git_folder(store: Store, work: Path, tmp_path: Path) -> None:
    """A version from a remote may hold `.git/config` (core.fsmonitor runs a command): `ds get`
    and the SDK's copies (``copy_items``, under both) pass over ``.git`` as checkout does."""
    from dataclasses import replace

    from objstore.tree_edit import TreeEditor

    write(work, "x", "[core]\n\tfsmonitor = touch PWNED\n")
    commit_all(store, "v0")
    entry = store.meta.lookup(store.head_tree(), "x")
    editor = TreeEditor(store.meta, store.head_tree())
    for path in (".git/config", "sub/.GIT/config", "sub/.gitkeep"):
        editor.set(path, replace(entry, name=path.rsplit("/", 1)[1]))
    with_git = store.meta.commit(editor.write(), [store.head()], "holds .git", store.author())
    store.meta.set_head(with_git, "commit: holds .git")
    get_copy(store, "HEAD", tmp_path / "lib")
    ds("get", "HEAD", str(tmp_path / "cli"), cwd=work)
    for out in (tmp_path / "lib", tmp_path / "cli"):
        assert sorted(read_tree(out)) == ["sub/.gitkeep", "x"]


def test_a_deleted_branchs_kept_reflog_makes_room_for_a_branch_below_or_above_it(
        store: Store, work: Path) -> None:
    """`ds branch a; ds branch -d a; ds branch a/b` (and the other way round) failed on the
    reflog kept after the delete; it is renamed aside, so gc still keeps what it reached."""
    from objstore.branches import create_branch, delete_branch

    v1, v2 = _two_versions(store, work)
    create_branch(store, "a", v2)
    delete_branch(store, "a", force=True)
    create_branch(store, "x/y", v1)
    delete_branch(store, "x/y", force=True)
    store.meta.set_head(v1, "rewind main")  # v2 now only in reflogs
    create_branch(store, "a/b", v1)
    create_branch(store, "x", v1)
    assert {"a/b", "x"} <= set(store.meta.branches())
    gc(store)
    assert fsck(_reopen(work), read_data=True).ok
    get_copy(_reopen(work), v2, work.parent / "v2")  # the renamed reflog still kept v2
    assert (work.parent / "v2" / "b.bin").exists()


@pytest.mark.parametrize("lost", [("HEAD",), ("refs",), ("HEAD", "refs")])
def test_a_lost_head_or_refs_folder_is_named_and_written_again_by_the_repair(tmp_path: Path,
                                                                            lost: tuple[str, ...]) -> None:
    """libgit2 opens no database without HEAD and refs/: every command failed with "run
    ds fsck", and so did fsck. Now each names what is lost, and the repair writes it again:
    HEAD back on the branch it was on, the branches from their reflogs."""
    w = tmp_path / "w"
    ds("init", "-q", str(w), cwd=tmp_path)
    write(w, "a", "a")
    ds("add", "-q", "a", cwd=w)
    ds("commit", "-q", "-m", "one", cwd=w)
    ds("switch", "-q", "-c", "feat", cwd=w)
    write(w, "b", "b")
    ds("add", "-q", "b", cwd=w)
    ds("commit", "-q", "-m", "two", cwd=w)
    branches = ds("branch", "-v", cwd=w).stdout
    meta = w / ".dsstore/meta"
    for name in lost:
        shutil.rmtree(meta / name) if (meta / name).is_dir() else (meta / name).unlink()
    for args in (("status",), ("log",), ("fsck",)):
        r = ds(*args, cwd=w, check=False)
        assert r.returncode == 1 and "ds fsck --repair" in r.stderr and "lost its" in r.stderr, args
    r = ds("fsck", "--repair", cwd=w)
    assert all(f"wrote the lost {name}" in r.stderr for name in lost)
    assert ds("branch", "-v", cwd=w).stdout == branches  # feat current, both tips where they were
    assert ds("status", cwd=w).stdout.startswith("On branch feat\n")
    assert ds("fsck", cwd=w).returncode == 0


def test_a_lost_objects_folder_is_never_made_again_empty(tmp_path: Path) -> None:
    w = tmp_path / "w"
    ds("init", "-q", str(w), cwd=tmp_path)
    write(w, "a", "a")
    ds("add", "-q", "a", cwd=w)
    ds("commit", "-q", "-m", "one", cwd=w)
    shutil.rmtree(w / ".dsstore/meta/objects")
    for args in (("log",), ("fsck", "--repair")):
        r = ds(*args, cwd=w, check=False)
        assert r.returncode == 1 and "lost its objects folder" in r.stderr and "backup" in r.stderr
    assert not (w / ".dsstore/meta/objects").exists()  # an empty one would show an empty store


def test_a_lost_head_comes_back_detached_if_it_was_and_on_a_branch_there_is_without_a_reflog(
        tmp_path: Path) -> None:
    w = tmp_path / "w"
    ds("init", "-q", str(w), cwd=tmp_path)
    for name in ("one", "two"):
        write(w, name, name)
        ds("add", "-q", name, cwd=w)
        ds("commit", "-q", "-m", name, cwd=w)
    one = json.loads(ds("show", "HEAD~1", "--json", cwd=w).stdout)["id"]
    ds("checkout", "-q", "HEAD~1", cwd=w)  # detached at "one": the reflog names where it went
    last = (w / ".dsstore/meta/logs/HEAD").read_text().splitlines()[-1]
    assert last.split()[1] == one and last.endswith(f"to {one}")
    (w / ".dsstore/meta/HEAD").unlink()
    ds("fsck", "--repair", "-q", cwd=w)
    assert (w / ".dsstore/meta/HEAD").read_text().strip() == one  # detached it was: detached it stays
    ds("switch", "-q", "main", cwd=w)
    ds("branch", "-m", "main", "trunk", cwd=w)
    (w / ".dsstore/meta/HEAD").unlink()
    (w / ".dsstore/meta/logs/HEAD").unlink()  # no reflog to go by: on the branch there is
    ds("fsck", "--repair", "-q", cwd=w)
    assert ds("status", cwd=w).stdout == "On branch trunk\nNothing changed.\n"
    (w / ".dsstore/meta/HEAD").unlink()  # and with the refs lost too: on the branch they come back as
    (w / ".dsstore/meta/logs/HEAD").unlink(missing_ok=True)
    shutil.rmtree(w / ".dsstore/meta/refs")
    ds("fsck", "--repair", "-q", cwd=w)
    assert ds("status", cwd=w).stdout == "On branch trunk\nNothing changed.\n"
    hexname = "ab" * 20  # a branch named like an id is a branch, not a detached HEAD
    ds("switch", "-q", "-c", hexname, cwd=w)
    (w / ".dsstore/meta/HEAD").unlink()
    ds("fsck", "--repair", "-q", cwd=w)
    assert (w / ".dsstore/meta/HEAD").read_text() == f"ref: refs/heads/{hexname}\n"
