"""Mirroring a store to a remote: push, fetch, pull, clone, and chunks on demand.

A remote holds the store's own layout on any fsspec URL::

    config                  [store] format = 1, hash = ...   (refused if they differ)
    packs/ab/<hex>.pack     packs made for a push: only chunks the remote lacked
    index/<hex>.idx         one fragment per push, naming that push's packs
    meta/pack-<sha>.pack    git packs of commits, trees and manifests (+ .idx, sent after)
    refs/heads/<branch>     a commit id (text); changed by compare-and-swap only
    refs/tags/<tag>         a commit id (text); created once
    HEAD                    "ref: refs/heads/<branch>": what a clone checks out (written once,
                            by the push that made the remote)
    datasets/<id>.json      dataset records (SDK)
    locks/<kind>-<id>.json  leases: shared by pushes, exclusive for a remote gc

What the remote has is known from its index fragments, cached locally under
``.dsstore/remotes/<key>/`` (immutable, so each is downloaded once): a push of 20k small
files costs a handful of listings and uploads, never one request per object. Order
makes it safe: packs, then index, then metadata, then refs/records; an interrupted push
leaves only unreferenced files, and the next push indexes the packs that landed whole
(noted locally under ``sent/`` before upload) and sends only what is still missing.
What a remote sends is untrusted: refs and dataset records that break the rules are
skipped with a warning (``Remote.warnings``, ``Transfer.warnings``), never stored.
Partial reads: missing chunks are fetched by ranged reads of remote packs, adjacent
ranges merged. Every download is verified (chunks by id, index fragments and git packs by
the checksum in their names), so a short or damaged read is retried, never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pygit2
import xxhash

from .errors import DsError, FormatError
from .fsutil import atomic_write
from .index import ChunkIndex, Fragment, Location, encode_fragment
from .manifest import FileEntry
from .meta import CommitInfo
from .packs import FLAG_DELTA, PackEntry, PackWriter, decode_chunk, encode_chunk, pack_path
from .paths import STORE_DIR
from .records import RecordStore, record_problem
from .remote_fs import RefConflict, RemoteError, RemoteFS, RemoteLock
from .store import Store

FORMAT = 1
MERGE_GAP = 256 * 1024  # ranges closer than this are read as one
MAX_RANGE = 16 * 1024 * 1024  # ...up to this many bytes per request


@dataclass
class Transfer:
    """What a push, fetch, pull or clone did, for the CLI to report."""

    packs: int = 0
    chunks: int = 0
    meta_packs: int = 0
    refs: list[str] = field(default_factory=list)
    bytes_sent: int = 0
    bytes_received: int = 0
    requests: int = 0
    warnings: list[str] = field(default_factory=list)  # what was skipped, and why (the CLI prints them)
    versions: int = 0  # versions sent (push) or new here (fetch, pull, clone)
    files: int = 0  # file versions sent (push); files written to the working folder (pull, clone)
    seconds: float = 0.0  # since the operation began
    # each ref moved: {"ref", "local", "old", "new", "forced"}; "local" is the local ref
    # pushed from (push) or set (fetch), "old" None for a new one
    updates: list[dict] = field(default_factory=list)
    remote: str = ""  # how to name the remote: its name, else its URL
    url: str = ""
    upstreams: dict[str, str] = field(default_factory=dict)  # push -u, clone: branch -> "origin/main"
    hints: list[str] = field(default_factory=list)  # advice that is not a warning (the CLI prints them)
    outcome: str = ""  # pull: "up to date", "fast-forward" or "merge"
    pulled: str = ""  # pull: the remote branch it took ("origin/main")

    def as_json(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class RefUpdate:
    """One ref a push sets: ``dst`` on the remote to ``value`` (from local ``src`` if a ref)."""

    src: str | None  # refs/heads/X or refs/tags/X; None when a version id was given
    value: str
    dst: str  # refs/heads/X or refs/tags/X on the remote
    force: bool = False


def remote_spec(store: Store, name_or_url: str | None) -> tuple[str, str, dict]:
    """(name, url, options) for a configured remote name, a URL, or the default."""
    if name_or_url is not None and not name_or_url.strip():
        raise DsError("the remote name or URL is empty; give a remote name, a folder or an "
                      "s3://, gs://, az:// URL")
    target = name_or_url or store.config_remote()
    if not target:
        raise DsError("no remote given and no default; `ds remote add NAME URL` first")
    r = store.config.remotes.get(target)
    if r is not None:
        return target, _configured_url(store, target, r), dict(r.get("options", {}))
    if "://" in target or target.startswith(("/", ".", "~")):
        target = check_url(target, store)
    for name, r in store.config.remotes.items():  # a URL of a configured remote: its options
        if r["url"] == target:
            return name, _configured_url(store, name, r), dict(r.get("options", {}))
    if "://" in target or target.startswith("/"):
        return "", target, {}
    raise DsError(f"no remote named {target!r}; see `ds remote list`")


def _configured_url(store: Store, name: str, r: dict) -> str:
    """A configured remote's URL, checked like a new one (an older objstore saved any)."""
    try:
        return check_url(str(r.get("url", "")), store)
    except DsError as e:
        raise DsError(f"remote {name}: {e}; `ds remote remove {name}` and add it again") from None


# a storage scheme with one slash or none after it: a slip for "scheme://", not a folder
_URL_SLIP = re.compile(r"(s3a?|gs|gcs|az|abfss?|file|https?|hdfs|sftp|ssh|memory):/?(?!/)", re.IGNORECASE)


def check_url(url: str, store: Store | None = None, base: str | os.PathLike[str] | None = None,
              worktree: Path | None = None) -> str:
    """The URL to use for a remote given as ``url``: ``~`` expanded, a folder made absolute
    (against ``base``, default the current folder).

    Refused: an empty URL, and a folder equal to or inside a store (any ``.dsstore``,
    or ``store``'s folder) or a working folder (``worktree``, or ``store``'s): a push
    would write the remote's files among the files it versions.
    """
    if not url.strip():
        raise DsError("a remote URL cannot be empty; give a folder or an s3://, gs://, az:// URL")
    slips = _URL_SLIP.match(url)
    if slips:  # "s3:/bucket" would silently become a folder named "s3:" here
        raise DsError(f"{url!r} looks like a URL with a slash too few: did you mean "
                      f"{slips[1]}://{url[len(slips[0]):]}? (for a folder of that name, write ./{url})")
    scheme = "file://" if url.startswith("file://") else ""
    if "://" in url and not scheme:
        return url
    raw = os.path.expanduser(url[len(scheme):])
    path = Path(os.path.abspath(os.path.join(base or os.getcwd(), raw)))
    real = path.resolve()
    if any(part.casefold() == STORE_DIR for part in (*path.parts, *real.parts)):
        raise DsError(f"remote {url!r} is inside a {STORE_DIR} folder; choose a folder outside any store")
    guarded = [] if worktree is None else [("working folder", worktree)]
    if store is not None:
        guarded.append(("store", store.path))
        if store.path.name == STORE_DIR:  # a store made by `ds init`: its parent is a working folder
            guarded.append(("working folder", store.worktree))
    for what, folder in guarded:
        inside = Path(folder).resolve()
        if real == inside or inside in real.parents:
            raise DsError(f"remote {url!r} is inside the {what} {inside}: a push would write its files "
                          "there; choose a folder outside it")
    return scheme + str(path)


