"""``ds fsck --remote``: verify a remote; with ``--repair``, mend it from this store.

The check reads the remote's refs, dataset records, index fragments and metadata packs,
and reads back a share (``read_data_subset``) of the index rows. Damage in one file is one
problem and the check goes on: an index fragment or metadata pack failing its checksum, a
metadata pack missing beside its ``.idx``, metadata objects the remote's versions need that
no readable metadata pack holds, chunks they need that no index row names, or whose every
row names a missing pack, runs past its pack's listed size, or fails its check (the index's
fault, not the pack's, when the pack's own table of contents is whole and has the chunk
elsewhere), a chunk indexed twice, once where it cannot be read (readers search fragments
in their own order, so every row of such a chunk is read back), and versions whose file
entries give a chunk a length other than its own (read back to be sure; such metadata no
repair mends: the hint names the remote's refs that reach it).
A thorough check (``--read-data-subset 1``, or a repair) downloads every fragment and
metadata pack to check it; a quick one downloads only fragments not cached yet (as any
reader does) and compares sizes with the copies this store holds.

``--repair`` mends under the store's lock and the remote's exclusive lock (as a remote gc),
and removes nothing it has not replaced:

0. a damaged fragment or metadata pack of which this store holds a whole copy under the
   same name (checked when it came; files are named by their content) is put back;
1. every chunk of a pack no readable fragment names, or whose row is wrong, is indexed from
   the pack's own table of contents (three ranged reads) once it reads back whole there (a
   later push trusts the index);
2. needed chunks still missing or damaged are sent again from this store, verified, as new
   packs (a damaged pack that comes out the same is overwritten, not skipped as landed);
3. one index fragment names every chunk where it reads (a needed chunk no row of which
   reads keeps its row; only an unreadable row of a chunk no version needs is dropped),
   then the old fragments go;
4. metadata objects the remote's versions need and no readable pack holds are sent again
   as one metadata pack;
5. damaged fragments and metadata packs are copied to ``damaged/<when>/`` on the remote,
   where nothing reads or deletes them, and then removed from where readers look.

A damaged data pack stays: its other chunks may be whole (a remote gc drops it once the
index names none of them). The remote is then checked again, reading back every chunk the
repair gave a new row and every one still unreadable, and what is left is reported. Data
damage is found only where rows are read: ``--read-data-subset 1 --repair`` reads them all.
"""

from __future__ import annotations

import random
import tempfile
import time
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

from .errors import DsError, FormatError
from .index import Location
from .maintenance import Marked, check_sizes, malformed_kinds, short_ids
from .record_sync import attachment_chunks
from .remote import Remote
from .remote_fs import RemoteDamaged
from .remote_gc import mark_remote
from .remote_repo import fragment_ok, git_pack_ok
from .repository import Chunk, LocalRepository, Rows
from .store import Store


@dataclass
class _Check:
    """What one pass over a remote found."""

    problems: list[str] = field(default_factory=list)
    bad_files: dict[str, str] = field(default_factory=dict)  # fragment or metadata pack .idx -> why
    whole_here: dict[str, list[Path]] = field(default_factory=dict)  # bad file -> this store's whole copy
    bad_chunks: dict[bytes, str] = field(default_factory=dict)  # needed chunk -> why no row of it reads
    missing_meta: set[str] = field(default_factory=set)  # objects needed, in no readable metadata pack
    marked: Marked = field(default_factory=Marked)
    locations: dict[bytes, list[Location]] = field(default_factory=dict)  # every index row of a chunk
    bad_rows: dict[tuple[bytes, Location], str] = field(default_factory=dict)  # row -> why it cannot be read
    packs: dict[str, tuple[int, float]] = field(default_factory=dict)
    tocs: dict[str, Rows | None] = field(default_factory=dict)  # pack -> its own contents (None: unreadable)
    chunks_read: int = 0
    reread: bool = False  # rows failed when read back, or the index lies: a repair must read all

    @property
    def repairable(self) -> bool:
        return bool(self.bad_files or self.bad_chunks or self.missing_meta or self.bad_rows)


