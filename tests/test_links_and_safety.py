"""Symlink policy and writes that must never land outside the target folder.

Policy (README, docs/architecture.md): links are versioned as links (their target
text) and never followed when adding. On checkout/get a link is recreated only if its
target is relative and stays inside the folder at every step; other links are reported
and not created. Files are never written through a link.
"""

from __future__ import annotations

import os
from pathlib import Path

import pygit2
import pytest

from objstore.errors import DsError, FormatError
from objstore.get import get_copy
from objstore.manifest import FILE, LINK, FileEntry, encode_manifest
from objstore.materialize import link_is_contained
from objstore.meta import MANIFEST
from objstore.store import Store
from objstore.worktree import checkout, commit_all

from .conftest import read_tree, write


@pytest.mark.parametrize(
    ("path", "target", "ok"),
    [
        ("l", "a.txt", True),
        ("d/l", "../a.txt", True),
        ("d/l", "../d/./x", True),
        ("l", "../outside", False),
        ("d/l", "../../outside", False),
        ("l", "/etc/passwd", False),
        ("l", "a/../../x", False),
        ("l", "", False),
        ("l", "a\\..\\..\\x", False),
    ],
)
def test_link_containment(path: str, target: str, ok: bool) -> None:
    assert link_is_contained(path, target) is ok


def test_links_are_versioned_not_followed(store: Store, work: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write(outside, "secret", "do not copy")
    write(work, "a.txt", "A")
    os.symlink("a.txt", work / "inside")
    os.symlink(str(outside), work / "escape")
    commit_all(store, "v1")
    files = dict(store.meta.walk(store.head_tree()))
    assert files["inside"].kind == LINK and files["escape"].kind == LINK
    assert not any(p.startswith("escape/") for p in files)  # not followed
    out = tmp_path / "out"
    report = get_copy(store, "HEAD", out)
    assert report.links_refused == ["escape"]
    assert os.readlink(out / "inside") == "a.txt"
    assert not (out / "escape").exists()


def test_checkout_replaces_link_in_place_of_folder(store: Store, work: Path, tmp_path: Path) -> None:
    write(work, "sub/f", "inside")
    v1 = commit_all(store, "v1").id
    outside = tmp_path / "outside"
    outside.mkdir()
    (work / "sub/f").unlink()
    (work / "sub").rmdir()
    os.symlink(str(outside), work / "sub")  # an attacker's (or accident's) link
    checkout(store, v1, force=True)
    assert list(outside.iterdir()) == []  # nothing written through the link
    assert not (work / "sub").is_symlink() and (work / "sub/f").read_text() == "inside"


def _hand_built_version(store: Store, entries: list[FileEntry], chunk: bytes) -> str:
    """Commit a root folder made of raw entries (bypassing every check on the way in)."""
    store.chunks.put_encoded(store.algo.digest(chunk), chunk, len(chunk), 0)
    store.chunks.flush()
    repo = store.meta.repo
    tb = repo.TreeBuilder()
    tb.insert(MANIFEST, repo.create_blob(encode_manifest(entries, store.algo.size)),
              pygit2.enums.FileMode.BLOB)
    return store.meta.commit(tb.write(), [], "hostile")


@pytest.mark.parametrize("name", ["..", "../evil", "/abs", "a\\b", "C:evil", ".dsstore", "x\0y"])
def test_hostile_names_are_refused(store: Store, work: Path, tmp_path: Path, name: str) -> None:
    data = b"payload"
    entry = FileEntry(name, FILE, len(data), store.algo.digest(data))
    cid = _hand_built_version(store, [entry], data)
    out = tmp_path / "out"
    with pytest.raises(FormatError):
        get_copy(store, cid, out)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]
    with pytest.raises(DsError):
        checkout(store, cid, force=True)


def test_link_target_escaping_via_hand_built_store(store: Store, work: Path, tmp_path: Path) -> None:
    target = b"../../../../tmp/evil"
    entry = FileEntry("l", LINK, len(target), store.algo.digest(target))
    cid = _hand_built_version(store, [entry], target)
    report = get_copy(store, cid, tmp_path / "out")
    assert report.links_refused == ["l"] and read_tree(tmp_path / "out") == {}


def test_a_link_no_checkout_creates_is_no_removal(tmp_path: Path) -> None:
    """A version may hold a link leading out of the folder (made here, or sent by a remote);
    no checkout creates it. Its absence is no change: status is clean, `commit -a` and
    `add -A` keep it in the next version, clone says so, and `ds rm --cached` drops it."""
    from .conftest import ds

    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "a", "a")
    os.symlink("/etc/passwd", w / "evil")
    os.symlink("../../x", w / "sub-escape")
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "one", cwd=w)
    ds("remote", "add", "origin", str(tmp_path / "remote"), cwd=w)
    ds("push", "-u", "origin", "main", cwd=w)
    r = ds("clone", str(tmp_path / "remote"), str(tmp_path / "c"), cwd=tmp_path)
    c = tmp_path / "c"
    assert "Warning: link evil points outside the folder; not created" in r.stderr
    assert "`ds rm --cached sub-escape` drops it" in r.stderr
    assert not os.path.lexists(c / "evil") and ds("status", "-s", cwd=c).stdout == ""
    write(c, "a", "b")
    ds("commit", "-a", "-m", "two", cwd=c)
    ds("add", "-A", cwd=c)
    listed = ds("ls", cwd=c).stdout.split()
    assert {"evil", "sub-escape"} <= set(listed)
    ds("rm", "--cached", "evil", cwd=c)
    assert ds("status", "-s", cwd=c).stdout == "D  evil\n"


def test_a_link_of_the_users_own_that_leads_out_is_removed_as_any_file(tmp_path: Path) -> None:
    """Only links a checkout refused are spared: one the user made and deleted is a removal."""
    from .conftest import ds

    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "a", "a")
    os.symlink("/etc/hostname", w / "ext")
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "one", cwd=w)
    (w / "ext").unlink()
    assert ds("status", "-s", cwd=w).stdout == " D ext\n"
    ds("commit", "-a", "-m", "two", cwd=w)
    assert ds("ls", cwd=w).stdout.split() == ["a"]
    ds("checkout", "HEAD~1", cwd=w)  # a checkout of that version refuses the link: no change then
    assert not os.path.lexists(w / "ext") and ds("status", "-s", cwd=w).stdout == ""
    ds("switch", "main", cwd=w)
    assert ds("status", "-s", cwd=w).stdout == ""
