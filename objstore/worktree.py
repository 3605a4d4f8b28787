"""The working folder beside a store: status, add, rm, checkout.

Unchanged files are recognised by the stat cache (no content read). Everything that
is staged is written to the chunk store first and flushed before the staged tree that
names it, so a crash never leaves a stage that points at missing bytes.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .diff import Diff, diff_trees
from .errors import DirtyWorktree, DsError, NothingToCommit
from .manifest import EXEC, FILE, LINK, FileEntry
from .paths import (
    GIT_DIR,
    IGNORE_FILE,
    STORE_DIR,
    TEMP_PREFIX,
    check_relpath,
    join,
    parent_of,
    process_gone,
    temp_pid,
)
from .progress import announce
from .scan import FolderFiles, ScanResult, Stat, lstat_inside, scan, scan_folders, walked_into
from .statcache import StatCache
from .store import Store, outside_git
from .tree_edit import TreeEditor

if TYPE_CHECKING:  # imported where used: `ds status` should not pay for writers' modules
    from .ingest import Progress
    from .materialize import WriteReport


@dataclass
class Status:
    added: list[str] = field(default_factory=list)
    modified: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    staged: Diff = field(default_factory=Diff)
    skipped: list[str] = field(default_factory=list)
    bad_names: list[str] = field(default_factory=list)  # not valid UTF-8, or a backslash: add refuses them
    renamed: list[tuple[str, str]] = field(default_factory=list)  # (from, to), as ``ds diff`` shows

    @property
    def clean(self) -> bool:
        return not (self.added or self.modified or self.removed or self.renamed or self.staged)

    def as_json(self) -> dict:
        return {
            "added": self.added,
            "modified": self.modified,
            "removed": self.removed,
            "renamed": [{"from": a, "to": b} for a, b in self.renamed],
            "staged": self.staged.as_json(),
            "skipped": self.skipped,
            "bad_names": self.bad_names,
        }


@dataclass
class AddReport:
    staged: int = 0  # files whose entry changed in the stage
    removed: int = 0
    bytes_read: int = 0
    bytes_new: int = 0
    case_collisions: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    reread: list[str] = field(default_factory=list)  # changed while read, so read again
    # (path as given, the .dsignore hiding it): named paths passed over because of a rule
    ignored: list[tuple[str, str]] = field(default_factory=list)
    # a dry run (``add -n``): what would be staged and unstaged, by store path; nothing was
    would_add: list[str] = field(default_factory=list)
    would_remove: list[str] = field(default_factory=list)


def staged_path(store: Store, user_path: str, cwd: str | None = None) -> bool:
    """The stage holds a file or folder at ``user_path`` (False for a path outside the
    working folder): what ``ds restore`` can set back."""
    try:
        return store.meta.lookup(store.staged_tree(), to_store_path(store, user_path, cwd)) is not None
    except DsError:
        return False


def to_store_path(store: Store, user_path: str, cwd: str | None = None) -> str:
    """A user's path (relative to ``cwd`` or absolute) as a '/'-separated store path."""
    root = store.worktree.resolve()
    absolute = Path(os.path.normpath(Path(cwd or os.getcwd(), user_path)))
    # resolve the folders leading to the path (so -C through a link works), never the
    # path itself: a versioned link stays a link
    if absolute.name and not (absolute.is_dir() and not absolute.is_symlink()):
        absolute = absolute.parent.resolve() / absolute.name
    else:
        absolute = absolute.resolve()
    try:
        rel = absolute.relative_to(root)
    except ValueError:
        raise DsError(f"{user_path} is outside the working folder {root} "
                      "(or reached through a symbolic link, which is versioned as a link)") from None
    rel_s = rel.as_posix()
    if rel_s == ".":
        return ""
    if rel_s.split("/")[0] == STORE_DIR:
        raise DsError(f"{user_path} is inside {STORE_DIR}; the store cannot version itself")
    return check_relpath(rel_s)


def hash_file(abspath: str, kind: int, algo) -> bytes:
    if kind == LINK:
        return algo.digest(os.fsencode(os.readlink(abspath)))
    h = algo.new()
    with open(abspath, "rb", buffering=0) as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            h.update(block)
    return h.digest()


def _hash_paths(store: Store, cache: StatCache,
                todo: list[tuple[str, Stat]]) -> Iterator[tuple[str, bytes]]:
    """Read and hash ``todo`` (in parallel), recording each in the cache; yields (path, hash)."""
    if not todo:
        return
    from concurrent.futures import ThreadPoolExecutor

    from .ingest import default_workers

    root = str(store.worktree)

    def work(item: tuple[str, Stat]) -> bytes:
        return hash_file(os.path.join(root, item[0]), item[1].kind, store.algo)
    with ThreadPoolExecutor(default_workers()) as pool:
        for (path, st), h in zip(todo, pool.map(work, todo), strict=True):
            cache.put(path, st, h)
            yield path, h


def _current_hashes(store: Store, cache: StatCache, files: dict[str, Stat],
                    wanted: Iterable[str]) -> dict[str, bytes]:
    """Content hashes of ``wanted`` paths: from the cache, else read (in parallel)."""
    out: dict[str, bytes] = {}
    todo = []
    for path in wanted:
        h = cache.get(path, files[path])
        if h is None:
            todo.append((path, files[path]))
        else:
            out[path] = h
    out.update(_hash_paths(store, cache, todo))
    return out


def _drop_dead_temps(root: str, temps: list[str]) -> None:
    """Remove the temp files of checkouts killed part-way (their process is gone)."""
    for rel in temps:
        if process_gone(temp_pid(rel.rpartition("/")[2])):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(root, rel))


def _other_bytes(store: Store, cache: StatCache, files: dict[str, Stat], changed: dict[str, FileEntry],
                 target: dict[str, FileEntry], untracked: bool = False) -> list[str]:
    """Changed files (modified or ``untracked``) that a version would overwrite with other
    bytes, or remove. One that holds the version's very bytes (as a checkout or pull killed
    part-way leaves it) is no work to lose, and so is an untracked one holding their start
    (written under its own name and cut short; a tracked file cut short is the user's
    edit). ``files``: the stat data the scan kept (of untracked files)."""
    hashes, todo = {}, {}
    for path, e in changed.items():
        t = target.get(path)
        if (untracked and t is not None and e.kind == t.kind and e.size < t.size
                and _start_of(store, path, e.size, t)):
            hashes[path] = t.hash
        if t is None or (e.kind, e.size) != (t.kind, t.size):
            continue
        st = files.get(path)
        if st is None and not e.hash:  # a modified file: the scan kept no stat data for it
            found = lstat_inside(str(store.worktree), path)
            st = Stat.of(found) if found is not None else None
        if e.hash:
            hashes[path] = e.hash
        elif st is not None:
            todo[path] = st
    hashes.update(_current_hashes(store, cache, todo, list(todo)))
    return sorted(p for p in changed if p not in target or hashes.get(p) != target[p].hash)


