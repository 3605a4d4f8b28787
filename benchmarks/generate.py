"""Deterministic benchmark data for objstore (``ds``).

Data sets
---------
* **S** (small): ``n_files`` files (default 20000) of 1-8 KiB spread over 200
  folders (60 top-level, 100 nested one level, 40 nested two levels). Half the
  files are random bytes (``*.bin``), half CSV-like text (``*.csv``).
* **L** (large): ``random.bin`` (random bytes) and ``table.csv`` (CSV-like
  text that zstd -3 compresses ~4-6x), each ``size`` bytes (default 128 MiB).
* **S1M** (a million small files): ``n_files`` files (default 1000000) of
  512-1536 bytes (~1 KiB on average), 1000 per folder in two levels
  (``pNNN/qNNNN``), half random bytes, half CSV-like text. Files are generated
  in batches of 1000, each from its own seeded ``random.Random``, and written
  from a thread pool; the bytes do not depend on the number of threads.
* **I** (change set), applied in place to a *copy* of S, S1M or L:
  S and S1M: 1% of the files modified, 1% added, 1% removed;
  L: 1 MiB of rows appended to ``table.csv`` and 100 random bytes inserted in
  the middle of ``random.bin``.

CLI::

    python -m benchmarks.generate small DIR [--files 20000] [--seed 0]
    python -m benchmarks.generate large DIR [--mib 128] [--seed 0]
    python -m benchmarks.generate million DIR [--files 1000000] [--seed 0] [--threads N]
    python -m benchmarks.generate change DIR [--seed 0]    # S or L, detected
    python -m benchmarks.generate digest DIR [DIR ...]
    python -m benchmarks.generate selfcheck                 # determinism check

Determinism (same seed -> byte-identical output)
------------------------------------------------
* Every byte comes from ``random.Random`` instances seeded with a string
  derived from the user seed and a purpose tag (``"objstore-bench/<seed>/small"``
  ...); string seeds are hashed with SHA-512 by ``random``, so they are
  independent of ``PYTHONHASHSEED``. No clock, PID, ``os.urandom``, set or
  dict-of-unordered-keys iteration is involved.
* Only ``randbytes``, ``randrange``, ``choices``, ``sample``, ``shuffle`` and
  ``random`` are used, always with the same call sequence; block sizes are
  fixed constants, so the stream is consumed identically on every run.
  (CPython keeps these stable within a minor version; the check below is the
  authority.)
* The change set lists existing files with a sorted walk that skips dot-entries
  (``.dsstore``, ``.git``), so it is the same whatever the tool stored there.

Check it::

    python -m benchmarks.generate selfcheck
    # generates S (500 files) and L (2 x 2 MiB) twice into temporary folders,
    # applies the change set to each, and compares tree digests (SHA-256 over
    # sorted relative paths + contents); generates S1M (2500 files) with 1 and
    # with 4 threads and compares those; exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import os
import random
import shutil
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB

SMALL_MIN = 1 * KIB
SMALL_MAX = 8 * KIB
N_TOP, N_MID, N_DEEP = 60, 100, 40  # 200 folders in total
MILLION_FILES = 1_000_000
MILLION_MIN, MILLION_MAX = 512, 1536  # ~1 KiB on average
MILLION_BATCH = 1000  # files per folder, per seeded generator and per pool task
MILLION_FANOUT = 32  # leaf folders per top-level folder
BLOCK = 4 * MIB  # fixed generation block for large files
LARGE_RANDOM = "random.bin"
LARGE_TEXT = "table.csv"
CHANGE_FRACTION = 0.01
APPEND_BYTES = 1 * MIB
INSERT_BYTES = 100
CSV_HEADER = b"id,date,item,city,qty,price,status,score\n"
SKIP_PREFIX = "."  # dot-entries (.dsstore, .git, temp files) are never data


def _rng(seed: int | str, purpose: str) -> random.Random:
    return random.Random(f"objstore-bench/{seed}/{purpose}")


# --------------------------------------------------------------------------
# CSV-like text
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class CsvPools:
    """Pre-rendered row halves; a row is ``id,left,right`` from two pools."""

    left: tuple[str, ...]
    right: tuple[str, ...]


def make_pools(seed: int | str, size: int = 8192) -> CsvPools:
    rng = _rng(seed, "csv-pools")
    syllables = ["ka", "lo", "mi", "ne", "ra", "to", "su", "vi",
                 "de", "ba", "po", "gu", "xe", "fa", "zi", "ho"]
    words = [
        "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4)))
        for _ in range(3000)
    ]
    cities = words[:200]
    statuses = ["ok", "late", "void", "open"]
    epoch = datetime.date(2015, 1, 1)
    left = []
    for _ in range(size):
        day = epoch + datetime.timedelta(days=rng.randrange(3650))
        left.append(
            f"{day.isoformat()},{rng.choice(words)} {rng.choice(words)},"
            f"{rng.choice(cities)}"
        )
    right = [
        f"{rng.randrange(1, 1000)},{rng.randrange(100, 10_000_000) / 100:.2f},"
        f"{rng.choice(statuses)},{rng.random():.4f}"
        for _ in range(size)
    ]
    return CsvPools(tuple(left), tuple(right))


def csv_rows(rng: random.Random, pools: CsvPools, start_id: int, nbytes: int) -> bytes:
    """Exactly ``nbytes`` of CSV rows (ids from ``start_id``), ending in a newline."""
    if nbytes <= 0:
        return b""
    parts: list[bytes] = []
    have = 0
    row_id = start_id
    while have < nbytes:
        k = max(8, (nbytes - have) // 50 + 1)
        lefts = rng.choices(pools.left, k=k)
        rights = rng.choices(pools.right, k=k)
        text = "".join(
            [f"{row_id + i},{a},{b}\n" for i, (a, b) in enumerate(zip(lefts, rights, strict=True))]
        ).encode("ascii")
        row_id += k
        parts.append(text)
        have += len(text)
    data = b"".join(parts)[:nbytes]
    return data[:-1] + b"\n"


def iter_random_blocks(rng: random.Random, size: int) -> Iterator[bytes]:
    left = size
    while left > 0:
        n = min(BLOCK, left)
        yield rng.randbytes(n)
        left -= n


def iter_csv_blocks(
    rng: random.Random, pools: CsvPools, size: int, start_id: int = 0
) -> Iterator[bytes]:
    """CSV text in ~BLOCK pieces; row ids keep counting so no block repeats."""
    left = size
    row_id = start_id
    first = True
    while left > 0:
        n = min(BLOCK, left)
        if first:
            head = CSV_HEADER[:n]
            body = csv_rows(rng, pools, row_id, n - len(head))
            block = head + body
            first = False
        else:
            block = csv_rows(rng, pools, row_id, n)
        row_id += block.count(b"\n") + 1
        yield block
        left -= n


def random_data(size: int, seed: int | str = 0) -> bytes:
    """``size`` random bytes, same as the content of L's ``random.bin``."""
    return b"".join(iter_random_blocks(_rng(seed, "large-random"), size))


