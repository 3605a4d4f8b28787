"""The stat cache: path -> (size, mtime_ns, ctime_ns, inode, hash), local to one machine.

It lets ``ds status`` on an unchanged folder read no file content. An entry is trusted
only while size, mtime_ns, ctime_ns and inode all match (ctime catches a rewrite that
restores the old mtime, as ``cp -p`` or ``rsync -t`` do), and only if the file's times are older
than the moment the cache was written by more than ``RACY_NS`` (2 s on filesystems with
whole-second times): a file changed again within the same timestamp tick would
otherwise look unchanged. It is a cache: a missing, old-format or damaged file is
simply ignored and rebuilt.
"""

from __future__ import annotations

import marshal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # kept out of start-up: `ds status` on a clean folder needs neither
    from .scan import Stat

RACY_NS = 100_000_000
_TAG = f"dsstat3-{sys.implementation.cache_tag}"


class StatCache:
    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, tuple[int, int, int, int, bytes]] = {}
        self.written_ns = 0
        self.changed = False
        # the commit the whole working folder was proved equal to, with ``entries`` holding
        # exactly its files: lets `ds status` answer "nothing changed" from stat data alone
        self.clean_head: str | None = None
        try:
            tag, written, entries, clean_head = marshal.loads(path.read_bytes())
            if tag == _TAG and isinstance(entries, dict):
                self.entries, self.written_ns, self.clean_head = entries, written, clean_head
        except (OSError, ValueError, EOFError, TypeError):
            pass

    def mark_clean(self, head: str) -> None:
        self.clean_head = head
        self.changed = True

    def get(self, path: str, st: Stat) -> bytes | None:
        row = self.entries.get(path)
        if row is None or row[:4] != (st.size, st.mtime_ns, st.ctime_ns, st.ino):
            return None
        if racy(st.mtime_ns, st.ctime_ns, self.written_ns):
            return None
        return row[4]

    def put(self, path: str, st: Stat, digest: bytes) -> None:
        row = (st.size, st.mtime_ns, st.ctime_ns, st.ino, digest)
        if self.entries.get(path) != row:
            self.entries[path] = row
            self.changed = True
            self.clean_head = None

    def drop(self, path: str) -> None:
        if self.entries.pop(path, None) is not None:
            self.changed = True
            self.clean_head = None

    def keep_only(self, paths: set[str] | dict) -> None:
        stale = [p for p in self.entries if p not in paths]
        for p in stale:
            del self.entries[p]
        if stale:
            self.changed, self.clean_head = True, None

    def save(self) -> None:
        """Write the cache, leaving out entries still inside the racy window.

        An entry hashed while its file's mtime was within one timestamp tick of now could
        be followed by a change that keeps the same mtime; it is dropped, and hashed again
        next time (git's "racily clean" rule, applied per entry).
        """
        if not self.changed:
            return
        now = time.time_ns()
        inside = [p for p, row in self.entries.items() if racy(row[1], row[2], now)]
        for p in inside:
            del self.entries[p]
        if inside:
            self.clean_head = None
        from .fsutil import atomic_write

        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, marshal.dumps((_TAG, now, self.entries, self.clean_head)), durable=False)
        self.written_ns = now
        self.changed = False


def racy(mtime_ns: int, ctime_ns: int, written_ns: int) -> bool:
    """Changed too close to ``written_ns`` for a later change to be told apart by its times."""
    # whole-second times mean a coarse filesystem (FAT, HFS+): widen the window
    window = RACY_NS if mtime_ns % 1_000_000_000 else 2_000_000_000
    return max(mtime_ns, ctime_ns) >= written_ns - window
