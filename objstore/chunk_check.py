"""The chunk check of ``ds fsck``, written once over a ``Repository``: the store's own
(``maintenance.fsck``) or a remote's (``remote_fsck``), each of which keeps what is its own
(repair, its files and metadata). A row read back that fails is the index's fault when the
pack's own table of contents is whole and names other bytes, else the pack's (a *damaged
pack*, as is one whose header or table of contents fails: garbage there shows in no chunk
read, but the pack no longer hashes to its name, so a whole-pack fetch refuses it and no
index can be rebuilt from it).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import groupby

from .errors import FormatError
from .index import Location
from .maintenance import Marked, check_sizes
from .packs import HEADER, MAGIC
from .progress import Progress, announce
from .repository import Repository, Rows


@dataclass
class ChunkCheck:
    """What the chunk check found (``check_chunks``); a side may fill ``tocs`` first."""

    problems: list[str] = field(default_factory=list)
    bad_chunks: dict[bytes, str] = field(default_factory=dict)  # needed chunk -> why no row of it reads
    marked: Marked = field(default_factory=Marked)
    locations: dict[bytes, list[Location]] = field(default_factory=dict)  # every index row of a chunk
    bad_rows: dict[tuple[bytes, Location], str] = field(default_factory=dict)  # row -> why it cannot be read
    packs: dict[str, tuple[int, float]] = field(default_factory=dict)
    tocs: dict[str, Rows | None] = field(default_factory=dict)  # pack -> its own contents (None: unreadable)
    toc_errors: dict[str, str] = field(default_factory=dict)  # pack -> why its own contents cannot be read
    bad_packs: dict[str, str] = field(default_factory=dict)  # data pack -> why its own bytes are damaged
    unread: set[str] = field(default_factory=set)  # packs whose rows are not read (checked already)
    read_ok: set[tuple[bytes, Location]] = field(default_factory=set)  # rows read back whole here
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


def check_chunks(repo: Repository, c: ChunkCheck, rows: Iterable[tuple[bytes, Location]], subset: float,
                 full: bool, read: set[bytes] = frozenset(), many_readers: bool = True,
                 absent: str = "is not on the remote", mend: str = "", reindex: str = "",
                 progress: Progress | None = None) -> None:
    """Check ``rows``, every row of every fragment (readers search fragments in their own
    order, so a chunk indexed twice, once where it cannot be read, fails for some): rows in
    missing packs or past their pack's size, then a ``subset`` share of the rows read back,
    and every row of the chunks in ``read``; ``full`` also reads every header and table of
    contents, and every record no row names. With ``many_readers`` (a remote: each reader
    orders fragments its own way) every row of a chunk indexed twice is read, and one whose
    rows give a length a version's file entry does not: if it reads whole, that version's
    metadata is wrong (``check_sizes``). ``absent`` says how a needed chunk with no row is
    missing; ``mend`` ends a data-damage problem, ``reindex`` one of a chunk a pack holds
    that no row names. ``progress(packs, bytes)`` follows the packs read."""
    for cid, loc in rows:
        c.locations.setdefault(cid, []).append(loc)
    c.packs = repo.packs(repo.listing())  # after the index: a push lands its packs before its fragment
    gone = {loc.pack for locs in c.locations.values() for loc in locs} - c.packs.keys()
    c.problems += [f"the index names pack {p}, which is missing" for p in sorted(gone)]
    short: dict[str, Rows] = {}
    for cid, locs in c.locations.items():
        for loc in locs:
            if loc.pack in gone:
                c.bad_rows[cid, loc] = f"its pack {loc.pack} is missing"
            elif loc.offset + loc.stored_len > c.packs[loc.pack][0] and loc.pack not in c.toc_errors:
                short.setdefault(loc.pack, []).append((cid, loc))
    for p, cut in sorted(short.items()):
        if c.toc(repo, p) is None:
            why = f"its pack {p} is shorter than the index says: cut short"
            c.problems.append(f"pack {p} is shorter than the index says: cut short")
            c.bad_packs[p] = "cut short"
        else:
            why = f"its index row points past the end of pack {p}, whose table of contents says it is whole"
            c.reread = True  # an index that lies here may lie elsewhere: every row is worth reading
            c.problems.append(f"the index names bytes past the end of pack {p}, whose own table of contents "
                              f"says it is whole: the index is wrong ({len(cut)} row(s))")
        c.bad_rows.update(((cid, loc), why) for cid, loc in cut)
    indexed = {(cid, loc) for cid, locs in c.locations.items() for loc in locs}
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
        unindexed.update(row for row in c.tocs[p] or () if row not in indexed)
    lengths = c.marked.lengths
    sized = {cid for cid, locs in c.locations.items() if many_readers and cid in lengths
             and (cid in c.marked.odd_lengths or any(loc.raw_len != lengths[cid] for loc in locs))}
    read = read | sized
    sample = sorted([(cid, loc) for cid, locs in c.locations.items() for loc in locs  # all rows of
                     if (cid, loc) not in c.bad_rows and loc.pack not in c.unread  # a chunk indexed
                     and (cid in read or (many_readers and len(locs) > 1)  # twice: readers differ there
                          or random.random() < subset)] + list(unindexed),
                    key=lambda row: (row[1].pack, row[1].offset))
    c.chunks_read = len(sample)
    failed: dict[str, list[tuple[bytes, Location, str]]] = {}
    sizes = {loc.pack: c.packs[loc.pack][0] for _cid, loc in sample}
    announce(progress, len(sizes), sum(sizes.values()))
    done = 0
    for n, (pack, group) in enumerate(groupby(sample, key=lambda row: row[1].pack), 1):
        group = list(group)
        fails: dict[tuple[bytes, Location], str] = {}
        try:
            c.bytes_read += repo.verify(group, fails)
            for cid, loc in group:
                if (cid, loc) not in fails:
                    c.read_ok.add((cid, loc))
                    continue
                why = fails[cid, loc].removesuffix(f"; {repo.fsck_hint}")
                failed.setdefault(pack, []).append((cid, loc, why + (
                    " (a record no index row names)" if (cid, loc) in unindexed else "")))
                c.bad_rows[cid, loc] = "it fails its check"
        except repo.read_errors as e:  # one damaged pack is one problem, not the end of the check
            c.problems.append(repo.unreadable_pack.format(pack=pack, why=_why(e)))
            c.bad_rows.update(((cid, loc), f"its pack {pack} cannot be read") for cid, loc in group)
            c.bad_packs[pack] = f"its chunks cannot be read back ({_why(e)})"
            c.reread = True
        done += sizes[pack]
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
                              f"whose own table of contents {elsewhere}: the index is wrong")
            c.bad_rows[cid, loc] = "its index row names the wrong bytes of its pack"
    if sized:
        whole = {cid: loc.raw_len for cid in sized for loc in c.locations[cid]
                 if (cid, loc) not in c.bad_rows}
        before = len(c.marked.problems)
        check_sizes(repo.store.meta, c.marked, whole.get)  # lengths of rows that read back whole
        c.problems += c.marked.problems[before:]
    holders = {cid: p for p, toc in c.tocs.items() for cid, _loc in toc or ()} if reindex else {}
    for cid, where in c.marked.chunks.items():
        locs = c.locations.get(cid, [])
        bad = [c.bad_rows[cid, loc] for loc in locs if (cid, loc) in c.bad_rows]
        if not locs:
            c.bad_chunks[cid] = absent
            but = f", but pack {holders[cid]} holds it: {reindex}" if cid in holders else ""
            c.problems.append(f"chunk {cid.hex()} of {where} {absent}{but}")
        elif len(bad) == len(locs):
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
