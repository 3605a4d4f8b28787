"""What a version holds, folder by folder (``ds ls``), read from its trees alone.

Nothing per file is kept: rows are yielded as each folder is read, so listing a
million files recursively holds one folder's rows (and the metadata cache's bound).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from .errors import DsError
from .manifest import KIND_NAMES, FileEntry
from .paths import join
from .store import Store

FOLDER = "folder"


@dataclass(frozen=True, slots=True)
class Listed:
    path: str  # from the version's root
    kind: str  # file, exec, link, external, or folder
    size: int | None  # None for a folder

    def as_json(self) -> dict:
        return {"path": self.path, "kind": self.kind, "size": self.size}


def list_version(store: Store, rev: str = "HEAD", path: str = "",
                 recursive: bool = False) -> Iterator[Listed]:
    """The entries of version ``rev`` at ``path`` (a folder's content, or the file itself),
    sorted by name; ``recursive``: every file below instead of one level.

    The path is checked before the first row is yielded, so a wrong one is an error
    before any output. A store with no version yet lists nothing."""
    if rev == "HEAD" and store.head() is None:  # as `ds log`: nothing yet, nothing listed
        if path:
            raise DsError(f"{path} is not in any version: there is no version yet")
        return iter(())
    commit_id = store.resolve(rev)
    found = store.meta.lookup(store.meta.tree_of(commit_id), path)
    if found is None:
        raise DsError(f"{path} is not in version {commit_id[:12]}; see `ds ls {rev}` for what it holds")
    if isinstance(found, FileEntry):
        return iter([_file(path, found)])
    return _walk(store, found, path, recursive)


def holds(store: Store, rev: str, path: str, folder: bool = False) -> bool:
    """True when version ``rev`` holds ``path`` (a file or a folder; ``folder``: a folder
    only); False for HEAD while there is no version yet."""
    if rev == "HEAD" and store.head() is None:
        return False
    found = store.meta.lookup(store.meta.tree_of(store.resolve(rev)), path)
    return found is not None and not (folder and isinstance(found, FileEntry))


def _file(path: str, e: FileEntry) -> Listed:
    return Listed(path, KIND_NAMES.get(e.kind, str(e.kind)), e.size)


def _walk(store: Store, tree: str, where: str, recursive: bool) -> Iterator[Listed]:
    folder = store.meta.read_folder(tree, where)
    names = sorted([*folder.files, *folder.dirs])
    for name in names:
        path = join(where, name)
        if name in folder.files:
            yield _file(path, folder.files[name])
        elif recursive:
            yield from _walk(store, folder.dirs[name], path, True)
        else:
            yield Listed(path, FOLDER, None)
