"""The ``ds://`` fsspec filesystem: pandas / pyarrow reads in place, ranged reads, listings,
store revisions, versions only on a remote, errors, threads and forks."""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from objstore import Dataset
from objstore.chunking import ChunkParams
from objstore.dsfs import DsFileSystem, DsReadOnly
from objstore.errors import DsError, UnsafePath
from objstore.store import Store

from .conftest import write

SMALL = ChunkParams(avg_size=4096, min_size=1024, max_size=16384)  # a 300 kB file is ~60 chunks
V1 = "team/vision/cats@1.0.0"


@pytest.fixture(autouse=True)
def env(tmp_path: Path, monkeypatch) -> Path:
    sdk = tmp_path / "sdk" / ".dsstore"
    monkeypatch.setenv("DSSTORE_DIR", str(sdk))
    monkeypatch.setenv("DSSTORE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("DSSTORE_REMOTE", raising=False)
    monkeypatch.chdir(tmp_path)
    DsFileSystem.clear_instance_cache()
    yield sdk
    DsFileSystem.clear_instance_cache()


def frame(n: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"id": np.arange(n), "x": rng.random(n), "label": rng.choice(["cat", "dog"], n)})


def make_data(root: Path, seed: int = 0) -> dict[str, bytes]:
    """A csv, a parquet file, a multi-chunk binary, a script and a note; returns path -> bytes."""
    df = frame(seed=seed)
    (root / "tables").mkdir(parents=True, exist_ok=True)
    df.to_csv(root / "tables/a.csv", index=False)
    pq.write_table(pa.Table.from_pandas(df), root / "tables/b.parquet")
    write(root, "big.bin", np.random.default_rng(seed).bytes(300_000))
    write(root, "run.sh", "#!/bin/sh\necho hi\n", mode=0o755)
    write(root, "notes/readme.txt", f"version {seed}\n")
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def new_store(dsstore: Path, remote: tuple[str, dict] | None = None) -> Store:
    store = Store.create(dsstore, chunking=SMALL)
    if remote is not None:
        url, opts = remote
        store.set_config(replace(store.config, remote="origin",
                                 remotes={"origin": {"url": url, **({"options": opts} if opts else {})}}))
    return store


def publish(data: Path, version: str | None = None, upload: bool = False) -> Dataset:
    ds = Dataset.create(dataset_name="cats", dataset_project="team/vision", dataset_version=version)
    ds.add_files(data)
    if upload:
        ds.upload()
    ds.finalize()
    return ds


@pytest.fixture
def versions(tmp_path: Path, env: Path) -> dict:
    """Two finalized versions of team/vision/cats in the SDK store (small chunks)."""
    new_store(env).close()
    one = make_data(tmp_path / "v1", seed=1)
    v1 = publish(tmp_path / "v1")
    two = make_data(tmp_path / "v2", seed=2)
    v2 = publish(tmp_path / "v2")
    return {"1.0.0": (v1, one, tmp_path / "v1"), "1.0.1": (v2, two, tmp_path / "v2")}


def chunk_sizes(dsstore: Path, commit: str, path: str) -> list[int]:
    with Store(dsstore) as s:
        entry = s.meta.lookup(s.meta.tree_of(commit), path)
        return [size for _cid, size in entry.chunk_list()]


def covering(sizes: list[int], start: int, end: int) -> int:
    """How many chunks overlap [start, end)."""
    n, pos = 0, 0
    for size in sizes:
        n += pos < end and pos + size > start
        pos += size
    return n


