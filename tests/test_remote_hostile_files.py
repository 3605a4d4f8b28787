"""A folder remote holds untrusted files: a FIFO, socket or other special file is never
opened in a way that blocks (listings pass it over, reading it is one clear error), nothing
is read, written or deleted through a link below the remote's root, and a lock dated far
in the future does not block every push nor outlive gc.

Every command runs under a timeout, so a hang fails the test instead of stalling it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from objstore.backend import LocalBackend, Permanent
from objstore.remote import Remote
from objstore.remote_fs import RemoteError, RemoteFS, RemoteLock, RemoteLocked, RemoteUnavailable
from objstore.remote_gc import gc_remote
from objstore.store import Store

from .conftest import DS, write

TIMEOUT = 60  # a command on a store of two files takes a second or two


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The installed ``ds`` (or, with ``args[0] == "python"``, this Python), failing the test
    on a hang."""
    cmd = [sys.executable, *args[1:]] if args[0] == "python" else [DS, *args]
    base = {k: v for k, v in os.environ.items() if k != "DSSTORE_DIR"}
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT,
                              env=base | (env or {}))
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(args)} hung for {TIMEOUT} s")


def ok(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = run(*args, cwd=cwd, env=env)
    assert proc.returncode == 0, f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr}"
    return proc


def published(tmp_path: Path) -> tuple[Path, Path]:
    """A store with one version pushed to a new folder remote: (working folder, remote)."""
    work, remote = tmp_path / "a", tmp_path / "remote"
    work.mkdir()
    ok("init", cwd=work)
    write(work, "f.txt", "one")
    ok("add", "-A", cwd=work)
    ok("commit", "-m", "v1", cwd=work)
    ok("remote", "add", "origin", str(remote), cwd=work)
    ok("push", cwd=work)
    return work, remote


def second_version(work: Path) -> None:
    write(work, "g.txt", "two")
    ok("add", "-A", cwd=work)
    ok("commit", "-m", "v2", cwd=work)


def bounded(fn: Callable[[], Any], fifo: Path) -> Any:
    """``fn()``, failing the test if it is still blocked after a few seconds (then the FIFO
    is opened for writing once, which lets a reader blocked on it go)."""
    out: dict[str, Any] = {}

    def call() -> None:
        try:
            out["value"] = fn()
        except BaseException as e:  # handed to the test below
            out["error"] = e

    th = threading.Thread(target=call, daemon=True)
    th.start()
    th.join(10)
    if th.is_alive():
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        th.join(10)
        pytest.fail(f"blocked on the FIFO {fifo}")
    if "error" in out:
        raise out["error"]
    return out["value"]


# -- 1. FIFOs and other special files ---------------------------------------------------
FIFOS = ["refs/heads/fifo", "refs/tags/fifo", "index/0123456789abcdef0123456789abcdef.idx",
         "meta/pack-0.idx"]  # a record's: test_a_fifo_dataset_record_does_not_hang_list_datasets


@pytest.mark.parametrize("rel", FIFOS)
def test_a_fifo_in_a_folder_remote_is_passed_over_by_clone_and_fetch(tmp_path: Path, rel: str) -> None:
    work, remote = published(tmp_path)
    (remote / rel).parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(remote / rel)
    ok("clone", str(remote), str(tmp_path / "b"), cwd=tmp_path)
    assert (tmp_path / "b" / "f.txt").read_text() == "one"
    ok("fetch", cwd=work)
    second_version(work)
    ok("push", cwd=work)
    assert (remote / rel).is_fifo()  # left as it was


def test_a_fifo_dataset_record_does_not_hang_list_datasets(tmp_path: Path) -> None:
    remote, data = tmp_path / "remote", tmp_path / "data"
    write(data, "f1", "1")
    script = ("import sys, json; from objstore import Dataset\n"
              "if sys.argv[1] == 'make':\n"
              "    d = Dataset.create(dataset_name='cats', dataset_project='p')\n"
              "    d.add_files(sys.argv[2]); d.upload(); d.finalize()\n"
              "print(json.dumps([d['id'] for d in Dataset.list_datasets(dataset_project='p')]))\n")
    env = {"DSSTORE_REMOTE": str(remote), "DSSTORE_DIR": str(tmp_path / "one" / ".dsstore")}
    made = json.loads(ok("python", "-c", script, "make", str(data), cwd=tmp_path, env=env).stdout)
    os.mkfifo(remote / "datasets" / "ffffffffffffffffffffffffffffffff.json")
    env["DSSTORE_DIR"] = str(tmp_path / "two" / ".dsstore")
    assert json.loads(ok("python", "-c", script, "list", cwd=tmp_path, env=env).stdout) == made


