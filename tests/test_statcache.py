"""The stat cache keeps rows per folder and decodes only a bounded number at a time.

These tests shrink the bounds so that a few folders already overflow them, and check
that nothing is lost or trusted wrongly when folders are re-encoded and decoded again.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from objstore import meta as meta_mod
from objstore import statcache
from objstore.diff import diff_trees
from objstore.quickstatus import quick_clean
from objstore.scan import FolderFiles, Stat
from objstore.statcache import StatCache
from objstore.store import Store
from objstore.worktree import add, commit_all, status

from .conftest import write

OLD = time.time_ns() - 10_000_000_000  # well outside the racy window


def _stat(i: int) -> Stat:
    return Stat(100 + i, OLD + i, 1000 + i, 0, OLD + i)


def test_rows_survive_eviction_and_a_save(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statcache, "_OPEN_ROWS", 5)
    path = tmp_path / "stat"
    cache = StatCache(path)
    paths = [f"d{i % 7}/f{i}" for i in range(60)] + ["top"]
    for i, p in enumerate(paths):
        cache.put(p, _stat(i), bytes([i]) * 16)
    assert len(cache._open) <= 2, "folders past the bound are re-encoded, not kept decoded"
    for i, p in enumerate(paths):  # read back across evictions (unsaved: nothing is trusted yet)
        folder, _, name = p.rpartition("/")
        assert cache.rows(folder)[name][4] == bytes([i]) * 16
        assert cache.get(p, _stat(i)) is None
    cache.drop("d3/f3")
    cache.save()
    again = StatCache(path)
    assert sorted(again.paths()) == sorted(set(paths) - {"d3/f3"})
    for i, p in reversed(list(enumerate(paths))):
        assert again.get(p, _stat(i)) == (None if p == "d3/f3" else bytes([i]) * 16)
    assert again.get("d1/f1", _stat(1)) == bytes([1]) * 16
    assert again.get("d1/f1", _stat(2)) is None, "a different stat is never trusted"
    again.keep_folders({"d1", ""})
    again.keep_names("d1", {"f8"})
    again.save()
    assert sorted(StatCache(path).paths()) == ["d1/f8", "top"]


def pin_clock(monkeypatch: pytest.MonkeyPatch, start: int) -> list[int]:
    """Make the stat cache's clock read ``clock[0]``: when a save happens, not how long the
    work before it took, decides which rows are inside the racy window."""
    clock = [start]
    monkeypatch.setattr(statcache, "time", SimpleNamespace(time_ns=lambda: clock[0]))
    return clock


def test_a_row_inside_the_racy_window_is_dropped_on_save_and_an_older_one_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now = 1_700_000_000_123_456_789
    pin_clock(monkeypatch, now)
    window = statcache.RACY_NS
    cache = StatCache(tmp_path / "stat")
    rows = {  # name: (mtime, ctime)
        "old": (now - 10**10, now - 10**10),
        "just-outside": (now - window - 1, now - window - 1),
        "at-the-edge": (now - window, now - window),
        "new": (now, now),
        "old-mtime-new-ctime": (now - 10**10, now - 5),  # cp -p / rsync -t: the ctime tells
        "whole-second": (now // 10**9 * 10**9 - 10**9, now // 10**9 * 10**9 - 10**9),  # coarse fs: 2 s
    }
    for i, (name, (mtime, ctime)) in enumerate(rows.items()):
        cache.put(f"a/{name}", Stat(5, mtime, 7 + i, 0, ctime), name.encode())
    cache.save()
    again = StatCache(tmp_path / "stat")
    assert again.written_ns == now
    assert sorted(again.paths()) == ["a/just-outside", "a/old"], "rows inside the racy window are not kept"


def test_status_and_quick_status_across_many_folders(store: Store, work: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statcache, "_OPEN_ROWS", 3)
    monkeypatch.setattr(meta_mod, "_CACHED_ROWS", 4)
    for i in range(40):
        write(work, f"p{i % 4}/q{i % 8}/f{i}", f"file {i}")
    write(work, "top", "t")
    commit_all(store, "v1")
    time.sleep(0.15)
    assert status(store).clean
    assert quick_clean(str(work))
    write(work, "p3/q7/f39", "changed!")  # same folder order as a walk: the last one
    assert not quick_clean(str(work))
    st = status(store)
    assert st.modified == ["p3/q7/f39"] and not st.added and not st.removed
    (work / "p0/q0/f0").unlink()
    write(work, "p1/q5/new", "n")
    st = status(store)
    assert (st.modified, st.added, st.removed) == (["p3/q7/f39"], ["p1/q5/new"], ["p0/q0/f0"])
    add(store, [str(work)])
    v2 = store.commit("v2")
    d = diff_trees(store.meta, store.meta.tree_of(store.resolve("HEAD~1")), store.meta.tree_of(v2.id))
    assert (sorted(d.modified), sorted(d.added), sorted(d.removed)) == (
        ["p3/q7/f39"], ["p1/q5/new"], ["p0/q0/f0"])
    time.sleep(0.15)
    assert status(store).clean
    assert quick_clean(str(work))


def test_rows_of_a_folder_leaving_memory_early_are_checked_for_racing(
        store: Store, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With room for two rows, folders leave memory during ``add`` and must be checked then.
    The cache's clock is pinned to the files' own times, so "written just now" holds however
    long ``add`` takes (it did not under load when this read the real clock)."""
    monkeypatch.setattr(statcache, "_OPEN_ROWS", 2)
    for d in "abc":
        for i in range(2):
            write(work, f"{d}/f{i}", "v1")
    times = [max(st.st_mtime_ns, st.st_ctime_ns) for st in map(os.stat, work.glob("*/f*"))]
    assert len(times) == 6
    clock = pin_clock(monkeypatch, min(times))  # every file is inside the window
    add(store, [str(work)])
    assert list(StatCache(store.path / "cache" / "stat").paths()) == []
    clock[0] = max(times) + 2_000_000_001  # past the window, even a whole-second filesystem's
    add(store, [str(work)])
    assert len(list(StatCache(store.path / "cache" / "stat").paths())) == 6


