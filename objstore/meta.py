"""Metadata in a git object database (pygit2): manifests, trees, commits, refs.

A version is a git commit; its parents are its lineage. Each folder is one git tree
whose entries are its subfolders (git trees) and its manifest blob(s) (see
``manifest.py``) — never one git object per file, so 50k files cost ~hundreds of
objects. Reserved names inside a tree start with ``.ds.``:

    .ds.manifest[.N]   the folder's file entries (N-th bucket when over BUCKET_MAX rows)
    .ds.meta           (root only) a finalized dataset's record, as it was at finalize
    .ds.d.<name>       a user subfolder whose own name starts with ``.ds.``

Everything read from a tree is validated (names, kinds, collisions) before use.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import xxhash

from .errors import DsError, FormatError, RevisionNotFound
from .fsutil import atomic_write, name_path
from .git_layout import DEFAULT_BRANCH
from .git_pack import BLOB as BLOB_KIND
from .git_pack import COMMIT as COMMIT_KIND
from .git_pack import TREE as TREE_KIND
from .git_pack import GitPackWriter, object_id, tree_body
from .git_read import KIND_NAMES, LOOSE_TEMP, Commit, ObjectReader, Unsure, plain_ref_name, tree_entries
from .limits import CACHE_ROWS
from .manifest import FileEntry, decode_manifest, encode_manifest
from .paths import check_name, join
from .reflog import (
    ZERO,
    expire,
    is_hex40,
    last_good,
    log_path,
    loose_refs,
    packed_refs,
    previous_branch,
    read_reflog,
    reflog_files,
)

if TYPE_CHECKING:
    import pygit2

MANIFEST = ".ds.manifest"
BASE, ADDED, REMOVED = ".ds.manifest.base", ".ds.manifest.add", ".ds.manifest.del"
PATCH_SHARE = 4  # a folder changed in more than 1/PATCH_SHARE of its base's rows is stored whole
META = ".ds.meta"
ESCAPE = ".ds.d."
BUCKET_MAX = 8192
_CACHED_ROWS = CACHE_ROWS  # decoded folder rows kept in memory (~12 MB); a folder past it stays alone
_BUCKET = re.compile(r"\.ds\.manifest(\.(0|[1-9][0-9]{0,5}))?")
_AT = re.compile(r"([^@{}~^:\s]*)@\{(-?[0-9]+)\}")  # NAME@{N}, @{N}, @{-N}
_WALK = re.compile(r"(?:~[0-9]*|\^[0-9]*|\^\{[^{}]*\})+")  # ~N, ^N and ^{...} after a revision
BLOB, TREE = 0o100644, 0o40000  # git's file modes of a blob and a tree entry
_PLAIN_REV = re.compile(r"([^~^@{}:\s]+)((?:~[0-9]*|\^[0-9]*)*)")  # NAME, then ~N and ^N steps
_HEX_ID = re.compile(r"[0-9a-f]{40}")
PACK_NEW_MIN = 64  # fewer new objects stay loose (and are fsynced one by one)
PACK_MERGE_AT = 32  # more metadata packs than this: merge all but the largest

_pygit2 = None


def _git():
    """pygit2, imported on first use: a command that only reads needs none of it
    (``git_read``), and its import costs ~50 ms.

    libgit2 would fsync each object (and its folder) as it is written: ~1 ms each, serial.
    Objects are instead made durable together, in parallel, before any ref names them
    (``MetaStore.make_durable``); ref updates run with libgit2's own fsync switched on."""
    global _pygit2
    if _pygit2 is None:
        import pygit2

        pygit2.option(pygit2.enums.Option.ENABLE_FSYNC_GITDIR, 0)
        _pygit2 = pygit2
    return _pygit2


@contextlib.contextmanager
def _fsync_refs():
    git = _git()
    git.option(git.enums.Option.ENABLE_FSYNC_GITDIR, 1)
    try:
        yield
    finally:
        git.option(git.enums.Option.ENABLE_FSYNC_GITDIR, 0)


def encode_dir(name: str) -> str:
    """A folder's name as its tree entry: escaped when it starts with ``.ds.`` or is one git
    refuses as an entry (``.git`` and its NTFS spellings, in any case)."""
    return ESCAPE + name if name.startswith(".ds.") or _git_refuses(name) else name


def _git_refuses(name: str) -> bool:
    """libgit2 refuses ``.git`` and ``git~1`` as entry names in any case, with trailing dots
    or spaces, or before a ``:`` stream name (git's protections for NTFS)."""
    return name.casefold().split(":", 1)[0].rstrip(". ") in (".git", "git~1")


def decode_dir(stored: str, where: str) -> str:
    if stored.startswith(ESCAPE):
        return stored[len(ESCAPE) :]
    if stored.startswith(".ds."):
        raise FormatError(f"{where}: unknown reserved folder entry {stored!r}")
    return stored


def valid_ref_name(name: str) -> bool:
    """git's ref-name rules (``refs/heads/x``, ``refs/tags/x``)."""
    return _git().reference_is_valid_name(name)


def _oid(object_id: str | pygit2.Oid) -> pygit2.Oid:
    return object_id if isinstance(object_id, _git().Oid) else _git().Oid(hex=object_id)


def _raw(object_id: str | pygit2.Oid) -> bytes:
    return bytes.fromhex(object_id) if isinstance(object_id, str) else object_id.raw


@dataclass
class Folder:
    """One folder of a version; ids are hex strings (no pygit2 type leaves this module)."""

    files: dict[str, FileEntry] = field(default_factory=dict)
    dirs: dict[str, str] = field(default_factory=dict)
    record: str | None = None  # the root's ``.ds.meta`` blob: a dataset's record at finalize
    # the whole manifest blob this folder's rows are based on, and its rows: a later
    # version of the folder can store only its difference from it (see write_folder)
    base: tuple[str, dict[str, FileEntry]] | None = None


@dataclass(frozen=True)
class CommitInfo:
    id: str
    message: str
    parents: tuple[str, ...]
    created: str
    author: str
    tree: str
    email: str = ""

    def as_json(self) -> dict:
        return {
            "id": self.id,
            "message": self.message,
            "parents": list(self.parents),
            "created": self.created,
            "author": self.author,
            "email": self.email,
        }


@dataclass(frozen=True)
class RefDamage:
    """A ref whose file is unreadable or gone while its reflog says it held a version."""

    name: str
    reason: str
    last_good: str | None  # the newest id its reflog moved it to that is still a version
    points_at: str | None = None  # the id in its file, when that is no readable version here

    def message(self) -> str:
        if self.last_good:
            fix = (f"its last good version in the reflog is {self.last_good}; "
                   "run `ds fsck --repair` to restore it")
        else:
            fix = "the reflog names no version to restore; see `ds fsck` for versions no ref reaches"
        return f"ref {self.name} is damaged ({self.reason}); {fix}"



def _unopened(path: Path, e: Exception) -> str:
    """Why libgit2 cannot open the database, and the fix: one that works for each cause."""
    from .git_layout import lost_parts

    lost = lost_parts(path)
    if "objects" in lost:
        return (f"{path}: the metadata database lost its objects folder, which holds every version; restore "
                f"{path / 'objects'} from a backup, or clone the store again from a remote that has it")
    if lost:
        what = " and ".join(f"{n} file" if n == "HEAD" else f"{n} folder" for n in lost)
        return (f"{path}: the metadata database lost its {what}; `ds fsck --repair` writes "
                f"{'it' if len(lost) == 1 else 'them'} again (HEAD from its reflog, branches from theirs)")
    return f"{path}: metadata database is unreadable ({e}); run `ds fsck`"


def _deletion(tip: str, who: tuple[str, str], message: str) -> bytes:
    """The reflog line that ends a deleted ref's log: from its tip to nothing."""
    return f"{tip} {ZERO} {who[0]} <{who[1]}> {int(time.time())} +0000\t{message}\n".encode()


def _put_aside(path: Path) -> Path:
    """Rename a kept reflog to ``NAME~deleted-N`` (no ref can have that name; gc reads it)."""
    n = 1
    while (aside := path.with_name(f"{path.name}~deleted-{n}")).exists():
        n += 1
    os.replace(path, aside)
    return aside


