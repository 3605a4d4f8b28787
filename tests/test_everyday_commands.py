"""Everyday commands git and DVC users reach for: ls, log -- PATH, restore, mv, tag -d, du,
config. Real CLI runs (``ds``) and library calls, each checked against files and state."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from objstore.errors import DsError
from objstore.store import Store

from .conftest import ds, write


def _commit(w: Path, message: str) -> str:
    ds("add", ".", "-q", cwd=w)
    return ds("commit", "-m", message, "-q", cwd=w).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A working folder with one version: a/b/x.txt, top.txt, run.sh (exec), lnk (link)."""
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "a/b/x.txt", "hi\n")
    write(w, "top.txt", "hello\n")
    write(w, "run.sh", "#!/bin/sh\n", mode=0o755)
    os.symlink("top.txt", w / "lnk")
    _commit(w, "one")
    return w


# -- ds ls ------------------------------------------------------------------------------

def test_ls_one_level_recursive_and_long(repo: Path) -> None:
    assert ds("ls", cwd=repo).stdout.splitlines() == ["a/", "lnk", "run.sh", "top.txt"]
    assert ds("ls", "-r", cwd=repo).stdout.splitlines() == ["a/b/x.txt", "lnk", "run.sh", "top.txt"]
    long = [line.split() for line in ds("ls", "-l", cwd=repo).stdout.splitlines()]
    assert long == [["folder", "-", "a/"], ["link", "7", "lnk"], ["exec", "10", "run.sh"],
                    ["file", "6", "top.txt"]]
    rows = json.loads(ds("ls", "-r", "--json", cwd=repo).stdout)
    assert rows[0] == {"path": "a/b/x.txt", "kind": "file", "size": 3}


def test_ls_rev_path_and_folder_from_a_subfolder(repo: Path) -> None:
    write(repo, "a/b/y.txt", "new")
    _commit(repo, "two")
    assert ds("ls", "HEAD~1", "a/b", cwd=repo).stdout.splitlines() == ["a/b/x.txt"]
    assert ds("ls", "HEAD", "a/b", cwd=repo).stdout.splitlines() == ["a/b/x.txt", "a/b/y.txt"]
    assert ds("ls", "a", cwd=repo).stdout.splitlines() == ["a/b/"]  # one argument: a path in HEAD
    assert ds("ls", "HEAD", "b", cwd=repo / "a").stdout.splitlines() == ["a/b/x.txt", "a/b/y.txt"]
    assert ds("ls", "-l", "HEAD", "top.txt", cwd=repo).stdout.split() == ["file", "6", "top.txt"]


def test_ls_wrong_path_or_rev_is_one_line(repo: Path) -> None:
    p = ds("ls", "HEAD", "nope", cwd=repo, check=False)
    assert p.returncode == 1 and p.stdout == ""
    assert p.stderr.strip().splitlines() == [p.stderr.strip()] and "nope is not in version" in p.stderr
    p = ds("ls", "nope", cwd=repo, check=False)
    assert p.returncode == 1 and "names no version and no path" in p.stderr
    p = ds("ls", "v9", "a", cwd=repo, check=False)
    assert p.returncode == 1 and "no version matches 'v9'" in p.stderr


def test_ls_library_and_empty_store(store: Store) -> None:
    from objstore.listing import list_version

    assert list(list_version(store)) == []
    with pytest.raises(DsError, match="no version yet"):
        list(list_version(store, "HEAD", "x"))
    write(store.worktree, "d/e/f.bin", b"\0" * 100)
    from objstore.worktree import add

    add(store, [str(store.worktree)])
    store.commit("one")
    rows = list(list_version(store, "HEAD", "d", recursive=True))
    assert [(r.path, r.kind, r.size) for r in rows] == [("d/e/f.bin", "file", 100)]
