"""Inputs that used to crash or mislead: each now gets one clear line and nothing is harmed."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pygit2
import pytest

from objstore.errors import DsError, FormatError, NothingToCommit
from objstore.get import get_copy
from objstore.store import Store
from objstore.worktree import commit_all, status

from .conftest import ds, read_tree, write


def _damage_subtree(work: Path, folder: str) -> str:
    """Flip a byte of a folder's loose tree object; its id."""
    repo = pygit2.Repository(str(work / ".dsstore/meta"))
    oid = str(repo.head.peel(pygit2.Commit).tree[folder].id)
    path = work / ".dsstore/meta/objects" / oid[:2] / oid[2:]
    assert path.exists(), "small commits keep their objects loose"
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return oid


def test_a_damaged_tree_is_one_line_naming_it_and_fsck(tmp_path: Path) -> None:
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "d/a", "a")
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "v1", cwd=w)
    oid = _damage_subtree(w, "d")
    for args in (["status"], ["get", "HEAD", str(tmp_path / "out")], ["checkout", "HEAD", "--force"],
                 ["diff", "HEAD"], ["fsck"]):
        r = ds(*args, cwd=w, check=False)
        assert r.returncode == 1, args
        assert "Traceback" not in r.stderr, (args, r.stderr)
        lines = [line for line in r.stderr.splitlines() if oid in line]
        assert lines and "ds fsck" in lines[0] and "'d'" in lines[0], (args, r.stderr)
    assert not (tmp_path / "out").exists()


def test_a_damaged_tree_raises_format_error_in_the_library(store: Store, work: Path) -> None:
    write(work, "d/a", "a")
    commit_all(store, "v1")
    _damage_subtree(work, "d")
    s = Store.open(work)
    with pytest.raises(FormatError, match="damaged"):
        status(s)


def test_get_refuses_any_target_inside_a_store(store: Store, work: Path, tmp_path: Path) -> None:
    write(work, "a", "a")
    commit_all(store, "v1")
    other = tmp_path / "other"
    Store.init(other).close()
    before = read_tree(other / ".dsstore")
    for target in (other / ".dsstore", other / ".dsstore/meta", other / ".dsstore/meta/objects/new"):
        with pytest.raises(DsError, match="inside the store"):
            get_copy(store, "HEAD", target, overwrite=True)
    with pytest.raises(DsError, match="holds a store"):
        get_copy(store, "HEAD", other, overwrite=True)
    nest = tmp_path / "nest"
    Store.init(nest / "deep/down").close()
    with pytest.raises(DsError, match="would delete it"):
        get_copy(store, "HEAD", nest, overwrite=True)
    assert (nest / "deep/down/.dsstore/config").is_file()
    assert read_tree(other / ".dsstore") == before
    for where in ("", "sub/"):  # a git repository's history too, at the top or deeper
        repo = tmp_path / f"git{len(where)}"
        write(repo, f"{where}.git/HEAD", "ref: refs/heads/main\n")
        write(repo, f"{where}.git/objects/ab/cdef", "an object")
        with pytest.raises(DsError, match="would delete it"):
            get_copy(store, "HEAD", repo, overwrite=True)
        assert (repo / f"{where}.git/objects/ab/cdef").read_text() == "an object"
    bare = tmp_path / "bare"  # a bare git repository, and a folder remote of ds, deeper down
    subprocess.run(["git", "init", "-q", "--bare", str(bare / "proj.git")], check=True)
    with pytest.raises(DsError, match="would delete it"):
        get_copy(store, "HEAD", bare, overwrite=True)
    ds("push", "-q", str(tmp_path / "pushed" / "backup"), "main", cwd=work)
    with pytest.raises(DsError, match="would delete it"):
        get_copy(store, "HEAD", tmp_path / "pushed", overwrite=True)
    assert (bare / "proj.git/HEAD").is_file() and (tmp_path / "pushed/backup/config").is_file()


def test_cli_get_into_another_stores_metadata_is_refused(tmp_path: Path) -> None:
    w, other = tmp_path / "w", tmp_path / "other"
    ds("init", str(w), cwd=tmp_path)
    ds("init", str(other), cwd=tmp_path)
    write(w, "a", "a")
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "v1", cwd=w)
    head = (other / ".dsstore/meta/HEAD").read_bytes()
    r = ds("get", "HEAD", str(other / ".dsstore/meta"), "--overwrite", cwd=w, check=False)
    assert r.returncode == 1 and "inside the store" in r.stderr
    assert (other / ".dsstore/meta/HEAD").read_bytes() == head
    ds("status", cwd=other)


def test_commit_all_with_nothing_to_commit_does_not_suggest_dash_a(store: Store, work: Path) -> None:
    write(work, "a", "a")
    commit_all(store, "v1")
    with pytest.raises(NothingToCommit) as e:
        commit_all(store, "again")
    assert "-a" not in str(e.value) and "matches the latest version" in str(e.value)
    r = ds("commit", "-a", "-m", "again", cwd=work, check=False)
    assert r.returncode == 1 and "use -a" not in r.stderr and "nothing to commit" in r.stderr


def test_status_shows_what_it_leaves_out_and_quotes_odd_names(tmp_path: Path) -> None:
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "a", "a")
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "v1", cwd=w)
    (w / "new\nline").write_text("n")
    write(w, "sub/.dsstore", "a file that takes the store's name")
    os.close(os.open(os.path.join(os.fsencode(w), b"bad\xffname"), os.O_CREAT | os.O_WRONLY, 0o644))
    out = ds("status", cwd=w).stdout
    assert '"new\\nline"' in out and "new\nline" not in out
    assert "sub/.dsstore: .dsstore is the store's reserved name" in out
    assert "not valid UTF-8" in out and "bad" in out
    assert '"bad_names"' in ds("status", "--json", cwd=w).stdout
    os.unlink(os.path.join(os.fsencode(w), b"bad\xffname"))
    r = ds("add", ".", cwd=w)
    assert "sub/.dsstore: .dsstore is the store's reserved name" in r.stderr
    assert "not a regular file" not in r.stderr


def test_a_name_with_a_backslash_is_shown_as_not_versioned_and_add_says_why(tmp_path: Path) -> None:
    """Status listed it as added while add refused it: both now say the same, and the add's
    refusal names the file and both fixes (renaming, or .dsignore, which add then honours)."""
    w = tmp_path / "w"
    ds("init", "-q", str(w), cwd=tmp_path)
    write(w, "ok.txt", "ok")
    write(w, "back\\slash", "b")
    out = ds("status", cwd=w).stdout
    assert "back\\slash: the name holds a backslash" in out and "added     back" not in out
    assert json.loads(ds("status", "--json", cwd=w).stdout)["bad_names"] == ["back\\slash"]
    r = ds("add", ".", cwd=w, check=False)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "back\\slash" in r.stderr
    assert ".dsignore" in r.stderr and ds("status", "-s", cwd=w).stdout == "?? ok.txt\n"  # nothing staged
    write(w, ".dsignore", "back*\n")
    ds("add", "-q", ".", cwd=w)
    assert ds("status", "-s", cwd=w).stdout == "A  .dsignore\nA  ok.txt\n"
