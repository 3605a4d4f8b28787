"""A remote as a store sees it: its URL, its cached index, chunks read on demand, its refs.

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
``.dsstore/remotes/<key>/`` (immutable, so each is downloaded once). Partial reads:
missing chunks are fetched by ranged reads of remote packs, adjacent ranges merged. Every
download is verified (chunks by id, index fragments and git packs by the checksum in their
names), so a short or damaged read is retried, never used. What moves packs and refs is
in ``transfer.py``, dataset records in ``record_sync.py``, whole operations in ``remote.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import xxhash

from .chunkstore import roll_packs
from .errors import CorruptObject, DsError, FormatError
from .fsutil import atomic_write
from .index import ChunkIndex, Fragment, Location, encode_fragment
from .meta import pack_index_oids, valid_ref_name
from .packs import HEADER, decode_chunk, toc_of
from .paths import STORE_DIR
from .reflog import is_hex40
from .remote_fs import RemoteDamaged, RemoteError, RemoteFS, RemoteLock
from .repository import Chunk, Listing, LocalRepository, Repository, Rows, copy_chunks
from .store import Store

FORMAT = 1
MERGE_GAP = 256 * 1024  # ranges closer than this are read as one
MAX_RANGE = 16 * 1024 * 1024  # ...up to this many bytes per request
WHOLE_MIN = 1024 * 1024  # a pack is fetched whole for at least this many bytes of it (and half)
MAX_REF_BYTES = 200  # a ref file holds an id and a newline; a larger one is not read
# What a ref being deleted holds between its compare-and-swap and its removal (then a uuid):
# read as no ref at all; a push takes its name over only once it is older than a lease can be
DELETING = "deleting"
# the top-level names of a remote's layout: a location holding any of them but no config is
# a damaged remote (or a wrong URL), never initialised again over what it holds
LAYOUT = ("HEAD", "refs", "index", "meta", "packs", "datasets", "damaged")


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
    deleted: list[str] = field(default_factory=list)  # refs deleted on the remote (push), pruned here (fetch)
    pulled: str = ""  # pull: the remote branch it took ("origin/main")

    def as_json(self) -> dict:
        return dict(self.__dict__)


def remote_spec(store: Store, name_or_url: str | None) -> tuple[str, str, dict]:
    """(name, url, options) for a configured remote name, a URL, or the default."""
    if name_or_url is not None and not name_or_url.strip():
        raise DsError("the remote name or URL is empty; give a remote name, a folder or an "
                      "s3://, gs://, az:// URL")
    target = name_or_url or store.default_remote()
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
        proto, _, rest = url.partition("://")
        if not rest.strip("/"):  # s3:// alone: every request would fail, as a credentials error
            where = "bucket" if proto.lower() in ("s3", "s3a", "gs", "gcs") else "container or host"
            raise DsError(f"{url!r} names no {where}; give it: {proto}://NAME[/folder]")
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



class RemoteRepo(Repository):
    """One remote of one store: the storage (``fs``), what the store remembers of it
    (``cache``, tracking refs under ``refs/remotes/<track>/``), its index and chunks; the
    ``Repository`` that gc, fsck and ``copy_chunks`` work on. A pack's chunks are known
    from the remote's index (a table of contents would cost a request per pack).
    ``lease`` is a remote gc's exclusive lock, checked before each of its writes and
    deletes; None otherwise (a push holds its shared lease itself)."""

    temp_age = RemoteLock.STALE  # never a temp file that a waiting writer may still rename
    lease: RemoteLock | None = None
    resend = False  # a repair: a pack of the same name and size there may be the damaged one
    read_errors = (RemoteDamaged,)
    unreadable_pack = ("pack {pack} looks damaged on the remote: its chunks cannot be read back "
                       "({why}, at every try)")
    where = " on the remote"

    def __init__(self, store: Store, name_or_url: str | None = None, retries: int | None = None,
                 workers: int = 8, progress=None, warn: Callable[[str], None] | None = None):
        """``progress(done_bytes, total_bytes)`` is called as transfers advance; ``warn(text)``
        for each thing from the remote that was skipped as invalid (also kept in ``warnings``
        and in the ``Transfer`` an operation returns)."""
        super().__init__(store)
        self.workers = workers
        self.progress = progress
        self.warnings: list[str] = []
        self._warn = warn
        self.bad_refs: dict[str, str] = {}  # remote ref -> why the last read_refs skipped it
        self.bad_records: dict[str, str] = {}  # the same for dataset_records
        self.name, self.url, options = remote_spec(store, name_or_url)
        self.fs = RemoteFS(self.url, options, retries=retries)
        # refs/remotes/<track>/...: what this remote was last seen to hold
        self.track = self.name or "url-" + hashlib.sha256(self.url.encode()).hexdigest()[:16]
        self.cache = store.path / "remotes" / self.track
        self._check_cache()
        self._index: ChunkIndex | None = None
        self.unreadable: set[str] = set()  # damaged fragments and metadata packs fsck found: passed over
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
        return bool(value) and is_hex40(value) and self.store.meta.object_type(value) == "commit"

    def lock(self, op: str, exclusive: bool = False) -> RemoteLock:
        """The remote's lock: shared for writers, exclusive for a remote gc (see RemoteLock)."""
        return RemoteLock(self.fs, exclusive, op)

    # -- format --------------------------------------------------------------------------
    def check_config(self, create: bool) -> bool:
        """Refuse a remote of another format or hash; ``create``: make one where there is
        none (returns True then)."""
        cfg = remote_config(self.fs, self.store.algo.name, self.name)
        if cfg is None:
            held = layout_files(self.fs)
            if held == ["config"]:  # another first push made it since we looked
                cfg = remote_config(self.fs, self.store.algo.name, self.name)
            elif held:
                raise missing_config(self.fs, held, self.store.algo.name, self.name)
            elif not create:
                raise self.fs.not_a_remote()
            if cfg is None:
                self.fs.put("config", config_text(self.store.algo.name))
                return True
        if "format" not in cfg:
            raise FormatError(f"remote {self.url}: its config has no [store] format (damaged?); nothing "
                              f"was written. {config_fix(self.fs, self.store.algo.name, self.name)}")
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
        if ref == text or not ref.startswith("refs/heads/"):
            why = "it does not name a branch (ref: refs/heads/NAME)"
        else:
            why = ref_name_problem(ref, self.track)
        if why is not None:
            self._skip_ref("HEAD", why)
            return None
        return ref[len("refs/heads/"):]

    def named_versions(self, refs: dict[str, str], records: list[dict],
                       ) -> tuple[list[str], list[str], list[str]]:
        """(versions, drafts' trees, problems) that ``refs`` and dataset ``records`` name; a
        problem is a name whose metadata is not here, or that names something else."""
        found: dict[str, list[str]] = {"commit": [], "tree": []}
        problems = []
        named = [(rel, commit_id, "commit") for rel, commit_id in sorted(refs.items())] + [
            (f"dataset record {r['id']}", r["commit"], "commit") if r.get("commit")
            else (f"dataset record {r['id']}", r["tree"], "tree") for r in records]
        for what, oid, want in named:
            why = self.naming_problem(oid, want)
            if why is not None:
                problems.append(f"{what} {why}")
            else:
                found[want].append(oid)
        return found["commit"], found["tree"], problems

    def naming_problem(self, oid: str, want: str = "commit") -> str | None:
        """Why ``oid`` (named by the remote) is not a ``want`` whose metadata is here, or None."""
        found = self.store.meta.object_type(oid)
        if found == want:
            return None
        if found is None:
            return f"names {oid[:12]}, whose metadata is not on the remote"
        return f"names {oid[:12]}, which is a {found}, not a {'version' if want == 'commit' else want}"

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
                skip = {rel.rsplit("/", 1)[-1] for rel in self.unreadable}  # damaged there (fsck)
                try:
                    for name in sorted(listed - have - skip):
                        self.fs.get_file(f"index/{name}", folder / name,
                                         check=lambda p, n=name: fragment_ok(p, n))
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

    def forget_index(self) -> None:
        """Read the remote's index again when next needed (it changed, or a pack is gone)."""
        self._index = None

    def put_fragment(self, rows: list[tuple[bytes, Location]], listed: Iterable[str] = ()) -> str:
        """Upload one index fragment of ``rows`` (unless ``listed`` names it) and keep it
        in the cache; returns its name."""
        frag = encode_fragment(self.store.algo, rows)
        name = f"{frag[-16:].hex()}.idx"
        if name not in listed:
            self.check()
            self.fs.put(f"index/{name}", frag)
        folder = self.cache / "index"
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / name, frag, durable=False)  # worker processes share this cache
        self.forget_index()
        return name

    def put_meta_pack(self, objects: set[str]) -> list[str]:
        """Upload one git pack of these objects (``add_meta_pack``, which checks a gc's lease
        before each upload); returns the names sent, none for no objects."""
        if not objects:
            return []
        with self.meta_scratch() as tmp:
            files = self.store.meta.write_pack_of(objects, Path(tmp))
            self.add_meta_pack(files)
        return [f.name for f in files]

    def remembered_meta(self) -> set[str]:
        """The metadata packs this store sent to or fetched from the remote."""
        path = self.cache / "meta-packs.json"
        return set(json.loads(path.read_text())) if path.exists() else set()

    def remember_meta(self, names: list[str]) -> None:
        if names:
            atomic_write(self.cache / "meta-packs.json",
                         json.dumps(sorted(self.remembered_meta() | set(names))).encode(), durable=False)

    # -- metadata as a Repository (copy_meta) --------------------------------------------
    def meta_scratch(self) -> AbstractContextManager[str]:
        return tempfile.TemporaryDirectory(dir=self.cache)

    def add_meta_pack(self, files: list[Path]) -> None:
        """Upload a pack's files, its ``.idx`` last (a reader takes a pack by its ``.idx``;
        a gc's lease checked before each); the ``.idx`` kept in the cache: what the pack
        holds is then known without downloading it again."""
        files = sorted(files, key=lambda f: f.suffix == ".idx")
        for f in files:
            self.check()
            self.fs.put(f"meta/{f.name}", f)
        cached = self.cache / "meta-idx"
        cached.mkdir(parents=True, exist_ok=True)
        for f in files:
            if f.suffix == ".idx":
                os.replace(f, cached / f.name)

    def meta_packs(self, dst: Repository, tops: list[str], known: list[str],
                   folder: Path) -> Iterator[list[Path]]:
        """Every pack of the remote that ``dst`` does not hold (nor this store remember
        from it), downloaded into ``folder`` and verified against its name, its ``.pack``
        before its ``.idx``; a pack counts once its ``.idx`` is listed (uploaded last), and
        one found damaged (``unreadable``) is passed over. Those ``dst`` took are remembered."""
        gone = ""
        for _attempt in range(3):
            held = dst.held_meta() | self.remembered_meta()
            sizes = {r: size for r, (size, _mtime) in self.fs.list_detail("meta").items()
                     if r.rsplit("/", 1)[-1].startswith("pack-")}
            complete = sorted(f[:-4] for f in sizes if f.endswith(".idx") and f not in self.unreadable)
            wanted = {stem: [stem + suffix for suffix in (".pack", ".idx")
                             if stem.rsplit("/", 1)[-1] + suffix not in held] for stem in complete}
            total, done = sum(sizes.get(r, 0) for rels in wanted.values() for r in rels), 0
            taken: list[str] = []
            try:
                for rels in wanted.values():
                    files = []
                    for rel in rels:
                        gone = rel
                        f = folder / rel.rsplit("/", 1)[-1]
                        self.fs.get_file(rel, f, check=lambda p, n=f.name: git_pack_ok(p, n))
                        files.append(f)
                        done += sizes.get(rel, 0)
                        if self.progress is not None:
                            self.progress(done, total)
                    if files:
                        yield files
                        taken.extend(f.name for f in files)
            except FileNotFoundError:
                continue  # a remote gc replaced that pack while we listed: list again
            finally:
                self.remember_meta(taken)  # once, even when stopped: what dst took
            return
        raise RemoteError(f"remote {self.url}: {gone}, named by its listing, could not be read at each of "
                          "3 listings: a `ds gc --remote` may be running (try again when it has finished); "
                          "if it persists the remote is damaged: `ds fsck --remote NAME` names what it "
                          "affects, and `--repair` there, in a store that holds those versions, mends it")

    def meta_pack_objects(self, stem: str) -> list[str]:
        """The objects one remote metadata pack holds, from its .idx (this store's copy of
        the same pack, else downloaded once, checked, and cached)."""
        local = self.store.meta.pack_objects(stem)
        if local is not None:
            return local
        cached = self.cache / "meta-idx" / f"{stem}.idx"
        if not cached.exists():
            cached.parent.mkdir(parents=True, exist_ok=True)
            self.fs.get_file(f"meta/{stem}.idx", cached, check=lambda p: git_pack_ok(p, f"{stem}.idx"))
        return pack_index_oids(cached)

    def pack_toc(self, pack: str, size: int) -> Rows:
        """A remote pack's chunks from its own table of contents, checked (``FormatError``
        if damaged): for a pack no readable index fragment names."""
        rel = f"packs/{pack[:2]}/{pack}.pack"
        algo, entries = toc_of(size, lambda start, end: self.fs.cat_ranges(rel, [(start, end)])[0],
                               f"remote pack {pack} on {self.url}")
        if algo is not self.algo:
            raise FormatError(f"remote pack {pack} on {self.url} uses {algo.name}, "
                              f"the store {self.algo.name}")
        return Location.rows(pack, entries)

    def pack_header(self, pack: str) -> bytes:
        return self.fs.cat_ranges(f"packs/{pack[:2]}/{pack}.pack", [(0, HEADER.size)])[0]

    def read_chunks(self, items: list[tuple[bytes, Location]],
                    verify: bool = True) -> Iterator[tuple[bytes, Location, bytes]]:
        """(id, location, stored bytes) of chunks read by ranged reads of remote packs, verified
        unless the caller verifies them itself.

        Ranges closer than MERGE_GAP are read as one (up to MAX_RANGE bytes), ``workers``
        requests in flight, so memory stays bounded (workers x MAX_RANGE). A pack that is
        gone raises FileNotFoundError (a remote gc moved its chunks: sync the index).
        """
        jobs: list[tuple[str, Rows]] = []  # (pack, group of adjacent chunks read as one range)
        for it in sorted(items, key=lambda it: (it[1].pack, it[1].offset)):
            last = jobs[-1][1] if jobs and jobs[-1][0] == it[1].pack else None
            if (last and it[1].offset - _end(last[-1][1]) <= MERGE_GAP
                    and _end(it[1]) - last[0][1].offset <= MAX_RANGE):
                last.append(it)
            else:
                jobs.append((it[1].pack, [it]))
        for start in range(0, len(jobs), self.workers):
            window = jobs[start : start + self.workers]
            datas = self._parallel([
                (lambda p=p, g=g: self.fs.cat_ranges(f"packs/{p[:2]}/{p}.pack",
                                                     [(g[0][1].offset, _end(g[-1][1]))])[0],
                 _end(g[-1][1]) - g[0][1].offset)
                for p, g in window])
            for (_pack, g), data in zip(window, datas, strict=True):
                base = g[0][1].offset
                for chunk_id, loc in g:
                    stored = data[loc.offset - base : loc.offset - base + loc.stored_len]
                    if verify:
                        self.decode(chunk_id, loc, stored)
                    yield chunk_id, loc, stored

    def decode(self, chunk_id: bytes, loc: Location, stored: bytes) -> bytes:
        """A chunk's stored bytes back to its bytes, verified against its id (never a delta
        here); one that fails points to the check of this remote, not of the store."""
        where = f"remote pack {loc.pack} on {self.url}"
        try:
            return decode_chunk(stored, loc.entry(chunk_id), self.store.algo, where)
        except CorruptObject as e:
            raise CorruptObject(f"{_bare(str(e))}; {self.fsck_hint}", where=e.where, expected=e.expected,
                                got=e.got) from None

    @property
    def fsck_hint(self) -> str:
        """How a message about damage here says what checks (and mends) it."""
        return f"run `ds fsck --remote {self.name or self.url}`"

    # -- as a Repository (gc, fsck, copy_chunks) ----------------------------------------
    def check(self) -> None:
        if self.lease is not None:
            self.lease.check()

    def listing(self) -> Listing:
        return self.fs.list_detail("")

    def pack_rows(self, packs: list[str]) -> Iterator[tuple[str, dict[bytes, Location]]]:
        by_pack: dict[str, dict[bytes, Location]] = defaultdict(dict)
        wanted = set(packs)
        for frag in self.index().fragments:
            for chunk_id, loc in frag:
                if loc.pack in wanted:
                    by_pack[loc.pack].setdefault(chunk_id, loc)
        for pack in packs:
            yield pack, by_pack.get(pack, {})

    def write_packs(self, chunks: Iterable[Chunk]) -> tuple[Rows, int]:
        with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
            try:
                files, rows = roll_packs(Path(tmp), self.algo, self.pack_target, chunks)
            except FileNotFoundError as e:
                raise FormatError(f"gc refused: remote {self.url}: a pack vanished while being "
                                  f"rewritten ({e}); is another gc running without a lock?") from None
            self._send(files)
        return rows, len(files)

    def _send(self, files: list[Path]) -> int:
        """Upload these packs (``workers`` at a time), each unless an interrupted run sent it
        already (the same chunks make the same pack); returns how many were uploaded."""
        def send(f: Path) -> int:
            self.check()
            rel = f"packs/{f.stem[:2]}/{f.name}"
            if not self.resend and self.fs.size(rel) == f.stat().st_size:
                return 0
            self.fs.put(rel, f)
            return 1

        return sum(self._parallel([(lambda f=f: send(f), f.stat().st_size) for f in files]))

    def delete(self, rels: list[str]) -> None:
        if rels:
            self.check()
            self.fs.delete(rels)

    def has(self, chunk_id: bytes) -> bool:
        return self.index().lookup(chunk_id) is not None

    def read_whole(self, chunk_ids: list[bytes]) -> Iterator[Chunk]:
        """Chunks by ranged reads, verified (a remote holds no deltas). Where the cached index
        is out of date (a remote gc moved live chunks into new packs and deleted the old
        ones), it is synced once and the rest are read where they are now."""
        done: set[bytes] = set()
        for _attempt in range(2):
            index = self.index()
            items = [(c, index.lookup(c)) for c in chunk_ids if c not in done]
            lost = [c for c, loc in items if loc is None]
            with suppress(FileNotFoundError):  # a pack is gone: sync the index, read the rest
                for chunk_id, loc, stored in [] if lost else self.read_chunks(items):
                    done.add(chunk_id)
                    yield chunk_id, stored, loc.raw_len, loc.flags
                if not lost:
                    return
            self.forget_index()
        if lost:
            raise RemoteError(f"chunk {lost[0].hex()} is neither local nor on {self.url}; the "
                              "remote is incomplete (push again from a store that has it)")
        raise RemoteError(f"remote {self.url}: a pack its index names is missing; "
                          "run `ds fsck --remote`")

    def dense_packs(self, chunk_ids: list[bytes]) -> dict[str, int]:
        """Packs that hold at least WHOLE_MIN bytes of these chunks and at least half of
        their size (so a pack taken whole costs at most twice the bytes read chunk by
        chunk), with their sizes from one listing: a clone or pull wants most of each pack
        it touches, and a whole pack is indexed as it is, not rewritten chunk by chunk.
        None for a sparse store, which downloads only the chunks of its part."""
        wanted = self.index().stored_by_pack(chunk_ids)
        if self.store.config.sparse or all(n < WHOLE_MIN for n in wanted.values()):
            return {}
        sizes = {rel.rsplit("/", 1)[-1]: size for rel, (size, _m) in self.fs.list_detail("packs").items()}
        return {pack: size for pack, nbytes in sorted(wanted.items())
                if nbytes >= WHOLE_MIN and (size := sizes.get(f"{pack}.pack")) is not None
                and 2 * nbytes >= size}

    def get_packs(self, packs: dict[str, int], folder: Path, take: Callable[[str, Path], None]) -> None:
        """Download these packs (``workers`` at a time, each by ranged reads of at most
        MAX_RANGE and never past the size listed) and hand each to ``take``. A pack ``take``
        refuses is reported, and its chunks are then read one by one (which names the
        damage if one of them is wanted); one gone meanwhile (a remote gc) is skipped, its
        chunks then read where the synced index says. A failure or Ctrl-C here stops the
        other downloads at their next range."""
        stop = threading.Event()

        def get(pack: str, size: int) -> None:
            rel = f"packs/{pack[:2]}/{pack}.pack"
            path = folder / f".tmp-{os.urandom(8).hex()}.fetched"
            try:
                with open(path, "wb") as f:
                    for start in range(0, size, MAX_RANGE):
                        if stop.is_set():
                            return
                        f.write(self.fs.cat_ranges(rel, [(start, min(size, start + MAX_RANGE))])[0])
                take(pack, path)
            except FileNotFoundError:
                pass
            except (FormatError, CorruptObject) as e:
                self.warn(f"{self.label}: its pack {pack} was not taken whole ({_bare(str(e))}); its "
                          f"chunks are read one by one ({self.fsck_hint} to check the remote)")
            finally:
                path.unlink(missing_ok=True)

        folder.mkdir(parents=True, exist_ok=True)
        self._parallel([(lambda p=p, n=n: get(p, n), n) for p, n in packs.items()], stop)

    def add_chunks(self, chunk_ids: list[bytes], read: Callable[[list[bytes]], Iterable[Chunk]]) -> int:
        """New packs of these chunks, then one index fragment; returns the packs uploaded.

        Resuming is cheap: each pack's index rows are noted locally (``sent/``) before it
        is uploaded, so the next run lists the remote's packs once and indexes every noted
        pack that landed whole (its name is its content hash, its size the listing's) instead
        of building and sending it again, whatever else changed meanwhile.
        """
        rows, notes = self._landed_packs()
        have = {chunk_id for chunk_id, _loc in rows}
        with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
            files, mine = roll_packs(Path(tmp), self.algo, self.pack_target,
                                     read([c for c in chunk_ids if c not in have]), self._note_sent)
            sent = self._send(files)
            notes += [self._sent_note(f) for f in files]
        self.put_fragment(rows + mine, [])
        for note in notes:
            note.unlink(missing_ok=True)  # indexed now
        return sent

    def _sent_note(self, pack: Path) -> Path:
        return self.cache / "sent" / f"{pack.stem}-{pack.stat().st_size}.idx"

    def _note_sent(self, pack: Path, rows: Rows) -> None:
        """Remember a pack's index rows before it is uploaded (see ``_landed_packs``)."""
        note = self._sent_note(pack)
        note.parent.mkdir(exist_ok=True)
        atomic_write(note, encode_fragment(self.algo, rows), durable=False)

    def _landed_packs(self) -> tuple[Rows, list[Path]]:
        """(index rows, notes) of packs an earlier run uploaded whole but never indexed.

        One listing of the remote's packs, and only when such notes exist. A noted pack
        that is absent or of another size did not land (or a remote gc removed it): its
        note is dropped and what it held is built again if still needed.
        """
        folder = self.cache / "sent"
        notes = sorted(folder.glob("*.idx")) if folder.is_dir() else []
        if not notes:
            return [], []
        sizes = {rel.rsplit("/", 1)[-1]: size for rel, (size, _m) in self.fs.list_detail("packs").items()}
        rows: Rows = []
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
                    or all(self.has(chunk_id) for chunk_id, _loc in entries)):
                note.unlink(missing_ok=True)
                continue
            rows.extend(entries)
            landed.append(note)
        return rows, landed

    def fetch_chunks(self, chunk_ids) -> int:
        """Download the chunks this store lacks (``repository.copy_chunks``); returns how many.

        What arrived is kept even if the rest fails, so the next attempt reads only what
        is still missing; an out-of-date cached index is synced once (``read_whole``).
        """
        store = self.store
        chunk_ids = list(chunk_ids)
        if all(store.chunks.has(c) for c in chunk_ids):
            return 0
        with self.fs.operation("read"), store.locked():
            store.chunks.drop_downloads()
            got, _packs = copy_chunks(self, LocalRepository(store), chunk_ids)
        self.chunks_fetched += got
        return got

    def _parallel(self, jobs: list[tuple], stop: threading.Event | None = None) -> list:
        """Run (callable, size) jobs on ``workers`` threads, in order; report progress. On
        a failure or Ctrl-C, jobs not started are dropped and ``stop`` is set for the
        running ones before waiting for them."""
        from concurrent.futures import ThreadPoolExecutor

        total, done = sum(size for _fn, size in jobs), 0
        out = []
        with ThreadPoolExecutor(max(1, min(self.workers, len(jobs) or 1))) as pool:
            futures = [pool.submit(fn) for fn, _size in jobs]
            try:
                for (_fn, size), future in zip(jobs, futures, strict=True):
                    out.append(future.result())
                    done += size
                    if self.progress is not None:
                        self.progress(done, total)
            except BaseException:
                if stop is not None:
                    stop.set()
                for future in futures:
                    future.cancel()
                raise
        return out

    def attach(self) -> Self:
        """Let checkouts and copies of this store fetch missing chunks from this remote."""
        self.store.fetcher = self.fetch_chunks
        return self


