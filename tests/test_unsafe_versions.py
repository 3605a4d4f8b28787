"""A remote may name a version whose folder listing is well-formed but unsafe (an entry
called '..'). A fetch never stores a ref to it (pull and clone say why), and a store that
already holds one (an older fetch) is told what reaches it; ``fsck --repair`` lets a
remote's branch and reflog entries go, never a branch of the user's."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest

from objstore.errors import DsError
from objstore.maintenance import fsck, gc
from objstore.manifest import FILE, FileEntry, decode_manifest, encode_manifest
from objstore.remote import Remote, clone, pull
from objstore.store import Store

from .conftest import ds, write
from .test_remote_hostile_refs import published


def plant_version(a: Store, change) -> str:
    """A child of ``a``'s HEAD whose root manifest is ``change(name -> entry)``, sent to ``a``'s
    remote as its metadata pack, the remote's main moved onto it; returns its id."""
    repo: pygit2.Repository = a.meta.repo
    head = repo[a.head()]
    tree = head.tree
    old = {e.name: e for e in decode_manifest(repo[tree[".ds.manifest"].id].data, a.algo.size, "/")}
    entries = sorted(change(old), key=lambda e: e.name.encode())
    blob = repo.create_blob(encode_manifest(entries, a.algo.size))
    builder = repo.TreeBuilder(tree)
    builder.insert(".ds.manifest", blob, pygit2.GIT_FILEMODE_BLOB)
    new_tree = builder.write()
    sig = pygit2.Signature("x", "x@x")
    bad = str(repo.create_commit(None, sig, sig, "evil", new_tree, [head.id]))
    remote = Remote(a)
    remote.put_meta_pack({bad, str(new_tree), str(blob)})
    remote.fs.put("refs/heads/main", f"{bad}\n".encode())
    return bad


def plant_unsafe_version(a: Store) -> str:
    """A child of ``a``'s HEAD whose root lists a file named '..' (see ``plant_version``)."""
    def dotdot(old: dict[str, FileEntry]) -> list[FileEntry]:
        first = next(iter(old.values()))
        return [*old.values(), FileEntry("..", FILE, first.size, first.hash)]
    return plant_version(a, dotdot)


@pytest.fixture
def scene(tmp_path: Path) -> tuple[Store, Store, str, str]:
    """(publisher, a clone made before the attack, good version, unsafe version)."""
    url = str(tmp_path / "remote")
    a = published(tmp_path, url, {})
    good = a.head()
    c, _t = clone(url, str(tmp_path / "c"))
    return a, c, good, plant_unsafe_version(a)


def test_fetch_pull_and_clone_never_store_a_ref_to_an_unsafe_version(tmp_path: Path, scene) -> None:
    a, c, good, bad = scene
    t, _info = pull(c)  # the remote's main is ignored: the tracking ref stays where it was
    assert any(f"refs/heads/main: it names version {bad[:12]}, which cannot be read" in w
               and "'..'" in w for w in t.warnings), t.warnings
    assert c.meta.resolve("refs/remotes/origin/main") == good and c.head() == good
    assert fsck(c, read_data=True).ok
    gc(c)
    c.meta.drop_ref("refs/remotes/origin/main")  # a branch only that remote had: pull says why not
    with pytest.raises(DsError, match=r"no branch 'main'.*ignored its refs/heads/main: .*cannot be read"):
        pull(c)
    with pytest.raises(DsError, match=r"has no branch yet.*ignored its refs/heads/main: .*cannot be read"):
        clone(str(tmp_path / "remote"), str(tmp_path / "d"))
    r = ds("fetch", cwd=c.worktree)
    assert f"it names version {bad[:12]}, which cannot be read" in r.stderr