@dataclass
class _Mended:
    files_restored: list[str] = field(default_factory=list)  # put back from this store's whole copy
    reindexed: int = 0  # chunks found in packs no readable fragment named
    chunks_sent: int = 0
    packs_sent: int = 0
    meta_objects_sent: int = 0
    moved_aside: list[str] = field(default_factory=list)
    damaged_here: int = 0  # chunks this store could not send: damaged here too
    written: set[bytes] = field(default_factory=set)  # chunks given a new row: read back afterwards

    def as_json(self) -> dict:
        return {"files_restored": self.files_restored, "chunks_reindexed": self.reindexed,
                "chunks_sent": self.chunks_sent, "packs_sent": self.packs_sent,
                "metadata_objects_sent": self.meta_objects_sent, "moved_aside": self.moved_aside,
                "chunks_damaged_here": self.damaged_here}


def fsck_remote(store: Store, name_or_url: str | None = None, read_data_subset: float = 0.0,
                repair: bool = False) -> dict:
    """Verify a remote (see the module's docstring); ``repair`` mends what this store can.
    Problems left are in ``problems`` (``ok`` when none); a check that found something a
    repair can mend says so in ``hint``."""
    if not 0.0 <= read_data_subset <= 1.0:
        raise DsError("--read-data-subset is a fraction between 0 and 1")
    remote = Remote(store, name_or_url)
    thorough = repair or read_data_subset >= 1.0
    with remote.fs.operation("fsck"):
        remote.check_config(create=False)
        name = remote.name or remote.url
        if not repair:
            c = _check(remote, read_data_subset, thorough)
            reread = " --read-data-subset 1" if c.reread else ""  # else a repair reads too little to mend it
            hint = _hints(remote, c, f"`ds fsck --remote {name}{reread} --repair` mends what this store "
                                     "holds" if c.repairable else None)
            return _result(remote, c) | {"hint": hint, "problems_found": c.problems, "repaired": None}
        with store.locked(), remote.lock("repair", exclusive=True) as remote.lease:
            try:
                found = _check(remote, read_data_subset, thorough)
                if not found.problems:
                    return _result(remote, found) | {"hint": None, "problems_found": [], "repaired": None}
                mended = _repair(remote, found)
                remote.forget_index()
                remote.unreadable = set()
                # again, reading back every chunk given a new row and every one still unreadable
                after = _check(remote, 0.0, thorough=False, read=mended.written | set(found.bad_chunks))
            finally:
                remote.lease = None
    left = after.repairable or (after.problems and not after.marked.malformed)
    hint = _hints(remote, after, f"what is left needs a store that holds it: run `ds fsck --remote {name} "
                                 "--read-data-subset 1 --repair` there" if left else None)
    return _result(remote, after) | {"hint": hint, "problems_found": found.problems,
                                     "repaired": mended.as_json(),
                                     "chunks_read": found.chunks_read + after.chunks_read}


def _hints(remote: Remote, c: _Check, hint: str | None) -> str | None:
    """``hint``, and what to do about malformed versions the remote's refs reach (no repair
    from chunks mends their metadata), as one line."""
    bad = c.marked.malformed
    if not bad:
        return hint
    name = remote.name or remote.url
    refs = remote.read_refs()
    meta = remote.store.meta
    who = [rel for rel, oid in sorted(refs.items())
           if meta.object_type(oid) == "commit" and any(oid == b or meta.is_ancestor(b, oid) for b in bad)]
    ids = short_ids(bad)
    what = malformed_kinds(bad, c.marked.wrong_sizes)
    reached = f"the remote's {', '.join(who)}" if who else "the remote's dataset records"
    mend = (f"versions {ids} {what} (written so, e.g. by a hostile remote; no repair mends that) and are "
            f"reached by {reached}: move those branches off them (`ds push --force {name} REV:BRANCH`; a tag "
            "or dataset record must be deleted on the remote), then run `ds fsck --repair` in each store "
            "that fetched them")
    return mend if hint is None else f"{hint}; also, {mend}"


def _result(remote: Remote, c: _Check) -> dict:
    return {"ok": not c.problems, "problems": c.problems, "versions": len(c.marked.commits),
            "chunks_indexed": len(c.locations), "chunks_needed": len(c.marked.chunks),
            "chunks_read": c.chunks_read, "packs": len(c.packs), "requests": remote.fs.request_count}


