"""Remotes, one suite for every backend (a folder; S3 through moto's server on 127.0.0.1)."""

from __future__ import annotations

import os
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from objstore.errors import CorruptObject, DsError, FormatError
from objstore.maintenance import fsck
from objstore.merge import MergeConflict, merge
from objstore.remote import Remote, clone, pull
from objstore.remote_fs import RefConflict, RemoteError, RemoteFS
from objstore.store import Store
from objstore.worktree import commit_all

from .conftest import read_tree, write


def with_remote(store: Store, url: str, options: dict, name: str = "origin") -> Store:
    remotes = {name: {"url": url, "options": options} if options else {"url": url}}
    store.set_config(replace(store.config, remote=name, remotes=remotes))
    return store


def make_store(path: Path, url: str, options: dict) -> Store:
    return with_remote(Store.init(path), url, options)


def many_files(root: Path, n: int) -> None:
    for i in range(n):
        write(root, f"d{i % 20:02d}/f{i:05d}", os.urandom(200 + i % 700))


def clone_to(url: str, options: dict, path: Path, **kw) -> Store:
    store, _t = clone(url, str(path), options=options or None, **kw)
    return store


def test_push_clone_roundtrip_and_request_budget(tmp_path: Path, remote_spec) -> None:
    url, opts = remote_spec
    a = make_store(tmp_path / "a", url, opts)
    many_files(a.worktree, 2000)
    commit_all(a, "v1")
    r = Remote(a)
    t = r.push()
    assert t.chunks == 2000 and t.packs == 1 and t.refs == ["refs/heads/main"]
    assert t.requests <= 20, r.fs.requests  # tens of requests, not one per file
    again = Remote(a).push()
    assert again.requests <= 4 and again.chunks == 0 and again.bytes_sent == 0
    b = clone_to(url, opts, tmp_path / "b")
    assert read_tree(b.worktree) == read_tree(a.worktree)
    assert fsck(b, read_data=True).ok


def test_incremental_push_sends_only_the_change(tmp_path: Path, remote_spec) -> None:
    url, opts = remote_spec
    a = make_store(tmp_path / "a", url, opts)
    many_files(a.worktree, 300)
    commit_all(a, "v1")
    Remote(a).push()
    write(a.worktree, "d00/f00000", b"changed")
    write(a.worktree, "new.txt", b"new")
    commit_all(a, "v2")
    t = Remote(a).push()
    assert t.chunks == 2 and t.bytes_sent < 20_000


def test_diverged_push_is_refused_then_fetch_merge_push(tmp_path: Path, remote_spec) -> None:
    url, opts = remote_spec
    a = make_store(tmp_path / "a", url, opts)
    write(a.worktree, "shared.txt", "base")
    commit_all(a, "base")
    Remote(a).push()
    b = clone_to(url, opts, tmp_path / "b")
    with_remote(b, url, opts)
    write(a.worktree, "from_a.txt", "a")
    commit_all(a, "a work")
    Remote(a).push()
    write(b.worktree, "from_b.txt", "b")
    commit_all(b, "b work")
    with pytest.raises(RefConflict, match="fetch"):
        Remote(b).push()
    Remote(b).attach().fetch()
    info = merge(b, "refs/remotes/origin/main")
    assert len(info.parents) == 2
    assert sorted(read_tree(b.worktree)) == ["from_a.txt", "from_b.txt", "shared.txt"]
    Remote(b).push()
    _t, pulled = pull(a)
    assert pulled.id == info.id and (a.worktree / "from_b.txt").read_text() == "b"


def test_merge_conflicts_need_a_side(tmp_path: Path, remote_spec) -> None:
    url, opts = remote_spec
    a = make_store(tmp_path / "a", url, opts)
    write(a.worktree, "f", "base")
    commit_all(a, "base")
    Remote(a).push()
    b = clone_to(url, opts, tmp_path / "b")
    with_remote(b, url, opts)
    write(a.worktree, "f", "from a")
    commit_all(a, "a")
    Remote(a).push()
    write(b.worktree, "f", "from b")
    commit_all(b, "b")
    Remote(b).attach().fetch()
    with pytest.raises(MergeConflict, match="merge --ours REV. or .ds merge --theirs REV") as e:
        merge(b, "refs/remotes/origin/main")
    assert e.value.paths == ["f"]
    merge(b, "refs/remotes/origin/main", theirs=True)
    assert (b.worktree / "f").read_text() == "from a"