class Remote:
    def __init__(self, store: Store, name_or_url: str | None = None, retries: int | None = None,
                 workers: int = 8, progress=None, warn: Callable[[str], None] | None = None):
        """``progress(done_bytes, total_bytes)`` is called as transfers advance; ``warn(text)``
        for each thing from the remote that was skipped as invalid (also kept in ``warnings``
        and in the ``Transfer`` an operation returns)."""
        self.store = store
        self.workers = workers
        self.progress = progress
        self.warnings: list[str] = []
        self._warn = warn
        self.bad_refs: dict[str, str] = {}  # remote ref -> why the last read_refs skipped it
        self.bad_records: dict[str, str] = {}  # the same for dataset_records
        self.name, self.url, options = remote_spec(store, name_or_url)
        self.fs = RemoteFS(self.url, options, retries=retries)
        key = self.name or "url-" + hashlib.sha256(self.url.encode()).hexdigest()[:16]
        self.track = key  # refs/remotes/<track>/...: what this remote was last seen to hold
        self.cache = store.path / "remotes" / key
        self._check_cache()
        self._index: ChunkIndex | None = None
        self.chunks_fetched = 0
        self.started = time.monotonic()

    def _check_cache(self) -> None:
        """Forget what we knew about a remote whose name now points at another URL."""
        marker = self.cache / "url"
        try:
            known = marker.read_text()
        except FileNotFoundError:
            known = None
        if known is not None and known != self.url:
            forget_remote(self.store, self.track)
        if known != self.url:
            self.cache.mkdir(parents=True, exist_ok=True)
            marker.write_text(self.url)

    def stats(self, t: Transfer) -> Transfer:
        t.bytes_sent, t.bytes_received = self.fs.bytes_sent, self.fs.bytes_received
        t.requests = self.fs.request_count
        t.chunks = t.chunks or self.chunks_fetched
        t.warnings = list(self.warnings)
        t.seconds = round(time.monotonic() - self.started, 3)
        t.remote, t.url = self.name or self.url, self.url
        return t

    @property
    def label(self) -> str:
        """How messages name this remote: its name and URL, or the URL alone."""
        return f"remote {self.name} ({self.url})" if self.name else f"remote {self.url}"

    def warn(self, message: str) -> None:
        """Note something skipped (once per message), for the caller to show."""
        if message not in self.warnings:
            self.warnings.append(message)
            if self._warn is not None:
                self._warn(message)

    def _skip_ref(self, rel: str, why: str) -> None:
        self.bad_refs[rel] = why
        self.warn(f"{self.label}: ignored {rel}: {why}; whoever can write the remote should "
                  "delete or fix that ref (or `ds push --force` a good version to it)")

    def is_commit(self, value: str | None) -> bool:
        """Whether ``value`` is the id of a commit (a version) the local store holds."""
        return bool(value) and _is_hex40(value) and _object_type(self.store.meta.repo, value) == "commit"

    def lock(self, op: str, exclusive: bool = False) -> RemoteLock:
        """The remote's lock: shared for writers, exclusive for a remote gc (see RemoteLock)."""
        return RemoteLock(self.fs, exclusive, op)

    # -- format --------------------------------------------------------------------------
    def check_config(self, create: bool) -> bool:
        """Refuse a remote of another format or hash; ``create``: make one where there is
        none (returns True then)."""
        try:
            raw = self.fs.cat("config")
        except FileNotFoundError:
            if not create:
                raise self.fs.not_a_remote() from None
            self.fs.put("config", f'[store]\nformat = {FORMAT}\nhash = "{self.store.algo.name}"\n'.encode())
            return True
        import tomllib

        try:
            cfg = tomllib.loads(raw.decode()).get("store", {})
        except (ValueError, UnicodeDecodeError) as e:
            raise FormatError(f"remote {self.url}: config is unreadable ({e})") from None
        if cfg.get("format") != FORMAT:
            raise FormatError(f"remote {self.url} has format {cfg.get('format')!r}; this objstore "
                              f"reads format {FORMAT}: upgrade objstore")
        if cfg.get("hash") != self.store.algo.name:
            raise FormatError(f"remote {self.url} uses {cfg.get('hash')}, this store {self.store.algo.name}; "
                              "a store can only mirror to a remote with the same hash")
        return False

    def default_branch(self) -> str | None:
        """The branch the remote's ``HEAD`` file names (written by the push that made the
        remote), if it holds a valid one; a clone checks it out by default."""
        size = self.fs.size("HEAD")
        if size is None:
            return None
        if size > MAX_REF_BYTES:
            self._skip_ref("HEAD", f"its file holds {size} bytes, not a branch name")
            return None
        try:
            text = self.fs.cat("HEAD", size).decode(errors="replace").strip()
        except FileNotFoundError:
            return None
        ref = text.removeprefix("ref: ")
        why = None if ref != text else "it does not name a branch (ref: refs/heads/NAME)"
        if why is None and not ref.startswith("refs/heads/"):
            why = "it does not name a branch (ref: refs/heads/NAME)"
        why = why or _ref_name_problem(ref, self.track)
        if why is not None:
            self._skip_ref("HEAD", why)
            return None
        return ref[len("refs/heads/"):]

    # -- the remote's chunk index ----------------------------------------------------------
    def index(self) -> ChunkIndex:
        """The remote's index, from fragments cached locally (new ones downloaded once).

        Cached fragments the remote no longer lists are dropped: a remote gc replaced them,
        and the packs they name may be gone, so nothing may be deduplicated against them.
        """
        if self._index is None:
            folder = self.cache / "index"
            folder.mkdir(parents=True, exist_ok=True)
            for _attempt in range(3):
                listed = {rel.rsplit("/", 1)[-1] for rel in self.fs.list("index") if rel.endswith(".idx")}
                have = {p.name for p in folder.glob("*.idx")}
                try:
                    for name in sorted(listed - have):
                        self.fs.get_file(f"index/{name}", folder / name,
                                         check=lambda p, n=name: _fragment_ok(p, n))
                except FileNotFoundError:
                    continue  # replaced by a remote gc while we listed: list again
                break
            else:
                raise RemoteError(f"remote {self.url}: its index kept changing while read; "
                                  "try again when `ds gc --remote` has finished")
            for p in folder.glob("*.idx"):
                if p.name not in listed:
                    p.unlink(missing_ok=True)
            self._index = ChunkIndex(folder, self.store.algo)
        return self._index

    def read_chunks(self, items: list[tuple[bytes, Location]],
                    verify: bool = True) -> Iterator[tuple[bytes, Location, bytes]]:
        """(id, location, stored bytes) of chunks read by ranged reads of remote packs, verified
        unless the caller verifies them itself.

        Ranges closer than MERGE_GAP are read as one (up to MAX_RANGE bytes), ``workers``
        requests in flight, so memory stays bounded (workers x MAX_RANGE). A pack that is
        gone raises FileNotFoundError (a remote gc moved its chunks: sync the index).
        """
        by_pack: dict[str, list[tuple[bytes, Location]]] = defaultdict(list)
        for cid, loc in items:
            by_pack[loc.pack].append((cid, loc))
        jobs = []  # (pack, group of adjacent chunks read as one range)
        for pack_hex, group in sorted(by_pack.items()):
            group.sort(key=lambda it: it[1].offset)
            groups: list[list[tuple[bytes, Location]]] = []
            for it in group:
                if (groups and it[1].offset - _end(groups[-1][-1][1]) <= MERGE_GAP
                        and _end(it[1]) - groups[-1][0][1].offset <= MAX_RANGE):
                    groups[-1].append(it)
                else:
                    groups.append([it])
            jobs.extend((pack_hex, g) for g in groups)
        for start in range(0, len(jobs), self.workers):
            window = jobs[start : start + self.workers]
            datas = self._parallel([
                (lambda p=p, g=g: self.fs.cat_ranges(f"packs/{p[:2]}/{p}.pack",
                                                     [(g[0][1].offset, _end(g[-1][1]))])[0],
                 _end(g[-1][1]) - g[0][1].offset)
                for p, g in window])
            for (pack_hex, g), data in zip(window, datas, strict=True):
                base = g[0][1].offset
                for cid, loc in g:
                    stored = data[loc.offset - base : loc.offset - base + loc.stored_len]
                    if verify:
                        entry = PackEntry(cid, loc.offset, loc.stored_len, loc.raw_len, loc.flags)
                        decode_chunk(stored, entry, self.store.algo, f"remote pack {pack_hex} on {self.url}")
                    yield cid, loc, stored

    # -- pushing ---------------------------------------------------------------------------
    def push_chunks(self, chunk_ids, t: Transfer) -> None:
        """Send the chunks the remote lacks, as new packs, then one index fragment.

        Resuming is cheap: each pack's index rows are noted locally (``sent/``) before it
        is uploaded, so the next push lists the remote's packs once and indexes every noted
        pack that landed whole (its name is its content hash, its size the listing's) instead
        of building and sending it again, whatever else changed meanwhile.
        """
        remote_index = self.index()
        store = self.store
        missing = [c for c in dict.fromkeys(chunk_ids) if remote_index.lookup(c) is None]
        if not missing:
            return
        rows, landed = self._landed_packs(remote_index)
        have = {cid for cid, _loc in rows}
        todo = [c for c in missing if c not in have]
        with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
            packs = self._build_packs(todo, Path(tmp), rows)

            def send(p: Path) -> int:
                rel = f"packs/{p.stem[:2]}/{p.name}"
                if self.fs.size(rel) == p.stat().st_size:
                    return 0  # sent by an earlier push whose note was lost
                self.fs.put(rel, p)
                return 1

            t.packs += sum(self._parallel([(lambda p=p: send(p), p.stat().st_size) for p in packs]))
            notes = landed + [self._sent_note(p) for p in packs]
        frag = encode_fragment(store.algo, rows)
        name = f"{frag[-16:].hex()}.idx"
        self.fs.put(f"index/{name}", frag)
        (self.cache / "index" / name).write_bytes(frag)
        self._index = None
        for note in notes:
            note.unlink(missing_ok=True)  # indexed now
        t.chunks += len(missing)

    def _build_packs(self, chunk_ids: list[bytes], folder: Path,
                     rows: list[tuple[bytes, Location]]) -> list[Path]:
        """Packs of these chunks (deltas sent whole) in ``folder``; their index rows are
        added to ``rows`` and noted under ``sent/`` before anything is uploaded."""
        store = self.store
        writer: PackWriter | None = None
        packs: list[Path] = []

        def close() -> None:
            nonlocal writer
            if writer is not None:
                pack_hex, entries = writer.finish()
                path = pack_path(folder, pack_hex)
                mine = [(e.chunk_id, Location(pack_hex, e.offset, e.stored_len, e.raw_len, e.flags))
                        for e in entries]
                self._note_sent(path, mine)
                packs.append(path)
                rows.extend(mine)
                writer = None

        for cid in chunk_ids:
            loc = store.chunks.locate(cid)
            if loc is None:
                raise DsError(f"chunk {cid.hex()} is missing locally; run `ds fsck` before pushing")
            stored = store.chunks.read_stored(loc)
            raw = store.chunks.decode(cid, loc, stored)  # never push damage
            flags = loc.flags
            if flags & FLAG_DELTA:  # deltas stay local (their base may not be sent): send it whole
                stored, flags = encode_chunk(raw, store.config.zstd_level)
            if writer is None:
                writer = PackWriter(folder, store.algo)
            writer.add(cid, stored, loc.raw_len, flags)
            if writer.size >= store.config.pack_target:
                close()
        close()
        return packs

    def _sent_note(self, pack: Path) -> Path:
        return self.cache / "sent" / f"{pack.stem}-{pack.stat().st_size}.idx"

    def _note_sent(self, pack: Path, rows: list[tuple[bytes, Location]]) -> None:
        """Remember a pack's index rows before it is uploaded (see ``_landed_packs``)."""
        note = self._sent_note(pack)
        note.parent.mkdir(exist_ok=True)
        atomic_write(note, encode_fragment(self.store.algo, rows), durable=False)

    def _landed_packs(self, remote_index: ChunkIndex) -> tuple[list[tuple[bytes, Location]], list[Path]]:
        """(index rows, notes) of packs an earlier push uploaded whole but never indexed.

        One listing of the remote's packs, and only when such notes exist. A noted pack
        that is absent or of another size did not land (or a remote gc removed it): its
        note is dropped and what it held is built again if still needed.
        """
        folder = self.cache / "sent"
        notes = sorted(folder.glob("*.idx")) if folder.is_dir() else []
        if not notes:
            return [], []
        sizes = {rel.rsplit("/", 1)[-1]: size for rel, (size, _m) in self.fs.list_detail("packs").items()}
        rows: list[tuple[bytes, Location]] = []
        landed = []
        for note in notes:
            pack_hex, _sep, size = note.stem.partition("-")
            try:
                fragment = Fragment(note)
                entries = list(fragment)
                fragment.close()
            except (FormatError, OSError):
                entries = []
            if (str(sizes.get(f"{pack_hex}.pack")) != size or not entries
                    or all(remote_index.lookup(cid) is not None for cid, _loc in entries)):
                note.unlink(missing_ok=True)
                continue
            rows.extend(entries)
            landed.append(note)
        return rows, landed

    def push_meta(self, tops: list[pygit2.Oid], known: list[str], t: Transfer) -> None:
        """Send, as one git pack, the objects under ``tops`` that ``known`` commits lack."""
        repo = self.store.meta.repo
        seen: set[pygit2.Oid] = set()
        for cid in known:
            if cid in repo:
                _reachable(repo, pygit2.Oid(hex=cid), seen)
        new: set[pygit2.Oid] = set()
        for top in tops:
            _reachable(repo, top, seen, new)
        if not new:
            return
        pb = pygit2.PackBuilder(repo)
        for oid in sorted(new, key=str):
            pb.add(oid)
        with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
            pb.write(tmp)
            files = sorted(Path(tmp).iterdir(), key=lambda f: f.suffix != ".pack")  # .idx last
            for f in files:
                self.fs.put(f"meta/{f.name}", f)
            t.meta_packs += 1
        self._remember_meta([f.name for f in files])

    def _remember_meta(self, names: list[str]) -> None:
        path = self.cache / "meta-packs.json"
        have = set(json.loads(path.read_text())) if path.exists() else set()
        path.write_text(json.dumps(sorted(have | set(names))))

    def _known_meta(self) -> set[str]:
        path = self.cache / "meta-packs.json"
        local = {p.name for p in (self.store.meta.path / "objects" / "pack").glob("pack-*")}
        return local | (set(json.loads(path.read_text())) if path.exists() else set())

    def resolve_refspecs(self, refs: list[str] | None = None, all_refs: bool = False,
                         tags: bool = False) -> list[RefUpdate]:
        """What a push of ``refs`` (git's refspecs: ``NAME``, ``SRC:DST``, ``+SRC:DST``),
        ``all_refs`` (every branch and tag) and ``tags`` (every tag) sets on the remote;
        with none of them, the current branch under its own name."""
        meta = self.store.meta
        local = {n: c for n, c in meta.refs().items() if n.startswith(("refs/heads/", "refs/tags/"))}
        updates: dict[str, RefUpdate] = {}

        def add(u: RefUpdate) -> None:
            if u.dst in updates and updates[u.dst].value != u.value:
                raise DsError(f"two refspecs send different versions to {u.dst}; push them one at a time")
            updates[u.dst] = u

        for name in sorted(local):
            if all_refs or (tags and name.startswith("refs/tags/")):
                add(RefUpdate(name, local[name], name))
        for spec in refs or []:
            add(_refspec(meta, spec, local))
        if refs is None and not all_refs and not tags:
            add(_refspec(meta, "HEAD", local))
        return list(updates.values())

    def push(self, refs: list[str] | None = None, all_refs: bool = False, force: bool = False,
             tags: bool = False) -> Transfer:
        """Send branches/tags (``resolve_refspecs``) and everything they need."""
        self.cache.mkdir(parents=True, exist_ok=True)
        with self.fs.operation("push"):
            return self.push_updates(self.resolve_refspecs(refs, all_refs, tags), force)

    def push_updates(self, updates: list[RefUpdate], force: bool = False) -> Transfer:
        """Set each ``dst`` on the remote to its version, sending what the remote lacks first.

        Under the remote's shared lock (a remote gc then cannot delete what this push
        finds there and does not send again), from reading the remote's refs and index
        to moving its refs; the refs move last, by compare-and-swap. A remote this push
        creates gets a ``HEAD`` naming the branch pushed, which clones then check out.
        """
        meta = self.store.meta
        self.cache.mkdir(parents=True, exist_ok=True)
        t = Transfer()
        with self.fs.operation("push"):
            created = self.check_config(create=True)
            if not self._plan(updates, force):  # up to date: no lock needed
                return self.stats(t)
            with self.lock("push") as lock:
                plan = self._plan(updates, force)  # again: what the remote holds now
                if not plan:
                    return self.stats(t)
                known = [c for _u, c, _k in plan if self.is_commit(c)] + self._remote_tips(
                    {u.dst for u, *_ in plan})
                chunk_ids = self._new_versions([u.value for u, _c, _k in plan], known, t)
                self.push_chunks(chunk_ids, t)
                self.push_meta([pygit2.Oid(hex=u.value) for u, _c, _k in plan], known, t)
                lock.check()
                for u, current, token in plan:
                    self.fs.swap_ref(u.dst, u.value, token)
                    if u.dst.startswith("refs/heads/"):
                        meta.set_ref(f"refs/remotes/{self.track}/{u.dst[11:]}", u.value, force=True)
                    t.refs.append(u.dst)
                    t.updates.append({"ref": u.dst, "local": u.src, "old": current, "new": u.value,
                                      "forced": current is not None and not (
                                          self.is_commit(current) and meta.is_ancestor(current, u.value))})
            heads = [u.dst for u, _c, _k in plan if u.dst.startswith("refs/heads/")]
            if created and heads:
                current = f"refs/heads/{meta.head_branch()}"
                main = next((u.dst for u, _c, _k in plan if u.src == current and u.dst in heads), heads[0])
                self.fs.put("HEAD", f"ref: {main}\n".encode())
        return self.stats(t)

    def _plan(self, updates: list[RefUpdate], force: bool) -> list[tuple[RefUpdate, str | None, Any]]:
        """(update, remote value, token) of each ref to move; refuses diverged ones."""
        meta = self.store.meta
        plan = []
        for u in updates:
            name, target = u.dst, u.value
            current, token = self.fs.read_ref(name)
            if current == target:
                continue
            if current is not None and not (force or u.force):
                short = name.split("/", 2)[2]
                if name.startswith("refs/tags/"):
                    raise RefConflict(f"tag {short} already exists on {self.url} with another version; "
                                      f"`ds push --force REMOTE {short}` replaces it")
                if not _is_hex40(current) or _object_type(meta.repo, current) not in ("commit", None):
                    raise RefConflict(f"{name} on {self.url} does not hold a version id; "
                                      f"`ds push --force {short}` replaces it")
                if not self.is_commit(current) or not meta.is_ancestor(current, target):
                    raise RefConflict(f"{short} on {self.url} has versions you do not have: run `ds pull` "
                                      "(fetch and merge) and push again, or `ds push --force` to "
                                      "replace them")
            plan.append((u, current, token))
        return plan

    def _remote_tips(self, skip: set[str]) -> list[str]:
        """Versions the remote's branches name now (read under the lock), that we have.

        Only these may be assumed present: a version remembered from an earlier fetch may
        since have been dropped from the remote (branch moved, then `ds gc --remote`).
        """
        prefix = f"refs/remotes/{self.track}/"
        out = []
        for ref in self.store.meta.refs():
            rel = f"refs/heads/{ref[len(prefix):]}"
            if ref.startswith(prefix) and rel not in skip:
                value, _token = self.fs.read_ref(rel)
                if self.is_commit(value):
                    out.append(value)
        return out

    def _new_versions(self, targets: list[str], known: list[str], t: Transfer) -> list[bytes]:
        """Chunks of the versions reachable from ``targets`` but not from ``known`` (which the
        remote holds, with their whole history): cost ∝ change. Counts them into ``t``."""
        from .diff import diff_trees

        meta = self.store.meta
        out: list[bytes] = []
        walker = meta.repo.walk(None, pygit2.enums.SortMode.TOPOLOGICAL)
        for target in dict.fromkeys(targets):
            walker.push(pygit2.Oid(hex=target))
        for base in dict.fromkeys(known):
            if self.is_commit(base):
                walker.hide(pygit2.Oid(hex=base))
        files: set[tuple[str, bytes]] = set()  # (path, content): a merge repeats its branches' files
        for commit in walker:
            parent = commit.parents[0].tree_id if commit.parents else None
            d = diff_trees(meta, parent, commit.tree_id, renames=False)
            t.versions += 1
            others = [p.tree_id for p in commit.parents[1:]]
            for path, e in (*d.added.items(), *d.modified.items()):
                out.extend(c for c, _ in e.chunk_list())
                if not any(_same_file(meta, tree, path, e) for tree in others):  # merged in, not new
                    files.add((path, e.hash))
        t.files += len(files)
        return out

    # -- fetching --------------------------------------------------------------------------
    def read_refs(self) -> dict[str, str]:
        """Every valid branch and tag on the remote: path -> 40-hex id.

        What a remote holds is untrusted: a ref whose name breaks git's rules or whose
        value is no id is skipped with a warning (listed in ``bad_refs``), so one bad ref
        on a shared remote never blocks everyone. That it names a commit is checked once
        its metadata is here (``version_refs``).
        """
        refs: dict[str, str] = {}
        self.bad_refs = {}
        for rel, (size, _mtime) in sorted(self.fs.list_detail("refs").items()):
            if rel.endswith(".lock") or "/.tmp-" in rel:
                continue
            why = _ref_name_problem(rel, self.track)
            if why is None and size > MAX_REF_BYTES:
                why = f"its file holds {size} bytes, not a version id"
            if why is not None:
                self._skip_ref(rel, why)
                continue
            try:
                value = self.fs.cat(rel, size).decode(errors="replace").strip()
            except FileNotFoundError:
                continue  # deleted since it was listed
            if not _is_hex40(value):
                self._skip_ref(rel, "it does not hold a version id")
                continue
            refs[rel] = value
        return refs

    def version_refs(self, refs: dict[str, str]) -> dict[str, str]:
        """The refs that name a commit whose metadata is here; the others skipped with a warning."""
        repo = self.store.meta.repo
        good = {}
        for rel, cid in sorted(refs.items()):
            kind = _object_type(repo, cid)
            if kind == "commit":
                good[rel] = cid
            elif kind is None:
                self._skip_ref(rel, f"it names {cid[:12]}, whose metadata is not on the remote")
            else:
                self._skip_ref(rel, f"it names {cid[:12]}, which is a {kind}, not a version")
        return good

    def fetch(self) -> Transfer:
        """Bring the remote's refs and metadata (not file bytes: those come on demand)."""
        meta = self.store.meta
        self.cache.mkdir(parents=True, exist_ok=True)
        t = Transfer()
        with self.fs.operation("fetch"):
            self.check_config(create=False)
            for _attempt in range(3):
                # refs first, then metadata: a push landing in between only adds packs we then
                # take. A ref whose metadata is still missing moved (and a remote gc dropped its
                # old version) meanwhile: read the refs again.
                remote_refs = self.read_refs()
                self._fetch_meta(t)
                if all(cid in meta.repo for cid in remote_refs.values()):
                    break
            remote_refs = self.version_refs(remote_refs)
            self._drop_broken_tracking_refs()
            before = _tips(meta.repo)
            for rel, cid in sorted(remote_refs.items()):
                if rel.startswith("refs/heads/"):
                    local = f"refs/remotes/{self.track}/{rel[11:]}"
                elif rel not in meta.repo.references:
                    local = rel  # a tag: created once, never moved by a fetch
                else:
                    continue
                old = before.get(local)
                try:
                    meta.set_ref(local, cid, force=rel.startswith("refs/heads/"))
                except (DsError, OSError, pygit2.GitError) as e:  # e.g. refs/heads/a beside a/b
                    self._skip_ref(rel, f"it cannot be stored here ({e})")
                    continue
                t.refs.append(rel)
                if old != cid:
                    t.updates.append({"ref": rel, "local": local, "old": old, "new": cid,
                                      "forced": old is not None and not meta.is_ancestor(old, cid)})
            t.versions = _count_new(meta.repo, [u["new"] for u in t.updates], before.values())
        return self.stats(t)

    def _drop_broken_tracking_refs(self) -> None:
        """Remove tracking refs of this remote that name no version (an older objstore
        stored whatever the remote held; such a ref made every push and gc fail)."""
        refs = self.store.meta.repo.references
        for name in list(refs):
            if name.startswith(f"refs/remotes/{self.track}/"):
                try:
                    refs[name].peel(pygit2.Commit)
                except (pygit2.GitError, KeyError, ValueError):
                    refs.delete(name)
                    self.warn(f"{self.label}: removed the local {name}, which named no version")

    def _fetch_meta(self, t: Transfer) -> None:
        """Download the metadata packs we lack, each verified against its name."""
        dest = self.store.meta.path / "objects" / "pack"
        dest.mkdir(parents=True, exist_ok=True)
        for _attempt in range(3):
            known = self._known_meta()
            sizes = {r: size for r, (size, _mtime) in self.fs.list_detail("meta").items()
                     if r.rsplit("/", 1)[-1].startswith("pack-")}
            # a pack counts only once its .idx is there (the .idx is uploaded last)
            complete = {f[:-4] for f in sizes if f.endswith(".idx")}
            wanted = [stem + suffix for stem in sorted(complete)
                      for suffix in (".pack", ".idx")  # .idx last: libgit2 then sees whole packs only
                      if stem.rsplit("/", 1)[-1] + suffix not in known]
            total, done = sum(sizes.get(r, 0) for r in wanted), 0
            got = []
            try:
                for rel in wanted:
                    name = rel.rsplit("/", 1)[-1]
                    self.fs.get_file(rel, dest / name, check=lambda p, n=name: _git_pack_ok(p, n))
                    got.append(name)
                    done += sizes.get(rel, 0)
                    if self.progress is not None:
                        self.progress(done, total)
            except FileNotFoundError:
                continue  # a remote gc replaced that pack while we listed: list again
            finally:
                if got:
                    t.meta_packs += len(got) // 2
                    self._remember_meta(got)
            return
        raise RemoteError(f"remote {self.url}: its metadata kept changing while read; "
                          "try again when `ds gc --remote` has finished")

    def fetch_chunks(self, chunk_ids) -> int:
        """Download these chunks by ranged reads of remote packs; returns how many.

        What arrived is kept even if the rest fails, so the next attempt reads only what
        is still missing. Where the cached index is out of date (a remote gc moved live
        chunks into new packs and deleted the old ones), the index is synced once and the
        chunks are read where they are now.
        """
        store = self.store
        wanted = [c for c in dict.fromkeys(chunk_ids) if not store.chunks.has(c)]
        if not wanted:
            return 0
        with self.fs.operation("read"), store.locked():
            try:
                for attempt in range(2):
                    remote_index = self.index()
                    items = [(c, remote_index.lookup(c)) for c in wanted if not store.chunks.has(c)]
                    lost = [c for c, loc in items if loc is None]
                    try:
                        if lost:
                            raise FileNotFoundError(lost[0].hex())
                        for cid, loc, stored in self.read_chunks(items):
                            store.chunks.put_encoded(cid, stored, loc.raw_len, loc.flags)
                    except FileNotFoundError:
                        if attempt:
                            raise
                        self._index = None  # sync the index, then read what is left
                        continue
                    break
            except FileNotFoundError:
                if lost:
                    raise RemoteError(f"chunk {lost[0].hex()} is neither local nor on {self.url}; the "
                                      "remote is incomplete (push again from a store that has it)") from None
                raise RemoteError(f"remote {self.url}: a pack its index names is missing; "
                                  "run `ds fsck --remote`") from None
            finally:
                store.chunks.flush()
        self.chunks_fetched += len(wanted)
        return len(wanted)

    def _parallel(self, jobs: list[tuple]) -> list:
        """Run (callable, size) jobs on ``workers`` threads, in order; report progress."""
        from concurrent.futures import ThreadPoolExecutor

        total, done = sum(size for _fn, size in jobs), 0
        out = []
        with ThreadPoolExecutor(max(1, min(self.workers, len(jobs) or 1))) as pool:
            for (_fn, size), result in zip(jobs, pool.map(lambda job: job[0](), jobs), strict=True):
                out.append(result)
                done += size
                if self.progress is not None:
                    self.progress(done, total)
        return out

    def attach(self) -> Remote:
        """Let checkouts and copies of this store fetch missing chunks from this remote."""
        self.store.fetcher = self.fetch_chunks
        return self

    # -- dataset records (SDK) -------------------------------------------------------------
    def push_dataset(self, record: dict) -> Transfer:
        """Mirror a version (bytes, lineage metadata, record) under the remote's shared lock."""
        store, meta = self.store, self.store.meta
        self.cache.mkdir(parents=True, exist_ok=True)
        t = Transfer()
        with self.fs.operation("upload"):
            self.check_config(create=True)
            if record.get("commit"):
                top = pygit2.Oid(hex=record["commit"])
                tree = meta.tree_of(record["commit"])
            else:
                top = tree = pygit2.Oid(hex=record["tree"])
            tops = [top]
            records = RecordStore(store.path)
            for pid in record.get("parents", []):
                prec = records.read(pid)
                if prec and prec.get("commit"):
                    tops.append(pygit2.Oid(hex=prec["commit"]))
            with self.lock("upload") as lock:
                self.push_chunks([c for _p, e in meta.walk(tree) for c, _ in e.chunk_list()], t)
                self.push_meta(tops, [], t)
                lock.check()
                self._write_record(record)
        return self.stats(t)

    def push_record(self, record: dict) -> None:
        """Update a version's record (tags, status, names) on the remote.

        A record the remote lacks (never sent, or deleted there and its bytes perhaps
        collected since) is sent with everything it needs, never alone.
        """
        rel = f"datasets/{record['id']}.json"
        with self.fs.operation("upload"):
            old, token = self.fs.read_ref(rel)
            if old is None:
                self.push_dataset(record)
                return
            self.fs.swap_ref(rel, _record_text(record), token)

    def _write_record(self, record: dict) -> None:
        """Write a dataset record: created once, later updates by compare-and-swap."""
        rel = f"datasets/{record['id']}.json"
        _old, token = self.fs.read_ref(rel)
        self.fs.swap_ref(rel, _record_text(record), token)

    def dataset_records(self) -> list[dict]:
        """The remote's valid dataset records; each invalid one (not JSON, wrong shape, an
        id that is not its file's) is skipped with a warning naming the remote and the file."""
        listed = {rel: size for rel, (size, _m) in self.fs.list_detail("datasets").items()
                  if rel.endswith(".json") and "/.tmp-" not in rel}
        if listed:
            self.check_config(create=False)
        out = []
        self.bad_records = {}
        for rel, size in sorted(listed.items()):
            stem = rel.rsplit("/", 1)[-1][: -len(".json")]
            if size > MAX_RECORD_BYTES:
                self._skip_record(rel, f"it is {size} bytes long")
                continue
            try:
                record = json.loads(self.fs.cat(rel, size))
            except FileNotFoundError:
                continue  # deleted since it was listed
            except ValueError as e:  # not JSON, not UTF-8
                self._skip_record(rel, f"it is not JSON ({e})")
                continue
            why = record_problem(record, stem)
            if why is not None:
                self._skip_record(rel, why)
                continue
            out.append(record)
        return out

    def _skip_record(self, rel: str, why: str) -> None:
        self.bad_records[rel] = why
        self.warn(f"{self.label}: ignored dataset record {rel}: {why}; whoever can write the "
                  "remote should fix or delete it")

    def fetch_dataset(self, record: dict) -> None:
        """Bring a remote version's metadata and record into the local store.

        File bytes stay on the remote until a copy needs them (``attach_default``), so a
        part of a version costs only that part's chunks.
        """
        store = self.store
        why = record_problem(record)
        if why is not None:
            raise FormatError(f"{self.label}: a dataset record is invalid: {why}")
        self.cache.mkdir(parents=True, exist_ok=True)
        with self.fs.operation("fetch"):
            self.check_config(create=False)
            self._fetch_meta(Transfer())
        if record.get("commit"):
            if _object_type(store.meta.repo, record["commit"]) != "commit":
                raise FormatError(f"{self.label}: version {record['id']} names commit {record['commit']}, "
                                  "which the remote's metadata lacks; push that version again")
        elif _object_type(store.meta.repo, record["tree"]) != "tree":
            raise FormatError(f"{self.label}: draft {record['id']} names tree {record['tree']}, which "
                              "the remote's metadata lacks; upload that draft again")
        with store.locked():
            record = dict(record, dirty=False, uploaded=[self.url])
            if record.get("commit"):
                store.meta.set_ref(f"refs/datasets/{record['id']}", record["commit"], force=True)
            RecordStore(store.path).write(record)