# -- checking ------------------------------------------------------------------------------
def _check(remote: Remote, subset: float, thorough: bool, read: set[bytes] = frozenset()) -> _Check:
    c = _Check()
    with tempfile.TemporaryDirectory(dir=remote.cache) as tmp:
        _check_fragments(remote, c, Path(tmp), thorough)
        held = _check_meta_packs(remote, c, Path(tmp), thorough)
    # read no further where this store has no whole copy (index() and fetch_meta() pass them over)
    remote.unreadable |= {rel for rel in c.bad_files if rel not in c.whole_here}
    c.problems += c.bad_files.values()
    m, records, named = mark_remote(remote)
    c.marked = m
    c.problems += [f"{rel}: {why}" for bad in (remote.bad_records, remote.bad_refs)
                   for rel, why in sorted(bad.items())]
    c.problems += named + m.problems
    for record in records:  # files kept beside a version (artifacts, report images)
        for cid in attachment_chunks(remote.store, record):
            m.chunks.setdefault(cid, f"dataset {record['id']} attachment")
    needed: set[str] = set()
    remote.store.meta.reachable(m.commits | m.trees, needed, missing=set())
    c.missing_meta = needed - held
    if c.missing_meta:
        c.problems.append(f"{len(c.missing_meta)} metadata object(s) the remote's versions need are in no "
                          f"readable metadata pack there (one is {min(c.missing_meta)})")
    _check_chunks(remote, c, subset, read)
    return c


def _check_fragments(remote: Remote, c: _Check, tmp: Path, thorough: bool) -> None:
    """Each index fragment: one not cached yet is downloaded into the cache and checked (as
    the index would be); a cached one is downloaded again and checked when thorough, else
    its size compared. A cached copy was checked when it came, so it is whole."""
    cache = remote.cache / "index"
    cache.mkdir(parents=True, exist_ok=True)
    for rel, (size, _mtime) in sorted(remote.fs.list_detail("index").items()):
        name = rel.rsplit("/", 1)[-1]
        if not name.endswith(".idx") or name.startswith(".tmp-"):
            continue
        mine = cache / name
        cached = mine.exists()
        if cached and not thorough:
            if mine.stat().st_size != size:
                c.bad_files[rel] = f"index fragment {rel} differs in size from the copy checked here: damaged"
        else:
            try:
                remote.fs.get_file(rel, tmp / name if cached else mine,
                                   check=lambda p, n=name: fragment_ok(p, n))
            except RemoteDamaged as e:
                c.bad_files[rel] = f"index fragment {rel} is damaged ({e.why})"
            except FileNotFoundError:
                pass  # replaced since it was listed (a remote gc)
        if rel in c.bad_files and cached:
            if fragment_ok(mine, name):
                c.whole_here[rel] = [mine]
            else:
                mine.unlink()  # damaged here too: of no use to anyone


