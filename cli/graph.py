"""Text drawing of the lineage DAG for ``ds log --graph`` (merges and roots included)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from objstore.meta import CommitInfo


def draw(entries: list[CommitInfo], tags: dict[str, list[str]]) -> Iterator[str]:
    """One line per version, newest first, with a column per open line of descent: a merge
    opens a column for its other parent (``| \\``), and two columns that reach the same
    parent join into the left one (``|/``), as git draws them."""
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
        # a parent already awaited in another column: the right one of the two joins the left
        target = columns[col]
        other = next((i for i, c in enumerate(columns) if i != col and c is not None and c == target), None)
        if other is not None:
            keep, gone = min(col, other), max(col, other)
            yield _join(columns, keep, gone)
            columns[keep], columns[gone] = target, None
        while columns and columns[-1] is None:
            columns.pop()


def _join(columns: list[str | None], keep: int, gone: int) -> str:
    """The line on which column ``gone`` bends into column ``keep``: ``|/`` when they are
    side by side; across the columns between, git's ``|_|/`` (the line runs under them)."""
    cells = ["|" if c is not None else " " for c in columns]
    out = []
    for i, cell in enumerate(cells[:gone]):
        out.append(cell if i <= keep or cell == "|" else "_")
        out.append("_" if keep <= i < gone - 1 else "/" if i == gone - 1 else " ")
    out[-1] = "/"
    right = " ".join(cells[gone + 1 :])
    return ("".join(out) + (f"  {right}" if right.strip() else "")).rstrip()