def attach_default(store: Store, name_or_url: str | None = None) -> None:
    """Let the store fetch missing chunks from its (default) remote, opened on first need."""
    target = name_or_url or store.config_remote()
    if not target:
        return
    opened: list[Remote] = []

    def fetch(chunk_ids) -> None:
        if not opened:
            opened.append(Remote(store, target))
        opened[0].fetch_chunks(chunk_ids)

    store.fetcher = fetch


def forget_remote(store: Store, track: str) -> None:
    """Drop what the store remembers of a remote: its cache and refs/remotes/<track>/*."""
    import shutil

    shutil.rmtree(store.path / "remotes" / track, ignore_errors=True)
    for name in list(store.meta.repo.references):
        if name.startswith(f"refs/remotes/{track}/"):
            store.meta.repo.references.delete(name)


def _fragment_ok(path: Path, name: str) -> bool:
    """An index fragment ends with the xxh3-128 of its body, and is named by it."""
    data = path.read_bytes()
    return (len(data) > 16 and xxhash.xxh3_128_digest(data[:-16]) == data[-16:]
            and name == f"{data[-16:].hex()}.idx")


def _git_pack_ok(path: Path, name: str) -> bool:
    """``pack-<sha>.pack`` ends with the SHA-1 of the rest, which is <sha>; its ``.idx``
    ends with <sha> and then the SHA-1 of the rest of the .idx."""
    sha = name.removeprefix("pack-").rsplit(".", 1)[0]
    size = path.stat().st_size
    if size < 40:
        return False
    h = hashlib.sha1()
    with open(path, "rb") as f:
        left = size - 20
        while left:
            block = f.read(min(left, 1 << 20))
            if not block:
                return False
            h.update(block)
            left -= len(block)
        trailer = f.read(20)
        f.seek(size - 40)
        pack_sum = f.read(20)
    if h.digest() != trailer:
        return False
    return (trailer if name.endswith(".pack") else pack_sum).hex() == sha