# -- pandas and pyarrow ------------------------------------------------------------------
def test_pandas_and_pyarrow_read_a_version_in_place(versions: dict, env: Path) -> None:
    _ds, _files, src = versions["1.0.0"]
    csv = pd.read_csv(f"ds://{V1}/tables/a.csv")
    pd.testing.assert_frame_equal(csv, pd.read_csv(src / "tables/a.csv"))
    fs = fsspec.filesystem("ds")
    table = pq.read_table(f"ds://{V1}/tables/b.parquet", filesystem=fs)
    assert table.equals(pq.read_table(src / "tables/b.parquet"))
    with fs.open(f"ds://{V1}/tables/b.parquet") as f:
        assert pq.read_table(f).equals(table)
    pd.testing.assert_frame_equal(pd.read_parquet(f"ds://{V1}/tables/b.parquet"),
                                  pd.read_parquet(src / "tables/b.parquet"))
    import pyarrow.dataset as pds

    dataset = pds.dataset([f"{V1}/tables/b.parquet"], filesystem=fs, format="parquet")
    assert dataset.to_table().equals(table)
    # the SDK form through pandas' storage_options names the store explicitly
    other = pd.read_csv("ds://team/vision/cats@latest/tables/a.csv",
                        storage_options={"store": str(env.parent)})
    pd.testing.assert_frame_equal(other, pd.read_csv(versions["1.0.1"][2] / "tables/a.csv"))
    assert not (env / "cache" / "copies").exists()  # read in place: no copy was made
    assert fsspec.filesystem("ds") is fs  # fsspec reuses the instance


# -- ranged reads ------------------------------------------------------------------------
def test_ranged_reads_decode_only_the_chunks_they_cover(versions: dict, env: Path) -> None:
    ds, files, _src = versions["1.0.0"]
    raw = files["big.bin"]
    sizes = chunk_sizes(env, ds._record["commit"], "big.bin")
    assert len(sizes) > 20
    fs = DsFileSystem()
    url = f"ds://{V1}/big.bin"
    info = fs.info(url)
    assert info["size"] == len(raw) and info["chunks"] == len(sizes)
    for start, end in [(0, 1), (10_000, 30_000), (sizes[0] - 1, sizes[0] + 1), (len(raw) - 5, len(raw))]:
        before = fs.read_stats()["chunks_decoded"]
        assert fs.cat_file(url, start, end) == raw[start:end]
        assert fs.read_stats()["chunks_decoded"] - before == covering(sizes, start, end)
    assert fs.cat_file(url, -100) == raw[-100:]
    assert fs.cat_file(url, 5, -5) == raw[5:-5]
    assert fs.cat_file(url, len(raw) + 10) == b""
    assert fs.cat(url) == raw
    with fs.open(url) as f:
        before = fs.read_stats()["chunks_decoded"]
        f.seek(150_000)
        assert f.read(100) == raw[150_000:150_100]
        assert f.read(50) == raw[150_100:150_150]  # the same chunk: served from the file's LRU
        assert fs.read_stats()["chunks_decoded"] - before == covering(sizes, 150_000, 150_150)
        f.seek(-10, 2)
        assert f.read() == raw[-10:]
    with fs.open(url) as f:
        assert f.read() == raw
    with fs.open(f"ds://{V1}/notes/readme.txt", "r") as f:  # text mode
        assert f.read() == "version 1\n"


