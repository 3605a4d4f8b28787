"""What a remote sends is data to check, not to trust: bad refs and dataset records are
skipped with a warning (never stored), remote URLs that would land in a working folder
are refused, permanent remote errors fail at once, and an interrupted push resumes
without sending again what already landed whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from objstore.errors import DsError
from objstore.maintenance import gc
from objstore.remote import Remote, clone, pull
from objstore.remote_fs import RemoteFS
from objstore.remote_fsck import fsck_remote
from objstore.remote_gc import gc_remote
from objstore.store import Store
from objstore.worktree import commit_all

from .conftest import ds, read_tree, write
from .test_remote import make_store


@pytest.fixture(params=["folder", "s3"])
def backend(request, tmp_path: Path) -> tuple[str, dict]:
    """(url, options) of an empty remote: a folder, or a bucket on moto's S3."""
    if request.param == "folder":
        return str(tmp_path / "remote"), {}
    server = request.getfixturevalue("moto_s3")
    return f"s3://{server.new_bucket()}/data", server.options


def published(tmp_path: Path, url: str, opts: dict) -> Store:
    a = make_store(tmp_path / "a", url, opts)
    write(a.worktree, "f.txt", "one")
    commit_all(a, "v1")
    Remote(a).push()
    return a


# -- 1. refs -----------------------------------------------------------------------------
def plant_bad_refs(fs: RemoteFS, a: Store) -> dict[str, str]:
    """Bad refs of every kind on the remote: ref path -> what its warning must say."""
    tree = str(a.meta.tree_of(a.head()))
    bad = {
        "refs/heads/evil": (tree, "tree, not a version"),  # an id, but of a tree
        "refs/heads/bad..name": (a.head(), "ref-name rules"),  # a good version, a bad name
        "refs/tags/junk": ("garbage", "does not hold a version id"),
        "refs/heads/gone": ("ab" * 20, "metadata is not on the remote"),
        "refs/heads/-opt": (a.head(), "option"),
    }
    for rel, (value, _why) in bad.items():
        fs.put(rel, (value + "\n").encode())
    return {rel: why for rel, (_v, why) in bad.items()}


def test_bad_remote_refs_are_skipped_and_never_stored(tmp_path: Path, backend) -> None:
    url, opts = backend
    a = published(tmp_path, url, opts)
    bad = plant_bad_refs(RemoteFS(url, opts), a)
    seen: list[str] = []
    t = Remote(a, warn=seen.append).fetch()
    assert t.refs == ["refs/heads/main"] and seen == t.warnings
    for rel, why in bad.items():
        assert any(rel in w and why in w and url in w and "origin" in w for w in t.warnings), rel
    assert sorted(a.meta.refs()) == ["refs/heads/main", "refs/remotes/origin/main"]
    write(a.worktree, "g.txt", "two")
    commit_all(a, "v2")
    assert Remote(a).push().refs == ["refs/heads/main"]  # pushes still work
    gc(a)  # and local gc
    b, tb = clone(url, str(tmp_path / "b"), options=opts or None)
    assert read_tree(b.worktree) == read_tree(a.worktree) and len(tb.warnings) == len(bad)
    assert sorted(b.meta.refs()) == ["refs/heads/main", "refs/remotes/origin/main"]
    fresh = make_store(tmp_path / "fresh", url, opts)
    tp, _info = pull(fresh)
    assert read_tree(fresh.worktree) == read_tree(a.worktree) and len(tp.warnings) == len(bad)
    report = fsck_remote(a, "origin")
    assert not report["ok"] and all(any(rel in p for p in report["problems"]) for rel in bad)
    with pytest.raises(DsError, match="gc refused.*not a valid ref"):
        gc_remote(a, "origin", grace_seconds=0)


def test_a_store_holding_a_bad_tracking_ref_is_repaired_by_fetch(tmp_path: Path) -> None:
    """What an older fetch stored (a tracking ref naming a tree) made every push fail."""
    a = published(tmp_path, str(tmp_path / "r"), {})
    tree = a.meta.tree_of(a.head())
    a.meta.repo.references.create("refs/remotes/origin/evil", tree, force=True)
    t = Remote(a).fetch()
    assert "refs/remotes/origin/evil" not in a.meta.repo.references
    assert any("refs/remotes/origin/evil" in w for w in t.warnings)
    write(a.worktree, "g.txt", "two")
    commit_all(a, "v2")
    Remote(a).push()


