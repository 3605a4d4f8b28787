"""External-file entries from a remote are data: they never make this machine read a local file.

A hostile remote is built on disk (a folder and moto's S3): versions whose external entries
name ``file://`` URLs, bare absolute paths and a ``ds://`` URL that leads back to itself.
Every way of making a copy or reading in place (clone, pull, get, get_local_copy,
get_mutable_local_copy, ``ds://``) must refuse them with a clear error, and no byte of the
local file may land anywhere. Links the user made in their own store keep working, and
``-o allow_local_links=true`` on a remote lets that remote's links through.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import fsspec
import pytest

from objstore import Dataset
from objstore.errors import DsError
from objstore.manifest import EXTERNAL, FileEntry
from objstore.remote import Remote
from objstore.store import Store
from objstore.tree_edit import TreeEditor
from objstore.worktree import commit_all

from .conftest import ds, write

MARK = b"local-secret-" + os.urandom(8).hex().encode()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch) -> None:
    """No test may reach the per-user store: ``ds://`` and the SDK look at DSSTORE_DIR."""
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "nobody" / ".dsstore"))
    monkeypatch.delenv("DSSTORE_REMOTE", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A file only this machine has: the thing a hostile remote wants."""
    return write(tmp_path / "private", "secret.txt", MARK + b"\n")


@pytest.fixture(params=["folder", "s3"])
def backend(request, tmp_path: Path) -> tuple[str, dict]:
    if request.param == "folder":
        return str(tmp_path / "remote"), {}
    server = request.getfixturevalue("moto_s3")
    return f"s3://{server.new_bucket()}/data", server.options


def plant(store: Store, editor: TreeEditor, urls: dict[str, str]) -> None:
    """External entries written the way a remote's version holds them: the URL is the one chunk."""
    for path, url in urls.items():
        data = url.encode()
        cid = store.algo.digest(data)
        store.chunks.put_encoded(cid, data, len(data), 0)
        editor.set(path, FileEntry(path.rpartition("/")[2], EXTERNAL, 0, cid, ((cid, len(data)),)))


def commit_links(store: Store, urls: dict[str, str], message: str) -> str:
    with store.locked():
        editor = TreeEditor(store.meta, store.head_tree())
        plant(store, editor, urls)
        store.chunks.flush()
        store.set_stage(editor.write())
    return store.commit(message).id


def dataset_with_links(project: str, name: str, urls) -> Dataset:
    """A finalized dataset whose entries are ``urls`` (a dict, or a function of the new id)."""
    d = Dataset.create(dataset_name=name, dataset_project=project)
    wanted = urls(d.id) if callable(urls) else urls

    def change(editor: TreeEditor) -> int:
        plant(d._store, editor, wanted)
        return len(wanted)

    d._edit(change)
    d.upload()
    d.finalize()
    return d


def evil_urls(secret: Path) -> dict[str, str]:
    return {"ext/by_url.txt": f"file://{secret}", "ext/by_path.txt": str(secret)}


class Hostile:
    """What the hostile remote holds (ids to ask for)."""

    def __init__(self, evil: str, loop_commit: str, evil_ds: str, loop_ds: str):
        self.evil, self.loop_commit, self.evil_ds, self.loop_ds = evil, loop_commit, evil_ds, loop_ds


def build_hostile(root: Path, url: str, opts: dict, secret: Path, monkeypatch) -> Hostile:
    """main: a plain file and two entries naming the secret; tag ``loop``: an entry whose URL is
    itself (``ds://@loop/loop.txt``); datasets p/evil and p/loop the same. All pushed to ``url``."""
    h = Store.init(root)
    h.set_config(replace(h.config, remote="origin",
                         remotes={"origin": {"url": url, **({"options": opts} if opts else {})}}))
    write(root, "readme.txt", "hello\n")
    commit_all(h, "plain")
    evil = commit_links(h, evil_urls(secret), "links")
    loop = commit_links(h, {"loop.txt": "ds://@loop/loop.txt"}, "loop")
    h.tag("loop", loop)
    h.meta.set_ref("refs/heads/main", evil, force=True)
    Remote(h, "origin").push(all_refs=True)
    monkeypatch.setenv("DSSTORE_DIR", str(root / ".dsstore"))
    evil_ds = dataset_with_links("p", "evil", evil_urls(secret))
    loop_ds = dataset_with_links("p", "loop", lambda i: {"loop.txt": f"ds://p/loop@{i}/loop.txt"})
    monkeypatch.setenv("DSSTORE_DIR", str(root.parent / "nobody" / ".dsstore"))
    h.close()
    return Hostile(evil, loop, evil_ds.id, loop_ds.id)


def option_args(opts: dict, allow: bool = False) -> list[str]:
    pairs = {**opts, **({"allow_local_links": "true"} if allow else {})}
    return [a for k, v in pairs.items() for a in ("-o", f"{k}={v}")]


def victim_store(path: Path, url: str, opts: dict, allow: bool = False) -> Store:
    s = Store.init(path)
    options = {**opts, **({"allow_local_links": True} if allow else {})}
    s.set_config(replace(s.config, remote="origin",
                         remotes={"origin": {"url": url, **({"options": options} if options else {})}}))
    return s


def leaked(root: Path, secret: Path) -> list[str]:
    """Every file under ``root`` (links not followed) holding the secret's bytes, but the secret."""
    out = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            p = Path(dirpath, name)
            if p == secret or p.is_symlink() or not p.is_file():
                continue
            if MARK in p.read_bytes():
                out.append(str(p))
    return out


def assert_refused(text: str, path: str, url: str) -> None:
    assert path in text and url in text, text
    assert "allow_local_links" in text, text  # the fix is named
    assert "Traceback" not in text and "RecursionError" not in text, text


# -- a hostile remote ---------------------------------------------------------------------------
def test_hostile_remote_cannot_make_this_machine_read_local_files(tmp_path: Path, backend, secret: Path,
                                                                  monkeypatch) -> None:
    url, opts = backend
    hostile = build_hostile(tmp_path / "hostile", url, opts, secret, monkeypatch)

    # ds clone: refused, and nothing is left behind
    r = ds("clone", url, "cloned", *option_args(opts), cwd=tmp_path, check=False)
    assert r.returncode != 0
    assert_refused(r.stderr, "ext/by_path.txt", str(secret))
    assert not (tmp_path / "cloned").exists()

    # ds pull into a new store
    victim = tmp_path / "victim"
    victim_store(victim, url, opts).close()
    r = ds("pull", cwd=victim, check=False)
    assert r.returncode != 0
    assert_refused(r.stderr, "ext/by_path.txt", str(secret))
    assert sorted(p.name for p in victim.iterdir()) == [".dsstore"]

    # ds get, one entry at a time: each is refused by name
    for path, link in evil_urls(secret).items():
        r = ds("get", hostile.evil, str(tmp_path / "copy"), "--include", path, cwd=victim, check=False)
        assert r.returncode != 0
        assert_refused(r.stderr, path, link)
    r = ds("get", "loop", str(tmp_path / "copy"), "--include", "loop.txt", cwd=victim, check=False)
    assert r.returncode != 0
    assert_refused(r.stderr, "loop.txt", "ds://@loop/loop.txt")
    assert not (tmp_path / "copy").exists()

    # the SDK on another machine, the remote as its default
    monkeypatch.setenv("DSSTORE_DIR", str(victim / ".dsstore"))
    monkeypatch.setenv("DSSTORE_REMOTE", "origin")
    got = Dataset.get(dataset_id=hostile.evil_ds)
    with pytest.raises(DsError, match="allow_local_links") as e:
        got.get_local_copy()
    assert "ext/by_path.txt" in str(e.value) and str(secret) in str(e.value)
    with pytest.raises(DsError, match="allow_local_links"):
        got.get_mutable_local_copy(tmp_path / "mutable")
    with pytest.raises(DsError, match="allow_local_links") as e:
        Dataset.get(dataset_id=hostile.loop_ds).get_local_copy()
    assert "loop.txt" in str(e.value)

    # ds:// read in place, through the victim's store and through a private cache store
    for fs in (fsspec.filesystem("ds", store=str(victim), remote="origin", skip_instance_cache=True),
               fsspec.filesystem("ds", remote=url, remote_options=opts, cache_dir=str(tmp_path / "cache"),
                                 skip_instance_cache=True)):
        for path, link in evil_urls(secret).items():
            with pytest.raises(DsError, match="allow_local_links") as e:
                fs.cat_file(f"p/evil@{hostile.evil_ds}/{path}")
            assert path in str(e.value) and link in str(e.value)
            with pytest.raises(DsError, match="allow_local_links"), \
                    fs.open(f"p/evil@{hostile.evil_ds}/{path}", "rb") as f:
                f.read()
        with pytest.raises(DsError, match="allow_local_links"):
            fs.cat_file(f"p/loop@{hostile.loop_ds}/loop.txt")

    assert leaked(tmp_path, secret) == []


def test_allow_local_links_lets_that_remote_link_local_files(tmp_path: Path, backend, secret: Path,
                                                             monkeypatch, request) -> None:
    url, opts = backend
    hostile = build_hostile(tmp_path / "trusted", url, opts, secret, monkeypatch)

    r = ds("clone", url, "cloned", *option_args(opts, allow=True), cwd=tmp_path, check=False)
    assert r.returncode == 0, r.stderr
    for path in evil_urls(secret):
        assert (tmp_path / "cloned" / path).read_bytes() == secret.read_bytes()

    # a self-reference is a clear error even when the remote may link anything
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "cloned" / ".dsstore"))  # what ds://@loop reads
    r = ds("get", "loop", str(tmp_path / "copy"), cwd=tmp_path / "cloned", check=False)
    assert r.returncode != 0
    assert "loop.txt" in r.stderr and "ds://@loop/loop.txt" in r.stderr and "itself" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "RecursionError" not in r.stderr

    victim = tmp_path / "victim"
    victim_store(victim, url, opts, allow=True).close()
    r = ds("pull", cwd=victim, check=False)
    assert r.returncode == 0, r.stderr
    assert (victim / "ext/by_url.txt").read_bytes() == secret.read_bytes()

    monkeypatch.setenv("DSSTORE_DIR", str(victim / ".dsstore"))
    monkeypatch.setenv("DSSTORE_REMOTE", "origin")
    copy = Path(Dataset.get(dataset_id=hostile.evil_ds).get_local_copy())
    assert (copy / "ext/by_path.txt").read_bytes() == secret.read_bytes()
    with pytest.raises(DsError, match="itself"):
        Dataset.get(dataset_id=hostile.loop_ds).get_local_copy()
    fs = fsspec.filesystem("ds", store=str(victim), remote="origin", skip_instance_cache=True)
    assert fs.cat_file(f"p/evil@{hostile.evil_ds}/ext/by_url.txt") == secret.read_bytes()
    with pytest.raises(DsError, match="itself"):
        fs.cat_file(f"p/loop@{hostile.loop_ds}/loop.txt")
    # remote options given to ds:// in memory count as well
    fs = fsspec.filesystem("ds", remote=url, remote_options={**opts, "allow_local_links": True},
                           cache_dir=str(tmp_path / "cache"), skip_instance_cache=True)
    assert fs.cat_file(f"p/evil@{hostile.evil_ds}/ext/by_path.txt") == secret.read_bytes()


