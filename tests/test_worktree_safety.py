"""Regressions: uncommitted work, links and odd states never lead to loss or a traceback."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from objstore.errors import DirtyWorktree, DsError, FormatError
from objstore.get import get_copy
from objstore.squash import squash
from objstore.store import Store
from objstore.worktree import add, checkout, commit_all, rm, status, worktree_diff

from .conftest import ds, write


def test_checkout_keeps_untracked_file_inside_folder_that_becomes_a_file(store: Store, work: Path) -> None:
    write(work, "a/x", "tracked")
    commit_all(store, "v1")
    (work / "a/x").unlink()
    (work / "a").rmdir()
    write(work, "a", "file a")
    commit_all(store, "v2")
    checkout(store, "HEAD~1")
    write(work, "a/notes.txt", "precious")
    with pytest.raises(DirtyWorktree):
        checkout(store, "main")
    assert (work / "a/notes.txt").read_text() == "precious"


def test_checkout_keeps_untracked_file_where_a_folder_is_needed(store: Store, work: Path) -> None:
    write(work, "keep", "k")
    commit_all(store, "v1")
    write(work, "data/x", "x")
    commit_all(store, "v2")
    checkout(store, "HEAD~1")
    write(work, "data", "my notes")
    with pytest.raises(DirtyWorktree):
        checkout(store, "main")
    assert (work / "data").read_text() == "my notes"
    checkout(store, "main", force=True)
    assert (work / "data/x").read_text() == "x"


@pytest.mark.parametrize("kind", [".dsstore", ".git"])
@pytest.mark.parametrize("force", [False, True])
def test_a_folder_holding_a_repository_is_never_deleted_to_make_room(
        store: Store, work: Path, kind: str, force: bool) -> None:
    """A version holds a file where the folder now holds a nested project (a store of its
    own, or a git repository): checkout refuses, --force included, naming the repository,
    not calling its internals "uncommitted changes"; nothing is removed or written."""
    write(work, "keep", "k")
    write(work, "sub", "a file in v1")
    commit_all(store, "v1")
    (work / "sub").unlink()
    write(work, "sub/data.txt", "inner data")
    commit_all(store, "v2")
    if kind == ".dsstore":
        ds("init", "-q", cwd=work / "sub")
        ds("add", "-q", "data.txt", cwd=work / "sub")
        ds("commit", "-q", "-m", "inner", cwd=work / "sub")
    else:
        write(work, "sub/.git/HEAD", "ref: refs/heads/main\n")
    head = store.head()
    with pytest.raises(DsError) as e:
        checkout(store, "HEAD~1", force=force)
    assert "holding a repository" in str(e.value) and kind in str(e.value)
    assert (work / "sub" / kind).is_dir() and (work / "sub/data.txt").read_text() == "inner data"
    assert store.head() == head
    r = ds("checkout", "--force", "HEAD~1", cwd=work, check=False)
    assert r.returncode == 1 and "never deletes a repository" in r.stderr
    if kind == ".dsstore":
        assert ds("log", "--oneline", cwd=work / "sub").stdout.count("\n") == 1  # its history is whole


def test_checkout_refuses_to_overwrite_an_ignored_file_with_other_bytes(store: Store, work: Path) -> None:
    """Ignored files never show in status, so overwriting one would lose work unseen (git
    deems them expendable; ds does not). Holding the version's bytes, one is no work to lose."""
    write(work, ".dsignore", "*.log\n")
    write(work, "a", "a")
    commit_all(store, "v1")
    write(work, "x.log", "the version's log")
    add(store, [str(work / "x.log")], force=True)
    store.commit("v2")
    checkout(store, "HEAD~1")
    assert not (work / "x.log").exists()
    write(work, "x.log", "my own log")
    with pytest.raises(DirtyWorktree) as e:
        checkout(store, "main")
    assert "x.log" in str(e.value) and (work / "x.log").read_text() == "my own log"
    write(work, "x.log", "the version's log")
    checkout(store, "main")  # the same bytes: nothing to lose
    checkout(store, "HEAD~1")
    write(work, "x.log", "mine again")
    checkout(store, "main", force=True)
    assert (work / "x.log").read_text() == "the version's log"


