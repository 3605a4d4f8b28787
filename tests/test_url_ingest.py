"""Adding the objects under a URL (moto's S3 server): the same version as adding the same
files from disk, here or on a Dask cluster of worker processes, including one killed
mid-task; the CLI's folder that is versioned but not checked out; the SDK's add_files."""

from __future__ import annotations

import json
import os
import random
import signal
from functools import partial
from pathlib import Path

import pytest

from objstore.errors import DsError
from objstore.store import Store
from objstore.url_ingest import SourceObject, UrlSource, add_url, plan_tasks
from objstore.worktree import add

from .conftest import ds, write


def _files(seed: int = 7, count: int = 150) -> dict[str, bytes]:
    """Small files of every size up to a few chunks' minimum, empty ones, a text file and a
    random one that each cut into several chunks."""
    rng = random.Random(seed)
    out = {f"d{i % 5}/s{i % 3}/f{i}.bin": rng.randbytes(rng.choice([0, 1, 500, 4000, 97_000, 200_000]))
           for i in range(count)}
    out["big/random.bin"] = rng.randbytes(6_000_000)
    out["big/table.csv"] = b"".join(b"%d,%d,some text\n" % (i, i * 7) for i in range(400_000))
    out["top.txt"] = b"at the root\n"
    return out


@pytest.fixture
def bucket(moto_s3, monkeypatch) -> tuple[str, dict, dict[str, bytes]]:
    """(URL of a prefix holding _files(), storage options, the files)."""
    import s3fs

    name = moto_s3.new_bucket()
    files = _files()
    s3fs.S3FileSystem(**moto_s3.options).pipe({f"{name}/src/{k}": v for k, v in files.items()})
    return f"s3://{name}/src", moto_s3.options, files


def _local_tree(tmp_path: Path, files: dict[str, bytes], folder: str) -> str:
    """The stage's tree after `ds add` of the same files, on disk under ``folder``."""
    root = tmp_path / "local"
    root.mkdir()
    for rel, data in files.items():
        write(root, f"{folder}/{rel}", data, 0o644)
    s = Store.init(root)
    try:
        add(s, [folder], cwd=str(root))
        return s.staged_tree()
    finally:
        s.close()


def _entries(store: Store, tree: str) -> dict:
    """path -> entry of a staged tree: what a resumed add must agree on with a fresh one (its
    tree id may differ: a folder edited twice keeps its manifest as a base and additions)."""
    from objstore.tree_edit import TreeEditor

    editor = TreeEditor(store.meta, tree)
    return {p: editor.get(p) for p in editor.files_under("")}


def _fresh_entries(tmp_path: Path, url: str, options: dict) -> dict:
    fresh = Store.init(tmp_path / "fresh")
    try:
        add_url(fresh, url, "raw", options)
        return _entries(fresh, fresh.staged_tree())
    finally:
        fresh.close()


def test_listing_and_plan(bucket):
    url, options, files = bucket
    objects = UrlSource(url, options).list()
    assert [o.rel for o in objects] == sorted(files)
    assert {o.rel: o.size for o in objects} == {k: len(v) for k, v in files.items()}
    assert all(o.token for o in objects)  # an ETag: what tells a replaced object
    tasks = plan_tasks(objects, task_bytes=1_000_000, task_files=40)
    assert [o for t in tasks for o in t] == objects  # every object once, in path order
    for t in tasks:
        assert len(t) == 1 or (len(t) <= 40 and sum(o.size for o in t) <= 1_000_000)
    assert [o.rel for o in tasks[0:1][0]] and any(len(t) == 1 and t[0].size > 1_000_000 for t in tasks)


def test_plan_of_nothing_and_of_one_large():
    assert plan_tasks([]) == []
    big = SourceObject("a", 10, "t")
    assert plan_tasks([big, SourceObject("b", 1, "t")], task_bytes=5) == [[big], [SourceObject("b", 1, "t")]]


def test_url_add_is_the_same_version_as_a_local_add(bucket, store, tmp_path):
    url, options, files = bucket
    report = add_url(store, url, "raw", options)
    assert report.objects == report.staged == len(files)
    assert report.bytes_read == sum(len(v) for v in files.values())
    assert store.staged_tree() == _local_tree(tmp_path, files, "raw")
    # the bytes are in the store: read back through a copy of the version
    from objstore.get import get_copy

    store.commit("from the bucket")
    get_copy(store, "HEAD", str(tmp_path / "out"))
    for rel, data in files.items():
        assert (tmp_path / "out" / "raw" / rel).read_bytes() == data