# -- listings --------------------------------------------------------------------------------
def test_listing_projects_datasets_versions_and_files(versions: dict) -> None:
    v1, files, _src = versions["1.0.0"]
    v2 = versions["1.0.1"][0]
    fs = DsFileSystem()
    assert fs.ls("ds://", detail=False) == ["team"]
    assert fs.ls("ds://team", detail=False) == ["team/vision"]
    assert fs.ls("ds://team/vision") == [{"name": "team/vision/cats", "size": 0, "type": "directory",
                                          "kind": "dataset"}]
    assert fs.ls("ds://team/vision/cats", detail=False) == [V1, "team/vision/cats@1.0.1"]
    version = fs.info(f"ds://{V1}")
    assert version["type"] == "directory" and version["dataset_id"] == v1.id
    assert version["commit"] == v1._record["commit"] and version["status"] == "completed"
    latest = fs.info("ds://team/vision/cats@latest")
    assert latest["dataset_version"] == "1.0.1" and latest["dataset_id"] == v2.id
    for form in (v1.id, v1.id[:8], v1._record["commit"][:10]):  # dataset id, its prefix, a commit prefix
        assert fs.cat(f"ds://team/vision/cats@{form}/big.bin") == files["big.bin"]
    top = ("big.bin", "notes", "run.sh", "tables")
    assert fs.ls(f"ds://{V1}", detail=False) == [f"{V1}/{p}" for p in top]
    assert sorted(fs.find(f"ds://{V1}")) == sorted(f"{V1}/{p}" for p in files)
    assert {k: v for k, v in fs.info(f"ds://{V1}/run.sh").items() if k != "hash"} == {
        "name": f"{V1}/run.sh", "size": len(files["run.sh"]), "type": "file", "kind": "exec", "mode": 0o755,
        "chunks": 1}
    a = fs.info(f"ds://{V1}/tables/a.csv")
    assert a["mode"] == 0o644 and a["hash"] == v1.file_entries_dict["tables/a.csv"].hash
    assert fs.ls(f"ds://{V1}/tables/a.csv") == [a]
    walked = {root: (sorted(dirs), sorted(names)) for root, dirs, names in fs.walk(f"ds://{V1}")}
    assert walked[f"{V1}/tables"] == ([], ["a.csv", "b.parquet"])
    assert fs.isdir("ds://") and fs.isdir("ds://team") and fs.isdir("ds://team/vision/cats")
    assert fs.isdir(f"ds://{V1}") and fs.isdir(f"ds://{V1}/tables") and not fs.isdir(f"ds://{V1}/big.bin")
    assert fs.isfile(f"ds://{V1}/big.bin") and fs.exists("ds://team/vision/cats@latest/notes/readme.txt")
    assert not fs.exists("ds://team/nope") and not fs.exists(f"ds://{V1}/nope")
    assert fs.cat("ds://team/vision/cats@latest/notes/readme.txt") == b"version 2\n"


def test_a_new_version_is_seen_without_a_new_instance(versions: dict, tmp_path: Path) -> None:
    fs = DsFileSystem()
    assert fs.info("ds://team/vision/cats@latest")["dataset_version"] == "1.0.1"
    write(tmp_path / "v3", "notes/readme.txt", "version 3\n")
    publish(tmp_path / "v3")
    assert fs.cat("ds://team/vision/cats@latest/notes/readme.txt") == b"version 3\n"
    assert "team/vision/cats@1.0.2" in fs.ls("ds://team/vision/cats", detail=False)


def test_external_files_are_read_from_their_url(versions: dict, tmp_path: Path) -> None:
    outside = write(tmp_path / "bucket", "ext.bin", os.urandom(5000))
    ds = Dataset.create(dataset_name="ext", dataset_project="team")
    ds.add_external_files(f"file://{outside}")
    ds.finalize()
    fs = DsFileSystem()
    assert fs.info("ds://team/ext@latest/ext.bin")["kind"] == "external"
    assert fs.cat_file("ds://team/ext@latest/ext.bin", 100, 200) == outside.read_bytes()[100:200]
    assert sorted(fs.ls("ds://team", detail=False)) == ["team/ext", "team/vision"]