def _check_meta_packs(remote: Remote, c: _Check, tmp: Path, thorough: bool) -> set[str]:
    """Each metadata pack: there beside its ``.idx``, and whole. Downloaded and checked when
    thorough, or when this store does not know it yet (then kept, as a fetch would: the
    marking reads it); else its size compared with this store's copy of the same name. The
    objects the good ones hold (each ``.idx`` read once, then cached)."""
    files = {rel: size for rel, (size, _mtime) in remote.fs.list_detail("meta").items()
             if rel.rsplit("/", 1)[-1].startswith("pack-")}
    mine = remote.store.meta.pack_folder
    known = remote.store.meta.pack_names() | remote._remembered_meta()
    held: set[str] = set()
    for stem in sorted(rel[:-4] for rel in files if rel.endswith(".idx")):
        pack, idx = f"{stem}.pack", f"{stem}.idx"
        short = stem.rsplit("/", 1)[-1]
        why = None if pack in files else f"metadata pack index {idx} has no pack"
        new = f"{short}.idx" not in known
        for rel in (pack, idx) if why is None else ():
            name = rel.rsplit("/", 1)[-1]
            if not (thorough or new):
                if (mine / name).exists() and (mine / name).stat().st_size != files[rel]:
                    why = f"metadata pack {rel} differs in size from this store's copy: damaged"
                continue
            try:
                remote.fs.get_file(rel, tmp / name, check=lambda p, n=name: git_pack_ok(p, n))
            except RemoteDamaged as e:
                why = f"metadata pack {rel} is damaged ({e.why})"
                break
            except FileNotFoundError:
                why = ""  # removed since it was listed (a remote gc replaced it): not ours to judge
                break
        if why is None and (thorough or new):
            if new:  # as a fetch takes it: the .pack, then the .idx that publishes it
                mine.mkdir(parents=True, exist_ok=True)
                for suffix in (".pack", ".idx"):
                    (tmp / f"{short}{suffix}").replace(mine / f"{short}{suffix}")
                remote._remember_meta([f"{short}.pack", f"{short}.idx"])
            else:  # checked: the copy meta_pack_objects reads
                (remote.cache / "meta-idx").mkdir(parents=True, exist_ok=True)
                (tmp / f"{short}.idx").replace(remote.cache / "meta-idx" / f"{short}.idx")
        for suffix in (".pack", ".idx"):
            (tmp / f"{short}{suffix}").unlink(missing_ok=True)
        if why is None:
            try:
                held.update(remote.meta_pack_objects(short))
            except RemoteDamaged as e:
                why = f"metadata pack {idx} is damaged ({e.why})"
            except FileNotFoundError:
                why = ""
        if why:
            c.bad_files[idx] = why
            copies = [mine / f"{short}.idx", mine / f"{short}.pack"]
            if all(p.exists() and git_pack_ok(p, p.name) for p in copies):
                c.whole_here[idx] = copies
    return held