def csv_data(size: int, seed: int | str = 0) -> bytes:
    """``size`` bytes of CSV-like text, same as the content of L's ``table.csv``."""
    pools = make_pools(seed)
    return b"".join(iter_csv_blocks(_rng(seed, "large-text"), pools, size))


# --------------------------------------------------------------------------
# Data sets
# --------------------------------------------------------------------------


@dataclass
class DatasetInfo:
    kind: str
    root: str
    seed: int
    files: int
    bytes: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def folder_layout(seed: int | str) -> list[str]:
    """200 relative folder paths: 60 top-level, 100 depth 2, 40 depth 3."""
    rng = _rng(seed, "layout")
    top = [f"t{i:02d}" for i in range(N_TOP)]
    mid = [f"{rng.choice(top)}/s{i:03d}" for i in range(N_MID)]
    deep = [f"{rng.choice(mid)}/u{i:02d}" for i in range(N_DEEP)]
    return top + mid + deep


def _small_file_bytes(
    rng: random.Random, pools: CsvPools, kind: str, size: int, id_base: int
) -> bytes:
    if kind == "bin":
        return rng.randbytes(size)
    return CSV_HEADER + csv_rows(rng, pools, id_base, size - len(CSV_HEADER))


def _new_root(root: str | os.PathLike[str]) -> Path:
    """The folder a data set is written into, made if missing."""
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    return base


