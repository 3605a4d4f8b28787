"""Chunks move one way in both directions: ``repository.copy_chunks(src, dst, ids)`` is what a
push (store to remote) and a fetch (remote to store) both run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from objstore.remote import Remote
from objstore.remote_fs import RemoteError
from objstore.repository import Chunk, LocalRepository, copy_chunks
from objstore.store import Store
from objstore.worktree import commit_all

from .conftest import write
from .test_remote import make_store


def _pushed(tmp_path: Path) -> tuple[Store, str, list[bytes]]:
    """A store with 30 files committed, its remote created; its chunk ids."""
    url = (tmp_path / "remote").as_uri()
    a = make_store(tmp_path / "a", url, {})
    for i in range(30):
        write(a.worktree, f"f{i:02d}", os.urandom(300 + i))
    commit_all(a, "v1")
    Remote(a).check_config(create=True)
    return a, url, sorted(c for c, _loc in a.chunks.index)


def test_copy_chunks_goes_both_ways_and_copies_only_what_is_lacking(tmp_path: Path) -> None:
    a, url, ids = _pushed(tmp_path)
    with a.locked():
        assert copy_chunks(LocalRepository(a), Remote(a), ids) == (len(ids), 1)
        assert copy_chunks(LocalRepository(a), Remote(a), ids) == (0, 0)
    b = make_store(tmp_path / "b", url, {})
    with b.locked():
        assert copy_chunks(Remote(b), LocalRepository(b), ids + ids[:3]) == (len(ids), 0)
    fresh = Store(b.path)  # what is durable and indexed, not what one process remembers
    assert {c: fresh.chunks.get(c) for c in ids} == {c: a.chunks.get(c) for c in ids}
    assert Remote(b).fetch_chunks(ids) == 0


class _Breaks(Remote):
    """A remote whose reads fail after ``after`` chunks (a connection lost mid-fetch)."""

    after = 0

    def read_whole(self, chunk_ids: list[bytes]) -> Iterator[Chunk]:
        for n, chunk in enumerate(super().read_whole(chunk_ids)):
            if n == self.after:
                raise RemoteError("connection lost")
            yield chunk


def test_a_fetch_keeps_what_arrived_before_a_failure(tmp_path: Path) -> None:
    a, url, ids = _pushed(tmp_path)
    Remote(a).push()
    b = make_store(tmp_path / "b", url, {})
    src = _Breaks(b)
    src.after = 10
    with b.locked(), pytest.raises(RemoteError):
        copy_chunks(src, LocalRepository(b), ids)
    fresh = Store(b.path)
    assert sum(fresh.chunks.has(c) for c in ids) == 10  # indexed, so never read again
    assert Remote(fresh).fetch_chunks(ids) == len(ids) - 10
    assert all(fresh.chunks.get(c) == a.chunks.get(c) for c in ids)


def test_a_push_sends_a_chunk_the_remote_lacks_and_nothing_else(tmp_path: Path) -> None:
    a, _url, ids = _pushed(tmp_path)
    Remote(a).push()
    write(a.worktree, "new", os.urandom(500))
    commit_all(a, "v2")
    t = Remote(a).push()
    assert (t.chunks, t.packs) == (1, 1)
    assert all(Remote(a).has(c) for c in ids)


def test_a_fetch_that_fails_reports_its_own_error_even_when_saving_fails_too(tmp_path: Path,
                                                                            monkeypatch) -> None:
    """The error that stopped a fetch is the one the user sees; a second failure while
    keeping what arrived (a full disk) must not replace it."""
    a, url, ids = _pushed(tmp_path)
    Remote(a).push()
    b = make_store(tmp_path / "b", url, {})
    src = _Breaks(b)
    src.after = 10
    local = LocalRepository(b)

    def full_disk() -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(local.chunks, "flush", full_disk)
    with b.locked(), pytest.raises(RemoteError):
        copy_chunks(src, local, ids)
