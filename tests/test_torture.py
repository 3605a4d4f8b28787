"""Crash safety: `ds commit`, `ds gc`, `ds push`, `ds pull`, `ds switch`, `ds squash`, `ds clone`,
`ds fsck --repair`, `ds fsck --remote --repair` and an SDK finalize killed with SIGKILL at
random moments leave a store that passes `fsck --read-data`, keeps every version committed
before the kill byte-identical, and lets the command run again to completion.

4 trials per command by default (the suite stays near ten minutes);
DS_TORTURE_TRIALS=40 or more for the long run.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from objstore.get import get_copy
from objstore.maintenance import fsck
from objstore.store import Store

from .conftest import DS, read_tree, write

TRIALS = int(os.environ.get("DS_TORTURE_TRIALS", "4"))


def _setup(args: list[str], cwd: Path | None = None) -> None:
    """One step of a trial's set-up, which must succeed: its error is shown if it does not."""
    r = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, (args, r.stderr)


def _kill_after(args: list[str], cwd: Path, delay: float, env: dict | None = None) -> int:
    """Run ``args`` and SIGKILL it, with every process it started, after ``delay`` seconds."""
    proc = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGKILL)
    return proc.wait()


def _check(work: Path, versions: dict[str, dict], tmp: Path) -> None:
    store = Store.open(work)
    report = fsck(store, read_data=True)
    assert report.ok, report.problems
    for i, (cid, expected) in enumerate(versions.items()):
        out = tmp / f"check-{time.monotonic_ns()}-{i}"
        get_copy(store, cid, out)
        assert read_tree(out) == expected
    store.close()


def _dataset(work: Path, n: int, seed: int) -> None:
    rnd = random.Random(seed)
    for i in range(n):
        write(work, f"d{i % 10}/f{seed}-{i}.bin", rnd.randbytes(rnd.randint(100, 40_000)))


@pytest.mark.parametrize("trial", range(TRIALS))
def test_commit_killed_at_random(tmp_path: Path, trial: int) -> None:
    work = tmp_path / "w"
    _setup([DS, "init", str(work)])
    _dataset(work, 200, seed=trial)
    _setup([DS, "add", "-A"], cwd=work)
    _setup([DS, "commit", "-m", "v1"], cwd=work)
    v1 = subprocess.run([DS, "log", "-n", "1", "--json"], cwd=work, capture_output=True, text=True)
    import json

    versions = {json.loads(v1.stdout)[0]["id"]: read_tree(work)}
    _dataset(work, 300, seed=1000 + trial)
    write(work, "big.bin", random.Random(trial).randbytes(3_000_000))
    # one process reads the new files, the next records them; either may be killed
    _kill_after(["sh", "-c", f'"{DS}" add -A && "{DS}" commit -m v2'], work,
                random.Random(trial).uniform(0.05, 1.2))
    _check(work, versions, tmp_path)
    _setup([DS, "add", "-A"], cwd=work)
    subprocess.run([DS, "commit", "-m", "v2 again"], cwd=work, capture_output=True)
    versions_now = read_tree(work)
    log = json.loads(subprocess.run([DS, "log", "--json"], cwd=work, capture_output=True, text=True).stdout)
    versions[log[0]["id"]] = versions_now
    _check(work, versions, tmp_path)


@pytest.mark.parametrize("trial", range(TRIALS))
def test_gc_killed_at_random(tmp_path: Path, trial: int) -> None:
    import json

    work = tmp_path / "w"
    _setup([DS, "init", str(work)])
    _dataset(work, 100, seed=trial)
    _setup([DS, "add", "-A"], cwd=work)
    _setup([DS, "commit", "-m", "v1"], cwd=work)
    _dataset(work, 100, seed=500 + trial)
    _setup([DS, "add", "-A"], cwd=work)
    _setup([DS, "commit", "-m", "v2"], cwd=work)
    _setup([DS, "squash", "HEAD", "-m", "only v2"], cwd=work)
    head = json.loads(subprocess.run([DS, "log", "--json"], cwd=work, capture_output=True, text=True).stdout)
    versions = {head[0]["id"]: read_tree(work)}
    _kill_after([DS, "gc"], work, random.Random(trial).uniform(0.05, 0.8))
    _check(work, versions, tmp_path)
    _setup([DS, "gc"], cwd=work)
    _check(work, versions, tmp_path)


