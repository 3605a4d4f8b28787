"""The offline workflow at library level: add, status, commit, diff, checkout, get, squash."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from objstore.diff import diff_trees
from objstore.errors import DirtyWorktree, DsError, NothingToCommit, TargetNotEmpty
from objstore.get import get_copy
from objstore.maintenance import fsck, gc
from objstore.squash import squash
from objstore.store import Store
from objstore.worktree import add, checkout, commit_all, rm, status

from .conftest import read_tree, write


def test_add_commit_status_roundtrip(store: Store, work: Path) -> None:
    write(work, "a.txt", "alpha")
    write(work, "sub/b.bin", os.urandom(5000))
    write(work, "sub/deep/c.sh", "#!/bin/sh\n", mode=0o755)
    write(work, "empty", b"")
    st = status(store)
    assert st.added == ["a.txt", "empty", "sub/b.bin", "sub/deep/c.sh"]
    report = add(store, [str(work)])
    assert report.staged == 4
    assert sorted(status(store).staged.added) == st.added
    info = store.commit("v1")
    assert info.parents == ()
    assert status(store).clean
    files = dict(store.meta.walk(store.head_tree()))
    assert files["sub/deep/c.sh"].kind == 1
    assert files["empty"].size == 0


def test_status_reports_changes_and_reads_no_content_when_clean(store: Store, work: Path,
                                                                monkeypatch) -> None:
    write(work, "a.txt", "alpha")
    write(work, "b.txt", "beta")
    commit_all(store, "v1")
    import objstore.worktree as wt

    calls = []
    real = wt.hash_file
    monkeypatch.setattr(wt, "hash_file", lambda *a: calls.append(a) or real(*a))
    # files written less than a timestamp tick before the cache was saved are re-checked
    # once; after that the cache answers
    time.sleep(0.15)
    status(store)
    calls.clear()
    assert status(store).clean
    assert calls == []  # the stat cache answered for every file
    write(work, "a.txt", "ALPHA")  # same size: found by content
    write(work, "c.txt", "gamma")
    os.unlink(work / "b.txt")
    st = status(store)
    assert (st.added, st.modified, st.removed) == (["c.txt"], ["a.txt"], ["b.txt"])


def test_commit_needs_changes_and_message(store: Store, work: Path) -> None:
    write(work, "a", "x")
    commit_all(store, "v1")
    with pytest.raises(NothingToCommit):
        store.commit("again")
    write(work, "a", "y")
    add(store, [str(work / "a")])
    with pytest.raises(DsError, match="message"):
        store.commit("  ")


def test_add_folder_stages_removals_and_rm(store: Store, work: Path) -> None:
    write(work, "d/1", "1")
    write(work, "d/2", "2")
    write(work, "keep", "k")
    commit_all(store, "v1")
    os.unlink(work / "d/1")
    add(store, [str(work / "d")])
    assert sorted(status(store).staged.removed) == ["d/1"]
    removed = rm(store, [str(work / "keep")])
    assert removed == ["keep"] and not (work / "keep").exists()
    store.commit("v2")
    assert [p for p, _ in store.meta.walk(store.head_tree())] == ["d/2"]
    with pytest.raises(DsError, match="not in the version"):
        rm(store, [str(work / "nothing")])


def test_dsignore_is_honoured_at_any_depth(store: Store, work: Path) -> None:
    write(work, ".dsignore", "*.tmp\ncache/\n")
    write(work, "a.tmp", "x")
    write(work, "cache/big", "x")
    write(work, "sub/.dsignore", "local.txt\n!keep.tmp\n")
    write(work, "sub/local.txt", "x")
    write(work, "sub/ok.txt", "x")
    commit_all(store, "v1")
    paths = [p for p, _ in store.meta.walk(store.head_tree())]
    assert paths == [".dsignore", "sub/.dsignore", "sub/ok.txt"]


def test_diff_between_versions_with_rename(store: Store, work: Path) -> None:
    write(work, "a/x.bin", os.urandom(3000))
    write(work, "m.txt", "one")
    write(work, "gone.txt", "bye")
    v1 = commit_all(store, "v1").id
    (work / "a/x.bin").rename(work / "y.bin")
    write(work, "m.txt", "two!")
    os.unlink(work / "gone.txt")
    write(work, "new.txt", "new")
    v2 = commit_all(store, "v2").id
    d = diff_trees(store.meta, store.meta.tree_of(v1), store.meta.tree_of(v2))
    assert d.as_json() == {
        "added": ["new.txt"],
        "modified": ["m.txt"],
        "removed": ["gone.txt"],
        "renamed": [{"from": "a/x.bin", "to": "y.bin"}],
    }


def test_checkout_moves_between_versions_and_protects_changes(store: Store, work: Path) -> None:
    write(work, "a.txt", "v1")
    write(work, "dir/f", "f1")
    v1 = commit_all(store, "v1").id
    write(work, "a.txt", "v2")
    os.unlink(work / "dir/f")
    write(work, "dir2/g", "g")
    commit_all(store, "v2")
    before_v2 = read_tree(work)
    checkout(store, v1)
    assert read_tree(work) == {"a.txt": (b"v1", False), "dir/f": (b"f1", False)}
    assert store.head() == v1 and status(store).clean
    write(work, "a.txt", "local edit")
    with pytest.raises(DirtyWorktree):
        checkout(store, "main")
    assert (work / "a.txt").read_text() == "local edit"  # nothing thrown away
    checkout(store, "main", force=True)
    assert read_tree(work) == before_v2
    assert store.meta.head_branch() == "main"


def test_checkout_refuses_to_clobber_untracked_file(store: Store, work: Path) -> None:
    write(work, "a", "1")
    v1 = commit_all(store, "v1").id
    write(work, "b", "2")
    commit_all(store, "v2")
    checkout(store, v1)
    write(work, "b", "precious untracked")
    with pytest.raises(DirtyWorktree):
        checkout(store, "main")
    assert (work / "b").read_text() == "precious untracked"


def test_checkout_paths_restores_only_those(store: Store, work: Path) -> None:
    write(work, "a", "1")
    write(work, "b", "1")
    v1 = commit_all(store, "v1").id
    write(work, "a", "2")
    write(work, "b", "2")
    commit_all(store, "v2")
    checkout(store, v1, [str(work / "a")])
    assert (work / "a").read_text() == "1" and (work / "b").read_text() == "2"
    assert status(store).modified == ["a"]


def test_get_copy_rules(store: Store, work: Path, tmp_path: Path) -> None:
    write(work, "data/a.csv", "1,2\n")
    write(work, "data/b.bin", os.urandom(10))
    write(work, "run.sh", "echo", mode=0o755)
    commit_all(store, "v1")
    out = tmp_path / "out"
    get_copy(store, "HEAD", out)
    assert read_tree(out) == read_tree(work)
    assert os.access(out / "data/a.csv", os.W_OK)
    # non-empty target: refused and untouched
    write(out, "mine.txt", "mine")
    with pytest.raises(TargetNotEmpty):
        get_copy(store, "HEAD", out)
    assert (out / "mine.txt").read_text() == "mine"
    get_copy(store, "HEAD", out, overwrite=True)
    assert read_tree(out) == read_tree(work)
    inc = tmp_path / "inc"
    get_copy(store, "HEAD", inc, include=["*.csv"])
    assert list(read_tree(inc)) == ["data/a.csv"]
    with pytest.raises(DsError, match="matches --include 'nomatch\\*'; nothing was written"):
        get_copy(store, "HEAD", tmp_path / "none", include=["nomatch*"])  # git: "did not match any file"
    assert not (tmp_path / "none").exists()
    with pytest.raises(DsError, match="holds a store"):
        get_copy(store, "HEAD", work, overwrite=True)


def test_get_failure_leaves_target_untouched(store: Store, work: Path, tmp_path: Path) -> None:
    write(work, "a", os.urandom(1000))
    commit_all(store, "v1")
    for pack in (work / ".dsstore/packs").glob("*/*.pack"):
        data = bytearray(pack.read_bytes())
        data[20] ^= 0xFF  # corrupt the first record
        os.chmod(pack, 0o644)
        pack.write_bytes(bytes(data))
    out = tmp_path / "out"
    with pytest.raises(DsError, match="verification|decompress"):
        get_copy(store, "HEAD", out)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["work"]  # no temp folder left behind


def test_squash_chain_equals_last_and_union_of_unrelated(store: Store, work: Path) -> None:
    write(work, "a", "1")
    write(work, "b", "1")
    v1 = commit_all(store, "v1").id
    os.unlink(work / "b")
    write(work, "c", "3")
    v2 = commit_all(store, "v2").id
    info = squash(store, [v1, v2], "sq")
    assert info.parents == ()
    assert store.head() == info.id and store.meta.head_branch() == "main"
    assert sorted(p for p, _ in store.meta.walk(store.head_tree())) == ["a", "c"]
    assert store.log() == [store.meta.commit_info(info.id)]
    # unrelated roots: union, later wins
    other = squash(store, [v1], "copy of v1", branch="other")
    union = squash(store, [info.id, other.id], "union", branch="u")
    files = dict(store.meta.walk(store.meta.tree_of(union.id)))
    assert sorted(files) == ["a", "b", "c"]


def test_gc_frees_unreachable_and_keeps_everything_reachable(store: Store, work: Path) -> None:
    write(work, "big", os.urandom(300_000))
    commit_all(store, "v1")
    write(work, "big", os.urandom(300_000))
    write(work, "small", "s")
    commit_all(store, "v2")
    tip = squash(store, ["HEAD"], "only v2")
    assert gc(store, dry_run=True).bytes_freed == 0, "v1 is in the reflog's grace period"
    dry = gc(store, dry_run=True, reflog_grace=None)
    assert dry.bytes_freed > 250_000 and dry.dry_run
    assert len(list((work / ".dsstore/packs").glob("*/*.pack"))) == 2
    report = gc(store, reflog_grace=None)
    assert report.bytes_freed == dry.bytes_freed
    assert fsck(store, read_data=True).ok
    out = work.parent / "out"
    get_copy(store, tip.id, out)
    assert read_tree(out) == read_tree(work)


def test_fsck_detects_corruption_and_repairs_index(store: Store, work: Path) -> None:
    write(work, "a", os.urandom(2000))
    commit_all(store, "v1")
    assert fsck(store, read_data=True).ok
    for frag in (work / ".dsstore/index").glob("*.idx"):
        frag.unlink()
    store.chunks.index.reload()
    broken = fsck(store)
    assert not broken.ok and "not in the index" in broken.problems[0]
    assert fsck(store, repair=True).ok
    pack = next((work / ".dsstore/packs").glob("*/*.pack"))
    data = bytearray(pack.read_bytes())
    data[17] ^= 1
    pack.write_bytes(bytes(data))
    bad = fsck(store, read_data=True)
    assert not bad.ok and any("damaged" in p or "verification" in p or "decompress" in p
                              for p in bad.problems)


def test_blake3_store(work: Path) -> None:
    s = Store.init(work, hash="blake3")
    write(work, "a", "x" * 100)
    commit_all(s, "v1")
    assert s.algo.size == 32
    assert fsck(Store.open(work), read_data=True).ok


def test_dedupe_across_files_and_versions(store: Store, work: Path) -> None:
    blob = os.urandom(50_000)
    write(work, "a", blob)
    write(work, "b", blob)
    commit_all(store, "v1")
    first = sum(p.stat().st_size for p in (work / ".dsstore/packs").glob("*/*.pack"))
    assert first < 60_000
    write(work, "c", blob)
    report = add(store, [str(work)])
    assert report.bytes_new == 0


def test_large_file_insert_stores_only_changed_chunks(store: Store, work: Path) -> None:
    rnd = os.urandom(12 * 1024 * 1024)
    write(work, "big", rnd)
    commit_all(store, "v1")
    write(work, "big", rnd[:6_000_000] + b"x" * 100 + rnd[6_000_000:])
    report = add(store, [str(work)])
    assert report.bytes_new < 4 * 1024 * 1024 + 100  # one or two chunks, not the whole file
    store.commit("v2")
    out = work.parent / "out"
    get_copy(store, "HEAD", out)
    assert (out / "big").read_bytes() == (work / "big").read_bytes()


def test_case_collisions_are_reported_and_refused_on_insensitive_disks(
        store: Store, work: Path, tmp_path: Path, monkeypatch) -> None:
    write(work, "Data/a.txt", "1")
    write(work, "data/a.txt", "2")
    write(work, "x/README", "1")
    write(work, "x/readme", "2")
    report = add(store, [str(work)])
    assert ("x/README", "x/readme") in report.case_collisions
    assert ("Data", "data") in report.case_collisions
    store.commit("v1")
    import objstore.get as copy_mod

    monkeypatch.setattr(copy_mod, "is_case_insensitive", lambda folder: True)
    with pytest.raises(DsError, match="differ only in case"):
        get_copy(store, "HEAD", tmp_path / "out")
    assert not (tmp_path / "out").exists()
    get_copy(store, "HEAD", tmp_path / "one", include=["x/README"])
    assert (tmp_path / "one/x/README").read_text() == "1"


def test_init_refuses_existing_non_store_named_like_finder_file(tmp_path: Path) -> None:
    (tmp_path / ".dsstore").write_bytes(b"\0\0\0\1Bud1")  # what Finder's .DS_Store looks like
    with pytest.raises(DsError, match="DS_Store"):
        Store.init(tmp_path)
    assert (tmp_path / ".dsstore").read_bytes() == b"\0\0\0\1Bud1"


def test_unknown_format_version_is_refused(store: Store, work: Path) -> None:
    cfg = work / ".dsstore/config"
    cfg.write_text(cfg.read_text().replace("format = 1", "format = 99"))
    with pytest.raises(DsError, match="format 99 is not supported"):
        Store.open(work)


def test_two_large_files_are_cut_together_and_a_failure_stages_nothing(
        store: Store, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from objstore import ingest

    a = os.urandom(3_200_000)  # over the 1.5 MiB largest chunk: several chunks
    b = b"%d,some text\n" * 40_000 % tuple(range(40_000))
    write(work, "a.bin", a)
    write(work, "b.csv", b)
    real = ingest.check_unchanged

    def fails_on_b(job, size):
        if job.path == "b.csv":
            raise DsError("b.csv changed while it was being added; run the command again")
        real(job, size)
    monkeypatch.setattr(ingest, "check_unchanged", fails_on_b)
    before = store.staged_tree()
    with pytest.raises(DsError, match="b.csv changed"):
        add(store, [str(work)])
    assert store.staged_tree() == before
    assert not list((work / ".dsstore/packs").rglob(".tmp-*")), "the pack being written is dropped"
    monkeypatch.setattr(ingest, "check_unchanged", real)
    commit_all(store, "v1")
    out = work.parent / "out"
    get_copy(store, "HEAD", out)
    assert (out / "a.bin").read_bytes() == a and (out / "b.csv").read_bytes() == b
    assert len(store.meta.lookup(store.head_tree(), "a.bin").chunk_list()) > 1


def test_overlapping_paths_are_read_once(store: Store, work: Path) -> None:
    write(work, "a/x", "x" * 5000)
    report = add(store, [str(work / "a"), str(work / "a/x")])
    assert (report.staged, report.bytes_read) == (1, 5000)