# -- plain store revisions and links ---------------------------------------------------------
def test_plain_store_revisions_and_the_link_policy(tmp_path: Path) -> None:
    from objstore.worktree import commit_all

    work = tmp_path / "plain"
    store = Store.init(work)
    write(work, "data/a.txt", "one\n")
    write(work, "data/deep/b.txt", "deep\n")
    os.symlink("a.txt", work / "data/alias.txt")  # inside: listed as the file it names
    os.symlink("deep", work / "data/folder-link")  # a folder: resolvable, not listed
    os.symlink("../../outside", work / "data/escape")  # leaves the version: absent
    os.symlink("missing.txt", work / "data/dangling")
    first = commit_all(store, "v1")
    store.tag("v1")
    write(work, "data/a.txt", "two\n")
    commit_all(store, "v2")
    fs = DsFileSystem(store=str(work))
    assert fs.cat("ds://@HEAD/data/a.txt") == b"two\n"
    assert fs.cat("ds://@v1/data/a.txt") == b"one\n"
    assert fs.cat(f"ds://@{first.id[:8]}/data/a.txt") == b"one\n"
    assert fs.cat("ds://@HEAD~1/data/alias.txt") == b"one\n"
    assert fs.cat("ds://@main/data/folder-link/b.txt") == b"deep\n"
    assert fs.info("ds://@HEAD")["commit"] == store.head()
    assert fs.ls("ds://@HEAD/data", detail=False) == ["@HEAD/data/a.txt", "@HEAD/data/alias.txt",
                                                      "@HEAD/data/deep"]
    alias = fs.info("ds://@HEAD/data/alias.txt")
    assert alias["islink"] and alias["destination"] == "a.txt" and alias["size"] == 4
    assert fs.info("ds://@HEAD/data/folder-link")["type"] == "directory"
    with pytest.raises(FileNotFoundError, match="leaves the version"):
        fs.cat("ds://@HEAD/data/escape")
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        fs.info("ds://@HEAD/data/dangling")
    assert sorted(fs.find("ds://@HEAD")) == ["@HEAD/data/a.txt", "@HEAD/data/alias.txt",
                                             "@HEAD/data/deep/b.txt"]
    assert DsFileSystem(store=str(work / ".dsstore")).cat("ds://@v1/data/a.txt") == b"one\n"
    with pytest.raises(FileNotFoundError, match="no version matches 'nope'"):
        fs.info("ds://@nope/x")
    assert fs.ls("ds://") == []  # no datasets in this store
    store.close()


# -- versions only on a remote ---------------------------------------------------------------
@pytest.fixture(params=["folder", "s3"])
def remote(request, tmp_path: Path) -> tuple[str, dict]:
    if request.param == "folder":
        return str(tmp_path / "remote"), {}
    server = request.getfixturevalue("moto_s3")
    return f"s3://{server.new_bucket()}/data", server.options


def test_a_version_only_on_a_remote_is_read_fetching_only_needed_chunks(
        tmp_path: Path, remote: tuple[str, dict], monkeypatch) -> None:
    url, opts = remote
    one = tmp_path / "one" / ".dsstore"
    new_store(one, remote).close()
    monkeypatch.setenv("DSSTORE_DIR", str(one))
    files = make_data(tmp_path / "v1", seed=1)
    ds = publish(tmp_path / "v1", upload=True)
    sizes = chunk_sizes(one, ds._record["commit"], "big.bin")
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "nowhere" / ".dsstore"))  # not used below

    cache = tmp_path / "private-cache"
    fs = DsFileSystem(remote=url, remote_options=opts, cache_dir=str(cache))
    start, end = 100_000, 120_000
    assert fs.cat_file(f"ds://{V1}/big.bin", start, end) == files["big.bin"][start:end]
    stats = fs.read_stats()
    assert stats["chunks_fetched"] == covering(sizes, start, end) < len(sizes) // 4
    assert stats["remote_bytes"] < len(files["big.bin"]) // 2
    assert fs.store_path().is_relative_to(cache)
    requests = stats["remote_requests"]
    assert fs.cat_file(f"ds://{V1}/big.bin", start, end) == files["big.bin"][start:end]
    assert fs.read_stats()["remote_requests"] == requests  # now local
    assert fs.ls("ds://team/vision/cats", detail=False) == [V1]
    got = pd.read_csv(f"ds://{V1}/tables/a.csv",
                      storage_options={"remote": url, "remote_options": opts, "cache_dir": str(cache)})
    pd.testing.assert_frame_equal(got, pd.read_csv(tmp_path / "v1/tables/a.csv"))
    assert not (tmp_path / "nowhere").exists()
    with pytest.raises(FileNotFoundError, match=f"no version '7.7' \\(nor on {url}\\)"):
        fs.info("ds://team/vision/cats@7.7")
    # a newer version pushed meanwhile: seen once the remote's records are read again
    monkeypatch.setenv("DSSTORE_DIR", str(one))
    write(tmp_path / "v2", "notes/readme.txt", "version 2\n")
    publish(tmp_path / "v2", upload=True)
    assert fs.info("ds://team/vision/cats@latest")["dataset_version"] == "1.0.0"
    fs.invalidate_cache()
    assert fs.cat("ds://team/vision/cats@latest/notes/readme.txt") == b"version 2\n"
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "nowhere" / ".dsstore"))

    # the SDK form with a store named explicitly: the version's metadata comes into that store
    two = Store.init(tmp_path / "two")
    fs2 = DsFileSystem(store=str(tmp_path / "two"), remote=url, remote_options=opts)
    assert fs2.cat("ds://team/vision/cats@1.0.0/notes/readme.txt") == b"version 1\n"
    assert fs2.read_stats()["chunks_fetched"] == 1
    assert (two.path / "datasets" / f"{ds.id}.json").is_file()
    config = (two.path / "config").read_text()
    assert "secret" not in config and "options" not in config  # credentials stay in memory
    two.close()