@pytest.mark.parametrize("trial", range(TRIALS))
def test_push_killed_at_random(tmp_path: Path, trial: int) -> None:
    work = tmp_path / "w"
    _setup([DS, "init", str(work)])
    _dataset(work, 100, seed=trial)
    _setup([DS, "add", "-A"], cwd=work)
    _setup([DS, "commit", "-m", "v1"], cwd=work)
    _setup([DS, "remote", "add", "origin", str(tmp_path / "remote")], cwd=work)
    _setup([DS, "push"], cwd=work)
    v1 = read_tree(work)
    _dataset(work, 200, seed=700 + trial)
    write(work, "big.bin", random.Random(trial).randbytes(2_000_000))
    _setup([DS, "add", "-A"], cwd=work)
    _setup([DS, "commit", "-m", "v2"], cwd=work)
    _kill_after([DS, "push"], work, random.Random(trial).uniform(0.05, 1.0))
    # whatever the moment, a clone sees a complete version: the old one or the new one
    _setup([DS, "clone", str(tmp_path / "remote"), str(tmp_path / "c1")])
    assert read_tree(tmp_path / "c1") in (v1, read_tree(work))
    _setup([DS, "push"], cwd=work)
    _setup([DS, "clone", str(tmp_path / "remote"), str(tmp_path / "c2")])
    assert read_tree(tmp_path / "c2") == read_tree(work)


