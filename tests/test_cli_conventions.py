"""One convention for every `ds` command, checked on real CLI runs: -q and --json, usage
errors on one line with exit 2, `ds --help` in workflow sections, --version and shell
completion, and messages that say what is actually wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from .conftest import DS, ds, write


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A working folder with one version holding a.txt and b.txt, on branch main."""
    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "a.txt", "one\n")
    write(w, "b.txt", "two\n")
    ds("add", ".", cwd=w)
    ds("commit", "-m", "one", cwd=w)
    return w


def _head(w: Path) -> str:
    return json.loads(ds("log", "--json", "-n", "1", cwd=w).stdout)[0]["id"]


# -- 1. -q and --json -------------------------------------------------------------------

def test_quiet_silences_every_note(repo: Path, tmp_path: Path) -> None:
    runs = [
        ("init", str(tmp_path / "new")),
        ("tag", "v1"),
        ("tag", "-d", "v1"),
        ("branch", "dev"),
        ("switch", "dev"),
        ("checkout", "main"),
        ("checkout", "HEAD", "a.txt"),
        ("get", "HEAD", str(tmp_path / "copy")),
        ("mv", "b.txt", "c.txt"),
        ("restore", "--staged", "c.txt"),
        ("rm", "a.txt"),
        ("squash", "HEAD", "-m", "root", "-f"),
        ("gc",),
    ]
    for args in runs:
        p = ds(*args, "-q", cwd=repo)
        assert p.stderr == "", (args, p.stderr)
    # without -q the same commands say what they did: -q is what silenced them
    assert "Initialized empty store" in ds("init", str(tmp_path / "new2"), cwd=repo).stderr
    assert ds("tag", "v2", cwd=repo).stderr.startswith("Tagged ")
    assert ds("squash", "HEAD", "-m", "again", "-f", cwd=repo).stderr.startswith(
        "Branch main is now at root version ")
    assert ds("gc", cwd=repo).stderr.startswith("gc freed ")


def test_quiet_keeps_warnings_and_errors(repo: Path) -> None:
    write(repo, ".dsignore", "*.log\n")
    write(repo, "x.log", "x")
    p = ds("add", "-q", "x.log", cwd=repo, check=False)
    assert p.returncode == 1 and p.stderr.startswith("Error: not staged, ignored by .dsignore rules: x.log")
    p = ds("rm", "-q", "nope.txt", cwd=repo, check=False)
    assert p.returncode == 1 and p.stderr.startswith("Error: ") and len(p.stderr.splitlines()) == 1


def _json(w: Path, *args: str) -> dict:
    """The one JSON document a --json run prints on stdout (the summary note is not printed)."""
    p = ds(*args, "--json", cwd=w)
    assert not any(line.startswith(("Staged", "Removed", "Checked out", "Wrote", "Initialized", "Tagged",
                                    "Switched", "Moved", "Branch", "Restored", "Unstaged"))
                   for line in p.stderr.splitlines()), p.stderr
    return json.loads(p.stdout)


