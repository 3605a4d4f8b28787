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
    return ds("commit", "-m", message, cwd=w).stdout.strip()


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


@pytest.mark.parametrize("cmd,flags", [
    ("ls", ["-r", "-l", "--json"]), ("log", ["--oneline", "-n", "[-- PATH...]"]),
    ("restore", ["--staged", "--source", "--quiet"]), ("mv", ["--quiet"]),
    ("tag", ["--delete", "--quiet", "--json"]), ("du", ["--json"]),
    ("config", ["--global", "--list", "--unset", "--json"])])
def test_new_commands_have_help(cmd: str, flags: list[str], tmp_path: Path) -> None:
    out = ds(cmd, "--help", cwd=tmp_path).stdout
    assert f"Usage: ds {cmd}" in out and all(f in out for f in flags)


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
    assert ds("ls", "-l", "HEAD", "top.txt", cwd=repo).stdout.split() == ["file", "6", "top.txt"]


def test_ls_in_a_subfolder_lists_it_from_there_as_gits_ls_tree(repo: Path) -> None:
    write(repo, "a/b/y.txt", "new")
    _commit(repo, "two")
    a = repo / "a"
    assert ds("ls", cwd=a).stdout.splitlines() == ["b/"]
    assert ds("ls", "-r", cwd=a).stdout.splitlines() == ["b/x.txt", "b/y.txt"]
    assert ds("ls", "HEAD", "b", cwd=a).stdout.splitlines() == ["b/x.txt", "b/y.txt"]
    assert ds("ls", "HEAD~1", cwd=a / "b").stdout.splitlines() == ["x.txt"]  # a REV, listed from here
    assert ds("ls", "..", cwd=a).stdout.splitlines() == ["./", "../lnk", "../run.sh", "../top.txt"]
    assert ds("ls", "-l", "../top.txt", cwd=a).stdout.split() == ["file", "6", "../top.txt"]
    assert ds("ls", "-r", "--full-name", cwd=a).stdout.splitlines() == ["a/b/x.txt", "a/b/y.txt"]
    assert ds("ls", "--full-tree", cwd=a).stdout.splitlines() == ["a/", "lnk", "run.sh", "top.txt"]
    assert ds("-C", "a", "ls", cwd=repo).stdout.splitlines() == ["b/"]
    rows = json.loads(ds("ls", "-r", "--json", cwd=a).stdout)  # for scripts: from the root
    assert [r["path"] for r in rows] == ["a/b/x.txt", "a/b/y.txt"]
    (repo / "new").mkdir()  # a folder the version does not hold: nothing, exit 0, as git's
    assert ds("ls", cwd=repo / "new").stdout == ""
    p = ds("ls", "HEAD", "nope", cwd=a, check=False)  # a path given is still checked
    assert p.returncode == 1 and "a/nope is not in version" in p.stderr
    # --full-tree reads paths from the root too, as git's
    assert ds("ls", "--full-tree", ".", cwd=a).stdout.splitlines() == ["a/", "lnk", "run.sh", "top.txt"]
    assert ds("ls", "--full-tree", "a/b", cwd=a).stdout.splitlines() == ["a/b/x.txt", "a/b/y.txt"]
    # through a link to the folder, as from the folder itself (git's -C goes into it)
    (repo.parent / "into-a").symlink_to(a)
    assert ds("-C", str(repo.parent / "into-a"), "ls", cwd=repo).stdout.splitlines() == ["b/"]
    # in the store's own folder there is no folder of the version: from the root
    assert ds("ls", cwd=repo / ".dsstore").stdout.splitlines() == ["a/", "lnk", "run.sh", "top.txt"]
    # a folder where the version has a file: nothing, as git's ls-tree
    (repo / "top.txt").unlink()
    (repo / "top.txt").mkdir()
    assert ds("ls", cwd=repo / "top.txt").stdout == ""
    assert ds("status", "-s", cwd=repo / "top.txt").stdout.splitlines() == [" D ./"]


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


# -- ds log [REV] [-- PATH...] ----------------------------------------------------------

def _three_versions(w: Path) -> list[str]:
    """v1 (repo), v2 changes top.txt, v3 adds a/b/z.txt; ids newest first."""
    v1 = ds("log", "--json", cwd=w)
    write(w, "top.txt", "changed\n")
    v2 = _commit(w, "two\n\nbody")
    write(w, "a/b/z.txt", "z")
    v3 = _commit(w, "three")
    return [v3, v2, json.loads(v1.stdout)[0]["id"]]


def _ids(proc) -> list[str]:
    return [e["id"] for e in json.loads(proc.stdout)]


def test_log_dash_dash_paths_shows_only_versions_that_changed_them(repo: Path) -> None:
    v3, v2, v1 = _three_versions(repo)
    assert _ids(ds("log", "--json", "--", "a/b/x.txt", cwd=repo)) == [v1]  # a root holding it
    assert _ids(ds("log", "--json", "--", "a", cwd=repo)) == [v3, v1]  # the subtree changed
    assert _ids(ds("log", "--json", "HEAD~1", "--", "a", cwd=repo)) == [v1]
    assert _ids(ds("log", "--json", "--", "top.txt", "a/b/z.txt", cwd=repo)) == [v3, v2, v1]
    assert _ids(ds("log", "--json", "-n", "1", "--", "top.txt", cwd=repo)) == [v2]
    assert _ids(ds("log", "--json", "--", "nothing-here", cwd=repo)) == []
    assert _ids(ds("log", "--json", "--", "b", cwd=repo / "a")) == [v3, v1]  # relative to cwd
    assert _ids(ds("log", "--json", "--", cwd=repo)) == [v3, v2, v1]  # no path: everything
    assert _ids(ds("-C", str(repo), "log", "--json", "-n", "1", "--", "a", cwd=repo.parent)) == [v3]


def test_log_oneline_has_prefix_decorations_and_first_line(repo: Path) -> None:
    v3, v2, v1 = _three_versions(repo)
    ds("tag", "first", v1, cwd=repo)
    lines = ds("log", "--oneline", cwd=repo).stdout.splitlines()
    assert lines == [f"{v3[:12]} (HEAD -> main) three", f"{v2[:12]} two", f"{v1[:12]} (first) one"]
    assert ds("log", "--oneline", "--", "top.txt", cwd=repo).stdout.splitlines() == lines[1:]


def test_log_path_with_graph_or_outside_is_one_line(repo: Path, tmp_path: Path) -> None:
    p = ds("log", "--graph", "--", "a", cwd=repo, check=False)
    assert p.returncode == 1 and p.stderr.startswith("Error: --graph") and len(p.stderr.splitlines()) == 1
    p = ds("log", "--", str(tmp_path), cwd=repo, check=False)
    assert p.returncode == 1 and "outside the working folder" in p.stderr
    assert "[-- PATH...]" in ds("log", "--help", cwd=repo).stdout


