"""The fast answer to `ds status` on an unchanged working folder.

After a full status proves the folder equal to HEAD, the stat cache records that commit
(``clean_head``) with exactly its files. Next time, if HEAD is still that commit, nothing
is staged, and every file's stat data matches, the answer is "nothing changed" without
opening the metadata database, decoding a manifest or reading a file. A sparse folder's
mark names its checked-out part too (``clean_key``). Any doubt (a stage, another
checked-out part, a new or missing or touched file, a racy entry) returns False
and the caller runs the full status. This module deliberately imports no pygit2, and
its walk runs no Python code per file: it is the whole cost of a no-op `ds status`.
After a change, the same walk names the folders a status must compare with HEAD
(``changed_folders``): a folder whose rows changed since the mark is listed in the
cache's ``off_head``, and every other one whose files match its rows holds HEAD's files.

Per folder, the walk lists the names, ``lstat``s each one relative to the folder's
descriptor (a shorter path lookup than the full path), and compares the sorted names and
the numbers (size, mtime_ns, ctime_ns, inode) with the stat cache's packed row as two
whole values; the loops over files are ``map``s over C functions. What remains per file
is the kernel's ``lstat`` and Python's ``stat_result``, so on a big tree (``PARALLEL_ROWS``)
the folders are split between processes, one per core (at most ``MAX_WORKERS``): the
walk forks after the cache is read, each child walks its share of the folders and writes
one line to a pipe. Threads would not help: building a ``stat_result`` holds the GIL.
"""

from __future__ import annotations

import marshal
import os
import stat
import struct
import sys
from itertools import chain, compress
from operator import attrgetter, not_

from .paths import GIT_DIR, IGNORE_FILE, STORE_DIR, STORE_ENV
from .quickconfig import config_facts
from .statcache import RACY_NS, StatCache, clean_key

# Paths here are strings and files are read with open(): pathlib's import (with the
# modules it pulls in) cost a no-op status more than its walk of 20,000 files.


def store_dir(start: str) -> str | None:
    """The store a command uses, or None: ``DSSTORE_DIR`` when set (as git's ``GIT_DIR``),
    else the nearest ``.dsstore`` at or above ``start`` (``store.locate_store`` without the
    error, and without importing the store's modules)."""
    env = os.environ.get(STORE_ENV)
    if env:
        # as pathlib spells it (``store.locate_store``): absolute, without "." parts or
        # repeated slashes, and ".." left for the kernel to resolve after following links
        joined = os.path.join(os.getcwd(), os.path.expanduser(env))
        path = "/" + "/".join(part for part in joined.split("/") if part not in ("", "."))
        is_store = os.path.basename(path) == STORE_DIR and os.path.isfile(os.path.join(path, "config"))
        return path if is_store else None
    folder = os.path.realpath(start)
    while True:
        if os.path.isfile(os.path.join(folder, STORE_DIR, "config")):
            return os.path.join(folder, STORE_DIR)
        if os.path.exists(os.path.join(folder, STORE_DIR, "meta", "HEAD")):
            return None  # a store that lost its config: the full path names it (find_store)
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def read_text(path: str) -> str:
    """A small file's text (OSError if it cannot be read)."""
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        return f.read()


def head_commit(meta: str) -> str | None:
    """HEAD's commit id read from the git files themselves (loose or packed ref)."""
    try:
        head = read_text(os.path.join(meta, "HEAD")).strip()
    except OSError:
        return None
    if not head.startswith("ref: "):
        return head if len(head) == 40 else None
    ref = head[5:]
    try:
        return read_text(os.path.join(meta, ref)).strip()
    except OSError:
        pass
    try:
        for line in read_text(os.path.join(meta, "packed-refs")).splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
    except OSError:
        return None
    return None