def _check_chunks(remote: Remote, c: _Check, subset: float, read: set[bytes]) -> None:
    """Every needed chunk indexed in an existing pack, within its listed size; a share of
    the index rows (and every row of the chunks in ``read``) read back. Every row of every
    fragment counts, not only the one a lookup finds first: fragments are searched in an
    order each reader sets, so a chunk indexed twice, once where it cannot be read, fails
    for some readers. A chunk whose rows give a length a version's file entry does not is
    read back too: if it reads whole, that version's metadata is wrong (``check_sizes``)."""
    for frag in remote.index().fragments:
        for cid, loc in frag:
            c.locations.setdefault(cid, []).append(loc)
    c.packs = remote.packs(remote.listing())  # after the index: a push lands its packs before its fragment
    gone = {loc.pack for locs in c.locations.values() for loc in locs} - c.packs.keys()
    c.problems += [f"the index names pack {p}, which is missing" for p in sorted(gone)]
    short: dict[str, list[tuple[bytes, Location]]] = {}
    for cid, locs in c.locations.items():
        for loc in locs:
            if loc.pack in gone:
                c.bad_rows[cid, loc] = f"its pack {loc.pack} is missing"
            elif loc.offset + loc.stored_len > c.packs[loc.pack][0]:
                short.setdefault(loc.pack, []).append((cid, loc))
    for p, rows in sorted(short.items()):
        if _toc(remote, c, p) is None:
            why = f"its pack {p} is shorter than the index says: cut short"
            c.problems.append(f"pack {p} is shorter than the index says: cut short")
        else:
            why = f"its index row points past the end of pack {p}, whose table of contents says it is whole"
            c.reread = True  # an index that lies here may lie elsewhere: every row is worth reading
            c.problems.append(f"the index names bytes past the end of pack {p}, whose own table of contents "
                              f"says it is whole: the index is wrong ({len(rows)} row(s))")
        c.bad_rows.update(((cid, loc), why) for cid, loc in rows)
    lengths = c.marked.lengths
    sized = {cid for cid, locs in c.locations.items() if cid in lengths
             and (cid in c.marked.odd_lengths or any(loc.raw_len != lengths[cid] for loc in locs))}
    read = read | sized
    sample = sorted(((cid, loc) for cid, locs in c.locations.items() for loc in locs  # all rows of
                     if (cid, loc) not in c.bad_rows  # a chunk indexed twice: readers differ there
                     and (cid in read or len(locs) > 1 or random.random() < subset)),
                    key=lambda row: (row[1].pack, row[1].offset))
    c.chunks_read = len(sample)
    failed: dict[str, list[tuple[bytes, Location, str]]] = {}
    for pack, rows in groupby(sample, key=lambda row: row[1].pack):
        rows = list(rows)
        try:
            for cid, loc, stored in remote.read_chunks(rows, verify=False):
                try:
                    remote.decode(cid, loc, stored)
                except DsError as e:
                    why = str(e).removesuffix(f"; {remote.fsck_hint}")
                    failed.setdefault(pack, []).append((cid, loc, why))
                    c.bad_rows[cid, loc] = "it fails its check"
        except RemoteDamaged as e:  # one damaged pack is one problem, not the end of the check
            c.problems.append(f"pack {pack} looks damaged on the remote: its chunks cannot be read back "
                              f"({e.why}, at every try)")
            c.bad_rows.update(((cid, loc), f"its pack {pack} cannot be read") for cid, loc in rows)
            c.reread = True
    for pack, rows in sorted(failed.items()):
        c.reread = True
        toc = _toc(remote, c, pack)
        held = dict(toc or ())
        for cid, loc, why in rows:
            where = c.marked.chunks.get(cid)
            of = f" (a chunk of {where})" if where else ""
            if toc is None or held.get(cid) == loc:  # the pack's own record fails: data damage
                c.problems.append(why + of)
                continue
            elsewhere = "has it elsewhere" if cid in held else "does not hold it"
            c.problems.append(f"the index row of chunk {cid.hex()}{of} names the wrong bytes of pack {pack}, "
                              f"whose own table of contents {elsewhere}: the index is wrong")
            c.bad_rows[cid, loc] = "its index row names the wrong bytes of its pack"
    whole = {cid: loc.raw_len for cid in sized for loc in c.locations[cid] if (cid, loc) not in c.bad_rows}
    before = len(c.marked.problems)
    check_sizes(remote.store.meta, c.marked, whole.get)  # lengths of rows that read back whole
    c.problems += c.marked.problems[before:]
    for cid, where in c.marked.chunks.items():
        locs = c.locations.get(cid, [])
        bad = [c.bad_rows[cid, loc] for loc in locs if (cid, loc) in c.bad_rows]
        if not locs:
            c.bad_chunks[cid] = "not on the remote"
            c.problems.append(f"chunk {cid.hex()} of {where} is not on the remote")
        elif len(bad) == len(locs):
            c.bad_chunks[cid] = bad[0]  # a problem named above, by its pack or its read
        elif bad:
            c.problems.append(f"chunk {cid.hex()} of {where} is indexed twice, once where it cannot be "
                              f"read ({bad[0]}): some readers fail on it")


def _toc(remote: Remote, c: _Check, pack: str) -> Rows | None:
    """A remote pack's own table of contents (read once, three ranged reads); None when it
    cannot be read (the pack is damaged or cut short, or gone)."""
    if pack not in c.tocs:
        try:
            c.tocs[pack] = remote.pack_toc(pack, c.packs[pack][0])
        except (FormatError, RemoteDamaged, FileNotFoundError, KeyError):
            c.tocs[pack] = None
    return c.tocs[pack]