def _ignored_in_the_way(store: Store, cache: StatCache, root: str, paths: Iterable[str],
                        target: dict[str, FileEntry],
                        stats: dict[str, os.stat_result | None] | None = None) -> list[str]:
    """Files the scan did not report (``.dsignore`` hides them) standing where the version
    writes other bytes: a user's own file, which the folder's status never showed, so
    overwriting it would lose work silently (git deems ignored files expendable; ds does not).
    ``stats``: what ``_blockers`` found at each path already (not asked twice)."""
    files: dict[str, Stat] = {}
    if _holds_only_the_store(root):
        return []
    stats = stats or {}
    for path in paths:
        found = stats[path] if path in stats else lstat_inside(root, path)
        st = Stat.of(found) if found is not None else None
        if st is not None:
            files[path] = st
    entries = {p: FileEntry(p.rpartition("/")[2], st.kind, st.size, b"") for p, st in files.items()}
    return _other_bytes(store, cache, files, entries, target, untracked=True)


def _start_of(store: Store, path: str, size: int, entry: FileEntry) -> bool:
    """The file at ``path`` (``size`` bytes, fewer than ``entry``'s) holds the first bytes of
    ``entry``: a write cut short by a kill. Writing ``entry`` over it loses no byte."""
    if entry.kind not in (FILE, EXEC):
        return False
    ids = [chunk_id for chunk_id, _length in entry.chunk_list()]
    if store.fetcher is not None and not all(map(store.chunks.has, ids)):
        try:  # a clone or pull: the version's bytes may be on the remote only, so far
            store.ensure_chunks(ids)
        except (DsError, OSError):
            return False
    try:
        fd = os.open(os.path.join(str(store.worktree), path), os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        with os.fdopen(fd, "rb") as f:
            left = size
            for chunk_id, length in entry.chunk_list():
                if left <= 0:
                    break
                if not store.chunks.has(chunk_id):
                    return False
                want = min(length, left)
                if f.read(want) != store.chunks.get(chunk_id)[:want]:
                    return False
                left -= want
            return left <= 0 and f.read(1) == b""
    except (OSError, DsError):
        return False


def _scan_with_tracked(store: Store, tracked: Iterable[str]) -> ScanResult:
    """Scan, and also stat tracked paths that .dsignore hides (tracked beats ignored)."""
    result = scan(str(store.worktree))
    if not result.ignoring:  # nothing hidden: every tracked file on disk was seen
        return result
    root, real_dirs = str(store.worktree), set()
    for path in tracked:
        if path not in result.files:
            raw = lstat_inside(root, path, real_dirs)
            st = Stat.of(raw) if raw is not None else None
            if st is not None:
                result.files[path] = st
    return result


def never_written(refused: frozenset[str], path: str, entry: FileEntry | None) -> bool:
    """True for a link a checkout did not create (its target leads out of the folder: see
    ``materialize.link_is_contained``): its absence is no removal to record. One the user
    made and deleted is a removal as any other."""
    return entry is not None and entry.kind == LINK and path in refused


def _note_refused(store: Store, attempted: Iterable[str], refused: list[str]) -> None:
    """After a write of ``attempted`` paths: the links among them it refused replace what
    was noted for those paths."""
    old = store.refused_links()
    tried = set(attempted)
    new = {p for p in old if p not in tried} | set(refused)
    if new != old:
        store.set_refused_links(new)


def worktree_diff(store: Store, base_tree=None, renames: bool = False, trim_cache: bool = False,
                  only: set[str] | None = None,
                  cache: StatCache | None = None) -> tuple[Diff, ScanResult, StatCache]:
    """The working folder against a tree (HEAD's by default).

    With ``renames``, added files whose size matches a removed file's are hashed so that
    moves are reported as renames. The version is walked folder by folder, never held
    whole, and each scanned file leaves ``result.files`` once matched (what stays are the
    added files): at a million files, holding both sides would double the memory.
    With ``trim_cache``, the stat cache keeps rows for the version's files only.
    ``only``: the folders whose files are compared (each without the folders below it),
    when every other folder is known to hold the tree's files unchanged. ``cache``: the
    stat cache, if the caller has read it already.
    """
    meta = store.meta
    tree = store.head_tree() if base_tree is None else base_tree
    scope = store.in_scope()  # sparse: the rest is not checked out
    refused = store.refused_links()
    if only is None:
        result = _scan_with_tracked(store, (p for p, _e in meta.walk(tree) if scope(p)))
        entries = meta.walk(tree)
    else:
        result = scan_folders(str(store.worktree), only)
        if result.ignoring:  # a .dsignore came meanwhile: only the full comparison applies it
            return worktree_diff(store, base_tree, renames, trim_cache, cache=cache)
        entries = meta.walk_folders(tree, only)
    files = result.files
    cache = store.stat_cache() if cache is None else cache
    d = Diff()
    unsure: list[tuple[str, Stat]] = []  # same kind and size, not in the cache
    olds: dict[str, FileEntry] = {}
    folders: set[str] = set()
    here: str | None = None
    names: list[str] = []
    for path, e in entries:
        if not scope(path):
            continue
        st = files.pop(path, None)
        if st is None:
            if not never_written(refused, path, e):
                d.removed[path] = e
            continue
        result.matched += 1
        if trim_cache:
            folder = path[: len(path) - len(e.name) - 1] if len(path) > len(e.name) else ""
            if folder != here:
                if here is not None:
                    cache.keep_names(here, names)
                here, names = folder, []
                folders.add(folder)
            names.append(e.name)
        if e.kind != st.kind or e.size != st.size:
            d.modified[path] = FileEntry(e.name, st.kind, st.size, b"")
            continue
        h = cache.get(path, st)
        if h is None:
            unsure.append((path, st))
            olds[path] = e
        elif h != e.hash:
            d.modified[path] = FileEntry(e.name, st.kind, st.size, h)
    if trim_cache:
        if here is not None:
            cache.keep_names(here, names)
        if only is None:
            cache.keep_folders(folders)
        else:  # a folder none of whose files is left keeps no row; the others are untouched
            for folder in only - folders:
                cache.keep_names(folder, ())
    for path, h in _hash_paths(store, cache, unsure):
        e = olds[path]
        if h != e.hash:
            d.modified[path] = FileEntry(e.name, e.kind, e.size, h)
    for path, st in files.items():
        d.added[path] = FileEntry(path.rpartition("/")[2], st.kind, st.size, b"")
    if renames and d.removed and d.added:
        sizes = {(e.size, e.kind) for e in d.removed.values()}
        maybe = [p for p, e in d.added.items() if (e.size, e.kind) in sizes]
        for p, h in _current_hashes(store, cache, files, maybe).items():
            d.added[p] = FileEntry(d.added[p].name, d.added[p].kind, d.added[p].size, h)
        d.find_renames()
    cache.save()
    return d, result, cache


def working_diff(store: Store, renames: bool = True) -> Diff:
    """The working folder against HEAD (``ds diff``): when the stat cache's mark is HEAD's,
    only the folders that may differ from it are compared (see ``status``)."""
    head = store.head()
    cache = store.stat_cache()
    only = _changed_folders(store, head, cache) if head else None
    return worktree_diff(store, None, renames=renames, only=only, cache=cache)[0]


def status(store: Store, walked: set[str] | None = None) -> Status:
    """The working folder against the stage, and the stage against HEAD. ``walked``: what
    ``quickstatus.quick_look`` found a moment ago, if the caller asked it."""
    head = store.head()
    # rows of staged files that HEAD lacks are kept: the commit -a or add to come needs them
    trim = bool(head) and store.staged_tree() == store.head_tree()
    cache = store.stat_cache()
    only = _changed_folders(store, head, cache, walked) if head else None
    # the working folder against the stage, as git's "not staged" part: a file just added
    # is listed once, as staged, not a second time as a change against HEAD
    # moves are found as ``ds diff`` finds them: only added files the size of a removed one are read
    d, result, cache = worktree_diff(store, store.staged_tree(), renames=True, trim_cache=trim, only=only,
                                     cache=cache)
    staged = diff_trees(store.meta, store.head_tree(), store.staged_tree())
    st = Status(sorted(d.added), sorted(d.modified), sorted(d.removed), staged, sorted(result.skipped),
                sorted(result.bad_names), sorted(d.renamed))
    if only is not None:  # the other folders' rows are HEAD's files already
        counts = cache.row_counts()
        rows = sum(counts.get(folder, 0) for folder in only)
    else:
        rows = cache.row_count()
    if st.clean and trim and not result.skipped and rows == result.matched:
        # the rows are exactly HEAD's files, all just proved unchanged (none was dropped
        # as racy on saving): the next no-op status can trust them. Only while no writer is
        # at work and HEAD and the stage are still what was compared: a commit landing
        # meanwhile would have the mark name a version these rows were not checked against
        from .statcache import clean_key

        try:
            with store.locked(wait=False) as held:
                if held and store.head() == head and store.staged_tree() == store.head_tree():
                    cache.mark_clean(clean_key(head, store.config.sparse))
                    cache.save()
        except (OSError, DsError):  # only a shortcut for the next status is lost, as when
            pass  # git's status cannot refresh its index; the answer stands
    return st


def _changed_folders(store: Store, head: str, cache: StatCache,
                     walked: set[str] | None = None) -> set[str] | None:
    """The folders that may differ from HEAD, when the stat cache's clean mark is HEAD's
    (``quickstatus.changed_folders``: every other folder holds HEAD's files, unchanged);
    None when the whole folder must be compared. Not for a sparse folder: its mark also
    names the checked-out part, and files outside it are compared as any other. ``walked``:
    a walk's answer already at hand (the folders whose rows changed since are added).
    With something staged, the folders whose staged files differ from HEAD's are added:
    elsewhere the stage holds HEAD's files, and the rows are those."""
    if store.config.sparse:
        return None
    if cache.clean_head != head or cache.upgraded:
        return None
    if walked is not None:
        changed = walked | cache.off_head
    else:
        from .quickstatus import changed_folders

        found = changed_folders(str(store.worktree), cache)
        if found is None:
            return None
        changed = found
    head_tree, stage_tree = store.head_tree(), store.staged_tree()
    if stage_tree != head_tree:
        changed |= set(store.meta.folders_differing(head_tree, stage_tree))
    return changed


def add(store: Store, paths: list[str], progress: Progress | None = None,
        cwd: str | None = None, update: bool = False, force: bool = False,
        dry_run: bool = False) -> AddReport:
    """Stage the files under ``paths`` (and the removal of tracked ones now gone); with
    ``update``, only tracked ones, as git's ``add -u`` and ``commit -a``: a new file is
    never versioned unless named; with ``force``, files the .dsignore rules hide are staged
    too (git's ``add -f``). ``dry_run`` (git's ``add -n``): only say what would be staged
    (``would_add``, ``would_remove``), storing and writing nothing; a file whose stat data
    moved but whose content did not is read to tell, as git does."""
    from .ingest import Ingestor, Job

    named = {p: to_store_path(store, p, cwd) for p in paths}
    for user, rel in named.items():
        if not outside_git(rel):
            raise DsError(f"{user} is inside git's folder {GIT_DIR}, which is never versioned (as in git "
                          "and DVC); copy the files elsewhere in the working folder to version them")
    rels = _outermost(named.values())
    report = AddReport()
    scope = store.in_scope()
    with store.locked():
        editor = TreeEditor(store.meta, store.staged_tree())
        cache = store.stat_cache()
        only = _folders_to_add(store, rels, cache)
        tracked: dict[str, None] = {}
        if only is not None:  # every other folder holds HEAD's files, unchanged
            tracked.update(dict.fromkeys(p for folder in sorted(only) for p in editor.files_in(folder)
                                         if scope(p)))
            result = scan_folders(str(store.worktree), only, compact=True)
        else:
            for rel in rels:
                under = [rel] if rel and editor.get(rel) else editor.files_under(rel)
                if not under and not os.path.lexists(os.path.join(store.worktree, rel)):
                    raise DsError(f"{rel}: no such file or folder, and nothing tracked there")
                tracked.update(dict.fromkeys(p for p in under if scope(p)))
            # compact: a million scanned files cost ~100 MB instead of ~350 (FolderFiles)
            result = scan(str(store.worktree), rels, compact=True, no_ignore=force)
        if result.bad_names:
            bad = result.bad_names[0]
            skip = "" if "\ufffd" in bad else " (or leave it out with .dsignore)"
            raise DsError(f"{bad}: {bad_name_reason(bad)}; rename it{skip} and retry")
        report.skipped = result.skipped
        # which files to read: changed, or not known to the cache (a byte per file)
        todo: list[tuple[FolderFiles, bytearray]] = []
        todo_files = todo_bytes = 0
        bases: dict[str, bytes] = {}

        def consider(ff: FolderFiles) -> None:
            nonlocal todo_files, todo_bytes
            wanted, before = bytearray(len(ff.names)), todo_files
            for i in range(len(ff.names)):
                path = check_relpath(ff.path(i))
                tracked.pop(path, None)
                st = ff.stat(i)
                old = editor.get(path)
                if old is None and update:
                    continue
                if old is not None and old.kind == st.kind and old.size == st.size \
                        and cache.get(path, st) == old.hash:
                    continue
                wanted[i] = 1
                todo_files += 1
                todo_bytes += st.size
                if old is not None and st.kind != LINK and (base := old.delta_base()) is not None:
                    bases[path] = base  # changed, and stored as one chunk: a delta may do
            if todo_files > before:
                todo.append((ff, wanted))
        for ff in result.folders:
            consider(ff)
        hidden = FolderFiles("")  # tracked files that .dsignore hides: tracked beats ignored
        root, real_dirs = str(store.worktree), set()
        for p in list(tracked) if result.ignoring else ():
            raw = lstat_inside(root, p, real_dirs)
            st = Stat.of(raw) if raw is not None else None
            if st is not None:
                hidden.add(p, st)  # the name is the whole path: the folder is ""
        consider(hidden)
        refused = store.refused_links()
        if dry_run:
            report.would_remove = sorted(p for p in tracked if not never_written(refused, p, editor.get(p)))
            report.would_add = _would_add(store, editor, cache, todo)
            tracked.clear()
        for p in tracked:  # gone: removed before anything is set (a removed file may become a folder)
            if never_written(refused, p, editor.get(p)):
                continue  # a link no checkout creates: its absence is no change (`ds rm` drops it)
            editor.remove(p)
            cache.drop(p)
            report.removed += 1
        tracked.clear()
        if dry_run:
            report.ignored = [] if force else _ignored(store, paths, cwd)
            return report
        announce(progress, todo_files, todo_bytes)
        ingestor = Ingestor(store.chunks, store.config.chunking, store.config.zstd_level,
                            progress=progress)
        touched_folders = set()

        def jobs() -> Iterator[Job]:
            worktree = str(store.worktree)
            for ff, wanted in todo:
                for i in range(len(ff.names)):
                    if wanted[i]:
                        path = ff.path(i)
                        name = ff.names[i] if ff.folder or "/" not in path else None
                        yield Job(path, ff.stat(i), worktree, name=name, base=bases.get(path))

        done: list[str] = []

        def staged(job: Job, entry: FileEntry) -> None:
            # in memory only: on a failure neither the stage nor the cache is written
            editor.set(job.path, entry)
            cache.put(job.path, job.stat, entry.hash, entry.name)
            touched_folders.add(parent_of(job.path))
            done.append(job.path)
            report.staged += 1
        try:
            ingestor.run(jobs(), sink=staged)
        except KeyboardInterrupt:
            _keep_interrupted(store, editor, cache, done)
            raise
        except BaseException:
            store.chunks.abort()
            raise
        store.chunks.flush()  # the chunks are durable before the stage that names them
        store.set_stage(editor.write())
        cache.save()
        report.reread = ingestor.reread
        report.bytes_read = ingestor.bytes_done
        report.bytes_new = ingestor.bytes_new
        report.case_collisions = _case_collisions(editor, touched_folders)
    report.ignored = [] if force else _ignored(store, paths, cwd)
    return report


def _folders_to_add(store: Store, rels: list[str], cache: StatCache) -> set[str] | None:
    """The folders an add of the folders ``rels`` must look at, when the stat cache's clean
    mark is HEAD's (see ``status``): those at or below ``rels`` that may differ from HEAD
    or whose staged files do. None when the whole of ``rels`` must be scanned (a file
    named, nothing to vouch for the rest, a ``.dsignore``, a sparse folder)."""
    head = store.head()
    if head is None:
        return None
    root = str(store.worktree)
    for rel in rels:
        st = lstat_inside(root, rel) if rel else os.lstat(root)
        if st is None or not stat.S_ISDIR(st.st_mode) or not walked_into(rel):
            return None  # (a folder the scan passes over, named: the full add takes it as named)
    changed = _changed_folders(store, head, cache)
    if changed is None:
        return None
    return {f for f in changed if any(not rel or f == rel or f.startswith(rel + "/") for rel in rels)}


def _would_add(store: Store, editor: TreeEditor, cache: StatCache,
               todo: list[tuple[FolderFiles, bytearray]]) -> list[str]:
    """The files of ``todo`` whose stage entry an add would change: new, of another kind or
    size, or (read here, the cache being no help) of other content. Sorted store paths."""
    out, same_size = [], []
    for ff, wanted in todo:
        for i in range(len(ff.names)):
            if not wanted[i]:
                continue
            path, st = ff.path(i), ff.stat(i)
            old = editor.get(path)
            if old is not None and old.kind == st.kind and old.size == st.size:
                same_size.append((path, st))
            else:
                out.append(path)
    out.extend(p for p, h in _hash_paths(store, cache, same_size) if h != editor.get(p).hash)
    return sorted(out)


def _ignored(store: Store, paths: list[str], cwd: str | None) -> list[tuple[str, str]]:
    """(path as given, the .dsignore that hides it) for each named path on disk that is not
    staged because a rule matched it: the user asked for it, so they are told why. A staged
    (tracked) path stays versioned whatever the rules say."""
    from .scan import ignoring_folder

    root, staged, found = str(store.worktree), store.staged_tree(), []
    for user in paths:
        rel = to_store_path(store, user, cwd)
        if not rel or not os.path.lexists(os.path.join(root, rel)) \
                or store.meta.lookup(staged, rel) is not None:
            continue
        rules = ignoring_folder(root, rel)
        if rules is not None:
            found.append((user, os.path.join(root, rules, IGNORE_FILE)))
    return found


def _keep_interrupted(store: Store, editor: TreeEditor, cache: StatCache, done: list[str]) -> None:
    """Ctrl-C or SIGTERM: stage the files whose chunks are stored, so ``ds add`` run again
    passes them at the cost of a stat. Only if every chunk they name is indexed (the
    ingest kept what was complete); otherwise nothing is staged, as before."""
    try:
        store.chunks.flush()
        if all(store.chunks.has(c) for p in done for c, _ in editor.get(p).chunk_list()):
            store.set_stage(editor.write())
            cache.save()
    except Exception:  # a full disk: the interrupt is what the user must hear about
        store.chunks.abort()


def _outermost(rels: Iterable[str]) -> list[str]:
    """The paths not inside another of them (`ds add a a/x` reads a/x once), sorted."""
    kept: set[str] = set()
    for rel in sorted(set(rels)):
        parts = rel.split("/") if rel else []
        if "" in kept or any("/".join(parts[:i]) in kept for i in range(1, len(parts))):
            continue
        kept.add(rel)
    return sorted(kept)


def _case_collisions(editor: TreeEditor, folders: set[str]) -> list[tuple[str, str]]:
    out = []
    with_parents = set()
    for folder in folders:
        while folder not in with_parents:
            with_parents.add(folder)
            if not folder:
                break
            folder = parent_of(folder)
    for folder in sorted(with_parents):
        seen: dict[str, str] = {}
        for name in sorted(editor.names_in(folder)):
            key = name.casefold()
            if key in seen:
                out.append((join(folder, seen[key]), join(folder, name)))
            else:
                seen[key] = name
    return out


def rm(store: Store, paths: list[str], keep: bool = False, force: bool = False,
       cwd: str | None = None) -> list[str]:
    """Stop versioning ``paths`` (files or folders); delete them unless ``keep``.

    A file whose content differs from what is staged is only deleted with ``force``
    (uncommitted work is never thrown away silently), and so is staged content the latest
    version lacks (as git's ``rm``: only the stage held it); with ``keep`` the file stays,
    so only staged content it no longer holds is refused. Folders are never removed whole,
    so untracked files inside them stay.
    """
    from .materialize import Materializer

    rels = [to_store_path(store, p, cwd) for p in paths]
    removed: dict[str, FileEntry] = {}
    with store.locked():
        editor = TreeEditor(store.meta, store.staged_tree())
        for user, rel in zip(paths, rels, strict=True):
            one = editor.get(rel) if rel else None
            under = [rel] if one else editor.files_under(rel)
            if not rel or not under:
                raise DsError(f"{user} is not in the version; nothing to remove")
            for p in under:
                removed[p] = editor.get(p)
        if not force:
            _refuse_staged_only(store, removed, keep)
        if not keep and not force:
            _refuse_if_changed(store, removed)
        for rel in rels:
            editor.remove(rel)
        store.set_stage(editor.write())
        if not keep:
            root = str(store.worktree)
            for p in removed:
                st = lstat_inside(root, p)
                if st is not None and not stat.S_ISDIR(st.st_mode):
                    os.unlink(os.path.join(root, p))
            Materializer(root, store.chunks).prune_empty_dirs(parent_of(p) for p in removed)
    return sorted(removed)


def _meets(path: str, changed: set[str]) -> bool:
    """A folder or file of ``changed`` stands inside ``path``, or ``path`` inside one of them
    (a file on one side, a folder on the other): carrying it would stage what nobody did."""
    parts = path.split("/")
    if any("/".join(parts[:i]) in changed for i in range(1, len(parts))):
        return True
    prefix = path + "/"
    return any(c.startswith(prefix) for c in changed)


def _same_entry(a, b) -> bool:
    """Two tree entries (or absences) that hold the same file content."""
    if a is None or b is None:
        return a is None and b is None
    return isinstance(a, FileEntry) and isinstance(b, FileEntry) and a.same_content(b)


def _refuse_staged_only(store: Store, entries: dict[str, FileEntry], keep: bool) -> None:
    """Refuse to drop what only the stage holds: content added since the latest version."""
    head = store.head_tree()
    staged = {p: e for p, e in entries.items()
              if not isinstance(old := store.meta.lookup(head, p) if head else None, FileEntry)
              or not old.same_content(e)}
    if not staged:
        return
    first = sorted(staged)[0]
    if not keep:
        raise DirtyWorktree(f"{first} has changes staged for the next version that no version holds; "
                            "`ds rm --cached` stops versioning it and keeps the file, --force deletes it")
    root = str(store.worktree)
    gone = [p for p in sorted(staged) if lstat_inside(root, p) is None]
    try:
        if gone:
            raise DirtyWorktree("")
        _refuse_if_changed(store, staged)
    except DirtyWorktree:
        where = gone[0] if gone else first
        raise DirtyWorktree(f"{where}: its staged content is neither in the file nor in any version; "
                            "`ds add` it again, or --force to drop it") from None


def _refuse_if_changed(store: Store, entries: dict[str, FileEntry]) -> None:
    root = str(store.worktree)
    cache = store.stat_cache()
    present: dict[str, Stat] = {}
    for p, e in entries.items():
        raw = lstat_inside(root, p)
        if raw is None:
            continue
        st = Stat.of(raw)
        if st is None or st.kind != e.kind or st.size != e.size:
            raise DirtyWorktree(f"{p} has changes that are not staged; use --force to delete it anyway "
                                "(or --keep to leave it on disk)")
        present[p] = st
    hashes = _current_hashes(store, cache, present, present)
    cache.save()
    for p, h in hashes.items():
        if h != entries[p].hash:
            raise DirtyWorktree(f"{p} has changes that are not staged; use --force to delete it anyway "
                                "(or --keep to leave it on disk)")


def commit_all(store: Store, message: str, progress: Progress | None = None):
    """Stage every change, new files too (``ds add -A``), then commit."""
    add(store, [str(store.worktree)], progress)
    try:
        return store.commit(message)
    except NothingToCommit:
        raise NothingToCommit("nothing to commit: the working folder matches the latest version") from None


def bad_name_reason(path: str) -> str:
    """Why a name the scan found cannot be versioned (``ScanResult.bad_names``)."""
    if "\ufffd" in path:
        return "file name is not valid UTF-8"
    return "file name holds a backslash, a folder separator on Windows"


def skip_reason(path: str) -> str:
    """Why ``add`` and ``status`` leave a path out (what the scan reported it as)."""
    if path.rpartition("/")[2].casefold() == STORE_DIR:
        return f"{STORE_DIR} is the store's reserved name and is never versioned"
    return "not a regular file, folder or link"


def _holds_only_the_store(root: str) -> bool:
    """The working folder is empty but for the store (a new clone): nothing is in the way."""
    with os.scandir(root) as it:
        return all(e.name.casefold() == STORE_DIR for e in it)


def _blockers(root: str, write_paths, removable: set[str],
              stats: dict[str, os.stat_result | None] | None = None) -> list[str]:
    """Working-folder content that writing ``write_paths`` would destroy, beyond ``removable``.

    Writing ``a/b`` needs ``a`` to be a real folder, and needs nothing to be a folder at
    ``a/b``: a file or link standing at ``a``, or anything inside a folder at ``a/b``,
    would be deleted — allowed only for tracked, unchanged paths (their content is
    recoverable from the version). ``stats`` gets what stands at each write path.
    """
    from .materialize import refuse_repository, repository_at

    if _holds_only_the_store(root):
        return []
    out: list[str] = []
    seen: set[str] = set()
    for p in write_paths:
        folder = parent_of(p)
        while folder and folder not in seen:
            seen.add(folder)
            st = lstat_inside(root, folder)
            if st is not None and not stat.S_ISDIR(st.st_mode) and folder not in removable:
                out.append(folder)
            folder = parent_of(folder)
        st = lstat_inside(root, p)
        if stats is not None:
            stats[p] = st
        if st is not None and stat.S_ISDIR(st.st_mode):
            for dirpath, dirnames, filenames in os.walk(os.path.join(root, p)):
                if (found := repository_at(dirpath, dirnames, filenames)) is not None:
                    refuse_repository(dirpath, p, found)
                rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
                links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
                inside = (f"{rel_dir}/{n}" for n in (*filenames, *links))
                out.extend(q for q in inside if q not in removable)
    return sorted(set(out))


@dataclass
class CheckoutReport:
    """A whole-folder checkout: what was written (as ``WriteReport``), and where HEAD went."""

    written: dict[str, Stat] = field(default_factory=dict)
    count: int = 0
    links_refused: list[str] = field(default_factory=list)
    detached: str | None = None  # the version HEAD is now detached at (not on a branch)
    left_behind: str | None = None  # the detached version HEAD left, which no ref reaches


def checkout(store: Store, rev: str, paths: list[str] | None = None, force: bool = False,
             progress: Callable[[int, int], None] | None = None,
             cwd: str | None = None, branch: str | None = None,
             new_branch: str | None = None, why: str | None = None,
             forceable: bool = True, reset_branch: bool = False) -> WriteReport | CheckoutReport:
    """Make the working folder (or just ``paths``) equal to version ``rev``.

    Refuses, unless ``force``, whenever uncommitted work would be lost: modified or
    staged files, and untracked files or folders standing where the version needs a
    file or a folder (a file holding the version's bytes there is no work to lose). As in
    git, a change (in the folder or staged) to a path both versions hold alike is carried
    over to the new version, not refused; ``force`` undoes those too.
    ``branch`` (HEAD's, for a fast-forward or merge): that branch moves to the version,
    one ref update, instead of HEAD being pointed at ``rev``; killed at any moment, HEAD
    stays on the branch. ``new_branch`` (``switch -c``): that branch is created at the
    version once the files are written, then HEAD put on it; killed at any moment, HEAD
    is on the branch it was on or on the new one, never detached; ``reset_branch``
    (``switch -C``): ``new_branch`` may exist already, and is moved. ``why``: the reflog's
    message for the branch's move. ``forceable``: the command takes ``--force`` (merge and
    pull do not: their refusal says how to drop changes instead).
    """
    from .materialize import Materializer

    target = store.resolve(rev)
    meta = store.meta
    root = str(store.worktree)
    with store.locked():
        target_tree = meta.tree_of(target)
        head_tree = store.head_tree()
        wd, result, cache = worktree_diff(store)
        _drop_dead_temps(root, result.temps)
        stage_tree = store.staged_tree()
        staged = diff_trees(meta, head_tree, stage_tree, renames=False)
        clean_tracked = {p for p, _ in meta.walk(head_tree)} - set(wd.modified)
        m = Materializer(root, store.chunks, progress=progress, force=force, version=target)
        if paths:
            rels = [to_store_path(store, p, cwd) for p in paths]
            items = []
            for user, rel in zip(paths, rels, strict=True):
                found = meta.lookup(target_tree, rel)
                if found is None:
                    raise DsError(f"{user} is not in version {target[:12]}")
                items.extend(_checked_out(store, user, rel, [(rel, found)] if isinstance(found, FileEntry)
                                          else meta.walk(found, rel)))
            items = [(p, e) for p, e in items if outside_git(p)]  # git's own folder is never written
            if force:
                m.check_no_repository(p for p, _ in items)
            dirty = [p for p, _ in items if p in wd.modified or p in wd.added]
            dirty += _blockers(root, [p for p, _ in items], clean_tracked)
            if dirty and not force:
                raise DirtyWorktree(f"{dirty[0]} has uncommitted changes that checkout would overwrite; "
                                    "commit them or use --force")
            if store.fetcher is not None:
                store.ensure_chunks(c for _p, e in items for c, _ in e.chunk_list())
            announce(progress, len(items), sum(e.size for _p, e in items))
            report = m.write(items)
            _note_refused(store, (p for p, _e in items), report.links_refused)
            by_path = dict(items)
            for p, st in report.written.items():
                cache.put(p, st, by_path[p].hash)
            cache.save()
            return report
        scope = store.in_scope()
        target_map = {p: e for p, e in meta.walk(target_tree) if scope(p)}
        between = diff_trees(meta, head_tree, target_tree, renames=False)
        changed = {*between.added, *between.modified, *between.removed}
        # as git: a change to a path both versions hold alike is carried over, not undone
        carried = set() if force else {p for p in (*wd.modified, *wd.removed) if p not in changed}
        staged_paths = {*staged.added, *staged.modified, *staged.removed}
        carried_stage = set() if force else {p for p in staged_paths - changed if not _meets(p, changed)}
        if not force:  # staged just as the version holds it: nothing to carry, nothing lost
            staged_paths -= {p for p in staged_paths & changed
                             if _same_entry(meta.lookup(stage_tree, p), target_map.get(p))}
        write_paths = {p for p in (*between.added, *between.modified) if scope(p)}
        write_paths |= {p for p in (*wd.modified, *wd.removed, *wd.added) if p in target_map} - carried
        gone = {p for p in between.removed if scope(p)} | {p for p in wd.modified if p not in target_map}
        if force:  # (unforced, _blockers refuses it, naming it)
            m.check_no_repository(sorted(write_paths | gone))
        if not force:  # what the version holds already, or drops too, is no work to lose
            known = {*wd.added, *wd.modified, *wd.removed, *clean_tracked, *staged.added, *staged.modified}
            at_paths: dict[str, os.stat_result | None] = {}
            blockers = _blockers(root, write_paths, clean_tracked & gone, at_paths)
            lost = (_other_bytes(store, cache, {}, {p: e for p, e in wd.modified.items() if p not in carried},
                                 target_map)
                    + sorted(p for p in wd.removed if p in target_map and p not in carried)
                    + sorted(staged_paths - carried_stage)
                    + _other_bytes(store, cache, result.files,  # untracked: only where the version writes
                                   {p: e for p, e in wd.added.items() if p in target_map}, target_map,
                                   untracked=True)
                    + _ignored_in_the_way(store, cache, root, write_paths - known, target_map, at_paths)
                    + blockers)
            if lost:
                raise DirtyWorktree(
                    f"uncommitted changes ({lost[0]}{' and more' if len(lost) > 1 else ''}) "
                    "would be lost; " + ("commit them, or use --force to discard them" if forceable else
                                         "commit them first, or drop them with `ds restore PATH`")
                )
        if store.fetcher is not None:
            store.ensure_chunks(c for p in write_paths for c, _ in target_map[p].chunk_list())
        m.check_links((p, target_map[p]) for p in sorted(write_paths))  # refuse before removing anything
        for p in sorted(gone):
            m.remove(p)
            cache.drop(p)
        m.prune_empty_dirs(parent_of(p) for p in gone)  # a folder emptied here may become a file
        announce(progress, len(write_paths), sum(target_map[p].size for p in write_paths))
        report = m.write((p, target_map[p]) for p in sorted(write_paths))
        _note_refused(store, write_paths | gone, report.links_refused)
        for p, st in report.written.items():
            cache.put(p, st, target_map[p].hash)
        cache.save()
        from .branches import left_behind

        behind = left_behind(store, target)
        new_stage = None
        if carried_stage:  # staged on the new version, as git carries the index; written before
            editor = TreeEditor(meta, target_tree)  # the ref moves, for whichever base HEAD is on
            for p in sorted(carried_stage):
                entry = meta.lookup(stage_tree, p)
                if isinstance(entry, FileEntry):
                    editor.set(p, entry)
                else:
                    editor.remove(p)
            new_stage = editor.write()
            store.set_stage(new_stage, base=target, also=(stage_tree, store.head()))
        if branch is not None:
            meta.set_ref(f"refs/heads/{branch}", target, force=True, message=why)
        elif new_branch is not None:
            meta.set_ref(f"refs/heads/{new_branch}", target, force=reset_branch,
                         message=why or f"branch: Created from {rev}")
            meta.attach_head(new_branch)
        else:
            meta.checkout_ref(rev, target)
        if new_stage is not None:
            store.set_stage(new_stage)  # the one record, now that HEAD is on its base
        else:
            store.clear_stage()
        detached = target if meta.head_branch() is None else None
        return CheckoutReport(**vars(report), detached=detached, left_behind=behind)


@dataclass
class RestoreReport:
    """What ``restore`` set: stage entries (``staged``) or working files, and what it removed."""

    restored: list[str] = field(default_factory=list)  # store paths (files) set from the source
    removed: list[str] = field(default_factory=list)  # tracked files (staged, or working) the source lacks
    links_refused: list[str] = field(default_factory=list)


def restore(store: Store, paths: list[str], staged: bool = False, source: str | None = None,
            progress: Callable[[int, int], None] | None = None,
            cwd: str | None = None, overlay: bool = False) -> RestoreReport:
    """``git restore``: with ``staged``, the stage's entries at ``paths`` go back to
    ``source``'s (default HEAD) and the working files are untouched; otherwise the working
    files at ``paths`` are written from the stage (or from version ``source``).

    Overwriting a modified file is what was asked, so it is done; but untracked content
    that writing would destroy, and a path that neither side holds, are errors before
    anything changes. With ``source``, files tracked in the stage under a path but absent
    from that version are removed from the working folder (git's no-overlay mode).
    ``overlay`` (with ``staged``; git's ``checkout REV -- PATH``): the stage takes the
    source's entries under the paths and keeps the others there.
    """
    if not paths:
        raise DsError("name the paths to restore (`.` for everything)")
    rels = [to_store_path(store, p, cwd) for p in paths]
    with store.locked():
        if staged:
            return _restore_stage(store, paths, rels, source or "HEAD", overlay)
        return _restore_files(store, paths, rels, source, progress)


def _source_tree(store: Store, source: str | None):
    """(tree, how to name it in a message) of a restore's source."""
    if source is None:
        return store.staged_tree(), "the stage"
    if source.strip() in ("HEAD", "@") and store.head() is None:
        return store.meta.empty_tree, "HEAD (there is no version yet)"
    commit_id = store.resolve(source)
    return store.meta.tree_of(commit_id), f"version {commit_id[:12]}"


def _restore_stage(store: Store, users: list[str], rels: list[str], source: str,
                   overlay: bool = False) -> RestoreReport:
    meta = store.meta
    tree, where = _source_tree(store, source)
    report = RestoreReport()
    if "" in rels and not overlay:  # the whole stage becomes the source's tree
        report.restored = [p for p, _e in meta.walk(tree)]
        store.set_stage(tree)
        return report
    editor = TreeEditor(meta, store.staged_tree())
    for user, rel in zip(users, rels, strict=True):
        found = meta.lookup(tree, rel)
        before = [rel] if editor.get(rel) is not None else editor.files_under(rel)
        if found is None and not before:
            raise DsError(f"{user} is in neither {where} nor the stage; nothing to restore")
        if not overlay:
            editor.remove(rel)
        items = [] if found is None else [(rel, found)] if isinstance(found, FileEntry) \
            else meta.walk(found, rel)
        for p, e in items:
            editor.set(p, e)
            report.restored.append(p)
        if not overlay:
            report.removed.extend(sorted(set(before) - set(report.restored)))
    store.set_stage(editor.write())
    return report


def _restore_files(store: Store, users: list[str], rels: list[str], source: str | None,
                   progress: Callable[[int, int], None] | None) -> RestoreReport:
    from .materialize import Materializer

    meta = store.meta
    root = str(store.worktree)
    tree, where = _source_tree(store, source)
    stage = TreeEditor(meta, store.staged_tree()) if source is not None else None
    items: dict[str, FileEntry] = {}
    gone: set[str] = set()
    for user, rel in zip(users, rels, strict=True):
        found = meta.lookup(tree, rel)
        if found is None:
            raise DsError(f"{user} is not in {where}; nothing to restore "
                          "(see `ds ls` for what a version holds)")
        items.update(_checked_out(store, user, rel, [(rel, found)] if isinstance(found, FileEntry)
                                  else meta.walk(found, rel)))
        if stage is not None:
            gone.update(p for p in ([rel] if rel and stage.get(rel) else stage.files_under(rel)))
    scope = store.in_scope()
    gone = {p for p in gone - items.keys() if scope(p)}  # the part not checked out is not here to remove
    blockers = _blockers(root, items, set(items) | gone)
    if blockers:
        raise DsError(f"{blockers[0]} is not versioned and stands where restore must write; "
                      "move it away first")
    if store.fetcher is not None:
        store.ensure_chunks(c for e in items.values() for c, _ in e.chunk_list())
    m = Materializer(root, store.chunks, progress=progress, force=True)
    m.check_links(items.items())  # refuse before removing anything
    cache = store.stat_cache()
    for p in sorted(gone):  # a folder standing there is not the tracked file: left alone
        st = lstat_inside(root, p)
        if st is not None and not stat.S_ISDIR(st.st_mode):
            m.remove(p)
        cache.drop(p)
    m.prune_empty_dirs(parent_of(p) for p in gone)
    announce(progress, len(items), sum(e.size for e in items.values()))
    written = m.write(sorted(items.items()))
    _note_refused(store, {*items, *gone}, written.links_refused)
    for p, st in written.written.items():
        cache.put(p, st, items[p].hash)
    cache.save()
    return RestoreReport(sorted(items), sorted(gone), written.links_refused)


def _checked_out(store: Store, user: str, rel: str,
                 items: Iterable[tuple[str, FileEntry]]) -> list[tuple[str, FileEntry]]:
    """The items inside the checked-out part (all, unless sparse); a path wholly outside it
    is an error, as git refuses paths outside its sparse checkout: the working folder does
    not hold that part (a folder added from a URL, a clone's --include)."""
    scope = store.in_scope()
    items = list(items)
    kept = [(p, e) for p, e in items if scope(p)]
    if items and not kept:
        raise DsError(f"{user} is outside the checked-out part of this working folder (worktree.sparse); "
                      f"`ds get REV DIR --include '{rel}/**'` copies it out")
    return kept


@dataclass
class MoveReport:
    src: str  # store paths
    dst: str
    files: list[tuple[str, str]]  # (old, new) of each versioned file moved
    overwritten: str | None = None  # with ``force``: the file (or link) DST was, now replaced


def move(store: Store, src: str, dst: str, cwd: str | None = None, force: bool = False) -> MoveReport:
    """``git mv``: rename a tracked file or folder in the working folder and stage the
    rename; into DST when it is an existing folder.

    Refused before anything moves: an untracked or missing SRC, a DST (or DST/name) that
    exists or is staged, a DST inside SRC, the store or a ``.git`` folder. Unstaged changes move with
    their file and stay unstaged; untracked files inside a moved folder move with it.
    ``force`` (git's ``mv -f``): a file SRC replaces a file or link at DST, tracked or not
    (its stage entry too); a folder is never overwritten, nor moved over anything.
    """
    src_rel, dst_rel = to_store_path(store, src, cwd), to_store_path(store, dst, cwd)
    if not src_rel:
        raise DsError("cannot move the working folder itself; name a file or folder inside it")
    root = str(store.worktree)
    with store.locked():
        editor = TreeEditor(store.meta, store.staged_tree())
        files = [src_rel] if editor.get(src_rel) is not None else editor.files_under(src_rel)
        if not files:
            raise DsError(f"{src} is not versioned; `ds add` it first (or move it with plain mv)")
        if lstat_inside(root, src_rel) is None:
            scope = store.in_scope()
            if not any(scope(p) for p in files):  # git mv refuses paths outside its sparse checkout too
                raise DsError(f"{src} is outside the checked-out part of this working folder "
                              "(worktree.sparse), so there is nothing here to move; a folder added from "
                              "a URL is moved by adding the URL again with another --to")
            raise DsError(f"{src} is versioned but missing from the working folder; "
                          f"`ds restore {src}` first")
        dst_rel = _move_target(root, src_rel, dst_rel, dst)
        if not outside_git(dst_rel):
            raise DsError(f"{dst_rel} is inside git's folder {GIT_DIR}, which is never versioned; choose "
                          "another name")
        if dst_rel == src_rel or dst_rel.startswith(src_rel + "/"):
            raise DsError(f"cannot move {src} into itself ({dst_rel})")
        there = lstat_inside(root, dst_rel)
        overwritten = None
        if there is not None and force:  # as git's: only a file overwrites a file
            if stat.S_ISDIR(there.st_mode) or editor.files_under(dst_rel):
                raise DsError(f"cannot overwrite {dst_rel}: it is a folder here or in the stage (mv -f "
                              "replaces files only)")
            if editor.get(src_rel) is None:
                raise DsError(f"cannot move folder {src} over {dst_rel}, even with -f: remove {dst_rel} "
                              "first or choose another name")
            overwritten = dst_rel
        elif there is not None:
            raise DsError(f"{dst_rel} already exists; remove it or choose another name "
                          "(`ds mv -f` replaces a file)")
        elif editor.get(dst_rel) is not None and force:
            overwritten = dst_rel  # staged but gone from the folder: the move's entry replaces it
        elif editor.get(dst_rel) is not None or editor.files_under(dst_rel):
            raise DsError(f"{dst_rel} is staged though missing from the working folder; "
                          f"`ds rm {dst_rel}` (or `ds restore --staged {dst_rel}`) first")
        moved = [(p, dst_rel + p[len(src_rel):]) for p in files]
        cache = store.stat_cache()
        known = _known_hashes(root, cache, files)
        if overwritten is not None:
            cache.drop(overwritten)
        os.makedirs(os.path.join(root, parent_of(dst_rel)), exist_ok=True)
        src_path, dst_path = os.path.join(root, src_rel), os.path.join(root, dst_rel)
        # the file -f replaces is kept under a temp name (never versioned) until the stage
        # has the move: a failure then puts both back, not SRC alone
        kept = _keep_aside(dst_path) if overwritten is not None and there is not None else None
        os.rename(src_path, dst_path)
        try:
            _stage_move(store, editor, src_rel, moved)
        except BaseException:
            os.rename(dst_path, src_path)
            if kept is not None:
                os.rename(kept, dst_path)
            raise
        if kept is not None:
            os.unlink(kept)
        _carry_cache(root, cache, moved, known)
    return MoveReport(src_rel, dst_rel, moved, overwritten)


def _keep_aside(path: str) -> str:
    """A second name for the file or link at ``path`` (``.ds-tmp-PID-N`` beside it, which no
    scan versions): a hard link, or a copy where the file system has none."""
    import shutil

    folder = os.path.dirname(path)
    n = 0
    while os.path.lexists(kept := os.path.join(folder, f"{TEMP_PREFIX}{os.getpid()}-{n}")):
        n += 1
    try:
        os.link(path, kept, follow_symlinks=False)
    except OSError:
        shutil.copy2(path, kept, follow_symlinks=False)
    return kept


def _move_target(root: str, src_rel: str, dst_rel: str, dst: str) -> str:
    """Where SRC lands: DST, or DST/name when DST is a folder; every existing parent of it
    must be a real folder (a file or a link on the way is refused, never followed)."""
    st = lstat_inside(root, dst_rel) if dst_rel else os.lstat(root)
    if st is not None and stat.S_ISDIR(st.st_mode):
        dst_rel = check_relpath(join(dst_rel, src_rel.rpartition("/")[2]))
    folder = ""
    for part in parent_of(dst_rel).split("/") if parent_of(dst_rel) else []:
        folder = join(folder, part)
        st = lstat_inside(root, folder)
        if st is None:
            break
        if not stat.S_ISDIR(st.st_mode):
            raise DsError(f"cannot move into {dst}: {folder} is not a folder")
    return dst_rel


def _known_hashes(root: str, cache: StatCache, files: list[str]) -> dict[str, bytes]:
    """The stat cache's hashes of files about to move: a moved file need not be read again."""
    out = {}
    for p in files:
        raw = lstat_inside(root, p)
        st = Stat.of(raw) if raw is not None else None
        h = cache.get(p, st) if st is not None else None
        if h is not None:
            out[p] = h
    return out


def _stage_move(store: Store, editor: TreeEditor, src_rel: str, moved: list[tuple[str, str]]) -> None:
    from dataclasses import replace

    entries = [(new, editor.get(old)) for old, new in moved]
    editor.remove(src_rel)
    for new, e in entries:
        name = new.rpartition("/")[2]
        editor.set(new, e if e.name == name else replace(e, name=name))
    store.set_stage(editor.write())


def _carry_cache(root: str, cache: StatCache, moved: list[tuple[str, str]],
                 known: dict[str, bytes]) -> None:
    for old, new in moved:
        cache.drop(old)
        raw = lstat_inside(root, new)
        st = Stat.of(raw) if raw is not None else None
        if old in known and st is not None:
            cache.put(new, st, known[old])
    cache.save()