class _Batch:
    """The objects of one ``MetaStore.new_objects``: held in memory while few, then streamed
    into a pack in a temp folder of the pack folder (``drop_temps`` removes what a crash leaves)."""

    def __init__(self) -> None:
        self.held: dict[bytes, tuple[int, bytes]] = {}
        self.tmp: str | None = None
        self.file: BinaryIO | None = None
        self.pack: GitPackWriter | None = None

    def add(self, kind: int, data: bytes, folder: Path) -> bytes:
        oid = object_id(kind, data)
        if self.pack is None:
            self.held[oid] = (kind, data)
            if len(self.held) >= PACK_NEW_MIN:
                self._start(folder)
        else:
            self.pack.add(kind, data, oid)
        return oid

    def _start(self, folder: Path) -> None:
        import tempfile

        folder.mkdir(parents=True, exist_ok=True)
        self.tmp = tempfile.mkdtemp(dir=folder, prefix=".tmp-pack-")
        os.mkdir(os.path.join(self.tmp, "pack"))
        self.file = open(os.path.join(self.tmp, "pack", "new.pack"), "w+b")  # noqa: SIM115 (closed by finish or discard)
        self.pack = GitPackWriter(self.file)
        held, self.held = self.held, {}
        for oid, (kind, data) in held.items():
            self.pack.add(kind, data, oid)

    def finish(self, read_back: Callable[[Path, dict[bytes, int]], None]) -> list[Path]:
        """The pack and its index, named by the pack's checksum, read-only as git makes them,
        once ``read_back`` accepts them."""
        assert self.pack is not None and self.file is not None and self.tmp is not None
        digest, index = self.pack.finish()
        self.file.close()
        folder = Path(self.tmp, "pack")
        pack, idx = folder / f"pack-{digest.hex()}.pack", folder / f"pack-{digest.hex()}.idx"
        os.replace(folder / "new.pack", pack)
        idx.write_bytes(index)
        for f in (pack, idx):
            os.chmod(f, 0o444)
        read_back(Path(self.tmp), self.pack.kinds)
        return [pack, idx]

    def discard(self) -> None:
        if self.file is not None:
            # closing flushes what the failed write left in the buffer, and fails the same
            # way: that second error must neither replace the first nor keep the temp folder
            with contextlib.suppress(OSError):
                self.file.close()
        if self.tmp is not None:
            import shutil

            shutil.rmtree(self.tmp, ignore_errors=True)


