"""The chunk check of ``ds fsck``, written once over a ``Repository``: the store's own
(``maintenance.fsck``) or a remote's (``remote_fsck``), each of which keeps what is its own
(repair, its files and metadata). A row read back that fails is the index's fault when the
pack's own table of contents is whole and names other bytes, else the pack's (a *damaged
pack*, as is one whose header or table of contents fails: garbage there shows in no chunk
read, but the pack no longer hashes to its name, so a whole-pack fetch refuses it and no
index can be rebuilt from it).

Nothing here holds more than one object per index row: a million rows is a local store's
everyday size, and the rows are walked once, a pack at a time.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise

from .errors import FormatError
from .index import Fragment, Location
from .maintenance import Marked, check_sizes
from .packs import HEADER, MAGIC
from .progress import Progress, announce
from .repository import Repository, Rows


class IndexRows:
    """The index rows a reader may find, a chunk's first in ``first`` and any other (distinct)
    ones in ``more``. The store's own readers all find the same row (``ChunkIndex.lookup``),
    so the store passes those alone; a remote's readers search its fragments in orders of
    their own, so every row of every fragment counts there."""

    def __init__(self, first: dict[bytes, Location] | None = None):
        self.first: dict[bytes, Location] = {} if first is None else first
        self.more: dict[bytes, list[Location]] = {}

    @classmethod
    def of_fragments(cls, fragments: Iterable[Fragment]) -> IndexRows:
        """Every row of these fragments; a row two fragments share counts once."""
        rows = cls()
        first, more = rows.first, rows.more
        for frag in fragments:
            for cid, loc in frag.rows():
                had = first.setdefault(cid, loc)
                if had != loc and loc not in more.get(cid, ()):
                    more.setdefault(cid, []).append(loc)
        return rows

    def of(self, cid: bytes) -> list[Location]:
        loc = self.first.get(cid)
        return [] if loc is None else [loc, *self.more.get(cid, ())]

    def holds(self, cid: bytes, loc: Location) -> bool:
        return self.first.get(cid) == loc or loc in self.more.get(cid, ())

    def __iter__(self) -> Iterator[tuple[bytes, Location]]:
        yield from self.first.items()
        for cid, locs in self.more.items():
            for loc in locs:
                yield cid, loc

    def __len__(self) -> int:
        return len(self.first)


@dataclass
class ChunkCheck:
    """What the chunk check found (``check_chunks``); a side may fill ``tocs`` first."""

    problems: list[str] = field(default_factory=list)
    bad_chunks: dict[bytes, str] = field(default_factory=dict)  # needed chunk -> why no row of it reads
    marked: Marked = field(default_factory=Marked)
    rows: IndexRows = field(default_factory=IndexRows)  # the index rows checked
    bad_rows: dict[tuple[bytes, Location], str] = field(default_factory=dict)  # row -> why it cannot be read
    packs: dict[str, tuple[int, float]] = field(default_factory=dict)
    tocs: dict[str, Rows | None] = field(default_factory=dict)  # pack -> its own contents (None: unreadable)
    toc_errors: dict[str, str] = field(default_factory=dict)  # pack -> why its own contents cannot be read
    bad_packs: dict[str, str] = field(default_factory=dict)  # data pack -> why its own bytes are damaged
    unread: set[str] = field(default_factory=set)  # packs whose rows are not read (checked already)
    read_ok: set[tuple[bytes, Location]] = field(default_factory=set)  # rows read back whole (many readers)
    chunks_read: int = 0
    bytes_read: int = 0
    reread: bool = False  # rows failed when read back, or the index lies: a repair must read all

    def toc(self, repo: Repository, pack: str) -> Rows | None:
        """A pack's own table of contents (read once); None when it cannot be read (the pack
        is damaged or cut short, or gone since listed: then not damaged)."""
        if pack not in self.tocs:
            self.tocs[pack] = None
            try:
                self.tocs[pack] = repo.pack_toc(pack, self.packs[pack][0])
            except (FileNotFoundError, KeyError):
                pass
            except repo.read_errors as e:
                self.toc_errors[pack] = f"it cannot be read ({_why(e)})"
            except FormatError as e:  # its message starts with where the pack is: said already
                head, sep, why = str(e).partition(": ")
                self.toc_errors[pack] = why if sep and pack in head else str(e)
        return self.tocs[pack]


def check_chunks(repo: Repository, c: ChunkCheck, rows: IndexRows, subset: float, full: bool,
                 read: set[bytes] = frozenset(), many_readers: bool = True,
                 absent: str = "is not on the remote", mend: str = "", reindex: str = "",
                 fix_index: str = "", check_pack: Callable[[str], str | None] | None = None,
                 progress: Progress | None = None) -> None:
    """Check the index ``rows``: rows in missing packs or past their pack's size, then a
    ``subset`` share of the rows read back, and every row of the chunks in ``read``;
    ``full`` also reads every header and table of contents, and every record no row names,
    and asks ``check_pack(pack)`` for a problem with the pack as a whole before its rows
    are read. With ``many_readers`` (a remote: each reader orders fragments its own way)
    every row of a chunk indexed twice is read, and one whose rows give a length a version's
    file entry does not: if it reads whole, that version's metadata is wrong
    (``check_sizes``). ``absent`` says how a needed chunk with no row is missing; ``mend``
    ends a data-damage problem, ``reindex`` one of a chunk a pack holds that no row names,
    ``fix_index`` one that blames the index.
    ``progress(packs, bytes)`` follows the packs read."""
    c.rows = rows
    c.packs = repo.packs(repo.listing())  # after the index: a push lands its packs before its fragment
    sizes = {p: size for p, (size, _mtime) in c.packs.items()}
    in_pack: dict[str, list[bytes]] = {}  # pack -> the chunks with a row there (one walk of the rows)
    short: dict[str, Rows] = {}
    for cid, loc in rows:
        ids = in_pack.get(loc.pack)
        if ids is None:
            ids = in_pack[loc.pack] = []
        ids.append(cid)
        size = sizes.get(loc.pack)
        if size is not None and loc.offset + loc.stored_len > size and loc.pack not in c.toc_errors:
            short.setdefault(loc.pack, []).append((cid, loc))
    gone = sorted(in_pack.keys() - sizes.keys())
    c.problems += [f"the index names pack {p}, which is missing{fix_index}" for p in gone]
    for p in gone:
        c.bad_rows.update(((cid, loc), f"its pack {p} is missing") for cid, loc in _rows_in(rows, in_pack, p))
    for p, cut in sorted(short.items()):
        if c.toc(repo, p) is None:
            why = f"its pack {p} is shorter than the index says: cut short"
            c.problems.append(f"pack {p} is shorter than the index says: cut short")
            c.bad_packs[p] = "cut short"
        else:
            why = f"its index row points past the end of pack {p}, whose table of contents says it is whole"
            c.reread = True  # an index that lies here may lie elsewhere: every row is worth reading
            c.problems.append(f"the index names bytes past the end of pack {p}, whose own table of contents "
                              f"says it is whole: the index is wrong ({len(cut)} row(s)){fix_index}")
        c.bad_rows.update(((cid, loc), why) for cid, loc in cut)
    unindexed: set[tuple[bytes, Location]] = set()  # records no index row names, read in a full check
    for p in sorted(c.packs) if full else ():  # damage in a pack's own header or table of contents
        if p in c.bad_packs or p in c.unread:  # shows in no row, but breaks a whole-pack fetch and a rebuild
            continue
        why = _header_damage(repo, p) or (c.toc_errors.get(p) if c.toc(repo, p) is None else None)
        if why:
            c.bad_packs[p] = why
            c.reread = True
            c.problems.append(f"pack {p} is damaged{repo.where}: {why}")
            continue
        unindexed.update((cid, loc) for cid, loc in c.tocs[p] or () if not rows.holds(cid, loc))
    lengths = c.marked.lengths
    sized: set[bytes] = set()  # chunks whose rows give a length a file entry does not (or two)
    if many_readers:
        sized = {cid for cid, loc in rows if cid in lengths and loc.raw_len != lengths[cid]}
        sized |= c.marked.odd_lengths & rows.first.keys()
    _read_back(repo, c, _to_read(c, rows, in_pack, full, subset, read | sized, many_readers, unindexed),
               unindexed, many_readers, mend, fix_index, check_pack, progress)
    if sized:
        whole = {cid: loc.raw_len for cid in sized for loc in rows.of(cid) if (cid, loc) not in c.bad_rows}
        before = len(c.marked.problems)
        check_sizes(repo.store.meta, c.marked, whole.get)  # lengths of rows that read back whole
        c.problems += c.marked.problems[before:]
    _judge_needed(c, rows, absent, reindex)


def _rows_in(rows: IndexRows, in_pack: dict[str, list[bytes]], pack: str) -> Rows:
    """The rows naming ``pack``, by offset."""
    return sorted({(cid, loc) for cid in in_pack.get(pack, ()) for loc in rows.of(cid) if loc.pack == pack},
                  key=lambda row: row[1].offset)


def _to_read(c: ChunkCheck, rows: IndexRows, in_pack: dict[str, list[bytes]], full: bool, subset: float,
             read: set[bytes], many_readers: bool, unindexed: set[tuple[bytes, Location]]) -> dict[str, Rows]:
    """Pack -> the rows to read back there: all in a full check, else the chunks of ``read``,
    every row of a chunk indexed twice (``many_readers``: readers differ there) and a
    ``subset`` share of the others; never a row known bad, nor one in a pack not to read."""
    if full:  # every pack, even one with no record (its whole-pack check)
        packs = sorted(c.packs)
    elif subset > 0:
        packs = sorted(in_pack.keys() & c.packs.keys())
    else:  # only named chunks: no walk of every row
        named = read | (rows.more.keys() if many_readers else set())
        packs = sorted({loc.pack for cid in named for loc in rows.of(cid)} & c.packs.keys())
    out: dict[str, Rows] = {}
    strays: dict[str, Rows] = {}
    for cid, loc in unindexed:
        strays.setdefault(loc.pack, []).append((cid, loc))
    for p in packs:
        if p in c.unread:
            continue
        toc, stray = c.tocs.get(p), strays.get(p, [])
        if full and toc is not None and p not in c.bad_packs \
                and len(toc) == len(stray) + len(in_pack.get(p, ())) \
                and all(a[1].offset < b[1].offset for a, b in pairwise(toc)):
            # each row naming the pack is one of its own records (distinct: a record matches one row at
            # most, and the records were all compared, unlike a damaged pack's): read in its order
            todo = toc
        else:
            todo = [(cid, loc) for cid, loc in _rows_in(rows, in_pack, p)
                    if full or cid in read or (many_readers and cid in rows.more) or random.random() < subset]
            todo += sorted(stray, key=lambda row: row[1].offset)
        if c.bad_rows:
            todo = [row for row in todo if row not in c.bad_rows]
        if todo or full:
            out[p] = todo
    return out


def _read_back(repo: Repository, c: ChunkCheck, todo: dict[str, Rows], unindexed: set[tuple[bytes, Location]],
               many_readers: bool, mend: str, fix_index: str, check_pack: Callable[[str], str | None] | None,
               progress: Progress | None) -> None:
    """Read ``todo`` back a pack at a time; a failed row is the index's or the pack's fault."""
    c.chunks_read = sum(len(group) for group in todo.values())
    announce(progress, len(todo), sum(c.packs[p][0] for p in todo))
    failed: dict[str, list[tuple[bytes, Location, str]]] = {}
    done = 0
    for n, (pack, group) in enumerate(todo.items(), 1):
        fails: dict[tuple[bytes, Location], str] = {}
        try:
            if check_pack is not None and (why := check_pack(pack)):
                c.problems.append(why)
            c.bytes_read += repo.verify(group, fails)
        except repo.read_errors as e:  # one damaged pack is one problem, not the end of the check
            c.problems.append(repo.unreadable_pack.format(pack=pack, why=_why(e)))
            c.bad_rows.update(((cid, loc), f"its pack {pack} cannot be read") for cid, loc in group)
            c.bad_packs[pack] = f"its chunks cannot be read back ({_why(e)})"
            c.reread = True
        else:
            if many_readers:  # what a remote repair may rely on
                c.read_ok.update(row for row in group if row not in fails)
            for cid, loc in fails:
                why = fails[cid, loc].removesuffix(f"; {repo.fsck_hint}").removesuffix("; run `ds fsck`")
                failed.setdefault(pack, []).append((cid, loc, why + (
                    " (a record no index row names)" if (cid, loc) in unindexed else "")))
                c.bad_rows[cid, loc] = "it fails its check"
        done += c.packs[pack][0]
        if progress is not None:
            progress(n, done)
    for pack, failures in sorted(failed.items()):
        c.reread = True
        toc = c.toc(repo, pack)
        held = dict(toc or ())
        for cid, loc, why in failures:
            where = c.marked.chunks.get(cid)
            of = f" (a chunk of {where})" if where else ""
            if toc is None or held.get(cid) == loc:  # the pack's own record fails: data damage
                c.problems.append(why + of + mend)
                c.bad_packs.setdefault(pack, f"chunk {cid.hex()} in it fails its check")
                continue
            elsewhere = "has it elsewhere" if cid in held else "does not hold it"
            c.problems.append(f"the index row of chunk {cid.hex()}{of} names the wrong bytes of pack {pack}, "
                              f"whose own table of contents {elsewhere}: the index is wrong{fix_index}")
            c.bad_rows[cid, loc] = "its index row names the wrong bytes of its pack"


def _judge_needed(c: ChunkCheck, rows: IndexRows, absent: str, reindex: str) -> None:
    """Each chunk the versions need: one with no row (and a pack that holds it, if any), one
    no row of which reads (named above, by its pack or its read), one indexed twice, once
    where it cannot be read (some readers fail on it)."""
    first, bad_rows, needed = rows.first, c.bad_rows, c.marked.chunks
    missing = {cid for cid in needed if cid not in first}
    bad_ids = {cid for cid, _loc in bad_rows}
    if not (missing or bad_ids):
        return
    holders = {cid: p for p, toc in c.tocs.items() if reindex and missing
               for cid, _loc in toc or () if cid in missing}
    for cid, where in needed.items():  # in the order the versions name them
        if cid in missing:
            c.bad_chunks[cid] = absent
            but = f", but pack {holders[cid]} holds it: {reindex}" if cid in holders else ""
            c.problems.append(f"chunk {cid.hex()} of {where} {absent}{but}")
        elif cid in bad_ids:
            locs = rows.of(cid)
            bad = [bad_rows[cid, loc] for loc in locs if (cid, loc) in bad_rows]
            if len(bad) == len(locs):
                c.bad_chunks[cid] = bad[0]  # a problem named above, by its pack or its read
            elif bad:
                c.problems.append(f"chunk {cid.hex()} of {where} is indexed twice, once where it cannot be "
                                  f"read ({bad[0]}): some readers fail on it")


def _header_damage(repo: Repository, pack: str) -> str | None:
    """Why a pack's 16-byte header is not the one every writer writes, or None (also for a
    pack gone since listed: not ours to judge)."""
    try:
        if repo.pack_header(pack) != HEADER.pack(MAGIC, repo.algo.code):
            return "its header is damaged (not the magic, hash code and zeros every pack starts with)"
    except FileNotFoundError:
        pass
    except repo.read_errors as e:
        return f"its header cannot be read ({_why(e)})"
    return None


def _why(e: Exception) -> str:
    """A read error in one line (a remote's says why it failed at every try)."""
    return getattr(e, "why", "") or str(e)
