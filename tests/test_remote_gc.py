"""Remote gc: what no branch, tag or dataset record needs goes once older than the grace
period; everything still named reads back byte-identical; pushes running meanwhile lose
nothing; a gc stopped at any step leaves the remote readable.

DS_GC_ROUNDS sets the push rounds per client in the concurrency test (default 3 on a
folder, one fewer on S3).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from objstore.errors import DsError
from objstore.get import get_copy
from objstore.remote import Remote
from objstore.remote_fs import RemoteFS, RemoteLock, RemoteLocked
from objstore.remote_fsck import fsck_remote
from objstore.remote_gc import gc_remote
from objstore.store import Store
from objstore.worktree import commit_all

from .conftest import DS, read_tree, write
from .test_remote import clone_to, make_store

ROUNDS = int(os.environ.get("DS_GC_ROUNDS", "3"))


def files(root: Path, prefix: str, n: int, size: int, seed: int) -> None:
    rnd = random.Random(seed)
    for i in range(n):
        write(root, f"{prefix}/f{i:03d}.bin", rnd.randbytes(size + rnd.randint(0, size)))


def on_branch(path: Path, url: str, opts: dict, branch: str) -> Store:
    """A new store whose first commit starts ``branch`` (so it pushes as that branch)."""
    s = make_store(path, url, opts)
    s.meta.attach_head(branch)
    return s


def chunks_of(store: Store, rev: str = "HEAD") -> set[bytes]:
    tree = store.meta.tree_of(store.resolve(rev))
    return {c for _p, e in store.meta.walk(tree) for c, _ in e.chunk_list()}


def listing(url: str, opts: dict) -> dict[str, int]:
    return {rel: size for rel, (size, _m) in RemoteFS(url, opts).list_detail("").items()
            if not rel.startswith("locks/")}


def checked(tmp: Path, url: str, opts: dict) -> dict:
    """fsck of the remote from a fresh store, reading every chunk back."""
    checker = make_store(tmp / f"checker-{random.getrandbits(32):08x}", url, opts)
    report = fsck_remote(checker, "origin", read_data_subset=1.0)
    assert report["ok"], report["problems"]
    return report


def test_gc_frees_what_nothing_names_after_the_grace(tmp_path: Path, remote_spec, monkeypatch) -> None:
    from objstore import Dataset

    url, opts = remote_spec
    a = make_store(tmp_path / "a", url, opts)
    files(a.worktree, "keep", 12, 3000, seed=1)
    commit_all(a, "v1")
    Remote(a).push()
    b = on_branch(tmp_path / "b", url, opts, "junk")  # a branch that is then deleted on the remote
    files(b.worktree, "junk", 12, 3000, seed=2)
    commit_all(b, "junk")
    Remote(b).push()
    junk = chunks_of(b) - chunks_of(a)
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "a" / ".dsstore"))
    records = {}
    for name, seed in (("kept", 3), ("deleted", 4)):  # two dataset versions; one record is deleted
        files(tmp_path / name, "d", 5, 2000, seed=seed)
        ds = Dataset.create(dataset_name=name, dataset_project="p")
        ds.add_files(tmp_path / name)
        ds.upload()
        ds.finalize()
        records[name] = ds.id
    dataset_chunks = {n: chunks_of(a, f"refs/datasets/{i}") for n, i in records.items()}
    fs = RemoteFS(url, opts)
    fs.delete(["refs/heads/junk", f"datasets/{records['deleted']}.json"])
    before = listing(url, opts)

    young = gc_remote(a, grace_seconds=3600)  # everything is younger than an hour: all kept
    assert young.packs_deleted == young.packs_rewritten == 0 and young.young_packs_kept >= 2
    assert listing(url, opts) == before
    dry = gc_remote(a, grace_seconds=0, dry_run=True)
    assert dry.packs_deleted >= 2 and dry.bytes_freed > 0 and dry.chunks_dropped >= len(junk)
    assert listing(url, opts) == before  # a dry run changes nothing

    done = gc_remote(a, grace_seconds=0)
    assert done.packs_deleted >= 2 and done.bytes_freed > 0 and done.chunks_dropped >= len(junk)
    after = listing(url, opts)
    assert sum(after.values()) < sum(before.values())
    index = Remote(make_store(tmp_path / "probe", url, opts)).index()
    assert all(index.lookup(c) is None for c in junk | dataset_chunks["deleted"])
    assert all(index.lookup(c) is not None for c in chunks_of(a) | dataset_chunks["kept"])
    report = checked(tmp_path, url, opts)
    assert report["chunks_read"] == report["chunks_indexed"] == report["chunks_needed"]
    assert read_tree(clone_to(url, opts, tmp_path / "c").worktree) == read_tree(a.worktree)
    again = gc_remote(a, grace_seconds=0)  # nothing left to collect
    assert again.packs_deleted == again.packs_rewritten == again.meta_packs_deleted == 0
    assert listing(url, opts) == after

    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "fresh" / ".dsstore"))
    make_store(tmp_path / "fresh", url, opts)
    got = Dataset.get(dataset_id=records["kept"])
    assert got.verify_dataset_hash() == []


def test_gc_repacks_a_mostly_dead_pack_and_metadata(tmp_path: Path, remote_spec) -> None:
    from objstore.squash import squash

    url, opts = remote_spec
    shared = os.urandom(20_000)
    b = on_branch(tmp_path / "b", url, opts, "junk")
    write(b.worktree, "shared.bin", shared)
    files(b.worktree, "junk", 6, 50_000, seed=5)
    commit_all(b, "junk and one shared file")
    Remote(b).push()  # one pack: mostly junk, and one chunk main will use
    a = make_store(tmp_path / "a", url, opts)
    write(a.worktree, "shared.bin", shared)
    commit_all(a, "v0")
    squash(a, ["HEAD"], "a branch deleted later", branch="tmp")
    Remote(a).push(["main", "tmp"])  # one metadata pack: objects main needs and one it does not
    for i in (1, 2):
        write(a.worktree, f"more{i}.txt", str(i))
        commit_all(a, f"v{i}")
        Remote(a).push()
    fs = RemoteFS(url, opts)
    fs.delete(["refs/heads/junk", "refs/heads/tmp"])
    meta_before = [r for r in fs.list("meta") if r.endswith(".idx")]
    reader = clone_to(url, opts, tmp_path / "reader", include=["nothing/"])
    stale = Remote(reader).attach()
    stale.index()  # a reader that synced its index before the gc...
    report = gc_remote(a, grace_seconds=0)
    get_copy(reader, "HEAD", tmp_path / "copy")  # ...finds the chunks moved by it
    assert read_tree(tmp_path / "copy") == read_tree(a.worktree)
    assert (report.packs_rewritten, report.packs_written, report.packs_deleted) == (1, 1, 0)
    assert (report.meta_packs_deleted, report.meta_packs_written) == (2, 1)
    assert len([r for r in fs.list("meta") if r.endswith(".idx")]) == len(meta_before) - 1
    checked(tmp_path, url, opts)
    assert read_tree(clone_to(url, opts, tmp_path / "c").worktree) == read_tree(a.worktree)
    write(a.worktree, "after.txt", "pushes still work after a gc")
    commit_all(a, "after")
    assert Remote(a).push().refs == ["refs/heads/main"]
    assert read_tree(clone_to(url, opts, tmp_path / "d").worktree) == read_tree(a.worktree)


def test_gc_refuses_a_remote_with_missing_metadata(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    a = make_store(tmp_path / "a", url, {})
    write(a.worktree, "f", "x")
    commit_all(a, "v1")
    Remote(a).push()
    fs = RemoteFS(url, {})
    fs.put("refs/heads/broken", b"0123456789abcdef0123456789abcdef01234567\n")
    before = listing(url, {})
    with pytest.raises(DsError, match="gc refused.*nothing was deleted"):
        gc_remote(make_store(tmp_path / "other", url, {}), grace_seconds=0)
    assert listing(url, {}) == before


def _remote_with_garbage(tmp_path: Path, url: str, opts: dict) -> Store:
    """main, plus garbage of every kind: a pack with one live chunk among dead ones (to be
    rewritten), a wholly dead pack, and metadata packs dead or mixed."""
    from objstore.squash import squash

    shared = random.Random(6).randbytes(20_000)
    b = on_branch(tmp_path / "b", url, opts, "junk")
    write(b.worktree, "shared.bin", shared)
    files(b.worktree, "junk", 8, 30_000, seed=8)
    commit_all(b, "junk")
    Remote(b).push()
    a = make_store(tmp_path / "a", url, opts)
    files(a.worktree, "keep", 8, 4000, seed=7)
    write(a.worktree, "shared.bin", shared)
    commit_all(a, "v1")
    squash(a, ["HEAD"], "deleted later", branch="tmp")
    Remote(a).push(["main", "tmp"])
    b2 = on_branch(tmp_path / "b2", url, opts, "junk2")
    files(b2.worktree, "junk2", 4, 4000, seed=9)
    commit_all(b2, "junk2")
    Remote(b2).push()
    RemoteFS(url, opts).delete(["refs/heads/junk", "refs/heads/junk2", "refs/heads/tmp"])
    return a


def test_gc_stopped_at_every_step_leaves_the_remote_readable(tmp_path: Path, monkeypatch) -> None:
    """Crash a remote gc before each of its writes and deletes in turn: the remote stays
    complete for readers, and the next gc finishes the job."""
    pristine = tmp_path / "pristine"
    a = _remote_with_garbage(tmp_path, str(pristine), {})
    expected = read_tree(a.worktree)
    steps = {"n": 0}
    real_put, real_delete = RemoteFS.put, RemoteFS.delete

    def counting(real):
        def call(self, rels, *args, **kwargs):
            if not any(r.startswith("locks/") for r in (rels if isinstance(rels, list) else [rels])):
                steps["n"] += 1
                if steps["n"] == steps.get("crash_at"):
                    raise KeyboardInterrupt  # the process dies here
            return real(self, rels, *args, **kwargs)
        return call

    monkeypatch.setattr(RemoteFS, "put", counting(real_put))
    monkeypatch.setattr(RemoteFS, "delete", counting(real_delete))
    shutil.copytree(pristine, tmp_path / "full")
    gc_remote(make_store(tmp_path / "g0", str(tmp_path / "full"), {}), grace_seconds=0)
    total = steps["n"]
    assert total == 8  # a rewritten pack, a metadata pack (2 files), a fragment, 4 deletes
    for crash_at in range(1, total + 1):
        url = str(tmp_path / f"r{crash_at}")
        shutil.copytree(pristine, url)
        steps.update(n=0, crash_at=crash_at)
        with pytest.raises(KeyboardInterrupt):
            gc_remote(make_store(tmp_path / f"g{crash_at}", url, {}), grace_seconds=0)
        steps["crash_at"] = None
        RemoteFS(url, {}).delete(RemoteFS(url, {}).list("locks"))  # a killed gc leaves its lock
        checked(tmp_path, url, {})
        assert read_tree(clone_to(url, {}, tmp_path / f"c{crash_at}").worktree) == expected
        gc_remote(make_store(tmp_path / f"h{crash_at}", url, {}), grace_seconds=0)
        checked(tmp_path, url, {})
        assert done_state(url) == done_state(str(tmp_path / "full"))


def done_state(url: str) -> set[str]:
    return {r for r in listing(url, {}) if r.startswith(("packs/", "index/", "meta/", "refs/"))}


def test_locks_exclude_gc_from_pushes_and_expire(tmp_path: Path, monkeypatch) -> None:
    url = str(tmp_path / "remote")
    a = make_store(tmp_path / "a", url, {})
    write(a.worktree, "f", "x")
    commit_all(a, "v1")
    Remote(a).push()
    monkeypatch.setattr(RemoteLock, "WAIT", 0.3)
    fs = RemoteFS(url, {})
    with RemoteLock(fs, exclusive=False, op="push"), pytest.raises(RemoteLocked, match="pushes are in"):
        gc_remote(a, grace_seconds=0)
    with RemoteLock(fs, exclusive=True, op="gc"):
        write(a.worktree, "g", "y")
        commit_all(a, "v2")
        with pytest.raises(RemoteLocked, match="remote gc or repair is running"):
            Remote(a).push()
        with pytest.raises(RemoteLocked, match="remote gc or repair is running"):
            gc_remote(a, grace_seconds=0)
    assert fs.list("locks") == []
    dead = RemoteLock(fs, exclusive=True, op="gc")  # a gc killed while holding its lock
    fs.put(dead.rel, dead.body)
    old = os.path.getmtime(fs.path(dead.rel)) - RemoteLock.STALE - 1
    os.utime(fs.path(dead.rel), (old, old))
    assert Remote(a).push().refs == ["refs/heads/main"]  # a stale lock is ignored...
    report = gc_remote(a, grace_seconds=0)
    assert report.stale_locks_removed == 1 and fs.list("locks") == []  # ...and removed by gc


CLIENT = r"""
import json, random, subprocess, sys
from pathlib import Path
ds, work, n, rounds = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
pool = Path(sys.argv[5])
pool_files = sorted(pool.iterdir())
rnd = random.Random(n)
out = []
for k in range(rounds):
    # new bytes, plus files whose chunks a deleted branch left on the remote (garbage gc may
    # be collecting right now): the push must not trust those chunks unless gc cannot run
    (work / f"own-{k}.bin").write_bytes(rnd.randbytes(rnd.randint(1000, 30000)))
    for f in rnd.sample(pool_files, 3):
        (work / f"pool-{f.name}").write_bytes(f.read_bytes())
    subprocess.run([ds, "add", "-A"], cwd=work, check=True, capture_output=True)
    subprocess.run([ds, "commit", "-m", f"round {k}"], cwd=work, check=True, capture_output=True)
    cid = json.loads(subprocess.run([ds, "log", "-n", "1", "--json"], cwd=work, check=True,
                                    capture_output=True, text=True).stdout)[0]["id"]
    p = subprocess.run([ds, "push", "-q"], cwd=work, capture_output=True, text=True)
    out.append({"id": cid, "ok": p.returncode == 0, "err": p.stderr[-300:]})
