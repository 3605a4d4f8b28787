"""What a remote sends is data to check, not to trust: bad refs and dataset records are
skipped with a warning (never stored), remote URLs that would land in a working folder
are refused, permanent remote errors fail at once, and an interrupted push resumes
without sending again what already landed whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from objstore.errors import DsError
from objstore.maintenance import gc
from objstore.remote import Remote, clone, fsck_remote, pull
from objstore.remote_fs import RemoteFS
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
                   dict(good, commit=good["commit"][:39] + "0")):
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
