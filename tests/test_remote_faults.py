"""Remotes under faults: through ``tests/faults.py`` a seeded share of storage calls fail
(before or after taking effect), stall, or return short data. Push, fetch, clone and pull
either succeed after retries or fail with a clear error that names the remote, the
operation and the fix; after every failed attempt the remote still holds only complete
versions (``fsck_remote`` from a clean store, on the real backend), and re-running sends
or downloads only what is still missing, until the result is byte-identical.

DS_FAULT_TRIALS seeded trials per operation and backend (default 20 on a folder, a
quarter of that on S3); DS_FAULT_TRIALS=200 for a long run.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from objstore.copy import get_copy
from objstore.maintenance import fsck, mark_versions
from objstore.remote import Remote, clone, fsck_remote, pull
from objstore.remote_fs import RemoteFS, RemoteUnavailable
from objstore.store import Store
from objstore.worktree import commit_all

from . import faults
from .conftest import read_tree, write
from .test_remote import make_store, with_remote

TRIALS = int(os.environ.get("DS_FAULT_TRIALS", "20"))
ATTEMPTS = 15  # runs of one operation before a trial gives up (each run retries every call)
ROOT = Path(__file__).resolve().parent.parent
TALLY: Counter = Counter()  # (outcome, operation) -> runs, in this process


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch) -> None:
    monkeypatch.setattr(RemoteFS, "BACKOFF", 0.001)


@pytest.fixture(params=["folder", "s3"])
def backend(request, tmp_path: Path) -> tuple[str, dict, int]:
    """(url, options, trials) of an empty remote."""
    if request.param == "folder":
        return str(tmp_path / "remote"), {}, TRIALS
    server = request.getfixturevalue("moto_s3")
    return f"s3://{server.new_bucket()}/data", server.options, max(1, TRIALS // 4)


def knobs(seed: int) -> dict:
    rnd = random.Random(seed)
    return {"seed": seed, "error_rate": rnd.uniform(0.1, 0.3), "stall_rate": 0.05,
            "short_rate": rnd.uniform(0.05, 0.2), "stall_seconds": 0.002}


def source(path: Path) -> Store:
    """A store with two versions and a tag: 60 small files, a few larger, one edit."""
    s = Store.init(path)
    rnd = random.Random(7)
    for i in range(60):
        write(s.worktree, f"d{i % 6}/f{i:03d}", rnd.randbytes(rnd.randint(100, 4000)))
    write(s.worktree, "big/a.bin", rnd.randbytes(600_000))
    commit_all(s, "v1")
    s.tag("v1", "HEAD")
    write(s.worktree, "d0/f000", b"edited")
    write(s.worktree, "big/b.bin", rnd.randbytes(300_000))
    commit_all(s, "v2")
    return s


def remote_is_complete(tmp: Path, url: str, opts: dict, read: float = 0.0) -> dict:
    """fsck of the real remote, from a store that has never seen it."""
    real = RemoteFS(url, opts)
    if not real.exists("config"):  # a push that failed before writing anything
        assert real.list("refs") == real.list("datasets") == []
        return {}
    checker = make_store(tmp / f"checker-{random.getrandbits(40):010x}", url, opts)
    report = fsck_remote(checker, "origin", read_data_subset=read)
    assert report["ok"], report["problems"]
    shutil.rmtree(checker.worktree)
    return report


def run(op, what: str, furl: str, tmp: Path, url: str, opts: dict) -> bool:
    """One run of ``op``: True on success; a failure must be clear and leave the remote whole."""
    TALLY["runs", what] += 1
    try:
        op()
        return True
    except RemoteUnavailable as e:
        TALLY["failed", what] += 1
        text = str(e)
        assert furl in text and f"{what} did not complete" in text and "again" in text, text
        remote_is_complete(tmp, url, opts)
        return False


def summary(what: str, trials: int, injected: int, since: Counter) -> None:
    """One line for `pytest -rP`: how hard this test pushed."""
    runs, failed = (TALLY[k, what] - since[k, what] for k in ("runs", "failed"))
    print(f"{what}: {trials} trials, {runs} runs, {failed} failed and resumed, {injected} faults injected")


def retries_for(seed: int, monkeypatch) -> None:
    # half the trials with a single retry per call, so runs also fail and must resume
    monkeypatch.setattr(RemoteFS, "RETRIES", 1 if seed % 2 else 3)


def test_push_under_faults(tmp_path: Path, backend, monkeypatch) -> None:
    url, opts, trials = backend
    s = source(tmp_path / "src")
    injected, failed, since = 0, TALLY["failed", "push"], Counter(TALLY)
    for seed in range(trials):
        retries_for(seed, monkeypatch)
        rurl = f"{url}/t{seed}"
        f = faults.plan(f"push-{seed}", **knobs(seed))
        furl, fopts = faults.faulty(rurl, opts, f"push-{seed}")
        with_remote(s, furl, fopts, name=f"t{seed}")
        real = RemoteFS(rurl, opts)
        for _ in range(ATTEMPTS):
            present = set(real.list("packs"))
            sent = len(f.writes)
            ok = run(lambda: Remote(s).push(all_refs=True), "push", furl, tmp_path, rurl, opts)
            again = {real.rel(w) for w in f.writes[sent:] if "/packs/" in w and "/.tmp-" not in w}
            assert not again & present  # what an interrupted run sent is not sent again
            if ok:
                break
        assert ok, f"seed {seed}: push kept failing"
        remote_is_complete(tmp_path, rurl, opts, read=1.0)
        for rev in ("main", "v1"):
            c, _t = clone(rurl, str(tmp_path / f"c{seed}-{rev}"), rev=rev, options=opts or None)
            expected = tmp_path / f"e{seed}-{rev}"
            get_copy(s, rev, expected)
            assert read_tree(c.worktree) == read_tree(expected)
        injected += f.total
    summary("push", trials, injected, since)
    assert injected > 0
    assert TALLY["failed", "push"] > failed  # some runs gave up, and were resumed


@pytest.fixture
def published(tmp_path: Path, backend) -> tuple[Store, str, dict, int, Store]:
    """The source's v1 pushed; a clone of it made; then v2 pushed: (source, url, opts, trials, clone)."""
    url, opts, trials = backend
    s = source(tmp_path / "src")
    with_remote(s, url, opts)
    v2 = s.head()
    from objstore.worktree import checkout

    checkout(s, "v1")
    s.meta.set_ref("refs/heads/main", s.resolve("v1"), force=True)
    s.meta.attach_head("main")
    Remote(s).push(all_refs=True)
    old, _t = clone(url, str(tmp_path / "old"), options=opts or None)
    checkout(s, v2)
    s.meta.set_ref("refs/heads/main", v2, force=True)
    s.meta.attach_head("main")
    Remote(s).push()
    return s, url, opts, trials, old