def test_json_on_the_commands_that_lacked_it(repo: Path, tmp_path: Path) -> None:
    new = tmp_path / "new"
    assert _json(repo, "init", str(new)) == {"store": str(new / ".dsstore"), "folder": str(new),
                                             "hash": "xxh3-128"}
    write(repo, "c.txt", "three\n")
    added = _json(repo, "add", "c.txt")
    assert added["staged"] == 1 and added["bytes_new"] > 0 and added["ignored"] == []
    ds("commit", "-m", "two", cwd=repo)
    two = _head(repo)
    assert _json(repo, "rm", "c.txt") == {"removed": ["c.txt"], "kept": False}
    assert not (repo / "c.txt").exists()
    ds("restore", "--staged", ".", cwd=repo)
    ds("restore", "c.txt", cwd=repo)

    back = _json(repo, "checkout", "HEAD~1")
    assert back["id"] != two and back["branch"] is None and back["paths"] is None
    forward = _json(repo, "checkout", "main")
    assert forward["id"] == two and forward["branch"] == "main" and forward["files_written"] == 1
    one_path = _json(repo, "checkout", "HEAD", "c.txt")
    assert one_path["paths"] == ["c.txt"] and one_path["files_written"] == 1

    got = _json(repo, "get", "HEAD", str(tmp_path / "copy"))
    assert got == {"id": two, "folder": str(tmp_path / "copy"), "files_written": 3, "links_refused": []}
    assert _json(repo, "tag", "v2") == {"tag": "v2", "id": two}
    assert _json(repo, "tag", "-d", "v2") == {"tag": "v2", "id": two, "deleted": True}
    assert _json(repo, "branch", "dev") == {"branch": "dev", "id": two}
    assert _json(repo, "switch", "dev")["branch"] == "dev"
    moved = _json(repo, "mv", "c.txt", "d.txt")
    assert moved == {"from": "c.txt", "to": "d.txt", "files": [["c.txt", "d.txt"]]}
    restored = _json(repo, "restore", "--staged", "d.txt", "c.txt")
    assert sorted(restored["restored"] + restored["removed"]) == ["c.txt", "d.txt"]
    squashed = _json(repo, "squash", "HEAD", "-m", "root", "-f")
    assert squashed["parents"] == [] and squashed["message"] == "root" and squashed["branch"] == "dev"
    assert _head(repo) == squashed["id"]


# -- 2. usage errors: one line, exit 2 --------------------------------------------------

@pytest.mark.parametrize("args,what,where", [
    (["add"], "name the files or folders to stage, or give -A for all of them (-u for the tracked ones)",
     "ds add"),
    (["status", "--bogus"], "no such option '--bogus'", "ds status"),
    (["log", "-n", "abc"], "invalid value for '-n': 'abc' is not a valid integer", "ds log"),
    (["nosuch"], "no such command 'nosuch'", "ds"),
    (["stauts"], "no such command 'stauts'. Did you mean 'status'?", "ds"),
    (["commit"], "missing option '-m' / '--message'", "ds commit"),
    (["log", "a", "b"], "got unexpected extra argument (b)", "ds log"),
    (["remote", "add", "origin"], "missing argument 'URL'", "ds remote add"),
    (["checkout", "HEAD", "a.txt", "-b", "x"], "-b takes no paths: `ds checkout -b NAME [REV]`",
     "ds checkout"),
    (["branch", "x", "-d", "y"], "give one of: NAME [REV], -d NAME, -D NAME, -m OLD NEW", "ds branch"),
    (["--show-completion", "tcsh"], "'tcsh' is not a shell ds completes; name one of bash, zsh, "
     "fish, powershell, pwsh, as in `ds --show-completion bash`", "ds"),
])
def test_usage_errors_are_one_line_with_exit_2(repo: Path, args: list[str], what: str, where: str) -> None:
    p = ds(*args, cwd=repo, check=False)
    assert (p.returncode, p.stdout, p.stderr) == (2, "", f"Error: {what} (see '{where} --help')\n")


def test_ds_alone_prints_the_help_as_a_usage_error(tmp_path: Path) -> None:
    p = ds(cwd=tmp_path, check=False)
    assert p.returncode == 2 and p.stdout.startswith("Usage: ds ") and p.stderr == ""


def test_errors_that_are_not_usage_errors_exit_1(repo: Path) -> None:
    p = ds("show", "nope", cwd=repo, check=False)
    assert p.returncode == 1 and p.stderr.startswith("Error: no version matches 'nope'")


# -- 3. ds --help by workflow, quickly --------------------------------------------------

SECTIONS = {
    "Start a store": ["init", "clone"],
    "Work on the next version": ["add", "rm", "mv", "restore", "status", "commit"],
    "Branches and history": ["branch", "switch", "checkout", "log", "reflog", "show", "diff", "ls",
                             "tag", "merge", "squash"],
    "Share through a remote": ["remote", "push", "fetch", "pull"],
    "Maintain the store": ["fsck", "gc", "du", "config"],
    "Other": ["dataset", "ui", "get"],
}