def test_url_add_again_stages_only_the_changes(bucket, store, moto_s3):
    import s3fs

    url, options, files = bucket
    add_url(store, url, "raw", options)
    store.commit("first")
    fs = s3fs.S3FileSystem(**moto_s3.options)
    root = url[len("s3://"):]
    fs.rm(f"{root}/d1", recursive=True)
    fs.pipe({f"{root}/new.txt": b"new", f"{root}/top.txt": b"changed\n"})
    report = add_url(store, url, "raw", options)
    gone = [k for k in files if k.startswith("d1/")]
    assert report.removed == len(gone) and report.staged == 2
    # only the new and the replaced object were read: the rest have their size and ETag of last time
    assert report.bytes_read == len(b"new") + len(b"changed\n")
    assert report.unchanged == len(files) - len(gone) - 1
    from objstore.tree_edit import TreeEditor

    editor = TreeEditor(store.meta, store.staged_tree())
    assert editor.get("raw/new.txt") is not None and editor.get("raw/d1/f1.bin") is None
    assert editor.get("raw/top.txt").size == len(b"changed\n")


def _add_failing_once(store: Store, url: str, options: dict, files: dict, monkeypatch, **kwargs) -> list[str]:
    """An add whose read of one object fails midway (a connection reset), then the stage's
    files under raw/: what the failed add kept."""
    from objstore import url_ingest as ui
    from objstore.tree_edit import TreeEditor

    real, broken = ui.UrlReader.read, sorted(files)[100]

    def failing(self, job):
        if job.path == broken:
            raise OSError("connection reset")
        return real(self, job)
    monkeypatch.setattr(ui.UrlReader, "read", failing)
    with pytest.raises(DsError, match="connection reset.*goes on where it stopped"):
        add_url(store, url, "raw", options, **kwargs)
    monkeypatch.setattr(ui.UrlReader, "read", real)
    assert not list((store.path / "cache" / "sources").glob("*.listing"))  # the listing had completed
    kept = TreeEditor(store.meta, store.staged_tree()).files_under("raw")
    assert 0 < len(kept) < len(files) and f"raw/{broken}" not in kept
    return kept


def test_a_failed_add_keeps_what_it_stored_and_the_next_run_goes_on(bucket, store, tmp_path, monkeypatch):
    url, options, files = bucket
    kept = _add_failing_once(store, url, options, files, monkeypatch)
    report = add_url(store, url, "raw", options)
    assert report.unchanged == len(kept)  # not read again
    assert report.bytes_read == sum(len(files[p[4:]]) for p in set(f"raw/{k}" for k in files) - set(kept))
    assert _entries(store, store.staged_tree()) == _fresh_entries(tmp_path, url, options)


def test_a_failed_add_into_a_remote_keeps_what_reached_it(bucket, store, tmp_path, moto_s3, monkeypatch):
    url, options, files = bucket
    _remote_store(store, f"s3://{moto_s3.new_bucket()}/store", moto_s3.options)
    kept = _add_failing_once(store, url, options, files, monkeypatch, remote="origin")
    report = add_url(store, url, "raw", options, remote="origin")
    assert report.unchanged == len(kept)
    assert _entries(store, store.staged_tree()) == _fresh_entries(tmp_path, url, options)
    store.commit("resumed")
    from objstore.remote import push
    from objstore.remote_fsck import fsck_remote

    assert push(store, "origin").chunks == 0
    assert fsck_remote(store, "origin", read_data_subset=1.0)["ok"]


def test_object_names_that_cannot_be_paths_are_refused(moto_s3, store):
    import s3fs

    name = moto_s3.new_bucket()
    s3fs.S3FileSystem(**moto_s3.options).pipe({f"{name}/src/ok.txt": b"1", f"{name}/src/a/../b": b"2"})
    with pytest.raises(DsError, match="cannot be a path"):
        add_url(store, f"s3://{name}/src", "raw", moto_s3.options)
    assert store.staged_tree() == store.head_tree()  # nothing staged


def test_missing_prefix_is_a_clear_error(moto_s3, store):
    with pytest.raises(DsError, match="no such object or prefix"):
        add_url(store, f"s3://{moto_s3.new_bucket()}/nothing", "raw", moto_s3.options)


def test_single_object_url(bucket, store):
    url, options, files = bucket
    report = add_url(store, f"{url}/top.txt", "one", options)
    assert report.objects == 1
    from objstore.tree_edit import TreeEditor

    assert TreeEditor(store.meta, store.staged_tree()).get("one/top.txt").size == len(files["top.txt"])


def _kill_once(marker: str) -> None:
    """Kill this worker process the first time any task gets here: its packs are written,
    its index fragment not yet (the worst moment to lose a worker)."""
    if not os.path.exists(marker):
        Path(marker).write_text("killed")
        os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture
