"""New folders written straight into one git pack (``objstore/git_pack.py`` and
``MetaStore.new_objects``): the ids are git's own, libgit2 and git read the pack, a
batch that fails leaves nothing behind, and a fault in the writer is caught by the
read-back before anything is published."""

from __future__ import annotations

import hashlib
import random
import shutil
import struct
import subprocess
from pathlib import Path

import pygit2
import pytest

from objstore import git_pack
from objstore.errors import FormatError
from objstore.maintenance import fsck
from objstore.manifest import FILE, FileEntry
from objstore.meta import PACK_NEW_MIN
from objstore.store import Store
from objstore.worktree import add, checkout, commit_all

from .conftest import ds, read_tree, write

NAMES = ["a", "a.b", "a-b", "a0", "ab", "b", "A", "a b", "é", "z", ".ds.manifest", ".ds.manifest.1",
         ".ds.d.x", "x.y", "a-", "b0", "ab.1"]


def test_a_tree_has_the_id_libgit2_gives_it(tmp_path: Path):
    """Names that sort differently as a file and as a folder ("a" beside "a.b" and "a0")
    are in git's order, so the id is the one libgit2's tree builder gives."""
    repo = pygit2.init_repository(str(tmp_path / "r"), bare=True)
    blob, sub = repo.create_blob(b"x"), repo.TreeBuilder().write()
    rng = random.Random(3)
    for _ in range(300):
        builder, entries = repo.TreeBuilder(), []
        for name in rng.sample(NAMES, rng.randint(1, len(NAMES))):
            folder = rng.random() < 0.5
            builder.insert(name, sub if folder else blob,
                           pygit2.enums.FileMode.TREE if folder else pygit2.enums.FileMode.BLOB)
            entries.append((name, (sub if folder else blob).raw, folder))
        assert git_pack.object_id(git_pack.TREE, git_pack.tree_body(entries)) == builder.write().raw


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "a\0b", ".git\\x"])
def test_a_tree_entry_that_is_not_one_path_component_is_refused(name: str):
    with pytest.raises(FormatError, match="not a single path component"):
        git_pack.tree_body([(name, b"\1" * 20, False)])


def test_a_tree_with_two_entries_of_one_name_is_refused():
    with pytest.raises(FormatError, match="two entries of one name"):
        git_pack.tree_body([("a", b"\1" * 20, False), ("a", b"\2" * 20, True)])


def test_a_pack_written_here_reads_in_libgit2_and_in_git(tmp_path: Path):
    rng = random.Random(5)
    folder = tmp_path / "objects" / "pack"
    folder.mkdir(parents=True)
    with open(folder / "new.pack", "w+b") as f:
        writer = git_pack.GitPackWriter(f)
        blobs = {writer.add(git_pack.BLOB, data): data
                 for data in [rng.randbytes(rng.randint(0, 70_000)) for _ in range(60)] + [b""]}
        again = writer.add(git_pack.BLOB, b"")  # written once
        tree = writer.add(git_pack.TREE, git_pack.tree_body([("f", again, False)]))
        digest, index = writer.finish()
    assert len(writer) == len(blobs) + 1
    stem = folder / f"pack-{digest.hex()}"
    (folder / "new.pack").rename(stem.with_suffix(".pack"))
    stem.with_suffix(".idx").write_bytes(index)
    odb = pygit2.Odb()
    odb.add_backend(pygit2.OdbBackendPack(str(tmp_path / "objects")), 1)
    for oid, data in blobs.items():
        assert odb.read(pygit2.Oid(raw=oid)) == (pygit2.enums.ObjectType.BLOB, data)
    assert odb.read(pygit2.Oid(raw=tree))[0] == pygit2.enums.ObjectType.TREE
    if shutil.which("git"):
        out = subprocess.run(["git", "verify-pack", "-v", str(stem.with_suffix(".idx"))],
                             capture_output=True, text=True, check=True).stdout
        assert f"non delta: {len(blobs) + 1} objects" in out


def test_an_offset_past_two_gib_goes_in_the_index_large_table():
    """(A pack that large is not written in a test: the index's own layout is read here.)"""
    rows = {b"\1" * 20: (12, 7, git_pack.BLOB), b"\2" * 20: (0x1_2345_6789, 8, git_pack.TREE)}
    index = git_pack._index(rows, b"\3" * 20)
    at = 8 + 256 * 4 + 2 * 20 + 2 * 4
    assert struct.unpack(">2I", index[at:at + 8]) == (12, 0x8000_0000)
    assert struct.unpack(">Q", index[at + 8:at + 16]) == (0x1_2345_6789,)
    assert len(index) == at + 16 + 20 + 20


