"""Differences between two versions, or a version and a set of entries.

Tree against tree costs what changed: equal subtree ids are skipped without reading.
Renames are pairs (removed path, added path) with identical non-empty content; they
are reported once, as renames, not also as an addition and a removal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .manifest import FileEntry
from .meta import MetaStore
from .paths import join

if TYPE_CHECKING:
    from .store import Store


@dataclass
class Diff:
    added: dict[str, FileEntry] = field(default_factory=dict)
    modified: dict[str, FileEntry] = field(default_factory=dict)  # the new entry
    removed: dict[str, FileEntry] = field(default_factory=dict)  # the old entry
    renamed: list[tuple[str, str]] = field(default_factory=list)
    old_sizes: dict[str, int] = field(default_factory=dict)  # of modified paths

    def __bool__(self) -> bool:
        return bool(self.added or self.modified or self.removed or self.renamed)

    def find_renames(self) -> None:
        by_hash: dict[tuple[bytes, int], list[str]] = {}
        for path in sorted(self.removed):
            e = self.removed[path]
            if e.size:
                by_hash.setdefault((e.hash, e.kind), []).append(path)
        for path in sorted(self.added):
            e = self.added[path]
            olds = by_hash.get((e.hash, e.kind))
            if e.size and olds:
                old = olds.pop(0)
                self.renamed.append((old, path))
        for old, new in self.renamed:
            del self.removed[old]
            del self.added[new]

    def only(self, paths: list[str]) -> Diff:
        """The changes at or under these store paths ("" is everything), as git's ``-- PATH``."""
        def keep(p: str) -> bool:
            return any(not q or p == q or p.startswith(q + "/") for q in paths)

        return Diff({p: e for p, e in self.added.items() if keep(p)},
                    {p: e for p, e in self.modified.items() if keep(p)},
                    {p: e for p, e in self.removed.items() if keep(p)},
                    [(a, b) for a, b in self.renamed if keep(a) or keep(b)],
                    {p: n for p, n in self.old_sizes.items() if keep(p)})

    def as_json(self) -> dict:
        return {
            "added": sorted(self.added),
            "modified": sorted(self.modified),
            "removed": sorted(self.removed),
            "renamed": [{"from": a, "to": b} for a, b in sorted(self.renamed)],
        }

    def stat(self) -> dict:
        return {
            "added": len(self.added),
            "modified": len(self.modified),
            "removed": len(self.removed),
            "renamed": len(self.renamed),
            "bytes_added": sum(e.size for e in self.added.values()),
            "bytes_removed": sum(e.size for e in self.removed.values()),
            "bytes_modified": sum(e.size for e in self.modified.values()),
        }


def diff_versions(store: Store, a: str, b: str) -> Diff:
    """What changed from version ``a`` to version ``b`` (any names ``Store.resolve`` takes)."""
    return diff_trees(store.meta, store.tree(a), store.tree(b))


def diff_staged(store: Store, rev: str | None = None) -> Diff:
    """What is staged, against version ``rev`` (default HEAD; nothing yet: all is added)."""
    base = store.tree(rev or "HEAD") if (rev or store.head()) else None
    return diff_trees(store.meta, base, store.staged_tree())


def diff_trees(meta: MetaStore, a: str | None, b: str | None,
               renames: bool = True) -> Diff:
    d = Diff()
    _diff(meta, a, b, "", d)
    if renames:
        d.find_renames()
    return d


def _diff(meta: MetaStore, a: str | None, b: str | None, where: str, d: Diff) -> None:
    if a == b:
        return
    if a is None:
        d.added.update(meta.walk(b, where))
        return
    if b is None:
        d.removed.update(meta.walk(a, where))
        return
    fa, fb = meta.read_folder(a, where), meta.read_folder(b, where)
    for name, ea in fa.files.items():
        eb = fb.files.get(name)
        path = join(where, name)
        if eb is None:
            d.removed[path] = ea
        elif not ea.same_content(eb):
            d.modified[path] = eb
            d.old_sizes[path] = ea.size
    for name, eb in fb.files.items():
        if name not in fa.files:
            d.added[join(where, name)] = eb
    for name in fa.dirs.keys() | fb.dirs.keys():
        _diff(meta, fa.dirs.get(name), fb.dirs.get(name), join(where, name), d)


def diff_maps(old: Mapping[str, FileEntry], new: Mapping[str, FileEntry]) -> Diff:
    """Diff two path -> entry maps, renames not sought (a dataset's file changes)."""
    d = Diff()
    for path, eo in old.items():
        en = new.get(path)
        if en is None:
            d.removed[path] = eo
        elif not eo.same_content(en):
            d.modified[path] = en
            d.old_sizes[path] = eo.size
    for path, en in new.items():
        if path not in old:
            d.added[path] = en
    return d
