"""Regressions from review: remotes, merges and SDK records (folder remotes)."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from objstore.errors import DsError
from objstore.merge import MergeConflict, merge
from objstore.remote import Remote, clone, pull
from objstore.store import Store
from objstore.worktree import checkout, commit_all, status

from .conftest import read_tree, write


def origin(store: Store, url: Path) -> Store:
    store.set_config(replace(store.config, remote="origin", remotes={"origin": {"url": str(url)}}))
    return store


def test_pushes_to_two_urls_are_tracked_apart(tmp_path: Path) -> None:
    a = Store.init(tmp_path / "a")
    write(a.worktree, "f", "x")
    commit_all(a, "v1")
    Remote(a, str(tmp_path / "rA")).push(["main"])
    Remote(a, str(tmp_path / "rB")).push(["main"])
    b, _ = clone(str(tmp_path / "rB"), str(tmp_path / "b"))
    assert read_tree(b.worktree) == read_tree(a.worktree)


def test_a_renamed_remote_forgets_the_old_one(tmp_path: Path) -> None:
    a = origin(Store.init(tmp_path / "a"), tmp_path / "rC")
    write(a.worktree, "f", "x")
    commit_all(a, "v1")
    Remote(a).push()
    origin(a, tmp_path / "rD")
    t = Remote(a).push()
    assert t.chunks == 1 and t.meta_packs == 1
    b, _ = clone(str(tmp_path / "rD"), str(tmp_path / "b"))
    assert read_tree(b.worktree) == read_tree(a.worktree)


def _two_clones(tmp_path: Path) -> tuple[Store, Store]:
    a = origin(Store.init(tmp_path / "a"), tmp_path / "r")
    write(a.worktree, "a", "file a")
    write(a.worktree, "keep", "k")
    commit_all(a, "base")
    Remote(a).push()
    b, _ = clone(str(tmp_path / "r"), str(tmp_path / "b"))
    return a, b


def test_merge_takes_their_file_turned_folder(tmp_path: Path) -> None:
    a, b = _two_clones(tmp_path)
    os.unlink(b.worktree / "a")
    write(b.worktree, "a/y", "y")
    commit_all(b, "a becomes a folder")
    Remote(b).push()
    write(a.worktree, "keep", "changed")
    commit_all(a, "other change")
    pull(a)
    assert read_tree(a.worktree)["a/y"] == (b"y", False)
    assert status(a).clean


def test_file_against_folder_is_a_conflict(tmp_path: Path) -> None:
    a, b = _two_clones(tmp_path)
    write(b.worktree, "n", "theirs")
    commit_all(b, "file n")
    Remote(b).push()
    write(a.worktree, "n/p", "mine")
    commit_all(a, "folder n")
    Remote(a).attach().fetch()
    with pytest.raises(MergeConflict):
        merge(a, "refs/remotes/origin/main")
    assert (a.worktree / "n/p").read_text() == "mine"


def test_checkout_folder_becomes_file(store: Store, work: Path) -> None:
    write(work, "n/p", "p")
    v1 = commit_all(store, "v1").id
    os.unlink(work / "n/p")
    (work / "n").rmdir()
    write(work, "n", "file")
    v2 = commit_all(store, "v2").id
    checkout(store, v1)
    checkout(store, v2)
    assert (work / "n").read_text() == "file"


def test_clone_choices_and_failures(tmp_path: Path) -> None:
    a = Store.init(tmp_path / "a")
    write(a.worktree, "f", "x")
    commit_all(a, "v1")
    a.meta.repo.branches.local.create("master", a.meta.repo[a.head()])
    a.tag("v1")
    Remote(a, str(tmp_path / "r")).push(["master", "v1"])
    with pytest.raises(DsError):
        clone(str(tmp_path / "r"), str(tmp_path / "c"), rev="nosuch")
    assert not (tmp_path / "c").exists()
    c, _ = clone(str(tmp_path / "r"), str(tmp_path / "c"))  # the only branch
    assert c.meta.head_branch() == "master"
    d, _ = clone(str(tmp_path / "r"), str(tmp_path / "d"), rev="v1")
    assert d.meta.head_branch() is None and d.head() == a.head()
    (tmp_path / "r" / "refs" / "heads" / "bad").write_text("garbage\n")
    e, t = clone(str(tmp_path / "r"), str(tmp_path / "e"))  # one bad ref blocks nobody
    assert any("refs/heads/bad" in w and "does not hold a version id" in w for w in t.warnings)
    assert "refs/remotes/origin/bad" not in e.meta.repo.references


def test_pull_into_a_new_store(tmp_path: Path) -> None:
    a = origin(Store.init(tmp_path / "a"), tmp_path / "r")
    write(a.worktree, "f", "x")
    commit_all(a, "v1")
    Remote(a).push()
    fresh = origin(Store.init(tmp_path / "fresh"), tmp_path / "r")
    pull(fresh)
    assert read_tree(fresh.worktree) == read_tree(a.worktree) and fresh.meta.head_branch() == "main"


def test_published_state_and_new_versions_reach_other_machines(tmp_path: Path, monkeypatch) -> None:
    from objstore import Dataset

    remote = str(tmp_path / "remote")
    monkeypatch.setenv("DSSTORE_REMOTE", remote)
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "one" / ".dsstore"))
    write(tmp_path / "data", "f1", "1")
    v1 = Dataset.create(dataset_name="cats", dataset_project="p")
    v1.add_files(tmp_path / "data")
    v1.upload()
    v1.finalize()
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "two" / ".dsstore"))
    assert Dataset.get(dataset_project="p", dataset_name="cats").id == v1.id
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "one" / ".dsstore"))
    v1.publish()
    v2 = Dataset.create(dataset_name="cats", dataset_project="p", parent_datasets=[v1.id])
    v2.upload()
    v2.finalize()
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "two" / ".dsstore"))
    assert Dataset.get(dataset_project="p", dataset_name="cats").id == v2.id
    assert Dataset.get(dataset_project="p", dataset_name="cats", only_published=True).id == v1.id


def test_nested_remote_options_survive_the_config_file(tmp_path) -> None:
    """s3fs takes nested options (config_kwargs, client_kwargs): saved as TOML tables, read back equal."""
    import dataclasses

    from objstore.store import Store

    work = tmp_path / "w"
    work.mkdir()
    options = {"client_kwargs": {"region_name": "eu-west-1"},
               "config_kwargs": {"s3": {"addressing_style": "path"}, "retries": {"max_attempts": 5}},
               "anon": False, "block_size": 5242880, "fixed_upload_size": 1.5, "tags": ["a", "b"],
               "profile": "équipe-😀"}  # outside the BMP: JSON's surrogate escapes are not TOML
    with Store.init(work) as store:
        remotes = {"origin": {"url": str(tmp_path / "remote"), "options": options}}
        store.set_config(dataclasses.replace(store.config, remotes=remotes))
    with Store.open(work) as store:
        assert store.config.remotes["origin"]["options"] == options


def test_a_killed_writer_leaves_no_lock_that_blocks_the_next(tmp_path) -> None:
    """A push killed inside a folder remote's ref update, or a commit killed inside libgit2's
    ref update, left a lock file; every later push or commit then failed."""

    from objstore.remote import Remote
    from objstore.store import Store
    from objstore.worktree import commit_all

    from .conftest import write

    work = tmp_path / "w"
    work.mkdir()
    remote_dir = tmp_path / "remote"
    with Store.init(work) as store:
        write(work, "a", "1")
        commit_all(store, "v1")
        Remote(store, str(remote_dir)).push()
        # what a SIGKILL at the wrong moment leaves behind: the folder remote's ref lock,
        # and libgit2's lock of the local branch, the next command run at once
        (remote_dir / "refs/heads/main.lock").write_text("")
        local_lock = store.meta.path / "refs/heads/main.lock"
        local_lock.write_text("")
        write(work, "a", "2")
        v2 = commit_all(store, "v2").id
        assert not local_lock.exists()
        Remote(store, str(remote_dir)).push()
        assert (remote_dir / "refs/heads/main").read_text().strip() == v2


def test_fsck_after_a_fetch_counts_the_new_versions_chunks_on_the_remote(tmp_path: Path) -> None:
    """A fetch brings refs and metadata, not file bytes: the chunks of what it fetched are
    on the remote, which `ds fsck` must know (it reported them lost, and exited 1)."""
    from objstore.maintenance import fsck

    from .test_remote import make_store

    url = (tmp_path / "remote").as_uri()
    a = make_store(tmp_path / "a", url, {})
    write(a.worktree, "x", os.urandom(3000))
    commit_all(a, "v1")
    Remote(a).push()
    b, _t = clone(url, str(tmp_path / "b"))
    write(a.worktree, "y", os.urandom(3000))
    commit_all(a, "v2")
    Remote(a).push()
    Remote(b).fetch()
    report = fsck(Store(b.path))
    assert report.ok, report.problems
    assert report.remote_only == 1


def test_a_file_holding_the_versions_bytes_is_no_work_a_checkout_would_lose(tmp_path: Path) -> None:
    """What a checkout or pull killed part-way left (files of the version it was writing)
    does not stop the next one; a file with other bytes still does, and is kept."""
    from objstore.errors import DirtyWorktree

    s = Store.init(tmp_path / "s")
    write(s.worktree, "a", b"first")
    commit_all(s, "v1")
    v1 = s.head()
    write(s.worktree, "d/b", b"the new file")
    write(s.worktree, "c", b"x" * 5000)
    write(s.worktree, "a", b"first, then more")
    commit_all(s, "v2")
    v2 = s.head()
    checkout(s, v1)
    assert not (s.worktree / "d").exists()
    write(s.worktree, "d/b", b"the new file")  # as the killed checkout left it
    write(s.worktree, "a", b"first, then more")  # a tracked file, already v2's
    write(s.worktree, "c", b"y" * 5000)  # the same size, other bytes: the user's
    with pytest.raises(DirtyWorktree, match="c"):
        checkout(s, v2)
    assert (s.worktree / "c").read_bytes() == b"y" * 5000
    (s.worktree / "c").unlink()
    checkout(s, v2)
    assert s.head() == v2
    assert {p: data for p, (data, _x) in read_tree(s.worktree).items()} == {
        "a": b"first, then more", "d/b": b"the new file", "c": b"x" * 5000}


def test_a_file_cut_short_by_a_killed_checkout_is_no_work_to_lose(tmp_path: Path) -> None:
    """In a folder it made itself a checkout writes files under their own names, so a kill
    leaves the first bytes of a version's file there: writing the whole over it loses no
    byte. Fewer bytes that are not its start, or the start with more after it, are the
    user's, refused and kept."""
    from objstore.errors import DirtyWorktree

    s = Store.init(tmp_path / "s")
    write(s.worktree, "a", b"first")
    commit_all(s, "v1")
    v1 = s.head()
    big = bytes(range(256)) * 8000  # 2 MB: several chunks
    write(s.worktree, "d/big", big)
    write(s.worktree, "d/small", b"the new file")
    write(s.worktree, "d/empty-yet", b"content")
    commit_all(s, "v2")
    v2 = s.head()
    checkout(s, v1)
    write(s.worktree, "d/big", big[:1_500_000])  # cut short inside its second chunk or later
    write(s.worktree, "d/small", b"the new")
    write(s.worktree, "d/empty-yet", b"")  # created, killed before the first write
    checkout(s, v2)
    assert {p: data for p, (data, _x) in read_tree(s.worktree).items()} == {
        "a": b"first", "d/big": big, "d/small": b"the new file", "d/empty-yet": b"content"}
    checkout(s, v1)
    for mine in (b"the old", b"the new file, and more", big[:1_000_000] + b"!"):
        target = "d/big" if mine.startswith(big[:10]) else "d/small"
        write(s.worktree, target, mine)
        with pytest.raises(DirtyWorktree, match=target):
            checkout(s, v2)
        assert (s.worktree / target).read_bytes() == mine
        (s.worktree / target).unlink()