def pickled_by_value():
    """Workers cannot import this test module: its functions travel by value."""
    import sys

    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_dask_cluster_builds_the_same_version_despite_a_killed_worker(bucket, store, tmp_path, monkeypatch,
                                                                      pickled_by_value):
    pytest.importorskip("distributed")
    import objstore.url_ingest as ui

    url, options, files = bucket
    monkeypatch.setattr(ui, "TASK_BYTES", 2_000_000)  # several tasks for two workers
    marker = tmp_path / "killed"
    report = add_url(store, url, "raw", options, cluster="local:2",
                     after_packs=partial(_kill_once, str(marker)))
    assert marker.exists()  # a worker died mid-task, and the task ran again elsewhere
    assert report.tasks >= 4 and report.staged == len(files)
    assert store.staged_tree() == _local_tree(tmp_path, files, "raw")
    store.commit("on the cluster")
    from objstore.maintenance import fsck

    assert fsck(store, read_data=True).ok
    from objstore.get import get_copy

    get_copy(store, "HEAD", str(tmp_path / "out"))
    assert all((tmp_path / "out" / "raw" / rel).read_bytes() == data for rel, data in files.items())


def test_bad_cluster_spec(bucket, store):
    pytest.importorskip("distributed")
    url, options, _files = bucket
    with pytest.raises(DsError, match="local:N"):
        add_url(store, url, "raw", options, cluster="local:zero")
    assert store.staged_tree() == store.head_tree()


# -- the command line --------------------------------------------------------------------------

def _env(moto_s3) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "DSSTORE_DIR"} | {
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_CONFIG_FILE": os.devnull}


def test_cli_url_folder_is_versioned_not_checked_out(bucket, work, moto_s3, tmp_path):
    import json

    url, options, files = bucket
    env = _env(moto_s3)
    ds("init", "-q", cwd=work, env=env)
    write(work, "notes.txt", "mine")
    ds("add", "notes.txt", cwd=work, env=env)
    out = ds("add", url, "-o", f"endpoint_url={moto_s3.endpoint}", "--json", cwd=work, env=env)
    got = json.loads(out.stdout)
    assert got["folder"] == "src" and got["staged"] == got["objects"] == len(files)
    assert not (work / "src").exists()  # no copy in the working folder
    ds("commit", "-m", "data from the bucket", cwd=work, env=env)
    assert "Nothing changed" in ds("status", cwd=work, env=env).stdout
    ds("checkout", "-q", "HEAD", cwd=work, env=env)
    assert not (work / "src").exists()  # checkout leaves it in the store
    listed = ds("ls", "src/big", cwd=work, env=env).stdout.split()
    assert listed == ["src/big/random.bin", "src/big/table.csv"]
    ds("get", "HEAD", str(tmp_path / "copy"), "--include", "src/**", cwd=work, env=env)
    assert (tmp_path / "copy" / "src" / "big" / "table.csv").read_bytes() == files["big/table.csv"]
    assert ds("fsck", cwd=work, env=env).returncode == 0


def test_cli_url_errors(bucket, work, moto_s3):
    url, _options, _files = bucket
    env = _env(moto_s3)
    ds("init", "-q", cwd=work, env=env)
    endpoint = f"endpoint_url={moto_s3.endpoint}"
    r = ds("add", "notes.txt", "--to", "x", cwd=work, env=env, check=False)
    assert r.returncode == 2 and "go with a URL" in r.stderr
    r = ds("add", url, url, "-o", endpoint, cwd=work, env=env, check=False)
    assert r.returncode == 2 and "one URL at a time" in r.stderr
    write(work, "raw/mine.txt", "in the way")
    r = ds("add", url, "--to", "raw", "-o", endpoint, cwd=work, env=env, check=False)
    assert r.returncode == 1 and "raw exists in the working folder" in r.stderr
    r = ds("add", url + "-nothing", "-o", endpoint, cwd=work, env=env, check=False)
    assert r.returncode == 1 and "no such object or prefix" in r.stderr
    r = ds("add", url, "--dask", "local:0", "-o", endpoint, cwd=work, env=env, check=False)
    assert r.returncode == 1 and "local:N" in r.stderr
    assert "Staged" not in ds("status", cwd=work, env=env).stdout  # no failure staged anything


# -- the SDK -----------------------------------------------------------------------------------

def test_sdk_add_files_from_a_url(bucket, tmp_path, monkeypatch, moto_s3):
    from objstore import Dataset

    url, _options, files = bucket
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "sdk" / ".dsstore"))
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_s3.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    d = Dataset.create(dataset_name="from-bucket", dataset_project="p")
    added = d.add_files(url, wildcard="*.csv", dataset_path="tables")
    assert added == 1
    assert d.add_files(url) == len(files)
    assert d.finalize() is True
    copy = Path(Dataset.get(dataset_id=d.id).get_local_copy())
    assert (copy / "tables" / "big" / "table.csv").read_bytes() == files["big/table.csv"]
    assert all((copy / rel).read_bytes() == data for rel, data in files.items())
    with pytest.raises(DsError, match="dask="):
        Dataset.create(dataset_name="x", dataset_project="p").add_files(str(tmp_path), dask="local:1")