def _record_text(record: dict) -> str:
    return json.dumps({k: v for k, v in record.items() if k not in ("dirty", "uploaded")},
                      indent=1, sort_keys=True)


def _is_hex40(value: object) -> bool:
    return isinstance(value, str) and len(value) == 40 and all(c in "0123456789abcdef" for c in value)


MAX_REF_BYTES = 200  # a ref file holds an id and a newline; a larger one is not read
MAX_RECORD_BYTES = 16 << 20  # a dataset record larger than this is not read


def _ref_name_problem(rel: str, track: str) -> str | None:
    """Why a remote ref path cannot be a branch or tag here (git's ref-name rules, checked
    on both the remote name and the tracking ref it becomes), or None."""
    kind, _sep, short = rel[len("refs/"):].partition("/") if rel.startswith("refs/") else ("", "", "")
    if kind not in ("heads", "tags") or not short:
        return "it is neither a branch (refs/heads/...) nor a tag (refs/tags/...)"
    local = f"refs/remotes/{track}/{short}" if kind == "heads" else rel
    if not (pygit2.reference_is_valid_name(rel) and pygit2.reference_is_valid_name(local)):
        return "its name breaks git's ref-name rules"
    if short == "HEAD" or any(part.startswith("-") for part in short.split("/")):
        return "its name would read as HEAD or as an option"
    return None


