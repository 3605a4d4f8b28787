"""A clone you can push from: upstreams, and push / pull / clone / status as git users expect.

Everything here runs the installed `ds` on a folder remote and on S3 (a moto server).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from objstore.branches import unset_upstream
from objstore.config import store_items, store_set
from objstore.store import Store

from .conftest import ds, read_tree, write


def full_status(cwd: Path, *args: str) -> list[str]:
    """`ds status` lines through the command itself (the console script answers a plain
    `ds status` of a clean folder before loading the commands)."""
    code = "import sys; from objstore_cli.app import main; sys.argv = ['ds', 'status', *sys.argv[1:]]; main()"
    proc = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def status_json(cwd: Path) -> dict:
    return json.loads(ds("status", "--json", cwd=cwd).stdout)


def fails(*args: str, cwd: Path) -> str:
    """The one error line of a command that must fail with exit 1."""
    proc = ds(*args, cwd=cwd, check=False)
    assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    return lines[0]


UP_TO_DATE = ["On branch main", "Your branch is up to date with 'origin/main'."]


def test_branches_merge_push_clone_push_pull_tags(tmp_path: Path, remote) -> None:
    url, opts = remote
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    ds("init", str(a), cwd=tmp_path)
    write(a, "data/x.csv", "1\n")
    write(a, "notes.txt", "n1")
    ds("add", ".", cwd=a)
    v1 = ds("commit", "-m", "v1", cwd=a).stdout.strip()
    ds("branch", "feature", cwd=a)
    ds("switch", "feature", cwd=a)
    write(a, "data/y.csv", "2\n")
    ds("add", "-A", cwd=a)
    ds("commit", "-m", "feature work", cwd=a)
    ds("switch", "main", cwd=a)
    write(a, "notes.txt", "n2")
    ds("add", "-A", cwd=a)
    ds("commit", "-m", "main work", cwd=a)
    ds("merge", "feature", cwd=a)
    assert sorted(read_tree(a)) == ["data/x.csv", "data/y.csv", "notes.txt"]
    ds("remote", "add", "origin", url, *opts, cwd=a)

    pushed = ds("push", "-u", "origin", "main", cwd=a).stderr.splitlines()
    assert re.fullmatch(r"Pushed 4 versions, 4 files, [\d.]+ (B|KiB) to origin in \d+\.\d s", pushed[0])
    assert pushed[1:] == [f"To {url}", " * [new branch]  main -> main",
                          "branch 'main' set up to track 'origin/main'."]
    assert full_status(a)[:2] == UP_TO_DATE
    assert status_json(a)["branch"] == "main"

    cloned = ds("clone", url, str(b), *opts, cwd=tmp_path).stderr.splitlines()
    assert re.fullmatch(r"Cloned 4 versions, 3 files, [\d.]+ KiB from \S+ in \d+\.\d s", cloned[0])
    assert cloned[1:] == ["Checked out branch 'main' into " + str(b),
                          "branch 'main' set up to track 'origin/main'."]
    assert read_tree(b) == read_tree(a)
    assert full_status(b)[:2] == UP_TO_DATE
    write(b, "data/z.csv", "3\n")
    ds("add", "data/z.csv", cwd=b)
    from_b = ds("commit", "-m", "from b", cwd=b).stdout.strip()
    assert ds("status", cwd=b).stdout.splitlines()[:2] == [
        "On branch main", "Your branch is 1 version ahead of 'origin/main' (`ds push` sends them)."]
    pushed = ds("push", cwd=b).stderr.splitlines()  # no arguments: the upstream
    assert pushed[0].startswith("Pushed 1 version, 1 file, ")
    assert re.fullmatch(rf"   [0-9a-f]{{12}}\.\.{from_b[:12]}  main -> main", pushed[2])
    assert ds("push", cwd=b).stderr == "Everything up-to-date\n"
    assert full_status(b)[:2] == UP_TO_DATE

    pulled = ds("pull", cwd=a).stderr.splitlines()
    assert pulled[0].startswith("Pulled 1 version, 1 file, ")
    assert pulled[-1] == f"Fast-forward main to {from_b[:12]} (1 file changed)"
    assert read_tree(a) == read_tree(b) and full_status(a)[:2] == UP_TO_DATE

    log = ds("log", "--oneline", "--", "notes.txt", cwd=a).stdout
    assert "main work" in log and "v1" in log and "feature work" not in log and "from b" not in log
    assert ds("log", "--oneline", "--", "data/z.csv", cwd=a).stdout.count("\n") == 1
    assert ds("ls", cwd=a).stdout.split() == ["data/", "notes.txt"]
    write(a, "notes.txt", "n3")
    ds("add", "notes.txt", cwd=a)
    assert status_json(a)["staged"]["modified"] == ["notes.txt"]
    ds("restore", "--staged", "notes.txt", cwd=a)
    st = status_json(a)
    assert st["staged"]["modified"] == [] and st["modified"] == ["notes.txt"]
    assert (a / "notes.txt").read_text() == "n3"

    ds("tag", "v1", v1, cwd=a)
    ds("tag", "v2", cwd=a)
    ds("tag", "-d", "v2", cwd=a)
    pushed = ds("push", "--tags", cwd=a).stderr.splitlines()
    assert pushed[1:] == [f"To {url}", " * [new tag]  v1 -> v1"]
    assert ds("push", "--tags", cwd=a).stderr == "Everything up-to-date\n"
    cloned = ds("clone", url, str(c), "--rev", "v1", *opts, cwd=tmp_path).stderr.splitlines()
    assert cloned[1].startswith(f"HEAD detached at {v1[:12]} (v1) in {c}")
    assert read_tree(c) == {"data/x.csv": (b"1\n", False), "notes.txt": (b"n1", False)}
    assert status_json(c)["branch"] is None
    assert full_status(c)[0].startswith(f"HEAD detached at {v1[:12]}")


# -- one behaviour at a time, on a folder remote ------------------------------------------
@pytest.fixture
def shared(tmp_path: Path) -> tuple[Path, Path, str]:
    """(a store that pushed main with -u, a clone of it, the remote's folder)."""
    a, url = tmp_path / "a", str(tmp_path / "remote")
    ds("init", str(a), cwd=tmp_path)
    write(a, "f.txt", "1")
    ds("add", "-A", cwd=a)
    ds("commit", "-m", "v1", cwd=a)
    ds("remote", "add", "origin", url, cwd=a)
    ds("push", "-u", "origin", "main", cwd=a)
    ds("clone", url, str(tmp_path / "b"), cwd=tmp_path)
    return a, tmp_path / "b", url


def test_push_without_upstream_pushes_to_the_default_remote_and_says_how_to_set_one(tmp_path: Path) -> None:
    a = tmp_path / "a"
    ds("init", str(a), cwd=tmp_path)
    write(a, "f", "1")
    ds("add", "-A", cwd=a)
    ds("commit", "-m", "v1", cwd=a)
    assert fails("push", cwd=a) == ("Error: branch 'main' has no upstream and there is no remote: "
                                    "`ds remote add origin URL`, then `ds push -u origin main`")
    ds("remote", "add", "origin", str(tmp_path / "r"), cwd=a)
    r = ds("push", cwd=a)
    assert r.stderr.splitlines()[-1] == (
        "hint: branch 'main' has no upstream; `ds push -u origin main` makes it follow origin/main "
        "(then `ds push`, `ds pull` and `ds status` use it)")
    assert full_status(a) == ["On branch main", "Nothing changed."]  # no upstream: no second line
    r = ds("push", "-u", cwd=a)  # nothing to send, but the upstream is set all the same
    assert r.stderr == "Everything up-to-date\nbranch 'main' set up to track 'origin/main'.\n"
    with Store.open(a) as s:  # kept as git keeps it
        assert store_items(s.config)["branch.main.remote"] == "origin"
        assert store_items(s.config)["branch.main.merge"] == "refs/heads/main"
    text = (a / ".dsstore/config").read_text()
    assert tomllib.loads(text)["branch"]["main"] == {"merge": "refs/heads/main", "remote": "origin"}
    assert "hint" not in ds("push", cwd=a).stderr


def test_push_with_nothing_to_push_or_a_detached_head_is_one_line(shared) -> None:
    a, _b, url = shared
    assert ds("push", cwd=a).stderr == "Everything up-to-date\n"
    assert ds("push", "origin", "main", cwd=a).stderr == "Everything up-to-date\n"
    head = ds("log", "--json", cwd=a).stdout
    first = json.loads(head)[0]["id"]
    ds("checkout", first, cwd=a)
    assert fails("push", cwd=a) == (
        f"Error: HEAD is detached at {first[:12]}: there is no branch to push; "
        "`ds switch -c NAME` puts your versions on one (then `ds push -u origin NAME`)")
    assert "neither a branch nor a tag here" in fails("push", "origin", "nosuch", cwd=a)
    assert "refusing to delete main" in fails("push", "origin", ":main", cwd=a)
    assert "cannot be a branch or tag on a remote" in fails("push", "origin", "main:-x", cwd=a)
    assert "to push that version say where it goes" in fails("push", "origin", first[:12], cwd=a)
    assert "-u makes a branch follow a named remote" in fails("push", "-u", url + "-other", "main", cwd=a)


def test_push_refspecs_src_dst_force_and_versions(shared) -> None:
    a, b, url = shared
    r = ds("push", "origin", "main:release", cwd=a).stderr.splitlines()
    assert r[0].startswith("Pushed 0 versions, 0 files, ") and r[2] == " * [new branch]  main -> release"
    write(a, "g.txt", "2")
    ds("add", "-A", cwd=a)
    ds("commit", "-m", "v2", cwd=a)
    first = json.loads(ds("log", "--json", cwd=a).stdout)[-1]["id"]
    ds("push", "origin", f"{first}:old", cwd=a)  # a version id goes to a named branch
    ds("tag", "t1", cwd=a)
    r = ds("push", "origin", "t1", cwd=a).stderr  # a tag by name, as a tag
    assert " * [new tag]  t1 -> t1" in r
    ds("push", cwd=a)
    # b commits on main without a's v2: diverged, refused, then forced with +SRC:DST
    write(b, "h.txt", "3")
    ds("add", "-A", cwd=b)
    ds("commit", "-m", "b work", cwd=b)
    assert fails("push", cwd=b) == (
        f"Error: main on {url} has versions you do not have: run `ds pull` (fetch and merge) and push "
        "again, or `ds push --force` to replace them")
    r = ds("push", "origin", "+main:main", cwd=b).stderr.splitlines()
    assert r[2].startswith(" + ") and r[2].endswith("main -> main (forced update)")
    assert "has versions you do not have" in fails("push", cwd=a)
    assert ds("pull", cwd=a).stderr.splitlines()[-1].startswith("Merged origin/main into main: ")
    r = ds("push", cwd=a).stderr.splitlines()
    assert r[0].startswith("Pushed 2 versions, 1 file, ")  # v2 and the merge; only g.txt is new there


def test_push_all_and_tags_and_u_for_several_branches(shared) -> None:
    a, _b, _url = shared
    ds("branch", "dev", cwd=a)
    ds("branch", "exp", cwd=a)
    ds("tag", "t1", cwd=a)
    r = ds("push", "--all", "-u", cwd=a).stderr.splitlines()
    assert " * [new branch]  dev -> dev" in r and " * [new tag]     t1 -> t1" in r  # aligned, as git
    assert "branch 'exp' set up to track 'origin/exp'." in r
    assert "branch 'dev' set up to track 'origin/dev'." in r
    assert ds("push", "--tags", cwd=a).stderr == "Everything up-to-date\n"


def test_clone_follows_the_remote_head_else_main_else_the_only_branch(tmp_path: Path) -> None:
    a, url = tmp_path / "a", str(tmp_path / "r")
    ds("init", str(a), cwd=tmp_path)
    write(a, "f", "1")
    ds("add", "-A", cwd=a)
    ds("commit", "-m", "v1", cwd=a)
    ds("switch", "-c", "dev", cwd=a)
    write(a, "f", "2")
    ds("add", "-A", cwd=a)
    ds("commit", "-m", "v2", cwd=a)
    ds("remote", "add", "origin", url, cwd=a)
    ds("push", "-u", "origin", "dev", cwd=a)  # makes the remote: its HEAD names dev
    ds("push", "origin", "main", cwd=a)
    ds("clone", url, "c1", cwd=tmp_path)
    assert full_status(tmp_path / "c1")[:2] == [
        "On branch dev", "Your branch is up to date with 'origin/dev'."]
    assert (tmp_path / "c1/f").read_text() == "2"
    ds("clone", url, "c2", "--rev", "main", cwd=tmp_path)  # --rev BRANCH: that branch, local
    assert status_json(tmp_path / "c2")["upstream"]["name"] == "origin/main"
    (Path(url) / "HEAD").unlink()  # a remote an older objstore made: main
    ds("clone", url, "c3", cwd=tmp_path)
    assert status_json(tmp_path / "c3")["branch"] == "main"
    (Path(url) / "HEAD").write_text("ref: refs/heads/../x\n")  # hostile: warned about, not followed
    r = ds("clone", url, "c4", cwd=tmp_path)
    assert "ignored HEAD" in r.stderr and status_json(tmp_path / "c4")["branch"] == "main"
    assert fails("clone", url, "c5", "--rev", "v9", cwd=tmp_path) == (
        f"Error: {url} has no branch or tag 'v9', and no version with that id (its branches: dev, main); "
        "`ds push --tags` sends tags to it")
    assert not (tmp_path / "c5").exists()


def test_status_counts_versions_ahead_behind_diverged_and_gone(shared) -> None:
    from objstore.branches import tracking
    from objstore.quicktrack import quick_tracking

    a, b, _url = shared
    assert ds("status", cwd=b).stdout == "\n".join([*UP_TO_DATE, "Nothing changed.\n"])
    with Store.open(b) as s:
        assert tracking(s) == {"branch": "main", "head": s.head(), "upstream": "origin/main",
                               "ahead": 0, "behind": 0, "gone": False}
        assert quick_tracking(str(b)) == tracking(s)
    for i in range(2):
        write(a, "f.txt", f"a{i}")
        ds("add", "-A", cwd=a)
        ds("commit", "-m", f"a{i}", cwd=a)
    ds("push", cwd=a)
    ds("fetch", cwd=b)
    assert full_status(b)[1] == "Your branch is 2 versions behind 'origin/main' (`ds pull` brings them)."
    assert ds("status", cwd=b).stdout.splitlines() == full_status(b)  # the console script's quick answer too
    assert quick_tracking(str(b)) is None  # counting needs the history: the full path does it
    write(b, "g.txt", "b")
    ds("add", "-A", cwd=b)
    ds("commit", "-m", "b", cwd=b)
    assert full_status(b)[1] == ("Your branch and 'origin/main' have diverged: 1 version here and "
                                 "2 versions there (`ds pull` merges them).")
    assert status_json(b)["upstream"] == {"name": "origin/main", "ahead": 1, "behind": 2, "gone": False}
    ds("pull", cwd=b)
    assert full_status(b)[1] == "Your branch is 2 versions ahead of 'origin/main' (`ds push` sends them)."
    with Store.open(b) as s:  # an upstream the remote never had
        s.set_config(store_set(s.config, "branch.main.merge", "gone"))
    assert full_status(b)[1] == ("Your branch is based on 'origin/gone', but the upstream is gone "
                                 "(`ds push` sends the branch there again).")
    with Store.open(b) as s:
        assert quick_tracking(str(b)) == tracking(s) and tracking(s)["gone"]


def test_pull_and_push_use_an_upstream_of_another_name(shared) -> None:
    a, b, _url = shared
    ds("switch", "-c", "work", "origin/main", cwd=b)  # started at a remote branch: follows it
    assert full_status(b)[:2] == ["On branch work", "Your branch is up to date with 'origin/main'."]
    write(a, "f.txt", "from a")
    ds("add", "-A", cwd=a)
    ds("commit", "-m", "a", cwd=a)
    ds("push", cwd=a)
    r = ds("pull", cwd=b).stderr.splitlines()
    assert r[-1].startswith("Fast-forward work to ") and (b / "f.txt").read_text() == "from a"
    write(b, "f.txt", "from b")
    ds("add", "-A", cwd=b)
    ds("commit", "-m", "b", cwd=b)
    assert ds("push", cwd=b).stderr.splitlines()[2].endswith("  work -> main")
    assert "Fast-forward main" in ds("pull", "origin", "main", cwd=a).stderr


def test_switch_to_a_branch_only_the_remote_has_makes_it_local_and_following(shared) -> None:
    a, b, _url = shared
    ds("switch", "-c", "feature", cwd=a)
    write(a, "x", "x")
    ds("add", "-A", cwd=a)
    ds("commit", "-m", "feature", cwd=a)
    ds("push", "-u", "origin", "feature", cwd=a)
    ds("fetch", cwd=b)
    ds("switch", "feature", cwd=b)
    assert full_status(b)[:2] == ["On branch feature", "Your branch is up to date with 'origin/feature'."]
    assert (b / "x").read_text() == "x"


def test_upstreams_follow_branch_rename_and_delete_and_remote_remove(shared) -> None:
    from objstore.branches import tracking_all, upstream

    a, _b, _url = shared
    ds("branch", "dev", cwd=a)
    ds("push", "-u", "origin", "dev", cwd=a)
    ds("branch", "-m", "dev", "dev2", cwd=a)
    with Store.open(a) as s:
        assert upstream(s, "dev2").name == "origin/dev" and upstream(s, "dev") is None
        assert sorted(tracking_all(s)) == ["dev2", "main"]
    ds("branch", "-d", "dev2", cwd=a)
    with Store.open(a) as s:
        assert list(s.config.branches) == ["main"]
    ds("remote", "remove", "origin", cwd=a)
    with Store.open(a) as s:
        assert s.config.branches == {}
    assert full_status(a) == ["On branch main", "Nothing changed."]


def test_pull_without_upstream_hints_and_detached_pull_is_one_line(shared) -> None:
    a, b, _url = shared
    with Store.open(b) as s:
        unset_upstream(s, "main")
    r = ds("pull", cwd=b)
    assert r.stderr.splitlines()[-1].startswith(
        "hint: branch 'main' has no upstream, so the default remote's")
    first = json.loads(ds("log", "--json", cwd=a).stdout)[-1]["id"]
    ds("checkout", first, cwd=a)
    assert fails("pull", cwd=a).startswith(
        f"Error: HEAD is detached at {first[:12]}; `ds switch BRANCH` first")


def test_human_output_keeps_request_counters_for_json_and_verbose(shared) -> None:
    a, _b, _url = shared
    write(a, "n.txt", "new")
    ds("add", "-A", cwd=a)
    ds("commit", "-m", "v2", cwd=a)
    r = ds("push", "-v", cwd=a).stderr
    assert re.search(r"^\d+ requests; 1 pack \(1 chunk\) and 1 metadata pack; [\d.]+ (B|KiB) sent, ",
                     r, re.M)
    write(a, "n.txt", "newer")
    ds("add", "-A", cwd=a)
    ds("commit", "-m", "v3", cwd=a)
    assert "requests" not in ds("push", cwd=a).stderr
    write(a, "n.txt", "quiet")
    ds("add", "-A", cwd=a)
    ds("commit", "-m", "v4", cwd=a)
    assert ds("push", "-q", cwd=a).stderr == "" and ds("pull", "-q", cwd=a).stderr == ""  # -q: no notes
    write(a, "n.txt", "newest")
    ds("add", "-A", cwd=a)
    ds("commit", "-m", "v5", cwd=a)
    t = json.loads(ds("push", "--json", cwd=a).stdout)
    assert t["requests"] > 0 and t["versions"] == 1 and t["files"] == 1 and t["refs"] == ["refs/heads/main"]
    assert t["updates"][0]["ref"] == "refs/heads/main" and t["updates"][0]["local"] == "refs/heads/main"


def test_a_branch_or_tag_may_not_hide_a_remotes_branch(shared) -> None:
    a, b, _url = shared
    hidden = ("'origin/main' names origin's branch as fetched here; a {} of the same name would hide "
              "it (`origin/main` would then mean the {}); pick another name")
    ds("branch", "side", cwd=b)
    for args in (("branch", "origin/main"), ("switch", "-c", "origin/main"),
                 ("checkout", "-b", "origin/main"), ("branch", "-m", "side", "origin/main")):
        assert fails(*args, cwd=b) == "Error: " + hidden.format("branch", "branch")
    assert fails("tag", "origin/main", cwd=b) == "Error: " + hidden.format("tag", "tag")
    assert [line.split()[-2] for line in ds("branch", cwd=b).stdout.splitlines()] == ["main", "side"]
    assert ds("tag", "-l", cwd=b).stdout == ""


def test_fetch_warns_of_a_branch_made_before_the_remote_had_its_name(shared) -> None:
    a, b, _url = shared
    ds("branch", "origin/feat", cwd=b)  # no origin/feat yet: allowed
    ds("tag", "origin/exp", cwd=b)
    for name in ("feat", "exp"):
        ds("branch", name, cwd=a)
        ds("push", "origin", name, cwd=a)
    r = ds("fetch", cwd=b)
    assert r.returncode == 0
    warnings = [line for line in r.stderr.splitlines() if line.startswith("Warning: ")]
    assert warnings == [
        "Warning: your tag origin/exp hides origin's branch of that name (`origin/exp` means yours); "
        "rename it: `ds tag NEW origin/exp` then `ds tag -d origin/exp`",
        "Warning: your branch origin/feat hides origin's branch of that name (`origin/feat` means yours); "
        "rename it: `ds branch -m origin/feat NEW`"]
    ds("branch", "-m", "origin/feat", "mine", cwd=b)  # the fix it names works, and the warning goes
    ds("tag", "other", "origin/exp", cwd=b)
    ds("tag", "-d", "origin/exp", cwd=b)
    assert "Warning" not in ds("fetch", cwd=b).stderr


def test_fetch_warns_of_a_tag_it_brings_with_the_branch_it_hides(shared) -> None:
    """The remote holds tag origin/late (made where no remote is called origin) and branch
    late: the one fetch that brings both says so."""
    a, b, _url = shared
    ds("tag", "origin/late", cwd=a)  # a's origin has no branch late yet: allowed
    ds("push", "origin", "origin/late", cwd=a)
    ds("branch", "late", cwd=a)
    ds("push", "origin", "late", cwd=a)
    r = ds("fetch", cwd=b)
    assert "Warning: your tag origin/late hides origin's branch of that name" in r.stderr