def test_the_opt_in_holds_for_that_remote_only(tmp_path: Path, secret: Path, monkeypatch) -> None:
    other = write(tmp_path / "private", "other.txt", MARK + b" other\n")
    build_hostile(tmp_path / "t", str(tmp_path / "t-remote"), {}, secret, monkeypatch)
    h = Store.init(tmp_path / "h")
    h.set_config(replace(h.config, remote="origin", remotes={"origin": {"url": str(tmp_path / "h-remote")}}))
    evil = commit_links(h, {"grab.txt": f"file://{other}"}, "grab")
    Remote(h, "origin").push(all_refs=True)

    victim = tmp_path / "victim"
    s = Store.init(victim)
    s.set_config(replace(s.config, remote="stranger", remotes={
        "team": {"url": str(tmp_path / "t-remote"), "options": {"allow_local_links": True}},
        "stranger": {"url": str(tmp_path / "h-remote")}}))
    s.close()
    ds("pull", "team", cwd=victim)
    assert (victim / "ext/by_url.txt").read_bytes() == secret.read_bytes()
    ds("fetch", "stranger", cwd=victim)
    r = ds("get", evil, str(tmp_path / "copy"), cwd=victim, check=False)
    assert r.returncode != 0
    assert_refused(r.stderr, "grab.txt", f"file://{other}")
    assert "team already allows local links" in r.stderr and "ds fsck --remote team" in r.stderr, r.stderr
    assert not (tmp_path / "copy").exists()