def forget_remote(store: Store, track: str) -> None:
    """Drop what the store remembers of a remote: its cache and refs/remotes/<track>/*."""
    import shutil

    shutil.rmtree(store.path / "remotes" / track, ignore_errors=True)
    for name in store.meta.ref_names(f"refs/remotes/{track}/"):
        store.meta.drop_ref(name)


def remote_config(fs: RemoteFS, algo: str | None = None, name: str = "") -> dict | None:
    """The ``[store]`` table of a remote's config; None where there is no config. One that
    cannot be parsed is an error naming the fix (``algo``, ``name``: this store's hash and
    the remote's name, for the fix)."""
    import tomllib

    try:
        raw = fs.cat("config")
    except FileNotFoundError:
        return None
    try:
        return tomllib.loads(raw.decode()).get("store", {})
    except (ValueError, UnicodeDecodeError) as e:
        raise FormatError(f"remote {fs.url}: config is unreadable ({e}); nothing was written. "
                          f"{config_fix(fs, algo, name)}") from None


def config_text(algo: str) -> bytes:
    """A remote's config, as the push that creates the remote writes it."""
    return f'[store]\nformat = {FORMAT}\nhash = "{algo}"\n'.encode()


def layout_files(fs: RemoteFS) -> list[str]:
    """What of a remote's layout (``LAYOUT``: ``HEAD``, ``refs/``, ...) the location holds,
    from one listing; ``["config"]`` if it holds a config. A push must not initialise again
    a remote that lost its config (deleted, or a URL pointing into another remote), and an
    empty location is initialised as ever."""
    found = set()
    for rel in fs.list_detail(""):
        top, sep, _rest = rel.partition("/")
        if rel == "config":
            return ["config"]
        if top in LAYOUT:
            found.add(top + sep)
    return sorted(found)


