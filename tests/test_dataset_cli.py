"""`ds dataset`: clearml-data's command line, run through the installed entry point."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from .conftest import DS, write


def run(*args: str, env: dict, cwd: Path, code: int = 0) -> str:
    proc = subprocess.run([DS, "dataset", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == code, (args, proc.stdout, proc.stderr)
    return proc.stdout + proc.stderr


@pytest.fixture
def env(tmp_path: Path) -> dict:
    e = dict(os.environ, DSSTORE_DIR=str(tmp_path / ".dsstore"))
    e.pop("DSSTORE_REMOTE", None)
    return e


def test_create_add_close_list_get_verify(tmp_path: Path, env: dict) -> None:
    write(tmp_path / "data", "a.csv", "1,2\n")
    write(tmp_path / "data", "img/x.jpg", os.urandom(100))
    out = run("create", "--project", "p", "--name", "n", "--tags", "t1", "t2", env=env, cwd=tmp_path)
    ds_id = re.search(r"New dataset created id=([0-9a-f]{32})", out).group(1)
    assert "2 files added" in run("add", "--files", "data", env=env, cwd=tmp_path)
    assert "Dataset closed and finalized" in run("close", env=env, cwd=tmp_path)
    listing = run("list", "--id", ds_id, env=env, cwd=tmp_path)
    assert "a.csv" in listing and "img/x.jpg" in listing and "Total 2 files, 104 bytes" in listing
    search = run("search", "--project", "p", env=env, cwd=tmp_path)
    assert ds_id in search and "'t1', 't2'" in search
    copy = tmp_path / "copy"
    run("get", "--id", ds_id, "--copy", str(copy), env=env, cwd=tmp_path)
    assert (copy / "a.csv").read_text() == "1,2\n"
    assert "no errors found" in run("verify", "--id", ds_id, "--folder", str(copy), env=env, cwd=tmp_path)
    (copy / "a.csv").write_text("bad!")
    assert "1 errors found" in run("verify", "--id", ds_id, "--folder", str(copy), env=env, cwd=tmp_path,
                                   code=1)
    assert "Dataset published" in run("publish", "--id", ds_id, env=env, cwd=tmp_path)


def test_sync_compare_squash_delete(tmp_path: Path, env: dict) -> None:
    folder = tmp_path / "f"
    write(folder, "a", "1")
    write(folder, "b", "2")
    out = run("sync", "--folder", str(folder), "--project", "p", "--name", "n", env=env, cwd=tmp_path)
    first = re.search(r"id=([0-9a-f]{32})", out).group(1)
    assert "Sync completed: 0 files removed, 2 added, 0 modified" in out
    write(folder, "a", "changed")
    os.unlink(folder / "b")
    out = run("sync", "--folder", str(folder), "--parents", first, "--project", "p", "--name", "n",
              env=env, cwd=tmp_path)
    second = re.search(r"id=([0-9a-f]{32})", out).group(1)
    assert "Sync completed: 1 files removed, 0 added, 1 modified" in out
    out = run("compare", "--source", first, "--target", second, "--verbose", env=env, cwd=tmp_path)
    assert "Comparison summary: 1 files removed, 1 files modified, 0 files added" in out
    out = run("sync", "--folder", str(folder), "--parents", second, "--project", "p", "--name", "n",
              env=env, cwd=tmp_path)
    assert "Zero modifications on local copy, reverting dataset creation." in out
    out = run("squash", "--name", "sq", "--ids", first, second, env=env, cwd=tmp_path)
    assert "Squashing completed, new dataset created id=" in out
    err = run("delete", "--id", first, env=env, cwd=tmp_path, code=1)
    assert err.splitlines()[-1].startswith("Error: ") and "force" in err
    assert "Dataset(s) deleted" in run("delete", "--id", first, "--force", env=env, cwd=tmp_path)
    assert "Dataset(s) renamed" in run("rename", "--new-name", "n2", "--project", "p", "--name", "n",
                                       env=env, cwd=tmp_path)
    assert "Dataset(s) moved" in run("move", "--new-project", "p2", "--project", "p", "--name", "n2",
                                     env=env, cwd=tmp_path)
    assert second in run("search", "--project", "p2", env=env, cwd=tmp_path)


def test_errors_are_clean(tmp_path: Path, env: dict) -> None:
    out = run("add", "--files", "x", env=env, cwd=tmp_path, code=1)
    assert "Dataset ID not specified" in out and "Traceback" not in out
    out = run("get", "--id", "0" * 32, env=env, cwd=tmp_path, code=1)
    assert "no dataset with id" in out
    run("publish", env=env, cwd=tmp_path, code=2)  # argparse: --id is required
    assert "usage: ds dataset" in run("--help", env=env, cwd=tmp_path)


@pytest.mark.parametrize("args,words", [
    (["create"], "the following arguments are required: --name (see 'ds dataset create --help')"),
    (["bogus"], "invalid choice: 'bogus'"),
    (["add", "--nope"], "unrecognized arguments: --nope"),
])
def test_usage_errors_are_one_line_with_exit_2(args: list[str], words: str, tmp_path: Path,
                                               env: dict) -> None:
    proc = subprocess.run([DS, "dataset", *args], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("Error: ") and words in proc.stderr
