"""A folder remote writes as the local store does: each file to a temp name that is fsynced,
renamed into place, and then its folder fsynced, so a crash (power loss) right after a push
leaves every pack, index fragment, metadata pack and ref it reported either whole or absent,
never empty or lost. Checked by recording the fsync and rename calls: no timing involved.
"""

from __future__ import annotations

import os
from pathlib import Path

import fsspec
import pytest

from objstore.backend import LocalBackend
from objstore.backend_fsspec import FolderBackend
from objstore.remote import Remote
from objstore.worktree import commit_all

from .conftest import write
from .test_remote import make_store


class Calls:
    """fsync (of a file or folder, by path) and rename calls, in order."""

    def __init__(self, monkeypatch) -> None:
        self.events: list[tuple[str, ...]] = []
        real_fsync, real_replace, real_rename = os.fsync, os.replace, os.rename

        def fsync(fd: int) -> None:
            self.events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
            real_fsync(fd)

        def replace(src, dst, **kw) -> None:
            real_replace(src, dst, **kw)
            self.events.append(("rename", os.fspath(src), os.fspath(dst)))

        def rename(src, dst, **kw) -> None:  # fsspec's local mv
            real_rename(src, dst, **kw)
            self.events.append(("rename", os.fspath(src), os.fspath(dst)))

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(os, "rename", rename)

    def assert_durable(self, target: str) -> None:
        """``target`` was renamed into place from a temp file fsynced before, and its folder
        was fsynced after."""
        at = next((i for i, e in enumerate(self.events) if e[0] == "rename" and e[2] == target), None)
        assert at is not None, f"{target} was not renamed into place"
        tmp = self.events[at][1]
        assert os.path.dirname(tmp) == os.path.dirname(target)  # beside it: the rename is atomic
        assert ("fsync", tmp) in self.events[:at], f"{target}: its content was not fsynced before the rename"
        assert ("fsync", os.path.dirname(target)) in self.events[at + 1:], (
            f"{target}: its folder was not fsynced after the rename")


def test_a_push_to_a_folder_remote_fsyncs_every_file_it_writes(tmp_path: Path, monkeypatch) -> None:
    url = str(tmp_path / "remote")
    s = make_store(tmp_path / "a", url, {})
    write(s.worktree, "d/a.txt", "one")
    write(s.worktree, "b.bin", os.urandom(300_000))
    commit_all(s, "v1")
    calls = Calls(monkeypatch)
    t = Remote(s).push()
    assert t.packs == 1 and t.meta_packs == 1 and t.refs == ["refs/heads/main"]
    root = Path(url)
    (pack,) = root.glob("packs/*/*.pack")
    (fragment,) = root.glob("index/*.idx")
    meta = sorted(root.glob("meta/pack-*"))
    assert len(meta) == 2  # .pack and .idx
    for path in (pack, fragment, *meta, root / "config", root / "refs/heads/main"):
        calls.assert_durable(str(path))


def test_a_ref_update_on_a_folder_remote_is_fsynced(tmp_path: Path, monkeypatch) -> None:
    url = str(tmp_path / "remote")
    s = make_store(tmp_path / "a", url, {})
    write(s.worktree, "a.txt", "one")
    commit_all(s, "v1")
    Remote(s).push()
    write(s.worktree, "a.txt", "two")
    commit_all(s, "v2")
    calls = Calls(monkeypatch)
    Remote(s).push()  # moves refs/heads/main by compare-and-swap
    assert (Path(url) / "refs/heads/main").read_text().strip() == s.head()
    calls.assert_durable(str(Path(url) / "refs/heads/main"))


@pytest.mark.parametrize("kind", ["local", "wrapped"])
def test_each_folder_backend_fsyncs_writes_and_swaps(tmp_path: Path, monkeypatch, kind: str) -> None:
    """``LocalBackend`` and ``FolderBackend`` (the same through a wrapping fsspec filesystem),
    from bytes and from a file."""
    root = tmp_path / "r"
    backend = LocalBackend(root) if kind == "local" else FolderBackend(fsspec.filesystem("file"), str(root))
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 1000)
    calls = Calls(monkeypatch)
    backend.write("packs/ab/one.pack", b"data")
    backend.write("meta/pack-1.pack", src)
    backend.swap_ref("refs/heads/main", b"a" * 40 + b"\n", None)
    for rel in ("packs/ab/one.pack", "meta/pack-1.pack", "refs/heads/main"):
        calls.assert_durable(str(root / rel))
    assert backend.read("meta/pack-1.pack") == b"x" * 1000
    assert sorted(backend.list("")) == ["meta/pack-1.pack", "packs/ab/one.pack", "refs/heads/main",
                                        "refs/heads/main.lock"]


def test_a_file_removed_while_a_folder_is_listed_is_left_out(tmp_path: Path, monkeypatch) -> None:
    """A finished writer's lock or temp file may go between the folder listing and its stat:
    the listing leaves it out and lists the rest (an error there would fail whatever listed:
    a push checking the locks, a fetch listing the refs)."""
    backend = LocalBackend(tmp_path / "r")
    backend.write("locks/shared-a.json", b"{}")
    backend.write("locks/shared-b.json", b"{}")
    real_walk = os.walk

    def walk(top, *args, **kwargs):
        for dirpath, dirs, files in real_walk(top, *args, **kwargs):
            if "shared-a.json" in files:
                os.unlink(os.path.join(dirpath, "shared-a.json"))  # its holder finished meanwhile
            yield dirpath, dirs, files

    monkeypatch.setattr(os, "walk", walk)
    assert list(backend.list("locks")) == ["locks/shared-b.json"]


@pytest.mark.parametrize("durable", [True, False])
def test_a_deletion_is_made_durable_before_the_next_step(tmp_path: Path, monkeypatch, durable: bool):
    """gc deletes old index fragments, then the packs they named: each deletion's folder is
    fsynced before ``delete`` returns, so a power loss cannot keep a fragment naming a pack
    whose deletion survived."""
    import objstore.backend as backend_mod

    b = LocalBackend(tmp_path / "remote", durable=durable)
    for rel in ("index/a.idx", "index/b.idx", "packs/ab/ab1.pack"):
        b.write(rel, b"x")
    synced: list[Path] = []
    monkeypatch.setattr(backend_mod, "fsync_dir", lambda path: synced.append(Path(path)))
    b.delete(["index/a.idx", "index/b.idx", "index/gone.idx"])
    assert synced == ([tmp_path / "remote" / "index"] if durable else [])
    assert sorted(b.list("")) == ["packs/ab/ab1.pack"]