def test_a_squash_stopped_before_its_branch_moves_leaves_head_on_the_branch(tmp_path: Path,
                                                                            monkeypatch) -> None:
    """As a merge: the squashed version's files are written, then the branch moves in one
    ref update; stopped just before it, HEAD is on its branch at the old lineage (it was
    left detached at the new root: the squash torture test found it), and squashing again
    finishes."""
    from objstore.meta import MetaStore
    from objstore.squash import squash

    s = Store.init(tmp_path / "s")
    write(s.worktree, "a", b"first")
    commit_all(s, "v1")
    write(s.worktree, "d/b", b"second")
    commit_all(s, "v2")
    v2 = s.head()
    set_ref = MetaStore.set_ref

    def killed(self, name, commit_id, force=False, message=None):
        raise KeyboardInterrupt  # where the process stops

    monkeypatch.setattr(MetaStore, "set_ref", killed)
    with pytest.raises(KeyboardInterrupt):
        squash(s, ["HEAD"], "one")
    monkeypatch.setattr(MetaStore, "set_ref", set_ref)
    fresh = Store(s.path)
    assert fresh.meta.head_branch() == "main" and fresh.head() == v2 and status(fresh).clean
    root = squash(fresh, ["HEAD"], "one")
    assert root.parents == () and fresh.meta.head_branch() == "main" and fresh.head() == root.id


