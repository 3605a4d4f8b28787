"""One store for the SDK and the CLI: every command finds the store the way the SDK does.

``DSSTORE_DIR`` names the store (as ``GIT_DIR`` does for git; its working folder is its
parent), else the nearest ``.dsstore``; ``ds ui`` and ``ds dataset`` also fall back to the
per-user store the SDK uses when there is none, so a script's datasets show up there.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from .conftest import DS, ds, write

SDK_SCRIPT = """
from objstore import Dataset
d = Dataset.create(dataset_name="cats", dataset_project="vision")
d.add_files("images")
d.upload()
d.finalize()
print(d.id)
"""


def env_with(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DSSTORE_DIR", "DSSTORE_REMOTE")}
    return env | extra


def make_dataset(folder: Path, env: dict[str, str]) -> str:
    write(folder / "images", "cat.jpg", b"\xff\xd8 not really a jpeg")
    proc = subprocess.run([sys.executable, "-c", SDK_SCRIPT], cwd=folder, env=env, capture_output=True,
                          text=True, check=True)
    return proc.stdout.strip()


def ui_datasets(cwd: Path, env: dict[str, str]) -> list[dict]:
    """What ``ds ui`` (a real process) lists under /api/datasets."""
    proc = subprocess.Popen([DS, "ui", "--port", "0"], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        m = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert m, f"no URL printed: {line!r}"
        with urllib.request.urlopen(m.group(0) + "api/datasets", timeout=30) as r:
            return json.loads(r.read())
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)


def dataset_ids(listing) -> set[str]:
    text = json.dumps(listing)
    return set(re.findall(r"[0-9a-f]{32}", text))


def test_cli_log_ui_and_dataset_search_see_the_sdk_store_named_by_dsstore_dir(tmp_path: Path) -> None:
    sdk = tmp_path / "sdk" / ".dsstore"
    env = env_with(DSSTORE_DIR=str(sdk))
    dataset_id = make_dataset(tmp_path, env)
    elsewhere = tmp_path / "elsewhere"  # a folder with its own store, which DSSTORE_DIR overrides
    ds("init", "-q", str(elsewhere), cwd=tmp_path)

    plain = ds("log", cwd=elsewhere, env=env)
    assert plain.stdout == "" and "ds log --all" in plain.stderr  # the branch is empty: say where to look
    every = json.loads(ds("log", "--all", "--json", cwd=elsewhere, env=env).stdout)
    commit = json.loads((sdk / "datasets" / f"{dataset_id}.json").read_text())["commit"]
    assert [e["id"] for e in every] == [commit]
    assert "(dataset vision/cats 1.0.0)" in ds("log", "--all", "--oneline", cwd=elsewhere, env=env).stdout

    search = ds("dataset", "search", cwd=elsewhere, env=env).stdout
    assert dataset_id in search
    assert dataset_id in dataset_ids(ui_datasets(elsewhere, env))
    # without DSSTORE_DIR the folder's own store is used again: no datasets there
    assert dataset_id not in dataset_ids(ui_datasets(elsewhere, env_with()))


def test_ds_ui_and_dataset_search_fall_back_to_the_per_user_store_as_the_sdk_does(tmp_path: Path) -> None:
    home = tmp_path / "data-home"
    env = env_with(XDG_DATA_HOME=str(home))
    nowhere = tmp_path / "no-store-here"
    nowhere.mkdir()
    dataset_id = make_dataset(nowhere, env)
    assert list(home.glob("*/.dsstore/config")), "the SDK used the per-user store"
    assert dataset_id in ds("dataset", "search", cwd=nowhere, env=env).stdout
    assert dataset_id in dataset_ids(ui_datasets(nowhere, env))


def test_a_command_outside_any_store_names_the_per_user_store_and_the_named_command_works(
        tmp_path: Path) -> None:
    home = tmp_path / "data-home"
    env = env_with(XDG_DATA_HOME=str(home))
    nowhere = tmp_path / "no-store-here"
    nowhere.mkdir()
    plain = ds("ls", "HEAD", cwd=nowhere, env=env, check=False)  # no per-user store yet: no hint
    assert plain.returncode == 1 and "DSSTORE_DIR" not in plain.stderr and "ds init" in plain.stderr
    dataset_id = make_dataset(nowhere, env)
    proc = ds("ls", dataset_id, cwd=nowhere, env=env, check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    m = re.search(r"(DSSTORE_DIR=\S+) ds COMMAND", proc.stderr)
    assert m, proc.stderr
    named = env | dict([m[1].split("=", 1)])
    assert ds("ls", dataset_id, cwd=nowhere, env=named).stdout == "cat.jpg\n"  # add_files: at the root
    assert not (nowhere / ".dsstore").exists()


def test_ds_ui_without_any_store_says_so_and_creates_nothing(tmp_path: Path) -> None:
    home = tmp_path / "data-home"
    env = env_with(XDG_DATA_HOME=str(home))
    proc = ds("ui", "--port", "0", cwd=tmp_path, env=env, check=False)
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "no store to show" in proc.stderr
    assert not home.exists()


def test_worktree_commands_work_on_the_store_dsstore_dir_names(tmp_path: Path) -> None:
    store = tmp_path / "project" / ".dsstore"
    env = env_with(DSSTORE_DIR=str(store))
    here = tmp_path / "here"
    ds("init", "-q", str(here), cwd=tmp_path)
    write(here, "local.txt", b"in the current folder's store")

    ds("init", "-q", cwd=here, env=env)  # no folder given: DSSTORE_DIR's, as git init honours GIT_DIR
    assert (store / "config").is_file()
    write(store.parent, "data.csv", b"a,b\n1,2\n")
    ds("add", str(store.parent / "data.csv"), cwd=here, env=env)
    ds("commit", "-q", "-m", "in the named store", cwd=here, env=env)
    assert ds("status", cwd=here, env=env).stdout == "On branch main\nNothing changed.\n"  # the quick path
    assert ds("status", "--json", cwd=here, env=env).stdout.count("local.txt") == 0
    assert [e["message"] for e in json.loads(ds("log", "--json", cwd=here, env=env).stdout)] == [
        "in the named store"]
    # without it, the current folder's own store again
    assert "local.txt" in ds("status", cwd=here).stdout
    assert "has no versions yet" in ds("log", cwd=here, check=False).stderr  # the folder's own, empty


def test_a_dsstore_dir_that_is_no_store_fails_in_one_line_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "missing" / ".dsstore"
    proc = ds("status", cwd=tmp_path, env=env_with(DSSTORE_DIR=str(missing)), check=False)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert "DSSTORE_DIR" in proc.stderr and str(missing) in proc.stderr and "ds init" in proc.stderr

    odd = tmp_path / "store"  # the SDK takes any folder; a working folder's store is `.dsstore`
    ds("init", "-q", str(tmp_path / "w"), cwd=tmp_path)
    (tmp_path / "w" / ".dsstore").rename(odd)
    for args in (["status"], ["log"]):
        proc = ds(*args, cwd=tmp_path, env=env_with(DSSTORE_DIR=str(odd)), check=False)
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
        assert "must be named .dsstore" in proc.stderr
    proc = ds("init", cwd=tmp_path, env=env_with(DSSTORE_DIR=str(odd)), check=False)
    assert proc.returncode == 1 and "must be named .dsstore" in proc.stderr


def test_init_of_another_folder_while_dsstore_dir_is_set_notes_where_commands_go(tmp_path: Path) -> None:
    env = env_with(DSSTORE_DIR=str(tmp_path / "a" / ".dsstore"))
    proc = ds("init", "b", cwd=tmp_path, env=env)
    assert (tmp_path / "b" / ".dsstore" / "config").is_file()
    assert "DSSTORE_DIR" in proc.stderr and "other ds commands will use that store" in proc.stderr


def test_a_dataset_id_is_a_revision_for_every_command(tmp_path: Path) -> None:
    sdk = tmp_path / "sdk" / ".dsstore"
    env = env_with(DSSTORE_DIR=str(sdk))
    dataset_id = make_dataset(tmp_path, env)
    assert ds("ls", dataset_id, "-r", cwd=tmp_path, env=env).stdout.split() == ["cat.jpg"]
    ds("get", dataset_id, str(tmp_path / "copy"), "-q", cwd=tmp_path, env=env)
    assert (tmp_path / "copy" / "cat.jpg").read_bytes() == (tmp_path / "images" / "cat.jpg").read_bytes()
    assert dataset_id[:12] not in ds("log", "--oneline", dataset_id, cwd=tmp_path, env=env).stdout
    assert "dataset vision/cats 1.0.0" in ds("log", "--oneline", dataset_id, cwd=tmp_path, env=env).stdout
    proc = ds("ls", "0" * 32, cwd=tmp_path, env=env, check=False)
    assert proc.returncode == 1 and "no version matches" in proc.stderr