def test_log_paths_library_folder_becoming_file(store: Store) -> None:
    from objstore.worktree import add

    w = store.worktree
    write(w, "p/q", "1")
    add(store, [str(w)])
    a = store.commit("a").id
    os.unlink(w / "p/q")
    os.rmdir(w / "p")
    write(w, "p", "now a file")
    write(w, "other", "x")
    add(store, [str(w)])
    b = store.commit("b").id
    write(w, "other", "y")
    add(store, [str(w)])
    c = store.commit("c").id
    assert [e.id for e in store.log(paths=["p"])] == [b, a]
    assert [e.id for e in store.log(paths=[""])] == [c, b, a]
    assert [e.id for e in store.log(paths=["other"], limit=1)] == [c]


# -- ds restore -------------------------------------------------------------------------

def _status(w: Path) -> dict:
    return json.loads(ds("status", "--json", cwd=w).stdout)


def test_restore_working_files_from_the_stage(repo: Path) -> None:
    write(repo, "top.txt", "ruined")
    os.unlink(repo / "a/b/x.txt")
    os.rmdir(repo / "a/b")
    p = ds("restore", "top.txt", "a", cwd=repo)
    assert "Restored 2 file(s) from the stage" in p.stderr
    assert (repo / "top.txt").read_text() == "hello\n" and (repo / "a/b/x.txt").read_text() == "hi\n"
    assert _status(repo)["modified"] == [] and _status(repo)["removed"] == []
    write(repo, "top.txt", "staged change")
    ds("add", "top.txt", "-q", cwd=repo)
    write(repo, "top.txt", "later change")
    ds("restore", "-q", "top.txt", cwd=repo)  # from the stage, not from HEAD
    assert (repo / "top.txt").read_text() == "staged change"


def test_restore_staged_unstages_and_leaves_the_file(repo: Path) -> None:
    write(repo, "top.txt", "changed")
    write(repo, "new.txt", "new")
    ds("add", "top.txt", "new.txt", "-q", cwd=repo)
    p = ds("restore", "--staged", "top.txt", "new.txt", cwd=repo)
    assert "Unstaged 2 file(s)" in p.stderr
    st = _status(repo)
    assert st["staged"] == {"added": [], "modified": [], "removed": [], "renamed": []}
    assert (st["modified"], st["added"]) == (["top.txt"], ["new.txt"])
    assert (repo / "top.txt").read_text() == "changed" and (repo / "new.txt").read_text() == "new"


def test_restore_source_rev_and_no_overlay_folder(repo: Path) -> None:
    v3, v2, v1 = _three_versions(repo)
    write(repo, "a/untracked.tmp", "mine")
    ds("restore", "--source", v1, "a", "top.txt", cwd=repo)
    assert (repo / "top.txt").read_text() == "hello\n"
    assert not (repo / "a/b/z.txt").exists()  # tracked, not in v1: removed (git's no-overlay)
    assert (repo / "a/untracked.tmp").read_text() == "mine"  # untracked: left alone
    assert ds("ls", "HEAD", "a/b", cwd=repo).stdout.split() == ["a/b/x.txt", "a/b/z.txt"]  # HEAD kept
    st = _status(repo)
    assert (st["modified"], st["removed"]) == (["top.txt"], ["a/b/z.txt"])
    ds("restore", "--staged", "--source", v1, "top.txt", cwd=repo)
    assert _status(repo)["staged"]["modified"] == ["top.txt"]  # the stage holds v1's top.txt now
    assert (repo / "top.txt").read_text() == "hello\n"


def test_restore_refuses_unknown_paths_and_untracked_content_in_the_way(repo: Path) -> None:
    for args, msg in ((["nope"], "nope is not in the stage"),
                      (["--staged", "nope"], "nope is in neither"),
                      (["--source", "HEAD", "nope"], "nope is not in version"),
                      (["--source", "v9", "top.txt"], "no version matches 'v9'")):
        p = ds("restore", *args, cwd=repo, check=False)
        assert p.returncode == 1 and msg in p.stderr and len(p.stderr.splitlines()) == 1, p.stderr
    os.unlink(repo / "top.txt")
    write(repo, "top.txt/keep.me", "precious")  # a folder of untracked work where a file was
    p = ds("restore", "top.txt", cwd=repo, check=False)
    assert p.returncode == 1 and "top.txt/keep.me is not versioned" in p.stderr
    assert (repo / "top.txt/keep.me").read_text() == "precious"


def test_restore_library_whole_stage_and_cache(store: Store) -> None:
    from objstore.worktree import add, restore, status

    write(store.worktree, "f", "1")
    add(store, [str(store.worktree)])
    store.commit("one")
    write(store.worktree, "f", "22")
    write(store.worktree, "g", "new")
    add(store, [str(store.worktree)])
    report = restore(store, ["."], staged=True, cwd=str(store.worktree))
    assert report.restored == ["f"] and store.staged_tree() == store.head_tree()
    report = restore(store, ["f"], source="HEAD", cwd=str(store.worktree))
    assert report.restored == ["f"] and (store.worktree / "f").read_text() == "1"
    st = status(store)
    assert (st.modified, st.added) == ([], ["g"])
    with pytest.raises(DsError, match="name the paths"):
        restore(store, [])


# -- ds mv ------------------------------------------------------------------------------

def test_mv_file_and_folder_stages_the_rename(repo: Path) -> None:
    write(repo, "a/untracked.tmp", "mine")
    write(repo, "top.txt", "unstaged edit")
    assert "Moved top.txt -> docs.txt" in ds("mv", "top.txt", "docs.txt", cwd=repo).stderr
    ds("mv", "a", "data", cwd=repo)
    assert (repo / "docs.txt").read_text() == "unstaged edit"  # the edit moves, still unstaged
    assert (repo / "data/untracked.tmp").read_text() == "mine" and not (repo / "a").exists()
    staged = _status(repo)["staged"]
    # the stage moves its entry (the staged content), not the unstaged edit
    assert staged["renamed"] == [{"from": "a/b/x.txt", "to": "data/b/x.txt"},
                                 {"from": "top.txt", "to": "docs.txt"}]
    assert staged["added"] == staged["removed"] == staged["modified"] == []
    ds("commit", "-m", "moved", "-q", cwd=repo)
    assert ds("ls", "-r", cwd=repo).stdout.splitlines() == ["data/b/x.txt", "docs.txt", "lnk", "run.sh"]
    assert (repo / "docs.txt").read_text() == "unstaged edit"
    assert _status(repo)["modified"] == ["docs.txt"]


def test_mv_into_an_existing_folder_and_from_a_subfolder(repo: Path) -> None:
    ds("mv", "-q", "run.sh", "a", cwd=repo)
    ds("mv", "x.txt", "../../x2.txt", cwd=repo / "a/b")
    assert os.access(repo / "a/run.sh", os.X_OK) and (repo / "x2.txt").read_text() == "hi\n"
    ds("commit", "-m", "moved", "-q", cwd=repo)
    d = json.loads(ds("diff", "HEAD~1", "HEAD", "--json", cwd=repo).stdout)
    assert d["renamed"] == [{"from": "a/b/x.txt", "to": "x2.txt"}, {"from": "run.sh", "to": "a/run.sh"}]
    assert ds("ls", "-l", "HEAD", "a/run.sh", cwd=repo).stdout.split()[0] == "exec"


