"""The fast answer to `ds status` on an unchanged working folder.

After a full status proves the folder equal to HEAD, the stat cache records that commit
(``clean_head``) with exactly its files. Next time, if HEAD is still that commit, nothing
is staged, and every file's stat data matches, the answer is "nothing changed" without
opening the metadata database, decoding a manifest or reading a file. Any doubt (a
stage, a sparse folder, a new or missing or touched file, a racy entry) returns False
and the caller runs the full status. This module deliberately imports no pygit2, and
its walk builds no per-file objects: it is the whole cost of a no-op `ds status`.
"""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

from .paths import IGNORE_FILE, STORE_DIR, STORE_ENV
from .statcache import RACY_NS, StatCache


def store_dir(start: str) -> Path | None:
    """The store a command uses, or None: ``DSSTORE_DIR`` when set (as git's ``GIT_DIR``),
    else the nearest ``.dsstore`` at or above ``start`` (``store.locate_store`` without the
    error, and without importing the store's modules)."""
    env = os.environ.get(STORE_ENV)
    if env:
        path = Path(env).expanduser().absolute()
        return path if path.name == STORE_DIR and (path / "config").is_file() else None
    here = Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / STORE_DIR / "config").is_file():
            return folder / STORE_DIR
    return None


def head_commit(meta: Path) -> str | None:
    """HEAD's commit id read from the git files themselves (loose or packed ref)."""
    try:
        head = (meta / "HEAD").read_text().strip()
    except OSError:
        return None
    if not head.startswith("ref: "):
        return head if len(head) == 40 else None
    ref = head[5:]
    try:
        return (meta / ref).read_text().strip()
    except OSError:
        pass
    try:
        for line in (meta / "packed-refs").read_text().splitlines():
            sha, _, name = line.partition(" ")
            if name == ref:
                return sha
    except OSError:
        return None
    return None


def quick_clean(start: str) -> bool:
    """True only when the working folder is certainly unchanged since HEAD; else look fully."""
    store = store_dir(start)
    if store is None or (store / "STAGE").exists():
        return False
    try:
        config = tomllib.loads((store / "config").read_text("utf-8"))
    except (OSError, ValueError):
        return False
    if config.get("store", {}).get("format") != 1 or config.get("worktree", {}).get("sparse"):
        return False
    try:
        if not (store / "meta" / "HEAD").read_bytes().startswith(b"ref: "):
            return False  # detached: the full status says so
    except OSError:
        return False
    head = head_commit(store / "meta")
    cache = StatCache(store / "cache" / "stat")
    if head is None or cache.clean_head != head:
        return False
    unchanged = _walk_unchanged(str(store.parent), cache)
    if unchanged is not None:
        return unchanged
    from .scan import scan  # a .dsignore somewhere: let the scanner apply it

    result = scan(str(store.parent))
    if result.skipped or result.bad_names or result.files.keys() != set(cache.paths()):
        return False
    return all(cache.get(path, st) is not None for path, st in result.files.items())


def _walk_unchanged(root: str, cache: StatCache) -> bool | None:
    """Every file under ``root`` matches its cache row, and no file is new or gone.

    The same answer as comparing ``scan()`` with the cache, minus the objects: one
    ``lstat`` and one tuple comparison per file, stopping at the first difference.
    None when a folder holds a ``.dsignore``, whose rules only the scanner applies.
    """
    # statcache.racy, inlined: a file changed within a tick of the cache's writing is unsure
    fine, coarse = cache.written_ns - RACY_NS, cache.written_ns - 2_000_000_000
    with_rows = 0
    folders = [""]
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(os.path.join(root, folder) if folder else root) as it:
                listing = list(it)
        except (FileNotFoundError, NotADirectoryError):
            return False
        if any(de.name == IGNORE_FILE for de in listing):  # only the scanner applies its rules
            return None
        entries = cache.rows(folder)
        with_rows += bool(entries)
        seen = 0
        for de in listing:
            name = de.name
            if name.casefold() == STORE_DIR:
                if folder:  # a nested store: the full status reports it
                    return False
                continue
            if not name.isascii():
                try:
                    name.encode("utf-8")
                except UnicodeEncodeError:
                    return False
            if de.is_dir(follow_symlinks=False):
                folders.append(f"{folder}/{name}" if folder else name)
                continue
            row = entries.get(name)
            if row is None:
                return False
            try:
                st = de.stat(follow_symlinks=False)
            except FileNotFoundError:
                return False
            if (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino) != row[:4]:
                return False
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                return False
            m, c = st.st_mtime_ns, st.st_ctime_ns
            if (m if m > c else c) >= (fine if m % 1_000_000_000 else coarse):
                return False
            seen += 1
        if seen != len(entries):
            return False
    return with_rows == len(cache.folders())
