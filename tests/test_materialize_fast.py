"""The fast ways of writing many files keep every safety rule of ``materialize.py``.

Files in a folder the writer made (or in a root its caller made: ``fresh``) are opened
under their final name with ``O_EXCL|O_NOFOLLOW``; anything standing there sends the file
the general way (temp name, rename). Small files are written on the calling thread,
large ones on a pool. Each path must give the same bytes, modes and stat rows, never
follow a link, and leave nothing half-written behind a failure.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from objstore import materialize
from objstore.errors import CorruptObject, DsError
from objstore.get import get_copy
from objstore.manifest import FILE, FileEntry
from objstore.materialize import Materializer
from objstore.scan import Stat
from objstore.store import Store
from objstore.worktree import checkout, commit_all

from .conftest import ds, read_tree, write

FILES = {
    "top.txt": (b"at the top", None),
    "run.sh": (b"#!/bin/sh\necho hi\n", 0o755),
    "empty": (b"", None),
    "d/a.bin": (bytes(range(256)) * 20, None),
    "d/empty-exec": (b"", 0o755),
    "d/e/deep.csv": (b"x,y\n1,2\n" * 300, None),
}


def _version(store: Store, work: Path) -> list[tuple[str, FileEntry]]:
    for rel, (data, mode) in FILES.items():
        write(work, rel, data, mode)
    commit_all(store, "v1")
    return list(store.meta.walk(store.head_tree()))


def _tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """path -> (bytes, permission bits) of every file, the store left out."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".dsstore"]
        for name in files:
            p = Path(dirpath, name)
            out[p.relative_to(root).as_posix()] = (p.read_bytes(), p.lstat().st_mode & 0o7777)
    return out


def _expected() -> dict[str, tuple[bytes, int]]:
    return {rel: (data, mode or 0o644) for rel, (data, mode) in FILES.items()}


def _leftovers(root: Path) -> list[str]:
    return [str(p) for p in root.rglob("*") if ".ds-tmp-" in p.name]


@pytest.fixture(params=["inline", "pool", "fork"])
def path_kind(request, monkeypatch) -> str:
    """Run a test on the calling thread, on the pool (every file counts as large), and split
    between this process and two forked children (from the second file on)."""
    if request.param == "pool":
        monkeypatch.setattr(materialize, "_BIG_FILE", 0)
    if request.param == "fork":
        monkeypatch.setattr(materialize, "FORK_FILES", 2)
        monkeypatch.setattr(materialize, "fork_cores", lambda: 3)
    return request.param


@pytest.mark.parametrize("fresh", [True, False])
def test_fresh_and_existing_folders_give_the_same_files_and_stat_rows(
        store: Store, work: Path, tmp_path: Path, fresh: bool, path_kind: str) -> None:
    items = _version(store, work)
    out = tmp_path / "out"
    out.mkdir()
    report = Materializer(str(out), store.chunks, fresh=fresh).write(items)
    assert _tree(out) == _expected()
    assert report.count == len(FILES) and sorted(report.written) == sorted(FILES)
    for rel, st in report.written.items():  # the rows the stat cache gets: what is on disk
        assert st == Stat.of(os.lstat(out / rel)), rel
    assert _leftovers(out) == []


def test_writing_over_existing_files_gives_the_same_files_and_stat_rows(
        store: Store, work: Path, tmp_path: Path, path_kind: str) -> None:
    items = _version(store, work)
    out = tmp_path / "out"
    for rel in FILES:
        write(out, rel, b"old content of " + rel.encode(), 0o600)
    report = Materializer(str(out), store.chunks, force=True).write(items)
    assert _tree(out) == _expected()
    for rel, st in report.written.items():
        assert st == Stat.of(os.lstat(out / rel)), rel
    assert _leftovers(out) == []


def test_files_in_a_folder_the_writer_made_need_no_rename(
        store: Store, work: Path, tmp_path: Path, monkeypatch) -> None:
    items = _version(store, work)
    renames: list[str] = []
    real_replace = os.replace

    def counting(src, dst, **kw):
        renames.append(str(dst))
        return real_replace(src, dst, **kw)

    monkeypatch.setattr(os, "replace", counting)
    out = tmp_path / "out"
    out.mkdir()
    Materializer(str(out), store.chunks).write(items)
    # the root existed before: its files are renamed into place; d and d/e were made here
    assert sorted(Path(p).name for p in renames) == ["empty", "run.sh", "top.txt"]
    renames.clear()
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    Materializer(str(fresh), store.chunks, fresh=True).write(items)
    assert renames == []
    assert _tree(fresh) == _expected()


