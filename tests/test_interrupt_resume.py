"""Interrupted writes keep their work; forged lengths are refused before anything is
allocated; a file cut short while `ds add` reads it is read again, never a crash.

The interrupted adds are the real `ds add` in a subprocess. It is frozen (SIGSTOP) once
the packs folder shows the state a test wants, the state is checked again while it
cannot move, and only then is the signal sent: no test races the clock.
"""

from __future__ import annotations

import os
import random
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import xxhash

from objstore import packs
from objstore.errors import CorruptObject, FormatError
from objstore.hashing import XXH3_128
from objstore.index import ChunkIndex, Fragment, Location
from objstore.packs import FLAG_ZSTD, PackEntry, PackWriter, decode_chunk, pack_path, read_pack_toc
from objstore.store import Store

from .conftest import DS, ds, write

MiB = 1 << 20
FILES, FILE_SIZE = 8, 32 * MiB
TOTAL = FILES * FILE_SIZE


# -- helpers -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """256 MiB of random hex text: compressible by half, so an add takes a few seconds."""
    root = tmp_path_factory.mktemp("corpus")
    rnd = random.Random(20)
    hexes = bytes.maketrans(bytes(range(256)), b"0123456789abcdef" * 16)
    for i in range(FILES):
        (root / f"f{i}.txt").write_bytes(rnd.randbytes(FILE_SIZE).translate(hexes))
    return root


def new_store(tmp_path: Path, corpus: Path, pack_target: int) -> Path:
    """A store over hard links to the corpus, rolling packs at ``pack_target``."""
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    for f in corpus.iterdir():
        os.link(f, work / "data" / f.name)
    ds("init", str(work), cwd=tmp_path)
    config = work / ".dsstore" / "config"
    text = re.sub(r"pack_target = \d+", f"pack_target = {pack_target}", config.read_text())
    config.write_text(text)
    return work


def packs_dir(work: Path) -> Path:
    return work / ".dsstore" / "packs"


def published(work: Path) -> list[Path]:
    return sorted(packs_dir(work).glob("*/*.pack"))


def temps(work: Path) -> list[Path]:
    return sorted(packs_dir(work).glob(".tmp-*"))


def freeze_when(proc: subprocess.Popen, ready: Callable[[], bool]) -> None:
    """Stop ``proc`` at a moment ``ready()`` holds; fails if it finishes first."""
    while True:
        assert proc.poll() is None, "the add finished before the state the test waits for"
        if ready():
            os.kill(proc.pid, signal.SIGSTOP)
            if ready() and proc.poll() is None:
                return
            os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.002)


def indexed(work: Path) -> list[tuple[bytes, Location]]:
    store = Store.open(work)
    try:
        return list(store.chunks.index)
    finally:
        store.close()


def new_bytes(proc: subprocess.CompletedProcess) -> int:
    m = re.search(r"(\d+) new bytes stored", proc.stderr)
    assert m, proc.stderr
    return int(m.group(1))


def assert_complete_and_unique(work: Path) -> None:
    """Every pack is indexed, no temp pack is left, and no chunk is stored twice."""
    assert temps(work) == []
    rows = indexed(work)
    assert {loc.pack for _c, loc in rows} == {p.stem for p in published(work)}
    assert sum(loc.raw_len for _c, loc in rows) == TOTAL
    in_packs = [e for p in published(work) for e in read_pack_toc(p)[1]]
    assert len(in_packs) == len({e.chunk_id for e in in_packs}) == len(rows)


