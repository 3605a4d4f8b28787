"""Walking a working folder: which files and links it holds, with their stat data.

``.dsstore`` and git's ``.git`` are never entered; ``.dsignore`` files (gitignore syntax, one per folder if
wanted, patterns relative to that folder) are honoured. Links are reported as links and
never followed. Special files (fifos, sockets, devices) and names that are not UTF-8 are
reported separately so callers can say so instead of failing half way.
"""

from __future__ import annotations

import os
import stat
from array import array
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .manifest import EXEC, FILE, LINK
from .paths import GIT_DIR, IGNORE_FILE, STORE_DIR, STORE_INIT_PREFIX, TEMP_PREFIX, join, temp_pid

if TYPE_CHECKING:
    from collections.abc import Iterable


@dataclass(frozen=True, slots=True)
class Stat:
    size: int
    mtime_ns: int
    ino: int
    kind: int  # FILE, EXEC or LINK
    ctime_ns: int = 0  # changes on every write, even one that restores the mtime (cp -p, rsync -t)

    @classmethod
    def of(cls, st: os.stat_result) -> Stat | None:
        mode = st.st_mode
        if stat.S_ISLNK(mode):
            kind = LINK
        elif stat.S_ISREG(mode):
            kind = EXEC if mode & 0o100 else FILE
        else:
            return None
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, kind, st.st_ctime_ns)


def lstat_inside(root: str, rel: str, real_dirs: set[str] | None = None) -> os.stat_result | None:
    """``lstat`` of ``root/rel`` only if every parent component is a real folder; else None.

    A path whose parent is a link lies outside the working folder as far as versioning
    goes: it is never read, written or removed through that link.
    """
    parts = rel.split("/")
    folder = ""
    for part in parts[:-1]:
        folder = join(folder, part)
        if real_dirs is not None and folder in real_dirs:
            continue
        try:
            st = os.lstat(os.path.join(root, folder))
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISDIR(st.st_mode):
            return None
        if real_dirs is not None:
            real_dirs.add(folder)
    try:
        return os.lstat(os.path.join(root, rel))
    except (FileNotFoundError, NotADirectoryError):
        return None


@dataclass(slots=True)
class FolderFiles:
    """One folder's files, compactly: their names and a flat array of five numbers each
    (size, mtime_ns, ctime_ns, inode, kind). A million files cost ~100 MB this way
    instead of ~350 MB as a map of path -> Stat."""

    folder: str
    names: list[str] = field(default_factory=list)
    numbers: array | list[int] = field(default_factory=lambda: array("q"))

    def add(self, name: str, st: Stat) -> None:
        row = (st.size, st.mtime_ns, st.ctime_ns, st.ino, st.kind)
        if isinstance(self.numbers, array):
            try:
                row = array("q", row)  # all or nothing: extend() would keep part of a row
            except OverflowError:  # an inode or a time past 2**63 (a date after 2262): plain ints
                self.numbers = list(self.numbers)
        self.numbers.extend(row)
        self.names.append(name)

    def stat(self, i: int) -> Stat:
        size, mtime, ctime, ino, kind = self.numbers[5 * i : 5 * i + 5]
        return Stat(size, mtime, ino, kind, ctime)

    def path(self, i: int) -> str:
        return join(self.folder, self.names[i])


@dataclass
class ScanResult:
    files: dict[str, Stat] = field(default_factory=dict)
    # with ``compact``, the files are kept here instead of in ``files``, folder by folder
    compact: bool = False
    folders: list[FolderFiles] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # special files
    bad_names: list[str] = field(default_factory=list)  # not UTF-8, or holding a backslash
    temps: list[str] = field(default_factory=list)  # a checkout's temp files (one killed leaves them)
    ignoring: bool = False  # some .dsignore rule applied: tracked files may be hidden
    matched: int = 0  # files found in the version they were compared with (worktree_diff)


