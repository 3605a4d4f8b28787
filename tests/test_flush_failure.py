"""A pack that fails to publish (the disk fills at its last write) leaves no temp file:
what it holds whole is salvaged at once and indexed by the next flush, and the error
names where the disk is full."""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path

import pytest

from objstore import packs
from objstore.chunkstore import ChunkStore
from objstore.hashing import XXH3_128
from objstore.packs import encode_chunk


def _temp_files(folder: Path) -> list[str]:
    return sorted(f for _d, _s, files in os.walk(folder) for f in files if f.startswith(".tmp-"))


def _full_at_publish(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first fsync of a pack being published fails as a full disk does."""
    real, failed = os.fsync, []

    def fsync(fd: int) -> None:
        if not failed and os.readlink(f"/proc/self/fd/{fd}").rsplit("/", 1)[-1].startswith(".tmp-"):
            failed.append(fd)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(packs.os, "fsync", fsync)


def test_a_publish_that_fails_is_salvaged_and_leaves_no_temp_file(tmp_path: Path, monkeypatch) -> None:
    chunks = ChunkStore(tmp_path / "s", XXH3_128)
    rnd = random.Random(5)
    data = [rnd.randbytes(rnd.randint(100, 5000)) for _ in range(20)]
    ids = [XXH3_128.digest(d) for d in data]
    for chunk_id, raw in zip(ids, data, strict=True):
        stored, flags = encode_chunk(raw, 3)
        assert chunks.put_encoded(chunk_id, stored, len(raw), flags)
    _full_at_publish(monkeypatch)
    with pytest.raises(OSError) as failed:
        chunks.flush()
    assert failed.value.errno == errno.ENOSPC
    assert str(chunks.packs_dir) in str(failed.value)  # says where the disk is full
    assert _temp_files(tmp_path / "s") == []
    assert all(chunks.has(c) for c in ids)  # salvaged whole: the records were all written
    assert chunks.flush() == len(ids)  # the next flush indexes them
    fresh = ChunkStore(tmp_path / "s", XXH3_128)
    assert [fresh.get(c) for c in ids] == data


def test_a_publish_that_cannot_be_salvaged_removes_its_temp_file(tmp_path: Path, monkeypatch) -> None:
    chunks = ChunkStore(tmp_path / "s", XXH3_128)
    raw = b"x" * 3000
    stored, flags = encode_chunk(raw, 3)
    chunk_id = XXH3_128.digest(raw)
    chunks.put_encoded(chunk_id, stored, len(raw), flags)
    _full_at_publish(monkeypatch)

    def no_room(*_a, **_k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ChunkStore, "_seal", no_room)
    with pytest.raises(OSError):
        chunks.flush()
    assert _temp_files(tmp_path / "s") == []
    assert not chunks.has(chunk_id)  # never yes for a chunk no flush will index
    assert chunks.flush() == 0


def test_a_pack_in_place_whose_folder_sync_fails_is_indexed_by_the_next_flush(
        tmp_path: Path, monkeypatch) -> None:
    """The pack was renamed into place; only syncing its folder failed. Its chunks must
    stay pending (``has`` says yes), so the next flush indexes them, never dropped."""
    chunks = ChunkStore(tmp_path / "s", XXH3_128)
    raw = b"y" * 4000
    stored, flags = encode_chunk(raw, 3)
    chunk_id = XXH3_128.digest(raw)
    chunks.put_encoded(chunk_id, stored, len(raw), flags)
    real, failed = packs.fsync_dir, []

    def fsync_dir(path) -> None:
        if not failed:
            failed.append(path)
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(path)

    monkeypatch.setattr(packs, "fsync_dir", fsync_dir)
    with pytest.raises(OSError):
        chunks.flush()
    assert failed and chunks.has(chunk_id)
    assert chunks.flush() == 1
    assert ChunkStore(tmp_path / "s", XXH3_128).get(chunk_id) == raw