def _files(root: Path, folders: int, per: int = 3) -> None:
    for i in range(folders):
        for j in range(per):
            write(root, f"f{i:03}/x{j}.txt", f"{i} {j}\n")


EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # an unborn branch's, written on first use


def _meta_files(s: Store) -> tuple[list[Path], list[Path]]:
    """(loose objects but the empty tree, packs) of the store's metadata."""
    objects = s.meta.path / "objects"
    loose = sorted(f for f in objects.glob("[0-9a-f][0-9a-f]/*") if f.parent.name + f.name != EMPTY_TREE)
    return loose, sorted((objects / "pack").glob("pack-*.pack"))


def test_a_stage_of_many_folders_is_one_new_pack_and_no_loose_object(store: Store):
    _files(store.worktree, PACK_NEW_MIN + 10)
    loose_before, packs_before = _meta_files(store)
    add(store, [str(store.worktree)])
    loose, packs = _meta_files(store)
    assert len(packs) == len(packs_before) + 1
    assert loose == loose_before == []
    assert not list((store.meta.path / "objects" / "pack").glob(".tmp-*"))
    v1 = commit_all(store, "v1").id
    assert not fsck(store, read_data=True).problems
    before = read_tree(store.worktree)
    shutil.rmtree(store.worktree / "f000")
    checkout(store, v1, force=True)
    assert read_tree(store.worktree) == before


def test_a_stage_of_few_folders_stays_loose_until_made_durable(store: Store):
    _files(store.worktree, 3)
    packs_before = _meta_files(store)[1]
    add(store, [str(store.worktree)])
    loose, packs = _meta_files(store)
    assert packs == packs_before and len(loose) >= 4  # three folders and the root
    assert not fsck(store).problems


def test_a_write_that_fails_inside_leaves_nothing(store: Store):
    meta = store.meta
    loose_before, packs_before = _meta_files(store)
    with pytest.raises(RuntimeError), meta.new_objects():
        for i in range(PACK_NEW_MIN * 2):
            meta._put(git_pack.BLOB, b"%d" % i)
        raise RuntimeError("stop")
    assert _meta_files(store) == (loose_before, packs_before)
    assert not list((meta.path / "objects" / "pack").glob(".tmp-*"))


def test_a_pack_whose_ids_are_wrong_is_caught_before_it_is_published(store: Store, monkeypatch):
    """A fault in the writer (here: every id off by its last byte) fails the write with a
    clear error; nothing is published, no temp file stays, and the store is as it was."""
    real = git_pack.object_id
    monkeypatch.setattr(git_pack, "object_id", lambda kind, data: real(kind, data)[:-1] + b"\0")
    monkeypatch.setattr("objstore.meta.object_id", git_pack.object_id)
    _files(store.worktree, PACK_NEW_MIN + 10)
    before = _meta_files(store)
    with pytest.raises(FormatError, match="does not read back.*nothing was written"):
        add(store, [str(store.worktree)])
    assert _meta_files(store) == before
    assert not list((store.meta.path / "objects" / "pack").glob(".tmp-*"))
    monkeypatch.undo()
    add(store, [str(store.worktree)])
    commit_all(store, "v1")
    assert not fsck(store, read_data=True).problems


@pytest.mark.parametrize("budget", [0, 3000])
def test_a_full_disk_while_the_pack_is_written_leaves_the_store_as_it_was(store: Store, monkeypatch,
                                                                          budget: int):
    """No room at all, or room for part of the pack: the add fails with the disk's error,
    no temp file stays, and once there is room again the same add and a commit succeed."""
    from .test_resources import ENOSPC_TEXT, DiskFull

    _files(store.worktree, PACK_NEW_MIN + 10)
    before = _meta_files(store)
    disk = DiskFull(str(store.path), budget=budget, only={"meta"})
    with monkeypatch.context() as m:
        disk.install(m.setattr)
        with pytest.raises(OSError, match=ENOSPC_TEXT) as failed:
            add(store, [str(store.worktree)])
    assert failed.value.filename == str(store.meta.path / "objects" / "pack")  # the message says where
    assert [c for c, _at, _n in disk.log] and {c for c, _at, _n in disk.log} == {"meta"}
    assert _meta_files(store) == before
    assert not list((store.meta.path / "objects" / "pack").glob(".tmp-*"))
    add(store, [str(store.worktree)])
    v1 = commit_all(store, "v1").id
    assert not fsck(store, read_data=True).problems
    assert store.meta.tree_of(v1)