print(json.dumps(out))
"""

GARBAGE = r"""
import sys, time
from objstore.remote import Remote
from objstore.remote_fs import RemoteLocked
from objstore.store import Store
store, rounds = Store.open(sys.argv[1]), int(sys.argv[2])
for k in range(rounds):  # the pool's chunks become referenced, then garbage, again and again
    remote = Remote(store)
    try:
        remote.push(["pool"], force=True)
    except RemoteLocked:
        continue
    time.sleep(0.05)
    remote.fs.delete(["refs/heads/pool"])
    time.sleep(0.05)
"""

GC = r"""
import subprocess, sys
ds, work, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
ok = 0
for _ in range(rounds):
    p = subprocess.run([ds, "gc", "--remote", "origin", "--grace", "0", "--json"], cwd=work,
                       capture_output=True, text=True)
    ok += p.returncode == 0
    if p.returncode and "lock" not in p.stderr:
        print(p.stderr, file=sys.stderr)
        sys.exit(2)
print(ok)
"""


@pytest.mark.parametrize("backend", ["folder", "s3"])
def test_pushes_while_gc_runs_lose_nothing(tmp_path: Path, backend: str, request) -> None:
    rounds = ROUNDS
    if backend == "folder":
        url, opts = str(tmp_path / "remote"), {}
    else:
        server = request.getfixturevalue("moto_s3")
        url, opts, rounds = f"s3://{server.new_bucket()}/data", server.options, max(1, ROUNDS - 1)
    pool = tmp_path / "pool"
    files(pool, ".", 12, 8000, seed=11)
    g = on_branch(tmp_path / "g", url, opts, "pool")
    shutil.copytree(pool, g.worktree / "pool")
    commit_all(g, "pool")
    Remote(g).push()
    clients = []
    for n in range(3):
        c = on_branch(tmp_path / f"c{n}", url, opts, f"client{n}")
        write(c.worktree, "start.txt", f"client {n}")
        commit_all(c, "start")
        Remote(c).push()
        clients.append(c)
    collector = make_store(tmp_path / "collector", url, opts)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parent.parent))
    procs = [subprocess.Popen([sys.executable, "-c", CLIENT, DS, str(c.worktree), str(n), str(rounds),
                               str(pool)], stdout=subprocess.PIPE, text=True, env=env)
             for n, c in enumerate(clients)]
    garbage = subprocess.Popen([sys.executable, "-c", GARBAGE, str(g.worktree), str(3 * rounds)], env=env)
    gc = subprocess.Popen([sys.executable, "-c", GC, DS, str(collector.worktree), str(2 * rounds)],
                          stdout=subprocess.PIPE, text=True, env=env)
    results = []
    for p in procs:
        out, _ = p.communicate(timeout=600)
        assert p.returncode == 0
        results.append(json.loads(out))
    assert garbage.wait(timeout=600) == 0
    gc_out, _ = gc.communicate(timeout=600)
    assert gc.returncode == 0 and int(gc_out) >= 1  # gc did run between the pushes
    final = gc_remote(collector, grace_seconds=0)  # and once more with nobody pushing
    assert final.versions >= len(clients)
    checked(tmp_path, url, opts)
    pushed = 0
    for n, (c, pushes) in enumerate(zip(clients, results, strict=True)):
        for k, r in enumerate(pushes):
            if not r["ok"]:
                assert "lock" in r["err"], r["err"]  # the only acceptable failure: waited too long
                continue
            pushed += 1
            clone = clone_to(url, opts, tmp_path / f"clone-{n}-{k}", rev=r["id"])
            expected = tmp_path / f"expected-{n}-{k}"
            get_copy(Store.open(c.worktree), r["id"], expected)
            assert read_tree(clone.worktree) == read_tree(expected)
    assert pushed >= len(clients)


def test_cli_gc_remote(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    a = _remote_with_garbage(tmp_path, url, {})
    proc = subprocess.run([DS, "gc", "--remote", "origin", "--grace", "1h"], cwd=a.worktree,
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "0 pack(s) deleted" in proc.stderr, proc.stderr
    dry = json.loads(subprocess.run([DS, "gc", "--remote", "origin", "--grace", "0", "--dry-run", "--json"],
                                    cwd=a.worktree, capture_output=True, text=True, check=True).stdout)
    assert dry["dry_run"] and dry["packs_deleted"] >= 1
    bad = subprocess.run([DS, "gc", "--remote", "origin", "--grace", "soon"], cwd=a.worktree,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "--grace takes a duration" in bad.stderr
    done = json.loads(subprocess.run([DS, "gc", "--remote", "origin", "--grace", "0", "--json"],
                                     cwd=a.worktree, capture_output=True, text=True, check=True).stdout)
    assert done["packs_deleted"] + done["packs_rewritten"] >= 2 and not done["dry_run"]
    fsck = subprocess.run([DS, "fsck", "--remote", "origin", "--read-data-subset", "1"], cwd=a.worktree,
                          capture_output=True, text=True)
    assert fsck.returncode == 0 and "OK" in fsck.stdout, fsck.stderr
