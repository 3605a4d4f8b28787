"""Deleting a remote's branches and tags (`ds push --delete`, `ds push REMOTE :NAME`), pruning
what other machines remember of them (`ds fetch --prune`), and a remote that lost its config.

Runs the installed `ds` on a folder remote and on S3 (a moto server); the races are driven
in-process through `Remote`, which the CLI runs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from objstore.errors import DsError
from objstore.remote import Remote
from objstore.remote_fs import RefConflict, RemoteLock
from objstore.remote_gc import gc_remote
from objstore.store import Store

from .conftest import ds, write


def fails(*args: str, cwd: Path) -> str:
    """The one error line of a command that must fail with exit 1."""
    proc = ds(*args, cwd=cwd, check=False)
    assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    return lines[0]


def commit(root: Path, rel: str, text: str) -> str:
    write(root, rel, text)
    ds("add", "-A", cwd=root)
    return ds("commit", "-m", text, cwd=root).stdout.strip()


def fresh(fs):
    """``fs`` (a ``RemoteFS``) with fsspec's listing cache forgotten: this process lists the
    remote between commands that other processes run (each `ds` starts afresh)."""
    inner = getattr(fs.backend, "fs", None)
    if inner is not None:
        inner.invalidate_cache()
    return fs


def remote_refs(root: Path) -> dict[str, str]:
    """The remote's branches and tags as a fetch reads them (deleted and half-deleted: absent)."""
    with Store.open(root) as s:
        remote = Remote(s, "origin")
        fresh(remote.fs)
        return remote.read_refs()


def tracking(root: Path) -> list[str]:
    return [line.split()[0] for line in ds("branch", "-r", cwd=root).stdout.splitlines()]


def remote_files(url: str, opts: list[str]) -> dict[str, int]:
    """Every file of the remote with its size (locks left out: a lease comes and goes)."""
    from objstore.remote_fs import RemoteFS

    options = dict(o.split("=", 1) for o in opts[1::2])
    return {rel: size for rel, (size, _m) in fresh(RemoteFS(url, options)).list_detail("").items()
            if not rel.startswith("locks/")}


def make_shared(tmp_path: Path, url: str, opts: list[str]) -> tuple[Path, Path, str, list[str]]:
    """(store a, which pushed main (the remote's default), feat and tag t1; store b, a clone
    that has fetched them all; the remote's URL; its options)."""
    a, b = tmp_path / "a", tmp_path / "b"
    ds("init", str(a), cwd=tmp_path)
    commit(a, "f.txt", "1")
    ds("remote", "add", "origin", url, *opts, cwd=a)
    ds("push", "-u", "origin", "main", cwd=a)
    ds("switch", "-c", "feat", cwd=a)
    commit(a, "feat.txt", "feature work")
    ds("push", "origin", "feat", cwd=a)
    ds("tag", "t1", cwd=a)
    ds("push", "origin", "t1", cwd=a)
    ds("switch", "main", cwd=a)
    ds("clone", url, str(b), *opts, cwd=tmp_path)
    assert tracking(b) == ["origin/feat", "origin/main"]
    return a, b, url, opts


@pytest.fixture
def shared(tmp_path: Path, remote) -> tuple[Path, Path, str, list[str]]:
    """``make_shared`` on a folder remote and on S3."""
    return make_shared(tmp_path, *remote)


@pytest.fixture
def folder(tmp_path: Path) -> tuple[Path, Path, str, list[str]]:
    """``make_shared`` on a folder remote only (what does not depend on the backend)."""
    return make_shared(tmp_path, str(tmp_path / "remote"), [])