def config_fix(fs: RemoteFS, algo: str | None, name: str = "") -> str:
    """How to put a remote's config back by hand (no command writes one over an existing
    remote, on purpose), then check the remote."""
    where = fs.path("config") if fs.kind == "local" else f"{fs.url.rstrip('/')}/config"
    target = name or fs.url
    return (f"If the URL is right, put the config back: write {where} holding the 3 lines `[store]`, "
            f"`format = {FORMAT}`, `hash = \"{algo or 'HASH'}\"` (the hash of the stores that pushed "
            f"there: `ds config store.hash` in one), then check the remote with `ds fsck --remote "
            f"{target}`; if the URL is wrong, correct it (`ds remote set-url {name or 'NAME'} URL`)")


def missing_config(fs: RemoteFS, held: list[str], algo: str | None, name: str = "") -> RemoteError:
    """The error for a location holding a remote's files but no config."""
    return RemoteError(f"remote {fs.url} holds an objstore remote's files ({', '.join(held)}) but "
                       f"no config file: it was deleted, or the URL points at the wrong place; nothing "
                       f"was written. {config_fix(fs, algo, name)}")


def is_deleting(value: str | None) -> bool:
    """Whether a remote ref's text is the mark of a delete in progress (or one killed)."""
    return value is not None and (value == DELETING or value.startswith(DELETING + " "))