def test_a_fifo_config_is_named_not_taken_for_a_missing_one(tmp_path: Path) -> None:
    _work, remote = published(tmp_path)
    (remote / "config").unlink()
    os.mkfifo(remote / "config")
    proc = run("clone", str(remote), str(tmp_path / "b"), cwd=tmp_path)
    assert proc.returncode != 0
    assert "config" in proc.stderr and "FIFO" in proc.stderr and "not a regular file" in proc.stderr
    assert "push to it first" not in proc.stderr and "damaged or hostile" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr  # one message, no traceback


def test_special_files_are_never_listed_and_reading_one_fails_at_once(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "r"
    backend = LocalBackend(root)
    backend.write("index/good.idx", b"x")
    os.mkfifo(root / "index" / "fifo.idx")
    monkeypatch.chdir(root / "index")  # a socket's path must be short
    sock = socket.socket(socket.AF_UNIX)
    sock.bind("sock.idx")
    try:
        assert set(backend.list("index")) == {"index/good.idx"}
        assert set(backend.list("")) == {"index/good.idx"}
        for name, what in (("fifo.idx", "FIFO"), ("sock.idx", "socket")):
            rel = f"index/{name}"
            for call in (lambda r=rel: backend.stat(r), lambda r=rel: backend.read(r),
                         lambda r=rel: backend.read(r, 0, 1),
                         lambda r=rel: backend.download(r, tmp_path / "dest"),
                         lambda r=rel: backend.read_ref(r)):
                with pytest.raises(Permanent, match=f"{name} is a {what}"):
                    bounded(call, root / "index" / "fifo.idx")
    finally:
        sock.close()


def test_a_fifo_fragment_is_one_permanent_error_not_retried(tmp_path: Path) -> None:
    """It was retried 4 times and reported as a passing fault."""
    _work, remote = published(tmp_path)
    os.mkfifo(remote / "index" / "x.idx")
    fs = RemoteFS(str(remote))
    with pytest.raises(RemoteError, match=r"index/x\.idx is a FIFO.*damaged or hostile") as e:
        bounded(lambda: fs.get_file("index/x.idx", tmp_path / "x.idx"), remote / "index" / "x.idx")
    assert not isinstance(e.value, RemoteUnavailable)
    assert fs.requests["get"] == 1 and not (tmp_path / "x.idx").exists()


# -- 2. links below the remote's root --------------------------------------------------
def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("folder", ["refs/heads", "refs", "index", "locks", "packs", "meta"])
def test_push_never_writes_through_a_linked_folder(tmp_path: Path, folder: str) -> None:
    work, remote = published(tmp_path)
    outside = tmp_path / "outside" / folder.replace("/", "-")
    outside.parent.mkdir()
    (remote / folder).mkdir(parents=True, exist_ok=True)
    (remote / folder).rename(outside)
    (remote / folder).symlink_to(outside)
    before = snapshot(tmp_path / "outside")
    second_version(work)
    proc = run("push", cwd=work)
    assert proc.returncode != 0
    assert f"{remote / folder} is a symbolic link (to {outside})" in proc.stderr
    assert "damaged or hostile" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert snapshot(tmp_path / "outside") == before and not list(outside.rglob(".tmp-*"))


@pytest.mark.parametrize("folder", ["index", "packs/ab", "meta"])
def test_reads_never_follow_a_linked_folder(tmp_path: Path, folder: str) -> None:
    _work, remote = published(tmp_path)
    outside = tmp_path / "outside"
    (remote / folder).mkdir(parents=True, exist_ok=True)
    (remote / folder).rename(outside)
    (remote / folder).symlink_to(outside)
    fs = RemoteFS(str(remote))
    rel = folder + "/x"
    write(outside, "x", "secret")
    with pytest.raises(RemoteError, match="symbolic link.*damaged or hostile"):
        fs.cat(rel)
    with pytest.raises(RemoteError, match="symbolic link"):
        fs.delete([rel])
    assert (outside / "x").read_text() == "secret"
    if folder != "packs/ab":
        with pytest.raises(RemoteError, match="symbolic link"):
            fs.list(folder)
    assert not any(r.startswith(folder + "/") for r in fs.list(""))


def test_a_linked_file_is_not_read_but_replaced_or_removed_as_a_link(tmp_path: Path) -> None:
    root, secret = tmp_path / "r", tmp_path / "secret"
    secret.write_text("mine")
    backend = LocalBackend(root)
    backend.write("refs/heads/main", b"0" * 40)
    (root / "refs/heads/evil").symlink_to(secret)
    assert set(backend.list("refs")) == {"refs/heads/main"}
    with pytest.raises(Permanent, match="symbolic link"):
        backend.read("refs/heads/evil")
    with pytest.raises(Permanent, match="symbolic link"):
        backend.read_ref("refs/heads/evil")
    backend.write("refs/heads/evil", b"1" * 40)  # the link is replaced, the file it named kept
    assert backend.read("refs/heads/evil") == b"1" * 40 and secret.read_text() == "mine"
    (root / "refs/heads/evil").unlink()
    (root / "refs/heads/evil").symlink_to(secret)
    backend.delete(["refs/heads/evil"])
    assert not (root / "refs/heads/evil").is_symlink() and secret.read_text() == "mine"


def test_a_remote_whose_root_is_a_link_works(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    work = tmp_path / "a"
    work.mkdir()
    ok("init", cwd=work)
    write(work, "f.txt", "one")
    ok("add", "-A", cwd=work)
    ok("commit", "-m", "v1", cwd=work)
    ok("remote", "add", "origin", str(tmp_path / "link"), cwd=work)
    ok("push", cwd=work)
    ok("clone", str(tmp_path / "link"), str(tmp_path / "b"), cwd=tmp_path)
    assert (tmp_path / "b" / "f.txt").read_text() == "one" and (real / "refs/heads/main").is_file()


# -- 3. locks dated in the future --------------------------------------------------------
def plant_lock(remote: Path, when: float, name: str = "exclusive-deadbeef.json") -> Path:
    lock = remote / "locks" / name
    lock.parent.mkdir(exist_ok=True)
    lock.write_text(json.dumps({"op": "gc", "host": "other", "pid": 1}))
    os.utime(lock, (when, when))
    return lock


FUTURE = time.mktime((2030, 1, 1, 0, 0, 0, 0, 0, -1))


def test_a_lock_dated_years_ahead_blocks_no_push_and_gc_removes_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(RemoteLock, "WAIT", 0.3)  # the old code waited, then failed
    work, remote = published(tmp_path)
    lock = plant_lock(remote, FUTURE)
    second_version(work)
    store = Store.open(work)
    assert Remote(store).push().refs == ["refs/heads/main"]
    report = gc_remote(store, "origin", grace_seconds=0)
    assert report.stale_locks_removed == 1 and not lock.exists() and os.listdir(remote / "locks") == []


def test_cli_push_and_gc_over_a_lock_dated_in_2030(tmp_path: Path) -> None:
    work, remote = published(tmp_path)
    lock = plant_lock(remote, FUTURE)
    second_version(work)
    ok("push", cwd=work)
    ok("gc", "--remote", "origin", cwd=work)
    assert not lock.exists()


def test_a_lock_within_the_clock_skew_still_blocks_and_says_how_to_remove_it(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(RemoteLock, "WAIT", 0.3)
    work, remote = published(tmp_path)
    lock = plant_lock(remote, time.time() + 60)  # a minute ahead: another machine's clock
    second_version(work)
    store = Store.open(work)
    with pytest.raises(RemoteLocked) as e:
        Remote(store).push()
    msg = str(e.value)
    assert "locks/exclusive-deadbeef.json: gc by pid 1 on other" in msg and "ahead" in msg
    assert f"`rm {lock}`" in msg and "expires by itself in" in msg and "no command" in msg
    # of two gcs the earlier goes on (the later one withdraws), and a live lock stays
    assert gc_remote(store, "origin", grace_seconds=0).stale_locks_removed == 0 and lock.exists()
    lock.unlink()  # as the message says
    assert Remote(store).push().refs == ["refs/heads/main"]


def test_a_live_lock_is_never_swept_as_future(tmp_path: Path) -> None:
    """The rule compares against a fresh time of the same clock: a lock a few minutes ahead
    of it is another machine's, live."""
    work, _remote = published(tmp_path)
    repo = Remote(Store.open(work))
    now = time.time()
    listing = {"locks/shared-a.json": (10, now + 300), "locks/shared-b.json": (10, now + 700),
               "locks/shared-c.json": (10, now - 700), "locks/shared-d.json": (10, now)}
    _temps, locks = repo.leftovers(listing, now, grace=0)
    assert sorted(locks) == ["locks/shared-b.json", "locks/shared-c.json"]


def test_a_branch_named_as_a_remote_folder_of_branches_is_a_name_clash_not_damage(tmp_path: Path) -> None:
    """Pushing `a` where the remote has `a/b` (git refuses the same): the message names the
    clash and never tells the user to remove the folder (that would delete `a/b`)."""
    from .conftest import ds

    w = tmp_path / "w"
    ds("init", str(w), cwd=tmp_path)
    write(w, "f", "1")
    ds("add", "-A", cwd=w)
    ds("commit", "-m", "one", cwd=w)
    ds("remote", "add", "origin", str(tmp_path / "remote"), cwd=w)
    ds("branch", "a/b", cwd=w)
    ds("push", "origin", "a/b", cwd=w)
    ds("branch", "-D", "a/b", cwd=w)
    ds("branch", "a", cwd=w)
    r = ds("push", "origin", "a", cwd=w, check=False)
    assert r.returncode == 1 and "cannot be both a ref and the folder of others" in r.stderr
    assert "hostile" not in r.stderr and "Remove it" not in r.stderr
    assert (tmp_path / "remote" / "refs" / "heads" / "a" / "b").is_file()
