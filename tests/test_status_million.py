"""The no-op `ds status` at scale: the packed stat cache and the walk split between processes.

A million files cannot run here, so these trees hold a few thousand, spread over enough
folders for the walk to be shared out; the walk is told how many processes to use. For
every kind of change the parallel walk must give the serial walk's answer, and "clean"
only when the full status agrees.
"""

from __future__ import annotations

import marshal
import os
import select
import shutil
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from objstore import quickstatus, statcache
from objstore.quickstatus import _walk_unchanged, quick_clean
from objstore.scan import Stat
from objstore.statcache import StatCache
from objstore.store import Store
from objstore.worktree import commit_all, status

from .conftest import ds, write

TOPS, SUBS, FILES = 10, 4, 50  # 10 x 4 folders of 50 files: 2,000 files, 51 folders


def make_tree(root: Path) -> None:
    write(root, "top.txt", "top")  # first: the newest file is in a folder the walk shares out
    for t in range(TOPS):
        for s in range(SUBS):
            for f in range(FILES):
                write(root, f"t{t}/s{s}/f{f}.txt", f"file {t} {s} {f}\n" * (1 + f % 3))


def cache_of(root: Path, written_ns: int | None = None) -> StatCache:
    """A stat cache holding exactly the tree's files, marked clean, written well after them
    (its clock is set 10 s ahead: no file is inside the racy window, however slow the test)."""
    cache = StatCache(root / ".dsstore" / "cache" / "stat")
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != ".dsstore"]
        for name in filenames:
            rel = Path(dirpath, name).relative_to(root).as_posix()
            cache.put(rel, Stat.of(os.lstat(Path(dirpath, name))), b"h" * 16)
    cache.mark_clean("c" * 40)
    saved = statcache.time
    statcache.time = SimpleNamespace(time_ns=lambda: written_ns or time.time_ns() + 10**10)
    try:
        cache.save()
    finally:
        statcache.time = saved
    return StatCache(cache.path)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    make_tree(root)
    (root / ".dsstore").mkdir()
    return root


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pids of the walkers forked (each is reaped before the walk returns)."""
    pids: list[int] = []
    fork = quickstatus._fork

    def counted(walk, share):
        child = fork(walk, share)
        if child is not None:
            pids.append(child.pid)
        return child

    monkeypatch.setattr(quickstatus, "_fork", counted)
    return pids


def answers(root: Path, forks: list[int], written_ns: int | None = None) -> tuple[bool | None, bool | None]:
    """The serial walk's answer and the two-process walk's, from a fresh read of the cache
    (``written_ns``: as if the cache had been written then)."""
    answer = []
    for workers in (1, 2):
        cache = StatCache(root / ".dsstore" / "cache" / "stat")
        cache.written_ns = written_ns or cache.written_ns
        before = len(forks)
        answer.append(_walk_unchanged(str(root), cache, workers=workers))
        assert len(forks) == before + (workers - 1), "the walk was shared with one child"
    for pid in forks:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped: no child outlives the walk
    return answer[0], answer[1]


def shares(root: Path) -> list[list[str]]:
    """The two shares the walk makes of this tree's top folders."""
    cache = StatCache(root / ".dsstore" / "cache" / "stat")
    return quickstatus._shares([f"t{t}" for t in range(TOPS)], 2, cache.row_counts())


def test_an_unchanged_tree_is_clean_both_ways(tree: Path, forks: list[int]) -> None:
    cache_of(tree)
    assert answers(tree, forks) == (True, True)
    assert all(shares(tree)), "both processes have folders to walk"


def _touch(root: Path, rel: str) -> None:
    st = os.stat(root / rel)
    os.utime(root / rel, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000))


def _same_size_same_mtime(root: Path, rel: str) -> None:
    """A rewrite that keeps size and mtime (as cp -p does): only the ctime tells."""
    st = os.stat(root / rel)
    data = (root / rel).read_bytes()
    (root / rel).write_bytes(bytes([data[0] ^ 1]) + data[1:])
    os.utime(root / rel, ns=(st.st_atime_ns, st.st_mtime_ns))


def _replace_by_folder(root: Path, rel: str) -> None:
    (root / rel).unlink()
    write(root, f"{rel}/inside", "x")