def _marked(start: str) -> tuple[str, StatCache, list] | None:
    """(the working folder, its stat cache, the checked-out part) when the cache's clean
    mark is HEAD's and nothing is staged: the mark then vouches for every folder whose
    rows have not changed since (all but ``off_head``)."""
    store = store_dir(start)
    if store is None or os.path.exists(os.path.join(store, "STAGE")):
        return None
    config = config_facts(store)
    if config is None or config.get("store", {}).get("format") != 1:
        return None
    sparse = config.get("worktree", {}).get("sparse") or []
    meta = os.path.join(store, "meta")
    try:
        if not read_text(os.path.join(meta, "HEAD")).startswith("ref: "):
            return None  # detached: the full status says so
    except OSError:
        return None
    head = head_commit(meta)
    cache = StatCache(os.path.join(store, "cache", "stat"))
    if head is None or not isinstance(sparse, list) or cache.clean_head != clean_key(head, sparse) \
            or cache.upgraded:
        return None  # (an old format: the full status rewrites it)
    return os.path.dirname(store), cache, sparse


def quick_clean(start: str) -> bool:
    """True only when the working folder is certainly unchanged since HEAD; else look fully."""
    marked = _marked(start)
    if marked is None or marked[1].off_head:
        return False
    root, cache, _sparse = marked
    unchanged = _walk_unchanged(root, cache)
    return unchanged if unchanged is not None else _scanned_unchanged(root, cache)


def _scanned_unchanged(root: str, cache: StatCache) -> bool:
    """``quick_clean`` where a ``.dsignore`` is: the scanner applies its rules."""
    from .scan import scan

    result = scan(root)
    if result.skipped or result.bad_names or result.files.keys() != set(cache.paths()):
        return False
    return all(cache.get(path, st) is not None for path, st in result.files.items())


def quick_look(start: str) -> tuple[bool, set[str] | None]:
    """(whether the working folder is certainly unchanged since HEAD, as ``quick_clean``;
    the folders that may differ from HEAD, or None). One walk that goes on past a
    difference (``changed_folders``) answers both; the CLI's `ds status` asks this first
    and hands the folders to the status that follows, so a status after a change walks
    the folder once. None for the folders when the mark does not apply, the folder is
    sparse, or only the full status can tell (a ``.dsignore``)."""
    marked = _marked(start)
    if marked is None:
        return False, None
    root, cache, sparse = marked
    if not sparse:
        found = changed_folders(root, cache)
        if found is not None:
            return not found, found
    if cache.off_head:
        return False, None
    unchanged = _walk_unchanged(root, cache) if sparse else None
    return (unchanged if unchanged is not None else _scanned_unchanged(root, cache)), None


PARALLEL_ROWS = 10_000  # cached files below which one process walks (a fork costs ~ms;
# measured at 20k files: the split walk took 0.73x the time of one process)
MAX_WORKERS = 4  # processes walking at once, at most
SPLIT_FOLDERS = 8  # folders waiting to be walked before they are shared out

_COLUMNS = tuple(map(attrgetter, ("st_size", "st_mtime_ns", "st_ctime_ns", "st_ino")))  # the cache's order
_MODE = attrgetter("st_mode")
_KINDS = frozenset({stat.S_IFREG, stat.S_IFLNK, stat.S_IFDIR})  # anything else: the full status says what
_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# folders are opened once and their files lstat'ed relative to them, where the OS allows
_FDS = {os.stat, os.open} <= os.supports_dir_fd and os.listdir in os.supports_fd  # (lstat: stat's set)


def _walk_unchanged(root: str, cache: StatCache, workers: int | None = None) -> bool | None:
    """Every file under ``root`` matches its cache row, and no file is new or gone.

    The same answer as comparing ``scan()`` with the cache, minus the objects, stopping
    at the first difference. None when a folder holds a ``.dsignore``, whose rules only the
    scanner applies. ``workers``: processes to walk with (default: one per core, when the
    cache holds ``PARALLEL_ROWS`` files or more).
    """
    begun = _begin(root, cache, workers)
    if begun is None:
        return False
    walk, counts, workers = begun
    try:
        todo = [""]
        if workers > 1:  # alone until enough folders wait, then shared out
            while todo and len(todo) < SPLIT_FOLDERS:
                found = walk.folder(todo.pop())
                if type(found) is not list:
                    return found
                todo.extend(found)
            if len(todo) > 1:
                return _in_parallel(walk, _shares(todo, workers, counts), len(counts))
        outcome = walk.run(todo)
        return outcome if outcome is not True else walk.with_rows == len(counts)
    finally:
        if _FDS:
            os.close(walk.top)