@pytest.mark.parametrize("trial", range(TRIALS))
def test_pull_killed_at_random(tmp_path: Path, trial: int) -> None:
    """A pull that takes remote packs whole (two of about 1.5 MB) killed at any moment:
    the store keeps its versions, and the next pull finishes byte-identical."""
    import json

    work, clone = tmp_path / "w", tmp_path / "c"
    _setup([DS, "init", str(work)])
    _setup([DS, "config", "store.pack_target", "1500000"], cwd=work)
    _dataset(work, 100, seed=trial)
    _setup([DS, "add", "-A"], cwd=work)
    _setup([DS, "commit", "-m", "v1"], cwd=work)
    _setup([DS, "remote", "add", "origin", str(tmp_path / "remote")], cwd=work)
    _setup([DS, "push"], cwd=work)
    _setup([DS, "clone", str(tmp_path / "remote"), str(clone)])
    v1 = json.loads(subprocess.run([DS, "log", "-n", "1", "--json"], cwd=clone, capture_output=True,
                                   text=True).stdout)[0]["id"]
    versions = {v1: read_tree(clone)}
    for i in range(2):
        write(work, f"big{i}.bin", random.Random(trial * 10 + i).randbytes(1_400_000))
    _dataset(work, 100, seed=900 + trial)
    _setup([DS, "add", "-A"], cwd=work)
    _setup([DS, "commit", "-m", "v2"], cwd=work)
    _setup([DS, "push"], cwd=work)
    _kill_after([DS, "pull"], clone, random.Random(trial).uniform(0.05, 1.0))
    _check(clone, versions, tmp_path)
    r = subprocess.run([DS, "pull"], cwd=clone, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert read_tree(clone) == read_tree(work)
    assert not list((clone / ".dsstore" / "packs").glob(".tmp-*.fetched"))
    _check(clone, versions, tmp_path)


def _ds(cwd: Path, *args: str) -> str:
    r = subprocess.run([DS, *args], cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, (args, r.stderr)
    return r.stdout


def _head(work: Path) -> str:
    import json

    return json.loads(_ds(work, "log", "-n", "1", "--json"))[0]["id"]


def _clean(work: Path, branch: str | None = "main") -> None:
    """`ds status`: nothing changed or staged, HEAD on ``branch``."""
    import json

    st = json.loads(_ds(work, "status", "--json"))
    assert st["branch"] == branch
    changes = [st[k] for k in ("added", "modified", "removed", "renamed")]
    assert changes + [st["staged"][k] for k in ("added", "modified", "removed", "renamed")] == [[]] * 8, st


def _no_temps(work: Path) -> None:
    assert not [p for p in work.rglob(".ds-tmp-*")], "a checkout's temp files are left"


@pytest.mark.parametrize("trial", range(TRIALS))
def test_switch_killed_at_random(tmp_path: Path, trial: int) -> None:
    """A switch between branches that share few files, killed while it writes: the store
    keeps both, and the same switch run again finishes with the branch's files exactly."""
    work = tmp_path / "w"
    _ds(tmp_path, "init", str(work))
    _dataset(work, 150, seed=trial)
    _ds(work, "add", "-A")
    _ds(work, "commit", "-m", "a")
    versions = {_head(work): read_tree(work)}
    _ds(work, "switch", "-c", "b")
    _ds(work, "rm", "-r", "-q", "d1", "d2", "d3")
    _dataset(work, 300, seed=300 + trial)
    write(work, "big.bin", random.Random(trial).randbytes(2_000_000))
    _ds(work, "add", "-A")
    _ds(work, "commit", "-m", "b")
    b = read_tree(work)
    versions[_head(work)] = b
    _ds(work, "switch", "main")
    _kill_after([DS, "switch", "b"], work, random.Random(trial).uniform(0.05, 0.8))
    _check(work, versions, tmp_path)
    _ds(work, "switch", "b")
    assert read_tree(work) == b
    _no_temps(work)
    _clean(work, "b")
    _check(work, versions, tmp_path)


@pytest.mark.parametrize("trial", range(TRIALS))
def test_squash_killed_at_random(tmp_path: Path, trial: int) -> None:
    """A squash killed at any moment: HEAD is the old lineage or the squashed root, both
    with the same files, every version stays readable, and squashing again finishes."""
    import json

    work = tmp_path / "w"
    _ds(tmp_path, "init", str(work))
    versions = {}
    for i in range(3):
        _dataset(work, 80, seed=100 * i + trial)
        _ds(work, "add", "-A")
        _ds(work, "commit", "-m", f"v{i}")
        versions[_head(work)] = read_tree(work)
    last = read_tree(work)
    _kill_after([DS, "squash", "HEAD", "-m", "one"], work, random.Random(trial).uniform(0.05, 0.6))
    _check(work, versions, tmp_path)
    assert read_tree(work) == last
    log = json.loads(_ds(work, "log", "--json"))
    assert len(log) in (1, 3)
    if len(log) == 3:
        _ds(work, "squash", "HEAD", "-m", "one")
    log = json.loads(_ds(work, "log", "--json"))
    assert len(log) == 1 and log[0]["parents"] == []
    versions[log[0]["id"]] = last
    _clean(work)
    _check(work, versions, tmp_path)


@pytest.mark.parametrize("trial", range(TRIALS))
def test_clone_killed_at_random(tmp_path: Path, trial: int) -> None:
    """A clone killed at any moment: cloning again into the same folder finishes it (or, if
    the kill came before there was any store, clones afresh; after the clone was done, it is
    refused as for any folder in use), byte-identical to the source."""
    work, clone = tmp_path / "w", tmp_path / "c"
    _ds(tmp_path, "init", str(work))
    _ds(work, "config", "store.pack_target", "1500000")
    _dataset(work, 200, seed=trial)
    write(work, "big.bin", random.Random(trial).randbytes(1_400_000))
    _ds(work, "add", "-A")
    _ds(work, "commit", "-m", "v1")
    _ds(work, "remote", "add", "origin", str(tmp_path / "remote"))
    _ds(work, "push")
    _kill_after([DS, "clone", str(tmp_path / "remote"), str(clone)], tmp_path,
                random.Random(trial).uniform(0.05, 0.7))
    done = (clone / ".dsstore").is_dir() and not (clone / ".dsstore" / "CLONING").exists()
    r = subprocess.run([DS, "clone", str(tmp_path / "remote"), str(clone)], cwd=tmp_path,
                       capture_output=True, text=True)
    refused = "exists and is not empty" in r.stderr
    assert (r.returncode, refused) == ((1, True) if done else (0, False)), r.stderr
    assert read_tree(clone) == read_tree(work)
    _no_temps(clone)
    _clean(clone)
    _check(clone, {_head(work): read_tree(work)}, tmp_path)


def _readable(work: Path, versions: dict[str, dict], out: Path) -> set[str]:
    """The versions `get` copies byte-identical (a damaged index refuses them all)."""
    from objstore.errors import DsError

    store, ok = Store.open(work), set()
    try:
        for i, (cid, expected) in enumerate(versions.items()):
            try:
                get_copy(store, cid, out / str(i))
            except DsError:
                continue
            assert read_tree(out / str(i)) == expected
            ok.add(cid)
    finally:
        store.close()
    return ok


@pytest.mark.parametrize("trial", range(TRIALS))
def test_repair_killed_at_random(tmp_path: Path, trial: int) -> None:
    """`ds fsck --repair` of damaged packs and a damaged fragment, killed at any moment:
    every version the store could read before stays readable (repair never makes anything
    worse), and the repair run again finishes with a store that passes fsck."""
    work = tmp_path / "w"
    _ds(tmp_path, "init", str(work))
    _ds(work, "config", "store.pack_target", "1048576")
    versions = {}
    for i in range(3):
        _dataset(work, 150, seed=100 * i + trial)
        _ds(work, "add", "-A")
        _ds(work, "commit", "-m", f"v{i}")
        versions[_head(work)] = read_tree(work)
    packs = sorted((work / ".dsstore" / "packs").glob("*/*.pack"))
    assert len(packs) > 3
    for pack in packs[::2]:  # the end magic: each one's records are found from the pack alone
        data = bytearray(pack.read_bytes())
        data[-3] ^= 0xFF
        pack.write_bytes(bytes(data))
    if trial % 2:  # a fragment's checksum too: every row still there, none trusted (get refuses)
        frag = sorted((work / ".dsstore" / "index").glob("*.idx"))[-1]
        data = bytearray(frag.read_bytes())
        data[-1] ^= 0xFF
        frag.write_bytes(bytes(data))
    readable = _readable(work, versions, tmp_path / "before")
    assert len(readable) == (0 if trial % 2 else len(versions))
    _kill_after([DS, "fsck", "--repair"], work, random.Random(trial).uniform(0.05, 0.8))
    assert _readable(work, versions, tmp_path / "after-kill") >= readable
    r = subprocess.run([DS, "fsck", "--repair"], cwd=work, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    _check(work, versions, tmp_path)


def _remote_damage(work: Path, url: str) -> tuple[set[bytes], set[str]]:
    """(chunks, metadata objects) of the store's versions that cannot be read on the remote,
    as a reader new to it finds them (the store's cache of the remote is dropped first)."""
    import shutil

    from objstore.remote import Remote
    from objstore.remote_fsck import _check

    store = Store.open(work)
    try:
        remote = Remote(store, url)
        shutil.rmtree(remote.cache)
        remote.cache.mkdir(parents=True)
        c = _check(remote, 1.0, thorough=True)
        unreadable = {cid for cid, loc in c.rows if (cid, loc) in c.bad_rows}
        return set(c.bad_chunks) | unreadable, c.missing_meta
    finally:
        store.close()


@pytest.mark.parametrize("trial", range(TRIALS))
def test_remote_repair_killed_at_random(tmp_path: Path, trial: int) -> None:
    """`ds fsck --remote origin --repair` of a remote that lost a pack and has a damaged pack,
    index fragment and metadata pack, killed at any moment: nothing readable there before
    is unreadable after, the kill's lock does not block the next run, and that run leaves
    the remote whole (a clone reads every file)."""
    from objstore.remote_fs import RemoteFS

    work, url = tmp_path / "w", str(tmp_path / "remote")
    _ds(tmp_path, "init", str(work))
    _ds(work, "config", "store.pack_target", "1048576")
    _ds(work, "remote", "add", "origin", url)
    for i in range(3):
        _dataset(work, 120, seed=100 * i + trial)
        _ds(work, "add", "-A")
        _ds(work, "commit", "-m", f"v{i}")
        _ds(work, "push")
    fs = RemoteFS(url, {})
    packs = sorted(r for r in fs.list("packs") if r.endswith(".pack"))
    fragments = sorted(fs.list("index"))
    metas = sorted(r for r in fs.list("meta") if r.endswith(".pack"))
    assert len(packs) >= 3 and len(fragments) == 3 and len(metas) == 3
    fs.delete([packs[0]])
    for rel, at in ((packs[1], 200), (fragments[trial % 3], 20), (metas[trial % 3], 30)):
        data = bytearray(fs.cat(rel))
        data[at] ^= 0xFF
        fs.put(rel, bytes(data))
    chunks, objects = _remote_damage(work, url)
    assert chunks and objects
    repair = [DS, "fsck", "--remote", "origin", "--read-data-subset", "1", "--repair"]
    _kill_after(repair, work, random.Random(trial).uniform(0.05, 1.0))
    chunks_now, objects_now = _remote_damage(work, url)
    assert chunks_now <= chunks and objects_now <= objects, "the killed repair made something worse"
    r = subprocess.run(repair, cwd=work, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _remote_damage(work, url) == (set(), set())
    _ds(tmp_path, "clone", url, str(tmp_path / "c"))
    assert read_tree(tmp_path / "c") == read_tree(work)


FINALIZE = """
import os, sys
from objstore import Dataset
ds = Dataset.get(dataset_id=sys.argv[1])
ds.finalize()
"""


@pytest.mark.parametrize("trial", range(TRIALS))
def test_finalize_killed_at_random(tmp_path: Path, trial: int, monkeypatch) -> None:
    from objstore import Dataset

    store = tmp_path / ".dsstore"
    monkeypatch.setenv("DSSTORE_DIR", str(store))
    _dataset(tmp_path / "data", 150, seed=trial)
    ds = Dataset.create(dataset_name="n", dataset_project="p")
    ds.add_files(tmp_path / "data")
    env = dict(os.environ, DSSTORE_DIR=str(store))
    _kill_after([sys.executable, "-c", FINALIZE, ds.id], tmp_path, random.Random(trial).uniform(0.05, 0.6),
                env)
    again = Dataset.get(dataset_id=ds.id)
    if not again.is_final():
        again.finalize()
    assert again.is_final()
    assert again.verify_dataset_hash() == []
    assert fsck(Store(store), read_data=True).ok
