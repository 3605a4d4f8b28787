"""Revisions as git users type them: `@{u}` / `NAME@{upstream}`, ranges `A..B` and `A...B`
in log and diff, remote branches in `branch -r/-a` and beside ids in `log`. Real CLI runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import ds, write


def _commit(w: Path, path: str, text: str, message: str) -> str:
    write(w, path, text)
    ds("add", "-A", cwd=w)
    return ds("commit", "-m", message, cwd=w).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, list[str]]:
    """main: v1, v2 pushed to origin (its upstream), then v3 here only; side: v2 + s1."""
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    v1 = _commit(w, "f", "1", "one")
    v2 = _commit(w, "f", "2", "two")
    ds("remote", "add", "origin", str(tmp_path / "remote"), cwd=w)
    ds("push", "-u", "origin", "main", cwd=w)
    v3 = _commit(w, "f", "3", "three")
    ds("switch", "-c", "side", v2, cwd=w)
    s1 = _commit(w, "g", "s", "side one")
    ds("switch", "main", cwd=w)
    return w, [v1, v2, v3, s1]


def _ids(w: Path, *args: str) -> list[str]:
    return [e["id"] for e in json.loads(ds("log", "--json", *args, cwd=w).stdout)]


def test_upstream_shorthands_name_the_remote_branch_as_last_fetched(repo) -> None:
    w, (v1, v2, v3, _s1) = repo
    assert _ids(w, "@{u}") == [v2, v1]
    assert _ids(w, "main@{upstream}~1") == [v1]
    assert _ids(w, "@{U}..HEAD") == [v3]  # what a push would send
    r = ds("log", "side@{u}", cwd=w, check=False)
    assert r.returncode == 1 and "branch 'side' has no upstream; `ds push -u REMOTE side`" in r.stderr
    ds("switch", "--detach", "HEAD", cwd=w)
    r = ds("log", "@{u}", cwd=w, check=False)
    assert r.returncode == 1 and "HEAD is detached" in r.stderr


def test_log_ranges_two_and_three_dots(repo) -> None:
    w, (v1, v2, v3, s1) = repo
    assert _ids(w, "side..main") == [v3]
    assert _ids(w, "main..side") == [s1]
    assert set(_ids(w, "main...side")) == {v3, s1}
    assert _ids(w, "HEAD~2..") == [v3, v2]  # an empty side is HEAD
    assert _ids(w, "main..main") == []
    assert _ids(w, "-n", "1", f"{v1}..main") == [v3]


def test_diff_ranges_compare_the_ends_or_from_the_merge_base(repo) -> None:
    w, (_v1, _v2, _v3, _s1) = repo
    two = json.loads(ds("diff", "--json", "side..main", cwd=w).stdout)
    assert sorted(two["removed"]) == ["g"] and sorted(two["modified"]) == ["f"]
    three = json.loads(ds("diff", "--json", "main...side", cwd=w).stdout)  # side's own change only
    assert sorted(three["added"]) == ["g"] and three["modified"] == [] and three["removed"] == []


def test_remote_branches_are_listed_and_shown_beside_ids(repo) -> None:
    w, (_v1, v2, v3, _s1) = repo
    assert ds("branch", "-r", cwd=w).stdout == f"  origin/main\t{v2[:12]}\n"
    lines = ds("branch", "-a", cwd=w).stdout.splitlines()
    assert lines[-1] == f"  remotes/origin/main\t{v2[:12]}" and lines[0].startswith("* main")
    rows = json.loads(ds("branch", "-r", "--json", cwd=w).stdout)
    assert rows == [{"name": "origin/main", "id": v2, "current": False, "remote": True}]
    oneline = ds("log", "--oneline", "-n", "2", cwd=w).stdout.splitlines()
    assert oneline[0].startswith(f"{v3[:12]} (HEAD -> main)")
    assert oneline[1] == f"{v2[:12]} (origin/main) two"
    r = ds("branch", "-r", "x", cwd=w, check=False)
    assert r.returncode == 2 and "-r and -a list branches" in r.stderr


def test_a_moved_remote_tag_is_reported_and_one_refused_tag_holds_back_no_other(repo, tmp_path: Path) -> None:
    w, (v1, v2, _v3, _s1) = repo
    ds("tag", "t", v2, cwd=w)
    ds("push", "--tags", cwd=w)
    c = tmp_path / "c"
    ds("clone", str(tmp_path / "remote"), str(c), cwd=tmp_path)
    ds("tag", "-f", "t", v1, cwd=w)
    ds("push", "--force", "origin", "t", cwd=w)
    r = ds("fetch", cwd=c)
    assert f"tag t on remote origin ({tmp_path / 'remote'}) names {v1[:12]}, yours {v2[:12]}" in r.stderr
    assert "`ds tag -f t" in r.stderr
    assert json.loads(ds("tag", "--json", cwd=c).stdout)["t"] == v2  # a fetch never moves a tag
    ds("tag", "mine", cwd=c)
    r = ds("push", "--tags", cwd=c, check=False)
    assert r.returncode == 1 and "1 ref(s) refused; the other 1 ref(s) were pushed: tag t" in r.stderr
    assert (tmp_path / "remote" / "refs" / "tags" / "mine").read_text().strip() == v2


def test_log_takes_a_path_without_dashes_when_it_names_no_version(repo) -> None:
    w, (v1, v2, v3, s1) = repo
    assert ds("log", "--oneline", "f", cwd=w).stdout.splitlines()[0].startswith(v3[:12])
    assert [ln[:12] for ln in ds("log", "--oneline", "f", cwd=w).stdout.splitlines()] == \
        [v[:12] for v in (v3, v2, v1)]
    (w / "main").mkdir()  # now `main` is a branch and a folder
    r = ds("log", "main", cwd=w, check=False)
    assert r.returncode == 1 and "both a version and a path" in r.stderr and "`ds log main --`" in r.stderr
    assert _ids(w, "main", "--") == [v3, v2, v1]


def test_log_and_show_indent_every_line_of_a_message_and_an_empty_branch_is_an_error(
        repo, tmp_path: Path) -> None:
    w, _versions = repo
    _commit(w, "h", "h", "title\n\nbody one\nbody two")
    out = ds("log", "-n", "1", cwd=w).stdout.splitlines()
    assert out[1:5] == ["    title", "", "    body one", "    body two"]
    assert "\n    title\n\n    body one\n    body two\n" in ds("show", cwd=w).stdout
    ds("init", str(tmp_path / "empty"), cwd=tmp_path)
    r = ds("log", cwd=tmp_path / "empty", check=False)
    assert r.returncode == 1 and "has no versions yet" in r.stderr
    assert ds("log", "--json", cwd=tmp_path / "empty").stdout.strip() == "[]"


def test_push_u_sets_the_upstream_of_the_branches_that_moved_when_another_ref_is_refused(
        repo, tmp_path: Path) -> None:
    w, (_v1, v2, _v3, _s1) = repo
    ds("tag", "t", v2, cwd=w)
    ds("push", "origin", "t", cwd=w)
    ds("tag", "-f", "t", "HEAD", cwd=w)  # now differs from the remote's
    r = ds("push", "-u", "origin", "side", "t", cwd=w, check=False)
    assert r.returncode == 1 and "1 ref(s) refused; the other 1 ref(s) were pushed" in r.stderr
    assert "[origin/side]" in ds("branch", "-vv", cwd=w).stdout.split("side", 1)[1].splitlines()[0]


def test_three_dots_leave_out_every_common_ancestor_of_a_criss_cross(tmp_path: Path) -> None:
    from objstore.store import Store

    w = tmp_path / "cc"
    ds("init", str(w), cwd=tmp_path)
    base = _commit(w, "f", "0", "base")
    with Store.open(w) as s:
        tree, who = s.meta.tree_of(base), s.author()

        def made(parents: list[str], message: str) -> str:
            return s.meta.commit(tree, parents, message, who)

        x1, y1 = made([base], "x1"), made([base], "y1")
        x2, y2 = made([x1, y1], "x2"), made([y1, x1], "y2")  # two merge bases: x1 and y1
        x3, y3 = made([x2], "x3"), made([y2], "y3")
        got = {i.id for i in s.log(f"{x3}...{y3}")}
    assert got == {x3, x2, y3, y2}


def test_reflog_entries_far_past_the_log_are_refused_and_steps_after_them_walk_from_the_entry(
        repo) -> None:
    """NAME@{N} past the reflog's end is an error however large N is (libgit2 wrapped a
    big N round to the tip), and NAME@{N}~M walks from that entry."""
    w, (v1, v2, v3, _s1) = repo
    for rev in ("main@{2147483648}", "HEAD@{99999999999999999999}", "main@{4294967296}~0", "@{-99999999999}",
                "main@{4294967297}^{}", "main@{4294967296}^{commit}"):
        r = ds("log", "-n", "1", rev, cwd=w, check=False)
        assert r.returncode == 1 and r.stdout == "" and "reflog" in r.stderr, rev
    r = ds("branch", "rescue", "HEAD@{99999999999999999999}", cwd=w, check=False)
    assert r.returncode == 1 and "rescue" not in ds("branch", cwd=w).stdout
    assert _ids(w, "-n", "1", "main@{0}~1") == [v2]
    assert _ids(w, "-n", "1", "main@{1}^") == [v1]  # main@{1} is v2
    assert _ids(w, "-n", "1", "main@{0}~2") == [v1] and _ids(w, "-n", "1", "main@{0}") == [v3]
    assert _ids(w, "-n", "1", "main@{1}^{commit}") == [v2] and _ids(w, "-n", "1", "main@{1}^{}") == [v2]