# -- straight to a remote ------------------------------------------------------------------------

def _remote_store(store: Store, url: str, options: dict) -> None:
    from dataclasses import replace

    store.set_config(replace(store.config, remote="origin",
                             remotes={"origin": {"url": url, "options": options}}))


def test_into_remote_writes_no_pack_here_and_push_sends_only_the_version(bucket, store, tmp_path, moto_s3):
    from objstore.maintenance import fsck
    from objstore.remote import clone, push
    from objstore.remote_fsck import fsck_remote

    url, options, files = bucket
    _remote_store(store, f"s3://{moto_s3.new_bucket()}/store", moto_s3.options)
    local_packs = sorted(p.name for p in (store.path / "packs").rglob("*.pack"))
    report = add_url(store, url, "raw", options, remote="origin")
    assert report.staged == len(files) and report.bytes_new > 0
    assert sorted(p.name for p in (store.path / "packs").rglob("*.pack")) == local_packs  # nothing here
    assert store.staged_tree() == _local_tree(tmp_path, files, "raw")
    store.commit("straight to the remote")
    assert fsck(store).ok and fsck(store).remote_only > 0
    sent = push(store, "origin")
    assert sent.chunks == 0  # the chunks were there already: only the version went
    assert fsck_remote(store, "origin", read_data_subset=1.0)["ok"]
    copy, _t = clone(store.config.remotes["origin"]["url"], str(tmp_path / "clone"), options=moto_s3.options)
    try:  # a clone elsewhere checks the folder out: its bytes come from the remote
        assert all((tmp_path / "clone" / "raw" / rel).read_bytes() == data for rel, data in files.items())
    finally:
        copy.close()


def test_into_remote_requests_grow_with_bytes_over_pack_size(bucket, store, moto_s3, monkeypatch):
    from dataclasses import replace

    from objstore import remote_repo

    url, options, files = bucket
    store.set_config(replace(store.config, pack_target=2 * 1024 * 1024))
    _remote_store(store, f"s3://{moto_s3.new_bucket()}/store", moto_s3.options)
    opened = []
    real = remote_repo.RemoteRepo.__init__

    def spy(self, *args, **kwargs):
        real(self, *args, **kwargs)
        opened.append(self)
    monkeypatch.setattr(remote_repo.RemoteRepo, "__init__", spy)
    report = add_url(store, url, "raw", options, remote="origin")
    fs = opened[0].fs
    packs = len([r for r in fs.list("packs") if r.endswith(".pack")])
    stored = sum(size for r, (size, _t) in fs.list_detail("packs").items())
    assert packs >= stored // (2 * 1024 * 1024) and packs <= stored // (2 * 1024 * 1024) + 2
    # per pack a check and an upload; then one fragment, the config, the lease and the index
    assert fs.requests["put"] <= packs + 6 and fs.request_count <= 2 * packs + 20, dict(fs.requests)
    assert report.bytes_read == sum(len(v) for v in files.values())


def test_into_remote_on_a_cluster_with_a_killed_worker(bucket, store, tmp_path, moto_s3, monkeypatch,
                                                       pickled_by_value):
    pytest.importorskip("distributed")
    import objstore.url_ingest as ui
    from objstore.remote import push
    from objstore.remote_fsck import fsck_remote

    url, options, files = bucket
    _remote_store(store, f"s3://{moto_s3.new_bucket()}/store", moto_s3.options)
    monkeypatch.setattr(ui, "TASK_BYTES", 3_000_000)
    marker = tmp_path / "killed"
    report = add_url(store, url, "raw", options, cluster="local:2", remote="origin",
                     after_packs=partial(_kill_once, str(marker)))
    assert marker.exists() and report.tasks >= 3
    assert store.staged_tree() == _local_tree(tmp_path, files, "raw")
    assert not list((store.path / "packs").rglob("*.pack"))
    store.commit("on the cluster, into the remote")
    assert push(store, "origin").chunks == 0
    assert fsck_remote(store, "origin", read_data_subset=1.0)["ok"]


