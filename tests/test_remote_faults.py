"""Remotes under faults: through ``tests/faults.py`` a seeded share of storage calls fail
(before or after taking effect), stall, or return short data. Push, fetch, clone and pull
either succeed after retries or fail with a clear error that names the remote, the
operation and the fix; after every failed attempt the remote still holds only complete
versions (``fsck_remote`` from a clean store, on the real backend), and re-running sends
or downloads only what is still missing, until the result is byte-identical.

DS_FAULT_TRIALS seeded trials per operation on a folder remote (default 12), a quarter
of that (at least 4) on S3; DS_FAULT_TRIALS=200 for a long run.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from objstore.get import get_copy
from objstore.maintenance import fsck, mark_versions
from objstore.remote import Remote, clone, pull
from objstore.remote_fs import RemoteFS, RemoteUnavailable
from objstore.remote_fsck import fsck_remote
from objstore.store import Store
from objstore.worktree import commit_all

from . import faults
from .conftest import read_tree, write
from .test_remote import make_store, with_remote

TRIALS = int(os.environ.get("DS_FAULT_TRIALS", "12"))
ATTEMPTS = 15  # runs of one operation before a trial gives up (each run retries every call)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch) -> None:
    monkeypatch.setattr(RemoteFS, "BACKOFF", 0.001)


@pytest.fixture(params=["folder", "s3"])
def backend(request, tmp_path: Path) -> tuple[str, dict, int]:
    """(url, options, trials) of an empty remote."""
    if request.param == "folder":
        return str(tmp_path / "remote"), {}, TRIALS
    server = request.getfixturevalue("moto_s3")
    return f"s3://{server.new_bucket()}/data", server.options, max(4, TRIALS // 4)


def knobs(seed: int) -> dict:
    rnd = random.Random(seed)
    return {"seed": seed, "error_rate": rnd.uniform(0.1, 0.3), "stall_rate": 0.05,
            "short_rate": rnd.uniform(0.05, 0.2), "stall_seconds": 0.002,
            # every third trial also loses the service part-way through its first run
            "outage_at": rnd.randint(2, 12) if seed % 3 == 0 else None}


def source(path: Path) -> Store:
    """A store with two versions and a tag: 60 small files, a few larger, one edit. v1's
    remote pack (over 1 MiB, all of it wanted) is fetched whole, v2's chunk by chunk."""
    s = Store.init(path)
    rnd = random.Random(7)
    for i in range(60):
        write(s.worktree, f"d{i % 6}/f{i:03d}", rnd.randbytes(rnd.randint(100, 4000)))
    write(s.worktree, "big/a.bin", rnd.randbytes(1_500_000))
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


class Trials:
    """The seeded trials of one operation: a fault plan and a faulty URL each, and a loop
    that runs the operation until it succeeds, checking every failure on the way."""

    def __init__(self, what: str, count: int, tmp: Path, monkeypatch):
        self.what, self.count, self.tmp, self.monkeypatch = what, count, tmp, monkeypatch
        self.injected = self.runs = self.failed = 0

    def __iter__(self):
        for seed in range(self.count):
            # half the trials with fewer retries per call, so that runs also fail and resume
            self.monkeypatch.setattr(RemoteFS, "RETRIES", 2 if seed % 2 else 3)
            self.plan = faults.plan(f"{self.what}-{seed}", **knobs(seed))
            yield seed
            self.injected += self.plan.total

    def faulty(self, url: str, opts: dict) -> tuple[str, dict]:
        return faults.faulty(url, opts, self.plan_name)

    @property
    def plan_name(self) -> str:
        return f"{self.what}-{self.plan.seed}"

    def until_done(self, op, furl: str, url: str, opts: dict, after=None) -> None:
        """Run ``op`` until it succeeds; ``after(ok)`` checks the state after each run."""
        for _ in range(ATTEMPTS):
            ok = self.run(op, furl, url, opts)
            self.plan.down = False  # an outage ends
            if after is not None:
                after(ok)
            if ok:
                return
        raise AssertionError(f"{self.plan_name}: {self.what} kept failing")

    def run(self, op, furl: str, url: str, opts: dict) -> bool:
        """One run: True on success; a failure must be clear and leave the remote whole."""
        self.runs += 1
        try:
            op()
            return True
        except RemoteUnavailable as e:
            self.failed += 1
            text = str(e)
            assert furl in text and f"{self.what} did not complete" in text and "again" in text, text
            remote_is_complete(self.tmp, url, opts)
            return False

    def finish(self) -> None:
        print(f"{self.what}: {self.count} trials, {self.runs} runs, {self.failed} failed and resumed, "
              f"{self.injected} faults injected")  # shown by `pytest -rP`
        assert self.injected > 0
        assert self.failed > 0  # some runs gave up, and were resumed