def test_a_tracked_file_the_user_cut_short_is_work_to_lose(tmp_path: Path) -> None:
    """Only a new path can be left cut short by a kill (tracked files are replaced through a
    temp name), so a tracked file holding the start of the target's bytes is the user's
    edit: refused, and kept."""
    from objstore.errors import DirtyWorktree

    s = Store.init(tmp_path / "s")
    write(s.worktree, "t.csv", b"a,1\nb,2\n")
    commit_all(s, "v1")
    v1 = s.head()
    write(s.worktree, "t.csv", b"a,1\nb,2\nc,3\n")
    commit_all(s, "v2")
    v2 = s.head()
    checkout(s, v1)
    for mine in (b"a,1\n", b""):  # rows cut off the end, or emptied
        write(s.worktree, "t.csv", mine)
        with pytest.raises(DirtyWorktree, match="t.csv"):
            checkout(s, v2)
        assert (s.worktree / "t.csv").read_bytes() == mine


def test_a_killed_checkouts_temp_files_are_never_versioned_and_go_at_the_next(tmp_path: Path) -> None:
    """A checkout killed while writing leaves ``.ds-tmp-PID-N`` files: status and add never
    see them, and the next checkout removes those of a process that is gone (only)."""
    import subprocess
    import sys

    s = Store.init(tmp_path / "s")
    write(s.worktree, "d/a", b"first")
    commit_all(s, "v1")
    v1 = s.head()
    child = subprocess.Popen([sys.executable, "-c", "pass"])  # its pid, once reaped, is no process's
    child.wait()
    dead = child.pid
    left = write(s.worktree, f"d/.ds-tmp-{dead}-0", b"half of a file")
    mine = write(s.worktree, f".ds-tmp-{os.getpid()}-7", b"being written")  # a live writer's
    assert status(s).clean
    write(s.worktree, "d/b", b"second")
    commit_all(s, "v2")
    assert {p for p, _e in s.meta.walk(s.head_tree())} == {"d/a", "d/b"}
    odd = write(s.worktree, ".ds-tmp-99999999999999999999-1", b"no process has such a pid")
    assert status(s).added == [odd.name]  # not a name ds writes: the user's file
    checkout(s, v1)
    assert not left.exists() and mine.exists() and odd.exists()
    assert status(s).added == [odd.name]


