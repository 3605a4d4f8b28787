"""checkout, switch and branch -m as git users type them: `checkout -b NAME` at HEAD,
`checkout -` / `@{-N}` back onto the branch, `checkout -- PATH` from the stage, `checkout
REV -- PATH` staging too, `switch --detach`, refusals that name a fix the command has, and
a rename that keeps a deleted branch's reflog. Real CLI runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from objstore.store import Store

from .conftest import ds, write


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """main: one version holding f = "1"; feat: one more, f = "2"; HEAD back on main."""
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "f", "1")
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "one", cwd=w)
    ds("checkout", "-b", "feat", cwd=w)  # no REV: at HEAD, as git's
    write(w, "f", "2")
    ds("commit", "-a", "-m", "two", cwd=w)
    ds("switch", "main", cwd=w)
    return w


def _branch(w: Path) -> str | None:
    with Store.open(w) as s:
        return s.head_branch()


def test_checkout_b_without_rev_starts_at_head(repo: Path) -> None:
    r = ds("checkout", "-b", "topic", cwd=repo)
    assert "Switched to a new branch 'topic'" in r.stderr and _branch(repo) == "topic"
    r = ds("checkout", "-b", "x", "HEAD", "--", "f", cwd=repo, check=False)
    assert r.returncode == 2 and "-b takes no paths" in r.stderr


def test_checkout_dash_and_at_minus_n_go_back_onto_the_branch(repo: Path) -> None:
    ds("switch", "feat", cwd=repo)
    ds("checkout", "@{-1}", cwd=repo)
    assert _branch(repo) == "main"
    ds("checkout", "-", cwd=repo)
    assert _branch(repo) == "feat" and (repo / "f").read_text() == "2"
    ds("switch", "-", cwd=repo)
    assert _branch(repo) == "main"
    ds("checkout", "HEAD~0", cwd=repo)  # a version: detached
    ds("switch", "feat", cwd=repo)
    ds("checkout", "-", cwd=repo)  # the previous checkout was of a version: detached again
    assert _branch(repo) is None
    r = ds("switch", "@{-1}", cwd=repo)
    assert _branch(repo) == "feat" and "Switched to branch 'feat'" in r.stderr
    r = ds("switch", "feat", cwd=repo)  # where HEAD already is: git's words
    assert r.stderr == "Already on 'feat'\n" and _branch(repo) == "feat"
    r = ds("checkout", "feat", cwd=repo)
    assert _branch(repo) == "feat" and r.returncode == 0


def test_checkout_dashdash_path_restores_from_the_stage(repo: Path) -> None:
    write(repo, "f", "staged")
    ds("add", "f", cwd=repo)
    write(repo, "f", "scratch")
    r = ds("checkout", "--", "f", cwd=repo)
    assert (repo / "f").read_text() == "staged" and "Restored 1 file(s) from the stage" in r.stderr
    r = ds("checkout", cwd=repo, check=False)
    assert r.returncode == 2 and "name a version or branch" in r.stderr


def test_checkout_rev_path_sets_the_file_and_its_stage_entry(repo: Path) -> None:
    ds("checkout", "feat", "--", "f", cwd=repo)
    assert (repo / "f").read_text() == "2" and _branch(repo) == "main"
    assert ds("status", "-s", cwd=repo).stdout == "M  f\n"
    ds("commit", "-m", "took feat's f", cwd=repo)  # no `ds add` needed, as in git
    assert ds("status", "-s", cwd=repo).stdout == ""


def test_switch_detach_and_the_hint_for_a_version(repo: Path) -> None:
    r = ds("switch", "feat~1", cwd=repo, check=False)
    assert r.returncode == 1 and "`ds switch --detach feat~1`" in r.stderr
    r = ds("switch", "--detach", "feat", cwd=repo, check=False)
    assert r.returncode == 0 and "on no branch" in r.stderr
    assert _branch(repo) is None and (repo / "f").read_text() == "2"
    assert json.loads(ds("switch", "main", "--json", cwd=repo).stdout)["branch"] == "main"


def test_merge_refusal_names_a_fix_merge_has(repo: Path) -> None:
    write(repo, "f", "local edit")
    r = ds("merge", "feat", cwd=repo, check=False)
    assert r.returncode == 1 and "--force" not in r.stderr and "ds restore PATH" in r.stderr
    r = ds("checkout", "feat", cwd=repo, check=False)
    assert r.returncode == 1 and "use --force to discard them" in r.stderr


def test_branch_rename_onto_a_deleted_branchs_name_keeps_its_reflog(repo: Path) -> None:
    ds("switch", "-c", "gone", cwd=repo)
    write(repo, "only-here", "x")
    ds("add", "-A", cwd=repo)
    only = ds("commit", "-m", "only on gone", cwd=repo).stdout.strip()
    ds("switch", "main", cwd=repo)
    ds("branch", "-D", "gone", cwd=repo)
    ds("branch", "other", cwd=repo)
    ds("branch", "-m", "other", "gone", cwd=repo)
    logs = repo / ".dsstore/meta/logs/refs/heads"
    assert (logs / "gone~deleted-1").read_text().count(only) >= 1
    ds("gc", cwd=repo)
    ds("get", only, str(repo.parent / "kept"), cwd=repo)  # gc still kept it
    assert (repo.parent / "kept" / "only-here").read_text() == "x"


def test_checkout_rev_folder_keeps_files_rev_lacks_in_the_folder_and_the_stage(repo: Path) -> None:
    """git's checkout REV -- DIR is an overlay: files REV lacks stay, staged and on disk."""
    write(repo, "d/a", "old")
    ds("add", "-A", cwd=repo)
    ds("commit", "-m", "d/a", cwd=repo)
    write(repo, "d/a", "new")
    write(repo, "d/c", "later")
    ds("add", "-A", cwd=repo)
    ds("commit", "-m", "d/c", cwd=repo)
    ds("checkout", "HEAD~1", "--", "d", cwd=repo)
    assert (repo / "d/a").read_text() == "old" and (repo / "d/c").read_text() == "later"
    assert ds("status", "-s", cwd=repo).stdout == "M  d/a\n"
    ds("commit", "-m", "d/a back", cwd=repo)
    assert sorted(ds("ls", "d", cwd=repo).stdout.split()) == ["d/a", "d/c"]