def test_compare_and_swap_lets_exactly_one_writer_win(tmp_path: Path, remote_spec) -> None:
    url, opts = remote_spec
    fs = RemoteFS(url, opts)
    _value, token = fs.read_ref("refs/heads/race")
    results: list[str] = []

    def writer(value: str) -> None:
        try:
            RemoteFS(url, opts).swap_ref("refs/heads/race", value, token)
            results.append("won")
        except RefConflict:
            results.append("lost")

    threads = [threading.Thread(target=writer, args=(f"{i:040x}",)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results) == ["lost", "lost", "lost", "won"]


def test_killed_push_leaves_remote_readable_and_resumes(tmp_path: Path, remote_spec, monkeypatch) -> None:
    url, opts = remote_spec
    a = make_store(tmp_path / "a", url, opts)
    write(a.worktree, "f", os.urandom(5000))
    commit_all(a, "v1")
    Remote(a).push()
    write(a.worktree, "g", os.urandom(5000))
    commit_all(a, "v2")
    real_put = RemoteFS.put
    calls = {"n": 0}

    def dying_put(self, rel, data):
        calls["n"] += 1
        if rel.startswith("meta/"):
            raise KeyboardInterrupt  # killed after packs and index, before metadata and ref
        return real_put(self, rel, data)

    monkeypatch.setattr(RemoteFS, "put", dying_put)
    with pytest.raises(KeyboardInterrupt):
        Remote(a).push()
    monkeypatch.setattr(RemoteFS, "put", real_put)
    b = clone_to(url, opts, tmp_path / "b")  # still the old version, complete
    assert sorted(read_tree(b.worktree)) == ["f"]
    t = Remote(a).push()
    assert t.chunks == 0 and t.refs == ["refs/heads/main"]  # bytes were already there
    c = clone_to(url, opts, tmp_path / "c")
    assert sorted(read_tree(c.worktree)) == ["f", "g"]


def test_sparse_clone_downloads_only_what_it_needs(tmp_path: Path, remote_spec) -> None:
    url, opts = remote_spec
    a = make_store(tmp_path / "a", url, opts)
    write(a.worktree, "small/x.csv", "1,2\n")
    write(a.worktree, "big/blob.bin", os.urandom(2_000_000))
    commit_all(a, "v1")
    Remote(a).push()
    b, t = clone(url, str(tmp_path / "b"), include=["small/"], options=opts or None)
    assert sorted(read_tree(b.worktree)) == ["small/x.csv"]
    assert t.bytes_received < 100_000
    report = fsck(b)
    assert report.ok and report.remote_only >= 1 and report.chunks == 1 + report.remote_only
    assert b.config.sparse == ["small/"]
    from objstore.worktree import status

    assert status(b).clean  # big/ is outside the sparse part, not "removed"


def test_dataset_upload_and_get_on_another_machine(tmp_path: Path, remote_spec, monkeypatch) -> None:
    from objstore import Dataset

    url, opts = remote_spec
    for machine in ("one", "two"):  # each store knows the remote (and its credentials) as origin
        make_store(tmp_path / machine, url, opts)
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "one" / ".dsstore"))
    write(tmp_path / "data", "a.csv", "1\n")
    ds = Dataset.create(dataset_name="n", dataset_project="p")
    ds.add_files(tmp_path / "data")
    ds.upload()
    ds.finalize()
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "two" / ".dsstore"))
    monkeypatch.setenv("DSSTORE_REMOTE", "origin")
    got = Dataset.get(dataset_project="p", dataset_name="n")
    assert got.id == ds.id and got.verify_dataset_hash() == []


def test_dataset_upload_to_s3(tmp_path: Path, moto_s3, monkeypatch) -> None:
    from objstore import Dataset

    url = f"s3://{moto_s3.new_bucket()}/datasets"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_s3.endpoint)  # read by botocore at each client
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "one" / ".dsstore"))
    write(tmp_path / "data", "a.csv", "1\n")
    ds = Dataset.create(dataset_name="n", dataset_project="p")
    ds.add_files(tmp_path / "data")
    ds.upload(output_url=url)
    ds.finalize()
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "two" / ".dsstore"))
    monkeypatch.setenv("DSSTORE_REMOTE", url)
    got = Dataset.get(dataset_id=ds.id)
    assert Path(got.get_local_copy(), "a.csv").read_text() == "1\n"


def test_failures_are_clear(tmp_path: Path, remote_spec) -> None:
    url, opts = remote_spec
    a = make_store(tmp_path / "a", url, opts)
    write(a.worktree, "f", os.urandom(3000))
    commit_all(a, "v1")
    with pytest.raises(DsError, match="not an objstore remote"):
        Remote(a).fetch()
    Remote(a).push()
    fs = RemoteFS(url, opts)
    fs.put("config", b'[store]\nformat = 99\nhash = "xxh3-128"\n')
    with pytest.raises(FormatError, match="format 99"):
        Remote(a).fetch()
    fs.put("config", b'[store]\nformat = 1\nhash = "xxh3-128"\n')
    pack = next(p for p in fs.list("packs") if p.endswith(".pack"))
    data = bytearray(fs.cat(pack))
    data[20] ^= 0xFF
    fs.put(pack, bytes(data))
    with pytest.raises(CorruptObject):
        clone_to(url, opts, tmp_path / "b")


