"""`ds commit` and `ds add` as git users type them: -a stages tracked files only, add -u,
-q prints nothing, git's "Name <email>" author, and a commit that cannot be made stages
nothing. Real CLI runs, checked against the stage and the versions."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .conftest import ds, write


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """One version holding f.txt and d/g.txt."""
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "f.txt", "one\n")
    write(w, "d/g.txt", "g\n")
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "one", cwd=w)
    return w


def _files(w: Path, rev: str = "HEAD") -> list[str]:
    return sorted(e["path"] for e in json.loads(ds("ls", "-r", "--json", rev, cwd=w).stdout))


def test_commit_a_stages_tracked_changes_and_removals_never_new_files(repo: Path) -> None:
    write(repo, "f.txt", "two\n")
    (repo / "d/g.txt").unlink()
    write(repo, "scratch.bin", os.urandom(1000))
    ds("commit", "-a", "-m", "two", cwd=repo)
    assert _files(repo) == ["f.txt"]
    assert ds("status", "-s", cwd=repo).stdout == "?? scratch.bin\n"
    r = ds("commit", "-a", "-m", "three", cwd=repo, check=False)  # only an untracked file changed
    assert r.returncode == 1 and "nothing added to commit" in r.stderr and "ds add" in r.stderr


def test_nothing_to_commit_says_what_the_folder_holds_as_git_does(tmp_path: Path) -> None:
    """git's three answers: changes not staged (add them, or -a), only new files (add
    them; -a would not), nothing at all. None suggests what would not help."""
    w = tmp_path / "w"
    ds("init", "-q", str(w), cwd=tmp_path)

    def refused(*args: str) -> str:
        r = ds("commit", *args, "-m", "x", cwd=w, check=False)
        assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
        return r.stderr

    assert "create or copy files" in refused()  # an empty store
    write(w, "t.txt", "tracked\n")
    for args in ((), ("-a",)):
        msg = refused(*args)
        assert "new files are present" in msg and "-a" not in msg.replace("ds add -A", "")
    ds("add", "-q", "t.txt", cwd=w)
    ds("commit", "-q", "-m", "one", cwd=w)
    write(w, "new.txt", "untracked\n")
    write(w, "t.txt", "changed\n")
    msg = refused()
    assert "no changes added to commit" in msg and "commit with -a" in msg
    ds("commit", "-q", "-a", "-m", "two", cwd=w)  # what the message offered works
    assert ds("status", "-s", cwd=w).stdout == "?? new.txt\n"
    (w / "new.txt").unlink()
    assert "matches the latest version" in refused() and "matches the latest version" in refused("-a")


def test_add_u_stages_tracked_files_under_the_paths_given(repo: Path) -> None:
    write(repo, "f.txt", "two\n")
    write(repo, "d/g.txt", "changed\n")
    write(repo, "d/new.txt", "new\n")
    ds("add", "-u", "d", cwd=repo)
    assert ds("status", "-s", cwd=repo).stdout == "M  d/g.txt\n M f.txt\n?? d/new.txt\n"
    ds("add", "-u", cwd=repo)
    assert ds("status", "-s", cwd=repo).stdout == "M  d/g.txt\nM  f.txt\n?? d/new.txt\n"
    r = ds("add", "-u", "-A", cwd=repo, check=False)
    assert r.returncode == 2 and "give one of them" in r.stderr


def test_commit_q_prints_nothing_and_json_still_answers(repo: Path) -> None:
    write(repo, "f.txt", "two\n")
    r = ds("commit", "-a", "-q", "-m", "two", cwd=repo)
    assert (r.stdout, r.stderr) == ("", "")
    write(repo, "f.txt", "three\n")
    r = ds("commit", "-a", "-q", "--json", "-m", "three", cwd=repo)
    assert json.loads(r.stdout)["message"].strip() == "three"


def test_git_author_form_name_and_email_is_recorded(repo: Path) -> None:
    write(repo, "f.txt", "two\n")
    env = {k: v for k, v in os.environ.items() if k != "DSSTORE_DIR"}
    env["DS_AUTHOR"] = "Data Team <team@example.org>"
    ds("commit", "-a", "-m", "two", cwd=repo, env=env)
    entry = json.loads(ds("log", "-n", "1", "--json", cwd=repo).stdout)[0]
    assert entry["author"] == "Data Team"
    from objstore.store import Store

    with Store.open(repo) as store:
        assert store.meta.commit_info(store.head()).email == entry["email"] == "team@example.org"


@pytest.mark.parametrize("author,message", [("a<b", "x"), ("Team <a@b> <c@d>", "x"), ("Team", "  ")])
def test_a_commit_that_cannot_be_made_stages_nothing(repo: Path, author: str, message: str) -> None:
    write(repo, "f.txt", "two\n")
    env = {k: v for k, v in os.environ.items() if k != "DSSTORE_DIR"} | {"DS_AUTHOR": author}
    r = ds("commit", "-a", "-m", message, cwd=repo, env=env, check=False)
    assert r.returncode == 1 and "Traceback" not in r.stderr and len(r.stderr.splitlines()) == 1
    assert ("a commit needs a message" if not message.strip() else "neither a name nor") in r.stderr
    assert ds("status", "-s", cwd=repo).stdout == " M f.txt\n"  # unstaged, as before