# -- 1. interrupted adds keep their work ------------------------------------------------------
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signalled_add_indexes_its_work_and_the_next_add_goes_on(tmp_path, corpus, sig) -> None:
    work = new_store(tmp_path, corpus, pack_target=4 * MiB)
    proc = subprocess.Popen([DS, "add", "-q", "data"], cwd=work, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        freeze_when(proc, lambda: len(published(work)) >= 2 and bool(temps(work)))
        os.kill(proc.pid, sig)
        os.kill(proc.pid, signal.SIGCONT)
        _out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Interrupted"), err
    assert temps(work) == [], "the pack being written is flushed, not left behind"
    rows = indexed(work)
    assert {loc.pack for _c, loc in rows} == {p.stem for p in published(work)}
    kept = sum(loc.raw_len for _c, loc in rows)
    assert kept >= 8 * MiB  # at least the two packs seen, and the one being written
    again = ds("add", "data", cwd=work)
    assert new_bytes(again) == TOTAL - kept, "what the first add stored is not stored again"
    assert_complete_and_unique(work)


def test_after_sigkill_the_next_add_salvages_complete_records(tmp_path, corpus) -> None:
    work = new_store(tmp_path, corpus, pack_target=48 * MiB)
    proc = subprocess.Popen([DS, "add", "-q", "data"], cwd=work,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        freeze_when(proc, lambda: bool(published(work)) and any(
            p.stat().st_size >= 8 * MiB for p in temps(work)))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    assert indexed(work) == [], "killed before it indexed anything"
    left_raw = sum(e.raw_len for p in published(work) for e in read_pack_toc(p)[1])
    (tmp,) = [p for p in temps(work) if p.suffix == ".pack"]
    assert packs.journal_path(tmp).stat().st_size > 0, "the journal lists its complete records"
    # every complete record of the temp pack is kept: all but the one cut short (at most
    # a chunk's stored bytes) and the record headers
    tmp_floor = tmp.stat().st_size - 2 * MiB
    again = ds("add", "data", cwd=work)
    assert new_bytes(again) <= TOTAL - left_raw - tmp_floor
    assert_complete_and_unique(work)


def test_salvage_leaves_a_live_writers_temp_pack_alone(tmp_path) -> None:
    """Only what a dead writer left is salvaged: a pack being written is locked by its writer."""
    from objstore.chunkstore import ChunkStore

    root = tmp_path / "s"
    live = ChunkStore(root, XXH3_128)
    raws = [random.Random(i).randbytes(MiB) for i in range(3)]  # past the write buffer: on disk
    for raw in raws:
        live.put_encoded(XXH3_128.digest(raw), raw, len(raw), 0)
    other = ChunkStore(root, XXH3_128)
    other.recover()
    assert len(sorted((root / "packs").glob(".tmp-*.pack"))) == 1
    assert not other.has(XXH3_128.digest(raws[0]))
    assert live.flush() == 3
    other.index.reload()
    assert all(other.has(XXH3_128.digest(raw)) for raw in raws)
    other.close()
    live.close()


class _CutShort:
    """A pack file whose next write stops half way, as Ctrl-C between two statements would."""

    def __init__(self, f):
        self._f = f

    def write(self, data) -> int:
        self._f.write(bytes(data[: len(data) // 2]))
        raise KeyboardInterrupt

    def __getattr__(self, name):
        return getattr(self._f, name)


def test_a_write_cut_short_keeps_the_records_before_it(tmp_path) -> None:
    from objstore.chunkstore import ChunkStore

    store = ChunkStore(tmp_path, XXH3_128)
    raws = [random.Random(40 + i).randbytes(100_000) for i in range(5)]  # not journaled yet
    for raw in raws[:4]:
        assert store.put_encoded(XXH3_128.digest(raw), raw, len(raw), 0)
    store._writer._f = _CutShort(store._writer._f)
    with pytest.raises(KeyboardInterrupt):
        store.put_encoded(XXH3_128.digest(raws[4]), raws[4], len(raws[4]), 0)
    assert store.keep() == 4  # the complete records, verified, sealed into a pack and indexed
    assert sorted((tmp_path / "packs").glob(".tmp-*")) == []
    again = ChunkStore(tmp_path, XXH3_128)
    assert [again.get(XXH3_128.digest(raw)) == raw for raw in raws[:4]] == [True] * 4
    assert not again.has(XXH3_128.digest(raws[4]))
    (pack,) = sorted((tmp_path / "packs").glob("*/*.pack"))
    assert XXH3_128.digest(pack.read_bytes()).hex() == pack.stem
    again.close()
    store.close()


def unfinished_pack(folder: Path, raws: list[bytes]) -> tuple[Path, list[PackEntry]]:
    """What a writer killed before its table of contents leaves: the records of a temp pack
    and its journal (the table of contents so far). Built from a finished pack's bytes."""
    w = PackWriter(folder / "src", XXH3_128)
    for raw in raws:
        stored, flags = packs.encode_chunk(raw, 3)
        w.add(XXH3_128.digest(raw), stored, len(raw), flags)
    pack_hex, entries = w.finish()
    data = pack_path(folder / "src", pack_hex).read_bytes()
    toc_offset = packs.FOOTER.unpack_from(data, len(data) - packs.FOOTER.size)[0]
    path = folder / ".tmp-x.pack"
    path.write_bytes(data[:toc_offset])
    packs.journal_path(path).write_bytes(data[toc_offset : len(data) - packs.FOOTER.size])
    return path, entries


def test_scan_records_verifies_each_record_and_stops_at_the_first_bad_one(tmp_path) -> None:
    raws = [random.Random(i).randbytes(3000 + i) for i in range(5)] + [b"abc" * 5000]
    path, entries = unfinished_pack(tmp_path, raws)
    data = path.read_bytes()
    assert list(packs.scan_records(path, XXH3_128, packs.MAX_RAW)) == entries
    path.write_bytes(data[: entries[3].offset + entries[3].stored_len - 1])  # cut in record 3
    assert list(packs.scan_records(path, XXH3_128, packs.MAX_RAW)) == entries[:3]
    damaged = bytearray(data)
    damaged[entries[1].offset + 10] ^= 0xFF  # record 1 no longer matches its id
    path.write_bytes(bytes(damaged))
    assert list(packs.scan_records(path, XXH3_128, packs.MAX_RAW)) == entries[:1]
    path.write_bytes(data)  # a record over the bound is refused before it is decoded
    assert list(packs.scan_records(path, XXH3_128, 4000)) == entries[:5]
    journal = packs.journal_path(path)
    toc = journal.read_bytes()
    journal.write_bytes(toc[: 2 * len(toc) // len(entries) + 5])  # the journal ends inside entry 2
    assert list(packs.scan_records(path, XXH3_128, packs.MAX_RAW)) == entries[:2]
    journal.unlink()
    with pytest.raises(FormatError, match="journal"):
        list(packs.scan_records(path, XXH3_128, packs.MAX_RAW))


# -- 2. a remote cannot make readers allocate gigabytes -----------------------------------------
HUGE = 2**32 - 1


@pytest.fixture(scope="module")
def zeros_frame() -> bytes:
    """A 128 KiB zstd frame that expands to 4 GiB - 1 zero bytes (and says so)."""
    import zstandard

    z = zstandard.ZstdCompressor(level=1).compressobj(size=HUGE)
    block, left, out = bytes(16 * MiB), HUGE, []
    while left:
        n = min(left, len(block))
        out.append(z.compress(block if n == len(block) else block[:n]))
        left -= n
    out.append(z.flush())
    return b"".join(out)


def forge_pack(folder: Path, records: list[tuple[bytes, bytes, int, int]]) -> str:
    """A pack built by hand (so no writer check stands in the way); returns its hex."""
    body, toc = bytearray(packs.HEADER.pack(packs.MAGIC, XXH3_128.code)), bytearray()
    for cid, stored, raw_len, flags in records:
        toc += cid + packs.TOC_TAIL.pack(len(body), len(stored), raw_len, flags)
        body += stored
    data = bytes(body + toc) + packs.FOOTER.pack(len(body), len(records), XXH3_128.code,
                                                 xxhash.xxh3_128_digest(bytes(toc)), packs.END_MAGIC)
    name = XXH3_128.digest(data).hex()
    path = pack_path(folder, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return name


def forge_fragment(folder: Path, rows: list[tuple[bytes, Location]]) -> Path:
    """An index fragment built by hand: lengths are whatever the rows claim."""
    from objstore import index as idx

    rows = sorted(rows)
    pack_names = list(dict.fromkeys(loc.pack for _c, loc in rows))
    fan = [0] * 256
    for cid, _loc in rows:
        fan[cid[0]] += 1
    for i in range(1, 256):
        fan[i] += fan[i - 1]
    body = b"".join([
        idx.HEADER.pack(idx.MAGIC, XXH3_128.code, XXH3_128.size, len(pack_names), len(rows)),
        b"".join(bytes.fromhex(p) for p in pack_names), idx.FANOUT.pack(*fan),
        b"".join(c for c, _l in rows),
        b"".join(idx.LOC.pack(pack_names.index(loc.pack), loc.offset, loc.stored_len, loc.raw_len,
                              loc.flags) for _c, loc in rows)])
    data = body + xxhash.xxh3_128_digest(body)
    path = folder / f"{data[-16:].hex()}.idx"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_a_huge_raw_length_is_refused_where_it_is_read(tmp_path, zeros_frame, monkeypatch) -> None:
    cid = b"\x42" * 16
    name = forge_pack(tmp_path / "packs", [(cid, zeros_frame, HUGE, FLAG_ZSTD)])
    with pytest.raises(FormatError, match=name):
        read_pack_toc(pack_path(tmp_path / "packs", name))
    ok = random.Random(1).randbytes(100)
    rows = [(XXH3_128.digest(ok), Location(name, 16, 100, 100, 0)),
            (cid, Location(name, 16, len(zeros_frame), HUGE, FLAG_ZSTD))]
    frag = forge_fragment(tmp_path / "index", rows)
    with pytest.raises(FormatError, match=frag.name):  # refused as a whole, on opening
        Fragment(frag)
    with pytest.raises(FormatError, match=frag.name):
        ChunkIndex(tmp_path / "index", XXH3_128).lookup(XXH3_128.digest(ok))
    # the largest chunk a store may make is fine, in a fragment and in a table of contents
    big = [(cid, Location(name, 16, packs.MAX_RAW, packs.MAX_RAW, 0))]
    assert Fragment(forge_fragment(tmp_path / "ok", big)).lookup(cid).raw_len == packs.MAX_RAW
    packs.decode_toc(packs.encode_toc([PackEntry(cid, 16, packs.MAX_RAW, packs.MAX_RAW, 0)]), 1, 16,
                     16 + packs.MAX_RAW, "p")
    # decode_chunk refuses before it decompresses anything
    monkeypatch.setattr(packs, "_decompressor", lambda: pytest.fail("decompressed a forged record"))
    with pytest.raises(CorruptObject):
        decode_chunk(zeros_frame, PackEntry(cid, 16, len(zeros_frame), HUGE, FLAG_ZSTD), XXH3_128, "p")
    # a frame claiming more than the entry's (bounded) length is refused as well
    with pytest.raises(CorruptObject):
        decode_chunk(zeros_frame, PackEntry(cid, 16, len(zeros_frame), MiB, FLAG_ZSTD), XXH3_128, "p")


def limited(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``cmd`` with 1 GiB of address space: plenty for `ds`, too little for 4 GiB."""
    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300, preexec_fn=cap)


def forge_store(work: Path, frame: bytes) -> tuple[bytes, str, Path]:
    """A committed file whose one chunk the index now places in a forged 4 GiB record."""
    write(work, "a.bin", random.Random(5).randbytes(2000))
    ds("init", str(work), cwd=work.parent)
    ds("add", "a.bin", cwd=work)
    ds("commit", "-m", "one", cwd=work)
    store = work / ".dsstore"
    ((cid, _loc),) = indexed(work)
    for f in (store / "index").glob("*.idx"):
        f.unlink()
    name = forge_pack(store / "packs", [(cid, frame, HUGE, FLAG_ZSTD)])
    frag = forge_fragment(store / "index", [(cid, Location(name, 16, len(frame), HUGE, FLAG_ZSTD))])
    return cid, name, frag


def test_get_and_fsck_refuse_a_forged_length_without_allocating_it(tmp_path, zeros_frame) -> None:
    work = tmp_path / "w"
    work.mkdir()
    _cid, name, frag = forge_store(work, zeros_frame)
    got = limited([DS, "get", "HEAD", str(tmp_path / "out")], work)
    assert got.returncode == 1, got.stderr
    assert len(got.stderr.splitlines()) == 1 and frag.name in got.stderr, got.stderr
    assert "MemoryError" not in got.stderr
    checked = limited([DS, "fsck", "--read-data", "-q"], work)
    assert checked.returncode == 1, checked.stderr
    assert name in checked.stderr and "MemoryError" not in checked.stderr, checked.stderr


def test_clone_refuses_a_forged_length_on_a_remote(tmp_path, zeros_frame) -> None:
    work = tmp_path / "w"
    work.mkdir()
    write(work, "a.bin", random.Random(6).randbytes(2000))
    ds("init", str(work), cwd=tmp_path)
    ds("add", "a.bin", cwd=work)
    ds("commit", "-m", "one", cwd=work)
    remote = tmp_path / "remote"
    ds("push", str(remote), cwd=work)
    ((cid, _loc),) = indexed(work)
    for f in (remote / "index").glob("*.idx"):
        f.unlink()
    name = forge_pack(remote / "packs", [(cid, zeros_frame, HUGE, FLAG_ZSTD)])
    frag = forge_fragment(remote / "index", [(cid, Location(name, 16, len(zeros_frame), HUGE, FLAG_ZSTD))])
    cloned = limited([DS, "clone", str(remote), str(tmp_path / "c")], tmp_path)
    assert cloned.returncode == 1, cloned.stderr
    assert frag.name in cloned.stderr and "MemoryError" not in cloned.stderr, cloned.stderr


# -- 3. a file cut short while it is read ---------------------------------------------------------
# `ds add big.bin` with a hook that truncates big.bin at one exact point: right after the
# file was opened and checked against its scan ("check"), or once its bytes are being cut
# ("cut": the old code had mapped the file by then, so reading the lost pages was SIGBUS).
TRUNCATE_DURING_ADD = """
import os, sys
from objstore import ingest
point, times = sys.argv[1], sys.argv[2]
done = []

def truncate():
    if not done or times == "always":
        done.append(1)
        os.truncate("big.bin", os.path.getsize("big.bin") // 2)

original_check, original_cut = ingest.check_unchanged, ingest.cut

def check(job, size):
    original_check(job, size)
    if point == "check" and job.path == "big.bin":
        truncate()

def cut(buf, params):
    if point == "cut":
        truncate()
    yield from original_cut(buf, params)

ingest.check_unchanged, ingest.cut = check, cut
from objstore_cli.main import main
sys.argv = ["ds", "add", "big.bin"]
main()
"""


def run_truncating(work: Path, point: str, times: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", TRUNCATE_DURING_ADD, point, times], cwd=work,
                          capture_output=True, text=True, timeout=120)


def staged_entry(work: Path, path: str):
    store = Store.open(work)
    try:
        return dict(store.meta.walk(store.staged_tree())).get(path)
    finally:
        store.close()


@pytest.mark.parametrize("point", ["check", "cut"])
def test_a_file_truncated_while_added_is_read_again(work, point) -> None:
    write(work, "big.bin", random.Random(8).randbytes(24 * MiB))
    ds("init", str(work), cwd=work.parent)
    got = run_truncating(work, point, "once")
    assert got.returncode == 0, (got.returncode, got.stderr)
    data = (work / "big.bin").read_bytes()
    assert len(data) == 12 * MiB
    entry = staged_entry(work, "big.bin")
    assert entry is not None and entry.size == len(data) and entry.hash == XXH3_128.digest(data)
    out = work.parent / "out"
    ds("commit", "-m", "cut", cwd=work)
    ds("get", "HEAD", str(out), cwd=work)
    assert (out / "big.bin").read_bytes() == data


@pytest.mark.parametrize("point", ["check", "cut"])
def test_a_file_that_keeps_changing_is_reported_not_a_crash(work, point) -> None:
    write(work, "big.bin", random.Random(9).randbytes(24 * MiB))
    ds("init", str(work), cwd=work.parent)
    got = run_truncating(work, point, "always")
    assert got.returncode == 1, (got.returncode, got.stderr)
    lines = got.stderr.splitlines()
    assert len(lines) == 1 and "big.bin" in lines[0] and "changing" in lines[0], got.stderr
    assert staged_entry(work, "big.bin") is None


@pytest.mark.parametrize("block", [1 * MiB, 3 * MiB + 17])
def test_reading_in_blocks_cuts_where_cutting_the_whole_file_does(tmp_path, monkeypatch, block) -> None:
    """Large files are read, not mapped; the chunks must be the very ones of the whole
    file (or a new add would not share chunks with what is stored)."""
    from objstore import ingest
    from objstore.chunking import ChunkParams, cut
    from objstore.chunkstore import ChunkStore

    monkeypatch.setattr(ingest, "_BLOCK", block)
    params = ChunkParams(avg_size=64 * 1024, min_size=16 * 1024, max_size=256 * 1024)
    rnd = random.Random(11)
    data = rnd.randbytes(5 * MiB) + bytes(MiB) + rnd.randbytes(MiB + 12345)  # a zero run: max-size cuts
    path = tmp_path / "f"
    path.write_bytes(data)
    ingestor = ingest.Ingestor(ChunkStore(tmp_path / "s", XXH3_128), params, 3)
    with open(path, "rb", buffering=0) as f:
        got = [bytes(p) for p in ingestor._pieces(f, len(data))]
    assert got == [bytes(p) for p in cut(data, params)]


def test_an_interrupted_add_stages_what_it_stored_so_the_next_add_reads_only_the_rest(
        store: Store, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Resume at the speed of a stat: files whose chunks were stored before Ctrl-C are staged,
    so running the add again reads only the files it had not reached."""
    from types import SimpleNamespace

    from objstore import statcache
    from objstore.diff import diff_trees
    from objstore.worktree import add

    sizes = {f"d{i % 4}/f{i}.bin": 20_000 + i for i in range(120)}
    for name, size in sizes.items():
        write(work, name, random.Random(name).randbytes(size))
    # the cache is written a minute after the files changed: none is in its racy window,
    # however long anything takes here
    later = time.time_ns() + 60 * 10**9
    monkeypatch.setattr(statcache, "time", SimpleNamespace(time_ns=lambda: later))

    def stop_after_30(files: int, _bytes: int) -> None:
        if files >= 30:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        add(store, [str(work)], progress=stop_after_30)
    s = Store.open(work)
    first = set(diff_trees(s.meta, s.head_tree(), s.staged_tree()).added)
    assert 30 <= len(first) < len(sizes)
    for path in first:
        assert all(s.chunks.has(c) for c, _ in s.meta.lookup(s.staged_tree(), path).chunk_list())
    again = add(s, [str(work)])
    assert again.staged == len(sizes) - len(first)
    assert again.bytes_read == sum(size for p, size in sizes.items() if p not in first)
    assert set(diff_trees(s.meta, s.head_tree(), s.staged_tree()).added) == set(sizes)