def test_push_under_faults(tmp_path: Path, backend, monkeypatch) -> None:
    url, opts, count = backend
    s = source(tmp_path / "src")
    trials = Trials("push", count, tmp_path, monkeypatch)
    for seed in trials:
        push_trial(trials, s, f"{url}/t{seed}", opts, seed)
        for rev in ("main", "v1"):
            c, _t = clone(f"{url}/t{seed}", str(tmp_path / f"c{seed}-{rev}"), rev=rev, options=opts or None)
            get_copy(s, rev, tmp_path / f"e{seed}-{rev}")
            assert read_tree(c.worktree) == read_tree(tmp_path / f"e{seed}-{rev}")
    trials.finish()


def push_trial(trials: Trials, s: Store, url: str, opts: dict, seed: int) -> None:
    furl, fopts = trials.faulty(url, opts)
    with_remote(s, furl, fopts, name=f"t{seed}")
    real, before = RemoteFS(url, opts), {}

    def push() -> None:
        before.update(packs=set(real.list("packs")), sent=len(trials.plan.writes))
        Remote(s).push(all_refs=True)

    def nothing_sent_twice(_ok: bool) -> None:
        sent = {real.rel(w) for w in trials.plan.writes[before["sent"]:] if "/packs/" in w}
        assert not sent & before["packs"]  # what an interrupted run sent is not sent again

    trials.until_done(push, furl, url, opts, after=nothing_sent_twice)
    remote_is_complete(trials.tmp, url, opts, read=1.0)


@pytest.fixture
def published(tmp_path: Path, backend) -> tuple[Store, str, dict, int, Store]:
    """The source's v1 pushed; a clone of it made; then v2 pushed: (source, url, opts, trials, clone)."""
    from objstore.worktree import checkout

    url, opts, count = backend
    s = source(tmp_path / "src")
    with_remote(s, url, opts)
    v2 = s.head()
    checkout(s, "v1")
    s.meta.set_ref("refs/heads/main", s.resolve("v1"), force=True)
    s.meta.attach_head("main")
    Remote(s).push(all_refs=True)
    old, _t = clone(url, str(tmp_path / "old"), options=opts or None)
    checkout(s, v2)
    s.meta.set_ref("refs/heads/main", v2, force=True)
    s.meta.attach_head("main")
    Remote(s).push()
    return s, url, opts, count, old


def test_fetch_under_faults(tmp_path: Path, published, monkeypatch) -> None:
    s, url, opts, count, _old = published
    trials = Trials("fetch", count, tmp_path, monkeypatch)
    for seed in trials:
        store = fetch_trial(trials, url, opts, tmp_path / f"f{seed}")
        assert store.meta.resolve("refs/remotes/origin/main") == s.head()
        assert store.meta.resolve("v1") == s.resolve("v1")
        assert store.meta.tree_of(s.head()) == s.meta.tree_of(s.head())  # identical metadata
    trials.finish()


def fetch_trial(trials: Trials, url: str, opts: dict, path: Path) -> Store:
    furl, fopts = trials.faulty(url, opts)
    store = with_remote(Store.init(path), furl, fopts)
    packs, before = store.meta.path / "objects" / "pack", {}

    def fetch() -> None:
        before.update(have={p.name for p in packs.glob("pack-*")}, read=len(trials.plan.reads))
        Remote(store).fetch()

    def resumed(_ok: bool) -> None:
        again = {r.rsplit("/", 1)[-1] for r in trials.plan.reads[before["read"]:] if "/meta/" in r}
        assert not again & before["have"]  # metadata fetched before is not fetched again
        assert not mark_versions(store.meta, store.meta.refs().values()).problems  # all there

    trials.until_done(fetch, furl, url, opts, after=resumed)
    return store


def test_clone_under_faults(tmp_path: Path, published, monkeypatch) -> None:
    s, url, opts, count, _old = published
    trials = Trials("clone", count, tmp_path, monkeypatch)
    for seed in trials:
        furl, fopts = trials.faulty(url, opts)
        target = tmp_path / f"c{seed}"

        def nothing_left(ok: bool, target: Path = target) -> None:
            assert ok or not target.exists()  # a failed clone leaves nothing behind

        trials.until_done(lambda t=target, u=furl, o=fopts: clone(u, str(t), options=o), furl, url, opts,
                          after=nothing_left)
        c = Store.open(target)
        assert read_tree(c.worktree) == read_tree(s.worktree)
        assert fsck(c, read_data=True).ok
    trials.finish()


def test_pull_under_faults(tmp_path: Path, published, monkeypatch) -> None:
    s, url, opts, count, old = published
    before = read_tree(old.worktree)
    trials = Trials("pull", count, tmp_path, monkeypatch)
    for seed in trials:
        furl, fopts = trials.faulty(url, opts)
        shutil.copytree(old.worktree, tmp_path / f"p{seed}", symlinks=True)
        store = with_remote(Store.open(tmp_path / f"p{seed}"), furl, fopts)

        def all_or_nothing(ok: bool, store: Store = store) -> None:
            if not ok:  # still the old version, whole
                assert store.head() == old.head() and read_tree(store.worktree) == before

        trials.until_done(lambda st=store: pull(st), furl, url, opts, after=all_or_nothing)
        assert store.head() == s.head() and read_tree(store.worktree) == read_tree(s.worktree)
        assert fsck(store, read_data=True).ok
    trials.finish()


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