def test_repair_drops_a_remotes_branch_and_reflog_entries_reaching_an_unsafe_version(scene) -> None:
    _a, c, good, bad = scene
    Remote(c).fetch()  # its metadata is here, no ref names it
    c.meta.set_ref("refs/remotes/origin/main", bad, force=True, message="fetch by an older objstore")
    report = fsck(c)
    assert not report.ok
    hint = report.problems[-1]
    assert bad[:12] in hint and "by refs/remotes/origin/main, reflog of refs/remotes/origin/main" in hint
    assert "`ds fsck --repair` drops" in hint
    r = ds("gc", cwd=c.worktree, check=False)
    assert r.returncode == 1 and "refused" in r.stderr
    repaired = fsck(c, repair=True)
    assert repaired.ok, repaired.problems
    assert any(d.startswith("refs/remotes/origin/main") for d in repaired.refs_dropped)
    assert c.head() == good and c.meta.head_branch() == "main"  # the user's branch never moves
    assert fsck(c, read_data=True).ok
    assert ds("gc", cwd=c.worktree).returncode == 0  # refused before the repair


def test_repair_never_moves_a_users_branch_off_an_unsafe_version(scene) -> None:
    _a, c, good, bad = scene
    Remote(c).fetch()
    c.meta.set_ref("refs/heads/kept", bad, force=False, message="made by hand")
    report = fsck(c, repair=True)
    assert c.meta.resolve("refs/heads/kept") == bad
    assert not report.ok and "refs/heads/kept" in report.problems[-1]
    assert "move your branches and tags off them" in report.problems[-1]
    c.meta.drop_ref("refs/heads/kept")  # the user does as told
    assert fsck(c, repair=True).ok and c.head() == good


def test_cli_fsck_says_what_reaches_the_version_and_repair_says_what_went(scene) -> None:
    _a, c, _good, bad = scene
    Remote(c).fetch()
    c.meta.set_ref("refs/remotes/origin/main", bad, force=True, message="fetch by an older objstore")
    r = ds("fsck", cwd=c.worktree, check=False)
    assert r.returncode == 1 and f"version {bad}: refusing path component '..'" in r.stderr
    r = ds("fsck", "--repair", cwd=c.worktree)
    assert f"dropped refs/remotes/origin/main (named {bad[:12]}): it reached a version" in r.stderr
    assert ds("fsck", cwd=c.worktree).returncode == 0
    write(c.worktree, "more.txt", "x")  # and the store works on
    ds("add", "-A", cwd=c.worktree)
    ds("commit", "-m", "more", cwd=c.worktree)


def test_repair_never_touches_a_users_history_that_reaches_an_unsafe_version(scene) -> None:
    """Work of the user's on top of a merge of the unsafe version: the repair lets go of the
    remote's ref only; HEAD's and the branch's reflogs stay whole, and gc keeps the work."""
    _a, c, good, bad = scene
    Remote(c).fetch()
    c.meta.set_ref("refs/remotes/origin/main", bad, force=True, message="fetch by an older objstore")
    merged = c.meta.commit(c.meta.tree_of(good), [good, bad], "merge by hand", c.author())
    c.meta.set_head(merged, "merge: by hand")
    write(c.worktree, "work.txt", "mine")
    ds("add", "work.txt", cwd=c.worktree)
    work = ds("commit", "-m", "my work", cwd=c.worktree).stdout.strip()
    head_log = (c.path / "meta/logs/HEAD").read_text()
    branch_log = (c.path / "meta/logs/refs/heads/main").read_text()
    report = fsck(c, repair=True)
    assert report.refs_dropped and all(d.startswith(("refs/remotes/", "1 entr", "2 entr")) for d in
                                       report.refs_dropped), report.refs_dropped
    assert all("reflog of refs/remotes/" in d for d in report.refs_dropped if "entr" in d)
    assert (c.path / "meta/logs/HEAD").read_text() == head_log
    assert (c.path / "meta/logs/refs/heads/main").read_text() == branch_log
    assert c.head() == work and not report.ok and "refs/heads/main" in report.problems[-1]
    r = ds("gc", cwd=c.worktree, check=False)
    assert r.returncode == 1  # refused while a problem stands: nothing is freed
    ds("get", work, str(c.worktree.parent / "work"), cwd=c.worktree)
    assert (c.worktree.parent / "work" / "work.txt").read_text() == "mine"