def test_mode_is_set_only_when_the_umask_changed_it(
        store: Store, work: Path, tmp_path: Path, monkeypatch) -> None:
    _version(store, work)
    calls: list[int] = []
    real_fchmod = os.fchmod

    def counting(fd, mode):
        calls.append(mode)
        return real_fchmod(fd, mode)

    monkeypatch.setattr(os, "fchmod", counting)
    old = os.umask(0o022)
    try:
        out = tmp_path / "out"
        get_copy(store, "HEAD", out)
        assert calls == []  # open's own mode was already right
        assert _tree(out) == _expected()
        os.umask(0o077)  # now open makes 0600 and 0700: the writer must widen them
        out2 = tmp_path / "out2"
        get_copy(store, "HEAD", out2)
    finally:
        os.umask(old)
    assert len(calls) == len(FILES)
    assert _tree(out2) == _expected()


def test_a_link_planted_where_a_file_goes_in_a_made_folder_is_replaced_not_followed(
        store: Store, work: Path, tmp_path: Path, path_kind: str) -> None:
    items = [(p, e) for p, e in _version(store, work) if p == "d/a.bin"]
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not yours")
    out = tmp_path / "out"
    out.mkdir()
    m = Materializer(str(out), store.chunks, fresh=True)
    m.ensure_dir("d")  # made by the writer: files there are opened in place...
    os.symlink(str(outside), out / "d/a.bin")  # ...but something got there first
    m.write(items)
    assert outside.read_bytes() == b"not yours"
    assert not (out / "d/a.bin").is_symlink()
    assert (out / "d/a.bin").read_bytes() == FILES["d/a.bin"][0]
    assert _leftovers(out) == []


def test_a_dangling_link_planted_in_a_fresh_root_is_not_followed(
        store: Store, work: Path, tmp_path: Path) -> None:
    items = [(p, e) for p, e in _version(store, work) if p == "top.txt"]
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "would-be-created"
    os.symlink(str(target), out / "top.txt")
    Materializer(str(out), store.chunks, fresh=True).write(items)
    assert not target.exists()
    assert not (out / "top.txt").is_symlink()
    assert (out / "top.txt").read_bytes() == b"at the top"


@pytest.mark.parametrize("force", [True, False])
def test_a_folder_planted_where_a_file_goes_in_a_made_folder(
        store: Store, work: Path, tmp_path: Path, force: bool, path_kind: str) -> None:
    items = [(p, e) for p, e in _version(store, work) if p == "d/a.bin"]
    out = tmp_path / "out"
    out.mkdir()
    m = Materializer(str(out), store.chunks, force=force, fresh=True)
    m.ensure_dir("d")
    write(out, "d/a.bin/inside", "someone's")
    if force:
        m.write(items)
        assert (out / "d/a.bin").read_bytes() == FILES["d/a.bin"][0]
    else:
        with pytest.raises(DsError, match="is a folder in the working folder"):
            m.write(items)
        assert (out / "d/a.bin/inside").read_text() == "someone's"
    assert _leftovers(out) == []


@pytest.mark.parametrize("fresh", [True, False], ids=["in-place", "temp-name"])
def test_a_failure_midway_leaves_no_temp_file_and_no_partial_file(
        store: Store, work: Path, tmp_path: Path, fresh: bool, path_kind: str) -> None:
    items = _version(store, work)
    missing = FileEntry("lost.bin", FILE, 5, b"\x01" * store.algo.size)  # no such chunk
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(CorruptObject):
        Materializer(str(out), store.chunks, fresh=fresh).write([("lost.bin", missing), *items])
    assert not (out / "lost.bin").exists()
    assert _leftovers(out) == []


@pytest.mark.parametrize("fresh", [True, False], ids=["in-place", "temp-name"])
def test_a_short_file_is_removed_whichever_name_it_had(
        store: Store, work: Path, tmp_path: Path, fresh: bool) -> None:
    path, entry = next((p, e) for p, e in _version(store, work) if p == "top.txt")
    lying = replace(entry, size=entry.size + 1)  # the chunk holds one byte less than claimed
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DsError, match="expected"):
        Materializer(str(out), store.chunks, fresh=fresh).write([(path, lying)])
    assert not (out / path).exists()
    assert _leftovers(out) == []