def test_fetch_under_faults(tmp_path: Path, published, monkeypatch) -> None:
    s, url, opts, trials, _old = published
    injected, failed, since = 0, TALLY["failed", "fetch"], Counter(TALLY)
    for seed in range(trials):
        retries_for(seed, monkeypatch)
        f = faults.plan(f"fetch-{seed}", **knobs(seed))
        furl, fopts = faults.faulty(url, opts, f"fetch-{seed}")
        store = with_remote(Store.init(tmp_path / f"f{seed}"), furl, fopts)
        for _ in range(ATTEMPTS):
            have = {p.name for p in (store.meta.path / "objects" / "pack").glob("pack-*")}
            read = len(f.reads)
            ok = run(lambda st=store: Remote(st).fetch(), "fetch", furl, tmp_path, url, opts)
            again = {r.rsplit("/", 1)[-1] for r in f.reads[read:] if "/meta/" in r}
            assert not again & have  # metadata fetched before is not fetched again
            assert not mark_versions(store.meta, store.meta.refs().values()).problems  # whole metadata
            if ok:
                break
        assert ok, f"seed {seed}: fetch kept failing"
        assert store.meta.resolve("refs/remotes/origin/main") == s.head()
        assert store.meta.resolve("v1") == s.resolve("v1")
        assert store.meta.tree_of(s.head()) == s.meta.tree_of(s.head())  # identical metadata
        injected += f.total
    summary("fetch", trials, injected, since)
    assert injected > 0 and TALLY["failed", "fetch"] > failed


