"""Small files reach the pool in batches: the answer must be exactly that of one task per
file, in the same order, with a failure inside a batch surfacing where it happened."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from objstore import ingest
from objstore.chunking import ChunkParams
from objstore.chunkstore import ChunkStore
from objstore.hashing import XXH3_128
from objstore.ingest import Ingestor, Job
from objstore.manifest import FileEntry
from objstore.scan import Stat

PARAMS = ChunkParams(avg_size=64 * 1024, min_size=16 * 1024, max_size=256 * 1024)


def _files(root: Path, n: int, seed: int = 1) -> list[str]:
    rnd = random.Random(seed)
    names = []
    for i in range(n):
        name = f"d{i % 3}/f{i:03}.bin"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(rnd.randbytes(rnd.randint(0, 9000)) if i % 5 else b"same text\n" * 50)
        names.append(name)
    return names


def _jobs(root: Path, names: list[str]) -> list[Job]:
    return [Job(n, Stat.of(os.lstat(root / n)), str(root)) for n in names]


def _run(tmp: Path, root: Path, names: list[str]) -> tuple[list[tuple[str, FileEntry]], ChunkStore]:
    chunks = ChunkStore(tmp, XXH3_128)
    seen: list[tuple[str, FileEntry]] = []
    Ingestor(chunks, PARAMS, 3, workers=2).run(_jobs(root, names), sink=lambda j, e: seen.append((j.path, e)))
    chunks.flush()
    return seen, chunks


def test_batches_give_the_entries_and_order_of_one_task_per_file(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "w"
    names = _files(root, 150)  # several full batches and a remainder
    batched, store_a = _run(tmp_path / "a", root, names)
    monkeypatch.setattr(ingest, "BATCH_FILES", 1)
    single, store_b = _run(tmp_path / "b", root, names)
    assert [p for p, _e in batched] == names  # emitted in job order
    assert batched == single
    for _path, entry in batched:
        assert all(store_a.get(c) == store_b.get(c) for c, _n in entry.chunk_list())


def test_a_batch_is_cut_by_bytes_as_well_as_by_count(tmp_path: Path, monkeypatch) -> None:
    root = tmp_path / "w"
    names = _files(root, 40)
    sizes: list[int] = []
    real = Ingestor._small_batch

    def spy(self: Ingestor, jobs: list[Job]) -> list:
        sizes.append(sum(j.stat.size for j in jobs))
        return real(self, jobs)

    monkeypatch.setattr(Ingestor, "_small_batch", spy)
    monkeypatch.setattr(ingest, "BATCH_BYTES", 20_000)
    _run(tmp_path / "s", root, names)
    biggest = max(os.path.getsize(root / n) for n in names)
    assert len(sizes) > 2 and all(s < 20_000 + biggest for s in sizes)
    assert sum(sizes) == sum(os.path.getsize(root / n) for n in names)


def test_a_failure_inside_a_batch_surfaces_after_the_files_before_it(tmp_path: Path) -> None:
    root = tmp_path / "w"
    names = _files(root, 20)
    jobs = _jobs(root, names)
    os.unlink(root / names[7])  # gone between the scan and the read
    chunks = ChunkStore(tmp_path / "s", XXH3_128)
    seen: list[str] = []
    with pytest.raises(FileNotFoundError):
        Ingestor(chunks, PARAMS, 3, workers=2).run(jobs, sink=lambda j, e: seen.append(j.path))
    assert seen == names[:7]  # as with one task per file: everything before it, nothing after


def test_a_small_file_that_grew_before_it_was_read_is_cut_as_a_large_one(tmp_path: Path) -> None:
    root = tmp_path / "w"
    names = _files(root, 10)
    jobs = _jobs(root, names)
    grown = random.Random(3).randbytes(1024 * 1024)
    (root / names[4]).write_bytes(grown)  # after its job was made: the job says small
    seen, chunks = _run_jobs(tmp_path / "s", jobs)
    entry = seen[names[4]]
    assert entry.size == len(grown) and len(entry.chunk_list()) > 1
    assert b"".join(chunks.get(c) for c, _n in entry.chunk_list()) == grown
    assert set(seen) == set(names)


def _run_jobs(tmp: Path, jobs: list[Job]) -> tuple[dict[str, FileEntry], ChunkStore]:
    chunks = ChunkStore(tmp, XXH3_128)
    seen: dict[str, FileEntry] = {}
    Ingestor(chunks, PARAMS, 3, workers=2).run(jobs, sink=lambda j, e: seen.__setitem__(j.path, e))
    chunks.flush()
    return seen, chunks