def _object_type(repo: pygit2.Repository, hex_id: str) -> str | None:
    """'commit', 'tree', 'blob' or 'tag' for an object the store holds; None if absent."""
    try:
        obj = repo.get(hex_id)
    except (ValueError, pygit2.GitError):
        return None
    return None if obj is None else obj.type_str


def _end(loc: Location) -> int:
    return loc.offset + loc.stored_len


def _refspec(meta, spec: str, local: dict[str, str]) -> RefUpdate:
    """One git refspec: ``SRC`` (a branch, tag, or ``HEAD``: the current branch), ``SRC:DST``
    (SRC may also be a version id when DST is given), ``+`` first to force that one."""
    force = spec.startswith("+")
    src, colon, dst = spec[force:].partition(":")
    if not src:
        if colon and dst:
            raise DsError(f"deleting {dst!r} on a remote (`:{dst}`) is not supported yet; "
                          "push another version to it with --force instead")
        raise DsError(f"{spec!r} names nothing to push; give a branch or tag (SRC or SRC:DST)")
    src_ref, value = _push_source(meta, src, local, bool(dst))
    if not dst:
        dst_ref = src_ref
    elif dst.startswith("refs/"):
        dst_ref = dst
    else:
        dst_ref = f"refs/tags/{dst}" if (src_ref or "").startswith("refs/tags/") else f"refs/heads/{dst}"
    why = _ref_name_problem(dst_ref, "origin")
    if why is not None:
        raise DsError(f"{dst!r} cannot be a branch or tag on a remote: {why}")
    return RefUpdate(src_ref, value, dst_ref, force)


