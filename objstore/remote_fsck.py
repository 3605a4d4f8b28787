"""``ds fsck --remote``: verify a remote; with ``--repair``, mend it from this store.

The check reads the remote's refs, dataset records, index fragments and metadata packs,
and reads back a share (``read_data_subset``) of the chunks. Damage in one file is one
problem and the check goes on: an index fragment or metadata pack failing its checksum, a
metadata pack missing beside its ``.idx``, metadata objects the remote's versions need that
no readable metadata pack holds, chunks they need that no index names, that sit in a
missing pack, or that fail their check. A thorough check (``read_data_subset`` above 0, or
a repair) downloads every fragment and metadata pack to check it; a quick one compares
sizes with the copies this store holds.

``--repair`` mends under the remote's exclusive lock (as a remote gc), and removes nothing
it has not replaced:

1. packs no readable fragment names are indexed from their own tables of contents (three
   ranged reads each), for the chunks that are needed and read back whole;
2. needed chunks still missing or damaged are sent again from this store, verified, as
   new packs;
3. one index fragment names every chunk where it is whole, then the old fragments go;
4. metadata objects the remote's versions need and no readable pack holds are sent again
   as one metadata pack;
5. damaged fragments and metadata packs are moved to ``damaged/`` on the remote, where
   nothing reads them and nothing deletes them.

A damaged data pack stays: its other chunks may be whole, and the index no longer names
the replaced ones (a remote gc removes the pack once it names none). The remote is then
checked again, and what is left is reported.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path

from .errors import DsError, FormatError
from .index import Location
from .maintenance import Marked
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
    bad_files: dict[str, str] = field(default_factory=dict)  # fragment or metadata pack -> why
    bad_chunks: dict[bytes, str] = field(default_factory=dict)  # needed chunk -> why it cannot be read
    missing_meta: set[str] = field(default_factory=set)  # objects needed, in no readable metadata pack
    marked: Marked = field(default_factory=Marked)
    locations: dict[bytes, list[Location]] = field(default_factory=dict)  # every index row of a chunk
    bad_rows: dict[tuple[bytes, Location], str] = field(default_factory=dict)  # row -> why it cannot be read
    packs: dict[str, tuple[int, float]] = field(default_factory=dict)
    chunks_read: int = 0


@dataclass
class _Mended:
    reindexed: int = 0  # chunks found in packs no readable fragment named
    chunks_sent: int = 0
    packs_sent: int = 0
    meta_objects_sent: int = 0
    moved_aside: list[str] = field(default_factory=list)
    damaged_here: int = 0  # chunks this store could not send: damaged here too


def fsck_remote(store: Store, name_or_url: str | None = None, read_data_subset: float = 0.0,
                repair: bool = False) -> dict:
    """Verify a remote (see the module's docstring); ``repair`` mends what this store can."""
    if not 0.0 <= read_data_subset <= 1.0:
        raise DsError("--read-data-subset is a fraction between 0 and 1")
    remote = Remote(store, name_or_url)
    with remote.fs.operation("fsck"):
        remote.check_config(create=False)
        if not repair:
            return _result(remote, _check(remote, read_data_subset, thorough=read_data_subset > 0))
        with remote.lock("repair", exclusive=True) as remote.lease:
            try:
                found = _check(remote, read_data_subset, thorough=True)
                if not found.problems:
                    return _result(remote, found) | {"repaired": None}
                mended = _repair(remote, found)
                remote.forget_index()
                remote.unreadable = set()
                after = _check(remote, 0.0, thorough=False)
            finally:
                remote.lease = None
    left = after.problems + [f"chunk {c.hex()} of {found.marked.chunks.get(c, '?')}: {why}"
                             for c, why in sorted(found.bad_chunks.items())]
    result = _result(remote, after) | {"ok": not left, "problems": left, "problems_found": found.problems,
                                       "chunks_read": found.chunks_read}
    result["repaired"] = {"chunks_reindexed": mended.reindexed, "chunks_sent": mended.chunks_sent,
                          "packs_sent": mended.packs_sent, "metadata_objects_sent": mended.meta_objects_sent,
                          "moved_aside": mended.moved_aside, "chunks_damaged_here": mended.damaged_here}
    return result


def _result(remote: Remote, c: _Check) -> dict:
    return {"ok": not c.problems, "problems": c.problems, "versions": len(c.marked.commits),
            "chunks_indexed": len(c.locations), "chunks_needed": len(c.marked.chunks),
            "chunks_read": c.chunks_read, "packs": len(c.packs), "requests": remote.fs.request_count}


# -- checking ------------------------------------------------------------------------------
def _check(remote: Remote, subset: float, thorough: bool) -> _Check:
    c = _Check()
    with tempfile.TemporaryDirectory(dir=remote.cache) as tmp:
        _check_fragments(remote, c, Path(tmp), thorough)
        held = _check_meta_packs(remote, c, Path(tmp), thorough)
    remote.unreadable |= set(c.bad_files)  # read no further: index() and fetch_meta() pass them over
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
    _check_chunks(remote, c, subset)
    if c.problems and not remote.lease:
        c.problems[-1] += (f"; `ds fsck --remote {remote.name or remote.url} --repair` sends again what "
                           "this store holds")
    return c


def _check_fragments(remote: Remote, c: _Check, tmp: Path, thorough: bool) -> None:
    """Each index fragment: downloaded and checked (thorough, or not cached yet), else its
    size compared with the cached copy."""
    cache = remote.cache / "index"
    for rel, (size, _mtime) in sorted(remote.fs.list_detail("index").items()):
        name = rel.rsplit("/", 1)[-1]
        if not name.endswith(".idx") or name.startswith(".tmp-"):
            continue
        mine = cache / name
        if not thorough and mine.exists():
            if mine.stat().st_size != size:
                c.bad_files[rel] = f"index fragment {rel} differs in size from the copy checked here: damaged"
            continue
        try:
            remote.fs.get_file(rel, tmp / name, check=lambda p, n=name: fragment_ok(p, n))
        except RemoteDamaged as e:
            c.bad_files[rel] = f"index fragment {rel} is damaged ({e.why})"
        except FileNotFoundError:
            pass  # replaced since it was listed (a remote gc)


def _check_meta_packs(remote: Remote, c: _Check, tmp: Path, thorough: bool) -> set[str]:
    """Each metadata pack: there beside its ``.idx``, and whole (downloaded and checked when
    thorough, else its size compared with this store's copy); the objects the good ones hold."""
    files = {rel: size for rel, (size, _mtime) in remote.fs.list_detail("meta").items()
             if rel.rsplit("/", 1)[-1].startswith("pack-")}
    mine = remote.store.meta.pack_folder
    held: set[str] = set()
    for stem in sorted(rel[:-4] for rel in files if rel.endswith(".idx")):
        pack, idx = f"{stem}.pack", f"{stem}.idx"
        if pack not in files:
            c.bad_files[idx] = f"metadata pack index {idx} has no pack"
            continue
        why = None
        for rel in (idx, pack):
            name = rel.rsplit("/", 1)[-1]
            if not thorough and (mine / name).exists():
                if (mine / name).stat().st_size != files[rel]:
                    why = f"metadata pack {rel} differs in size from this store's copy: damaged"
                continue
            try:
                remote.fs.get_file(rel, tmp / name, check=lambda p, n=name: git_pack_ok(p, n))
            except RemoteDamaged as e:
                why = f"metadata pack {rel} is damaged ({e.why})"
            except FileNotFoundError:
                why = f"metadata pack {rel} went missing while checked"
            (tmp / name).unlink(missing_ok=True)
            if why:
                break
        if why:
            c.bad_files[idx] = why
        else:
            held.update(remote.meta_pack_objects(stem.rsplit("/", 1)[-1]))
    return held


def _check_chunks(remote: Remote, c: _Check, subset: float) -> None:
    """Every needed chunk indexed in an existing pack; a share of the index rows read back.
    Every row of every fragment counts, not only the one a lookup finds first: fragments
    are searched in an order each reader sets, so a chunk indexed twice, once where it
    cannot be read, fails for some readers."""
    for frag in remote.index().fragments:
        for cid, loc in frag:
            c.locations.setdefault(cid, []).append(loc)
    c.packs = remote.packs(remote.listing())  # after the index: a push lands its packs before its fragment
    gone = {loc.pack for locs in c.locations.values() for loc in locs} - c.packs.keys()
    c.problems += [f"the index names pack {p}, which is missing" for p in sorted(gone)]
    c.bad_rows = {(cid, loc): f"its pack {loc.pack} is missing"
                  for cid, locs in c.locations.items() for loc in locs if loc.pack in gone}
    sample = sorted(((cid, loc) for cid, locs in c.locations.items() for loc in locs
                     if loc.pack in c.packs and random.random() < subset),
                    key=lambda row: (row[1].pack, row[1].offset))
    c.chunks_read = len(sample)
    for pack, rows in groupby(sample, key=lambda row: row[1].pack):
        rows = list(rows)
        try:
            for cid, loc, stored in remote.read_chunks(rows, verify=False):
                try:
                    remote.decode(cid, loc, stored)
                except DsError as e:
                    c.problems.append(str(e).removesuffix("; run `ds fsck --read-data`"))
                    c.bad_rows[cid, loc] = "it fails its check"
        except RemoteDamaged as e:  # one damaged pack is one problem, not the end of the check
            c.problems.append(f"pack {pack} looks damaged on the remote: its chunks cannot be read back "
                              f"({e.why}, at every try)")
            c.bad_rows.update(((cid, loc), f"its pack {pack} cannot be read") for cid, loc in rows)
    for cid, where in c.marked.chunks.items():
        locs = c.locations.get(cid, [])
        bad = [c.bad_rows[cid, loc] for loc in locs if (cid, loc) in c.bad_rows]
        if not locs:
            c.bad_chunks[cid] = "not on the remote"
            c.problems.append(f"chunk {cid.hex()} of {where} is not on the remote")
        elif len(bad) == len(locs):
            c.bad_chunks[cid] = bad[0]
        elif bad:
            c.problems.append(f"chunk {cid.hex()} of {where} is indexed twice, once where it cannot be "
                              f"read ({bad[0]}): some readers fail on it")


# -- mending -------------------------------------------------------------------------------
def _repair(remote: Remote, c: _Check) -> _Mended:
    mended = _Mended()
    rows = {}  # the new index: each chunk where it reads, else where it was (nothing is dropped)
    for cid, locs in c.locations.items():
        rows[cid] = next((loc for loc in locs if (cid, loc) not in c.bad_rows), locs[0])
    named = {loc.pack for locs in c.locations.values() for loc in locs}
    for pack in sorted(c.packs.keys() - named):  # 1. packs no readable fragment names
        if not c.bad_chunks:
            break
        try:
            toc = [(cid, loc) for cid, loc in remote.pack_toc(pack, c.packs[pack][0]) if cid in c.bad_chunks]
            whole = [(cid, loc) for cid, loc, _stored in _readable(remote, toc)]
        except (FormatError, RemoteDamaged, FileNotFoundError):
            continue  # not a pack we can read: left for a remote gc
        for cid, loc in whole:
            rows[cid] = loc
            del c.bad_chunks[cid]
        mended.reindexed += len(whole)
    store = remote.store
    here = [cid for cid in c.bad_chunks if store.chunks.has(cid)]  # 2. sent again from here
    sent: list[bytes] = []
    new_rows, mended.packs_sent = remote.write_packs(_whole_here(remote, here, sent, mended))
    rows.update(new_rows)
    for cid in sent:
        del c.bad_chunks[cid]
    mended.chunks_sent = len(sent)
    if mended.reindexed or sent or c.bad_rows:  # 3. one fragment naming every chunk where it is whole
        remote.replace_index(sorted(rows.items()), remote.fragments())
    send = {o for o in c.missing_meta if store.meta.readable(o)}  # 4. metadata
    if send:
        remote._remember_meta(remote.put_meta_pack(send, remote.check))
        mended.meta_objects_sent = len(send)
    for rel in sorted(c.bad_files):  # 5. damaged files aside (a metadata pack's .idx first)
        unit = [rel, rel[:-4] + ".pack"] if rel.startswith("meta/") else [rel]
        mended.moved_aside += _move_aside(remote, unit)
    return mended


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


def _move_aside(remote: Remote, rels: list[str]) -> list[str]:
    """Copy damaged remote files (a fragment, or a metadata pack's ``.idx`` and ``.pack``:
    one unit) to ``damaged/<rel>``, then remove them from where readers look, in order;
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
            remote.fs.put(f"damaged/{rel}", path)
        for rel in rels:
            remote.check()
            remote.fs.delete([rel])
            moved.append(rel)
    return moved