def test_help_lists_commands_in_workflow_sections(tmp_path: Path) -> None:
    out = ds("--help", cwd=tmp_path).stdout
    sections: dict[str, list[str]] = {}
    title = None
    for line in out.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            title = line[:-1]
            sections[title] = []
        elif title and line.startswith("  ") and not line.startswith("   ") and title != "Options":
            sections[title].append(line.split()[0])
    sections.pop("Options")
    assert sections == SECTIONS
    assert "--version" in out and "--show-completion [SHELL]" in out and "-C DIR" in out
    # each command's first sentence whole, wrapped: never cut off mid-phrase with "..."
    cut = [line for line in out.splitlines()[1:] if line.endswith("...") and not line.endswith(", ...")]
    assert cut == []
    flat = " ".join(out.split())
    assert "Stage files for the next commit; removals of tracked files under a folder too." in flat


def test_help_and_usage_errors_import_neither_rich_nor_pygit2(tmp_path: Path) -> None:
    """Start-up: `ds --help` and usage errors are plain text, so neither imports rich or pygit2
    (a command's own help may: typer escapes an argument's default with rich)."""
    code = ("import sys\nfrom objstore_cli.main import main\nsys.argv = ['ds'] + sys.argv[1:]\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "sys.stderr.write(repr(sorted({m.split('.')[0] for m in sys.modules} & {'rich', 'pygit2'})))")
    for args in (["--help"], ["add"], ["log", "-n", "x"]):
        p = subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, capture_output=True, text=True)
        assert p.stderr.endswith("[]"), (args, p.stderr)


# -- 4. --version and shell completion --------------------------------------------------

def test_version(tmp_path: Path) -> None:
    line = f"ds (objstore) {version('objstore')}\n"
    for args in (["--version"], ["-C", str(tmp_path), "--version"]):  # the quick path, and typer's
        p = ds(*args, cwd=tmp_path)
        assert (p.stdout, p.stderr) == (line, "")


@pytest.mark.parametrize("shell,marker", [("bash", "complete -o default -F _ds_completion ds"),
                                          ("zsh", "#compdef ds"), ("fish", "complete --command ds")])
def test_show_completion_for_a_named_shell(tmp_path: Path, shell: str, marker: str) -> None:
    p = ds("--show-completion", shell, cwd=tmp_path)
    assert marker in p.stdout and f"_DS_COMPLETE=complete_{shell}" in p.stdout