def test_opting_in_after_a_refusal(tmp_path: Path, secret: Path, monkeypatch) -> None:
    url = str(tmp_path / "remote")
    build_hostile(tmp_path / "hostile", url, {}, secret, monkeypatch)
    victim = tmp_path / "victim"
    victim_store(victim, url, {}).close()
    assert ds("pull", cwd=victim, check=False).returncode != 0  # the URL chunks are local now
    ds("remote", "remove", "origin", cwd=victim)  # which forgets what the remote held
    ds("remote", "add", "origin", url, "-o", "allow_local_links=true", cwd=victim)
    # the pull's fetch reads the remote's index again (no `ds fsck --remote` needed): the
    # remote now trusted holds those URL chunks
    ds("pull", cwd=victim)
    assert (victim / "ext/by_path.txt").read_bytes() == secret.read_bytes()


def test_a_refused_pull_leaves_the_working_folder_as_it_was(tmp_path: Path, secret: Path) -> None:
    h = Store.init(tmp_path / "h")
    h.set_config(replace(h.config, remote="origin", remotes={"origin": {"url": str(tmp_path / "r")}}))
    write(h.worktree, "keep.txt", "k\n")
    write(h.worktree, "gone.txt", "g\n")
    commit_all(h, "one")
    Remote(h, "origin").push(all_refs=True)
    ds("clone", str(tmp_path / "r"), "v", cwd=tmp_path)
    (h.worktree / "gone.txt").unlink()
    commit_all(h, "two")
    commit_links(h, {"grab.txt": f"file://{secret}"}, "grab")
    Remote(h, "origin").push(all_refs=True)
    r = ds("pull", cwd=tmp_path / "v", check=False)
    assert r.returncode != 0
    assert_refused(r.stderr, "grab.txt", f"file://{secret}")
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == [".dsstore", "gone.txt", "keep.txt"]
    assert "gone.txt" not in ds("status", cwd=tmp_path / "v").stdout


