"""Copy-on-write edits of a version's folder tree.

Staging loads only the folders on the paths it touches; writing rewrites only those
folders and their ancestors, so a change costs what changed, not the dataset's size.
"""

from __future__ import annotations

from .manifest import FileEntry
from .meta import MetaStore
from .paths import join


class _Node:
    __slots__ = ("oid", "files", "dirs", "record", "base", "dirty")

    def __init__(self, oid: str | None):
        self.oid = None if oid is None else str(oid)
        self.files: dict[str, FileEntry] | None = None
        self.dirs: dict[str, _Node] | None = None
        self.record: str | None = None  # the root's dataset record blob (MetaStore.Folder)
        self.base: tuple[str, dict[str, FileEntry]] | None = None  # see MetaStore.write_folder
        self.dirty = False


class TreeEditor:
    def __init__(self, meta: MetaStore, base: str | None):
        self.meta = meta
        self.root = _Node(base)
        # the last folder's chain: an add sets files folder by folder, so most lookups are
        # this one. Dropped whenever a folder leaves the tree (its nodes would be stale)
        self._last: tuple[str, list[_Node]] | None = None

    def _load(self, node: _Node, where: str) -> None:
        if node.files is not None:
            return
        if node.oid is None:
            node.files, node.dirs = {}, {}
            return
        folder = self.meta.read_folder(node.oid, where)
        node.files = dict(folder.files)
        node.dirs = {name: _Node(oid) for name, oid in folder.dirs.items()}
        node.record = folder.record
        node.base = folder.base

    def _folder(self, folder: str, create: bool) -> list[_Node] | None:
        """Nodes from the root down to ``folder``; None if absent and not created."""
        if self._last is not None and self._last[0] == folder:
            return self._last[1]
        node = self.root
        self._load(node, "")
        chain = [node]
        where = ""
        if not folder:
            return chain
        for part in folder.split("/"):
            child = node.dirs.get(part)
            if child is None:
                if not create:
                    return None
                node.files.pop(part, None)  # a file becomes a folder
                child = node.dirs[part] = _Node(None)
            where = join(where, part)
            self._load(child, where)
            node = child
            chain.append(node)
        self._last = (folder, chain)
        return chain

    @staticmethod
    def _touch(chain: list[_Node]) -> None:
        for n in chain:
            n.dirty = True

    def get(self, path: str) -> FileEntry | None:
        folder, _, name = path.rpartition("/")
        chain = self._folder(folder, create=False)
        return chain[-1].files.get(name) if chain else None

    def set(self, path: str, entry: FileEntry) -> None:
        folder, _, name = path.rpartition("/")
        chain = self._folder(folder, create=True)
        node = chain[-1]
        if node.files.get(name) == entry:
            return
        if node.dirs.pop(name, None) is not None:  # a folder becomes a file
            self._last = None
        node.files[entry.name if entry.name == name else name] = entry  # one string, not two
        self._touch(chain)

    def remove(self, path: str) -> bool:
        """Remove a file or a whole folder; True if something was there."""
        folder, _, name = path.rpartition("/")
        chain = self._folder(folder, create=False)
        if not chain:
            return False
        node = chain[-1]
        self._last = None
        if node.files.pop(name, None) is None and node.dirs.pop(name, None) is None:
            return False
        self._touch(chain)
        return True

    def files_under(self, folder: str) -> list[str]:
        """Paths of every file at or below ``folder`` ("" for all)."""
        chain = self._folder(folder, create=False)
        if not chain:
            return []
        out: list[str] = []
        stack = [(folder, chain[-1])]
        while stack:
            where, node = stack.pop()
            self._load(node, where)
            out.extend(join(where, n) for n in node.files)
            stack.extend((join(where, n), c) for n, c in node.dirs.items())
        return sorted(out)

    def files_in(self, folder: str) -> list[str]:
        """Paths of the files directly in ``folder`` (not below it)."""
        chain = self._folder(folder, create=False)
        return [join(folder, n) for n in chain[-1].files] if chain else []

    def names_in(self, folder: str) -> list[str]:
        """File and subfolder names directly in ``folder`` (empty if it does not exist)."""
        chain = self._folder(folder, create=False)
        return [*chain[-1].files, *chain[-1].dirs] if chain else []

    def set_record(self, blob: str | None) -> None:
        """Keep a dataset's record (a blob) in the root folder, as ``.ds.meta``."""
        self._load(self.root, "")
        self.root.record = blob
        self.root.dirty = True

    def write(self) -> str:
        written: list[_Node] = []
        try:
            with self.meta.new_objects():  # the changed folders: one new pack, not a file each
                oid = self._write(self.root, "", written)
        except BaseException:
            # the objects are only kept once the batch ends: a folder written before the
            # failure is written again by the next write, or a tree would name nothing
            for node in written:
                node.dirty = True
            raise
        return oid if oid is not None else self.meta.empty_tree

    def _write(self, node: _Node, where: str, written: list[_Node]) -> str | None:
        if not node.dirty:
            return node.oid
        dirs = {}
        for name, child in node.dirs.items():
            oid = self._write(child, join(where, name), written)
            if oid is not None:
                dirs[name] = oid
        oid = self.meta.write_folder(list(node.files.values()), dirs, node.record if not where else None,
                                     node.base)
        node.oid, node.dirty = oid, False
        written.append(node)
        return oid