def test_nothing_is_removed_through_a_linked_parent(store: Store, work: Path, tmp_path: Path) -> None:
    write(work, "keep", "k")
    write(work, "d/f", "f")
    commit_all(store, "v1")
    rm(store, [str(work / "d/f")])
    store.commit("v2")
    checkout(store, "HEAD~1")
    outside = tmp_path / "outside"
    outside.mkdir()
    (work / "d/f").rename(outside / "f")
    (work / "d").rmdir()
    os.symlink(outside, work / "d")
    assert "d/f" in status(store).removed  # behind a link: not in the working folder
    checkout(store, "main", force=True)
    assert (outside / "f").read_text() == "f"
    with pytest.raises(DsError, match="link"):
        add(store, [str(work / "d/f")])


def test_rm_refuses_to_delete_unstaged_changes(store: Store, work: Path) -> None:
    write(work, "f", "v1")
    write(work, "rep", "file")
    commit_all(store, "v1")
    write(work, "f", "work in progress")
    with pytest.raises(DirtyWorktree):
        rm(store, [str(work / "f")])
    assert (work / "f").read_text() == "work in progress"
    (work / "rep").unlink()
    write(work, "rep/new1", "untracked")
    with pytest.raises(DirtyWorktree):
        rm(store, [str(work / "rep")])
    rm(store, [str(work / "rep")], force=True)
    assert (work / "rep/new1").read_text() == "untracked"  # folders are never removed whole
    rm(store, [str(work / "f")], keep=True)
    assert (work / "f").exists()


