"""The `ds` command line through the installed entry point, as a user runs it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import ds, read_tree, write

COMMANDS = ["init", "add", "rm", "status", "commit", "log", "show", "diff", "checkout", "get",
            "tag", "squash", "fsck", "gc", "ui", "push", "fetch", "pull", "clone", "merge", "remote"]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_command_has_help(cmd: str, tmp_path: Path) -> None:
    proc = ds(cmd, "--help", cwd=tmp_path)
    assert "Usage" in proc.stdout and cmd in proc.stdout


def test_full_workflow(tmp_path: Path) -> None:
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "data/a.csv", "x,y\n1,2\n")
    write(w, "data/img.bin", os.urandom(4096))
    write(w, "run.sh", "#!/bin/sh\necho hi\n", mode=0o755)
    ds("add", "data", "run.sh", cwd=w)
    st = json.loads(ds("status", "--json", cwd=w).stdout)
    assert st["staged"]["added"] == ["data/a.csv", "data/img.bin", "run.sh"]
    v1 = ds("commit", "-m", "first", cwd=w).stdout.strip()
    assert len(v1) == 40
    assert json.loads(ds("status", "--json", cwd=w).stdout)["added"] == []
    write(w, "data/a.csv", "x,y\n1,3\n")
    write(w, "data/new.txt", "new")
    os.unlink(w / "run.sh")
    st = json.loads(ds("status", "--json", cwd=w).stdout)
    assert (st["added"], st["modified"], st["removed"]) == (["data/new.txt"], ["data/a.csv"], ["run.sh"])
    wd = json.loads(ds("diff", "--json", cwd=w).stdout)
    assert wd["modified"] == ["data/a.csv"] and wd["removed"] == ["run.sh"]
    ds("add", "-A", cwd=w)
    v2 = ds("commit", "-m", "second", cwd=w).stdout.strip()
    log = json.loads(ds("log", "--json", cwd=w).stdout)
    assert [e["id"] for e in log] == [v2, v1]
    assert log[0]["parents"] == [v1] and log[1]["parents"] == []
    assert {"id", "message", "parents", "created"} <= set(log[0])
    assert log[0]["message"] == "second"
    d = json.loads(ds("diff", v1, v2, "--json", cwd=w).stdout)
    assert d == {"added": ["data/new.txt"], "modified": ["data/a.csv"], "removed": ["run.sh"],
                 "renamed": []}
    show = json.loads(ds("show", v2[:8], "--json", cwd=w).stdout)
    assert show["id"] == v2 and show["files"] == 3
    ds("tag", "v1", v1, cwd=w)
    ds("checkout", "v1", cwd=w)
    assert (w / "run.sh").exists() and not (w / "data/new.txt").exists()
    assert os.stat(w / "run.sh").st_mode & 0o100
    ds("checkout", "main", cwd=w)
    out = tmp_path / "copy"
    ds("get", "HEAD~1", str(out), cwd=w)
    assert read_tree(out) == {
        "data/a.csv": (b"x,y\n1,2\n", False),
        "data/img.bin": ((w / "data/img.bin").read_bytes(), False),
        "run.sh": (b"#!/bin/sh\necho hi\n", True),
    }
    fsck = ds("fsck", "--read-data", cwd=w)
    assert "OK" in fsck.stdout
    graph = ds("log", "--graph", cwd=w).stdout
    assert graph.count("*") == 2 and "(v1)" in graph


def test_errors_are_one_line_and_nonzero(tmp_path: Path) -> None:
    proc = ds("status", cwd=tmp_path, check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: ") and "ds init" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    for args, needle in [
        (("init", str(w)), "already"),
        (("log", "nosuchrev"), "no version matches"),
        (("commit", "-m", "x"), "nothing to commit"),
        (("add", "missing.txt"), "no such file"),
        (("add", "/etc/passwd"), "outside the working folder"),
        (("init", str(w), "--hash", "md5"), "unknown hash"),
    ]:
        proc = ds(*args, cwd=w, check=False)
        assert proc.returncode != 0, args
        assert needle in proc.stderr, (args, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_get_refuses_non_empty_target(tmp_path: Path) -> None:
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "a", "1")
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "v1", cwd=w)
    out = tmp_path / "out"
    write(out, "keep.txt", "mine")
    proc = ds("get", "HEAD", str(out), cwd=w, check=False)
    assert proc.returncode == 1 and "--overwrite" in proc.stderr
    assert read_tree(out) == {"keep.txt": (b"mine", False)}
    ds("get", "HEAD", str(out), "--overwrite", cwd=w)
    assert read_tree(out) == {"a": (b"1", False)}


def test_checkout_refuses_dirty_without_force(tmp_path: Path) -> None:
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "a", "1")
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "v1", cwd=w)
    write(w, "a", "2")
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "v2", cwd=w)
    write(w, "a", "local")
    proc = ds("checkout", "HEAD~1", cwd=w, check=False)
    assert proc.returncode == 1 and "--force" in proc.stderr
    assert (w / "a").read_text() == "local"
    ds("checkout", "HEAD~1", "--force", cwd=w)
    assert (w / "a").read_text() == "1"


def test_squash_tag_gc_cli(tmp_path: Path) -> None:
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "a", os.urandom(100_000))
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "v1", cwd=w)
    write(w, "a", os.urandom(100_000))
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "v2", cwd=w)
    sq = ds("squash", "HEAD~1", "HEAD", "-m", "one", cwd=w).stdout.strip()
    log = json.loads(ds("log", "--json", cwd=w).stdout)
    assert [e["id"] for e in log] == [sq] and log[0]["parents"] == []
    kept = json.loads(ds("gc", "--dry-run", "--json", cwd=w).stdout)
    assert kept["bytes_freed"] == 0, "the squashed-away versions are still in the reflog's grace period"
    dry = json.loads(ds("gc", "--dry-run", "--json", "--prune-reflog-older-than", "now", cwd=w).stdout)
    assert dry["bytes_freed"] > 90_000
    ds("gc", "--prune-reflog-older-than", "now", cwd=w)
    assert "OK" in ds("fsck", "--read-data", cwd=w).stdout
    tags = ds("tag", cwd=w).stdout
    assert tags == ""


def test_dash_c_option(tmp_path: Path) -> None:
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "f", "x")
    ds("-C", str(w), "add", "-A", cwd=tmp_path)
    ds("-C", str(w), "commit", "-m", "v1", cwd=tmp_path)
    assert len(json.loads(ds("-C", str(w), "log", "--json", cwd=tmp_path).stdout)) == 1


def test_remote_commands(tmp_path: Path) -> None:
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "data/a.csv", "1,2\n")
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "v1", cwd=w)
    ds("remote", "add", "origin", "../remote", cwd=w)
    listed = ds("remote", "list", cwd=w).stdout
    assert "* origin" in listed and str(tmp_path / "remote") in listed
    pushed = json.loads(ds("push", "--json", cwd=w).stdout)
    assert pushed["refs"] == ["refs/heads/main"] and pushed["chunks"] == 1
    ds("clone", "remote", "copy", cwd=tmp_path)
    assert (tmp_path / "copy/data/a.csv").read_text() == "1,2\n"
    write(w, "data/b.csv", "3\n")
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "v2", cwd=w)
    ds("push", cwd=w)
    ds("pull", cwd=tmp_path / "copy")
    assert (tmp_path / "copy/data/b.csv").read_text() == "3\n"
    again = ds("pull", cwd=tmp_path / "copy")  # nothing new: git's one line, no transfer summary
    assert again.stderr == "Already up to date.\n" and again.stdout == ""
    proc = ds("push", "nowhere", cwd=w, check=False)
    assert proc.returncode == 1 and "no remote named" in proc.stderr
    ds("remote", "add", "spare", "../remote", cwd=w)
    ds("remote", "rm", "spare", cwd=w)  # git's other name for remove
    ds("remote", "remove", "origin", cwd=w)
    assert ds("remote", "list", cwd=w).stdout == ""


@pytest.mark.parametrize(("left_at", "right_at", "order", "firsts"), [
    (20, 10, ["merge", "left", "right", "base"], ["*", "*", "|", "*"]),
    (10, 20, ["merge", "right", "left", "base"], ["*", "|", "*", "*"]),
], ids=["left-newer", "right-newer"])
def test_log_graph_draws_merges_with_both_lines_and_marks_roots(
        tmp_path: Path, left_at: int, right_at: int, order: list[str], firsts: list[str]) -> None:
    """Versions are listed newest first, so which side of the merge comes first follows the
    commit times: the two sides and the merge are written with explicit times (seconds after
    base), never the clock's, and each order is drawn as a separate case."""
    import pygit2

    from objstore.store import Store

    w = tmp_path / "w"
    w.mkdir()
    ds("init", cwd=w)
    write(w, "a", "1")
    ds("add", ".", cwd=w)
    ds("commit", "-m", "base", cwd=w)
    write(w, "a", "2")
    ds("add", ".", cwd=w)
    ds("commit", "-m", "left", cwd=w)
    with Store.open(w) as store:  # a second line of descent from base, then a merge of both
        repo = store.meta.repo
        base = repo[store.resolve("HEAD~1")]

        def commit(tree: pygit2.Oid, parents: list[pygit2.Oid], message: str, after: int) -> pygit2.Oid:
            sig = pygit2.Signature("t", "t@localhost", base.commit_time + after, 0)
            return repo.create_commit(None, sig, sig, message, tree, parents)

        left = commit(repo[store.resolve("HEAD")].tree_id, [base.id], "left", left_at)
        right = commit(base.tree_id, [base.id], "right", right_at)
        merged = commit(repo[left].tree_id, [left, right], "merge", 30)
        store.meta.set_head(str(merged), "test merge")
    lines = ds("log", "--graph", cwd=w).stdout.splitlines()
    drawn = [ln for ln in lines if "*" in ln]
    assert [ln.removesuffix("  [root]").split()[-1] for ln in drawn] == order
    assert [ln.split()[0] for ln in drawn] == firsts
    assert lines[1].rstrip() == "| \\", "the merge opens a second column at once"
    right_line = next(ln for ln in lines if ln.endswith("right"))
    assert right_line.index("*") == 2, "the second parent is drawn in its own column"
    assert next(ln for ln in lines if ln.endswith("left")).startswith("* |"), "the first parent stays left"
    assert lines[-2] == "|/", "both lines join again where they meet, at base"
    assert lines[-1].endswith("base  [root]") and len(lines) == 6


def test_log_graph_joins_a_line_across_another_as_git_does() -> None:
    """Three lines of descent, the right one joining the left across the middle one: git's
    ``|_|/``, never ``| |/`` (which reads as joining the middle line). Drawn from a fixed
    history, newest first (the order ``ds log`` gives)."""
    from objstore_cli.graph import draw

    from objstore.meta import CommitInfo

    def c(name: str, *parents: str) -> CommitInfo:
        return CommitInfo(name * 12, name, tuple(p * 12 for p in parents), "", "t", "")

    history = [c("m", "n", "b"), c("n", "c", "x"), c("c", "p"), c("x", "p"), c("p", "a"), c("b", "a"),
               c("a")]
    lines = [ln.split("  ")[0].rstrip() if "*" in ln else ln for ln in draw(history, {})]
    assert lines == ["*", "| \\", "* |", "| | \\", "* | |", "| | *", "|_|/", "* |", "| *", "|/", "*"]
