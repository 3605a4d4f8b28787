"""Text drawing of the lineage DAG for ``ds log --graph`` (merges and roots included)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from objstore.meta import CommitInfo


def draw(entries: list[CommitInfo], tags: dict[str, list[str]]) -> Iterator[str]:
    """One line per version, newest first, with a column per open line of descent."""
    columns: list[str | None] = []  # the commit id each column is waiting for
    for e in entries:
        if e.id not in columns:
            columns.append(e.id)
        col = columns.index(e.id)
        cells = ["*" if i == col else ("|" if c is not None else " ") for i, c in enumerate(columns)]
        names = f" ({', '.join(tags[e.id])})" if e.id in tags else ""
        root = "  [root]" if not e.parents else ""
        yield f"{' '.join(cells)}  {e.id[:12]}{names} {e.message.splitlines()[0] if e.message else ''}{root}"
        parents = list(e.parents)
        columns[col] = parents[0] if parents else None
        for p in parents[1:]:
            if p not in columns:
                columns.append(p)
                yield f"{' '.join('|' if c is not None else ' ' for c in columns[:-1])} \\"
        # a parent already awaited in another column joins there
        for i, c in enumerate(columns):
            if i != col and c is not None and c == columns[col]:
                columns[col] = None
                break
        while columns and columns[-1] is None:
            columns.pop()
