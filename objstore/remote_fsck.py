"""``ds fsck --remote``: verify a remote; with ``--repair``, mend it from this store.

The check reads the remote's refs, dataset records, index fragments and metadata packs;
damage in one file is one problem and the check goes on: an index fragment or metadata
pack failing its checksum, a metadata pack missing beside its ``.idx``, metadata objects
the remote's versions need that no readable metadata pack holds. Their chunks are checked
as the local fsck checks its own (``chunk_check.py``), reading back a share
(``read_data_subset``) of the index rows and every row of a chunk indexed twice; a
version whose file entries give a chunk another length than its own is one no repair
mends (the hint names the remote's refs that reach it). A thorough check
(``--read-data-subset 1``, or a repair) downloads every fragment and metadata pack to
check it; a quick one downloads only fragments not cached yet (as any reader does) and
compares sizes with the copies this store holds. ``--read-data-subset 1`` is a full chunk
check: every header and table of contents, and every record no index row names (the pack
a killed repair emptied but did not remove). A data pack whose own bytes fail (a record,
its header or table of contents, cut short) is a *damaged pack*.

``--repair`` mends under the store's lock and the remote's exclusive lock (as a remote gc),
and removes nothing it has not replaced:

0. a damaged fragment or metadata pack of which this store holds a whole copy under the
   same name (checked when it came; files are named by their content) is put back;
1. every chunk of a pack no readable fragment names, or whose row is wrong, is indexed from
   the pack's own table of contents (three ranged reads) once it reads back whole there (a
   later push trusts the index); so is a whole copy, in such a pack, of a damaged pack's
   chunk (what a killed repair landed);
2. needed chunks still missing or damaged are sent again from this store, verified, as new
   packs (a damaged pack that comes out the same is overwritten, not skipped as landed).
   A damaged pack is emptied into the same new packs: each chunk of it with no whole copy
   elsewhere is copied from this store (read and checked first), else from its record in
   a damaged pack that reads whole; each copy is read back before the index names it. Only
   a pack every needed chunk of which has such a copy is emptied; one with a needed chunk
   whole nowhere at hand stays as it is (this store's copies of its damaged chunks are still
   sent), named with the files and versions that chunk breaks and where to run the repair;
3. one index fragment names every chunk where it reads (a needed chunk no row of which
   reads keeps its row; only an unreadable row of a chunk no version needs is dropped, as
   is every row naming an emptied pack), then the old fragments go;
4. metadata objects the remote's versions need and no readable pack holds are sent again
   as one metadata pack;
5. damaged fragments and metadata packs are copied to ``damaged/<when>/`` on the remote,
   where nothing reads or deletes them, and then removed from where readers look;
6. each emptied damaged pack, named by no index row now, likewise (one whole again under
   its own name stays). A reader holding an older index then gets "not found", syncs the
   index and reads the chunk where it is now, as after a remote gc; none reads the damage.

A kill between any two steps leaves the remote no worse (new packs before the index names
them, the index before anything goes, a copy aside before its deletion), and the next
``--read-data-subset 1 --repair`` finishes (an emptied pack is found by its own bytes). The
remote is then checked again, reading back every chunk the repair gave a new row and every
one still unreadable, and what is left is reported. Data damage is found only where rows
are read: ``--read-data-subset 1 --repair`` reads them all.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from itertools import chain, groupby
from pathlib import Path

from .chunk_check import ChunkCheck, IndexRows, check_chunks
from .errors import DsError
from .index import Location
from .maintenance import malformed_kinds, short_ids
from .record_sync import attachment_chunks
from .remote import Remote
from .remote_fs import RemoteDamaged
from .remote_gc import mark_remote
from .remote_repo import fragment_ok, git_pack_ok
from .repair import losses
from .repository import Chunk, LocalRepository, Rows
from .store import Store


@dataclass
class _Check(ChunkCheck):
    """What one pass over a remote found: its chunks (``ChunkCheck``), files and metadata."""

    bad_files: dict[str, str] = field(default_factory=dict)  # fragment or metadata pack .idx -> why
    whole_here: dict[str, list[Path]] = field(default_factory=dict)  # bad file -> this store's whole copy
    missing_meta: set[str] = field(default_factory=set)  # objects needed, in no readable metadata pack

    @property
    def repairable(self) -> bool:
        return bool(self.bad_files or self.bad_chunks or self.missing_meta or self.bad_rows or self.bad_packs)


@dataclass
class _Mended:
    files_restored: list[str] = field(default_factory=list)  # put back from this store's whole copy
    reindexed: int = 0  # chunks found in packs no readable fragment named
    chunks_sent: int = 0
    packs_sent: int = 0
    meta_objects_sent: int = 0
    moved_aside: list[str] = field(default_factory=list)
    damaged_here: int = 0  # chunks this store could not send: damaged here too
    chunks_moved: int = 0  # chunks of emptied damaged packs copied to new packs (they read somewhere)
    packs_kept: list[dict] = field(default_factory=list)  # damaged packs left in place: why, what they break
    written: set[bytes] = field(default_factory=set)  # chunks given a new row: read back afterwards

    def as_json(self) -> dict:
        return {"files_restored": self.files_restored, "chunks_reindexed": self.reindexed,
                "chunks_sent": self.chunks_sent, "packs_sent": self.packs_sent,
                "chunks_moved": self.chunks_moved, "metadata_objects_sent": self.meta_objects_sent,
                "moved_aside": self.moved_aside, "chunks_damaged_here": self.damaged_here,
                "damaged_packs_kept": self.packs_kept}


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
    after.problems += _kept_problems(name, mended)
    left = after.repairable or (after.problems and not after.marked.malformed)
    hint = _hints(remote, after, f"what is left needs a store that holds it: run `ds fsck --remote {name} "
                                 "--read-data-subset 1 --repair` there" if left else None)
    return _result(remote, after) | {"hint": hint, "problems_found": found.problems,
                                     "repaired": mended.as_json(),
                                     "chunks_read": found.chunks_read + after.chunks_read}


def _kept_problems(name: str, mended: _Mended) -> list[str]:
    """A line for each damaged pack the repair had to leave: for a chunk no store at hand
    holds whole, the files and versions it breaks and where the fix must run."""
    lines = []
    for kept in mended.packs_kept:
        p = kept["pack"]
        if not kept["chunks"]:
            lines.append(f"damaged pack {p} stays on the remote: {kept['why']}")
        for lost in kept["chunks"]:
            paths, versions = lost["paths"], lost["versions"]
            files = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more file(s)" if len(paths) > 3 else "")
            where = f" of version(s) {short_ids(set(versions))}" if versions else ""
            lines.append(f"chunk {lost['chunk']} is damaged in pack {p} and this store holds no whole copy: "
                         f"{files}{where} cannot be read, so the pack stays; run `ds fsck --remote {name} "
                         "--read-data-subset 1 --repair` on a machine whose store holds those files")
    return lines


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
            "chunks_indexed": len(c.rows), "chunks_needed": len(c.marked.chunks),
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
    check_chunks(remote, c, IndexRows.of_fragments(remote.index().fragments), subset, subset >= 1.0, read)
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
    known = remote.store.meta.pack_names() | remote.remembered_meta()
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
                LocalRepository(remote.store).add_meta_pack([tmp / f"{short}.pack", tmp / f"{short}.idx"])
                remote.remember_meta([f"{short}.pack", f"{short}.idx"])
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


# -- mending -------------------------------------------------------------------------------
def _repair(remote: Remote, c: _Check) -> _Mended:
    mended = _Mended()
    for rel, copies in sorted(c.whole_here.items()):  # 0. this store's whole copy, put back as it was
        for path in sorted(copies, key=lambda p: p.suffix == ".idx"):  # a metadata pack's .idx last
            remote.check()
            remote.fs.put(rel.rsplit("/", 1)[0] + "/" + path.name, path)
        mended.files_restored.append(rel)
    rows = _kept_rows(c)
    named = {loc.pack for _cid, loc in c.rows}
    misindexed = {loc.pack for _cid, loc in c.bad_rows if loc.pack in c.packs}
    for pack in sorted((c.packs.keys() - named) | misindexed):  # 1. packs no row, or a wrong row, names
        toc = c.toc(remote, pack)
        if toc is None:
            continue  # not a pack we can read: left for a remote gc
        found = [(cid, loc) for cid, loc in toc if (cid, loc) not in c.bad_rows and (
            cid not in rows or cid in c.bad_chunks  # or a copy (a killed repair's) of a damaged pack's chunk
            or (rows[cid].pack in c.bad_packs and pack not in c.bad_packs))]
        try:  # indexed only once read back whole: a later push trusts the index
            whole = {cid: loc for cid, loc, _stored in _readable(remote, found)}
        except (RemoteDamaged, FileNotFoundError):
            continue
        rows.update(whole)
        c.read_ok.update(whole.items())
        for cid in whole.keys() & c.bad_chunks.keys():
            del c.bad_chunks[cid]
        mended.reindexed += len(whole)
        mended.written |= whole.keys()
    removed, plan = _send_and_empty(remote, c, rows, mended)  # 2. sent again, damaged packs emptied
    store = remote.store
    if mended.reindexed or mended.written or c.bad_rows or removed:  # 3. one fragment naming every chunk
        remote.replace_index(sorted(rows.items()), remote.fragments())  # where it reads
    send = {o for o in c.missing_meta if store.meta.readable(o)}  # 4. metadata
    if send:
        remote.remember_meta(remote.put_meta_pack(send))
        mended.meta_objects_sent = len(send)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for rel in sorted(c.bad_files):  # 5. damaged files aside (a metadata pack's .idx first)
        unit = [rel, rel[:-4] + ".pack"] if rel.startswith("meta/") else [rel]
        mended.moved_aside += _move_aside(remote, unit, f"damaged/{stamp}")
    kept_aside = {rel.split("/", 2)[-1]: size for rel, (size, _m) in remote.fs.list_detail("damaged").items()
                  } if removed else {}
    for p in removed:  # 6. emptied damaged data packs aside, once no index row names them
        why = _move_pack_aside(remote, p, f"damaged/{stamp}", kept_aside, mended)
        if why is not None:
            mended.packs_kept.append({"pack": p, "why": why, "chunks": []})
    _name_lacking(remote, c, plan, mended)
    return mended


def _send_and_empty(remote: Remote, c: _Check, rows: dict[bytes, Location],
                    mended: _Mended) -> tuple[list[str], _Emptying]:
    """Step 2: needed chunks no row of which reads, sent again from here; the chunks of each
    damaged pack that can be emptied, copied beside them (``_plan_emptying``). ``rows`` then
    name each copy that read back whole, and none of an emptied pack; returns those packs
    (to go once the index no longer names them) and the plan."""
    store = remote.store
    plan = _plan_emptying(remote, c, rows)
    emptied = [p for p in sorted(c.bad_packs) if p not in plan.lacking]
    moving = {cid for p in emptied for cid in plan.members[p]}
    mended.damaged_here = len(plan.damaged_here & c.bad_chunks.keys())
    here = [cid for cid in c.bad_chunks if store.chunks.has(cid) and cid not in plan.damaged_here]
    here += sorted((moving & plan.here) - c.bad_chunks.keys())
    salvage = sorted(((cid, loc) for cid, loc in plan.salvage.items() if cid in moving - plan.here),
                     key=lambda row: (row[1].pack, row[1].offset))
    failed: set[bytes] = set()
    salvaged: list[bytes] = []
    remote.resend = True  # a damaged pack may come out of the same chunks again, under its name
    new_rows, mended.packs_sent = remote.write_packs(
        chain(_whole_here(store, here, failed), _salvaged(remote, salvage, salvaged)))
    sent = [cid for cid in here if cid not in failed]
    mended.damaged_here += len(failed)
    fresh = {loc.pack for _cid, loc in new_rows}  # a damaged pack written again whole is one of them
    members = {cid for ms in plan.members.values() for cid in ms}
    relied = [(cid, loc) for cid in moving if (loc := rows.get(cid)) is not None and loc.pack not in
              c.bad_packs and (cid, loc) not in c.read_ok and (cid, loc) not in c.bad_rows]
    verified = c.read_ok | _read_back(remote, [row for row in new_rows if row[0] in members] + relied)
    for cid, loc in new_rows:  # a chunk of a damaged pack moves only to a copy read back whole
        if cid not in members or (cid, loc) in verified:
            rows[cid] = loc
    mended.chunks_sent = sum(cid in c.bad_chunks for cid in sent)
    mended.chunks_moved = len(sent) - mended.chunks_sent + len(salvaged)
    mended.written |= set(sent) | set(salvaged)
    whole_at_hand = set(sent) | set(salvaged) | plan.here
    removed = []
    for p in emptied:
        if p in fresh:
            continue  # written again whole, under its own name
        left = [cid for cid in plan.members[p] if not _moved_out(c, rows, cid, verified, fresh)]
        if any(cid in c.marked.chunks or cid in whole_at_hand for cid in left):
            mended.packs_kept.append({"pack": p, "why": "a copy of its chunks did not read back whole",
                                      "chunks": []})
            continue  # the pack stays, its rows too: no worse than before
        for cid in left:  # chunks no version needs and nothing holds whole: their rows go with it
            if cid in rows and rows[cid].pack == p:
                del rows[cid]
        removed.append(p)
    return removed, plan


@dataclass
class _Emptying:
    """What emptying the damaged data packs takes (``_plan_emptying``)."""

    members: dict[str, set[bytes]]  # damaged pack -> the chunks of it that matter
    here: set[bytes]  # chunks this store holds whole (read and checked): copied from here
    salvage: dict[bytes, Location]  # else: a row on the remote not known to fail, to copy from
    lacking: dict[str, list[bytes]]  # damaged pack -> needed chunks of it with no whole copy at hand
    damaged_here: set[bytes]  # chunks whose copy here fails its check


def _plan_emptying(remote: Remote, c: _Check, rows: dict[bytes, Location]) -> _Emptying:
    """For each damaged data pack, where a whole copy of each of its chunks is: already
    elsewhere on the remote, here, or in a row that reads (a damaged pack's other records
    are often whole). A pack is emptied only when every chunk of it some version needs has
    one; one that cannot be keeps everything where it is (and its chunks are named)."""
    bad = c.bad_packs
    members: dict[str, set[bytes]] = {p: set() for p in bad}
    candidates: dict[bytes, list[Location]] = {}
    needed_records = ((cid, loc) for p in bad for cid, loc in c.tocs.get(p) or () if cid in c.marked.chunks)
    everywhere = chain(c.rows, rows.items(),
                       needed_records)
    for cid, loc in everywhere:
        if loc.pack in bad:  # every row naming the pack, and its own record of a needed chunk
            members[loc.pack].add(cid)
            if (cid, loc) not in c.bad_rows:
                candidates.setdefault(cid, []).append(loc)
    wanted = {cid for ms in members.values() for cid in ms if not _outside(c, rows, cid)}
    damaged_here: set[bytes] = set()
    held = (cid for cid in sorted(wanted) if remote.store.chunks.has(cid))
    here = {chunk[0] for chunk in _whole_here(remote.store, held, damaged_here)}
    salvage = {cid: min(locs, key=lambda loc: (cid, loc) not in c.read_ok)
               for cid, locs in candidates.items() if cid in wanted - here}
    lacking = {p: sorted(cid for cid in ms if cid in wanted and cid not in here and cid not in salvage
                         and cid in c.marked.chunks) for p, ms in members.items()}
    return _Emptying(members, here, salvage, {p: v for p, v in lacking.items() if v}, damaged_here)


def _outside(c: _Check, rows: dict[bytes, Location], cid: bytes) -> bool:
    """Whether the index to write has ``cid`` outside every damaged pack, in a row not known to fail."""
    loc = rows.get(cid)
    return loc is not None and loc.pack not in c.bad_packs and (cid, loc) not in c.bad_rows


def _moved_out(c: _Check, rows: dict[bytes, Location], cid: bytes, verified: set, fresh: set[str]) -> bool:
    """Whether ``cid``'s row is outside the damaged packs (or in one written again whole)
    and read back whole."""
    loc = rows.get(cid)
    return (loc is not None and (loc.pack not in c.bad_packs or loc.pack in fresh)
            and (cid, loc) in verified)


def _read_back(remote: Remote, rows: Rows) -> set[tuple[bytes, Location]]:
    """The rows that read back whole, pack by pack (one that cannot be read counts for none)."""
    return {(cid, loc) for cid, loc, _stored in _readable(remote, rows, each_pack=True)}


def _salvaged(remote: Remote, rows: Rows, got: list[bytes]) -> Iterator[Chunk]:
    """The chunks of these remote rows that read back whole (a damaged pack's whole
    records), each checked; one that fails, or a pack that cannot be read, is passed over."""
    for cid, loc, stored in _readable(remote, rows, each_pack=True):
        got.append(cid)
        yield cid, stored, loc.raw_len, loc.flags


def _move_pack_aside(remote: Remote, pack: str, folder: str, kept: dict[str, int],
                     mended: _Mended) -> str | None:
    """Copy an emptied damaged data pack to ``folder/packs/..`` (unless a killed run kept
    it there already), then delete it; None when done or nothing is to be done (gone, or
    whole again: packs are named by their content), else why it stays."""
    rel = f"packs/{pack[:2]}/{pack}.pack"
    with tempfile.TemporaryDirectory(dir=remote.cache) as tmp:
        path = Path(tmp, f"{pack}.pack")
        try:
            remote.fs.get_file(rel, path)
        except FileNotFoundError:
            return None
        except RemoteDamaged as e:
            return f"it cannot be downloaded to keep a copy of it ({e.why}); no index row names it now"
        if remote.store.chunks.intact(path, pack):
            return None
        if kept.get(rel) != path.stat().st_size:
            remote.check()
            remote.fs.put(f"{folder}/{rel}", path)
    remote.check()
    remote.fs.delete([rel])
    mended.moved_aside.append(rel)
    return None


def _name_lacking(remote: Remote, c: _Check, plan: _Emptying, mended: _Mended) -> None:
    """Each damaged pack left in place for needed chunks no whole copy of which is at hand,
    with the files and versions those chunks break."""
    lost = {cid for cids in plan.lacking.values() for cid in cids}
    found = {bytes.fromhex(loss.chunk): loss for loss in losses(remote.store.meta, c.marked.commits, lost)}
    for p, cids in sorted(plan.lacking.items()):
        chunks = []
        for cid in cids:
            loss = found.get(cid)
            paths = loss.paths if loss and loss.paths else [c.marked.chunks[cid]]  # else an attachment's
            chunks.append({"chunk": cid.hex(), "paths": paths, "versions": loss.versions if loss else []})
        mended.packs_kept.append({"pack": p, "why": "this store holds no whole copy of chunks of it that "
                                  "versions need", "chunks": chunks})


def _kept_rows(c: _Check) -> dict[bytes, Location]:
    """The index to write: each chunk where it reads, else (a chunk some version needs)
    where it was. A row that cannot be read, of a chunk no version needs, is dropped:
    nothing readable goes with it."""
    rows = {}
    for cid in c.rows.first:  # a row outside a damaged pack first, then one read back whole
        locs = c.rows.of(cid)
        good = sorted((loc for loc in locs if (cid, loc) not in c.bad_rows),
                      key=lambda loc: (loc.pack in c.bad_packs, (cid, loc) not in c.read_ok))
        if good or cid in c.marked.chunks:
            rows[cid] = (good or locs)[0]
    return rows


def _readable(remote: Remote, rows: Rows, each_pack: bool = False) -> Iterator[tuple[bytes, Location, bytes]]:
    """The rows whose chunks read back whole (a damaged one is passed over); ``each_pack``:
    pack by pack, one that cannot be read passed over too (else that raises)."""
    if each_pack:
        for _pack, group in groupby(sorted(rows, key=lambda row: (row[1].pack, row[1].offset)),
                                    key=lambda row: row[1].pack):
            with suppress(RemoteDamaged, FileNotFoundError):
                yield from _readable(remote, list(group))
        return
    for cid, loc, stored in remote.read_chunks(rows, verify=False):
        try:
            remote.decode(cid, loc, stored)
        except DsError:
            continue
        yield cid, loc, stored


def _whole_here(store: Store, chunk_ids: Iterable[bytes], damaged: set[bytes]) -> Iterator[Chunk]:
    """This store's copies of these chunks, each verified; one damaged here too is added to
    ``damaged`` and passed over (never send damage)."""
    source = LocalRepository(store)
    for cid in chunk_ids:
        try:
            chunk: Chunk = next(source.read_whole([cid]))
        except (DsError, OSError):
            damaged.add(cid)
            continue
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