def test_show_completion_defaults_to_shell_env(tmp_path: Path) -> None:
    env = os.environ | {"SHELL": "/usr/bin/zsh"}
    p = subprocess.run([DS, "--show-completion"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert p.returncode == 0 and p.stdout.startswith("#compdef ds")
    env["SHELL"] = "/bin/tcsh"
    p = subprocess.run([DS, "--show-completion"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert p.returncode == 2 and p.stderr.startswith("Error: $SHELL names tcsh, a shell ds does not "
                                                     "complete; name one of bash")


def _complete_in_bash(words: str, tmp_path: Path) -> list[str]:
    """What bash offers for ``words`` + TAB once the script of --show-completion bash is loaded."""
    script = ds("--show-completion", "bash", cwd=tmp_path).stdout
    n = len(words.split()) - 1
    line = (f'eval "$1"; COMP_WORDS=({words}); COMP_CWORD={n}; _ds_completion ds; '
            'printf "%s\\n" "${COMPREPLY[@]}"')
    env = os.environ | {"PATH": f"{Path(DS).parent}{os.pathsep}{os.environ['PATH']}"}
    p = subprocess.run(["bash", "--norc", "-c", line, "bash", script], cwd=tmp_path, capture_output=True,
                       text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.split()


def test_bash_completion_completes_commands_and_options(tmp_path: Path) -> None:
    assert _complete_in_bash("ds chec", tmp_path) == ["checkout"]
    assert set(_complete_in_bash("ds s", tmp_path)) == {"status", "show", "squash", "switch"}
    assert _complete_in_bash("ds log --one", tmp_path) == ["--oneline"]
    assert _complete_in_bash("ds --vers", tmp_path) == ["--version"]


def test_install_completion_writes_the_script_for_bash(tmp_path: Path) -> None:
    env = os.environ | {"HOME": str(tmp_path)}
    p = subprocess.run([DS, "--install-completion", "bash"], cwd=tmp_path, capture_output=True, text=True,
                       env=env)
    assert p.returncode == 0, p.stderr
    assert "_ds_completion" in (tmp_path / ".bash_completions" / "ds.sh").read_text()
    assert ".bash_completions/ds.sh" in (tmp_path / ".bashrc").read_text()


# -- 5. messages that said the wrong thing ----------------------------------------------

def test_a_short_prefix_asks_for_four_characters(repo: Path) -> None:
    head = _head(repo)
    for n in (1, 3):
        p = ds("show", head[:n], cwd=repo, check=False)
        assert p.returncode == 1 and len(p.stderr.splitlines()) == 1, p.stderr
        assert "give at least 4 characters" in p.stderr and "several" not in p.stderr
    assert ds("show", head[:4], cwd=repo).stdout.startswith(f"version {head}")


def test_dash_c_names_a_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    for args in (["status"], ["log"], ["init"]):
        p = ds("-C", str(missing), *args, cwd=tmp_path, check=False)
        assert p.returncode == 1 and p.stderr.startswith(f"Error: -C {missing}: no such folder"), p.stderr
        assert len(p.stderr.splitlines()) == 1 and ".dsstore" not in p.stderr
    assert not missing.exists()
    write(tmp_path, "file", "x")
    p = ds("-C", str(tmp_path / "file"), "status", cwd=tmp_path, check=False)
    assert p.returncode == 1 and p.stderr.startswith(f"Error: -C {tmp_path / 'file'}: not a folder")


def test_add_of_an_ignored_path_says_which_dsignore(repo: Path) -> None:
    write(repo, ".dsignore", "*.log\nbuild/\n")
    write(repo, "x.log", "x")
    write(repo, "build/y.o", "y")
    write(repo, "sub/.dsignore", "keep.txt\n")
    write(repo, "sub/keep.txt", "k")
    write(repo, "sub/other.txt", "o")
    p = ds("add", "x.log", "build", "sub", "sub/keep.txt", cwd=repo, check=False)
    assert p.returncode == 1  # as git's: the paths named and not staged are an error, the others staged
    assert p.stderr.splitlines() == [
        "Staged 2 file(s), 0 removal(s); 10 new bytes stored",  # sub/.dsignore and sub/other.txt
        "Error: not staged, ignored by .dsignore rules: x.log (by .dsignore), build (by .dsignore), "
        "sub/keep.txt (by sub/.dsignore); `ds add -f PATH` stages them anyway (or remove the matching rule)",
    ]
    assert ds("status", "-s", cwd=repo).stdout.count("A  sub/") == 2
    p = ds("add", "keep.txt", "../x.log", cwd=repo / "sub", check=False)  # paths as the user gave them
    assert "keep.txt (by .dsignore), ../x.log (by ../.dsignore)" in p.stderr
    p = ds("add", "-f", "keep.txt", "../build", cwd=repo / "sub")
    assert p.stderr == "Staged 2 file(s), 0 removal(s); 2 new bytes stored\n"
    assert "A  build/y.o\n" in ds("status", "-s", cwd=repo).stdout


def test_add_of_a_tracked_path_that_a_rule_matches_is_not_called_ignored(repo: Path) -> None:
    write(repo, ".dsignore", "a.txt\n")
    write(repo, "a.txt", "changed\n")
    p = ds("add", "a.txt", cwd=repo)
    assert "ignored" not in p.stderr and p.stderr.startswith("Staged 1 file(s)")


def test_a_no_op_status_answered_before_typer_loads_prints_the_branch_line_too(repo: Path) -> None:
    """The first status after a commit takes the full path and records the folder as clean;
    the next is answered in cli/main.py from stat data alone: both say the same."""
    first = ds("status", cwd=repo).stdout
    assert first == "On branch main\nNothing changed.\n"
    assert ds("status", cwd=repo).stdout == first
    assert ds("-C", str(repo), "status", cwd=repo.parent).stdout == first


def test_rm_takes_gits_spellings(repo: Path) -> None:
    """`ds rm -r DIR` and `ds rm --cached FILE` do what git's do (a folder is removed whole)."""
    write(repo, "d/x.txt", "x\n")
    write(repo, "d/sub/y.txt", "y\n")
    write(repo, "kept.txt", "k\n")
    ds("add", ".", cwd=repo)
    ds("commit", "-m", "three", cwd=repo)
    assert _json(repo, "rm", "-r", "d") == {"removed": ["d/sub/y.txt", "d/x.txt"], "kept": False}
    assert not (repo / "d").exists()
    assert _json(repo, "rm", "--cached", "kept.txt") == {"removed": ["kept.txt"], "kept": True}
    assert (repo / "kept.txt").read_text() == "k\n"
    st = _json(repo, "status")
    assert st["staged"]["removed"] == ["d/sub/y.txt", "d/x.txt", "kept.txt"] and st["added"] == ["kept.txt"]


def test_short_status_is_gits(repo: Path) -> None:
    """`ds status -s` / `--porcelain`: XY PATH, X staged and Y the working folder, as git."""
    for flag in ("-s", "--short", "--porcelain"):
        assert ds("status", flag, cwd=repo).stdout == ""  # clean: nothing, from the quick path
    write(repo, "d/x.txt", "x\n")
    write(repo, "d/y.txt", "y\n")
    ds("add", ".", cwd=repo)
    ds("commit", "-m", "more", cwd=repo)
    write(repo, "staged.txt", "s\n")
    ds("add", "staged.txt", cwd=repo)
    write(repo, "d/x.txt", "x, staged\n")
    ds("add", "d/x.txt", cwd=repo)
    write(repo, "d/x.txt", "x, staged, then changed\n")
    (repo / "d" / "y.txt").unlink()
    write(repo, "new file.txt", "n\n")
    lines = ds("status", "-s", cwd=repo).stdout.splitlines()
    assert lines == ["MM d/x.txt", " D d/y.txt", "A  staged.txt", '?? "new file.txt"']
    assert ds("status", "--porcelain", cwd=repo).stdout.splitlines() == lines
    ds("rm", "--cached", "-q", "staged.txt", cwd=repo)  # in no version, in the folder: untracked
    (repo / "d" / "x.txt").rename(repo / "d" / "moved é.txt")  # a rename in the working folder
    assert ds("status", "-s", cwd=repo).stdout.splitlines() == [
        "MD d/x.txt", " D d/y.txt", '?? "d/moved \\303\\251.txt"', '?? "new file.txt"', "?? staged.txt"]
    assert json.loads(ds("status", "--json", "-s", cwd=repo).stdout)["removed"] == ["d/x.txt", "d/y.txt"]


def test_status_in_a_subfolder_shows_paths_from_there_as_git_does(repo: Path) -> None:
    """git's status.relativePaths: the long and short forms name paths from where the command
    runs (``../a.txt``); --porcelain and --json from the root, as scripts expect."""
    write(repo, "d/e/x.txt", "x\n")
    write(repo, "d/y.txt", "y\n")
    ds("add", ".", cwd=repo)
    ds("commit", "-m", "more", cwd=repo)
    write(repo, "a.txt", "one, changed\n")
    write(repo, "d/e/x.txt", "x, staged\n")
    ds("add", "e/x.txt", cwd=repo / "d")  # a path from the subfolder, as git's add takes it
    (repo / "d" / "y.txt").rename(repo / "d" / "z.txt")
    write(repo, "d/e/new.txt", "n\n")
    sub = repo / "d" / "e"
    assert ds("status", "-s", cwd=sub).stdout.splitlines() == [
        " M ../../a.txt", "M  x.txt", " D ../y.txt", "?? new.txt", "?? ../z.txt"]
    long = ds("status", cwd=sub).stdout.splitlines()
    assert long[1:] == ["Staged for the next commit:", "  modified  x.txt",
                        "Working folder against the latest version:", "  added     new.txt",
                        "  modified  ../../a.txt", "  renamed   ../y.txt -> ../z.txt"]
    root_lines = [" M a.txt", "M  d/e/x.txt", " D d/y.txt", "?? d/e/new.txt", "?? d/z.txt"]
    assert ds("status", "--porcelain", cwd=sub).stdout.splitlines() == root_lines
    assert ds("status", "-s", cwd=repo).stdout.splitlines() == root_lines
    assert ds("status", "-s", cwd=repo / ".dsstore" / "meta").stdout.splitlines() == root_lines
    assert ds("-C", "d/e", "status", "-s", cwd=repo).stdout.splitlines()[:2] == [" M ../../a.txt", "M  x.txt"]
    found = json.loads(ds("status", "--json", cwd=sub).stdout)
    assert found["modified"] == ["a.txt"] and found["staged"]["modified"] == ["d/e/x.txt"]


def test_log_takes_gits_count_shorthand(repo: Path) -> None:
    write(repo, "more.txt", "m\n")
    ds("add", "more.txt", cwd=repo)
    ds("commit", "-m", "second", cwd=repo)
    assert ds("log", "-1", "--oneline", cwd=repo).stdout == ds("log", "-n", "1", "--oneline", cwd=repo).stdout
    assert len(ds("log", "-1", "--oneline", cwd=repo).stdout.splitlines()) == 1
    assert len(ds("-C", str(repo), "log", "-2", "--oneline", cwd=repo.parent).stdout.splitlines()) == 2


def test_add_all_stages_the_whole_folder_from_anywhere(repo: Path) -> None:
    write(repo, "top.txt", "t\n")
    write(repo, "deep/er/x.txt", "x\n")
    ds("add", "-A", cwd=repo / "deep")
    staged = [line[3:] for line in ds("status", "-s", cwd=repo).stdout.splitlines()]
    assert staged == ["deep/er/x.txt", "top.txt"]
    r = ds("add", cwd=repo, check=False)
    assert r.returncode == 2 and "give -A" in r.stderr
    write(repo, "top.txt", "changed\n")
    write(repo, "other.txt", "o\n")
    ds("add", "-A", "top.txt", cwd=repo)  # as git's add -A PATH: that path only
    assert "?? other.txt" in ds("status", "-s", cwd=repo).stdout.splitlines()


@pytest.mark.parametrize("argv,expected", [
    (["log", "-5"], ["log", "-n", "5"]),
    (["-C", "d", "log", "-3", "--oneline"], ["-C", "d", "log", "-n", "3", "--oneline"]),
    (["-Cd", "log", "-3"], ["-Cd", "log", "-n", "3"]),
    (["log", "-n", "-1"], ["log", "-n", "-1"]),  # -n's own value, refused by -n as before
    (["log", "--", "-5"], ["log", "--", "-5"]),  # a path after --
    (["log", "HEAD", "-2", "--", "x"], ["log", "HEAD", "-n", "2", "--", "x"]),
    (["status", "-1"], ["status", "-1"]),  # only log takes a count
])
def test_the_count_shorthand_is_rewritten_only_where_git_takes_it(
        argv: list[str], expected: list[str]) -> None:
    from objstore_cli.app import git_shorthands

    assert git_shorthands(argv) == expected


def test_remote_alone_lists_the_remotes_as_git(repo: Path, tmp_path: Path) -> None:
    ds("remote", "add", "origin", str(tmp_path / "r"), cwd=repo)
    listed = ds("remote", "list", cwd=repo).stdout
    assert listed == f"* origin\t{tmp_path / 'r'}\n"
    assert ds("remote", cwd=repo).stdout == listed == ds("remote", "-v", cwd=repo).stdout