def test_push_over_a_damaged_remote_branch_says_what_to_do(tmp_path: Path) -> None:
    url = str(tmp_path / "r")
    a = published(tmp_path, url, {})
    RemoteFS(url, {}).put("refs/heads/main", b"garbage\n")
    write(a.worktree, "g.txt", "two")
    commit_all(a, "v2")
    with pytest.raises(DsError, match="does not hold a version id.*--force"):
        Remote(a).push()
    Remote(a).push(force=True)
    b, _t = clone(url, str(tmp_path / "b"))
    assert b.head() == a.head()


def test_cli_fetch_prints_each_skipped_ref(tmp_path: Path) -> None:
    url = str(tmp_path / "r")
    a = published(tmp_path, url, {})
    RemoteFS(url, {}).put("refs/heads/bad..name", (a.head() + "\n").encode())
    proc = ds("fetch", cwd=a.worktree)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("Warning:")]
    assert len(lines) == 1 and "refs/heads/bad..name" in lines[0] and url in lines[0]


# -- 2. dataset records ------------------------------------------------------------------
def finalized_on_remote(tmp_path: Path, monkeypatch) -> tuple[object, Path]:
    """A version made in store "one" and uploaded to a folder remote: (the Dataset, remote)."""
    from objstore import Dataset

    remote = tmp_path / "remote"
    monkeypatch.setenv("DSSTORE_REMOTE", str(remote))
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "one" / ".dsstore"))
    write(tmp_path / "data", "f1", "1")
    v1 = Dataset.create(dataset_name="cats", dataset_project="p")
    v1.add_files(tmp_path / "data")
    v1.upload()
    v1.finalize()
    return v1, remote


def bad_records(good: dict) -> dict[str, tuple[object, str]]:
    """file id -> (content, what its warning must say): each higher than the good version,
    so each would be picked if it were believed."""
    ids = [f"{i:032x}" for i in range(1, 8)]
    return {
        ids[0]: ([1, 2, 3], "JSON list"),
        ids[1]: (dict(good, id=ids[1], version="9.0.0", commit=5), "commit is a int"),
        ids[2]: (dict(good, id=ids[2], version="9.1.0", commit="../../refs/heads/main"), "40-digit"),
        ids[3]: (dict(good, id=ids[3], version="9.2.0", project=".."), "'..' part"),
        ids[4]: ("not json {", "not JSON"),
        ids[5]: (dict(good, version="9.3.0"), f"describes dataset {good['id']}"),
        ids[6]: (dict(good, id=ids[6], version="9.4.0", parents=[None]), "parents"),
    }


def plant(folder: Path, records: dict[str, tuple[object, str]]) -> None:
    import json

    folder.mkdir(parents=True, exist_ok=True)
    for rid, (content, _why) in records.items():
        text = content if isinstance(content, str) else json.dumps(content)
        (folder / f"{rid}.json").write_text(text)


def test_bad_remote_records_are_skipped_with_a_warning(tmp_path: Path, monkeypatch) -> None:
    import json

    from objstore import Dataset
    from objstore.remote import remote_records

    v1, remote = finalized_on_remote(tmp_path, monkeypatch)
    good = json.loads((remote / "datasets" / f"{v1.id}.json").read_text())
    bad = bad_records(good)
    plant(remote / "datasets", bad)
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "two" / ".dsstore"))
    got = Dataset.get(dataset_project="p", dataset_name="cats")
    assert got.id == v1.id and Path(got.get_local_copy(), "f1").read_text() == "1"
    seen: list[str] = []
    two = Store(tmp_path / "two" / ".dsstore")
    assert [r["id"] for r in remote_records(two, str(remote), warn=seen.append)] == [v1.id]
    for rid, (_content, why) in bad.items():
        assert any(f"datasets/{rid}.json" in w and why in w and str(remote) in w for w in seen), (rid, seen)


def test_bad_local_records_are_skipped_with_a_warning(tmp_path: Path, monkeypatch) -> None:
    import json

    from objstore import Dataset
    from objstore.records import RecordStore

    v1, _remote = finalized_on_remote(tmp_path, monkeypatch)
    folder = tmp_path / "one" / ".dsstore" / "datasets"
    bad = bad_records(json.loads((folder / f"{v1.id}.json").read_text()))
    plant(folder, bad)
    assert Dataset.get(dataset_project="p", dataset_name="cats").id == v1.id
    assert [d["id"] for d in Dataset.list_datasets(dataset_project="p")] == [v1.id]
    seen: list[str] = []
    assert [r["id"] for r in RecordStore(folder.parent, warn=seen.append).all()] == [v1.id]
    for rid, (_content, why) in bad.items():
        assert any(f"{rid}.json" in w and why in w for w in seen), (rid, seen)