def _push_source(meta, src: str, local: dict[str, str], has_dst: bool) -> tuple[str | None, str]:
    """(local ref, version) a push takes from: a branch, a tag, HEAD, or a version (with a DST)."""
    if src in ("HEAD", "@"):
        branch = meta.head_branch()
        if branch is None:
            head = meta.head_commit()
            if head is not None and has_dst:
                return None, head
            at = f" at {head[:12]}" if head else ""
            raise DsError(f"HEAD is detached{at}: there is no branch to push; `ds switch -c NAME` "
                          "puts your versions on one (then `ds push -u origin NAME`)")
        if f"refs/heads/{branch}" not in local:
            raise DsError(f"branch {branch!r} has no versions yet; commit first")
        return f"refs/heads/{branch}", local[f"refs/heads/{branch}"]
    for ref in ((src,) if src.startswith("refs/") else (f"refs/heads/{src}", f"refs/tags/{src}")):
        if ref in local:
            return ref, local[ref]
    try:
        value = meta.resolve(src)
    except DsError:
        raise DsError(f"{src!r} is neither a branch nor a tag here, nor a version; see `ds branch`, "
                      "`ds tag` and `ds log`") from None
    if not has_dst:
        raise DsError(f"{src!r} is not a branch or tag; to push that version say where it goes: "
                      f"`ds push REMOTE {src}:BRANCH`")
    return None, value