def generate_small(root: str | os.PathLike[str], n_files: int = 20000,
                   seed: int = 0) -> DatasetInfo:
    """Write data set S under ``root`` (created; must be empty or absent)."""
    base = _new_root(root)
    folders = folder_layout(seed)
    for rel in folders:
        (base / rel).mkdir(parents=True, exist_ok=True)
    rng = _rng(seed, "small")
    pools = make_pools(seed)
    kinds = ["bin"] * (n_files // 2) + ["csv"] * (n_files - n_files // 2)
    rng.shuffle(kinds)
    total = 0
    for i, kind in enumerate(kinds):
        size = rng.randint(SMALL_MIN, SMALL_MAX)
        data = _small_file_bytes(rng, pools, kind, size, i * 1000)
        (base / folders[i % len(folders)] / f"f{i:06d}.{kind}").write_bytes(data)
        total += len(data)
    return DatasetInfo("small", str(base), seed, n_files, total)


def _million_batch(base: Path, seed: int, pools: CsvPools, batch: int, n_files: int) -> int:
    """Write files ``batch * MILLION_BATCH ..`` (at most ``n_files`` in all); returns bytes."""
    rng = _rng(seed, f"million/{batch}")
    folder = base / f"p{batch // MILLION_FANOUT:03d}" / f"q{batch:04d}"
    folder.mkdir(parents=True, exist_ok=True)
    first = batch * MILLION_BATCH
    total = 0
    for i in range(first, min(first + MILLION_BATCH, n_files)):
        kind = "bin" if rng.random() < 0.5 else "csv"
        size = rng.randint(MILLION_MIN, MILLION_MAX)
        data = _small_file_bytes(rng, pools, kind, size, i * 100)
        _write_small(folder / f"m{i:07d}.{kind}", data)
        total += len(data)
    return total


def _write_small(path: Path, data: bytes) -> None:
    """open/write/close and nothing else (``open()`` adds an fstat and an ioctl per file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def generate_million(root: str | os.PathLike[str], n_files: int = MILLION_FILES,
                     seed: int = 0, threads: int | None = None) -> DatasetInfo:
    """Write data set S1M: ``n_files`` files of ~1 KiB, 1000 per folder, from a thread pool.

    Batch ``b`` (files ``1000 b .. 1000 b + 999``) draws from its own generator, so the
    output is the same for any number of threads (writes release the GIL and overlap)."""
    base = _new_root(root)
    pools = make_pools(seed)
    batches = range((n_files + MILLION_BATCH - 1) // MILLION_BATCH)
    workers = threads or min(8, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        total = sum(pool.map(lambda b: _million_batch(base, seed, pools, b, n_files), batches))
    return DatasetInfo("million", str(base), seed, n_files, total)


def generate_large(root: str | os.PathLike[str], size: int = 128 * MIB,
                   seed: int = 0) -> DatasetInfo:
    """Write data set L (``random.bin`` + ``table.csv``, ``size`` bytes each)."""
    base = _new_root(root)
    with open(base / LARGE_RANDOM, "wb") as f:
        for block in iter_random_blocks(_rng(seed, "large-random"), size):
            f.write(block)
    pools = make_pools(seed)
    with open(base / LARGE_TEXT, "wb") as f:
        for block in iter_csv_blocks(_rng(seed, "large-text"), pools, size):
            f.write(block)
    return DatasetInfo("large", str(base), seed, 2, 2 * size)


# --------------------------------------------------------------------------
# Change set I
# --------------------------------------------------------------------------


@dataclass
class ChangeStats:
    kind: str
    modified_files: int = 0
    added_files: int = 0
    removed_files: int = 0
    bytes_added_files: int = 0  # content of new files
    bytes_modified: int = 0  # bytes written/inserted/appended into existing files
    bytes_removed_files: int = 0
    bytes_modified_files: int = 0  # full size (after) of every modified file
    details: list[str] = field(default_factory=list)

    @property
    def bytes_changed(self) -> int:
        """New information: added-file bytes + bytes written into modified files."""
        return self.bytes_added_files + self.bytes_modified

    @property
    def bytes_touched(self) -> int:
        """Whole size of every added or modified file (a file-level store's minimum)."""
        return self.bytes_added_files + self.bytes_modified_files

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = asdict(self)
        d["bytes_changed"] = self.bytes_changed
        d["bytes_touched"] = self.bytes_touched
        return d


def list_data_files(root: str | os.PathLike[str]) -> list[str]:
    """Sorted relative POSIX paths of regular files, skipping dot-entries."""
    base = Path(root)
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(SKIP_PREFIX))
        rel_dir = Path(dirpath).relative_to(base)
        for name in sorted(filenames):
            if name.startswith(SKIP_PREFIX):
                continue
            out.append((rel_dir / name).as_posix())
    out.sort()
    return out


def is_large_set(root: str | os.PathLike[str]) -> bool:
    base = Path(root)
    return (base / LARGE_RANDOM).is_file() and (base / LARGE_TEXT).is_file()


def change_small(root: str | os.PathLike[str], seed: int = 0) -> ChangeStats:
    base = Path(root)
    files = list_data_files(base)
    rng = _rng(seed, "change-small")
    pools = make_pools(seed)
    k = max(1, round(len(files) * CHANGE_FRACTION))
    picked = rng.sample(files, min(len(files), 2 * k))
    modified, removed = sorted(picked[:k]), sorted(picked[k:])
    st = ChangeStats("small")
    for rel in modified:
        path = base / rel
        if rel.endswith(".bin"):
            size = path.stat().st_size
            span = min(size, rng.randint(64, 512))
            off = rng.randrange(0, size - span + 1)
            with open(path, "r+b") as f:
                f.seek(off)
                f.write(rng.randbytes(span))
            st.bytes_modified += span
            st.bytes_modified_files += size
        else:
            data = path.read_bytes()
            line_starts = [i + 1 for i in range(len(data) - 1) if data[i] == 0x0A]
            at = rng.choice(line_starts) if line_starts else len(data)
            row = csv_rows(rng, pools, 10_000_000 + rng.randrange(10**6), 60)
            new = data[:at] + row + data[at:]
            path.write_bytes(new)
            st.bytes_modified += len(row)
            st.bytes_modified_files += len(new)
        st.modified_files += 1
    for rel in removed:
        path = base / rel
        st.bytes_removed_files += path.stat().st_size
        path.unlink()
        st.removed_files += 1
    folders = sorted({str(Path(rel).parent.as_posix()) for rel in files})
    for j in range(k):
        kind = "bin" if j % 2 == 0 else "csv"
        size = rng.randint(SMALL_MIN, SMALL_MAX)
        data = _small_file_bytes(rng, pools, kind, size, 20_000_000 + j * 1000)
        (base / rng.choice(folders) / f"new{j:06d}.{kind}").write_bytes(data)
        st.bytes_added_files += len(data)
        st.added_files += 1
    return st


def change_large(root: str | os.PathLike[str], seed: int = 0) -> ChangeStats:
    base = Path(root)
    rng = _rng(seed, "change-large")
    pools = make_pools(seed)
    st = ChangeStats("large")
    # 1 MiB of rows appended to the text file.
    text = base / LARGE_TEXT
    with open(text, "ab") as f:
        f.write(csv_rows(rng, pools, 900_000_000, APPEND_BYTES))
    st.bytes_modified += APPEND_BYTES
    st.bytes_modified_files += text.stat().st_size
    st.details.append(f"{LARGE_TEXT}: appended {APPEND_BYTES} bytes")
    # 100 random bytes inserted in the middle of the random file.
    src = base / LARGE_RANDOM
    size = src.stat().st_size
    mid = size // 2
    tmp = base / f".{LARGE_RANDOM}.tmp"
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        left = mid
        while left > 0:
            buf = fin.read(min(BLOCK, left))
            if not buf:
                break
            fout.write(buf)
            left -= len(buf)
        fout.write(rng.randbytes(INSERT_BYTES))
        shutil.copyfileobj(fin, fout, BLOCK)
    shutil.copymode(src, tmp)
    os.replace(tmp, src)
    st.bytes_modified += INSERT_BYTES
    st.bytes_modified_files += size + INSERT_BYTES
    st.details.append(f"{LARGE_RANDOM}: inserted {INSERT_BYTES} bytes at {mid}")
    st.modified_files = 2
    return st


def apply_changes(root: str | os.PathLike[str], seed: int = 0) -> ChangeStats:
    """Apply change set I in place; L if ``random.bin``+``table.csv`` exist, else S."""
    return change_large(root, seed) if is_large_set(root) else change_small(root, seed)


# --------------------------------------------------------------------------
# Digests
# --------------------------------------------------------------------------


def tree_digest(root: str | os.PathLike[str]) -> str:
    """SHA-256 over sorted (relative path, size, content) of data files."""
    base = Path(root)
    h = hashlib.sha256()
    for rel in list_data_files(base):
        path = base / rel
        h.update(rel.encode("utf-8") + b"\0")
        h.update(str(path.stat().st_size).encode("ascii") + b"\0")
        with open(path, "rb") as f:
            while buf := f.read(MIB):
                h.update(buf)
    return h.hexdigest()


def selfcheck() -> bool:
    """Generate S and L twice (+ change set) and compare digests."""
    ok = True
    with tempfile.TemporaryDirectory(prefix="objstore-gen-check-") as tmp:
        t = Path(tmp)
        first: dict[str, tuple[str, str]] = {}
        for kind in ("small", "large"):
            digests: list[tuple[str, str]] = []
            for run in ("a", "b"):
                d = t / f"{kind}-{run}"
                if kind == "small":
                    generate_small(d, n_files=500, seed=7)
                else:
                    generate_large(d, size=2 * MIB, seed=7)
                before = tree_digest(d)
                apply_changes(d, seed=7)
                digests.append((before, tree_digest(d)))
            first[kind] = digests[0]
            same = digests[0] == digests[1]
            changed = digests[0][0] != digests[0][1]
            print(f"{kind}: generated {digests[0][0][:16]} changed "
                  f"{digests[0][1][:16]} identical={same} change_applied={changed}")
            ok = ok and same and changed
        million = [t / "million-1", t / "million-4"]
        generate_million(million[0], n_files=2500, seed=7, threads=1)
        generate_million(million[1], n_files=2500, seed=7, threads=4)
        m_same = tree_digest(million[0]) == tree_digest(million[1])
        print(f"million: 1 thread == 4 threads: {m_same}")
        ok = ok and m_same
        other = t / "small-seed8"
        generate_small(other, n_files=500, seed=8)
        differs = tree_digest(other) != first["small"][0]
        print(f"different seed gives different data: {differs}")
        ok = ok and differs
    return ok


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.generate",
                                description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    ps = sub.add_parser("small", help="generate data set S")
    ps.add_argument("dir")
    ps.add_argument("--files", type=int, default=20000)
    ps.add_argument("--seed", type=int, default=0)
    pl = sub.add_parser("large", help="generate data set L")
    pl.add_argument("dir")
    pl.add_argument("--mib", type=int, default=128, help="size of each file in MiB")
    pl.add_argument("--seed", type=int, default=0)
    pm = sub.add_parser("million", help="generate data set S1M (~1 KiB files, thread pool)")
    pm.add_argument("dir")
    pm.add_argument("--files", type=int, default=MILLION_FILES)
    pm.add_argument("--seed", type=int, default=0)
    pm.add_argument("--threads", type=int, default=None, help="writer threads (default 2 x CPUs, <= 8)")
    pc = sub.add_parser("change", help="apply change set I in place (S, S1M or L)")
    pc.add_argument("dir")
    pc.add_argument("--seed", type=int, default=0)
    pd = sub.add_parser("digest", help="print tree digests")
    pd.add_argument("dirs", nargs="+")
    sub.add_parser("selfcheck", help="verify same seed -> identical bytes")
    a = p.parse_args(argv)

    if a.cmd == "small":
        info = generate_small(a.dir, a.files, a.seed)
        print(f"S: {info.files} files, {info.bytes} bytes in {info.root}")
    elif a.cmd == "large":
        info = generate_large(a.dir, a.mib * MIB, a.seed)
        print(f"L: {info.files} files, {info.bytes} bytes in {info.root}")
    elif a.cmd == "million":
        info = generate_million(a.dir, a.files, a.seed, a.threads)
        print(f"S1M: {info.files} files, {info.bytes} bytes in {info.root}")
    elif a.cmd == "change":
        st = apply_changes(a.dir, a.seed)
        print(f"I ({st.kind}): modified {st.modified_files}, added {st.added_files}, "
              f"removed {st.removed_files}; bytes changed {st.bytes_changed}, "
              f"touched {st.bytes_touched}")
    elif a.cmd == "digest":
        for d in a.dirs:
            print(f"{tree_digest(d)}  {d}")
    elif a.cmd == "selfcheck":
        ok = selfcheck()
        print("OK" if ok else "MISMATCH")
        return 0 if ok else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