def test_delete_a_branch_then_prune_it_elsewhere(shared) -> None:
    a, b, url, _opts = shared
    with Store.open(a) as s:
        feat = s.meta.ref_target("refs/heads/feat")
    r = ds("push", "origin", "--delete", "feat", cwd=a)
    assert r.stderr.splitlines()[:2] == [f"To {url}", " - [deleted]  feat"]
    assert r.stderr.splitlines()[2] == (
        f"hint: feat on origin was at {feat[:12]}; origin/feat@{{1}} names it here; "
        f"`ds push origin {feat[:12]}:refs/heads/feat` puts it back")
    assert "refs/heads/feat" not in remote_refs(a) and "refs/heads/main" in remote_refs(a)
    assert tracking(a) == ["origin/main"]
    # the tracking ref went with a reflog entry: the version is still reachable here
    moves = ds("reflog", "origin/feat", cwd=a).stdout.splitlines()
    assert moves[0].endswith("push: deleted feat on " + url) and moves[1].startswith(feat[:12])
    assert ds("log", "--json", "origin/feat@{1}", cwd=a).stdout.count(feat) == 1
    assert ds("branch", cwd=a).stdout.count("feat") == 1  # the local branch is not touched (as git)

    # git's error, non-zero exit, for a branch the remote does not hold
    assert fails("push", "origin", "--delete", "feat", cwd=a).startswith(
        "Error: unable to delete 'feat': remote ref does not exist")

    # another machine keeps origin/feat until it prunes, with a hint
    r = ds("fetch", cwd=b)
    assert tracking(b) == ["origin/feat", "origin/main"] and "`ds fetch --prune`" in r.stderr
    out = json.loads(ds("fetch", "--prune", "--json", cwd=b).stdout)
    assert out["deleted"] == ["refs/remotes/origin/feat"]
    assert out["updates"] == [{"ref": "refs/heads/feat", "local": "refs/remotes/origin/feat", "old": feat,
                               "new": None, "forced": False, "deleted": True}]
    assert tracking(b) == ["origin/main"]
    pruned = ds("reflog", "origin/feat", cwd=b).stdout.splitlines()[0]
    assert pruned.endswith("fetch: pruned, gone from " + url)
    assert "prune" not in ds("fetch", "-p", cwd=b).stderr  # nothing left to prune, no hint


def test_refspec_form_tags_and_json(shared) -> None:
    a, _b, url, _opts = shared
    with Store.open(a) as s:
        tip = s.meta.ref_target("refs/tags/t1")
    r = ds("push", "origin", ":feat", cwd=a)
    assert r.stderr.splitlines()[1] == " - [deleted]  feat"
    out = json.loads(ds("push", "origin", "--delete", "t1", "--json", cwd=a).stdout)
    assert out["deleted"] == ["refs/tags/t1"] and out["url"] == url
    assert out["updates"] == [{"ref": "refs/tags/t1", "local": None, "old": tip, "new": None,
                               "forced": False, "deleted": True}]
    assert set(remote_refs(a)) == {"refs/heads/main"}
    assert "t1" in ds("tag", cwd=a).stdout  # the local tag stays, as git's
    # a name that is both a branch and a tag on the remote must be said in full
    ds("push", "origin", "main:refs/heads/t1", "refs/tags/t1", cwd=a)
    assert "both a branch and a tag" in fails("push", "origin", "--delete", "t1", cwd=a)
    ds("push", "origin", "--delete", "refs/tags/t1", cwd=a)
    assert set(remote_refs(a)) == {"refs/heads/main", "refs/heads/t1"}


def test_a_missing_name_stops_every_deletion(folder) -> None:
    a, _b, _url, _opts = folder
    before = remote_refs(a)
    err = fails("push", "origin", "--delete", "feat", "nosuch", "other", cwd=a)
    assert err.startswith("Error: unable to delete 'nosuch': remote ref does not exist; "
                          "unable to delete 'other': remote ref does not exist")
    assert err.endswith("nothing was deleted")
    assert remote_refs(a) == before and tracking(a) == ["origin/feat", "origin/main"]
    assert "--delete needs the branches or tags" in fails("push", "origin", "--delete", cwd=a)
    assert "not 'main:x'" in fails("push", "origin", "--delete", "main:x", cwd=a)


def test_the_default_branch_is_kept_unless_forced(folder, tmp_path: Path) -> None:
    a, _b, url, opts = folder
    err = fails("push", "origin", ":main", cwd=a)
    assert err.startswith("Error: refusing to delete main on remote origin") and "default branch" in err
    assert "`ds push --force origin --delete main`" in err
    assert fails("push", "origin", "--delete", "main", cwd=a) == err
    assert set(remote_refs(a)) == {"refs/heads/main", "refs/heads/feat", "refs/tags/t1"}
    ds("push", "--force", "origin", "--delete", "main", cwd=a)
    assert set(remote_refs(a)) == {"refs/heads/feat", "refs/tags/t1"}
    # the only branch left is what a clone checks out now: the default again
    assert "default branch" in fails("push", "origin", "--delete", "feat", cwd=a)
    ds("clone", url, str(tmp_path / "c"), *opts, cwd=tmp_path)
    assert "* feat" in ds("branch", cwd=tmp_path / "c").stdout


def test_push_and_delete_in_one_push(folder) -> None:
    a, b, _url, _opts = folder
    with Store.open(a) as s:
        feat = s.meta.ref_target("refs/heads/feat")
    r = ds("push", "origin", "feat:renamed", ":feat", cwd=a)
    assert r.stderr.splitlines()[2:4] == [" * [new branch]  feat -> renamed", " - [deleted]     feat"]
    assert remote_refs(a)["refs/heads/renamed"] == feat and "refs/heads/feat" not in remote_refs(a)
    assert "both pushed and deleted" in fails("push", "origin", "main:renamed", ":renamed", cwd=a)
    ds("fetch", "--prune", cwd=b)
    assert tracking(b) == ["origin/main", "origin/renamed"]