def _same_file(meta, tree: pygit2.Oid, path: str, entry) -> bool:
    """Whether version tree ``tree`` holds ``entry``'s content at ``path``."""
    found = meta.lookup(tree, path)
    return isinstance(found, FileEntry) and found.same_content(entry)


def _tips(repo: pygit2.Repository) -> dict[str, str]:
    """Every ref that names a version -> its id (a damaged ref is left out, not an error)."""
    out = {}
    for name in repo.references:
        try:
            out[name] = str(repo.references[name].peel(pygit2.Commit).id)
        except (pygit2.GitError, KeyError, ValueError):
            continue
    return out


def _count_new(repo: pygit2.Repository, tops, known) -> int:
    """How many versions ``tops`` reach that ``known`` do not: cost ∝ that number."""
    tops = list(dict.fromkeys(tops))
    if not tops:
        return 0
    walker = repo.walk(None, pygit2.enums.SortMode.NONE)
    for top in tops:
        walker.push(pygit2.Oid(hex=top))
    for cid in set(known):
        walker.hide(pygit2.Oid(hex=cid))
    return sum(1 for _c in walker)


def _reachable(repo: pygit2.Repository, top: pygit2.Oid, seen: set, new: set | None = None) -> None:
    """Add to ``seen`` (and ``new``) every object reachable from ``top`` not already seen."""
    stack = [top]
    while stack:
        oid = stack.pop()
        if oid in seen:
            continue
        seen.add(oid)
        if new is not None:
            new.add(oid)
        obj = repo[oid]
        if isinstance(obj, pygit2.Commit):
            stack.append(obj.tree_id)
            stack.extend(obj.parent_ids)
        elif isinstance(obj, pygit2.Tree):
            stack.extend(item.id for item in obj)


# -- used by the SDK ---------------------------------------------------------------------
def push_dataset(store: Store, record: dict, url: str, retries: int = 3, progress=None) -> dict:
    """``progress(bytes done, bytes to send)``, as for ``Remote``."""
    return Remote(store, url, retries=retries, progress=progress).push_dataset(record).as_json()


def remote_records(store: Store, url: str, warn: Callable[[str], None] | None = None) -> list[dict]:
    """The remote's valid dataset records; ``warn(text)`` for each one skipped as invalid."""
    return Remote(store, url, warn=warn).dataset_records()


def fetch_dataset(store: Store, url: str, record: dict) -> None:
    Remote(store, url).fetch_dataset(record)


# -- whole operations (CLI) --------------------------------------------------------------
def push(store: Store, name_or_url: str | None = None, refs: list[str] | None = None,
         all_refs: bool = False, tags: bool = False, force: bool = False, set_upstream: bool = False,
         progress=None) -> Transfer:
    """git's push. With no remote and no refs: the current branch to its upstream; a branch
    with none goes to the same name on the default remote, with a hint to set one (as git's
    ``push.default = current``). A remote but no refs: the current branch, to its upstream's
    name when that is the remote's. ``set_upstream`` (-u): each branch pushed follows the
    remote's branch afterwards, even when nothing needed sending."""
    from .branches import set_upstream as follow
    from .branches import upstream

    meta = store.meta
    hints = []
    branch = meta.head_branch()
    default = refs is None and not all_refs and not tags
    up = upstream(store, branch) if default and branch else None
    if default and name_or_url is None:
        if up is not None:
            name_or_url = up.remote
        elif branch is not None and not store.config_remote():
            raise DsError(f"branch {branch!r} has no upstream and there is no remote: "
                          f"`ds remote add origin URL`, then `ds push -u origin {branch}`")
    remote = Remote(store, name_or_url, progress=progress)
    if set_upstream and not remote.name:
        raise DsError("-u makes a branch follow a named remote, and this URL is not one: "
                      f"`ds remote add origin {remote.url}` first")
    if default and up is not None and remote.name == up.remote:
        refs = [f"HEAD:refs/heads/{up.branch}"]
    elif default and branch is not None and up is None and not set_upstream and remote.name:
        hints.append(f"branch {branch!r} has no upstream; `ds push -u {remote.name} {branch}` makes it "
                     f"follow {remote.name}/{branch} (then `ds push`, `ds pull` and `ds status` use it)")
    remote.cache.mkdir(parents=True, exist_ok=True)
    with remote.fs.operation("push"):
        updates = remote.resolve_refspecs(refs, all_refs, tags)
        t = remote.push_updates(updates, force)
    if set_upstream:
        for u in updates:
            if (u.src or "").startswith("refs/heads/") and u.dst.startswith("refs/heads/"):
                t.upstreams[u.src[11:]] = follow(store, u.src[11:], remote.name, u.dst[11:]).name
    t.hints = hints
    return t


def pull(store: Store, name_or_url: str | None = None, branch: str | None = None,
         progress=None) -> tuple[Transfer, CommitInfo | None]:
    """git's pull: fetch, then bring the current branch up to date with its upstream
    (fast-forward, or a merge when both moved). ``name_or_url`` / ``branch`` name another
    remote branch; a branch with no upstream pulls the same name from the default remote,
    with a hint to set one. ``Transfer.files`` counts the working files changed."""
    from .branches import upstream
    from .diff import diff_trees
    from .merge import merge

    current = store.meta.head_branch()
    if current is None:
        head = store.head()
        raise DsError(f"HEAD is detached{f' at {head[:12]}' if head else ''}; `ds switch BRANCH` "
                      "first (or `ds merge REMOTE/BRANCH` to merge into this version)")
    up = upstream(store, current)
    hints = []
    if name_or_url is None and branch is None and up is not None:
        name_or_url, branch = up.remote, up.branch
    elif name_or_url is None and up is None:
        hints.append(f"branch {current!r} has no upstream, so the default remote's {current!r} was "
                     f"pulled; `ds push -u REMOTE {current}` sets one")
    remote = Remote(store, name_or_url, progress=progress).attach()
    if branch is None:
        branch = up.branch if up is not None and up.remote == remote.name else current
    with remote.fs.operation("pull"):
        t = remote.fetch()
        t.hints = hints
        ref = f"refs/remotes/{remote.track}/{branch}"
        if ref not in store.meta.repo.references:
            raise DsError(f"{remote.label} has no branch {branch!r}; nothing to pull "
                          f"(`ds push -u {remote.name or 'REMOTE'} {current}` creates it)")
        before = store.head()
        cid = store.meta.resolve(ref)
        if before is None:  # a new store: take the remote's branch as it is
            from .worktree import checkout

            report = checkout(store, cid)
            store.meta.set_ref(f"refs/heads/{current}", cid, force=True)
            store.meta.attach_head(current)
            t.files, t.outcome, t.pulled = report.count, "fast-forward", f"{remote.track}/{branch}"
            return remote.stats(t), store.meta.commit_info(cid)
        t.pulled = f"{remote.track}/{branch}"
        info = merge(store, ref, message=f"merge {t.pulled} into {current}")
        t.outcome = "up to date" if info is None else "fast-forward" if info.id == cid else "merge"
        if info is not None:
            d = diff_trees(store.meta, store.meta.tree_of(before), store.meta.tree_of(info.id), renames=False)
            t.files = sum(store.in_scope()(p) for p in (*d.added, *d.modified, *d.removed))
    return remote.stats(t), info


