"""`ds status` after a change compares only the folders that may differ from HEAD.

Once a full status proves the folder equal to HEAD, the stat cache's clean mark stays while
rows change: a folder whose rows changed is named in ``off_head``, and every other folder's
rows are still HEAD's files. A later status then compares only the folders whose stat data
differ from their rows, and those named (``quickstatus.changed_folders``). These tests run
random edits and check, after each, that this answer is the full comparison's and the
truth's, and that the shortcut was really taken.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from objstore import quickstatus, statcache, worktree
from objstore.quickstatus import changed_folders, quick_clean
from objstore.statcache import StatCache
from objstore.store import Store
from objstore.worktree import add, commit_all, rm, status, worktree_diff

from .conftest import write

FOLDERS = ["", "a", "a/b", "a/b/c", "d", "e/f"]


def _files(work: Path) -> dict[str, bytes]:
    """Every versioned file's bytes on disk, by path."""
    out = {}
    for root, dirs, names in os.walk(work):
        dirs[:] = [d for d in dirs if d != ".dsstore"]
        for name in names:
            p = Path(root, name)
            out[p.relative_to(work).as_posix()] = p.read_bytes()
    return out


class _Edits:
    """Random edits of a working folder; every write gets an mtime of its own, so a change
    never hides behind an equal timestamp (the racy rule is tested elsewhere)."""

    def __init__(self, work: Path, seed: int):
        self.work, self.rng = work, random.Random(seed)
        self.tick = time.time_ns() - 10**12  # in the past: no write is inside the racy window

    def _stamp(self, path: Path) -> None:
        self.tick += 1_000_000_007  # never a whole second: the fine window applies
        os.utime(path, ns=(self.tick, self.tick))

    def put(self, rel: str, data: bytes) -> None:
        """Write ``rel``, unless a file stands where one of its folders would be, or a folder
        where it would be."""
        if not self._blocked(rel) and not (self.work / rel).is_dir():
            self._stamp(write(self.work, rel, data))

    def _blocked(self, rel: str) -> bool:
        parts = rel.split("/")
        return any((self.work / "/".join(parts[:k])).is_file() for k in range(1, len(parts)))

    def files(self) -> list[str]:
        return sorted(_files(self.work))

    def one(self, committed: dict[str, bytes]) -> str:
        """Make one random edit; returns what it was."""
        rng, files = self.rng, self.files()
        kind = rng.choice(["same-size", "resize", "touch", "add", "add-folder", "remove", "remove-folder",
                           "file-to-folder", "folder-to-file", "move", "restore", "empty-folder"])
        pick = rng.choice(files) if files else None
        if pick is None:
            kind = "add"
        if kind == "same-size":
            data = (self.work / pick).read_bytes()
            self.put(pick, bytes(b ^ 1 for b in data) if data else b"x")
        elif kind == "resize":
            self.put(pick, (self.work / pick).read_bytes() + b"more")
        elif kind == "touch":
            self._stamp(self.work / pick)
        elif kind == "add":
            self.put(f"{rng.choice(FOLDERS + ['new', 'a/new'])}/n{rng.randrange(10**6)}".lstrip("/"), b"new")
        elif kind == "add-folder":
            self.put(f"{rng.choice(FOLDERS)}/fresh{rng.randrange(1000)}/deep/x".lstrip("/"), b"deep")
        elif kind == "remove":
            (self.work / pick).unlink()
        elif kind == "remove-folder":
            folder = pick.rpartition("/")[0]
            if folder:
                shutil.rmtree(self.work / folder)
        elif kind == "file-to-folder":
            (self.work / pick).unlink()
            self.put(f"{pick}/inside", b"was a file")
        elif kind == "folder-to-file":
            folder = pick.rpartition("/")[0]
            if folder:
                shutil.rmtree(self.work / folder)
                self.put(folder, b"was a folder")
        elif kind == "move":
            dest = f"{rng.choice(FOLDERS)}/moved{rng.randrange(1000)}".lstrip("/")
            if not (self.work / dest).exists() and not self._blocked(dest):
                (self.work / dest).parent.mkdir(parents=True, exist_ok=True)
                os.rename(self.work / pick, self.work / dest)
        elif kind == "restore" and committed:
            path = rng.choice(sorted(committed))
            if (self.work / path).is_dir():
                shutil.rmtree(self.work / path)
            self.put(path, committed[path])
        elif kind == "empty-folder":
            empty = f"{rng.choice(FOLDERS)}/empty{rng.randrange(100)}/x".lstrip("/")
            if not self._blocked(empty):
                (self.work / empty).parent.mkdir(parents=True, exist_ok=True)
        return kind