def test_fetch_dataset_refuses_a_record_it_cannot_trust(tmp_path: Path, monkeypatch) -> None:
    import json

    from objstore.errors import FormatError
    from objstore.remote import fetch_dataset

    v1, remote = finalized_on_remote(tmp_path, monkeypatch)
    good = json.loads((remote / "datasets" / f"{v1.id}.json").read_text())
    two = Store.init(tmp_path / "two")
    for record in (dict(good, commit="../../refs/heads/main"), dict(good, commit=5),
                   dict(good, commit=good["commit"][:39] + ("1" if good["commit"].endswith("0") else "0"))):
        with pytest.raises(FormatError):
            fetch_dataset(two, str(remote), record)
    tree = str(Store(tmp_path / "one" / ".dsstore").meta.tree_of(good["commit"]))
    with pytest.raises(FormatError, match="lacks"):
        fetch_dataset(two, str(remote), dict(good, commit=tree))  # an id, but of a tree
    assert not any((two.path / "datasets").glob("*.json"))  # nothing was stored


# -- 3. remote URLs ----------------------------------------------------------------------
def committed(path: Path) -> Store:
    s = Store.init(path)
    write(s.worktree, "f.txt", "one")
    commit_all(s, "v1")
    return s


@pytest.mark.parametrize("url", ["", " ", ".", "sub/r", "./.dsstore/r"])
def test_cli_refuses_a_remote_in_the_working_folder(tmp_path: Path, url: str) -> None:
    a = committed(tmp_path / "a")
    (a.worktree / "sub").mkdir()
    before = sorted(p.name for p in a.worktree.iterdir())
    for args in (("remote", "add", "o", url), ("push", url), ("fetch", url), ("pull", url)):
        proc = ds(*args, cwd=a.worktree, check=False)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.strip().splitlines()) == 1
        assert "empty" in proc.stderr or "inside" in proc.stderr
    assert sorted(p.name for p in a.worktree.iterdir()) == before and not any((a.worktree / "sub").iterdir())
    assert Store.open(a.worktree).config.remotes == {}


