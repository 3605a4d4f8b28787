"""What a remote sends is data to check, not to trust: bad refs and dataset records are
skipped with a warning (never stored), remote URLs that would land in a working folder
are refused, permanent remote errors fail at once, and an interrupted push resumes
without sending again what already landed whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from objstore.errors import DsError
from objstore.maintenance import gc
from objstore.remote import Remote, clone, fsck_remote, pull
from objstore.remote_fs import RemoteFS
from objstore.remote_gc import gc_remote
from objstore.store import Store
from objstore.worktree import commit_all

from .conftest import ds, read_tree, write
from .test_remote import make_store


@pytest.fixture(params=["folder", "s3"])
def backend(request, tmp_path: Path) -> tuple[str, dict]:
    """(url, options) of an empty remote: a folder, or a bucket on moto's S3."""
    if request.param == "folder":
        return str(tmp_path / "remote"), {}
    server = request.getfixturevalue("moto_s3")
    return f"s3://{server.new_bucket()}/data", server.options


def published(tmp_path: Path, url: str, opts: dict) -> Store:
    a = make_store(tmp_path / "a", url, opts)
    write(a.worktree, "f.txt", "one")
    commit_all(a, "v1")
    Remote(a).push()
    return a


# -- 1. refs -----------------------------------------------------------------------------
def plant_bad_refs(fs: RemoteFS, a: Store) -> dict[str, str]:
    """Bad refs of every kind on the remote: ref path -> what its warning must say."""
    tree = str(a.meta.tree_of(a.head()))
    bad = {
        "refs/heads/evil": (tree, "tree, not a version"),  # an id, but of a tree
        "refs/heads/bad..name": (a.head(), "ref-name rules"),  # a good version, a bad name
        "refs/tags/junk": ("garbage", "does not hold a version id"),
        "refs/heads/gone": ("ab" * 20, "metadata is not on the remote"),
        "refs/heads/-opt": (a.head(), "option"),
    }
    for rel, (value, _why) in bad.items():
        fs.put(rel, (value + "\n").encode())
    return {rel: why for rel, (_v, why) in bad.items()}


def test_bad_remote_refs_are_skipped_and_never_stored(tmp_path: Path, backend) -> None:
    url, opts = backend
    a = published(tmp_path, url, opts)
    bad = plant_bad_refs(RemoteFS(url, opts), a)
    seen: list[str] = []
    t = Remote(a, warn=seen.append).fetch()
    assert t.refs == ["refs/heads/main"] and seen == t.warnings
    for rel, why in bad.items():
        assert any(rel in w and why in w and url in w and "origin" in w for w in t.warnings), rel
    assert sorted(a.meta.refs()) == ["refs/heads/main", "refs/remotes/origin/main"]
    write(a.worktree, "g.txt", "two")
    commit_all(a, "v2")
    assert Remote(a).push().refs == ["refs/heads/main"]  # pushes still work
    gc(a)  # and local gc
    b, tb = clone(url, str(tmp_path / "b"), options=opts or None)
    assert read_tree(b.worktree) == read_tree(a.worktree) and len(tb.warnings) == len(bad)
    assert sorted(b.meta.refs()) == ["refs/heads/main", "refs/remotes/origin/main"]
    fresh = make_store(tmp_path / "fresh", url, opts)
    tp, _info = pull(fresh)
    assert read_tree(fresh.worktree) == read_tree(a.worktree) and len(tp.warnings) == len(bad)
    report = fsck_remote(a, "origin")
    assert not report["ok"] and all(any(rel in p for p in report["problems"]) for rel in bad)
    with pytest.raises(DsError, match="gc refused.*not a valid ref"):
        gc_remote(a, "origin", grace_seconds=0)


def test_a_store_holding_a_bad_tracking_ref_is_repaired_by_fetch(tmp_path: Path) -> None:
    """What an older fetch stored (a tracking ref naming a tree) made every push fail."""
    a = published(tmp_path, str(tmp_path / "r"), {})
    tree = a.meta.tree_of(a.head())
    a.meta.repo.references.create("refs/remotes/origin/evil", tree, force=True)
    t = Remote(a).fetch()
    assert "refs/remotes/origin/evil" not in a.meta.repo.references
    assert any("refs/remotes/origin/evil" in w for w in t.warnings)
    write(a.worktree, "g.txt", "two")
    commit_all(a, "v2")
    Remote(a).push()


def test_push_over_a_damaged_remote_branch_says_what_to_do(tmp_path: Path) -> None:
    url = str(tmp_path / "r")
    a = published(tmp_path, url, {})
    RemoteFS(url, {}).put("refs/heads/main", b"garbage\n")
    write(a.worktree, "g.txt", "two")
    commit_all(a, "v2")
    with pytest.raises(DsError, match="does not hold a version id.*--force"):
        Remote(a).push()
    Remote(a).push(force=True)
    b, _t = clone(url, str(tmp_path / "b"))
    assert b.head() == a.head()


def test_cli_fetch_prints_each_skipped_ref(tmp_path: Path) -> None:
    url = str(tmp_path / "r")
    a = published(tmp_path, url, {})
    RemoteFS(url, {}).put("refs/heads/bad..name", (a.head() + "\n").encode())
    proc = ds("fetch", cwd=a.worktree)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("Warning:")]
    assert len(lines) == 1 and "refs/heads/bad..name" in lines[0] and url in lines[0]