def test_a_worker_on_another_machine_writes_to_the_remote_through_a_scratch_store(bucket, store, moto_s3):
    from dataclasses import replace

    from objstore.remote_repo import RemoteRepo
    from objstore.url_ingest import Target, ingest_task

    url, options, _files = bucket
    _remote_store(store, f"s3://{moto_s3.new_bucket()}/store", moto_s3.options)
    repo = RemoteRepo(store, "origin")
    repo.check_config(create=True)
    objects = UrlSource(url, options).list()[:20]
    elsewhere = replace(Target.of(store, repo), host="another-machine")
    result = ingest_task(elsewhere, url, options, objects)
    assert sorted(rel for rel, _e in result.entries) == [o.rel for o in objects]
    repo.forget_index()
    assert all(repo.has(chunk_id) for _rel, e in result.entries for chunk_id, _n in e.chunk_list())
    assert not list((store.path / "packs").rglob("*.pack"))  # nothing came here
    with pytest.raises(DsError, match="cannot write to the store on"):
        ingest_task(replace(Target.of(store), host="another-machine"), url, options, objects)


# -- at scale ----------------------------------------------------------------------------------
# The full check is 20,000 objects: DS_URL_SCALE_OBJECTS=20000;
# the default suite runs the same test on 1,000.
SCALE_OBJECTS = int(os.environ.get("DS_URL_SCALE_OBJECTS", "1000"))


def test_many_objects_on_two_workers_into_a_remote(moto_s3, store, tmp_path, monkeypatch, pickled_by_value):
    pytest.importorskip("distributed")
    from dataclasses import replace

    import s3fs

    import objstore.url_ingest as ui
    from objstore.remote_fsck import fsck_remote

    rng = random.Random(20_000)
    def content(i: int) -> bytes:  # the S set's shape: 1-8 KiB, half text, half random
        if i % 2:
            return (b"line %d of a text file\n" % i) * rng.randint(40, 350)
        return rng.randbytes(rng.randint(1024, 8192))
    files = {f"f{i % 200:03d}/{i}.{'txt' if i % 2 else 'bin'}": content(i) for i in range(SCALE_OBJECTS)}
    files["large/random.bin"] = rng.randbytes(12 * 1024 * 1024)
    files["large/table.csv"] = b"".join(b"%d,%d,%x\n" % (i, i * 3, i * 7) for i in range(900_000))
    name = moto_s3.new_bucket()
    s3fs.S3FileSystem(**moto_s3.options).pipe({f"{name}/src/{k}": v for k, v in files.items()})
    pack_target = 4 * 1024 * 1024
    store.set_config(replace(store.config, pack_target=pack_target))
    _remote_store(store, f"s3://{moto_s3.new_bucket()}/store", moto_s3.options)
    monkeypatch.setattr(ui, "TASK_BYTES", 8 * 1024 * 1024)
    marker = tmp_path / "killed"
    report = add_url(store, f"s3://{name}/src", "raw", moto_s3.options, cluster="local:2", remote="origin",
                     after_packs=partial(_kill_once, str(marker)))
    assert marker.exists() and report.staged == len(files)
    assert store.staged_tree() == _local_tree(tmp_path, files, "raw")
    store.commit("at scale")
    from objstore.remote import push

    push(store, "origin")
    assert fsck_remote(store, "origin")["ok"]
    # the target's objects grow with the bytes stored over the pack size, not with the files
    target = store.config.remotes["origin"]["url"].removeprefix("s3://")
    listing = s3fs.S3FileSystem(**moto_s3.options).find(target, detail=True)
    packs = [i["size"] for p, i in listing.items() if p.endswith(".pack")]
    fragments = [p for p in listing if "/index/" in p]
    assert len(fragments) <= report.tasks + 2  # one per task that finished (a push adds none here)
    assert len(packs) <= sum(packs) // pack_target + report.tasks + 1


def _fail() -> None:
    raise OSError("worker lost after writing its packs")


def test_packs_of_a_task_that_died_before_its_fragment_are_reclaimed_by_remote_gc(bucket, store, moto_s3):
    from objstore.remote import push
    from objstore.remote_fsck import fsck_remote
    from objstore.remote_gc import gc_remote
    from objstore.remote_repo import RemoteRepo
    from objstore.url_ingest import Target, ingest_task

    url, options, files = bucket
    _remote_store(store, f"s3://{moto_s3.new_bucket()}/store", moto_s3.options)
    add_url(store, f"{url}/top.txt", "kept", options, remote="origin")
    store.commit("one file")
    push(store, "origin")
    repo = RemoteRepo(store, "origin")
    live = set(repo.packs(repo.listing()))
    with pytest.raises(OSError, match="worker lost"):
        ingest_task(Target.of(store, repo), url, options, UrlSource(url, options).list(), after_packs=_fail)
    orphans = set(repo.packs(repo.listing())) - live
    assert orphans  # written, and named by no fragment
    young = gc_remote(store, "origin")  # within the grace period: kept (a task may still name them)
    assert young.packs_deleted == 0 and orphans <= set(repo.packs(repo.listing()))
    report = gc_remote(store, "origin", grace_seconds=0)
    assert report.packs_deleted >= len(orphans)
    assert set(repo.packs(repo.listing())) == live
    assert fsck_remote(store, "origin", read_data_subset=1.0)["ok"]