def test_clone_under_faults(tmp_path: Path, published, monkeypatch) -> None:
    s, url, opts, trials, _old = published
    injected, failed, since = 0, TALLY["failed", "clone"], Counter(TALLY)
    for seed in range(trials):
        retries_for(seed, monkeypatch)
        f = faults.plan(f"clone-{seed}", **knobs(seed))
        furl, fopts = faults.faulty(url, opts, f"clone-{seed}")
        target = tmp_path / f"c{seed}"
        for _ in range(ATTEMPTS):
            ok = run(lambda t=target, u=furl, o=fopts: clone(u, str(t), options=o), "clone", furl,
                     tmp_path, url, opts)
            if ok:
                break
            assert not target.exists()  # a failed clone leaves nothing behind
        assert ok, f"seed {seed}: clone kept failing"
        c = Store.open(target)
        assert read_tree(c.worktree) == read_tree(s.worktree)
        assert fsck(c, read_data=True).ok
        injected += f.total
    summary("clone", trials, injected, since)
    assert injected > 0 and TALLY["failed", "clone"] > failed


def test_pull_under_faults(tmp_path: Path, published, monkeypatch) -> None:
    s, url, opts, trials, old = published
    before = read_tree(old.worktree)
    injected, failed, since = 0, TALLY["failed", "pull"], Counter(TALLY)
    for seed in range(trials):
        retries_for(seed, monkeypatch)
        f = faults.plan(f"pull-{seed}", **knobs(seed))
        furl, fopts = faults.faulty(url, opts, f"pull-{seed}")
        shutil.copytree(old.worktree, tmp_path / f"p{seed}", symlinks=True)
        store = with_remote(Store.open(tmp_path / f"p{seed}"), furl, fopts)
        for _ in range(ATTEMPTS):
            ok = run(lambda st=store: pull(st), "pull", furl, tmp_path, url, opts)
            if ok:
                break
            assert read_tree(store.worktree) == before  # all or nothing: still the old version
            assert store.head() == old.head()
        assert ok, f"seed {seed}: pull kept failing"
        assert store.head() == s.head() and read_tree(store.worktree) == read_tree(s.worktree)
        assert fsck(store, read_data=True).ok
        injected += f.total
    summary("pull", trials, injected, since)
    assert injected > 0 and TALLY["failed", "pull"] > failed


LAUNCH = ("import sys, tests.faults; from objstore_cli.main import main; "
          "sys.argv = ['ds', *sys.argv[1:]]; main()")


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_hard_down_remote_is_a_clear_error_and_changes_nothing(tmp_path: Path, backend) -> None:
    url, opts, _trials = backend
    a = make_store(tmp_path / "a", url, opts)
    write(a.worktree, "f.txt", "one")
    commit_all(a, "v1")
    furl, fopts = faults.faulty(url, opts, "unused")
    fopts.pop("plan")  # the knobs below are the plan, in this process and in `ds`
    with_remote(a, furl, fopts)
    Remote(a).push()  # reachable: this works
    write(a.worktree, "g.txt", "two")
    commit_all(a, "v2")
    with_remote(a, furl, dict(fopts, down=True))  # the service goes down
    before = snapshot(a.worktree)
    proc = subprocess.run([sys.executable, "-c", LAUNCH, "push"], cwd=a.worktree, capture_output=True,
                          text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert f"remote {furl}: push did not complete" in proc.stderr and "run `ds push` again" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert snapshot(a.worktree) == before  # nothing changed locally
    with pytest.raises(RemoteUnavailable, match="fetch did not complete"):
        Remote(a, retries=1).fetch()
    with pytest.raises(RemoteUnavailable, match="clone did not complete.*ds clone"):
        clone(furl, str(tmp_path / "c"), options=dict(fopts, down=True))
    assert not (tmp_path / "c").exists()
    assert snapshot(a.worktree) == before
    remote_is_complete(tmp_path, url, opts, read=1.0)  # and the remote still holds v1, whole