def _marked(store: Store, work: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[int], _Edits]:
    """One file ``x`` in each folder, committed, and the clean mark made by a status; the
    stat cache's clock, pinned past every file's times (advance it before each status)."""
    clock = [time.time_ns() + 10**11]
    monkeypatch.setattr(statcache, "time", SimpleNamespace(time_ns=lambda: clock[0]))
    edits = _Edits(work, 0)
    for folder in FOLDERS:
        edits.put(f"{folder}/x".lstrip("/"), b"one")
    commit_all(store, "v1")
    assert status(store).clean
    return clock, edits


def _expected(committed: dict[str, bytes], now: dict[str, bytes]) -> tuple[set, set, set]:
    added = set(now) - set(committed)
    removed = set(committed) - set(now)
    modified = {p for p in set(now) & set(committed) if now[p] != committed[p]}
    return added, modified, removed


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_status_after_changes_compares_only_changed_folders_and_agrees_with_the_full_one(
        store: Store, work: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    clock = [time.time_ns() + 10**11]  # the cache is written after every file's times
    monkeypatch.setattr(statcache, "time", SimpleNamespace(time_ns=lambda: clock[0]))
    taken: list[set[str] | None] = []
    real = worktree._changed_folders

    def spy(*args):
        taken.append(real(*args))
        return taken[-1]

    monkeypatch.setattr(worktree, "_changed_folders", spy)
    monkeypatch.setattr(quickstatus, "SPLIT_FOLDERS", 2)  # the few folders here are shared out too
    edits = _Edits(work, seed)
    for i, folder in enumerate(FOLDERS):
        for j in range(5):
            edits.put(f"{folder}/f{i}{j}".lstrip("/"), f"file {i} {j}".encode() * (j + 1))
    commit_all(store, "v1")
    committed = _files(work)
    assert status(store).clean  # the mark: HEAD's files, proven
    for step in range(60):
        clock[0] += 10**9
        if step % 20 == 19:  # a new version: the mark is HEAD's again after a clean status
            add(store, [str(work)])
            store.commit(f"v{step}")
            committed = _files(work)
            clock[0] += 10**9
            assert status(store).clean
            assert taken[-1] is not None, "the mark moved with the commit: no full comparison"
            assert quick_clean(str(work))
            continue
        kind = edits.one(committed)
        if step % 5 == 2 and (work / "a").is_dir() and not (work / "a").is_symlink():
            add(store, [str(work / "a")])  # something staged: its folders are compared too
            kind += " (a staged)"
        tracked = [p for p, _e in store.meta.walk(store.staged_tree()) if (work / p).is_file()]
        if step % 5 == 3 and tracked:  # a removal staged, the file kept: no row changes
            rm(store, [str(work / edits.rng.choice(tracked))], keep=True)
            kind += " (rm --cached)"
        cache = StatCache(store.path / "cache" / "stat")
        alone = changed_folders(str(work), cache, workers=1)
        assert changed_folders(str(work), cache, workers=3) == alone, f"after {kind}: shared out, the same"
        st = status(store)
        clock[0] += 10**9
        d, _result, _cache = worktree_diff(store, store.staged_tree(), renames=True)
        assert (st.added, st.modified, st.removed, st.renamed) == (
            sorted(d.added), sorted(d.modified), sorted(d.removed), sorted(d.renamed)), kind
        if store.staged_tree() != store.head_tree():
            continue  # against the stage: the full comparison above is the truth
        added, modified, removed = _expected(committed, _files(work))
        assert set(st.added) | {b for _a, b in st.renamed} == added, kind
        assert set(st.modified) == modified, kind
        assert set(st.removed) | {a for a, _b in st.renamed} == removed, kind
        if not st.clean:
            assert not quick_clean(str(work)), f"after {kind}: a change must never pass for clean"
    shortcuts = [only for only in taken if only is not None]
    assert len(shortcuts) >= 55, "once marked clean, a status after a change takes the shortcut"
    assert any(len(only) < len(FOLDERS) for only in shortcuts), "and compares fewer folders than all"


def test_a_modified_file_keeps_its_folder_off_the_mark_until_a_clean_status(
        store: Store, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock, edits = _marked(store, work, monkeypatch)
    head = store.head()
    cache_path = store.path / "cache" / "stat"
    assert StatCache(cache_path).clean_head == head and not StatCache(cache_path).off_head

    edits.put("a/b/x", b"two")
    clock[0] += 10**9
    assert status(store).modified == ["a/b/x"]
    cache = StatCache(cache_path)
    # the modified file's new row is a proven fact, but not HEAD's file: its folder is named
    assert cache.clean_head == head and cache.off_head == {"a/b"}
    assert changed_folders(str(work), cache) == {"a/b"}
    assert not quick_clean(str(work)), "the row matches the disk, yet the folder is not HEAD's"

    edits.put("a/b/x", b"one")  # back as HEAD has it
    clock[0] += 10**9
    assert status(store).clean
    cache = StatCache(cache_path)
    assert cache.clean_head == head and not cache.off_head
    assert quick_clean(str(work))


def test_the_mark_and_its_folders_survive_a_save_and_a_damaged_one_vouches_for_nothing(
        tmp_path: Path) -> None:
    import marshal

    path = tmp_path / "stat"
    cache = StatCache(path)
    cache.mark_clean("c" * 40)
    cache.put("a/f", statcache_stat(), b"h" * 16)
    cache.save()
    again = StatCache(path)
    assert again.clean_head == "c" * 40 and again.off_head == {"a"}
    tag, written, blobs, _mark = marshal.loads(path.read_bytes())
    path.write_bytes(marshal.dumps((tag, written, blobs, ("c" * 40, "not a list"))))
    assert StatCache(path).clean_head is None
    path.write_bytes(marshal.dumps((tag, written, blobs, "c" * 40)))  # as an older version writes it
    older = StatCache(path)
    assert older.clean_head == "c" * 40 and not older.off_head


def statcache_stat():
    from objstore.scan import Stat

    old = time.time_ns() - 10**10
    return Stat(1, old, 2, 0, old)


def test_a_dsignore_takes_the_full_comparison_and_the_scanner_says_clean(
        store: Store, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock, edits = _marked(store, work, monkeypatch)
    edits.put("d/.dsignore", b"*.tmp\n")
    edits.put("d/junk.tmp", b"ignored")
    assert changed_folders(str(work), StatCache(store.path / "cache" / "stat")) is None
    clock[0] += 10**9
    assert quickstatus.quick_look(str(work)) == (False, None)
    assert status(store).added == ["d/.dsignore"]
    add(store, [str(work)])
    store.commit("v2")
    clock[0] += 10**9
    assert status(store).clean
    assert quickstatus.quick_look(str(work)) == (True, None), "the scanner applies the rules: clean"
    edits.put("d/x", b"two")
    assert quickstatus.quick_look(str(work)) == (False, None)


def test_ds_status_after_changes_in_a_row_each_shows_what_is_there_now(work: Path) -> None:
    """The walk a plain `ds status` makes before typer is imported is handed to the status
    command; each run (a process) shows the folder as it is then, in every form."""
    from .conftest import ds

    ds("init", "-q", cwd=work)
    for folder in FOLDERS:
        write(work, f"{folder}/x".lstrip("/"), f"in {folder or 'top'}")
    ds("add", ".", cwd=work)
    ds("commit", "-q", "-m", "v1", cwd=work)
    time.sleep(0.15)  # past the racy window: the clean status marks the cache
    assert "Nothing changed." in ds("status", cwd=work).stdout
    write(work, "a/b/x", "edited")
    write(work, "d/new", "new")
    time.sleep(0.15)
    lines = ds("status", "--porcelain", cwd=work).stdout.splitlines()
    assert lines == [" M a/b/x", "?? d/new"]
    full = ds("status", cwd=work).stdout
    assert "modified  a/b/x" in full and "added     d/new" in full
    in_a = ds("-C", str(work / "a"), "status", cwd=work).stdout  # paths from a/, as git's
    assert "modified  b/x" in in_a and "added     ../d/new" in in_a
    write(work, "a/b/x", "in a/b")  # back as HEAD has it
    (work / "d" / "new").unlink()
    time.sleep(0.15)
    assert ds("status", "-s", cwd=work).stdout == ""
    assert "Nothing changed." in ds("status", cwd=work).stdout
    (work / "e" / "f" / "x").unlink()
    assert ds("status", "--porcelain", cwd=work).stdout.splitlines() == [" D e/f/x"]


def test_the_walk_handed_to_the_status_command_is_taken_once(work: Path, monkeypatch) -> None:
    from objstore_cli import main as cli_main

    walks: list[str] = []
    monkeypatch.setattr(quickstatus, "quick_look", lambda start: walks.append(start) or (False, {"new"}))
    monkeypatch.setattr(cli_main.Walked, "start", str(work))
    monkeypatch.setattr(cli_main.Walked, "folders", {"handed"})
    assert cli_main.quick_look(str(work)) == (False, {"handed"}) and walks == []
    assert cli_main.quick_look(str(work)) == (False, {"new"}) and walks == [str(work)], "later: a new walk"


@pytest.mark.parametrize("seed", [4, 5])
def test_add_after_changes_stages_what_a_full_add_stages(
        store: Store, work: Path, monkeypatch: pytest.MonkeyPatch, seed: int) -> None:
    """`ds add` looks only at the folders that may differ from HEAD (as the status does):
    after each random edit its stage is the one an add that scans everything makes, and
    holds every file on disk with its content's id."""
    clock = [time.time_ns() + 10**11]
    monkeypatch.setattr(statcache, "time", SimpleNamespace(time_ns=lambda: clock[0]))
    monkeypatch.setattr(quickstatus, "SPLIT_FOLDERS", 2)
    taken: list[set[str] | None] = []
    real = worktree._folders_to_add
    monkeypatch.setattr(worktree, "_folders_to_add", lambda *a: taken.append(real(*a)) or taken[-1])
    edits = _Edits(work, seed)
    for i, folder in enumerate(FOLDERS):
        for j in range(4):
            edits.put(f"{folder}/f{i}{j}".lstrip("/"), f"file {i} {j}".encode() * (j + 1))
    commit_all(store, "v1")
    committed = _files(work)
    assert status(store).clean

    def staged() -> list:
        return list(store.meta.walk(store.staged_tree()))

    for step in range(30):
        clock[0] += 10**9
        kind = edits.one(committed)
        part = FOLDERS[step % len(FOLDERS)] if step % 2 else ""  # every other time, one folder
        target = work / part if (work / part).is_dir() and not (work / part).is_symlink() else work
        before = store.staged_tree()
        add(store, [str(target)])
        fast = staged()
        if before == store.head_tree():
            store.clear_stage()
        else:  # an add onto something staged already: the full add starts from it too
            store.set_stage(before)
        with monkeypatch.context() as m:
            m.setattr(worktree, "_folders_to_add", lambda *a: None)
            add(store, [str(target)])
        assert fast == staged(), (kind, part)
        against_head = worktree.working_diff(store)  # with a stage: the folders it touched are off the mark
        d, _result, _cache = worktree_diff(store, None, renames=True)
        assert (sorted(against_head.added), sorted(against_head.modified), sorted(against_head.removed),
                sorted(against_head.renamed)) == (sorted(d.added), sorted(d.modified), sorted(d.removed),
                                                  sorted(d.renamed)), kind
        if target == work:
            disk = _files(work)
            assert {p for p, _e in fast} == set(disk), kind
            assert all(e.hash == store.algo.digest(disk[p]) for p, e in fast), kind
        else:
            add(store, [str(work)])  # the rest too, so that a commit below holds it all
            disk = _files(work)
        clock[0] += 10**9
        if step % 10 == 9:  # a new version, marked after a clean status
            store.commit(f"v{step}")
            committed = disk
            clock[0] += 10**9
            assert status(store).clean
        elif step % 3:
            store.clear_stage()  # else the next add finds this one's stage
    assert sum(only is not None for only in taken) >= 25, "an add after a change takes the shortcut"
    assert any(only is not None and len(only) < len(FOLDERS) for only in taken)


def test_a_commit_moves_the_mark_and_lists_off_it_what_it_changed(
        store: Store, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A commit does not touch the working folder: the mark follows HEAD, with the folders
    the new version changed listed off it, so `ds status` after `ds commit` compares those
    only, and still sees a file the commit stopped tracking (`ds rm --cached`)."""
    clock, edits = _marked(store, work, monkeypatch)
    cache_path = store.path / "cache" / "stat"

    edits.put("a/b/x", b"two")
    clock[0] += 10**9
    v2 = commit_all(store, "v2")
    cache = StatCache(cache_path)
    assert cache.clean_head == v2.id and cache.off_head == {"a/b"}
    clock[0] += 10**9
    assert status(store).clean and quick_clean(str(work))

    rm(store, [str(work / "d" / "x")], keep=True)  # untracked from now on, kept on disk
    clock[0] += 10**9
    v3 = store.commit("v3")
    assert StatCache(cache_path).clean_head == v3.id and "d" in StatCache(cache_path).off_head
    clock[0] += 10**9
    st = status(store)
    assert st.added == ["d/x"] and not st.modified and not st.removed

    (work / "d" / "x").unlink()
    edits.put("e/f/x", b"three")
    add(store, [str(work)])
    clock[0] += 10**9
    v4 = store.amend("v4")
    assert StatCache(cache_path).clean_head == v4.id
    clock[0] += 10**9
    assert status(store).clean
    assert [p for p, _e in store.meta.walk(store.head_tree())] == [
        "x", "a/x", "a/b/x", "a/b/c/x", "e/f/x"]


def test_folders_the_scan_never_enters_stay_out_of_the_shortcut_too(
        store: Store, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store being made at the top and a checkout's temp name are walked past by the
    quick walk but never scanned: a status after a change lists them no more than the
    full comparison does."""
    clock, edits = _marked(store, work, monkeypatch)
    edits.put(".dsstore.init-99/half", b"a store being made")
    edits.put("a/.ds-tmp-5-6/inner", b"a temp name")
    edits.put("a/b/x", b"two")
    clock[0] += 10**9
    only = worktree._changed_folders(store, store.head(), StatCache(store.path / "cache" / "stat"))
    assert only is not None and {".dsstore.init-99", "a/.ds-tmp-5-6"} <= only
    st = status(store)
    d, _result, _cache = worktree_diff(store, store.staged_tree(), renames=True)
    assert (st.added, st.modified, st.removed) == (sorted(d.added), sorted(d.modified), sorted(d.removed))
    assert st.modified == ["a/b/x"] and not st.added and not st.removed
    # such a folder named to `ds add` is taken as named, as the full add always did
    assert worktree._folders_to_add(store, [".dsstore.init-99"], StatCache(store.path / "cache" / "stat")) \
        is None
    assert worktree._folders_to_add(store, ["a"], StatCache(store.path / "cache" / "stat")) is not None