def test_a_fast_forward_stopped_before_its_branch_moves_leaves_head_on_the_branch(
        tmp_path: Path, monkeypatch) -> None:
    """The files are written, then the branch moves in one ref update: stopped just before it
    (as a kill would), HEAD is still on its branch at the old version (it used to be left
    detached at the new one), and merging again finishes."""
    from objstore.meta import MetaStore

    s = Store.init(tmp_path / "s")
    write(s.worktree, "a", b"first")
    commit_all(s, "v1")
    v1 = s.head()
    s.meta.set_ref("refs/heads/side", v1)
    write(s.worktree, "d/b", b"second")
    commit_all(s, "v2")
    v2 = s.head()
    s.meta.set_ref("refs/heads/main", v1, force=True)  # main back at v1, its files too
    (s.worktree / "d" / "b").unlink()
    (s.worktree / "d").rmdir()
    assert s.meta.head_branch() == "main" and status(s).clean
    set_ref = MetaStore.set_ref

    def killed(self, name, commit_id, force=False, message=None):
        raise KeyboardInterrupt  # where the process stops

    monkeypatch.setattr(MetaStore, "set_ref", killed)
    with pytest.raises(KeyboardInterrupt):
        merge(s, v2)
    monkeypatch.setattr(MetaStore, "set_ref", set_ref)
    fresh = Store(s.path)
    assert fresh.meta.head_branch() == "main" and fresh.head() == v1
    assert merge(fresh, v2).id == v2  # the written file is no work to lose
    assert fresh.meta.head_branch() == "main" and fresh.head() == v2
    assert (fresh.worktree / "d/b").read_bytes() == b"second"