class _Ignore:
    """The stack of .dsignore specs that apply inside one folder."""

    def __init__(self, specs: tuple = ()):
        self.specs = specs

    def enter(self, root: str, folder: str) -> _Ignore:
        path = os.path.join(root, folder, IGNORE_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().splitlines()
        except (FileNotFoundError, NotADirectoryError):
            return self
        import pathspec  # only folders that have a .dsignore pay for it

        spec = pathspec.GitIgnoreSpec.from_lines(lines)
        return _Ignore((*self.specs, (folder, spec)))

    def ignored(self, rel: str, is_dir: bool) -> bool:
        for base, spec in self.specs:
            sub = rel[len(base) + 1 :] if base else rel
            if spec.match_file(sub + "/" if is_dir else sub):
                return True
        return False


class _NoIgnore(_Ignore):
    """No rule applies (``ds add -f``: the paths named are taken, ignored or not)."""

    def enter(self, root: str, folder: str) -> _Ignore:
        return self


def ignoring_folder(root: str, rel: str) -> str | None:
    """The folder whose .dsignore hides ``rel`` (a path on disk under ``root``), as the scan
    applies the rules, or None when no rule does."""
    ignore, folder = _Ignore().enter(root, ""), ""
    for part in rel.split("/")[:-1]:
        folder = f"{folder}/{part}" if folder else part
        ignore = ignore.enter(root, folder)
    full = os.path.join(root, rel)
    is_dir = os.path.isdir(full) and not os.path.islink(full)
    return next((base for base, spec in ignore.specs if _Ignore(((base, spec),)).ignored(rel, is_dir)), None)


def scan(root: str, only: list[str] | None = None, compact: bool = False,
         no_ignore: bool = False) -> ScanResult:
    """Stat every tracked-candidate file under ``root`` (or under the ``only`` paths).

    ``compact`` keeps the files in ``result.folders`` (see FolderFiles), not ``files``;
    ``no_ignore``: no .dsignore rule applies (git's ``add -f``)."""
    result = ScanResult(compact=compact)
    root_ignore = _NoIgnore() if no_ignore else _Ignore().enter(root, "")
    if only is None:
        _walk(root, "", root_ignore, result)
        return result
    for rel in sorted(set(only)):
        ignore = root_ignore
        parts = rel.split("/") if rel else []
        folder = ""
        for part in parts[:-1]:
            folder = join(folder, part)
            ignore = ignore.enter(root, folder)
        st = lstat_inside(root, rel) if rel else os.lstat(root)
        if st is None:
            continue
        if stat.S_ISDIR(st.st_mode):
            _walk(root, rel, ignore.enter(root, rel) if rel else ignore, result)
        elif rel and not ignore.ignored(rel, False):
            _record(result, rel, st)
        elif rel:
            result.ignoring = True
    return result


def scan_folders(root: str, folders: Iterable[str], compact: bool = False) -> ScanResult:
    """What ``scan`` finds directly inside each of ``folders`` (not below them): a status
    or an add that knows every other folder unchanged scans only these."""
    result = ScanResult(compact=compact)
    for folder in sorted(folders):
        if not walked_into(folder):
            continue
        ignore, above = _Ignore().enter(root, ""), ""
        for part in folder.split("/")[:-1] if folder else ():
            above = join(above, part)
            ignore = ignore.enter(root, above)
        if folder:
            st = lstat_inside(root, folder)
            if st is None or not stat.S_ISDIR(st.st_mode):
                continue  # gone, not a folder, or reached through a link: nothing in it is scanned
            if ignore.ignored(folder, True):
                result.ignoring = True
                continue
            ignore = ignore.enter(root, folder)
        _walk(root, folder, ignore, result, deep=False)
    return result


def walked_into(folder: str) -> bool:
    """Whether ``scan`` ever enters ``folder``: never a store's or git's folder, a store
    being made at the top, or a checkout's temp name (see ``_walk``)."""
    parts = folder.split("/") if folder else []
    if parts and parts[0].startswith(STORE_INIT_PREFIX):
        return False
    return not any(p.casefold() in (STORE_DIR, GIT_DIR) or temp_pid(p) is not None for p in parts)


def _record(result: ScanResult, rel: str, st: os.stat_result, folder: str | None = None,
            name: str = "") -> None:
    s = Stat.of(st)
    if s is None:
        result.skipped.append(rel)
    elif not result.compact:
        result.files[rel] = s
    else:
        if folder is None:
            folder, _, name = rel.rpartition("/")
        if not result.folders or result.folders[-1].folder != folder:
            result.folders.append(FolderFiles(folder))
        result.folders[-1].add(name, s)


def _walk(root: str, folder: str, ignore: _Ignore, result: ScanResult, deep: bool = True) -> None:
    try:
        it = os.scandir(os.path.join(root, folder))
    except (FileNotFoundError, NotADirectoryError):
        return
    subdirs = []
    if ignore.specs:
        result.ignoring = True
    with it:
        for de in it:
            name = de.name
            if name.casefold() in (STORE_DIR, GIT_DIR):  # never versioned: a store (this or a
                if folder and name.casefold() == STORE_DIR:  # nested one, reported), or git's
                    result.skipped.append(join(folder, name))
                continue
            rel = join(folder, name)
            if name.startswith(STORE_INIT_PREFIX) and not folder:  # a store being made here, or left
                continue  # by a killed `ds init` of another machine (the next init removes its own)
            if name.startswith(TEMP_PREFIX) and temp_pid(name) is not None:
                result.temps.append(rel)  # never versioned; a dead writer's is removed by checkout
                continue
            if not name.isascii():
                try:
                    name.encode("utf-8")
                except UnicodeEncodeError:
                    result.bad_names.append(rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
                    continue
            is_dir = de.is_dir(follow_symlinks=False)
            if ignore.specs and ignore.ignored(rel, is_dir):
                continue
            if "\\" in name:  # a folder separator on Windows: a version with it could not be got there
                result.bad_names.append(rel)
                continue
            if is_dir:
                if deep:
                    subdirs.append(rel)
            else:
                try:
                    _record(result, rel, de.stat(follow_symlinks=False), folder, name)
                except FileNotFoundError:
                    continue
    for rel in subdirs:
        _walk(root, rel, ignore.enter(root, rel), result)