def test_link_chains_cannot_escape(store: Store, work: Path, tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("secret")
    (work / "a/b").mkdir(parents=True)
    os.symlink("..", work / "a/b/up")
    os.symlink("a/b/up/../../secret.txt", work / "esc")
    commit_all(store, "links")
    out = tmp_path / "copy"
    report = get_copy(store, "HEAD", out)
    assert "esc" in report.links_refused and not os.path.lexists(out / "esc")
    assert os.readlink(out / "a/b/up") == ".."


def test_tag_cannot_shadow_a_branch(store: Store, work: Path) -> None:
    write(work, "f", "v1")
    commit_all(store, "v1")
    for bad in ("main", "HEAD", "@"):
        with pytest.raises(DsError, match="branch name|not a valid"):
            store.tag(bad)
    store.meta.set_ref("refs/tags/dev", store.head())  # even if made by hand
    write(work, "f", "v2")
    v2 = commit_all(store, "v2").id
    store.meta.set_ref("refs/heads/dev", v2)
    assert store.resolve("dev") == v2


def test_squash_onto_current_branch_respects_the_stage(store: Store, work: Path) -> None:
    write(work, "a", "a")
    commit_all(store, "v1")
    write(work, "b", "b")
    commit_all(store, "v2")
    write(work, "c", "c")
    add(store, [str(work / "c")])
    squash(store, ["HEAD~1"], "s", branch="main")  # c is in neither version: carried, as git does
    assert "c" in status(store).staged.added and (work / "c").read_text() == "c"


def test_rewrite_keeping_mtime_is_seen(store: Store, work: Path) -> None:
    p = write(work, "x", "AAAA")
    commit_all(store, "v1")
    time.sleep(0.15)
    assert status(store).clean
    st = os.stat(p)
    p.write_text("BBBB")
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # what cp -p / rsync -t do
    time.sleep(0.15)
    assert status(store).modified == ["x"]


def test_working_folder_diff_finds_renames(store: Store, work: Path) -> None:
    write(work, "old.txt", "same content")
    commit_all(store, "v1")
    (work / "old.txt").rename(work / "new.txt")
    d, _, _ = worktree_diff(store, renames=True)
    assert d.as_json()["renamed"] == [{"from": "old.txt", "to": "new.txt"}]


def test_nested_store_is_skipped_not_fatal(store: Store, work: Path) -> None:
    write(work, "a", "a")
    Store.init(work / "sub")
    write(work, "sub/s", "s")
    report = add(store, [str(work)])
    assert "sub/.dsstore" in report.skipped
    store.commit("v1")
    assert sorted(p for p, _ in store.meta.walk(store.head_tree())) == ["a", "sub/s"]


def test_refused_link_does_not_leave_the_other_versions_file(store: Store, work: Path) -> None:
    os.symlink("/etc/hostname", work / "l")
    commit_all(store, "v1")
    (work / "l").unlink()
    write(work, "l", "regular")
    commit_all(store, "v2")
    report = checkout(store, "HEAD~1")
    assert report.links_refused == ["l"] and not os.path.lexists(work / "l")


def test_dash_c_through_a_linked_folder(tmp_path: Path) -> None:
    real = tmp_path / "real"
    ds("init", str(real), cwd=tmp_path)
    os.symlink(real, tmp_path / "link")
    write(real, "a", "a")
    ds("-C", str(tmp_path / "link"), "add", "a", cwd=tmp_path)
    ds("add", str(tmp_path / "link" / "a"), cwd=real)


def test_damaged_metadata_is_a_clean_error(store: Store, work: Path) -> None:
    write(work, "a", "a")
    commit_all(store, "v1")
    folder = store.meta.read_folder(store.head_tree())
    assert folder.files
    blob = next(i.id for i in store.meta.repo[store.head_tree()])
    os.unlink(work / ".dsstore/meta/objects" / str(blob)[:2] / str(blob)[2:])
    fresh = Store.open(work)
    with pytest.raises(FormatError, match="missing"):
        get_copy(fresh, "HEAD", work.parent / "out")
    (work / ".dsstore/STAGE").write_text("tree zzzz\nbase -\n")
    from objstore.maintenance import fsck

    assert not fsck(fresh).ok
    proc = ds("status", cwd=work, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("Error: ") and "Traceback" not in proc.stderr


def test_get_into_the_store_is_refused(store: Store, work: Path) -> None:
    write(work, "a", "a")
    commit_all(store, "v1")
    with pytest.raises(DsError, match="inside the store"):
        get_copy(store, "HEAD", work / ".dsstore/packs", overwrite=True)
    assert list((work / ".dsstore/packs").glob("*/*.pack"))


def test_quick_status_never_hides_a_change(store: Store, work: Path) -> None:
    from objstore.quickstatus import quick_clean

    def reset() -> None:
        checkout(store, "HEAD", force=True)
        for extra in ("new", "d/e", "d/.dsstore"):
            if os.path.lexists(work / extra):
                shutil.rmtree(work / extra) if (work / extra).is_dir() else os.unlink(work / extra)
        if not (work / "a").is_file() or (work / "a").is_symlink():
            if os.path.lexists(work / "a"):
                os.unlink(work / "a")
            checkout(store, "HEAD", force=True)
        os.chmod(work / "d/b", 0o644)
        store.clear_stage()
        time.sleep(0.15)
        assert status(store).clean
        assert quick_clean(str(work)), "a proved-clean folder takes the fast path"

    def same_size_same_mtime() -> None:
        st = os.stat(work / "a")
        write(work, "a", "AAAB")
        os.utime(work / "a", ns=(st.st_atime_ns, st.st_mtime_ns))

    write(work, "a", "AAAA")
    write(work, "d/b", "BBBB", mode=0o644)
    commit_all(store, "v1")
    changes = [
        same_size_same_mtime,
        lambda: os.chmod(work / "d/b", 0o755),
        lambda: write(work, "new", "n"),
        lambda: write(work, "d/e/new", "n"),
        lambda: os.unlink(work / "a"),
        lambda: (os.unlink(work / "a"), os.symlink("d/b", work / "a")),
        lambda: (os.unlink(work / "a"), os.mkfifo(work / "a")),
    ]
    for change in changes:
        reset()
        change()
        assert not quick_clean(str(work))
        assert not status(store).clean
    reset()
    (work / "d/.dsstore").mkdir()  # a nested store: the full status reports it as skipped
    assert not quick_clean(str(work))
    assert status(store).skipped == ["d/.dsstore"]
    reset()
    write(work, "a", "staged")
    add(store, [str(work / "a")])
    write(work, "a", "AAAA")  # the folder equals HEAD again, but something is staged
    assert not quick_clean(str(work))
    assert not status(store).clean
    reset()
    write(work, "other", "x")
    commit_all(store, "v2")  # HEAD moved: the old proof no longer counts
    assert not quick_clean(str(work))


def test_quick_status_applies_dsignore_and_the_cli_takes_the_same_path(store: Store, work: Path) -> None:
    from objstore.quickstatus import quick_clean

    write(work, ".dsignore", "*.tmp\n")
    write(work, "d/a", "A")
    commit_all(store, "v1")
    write(work, "d/scratch.tmp", "ignored")
    time.sleep(0.15)
    assert status(store).clean
    assert quick_clean(str(work))
    assert ds("status", cwd=work).stdout == "On branch main\nNothing changed.\n"
    assert ds("-C", str(work / "d"), "status", cwd=work.parent).stdout == "On branch main\nNothing changed.\n"
    write(work, "d/a", "B")
    assert not quick_clean(str(work))
    assert "modified  d/a" in ds("status", cwd=work).stdout
    assert "modified  d/a" in ds("-C", str(work), "status", cwd=work.parent).stdout