def _begin(root: str, cache: StatCache, workers: int | None) -> tuple[_Walk, dict[str, int], int] | None:
    """A walk from ``root`` (its folder opened: the caller closes ``walk.top``), the cache's
    rows per folder, and the processes to walk with (``workers``, else one per core when
    the cache holds ``PARALLEL_ROWS`` files or more); None if ``root`` cannot be opened."""
    try:
        top = os.open(root, _DIR) if _FDS else root
    except OSError:
        return None
    try:
        counts = cache.row_counts()
    except BaseException:
        if _FDS:
            os.close(top)
        raise
    if workers is None:
        workers = fork_cores() if sum(counts.values()) >= PARALLEL_ROWS else 1
    return _Walk(top, root, cache), counts, workers


class _Walk:
    """Folders checked against the stat cache; ``with_rows`` counts those that had rows."""

    def __init__(self, top: int | str, root: str, cache: StatCache):
        self.top, self.root, self.cache = top, root, cache
        # statcache.racy, per folder: a file changed within a tick of the cache's writing is unsure
        self.fine, self.coarse = cache.written_ns - RACY_NS, cache.written_ns - 2_000_000_000
        self.with_rows = 0

    def run(self, todo: list[str], go_on=None) -> bool | None:
        """Walk the folders of ``todo`` and all below them; ``go_on()`` False stops it."""
        while todo:
            found = self.folder(todo.pop())
            if type(found) is not list:
                return found
            todo.extend(found)
            if go_on is not None and not go_on():
                return False
        return True

    def folder(self, folder: str) -> list[str] | bool | None:
        """The subfolders of ``folder`` if its files match the cache; False if not (or in
        doubt); None if it holds a ``.dsignore``."""
        listed = self.listing(folder)
        if type(listed) is not tuple:
            return listed
        joined, stats, subfolders = listed
        return subfolders if self._same(folder, joined, stats) else False

    def listing(self, folder: str) -> tuple[str, list[os.stat_result], list[str]] | bool | None:
        """``folder``'s files (their sorted names joined by "/", their lstats) and its
        subfolders; False in doubt (what only the scanner reports: a nested store, a name
        that is not UTF-8, a special file; or a folder gone meanwhile); None if it holds a
        ``.dsignore``."""
        try:
            fd = os.open(folder or ".", _DIR | _NOFOLLOW, dir_fd=self.top) if _FDS else None
        except OSError:
            return False
        try:
            names = os.listdir(fd if _FDS else os.path.join(self.root, folder))
            if IGNORE_FILE in names:  # only the scanner applies its rules
                return None
            names.sort()
            joined = "/".join(names)
            if STORE_DIR in joined.casefold():  # this store, skipped; a nested one: reported
                if folder or sum(n.casefold() == STORE_DIR for n in names) != 1:
                    return False
                names = [n for n in names if n.casefold() != STORE_DIR]
                joined = "/".join(names)
            if GIT_DIR in joined.casefold():  # git's folder: never versioned (as the scan)
                names = [n for n in names if n.casefold() != GIT_DIR]
                joined = "/".join(names)
            if not joined.isascii() and not all(map(_utf8, names)):
                return False
            if _FDS:
                lstat = os.lstat
                stats = [lstat(n, dir_fd=fd) for n in names]
            else:
                stats = list(map(os.lstat, map(os.path.join(self.root, folder, "").__add__, names)))
        except OSError:  # gone since listed, or unreadable: the full status tells
            return False
        finally:
            if fd is not None:
                os.close(fd)
        kinds = list(map(stat.S_IFMT, map(_MODE, stats)))
        if not _KINDS.issuperset(kinds):
            return False
        subfolders: list[str] = []
        if stat.S_IFDIR in kinds:
            files = list(map(stat.S_IFDIR.__ne__, kinds))
            prefix = f"{folder}/" if folder else ""
            subfolders = [prefix + n for n in compress(names, map(not_, files))]
            names, stats = list(compress(names, files)), list(compress(stats, files))
            joined = "/".join(names)
        return joined, stats, subfolders

    def _same(self, folder: str, joined: str, stats: list[os.stat_result]) -> bool:
        """The files of ``folder`` (sorted names joined, their lstats) are its cache rows."""
        stored = self.cache.packed(folder)
        if stored is None or not stats:
            return stored is None and not stats
        self.with_rows += 1
        if joined != stored[0]:
            return False
        columns = [list(map(column, stats)) for column in _COLUMNS]
        try:
            if struct.pack(f"{4 * len(stats)}q", *chain.from_iterable(columns)) != stored[1]:
                return False
        except struct.error:  # a time or an inode past 2**63: kept as plain ints
            if tuple(chain.from_iterable(columns)) != stored[1]:
                return False
        mtimes, ctimes = columns[1], columns[2]
        if max(max(mtimes), max(ctimes)) < self.coarse:
            return True  # older than both windows: none is racy
        return not any((m if m > c else c) >= (self.fine if m % 1_000_000_000 else self.coarse)
                       for m, c in zip(mtimes, ctimes, strict=True))


