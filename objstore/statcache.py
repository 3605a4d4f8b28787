"""The stat cache: path -> (size, mtime_ns, ctime_ns, inode, hash), local to one machine.

It lets ``ds status`` on an unchanged folder read no file content. An entry is trusted
only while size, mtime_ns, ctime_ns and inode all match (ctime catches a rewrite that
restores the old mtime, as ``cp -p`` or ``rsync -t`` do), and only if the file's times are older
than the moment the cache was written by more than ``RACY_NS`` (2 s on filesystems with
whole-second times): a file changed again within the same timestamp tick would
otherwise look unchanged. It is a cache: a missing, old-format or damaged file is
simply ignored and rebuilt.

Rows are kept per folder as one marshalled blob each, and only the folders in use are
decoded (a bounded number at a time): a million rows as Python tuples would take
~300 MB, as blobs ~60 MB, and loading the file stays a single read.
"""

from __future__ import annotations

import marshal
import sys
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .limits import CACHE_ROWS

if TYPE_CHECKING:  # kept out of start-up: `ds status` on a clean folder needs neither
    from .scan import Stat

RACY_NS = 100_000_000
_OPEN_ROWS = CACHE_ROWS  # decoded rows kept at once; past it the least recently used folders are re-encoded
_TAG = f"dsstat4-{sys.implementation.cache_tag}"

Row = tuple[int, int, int, int, bytes]


class StatCache:
    def __init__(self, path: Path):
        self.path = path
        self._blobs: dict[str, bytes] = {}  # folder -> marshal of {name: row}
        self._open: OrderedDict[str, dict[str, Row]] = OrderedDict()  # decoded folders, LRU order
        self._open_rows = 0
        self._dirty: set[str] = set()  # open folders changed since they were decoded
        self.written_ns = 0
        self.changed = False
        # the commit the whole working folder was proved equal to, with the rows holding
        # exactly its files: lets `ds status` answer "nothing changed" from stat data alone
        self.clean_head: str | None = None
        try:
            tag, written, blobs, clean_head = marshal.loads(path.read_bytes())
            if tag == _TAG and isinstance(blobs, dict):
                self._blobs, self.written_ns, self.clean_head = blobs, written, clean_head
        except (OSError, ValueError, EOFError, TypeError):
            pass

    # -- folders ----------------------------------------------------------------------
    def folders(self) -> list[str]:
        """Folders that have rows: the open ones by their rows, the others by their blob
        (a stored blob is never empty)."""
        return [f for f in {*self._blobs, *self._open} if f not in self._open or self._open[f]]

    def rows(self, folder: str) -> dict[str, Row]:
        """The rows of one folder, by file name (decoded on first use; do not keep it long)."""
        rows = self._open.get(folder)
        if rows is not None:
            self._open.move_to_end(folder)
            return rows
        blob = self._blobs.get(folder)
        try:
            rows = marshal.loads(blob) if blob is not None else {}
        except (ValueError, EOFError, TypeError):
            rows = {}
        if not isinstance(rows, dict):
            rows = {}
        self._open[folder] = rows
        self._open_rows += len(rows)
        while self._open_rows > _OPEN_ROWS and len(self._open) > 1:
            self._close(next(iter(self._open)))
        return rows

    def _close(self, folder: str, now: int | None = None) -> None:
        rows = self._open.pop(folder)
        self._open_rows -= len(rows)
        if folder in self._dirty:
            self._dirty.discard(folder)
            self._drop_racy(rows, time.time_ns() if now is None else now)
            if rows:
                self._blobs[folder] = marshal.dumps(rows)
            else:
                self._blobs.pop(folder, None)

    def _drop_racy(self, rows: dict[str, Row], now: int) -> None:
        """Leave out rows still inside the racy window at ``now`` (see ``save``). Checked
        whenever a changed folder is encoded, on saving or on leaving memory early: a
        row encoded unchecked would be trusted after the next save."""
        inside = [n for n, row in rows.items() if racy(row[1], row[2], now)]
        for n in inside:
            del rows[n]
        if inside:
            self.clean_head = None

    def _changed(self, folder: str) -> None:
        self._dirty.add(folder)
        self.changed = True
        self.clean_head = None

    def row_count(self) -> int:
        return sum(len(self.rows(f)) for f in self.folders())

    def paths(self) -> Iterator[str]:
        for folder in self.folders():
            for name in self.rows(folder):
                yield f"{folder}/{name}" if folder else name

    # -- rows -------------------------------------------------------------------------
    def mark_clean(self, head: str) -> None:
        self.clean_head = head
        self.changed = True

    def get(self, path: str, st: Stat) -> bytes | None:
        folder, _, name = path.rpartition("/")
        row = self.rows(folder).get(name)
        if row is None or row[:4] != (st.size, st.mtime_ns, st.ctime_ns, st.ino):
            return None
        if racy(st.mtime_ns, st.ctime_ns, self.written_ns):
            return None
        return row[4]

    def put(self, path: str, st: Stat, digest: bytes, name: str | None = None) -> None:
        """``name``: the path's last part, when the caller has it as a string already
        (the row then shares it instead of holding a copy: ~60 bytes a file)."""
        if name is None:
            folder, _, name = path.rpartition("/")
        else:
            folder = path[: len(path) - len(name) - 1] if len(path) > len(name) else ""
        rows = self.rows(folder)
        row = (st.size, st.mtime_ns, st.ctime_ns, st.ino, digest)
        if rows.get(name) != row:
            if name not in rows:
                self._open_rows += 1
            rows[name] = row
            self._changed(folder)

    def drop(self, path: str) -> None:
        folder, _, name = path.rpartition("/")
        rows = self.rows(folder)
        if rows.pop(name, None) is not None:
            self._open_rows -= 1
            self._changed(folder)

    def keep_names(self, folder: str, names: Iterable[str] | dict) -> None:
        """Drop the folder's rows for files not in ``names``."""
        rows = self.rows(folder)
        keep = names if isinstance(names, (set, dict, frozenset)) else set(names)
        stale = [n for n in rows if n not in keep]
        for n in stale:
            del rows[n]
        if stale:
            self._open_rows -= len(stale)
            self._changed(folder)

    def keep_folders(self, folders: set[str] | dict) -> None:
        """Drop every folder not in ``folders``."""
        for folder in [f for f in {*self._blobs, *self._open} if f not in folders]:
            rows = self._open.pop(folder, None)
            if rows is not None:
                self._open_rows -= len(rows)
                self._dirty.discard(folder)
            if self._blobs.pop(folder, None) is not None or rows:
                self.changed, self.clean_head = True, None

    def save(self) -> None:
        """Write the cache, leaving out entries still inside the racy window.

        An entry hashed while its file's mtime was within one timestamp tick of now could
        be followed by a change that keeps the same mtime; it is dropped, and hashed again
        next time (git's "racily clean" rule, applied per entry). Only folders changed
        since loading can hold such rows: every other row was checked when last saved.
        """
        if not self.changed:
            return
        now = time.time_ns()
        for folder in list(self._open):
            self._close(folder, now)
        from .fsutil import atomic_write

        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, marshal.dumps((_TAG, now, self._blobs, self.clean_head)), durable=False)
        self.written_ns = now
        self.changed = False


def racy(mtime_ns: int, ctime_ns: int, written_ns: int) -> bool:
    """Changed too close to ``written_ns`` for a later change to be told apart by its times."""
    # whole-second times mean a coarse filesystem (FAT, HFS+): widen the window
    window = RACY_NS if mtime_ns % 1_000_000_000 else 2_000_000_000
    return max(mtime_ns, ctime_ns) >= written_ns - window