def test_a_write_that_fails_leaves_its_folders_to_be_written_again(store: Store, monkeypatch):
    """The tree editor marks a folder written only once the batch holding it is kept: after
    a full disk, the same editor's next write names only objects that exist."""
    from objstore.tree_edit import TreeEditor

    from .test_resources import ENOSPC_TEXT, DiskFull

    editor = TreeEditor(store.meta, None)
    for i in range(PACK_NEW_MIN + 10):
        editor.set(f"f{i:03}/x", FileEntry("x", FILE, 1, bytes([i]) * 16))
    disk = DiskFull(str(store.path), budget=2000, only={"meta"})
    with monkeypatch.context() as m:
        disk.install(m.setattr)
        with pytest.raises(OSError, match=ENOSPC_TEXT):
            editor.write()
    tree = editor.write()
    fresh = Store.open(store.worktree)
    assert sorted(path for path, _entry in fresh.meta.walk(tree)) == [
        f"f{i:03}/x" for i in range(PACK_NEW_MIN + 10)]
    fresh.close()


def test_new_packs_are_read_only_as_git_makes_them(store: Store):
    _files(store.worktree, PACK_NEW_MIN + 10)
    before = set(_meta_files(store)[1])
    add(store, [str(store.worktree)])
    (pack,) = set(_meta_files(store)[1]) - before
    for f in (pack, pack.with_suffix(".idx")):
        assert f.stat().st_mode & 0o777 == 0o444


FSIZE_SCRIPT = """
import os, resource, signal, sys
from pathlib import Path
from objstore import git_pack
from objstore.git_layout import init_bare
from objstore.meta import MetaStore
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
init_bare(Path(sys.argv[1]))
meta = MetaStore(Path(sys.argv[1]), 16)
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
try:
    with meta.new_objects():
        for i in range(5000):
            meta._put(git_pack.BLOB, os.urandom(100))
except OSError as e:
    print(e.errno, e.filename)
"""


def test_a_real_write_failure_of_the_pack_names_the_folder_and_leaves_nothing(tmp_path: Path):
    """Not a simulated one: the file size limit makes the kernel refuse the pack's bytes as
    they leave the write buffer, so closing the file fails again; that second failure must
    neither hide the first (which names the pack folder) nor keep the temp folder."""
    import errno
    import sys

    meta = tmp_path / "meta"
    run = subprocess.run([sys.executable, "-c", FSIZE_SCRIPT, str(meta)], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [str(errno.EFBIG), str(meta / "objects" / "pack")]
    assert not list((meta / "objects" / "pack").iterdir())


def test_gc_removes_a_pack_left_without_its_index_a_day_on(store: Store):
    """A publish killed between its two renames (or a merge between its two unlinks) leaves
    a ``.pack`` alone, which libgit2 never reads: gc removes it once a day old."""
    import os
    import time

    from objstore.maintenance import gc

    _files(store.worktree, 3)
    commit_all(store, "v1")
    folder = store.meta.pack_folder
    folder.mkdir(parents=True, exist_ok=True)
    old, young = folder / f"pack-{'1' * 40}.pack", folder / f"pack-{'2' * 40}.pack"
    for f in (old, young):
        f.write_bytes(b"PACK" + bytes(30))
    day_ago = time.time() - 2 * 24 * 3600
    os.utime(old, (day_ago, day_ago))
    report = gc(store)
    assert not old.exists() and young.exists()
    assert report.temp_files_removed >= 1
    assert fsck(store, read_data=True).ok


# -- a lost .idx rebuilt from its pack (git's index-pack) --------------------------------------

def _git_repo_with_deltas(tmp_path: Path, ofs: bool) -> Path:
    """A git repository packed by git itself, its blobs stored as deltas of one another
    (OFS_DELTA, or REF_DELTA when ``ofs`` is off), with trees, commits and a tag."""
    repo = tmp_path / ("ofs" if ofs else "ref")
    run = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True)  # noqa: E731
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    run("config", "user.email", "t@example.org")
    run("config", "user.name", "t")
    rng = random.Random(7)
    text = "".join(f"row {i},{rng.random()}\n" for i in range(3000))
    for n in range(6):
        (repo / "data.csv").write_text(text + f"edit {n}\n" * (n + 1))
        (repo / f"f{n}.txt").write_text(f"file {n}\n")
        run("add", "-A")
        run("commit", "-q", "-m", f"v{n}")
    run("tag", "-a", "t1", "-m", "a tag")
    run("-c", f"repack.useDeltaBaseOffset={'true' if ofs else 'false'}", "repack", "-adfq", "--depth=10")
    return repo


@pytest.mark.parametrize("ofs", [True, False], ids=["ofs-delta", "ref-delta"])
def test_index_pack_gives_the_index_git_wrote_for_a_pack_of_deltas(tmp_path: Path, ofs: bool):
    repo = _git_repo_with_deltas(tmp_path, ofs)
    (pack,) = (repo / ".git/objects/pack").glob("pack-*.pack")
    data = pack.read_bytes()
    kinds = {data[off] >> 4 & 7 for off in _record_offsets(pack.with_suffix(".idx").read_bytes())}
    assert (6 if ofs else 7) in kinds, "the pack holds the delta kind under test"
    assert git_pack.index_pack(data) == pack.with_suffix(".idx").read_bytes()