def _replace_by_empty_folder(root: Path, rel: str) -> None:
    (root / rel).unlink()
    (root / rel).mkdir()


def _replace_by_link(root: Path, rel: str) -> None:
    (root / rel).unlink()
    os.symlink("elsewhere", root / rel)


def _replace_by_fifo(root: Path, rel: str) -> None:
    (root / rel).unlink()
    os.mkfifo(root / rel)


def _remove_folder(root: Path, rel: str) -> None:
    shutil.rmtree(root / rel.rpartition("/")[0])


CHANGES = {  # what to do to one file (or its folder); the walk must find it
    "touched": _touch,
    "rewritten, same size and mtime": _same_size_same_mtime,
    "new file in a deep folder": lambda root, rel: write(root, f"{rel}.d/deep/er/new", "n"),
    "new file beside": lambda root, rel: write(root, f"{rel}.new", "n"),
    "removed": lambda root, rel: (root / rel).unlink(),
    "folder removed": _remove_folder,
    "replaced by a folder": _replace_by_folder,
    "replaced by an empty folder": _replace_by_empty_folder,
    "replaced by a link": _replace_by_link,
    "replaced by a fifo": _replace_by_fifo,
    "a nested store": lambda root, rel: (root / rel.rpartition("/")[0] / ".DSStore").mkdir(),
    "a name that is not UTF-8": lambda root, rel: os.rename(
        root / rel, os.path.join(os.fsencode(root / rel.rpartition("/")[0]), b"\xff")),
}


@pytest.mark.parametrize("where", [0, 1], ids=["this process's share", "the child's share"])
@pytest.mark.parametrize("change", list(CHANGES))
def test_each_kind_of_change_gives_the_serial_answer(tree: Path, forks: list[int], change: str,
                                                     where: int) -> None:
    cache_of(tree)
    folder = shares(tree)[where][0]
    rel = f"{folder}/s2/f7.txt"
    if change == "a name that is not UTF-8" and sys.platform == "darwin":
        pytest.skip("this filesystem refuses names that are not UTF-8")
    CHANGES[change](tree, rel)
    assert answers(tree, forks) == (False, False)


def test_a_new_empty_folder_changes_nothing(tree: Path, forks: list[int]) -> None:
    cache_of(tree)
    (tree / "t3/s1/empty").mkdir()
    (tree / "t8/new/empty").mkdir(parents=True)
    assert answers(tree, forks) == (True, True)


@pytest.mark.parametrize("where", [0, 1], ids=["this process's share", "the child's share"])
def test_a_dsignore_hands_over_to_the_scanner_both_ways(tree: Path, forks: list[int], where: int) -> None:
    cache_of(tree)
    write(tree, f"{shares(tree)[where][0]}/s0/.dsignore", "*.tmp\n")
    assert answers(tree, forks) == (None, None)