# -- links the user made -------------------------------------------------------------------------
def test_links_made_in_this_store_keep_working(tmp_path: Path, secret: Path, monkeypatch) -> None:
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "mine" / ".dsstore"))
    d = Dataset.create(dataset_name="n", dataset_project="p")
    assert d.add_external_files(f"file://{secret}", dataset_path="by_url") == 1
    assert d.add_external_files(str(secret), dataset_path="by_path") == 1
    d.upload(output_url=str(tmp_path / "remote"))
    d.finalize()
    copy = Path(d.get_local_copy())
    assert (copy / "by_url/secret.txt").read_bytes() == secret.read_bytes()
    assert (copy / "by_path/secret.txt").read_bytes() == secret.read_bytes()
    out = Path(Dataset.get(dataset_id=d.id).get_mutable_local_copy(tmp_path / "mutable"))
    assert (out / "by_path/secret.txt").read_bytes() == secret.read_bytes()
    fs = fsspec.filesystem("ds", skip_instance_cache=True)
    assert fs.cat_file(f"p/n@{d.id}/by_url/secret.txt") == secret.read_bytes()
    # a link made while a ds:// session is open is seen by that session
    later = write(tmp_path / "private", "later.txt", MARK + b" later\n")
    d2 = Dataset.create(dataset_name="n2", dataset_project="p")
    d2.add_external_files(str(later))
    d2.finalize()
    assert fs.cat_file(f"p/n2@{d2.id}/later.txt") == later.read_bytes()
    # the same links, read by another store from the remote: not this user's links there
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "theirs" / ".dsstore"))
    monkeypatch.setenv("DSSTORE_REMOTE", str(tmp_path / "remote"))
    with pytest.raises(DsError, match="allow_local_links"):
        Dataset.get(dataset_id=d.id).get_local_copy()