def test_unreachable_and_missing_bucket(tmp_path: Path) -> None:
    from .servers import free_port

    s = Store.init(tmp_path / "a")
    write(s.worktree, "f", "x")
    commit_all(s, "v1")
    dead = {"endpoint_url": f"http://127.0.0.1:{free_port()}", "key": "k", "secret": "s",
            "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}}}
    with_remote(s, "s3://nobucket/x", dead)
    r = Remote(s, retries=0)
    with pytest.raises(RemoteError):
        r.push()


def test_missing_bucket_is_clear(tmp_path: Path, moto_s3) -> None:
    s = Store.init(tmp_path / "a")
    write(s.worktree, "f", "x")
    commit_all(s, "v1")
    with_remote(s, "s3://no-such-bucket-here/x", moto_s3.options)
    with pytest.raises(DsError):
        Remote(s, retries=0).push()


def test_partial_get_reads_only_what_it_needs(tmp_path: Path, remote_spec) -> None:
    url, opts = remote_spec
    a = make_store(tmp_path / "a", url, opts)
    write(a.worktree, "small/x.csv", "1,2\n")
    write(a.worktree, "big/blob.bin", os.urandom(3_000_000))
    commit_all(a, "v1")
    Remote(a).push()
    b = clone_to(url, opts, tmp_path / "b", include=["small/"])
    from objstore.get import get_copy
    from objstore.remote import attach_default

    attach_default(b)
    before = sum(p.stat().st_size for p in (b.path / "packs").glob("*/*.pack"))
    get_copy(b, "HEAD", tmp_path / "only-csv", include=["*.csv"])
    assert sum(p.stat().st_size for p in (b.path / "packs").glob("*/*.pack")) == before
    get_copy(b, "HEAD", tmp_path / "all")
    assert read_tree(tmp_path / "all") == read_tree(a.worktree)
    assert fsck(b, read_data=True).ok and fsck(b).remote_only == 0


def test_dataset_part_from_remote_fetches_only_that_part(tmp_path: Path, remote_spec, monkeypatch) -> None:
    from objstore import Dataset

    url, opts = remote_spec
    for machine in ("one", "two"):
        make_store(tmp_path / machine, url, opts)
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "one" / ".dsstore"))
    for i in range(8):
        write(tmp_path / "data", f"f{i}.bin", os.urandom(200_000))
    ds = Dataset.create(dataset_name="n", dataset_project="p")
    ds.add_files(tmp_path / "data")
    ds.upload()
    ds.finalize()
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "two" / ".dsstore"))
    got = Dataset.get(dataset_id=ds.id)
    part = Path(got.get_local_copy(part=0, num_parts=4))
    assert len(list(part.iterdir())) == 2
    stored = sum(p.stat().st_size for p in (tmp_path / "two" / ".dsstore" / "packs").glob("*/*.pack"))
    assert 350_000 < stored < 500_000  # two files of the eight
    assert got.verify_dataset_hash() == []  # the whole copy fetches the rest


def test_wrong_credentials_are_a_clear_error(tmp_path: Path, azurite) -> None:
    s = Store.init(tmp_path / "a")
    write(s.worktree, "f", "x")
    commit_all(s, "v1")
    bucket = azurite.new_bucket()
    wrong = {"connection_string": azurite.options["connection_string"].replace(
        "AccountKey=Eby8", "AccountKey=AAAA")}
    with_remote(s, f"az://{bucket}/data", wrong)
    with pytest.raises(RemoteError, match="remote az://"):
        Remote(s, retries=0).push()


def test_fsck_of_a_remote(tmp_path: Path, remote_spec) -> None:
    from objstore.remote_fsck import fsck_remote

    url, opts = remote_spec
    a = make_store(tmp_path / "a", url, opts)
    many_files(a.worktree, 50)
    commit_all(a, "v1")
    Remote(a).push()
    report = fsck_remote(a, read_data_subset=1.0)
    assert report["ok"] and report["chunks_read"] == report["chunks_indexed"] == 50
    fs = RemoteFS(url, opts)
    pack = next(p for p in fs.list("packs") if p.endswith(".pack"))
    data = bytearray(fs.cat(pack))
    data[20] ^= 0xFF
    fs.put(pack, bytes(data))
    bad = fsck_remote(a, read_data_subset=1.0)
    assert not bad["ok"] and any("verification" in p or "decompress" in p for p in bad["problems"])
