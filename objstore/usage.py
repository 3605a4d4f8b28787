"""Disk usage of a version (``ds du``): what it holds, what it costs, what each version added.

- logical: the sum of the version's file sizes (what a copy of it takes);
- stored: the bytes, as stored in packs (compressed, deltas as deltas), of the distinct
  chunks it uses, plus the base of each delta among them (a delta cannot be read without it);
- for each version of its lineage, what it adds: the stored bytes of chunks no older
  version of the lineage uses (parents before children, so a merge adds only what
  neither side had).

Cost: the lineage walk keeps the ids of every distinct chunk and folder tree it has met,
as Python sets (~100 bytes a chunk: a million chunks ~100 MB, ten million ~1 GB); a
folder met in an older version is skipped whole, so each version costs what it changed.
The version itself is walked file by file (its logical size counts every file).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .chunkstore import ChunkStore
from .meta import MetaStore
from .paths import join
from .store import Store


@dataclass
class VersionAdds:
    id: str
    message: str
    adds: int  # stored bytes of chunks no older version in the lineage uses
    chunks: int  # how many such chunks
    missing: int = 0  # of them, chunks this store lacks (on a remote only): not counted in adds

    def as_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Usage:
    version: str
    files: int = 0
    logical: int = 0
    stored: int = 0
    chunks: int = 0  # distinct chunks the version uses (delta bases included)
    missing: int = 0  # of them, chunks this store lacks: not counted in stored
    history: list[VersionAdds] = field(default_factory=list)  # newest first

    def as_json(self) -> dict:
        return {**{k: v for k, v in self.__dict__.items() if k != "history"},
                "history": [h.as_json() for h in self.history]}


def disk_usage(store: Store, rev: str = "HEAD") -> Usage:
    """Logical and stored size of version ``rev``, and what each version of its lineage adds."""
    commit_id = store.resolve(rev)
    meta = store.meta
    usage = Usage(commit_id)
    used: set[bytes] = set()
    for _path, e in meta.walk(meta.tree_of(commit_id)):
        usage.files += 1
        usage.logical += e.size
        used.update(c for c, _ in e.chunk_list())
    used |= _delta_bases(store.chunks, used)
    usage.chunks = len(used)
    usage.stored, usage.missing = _stored(store.chunks, used)
    del used
    seen_chunks: set[bytes] = set()
    seen_trees: set[str] = set()
    for version in reversed(list(meta.ancestors(commit_id))):
        new: set[bytes] = set()
        _new_chunks(meta, meta.tree_of(version), "", seen_trees, seen_chunks, new)
        seen_chunks |= new
        adds, missing = _stored(store.chunks, new)
        info = meta.commit_info(version)
        usage.history.append(VersionAdds(version, info.message, adds, len(new), missing))
    usage.history.reverse()
    return usage


def _new_chunks(meta: MetaStore, tree: str, where: str, seen_trees: set[str],
                seen_chunks: set[bytes], new: set[bytes]) -> None:
    """Chunks under ``tree`` not in ``seen_chunks``; folders already met are skipped whole
    (every chunk under them was collected when they were first met)."""
    if tree in seen_trees:
        return
    seen_trees.add(tree)
    folder = meta.read_folder(tree, where)
    for e in folder.files.values():
        new.update(c for c, _ in e.chunk_list() if c not in seen_chunks)
    for name, sub in folder.dirs.items():
        _new_chunks(meta, sub, join(where, name), seen_trees, seen_chunks, new)


def _delta_bases(chunks: ChunkStore, ids: set[bytes]) -> set[bytes]:
    """The bases of the deltas among ``ids`` that ``ids`` lacks (one small read per delta)."""
    out = set()
    for c in ids:
        loc = chunks.locate(c)
        base = chunks.base_of(loc) if loc is not None else None
        if base is not None and base not in ids:
            out.add(base)
    return out


def _stored(chunks: ChunkStore, ids: set[bytes]) -> tuple[int, int]:
    """(stored bytes, chunks not in this store) of ``ids``."""
    total = missing = 0
    for c in ids:
        loc = chunks.locate(c)
        if loc is None:
            missing += 1
        else:
            total += loc.stored_len
    return total, missing