def _pushed(tmp_path: Path) -> tuple[Path, Path]:
    from .conftest import ds

    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "a.bin", os.urandom(300_000))
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "v1", cwd=w)
    ds("remote", "add", "origin", str(tmp_path / "remote"), cwd=w)
    ds("push", "-u", "origin", "main", cwd=w)
    return w, tmp_path / "remote"


def test_a_damaged_remote_pack_is_named_as_damage_by_clone_and_one_problem_for_fsck(tmp_path: Path) -> None:
    """Bytes that fail the same way at every try are damage, not an outage: clone says so
    (and leaves nothing), fsck --remote lists the pack and goes on."""
    from .conftest import ds

    w, remote = _pushed(tmp_path)
    [pack] = remote.glob("packs/*/*.pack")
    pack.write_bytes(b"garbage")
    r = ds("clone", str(remote), str(tmp_path / "c"), cwd=tmp_path, check=False)
    assert r.returncode == 1 and "looks damaged" in r.stderr and pack.name in r.stderr
    assert not (tmp_path / "c").exists()
    r = ds("fsck", "--remote", "origin", "--read-data-subset", "1", cwd=w, check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    # shorter than its index rows: found from the listing, without reading it
    assert f"problem: pack {pack.stem} is shorter than the index says" in r.stderr
    assert "1 problem(s)" in r.stdout


def test_a_remote_metadata_pack_missing_beside_its_index_is_named(tmp_path: Path) -> None:
    from .conftest import ds

    w, remote = _pushed(tmp_path)
    [meta_pack] = remote.glob("meta/pack-*.pack")
    meta_pack.unlink()
    r = ds("clone", str(remote), str(tmp_path / "c"), cwd=tmp_path, check=False)
    assert r.returncode == 1 and f"meta/{meta_pack.name}, named by its listing, could not be read" in r.stderr
    r = ds("fsck", "--remote", "origin", cwd=w, check=False)
    assert r.returncode == 1 and f"metadata pack index meta/{meta_pack.stem}.idx has no pack" in r.stderr


def test_a_ref_lock_is_kept_only_while_a_process_holds_it_open(tmp_path, monkeypatch) -> None:
    """The sweep of dead writers' ref locks (run as the store lock is taken) removes a lock
    no process has open, however new; keeps one a live process holds; and where open files
    cannot be read (no /proc), goes by age: kept while recent, removed once old."""
    import os
    import time

    from objstore import fsutil
    from objstore.store import Store

    with Store.init(tmp_path / "w") as store:
        lock = store.meta.path / "refs/heads/main.lock"
        lock.write_text("")
        assert fsutil.held_open(lock) is False
        with store.locked():
            pass
        assert not lock.exists()
        fd = os.open(lock, os.O_RDWR | os.O_CREAT)
        try:
            assert fsutil.held_open(lock) is True
            with store.locked():
                pass
            assert lock.exists()
        finally:
            os.close(fd)
        monkeypatch.setattr(fsutil, "held_open", lambda path: None)
        os.utime(lock, (time.time() + 3600, time.time() + 3600))
        with store.locked():
            pass
        assert lock.exists()
        os.utime(lock, (time.time() - 3600, time.time() - 3600))
        with store.locked():
            pass
        assert not lock.exists()


def test_without_proc_whether_a_lock_is_held_cannot_be_told(tmp_path, monkeypatch) -> None:
    """Where /proc is missing (not Linux), held_open says it cannot tell: the sweep then
    goes by age, and never takes a missing /proc for "nobody holds it"."""
    import os

    from objstore import fsutil

    lock = tmp_path / "main.lock"
    lock.write_text("")
    real = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p: (_ for _ in ()).throw(FileNotFoundError(p))
                        if str(p) == "/proc" else real(p))
    assert fsutil.held_open(lock) is None
    assert fsutil.held_open(tmp_path / "gone.lock") is False