def _record_offsets(idx: bytes) -> list[int]:
    n = struct.unpack(">I", idx[8 + 255 * 4 : 8 + 256 * 4])[0]
    at = 8 + 256 * 4 + 20 * n + 4 * n
    return [o for o in struct.unpack(f">{n}I", idx[at : at + 4 * n]) if not o & 0x80000000]


def test_index_pack_of_a_pack_written_here_is_its_writers_index(tmp_path: Path):
    with open(tmp_path / "p.pack", "w+b") as f:
        w = git_pack.GitPackWriter(f)
        for i in range(50):
            w.add(git_pack.BLOB, b"blob %d\n" % i * (i + 1))
        _digest, idx = w.finish()
    assert git_pack.index_pack((tmp_path / "p.pack").read_bytes()) == idx


def test_a_damaged_pack_is_refused_by_index_pack_with_a_format_error(tmp_path: Path):
    repo = _git_repo_with_deltas(tmp_path, True)
    (pack,) = (repo / ".git/objects/pack").glob("pack-*.pack")
    data = bytearray(pack.read_bytes())
    flipped = bytes(data[:100]) + bytes([data[100] ^ 1]) + bytes(data[101:])
    cut = bytes(data[: len(data) // 2])
    for bad in (flipped, cut, cut + hashlib.sha1(cut).digest(), b"PACK"):
        with pytest.raises(FormatError):
            git_pack.index_pack(bad)


@pytest.mark.parametrize("packed_by", ["ds", "libgit2"])
def test_fsck_repair_rebuilds_a_lost_metadata_index_from_its_pack(tmp_path: Path, packed_by: str):
    """The .idx of a metadata pack lost, the .pack intact: every command fails on a missing
    folder; fsck names the lost index and its repair writes it again, nothing else needed."""
    w = tmp_path / "w"
    ds("init", "-q", str(w), cwd=tmp_path)
    for i in range(PACK_NEW_MIN + 10):
        write(w, f"d{i}/f.txt", f"{i}\n" * (i + 1))
    ds("add", "-q", ".", cwd=w)
    ds("commit", "-q", "-m", "one", cwd=w)
    if packed_by == "libgit2":
        write(w, "d0/f.txt", "changed\n")
        ds("commit", "-q", "-a", "-m", "two", cwd=w)
        ds("gc", "-q", cwd=w)  # every object into one pack, with deltas
    packs = w / ".dsstore/meta/objects/pack"
    (idx,) = packs.glob("pack-*.idx")
    before = idx.read_bytes()
    idx.unlink()
    r = ds("status", cwd=w, check=False)
    assert r.returncode == 1 and "missing" in r.stderr
    r = ds("fsck", cwd=w, check=False)
    assert r.returncode == 1 and "has no index (.idx)" in r.stderr and "ds fsck --repair" in r.stderr
    r = ds("fsck", "--repair", cwd=w)
    assert "rebuilt the lost index of metadata pack" in r.stderr
    assert idx.read_bytes() == before
    assert ds("status", cwd=w).stdout.endswith("Nothing changed.\n")
    assert ds("fsck", cwd=w).returncode == 0


def test_index_pack_holds_only_the_bases_still_awaited_not_the_pack_inflated(tmp_path: Path):
    """60 versions of a 256 KiB file, each a delta of the next: the memory index_pack takes
    (Python's own allocations, as tracemalloc counts them: no machine noise) stays a few
    times one version, where keeping every object inflated took all 60."""
    import tracemalloc

    repo = tmp_path / "chain"
    run = lambda *a: subprocess.run(["git", "-C", str(repo), *a], check=True, capture_output=True)  # noqa: E731
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    run("config", "user.email", "t@example.org")
    run("config", "user.name", "t")
    rng = random.Random(3)
    blob = bytearray(rng.randbytes(256 * 1024))
    for n in range(60):
        blob[rng.randrange(len(blob))] = n
        (repo / "big.bin").write_bytes(blob)
        run("add", "big.bin")
        run("commit", "-q", "-m", f"v{n}")
    run("repack", "-adfq", "--depth=100", "--window=100")
    (pack,) = (repo / ".git/objects/pack").glob("pack-*.pack")
    data = pack.read_bytes()
    tracemalloc.start()
    try:
        idx = git_pack.index_pack(data)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert idx == pack.with_suffix(".idx").read_bytes()
    assert peak < 8 * len(blob), f"peak {peak / 2**20:.1f} MiB for versions of {len(blob) / 2**20:.2f} MiB"
