"""gc over the one engine: what each side keeps of its own, and what they now share.

- A remote gc's dry run reports the bytes the real run frees (one count for both sides:
  the packs that go, less the live chunks moved out of them).
- Locally a chunk lives where the index says: a second copy elsewhere (a killed writer's
  pack) is garbage, even when that pack would otherwise be the fuller one, since delta
  bases are marked from the index.
- The one roller leaves no temp pack behind when reading what it writes fails.
- A remote gc checks its lease before every write and delete: a lease it cannot prove
  stops it with nothing changed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from objstore.chunkstore import roll_packs
from objstore.errors import CorruptObject
from objstore.maintenance import fsck, gc
from objstore.remote import Remote
from objstore.remote_fs import RemoteLocked
from objstore.remote_gc import gc_remote
from objstore.repository import LocalRepository
from objstore.store import Store
from objstore.worktree import commit_all

from .conftest import read_tree, write
from .test_remote_gc import _remote_with_garbage, checked, listing


def test_a_remote_dry_run_reports_the_bytes_the_real_run_frees(tmp_path: Path) -> None:
    pristine = tmp_path / "pristine"
    a = _remote_with_garbage(tmp_path, str(pristine), {})
    dry = gc_remote(a, grace_seconds=0, dry_run=True)
    done = gc_remote(a, grace_seconds=0)
    assert done.packs_rewritten >= 1 and done.bytes_freed > 0
    assert (dry.bytes_freed, dry.chunks_dropped, dry.packs_deleted, dry.packs_rewritten) == (
        done.bytes_freed, done.chunks_dropped, done.packs_deleted, done.packs_rewritten)
    checked(tmp_path, str(pristine), {})


def test_local_gc_keeps_the_copy_the_index_names(store: Store, work: Path) -> None:
    for i in range(4):
        write(work, f"f{i}.bin", bytes([i]) * 30_000 + Path(__file__).read_bytes())
    write(work, "dead.bin", b"d" * 5_000)
    commit_all(store, "v1")
    (work / "dead.bin").unlink()
    commit_all(store, "v2")  # the one pack: live but for dead.bin, so kept whole
    repo = LocalRepository(store)
    [(indexed, rows)] = repo.pack_rows(sorted(repo.packs(repo.listing())))
    live = sorted(((c, loc) for c, loc in rows.items() if loc.raw_len > 5_000), key=lambda r: -r[1].offset)
    with store.locked():  # the live records again, as a killed writer leaves them: no fragment names them
        [copy], _rows = roll_packs(store.chunks.packs_dir, store.algo, 1 << 30,
                                   ((c, s, loc.raw_len, loc.flags) for c, loc, s in repo.read_chunks(live)))
    assert copy.stem != indexed  # wholly live: by its live share alone, it would be the one kept
    before = dict(store.chunks.index)
    report = gc(Store(store.path), reflog_grace=None)
    assert (report.packs_deleted, report.packs_rewritten) == (1, 0)
    assert not copy.exists() and dict(Store(store.path).chunks.index) == before
    assert fsck(Store(store.path), read_data=True).ok


def test_the_roller_leaves_no_temp_pack_when_a_read_fails(store: Store, work: Path) -> None:
    write(work, "a.bin", b"a" * 50_000)
    commit_all(store, "v1")
    repo = LocalRepository(store)
    items = sorted(dict(store.chunks.index).items(), key=lambda r: (r[1].pack, r[1].offset))

    def chunks():
        for c, loc, stored in repo.read_chunks(items):
            yield c, stored, loc.raw_len, loc.flags
        raise CorruptObject("a record failed verification")

    with pytest.raises(CorruptObject):
        roll_packs(store.chunks.packs_dir, store.algo, 1 << 30, chunks())
    assert not list(store.chunks.packs_dir.glob(".tmp-*"))
    assert len(list(store.chunks.packs_dir.glob("*/*.pack"))) == 1


class LostLease:
    """A lease that can no longer be proven fresh."""

    def check(self) -> None:
        raise RemoteLocked("our lock could not be refreshed in time")


def test_a_remote_write_or_delete_first_checks_the_lease(tmp_path: Path) -> None:
    url = str(tmp_path / "remote")
    a = _remote_with_garbage(tmp_path, url, {})
    before = listing(url, {})
    repo = Remote(a)
    repo.lease = LostLease()
    rows = sorted(repo.index(), key=lambda r: (r[1].pack, r[1].offset))[:2]
    with pytest.raises(RemoteLocked):
        repo.write_packs((c, s, loc.raw_len, loc.flags) for c, loc, s in repo.read_chunks(rows))
    with pytest.raises(RemoteLocked):
        repo.put_fragment(rows, [])
    with pytest.raises(RemoteLocked):
        repo.delete(["index/" + repo.fragments()[0]])
    repo.delete([])  # nothing to delete: nothing to check
    assert listing(url, {}) == before


def test_a_local_gc_with_a_pack_that_fails_to_read_changes_nothing(store: Store, work: Path,
                                                                   tmp_path: Path) -> None:
    write(work, "a.bin", b"a" * 50_000)
    commit_all(store, "v1")
    write(work, "a.bin", b"b" * 50_000)
    commit_all(store, "v2")
    [pack, *_] = sorted(store.chunks.packs_dir.glob("*/*.pack"))
    data = bytearray(pack.read_bytes())
    data[-1] ^= 0xFF  # the footer: its table of contents can no longer be read
    pack.write_bytes(bytes(data))
    shutil.copytree(store.path, tmp_path / "before")
    with pytest.raises(Exception, match="pack"):
        gc(Store(store.path), reflog_grace=None)
    assert read_tree(store.path / "packs") == read_tree(tmp_path / "before" / "packs")
    assert read_tree(store.path / "index") == read_tree(tmp_path / "before" / "index")