def test_status_keeps_the_rows_of_staged_files(store: Store, work: Path) -> None:
    write(work, "a", "a")
    commit_all(store, "v1")
    write(work, "big", os.urandom(200_000))
    time.sleep(0.15)
    add(store, [str(work)])
    assert status(store).staged.added
    assert add(store, [str(work)]).bytes_read == 0, "status dropped a staged file's row"


def test_times_and_inodes_past_2_63_are_kept(store: Store, work: Path) -> None:
    f = FolderFiles("d")
    f.add("a", Stat(1, 5, 7, 0, 6))
    f.add("b", Stat(2, 2**63 + 5, 2**64 - 1, 1, -3))
    f.add("c", Stat(3, -10, 9, 0, 8))
    assert [f.stat(i) for i in range(3)] == [Stat(1, 5, 7, 0, 6), Stat(2, 2**63 + 5, 2**64 - 1, 1, -3),
                                             Stat(3, -10, 9, 0, 8)]
    p = write(work, "future.txt", "x")
    try:
        os.utime(p, ns=(2**63 + 10**15, 2**63 + 10**15))
    except (OverflowError, OSError):
        pytest.skip("this filesystem cannot hold a time after 2262")
    assert add(store, [str(work)]).staged == 1


def _marked(store: Store) -> str | None:
    return StatCache(store.path / "cache" / "stat").clean_head


def test_status_marks_clean_only_while_no_writer_holds_the_store(
        store: Store, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """git's status refreshes its index only when it can take the lock: a writer at work may
    be moving HEAD or the stage. The answer is the same; only the mark waits."""
    import fcntl

    write(work, "a", "a")
    commit = commit_all(store, "v1")
    pin_clock(monkeypatch, time.time_ns() + 10**10)  # every file is older than the cache
    (store.path / "cache" / "stat").unlink()  # no mark yet
    fd = os.open(store.path / "lock", os.O_RDWR)  # another holder (its own open file)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert status(store).clean
        assert _marked(store) is None and not quick_clean(str(work))
    finally:
        os.close(fd)
    assert status(store).clean
    assert _marked(store) == commit.id and quick_clean(str(work))


def test_a_commit_landing_during_status_is_not_marked_from_its_rows(
        store: Store, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rows status compared are HEAD's before the commit: the mark must not name either."""
    from objstore import worktree

    write(work, "a", "a")
    v1 = commit_all(store, "v1")
    pin_clock(monkeypatch, time.time_ns() + 10**10)
    (store.path / "cache" / "stat").unlink()
    compare = worktree.worktree_diff
    landed = []

    def then_a_commit(*args, **kwargs):
        out = compare(*args, **kwargs)
        other = Store(store.path)  # another writer, between the compare and the mark
        write(work, "b", "b")
        landed.append(commit_all(other, "v2").id)
        other.close()
        return out

    monkeypatch.setattr(worktree, "worktree_diff", then_a_commit)
    assert status(store).clean  # what was there when it looked
    assert landed and _marked(store) != v1.id


def test_a_stale_lock_that_cannot_be_removed_is_named_and_the_store_lock_let_go(
        store: Store, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer's lock step that fails must not keep the store's lock (every other writer
    would wait on it); status answers anyway and only skips its mark."""
    import fcntl

    from objstore.errors import DsError

    write(work, "a", "a")
    commit_all(store, "v1")
    pin_clock(monkeypatch, time.time_ns() + 10**10)
    (store.path / "cache" / "stat").unlink()
    odd = store.path / "meta" / "HEAD.lock"
    odd.mkdir()  # not a file: it cannot be unlinked
    os.utime(odd, (time.time() - 3600, time.time() - 3600))

    def lock_is_free() -> bool:
        fd = os.open(store.path / "lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)

    gone = "HEAD.lock is a lock left by a writer that is gone.*remove it by hand"
    with pytest.raises(DsError, match=gone), store.locked():
        pass
    assert lock_is_free() and store._lock_fd is None
    assert status(store).clean  # the answer stands; only the mark is skipped
    assert lock_is_free() and _marked(store) is None
    odd.rmdir()
    assert status(store).clean and _marked(store) is not None