def test_cli_clone_refuses_an_empty_url(tmp_path: Path) -> None:
    proc = ds("clone", "", "c", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "empty" in proc.stderr and not (tmp_path / "c").exists()


def test_remote_urls_expand_home_and_resolve_against_the_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    a = committed(tmp_path / "a")
    r = Remote(a, "~/r")
    assert r.url == str(tmp_path / "home" / "r")
    r.push(["main"])
    assert (tmp_path / "home" / "r" / "config").exists()
    ds("remote", "add", "o", "../r2", cwd=a.worktree)
    assert Store.open(a.worktree).config.remotes["o"]["url"] == str(tmp_path / "r2")
    ds("push", "o", cwd=a.worktree)
    c, _t = clone("~/r", str(tmp_path / "c"))
    assert read_tree(c.worktree) == read_tree(a.worktree)


def test_library_refuses_bad_remote_places(tmp_path: Path, monkeypatch) -> None:
    from dataclasses import replace

    a = committed(tmp_path / "a")
    monkeypatch.chdir(a.worktree)  # "./" below
    other = committed(tmp_path / "other")
    for url in (str(a.worktree), str(a.worktree / "x"), str(a.path / "r"), str(other.path / "r"),
                f"file://{a.worktree}/x", "./"):
        with pytest.raises(DsError, match="inside"):
            Remote(a, url)
    with pytest.raises(DsError, match="empty"):
        Remote(a, "")
    (tmp_path / "c").mkdir()
    with pytest.raises(DsError, match="inside"):
        clone(str(tmp_path / "c" / "r"), str(tmp_path / "c"))
    a.set_config(replace(a.config, remote="o", remotes={"o": {"url": ""}}))  # saved by an older objstore
    with pytest.raises(DsError, match="ds remote remove o"):
        Remote(a).push()
    assert sorted(p.name for p in a.worktree.iterdir()) == [".dsstore", "f.txt"]


# -- 4. remote errors --------------------------------------------------------------------
@pytest.fixture
def no_aws_credentials(monkeypatch, tmp_path: Path) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def attempts(remote: Remote) -> int:
    """Requests of the operation that failed (a whole-file get also counts its size lookup)."""
    return remote.fs.requests["get"] + remote.fs.requests["put"] + remote.fs.requests["list"]


def test_missing_s3_credentials_fail_at_once(tmp_path: Path, moto_s3, no_aws_credentials) -> None:
    from objstore.remote_fs import RemoteDenied

    url = f"s3://{moto_s3.new_bucket()}/data"
    a = make_store(tmp_path / "a", url, {"endpoint_url": moto_s3.endpoint})
    write(a.worktree, "f.txt", "one")
    commit_all(a, "v1")
    for op in ("push", "fetch"):
        r = Remote(a)
        with pytest.raises(RemoteDenied, match="no usable credentials.*AWS_ACCESS_KEY_ID") as e:
            getattr(r, op)()
        assert attempts(r) == 1 and "again: it" not in str(e.value)  # not the advice for a network fault
    with pytest.raises(RemoteDenied, match="no usable credentials"):
        clone(url, str(tmp_path / "c"), options={"endpoint_url": moto_s3.endpoint})
    assert not (tmp_path / "c").exists()


def test_wrong_s3_credentials_fail_at_once(tmp_path: Path, moto_s3, monkeypatch) -> None:
    import moto.settings

    from objstore.remote_fs import RemoteDenied

    url = f"s3://{moto_s3.new_bucket()}/data"
    a = make_store(tmp_path / "a", url, dict(moto_s3.options, key="wrong", secret="wrong"))
    write(a.worktree, "f.txt", "one")
    commit_all(a, "v1")
    monkeypatch.setattr(moto.settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # moto checks keys now
    for op in ("push", "fetch"):
        r = Remote(a)
        with pytest.raises(RemoteDenied, match="access denied.*credentials"):
            getattr(r, op)()
        assert attempts(r) == 1


def test_a_missing_bucket_fails_at_once_and_says_so(tmp_path: Path, moto_s3) -> None:
    from objstore.remote_fs import RemoteMissing

    url = "s3://no-such-bucket-for-objstore/data"
    a = make_store(tmp_path / "a", url, moto_s3.options)
    write(a.worktree, "f.txt", "one")
    commit_all(a, "v1")
    for op in ("push", "fetch"):
        r = Remote(a)
        with pytest.raises(RemoteMissing, match="does not exist"):
            getattr(r, op)()
        assert attempts(r) == 1
    with pytest.raises(RemoteMissing, match="does not exist"):
        clone(url, str(tmp_path / "c"), options=moto_s3.options)
    with pytest.raises(RemoteMissing, match="does not exist"):  # a folder remote that is not there
        Remote(a, str(tmp_path / "nothing")).fetch()


def test_an_unreachable_s3_endpoint_fails_at_once(tmp_path: Path) -> None:
    from objstore.remote_fs import RemoteUnavailable

    from .servers import free_port

    url = "s3://bucket/data"
    a = make_store(tmp_path / "a", url, {"endpoint_url": f"http://127.0.0.1:{free_port()}",
                                        "key": "k", "secret": "s"})
    r = Remote(a)
    with pytest.raises(RemoteUnavailable, match="fetch did not complete: cannot reach the storage"):
        r.fetch()
    assert attempts(r) == 0, "one connection attempt before any request tells the host refuses"
    proc = ds("fetch", cwd=a.worktree, check=False)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "cannot reach the storage" in proc.stderr and "Traceback" not in proc.stderr


def test_an_unreachable_gcs_endpoint_is_one_line(tmp_path: Path) -> None:
    """gcsfs retries a refused connection itself and logs a traceback each time."""
    pytest.importorskip("gcsfs")
    from objstore.remote_fs import RemoteUnavailable

    from .servers import free_port

    a = make_store(tmp_path / "a", "gs://bucket/data", {"endpoint_url": f"http://127.0.0.1:{free_port()}",
                                                        "token": "anon"})
    proc = ds("fetch", cwd=a.worktree, check=False)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "cannot reach the storage" in proc.stderr and "Traceback" not in proc.stderr
    r = Remote(a)
    with pytest.raises(RemoteUnavailable, match="cannot reach the storage"):
        r.fetch()
    assert attempts(r) == 0, "refused before gcsfs's own six tries"


def test_transient_errors_are_retried_within_a_budget(tmp_path: Path, monkeypatch) -> None:
    import errno

    from objstore.remote_fs import RemoteUnavailable

    monkeypatch.setattr(RemoteFS, "BACKOFF", 0.0)
    fs = RemoteFS(str(tmp_path / "r"))
    tries = []

    def flaky() -> bytes:
        tries.append(1)
        if len(tries) < 3:
            raise ConnectionResetError(errno.ECONNRESET, "reset")
        return b"ok"

    assert fs._call("get", flaky) == b"ok" and len(tries) == 3

    def slow() -> bytes:
        raise TimeoutError("slow")

    with pytest.raises(RemoteUnavailable, match="failed 4 time"):
        fs._call("get", slow)
    monkeypatch.setattr(RemoteFS, "RETRY_BUDGET", 0.0)  # no time left: no retry starts
    before = fs.requests["get"]
    with pytest.raises(RemoteUnavailable, match="failed 1 time"):
        fs._call("get", slow)
    assert fs.requests["get"] == before + 1


def test_errors_are_classified_by_type() -> None:
    import socket

    from objstore import remote_fs as rf

    bx = pytest.importorskip("botocore.exceptions")
    ax = pytest.importorskip("aiohttp.client_exceptions")
    ga = pytest.importorskip("google.auth.exceptions")
    az = pytest.importorskip("azure.core.exceptions")

    def client_error(code: str, status: int) -> Exception:
        return bx.ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")

    def wrapped(inner: Exception) -> Exception:  # how s3fs hands botocore's errors on
        outer = OSError(5, "wrapped")
        outer.__cause__ = inner
        return outer

    refused = ConnectionRefusedError(111, "refused")
    key = type("Key", (), {"ssl": None, "host": "h", "port": 1})()
    cases = [
        (bx.NoCredentialsError(), rf.CREDENTIALS),
        (ga.DefaultCredentialsError("none"), rf.CREDENTIALS),
        (wrapped(client_error("AccessDenied", 403)), rf.DENIED),
        (PermissionError(13, "denied"), rf.DENIED),
        (az.ClientAuthenticationError("bad key"), rf.DENIED),
        (wrapped(client_error("NoSuchBucket", 404)), rf.NO_BUCKET),
        (bx.EndpointConnectionError(endpoint_url="http://x", error=refused), rf.UNREACHABLE),
        (ax.ClientConnectorError(key, refused), rf.UNREACHABLE),
        (ax.ClientConnectorDNSError(key, socket.gaierror(socket.EAI_NONAME, "unknown")), rf.UNREACHABLE),
        (az.ServiceRequestError("no connection", error=refused), rf.UNREACHABLE),
        (refused, rf.UNREACHABLE),
        (OSError(28, "No space left on device"), rf.PERMANENT),
        (wrapped(client_error("InvalidArgument", 400)), rf.PERMANENT),
        (wrapped(client_error("SlowDown", 503)), rf.TRANSIENT),
        (wrapped(client_error("InternalError", 500)), rf.TRANSIENT),
        (ax.ClientConnectorDNSError(key, socket.gaierror(socket.EAI_AGAIN, "try again")), rf.TRANSIENT),
        (ConnectionResetError(104, "reset"), rf.TRANSIENT),
        (TimeoutError("slow"), rf.TRANSIENT),
        (bx.ConnectTimeoutError(endpoint_url="http://x"), rf.TRANSIENT),
    ]
    for error, kind in cases:
        assert rf.classify(error, "s3") == kind, (error, kind)
    forbidden = OSError("Forbidden: b/data/config\nno access")  # gcsfs has no type for 403
    assert rf.classify(forbidden, "gcs") == rf.DENIED and rf.classify(forbidden, "s3") == rf.TRANSIENT


# -- 5. resuming an interrupted push -----------------------------------------------------
def fail_put(monkeypatch, prefix: str, nth: int = 1) -> None:
    """The ``nth`` upload under ``prefix`` fails as a push losing its service does; the
    uploads before and beside it (packs go up in parallel) land whole."""
    from objstore.remote_fs import RemoteUnavailable

    real, seen = RemoteFS.put, []

    def put(self: RemoteFS, rel: str, data) -> None:
        if rel.startswith(prefix):
            seen.append(rel)
            if len(seen) == nth:
                raise RemoteUnavailable(f"remote {self.url}: push did not complete: injected")
        real(self, rel, data)

    monkeypatch.setattr(RemoteFS, "put", put)


def big_store(path: Path, url: str, opts: dict) -> Store:
    """Nine random files of 110 KB in packs of about two files each (five packs)."""
    import random
    from dataclasses import replace

    a = make_store(path, url, opts)
    a.set_config(replace(a.config, pack_target=200_000))
    rnd = random.Random(5)
    for i in range(9):
        write(a.worktree, f"d/f{i}.bin", rnd.randbytes(110_000))
    commit_all(a, "v1")
    return a


def test_push_interrupted_before_its_index_resends_no_pack(tmp_path: Path, backend, monkeypatch) -> None:
    from objstore.remote_fs import RemoteUnavailable

    url, opts = backend
    a = big_store(tmp_path / "a", url, opts)
    with monkeypatch.context() as m:
        fail_put(m, "index/")
        with pytest.raises(RemoteUnavailable):
            Remote(a).push()
    assert len(RemoteFS(url, opts).list("packs")) == 5  # every pack landed, none is indexed
    write(a.worktree, "new.txt", "a small change meanwhile")
    commit_all(a, "v2")
    t = Remote(a).push()
    assert t.packs == 1 and t.bytes_sent < 30_000, t  # the new chunk's pack, metadata, index
    assert not any((a.path / "remotes" / "origin" / "sent").iterdir())  # nothing left to resume
    assert Remote(a).push().bytes_sent == 0
    b, _t = clone(url, str(tmp_path / "b"), options=opts or None)
    assert read_tree(b.worktree) == read_tree(a.worktree)
    assert fsck_remote(a, "origin", read_data_subset=1.0)["ok"]


def test_push_interrupted_among_its_packs_sends_only_the_rest(tmp_path: Path, monkeypatch) -> None:
    from objstore.remote_fs import RemoteUnavailable

    url = str(tmp_path / "r")
    a = big_store(tmp_path / "a", url, {})
    with monkeypatch.context() as m:
        fail_put(m, "packs/", nth=5)
        with pytest.raises(RemoteUnavailable):
            Remote(a, workers=1).push()  # one upload at a time: four packs land, the last fails
    assert len(RemoteFS(url, {}).list("packs")) == 4
    write(a.worktree, "new.txt", "a small change meanwhile")
    commit_all(a, "v2")
    t = Remote(a).push()
    assert t.packs == 1 and t.bytes_sent < 150_000, t  # the file that did not land, and the change
    b, _t = clone(url, str(tmp_path / "b"))
    assert read_tree(b.worktree) == read_tree(a.worktree)
    assert fsck_remote(a, "origin", read_data_subset=1.0)["ok"]


def test_a_noted_pack_that_is_gone_is_sent_again(tmp_path: Path, monkeypatch) -> None:
    """A remote gc may remove an unindexed pack after its grace period: its note is dropped."""
    from objstore.remote_fs import RemoteUnavailable

    url = str(tmp_path / "r")
    a = big_store(tmp_path / "a", url, {})
    with monkeypatch.context() as m:
        fail_put(m, "index/")
        with pytest.raises(RemoteUnavailable):
            Remote(a).push()
    for p in (tmp_path / "r" / "packs").rglob("*.pack"):
        p.unlink()
    t = Remote(a).push()
    assert t.packs == 5
    b, _t = clone(url, str(tmp_path / "b"))
    assert read_tree(b.worktree) == read_tree(a.worktree)


def test_refs_that_cannot_both_be_stored_do_not_block_the_others(tmp_path: Path, moto_s3) -> None:
    """An object store may hold refs/heads/a and refs/heads/a/b; git can hold only one."""
    url = f"s3://{moto_s3.new_bucket()}/data"
    a = published(tmp_path, url, moto_s3.options)
    fs = RemoteFS(url, moto_s3.options)
    fs.put("refs/heads/a", (a.head() + "\n").encode())
    fs.put("refs/heads/a/b", (a.head() + "\n").encode())
    t = Remote(a).fetch()
    assert "refs/heads/main" in t.refs and "refs/heads/a" in t.refs
    assert any("refs/heads/a/b" in w and "cannot be stored" in w for w in t.warnings)