def clone(url: str, directory: str, rev: str | None = None, include: list[str] | None = None,
          name: str = "origin", options: dict | None = None, progress=None) -> tuple[Store, Transfer]:
    """A new store in ``directory`` mirroring ``url``, with ``rev`` checked out.

    ``rev``: a remote branch (checked out as a local branch of that name following
    ``origin/NAME``, as git's clone), or a tag or id (detached HEAD); default: the branch
    the remote's HEAD names, else ``main``, else the remote's only branch. With ``include``
    only matching files are written and only their chunks downloaded. A failed clone
    leaves no folder behind.
    """
    import shutil
    import tomllib
    from dataclasses import replace
    from pathlib import Path as _Path

    url = check_url(url, worktree=Path(directory))
    probe = RemoteFS(url, options)
    try:
        with probe.operation("clone"):
            cfg = tomllib.loads(probe.cat("config").decode()).get("store", {})
    except FileNotFoundError:
        with probe.operation("clone"):
            raise probe.not_a_remote() from None
    except (ValueError, UnicodeDecodeError) as e:
        if isinstance(e, DsError):
            raise
        raise FormatError(f"remote {url}: config is unreadable ({e})") from None
    target = _Path(directory)
    existed = target.exists()
    if existed and any(target.iterdir()):
        raise DsError(f"{target} exists and is not empty; clone into a new folder")
    try:
        store = Store.init(target, hash=str(cfg.get("hash", "xxh3-128")))
        store.set_config(replace(store.config, remote=name, sparse=list(include or []), remotes={
            name: {"url": url, **({"options": options} if options else {})}}))
        remote = Remote(store, name, progress=progress).attach()
        with remote.fs.operation("clone"):
            t = remote.fetch()
            branch, cid = _clone_target(remote, rev)
            from .worktree import checkout

            t.files = checkout(store, cid).count
            if branch is not None:
                store.meta.set_ref(f"refs/heads/{branch}", cid, force=True)
                store.meta.attach_head(branch)
                from .branches import set_upstream

                t.upstreams[branch] = set_upstream(store, branch, name, branch).name
    except BaseException:
        if existed:
            for child in target.iterdir():
                shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        else:
            shutil.rmtree(target, ignore_errors=True)
        raise
    return store, remote.stats(t)


def _clone_target(remote: Remote, rev: str | None) -> tuple[str | None, str]:
    """(branch to create, or None to detach; version) a clone checks out."""
    meta = remote.store.meta
    prefix = f"refs/remotes/{remote.track}/"
    branches = sorted(r[len(prefix):] for r in meta.repo.references if r.startswith(prefix))
    if rev is None:
        if not branches:
            raise DsError(f"{remote.url} has no branch yet; nothing to clone (push one there first)")
        head = remote.default_branch()
        rev = (head if head in branches else "main" if "main" in branches
               else branches[0] if len(branches) == 1 else None)
        if rev is None:
            raise DsError(f"{remote.url} has several branches ({', '.join(branches)}); "
                          "choose one with --rev")
    if rev in branches:
        return rev, meta.resolve(prefix + rev)
    try:
        return None, meta.resolve(rev)  # a tag or a version id: HEAD detached there
    except DsError:
        names = ", ".join(branches) or "none"
        raise DsError(f"{remote.url} has no branch or tag {rev!r}, and no version with that id "
                      f"(its branches: {names}); `ds push --tags` sends tags to it") from None


def fsck_remote(store: Store, name_or_url: str | None = None, read_data_subset: float = 0.0) -> dict:
    """Verify a remote: every branch, tag and dataset record names a version whose metadata
    (whole history) is there, every chunk those versions name is in the remote's index, the
    index names only existing packs, every metadata pack index has its pack, and (for a
    random share ``read_data_subset`` in [0, 1] of the indexed chunks) the bytes read back
    match their ids."""
    import random

    from .maintenance import mark_versions

    if not 0.0 <= read_data_subset <= 1.0:
        raise DsError("--read-data-subset is a fraction between 0 and 1")
    remote = Remote(store, name_or_url)
    problems: list[str] = []
    repo = store.meta.repo
    with remote.fs.operation("fsck"):
        remote.check_config(create=False)
        refs = remote.read_refs()
        remote._fetch_meta(Transfer())
        records = remote.dataset_records()
        problems.extend(f"{rel}: {why}" for rel, why in sorted(remote.bad_records.items()))
        commits, trees = [], []
        problems.extend(f"{rel}: {why}" for rel, why in sorted(remote.bad_refs.items()))
        for rel, cid in sorted(refs.items()):
            kind = _object_type(repo, cid)
            if kind == "commit":
                commits.append(cid)
            elif kind is None:
                problems.append(f"{rel} names {cid[:12]}, whose metadata is not on the remote")
            else:
                problems.append(f"{rel} names {cid[:12]}, which is a {kind}, not a version")
        for r in records:
            version, tree = r.get("commit"), r.get("tree")
            want = "commit" if version else "tree"
            found = _object_type(repo, version or tree)
            if found is None:
                problems.append(f"dataset record {r['id']} names {(version or tree)[:12]}, "
                                "whose metadata is not on the remote")
            elif found != want:
                problems.append(f"dataset record {r['id']} names {(version or tree)[:12]}, "
                                f"which is a {found}, not a {want}")
            elif version:
                commits.append(version)
            else:
                trees.append(pygit2.Oid(hex=tree))
        m = mark_versions(store.meta, commits, trees)
        problems.extend(m.problems)
        index = remote.index()
        packs = {rel.rsplit("/", 1)[-1][:-5] for rel in remote.fs.list("packs") if rel.endswith(".pack")}
        entries = list(index)
        for pack in sorted({loc.pack for _c, loc in entries} - packs):
            problems.append(f"the index names pack {pack}, which is missing")
        for c, where in m.chunks.items():
            if index.lookup(c) is None:
                problems.append(f"chunk {c.hex()} of {where} is not on the remote")
        meta_files = {rel.rsplit("/", 1)[-1] for rel in remote.fs.list("meta")}
        for name in sorted(meta_files):
            if name.endswith(".idx") and name[:-4] + ".pack" not in meta_files:
                problems.append(f"metadata pack index meta/{name} has no pack")
        sample = [(c, loc) for c, loc in entries if loc.pack in packs and random.random() < read_data_subset]
        for cid, loc, stored in remote.read_chunks(sample, verify=False):
            try:
                decode_chunk(stored, PackEntry(cid, loc.offset, loc.stored_len, loc.raw_len, loc.flags),
                             store.algo, f"remote pack {loc.pack}")
            except DsError as e:
                problems.append(str(e))
    return {"ok": not problems, "problems": problems, "versions": len(m.commits),
            "chunks_indexed": len(entries), "chunks_needed": len(m.chunks), "chunks_read": len(sample),
            "packs": len(packs), "requests": remote.fs.request_count}
