"""The storage gc and fsck work on, local or remote, behind one small interface.

A store and its remotes hold one layout (``packs/xx/<id>.pack``, ``index/<sum>.idx``,
metadata) and gc and fsck (``maintenance.py``) ask the same of both. ``LocalRepository``
is a ``.dsstore``, listed and cleaned through a ``LocalBackend``, its packs and fragments
durable (fsync, rename) before anything names them. ``RemoteRepository`` is a remote: a
pack's chunks are known from the remote's index (a table of contents would cost a
request per pack), and every write or delete first checks the gc's lease.
"""

from __future__ import annotations

import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING

from .backend import LocalBackend
from .chunkstore import roll_packs
from .errors import DsError, FormatError
from .index import ChunkIndex, Location
from .packs import PackEntry, PackReader, decode_chunk, pack_path, read_pack_toc

if TYPE_CHECKING:
    from .remote import Remote
    from .remote_fs import RemoteLock
    from .store import Store

Listing = dict[str, tuple[int, float]]  # path -> (size, modification time in the storage's clock)
Rows = list[tuple[bytes, Location]]


class Repository:
    """What gc and fsck need of a store's storage. Each side gives ``listing`` (packs and
    temp files, on a remote every file: path -> size, modification time in the storage's
    clock), ``index``, ``pack_rows`` (each pack with the chunks it holds and where),
    ``read_chunks`` (checked against their ids if ``verify``) and ``decode`` (verified),
    ``write_packs`` (through the one roller: the new rows, how many packs),
    ``put_fragment`` (one durable fragment unless ``listed`` names it: its name) and
    ``delete``."""

    temp_age = 0.0  # a temp file this old (and past the grace period) is an interrupted write's

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

    def home(self, chunk_id: bytes) -> str | None:
        """The one pack a chunk may live in, or None: any that holds it."""
        return None

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
        could lose it to the next one."""
        temps, locks = [], []
        for rel, (_size, mtime) in listing.items():
            temp = rel.rsplit("/", 1)[-1].startswith(".tmp-") and now - mtime >= self.temp_age
            orphan = (rel.startswith("meta/pack-") and rel.endswith(".pack")
                      and rel[:-4] + "idx" not in listing)
            if (temp or orphan) and now - mtime >= grace:
                temps.append(rel)
            elif rel.startswith("locks/") and rel.endswith(".json") and now - mtime > self.temp_age:
                locks.append(rel)
        return temps, locks

    def verify(self, items: Rows, problems: list[str]) -> int:
        """Read these chunks back and check each against its id, a problem for each that
        fails; returns the bytes verified."""
        total = 0
        for chunk_id, loc, stored in self.read_chunks(items, verify=False):
            try:
                self.decode(chunk_id, loc, stored)
            except DsError as e:
                problems.append(str(e))
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

    def toc(self, pack: str) -> Rows:
        """The pack's own table of contents, checked (``FormatError`` or ``OSError`` if damaged)."""
        _algo, entries = read_pack_toc(pack_path(self.chunks.packs_dir, pack))
        return [(e.chunk_id, Location(pack, e.offset, e.stored_len, e.raw_len, e.flags)) for e in entries]

    def tocs(self) -> tuple[dict[str, Rows], dict[str, Exception]]:
        """Every pack's table of contents, and why each unreadable one is."""
        good, damaged = {}, {}
        for pack in sorted(self.packs(self.listing())):
            try:
                good[pack] = self.toc(pack)
            except (FormatError, OSError) as e:
                damaged[pack] = e
        return good, damaged

    def pack_rows(self, packs: list[str]) -> Iterator[tuple[str, dict[bytes, Location]]]:
        return ((pack, dict(self.toc(pack))) for pack in packs)

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


class RemoteRepository(Repository):
    """A remote (``remote.Remote``). ``lock`` is the gc's exclusive lease, checked before
    every write and delete; None for a dry run or a check, which write nothing."""

    def __init__(self, remote: Remote, lock: RemoteLock | None = None):
        from .remote_fs import RemoteLock  # here: a local gc never loads the remote modules

        super().__init__(remote.store)
        self.remote, self.fs, self.lock = remote, remote.fs, lock
        self.temp_age = RemoteLock.STALE  # never a temp file that a waiting writer may still rename

    def check(self) -> None:
        if self.lock is not None:
            self.lock.check()

    def listing(self) -> Listing:
        return self.fs.list_detail("")

    def index(self) -> ChunkIndex:
        return self.remote.index()

    def pack_rows(self, packs: list[str]) -> Iterator[tuple[str, dict[bytes, Location]]]:
        by_pack: dict[str, dict[bytes, Location]] = defaultdict(dict)
        wanted = set(packs)
        for frag in self.index().fragments:
            for chunk_id, loc in frag:
                if loc.pack in wanted:
                    by_pack[loc.pack].setdefault(chunk_id, loc)
        for pack in packs:
            yield pack, by_pack.get(pack, {})

    def read_chunks(self, items: Rows, verify: bool = True) -> Iterator[tuple[bytes, Location, bytes]]:
        return self.remote.read_chunks(items, verify)

    def decode(self, chunk_id: bytes, loc: Location, stored: bytes) -> bytes:
        entry = PackEntry(chunk_id, loc.offset, loc.stored_len, loc.raw_len, loc.flags)
        return decode_chunk(stored, entry, self.algo, f"remote pack {loc.pack}")

    def write_packs(self, chunks: Iterable[tuple[bytes, bytes, int, int]]) -> tuple[Rows, int]:
        # each pack is sent unless an interrupted gc sent it (the same chunks make the same pack)
        with tempfile.TemporaryDirectory(dir=self.remote.cache) as tmp:
            try:
                files, rows = roll_packs(Path(tmp), self.algo, self.pack_target, chunks)
            except FileNotFoundError as e:
                raise FormatError(f"gc refused: remote {self.remote.url}: a pack vanished while being "
                                  f"rewritten ({e}); is another gc running without a lock?") from None
            for f in files:
                self.check()
                rel = f"packs/{f.stem[:2]}/{f.name}"
                if self.fs.size(rel) != f.stat().st_size:
                    self.fs.put(rel, f)
        return rows, len(files)

    def put_fragment(self, rows: Rows, listed: list[str]) -> str:
        self.check()
        return self.remote.put_fragment(rows, listed)

    def delete(self, rels: list[str]) -> None:
        if rels:
            self.check()
            self.fs.delete(rels)