def test_self_referencing_links_are_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DSSTORE_DIR", str(tmp_path / "mine" / ".dsstore"))
    for rel in ("s.txt", "x/f.txt", "y/f.txt"):
        write(tmp_path / "data", rel, rel)
    base = Dataset.create(dataset_name="n", dataset_project="p")
    base.add_files(tmp_path / "data")
    base.finalize()
    # s.txt -> itself; x/f.txt -> y/f.txt -> x/f.txt; d/f.txt -> into that loop. "latest" is the
    # child once finalized; while it is a draft it is the base, so each link can be made.
    child = Dataset.create(dataset_name="n", dataset_project="p", parent_datasets=[base.id])
    child.add_external_files("ds://p/n@latest/s.txt", dataset_path="")
    child.add_external_files("ds://p/n@latest/y/f.txt", dataset_path="x")
    child.add_external_files("ds://p/n@latest/x/f.txt", dataset_path="y")
    child.add_external_files("ds://p/n@latest/x/f.txt", dataset_path="d")
    child.finalize()
    with pytest.raises(DsError, match="itself") as e:
        child.get_local_copy()
    assert "ds://p/n@latest/" in str(e.value)
    with pytest.raises(DsError, match="itself"):
        child.get_mutable_local_copy(tmp_path / "copy")
    fs = fsspec.filesystem("ds", skip_instance_cache=True)
    for path in ("s.txt", "x/f.txt", "y/f.txt", "d/f.txt"):
        with pytest.raises(DsError, match="itself") as e:
            fs.cat_file(f"p/n@{child.id}/{path}")
        assert path in str(e.value)
    assert not (tmp_path / "copy").exists()


# -- the rule itself -----------------------------------------------------------------------------
def test_which_urls_a_remote_may_name(tmp_path: Path) -> None:
    from objstore.links import LinkPolicy, LinkRefused

    s = Store.init(tmp_path / "s")
    s.set_config(replace(s.config, remotes={"hub": {"url": "sftp://host/x"},
                                            "near": {"url": str(tmp_path / "r")}}))
    policy = LinkPolicy(s.path, s.config)

    def allowed(url: str) -> bool:
        data = url.encode()
        try:
            policy.check("f.txt", url, s.algo.digest(data))
        except LinkRefused as e:
            assert "f.txt" in str(e) and repr(url) in str(e)  # quoted: a URL is untrusted text
            return False
        return True

    for url in ("https://example.com/a.csv", "http://example.com/a", "s3://b/k", "s3a://b/k", "gs://b/k",
                "gcs://b/k", "az://c/k", "abfs://c/k", "abfss://c/k", "sftp://host/y"):
        assert allowed(url), url
    for url in ("file:///etc/passwd", "/etc/passwd", "etc/passwd", "./x", "~/.ssh/id_rsa", "local:///etc/hosts",
                "FILE:///etc/passwd", "ds://@HEAD/a", "simplecache::s3://b/k", "s3://b/k::file:///etc/passwd",
                "zip://a::file:///tmp/z.zip", "memory://x", "C:\\Windows\\win.ini", "file://host/etc/passwd",
                "", "reference://x"):
        assert not allowed(url), url
    s.close()