def clone_branch(head: str | None, branches: Iterable[str]) -> str | None:
    """The branch a clone checks out by default: the one the remote's HEAD names, else
    ``main``, else the only branch; None when none of these says."""
    names = list(branches)
    if head in names:
        return head
    if "main" in names:
        return "main"
    return names[0] if len(names) == 1 else None


def fragment_ok(path: Path, name: str) -> bool:
    """An index fragment ends with the xxh3-128 of its body, and is named by it."""
    data = path.read_bytes()
    return (len(data) > 16 and xxhash.xxh3_128_digest(data[:-16]) == data[-16:]
            and name == f"{data[-16:].hex()}.idx")


def git_pack_ok(path: Path, name: str) -> bool:
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


def ref_name_problem(rel: str, track: str) -> str | None:
    """Why a remote ref path cannot be a branch or tag here (git's ref-name rules, checked
    on both the remote name and the tracking ref it becomes), or None."""
    kind, _sep, short = rel[len("refs/"):].partition("/") if rel.startswith("refs/") else ("", "", "")
    if kind not in ("heads", "tags") or not short:
        return "it is neither a branch (refs/heads/...) nor a tag (refs/tags/...)"
    local = f"refs/remotes/{track}/{short}" if kind == "heads" else rel
    if not (valid_ref_name(rel) and valid_ref_name(local)):
        return "its name breaks git's ref-name rules"
    if short == "HEAD" or any(part.startswith("-") for part in short.split("/")):
        return "its name would read as HEAD or as an option"
    return None


def _end(loc: Location) -> int:
    return loc.offset + loc.stored_len


def _bare(message: str) -> str:
    """A chunk's damage without the local check's hint (it names a remote's file, not ours)."""
    for hint in ("; run `ds fsck --read-data`", ": run `ds fsck --read-data`"):
        message = message.removesuffix(hint)
    return message