def test_small_files_stay_on_the_calling_thread_and_large_ones_use_the_pool(
        store: Store, work: Path, tmp_path: Path) -> None:
    items = _version(store, work)
    big = os.urandom(300 << 10)  # above the pool's threshold
    write(work, "big/one.bin", big)
    write(work, "big/two.bin", big[::-1])
    commit_all(store, "v2")
    seen: set[str] = set()
    original = Materializer._write_batch

    def spy(self, batch):
        seen.add(threading.current_thread().name.split("_")[0])
        return original(self, batch)

    out = tmp_path / "out"
    out.mkdir()
    m = Materializer(str(out), store.chunks, fresh=True)
    m._write_batch = spy.__get__(m)
    m.write(items)
    assert seen == {threading.main_thread().name}
    seen.clear()
    m.write([(p, e) for p, e in store.meta.walk(store.head_tree()) if p.startswith("big/")])
    assert seen == {"ds-write"}
    assert (out / "big/one.bin").read_bytes() == big and (out / "big/two.bin").read_bytes() == big[::-1]


def test_exec_bit_and_empty_files_through_the_cli(work: Path, tmp_path: Path) -> None:
    ds("init", cwd=work)
    for rel, (data, mode) in FILES.items():
        write(work, rel, data, mode)
    ds("add", ".", cwd=work)
    ds("commit", "-m", "v1", cwd=work)
    out = tmp_path / "copy"
    ds("get", "HEAD", str(out), cwd=work)
    assert read_tree(out) == read_tree(work)
    assert (out / "empty").stat().st_size == 0 and (out / "d/empty-exec").stat().st_mode & 0o111
    assert os.stat(out / "run.sh").st_mode & 0o777 == 0o755
    clone = tmp_path / "clone"
    remote = tmp_path / "remote"
    ds("remote", "add", "origin", str(remote), cwd=work)
    ds("push", cwd=work)
    ds("clone", str(remote), str(clone), cwd=tmp_path)
    assert read_tree(clone) == read_tree(work)
    st = json.loads(ds("status", "--json", cwd=clone).stdout)
    assert (st["added"], st["modified"], st["removed"]) == ([], [], [])


def test_checkout_records_the_stat_data_of_what_it_wrote(store: Store, work: Path) -> None:
    _version(store, work)
    v1 = store.head()
    write(work, "d/e/deep.csv", "changed")
    write(work, "new/file", "new")
    commit_all(store, "v2")
    report = checkout(store, v1)
    assert sorted(report.written) == ["d/e/deep.csv"]
    for rel, st in report.written.items():
        assert st == Stat.of(os.lstat(work / rel))
    assert not (work / "new").exists()
    assert _tree(work) == _expected()
    assert _leftovers(work) == []


@pytest.mark.parametrize("fresh", [True, False], ids=["in-place", "temp-name"])
def test_an_error_at_close_replaces_nothing_and_leaves_nothing(
        store: Store, work: Path, tmp_path: Path, monkeypatch, fresh: bool) -> None:
    """A quota or NFS error may show only at close: the file at its destination must stay
    as it was (the temp file is never renamed over it), and no partial file remains."""
    import errno

    items = [(p, e) for p, e in _version(store, work) if p == "top.txt"]
    out = tmp_path / "out"
    out.mkdir()
    if not fresh:
        (out / "top.txt").write_bytes(b"the user's good file")
    real_close, failed = os.close, []

    def close(fd: int) -> None:
        name = os.readlink(f"/proc/self/fd/{fd}")
        real_close(fd)
        if not failed and name.startswith(str(out)):
            failed.append(name)
            raise OSError(errno.EDQUOT, os.strerror(errno.EDQUOT))

    monkeypatch.setattr(materialize.os, "close", close)
    with pytest.raises(OSError, match="quota"):
        Materializer(str(out), store.chunks, fresh=fresh).write(items)
    assert failed
    if fresh:
        assert not (out / "top.txt").exists()
    else:
        assert (out / "top.txt").read_bytes() == b"the user's good file"
    assert _leftovers(out) == []