def test_a_child_that_answers_first_decides(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A child's answer stops this process's walk; the answer is then the child's (it was
    taken for a difference: a .dsignore sent the status the full way, not to the scanner)."""
    cache_of(tree)
    write(tree, f"{shares(tree)[1][0]}/s0/.dsignore", "*.tmp\n")
    fork = quickstatus._fork

    def answered(walk, share):
        child = fork(walk, share)
        select.select([child.pipe], [], [])  # this process walks only once the child has answered
        return child

    monkeypatch.setattr(quickstatus, "_fork", answered)
    assert _walk_unchanged(str(tree), StatCache(tree / ".dsstore/cache/stat"), workers=2) is None


def test_a_file_inside_the_racy_window_is_unsure_both_ways(tree: Path, forks: list[int]) -> None:
    """A cache written within a tick of a file's last change cannot vouch for it; a file
    with whole-second times (a coarse filesystem) needs 2 s; older ones are sure. (Saving
    drops such rows; the walk checks again, against the time the cache it reads was written.)"""
    newest = max(max(st.st_mtime_ns, st.st_ctime_ns) for st in
                 (os.lstat(p) for p in tree.rglob("*") if p.is_file()))
    cache_of(tree)
    assert answers(tree, forks, written_ns=newest + statcache.RACY_NS // 2) == (False, False)
    assert answers(tree, forks, written_ns=newest + statcache.RACY_NS + 1) == (True, True)

    rel = f"{shares(tree)[1][0]}/s1/f3.txt"
    whole = os.lstat(tree / rel).st_mtime_ns // 10**9 * 10**9
    os.utime(tree / rel, ns=(whole, whole))
    cache_of(tree)
    written = os.lstat(tree / rel).st_ctime_ns + 10**9  # 1 s after its change
    assert answers(tree, forks, written_ns=written) == (False, False), "whole-second times: 2 s"
    os.utime(tree / rel, ns=(whole + 1, whole + 1))
    cache_of(tree)
    written = os.lstat(tree / rel).st_ctime_ns + 10**9
    assert answers(tree, forks, written_ns=written) == (True, True), "finer times: 100 ms"


def test_a_child_that_gives_no_answer_means_not_clean(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_of(tree)
    fork = quickstatus._fork

    class Dies:  # the child is killed in its walk, before any answer (not racing the parent)
        with_rows = 0

        def run(self, share):
            os.kill(os.getpid(), signal.SIGKILL)

    def killed(walk, share):
        return fork(Dies(), share)

    monkeypatch.setattr(quickstatus, "_fork", killed)
    assert _walk_unchanged(str(tree), StatCache(tree / ".dsstore/cache/stat"), workers=2) is False


def test_no_fork_possible_walks_every_share_here(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache_of(tree)
    monkeypatch.setattr(quickstatus, "_fork", lambda walk, share: None)
    assert _walk_unchanged(str(tree), StatCache(tree / ".dsstore/cache/stat"), workers=3) is True
    (tree / "t9/s3/f49.txt").unlink()
    assert _walk_unchanged(str(tree), StatCache(tree / ".dsstore/cache/stat"), workers=3) is False


def test_the_walk_decodes_no_row(tree: Path, forks: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    """Folders are compared packed, as two values each: no Python object per cached file."""
    cache_of(tree)

    def refused(self, folder):
        raise AssertionError(f"rows of {folder!r} decoded")

    monkeypatch.setattr(StatCache, "rows", refused)
    assert answers(tree, forks) == (True, True)


def test_without_folder_descriptors_the_answers_are_the_same(
        tree: Path, forks: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the OS has no ``lstat`` relative to a folder, full paths give the same answers."""
    monkeypatch.setattr(quickstatus, "_FDS", False)
    cache_of(tree)
    assert answers(tree, forks) == (True, True)
    _touch(tree, f"{shares(tree)[1][0]}/s0/f0.txt")
    assert answers(tree, forks) == (False, False)