def changed_folders(root: str, cache: StatCache, workers: int | None = None) -> set[str] | None:
    """The folders a status after a change must compare with the clean mark's version:
    those whose files differ from their cache rows (a name, the stat data, or a time too
    recent to trust), those with rows but gone from disk, and those the cache no longer
    vouches for (``off_head``). Every other folder's files are the mark's, unchanged.
    None when only the full comparison can tell: a ``.dsignore`` (its rules are the
    scanner's) or anything the scanner reports (see ``_Walk.listing``). The walk goes on
    past a difference; on a big tree the folders are shared between processes as in the
    no-op walk (``workers``: as there)."""
    begun = _begin(root, cache, workers)
    if begun is None:
        return None
    walk, counts, workers = begun
    try:
        found = _Found(walk)
        todo = [""]
        while todo and (workers <= 1 or len(todo) < SPLIT_FOLDERS):
            if not found.visit(todo.pop(), todo):
                return None
        if todo and not _found_in_parallel(found, _shares(todo, workers, counts)):
            return None
    finally:
        if _FDS:
            os.close(walk.top)
    return found.differ | {f for f in counts if f not in found.seen} | cache.off_head


class _Found:
    """What a walk for ``changed_folders`` saw: every folder, and those that differ."""

    def __init__(self, walk: _Walk):
        self.walk = walk
        self.differ: set[str] = set()
        self.seen: set[str] = set()

    def visit(self, folder: str, todo: list[str]) -> bool:
        """Compare one folder, its subfolders added to ``todo``; False when in doubt."""
        listed = self.walk.listing(folder)
        if type(listed) is not tuple:
            return False
        joined, stats, subfolders = listed
        self.seen.add(folder)
        if not self.walk._same(folder, joined, stats):
            self.differ.add(folder)
        todo.extend(subfolders)
        return True

    def run(self, todo: list[str]) -> bool:
        while todo:
            if not self.visit(todo.pop(), todo):
                return False
        return True


def _found_in_parallel(found: _Found, shares: list[list[str]]) -> bool:
    """Walk the first share here and each other one in a forked child, which sends back
    what it saw (marshalled); False if any walk was in doubt or a child gave no answer."""
    children: list[tuple[int, int]] = []  # (pid, the pipe it answers on)
    try:
        for share in shares[1:]:
            read, write = os.pipe()
            try:
                pid = os.fork()
            except OSError:
                os.close(read)
                os.close(write)
                shares[0].extend(share)  # no process to spare: walked here
                continue
            if pid == 0:  # the child: walk, answer, and leave without any clean-up
                try:
                    os.close(read)
                    mine = _Found(found.walk)
                    answer = marshal.dumps((list(mine.differ), list(mine.seen))) if mine.run(share) else b""
                    view = memoryview(answer)
                    while view:
                        view = view[os.write(write, view):]
                finally:
                    os._exit(0)
            os.close(write)
            children.append((pid, read))
        if not found.run(shares[0]):
            return False  # in doubt here: the children are ended (below), their answers unneeded
        ok = True
        while children:  # each answer read whole before its child is reaped (a pipe holds 64 KiB)
            pid, read = children[0]
            parts = []
            while part := os.read(read, 1 << 16):
                parts.append(part)
            children.pop(0)
            os.close(read)
            os.waitpid(pid, 0)
            try:
                differ, seen = marshal.loads(b"".join(parts))
            except (EOFError, ValueError, TypeError):
                ok = False  # in doubt there, or killed: no answer
                continue
            found.differ.update(differ)
            found.seen.update(seen)
        return ok
    finally:
        if children:  # interrupted: the children still walking are ended
            import signal

            for pid, read in children:
                os.close(read)
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except OSError:  # reaped elsewhere
                    pass