def test_a_branch_that_moved_is_not_deleted(shared) -> None:
    """The compare-and-swap: the remote's branch moved between the read and the delete."""
    a, b, _url, _opts = shared
    with Store.open(a) as sa:
        doomed = Remote(sa, "origin")
        plan = doomed.plan_deletes(["feat"])
        ds("switch", "feat", cwd=b)
        moved = commit(b, "more.txt", "b's work")
        ds("push", "origin", "feat", cwd=b)
        with pytest.raises(RefConflict, match="moved since it was read .*nothing was deleted"):
            doomed.apply_deletes(plan)
        assert sa.meta.ref_target("refs/remotes/origin/feat") is not None  # nothing deleted here
    assert remote_refs(a)["refs/heads/feat"] == moved
    # with the versions another store pushed: fetched first, so this store's reflog names them
    ds("push", "origin", "--delete", "feat", cwd=a)
    assert ds("log", "--json", "origin/feat@{1}", cwd=a).stdout.count(moved) == 1


def test_a_delete_in_progress_reads_as_gone_and_holds_off_pushes(tmp_path: Path) -> None:
    """A delete killed between its compare-and-swap and the removal leaves the mark: every
    reader takes it for no branch; a push takes the name over only once the mark is older
    than a lease can be (a push landing in between would otherwise be removed)."""
    url = str(tmp_path / "remote")
    a, b = tmp_path / "a", tmp_path / "b"
    ds("init", str(a), cwd=tmp_path)
    commit(a, "f.txt", "1")
    ds("remote", "add", "origin", url, cwd=a)
    ds("push", "origin", "main", "main:feat", cwd=a)
    ds("clone", url, str(b), cwd=tmp_path)
    with Store.open(a) as sa:
        remote = Remote(sa, "origin")

        def killed(rels):
            raise KeyboardInterrupt

        remote.fs.delete = killed
        with pytest.raises(KeyboardInterrupt):
            remote.delete_refs(["feat"])
    mark = Path(url, "refs/heads/feat")
    assert mark.read_text().startswith("deleting ")
    r = ds("fetch", "--prune", cwd=b)
    assert "Warning" not in r.stderr and tracking(b) == ["origin/main"]
    assert fails("push", "origin", "--delete", "feat", cwd=a).startswith(
        "Error: unable to delete 'feat': remote ref does not exist")
    err = fails("push", "origin", "main:feat", cwd=a)
    assert "feat on " in err and "is being deleted" in err and "push it again in" in err
    assert mark.read_text().startswith("deleting ")
    old = time.time() - RemoteLock.STALE - 60
    os.utime(mark, (old, old))
    r = ds("push", "origin", "main:feat", cwd=a)
    assert " * [new branch]  main -> feat" in r.stderr
    assert set(remote_refs(a)) == {"refs/heads/main", "refs/heads/feat"}


def test_remote_gc_frees_a_deleted_branch_only_past_its_grace(folder) -> None:
    a, _b, url, opts = folder
    packs = {rel for rel in remote_files(url, opts) if rel.startswith("packs/")}
    assert len(packs) == 2  # main's, then feat's own
    ds("push", "origin", "--delete", "feat", "t1", cwd=a)
    with Store.open(a) as s:
        kept = gc_remote(s, "origin")  # default grace: a day
        assert kept.packs_deleted == 0 and kept.young_packs_kept == 1
        assert {rel for rel in remote_files(url, opts) if rel.startswith("packs/")} == packs
        freed = gc_remote(s, "origin", grace_seconds=0)
        assert freed.packs_deleted == 1
    assert len({rel for rel in remote_files(url, opts) if rel.startswith("packs/")}) == 1
    ds("fsck", "--remote", "origin", cwd=a)