class MetaStore:
    """The git object database at ``.dsstore/meta``: the one module that speaks pygit2.

    Every id it takes or returns is a 40-character hex string; a pygit2 error becomes a
    ``FormatError`` naming what is damaged.
    """

    def __init__(self, path: Path, hash_size: int):
        self.path = path
        self.hash_size = hash_size
        self._repo: pygit2.Repository | None = None
        self._reader = ObjectReader(path)
        if not ((path / "HEAD").is_file() and (path / "objects").is_dir() and (path / "refs").is_dir()):
            self.repo  # noqa: B018 (libgit2 names what it cannot open, as it always has)
        self._folders: dict[str, Folder] = {}
        self._folder_rows = 0
        self._unsynced: list[pygit2.Oid] = []
        self._batch: _Batch | None = None  # see new_objects

    @property
    def repo(self) -> pygit2.Repository:
        """libgit2's handle on the database, opened on first use: reads go through
        ``git_read`` first, which needs none."""
        repo = self._repo
        if repo is None:
            git = _git()
            try:
                repo = self._repo = git.Repository(str(self.path))
            except git.GitError as e:
                raise FormatError(_unopened(self.path, e)) from None
        return repo

    @repo.setter
    def repo(self, handle: pygit2.Repository) -> None:
        self._repo = handle

    def _new(self, oid: pygit2.Oid) -> str:
        self._unsynced.append(oid)
        return str(oid)

    def make_durable(self) -> None:
        """Make every object written since the last call durable, before any ref names them.

        A few objects stay loose and are fsynced in parallel. More (a commit touching many
        folders) go into one new git pack instead: two files to fsync rather than hundreds,
        and one small file on disk rather than a 4 KiB block per object. Once there are many
        packs, the small ones are merged (with deltas) so lookups stay fast.
        """
        oids, self._unsynced = self._unsynced, []
        if not oids:
            return
        objects = Path(self.path, "objects")
        loose = [f for o in set(oids) if (f := objects / str(o)[:2] / str(o)[2:]).exists()]
        if len(loose) < PACK_NEW_MIN:  # (one already packed is durable since it was packed)
            from concurrent.futures import ThreadPoolExecutor  # only pack writes pay for it

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(_fsync_path, map(str, loose)))
                list(pool.map(_fsync_path, {str(f.parent) for f in loose}))
            return
        self._replace_with_pack([], loose)
        self._merge_small_packs()  # the new objects are durable already

    def _pack_builder(self) -> pygit2.PackBuilder:
        """A pack builder searching for deltas on each core this process may use (libgit2's
        default is one thread: 0.23 s for the 400 objects of a 20,000-file add, 0.16 s on
        two, medians of 3)."""
        try:
            cores = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):  # not Linux
            cores = os.cpu_count() or 1
        pb = _git().PackBuilder(self.repo)
        pb.set_threads(cores)
        return pb

    def _write_pack(self, oids: list[pygit2.Oid], unreadable: set[str] | None = None) -> list[Path]:
        """Write ``oids`` as one durable pack in ``objects/pack`` (the .idx last: it publishes).
        With ``unreadable``, an object that cannot be read is left out and added there."""
        dest = Path(self.path, "objects", "pack")
        dest.mkdir(parents=True, exist_ok=True)
        pb = self._pack_builder()
        for oid in oids:
            try:
                pb.add(_oid(oid))
            except _git().GitError:
                if unreadable is None:
                    raise
                unreadable.add(str(oid))
        import tempfile

        with tempfile.TemporaryDirectory(dir=dest, prefix=".tmp-pack-") as tmp:
            try:
                pb.write(tmp)
            except _git().GitError:  # an object whose header reads but whose content does not
                if unreadable is None:
                    raise
                # found by reading each (only now: it doubles the reads)
                unreadable.update(str(oid) for oid in oids if not self.readable(str(oid)))
                pb = self._pack_builder()
                for oid in oids:
                    if str(oid) not in unreadable:
                        pb.add(_oid(oid))
                pb.write(tmp)
            return self._publish_pack(list(Path(tmp).iterdir()))

    def _publish_pack(self, files: list[Path]) -> list[Path]:
        """Move a written pack and its index into the pack folder, durable, the .idx last:
        libgit2 reads a pack once its index is there."""
        dest = self.pack_folder
        files = sorted(files, key=lambda f: f.suffix != ".pack")
        for f in files:
            _fsync_path(str(f))
        for f in files:
            os.replace(f, dest / f.name)
        _fsync_path(str(dest))
        return [dest / f.name for f in files]

    def _replace_with_pack(self, idxs: list[Path], loose: list[Path]) -> int:
        """Write the objects of packs ``idxs`` and of loose files ``loose`` as one durable
        pack, then remove what it replaces; returns how many objects it holds.

        The new pack is durable before anything goes, so every object stays readable
        throughout (a reader that misses re-reads the packs); a crash leaves duplicates,
        which the next merge drops. Old packs go ``.idx`` first: a lone ``.pack`` is
        ignored by everyone, a lone ``.idx`` would not be. An object that cannot be read is
        not copied, and its file (or pack) is kept: nothing damaged is made any worse.
        """
        oids: set[str] = {f.parent.name + f.name for f in loose}
        held = {idx: set(pack_index_oids(idx)) for idx in idxs}
        for inside in held.values():
            oids.update(inside)
        unreadable: set[str] = set()  # damaged: left where they are, for fsck to name
        new = {f.name for f in self._write_pack(sorted(oids), unreadable)}
        doomed = [f for idx in idxs for f in (idx, idx.with_suffix(".pack"))
                  if f.name not in new and not held[idx] & unreadable]
        loose = [f for f in loose if f.parent.name + f.name not in unreadable]
        for f in doomed + loose:
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
        for folder in {f.parent for f in loose}:
            with contextlib.suppress(OSError):  # still holds other objects: keep it
                folder.rmdir()
        return len(oids) - len(unreadable)

    def drop_temps(self, older_than: float) -> int:
        """Remove what an interrupted write left in the pack folder, last changed before
        ``older_than`` (a time): a day back, no live writer still uses one. Returns how many
        went. That is ``.tmp-*`` files and folders of a killed fetch, repack, repair or new
        folders' pack, and a ``pack-*.pack`` without its ``.idx`` (a publish killed between
        its two renames, a merge between its two unlinks). libgit2 reads none of them, and
        gc, the one caller, has first checked that every object it keeps reads without them."""
        import shutil

        gone = 0
        lone = [p for p in self.pack_folder.glob("pack-*.pack") if not p.with_suffix(".idx").exists()]
        for p in [*self.pack_folder.glob(".tmp-*"), *lone]:
            try:
                if p.lstat().st_mtime >= older_than:
                    continue
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
            except FileNotFoundError:
                continue
            gone += 1
        return gone

    def lone_packs(self) -> list[Path]:
        """Packs without their ``.idx``: libgit2 reads none of their objects. A merge killed
        between its unlinks leaves one (its objects are in the new pack too); an index lost
        leaves one whose objects nothing else holds."""
        return sorted(p for p in self.pack_folder.glob("pack-*.pack") if not p.with_suffix(".idx").exists())

    def reindex_lone_packs(self) -> tuple[list[str], list[str]]:
        """Write the lost index of every lone pack from the pack itself (``git index-pack``);
        returns (packs indexed, "PACK: why" for each that cannot be: a damaged one is left
        as it is). At worst an object is then in two packs, which the next merge drops."""
        from .fsutil import atomic_write
        from .git_pack import index_pack

        done, failed = [], []
        for pack in self.lone_packs():
            try:
                idx = index_pack(pack.read_bytes())
            except (OSError, FormatError) as e:
                failed.append(f"{pack.name}: {e}")
                continue
            atomic_write(pack.with_suffix(".idx"), idx)  # durable, then named: as a publish
            done.append(pack.name)
        return done, failed

    def repack(self) -> int:
        """Every object, loose or packed, into one pack with deltas; returns how many.

        Nothing is pruned (``ds gc`` runs this).
        """
        objects = Path(self.path, "objects")
        idxs = _whole_packs(objects / "pack")
        loose = [f for f in objects.glob("[0-9a-f][0-9a-f]/*") if len(f.name) == 38]
        if len(idxs) <= 1 and not loose:
            return 0
        return self._replace_with_pack(idxs, loose)

    def _merge_small_packs(self) -> None:
        """Past ``PACK_MERGE_AT`` packs, rewrite all but the largest as one pack with deltas.
        Only an optimisation: a failure leaves every object where it was, and the next
        write tries again."""
        try:
            idxs = sorted(_whole_packs(Path(self.path, "objects", "pack")),
                          key=lambda f: f.with_suffix(".pack").stat().st_size)
            if len(idxs) > PACK_MERGE_AT:
                self._replace_with_pack(idxs[:-1], [])
        except (OSError, FormatError):
            pass
        except Exception as e:  # (libgit2's own errors, checked only once libgit2 is loaded)
            if _pygit2 is None or not isinstance(e, _pygit2.GitError):
                raise

    # -- folders -----------------------------------------------------------------------
    @property
    def empty_tree(self) -> str:
        return self._put(TREE_KIND, b"").hex()

    def read_folder(self, tree_oid: str, where: str = "") -> Folder:
        tree_oid = str(tree_oid)
        cached = self._folders.get(tree_oid)
        if cached is not None:
            return cached
        label = where or "/"
        folder = Folder()
        buckets: list[str] = []
        patch: dict[str, str] = {}
        for name, mode, item_id in self._tree_items(tree_oid, label):
            if mode == TREE:
                dname = check_name(decode_dir(name, label), label)
                if dname in folder.dirs:
                    raise FormatError(f"folder {label!r}: subfolder {dname!r} is listed twice")
                folder.dirs[dname] = item_id
            elif mode == BLOB and _BUCKET.fullmatch(name):
                buckets.append(item_id)
            elif mode == BLOB and name in (BASE, ADDED, REMOVED):
                patch[name] = item_id
            elif mode == BLOB and name == META and not where:
                folder.record = item_id
            else:
                raise FormatError(f"folder {label!r}: unexpected tree entry {name!r}")
        if patch:
            if buckets or BASE not in patch or len(patch) == 1:
                raise FormatError(f"folder {label!r}: a manifest patch needs its base and nothing "
                                  "else beside it")
            base_rows = {e.name: e for e in self._manifest(patch[BASE], label)}
            folder.files = self._patched(base_rows, patch, label)
            folder.base = (patch[BASE], base_rows)
        else:
            for oid in buckets:
                for e in self._manifest(oid, label):
                    if e.name in folder.files:
                        raise FormatError(f"folder {label!r}: file {e.name!r} is listed twice")
                    folder.files[e.name] = e
            if len(buckets) == 1:
                folder.base = (buckets[0], folder.files)
        clash = folder.files.keys() & folder.dirs.keys()
        if clash:
            raise FormatError(f"folder {label!r}: {sorted(clash)[0]!r} is both a file and a folder")
        # a bounded cache (oldest out first): a walk of a million files must not keep them all
        self._folders[tree_oid] = folder
        self._folder_rows += len(folder.files) + len(folder.dirs)
        while self._folder_rows > _CACHED_ROWS and len(self._folders) > 1:
            old = self._folders.pop(next(iter(self._folders)))
            self._folder_rows -= len(old.files) + len(old.dirs)
        return folder

    def _tree_items(self, tree_oid: str, label: str) -> list[tuple[str, int, str]]:
        """(name, mode, id) of each entry of folder ``label``'s tree."""
        try:
            kind, data = self._reader.read(tree_oid)
        except Unsure:  # libgit2 answers, and names what is wrong
            pass
        else:
            if kind != TREE_KIND:
                raise FormatError(f"folder {label!r}: {tree_oid} is not a tree")
            with contextlib.suppress(Unsure):
                return tree_entries(data)
        tree = self._get(tree_oid, f"the tree of folder {label!r}")
        if not isinstance(tree, _git().Tree):
            raise FormatError(f"folder {label!r}: {tree_oid} is not a tree")
        return [(item.name, item.filemode, str(item.id)) for item in tree]

    def _data(self, oid: str, what: str) -> bytes:
        """The content of blob ``oid``; a missing or damaged one is one clear error naming it."""
        try:
            return self._reader.read(oid)[1]
        except Unsure:
            return self._get(oid, what).data

    def _get(self, oid: str, what: str) -> pygit2.Object:
        """An object of the database; a missing or damaged one is one clear error naming it."""
        try:
            return self.repo[oid]
        except (KeyError, ValueError):
            problem: DsError = FormatError(f"{what} ({oid}) is missing from the store; run `ds fsck`")
            why = "it is missing from the store"
        except _git().GitError as e:
            problem = FormatError(f"{what} ({oid}) is damaged ({e}); run `ds fsck`")
            why = str(e)
        raise _unreadable(problem, oid, why)

    def _manifest(self, oid: str, label: str) -> list[FileEntry]:
        data = self._data(oid, f"the manifest of folder {label!r}")
        return decode_manifest(data, self.hash_size, f"manifest of {label!r}")

    def _patched(self, base_rows: dict[str, FileEntry], patch: dict[str, str],
                 label: str) -> dict[str, FileEntry]:
        """A folder stored as a base manifest plus its added/changed rows and removed names."""
        files = dict(base_rows)
        if REMOVED in patch:
            try:
                names = self._data(patch[REMOVED], f"the removal list of folder {label!r}") \
                    .decode("utf-8").split("\0")
            except UnicodeDecodeError:
                raise FormatError(f"folder {label!r}: removal list is not UTF-8") from None
            if names != sorted(set(names)):
                raise FormatError(f"folder {label!r}: removal list is not sorted and unique")
            for n in names:
                if files.pop(n, None) is None:
                    raise FormatError(f"folder {label!r}: removal of {n!r}, which its base lacks")
        if ADDED in patch:
            for e in self._manifest(patch[ADDED], label):
                files[e.name] = e
        return files

    def write_folder(self, files: list[FileEntry], dirs: dict[str, str],
                     record: str | None = None,
                     base: tuple[str, dict[str, FileEntry]] | None = None) -> str | None:
        """Write one folder's tree; None when it holds nothing (empty folders vanish).

        With ``base`` (the whole manifest an earlier version of this folder used) and a
        small change, only the difference is stored: the tree names the base blob again
        (no new bytes) beside a manifest of added or changed rows and a list of removed
        names. A folder changed in one file out of hundreds then costs a few hundred
        bytes per version instead of its whole manifest.
        """
        if not files and not dirs and record is None:
            return None
        entries = [(encode_dir(name), _raw(oid), True) for name, oid in dirs.items()]
        if files and base is not None and len(files) <= BUCKET_MAX:
            base_oid, base_rows = base
            names = {e.name for e in files}
            added = [e for e in files if base_rows.get(e.name) != e]
            removed = sorted(n for n in base_rows if n not in names)
            if not added and not removed:
                entries.append((MANIFEST, _raw(base_oid), False))
                files = []
            elif len(added) + len(removed) <= len(base_rows) // PATCH_SHARE:
                entries.append((BASE, _raw(base_oid), False))
                if added:
                    blob = self._put(BLOB_KIND, encode_manifest(added, self.hash_size))
                    entries.append((ADDED, blob, False))
                if removed:
                    entries.append((REMOVED, self._put(BLOB_KIND, "\0".join(removed).encode()), False))
                files = []
        if files:
            nb = 1
            while len(files) > nb * BUCKET_MAX:
                nb *= 2
            if nb == 1:
                buckets = [files]
            else:
                buckets = [[] for _ in range(nb)]
                for e in files:
                    buckets[xxhash.xxh32_intdigest(e.name.encode()) % nb].append(e)
            for i, bucket in enumerate(buckets):
                if bucket:
                    blob = self._put(BLOB_KIND, encode_manifest(bucket, self.hash_size))
                    entries.append((MANIFEST if nb == 1 else f"{MANIFEST}.{i}", blob, False))
        if record is not None:
            entries.append((META, _raw(record), False))
        return self._put(TREE_KIND, tree_body(entries)).hex()

    def _put(self, kind: int, data: bytes) -> bytes:
        """Write a new object (into the batch of ``new_objects``, if one is open); its raw id."""
        batch = self._batch
        if batch is None:
            return self._write_loose(kind, data)
        try:
            return batch.add(kind, data, self.pack_folder)
        except OSError as e:
            name_path(e, self.pack_folder)
            raise

    def _write_loose(self, kind: int, data: bytes) -> bytes:
        """Write an object loose, as libgit2 writes one (durable with the next ``make_durable``):
        zlib of its header and content, read-only, renamed to its id; not again when the
        database holds it."""
        body = b"%s %d\0" % (KIND_NAMES[kind], len(data)) + data
        raw = hashlib.sha1(body).digest()  # the id of the very bytes stored
        hex_id = raw.hex()
        path = self.loose_path(hex_id)
        if not self._reader.has(raw):
            path.parent.mkdir(exist_ok=True)
            tmp = path.with_name(f"{LOOSE_TEMP}{hex_id[2:]}-{os.getpid()}-{threading.get_ident()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444)
            try:
                try:
                    os.write(fd, zlib.compress(body, 1))
                finally:
                    os.close(fd)
                os.replace(tmp, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
        self._new(hex_id)
        return raw

    @contextlib.contextmanager
    def new_objects(self) -> Iterator[None]:
        """Objects written inside are new together (the folders of one stage or version).
        Past ``PACK_NEW_MIN`` of them they stream into one new pack, read back through libgit2
        and published (durable) as this ends; fewer are written loose then, made durable by
        the next ``make_durable``. On an exception inside, nothing is written."""
        if self._batch is not None:  # inside another: that one writes
            yield
            return
        self._batch = batch = _Batch()
        try:
            yield
        except BaseException:
            self._batch = None
            batch.discard()
            raise
        self._batch = None
        try:
            if batch.pack is None:
                for kind, data in batch.held.values():
                    self._write_loose(kind, data)
                return
            self._publish_pack(batch.finish(self._read_back))
        except OSError as e:
            name_path(e, self.pack_folder)
            raise
        finally:
            batch.discard()
        self._merge_small_packs()

    @staticmethod
    def _read_back(objects: Path, kinds: dict[bytes, int]) -> None:
        """Read every object of the pack in ``objects/pack`` back through its index, each
        checked against its id (``git_read``): a fault in ``git_pack`` fails the write
        instead of publishing a bad pack."""
        reader = ObjectReader(objects, objects=objects)
        try:
            for raw, kind in kinds.items():
                try:
                    got, _data = reader.read(raw.hex())
                except Unsure as e:
                    raise FormatError(f"a new metadata pack does not read back ({raw.hex()}: {e}); "
                                      "nothing was written") from None
                if got != kind:
                    raise FormatError(f"a new metadata pack does not read back ({raw.hex()} is a "
                                      f"{got}, not a {kind}); nothing was written")
        finally:
            reader.close()

    def walk(self, tree_oid: str, prefix: str = "") -> Iterator[tuple[str, FileEntry]]:
        """Every (path, entry) under a tree, folders in name order."""
        folder = self.read_folder(tree_oid, prefix)
        for name in sorted(folder.files):
            yield join(prefix, name), folder.files[name]
        for name in sorted(folder.dirs):
            yield from self.walk(folder.dirs[name], join(prefix, name))

    def walk_folders(self, tree_oid: str, folders: Iterable[str]) -> Iterator[tuple[str, FileEntry]]:
        """Every (path, entry) directly inside each of ``folders`` (in name order), not below
        them; a folder the tree does not have yields nothing."""
        for where in sorted(folders):
            found = self.lookup(tree_oid, where)
            if isinstance(found, str):
                files = self.read_folder(found, where).files
                for name in sorted(files):
                    yield join(where, name), files[name]

    def folders_differing(self, a: str | None, b: str | None, where: str = "") -> Iterator[str]:
        """The folders whose own files (not those below them) differ between trees ``a`` and
        ``b`` (None: no such folder); equal subtrees are not read."""
        if a == b:
            return
        fa = self.read_folder(a, where) if a is not None else Folder()
        fb = self.read_folder(b, where) if b is not None else Folder()
        if fa.files != fb.files:
            yield where
        for name in sorted(fa.dirs.keys() | fb.dirs.keys()):
            yield from self.folders_differing(fa.dirs.get(name), fb.dirs.get(name), join(where, name))

    def lookup(self, tree_oid: str, path: str) -> FileEntry | str | None:
        """The entry at ``path``: a FileEntry, a subtree id, or None."""
        if not path:
            return str(tree_oid)
        parts = path.split("/")
        oid = tree_oid
        where = ""
        for part in parts[:-1]:
            folder = self.read_folder(oid, where)
            if part not in folder.dirs:
                return None
            oid = folder.dirs[part]
            where = join(where, part)
        folder = self.read_folder(oid, where)
        last = parts[-1]
        return folder.files.get(last) or folder.dirs.get(last)

    def read_record(self, tree_oid: str) -> dict:
        """The dataset record a finalized version's root keeps (``.ds.meta``); {} if none."""
        folder = self.read_folder(tree_oid)
        if folder.record is None:
            return {}
        try:
            import json

            return json.loads(self._data(folder.record, f"the dataset record of tree {tree_oid}"))
        except ValueError as e:
            raise FormatError(f"dataset record of tree {tree_oid} is unreadable ({e})") from None

    # -- commits -----------------------------------------------------------------------
    def commit(self, tree: str, parents: list[str], message: str,
               author: tuple[str, str] = ("objstore", "objstore@localhost")) -> str:
        sig = _git().Signature(author[0], author[1])
        oid = self.repo.create_commit(
            None, sig, sig, message, _oid(tree), [_git().Oid(hex=p) for p in parents]
        )
        self._new(oid)
        return str(oid)

    def recommit(self, old: str, tree: str, message: str, committer: tuple[str, str]) -> str:
        """git's amend: a new version of ``tree`` with ``old``'s parents and author (name,
        email and time), committed now by ``committer``."""
        c = self._commit(old)
        git = _git()
        oid = self.repo.create_commit(None, git.Signature(c.author, c.email, c.author_time, c.offset),
                                      git.Signature(committer[0], committer[1]), message,
                                      _oid(tree), [git.Oid(hex=p) for p in c.parents])
        self._new(oid)
        return str(oid)

    def commit_info(self, commit_id: str) -> CommitInfo:
        """``created`` is the author's time, as git's log shows it (an amend keeps it)."""
        c = self._commit(commit_id)
        created = datetime.fromtimestamp(c.author_time, UTC).isoformat().replace("+00:00", "Z")
        return CommitInfo(
            id=c.id,
            message=c.message.rstrip("\n"),
            parents=c.parents,
            created=created,
            author=c.author,
            tree=c.tree,
            email=c.email,
        )

    def has_tree(self, tree_id: str) -> bool:
        """True if the database holds a folder (tree) with this id."""
        with contextlib.suppress(Unsure):
            kind, data = self._reader.read(tree_id)
            if kind == TREE_KIND:
                tree_entries(data)  # (one libgit2 would not parse is for libgit2 to judge)
            return kind == TREE_KIND
        try:
            return self.repo.get(tree_id) is not None and self.repo[tree_id].type == _git().GIT_OBJECT_TREE
        except (KeyError, ValueError):
            return False

    def tree_of(self, commit_id: str) -> str:
        return self._commit(commit_id).tree

    def _commit(self, commit_id: str) -> Commit:
        try:
            kind, data = self._reader.read(commit_id)
            if kind == COMMIT_KIND:
                return Commit(commit_id.lower(), data)
        except Unsure:  # libgit2 answers, and names what is wrong
            pass
        try:
            obj = self.repo[commit_id]
        except (KeyError, ValueError):
            problem: DsError = RevisionNotFound(f"version {commit_id} is missing from the store; "
                                                "run `ds fsck`")
            raise _unreadable(problem, commit_id, "it is missing from the store") from None
        except _git().GitError as e:
            problem = FormatError(f"version {commit_id} is damaged in the store ({e}); run `ds fsck`")
            raise _unreadable(problem, commit_id, str(e)) from None
        if not isinstance(obj, _git().Commit):
            raise RevisionNotFound(f"{commit_id} is not a version")
        return _parsed(obj)

    def ancestors(self, commit_id: str, *more: str, hide: Iterable[str] = ()) -> Iterator[str]:
        """Commit ids reachable from ``commit_id`` (and ``more``) but not from ``hide``, newest
        first (by time, then topology), each once."""
        hide = list(hide)
        done = 0
        if not more and not hide:  # a line of history is its own order: read here (git_read)
            try:
                for cid in self._line(commit_id):
                    yield cid
                    done += 1
                return
            except Unsure:  # a merge, or something libgit2 must read: it walks, from the start
                pass
        try:
            walker = self.repo.walk(
                _git().Oid(hex=commit_id),
                _git().enums.SortMode.TOPOLOGICAL | _git().enums.SortMode.TIME,
            )
            for other in more:
                walker.push(_git().Oid(hex=other))
            for other in hide:
                walker.hide(_git().Oid(hex=other))
            for n, c in enumerate(walker):
                if n >= done:
                    yield str(c.id)
        except _git().GitError as e:
            raise FormatError(f"the history of {commit_id[:12]} is damaged ({e}); run `ds fsck`") from None

    def _line(self, commit_id: str) -> Iterator[str]:
        """``commit_id`` and its ancestors while each has at most one parent, read without
        libgit2; Unsure at a merge (its parents' order is libgit2's walk to make) or at
        anything this reader does not read."""
        cid: str | None = commit_id
        while cid is not None:
            kind, data = self._reader.read(cid)
            if kind != COMMIT_KIND:
                raise Unsure(f"{cid} is not a commit")
            parents = Commit(cid, data).parents
            if len(parents) > 1:
                raise Unsure("a merge")
            yield cid.lower()
            cid = parents[0] if parents else None

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        if ancestor == descendant:
            return True
        return self.repo.descendant_of(_git().Oid(hex=descendant), _git().Oid(hex=ancestor))

    def new_versions(self, tips: Iterable[str], known: Iterable[str] = (),
                     by_time: bool = False) -> Iterator[str]:
        """Versions reachable from ``tips`` but not from ``known`` (absent ids are skipped),
        parents after children; ``by_time``: newest first among unrelated ones."""
        sort = _git().enums.SortMode.TOPOLOGICAL | (_git().enums.SortMode.TIME if by_time else 0)
        try:
            walker = self.repo.walk(None, sort)
            pushed = False
            for tip in tips:
                if self._is_commit(tip):
                    walker.push(_git().Oid(hex=tip))
                    pushed = True
            if not pushed:
                return
            for base in known:
                if self._is_commit(base):
                    walker.hide(_git().Oid(hex=base))
            for c in walker:
                yield str(c.id)
        except _git().GitError as e:
            raise FormatError(f"the history is damaged ({e}); run `ds fsck`") from None

    def merge_base(self, a: str, b: str) -> str | None:
        """The best common ancestor of two versions, or None when they share no history."""
        base = self.repo.merge_base(_git().Oid(hex=a), _git().Oid(hex=b))
        return None if base is None else str(base)

    def ahead_behind(self, local: str | None, upstream: str) -> tuple[int, int]:
        """(versions only ``local`` has, versions only ``upstream`` has)."""
        if local is None:
            return 0, sum(1 for _ in self.new_versions([upstream]))
        return self.repo.ahead_behind(_git().Oid(hex=local), _git().Oid(hex=upstream))

    # -- objects -----------------------------------------------------------------------
    def object_type(self, object_id: str) -> str | None:
        """'commit', 'tree', 'blob' or 'tag' for an object the store holds; None if absent."""
        try:
            obj = self.repo.get(object_id)
        except (ValueError, _git().GitError):
            return None
        return None if obj is None else obj.type_str

    def create_blob(self, data: bytes) -> str:
        """Store ``data`` as an object (durable with the next ``make_durable``)."""
        return self._write_loose(BLOB_KIND, data).hex()

    def reachable(self, tops: Iterable[str], seen: set[str], new: set[str] | None = None,
                  missing: set[str] | None = None) -> None:
        """Add to ``seen`` (and ``new``) every object reachable from ``tops`` (versions or
        folders) not already seen: what a copy of those versions needs. With ``missing``,
        an object that cannot be read here is added to it (and to ``seen``), not an error."""
        stack = [str(t) for t in tops]
        while stack:
            oid = stack.pop()
            if oid in seen:
                continue
            seen.add(oid)
            if new is not None:
                new.add(oid)
            try:
                obj = self._get(oid, "an object")
            except DsError:
                if missing is None:
                    raise
                missing.add(oid)
                continue
            if isinstance(obj, _git().Commit):
                stack.append(str(obj.tree_id))
                stack.extend(str(p) for p in obj.parent_ids)
            elif isinstance(obj, _git().Tree):
                stack.extend(str(item.id) for item in obj)

    @property
    def pack_folder(self) -> Path:
        """Where the metadata packs are (a fetch places verified packs there, .idx last)."""
        return Path(self.path, "objects", "pack")

    def close(self) -> None:
        """Release the handles on the database's files (its packs above all)."""
        self._reader.close()
        if self._repo is not None:
            self._repo.free()

    def readable(self, oid: str) -> bool:
        """Object ``oid`` is here and reads whole (its content checked against its id)."""
        try:
            self.repo.odb.read(_oid(oid))
        except (KeyError, ValueError, _git().GitError):
            return False
        return True

    def loose_path(self, oid: str) -> Path:
        """Where object ``oid`` is (or would be) kept as a loose file."""
        return Path(self.path, "objects", oid[:2], oid[2:])

    def pack_names(self) -> set[str]:
        """File names of the metadata packs held here (``pack-<sha>.pack`` / ``.idx``)."""
        return {p.name for p in self.pack_folder.glob("pack-*")}

    def pack_objects(self, stem: str) -> list[str] | None:
        """The objects metadata pack ``stem`` holds, or None when it is not here."""
        idx = self.pack_folder / f"{stem}.idx"
        return pack_index_oids(idx) if idx.exists() else None

    def write_pack_of(self, objects: Iterable[str], folder: Path) -> list[Path]:
        """Write these objects as one git pack (``.pack`` and ``.idx``) in ``folder``, a
        scratch folder of the caller's: a copy to send elsewhere, not part of this store."""
        pb = self._pack_builder()
        for oid in sorted(str(o) for o in objects):
            pb.add(_git().Oid(hex=oid))
        pb.write(str(folder))
        return sorted(Path(folder).iterdir(), key=lambda f: f.suffix != ".pack")

    # -- refs --------------------------------------------------------------------------
    def resolve(self, rev: str) -> str:
        """A commit id for REV: id or unique prefix, tag, branch, HEAD, HEAD~N, or a finalized
        dataset's id (``refs/datasets/ID``, so the CLI reaches what the SDK made)."""
        rev = rev.strip()
        if not rev:
            raise RevisionNotFound("empty revision; give a version id, tag, branch or HEAD")
        if m := _AT.fullmatch(rev):  # NAME@{N} (a deleted ref's too), @{-N}: from the reflogs
            return self._from_reflog(m[1], int(m[2]))
        if (m := _AT.match(rev)) and _WALK.fullmatch(rev[m.end():]):  # NAME@{N}~2^: read here, walked
            return self.resolve(self._from_reflog(m[1], int(m[2])) + rev[m.end():])  # (libgit2 wraps N)
        with contextlib.suppress(Unsure, OSError, ValueError):  # (ValueError: a huge N)
            return self._resolve_plain(rev)
        if rev in self.repo.branches.local:  # a branch name wins over a tag of the same name
            return str(self.repo.branches.local[rev].peel(_git().Commit).id)
        if len(rev) == 32 and f"refs/datasets/{rev.lower()}" in self.repo.references:
            return str(self.repo.references[f"refs/datasets/{rev.lower()}"].peel(_git().Commit).id)
        try:
            obj = self.repo.revparse_single(rev)
            commit = obj.peel(_git().Commit)
        except KeyError:
            hint = " (the store has no commit yet)" if self.head_commit() is None else ""
            raise RevisionNotFound(
                f"no version matches {rev!r}{hint}; see `ds log` and `ds tag`"
            ) from None
        except (ValueError, _git().GitError, _git().InvalidSpecError) as e:
            msg = str(e)
            if len(rev) < 4 and all(c in "0123456789abcdefABCDEF" for c in rev):
                # libgit2 takes no id prefix under 4 characters and calls it "ambiguous"
                raise RevisionNotFound(f"{rev!r} is too short for a version id; give at least 4 "
                                       "characters of it (see `ds log --oneline`)") from None
            if "ambiguous" in msg:
                raise RevisionNotFound(f"{rev!r} matches several versions; give more characters") from None
            raise RevisionNotFound(f"cannot resolve {rev!r} ({msg}); see `ds log`") from None
        return str(commit.id)

    def _resolve_plain(self, rev: str) -> str:
        """``resolve`` of the forms most commands are given, read without libgit2: a branch,
        HEAD or a whole id, then ``~N`` and ``^N`` steps. Unsure for any other form, or
        anything this reader does not read: libgit2's resolution then decides."""
        m = _PLAIN_REV.fullmatch(rev)
        if m is None:
            raise Unsure(rev)
        base, steps = m[1], m[2]
        branch = f"refs/heads/{base}"
        tip = self._reader.ref(branch) if plain_ref_name(branch) else None
        if tip is not None:  # a branch wins over a tag of the same name (below, as libgit2)
            if steps:  # NAME~N: libgit2's name lookup takes a tag NAME first
                raise Unsure(rev)
        elif base == "HEAD":
            tip = self._reader_head()
        elif _HEX_ID.fullmatch(base):
            tip = base
        else:
            tip = self._plain_tag(base)
        commit = self._read_commit(tip)
        for step in re.findall(r"[~^][0-9]*", steps):
            n = int(step[1:] or 1)
            if step[0] == "~":
                for _ in range(n):
                    if not commit.parents:
                        raise Unsure(rev)
                    commit = self._read_commit(commit.parents[0])
            elif n:
                if n > len(commit.parents):
                    raise Unsure(rev)
                commit = self._read_commit(commit.parents[n - 1])
        return commit.id

    def _plain_tag(self, name: str) -> str:
        """What tag ``name`` holds, where libgit2's lookup of a name would find that tag
        first (no file ``name`` in the database's folder, no ``refs/NAME``; not a dataset
        id's length, which ``resolve`` looks up among datasets first); else Unsure."""
        tag = f"refs/tags/{name}"
        if len(name) == 32 or not plain_ref_name(tag) or os.path.lexists(self.path / name) or \
                self._reader.ref(f"refs/{name}") is not None:
            raise Unsure(name)
        tip = self._reader.ref(tag)
        if tip is None:
            raise Unsure(name)
        return tip

    def _read_commit(self, commit_id: str) -> Commit:
        """Commit ``commit_id`` through ``git_read`` alone; Unsure if it is none it reads."""
        kind, data = self._reader.read(commit_id)
        if kind != COMMIT_KIND:
            raise Unsure(f"{commit_id} is not a commit")
        return Commit(commit_id.lower(), data)

    def _reader_head(self) -> str:
        """HEAD's id through ``git_read`` alone; Unsure on an unborn branch or anything odd."""
        branch, detached = self._reader.head()
        tip = detached or (self._reader.ref(branch) if branch else None)
        if tip is None:
            raise Unsure("HEAD names no version")
        return tip

    def moves(self, name: str) -> list | None:
        """The reflog of ``name`` (HEAD, a branch, a tag, a remote's branch, a full ref name;
        a deleted ref's too), newest first; None if it has none."""
        path = log_path(Path(self.path), name)
        return None if path is None else read_reflog(path)[::-1]

    def previous_branch(self, n: int = 1) -> str | None:
        """git's ``@{-N}``: the branch (or id) checked out N switches ago."""
        return previous_branch(Path(self.path), n)

    def _from_reflog(self, name: str, n: int) -> str:
        """git's ``NAME@{N}`` (N moves back; the ref may be deleted since) and ``@{-N}``."""
        if n < 0:
            previous = self.previous_branch(-n)
            if previous is None:
                raise RevisionNotFound(f"@{{{n}}}: HEAD's reflog names no branch {-n} switch(es) back; "
                                       "see `ds reflog`")
            try:
                return self.resolve(previous)
            except RevisionNotFound:
                raise RevisionNotFound(f"@{{{n}}} is {previous!r}, which names no version now; see "
                                       "`ds reflog`") from None
        name = name or (self.head_branch() or "HEAD")
        moves = self.moves(name) or []
        if n >= len(moves):
            raise RevisionNotFound(f"{name}@{{{n}}}: the reflog of {name!r} has {len(moves)} entr(ies); "
                                   f"see `ds reflog {name}`")
        if moves[n].new == ZERO:
            raise RevisionNotFound(f"{name}@{{{n}}} is where {name!r} was deleted; {name}@{{{n + 1}}} is "
                                   "the version it was at")
        return moves[n].new

    def head_commit(self) -> str | None:
        """HEAD's version; None only on a truly new branch. A damaged ref is an error,
        never an empty branch (a commit would start a new root, gc would free it all)."""
        try:
            branch, detached = self._reader.head()
            tip = detached or (self._reader.ref(branch) if branch else None)
        except (Unsure, OSError):
            try:
                return str(self.repo.head.target)
            except (_git().GitError, KeyError):
                pass
        else:
            if tip is not None:
                return tip
            # (no file and no packed line for HEAD's branch: libgit2 finds none either)
        head = self.head_damage()
        if head is not None:
            raise FormatError(head.message())
        return None

    # -- damage ------------------------------------------------------------------------
    def _is_commit(self, hex_id: str, damaged: bool = False) -> bool:
        """``hex_id`` names a commit here; an object that cannot be read counts as one only
        with ``damaged`` (a root to mark, so that its damage is reported, never skipped)."""
        try:
            return self.repo[hex_id].type == _git().enums.ObjectType.COMMIT
        except (KeyError, ValueError):
            return False
        except _git().GitError:
            return damaged

    def _reflog_of(self, name: str) -> list:
        return read_reflog(self.path / "logs" / name)

    def _damage(self, name: str, reason: str, points_at: str | None = None) -> RefDamage:
        return RefDamage(name, reason, last_good(self._reflog_of(name), self._is_commit), points_at)

    def damaged_refs(self, only: set[str] | None = None) -> list[RefDamage]:
        """Every ref that is unreadable, points at no version, or vanished from under its
        reflog (read from the files: libgit2 hides such refs), HEAD and its branch included;
        ``only``: just these ref names (HEAD's check costs a few file reads, not a scan)."""
        if only is None:
            loose = dict(loose_refs(self.path))
            logged = [name for name, _path in reflog_files(self.path)]
        else:
            loose = {n: raw for n in only if (raw := self._loose(n)) is not None}
            logged = [n for n in only if (self.path / "logs" / n).is_file()]
        packed = packed_refs(self.path)
        found: dict[str, RefDamage] = {}
        for name, raw in loose.items():
            if raw.startswith("ref: "):
                continue  # symbolic (libgit2 checks its target when it is used)
            if not is_hex40(raw):
                found[name] = self._damage(name, "its file is empty" if not raw else "its file is not an id")
            elif not self._is_commit(raw):
                found[name] = self._damage(name, f"it points at {raw[:12]}, which is not a version here", raw)
        for name, hex_id in packed.items():
            if (only is None or name in only) and name not in loose and not self._is_commit(hex_id):
                found[name] = self._damage(name, f"it points at {hex_id[:12]}, which is not a version here",
                                           hex_id)
        for name in logged:
            if name == "HEAD" or name in loose or name in packed or not valid_ref_name(name):
                continue  # (a log renamed aside, ``NAME~deleted-N``, is kept for gc: no ref to mend)
            entries = self._reflog_of(name)
            if entries and entries[-1].new != ZERO:
                found[name] = self._damage(name, "its file is missing")
        head = self._head_text()
        branch = head[5:].strip() if head and head.startswith("ref: ") else None
        if branch and branch not in loose and branch not in packed and branch not in found and (
                only is None or branch in only):
            head_log = self._reflog_of("HEAD")  # the branch's own reflog went with its file
            if head_log and head_log[-1].new != ZERO:
                found[branch] = RefDamage(branch, "its file and its reflog are missing",
                                          last_good(head_log, self._is_commit))
        if head is None or not (head.startswith("ref: refs/") or is_hex40(head)):
            found["HEAD"] = self._damage("HEAD", "HEAD is unreadable")
        elif is_hex40(head) and not self._is_commit(head):
            found["HEAD"] = self._damage("HEAD", f"it points at {head[:12]}, which is not a version here",
                                         head)
        return sorted(found.values(), key=lambda d: d.name)

    def _loose(self, name: str) -> str | None:
        """A loose ref file's content (stripped), or None when there is none."""
        try:
            return (self.path / name).read_bytes().decode("ascii", errors="replace").strip()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    def finish_killed_move(self, lock: Path) -> bool:
        """Finish the move of a ref that a killed writer left half-done, where its lock file
        shows which move: libgit2 appends the reflog lines (the ref's, and HEAD's) before it
        renames ``<ref>.lock`` into place, so a kill between leaves the reflog one move
        ahead (a new branch's ref then does not exist at all). The move is made only when
        the lock holds one whole id, the ref's last reflog line moved it from where it
        stands to that id, and that id is a version here: the store is then as if the kill
        had come an instant later. Returns whether it was made (else the lock is for the
        caller to remove, the ref staying where it is)."""
        name = lock.relative_to(self.path).as_posix().removesuffix(".lock")
        if not (name.startswith("refs/") and plain_ref_name(name)):
            return False
        try:
            text = lock.read_bytes()
        except OSError:
            return False
        if len(text) != 41 or not text.endswith(b"\n") or not is_hex40(text[:40].decode("ascii", "replace")):
            return False
        new = text[:40].decode()
        entries = self._reflog_of(name)
        now = self._loose(name)
        if now is None:
            now = packed_refs(self.path).get(name, ZERO)
        if not entries or entries[-1].new != new or entries[-1].old != now or not self._is_commit(new):
            return False
        os.replace(lock, self.path / name)
        from .fsutil import fsync_dir

        fsync_dir(lock.parent)
        return True

    def head_damage(self) -> RefDamage | None:
        """The damage that keeps HEAD from naming a version, if any."""
        head = self._head_text()
        names = {"HEAD"}
        if head and head.startswith("ref: "):
            names.add(head[5:].strip())
        return next(iter(self.damaged_refs(only=names)), None)

    def _head_text(self) -> str | None:
        try:
            return (self.path / "HEAD").read_text("ascii", errors="replace").strip()
        except OSError:
            return None

    def restore_ref(self, damage: RefDamage) -> None:
        """Point a damaged ref back at its last good version (the reflog's)."""
        if damage.last_good is None:
            raise DsError(damage.message())
        oid = _git().Oid(hex=damage.last_good)
        self.make_durable()
        with _fsync_refs():
            if damage.name == "HEAD":  # written whole: libgit2 will not replace a HEAD it cannot parse
                atomic_write(self.path / "HEAD", self._restored_head(damage.last_good))
                return
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path / damage.name)  # libgit2 refuses to replace a file it cannot parse
            self.repo.create_reference_direct(damage.name, oid, True,
                                              message="fsck --repair: restored from the reflog")

    def reattach_head(self) -> None:
        """A HEAD written again detached at its reflog's last version goes back on the branch
        the last checkout moved to, if it is there (``_restored_head``)."""
        head = self._head_text() or ""
        if is_hex40(head):
            atomic_write(self.path / "HEAD", self._restored_head(head))
        elif head.startswith("ref: ") and not self.has_ref(head[5:].strip()) and self.branches():
            from .git_layout import a_branch  # no reflog to go by: a branch the restored refs hold

            atomic_write(self.path / "HEAD", f"ref: refs/heads/{a_branch(self.path)}\n".encode())

    def _restored_head(self, commit_id: str) -> bytes:
        """A restored HEAD: on the branch at ``commit_id`` the last checkout in HEAD's reflog
        moved to, else on another there (``main`` first), else detached there."""
        try:
            on = {n for n, c in self.refs().items() if n.startswith("refs/heads/") and c == commit_id}
        except FormatError:  # another ref is damaged too: detached is the safe answer
            on = set()
        moves = [e.message.rpartition(" to ")[2] for e in self._reflog_of("HEAD")
                 if e.message.startswith("checkout: moving from ")]
        if moves and is_hex40(moves[-1]) and not self.has_ref(f"refs/heads/{moves[-1]}"):
            return f"{commit_id}\n".encode()  # the last checkout detached HEAD: detached it stays
        last = f"refs/heads/{moves[-1]}" if moves else None
        main = f"refs/heads/{DEFAULT_BRANCH}"
        pick = last if last in on else min(on, key=lambda n: (n != main, n), default=None)
        return f"ref: {pick}\n".encode() if pick else f"{commit_id}\n".encode()

    def reflog_versions(self, since: float) -> set[str]:
        """Versions any reflog entry at or after ``since`` (seconds) moved from or to:
        what gc keeps so work left behind (a detached HEAD, a reset branch) can be got back."""
        out = set()
        for _name, path in reflog_files(self.path):
            for e in read_reflog(path):
                if e.time >= since:
                    out.update(i for i in (e.old, e.new) if i != ZERO and self._is_commit(i, damaged=True))
        return out

    def reaching_versions(self, bad: set[str], tips: Iterable[str]) -> set[str]:
        """The versions in ``tips``' histories that are one of ``bad`` or hold one in their
        history: one walk, parents before children (cost ∝ history, not refs × history).
        A history that cannot be read whole raises ``FormatError``."""
        out: set[str] = set()
        try:
            walker = self.repo.walk(None, _git().enums.SortMode.TOPOLOGICAL | _git().enums.SortMode.REVERSE)
            pushed = False
            for tip in set(tips):
                if tip != ZERO and self._is_commit(tip):
                    walker.push(_git().Oid(hex=tip))
                    pushed = True
            for c in walker if pushed else ():
                cid = str(c.id)
                if cid in bad or any(str(p) in out for p in c.parent_ids):
                    out.add(cid)
        except _git().GitError as e:
            raise FormatError(f"the history cannot be read whole ({e})") from None
        return out

    def _all_tips(self) -> list[str]:
        """Every id a ref, HEAD or a reflog entry names."""
        tips = [t for name in self.ref_names() if (t := self.ref_target(name))]
        with contextlib.suppress(FormatError):
            tips += [h] if (h := self.head_commit()) else []
        for _name, path in reflog_files(self.path):
            tips += [i for e in read_reflog(path) for i in (e.old, e.new)]
        return tips

    def reaching(self, bad: set[str]) -> list[str]:
        """The refs (and reflogs, as ``reflog of NAME``) that reach any of ``bad``."""
        try:
            reach = self.reaching_versions(bad, self._all_tips())
        except FormatError as e:
            return [f"refs this check could not follow ({e})"]
        out = [name for name in self.ref_names() if self.ref_target(name) in reach]
        try:
            head = self.head_commit()
        except FormatError:
            head = None  # a damaged HEAD: said apart
        if self.head_branch() is None and head in reach:
            out.append("HEAD (detached)")
        out += [f"reflog of {name}" for name, path in reflog_files(self.path)
                if any(e.old in reach or e.new in reach for e in read_reflog(path))]
        return out

    def forget_versions(self, bad: set[str]) -> list[str]:
        """Let go of a remote's view of ``bad``: remote-tracking refs that reach them, and the
        entries of remote-tracking reflogs that do (the newest entry of each stays, its old
        id zeroed, as an expiry does). A branch, tag, HEAD or their reflogs is never touched:
        work of the user's that reaches them is the user's to move. Returns what went."""
        try:
            reach = self.reaching_versions(bad, self._all_tips())
        except FormatError:
            return []  # nothing is dropped on a history this cannot follow
        gone = []
        for name in self.ref_names("refs/remotes/"):
            if (t := self.ref_target(name)) in reach and self.drop_ref(name):
                gone.append(f"{name} (named {t[:12]})")
        for name, path in list(reflog_files(self.path)):
            if not name.startswith("refs/remotes/"):
                continue
            lines = path.read_text("utf-8", errors="replace").splitlines(keepends=True)
            keep = [ln for ln in lines[:-1] if not any(i in reach for i in ln.split(" ", 2)[:2])]
            changed = len(lines) - 1 - len(keep)
            if lines:
                last = lines[-1]
                changed += last[:40] in reach
                keep.append(ZERO + last[40:] if last[:40] in reach else last)
            if changed:
                atomic_write(path, "".join(keep).encode())
                gone.append(f"{changed} entr{'y' if changed == 1 else 'ies'} of the reflog of {name}")
        return gone

    def expire_reflogs(self, before: float) -> int:
        """Drop reflog entries older than ``before`` (seconds), as git's ``reflog expire``:
        the versions they alone reached stop being kept by gc. Returns entries dropped."""
        dropped = 0
        for _name, path in list(reflog_files(self.path)):
            text = path.read_text("utf-8", errors="replace")
            new, n = expire(text, before)
            if n or new != text:
                atomic_write(path, new.encode())
                dropped += n
        return dropped

    def unreferenced_tips(self, reached: set[str]) -> list[str]:
        """Versions in the database that no version in ``reached`` has as an ancestor and
        that are no other version's parent: candidates when a ref is lost with its reflog."""
        commits = [str(o) for o in self.repo.odb if self._is_commit(str(o))]
        parents = {str(p) for c in commits for p in self.repo[c].parent_ids}
        return sorted(c for c in commits if c not in reached and c not in parents)

    def head_branch(self) -> str | None:
        """The branch HEAD is on, or None when HEAD is detached."""
        with contextlib.suppress(Unsure, OSError):
            branch, _detached = self._reader.head()
            return None if branch is None else branch.removeprefix("refs/heads/")
        if self.repo.head_is_detached:
            return None
        ref = self.repo.lookup_reference("HEAD").target
        return ref.removeprefix("refs/heads/")

    def set_head(self, commit_id: str, message: str) -> None:
        """Move the current branch (or detached HEAD) to ``commit_id``."""
        branch = self.head_branch()
        oid = _git().Oid(hex=commit_id)
        self.make_durable()
        with _fsync_refs():
            if branch is None:  # detached: HEAD itself moves, logged as what moved it (git's too)
                self.repo.create_reference_direct("HEAD", oid, True, message=message)
            else:
                self.repo.create_reference_direct(f"refs/heads/{branch}", oid, True, message=message)

    def checkout_ref(self, rev: str, commit_id: str) -> None:
        """Point HEAD at branch ``rev`` if it is one, else detach HEAD at ``commit_id``
        (``HEAD`` itself leaves HEAD where it is, as in git)."""
        if rev.strip() in ("HEAD", "@"):
            return
        self.make_durable()
        with _fsync_refs():
            if rev in self.repo.branches.local:
                self.repo.set_head(f"refs/heads/{rev}")
            else:  # libgit2's own message names the version HEAD left as the one it went to
                came_from = self.head_branch() or self._head_text() or ZERO
                self.repo.create_reference_direct("HEAD", _git().Oid(hex=commit_id), True,
                                                  message=f"checkout: moving from {came_from} to {commit_id}")

    def attach_head(self, branch: str) -> None:
        self.make_durable()
        with _fsync_refs():
            self.repo.set_head(f"refs/heads/{branch}")

    def branches(self) -> dict[str, str]:
        """Local branch name -> version id."""
        prefix = "refs/heads/"
        return {name[len(prefix):]: cid for name, cid in self.refs().items() if name.startswith(prefix)}

    def delete_ref(self, name: str, who: tuple[str, str], message: str) -> str | None:
        """Delete a ref but keep its reflog, ended by the deletion: the versions it held
        stay within reach of gc's reflog grace period (git drops a deleted branch's log).
        A ref that names no version (damaged, or an older objstore's) is dropped with its
        log: nothing it held can be kept. Returns the version it named, if any."""
        tip = self.ref_target(name)
        if tip is None:
            self.drop_ref(name)
            return None
        ref = self.repo.references[name]
        log = self.path / "logs" / name
        try:
            kept = log.read_bytes()
        except FileNotFoundError:
            kept = b""
        with _fsync_refs():
            ref.delete()
        log.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(log, kept + _deletion(tip, who, message))
        return tip

    def rename_branch(self, old: str, new: str, who: tuple[str, str], force: bool = False) -> None:
        """Rename a branch with its reflog; HEAD follows when it was on ``old`` (libgit2). A
        reflog kept at ``new`` is renamed aside first, as on creation (libgit2 would write over
        it); that of the branch ``force`` replaces ends in its deletion first, as
        ``delete_ref`` would end it, so gc keeps its versions. libgit2 replaces the ref in one
        step; if the rename fails, the log is put back as it was: nothing changes."""
        if not _git().reference_is_valid_name(f"refs/heads/{new}"):
            raise DsError(f"{new!r} is not a valid branch name")
        exists = new in self.repo.branches.local
        if exists and not force:
            raise DsError(f"branch {new!r} already exists; delete it first (`ds branch -D {new}`) or "
                          "choose another name")
        on_old = self.head_branch() == old
        locks = (f"refs/heads/{old}.lock", f"refs/heads/{new}.lock", *(["HEAD.lock"] * on_old))
        held = [lock for lock in locks if (self.path / lock).exists()]
        if held:  # libgit2 would fail part-way (OLD gone, or HEAD left on it): refused before anything
            raise DsError(f"could not rename branch {old!r} to {new!r}: {self.path / held[0]} is held by "
                          "another process updating it (if no ds or git runs, remove it); nothing was "
                          "changed")
        tip = self.ref_target(f"refs/heads/{old}")
        old_log = Path(self.path, "logs", "refs", "heads", *old.split("/"))
        old_kept = old_log.read_bytes() if old_log.is_file() else None
        log = Path(self.path, "logs", "refs", "heads", *new.split("/"))
        kept: bytes | None = None  # the log at ``new`` before this rename (None: there was none)
        aside = None
        if new != old:
            self._room_for_log(f"refs/heads/{new}")
            kept = log.read_bytes() if log.is_file() else None
            replaced = self.ref_target(f"refs/heads/{new}") if exists else None
            if replaced is not None:
                log.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(log, (kept or b"") + _deletion(replaced, who, f"branch: replaced by {old}"))
            if log.is_file():
                aside = _put_aside(log)
        try:
            with _fsync_refs():
                self.repo.branches.local[old].rename(new, force)
        except (ValueError, _git().GitError, OSError) as e:  # (a ref lock libgit2 cannot take: OSError)
            if aside is not None:  # as it was: the replaced branch and its log are untouched
                os.replace(aside, log)
                if kept is None:
                    log.unlink()
                else:
                    atomic_write(log, kept)
            if tip is not None and self._loose(f"refs/heads/{old}") is None and old not in self.branches():
                if old_kept is not None:  # libgit2 removed OLD before it failed: back as it was
                    old_log.parent.mkdir(parents=True, exist_ok=True)
                    atomic_write(old_log, old_kept)
                ref = Path(self.path, "refs", "heads", *old.split("/"))
                ref.parent.mkdir(parents=True, exist_ok=True)
                with _fsync_refs():
                    atomic_write(ref, f"{tip}\n".encode())
            if isinstance(e, ValueError):
                raise DsError(f"branch {new!r} already exists; delete it first (`ds branch -D {new}`) or "
                              "choose another name") from None
            raise DsError(f"could not rename branch {old!r} to {new!r} ({e}); nothing was changed") from None
        if on_old and self.head_branch() != new:  # libgit2 moved the branch but not HEAD along
            atomic_write(self.path / "HEAD", f"ref: refs/heads/{new}\n".encode())

    def _room_for_log(self, name: str) -> None:
        """A deleted ref's kept reflog may stand where ``name``'s must go (a file ``a`` for
        ``a/b``, a folder ``a/`` for ``a``): it is renamed aside to ``...~deleted-N`` (a
        name no ref can have; gc still reads it), never removed."""
        logs = Path(self.path, "logs")
        parts = name.split("/")
        in_way = [p for i in range(2, len(parts)) if (p := logs.joinpath(*parts[:i])).is_file()]
        if (logs / name).is_dir():
            in_way.append(logs / name)
        for path in in_way:
            ref = path.relative_to(logs).as_posix()
            if self.has_ref(ref) or any(r.startswith(ref + "/") for r in self.repo.references):
                continue  # a live ref: libgit2 refuses the name, as git does
            _put_aside(path)

    def has_ref(self, name: str) -> bool:
        with contextlib.suppress(Unsure, OSError):
            return self._reader.ref(name) is not None
        return name in self.repo.references

    def ref_names(self, prefix: str = "") -> list[str]:
        """Every ref name starting with ``prefix``, sorted."""
        with contextlib.suppress(Unsure, OSError):
            return sorted(n for n in self._reader.refs() if n.startswith(prefix))
        return sorted(n for n in self.repo.references if n.startswith(prefix))

    def ref_target(self, name: str) -> str | None:
        """The version ref ``name`` points at; None when there is no such ref or it names
        no version (``damaged_refs`` says which)."""
        with contextlib.suppress(Unsure, OSError):
            tip = self._reader.ref(name)
            return None if tip is None else self._read_commit(tip).id
        try:
            return str(self.repo.references[name].peel(_git().Commit).id)
        except (_git().GitError, KeyError, ValueError):
            return None

    def _read_refs(self) -> dict[str, str]:
        """Every ref name -> its version, through ``git_read`` alone: Unsure if any ref is
        one it does not read (libgit2 then reads them all)."""
        return {name: self._read_commit(tip).id for name, tip in self._reader.refs().items()}

    def drop_ref(self, name: str) -> bool:
        """Delete a ref and its reflog (a remote-tracking ref or a dataset's ref: the
        versions they name are kept elsewhere). False when there was none."""
        try:
            with _fsync_refs():
                self.repo.references.delete(name)
        except KeyError:
            return False
        except _git().GitError as e:
            raise FormatError(f"cannot delete {name} ({e}); run `ds fsck`") from None
        return True

    def tags(self) -> dict[str, str]:
        with contextlib.suppress(Unsure, OSError):
            return {name[len("refs/tags/"):]: tip for name, tip in self._read_refs().items()
                    if name.startswith("refs/tags/")}
        out = {}
        for ref in self.repo.references:
            if ref.startswith("refs/tags/"):
                out[ref[len("refs/tags/") :]] = str(self.repo.references[ref].peel(_git().Commit).id)
        return out

    def refs(self) -> dict[str, str]:
        """Every ref name -> commit id (branches, tags, others)."""
        with contextlib.suppress(Unsure, OSError):
            return self._read_refs()
        out = {}
        for name in self.repo.references:
            try:
                out[name] = str(self.repo.references[name].peel(_git().Commit).id)
            except (_git().GitError, KeyError, ValueError):
                raise FormatError(f"ref {name} points at nothing; run `ds fsck`") from None
        return out

    def set_ref(self, name: str, commit_id: str, force: bool = False, message: str | None = None) -> None:
        """Point ``name`` at ``commit_id``; ``message`` says why in its reflog (and HEAD's, when
        HEAD is on it), as git's ``NAME@{N}: MESSAGE``."""
        if not _git().reference_is_valid_name(name):
            raise DsError(f"{name.rpartition('/')[2]!r} is not a valid name for a tag or branch")
        self._room_for_log(name)
        self.make_durable()
        try:
            with _fsync_refs():
                self.repo.create_reference_direct(name, _git().Oid(hex=commit_id), force, message=message)
        except ValueError:
            if name in self.repo.references:
                raise DsError(f"{name} already exists; use --force to move it") from None
            raise DsError(f"cannot write {name}: not a valid name") from None
        except _git().GitError as e:
            raise FormatError(f"cannot write {name}: {e}") from None


def _whole_packs(folder: Path) -> list[Path]:
    """The ``.idx`` files of ``folder`` that have their ``.pack`` (what libgit2 reads too)."""
    return sorted(i for i in folder.glob("pack-*.idx") if i.with_suffix(".pack").exists())


def _parsed(c: pygit2.Commit) -> Commit:
    """libgit2's reading of a commit, in ``git_read``'s shape."""
    out = Commit.__new__(Commit)
    out.id, out.tree, out.parents = str(c.id), str(c.tree_id), tuple(str(p) for p in c.parent_ids)
    out.author, out.email, out.message = c.author.name, c.author.email, c.message
    out.author_time, out.offset = c.author.time, c.author.offset
    return out


def _unreadable(error: DsError, oid: str, why: str) -> DsError:
    """``error``, naming the object that could not be read (``.oid``: a remote may have it)
    and why (``.why``, libgit2's text without the id it starts with)."""
    error.oid = oid  # type: ignore[attr-defined]
    error.why = why.removeprefix(f"{oid}: ")  # type: ignore[attr-defined]
    return error


def pack_index_oids(idx: Path) -> list[str]:
    """The object ids a git pack index (version 2) lists."""
    data = idx.read_bytes()
    if data[:8] != b"\377tOc\0\0\0\2" or len(data) < 8 + 1024:
        raise FormatError(f"{idx}: not a version-2 git pack index; run `ds fsck`")
    count = int.from_bytes(data[8 + 255 * 4 : 8 + 256 * 4], "big")
    start = 8 + 1024
    if len(data) < start + 20 * count:
        raise FormatError(f"{idx}: truncated git pack index; run `ds fsck`")
    return [data[start + 20 * i : start + 20 * (i + 1)].hex() for i in range(count)]


def _fsync_path(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # already packed: durable since it was packed
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