def _utf8(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def fork_cores() -> int:
    """Processes to walk (here) or write files (``materialize``) with: one per core this
    process may use, on Linux only (a fork there copies nothing but this process), and only
    while no other thread runs (a child must not inherit a lock another thread holds)."""
    threading = sys.modules.get("threading")
    if sys.platform != "linux" or (threading is not None and threading.active_count() > 1):
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return max(1, min(cores, MAX_WORKERS))


def _shares(todo: list[str], workers: int, counts: dict[str, int]) -> list[list[str]]:
    """``todo`` split into ``workers`` lists of about equal cached files (below each folder)."""
    weight = dict.fromkeys(todo, 1)
    for folder, rows in counts.items():
        while folder and folder not in weight:
            folder = folder.rpartition("/")[0]
        if folder in weight:
            weight[folder] += rows
    shares: list[list[str]] = [[] for _ in range(workers)]
    loads = [0] * workers
    for folder in sorted(todo, key=weight.__getitem__, reverse=True):
        least = loads.index(min(loads))
        shares[least].append(folder)
        loads[least] += weight[folder]
    return [share for share in shares if share]


class _Child:
    """A forked walker of one share: its pid, the pipe it reports on, and its answer."""

    def __init__(self, pid: int, pipe: int):
        self.pid, self.pipe = pid, pipe
        self.outcome: bool | None = True
        self.with_rows = 0
        self.done = self.killed = False

    def finish(self, wait: bool) -> bool:
        """Reap the child if it ended (or wait for it); True once its answer is in."""
        if not self.done:
            try:
                pid, _status = os.waitpid(self.pid, 0 if wait else os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its answer is unknown
                pid = self.pid
            if pid == 0:
                return False
            self.done = True
            line = os.read(self.pipe, 64)
            os.close(self.pipe)
            if line[:1] == b"T" and line[1:].isdigit():
                self.with_rows = int(line[1:])
            else:  # changed, a .dsignore, or no answer at all (killed, failed): not clean
                self.outcome = None if line == b"N" else False
        return True

    def stop(self) -> None:
        """End the child if it still runs (its answer is then unknown: ``killed``)."""
        if not self.done:
            self.killed = True
            import signal

            try:
                os.kill(self.pid, signal.SIGKILL)
            except OSError:
                pass
            self.finish(wait=True)


def _fork(walk: _Walk, share: list[str]) -> _Child | None:
    """Walk ``share`` in a child process; None if no process could be made."""
    read, write = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read)
        os.close(write)
        return None
    if pid == 0:  # the child: walk, write one line, and leave without any clean-up
        try:
            os.close(read)
            walk.with_rows = 0
            outcome = walk.run(share)
            os.write(write, b"T%d" % walk.with_rows if outcome is True else b"N" if outcome is None else b"F")
        finally:
            os._exit(0)
    os.close(write)
    return _Child(pid, read)


def _in_parallel(walk: _Walk, shares: list[list[str]], folders: int) -> bool | None:
    """Walk the first share here and each other one in a child; the answers combined."""
    children: list[_Child] = []
    stopped = False  # by a child's answer: a difference or a .dsignore in its share

    def go_on() -> bool:
        nonlocal stopped
        stopped = any(c.finish(False) and c.outcome is not True for c in children)
        return not stopped

    try:
        for share in shares[1:]:
            child = _fork(walk, share)
            if child is None:
                shares[0].extend(share)  # no process to spare: walked here
            else:
                children.append(child)
        outcome = walk.run(shares[0], go_on)
        if outcome is True:
            for child in children:
                child.finish(wait=True)
    finally:
        for child in children:
            child.stop()
    if outcome is not True and not stopped:
        return outcome  # found here (the children were stopped, their answers unknown)
    answers = [c.outcome for c in children if not c.killed]
    if False in answers or None in answers:
        return False if False in answers else None
    return walk.with_rows + sum(c.with_rows for c in children) == folders