def test_a_small_tree_is_walked_by_one_process(tree: Path, forks: list[int],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(quickstatus, "fork_cores", lambda: 2)
    cache_of(tree)
    cache = StatCache(tree / ".dsstore/cache/stat")
    assert _walk_unchanged(str(tree), cache) is True and forks == [], "under PARALLEL_ROWS: no fork"
    monkeypatch.setattr(quickstatus, "PARALLEL_ROWS", cache.row_count())
    assert _walk_unchanged(str(tree), cache) is True and len(forks) == 1


def test_shares_are_balanced_by_cached_files() -> None:
    counts = {"big/a": 600, "big/b": 400, "mid": 500, "small": 10, "tiny/x/y": 5, "": 3}
    got = quickstatus._shares(["big", "mid", "small", "tiny"], 2, counts)
    assert sorted(map(sorted, got)) == [["big"], ["mid", "small", "tiny"]]
    assert quickstatus._shares(["a"], 4, {}) == [["a"]], "no empty share is forked"


def test_packed_rows_round_trip(tmp_path: Path) -> None:
    """Times and inodes past 2**63 and hashes of mixed lengths keep their exact values."""
    cache = StatCache(tmp_path / "stat")
    old = time.time_ns() - 10**10
    rows = {
        "d/a": (Stat(1, old, 2**64 - 1, 0, old), b"x" * 16),
        "d/b": (Stat(2, old + 1, 3, 0, old), b"y" * 32),
        "e/c": (Stat(3, old + 2, 4, 0, old), b""),
        "e/d": (Stat(4, old + 3, 5, 0, old), b""),
        "top": (Stat(5, old + 4, 6, 0, old), b"z" * 16),
    }
    for path, (st, digest) in rows.items():
        cache.put(path, st, digest)
    cache.save()
    again = StatCache(tmp_path / "stat")
    assert sorted(again.paths()) == sorted(rows)
    for path, (st, digest) in rows.items():
        assert again.get(path, st) == digest
    assert again.row_counts() == {"d": 2, "e": 2, "": 1}
    assert again.packed("d")[1] == (1, 2, old, old + 1, old, old, 2**64 - 1, 3), "past 2**63: plain ints"
    assert again.packed("missing") is None


def test_a_damaged_folder_entry_is_no_row_and_not_clean(tree: Path) -> None:
    cache_of(tree)
    path = tree / ".dsstore/cache/stat"
    tag, written, blobs, head = marshal.loads(path.read_bytes())
    names, numbers, digests = blobs["t4/s0"]
    blobs["t4/s0"] = (names, numbers[:-8], digests)  # one number short
    path.write_bytes(marshal.dumps((tag, written, blobs, head)))
    cache = StatCache(path)
    assert cache.rows("t4/s0") == {} and cache.packed("t4/s0") is None
    assert _walk_unchanged(str(tree), StatCache(path), workers=1) is False


def _write_old_format(path: Path) -> None:
    """Rewrite a cache as the previous format held it: one marshalled dict per folder."""
    cache = StatCache(path)
    blobs = {f: marshal.dumps(dict(cache.rows(f))) for f in cache.folders()}
    old = (f"dsstat4-{sys.implementation.cache_tag}", cache.written_ns, blobs, cache.clean_head)
    path.write_bytes(marshal.dumps(old))


def test_a_cache_in_the_old_format_is_read_and_rewritten_by_the_full_status(
        store: Store, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(30):
        write(work, f"d{i % 3}/f{i}", f"file {i}")
    commit_all(store, "v1")
    statcache_clock = time.time_ns() + 10**10  # the cache is written well after the files
    monkeypatch.setattr(statcache, "time", SimpleNamespace(time_ns=lambda: statcache_clock))
    assert status(store).clean and quick_clean(str(work))
    path = store.path / "cache" / "stat"
    expected = {p: StatCache(path).get(p, Stat.of(os.lstat(work / p))) for p in StatCache(path).paths()}
    _write_old_format(path)

    old = StatCache(path)
    assert old.upgraded
    assert {p: old.get(p, Stat.of(os.lstat(work / p))) for p in old.paths()} == expected, "rows kept"
    assert not quick_clean(str(work)), "the old format sends the no-op status the full way once"
    assert status(store).clean
    assert marshal.loads(path.read_bytes())[0] == statcache._TAG
    new = StatCache(path)
    assert not new.upgraded and new.get("d1/f4", Stat.of(os.lstat(work / "d1/f4"))) == expected["d1/f4"]
    assert quick_clean(str(work))


def test_quick_status_walks_in_parallel_and_agrees_with_the_full_status(
        store: Store, work: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]) -> None:
    make_tree(work)
    commit_all(store, "v1")
    statcache_clock = time.time_ns() + 10**10
    monkeypatch.setattr(statcache, "time", SimpleNamespace(time_ns=lambda: statcache_clock))
    monkeypatch.setattr(quickstatus, "PARALLEL_ROWS", 1000)
    monkeypatch.setattr(quickstatus, "fork_cores", lambda: 2)
    assert not quick_clean(str(work)), "no status has proved it clean yet"
    assert status(store).clean
    assert quick_clean(str(work)) and len(forks) == 1
    write(work, "t5/s3/f10.txt", "changed")
    assert not quick_clean(str(work))
    assert status(store).modified == ["t5/s3/f10.txt"]


def test_the_cli_answers_from_the_packed_cache(store: Store, work: Path) -> None:
    make_tree(work)
    ds("add", ".", cwd=work)
    ds("commit", "-m", "v1", cwd=work)
    time.sleep(0.15)  # past the racy window of the cache the status below writes
    assert ds("status", cwd=work).stdout.endswith("Nothing changed.\n")
    assert marshal.loads((store.path / "cache/stat").read_bytes())[0] == statcache._TAG
    assert quick_clean(str(work))
    (work / "t0/s0/f0.txt").unlink()
    assert "t0/s0/f0.txt" in ds("status", cwd=work).stdout