def test_push_refuses_a_remote_whose_config_is_gone(tmp_path: Path, remote) -> None:
    """...while an empty location is made a remote as ever (here one that exists)."""
    url, opts = remote
    if "://" not in url:
        Path(url).mkdir()
    a = tmp_path / "a"
    ds("init", str(a), cwd=tmp_path)
    commit(a, "f.txt", "1")
    ds("remote", "add", "origin", url, *opts, cwd=a)
    ds("push", "-u", "origin", "main", cwd=a)
    assert {"config", "HEAD"} <= set(remote_files(url, opts))
    commit(a, "g.txt", "2")
    from objstore.remote_fs import RemoteFS

    fs = RemoteFS(url, dict(o.split("=", 1) for o in opts[1::2]))
    config = fs.cat("config")
    fs.delete(["config"])
    before = remote_files(url, opts)
    err = fails("push", cwd=a)
    assert f"remote {url} holds an objstore remote's files (HEAD, index/, meta/, packs/, refs/) but no " \
           "config file" in err
    assert "nothing was written" in err and "`ds fsck --remote origin`" in err
    assert '`hash = "xxh3-128"`' in err and "/config holding the 3 lines" in err
    assert remote_files(url, opts) == before
    assert "no config file" in fails("fetch", cwd=a)
    # unreadable: refused likewise, with the same fix
    fs.put("config", b"[store\nformat = ")
    before = remote_files(url, opts)
    err = fails("push", cwd=a)
    assert "config is unreadable" in err and "`ds fsck --remote origin`" in err
    assert remote_files(url, opts) == before
    # put back as the message says: the push goes on
    fs.put("config", config)
    ds("push", cwd=a)
    assert ds("fsck", "--remote", "origin", cwd=a).returncode == 0


def test_delete_api_refuses_before_anything_moves(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    a = tmp_path / "a"
    ds("init", str(a), cwd=tmp_path)
    commit(a, "f.txt", "1")
    ds("remote", "add", "origin", url, cwd=a)
    ds("push", "origin", "main", cwd=a)
    with Store.open(a) as s:
        with pytest.raises(DsError, match="cannot name a branch or tag"):
            Remote(s, "origin").delete_refs(["../x"])
        with pytest.raises(DsError, match="is not an objstore remote"):
            Remote(s, str(tmp_path / "nowhere")).delete_refs(["main"])


def test_prune_tags_deletes_the_tags_the_remote_lacks_and_each_can_be_restored(shared) -> None:
    a, b, url, _opts = shared
    ds("tag", "mine", cwd=b)  # made here, never pushed: git's -P deletes it too
    with Store.open(b) as s:
        old = {n: s.meta.ref_target(f"refs/tags/{n}") for n in ("mine", "t1")}
    ds("tag", "t2", cwd=a)
    ds("push", "origin", "t2", cwd=a)
    ds("push", "origin", "--delete", "t1", cwd=a)
    tags = ["mine", "t1"]
    assert [line.split()[0] for line in ds("tag", "-l", cwd=b).stdout.splitlines()] == tags

    # alone, as git's -P does nothing without -p: a clear error, nothing fetched or deleted
    assert fails("fetch", "-P", cwd=b) == ("Error: --prune-tags deletes tags only together with "
                                           "--prune, as git's; run `ds fetch --prune --prune-tags` "
                                           "(nothing was fetched)")
    assert [line.split()[0] for line in ds("tag", "-l", cwd=b).stdout.splitlines()] == tags

    out = json.loads(ds("fetch", "--prune", "--prune-tags", "--json", cwd=b).stdout)
    assert out["deleted"] == ["refs/tags/mine", "refs/tags/t1"]
    deleted = [u for u in out["updates"] if u.get("deleted")]
    assert deleted == [{"ref": f"refs/tags/{n}", "local": f"refs/tags/{n}", "old": old[n], "new": None,
                        "forced": False, "deleted": True} for n in ("mine", "t1")]
    assert [line.split()[0] for line in ds("tag", "-l", cwd=b).stdout.splitlines()] == ["t2"]
    assert ds("reflog", "t1", cwd=b).stdout.splitlines()[0].endswith(f"fetch: pruned, tag gone from {url}")

    # each is one command away, from its reflog; the next prune deletes only what is new
    ds("tag", "t1", "t1@{1}", cwd=b)
    with Store.open(b) as s:
        assert s.meta.ref_target("refs/tags/t1") == old["t1"]
    r = ds("fetch", "-p", "-P", cwd=b)
    assert " - [deleted]  (none) -> t1" in r.stderr.splitlines() and "mine" not in r.stderr
    assert "deleted" not in ds("fetch", "-p", "-P", cwd=b).stderr  # nothing left to prune


def test_prune_tags_keeps_a_tag_the_remote_holds_but_skips_as_invalid(folder) -> None:
    a, b, url, _opts = folder
    with Store.open(a) as s:
        remote = Remote(s, "origin")
        remote.fs.put("refs/tags/t1", b"garbage\n")  # t1 is still there, unreadable
    r = ds("fetch", "-p", "-P", cwd=b)
    assert "refs/tags/t1" in r.stderr and "Warning" in r.stderr
    assert [line.split()[0] for line in ds("tag", "-l", cwd=b).stdout.splitlines()] == ["t1"]
