"""The storage gc and fsck work on, local or remote, behind one small interface.

A store and its remotes hold one layout (``packs/xx/<id>.pack``, ``index/<sum>.idx``,
metadata) and gc and fsck (``maintenance.py``) ask the same of both. ``LocalRepository``
is a ``.dsstore``, listed and cleaned through a ``LocalBackend``, its packs and fragments
durable (fsync, rename) before anything names them. A remote (``remote_repo.RemoteRepo``)
is one too: a pack's chunks are known from its index, and a gc checks its lease before
every write or delete.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .backend import LocalBackend
from .chunkstore import roll_packs
from .errors import DsError, FormatError
from .index import ChunkIndex, Location
from .packs import FLAG_DELTA, HEADER, PackReader, encode_chunk, pack_path, read_pack_toc

if TYPE_CHECKING:
    from .store import Store

Listing = dict[str, tuple[int, float]]  # path -> (size, modification time in the storage's clock)
Rows = list[tuple[bytes, Location]]
Chunk = tuple[bytes, bytes, int, int]  # (id, stored bytes, raw length, flags), as packs hold it


class Repository:
    """What gc and fsck need of a store's storage. Each side gives ``listing`` (packs and
    temp files, on a remote every file: path -> size, modification time in the storage's
    clock), ``index``, ``pack_rows`` (each pack with the chunks it holds and where),
    ``read_chunks`` (checked against their ids if ``verify``) and ``decode`` (verified),
    ``write_packs`` (through the one roller: the new rows, how many packs),
    ``put_fragment`` (one durable fragment unless ``listed`` names it: its name) and
    ``delete``. ``copy_chunks`` asks a source for ``read_whole`` (chunks verified, none a
    delta) and a destination for ``has`` and ``add_chunks``; ``copy_meta`` asks a source
    for ``meta_packs`` and a destination for ``meta_scratch`` and ``add_meta_pack`` (and a
    remote source asks a store for the packs it holds, ``held_meta``)."""

    temp_age = 0.0  # a temp file this old (and past the grace period) is an interrupted write's
    lease: Any = None  # a remote's ``RemoteLock`` while its gc holds it (a lower layer's type)
    # fsck's chunk check: what a failed read raises, the problem then, where damage is, what a
    # chunk's failure ends with
    read_errors: tuple[type[Exception], ...] = (OSError,)
    unreadable_pack = "pack {pack} cannot be read ({why}); a repair leaves it as it was"
    where = ""
    fsck_hint = "run `ds fsck --read-data`"

    def __init__(self, store: Store):
        self.store, self.algo, self.pack_target = store, store.algo, store.config.pack_target

    def listing(self) -> Listing: ...
    def index(self) -> ChunkIndex: ...
    def pack_rows(self, packs: list[str]) -> Iterator[tuple[str, dict[bytes, Location]]]: ...
    def read_chunks(self, items: Rows, verify: bool = True) -> Iterator[tuple[bytes, Location, bytes]]: ...
    def decode(self, chunk_id: bytes, loc: Location, stored: bytes) -> bytes: ...
    def write_packs(self, chunks: Iterable[tuple[bytes, bytes, int, int]]) -> tuple[Rows, int]: ...
    def put_fragment(self, rows: Rows, listed: list[str]) -> str: ...
    def delete(self, rels: list[str]) -> None: ...
    def has(self, chunk_id: bytes) -> bool: ...
    def read_whole(self, chunk_ids: list[bytes]) -> Iterator[Chunk]: ...
    def add_chunks(self, chunk_ids: list[bytes], read: Callable[[list[bytes]], Iterable[Chunk]]) -> int: ...
    def held_meta(self) -> set[str]: ...
    def pack_toc(self, pack: str, size: int) -> Rows: ...  # own contents, checked (FormatError)
    def pack_header(self, pack: str) -> bytes: ...  # its first HEADER.size bytes
    def meta_scratch(self) -> AbstractContextManager[str]: ...
    def add_meta_pack(self, files: list[Path]) -> None: ...

    def meta_packs(self, dst: Repository, tops: list[str], known: list[str],
                   folder: Path) -> Iterator[list[Path]]:
        """As a source: the metadata ``dst`` lacks, one git pack at a time (its ``.pack``,
        then its ``.idx``), written or downloaded into ``folder``, each verified."""
        raise NotImplementedError

    def home(self, chunk_id: bytes) -> str | None:
        """The one pack a chunk may live in, or None: any that holds it."""
        return None

    def dense_packs(self, chunk_ids: list[bytes]) -> dict[str, int]:
        """As a source: packs worth copying whole for these chunks, with their sizes (none here)."""
        return {}

    def get_packs(self, packs: dict[str, int], folder: Path, take: Callable[[str, Path], None]) -> None:
        """As a source: download each pack into a temp file in ``folder``, hand it to
        ``take(pack, path)``, remove what ``take`` left (only sources with ``dense_packs``)."""
        raise NotImplementedError

    def take_packs(self, src: Repository, packs: dict[str, int]) -> set[bytes]:
        """As a destination: copy these packs of ``src`` whole (only a local store does);
        returns the chunks that arrived."""
        return set()

    # -- the same on both sides ----------------------------------------------------------
    def fragments(self) -> list[str]:
        return sorted(f.path.name for f in self.index().fragments)

    @staticmethod
    def packs(listing: Listing) -> dict[str, tuple[int, float]]:
        """pack id -> (size, modification time), from a listing."""
        return {rel.rsplit("/", 1)[-1][:-5]: info for rel, info in listing.items()
                if rel.startswith("packs/") and rel.endswith(".pack") and "/.tmp-" not in rel}

    def replace_index(self, rows: Rows, old: list[str]) -> int:
        """One fragment of ``rows``, durable, then the fragments ``old`` deleted (never in the
        other order: a reader always finds every chunk); returns how many were deleted."""
        name = self.put_fragment(rows, old)
        gone = [f"index/{n}" for n in old if n != name]
        self.delete(gone)
        return len(gone)

    def leftovers(self, listing: Listing, now: float, grace: float) -> tuple[list[str], list[str]]:
        """(files of interrupted writes: temp files, metadata packs whose ``.idx`` never came;
        leases not refreshed for ``temp_age``) that gc may delete. A ref's ``*.lock`` on a
        folder remote is an flock'd file kept for good: never swept, or a writer holding it
        could lose it to the next one. A lease dated more than ``temp_age`` ahead of ``now``
        (and of our own lease's latest refresh) is as dead as one that old: a live holder
        refreshes in the storage's clock."""
        temps, locks = [], []
        own = listing.get(self.lease.rel) if self.lease is not None else None
        fresh = max(now, own[1]) if own is not None else now
        for rel, (_size, mtime) in listing.items():
            temp = rel.rsplit("/", 1)[-1].startswith(".tmp-") and now - mtime >= self.temp_age
            orphan = (rel.startswith("meta/pack-") and rel.endswith(".pack")
                      and rel[:-4] + "idx" not in listing)
            if (temp or orphan) and now - mtime >= grace:
                temps.append(rel)
            elif (rel.startswith("locks/") and rel.endswith(".json")
                  and (now - mtime > self.temp_age or mtime - fresh > self.temp_age)):
                locks.append(rel)
        return temps, locks

    def verify(self, items: Rows, problems: dict[tuple[bytes, Location], str]) -> int:
        """Read these chunks back and check each against its id, the problem of each row that
        fails in ``problems`` (fsck's chunk check tells rows apart); returns the bytes verified."""
        total = 0
        for chunk_id, loc, stored in self.read_chunks(items, verify=False):
            try:
                self.decode(chunk_id, loc, stored)
            except DsError as e:
                problems[chunk_id, loc] = str(e)
            total += loc.raw_len
        return total


class LocalRepository(Repository):
    """A ``.dsstore``: its chunk store, listed and cleaned through a ``LocalBackend``. The
    caller holds the store's lock."""

    def __init__(self, store: Store):
        super().__init__(store)
        self.chunks = store.chunks
        self.backend = LocalBackend(store.path)

    def listing(self) -> Listing:
        return self.backend.list("packs")

    def index(self) -> ChunkIndex:
        return self.chunks.index

    def pack_toc(self, pack: str, size: int = 0) -> Rows:
        """The pack's own table of contents, checked (``FormatError`` or ``OSError`` if damaged)."""
        _algo, entries = read_pack_toc(pack_path(self.chunks.packs_dir, pack))
        return Location.rows(pack, entries)

    def pack_header(self, pack: str) -> bytes:
        with open(pack_path(self.chunks.packs_dir, pack), "rb") as f:
            return f.read(HEADER.size)

    def tocs(self) -> tuple[dict[str, Rows], dict[str, Exception]]:
        """Every pack's table of contents, and why each unreadable one is."""
        good, damaged = {}, {}
        for pack in sorted(self.packs(self.listing())):
            try:
                good[pack] = self.pack_toc(pack)
            except (FormatError, OSError) as e:
                damaged[pack] = e
        return good, damaged

    def pack_rows(self, packs: list[str]) -> Iterator[tuple[str, dict[bytes, Location]]]:
        return ((pack, dict(self.pack_toc(pack))) for pack in packs)

    def home(self, chunk_id: bytes) -> str | None:
        """A chunk lives where the index says (delta bases were marked by it): a copy in
        another pack (a killed writer's, then a rerun's) is garbage."""
        loc = self.chunks.index.lookup(chunk_id)
        return None if loc is None else loc.pack

    def read_chunks(self, items: Rows, verify: bool = True) -> Iterator[tuple[bytes, Location, bytes]]:
        for pack, group in groupby(items, key=lambda it: it[1].pack):
            reader = PackReader(pack_path(self.chunks.packs_dir, pack))  # one file open at a time
            try:
                for chunk_id, loc in group:
                    stored = reader.read(loc.offset, loc.stored_len)
                    if verify:
                        self.chunks.decode(chunk_id, loc, stored)
                    yield chunk_id, loc, stored
            finally:
                reader.close()

    def decode(self, chunk_id: bytes, loc: Location, stored: bytes) -> bytes:
        return self.chunks.decode(chunk_id, loc, stored)

    def write_packs(self, chunks: Iterable[tuple[bytes, bytes, int, int]]) -> tuple[Rows, int]:
        files, rows = roll_packs(self.chunks.packs_dir, self.algo, self.pack_target, chunks)
        return rows, len(files)

    def put_fragment(self, rows: Rows, listed: list[str]) -> str:
        return self.chunks.index.write_fragment(rows).name

    def delete(self, rels: list[str]) -> None:
        self.chunks.close()  # no reader keeps a file that is going
        self.backend.delete(rels)

    def has(self, chunk_id: bytes) -> bool:
        return self.chunks.has(chunk_id)

    def read_whole(self, chunk_ids: list[bytes]) -> Iterator[Chunk]:
        """Each chunk verified (never send damage); a delta re-encoded whole, as its base
        may not go along."""
        chunks = self.chunks
        for chunk_id in chunk_ids:
            loc = chunks.locate(chunk_id)
            if loc is None:
                raise DsError(f"chunk {chunk_id.hex()} is missing locally; run `ds fsck` before pushing (a "
                              "chunk that `ds add URL --into-remote` left on the remote alone, which a "
                              "remote gc removed before the push: add that URL again)")
            stored = chunks.read_stored(loc)
            raw = chunks.decode(chunk_id, loc, stored)
            flags = loc.flags
            if flags & FLAG_DELTA:
                stored, flags = encode_chunk(raw, self.store.config.zstd_level)
            yield chunk_id, stored, loc.raw_len, flags

    def take_packs(self, src: Repository, packs: dict[str, int]) -> set[bytes]:
        """Each pack checked whole (``ChunkStore.adopt``), indexed by the ``add_chunks``
        that follows (or, if this fails, what arrived is indexed before the error goes on)."""
        got: set[bytes] = set()

        def take(pack: str, path: Path) -> None:
            got.update(self.chunks.adopt(path, pack))

        try:
            src.get_packs(packs, self.chunks.packs_dir, take)
        except BaseException:
            self.chunks.keep()
            raise
        return got

    def add_chunks(self, chunk_ids: list[bytes], read: Callable[[list[bytes]], Iterable[Chunk]]) -> int:
        """Through the ChunkStore (``write_packs`` is gc's, rewriting chunks the index names):
        packs durable before a fragment names them, and what arrived indexed even if the rest
        fails, so a retry reads only what is missing. Returns 0: the ChunkStore rolls its packs."""
        try:
            for chunk in read(chunk_ids):
                self.chunks.put_encoded(*chunk)
        except BaseException:
            self.chunks.keep()  # keeps what arrived, and never hides the error that stopped it
            raise
        self.chunks.flush()
        return 0

    def held_meta(self) -> set[str]:
        return self.store.meta.pack_names()

    def meta_scratch(self) -> AbstractContextManager[str]:
        """A temp folder beside the metadata packs (a rename publishes; a killed copy's
        folder goes with ``MetaStore.drop_temps``)."""
        folder = self.store.meta.pack_folder
        folder.mkdir(parents=True, exist_ok=True)
        return tempfile.TemporaryDirectory(dir=folder, prefix=".tmp-fetch-")

    def add_meta_pack(self, files: list[Path]) -> None:
        """Each file renamed into place, the ``.idx`` last: libgit2 sees whole packs only."""
        folder = self.store.meta.pack_folder
        for f in sorted(files, key=lambda f: f.suffix == ".idx"):
            os.replace(f, folder / f.name)

    def meta_packs(self, dst: Repository, tops: list[str], known: list[str],
                   folder: Path) -> Iterator[list[Path]]:
        """One git pack of the objects under ``tops`` that the versions ``known`` (which
        ``dst`` holds with their whole history) lack: cost ∝ change."""
        meta = self.store.meta
        seen: set[str] = set()
        meta.reachable([c for c in known if meta.object_type(c) is not None], seen)
        new: set[str] = set()
        meta.reachable(tops, seen, new)
        if new:
            yield meta.write_pack_of(new, folder)


def copy_meta(src: Repository, dst: Repository, tops: Iterable[str] = (),
              known: Iterable[str] = ()) -> list[str]:
    """Copy the metadata (git objects of versions) ``dst`` lacks from ``src``, as whole git
    packs, each published by its ``.idx`` once its ``.pack`` is there. From a store, one
    pack of the objects under ``tops`` that ``known`` (versions ``dst`` holds) lack; from a
    remote, each of its packs ``dst`` does not hold. Returns the file names copied."""
    names: list[str] = []
    with dst.meta_scratch() as folder:
        for files in src.meta_packs(dst, list(tops), list(known), Path(folder)):
            dst.add_meta_pack(files)
            names.extend(f.name for f in files)
    return names


def transfer(src: Repository, dst: Repository, tops: Iterable[str] = (), known: Iterable[str] = (),
             chunk_ids: Iterable[bytes] = ()) -> tuple[int, int, list[str]]:
    """What push and fetch send: the chunks ``dst`` lacks (packs, then one index fragment),
    then the metadata of the versions ``tops`` (``copy_meta``). In that order, so every
    chunk a version names is there once the version is; the caller moves refs last.
    Returns (chunks copied, packs written, metadata file names copied)."""
    chunks, packs = copy_chunks(src, dst, chunk_ids)
    return chunks, packs, copy_meta(src, dst, tops, known)


def copy_chunks(src: Repository, dst: Repository, chunk_ids: Iterable[bytes]) -> tuple[int, int]:
    """Copy the chunks ``dst`` lacks from ``src``: read there (verified, none a delta),
    written at ``dst`` as new packs and then one index fragment naming them. Push (local to
    remote) and fetch (remote to local: get, clone, pull, chunks on demand) both copy this
    way; a fetch takes whole the remote packs it wants most of (``dense_packs``), each
    checked before it is indexed. Returns (chunks copied, packs uploaded)."""
    missing = [c for c in dict.fromkeys(chunk_ids) if not dst.has(c)]
    if not missing:
        return 0, 0
    whole = src.dense_packs(missing)  # a clone or pull wants most of these: whole, and checked
    got = dst.take_packs(src, whole) if whole else set()
    return len(missing), dst.add_chunks([c for c in missing if c not in got], src.read_whole)