def test_the_sdk_store_and_its_default_remote_are_the_default(tmp_path: Path, env: Path, monkeypatch) -> None:
    url = str(tmp_path / "remote")
    one = tmp_path / "one" / ".dsstore"
    new_store(one, (url, {})).close()
    monkeypatch.setenv("DSSTORE_DIR", str(one))
    files = make_data(tmp_path / "v1", seed=1)
    publish(tmp_path / "v1", upload=True)
    monkeypatch.setenv("DSSTORE_DIR", str(env))  # another machine: no store yet, the remote as default
    monkeypatch.setenv("DSSTORE_REMOTE", url)
    assert pd.read_csv(f"ds://{V1}/tables/a.csv").equals(pd.read_csv(tmp_path / "v1/tables/a.csv"))
    fs = fsspec.filesystem("ds")
    assert fs.store_path() == env
    assert fs.read_stats()["chunks_fetched"] == fs.info(f"ds://{V1}/tables/a.csv")["chunks"]  # that file only
    assert fs.cat(f"ds://{V1}/run.sh") == files["run.sh"]


def test_plain_store_revisions_from_a_remote_without_a_clone(tmp_path: Path) -> None:
    from objstore.remote import Remote
    from objstore.worktree import commit_all

    url = str(tmp_path / "remote")
    a = new_store(tmp_path / "a" / ".dsstore", (url, {}))
    write(a.worktree, "x/big.bin", os.urandom(200_000))
    write(a.worktree, "x/small.txt", "small\n")
    commit_all(a, "v1")
    a.tag("v1")
    Remote(a).push(all_refs=True)
    fs = DsFileSystem(remote=url)
    assert fs.cat("ds://@HEAD/x/small.txt") == b"small\n"
    assert fs.read_stats()["chunks_fetched"] == 1
    assert fs.ls("ds://@v1/x", detail=False) == ["@v1/x/big.bin", "@v1/x/small.txt"]
    assert fs.cat("ds://@main/x/big.bin") == (a.worktree / "x/big.bin").read_bytes()
    a.close()


# -- errors ----------------------------------------------------------------------------------
def test_errors_have_the_types_pandas_expects_and_say_what_exists(versions: dict, tmp_path: Path,
                                                                   env: Path) -> None:
    fs = DsFileSystem()
    cases = [
        ("ds://nope/cats@1.0.0/a.csv", FileNotFoundError, "no project 'nope'.*projects: team/vision"),
        ("ds://team/vision/dogs@1.0.0/a.csv", FileNotFoundError, "no dataset 'dogs'.*datasets: cats"),
        ("ds://team/vision/cats@9.9/a.csv", FileNotFoundError, "no version '9.9'.*versions: 1.0.0, 1.0.1"),
        (f"ds://{V1}/tables/zz.csv", FileNotFoundError, "'tables/zz.csv'.*tables holds: a.csv, b.parquet"),
        (f"ds://{V1}/../x", FileNotFoundError, r"'\.\.'"),
        (f"ds://{V1}/big.bin/x", NotADirectoryError, "'big.bin' is a file"),
        ("ds://@HEAD/x", FileNotFoundError, "no version matches 'HEAD'"),
        ("ds://team/@1.0.0/x", FileNotFoundError, "PROJECT/NAME@VERSION"),
    ]
    for url, kind, message in cases:
        with pytest.raises(kind, match=message) as info:
            fs.info(url)
        assert isinstance(info.value, DsError)
        with pytest.raises(kind):
            pd.read_csv(url)
    with pytest.raises(UnsafePath):
        fs.open(f"ds://{V1}/tables/../../x")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        fs.open(f"ds://{V1}/tables")
    for write_call in (lambda: fs.open(f"ds://{V1}/new.csv", "wb"), lambda: fs.pipe(f"ds://{V1}/n", b"x"),
                       lambda: fs.rm(f"ds://{V1}/big.bin"), lambda: fs.mkdir(f"ds://{V1}/d"),
                       lambda: pd.DataFrame({"a": [1]}).to_csv(f"ds://{V1}/new.csv")):
        with pytest.raises(PermissionError, match="read-only") as info:
            write_call()
        assert isinstance(info.value, DsReadOnly)
    draft = Dataset.create(dataset_name="cats", dataset_project="team/vision", dataset_version="2.0")
    draft.add_files(tmp_path / "v1" / "notes")
    with pytest.raises(FileNotFoundError, match="is a draft"):
        fs.info("ds://team/vision/cats@2.0")
    lazy = DsFileSystem(store=str(tmp_path / "no-store-here"))  # cheap: nothing opened yet
    with pytest.raises(FileNotFoundError, match="no objstore store there"):
        lazy.ls("ds://")
    with pytest.raises(DsError, match="no remote of that name"):
        DsFileSystem(store=str(env.parent), remote="origin").ls("ds://")