def test_checkout_of_a_file_name_names_the_commands_that_restore_it(repo: Path, tmp_path: Path) -> None:
    """git restores the file (its changes gone, unasked); ds refuses, naming `ds restore F`
    and `ds checkout -- F`, which do it knowingly. A name that is no path: the plain error."""
    write(repo, "f", "edited")
    r = ds("checkout", "f", cwd=repo, check=False)
    assert r.returncode == 1 and "`ds restore f`" in r.stderr and "`ds checkout -- f`" in r.stderr
    assert (repo / "f").read_text() == "edited"
    ds("checkout", "--", "f", cwd=repo)
    assert (repo / "f").read_text() == "1"
    r = ds("checkout", "nosuch", cwd=repo, check=False)
    assert r.returncode == 1 and "ds restore" not in r.stderr
    write(repo, "untracked.txt", "new")  # not in the stage: restore could not help, so no hint
    r = ds("checkout", "untracked.txt", cwd=repo, check=False)
    assert r.returncode == 1 and "ds restore" not in r.stderr
    (repo / "f").unlink()  # a tracked file deleted: git's most common `checkout FILE`
    r = ds("checkout", "f", cwd=repo, check=False)
    assert r.returncode == 1 and "`ds restore f`" in r.stderr
    write(repo, "sub/f", "tracked in sub")
    ds("add", "-q", "sub/f", cwd=repo)
    write(repo, "sub/f", "edited in sub")
    r = ds("-C", "sub", "checkout", "f", cwd=repo, check=False)  # the hint keeps -C's folder
    hint = f"`ds -C {repo / 'sub'} restore f`"
    assert r.returncode == 1 and hint in r.stderr, r.stderr
    ds(*hint.strip("`").split()[1:], cwd=tmp_path)  # followed as written, from anywhere
    assert (repo / "sub/f").read_text() == "tracked in sub" and not (repo / "f").exists()


def test_get_with_an_include_that_matches_nothing_writes_nothing_and_says_so(
        repo: Path, tmp_path: Path) -> None:
    r = ds("get", "HEAD", str(tmp_path / "g"), "--include", "*.nothing", cwd=repo, check=False)
    assert r.returncode == 1 and "matches --include '*.nothing'" in r.stderr
    assert not (tmp_path / "g").exists()