def _killed_inside_a_move(tmp_path):
    """A store whose branch `main` moved O -> X, then put back as a kill between libgit2's
    reflog append and its rename leaves it: the ref at O, `main.lock` holding X, the
    reflog's last line O -> X."""
    from objstore.store import Store
    from objstore.worktree import commit_all

    from .conftest import write

    store = Store.init(tmp_path / "w")
    write(store.worktree, "a", "1")
    old = commit_all(store, "v1").id
    write(store.worktree, "a", "2")
    new = commit_all(store, "v2").id
    ref = store.meta.path / "refs/heads/main"
    ref.write_text(old + "\n")
    (store.meta.path / "refs/heads/main.lock").write_text(new + "\n")
    return store, ref, old, new


def test_a_move_killed_after_its_reflog_line_is_finished_by_the_next_writer(tmp_path) -> None:
    """The reflog already says the branch moved: the next writer makes the move (the store
    is as if the kill had come an instant later), and fsck finds nothing wrong."""
    from objstore.maintenance import fsck

    store, ref, _old, new = _killed_inside_a_move(tmp_path)
    with store:
        with store.locked():
            pass
        assert ref.read_text() == new + "\n" and not ref.with_name("main.lock").exists()
        assert store.head() == new and not fsck(store).problems


def test_a_new_branch_killed_before_its_file_is_finished_by_the_next_writer(tmp_path) -> None:
    """A clone's first branch: the reflog line 0 -> X written, the ref not yet: the move is
    made, not reported as a damaged ref."""
    store, ref, _old, new = _killed_inside_a_move(tmp_path)
    with store:
        store.meta.set_ref("refs/heads/side", new, message="branch: Created")
        side = store.meta.path / "refs/heads/side"
        side.with_name("side.lock").write_text(side.read_text())
        side.unlink()
        assert store.meta.damaged_refs(only={"refs/heads/side"})
        with store.locked():
            pass
        assert side.read_text() == new + "\n" and not store.meta.damaged_refs()


@pytest.mark.parametrize("spoil", ["other id", "not a version", "empty", "ref moved", "no reflog line"])
def test_a_lock_that_does_not_show_the_move_is_removed_and_the_ref_stays(tmp_path, spoil: str) -> None:
    """Anything short of proof (the lock's id is not the reflog's last move, names no
    version, is cut short; the ref stands elsewhere than that move started): the lock goes,
    as before, and the ref stays where it is."""
    store, ref, old, new = _killed_inside_a_move(tmp_path)
    lock = ref.with_name("main.lock")
    stands = old
    with store:
        if spoil == "other id":
            lock.write_text(old + "\n")
        elif spoil == "not a version":
            lock.write_text("1" * 40 + "\n")
        elif spoil == "empty":
            lock.write_text("")
        elif spoil == "ref moved":
            stands = store.meta.tree_of(new)  # (any id other than where the move started)
            ref.write_text(stands + "\n")
        else:
            log = store.meta.path / "logs/refs/heads/main"
            log.write_text("".join(log.read_text().splitlines(keepends=True)[:-1]))
        with store.locked():
            pass
        assert not lock.exists() and ref.read_text() == stands + "\n"