# -- threads and forks -----------------------------------------------------------------------
class FolderDataset:
    """A map-style dataset as a torch.utils.data.Dataset subclass would hold it."""

    def __init__(self, url: str, **storage_options):
        self.fs, root = fsspec.core.url_to_fs(url, **storage_options)
        self.files = sorted(self.fs.find(root))

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[str, bytes]:
        with self.fs.open(self.files[i], "rb") as f:
            head = f.read(1000)
            return self.files[i], head + f.read()


@pytest.mark.parametrize("where", ["local", "remote"])
def test_a_map_style_dataset_reads_right_bytes_from_two_threads(tmp_path: Path, env: Path, where: str,
                                                                monkeypatch) -> None:
    url = str(tmp_path / "remote")
    new_store(env, (url, {}) if where == "remote" else None).close()
    rng = np.random.default_rng(7)
    blobs = {f"img/{i:03d}.bin": rng.bytes(int(rng.integers(1, 60_000))) for i in range(40)}
    for rel, data in blobs.items():
        write(tmp_path / "imgs", rel, data)
    publish(tmp_path / "imgs", upload=where == "remote")
    options: dict = {}
    if where == "remote":  # another machine: nothing local, everything comes on demand
        options = {"remote": url, "cache_dir": str(tmp_path / "cache2")}
    data = FolderDataset("ds://team/vision/cats@latest/img", **options)
    assert len(data) == 40
    results: dict[int, list] = {0: [], 1: []}
    start = threading.Barrier(2)

    def worker(k: int) -> None:  # two workers over interleaved indices, as a sampler would split them
        start.wait()
        results[k] = [data[i] for i in range(k, len(data), 2)] + [data[i] for i in range(len(data))]

    threads = [threading.Thread(target=worker, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = results[0] + results[1]
    assert len(got) == 120
    assert all(content == blobs[name.split("@latest/", 1)[1]] for name, content in got)
    import pickle

    assert pickle.loads(pickle.dumps(data))[3] == data[3]  # what a spawned DataLoader worker gets


def test_the_store_is_reopened_after_a_fork(versions: dict) -> None:
    fs = DsFileSystem()
    files = versions["1.0.0"][1]
    assert fs.cat(f"ds://{V1}/big.bin") == files["big.bin"]
    parent = fs._session()
    read, written = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a DataLoader worker
        ok = False
        try:
            ok = fs._session() is not parent and fs.cat(f"ds://{V1}/big.bin") == files["big.bin"]
        finally:
            os.write(written, b"1" if ok else b"0")
            os._exit(0)
    os.close(written)
    answer = os.read(read, 1)
    os.waitpid(pid, 0)
    os.close(read)
    assert answer == b"1"
    assert fs._session() is parent