# -- mending -------------------------------------------------------------------------------
def _repair(remote: Remote, c: _Check) -> _Mended:
    mended = _Mended()
    for rel, copies in sorted(c.whole_here.items()):  # 0. this store's whole copy, put back as it was
        for path in sorted(copies, key=lambda p: p.suffix == ".idx"):  # a metadata pack's .idx last
            remote.check()
            remote.fs.put(rel.rsplit("/", 1)[0] + "/" + path.name, path)
        mended.files_restored.append(rel)
    rows = _kept_rows(c)
    named = {loc.pack for locs in c.locations.values() for loc in locs}
    misindexed = {loc.pack for _cid, loc in c.bad_rows if loc.pack in c.packs}
    for pack in sorted((c.packs.keys() - named) | misindexed):  # 1. packs no row, or a wrong row, names
        toc = _toc(remote, c, pack)
        if toc is None:
            continue  # not a pack we can read: left for a remote gc
        found = [(cid, loc) for cid, loc in toc if (cid not in rows or cid in c.bad_chunks)
                 and (cid, loc) not in c.bad_rows]
        try:  # indexed only once read back whole: a later push trusts the index
            whole = {cid: loc for cid, loc, _stored in _readable(remote, found)}
        except (RemoteDamaged, FileNotFoundError):
            continue
        rows.update(whole)
        for cid in whole.keys() & c.bad_chunks.keys():
            del c.bad_chunks[cid]
        mended.reindexed += len(whole)
        mended.written |= whole.keys()
    store = remote.store
    here = [cid for cid in c.bad_chunks if store.chunks.has(cid)]  # 2. sent again from here
    sent: list[bytes] = []
    remote.resend = True  # a damaged pack may come out of the same chunks again, under its name
    new_rows, mended.packs_sent = remote.write_packs(_whole_here(remote, here, sent, mended))
    rows.update(new_rows)
    mended.chunks_sent = len(sent)
    mended.written |= set(sent)
    if mended.reindexed or mended.written or c.bad_rows:  # 3. one fragment naming every chunk where it reads
        remote.replace_index(sorted(rows.items()), remote.fragments())
    send = {o for o in c.missing_meta if store.meta.readable(o)}  # 4. metadata
    if send:
        remote._remember_meta(remote.put_meta_pack(send, remote.check))
        mended.meta_objects_sent = len(send)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for rel in sorted(c.bad_files):  # 5. damaged files aside (a metadata pack's .idx first)
        unit = [rel, rel[:-4] + ".pack"] if rel.startswith("meta/") else [rel]
        mended.moved_aside += _move_aside(remote, unit, f"damaged/{stamp}")
    return mended


def _kept_rows(c: _Check) -> dict[bytes, Location]:
    """The index to write: each chunk where it reads, else (a chunk some version needs)
    where it was. A row that cannot be read, of a chunk no version needs, is dropped:
    nothing readable goes with it."""
    rows = {}
    for cid, locs in c.locations.items():
        good = [loc for loc in locs if (cid, loc) not in c.bad_rows]
        if good or cid in c.marked.chunks:
            rows[cid] = (good or locs)[0]
    return rows


def _readable(remote: Remote, rows: Rows):
    """The rows whose chunks read back whole (a damaged one is passed over)."""
    for cid, loc, stored in remote.read_chunks(rows, verify=False):
        try:
            remote.decode(cid, loc, stored)
        except DsError:
            continue
        yield cid, loc, stored


def _whole_here(remote: Remote, chunk_ids: list[bytes], sent: list[bytes], mended: _Mended):
    """This store's copies of these chunks, each verified; one damaged here too is counted
    and passed over (never send damage)."""
    source = LocalRepository(remote.store)
    for cid in chunk_ids:
        try:
            chunk: Chunk = next(source.read_whole([cid]))
        except (DsError, OSError):
            mended.damaged_here += 1
            continue
        sent.append(cid)
        yield chunk


def _move_aside(remote: Remote, rels: list[str], folder: str) -> list[str]:
    """Copy damaged remote files (a fragment, or a metadata pack's ``.idx`` and ``.pack``:
    one unit) to ``folder/<rel>``, then remove them from where readers look, in order;
    none if all are whole now (the repair wrote the same content under the same name:
    files are named by what they hold) or one cannot be read at all (then all stay)."""
    moved = []
    with tempfile.TemporaryDirectory(dir=remote.cache) as tmp:
        copies = {}
        for rel in rels:
            name = rel.rsplit("/", 1)[-1]
            try:
                remote.fs.get_file(rel, Path(tmp, name))
            except FileNotFoundError:
                continue
            except RemoteDamaged:
                return []
            copies[rel] = Path(tmp, name)
        whole = fragment_ok if rels[0].startswith("index/") else git_pack_ok
        if len(copies) == len(rels) and all(whole(path, path.name) for path in copies.values()):
            return []
        for rel, path in copies.items():
            remote.check()
            remote.fs.put(f"{folder}/{rel}", path)
        for rel in rels:
            remote.check()
            remote.fs.delete([rel])
            moved.append(rel)
    return moved
