"""More git habits, each as a git user types it: `commit --amend` and `--allow-empty`,
`branch -m NEW`, `switch -C` / `checkout -B`, `tag -l PATTERN`, `add -n`, `status -sb` and
`mv -f`. Real CLI runs, checked against the versions, refs, reflogs and the stage."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from objstore.config import store_set
from objstore.errors import DsError
from objstore.store import Store

from .conftest import ds, write


def _env(**extra: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "DSSTORE_DIR"} | extra


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """main: "one" holds f = 1; "two" (by another author) adds g = 2."""
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "f", "1")
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "one", cwd=w)
    write(w, "g", "2")
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "two", cwd=w, env=_env(DS_AUTHOR="Data Team <team@example.org>"))
    return w


def _info(w: Path, rev: str = "HEAD") -> dict:
    return json.loads(ds("show", rev, "--json", cwd=w).stdout)


def _files(w: Path, rev: str = "HEAD") -> list[str]:
    return sorted(e["path"] for e in json.loads(ds("ls", "-r", "--json", rev, cwd=w).stdout))


def _branch(w: Path) -> str | None:
    with Store.open(w) as s:
        return s.head_branch()


def _branches(w: Path) -> dict[str, str]:
    return {b["name"]: b["id"] for b in json.loads(ds("branch", "--json", cwd=w).stdout)}


def _fails(*args: str, cwd: Path) -> str:
    r = ds(*args, cwd=cwd, check=False)
    assert r.returncode == 1, (args, r.stdout, r.stderr)
    return r.stderr


# -- commit --amend / --allow-empty ---------------------------------------------------------

def test_amend_replaces_the_tip_keeping_parents_author_and_message(repo: Path) -> None:
    old = _info(repo)
    write(repo, "h", "3")
    ds("add", "h", cwd=repo)
    r = ds("commit", "--amend", "--json", cwd=repo, env=_env(DS_AUTHOR="Bob <bob@example.org>"))
    new = json.loads(r.stdout)
    assert new["replaces"] == old["id"] and new["id"] != old["id"]
    assert new["parents"] == old["parents"] and new["message"] == "two"
    assert (new["author"], new["email"]) == ("Data Team", "team@example.org")  # git keeps the author
    assert _files(repo) == ["f", "g", "h"] and len(json.loads(ds("log", "--json", cwd=repo).stdout)) == 2
    assert ds("status", "-s", cwd=repo).stdout == ""  # the stage went into the version
    # the reflog says what moved the branch, and still reaches the old tip (recovery)
    assert ds("reflog", "-n", "1", cwd=repo).stdout.split(": ", 1)[1] == "commit (amend): two\n"
    assert ds("reflog", "main", "-n", "1", cwd=repo).stdout.split(": ", 1)[1] == "commit (amend): two\n"
    assert _info(repo, "main@{1}")["id"] == old["id"] and _files(repo, "HEAD@{1}") == ["f", "g"]
    ds("commit", "--amend", "-m", "two, with h", "-q", cwd=repo)  # -m: a new message, no change
    assert _info(repo)["message"] == "two, with h" and _files(repo) == ["f", "g", "h"]
    assert _info(repo)["parents"] == old["parents"]


def test_amend_keeps_the_authors_time_and_names_who_amended_as_committer(repo: Path) -> None:
    import pygit2

    # HEAD's version as if written in 2001 (author and committer time), by the same author
    git = pygit2.Repository(str(repo / ".dsstore/meta"))
    tip = git.head.peel(pygit2.Commit)
    then = pygit2.Signature(tip.author.name, tip.author.email, 1_000_000_000, 120)
    old = git.create_commit(None, then, then, tip.message, tip.tree_id, list(tip.parent_ids))
    git.references["refs/heads/main"].set_target(old)
    assert _info(repo)["created"] == "2001-09-09T01:46:40Z"

    write(repo, "h", "3")
    ds("add", "h", cwd=repo)
    new = json.loads(ds("commit", "--amend", "--json", cwd=repo,
                        env=_env(DS_AUTHOR="Bob <bob@example.org>")).stdout)
    assert new["created"] == "2001-09-09T01:46:40Z"  # git log's date: the author's, kept
    assert (new["author"], new["email"]) == ("Data Team", "team@example.org")
    commit = pygit2.Repository(str(repo / ".dsstore/meta"))[new["id"]]
    assert (commit.author.time, commit.author.offset) == (1_000_000_000, 120)
    assert (commit.committer.name, commit.committer.email) == ("Bob", "bob@example.org")
    assert commit.committer.time > 1_000_000_000
    assert json.loads(ds("log", "--json", "-n", "1", cwd=repo).stdout)[0]["created"] == "2001-09-09T01:46:40Z"


def test_amend_with_a_updates_tracked_files_and_refuses_what_git_refuses(repo: Path, tmp_path: Path) -> None:
    write(repo, "g", "changed")
    ds("commit", "-a", "--amend", "-q", cwd=repo)
    with Store.open(repo) as s:
        assert s.info("HEAD").message == "two" and len(s.info("HEAD").parents) == 1
    assert (repo / "g").read_text() == "changed" and ds("status", "-s", cwd=repo).stdout == ""
    # an amend whose content is its parent's would be empty: refused unless --allow-empty
    ds("rm", "--cached", "g", "-q", cwd=repo)
    before = _info(repo)["id"]
    assert "would make it empty" in _fails("commit", "--amend", cwd=repo)
    assert _info(repo)["id"] == before
    ds("commit", "--amend", "--allow-empty", "-m", "nothing new", "-q", cwd=repo)
    with Store.open(repo) as s:
        assert s.info("HEAD").tree == s.info("HEAD~1").tree and s.info("HEAD").message == "nothing new"
    # nothing to amend on a branch with no version yet (and -a stages nothing first)
    e = tmp_path / "empty"
    ds("init", str(e), cwd=tmp_path)
    write(e, "x", "x")
    assert "You have nothing to amend" in _fails("commit", "--amend", "-m", "x", cwd=e)
    assert "You have nothing to amend" in _fails("commit", "-a", "--amend", cwd=e)
    assert not (e / ".dsstore/STAGE").exists()
    assert "needs a message" in _fails("commit", "--amend", "-m", " ", cwd=repo)
    r = ds("commit", cwd=repo, check=False)  # no -m and no --amend: still a usage error
    assert r.returncode == 2 and "missing option '-m' / '--message'" in r.stderr


def test_amend_on_a_detached_head_moves_head_only(repo: Path) -> None:
    main = _branches(repo)["main"]
    ds("checkout", "HEAD~0", "-q", cwd=repo)
    r = ds("commit", "--amend", "-m", "detached amend", cwd=repo)
    assert "Committed on a detached HEAD" in r.stderr
    assert _branches(repo)["main"] == main and _branch(repo) is None
    assert _info(repo)["id"] == r.stdout.strip() and _info(repo, "HEAD@{1}")["id"] == main


def test_amend_of_a_merge_keeps_both_parents(repo: Path) -> None:
    ds("switch", "-c", "feat", "-q", cwd=repo)
    write(repo, "feat.txt", "f")
    ds("add", "-A", cwd=repo)
    ds("commit", "-m", "feat", "-q", cwd=repo)
    ds("switch", "main", "-q", cwd=repo)
    write(repo, "main.txt", "m")
    ds("add", "-A", cwd=repo)
    ds("commit", "-m", "main", "-q", cwd=repo)
    ds("merge", "feat", "-q", cwd=repo)
    merge = _info(repo)
    assert len(merge["parents"]) == 2
    ds("commit", "--amend", "-m", "merged feat", "-q", cwd=repo)
    amended = _info(repo)
    assert amended["parents"] == merge["parents"] and amended["message"] == "merged feat"
    assert _files(repo) == ["f", "feat.txt", "g", "main.txt"]


def test_allow_empty_records_a_version_with_its_parents_content(repo: Path) -> None:
    before = _info(repo)
    r = _fails("commit", "-m", "nothing", cwd=repo)
    assert "nothing to commit" in r and _info(repo)["id"] == before["id"]
    new = ds("commit", "--allow-empty", "-m", "marker", cwd=repo).stdout.strip()
    with Store.open(repo) as s:
        info = s.info("HEAD")
        assert info.id == new and info.parents == (before["id"],) and info.tree == s.info("HEAD~1").tree
    again = json.loads(ds("commit", "--allow-empty", "-m", "again", "--json", cwd=repo).stdout)
    assert again["parents"] == [new]


# -- branch -m NEW ----------------------------------------------------------------------------

def test_branch_m_with_one_name_renames_the_current_branch(repo: Path, tmp_path: Path) -> None:
    tip = _branches(repo)["main"]
    r = ds("branch", "-m", "trunk", "--json", cwd=repo)
    assert json.loads(r.stdout) == {"branch": "trunk", "id": tip, "renamed_from": "main"}
    assert _branch(repo) == "trunk" and _branches(repo) == {"trunk": tip}
    assert ds("reflog", "trunk", cwd=repo).stdout.count("\n") >= 2  # its reflog went with it
    ds("branch", "other", cwd=repo)
    assert "already exists" in _fails("branch", "-m", "other", cwd=repo)
    ds("branch", "-M", "other", cwd=repo)  # git's -M: replace it
    assert _branch(repo) == "other" and _branches(repo) == {"other": tip}
    ds("branch", "-m", "other", "main", cwd=repo)  # OLD NEW still works
    assert _branch(repo) == "main"
    ds("checkout", "HEAD~1", "-q", cwd=repo)
    assert "not on any branch" in _fails("branch", "-m", "x", cwd=repo)
    r = ds("branch", "-m", cwd=repo, check=False)
    assert r.returncode == 2 and "ds branch -m NEW" in r.stderr
    # a branch with no version yet: HEAD alone takes the new name, and the first commit is on it
    e = tmp_path / "e"
    ds("init", str(e), cwd=tmp_path)
    ds("branch", "-m", "trunk", "-q", cwd=e)
    write(e, "x", "x")
    ds("add", "-A", cwd=e)
    ds("commit", "-m", "first", "-q", cwd=e)
    assert _branch(e) == "trunk" and list(_branches(e)) == ["trunk"]


def test_branch_M_over_another_branch_deletes_it_as_branch_D_would_and_leaves_no_damage(repo: Path) -> None:
    one, two = _info(repo, "HEAD~1")["id"], _info(repo)["id"]
    ds("branch", "old", "HEAD~1", cwd=repo)
    ds("branch", "target", cwd=repo)  # at "two": the tip the rename replaces
    ds("branch", "-M", "old", "target", cwd=repo)
    assert _branches(repo) == {"main": two, "target": one}
    assert ds("fsck", cwd=repo).returncode == 0  # no ref left looking damaged
    ds("switch", "-q", "target", cwd=repo)
    ds("branch", "-q", "-D", "main", cwd=repo)
    ds("gc", "-q", cwd=repo)  # within the reflog grace period, "two" is kept by the logs
    assert _info(repo, two)["id"] == two and ds("fsck", cwd=repo).returncode == 0


def test_branch_M_that_fails_changes_nothing(repo: Path) -> None:
    """A rename libgit2 cannot make (here: OLD's ref lock held by a live writer) leaves the
    branch it would replace, and every reflog, as they were."""
    before = _branches(repo)
    ds("branch", "old", "HEAD~1", cwd=repo)
    ds("branch", "target", cwd=repo)
    meta = repo / ".dsstore/meta"
    lock = meta / "refs/heads/old.lock"
    held = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL)  # open, as a live writer holds it:
    try:  # the store's sweep of dead writers' locks keeps it

        def reflogs() -> dict:
            return {p.relative_to(meta): p.read_bytes() for p in (meta / "logs").rglob("*") if p.is_file()}

        logs = reflogs()
        msg = _fails("branch", "-M", "old", "target", cwd=repo)
        assert "nothing was changed" in msg and "old.lock" in msg
        assert _branches(repo) == before | {"old": _info(repo, "HEAD~1")["id"], "target": before["main"]}
        assert reflogs() == logs
    finally:
        os.close(held)
    lock.unlink()
    ds("branch", "-M", "old", "target", cwd=repo)
    assert ds("fsck", cwd=repo).returncode == 0


def test_branch_M_onto_the_current_branch_is_refused_and_moves_nothing(repo: Path) -> None:
    one, two = _info(repo, "HEAD~1")["id"], _info(repo)["id"]
    ds("branch", "old", "HEAD~1", cwd=repo)
    write(repo, "s.txt", "staged")
    ds("add", "s.txt", cwd=repo)
    for flags in (("-M",), ("-m", "-f")):
        msg = _fails("branch", *flags, "old", "main", cwd=repo)
        assert "current branch" in msg and "ds switch old" in msg
    assert _branches(repo) == {"main": two, "old": one} and _branch(repo) == "main"
    assert ds("status", "-s", cwd=repo).stdout == "A  s.txt\n"  # the stage is still on main's tip


def test_a_reflog_renamed_aside_without_its_deletion_is_no_damage_to_repair(repo: Path) -> None:
    """What an older rename -M left: the replaced branch's log, aside, ending on a version.
    It is kept for gc (its versions stay reachable), and neither fsck nor its repair takes it
    for a ref to mend (its name is no ref name)."""
    two = _info(repo)["id"]
    logs = repo / ".dsstore/meta/logs/refs/heads"
    line = f"{'0' * 40} {two} A <a@b> 1700000000 +0000\tbranch: Created from HEAD\n"
    (logs / "gone~deleted-1").write_text(line)
    assert ds("fsck", cwd=repo).returncode == 0
    r = ds("fsck", "--repair", cwd=repo)
    assert "Traceback" not in r.stderr and (logs / "gone~deleted-1").read_text() == line


# -- switch -C / checkout -B --------------------------------------------------------------------

def test_switch_C_creates_or_resets_a_branch_and_its_reflog_keeps_the_old_tip(repo: Path) -> None:
    tip, first = _branches(repo)["main"], _info(repo, "HEAD~1")["id"]
    r = ds("switch", "-C", "topic", "HEAD~1", cwd=repo)  # absent: created, as -c
    assert "Switched to a new branch 'topic'" in r.stderr
    assert _branch(repo) == "topic" and _branches(repo)["topic"] == first and not (repo / "g").exists()
    r = ds("switch", "-C", "main", "topic", cwd=repo)  # exists: moved there, HEAD on it
    assert "Switched to and reset branch 'main'" in r.stderr and tip[:12] in r.stderr
    assert _branch(repo) == "main" and _branches(repo)["main"] == first
    assert _info(repo, "main@{1}")["id"] == tip  # the old value, in the branch's reflog
    assert ds("reflog", "main", "-n", "1", cwd=repo).stdout.endswith("branch: Reset to topic\n")
    r = ds("switch", "-C", "main", tip, "--json", cwd=repo)  # the current branch, moved back
    assert json.loads(r.stdout)["reset_from"] == first and (repo / "g").read_text() == "2"
    assert _branches(repo)["main"] == tip
    # plain -c still refuses an existing branch, and names -C
    assert "`ds switch -C main [REV]` moves it" in _fails("switch", "-c", "main", cwd=repo)
    r = ds("switch", "-c", "-C", "x", cwd=repo, check=False)
    assert r.returncode == 2 and "give one of them" in r.stderr


def test_switch_C_and_checkout_B_refuse_to_drop_uncommitted_work(repo: Path) -> None:
    tip, first = _branches(repo)["main"], _info(repo, "HEAD~1")["id"]
    ds("branch", "old", first, cwd=repo)
    write(repo, "g", "work in progress")
    for args in (("switch", "-C", "main", "old"), ("checkout", "-B", "main", "old")):
        assert "would be lost" in _fails(*args, cwd=repo)
        assert _branches(repo)["main"] == tip and (repo / "g").read_text() == "work in progress"
    ds("checkout", "-B", "main", "old", "--force", "-q", cwd=repo)  # --force drops it, as git's -f
    assert _branches(repo)["main"] == first and not (repo / "g").exists()


def test_checkout_B_creates_or_resets(repo: Path) -> None:
    tip, first = _branches(repo)["main"], _info(repo, "HEAD~1")["id"]
    r = ds("checkout", "-B", "side", "HEAD~1", cwd=repo)
    assert "Switched to a new branch 'side'" in r.stderr and _branches(repo)["side"] == first
    r = ds("checkout", "-B", "side", "main", "--json", cwd=repo)
    data = json.loads(r.stdout)
    assert data["branch"] == "side" and data["id"] == tip and data["reset_from"] == first
    assert _info(repo, "side@{1}")["id"] == first and (repo / "g").read_text() == "2"
    r = ds("checkout", "-B", "side", "HEAD", "--", "f", cwd=repo, check=False)
    assert r.returncode == 2 and "-B takes no paths" in r.stderr


# -- tag -l PATTERN -----------------------------------------------------------------------------

def test_tag_list_takes_git_globs_sorted(repo: Path) -> None:
    for name in ("v2", "v10", "v1", "rel/2024", "w1"):
        ds("tag", name, "-q", cwd=repo)
    def names(*args: str) -> list[str]:
        return [line.split("\t")[0] for line in ds("tag", *args, cwd=repo).stdout.splitlines()]

    assert names("-l", "v*") == ["v1", "v10", "v2"]
    assert names("--list", "v1*") == ["v1", "v10"]
    assert names("-l", "rel/*", "w?") == ["rel/2024", "w1"]  # any of the patterns
    assert names("-l", "*20*") == ["rel/2024"]  # * crosses /, as git's
    assert names("-l") == names() == ["rel/2024", "v1", "v10", "v2", "w1"]
    assert names("-l", "V*") == []  # case counts
    assert list(json.loads(ds("tag", "-l", "v?", "--json", cwd=repo).stdout)) == ["v1", "v2"]
    assert "-l lists tags" in _fails("tag", "-l", "-d", "v1", cwd=repo)
    assert "v1" in names()


# -- add -n -------------------------------------------------------------------------------------

def test_add_dry_run_prints_what_would_be_staged_and_changes_nothing(repo: Path) -> None:
    write(repo, "f", "changed")
    write(repo, "new dir/n.txt", "n")
    (repo / "g").unlink()
    write(repo, "same", "s")
    ds("add", "same", "-q", cwd=repo)
    os.utime(repo / "same", (1, 1))  # its stat data moved, its content did not: not listed
    status = ds("status", "-s", cwd=repo).stdout
    stage = (repo / ".dsstore/STAGE").read_bytes()
    packs = sorted(p.name for p in (repo / ".dsstore/packs").rglob("*"))
    r = ds("add", "-n", "-A", cwd=repo)
    assert r.stdout == "add 'f'\nremove 'g'\nadd 'new dir/n.txt'\n"
    assert ds("add", "--dry-run", "f", "same", cwd=repo).stdout == "add 'f'\n"
    assert ds("add", "-n", "-u", cwd=repo).stdout == "add 'f'\nremove 'g'\n"  # tracked files only
    assert ds("add", "-n", "-q", "-A", cwd=repo).stdout == r.stdout  # the lines are the result
    data = json.loads(ds("add", "-n", "-A", "--json", cwd=repo).stdout)
    assert (data["dry_run"], data["add"], data["remove"]) == (True, ["f", "new dir/n.txt"], ["g"])
    assert ds("status", "-s", cwd=repo).stdout == status
    assert (repo / ".dsstore/STAGE").read_bytes() == stage
    assert sorted(p.name for p in (repo / ".dsstore/packs").rglob("*")) == packs
    write(repo, ".dsignore", "*.log\n")
    write(repo, "x.log", "x")
    assert "ignored by .dsignore" in _fails("add", "-n", "x.log", cwd=repo)
    r = ds("add", "-n", "s3://bucket/x", cwd=repo, check=False)
    assert r.returncode == 2 and "-n are for files" in r.stderr


# -- status -sb ---------------------------------------------------------------------------------

def test_status_short_branch_header_as_git(repo: Path, tmp_path: Path) -> None:
    assert ds("status", "-sb", cwd=repo).stdout == "## main\n"  # clean: the header alone
    write(repo, "f", "x")
    assert ds("status", "-s", "-b", cwd=repo).stdout == "## main\n M f\n"
    assert ds("status", "--porcelain", "--branch", cwd=repo).stdout == "## main\n M f\n"
    assert ds("status", "-s", cwd=repo).stdout == " M f\n"  # without -b: no header
    ds("restore", "f", cwd=repo)
    url = str(tmp_path / "remote")
    ds("remote", "add", "origin", url, cwd=repo)
    ds("push", "-u", "origin", "main", "-q", cwd=repo)
    assert ds("status", "-sb", cwd=repo).stdout == "## main...origin/main\n"
    ds("clone", url, "b", "-q", cwd=tmp_path)
    b = tmp_path / "b"
    ds("commit", "--allow-empty", "-m", "ahead", "-q", cwd=repo)
    assert ds("status", "-sb", cwd=repo).stdout == "## main...origin/main [ahead 1]\n"
    ds("push", "-q", cwd=repo)
    ds("fetch", "-q", cwd=b)
    assert ds("status", "-sb", cwd=b).stdout == "## main...origin/main [behind 1]\n"
    ds("commit", "--allow-empty", "-m", "here", "-q", cwd=b)
    write(b, "new", "n")
    assert ds("status", "-sb", cwd=b).stdout == "## main...origin/main [ahead 1, behind 1]\n?? new\n"
    with Store.open(b) as s:
        s.set_config(store_set(s.config, "branch.main.merge", "refs/heads/gone"))
    assert ds("status", "-sb", cwd=b).stdout.splitlines()[0] == "## main...origin/gone [gone]"
    ds("checkout", "HEAD~1", "-q", "-f", cwd=repo)
    assert ds("status", "-sb", cwd=repo).stdout == "## HEAD (no branch)\n"
    e = tmp_path / "e"
    ds("init", str(e), cwd=tmp_path)
    assert ds("status", "-sb", cwd=e).stdout == "## No commits yet on main\n"


# -- mv -f --------------------------------------------------------------------------------------

def test_mv_f_replaces_a_file_as_git_and_the_refusals_stay_without_it(repo: Path) -> None:
    write(repo, "untracked", "u")
    assert "already exists" in _fails("mv", "f", "untracked", cwd=repo)
    assert (repo / "f").read_text() == "1" and ds("status", "-s", cwd=repo).stdout == "?? untracked\n"
    r = ds("mv", "-f", "f", "untracked", "--json", cwd=repo)
    assert json.loads(r.stdout)["overwritten"] == "untracked"
    assert not (repo / "f").exists() and (repo / "untracked").read_text() == "1"
    assert ds("status", "-s", cwd=repo).stdout == "R  f -> untracked\n"
    ds("mv", "--force", "untracked", "g", cwd=repo)  # over a tracked file: its entry is replaced
    assert (repo / "g").read_text() == "1" and ds("status", "-s", cwd=repo).stdout == "D  f\nM  g\n"
    ds("commit", "-m", "moved", "-q", cwd=repo)
    assert _files(repo) == ["g"]
    write(repo, "d/g", "in d")
    write(repo, "e/x", "x")
    ds("add", "-A", cwd=repo)
    ds("commit", "-m", "d", "-q", cwd=repo)
    assert "already exists" in _fails("mv", "g", "d", cwd=repo)  # d/g is there
    ds("mv", "-f", "g", "d", cwd=repo)  # into the folder, over d/g
    assert (repo / "d/g").read_text() == "1" and not (repo / "g").exists()
    assert "cannot move folder" in _fails("mv", "-f", "e", "d/g", cwd=repo)  # a folder over a file
    write(repo, "h", "h")
    write(repo, "e/h/y", "y")
    ds("add", "-A", cwd=repo)
    assert "it is a folder" in _fails("mv", "-f", "h", "e", cwd=repo)  # e/h is a folder: never overwritten
    assert (repo / "h").read_text() == "h" and (repo / "e/h/y").read_text() == "y"


def test_mv_f_that_fails_to_stage_puts_back_both_files(repo: Path, monkeypatch) -> None:
    """The stage cannot take the move (a full disk): SRC goes back and the file -f replaced
    is there again with its bytes, not lost; no temp name is left."""
    from objstore import worktree

    write(repo, "untracked", "mine, in no version")

    def full(*_args, **_kw):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(worktree, "_stage_move", full)
    with Store.open(repo) as s, pytest.raises(OSError, match="No space"):
        worktree.move(s, "f", "untracked", cwd=str(repo), force=True)
    monkeypatch.undo()
    assert (repo / "f").read_text() == "1" and (repo / "untracked").read_text() == "mine, in no version"
    assert sorted(p.name for p in repo.iterdir()) == [".dsstore", "f", "g", "untracked"]
    assert ds("status", "-s", cwd=repo).stdout == "?? untracked\n"
    ds("mv", "-f", "f", "untracked", cwd=repo)  # and the same move then succeeds
    assert (repo / "untracked").read_text() == "1" and not list(repo.glob(".ds-tmp-*"))


def test_a_branch_name_that_is_another_branchs_folder_is_refused_naming_it(repo: Path) -> None:
    """side and side/sub cannot both be branches (one ref file is not also a folder): a
    one-line refusal naming the other branch, not libgit2's "not a directory"; a branch
    renamed into the name its own folder holds is fine, and a deleted branch's reflog,
    put aside to make room, still answers NAME@{1}."""
    one = _info(repo, "HEAD~1")["id"]
    ds("branch", "side", "HEAD~1", cwd=repo)
    for name in ("side/sub", "side/a/b"):
        msg = _fails("branch", name, cwd=repo)
        assert "branch 'side' exists" in msg and "Traceback" not in msg
    ds("branch", "-q", "-D", "side", cwd=repo)
    ds("branch", "side/sub", cwd=repo)
    assert _info(repo, "side@{1}")["id"] == one  # the deleted side's log, renamed aside
    assert "branch 'side/sub' exists" in _fails("branch", "side", cwd=repo)
    ds("branch", "-m", "side/sub", "side", cwd=repo)
    assert set(_branches(repo)) == {"main", "side"} and ds("fsck", cwd=repo).returncode == 0
    ds("branch", "deep/er", "HEAD~1", cwd=repo)  # a log in a folder renamed aside as a whole
    ds("branch", "-q", "-D", "deep/er", cwd=repo)
    ds("branch", "deep", cwd=repo)
    assert _info(repo, "deep/er@{1}")["id"] == one
    assert "deep/er@{1}" in ds("reflog", "deep/er", cwd=repo).stdout


def test_a_rename_libgit2_leaves_half_done_puts_the_old_branch_back(repo: Path) -> None:
    """libgit2 removes OLD before it writes NEW: a rename failing in between (a full disk,
    a lock taken meanwhile) would leave neither. OLD comes back at its tip with its reflog,
    and the error says nothing changed, which is then true."""
    main = _branches(repo)["main"]
    ds("branch", "target", "HEAD~1", cwd=repo)
    meta_dir = repo / ".dsstore/meta"
    log_before = (meta_dir / "logs/refs/heads/main").read_bytes()

    class HalfRename:  # libgit2's first step done (OLD removed), then a failure
        def __init__(self, real):
            self.real = real

        def rename(self, new: str, force: bool) -> None:
            (meta_dir / "refs/heads/main").unlink()
            (meta_dir / "logs/refs/heads/main").unlink()
            raise OSError("No space left on device")

    class Local:
        def __init__(self, real):
            self.real = real

        def __contains__(self, name: str) -> bool:
            return name in self.real

        def __getitem__(self, name: str):
            return HalfRename(self.real[name])

    class Repo:
        def __init__(self, real):
            self.real = real
            self.branches = type("B", (), {"local": Local(real.branches.local)})()

        def __getattr__(self, name: str):
            return getattr(self.real, name)

    with Store.open(repo) as s:
        s.meta.repo = Repo(s.meta.repo)
        with pytest.raises(DsError, match="nothing was changed"):
            s.meta.rename_branch("main", "target", ("t", "t@example.org"), force=True)
    assert _branches(repo) == {"main": main, "target": _info(repo, "HEAD~1")["id"]}
    assert (meta_dir / "logs/refs/heads/main").read_bytes() == log_before
    assert ds("fsck", cwd=repo).returncode == 0 and _branch(repo) == "main"


def test_the_newest_reflog_put_aside_is_the_one_deleted_last_whatever_touched_its_file(repo: Path) -> None:
    """An expiry rewrites an older put-aside log (its file then looks newest): NAME@{N} still
    answers from the log whose deletion is the latest, by the deletion's own time."""
    one, two = _info(repo, "HEAD~1")["id"], _info(repo)["id"]
    heads = repo / ".dsstore/meta/logs/refs/heads"
    zero = "0" * 40

    def log(created: str, at: int) -> str:
        return (f"{zero} {created} t <t@x> {at} +0000\tbranch: Created from HEAD\n"
                f"{created} {zero} t <t@x> {at + 10} +0000\tbranch: deleted x\n")

    (heads / "x~deleted-1").write_text(log(one, 1_700_000_000))  # deleted first
    (heads / "x~deleted-2").write_text(log(two, 1_700_000_100))  # deleted last
    os.utime(heads / "x~deleted-1", (2_000_000_000, 2_000_000_000))  # rewritten later by an expiry
    assert _info(repo, "x@{1}")["id"] == two