def test_a_large_object_is_read_in_bounded_memory(moto_s3, work):
    """One object larger than the bound: read whole, the process would pass it."""
    import s3fs

    from .test_resources import LARGE_RSS_MIB, MiB, ok, run_ds

    size = (LARGE_RSS_MIB + 64) * MiB
    name = moto_s3.new_bucket()
    fs = s3fs.S3FileSystem(**moto_s3.options)
    with fs.open(f"{name}/big/one.bin", "wb", block_size=64 * MiB) as f:
        block = random.Random(5).randbytes(16 * MiB)
        for i in range(size // len(block)):
            f.write(bytes([i]) + block[1:])  # every block differs: no dedup inside the object
    env = _env(moto_s3)
    ds("init", "-q", cwd=work, env=env)
    args = ["add", f"s3://{name}/big", "-o", f"endpoint_url={moto_s3.endpoint}", "--json"]
    run = ok(run_ds(args, work, env), "add from the URL")
    print(f"peak RSS of ds add of a {size // MiB} MiB object: {run.peak_mib:.0f} MiB")
    assert json.loads(run.stdout)["bytes_read"] == size
    assert run.peak_mib < LARGE_RSS_MIB


# -- what a listing or a user can give -------------------------------------------------------------

def test_an_object_that_is_also_a_folder_is_refused(moto_s3, store):
    import s3fs

    name = moto_s3.new_bucket()
    s3fs.S3FileSystem(**moto_s3.options).pipe({f"{name}/src/a": b"file", f"{name}/src/a/b": b"under it"})
    with pytest.raises(DsError, match="'a' is also a folder of 'a/b'"):
        add_url(store, f"s3://{name}/src", "raw", moto_s3.options)
    assert store.staged_tree() == store.head_tree()


def test_folder_markers_are_passed_over(moto_s3, store):
    import s3fs

    name = moto_s3.new_bucket()
    fs = s3fs.S3FileSystem(**moto_s3.options)
    fs.pipe({f"{name}/src/sub/": b"", f"{name}/src/sub/x.txt": b"x", f"{name}/src/": b""})
    report = add_url(store, f"s3://{name}/src", "raw", moto_s3.options)
    from objstore.tree_edit import TreeEditor

    assert report.staged == 1
    assert TreeEditor(store.meta, store.staged_tree()).files_under("raw") == ["raw/sub/x.txt"]


def test_a_malformed_cluster_changes_nothing(bucket, store):
    url, options, _files = bucket
    before = store.path.joinpath("config").read_bytes()
    for spec in ("local:0", "local:two", "nowhere"):
        with pytest.raises(DsError, match="local:N"):
            add_url(store, url, "raw", options, cluster=spec)
    assert store.path.joinpath("config").read_bytes() == before and store.staged_tree() == store.head_tree()


def test_a_folder_name_with_glob_characters_is_left_out_exactly(bucket, store, work):
    from objstore.worktree import status

    url, options, _files = bucket
    write(work, "raw1/mine.txt", "checked out")
    add_url(store, url, "raw[1]", options)
    assert store.config.sparse == ["/*", "!/raw\\[1\\]/**"]
    assert store.in_scope()("raw1/mine.txt") and not store.in_scope()("raw[1]/top.txt")
    store.commit("a folder with brackets")
    st = status(store)  # the bucket's folder is not called deleted; the look-alike folder is seen
    assert st.added == ["raw1/mine.txt"] and not st.removed and not st.modified and not st.staged


def test_gc_before_the_push_is_repaired_by_adding_again(bucket, store, moto_s3):
    from objstore.remote import push
    from objstore.remote_fsck import fsck_remote
    from objstore.remote_gc import gc_remote

    url, options, files = bucket
    _remote_store(store, f"s3://{moto_s3.new_bucket()}/store", moto_s3.options)
    add_url(store, url, "raw", options, remote="origin")
    store.commit("not pushed yet")
    gc_remote(store, "origin", grace_seconds=0)  # past its grace: nothing named the add's packs
    with pytest.raises(DsError, match="add that URL again"):
        push(store, "origin")
    report = add_url(store, url, "raw", options, remote="origin")
    # every object with bytes is read again (an empty one has no chunk to lose)
    assert report.unchanged == sum(1 for v in files.values() if not v)
    assert report.bytes_read == sum(len(v) for v in files.values())
    assert push(store, "origin").chunks == 0
    assert fsck_remote(store, "origin", read_data_subset=1.0)["ok"]


def test_cli_storage_errors_name_the_fix(bucket, work, moto_s3, tmp_path):
    url, _options, _files = bucket
    env = {k: v for k, v in _env(moto_s3).items() if not k.startswith("AWS_")} | {
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true"}
    ds("init", "-q", cwd=work, env=env)
    r = ds("add", url, "-o", f"endpoint_url={moto_s3.endpoint}", cwd=work, env=env, check=False)
    assert r.returncode == 1 and "no usable credentials" in r.stderr and "Traceback" not in r.stderr
    r = ds("add", url, "-o", "endpoint_url=http://127.0.0.1:9", cwd=work, env=_env(moto_s3), check=False)
    assert r.returncode == 1 and "cannot reach the storage" in r.stderr and "Traceback" not in r.stderr


def test_cli_to_is_a_path_from_the_current_folder(bucket, work, moto_s3):
    url, _options, files = bucket
    env = _env(moto_s3)
    ds("init", "-q", cwd=work, env=env)
    (work / "sub").mkdir()
    ds("add", url, "--to", "data", "-o", f"endpoint_url={moto_s3.endpoint}", cwd=work / "sub", env=env)
    ds("commit", "-m", "under sub", cwd=work, env=env)
    listed = ds("ls", "sub/data/big", cwd=work, env=env).stdout.split()
    assert listed == ["sub/data/big/random.bin", "sub/data/big/table.csv"]


def test_restore_and_checkout_of_the_folder_left_out_point_to_get(bucket, store, work):
    from objstore.worktree import checkout, restore

    url, options, _files = bucket
    add_url(store, url, "raw", options)
    store.commit("from the bucket")
    for call in (lambda: restore(store, ["raw"], cwd=str(work)),
                 lambda: restore(store, ["raw/top.txt"], source="HEAD", cwd=str(work)),
                 lambda: checkout(store, "HEAD", ["raw/big"], cwd=str(work))):
        with pytest.raises(DsError, match="outside the checked-out part.*ds get"):
            call()
    assert not (work / "raw").exists()
    from objstore.worktree import move

    with pytest.raises(DsError, match="outside the checked-out part.*another --to"):
        move(store, "raw", "moved", cwd=str(work))
    write(work, "mine.txt", "local")
    store_path = "mine.txt"
    from objstore.worktree import add

    add(store, [store_path], cwd=str(work))
    store.commit("and a local file")
    (work / "mine.txt").write_text("changed")
    restore(store, ["."], cwd=str(work))  # the whole folder: the part left out stays out
    assert (work / "mine.txt").read_text() == "local" and not (work / "raw").exists()


def test_a_small_object_is_one_get_without_a_head(bucket, monkeypatch):
    """On a worker nothing is cached from the listing: asking the size first would double
    the requests (s3fs splits a read it may run in parallel)."""
    import s3fs

    from objstore.ingest import Job
    from objstore.scan import Stat
    from objstore.url_ingest import UrlReader

    url, options, files = bucket
    source = UrlSource(url, options)
    small = [o for o in source.list() if 0 < o.size < 50_000][:10]
    source.fs.invalidate_cache()
    heads = []
    real = s3fs.S3FileSystem._info

    async def counting(self, path, *args, **kwargs):
        heads.append(path)
        return await real(self, path, *args, **kwargs)
    monkeypatch.setattr(s3fs.S3FileSystem, "_info", counting)
    reader = UrlReader(source)
    for o in small:
        assert reader.read(Job(o.rel, Stat(o.size, 0, 0, 0), src=source.path(o.rel))) == files[o.rel]
    assert heads == []


def test_the_no_op_status_stays_quick_with_a_folder_left_out(bucket, store, work, monkeypatch):
    from dataclasses import replace

    from objstore.quickstatus import quick_clean
    from objstore.worktree import add, status

    monkeypatch.delenv("DSSTORE_DIR", raising=False)
    url, options, _files = bucket
    write(work, "local/a.txt", "a")
    add(store, ["local"], cwd=str(work))
    add_url(store, url, "raw", options)
    store.commit("a local folder and one from the bucket")
    assert not quick_clean(str(work))  # no full status has proved it clean yet
    assert status(store).clean
    assert quick_clean(str(work))  # now the no-op status need not open the version
    write(work, "local/b.txt", "new")
    assert not quick_clean(str(work)) and status(store).added == ["local/b.txt"]
    (work / "local" / "b.txt").unlink()
    assert status(store).clean and quick_clean(str(work))
    store.set_config(replace(store.config, sparse=["/*"]))  # another checked-out part
    assert not quick_clean(str(work))
    assert status(store).removed  # raw/ is in the part now, and not in the folder


def _task(kind: str, started: str, done: str) -> str:
    """``slow``: marks that it runs, works a while, marks that it is done. ``fails``: waits
    (bounded) until the slow one runs, then raises."""
    import time

    if kind == "slow":
        Path(started).write_text("running")
        time.sleep(1.0)
        Path(done).write_text("done")
        return kind
    for _ in range(200):
        if os.path.exists(started):
            break
        time.sleep(0.05)
    raise ValueError("a task that fails")


def test_a_failed_task_keeps_its_error_and_running_tasks_finish_first(tmp_path, pickled_by_value):
    pytest.importorskip("distributed")
    from objstore.cluster import run_tasks

    started, done = str(tmp_path / "started"), str(tmp_path / "done")
    with pytest.raises(ValueError, match="a task that fails"):  # the task's own error, not a cancellation
        run_tasks("local:2", _task, [("slow", started, done), ("fails", started, done)])
    # a task that started was waited for (nothing writes after the caller gave up); one that
    # had not started never starts
    assert os.path.exists(done) or not os.path.exists(started)


def test_restore_from_a_version_leaves_the_part_not_checked_out_alone(bucket, store, work):
    from objstore.worktree import add, restore

    url, options, _files = bucket
    write(work, "data/mine.txt", "local")
    add(store, ["data"], cwd=str(work))
    add_url(store, url, "data/scans", options)
    store.commit("a local file and a folder from the bucket under one folder")
    write(work, "data/scans/note.txt", "untracked, the user's")  # in the folder left out
    report = restore(store, ["data"], source="HEAD", cwd=str(work))
    assert report.restored == ["data/mine.txt"] and report.removed == []
    assert (work / "data/scans/note.txt").read_text() == "untracked, the user's"


def test_a_file_where_the_folder_must_go_is_refused(bucket, store, work):
    from objstore.worktree import add

    url, options, _files = bucket
    write(work, "data", "a file")
    add(store, ["data"], cwd=str(work))
    before = store.staged_tree()
    for target in ("data", "data/raw"):
        with pytest.raises(DsError, match="data is a file, where the URL's folder"):
            add_url(store, url, target, options)
    assert store.staged_tree() == before and (work / "data").read_text() == "a file"


def test_a_clone_whose_include_takes_in_some_of_the_folder(bucket, store, work):
    from dataclasses import replace

    from objstore.worktree import status

    url, options, files = bucket
    store.set_config(replace(store.config, sparse=["*.csv"]))  # as `ds clone --include '*.csv'` leaves it
    add_url(store, url, "raw", options)
    assert store.config.sparse == ["*.csv", "!/raw/**"]  # raw/big/table.csv would be checked out
    store.commit("from the bucket")
    st = status(store)
    assert not st.removed and not st.staged


def test_an_interrupted_listing_goes_on_from_the_folders_not_yet_listed(bucket, store, tmp_path, monkeypatch):
    import s3fs

    url, options, files = bucket
    real = s3fs.S3FileSystem.find
    calls: list[str] = []
    faulty = [True]

    def find(self, path, *args, **kwargs):
        calls.append(path.rstrip("/").rpartition("/")[2])
        if path.rstrip("/").endswith("/d3") and faulty[0]:  # the first listing loses d3
            raise OSError("connection reset")
        return real(self, path, *args, **kwargs)
    monkeypatch.setattr(s3fs.S3FileSystem, "find", find)
    with pytest.raises(DsError, match="listing failed"):
        add_url(store, url, "raw", options)
    assert sorted(calls) == ["big", "d0", "d1", "d2", "d3", "d4"]  # each top-level folder, side by side
    journal = next((store.path / "cache" / "sources").glob("*.listing"))
    calls.clear()
    faulty[0] = False
    report = add_url(store, url, "raw", options)
    assert calls == ["d3"]  # the folders listed before were not listed again
    assert report.staged == len(files) and not journal.exists()
    assert _entries(store, store.staged_tree()) == _fresh_entries(tmp_path, url, options)


def test_a_running_scheduler_by_its_address(bucket, store, tmp_path, monkeypatch):
    """--dask tcp://HOST:PORT joins a scheduler that runs already (here a local one on loopback)."""
    distributed = pytest.importorskip("distributed")
    from objstore import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 2.0)
    url, options, files = bucket
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=":0") as running:
        assert running.scheduler_address.startswith("tcp://127.0.0.1:")
        report = add_url(store, url, "raw", options, cluster=running.scheduler_address)
    assert report.tasks >= 1 and report.staged == len(files)
    assert store.staged_tree() == _local_tree(tmp_path, files, "raw")
    with pytest.raises(DsError, match="cannot reach the scheduler"):
        add_url(store, url, "other", options, cluster=running.scheduler_address)  # stopped now
