"""A store's config file lost, emptied, or replaced by another store's: every command names
the damage and a fix that works, none uses the store further up instead, and no check or
repair takes the packs for damaged because the config names another hash. Real CLI runs."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from .conftest import ds, write


def _store(w: Path, hash_name: str) -> None:
    ds("init", "-q", "--hash", hash_name, str(w), cwd=w.parent)
    write(w, "data.csv", "a,b\n1,2\n")
    ds("add", "-q", "data.csv", cwd=w)
    ds("commit", "-q", "-m", "one", cwd=w)


def _fresh_config(tmp_path: Path, hash_name: str | None = None) -> bytes:
    fresh = tmp_path / f"fresh-{hash_name}"
    ds("init", "-q", *(("--hash", hash_name) if hash_name else ()), str(fresh), cwd=tmp_path)
    return (fresh / ".dsstore/config").read_bytes()


def test_a_nested_store_without_its_config_stops_every_command_instead_of_using_the_outer(
        tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    _store(outer, "xxh3-128")
    inner = outer / "proj"
    inner.mkdir()
    _store(inner, "blake3")
    ds("status", cwd=outer)  # the outer store marked clean: a quick status could answer for it
    (inner / ".dsstore/config").unlink()
    outer_log = ds("log", "--oneline", cwd=outer).stdout
    for args in (("log",), ("status",), ("status", "-s"), ("commit", "-m", "x"), ("add", "-A"), ("init",)):
        r = ds(*args, cwd=inner, check=False)
        assert r.returncode == 1 and r.stderr.count("\n") == 1, (args, r.stderr)
        assert "config file is missing" in r.stderr and "ds init --hash blake3" in r.stderr, args
        assert "remove it" not in r.stderr and "sparse" in r.stderr  # a sparse clone's globs go too
    assert ds("log", "--oneline", cwd=outer).stdout == outer_log  # nothing landed on the outer store
    # the fix the message names: a config made by `ds init --hash blake3`, copied in
    (inner / ".dsstore/config").write_bytes(_fresh_config(tmp_path, "blake3"))
    assert ds("fsck", "--read-data", cwd=inner).returncode == 0
    assert ds("ls", cwd=inner).stdout == "data.csv\n"


def test_an_empty_config_is_named_as_such(tmp_path: Path) -> None:
    w = tmp_path / "w"
    _store(w, "xxh3-128")
    (w / ".dsstore/config").write_bytes(b"")
    r = ds("log", cwd=w, check=False)
    assert r.returncode == 1 and "is empty" in r.stderr and "upgrade" not in r.stderr


@pytest.mark.parametrize("command", [("fsck", "--read-data"), ("fsck", "--read-data", "--repair"),
                                     ("fsck", "--repair"), ("gc",)])
def test_a_config_naming_another_hash_is_refused_before_anything_judges_the_packs(
        tmp_path: Path, command: tuple[str, ...]) -> None:
    w = tmp_path / "w"
    _store(w, "blake3")
    store = w / ".dsstore"
    own = (store / "config").read_bytes()
    packs = sorted(p.name for p in (store / "packs").rglob("*.pack"))
    (store / "config").write_bytes(_fresh_config(tmp_path))  # xxh3-128, another store's
    r = ds(*command, cwd=w, check=False)
    assert r.returncode == 1 and 'hash = "blake3"' in r.stderr and "nothing was changed" in r.stderr
    assert sorted(p.name for p in (store / "packs").rglob("*.pack")) == packs
    assert not (store / "damaged").exists() or not any((store / "damaged").iterdir())
    (store / "config").write_bytes(own)
    assert ds("fsck", "--read-data", cwd=w).returncode == 0
    out = tmp_path / "copy"
    ds("get", "HEAD", str(out), cwd=w)
    assert (out / "data.csv").read_text() == "a,b\n1,2\n"
    shutil.rmtree(out)


def test_a_sparse_clone_that_lost_its_config_is_whole_again_by_the_fix_named(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _store(src, "xxh3-128")
    write(src, "b/y.csv", "not checked out\n")
    ds("add", "-q", "b", cwd=src)
    ds("commit", "-q", "-m", "two", cwd=src)
    ds("push", "-q", str(tmp_path / "remote"), "main", cwd=src)
    ds("clone", "-q", str(tmp_path / "remote"), "c", "--include", "data.csv", cwd=tmp_path)
    c = tmp_path / "c"
    (c / ".dsstore/config").unlink()
    r = ds("status", cwd=c, check=False)
    assert r.returncode == 1 and "sparse = [...] under [worktree]" in r.stderr
    config = _fresh_config(tmp_path) + b'\n[worktree]\nsparse = ["data.csv"]\n'
    (c / ".dsstore/config").write_bytes(config)
    assert ds("status", cwd=c).stdout.endswith("Nothing changed.\n")  # b/y.csv is not "removed"
