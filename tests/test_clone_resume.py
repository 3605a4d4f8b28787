"""A clone or an init killed part-way (SIGKILL, power loss): what it leaves is finished or
removed by running the command again, and never versioned.

Each kill is made at a fixed point (a patched step that kills its own process), so these
cases are deterministic; tests/test_torture.py kills at random moments.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from objstore.remote import clone
from objstore.store import CLONING, Store

from .conftest import ds, read_tree, write

KILLED_IN_CHECKOUT = """
import os, signal, sys
from objstore import remote, worktree

def checkout(store, rev, **kw):
    # as a kill while the first files are written: one whole, one cut short
    (store.worktree / "a.txt").write_text("alpha\\n")
    (store.worktree / "d").mkdir(exist_ok=True)
    (store.worktree / "d" / "b.txt").write_text("bra")
    os.kill(os.getpid(), signal.SIGKILL)

worktree.checkout = checkout
remote.clone(sys.argv[1], sys.argv[2])
"""


@pytest.fixture
def published(tmp_path: Path) -> tuple[Path, Path]:
    """(source working folder, its remote) with one version on main."""
    src = tmp_path / "src"
    ds("init", str(src), cwd=tmp_path)
    write(src, "a.txt", "alpha\n")
    write(src, "d/b.txt", "bravo\n")
    write(src, "d/c.bin", bytes(range(256)) * 40)
    ds("add", "-A", cwd=src)
    ds("commit", "-m", "v1", cwd=src)
    ds("remote", "add", "origin", str(tmp_path / "remote"), cwd=src)
    ds("push", cwd=src)
    return src, tmp_path / "remote"


def _killed_clone(url: Path, target: Path) -> None:
    r = subprocess.run([sys.executable, "-c", KILLED_IN_CHECKOUT, str(url), str(target)], capture_output=True)
    assert r.returncode == -9, r.stderr


def test_a_clone_killed_while_writing_files_is_finished_by_cloning_again(published, tmp_path: Path) -> None:
    src, url = published
    target = tmp_path / "c"
    _killed_clone(url, target)
    assert (target / ".dsstore" / CLONING).read_text() == str(url)
    assert (target / "d" / "b.txt").read_text() == "bra"  # a file cut short by the kill
    ds("clone", str(url), str(target), cwd=tmp_path)
    assert read_tree(target) == read_tree(src)
    assert not (target / ".dsstore" / CLONING).exists()
    status = json.loads(ds("status", "--json", cwd=target).stdout)
    assert (status["branch"], status["upstream"]["name"], status["added"], status["modified"]) == (
        "main", "origin/main", [], [])
    # done: the folder is now in use, and a clone into it is refused as into any other
    again = ds("clone", str(url), str(target), cwd=tmp_path, check=False)
    assert again.returncode == 1 and "exists and is not empty" in again.stderr


def test_an_unfinished_clone_of_another_url_is_named_not_overwritten(published, tmp_path: Path) -> None:
    src, url = published
    target = tmp_path / "c"
    _killed_clone(url, target)
    other = tmp_path / "other"
    ds("push", str(other), cwd=src)
    r = ds("clone", str(other), str(target), cwd=tmp_path, check=False)
    assert r.returncode == 1
    assert f"holds an unfinished clone of {url}" in r.stderr and "delete" in r.stderr
    assert (target / "d" / "b.txt").read_text() == "bra"  # nothing touched


def test_a_resumed_clone_that_fails_keeps_the_folder_for_the_next_run(published, tmp_path: Path) -> None:
    """A new clone that fails leaves nothing; the run that resumes one that was killed keeps
    it (it may hold work by now), and the run after finishes it."""
    src, url = published
    target = tmp_path / "c"
    _killed_clone(url, target)
    saved = tmp_path / "saved"
    url.rename(saved)
    url.mkdir()
    (url / "config").write_text("not a remote")
    with pytest.raises(Exception):  # noqa: B017 - which error depends on the damage; the folder must stay
        clone(str(url), str(target))
    assert (target / ".dsstore" / CLONING).exists() and (target / "a.txt").exists()
    import shutil

    shutil.rmtree(url)
    saved.rename(url)
    ds("clone", str(url), str(target), cwd=tmp_path)
    assert read_tree(target) == read_tree(src)


def test_a_clone_stopped_after_its_checkout_or_committed_in_is_never_checked_out_again(
        published, tmp_path: Path) -> None:
    """Once HEAD is set the folder is the user's: cloning again only ends the clone (no file,
    branch or remote is touched), even with another -b."""
    src, url = published
    target = tmp_path / "c"
    _killed_clone(url, target)
    ds("clone", str(url), str(target), cwd=tmp_path)
    (target / ".dsstore" / CLONING).write_text(str(url))  # as if killed just before its end
    write(target, "mine.txt", "my work\n")
    ds("add", "mine.txt", cwd=target)
    mine = ds("commit", "-m", "mine", cwd=target).stdout.strip()
    ds("remote", "add", "backup", str(tmp_path / "backup"), cwd=target)
    ds("clone", str(url), str(target), "-b", "typo", cwd=tmp_path)
    assert not (target / ".dsstore" / CLONING).exists()
    assert json.loads(ds("log", "-n", "1", "--json", cwd=target).stdout)[0]["id"] == mine
    assert (target / "mine.txt").read_text() == "my work\n"
    assert "backup" in ds("remote", "list", cwd=target).stdout


def test_what_a_killed_init_left_is_removed_and_never_versioned(tmp_path: Path) -> None:
    work = tmp_path / "w"
    write(work, "data.txt", "x\n")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a process id that is gone
    left = work / f".dsstore.init-{dead.pid}"
    (left / "meta").mkdir(parents=True)
    (left / "config").write_text("half")
    alive = work / ".dsstore.init-1"  # pid 1 runs: another init at work, left alone
    alive.mkdir()
    # a pid that is gone here, but of another machine or PID namespace (a shared volume): its
    # init may be running there, so it is left alone too
    elsewhere = work / f".dsstore.init-{dead.pid}-0badf00d"
    elsewhere.mkdir()
    (elsewhere / "init-owner").write_text("another-boot/pid:[4026531836]")
    ds("init", str(work), cwd=tmp_path)
    assert not left.exists() and alive.exists() and elsewhere.exists()
    assert not (work / ".dsstore" / "init-owner").exists()
    ds("add", ".", cwd=work)  # neither is versioned
    assert json.loads(ds("status", "--json", cwd=work).stdout)["staged"]["added"] == ["data.txt"]


def test_a_killed_init_does_not_block_a_clone(published, tmp_path: Path) -> None:
    src, url = published
    target = tmp_path / "c"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (target / f".dsstore.init-{dead.pid}" / "meta").mkdir(parents=True)
    ds("clone", str(url), str(target), cwd=tmp_path)
    assert read_tree(target) == read_tree(src)


def test_two_inits_racing_for_one_folder_give_one_store_and_a_clear_error(tmp_path: Path,
                                                                          monkeypatch) -> None:
    """The second store made loses the rename: its half is removed, the error says why."""
    import os

    from objstore.errors import DsError

    work = tmp_path / "w"
    work.mkdir()
    real, raced = os.replace, []

    def other_init_first(src, dst):
        if Path(dst) == work / ".dsstore" and not raced:
            raced.append(dst)
            Store.create(tmp_path / "elsewhere" / ".dsstore")
            real(tmp_path / "elsewhere" / ".dsstore", dst)
        return real(src, dst)

    monkeypatch.setattr(os, "replace", other_init_first)
    with pytest.raises(DsError, match="already a store"):
        Store.init(work)
    assert sorted(p.name for p in work.iterdir()) == [".dsstore"]