def test_mv_refusals_change_nothing(repo: Path) -> None:
    write(repo, "loose.txt", "untracked")
    os.unlink(repo / "run.sh")
    cases = ((["loose.txt", "x"], "loose.txt is not versioned"),
             (["top.txt", "lnk"], "lnk already exists"),
             (["top.txt", ".dsstore/x"], "inside .dsstore"),
             (["a", "a/b/c"], "cannot move a into itself"),
             (["run.sh", "r.sh"], "missing from the working folder"),
             (["a", "top.txt/in"], "top.txt is not a folder"),
             (["nope", "x"], "nope is not versioned"),
             ([".", "x"], "working folder itself"))
    for args, msg in cases:
        p = ds("mv", *args, cwd=repo, check=False)
        assert p.returncode == 1 and msg in p.stderr and len(p.stderr.splitlines()) == 1, (args, p.stderr)
    st = _status(repo)
    assert st["staged"] == {"added": [], "modified": [], "removed": [], "renamed": []}
    assert (repo / "top.txt").read_text() == "hello\n" and (repo / "a/b/x.txt").exists()


def test_mv_library_keeps_the_stat_cache(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import time
    from types import SimpleNamespace

    from objstore import statcache
    from objstore.scan import Stat
    from objstore.worktree import add, move

    # the cache's clock well past the files' times: no row falls in the racy window
    later = time.time_ns() + 10**12
    monkeypatch.setattr(statcache, "time", SimpleNamespace(time_ns=lambda: later))

    write(store.worktree, "d/f.bin", os.urandom(1000))
    add(store, [str(store.worktree)])
    store.commit("one")
    before = store.stat_cache().get("d/f.bin", Stat.of(os.lstat(store.worktree / "d/f.bin")))
    report = move(store, "d", "e", cwd=str(store.worktree))
    assert (report.src, report.dst, report.files) == ("d", "e", [("d/f.bin", "e/f.bin")])
    moved = store.stat_cache().get("e/f.bin", Stat.of(os.lstat(store.worktree / "e/f.bin")))
    assert before is not None and moved == before  # a moved file is not read again
    assert store.stat_cache().get("d/f.bin", Stat.of(os.lstat(store.worktree / "e/f.bin"))) is None


# -- ds tag -d --------------------------------------------------------------------------

def test_tag_delete_keeps_the_reflog(repo: Path) -> None:
    v1 = json.loads(ds("log", "--json", cwd=repo).stdout)[0]["id"]
    ds("tag", "-q", "v1", cwd=repo)
    ds("tag", "v2", v1, cwd=repo)
    assert ds("tag", cwd=repo).stdout.splitlines() == [f"v1\t{v1}", f"v2\t{v1}"]
    p = ds("tag", "-d", "v1", cwd=repo)
    assert f"Deleted tag v1 (was {v1[:12]}" in p.stderr
    assert ds("tag", cwd=repo).stdout.splitlines() == [f"v2\t{v1}"]
    assert json.loads(ds("tag", "--json", cwd=repo).stdout) == {"v2": v1}
    log = (repo / ".dsstore/meta/logs/refs/tags/v1").read_text().splitlines()
    assert log[-1].startswith(f"{v1} {'0' * 40} ") and log[-1].endswith("tag: deleted v1")
    with Store.open(repo) as s:
        assert v1 in s.meta.reflog_versions(0)  # gc's grace period still reaches it
    ds("tag", "v1", v1[:12], cwd=repo)  # and the name can be given again
    assert json.loads(ds("tag", "--json", cwd=repo).stdout) == {"v1": v1, "v2": v1}


def test_tag_delete_errors_are_one_line(repo: Path) -> None:
    for args, msg in ((["-d", "nope"], "no tag named 'nope'"), (["-d"], "-d takes one tag name"),
                      (["-d", "v1", "HEAD"], "-d takes one tag name")):
        p = ds("tag", *args, cwd=repo, check=False)
        assert p.returncode == 1 and msg in p.stderr and len(p.stderr.splitlines()) == 1


def test_delete_tag_library(store: Store) -> None:
    from objstore.tags import delete_tag
    from objstore.worktree import add

    write(store.worktree, "f", "1")
    add(store, [str(store.worktree)])
    cid = store.commit("one").id
    store.tag("t", cid)
    assert delete_tag(store, "t") == cid and store.meta.tags() == {}
    with pytest.raises(DsError, match="no tag named 't'"):
        delete_tag(store, "t")


# -- ds du ------------------------------------------------------------------------------

def _stored_len(store: Store, cid: bytes) -> int:
    return store.chunks.locate(cid).stored_len


def test_du_logical_stored_and_what_each_version_adds(store: Store) -> None:
    from objstore.usage import disk_usage
    from objstore.worktree import add

    w = store.worktree
    data = b"".join(b"row %d,label %d\n" % (i, i % 7) for i in range(200_000))  # compressible
    write(w, "t.csv", data)
    add(store, [str(w)])
    v1 = store.commit("one").id
    write(w, "copy/t.csv", data)  # the same bytes again: no new chunk
    add(store, [str(w)])
    v2 = store.commit("two").id
    write(w, "new.bin", os.urandom(5000))
    add(store, [str(w)])
    v3 = store.commit("three").id

    u1 = disk_usage(store, v1)
    chunks1 = {c for _p, e in store.meta.walk(store.tree(v1)) for c, _ in e.chunk_list()}
    assert (u1.files, u1.logical, u1.chunks) == (1, len(data), len(chunks1))
    assert u1.stored == sum(_stored_len(store, c) for c in chunks1) < len(data) // 3
    u2 = disk_usage(store, v2)
    assert (u2.files, u2.logical, u2.stored) == (2, 2 * len(data), u1.stored)
    u3 = disk_usage(store, "HEAD")
    new_chunk = store.meta.lookup(store.tree(v3), "new.bin").hash
    assert [(h.id, h.adds, h.chunks) for h in u3.history] == [
        (v3, _stored_len(store, new_chunk), 1), (v2, 0, 0), (v1, u1.stored, len(chunks1))]
    assert u3.stored == u1.stored + _stored_len(store, new_chunk) == sum(h.adds for h in u3.history)
    assert u3.missing == 0 and u3.as_json()["history"][0]["message"] == "three"


def test_du_counts_a_delta_and_its_base(store: Store) -> None:
    from objstore.packs import FLAG_DELTA
    from objstore.usage import disk_usage
    from objstore.worktree import add

    w = store.worktree
    text = os.urandom(3000).hex()
    write(w, "small.txt", text)
    add(store, [str(w)])
    store.commit("one")
    base = store.meta.lookup(store.head_tree(), "small.txt").hash
    write(w, "small.txt", text[:3000] + "changed" + text[3007:])
    add(store, [str(w)])
    store.commit("two")
    delta = store.meta.lookup(store.head_tree(), "small.txt").hash
    assert store.chunks.locate(delta).flags & FLAG_DELTA  # the small change is stored as a delta
    u = disk_usage(store)
    assert u.chunks == 2 and u.stored == _stored_len(store, delta) + _stored_len(store, base)
    assert [h.adds for h in u.history] == [_stored_len(store, delta), _stored_len(store, base)]
    assert u.history[0].adds < u.history[1].adds // 10


def test_du_cli(repo: Path) -> None:
    v3, v2, v1 = _three_versions(repo)
    out = json.loads(ds("du", "--json", cwd=repo).stdout)
    assert (out["version"], out["files"], out["logical"]) == (v3, 5, 3 + 8 + 10 + 7 + 1)
    assert [h["id"] for h in out["history"]] == [v3, v2, v1]
    assert [h["chunks"] for h in out["history"]] == [1, 1, 4]  # z.txt; top.txt; x, top, run.sh, lnk
    text = ds("du", "HEAD~1", cwd=repo).stdout.splitlines()
    assert text[0] == f"version  {v2[:12]}" and text[1] == "files    4"
    assert text[-1].startswith(v1[:12]) and text[-1].endswith("one")
    p = ds("du", "nope", cwd=repo, check=False)
    assert p.returncode == 1 and "no version matches 'nope'" in p.stderr


def test_du_in_a_sparse_clone_names_chunks_on_the_remote_only(repo: Path, tmp_path: Path) -> None:
    ds("remote", "add", "origin", str(tmp_path / "remote"), cwd=repo)
    ds("push", "-q", cwd=repo)
    ds("clone", str(tmp_path / "remote"), str(tmp_path / "part"), "--include", "a/", "-q", cwd=tmp_path)
    whole = json.loads(ds("du", "--json", cwd=repo).stdout)
    part = json.loads(ds("du", "--json", cwd=tmp_path / "part").stdout)
    assert (part["logical"], part["chunks"], part["missing"]) == (whole["logical"], 4, 3)
    assert part["stored"] == 3  # a/b/x.txt's one chunk; the other three are not here
    line = ds("du", cwd=tmp_path / "part").stdout.splitlines()[3]
    assert line == "stored   3 B (3 bytes in 1 of 4 chunks; 3 on a remote only, not counted)"


# -- ds config --------------------------------------------------------------------------

@pytest.fixture
def cfg_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """User settings in a temp folder (never the real user's), no DS_* overrides."""
    home = tmp_path / "cfg"
    monkeypatch.setenv("DS_CONFIG_HOME", str(home))
    for var in ("DS_AUTHOR", "DS_CACHE_ROWS"):
        monkeypatch.delenv(var, raising=False)
    return home


def test_config_global_user_name_is_the_author(repo: Path, cfg_home: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import tomllib

    ds("config", "--global", "user.name", "Data Team", cwd=repo)
    assert tomllib.loads((cfg_home / "config.toml").read_text()) == {"user": {"name": "Data Team"}}
    assert ds("config", "user.name", cwd=repo).stdout == "Data Team\n"
    write(repo, "top.txt", "v2")
    ds("add", "-A", cwd=repo)
    ds("commit", "-m", "by ada", "-q", cwd=repo)
    write(repo, "top.txt", "v3")
    ds("add", "top.txt", cwd=repo)
    ds("commit", "-m", "by ada again", "-q", cwd=repo)
    monkeypatch.setenv("DS_AUTHOR", "ci-bot")  # the environment wins over the file
    assert ds("config", "user.name", cwd=repo).stdout == "ci-bot\n"
    assert ds("config", "--global", "user.name", cwd=repo).stdout == "Data Team\n"
    write(repo, "top.txt", "v4")
    ds("add", "-A", cwd=repo)
    ds("commit", "-m", "by the bot", "-q", cwd=repo)
    authors = [e["author"] for e in json.loads(ds("log", "--json", cwd=repo).stdout)]
    assert authors[:3] == ["ci-bot", "Data Team", "Data Team"] and authors[3] != "Data Team"
    p = ds("config", "--global", "user.name", "X", cwd=repo)
    assert "DS_AUTHOR is set in this environment and wins over user.name" in p.stderr


def test_config_store_settings_list_and_unset(repo: Path, cfg_home: Path, tmp_path: Path) -> None:
    ds("config", "store.zstd_level", "9", cwd=repo)
    assert Store.open(repo).config.zstd_level == 9
    assert ds("config", "store.zstd_level", cwd=repo).stdout == "9\n"
    ds("config", "--global", "cache.rows", "1000", cwd=repo)
    ds("config", "--global", "remote.default", "s3://bucket/team", cwd=repo)
    # a store with no default remote of its own uses the user's
    assert ds("config", "remote.default", cwd=repo).stdout == "s3://bucket/team\n"
    ds("remote", "add", "origin", str(tmp_path / "remote"), cwd=repo)
    assert ds("config", "remote.default", cwd=repo).stdout == "origin\n"
    lines = ds("config", "--list", cwd=repo).stdout.splitlines()
    assert lines[:3] == ["cache.rows=1000", "remote.default=s3://bucket/team",  # global first,
                         "chunking.avg_size=393216"]  # then the store's
    assert "store.zstd_level=9" in lines and f"remotes.origin.url={tmp_path / 'remote'}" in lines
    data = json.loads(ds("config", "--list", "--json", cwd=repo).stdout)
    assert data["global"] == {"cache.rows": 1000, "remote.default": "s3://bucket/team"}
    assert data["store"]["remote.default"] == "origin" and data["store"]["store.hash"] == "xxh3-128"
    assert json.loads(ds("config", "--global", "--list", "--json", cwd=repo).stdout) == {
        "global": data["global"]}
    ds("config", "--unset", "remote.default", cwd=repo)
    assert Store.open(repo).config.remote is None
    ds("config", "--global", "--unset", "cache.rows", cwd=repo)
    p = ds("config", "--global", "cache.rows", cwd=repo, check=False)
    assert p.returncode == 1 and p.stdout == "" and p.stderr == "cache.rows is not set\n"
    assert ds("config", "user.name", cwd=tmp_path, check=False).returncode == 1  # outside a store too


def test_config_mistakes_are_one_line(repo: Path, cfg_home: Path, tmp_path: Path) -> None:
    cases = ((["foo.bar"], "unknown setting 'foo.bar'; user settings (--global): user.name, cache.rows"),
             (["--global", "foo.bar", "1"], "unknown setting 'foo.bar'"),
             (["user.name", "Bob"], "user.name is a user setting: `ds config --global user.name VALUE`"),
             (["--global", "store.zstd_level", "5"], "store.zstd_level is a store setting"),
             (["store.hash", "blake3"], "store.hash cannot be changed"),
             (["chunking.avg_size", "1"], "chunking.avg_size cannot be changed"),
             (["store.zstd_level", "99"], "must be between 1 and 22"),
             (["store.pack_target", "big"], "takes a whole number"),
             (["--global", "cache.rows", "0"], "cache.rows must be 1 or more"),
             (["remote.default", "nope"], "no remote named 'nope'"),
             (["remotes.x.url", "/tmp/x"], "managed by `ds remote`"),
             (["--unset", "store.zstd_level"], "always has a value"),
             (["--global", "--unset", "user.name"], "user.name is not set in"),
             (["--list", "user.name"], "--list takes no KEY"),
             ([], "give a KEY (or --list)"))
    for args, msg in cases:
        p = ds("config", *args, cwd=repo, check=False)
        assert p.returncode == 1 and msg in p.stderr and len(p.stderr.splitlines()) == 1, (args, p.stderr)
    p = ds("config", "remote.default", "x", cwd=tmp_path, check=False)
    assert p.returncode == 1 and "use --global" in p.stderr
    assert not (cfg_home / "config.toml").exists()  # nothing was written by a refusal


def test_userconfig_library(cfg_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import platformdirs

    from objstore import userconfig as uc
    from objstore.errors import FormatError

    assert uc.config_path() == cfg_home / "config.toml"
    assert (uc.user_name(), uc.cache_rows(), uc.default_remote()) == (None, None, None)
    uc.set_value("cache.rows", "2000")
    uc.set_value("user.name", 'quote " and ünïcode')
    assert uc.load() == {"cache.rows": 2000, "user.name": 'quote " and ünïcode'}
    assert (uc.cache_rows(), uc.user_name()) == (2000, 'quote " and ünïcode')
    monkeypatch.setenv("DS_CACHE_ROWS", "10")
    assert uc.effective("cache.rows") == (10, "DS_CACHE_ROWS")
    with pytest.raises(DsError, match="unknown user setting 'x.y'; known: user.name, cache.rows"):
        uc.set_value("x.y", "1")
    (cfg_home / "config.toml").write_text("[user]\nname = 'a'\nemail = 'b'\n")
    with pytest.raises(FormatError, match=r"config.toml: unknown setting 'user.email' \(known: user.name"):
        uc.load()
    (cfg_home / "config.toml").write_text("[cache]\nrows = 'many'\n")
    with pytest.raises(FormatError, match="cache.rows must be a whole number"):
        uc.load()
    monkeypatch.delenv("DS_CONFIG_HOME")
    assert uc.config_path() == platformdirs.user_config_path("objstore") / "config.toml"


def test_userconfig_export_env_fills_only_unset_variables(cfg_home: Path) -> None:
    from objstore import userconfig as uc

    uc.set_value("cache.rows", "1234")
    uc.set_value("user.name", "Data Team")
    uc.set_value("remote.default", "s3://b/p")
    env = {"DS_AUTHOR": "ci-bot"}
    uc.export_env(env)
    assert env == {"DS_AUTHOR": "ci-bot", "DS_CACHE_ROWS": "1234"}  # the environment wins
    (cfg_home / "config.toml").write_text("not toml [")
    env = {}
    uc.export_env(env)  # a broken file is ds config's to report, not every command's
    assert env == {}


def test_store_config_keys_library(store: Store) -> None:
    from objstore.config import store_get, store_items, store_set

    c = store_set(store.config, "store.pack_target", str(8 << 20))
    store.set_config(c)
    assert Store.open(store.worktree).config.pack_target == 8 << 20
    assert store_get(store.config, "store.pack_target") == 8 << 20
    assert store_get(store.config, "remote.default") is None
    assert store_set(store.config, "remote.default", "s3://b/p").remote == "s3://b/p"
    assert "remote.default" not in store_items(store.config)
    with pytest.raises(DsError, match="unknown store setting 'store.nope'; known: store.format"):
        store_get(store.config, "store.nope")


def test_status_after_add_lists_a_file_once_as_staged(store: Store, work: Path) -> None:
    from objstore.worktree import add, commit_all, status

    write(work, "a", "1")
    commit_all(store, "v1")
    write(work, "b", "new")
    write(work, "a", "2")
    add(store, [str(work / "b")])
    st = status(store)
    assert st.staged.as_json()["added"] == ["b"]
    assert st.added == [] and st.modified == ["a"], "b is staged, not also a change to stage"
    add(store, [str(work / "a")])
    st = status(store)
    assert st.modified == [] and st.staged.as_json()["modified"] == ["a"] and not st.clean


def test_status_shows_a_moved_file_as_a_rename_as_diff_does(repo: Path) -> None:
    write(repo, "big.bin", os.urandom(5000))
    _commit(repo, "big")
    (repo / "big.bin").rename(repo / "a" / "moved.bin")
    data = json.loads(ds("status", "--json", cwd=repo).stdout)
    assert data["renamed"] == [{"from": "big.bin", "to": "a/moved.bin"}]
    assert data["added"] == [] and data["removed"] == []
    assert "  renamed   big.bin -> a/moved.bin" in ds("status", cwd=repo).stdout.splitlines()
    assert "R  big.bin -> a/moved.bin" in ds("diff", cwd=repo).stdout
    (repo / "a" / "moved.bin").write_bytes(os.urandom(5000))  # same size, other bytes: no rename
    data = json.loads(ds("status", "--json", cwd=repo).stdout)
    assert data["renamed"] == [] and data["added"] == ["a/moved.bin"] and data["removed"] == ["big.bin"]
    assert json.loads(ds("status", "--json", cwd=repo).stdout)["renamed"] == []


def _pushed(repo: Path, tmp_path: Path) -> None:
    ds("remote", "add", "origin", str(tmp_path / "remote"), cwd=repo)
    ds("push", "-q", "-u", "origin", "main", cwd=repo)


def test_branch_verbose_shows_upstreams_and_ahead_behind(repo: Path, tmp_path: Path) -> None:
    _pushed(repo, tmp_path)
    write(repo, "top.txt", "changed\n")
    _commit(repo, "two\nmore text")
    ds("branch", "side", cwd=repo)
    tip = ds("log", "-n", "1", "--json", cwd=repo).stdout
    short = json.loads(tip)[0]["id"][:12]
    assert ds("branch", "-vv", cwd=repo).stdout.splitlines() == [
        f"* main {short} [origin/main: ahead 1] two", f"  side {short} two"]
    assert ds("branch", "-v", cwd=repo).stdout.splitlines()[0] == f"* main {short} [ahead 1] two"
    rows = {r["name"]: r for r in json.loads(ds("branch", "--json", cwd=repo).stdout)}
    assert rows["main"]["upstream"] == "origin/main" and rows["main"]["ahead"] == 1
    assert rows["side"]["upstream"] is None


def test_branch_set_and_unset_upstream(repo: Path, tmp_path: Path) -> None:
    _pushed(repo, tmp_path)
    ds("branch", "side", cwd=repo)
    proc = ds("branch", "--set-upstream-to", "origin/main", "side", cwd=repo)
    assert proc.stderr == "branch 'side' set up to track 'origin/main'.\n"
    assert "[origin/main] " in ds("branch", "-vv", cwd=repo).stdout.splitlines()[1]
    ds("branch", "--unset-upstream", cwd=repo)  # the current branch: main
    rows = {r["name"]: r["upstream"] for r in json.loads(ds("branch", "--json", cwd=repo).stdout)}
    assert rows == {"main": None, "side": "origin/main"}
    assert "set up to track" in ds("branch", "-u", "origin/main", cwd=repo).stderr
    for args, words in [(["-u", "origin/nope"], "ds fetch"), (["-u", "nope"], "REMOTE/BRANCH"),
                        (["-u", "origin/main", "ghost"], "no branch named 'ghost'"),
                        (["--unset-upstream", "side", "x"], "at most a branch NAME")]:
        proc = ds("branch", *args, cwd=repo, check=False)
        assert proc.returncode in (1, 2) and proc.stderr.count("\n") == 1, proc.stderr
        assert words in proc.stderr
    ds("branch", "--unset-upstream", "side", cwd=repo)
    proc = ds("branch", "--unset-upstream", "side", cwd=repo, check=False)
    assert proc.returncode == 1 and "has no upstream" in proc.stderr


def test_add_reports_named_paths_a_dsignore_hides(store: Store, work: Path) -> None:
    from objstore.worktree import add

    write(work, ".dsignore", "*.tmp\nbuild/\n")
    write(work, "sub/.dsignore", "secret.txt\n")
    write(work, "a.tmp", "x")
    write(work, "build/out.bin", "x")
    write(work, "sub/secret.txt", "x")
    write(work, "sub/ok.txt", "x")
    report = add(store, ["a.tmp", "build", "sub/secret.txt", "sub/ok.txt"], cwd=str(work))
    assert report.staged == 1
    assert report.ignored == [("a.tmp", str(work / ".dsignore")), ("build", str(work / ".dsignore")),
                              ("sub/secret.txt", str(work / "sub" / ".dsignore"))]
    store.commit("one", "t")
    (work / ".dsignore").write_text("*.txt\n")  # a tracked file stays versioned: not reported
    assert add(store, ["sub/ok.txt"], cwd=str(work)).ignored == []


def test_git_folders_are_never_versioned_as_in_git_and_dvc(tmp_path: Path) -> None:
    """A working folder that is also a git repository (code in git, data in ds), with a
    nested repository too: `.git` folders, and a worktree's `.git` link file, are never
    listed, added or committed; naming one is refused; the quick status stays clean."""
    ds("init", cwd=tmp_path)
    write(tmp_path, ".git/HEAD", "ref: refs/heads/main\n")
    write(tmp_path, ".git/objects/ab/cdef", b"\x00" * 100)
    write(tmp_path, "data/a.csv", "x,y\n1,2\n")
    write(tmp_path, "data/repo/.git/config", "[core]\n")
    write(tmp_path, "data/repo/readme.md", "hello\n")
    write(tmp_path, "data/wt/.git", "gitdir: /elsewhere\n")  # a git worktree's link file
    assert ds("status", "-s", cwd=tmp_path).stdout.splitlines() == [
        "?? data/a.csv", "?? data/repo/readme.md"]
    ds("add", ".", cwd=tmp_path)
    ds("commit", "-m", "data", cwd=tmp_path)
    listed = ds("ls", "-r", cwd=tmp_path).stdout.split()
    assert sorted(listed) == ["data/a.csv", "data/repo/readme.md"], listed
    assert ds("status", "-s", cwd=tmp_path).stdout == ""
    write(tmp_path, ".git/index", b"changed")
    assert ds("status", "-s", cwd=tmp_path).stdout == "", "git's own changes are not ds's"
    refused = ds("add", ".git/HEAD", cwd=tmp_path, check=False)
    assert refused.returncode == 1 and "never versioned" in refused.stderr


def _committed(tmp_path: Path, files: dict[str, str]) -> None:
    """A new store in ``tmp_path`` whose first version holds ``files`` (path: text)."""
    ds("init", cwd=tmp_path)
    for path, text in files.items():
        write(tmp_path, path, text)
    ds("add", "-A", cwd=tmp_path)
    ds("commit", "-m", "one", cwd=tmp_path)


def _main_and_branch(tmp_path: Path, branch: str, path: str) -> None:
    """A store on main (a.txt: "1") with ``branch`` one version ahead (``path``: "2")."""
    _committed(tmp_path, {"a.txt": "1"})
    ds("switch", "-c", branch, cwd=tmp_path)
    write(tmp_path, path, "2")
    ds("add", "-A", cwd=tmp_path)
    ds("commit", "-m", "two", cwd=tmp_path)
    ds("switch", "main", cwd=tmp_path)


def test_reflog_lists_where_head_and_branches_have_been_and_each_entry_resolves(tmp_path: Path) -> None:
    """git's reflog: after a squash and a deleted branch, every version HEAD or the branch
    was at is listed newest first, and NAME@{N} names it for log, show, get and branch."""
    _main_and_branch(tmp_path, "feat", "b.txt")
    two = json.loads(ds("log", "feat", "-n", "1", "--json", cwd=tmp_path).stdout)[0]["id"]
    ds("branch", "-D", "feat", cwd=tmp_path)
    moves = json.loads(ds("reflog", "--json", cwd=tmp_path).stdout)
    assert [m["selector"] for m in moves] == [f"HEAD@{{{i}}}" for i in range(len(moves))]
    assert [m["message"].split(":")[0] for m in moves] == ["checkout", "commit", "checkout", "commit"]
    assert moves[1]["id"] == two
    lines = ds("reflog", "-n", "2", cwd=tmp_path).stdout.splitlines()
    assert lines == [f"{moves[0]['id'][:12]} HEAD@{{0}}: {moves[0]['message']}",
                     f"{two[:12]} HEAD@{{1}}: commit: two"]
    shown = json.loads(ds("show", "HEAD@{1}", "--json", cwd=tmp_path).stdout)
    assert shown["id"] == two
    ds("branch", "feat", "HEAD@{1}", cwd=tmp_path)  # the deleted branch brought back
    assert json.loads(ds("log", "feat", "-n", "1", "--json", cwd=tmp_path).stdout)[0]["id"] == two
    feat = json.loads(ds("reflog", "feat", "--json", cwd=tmp_path).stdout)
    assert feat[0]["id"] == two and any(m["message"].startswith("branch: deleted") for m in feat)
    missing = ds("reflog", "nope", cwd=tmp_path, check=False)
    assert missing.returncode == 1 and "no reflog for 'nope'" in missing.stderr


def test_rm_never_drops_what_only_the_stage_holds(tmp_path: Path) -> None:
    """As git's rm: a file whose staged content no version holds (a new file, or a change
    added since the last commit) is refused, with the two ways on; --cached keeps the file,
    --force deletes it; a committed, unchanged file goes at once."""
    ds("init", cwd=tmp_path)
    write(tmp_path, "a.txt", "base\n")
    ds("add", "-A", cwd=tmp_path)
    ds("commit", "-m", "one", cwd=tmp_path)
    write(tmp_path, "a.txt", "important\n")
    write(tmp_path, "new.txt", "new\n")
    ds("add", "a.txt", "new.txt", cwd=tmp_path)
    for name in ("a.txt", "new.txt"):
        refused = ds("rm", name, cwd=tmp_path, check=False)
        assert refused.returncode == 1 and "--cached" in refused.stderr and "--force" in refused.stderr
    assert (tmp_path / "a.txt").read_text() == "important\n" and (tmp_path / "new.txt").exists()
    ds("rm", "--cached", "a.txt", cwd=tmp_path)  # the file keeps what was staged
    assert (tmp_path / "a.txt").read_text() == "important\n"
    write(tmp_path, "new.txt", "edited after add\n")
    refused = ds("rm", "--cached", "new.txt", cwd=tmp_path, check=False)
    assert refused.returncode == 1 and "neither in the file nor in any version" in refused.stderr
    ds("rm", "-f", "new.txt", cwd=tmp_path)
    assert not (tmp_path / "new.txt").exists()
    write(tmp_path, "c.txt", "c\n")
    ds("add", "c.txt", cwd=tmp_path)
    ds("commit", "-m", "two", cwd=tmp_path)
    ds("rm", "c.txt", cwd=tmp_path)
    assert not (tmp_path / "c.txt").exists()


def test_switch_carries_changes_to_paths_both_versions_hold_alike(tmp_path: Path) -> None:
    """As git: `switch -c` with work in progress keeps it (staged and not), and so does a
    switch to a branch whose version holds those paths alike; a path the two versions hold
    differently is refused as work to lose; --force undoes the changes."""
    _committed(tmp_path, {"z.txt": "z\n", "y.txt": "y\n"})
    write(tmp_path, "z.txt", "z\nmy work\n")
    write(tmp_path, "s.txt", "staged\n")
    ds("add", "s.txt", cwd=tmp_path)
    ds("switch", "-c", "feature", cwd=tmp_path)
    assert ds("status", "-s", cwd=tmp_path).stdout.splitlines() == ["A  s.txt", " M z.txt"]
    ds("commit", "-m", "s on feature", cwd=tmp_path)  # the staged file, not z
    write(tmp_path, "y.txt", "y on feature\n")
    ds("add", "y.txt", cwd=tmp_path)
    ds("commit", "-m", "y on feature", cwd=tmp_path)
    ds("switch", "main", cwd=tmp_path)  # z differs from HEAD, but main holds z as feature does
    assert (tmp_path / "z.txt").read_text() == "z\nmy work\n" and not (tmp_path / "s.txt").exists()
    assert ds("status", "-s", cwd=tmp_path).stdout.splitlines() == [" M z.txt"]
    write(tmp_path, "y.txt", "y\nlocal\n")  # y differs between main and feature
    refused = ds("switch", "feature", cwd=tmp_path, check=False)
    assert refused.returncode == 1 and "y.txt" in refused.stderr
    assert (tmp_path / "y.txt").read_text() == "y\nlocal\n"
    ds("switch", "--force", "feature", cwd=tmp_path)
    assert (tmp_path / "z.txt").read_text() == "z\n" and (tmp_path / "y.txt").read_text() == "y on feature\n"


def test_reflog_selectors_reach_deleted_refs_and_previous_branches(tmp_path: Path) -> None:
    """A deleted branch's or tag's NAME@{N} still names where it was (its reflog stays);
    NAME@{0} of a deletion says where to look instead; @{-1} and `ds switch -` are git's
    previous branch; out of range names the reflog's length."""
    ds("init", cwd=tmp_path)
    write(tmp_path, "a.txt", "1")
    ds("add", "-A", cwd=tmp_path)
    ds("commit", "-m", "one", cwd=tmp_path)
    one = json.loads(ds("log", "-n", "1", "--json", cwd=tmp_path).stdout)[0]["id"]
    ds("switch", "-c", "side", cwd=tmp_path)
    write(tmp_path, "b.txt", "2")
    ds("add", "-A", cwd=tmp_path)
    ds("commit", "-m", "two", cwd=tmp_path)
    two = json.loads(ds("log", "-n", "1", "--json", cwd=tmp_path).stdout)[0]["id"]
    ds("tag", "vt", cwd=tmp_path)
    assert json.loads(ds("show", "@{-1}", "--json", cwd=tmp_path).stdout)["id"] == one  # main
    ds("switch", "-", cwd=tmp_path)
    assert json.loads(ds("status", "--json", cwd=tmp_path).stdout)["branch"] == "main"
    ds("switch", "-", cwd=tmp_path)
    assert json.loads(ds("status", "--json", cwd=tmp_path).stdout)["branch"] == "side"
    ds("switch", "main", cwd=tmp_path)
    ds("branch", "-D", "side", cwd=tmp_path)
    ds("tag", "-d", "vt", cwd=tmp_path)
    assert json.loads(ds("show", "side@{1}", "--json", cwd=tmp_path).stdout)["id"] == two
    assert json.loads(ds("show", "vt@{1}", "--json", cwd=tmp_path).stdout)["id"] == two
    ds("branch", "rescued", "side@{1}", cwd=tmp_path)
    deleted = ds("show", "side@{0}", cwd=tmp_path, check=False)
    assert deleted.returncode == 1 and "side@{1} is the version it was at" in deleted.stderr
    far = ds("show", "HEAD@{99}", cwd=tmp_path, check=False)
    assert far.returncode == 1 and "ds reflog HEAD" in far.stderr


def test_status_in_a_folder_that_does_not_exist_is_an_error_not_the_parent_store(tmp_path: Path) -> None:
    ds("init", cwd=tmp_path)
    for form in ([], ["-s"]):
        r = ds("-C", str(tmp_path / "missing"), "status", *form, cwd=tmp_path, check=False)
        assert r.returncode == 1 and "no such folder" in r.stderr and r.stdout == ""


def test_reflog_says_what_moved_each_ref(tmp_path: Path) -> None:
    """Every move is logged with what made it, as git's reflog: branch creation, a commit on
    a detached HEAD, a squash, a tag, a fast-forward merge."""
    ds("init", cwd=tmp_path)
    write(tmp_path, "a.txt", "1")
    ds("add", "-A", cwd=tmp_path)
    ds("commit", "-m", "one", cwd=tmp_path)
    one = json.loads(ds("log", "-n", "1", "--json", cwd=tmp_path).stdout)[0]["id"]
    ds("branch", "b1", cwd=tmp_path)
    ds("tag", "t1", cwd=tmp_path)
    ds("checkout", one, cwd=tmp_path)
    write(tmp_path, "x.txt", "x")
    ds("add", "x.txt", cwd=tmp_path)
    ds("commit", "-m", "on a detached head", cwd=tmp_path)
    ds("switch", "b1", cwd=tmp_path)  # x.txt is committed on the detached version: nothing to lose
    ds("switch", "-c", "b2", cwd=tmp_path)
    ds("switch", "main", cwd=tmp_path)
    write(tmp_path, "m.txt", "m")
    ds("add", "-A", cwd=tmp_path)
    ds("commit", "-m", "two", cwd=tmp_path)
    ds("switch", "b2", cwd=tmp_path)
    ds("merge", "main", cwd=tmp_path)
    ds("squash", "HEAD", "-m", "flat", cwd=tmp_path)

    def messages(name: str) -> list[str]:
        return [m["message"] for m in json.loads(ds("reflog", name, "--json", cwd=tmp_path).stdout)]

    assert messages("b1") == ["branch: Created from HEAD"]
    assert messages("t1") == ["tag: HEAD"]
    assert messages("b2") == ["squash: 1 version", "merge main: Fast-forward", "branch: Created from HEAD"]
    head = messages("HEAD")
    assert "commit: on a detached head" in head and head[0] == "squash: 1 version"
    assert not [m for m in head if not m.strip()], head


def test_what_git_users_type_gets_gits_answer(tmp_path: Path) -> None:
    """Small corners a git user meets: log -n 0 and -n -1, a tag given to switch, a branch
    renamed onto another, a remote named as git refuses, mv into .git, help text as git's."""
    ds("init", cwd=tmp_path)
    write(tmp_path, "a.txt", "1")
    ds("add", "-A", cwd=tmp_path)
    ds("commit", "-m", "one", cwd=tmp_path)
    write(tmp_path, "b.txt", "2")
    ds("add", "-A", cwd=tmp_path)
    ds("commit", "-m", "two", cwd=tmp_path)
    assert ds("log", "-n", "0", "--oneline", cwd=tmp_path).stdout == ""
    assert len(ds("log", "-n", "-1", "--oneline", cwd=tmp_path).stdout.splitlines()) == 2
    ds("tag", "vt", cwd=tmp_path)
    r = ds("switch", "vt", cwd=tmp_path, check=False)
    assert r.returncode == 1 and "is a tag" in r.stderr and "ds checkout vt" in r.stderr
    ds("branch", "feat", cwd=tmp_path)
    r = ds("branch", "-m", "feat", "main", cwd=tmp_path, check=False)
    assert r.returncode == 1 and "ds branch -D main" in r.stderr and "-M" not in r.stderr
    for bad in ("bad name", "-x", "a/b", "a..b"):
        r = ds("remote", "add", "--", bad, str(tmp_path / "r"), cwd=tmp_path, check=False)
        assert r.returncode == 1 and "not a valid remote name" in r.stderr, bad
    assert json.loads(ds("remote", "list", "--json", cwd=tmp_path).stdout)["remotes"] == {}
    r = ds("mv", "a.txt", "sub/.git", cwd=tmp_path, check=False)
    assert r.returncode == 1 and "never versioned" in r.stderr and (tmp_path / "a.txt").exists()
    assert "\\[" not in ds("log", "--help", cwd=tmp_path).stdout


def test_merging_unrelated_histories_is_refused_unless_asked(tmp_path: Path) -> None:
    """As git: a lineage that shares no version with HEAD (here a squash made a new root)
    is not merged silently; --allow-unrelated-histories joins them."""
    ds("init", cwd=tmp_path)
    write(tmp_path, "a.txt", "1")
    ds("add", "-A", cwd=tmp_path)
    ds("commit", "-m", "one", cwd=tmp_path)
    ds("switch", "-c", "flat", cwd=tmp_path)
    ds("squash", "HEAD", "-m", "new root", cwd=tmp_path)
    write(tmp_path, "b.txt", "2")
    ds("add", "-A", cwd=tmp_path)
    ds("commit", "-m", "two on flat", cwd=tmp_path)
    ds("switch", "main", cwd=tmp_path)
    before = ds("log", "--oneline", cwd=tmp_path).stdout
    r = ds("merge", "flat", cwd=tmp_path, check=False)
    assert r.returncode == 1 and "unrelated histories" in r.stderr
    assert "--allow-unrelated-histories" in r.stderr
    assert ds("log", "--oneline", cwd=tmp_path).stdout == before and not (tmp_path / "b.txt").exists()
    ds("merge", "--allow-unrelated-histories", "flat", cwd=tmp_path)
    assert (tmp_path / "b.txt").read_text() == "2"


def test_diff_takes_paths_after_dashes_and_cached(tmp_path: Path) -> None:
    """git's diff: `-- PATH` keeps the changes at or under the paths; --cached (--staged)
    compares what is staged with the latest version."""
    _committed(tmp_path, {"a/x.txt": "1", "b.txt": "1"})
    write(tmp_path, "a/x.txt", "2")
    write(tmp_path, "b.txt", "2")
    write(tmp_path, "c.txt", "new")
    ds("add", "c.txt", cwd=tmp_path)
    both = json.loads(ds("diff", "--json", cwd=tmp_path).stdout)
    assert both["modified"] == ["a/x.txt", "b.txt"]
    only_a = json.loads(ds("diff", "--json", "--", "a", cwd=tmp_path).stdout)
    assert only_a["modified"] == ["a/x.txt"] and only_a["added"] == []
    staged = json.loads(ds("diff", "--cached", "--json", cwd=tmp_path).stdout)
    assert staged == {"added": ["c.txt"], "modified": [], "removed": [], "renamed": []}
    assert json.loads(ds("diff", "--staged", "--json", "--", "a", cwd=tmp_path).stdout)["added"] == []


def test_switch_refuses_a_carried_stage_where_a_file_meets_a_folder(tmp_path: Path) -> None:
    """A staged file `d` while the target holds a folder `d/`: carrying it would stage the
    folder's removal, which nobody did, so it is refused; a staged file that already holds
    the target's content is no loss, and the switch goes on."""
    _main_and_branch(tmp_path, "other", "d/x")
    write(tmp_path, "d", "mine")
    ds("add", "d", cwd=tmp_path)
    (tmp_path / "d").unlink()
    r = ds("switch", "other", cwd=tmp_path, check=False)
    assert r.returncode == 1 and "would be lost" in r.stderr
    ds("restore", "--staged", ".", cwd=tmp_path)
    write(tmp_path, "d/x", "2")  # exactly what `other` holds, staged
    ds("add", "d/x", cwd=tmp_path)
    ds("switch", "other", cwd=tmp_path)
    assert ds("status", "-s", cwd=tmp_path).stdout == ""


def test_squash_onto_a_named_branch_makes_the_checks_ds_branch_makes(repo: Path) -> None:
    """--branch NAME: a new branch, as `ds branch` makes one; an existing one only with -f
    (its reflog keeps the tip it had); never a tag's name, HEAD, or an option-like name."""
    ds("tag", "v1", cwd=repo)
    ds("branch", "feat", cwd=repo)
    feat = json.loads(ds("branch", "--json", cwd=repo).stdout)
    tip = next(b["id"] for b in feat if b["name"] == "feat")
    for name, needle in (("feat", "already exists"), ("v1", "is a tag name"), ("HEAD", "not a valid"),
                         ("-x", "not a valid")):
        r = ds("squash", "HEAD", "--branch", name, "-m", "sq", cwd=repo, check=False)
        assert r.returncode == 1 and needle in r.stderr, (name, r.stderr)
    assert ds("log", "--oneline", "v1", cwd=repo).stdout.count("\n") == 1
    assert {b["name"] for b in json.loads(ds("branch", "--json", cwd=repo).stdout)} == {"feat", "main"}
    moved = ds("squash", "HEAD", "--branch", "feat", "-f", "-m", "sq", "-q", cwd=repo).stdout.strip()
    assert ds("reflog", "feat", cwd=repo).stdout.splitlines()[1].startswith(tip[:12])
    flat = ds("squash", "HEAD", "--branch", "flat", "-m", "sq", "-q", cwd=repo).stdout.strip()
    branches = {b["name"]: b["id"] for b in json.loads(ds("branch", "--json", cwd=repo).stdout)}
    assert branches == {"feat": moved, "flat": flat, "main": tip}
